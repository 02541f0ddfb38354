//! `occopus state`: the state database as a whole.

use crate::error::CliError;
use crate::output::{errln, outln};
use clap::Subcommand;
use occopus::info::open_state;
use occopus::store::mask_password;
use std::path::PathBuf;

/// What `occopus state` does.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy every infrastructure of one state database into another, empty
    /// one (a file and a PostgreSQL database, either way), then check the
    /// copy table by table. Refused while an infrastructure is being changed.
    Copy {
        /// The database to copy: a file (`sqlite:FILE` or `FILE`) or
        /// postgres://USER:PASSWORD@HOST:PORT/DB.
        #[arg(long, value_name = "FILE|URL")]
        from: String,
        /// The empty database to copy into, written like `--from`.
        #[arg(long, value_name = "FILE|URL")]
        to: String,
        /// Print what was copied as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs an `occopus state` command.
pub fn run(command: StateCommand) -> Result<(), CliError> {
    match command {
        StateCommand::Copy { from, to, json } => {
            let source = open_state(Some(location(&from)), true)?;
            let target = open_state(Some(location(&to)), false)?;
            let report = source.copy_to(&target).map_err(occopus::ApiError::from)?;
            if json {
                outln!("{:#}", serde_json::to_value(&report).unwrap_or_default());
            } else {
                let tables: Vec<String> = report
                    .tables
                    .iter()
                    .map(|(table, rows)| format!("{table} {rows}"))
                    .collect();
                errln!(
                    "copied {} into {} and checked it: {}",
                    mask_password(&from),
                    mask_password(&to),
                    tables.join(", ")
                );
            }
            Ok(())
        }
    }
}

/// A database as `--from`/`--to` name it (`sqlite:` before a file is
/// optional).
fn location(given: &str) -> PathBuf {
    PathBuf::from(given.strip_prefix("sqlite:").unwrap_or(given))
}
