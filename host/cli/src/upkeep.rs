//! Keeping infrastructures alive: `maintain`, `scale`, `plan`.

use crate::output::{errln, out, outln};

use crate::args::{
    AuthDataArg, FileArgs, InfraIdArg, MaybeInfraIdArg, StateArgs, WaitArg, positive_seconds,
};
use crate::error::CliError;
use crate::signals::stop_on_signals;
use crate::summary::grouped_failures;
use clap::Args;
use occopus::engine::{ErrorPolicy, PassReport, Phase, ScaleBy, Upkeep};
use occopus::types::{ErrorCode, now_ms};
use occopus::{Config, Occopus};

/// `occopus maintain`.
#[derive(Debug, Args)]
#[command(mut_arg("infra_id", |a| a.help("The infrastructure to keep alive")))]
pub struct MaintainArgs {
    #[command(flatten)]
    pub infra_id: InfraIdArg,
    /// Seconds between passes (Occopus's -t).
    #[arg(short = 't', long, value_name = "SECONDS", default_value_t = 10.0)]
    pub interval: f64,
    /// One pass, then exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub auth_data: AuthDataArg,
    /// Print each pass's report as a JSON line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub wait: WaitArg,
}

/// `occopus scale`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("how").required(true).args(["change", "set", "instance"])))]
#[command(mut_arg("infra_id", |a| a.help("The infrastructure")))]
pub struct ScaleArgs {
    #[command(flatten)]
    pub infra_id: InfraIdArg,
    /// The node to scale.
    #[arg(short = 'n', long, value_name = "NODE")]
    pub node: String,
    /// Add (+N) or remove (-N) instances (Occopus's --changescale).
    #[arg(
        short = 'c',
        long,
        visible_alias = "changescale",
        allow_negative_numbers = true,
        value_name = "±N"
    )]
    pub change: Option<i64>,
    /// Set the instance count (Occopus's --setscale).
    #[arg(
        short = 's',
        long,
        visible_alias = "setscale",
        value_name = "N",
        conflicts_with = "change"
    )]
    pub set: Option<u32>,
    /// Remove this instance (its id or address; Occopus's --filter).
    #[arg(
        short = 'f',
        long,
        visible_alias = "filter",
        value_name = "ID_OR_ADDRESS",
        conflicts_with = "set"
    )]
    pub instance: Option<String>,
    /// Print the queued request as JSON (docs/json.md).
    #[arg(long)]
    pub json: bool,
}

/// `occopus plan`.
#[derive(Debug, Args)]
#[command(mut_arg("infra_id", |a| a.help("Compare with this infrastructure [default: the description's infra_id, else a new one]")))]
pub struct PlanArgs {
    #[command(flatten)]
    pub files: FileArgs,
    #[command(flatten)]
    pub infra_id: MaybeInfraIdArg,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `occopus maintain`: passes until Ctrl-C (or one with `--once`). A pass
/// that fails for a reason that may pass (the state database busy) is
/// retried with backoff; any other failure ends the command.
pub async fn maintain(
    args: MaintainArgs,
    config: &Config,
    state: &StateArgs,
) -> Result<(), CliError> {
    let signal = stop_on_signals("run maintain again to go on")?;
    let interval = positive_seconds("--interval", args.interval)?;
    let occopus = Occopus::open(state.options(config)).await?;
    let auth = args.auth_data.path();
    let infra_id = &occopus.complete_infra_id(&args.infra_id.infra_id)?;
    let print = |report: &PassReport| {
        if args.json {
            outln!("{}", serde_json::to_string(report).unwrap_or_default());
        } else {
            print_pass(report);
        }
    };
    let upkeep = Upkeep {
        interval,
        policy: ErrorPolicy::default(),
        stop: signal.clone(),
        lease: args.wait.lease("occopus maintain")?,
    };
    if args.once {
        let report = occopus
            .maintain_pass(infra_id, auth.as_deref(), &upkeep)
            .await?;
        print(&report);
    } else {
        occopus
            .maintain(infra_id, auth.as_deref(), upkeep, |outcome| {
                if let Ok(report) = outcome {
                    print(report);
                }
            })
            .await?;
    }
    if signal.is_stopped() {
        return Err(CliError::ended(
            ErrorCode::Interrupted,
            "stopped; run maintain again to go on",
        ));
    }
    Ok(())
}

/// Instances, failures or changes a pass lists one by one; more are grouped
/// (a pass over 100,000 instances must not print 100,000 lines).
const LISTED: usize = 20;

/// A pass's report on stderr, bounded whatever the infrastructure's size.
fn print_pass(report: &PassReport) {
    let now = time_of_day();
    let ready = report
        .instances
        .iter()
        .filter(|i| i.phase == Phase::Ready)
        .count();
    errln!(
        "{now} pass over {}: {} observed, {} failed, {} change(s), {ready} of {} new instance(s) ready ({} ms)",
        report.infra_id,
        report.observed,
        report.found_failed.len(),
        report.plan.changes.len(),
        report.instances.len(),
        report.elapsed_ms
    );
    if report.found_failed.len() <= LISTED {
        for (instance, why) in &report.found_failed {
            errln!("  failed {instance}: {why}");
        }
    } else {
        let failed = report.found_failed.iter();
        let grouped = grouped_failures(failed.map(|(id, why)| (id.as_str(), why.as_str())));
        errln!("  failed: {grouped}");
    }
    for line in &report.scaling {
        errln!("  {line}");
    }
    if !report.plan.is_empty() {
        let plan = report.plan.render();
        let lines: Vec<&str> = plan.lines().collect();
        let (shown, summary) = match lines.split_last() {
            Some((summary, changes)) if changes.len() <= LISTED => (changes, *summary),
            Some((summary, _)) => (&[][..], *summary),
            None => (&[][..], ""),
        };
        for line in shown {
            errln!("  {line}");
        }
        if shown.len() + 1 < lines.len() {
            errln!("  {summary} (`occopus plan` lists every change)");
        } else {
            errln!("  {summary}");
        }
    }
    let unready: Vec<(String, String)> = report
        .instances
        .iter()
        .filter(|i| i.phase != Phase::Ready)
        .map(|i| {
            let detail = i.detail.as_deref().map(|d| format!(": {d}"));
            let state = format!("{}{}", i.phase.as_str(), detail.unwrap_or_default());
            (format!("{} {}", i.node, i.instance_id), state)
        })
        .collect();
    if unready.len() <= LISTED {
        for (instance, state) in &unready {
            errln!("  {instance}: {state}");
        }
    } else {
        let grouped = grouped_failures(unready.iter().map(|(i, s)| (i.as_str(), s.as_str())));
        errln!("  not ready: {grouped}");
    }
    for (node, retry_ms) in &report.held {
        let wait = (retry_ms - now_ms()).max(0) / 1000;
        errln!("  node {node} keeps failing: held back, next attempt in {wait}s");
    }
}

/// The time of day, UTC, for pass lines.
fn time_of_day() -> String {
    let seconds = now_ms() / 1000;
    let day = seconds % 86_400;
    format!("{:02}:{:02}:{:02}Z", day / 3600, day % 3600 / 60, day % 60)
}

/// `occopus scale`: queues the request; `maintain` applies it.
pub async fn scale(args: ScaleArgs, config: &Config, state: &StateArgs) -> Result<(), CliError> {
    let occopus = Occopus::open(state.options(config)).await?;
    let infra_id = &occopus.complete_infra_id(&args.infra_id.infra_id)?;
    let by = match (args.change, args.set) {
        (Some(change), _) => ScaleBy::Change(change),
        (None, Some(count)) => ScaleBy::To(count),
        (None, None) => ScaleBy::Change(-1),
    };
    let queued = occopus.scale(infra_id, &args.node, by, args.instance.as_deref())?;
    if args.json {
        crate::json::print(
            "occopus.scale.v1",
            serde_json::json!({ "infra_id": infra_id, "request": queued }),
        );
    }
    errln!(
        "queued scaling request {}: node {} {:+} (target {} once applied); `occopus maintain -i {infra_id}` applies it",
        queued.seq,
        queued.node,
        queued.change,
        queued.target
    );
    Ok(())
}

/// `occopus plan`: what `build` would change, touching nothing.
pub async fn plan(args: PlanArgs, config: &Config, state: &StateArgs) -> Result<(), CliError> {
    let occopus = Occopus::open(state.read_only_options(config)).await?;
    let infra_id = args
        .infra_id
        .infra_id
        .map(|given| occopus.complete_infra_id(&given))
        .transpose()?;
    let plan = occopus
        .plan(&args.files.sources(), infra_id.as_deref())
        .await?;
    if args.json {
        outln!("{:#}", serde_json::to_value(&plan).unwrap_or_default());
    } else if plan.is_empty() && plan.outdated.is_empty() {
        outln!("No changes: the infrastructure matches the description.");
    } else {
        out!("{}", plan.render());
    }
    Ok(())
}
