//! `occopus serve`: the REST service (Occopus's `occopus-rest-service`).

use crate::output::errln;

use crate::args::{AuthDataArg, StateArgs, positive_seconds};
use crate::environment;
use crate::error::CliError;
use crate::signals::stop_on_signals;
use clap::Args;
use occopus::{Config, Occopus};
use occopus_service::{ServerLimits, Service, ServiceSettings};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// `occopus serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on; another than loopback needs a token (OCCOPUS_API_TOKEN).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port to listen on (0: any free one; the address is printed).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    #[command(flatten)]
    pub auth_data: AuthDataArg,
    /// The one directory posted descriptions may `!yaml_import` from [default: none may].
    #[arg(long, value_name = "DIR")]
    pub import_dir: Option<PathBuf>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Seconds between maintenance passes of each infrastructure.
    #[arg(long, default_value_t = 10.0)]
    pub maintain_interval: f64,
    /// Seconds between claim passes: how soon this replica does what
    /// another replica on the same state database was asked, and takes over
    /// the infras of one that died (once their lease is dead or expired).
    #[arg(long, default_value_t = 1.0)]
    pub claim_interval: f64,
    /// Seconds a client has to send a request's headers (also how long an
    /// idle connection stays open).
    #[arg(long, default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Seconds a request may take, upload included (the event stream exempt); 408 after.
    #[arg(long, default_value_t = 60.0)]
    pub request_timeout: f64,
    /// The largest request line and headers, in bytes; 431 beyond.
    #[arg(long, default_value_t = 64 << 10)]
    pub max_header_bytes: usize,
    /// Connections open at once; more are closed.
    #[arg(long, default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a stopping service (Ctrl-C, SIGTERM, SIGHUP) waits for its
    /// jobs' calls under way to finish and be recorded; a job still running
    /// then resumes at the next start.
    #[arg(long, default_value_t = 20.0)]
    pub drain_timeout: f64,
    /// Serve `GET /metrics` (Prometheus) without the bearer token, for a
    /// scraper on a trusted network [default: it needs the token too].
    #[arg(long)]
    pub metrics_public: bool,
}

/// Runs the service until Ctrl-C, SIGTERM or SIGHUP, then drains it (exit
/// 0 once drained: a service stopped on request did its job). The bearer token comes from the
/// `OCCOPUS_API_TOKEN` environment variable (never from the command line,
/// where other users could read it).
pub async fn serve(args: ServeArgs, config: &Config, state: &StateArgs) -> Result<(), CliError> {
    let maintain_interval = positive_seconds("--maintain-interval", args.maintain_interval)?;
    let limits = ServerLimits {
        header_read_timeout: positive_seconds("--header-timeout", args.header_timeout)?,
        max_header_bytes: args.max_header_bytes,
        max_connections: args.max_connections,
    };
    let token = environment::api_token();
    let no_token = token.is_none();
    let settings = ServiceSettings {
        token,
        auth_data: args.auth_data.path(),
        import_dir: args.import_dir,
        max_body_bytes: args.max_body_bytes,
        maintain_interval,
        claim_interval: positive_seconds("--claim-interval", args.claim_interval)?,
        drain_timeout: positive_seconds("--drain-timeout", args.drain_timeout)?,
        metrics_public: args.metrics_public,
    };
    let occopus = Occopus::open(state.options(config)).await?;
    let mut stop = stop_on_signals("the service's infrastructures are recorded")?;
    let address = SocketAddr::new(args.host, args.port);
    occopus_service::serve(
        Service::new(occopus, settings),
        address,
        limits,
        positive_seconds("--request-timeout", args.request_timeout)?,
        |bound| {
            errln!("occopus REST service listening on http://{bound}");
            if no_token {
                errln!(
                    "warning: no OCCOPUS_API_TOKEN is set: anyone who can reach {bound} (every \
                     user and process of this machine) may change its infrastructures"
                );
            }
        },
        async move { stop.stopped().await },
    )
    .await?;
    Ok(())
}
