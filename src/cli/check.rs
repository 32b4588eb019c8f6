//! `promptgate check`: validate a policy file (and read the TLS files its
//! `tls` names, as `serve` would).

use std::path::PathBuf;
use std::process::ExitCode;

use super::load;

pub(super) fn check(config: PathBuf, secrets_dir: Option<PathBuf>) -> ExitCode {
    match load(Some(&config), secrets_dir) {
        Ok(policy) => {
            if let Some(files) = &policy.tls {
                if let Err(e) = crate::tls::load(files) {
                    eprintln!("promptgate check: {}: {e}", config.display());
                    return ExitCode::from(1);
                }
            }
            for w in &policy.warnings {
                eprintln!("warning: {w}");
            }
            let names: Vec<&str> = policy.backends.iter().map(|b| b.name.as_str()).collect();
            println!(
                "{}: ok ({} backend(s): {})",
                config.display(),
                names.len(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("promptgate check: {e}");
            ExitCode::from(1)
        }
    }
}
