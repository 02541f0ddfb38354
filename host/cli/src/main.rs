//! The `occopus` command: a thin front end over the library.

fn main() -> std::process::ExitCode {
    occopus_cli::run()
}
