//! The writer thread: appends chained lines to the audit file, flushes
//! after each burst, rotates by size (`audit.jsonl` → `.1` → … → `.N`,
//! the chain going on across files), publishes the head periodically. A
//! restarted process continues the chain from the file's last line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;

use super::chain::{check_line, next_line, Head};
use super::{AuditSettings, Overflow};

/// Most lines written between two flushes.
const BURST: usize = 256;

/// The process's audit log: a bounded queue in front of the writer thread.
pub struct AuditLog {
    tx: SyncSender<Value>,
    settings: AuditSettings,
    dropped: AtomicU64,
    head: Arc<Mutex<Head>>,
    /// When the last overflow was logged (one log line a second at most).
    last_warned: Mutex<Option<Instant>>,
}

/// The queue was full: the entry was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

impl AuditLog {
    /// Opens (or creates) the file, continues its chain, starts the writer.
    pub fn open(settings: AuditSettings) -> Result<AuditLog, String> {
        let head = last_head(&settings.path)?;
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("audit: cannot create {}: {e}", dir.display()))?;
        }
        let file = append(&settings.path)?;
        let otlp = if settings.otlp {
            Some(super::otlp::OtlpSink::from_env()?)
        } else {
            None
        };
        let (tx, rx) = sync_channel(settings.queue.max(1));
        let head = Arc::new(Mutex::new(head));
        let writer = Writer {
            otlp,
            settings: settings.clone(),
            size: file.metadata().map(|m| m.len()).unwrap_or(0),
            file,
            head: head.clone(),
            published: None,
        };
        std::thread::Builder::new()
            .name("promptgate-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("audit: cannot start the writer: {e}"))?;
        Ok(AuditLog {
            tx,
            settings,
            dropped: AtomicU64::new(0),
            head,
            last_warned: Mutex::new(None),
        })
    }

    /// Whether plain allows are recorded.
    pub fn allows(&self) -> bool {
        self.settings.allows
    }

    /// Queues an entry. `Err` only when the queue is full and the setting
    /// is `FailClosed` (the caller refuses the request); with `Drop` the
    /// entry is counted and logged as dropped.
    pub fn submit(&self, entry: Value) -> Result<(), Refused> {
        match self.tx.try_send(entry) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                crate::telemetry::metrics().audit_dropped.inc();
                let mut last = self.last_warned.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| t.elapsed().as_secs() >= 1) {
                    *last = Some(Instant::now());
                    tracing::error!(
                        dropped_total = n,
                        fail_closed = self.settings.overflow == Overflow::FailClosed,
                        "audit queue full: the writer falls behind"
                    );
                }
                match self.settings.overflow {
                    Overflow::Drop => Ok(()),
                    Overflow::FailClosed => Err(Refused),
                }
            }
        }
    }

    /// The chain's head as last written.
    pub fn head(&self) -> Head {
        self.head.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Entries dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

struct Writer {
    settings: AuditSettings,
    otlp: Option<super::otlp::OtlpSink>,
    file: File,
    size: u64,
    head: Arc<Mutex<Head>>,
    published: Option<u64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Value>) {
        loop {
            match rx.recv_timeout(self.settings.head_every) {
                Ok(entry) => {
                    self.write(entry);
                    for entry in rx.try_iter().take(BURST) {
                        self.write(entry);
                    }
                    if let Err(e) = self.file.flush() {
                        tracing::error!(error = %e, "audit: flush failed");
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.publish(),
                Err(RecvTimeoutError::Disconnected) => {
                    self.publish();
                    if let Some(otlp) = &self.otlp {
                        otlp.flush();
                    }
                    return;
                }
            }
        }
    }

    fn write(&mut self, entry: Value) {
        let head = self.head.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (mut line, next) = next_line(&head, entry);
        line.push('\n');
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            // The chain stays where it was: the next line follows the last
            // one written.
            tracing::error!(error = %e, path = %self.settings.path.display(), "audit: write failed; entry lost");
            crate::telemetry::metrics().audit_dropped.inc();
            return;
        }
        self.size += line.len() as u64;
        if let Some(otlp) = &self.otlp {
            otlp.line(line.trim_end_matches('\n'), &next);
        }
        *self.head.lock().unwrap_or_else(|e| e.into_inner()) = next;
        crate::telemetry::metrics().audit_lines.inc();
        if self.size >= self.settings.max_bytes {
            self.rotate();
        }
    }

    /// `path` → `path.1` → … → `path.N` (the oldest dropped); a new file
    /// goes on with the chain.
    fn rotate(&mut self) {
        let _ = self.file.flush();
        let path = &self.settings.path;
        let n = self.settings.max_files.max(1);
        let _ = std::fs::remove_file(rotated(path, n));
        for i in (1..n).rev() {
            let _ = std::fs::rename(rotated(path, i), rotated(path, i + 1));
        }
        if let Err(e) = std::fs::rename(path, rotated(path, 1)) {
            tracing::error!(error = %e, "audit: rotation failed; writing on");
            return;
        }
        match append(path) {
            Ok(f) => {
                self.file = f;
                self.size = 0;
                self.publish();
            }
            Err(e) => tracing::error!(error = %e, "audit: cannot open the new file"),
        }
    }

    /// Logs the head, so a truncated tail shows against it.
    fn publish(&mut self) {
        let head = self.head.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if self.published == Some(head.seq) {
            return;
        }
        self.published = Some(head.seq);
        tracing::info!(
            audit_lines = head.seq,
            audit_head = %head.hash,
            path = %self.settings.path.display(),
            "audit chain head"
        );
        if let Some(otlp) = &self.otlp {
            otlp.head(&head);
        }
    }
}

/// `path.i`.
pub fn rotated(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("audit: cannot open {}: {e}", path.display()))
}

/// The head of the chain in `path` (its last line; the last rotated file's
/// when `path` is empty or missing; genesis when there is none). A last
/// line that does not read as a chain line is an error: the operator must
/// look before the chain goes on.
fn last_head(path: &Path) -> Result<Head, String> {
    for candidate in [path.to_owned(), rotated(path, 1)] {
        let Ok(mut f) = File::open(&candidate) else {
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len == 0 {
            continue;
        }
        // The last line is within the last 1 MiB (entries are small).
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(1 << 20)));
        let last = BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .last();
        if let Some(line) = last {
            return check_line(&line, None).map_err(|e| {
                format!(
                    "audit: the last line of {} does not continue a chain ({e}); verify it with `promptgate audit verify` and move it aside",
                    candidate.display()
                )
            });
        }
    }
    Ok(Head::genesis())
}
