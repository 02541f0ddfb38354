//! Occopus's verbs: `build`, `destroy`, `info`, `validate`, `import`, `graph`
//! (keeping infrastructures alive: see `upkeep`).

use crate::output::{errln, out, outln};

use crate::args::{
    AuthDataArg, FileArgs, InfraIdArg, MaybeInfraIdArg, ReportArgs, StateArgs, WaitArg,
};
use crate::error::CliError;
use crate::json;
use crate::progress::Progress;
use crate::signals::stop_on_signals;
use crate::summary::{PhaseCounts, grouped_failures};
use clap::Args;
use occopus::engine::{BuildOptions, BuildReport, DestroyOptions, InstanceOutcome, Phase, lease};
use occopus::graph::graph_dot;
use occopus::info::{complete_infra_id, info as recorded, open_state};
use occopus::model::{LoadLimits, Model, NodeDefinitions, Severity};
use occopus::store::{HealthStatus, InstanceState, Liveness};
use occopus::types::{ErrorCode, now_ms};
use occopus::{Config, InfraInfo, Occopus};
use std::path::PathBuf;

/// `occopus build`.
#[derive(Debug, Args)]
#[command(mut_arg("infra_id", |a| a.help("Build (resume, or complete) the infrastructure with this id")))]
pub struct BuildArgs {
    #[command(flatten)]
    pub files: FileArgs,
    #[command(flatten)]
    pub infra_id: MaybeInfraIdArg,
    /// On failure, destroy what this run created (Occopus's behaviour).
    #[arg(long)]
    pub rollback: bool,
    /// Occopus's flag to create independent nodes in parallel: the default
    /// here (accepted, changes nothing).
    #[arg(long)]
    pub parallelize: bool,
    #[command(flatten)]
    pub wait: WaitArg,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// `occopus destroy`.
#[derive(Debug, Args)]
#[command(mut_arg("infra_id", |a| a.help("The infrastructure to destroy")))]
pub struct DestroyArgs {
    #[command(flatten)]
    pub infra_id: InfraIdArg,
    #[command(flatten)]
    pub auth_data: AuthDataArg,
    #[command(flatten)]
    pub wait: WaitArg,
    #[command(flatten)]
    pub report: ReportArgs,
}

/// `occopus unlock`.
#[derive(Debug, Args)]
#[command(mut_arg("infra_id", |a| a.help("The infrastructure whose lease to free")))]
pub struct UnlockArgs {
    #[command(flatten)]
    pub infra_id: InfraIdArg,
    /// Free the lease even though its holder is still running: it may then
    /// leave a cloud resource it is creating right now unrecorded.
    #[arg(long)]
    pub force: bool,
}

/// `occopus info`.
#[derive(Debug, Args)]
#[command(mut_arg("infra_id", |a| a.help("Show this infrastructure's nodes and instances (default: list them all)")))]
pub struct InfoArgs {
    #[command(flatten)]
    pub infra_id: MaybeInfraIdArg,
    /// Print JSON (with -i: Occopus's report shape).
    #[arg(long)]
    pub json: bool,
}

/// `occopus validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Print the problems as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `occopus validate`: exit 0 only when there is no error.
pub async fn validate(
    ValidateArgs { files, json }: ValidateArgs,
    config: &Config,
    state: &StateArgs,
) -> Result<(), CliError> {
    let occopus = Occopus::open(state.read_only_options(config)).await?;
    let diagnostics = occopus.validate(&files.sources()).await?;
    let (errors, warnings) = diagnostics.counts();
    if json {
        outln!(
            "{:#}",
            serde_json::json!({ "errors": errors, "warnings": warnings, "problems": diagnostics })
        );
    } else if !diagnostics.is_empty() {
        errln!("{diagnostics}");
    }
    if errors > 0 {
        return Err(CliError::ended(
            ErrorCode::InvalidDescription,
            format!(
                "{} is not valid: {errors} error(s), {warnings} warning(s)",
                files.infra.display()
            ),
        ));
    }
    if !json {
        errln!("{} is valid ({warnings} warning(s))", files.infra.display());
    }
    Ok(())
}

/// `occopus build`: prints the infra id on stdout (with `--json`, the
/// `occopus.build.v1` document).
pub async fn build(args: BuildArgs, config: &Config, state: &StateArgs) -> Result<(), CliError> {
    // Listen for Ctrl-C before anything else, so that none is missed.
    let signal = stop_on_signals("run the same build again to resume")?;
    let occopus = Occopus::open(state.options(config)).await?;
    let progress = Progress::start(occopus.subscribe(), args.report.progress);
    let options = BuildOptions {
        infra_id: args.infra_id.infra_id.clone(),
        rollback: args.rollback,
        stop: signal,
        lease: args.wait.lease("occopus build")?,
    };
    let result = occopus.build(&args.files.sources(), options).await;
    progress.finish().await;
    let report = result?;
    print_outcomes(&report.instances);
    let ended = build_ended(&report, &args);
    if args.report.json {
        let outcome = match &ended {
            None => "ready",
            Some(_) if report.rolled_back => "rolled-back",
            Some(CliError::Ended {
                code: ErrorCode::Interrupted,
                ..
            }) => "stopped",
            Some(_) => "failed",
        };
        let document = serde_json::json!({
            "infra_id": report.infra_id,
            "outcome": outcome,
            "elapsed_ms": report.elapsed_ms,
            "instances": report.instances,
        });
        json::print_report("occopus.build.v1", document, ended.as_ref());
    } else {
        outln!("{}", report.infra_id);
    }
    match ended {
        None => {
            errln!(
                "infrastructure {} is ready ({} instances, {:.1}s)",
                report.infra_id,
                report.instances.len(),
                report.elapsed_ms as f64 / 1000.0
            );
            Ok(())
        }
        Some(error) => Err(error),
    }
}

/// Why a build that ended with `report` did not succeed, if it did not.
fn build_ended(report: &BuildReport, args: &BuildArgs) -> Option<CliError> {
    if report.succeeded() {
        return None;
    }
    let failures = grouped_failures(report.failures().map(|f| {
        (
            f.instance_id.as_str(),
            f.detail.as_deref().unwrap_or("failed"),
        )
    }));
    let up = report
        .instances
        .iter()
        .filter(|i| i.phase == Phase::Ready)
        .count();
    let what = if report.rolled_back {
        "what this run created was destroyed (--rollback)".to_string()
    } else {
        format!(
            "state saved; run `occopus build {} -i {}` to resume or `occopus destroy -i {}`",
            args.files.infra.display(),
            report.infra_id,
            report.infra_id
        )
    };
    if report.stopped && failures.is_empty() {
        return Some(CliError::ended(
            ErrorCode::Interrupted,
            format!(
                "build stopped: {up} of {} instances ready; {what}",
                report.instances.len()
            ),
        ));
    }
    Some(CliError::ended(
        ErrorCode::OperationFailed,
        format!(
            "build failed: {up} of {} instances ready; failed: {failures}; {what}",
            report.instances.len(),
        ),
    ))
}

/// Instances in the build's final table before it becomes a count by phase
/// per node (a table of 100,000 rows is read by no one).
const FINAL_ROWS: usize = 40;

/// The build's final table: a row per instance, or per node when many.
fn print_outcomes(instances: &[InstanceOutcome]) {
    if instances.len() > FINAL_ROWS {
        let counts = PhaseCounts::of(instances.iter().map(|i| (i.node.as_str(), i.phase)));
        for line in counts.lines() {
            errln!("  {line}");
        }
        return;
    }
    for instance in instances {
        let address = instance.addresses.primary().unwrap_or("-");
        let detail = instance
            .detail
            .as_deref()
            .map(|d| format!("  {d}"))
            .unwrap_or_default();
        errln!(
            "  {:<20} {:<28} {:<9} {address}{detail}",
            instance.node,
            instance.instance_id,
            instance.phase.as_str()
        );
    }
}

/// `occopus destroy`.
pub async fn destroy(
    args: DestroyArgs,
    config: &Config,
    state: &StateArgs,
) -> Result<(), CliError> {
    let signal = stop_on_signals("run destroy again to finish")?;
    let options = DestroyOptions {
        stop: signal,
        lease: args.wait.lease("occopus destroy")?,
    };
    let occopus = Occopus::open(state.options(config)).await?;
    let infra_id = occopus.complete_infra_id(&args.infra_id.infra_id)?;
    let progress = Progress::start(occopus.subscribe(), args.report.progress);
    let auth = args.auth_data.path();
    let result = occopus.destroy(&infra_id, auth.as_deref(), options).await;
    progress.finish().await;
    let report = result?;
    let ended = (!report.failed.is_empty()).then(|| {
        CliError::ended(
            ErrorCode::OperationFailed,
            format!(
                "{} instance(s) could not be destroyed and stay recorded: {}; run destroy again",
                report.failed.len(),
                grouped_failures(
                    report
                        .failed
                        .iter()
                        .map(|(id, why)| (id.as_str(), why.as_str()))
                )
            ),
        )
    });
    if args.report.json {
        let failed: Vec<_> = report
            .failed
            .iter()
            .map(|(id, why)| serde_json::json!({ "instance_id": id, "reason": why }))
            .collect();
        let document = serde_json::json!({
            "infra_id": report.infra_id,
            "outcome": if ended.is_none() { "destroyed" } else { "failed" },
            "destroyed": report.destroyed,
            "failed": failed,
        });
        json::print_report("occopus.destroy.v1", document, ended.as_ref());
    }
    match ended {
        None => {
            errln!(
                "infrastructure {} destroyed ({} instances)",
                report.infra_id,
                report.destroyed
            );
            Ok(())
        }
        Some(error) => Err(error),
    }
}

/// `occopus info`: reads the state database only (no plugin is loaded).
pub fn info(args: InfoArgs, config: &Config, state: &StateArgs) -> Result<(), CliError> {
    let store = open_state(state.state_file(config), true)?;
    let infra_id = args
        .infra_id
        .infra_id
        .map(|given| complete_infra_id(&store, &given))
        .transpose()?;
    let infos = recorded(&store, infra_id.as_deref())?;
    match (infra_id.is_some(), args.json) {
        (false, true) => {
            let list: Vec<_> = infos
                .iter()
                .map(|i| serde_json::json!({"id": i.infra.id, "name": i.infra.name, "status": i.infra.status, "instances": i.instances.len(), "lease": i.lease}))
                .collect();
            outln!("{:#}", serde_json::json!({ "infrastructures": list }));
        }
        (false, false) if infos.is_empty() => {
            let file = state
                .state_file(config)
                .map(|f| occopus::store::mask_password(&f.display().to_string()));
            errln!(
                "no infrastructure is recorded in {}",
                file.as_deref().unwrap_or("the state database")
            );
        }
        (false, false) => {
            outln!(
                "{:<38} {:<24} {:<14} {:<9} CHANGED BY",
                "ID",
                "NAME",
                "STATUS",
                "INSTANCES"
            );
            for info in &infos {
                let holder = info
                    .lease
                    .as_ref()
                    .map(|lease| format!("{} (pid {})", lease.holder.command, lease.holder.pid));
                outln!(
                    "{:<38} {:<24} {:<14} {:<9} {}",
                    info.infra.id,
                    info.infra.name,
                    info.infra.status,
                    info.instances.len(),
                    holder.as_deref().unwrap_or("-")
                );
            }
        }
        (true, true) => outln!("{:#}", infos[0].occopus_report()),
        (true, false) => print_infra(&infos[0]),
    }
    Ok(())
}

/// `occopus unlock`: frees the lease of a holder that is gone (or, with
/// `--force`, of a live one).
pub fn unlock(args: UnlockArgs, config: &Config, state: &StateArgs) -> Result<(), CliError> {
    let store = open_state(state.state_file(config), false)?;
    let infra_id = &complete_infra_id(&store, &args.infra_id.infra_id)?;
    match lease::unlock(&store, infra_id, args.force)? {
        None => errln!("infrastructure {infra_id} has no lease: nothing to unlock"),
        Some((lease, liveness)) => {
            let holder = lease.describe(now_ms());
            let how = match liveness {
                Liveness::Dead => "its process had ended",
                Liveness::Expired => "its heartbeat had stopped",
                Liveness::Alive => {
                    "it was still running: it writes nothing more, but a cloud resource it was \
                     creating may be unrecorded; run `occopus build` or `occopus maintain` on \
                     the infrastructure to find it (listed by its infra tag)"
                }
            };
            errln!("freed the lease of {holder} on infrastructure {infra_id}; {how}");
        }
    }
    Ok(())
}

fn print_infra(info: &InfraInfo) {
    outln!(
        "infrastructure {} ({}): {}",
        info.infra.id,
        info.infra.name,
        info.infra.status
    );
    if let Some(lease) = &info.lease {
        outln!("being changed by {}", lease.describe(now_ms()));
    }
    for node in &info.infra.snapshot.nodes {
        let instances: Vec<_> = info.instances_of(&node.name).collect();
        let ready = instances
            .iter()
            .filter(|i| i.state == InstanceState::Ready)
            .count();
        let actual = instances.iter().filter(|i| i.state.is_live()).count();
        outln!(
            "node {} ({}): {ready} ready, {actual} up, target {} [min {}, max {}]",
            node.name,
            node.node_type,
            info.target(node),
            node.scaling.min,
            node.scaling.max
        );
        if !instances.is_empty() {
            outln!(
                "  {:<28} {:<10} {:<16} {:<24} HEALTH",
                "INSTANCE",
                "STATE",
                "ADDRESS",
                "CLOUD ID"
            );
        }
        for i in instances {
            let health = match (i.health.status, &i.health.detail) {
                (HealthStatus::Failing, Some(why)) => format!("failing ({why})"),
                (status, _) => status.as_str().to_string(),
            };
            outln!(
                "  {:<28} {:<10} {:<16} {:<24} {health}{}",
                i.id,
                i.state.as_str(),
                i.addresses.primary().unwrap_or("-"),
                i.cloud_id.as_deref().unwrap_or("-"),
                i.error
                    .as_deref()
                    .map(|e| format!("  {e}"))
                    .unwrap_or_default()
            );
        }
    }
    for request in &info.scale_requests {
        outln!(
            "queued scaling request {}: node {} {:+}{}",
            request.seq,
            request.node_name,
            request.change,
            request
                .instance
                .as_deref()
                .map(|i| format!(" (instance {i})"))
                .unwrap_or_default()
        );
    }
}

/// `occopus import`.
pub async fn import(
    path: PathBuf,
    json: bool,
    config: &Config,
    state: &StateArgs,
) -> Result<(), CliError> {
    let occopus = Occopus::open(state.options(config)).await?;
    let types = occopus.import(&path)?;
    if json {
        json::print(
            "occopus.import.v1",
            serde_json::json!({ "file": path, "node_types": types }),
        );
    }
    errln!(
        "imported {} node type(s) from {}: {}",
        types.len(),
        path.display(),
        types.join(", ")
    );
    Ok(())
}

/// `occopus graph`: the dependency graph in Graphviz DOT.
pub fn graph(files: FileArgs) -> Result<(), CliError> {
    let (model, diagnostics) = Model::load(
        &files.sources(),
        NodeDefinitions::default(),
        LoadLimits::default(),
    );
    // Only the description matters for the graph; a node type defined
    // elsewhere shows as `?`.
    let infra_errors = diagnostics.iter().any(|d| {
        d.severity == Severity::Error && d.location.as_ref().is_none_or(|l| *l.file == *files.infra)
    });
    match model {
        Some(model) if !infra_errors => {
            out!("{}", graph_dot(&model));
            Ok(())
        }
        _ => Err(CliError::Api(occopus::ApiError::Invalid(diagnostics))),
    }
}
