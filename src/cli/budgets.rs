//! `promptgate budgets show`: a bucket's usage in every limit, read from
//! the policy's store (Redis; the in-process store lives only inside each
//! `serve` process).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::load;
use crate::budget::LimitKind;
use crate::decision::{counter_key, usd};

pub(super) struct ShowArgs {
    pub config: PathBuf,
    pub secrets_dir: Option<PathBuf>,
    /// The bucket: what the limits' `key:` gives (a user, a group, ...).
    pub key: String,
    pub backend: Option<String>,
}

pub(super) fn show(args: ShowArgs) -> ExitCode {
    let policy = match load(Some(&args.config), args.secrets_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("promptgate budgets show: {e}");
            return ExitCode::from(1);
        }
    };
    let backends: Vec<_> = policy
        .backends
        .iter()
        .filter(|b| args.backend.as_deref().is_none_or(|n| n == b.name))
        .filter_map(|b| b.budgets.as_ref().map(|g| (b, g)))
        .collect();
    if backends.is_empty() {
        eprintln!(
            "promptgate budgets show: no backend{} of {} has budgets",
            args.backend
                .as_deref()
                .map(|n| format!(" named `{n}`"))
                .unwrap_or_default(),
            args.config.display()
        );
        return ExitCode::from(1);
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("promptgate budgets show: {e}");
            return ExitCode::from(1);
        }
    };
    let mut failed = false;
    println!(
        "{:<16} {:<28} {:>16} {:>16} {:>8} {:>12}",
        "backend", "limit", "used", "of", "window", "resets in"
    );
    for (backend, budgets) in backends {
        if budgets.store.kind() == "memory" {
            eprintln!(
                "backend `{}`: budgets are held in each promptgate process (no `store.redis`): nothing to read from here",
                backend.name
            );
            failed = true;
            continue;
        }
        let keys: Vec<String> = budgets
            .limits
            .iter()
            .map(|l| counter_key(&l.name, &args.key))
            .collect();
        let read = rt.block_on(budgets.store.read(&keys, Duration::from_secs(3)));
        let rows = match read {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("backend `{}`: {e}", backend.name);
                failed = true;
                continue;
            }
        };
        for (limit, (used, left)) in budgets.limits.iter().zip(rows) {
            let amount = |n: u64| match limit.kind {
                LimitKind::NanoUsd(_) => format!("{} USD", usd(n)),
                LimitKind::Tokens(_) => n.to_string(),
                LimitKind::Requests(_) => format!("{n} req"),
            };
            let resets = match left {
                Some(d) => {
                    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
                }
                None => "-".to_owned(),
            };
            println!(
                "{:<16} {:<28} {:>16} {:>16} {:>8} {:>12}",
                backend.name,
                limit.name,
                amount(used),
                amount(limit.kind.cap()),
                humantime::format_duration(limit.window).to_string(),
                resets
            );
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
