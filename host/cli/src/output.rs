//! Printing that survives a reader going away.
//!
//! `println!` panics when stdout is a closed pipe (`occopus info | head -1`
//! once `head` has its line). Like ripgrep, a closed stdout here ends the
//! command quietly with status 0: the reader has what it wanted. stdout is
//! written only between steps (a report, a pass's summary), never while a
//! cloud call is in flight, and a lease left behind by the exit is seen as
//! its holder's death and taken over by the next command.
//!
//! stderr carries progress and diagnostics: a closed stderr must not stop a
//! build half-way, so what cannot be written there is dropped.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether anything was written to stdout.
static WROTE_STDOUT: AtomicBool = AtomicBool::new(false);

/// Whether the command wrote anything to stdout (with `--json`, its
/// document: see `json.rs`).
pub(crate) fn wrote_stdout() -> bool {
    WROTE_STDOUT.load(Ordering::Relaxed)
}

/// Writes to stdout (see the module's header for a closed pipe).
pub(crate) fn stdout(args: std::fmt::Arguments) {
    WROTE_STDOUT.store(true, Ordering::Relaxed);
    let mut out = std::io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            stderr(format_args!("error: cannot write the output: {e}\n"));
            std::process::exit(1);
        }
    }
}

/// Writes to stderr, dropping what cannot be written.
pub(crate) fn stderr(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `print!` to stdout, ending quietly on a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}

/// `println!` to stdout, ending quietly on a closed pipe.
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};
