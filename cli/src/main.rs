//! The `sluice` binary: everything lives in the `sluice_cli` library.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(sluice_cli::run(std::env::args_os()))
}
