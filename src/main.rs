//! `promptgate`: serve, check and evaluate policies (see [`promptgate::cli`]).

use std::process::ExitCode;

fn main() -> ExitCode {
    promptgate::cli::run()
}
