//! Shell completions and man pages, generated from the command line's own
//! clap definitions (clap_complete, clap_mangen), so they never drift from
//! what the command accepts.

use crate::cli::Cli;
use crate::error::CliError;
use crate::output::out;
use clap::CommandFactory;
use occopus::types::ErrorCode;
use std::path::Path;

/// Prints the completion script of `shell` on standard output.
pub fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "occopus", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    Ok(())
}

/// Writes `occopus.1` and a page per subcommand (`occopus-build.1`, ...)
/// into `dir`, or prints `occopus.1` when no directory is given.
pub fn man_pages(dir: Option<&Path>) -> Result<(), CliError> {
    let failed = |what: String, e: std::io::Error| {
        CliError::ended(ErrorCode::BadConfiguration, format!("cannot {what}: {e}"))
    };
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| failed(format!("create {}", dir.display()), e))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .map_err(|e| failed(format!("write the man pages into {}", dir.display()), e))
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| failed("render the man page".into(), e))?;
            out!("{}", String::from_utf8_lossy(&page));
            Ok(())
        }
    }
}
