//! `promptgate audit verify`: checks a decision log's hash chain.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::audit::verify::{rotation_of, verify as verify_chain};

pub(super) fn verify(files: Vec<PathBuf>, head: Option<String>) -> ExitCode {
    let files = match files.as_slice() {
        [one] => rotation_of(one),
        _ => files,
    };
    match verify_chain(&files, head.as_deref()) {
        Ok(v) => {
            println!(
                "ok: {} lines in {} file(s); head {} {}",
                v.lines,
                files.len(),
                v.head.seq,
                v.head.hash
            );
            ExitCode::SUCCESS
        }
        Err(f) => {
            println!("FAILED: {f}");
            ExitCode::from(1)
        }
    }
}
