//! `promptgate`: serve, check and evaluate policies (see [`promptgate::cli`]).

use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    promptgate::cli::run()
}
