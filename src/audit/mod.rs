//! The audit trail: every decision that is not a plain allow (a reject, a
//! mask, a tool call blocked, an `Audit`-mode hit) and, when asked, every
//! allow, written as one JSON line of a hash chain ([`chain`]) — time,
//! request and trace ids, who asked, backend, route, model, rule, action,
//! locations and counts; never the matched text.
//!
//! Writing never blocks a decision: entries go through a bounded queue to
//! one writer thread ([`writer`]), which appends, flushes, rotates by size
//! and publishes the chain head (a log line and a metric) every
//! `headEvery`, so a truncated tail shows against the last published head.
//! A full queue drops the entry (a metric and a log line) or, with
//! `onOverflow: FailClosed`, refuses the request. With `otlp: true` every
//! line and head also goes to the OTLP collector as a log record
//! ([`otlp`]). `promptgate audit verify`
//! ([`verify`]) checks a chain across rotated files.

pub mod chain;
pub mod entry;
pub mod otlp;
pub mod verify;
pub mod writer;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use writer::AuditLog;

/// What to do when the writer falls behind and the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the entry, count it, log it.
    Drop,
    /// Refuse the request (503): nothing passes unaudited.
    FailClosed,
}

/// The compiled `audit` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    pub path: PathBuf,
    /// Record plain allows too.
    pub allows: bool,
    /// Rotate when the file reaches this size.
    pub max_bytes: u64,
    /// Rotated files kept (`audit.jsonl.1` … `.N`).
    pub max_files: u32,
    /// Entries waiting for the writer, at most.
    pub queue: usize,
    pub overflow: Overflow,
    /// How often the chain head is published.
    pub head_every: Duration,
    /// Lines and heads also go out as OTLP log records ([`otlp`]).
    pub otlp: bool,
}

static LOG: OnceLock<AuditLog> = OnceLock::new();

/// Installs the process's audit log (by `serve`, once).
pub fn install(log: AuditLog) -> Result<(), String> {
    LOG.set(log)
        .map_err(|_| "the audit log is already installed".to_owned())
}

/// The process's audit log, if one is configured.
pub fn log() -> Option<&'static AuditLog> {
    LOG.get()
}
