//! Where log lines go: standard error, in batches. A line is appended to a
//! shared buffer; a thread of its own writes the buffer out every
//! [`FLUSH_EVERY`], and a line that finds it over [`FLUSH_AT`] writes it
//! out at once. One `write` per request's decision line was ~2.5 % of the
//! server's CPU under 16 clients through Envoy (`perf`, the Envoy bench);
//! a queue handing each line to a writer thread cost more than the write
//! (a wake-up per line), so nothing is woken per line here: the thread
//! wakes on its clock whatever the load.
//!
//! Only the request path's lines at info and below wait (the decision, the
//! response's and tool calls' decisions: [`batched`]); any other line —
//! startup, reloads, TLS, every warning and error — is written at once,
//! after what waits before it, so the order holds. A waiting line reaches
//! stderr at most [`FLUSH_EVERY`] after it was logged; what waits is
//! written when [`LogWriter::flush_now`] runs (the server's shutdown) and
//! before a panic's message.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The longest a line waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// A buffer this full is written out by the line that filled it.
pub const FLUSH_AT: usize = 64 * 1024;

/// Where a batch goes.
type Sink = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The buffered stderr writer (a `MakeWriter` for the log layer).
#[derive(Clone)]
pub struct LogWriter {
    buf: Arc<Mutex<Vec<u8>>>,
    sink: Sink,
}

impl LogWriter {
    /// The process's writer: its flushing thread starts with the first
    /// call, and a panic writes the buffer out before its own message.
    pub fn stderr() -> LogWriter {
        static PROCESS: OnceLock<LogWriter> = OnceLock::new();
        PROCESS
            .get_or_init(|| {
                let w = LogWriter {
                    buf: Arc::new(Mutex::new(Vec::with_capacity(FLUSH_AT))),
                    sink: Arc::new(|b: &[u8]| {
                        let mut err = std::io::stderr().lock();
                        let _ = err.write_all(b);
                        let _ = err.flush();
                    }),
                };
                let flusher = w.clone();
                let _ = std::thread::Builder::new()
                    .name("promptgate-log".into())
                    .spawn(move || loop {
                        std::thread::sleep(FLUSH_EVERY);
                        flusher.flush_now();
                    });
                let on_panic = w.clone();
                let previous = std::panic::take_hook();
                std::panic::set_hook(Box::new(move |info| {
                    on_panic.flush_now();
                    previous(info);
                }));
                w
            })
            .clone()
    }

    /// Writes out what is buffered.
    pub fn flush_now(&self) {
        let pending = match self.buf.lock() {
            Ok(mut b) if !b.is_empty() => std::mem::replace(&mut *b, Vec::with_capacity(FLUSH_AT)),
            _ => return,
        };
        (self.sink)(&pending);
    }

    fn append(&self, line: &[u8]) {
        let full = match self.buf.lock() {
            Ok(mut b) => {
                b.extend_from_slice(line);
                b.len() >= FLUSH_AT
            }
            // A panic while the lock was held: write the line directly.
            Err(_) => {
                (self.sink)(line);
                false
            }
        };
        if full {
            self.flush_now();
        }
    }
}

/// Whether a line of this callsite waits for the next batch: the request
/// path's lines (`promptgate::telemetry::stream`, `promptgate::extproc`)
/// at info and below.
pub fn batched(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() >= tracing::Level::INFO
        && ["promptgate::telemetry::stream", "promptgate::extproc"]
            .iter()
            .any(|t| meta.target().starts_with(t))
}

/// One event's bytes (the formatter writes a line in one piece).
pub struct LineWriter<'a> {
    w: &'a LogWriter,
    /// Written out with what waits before it, not left to wait.
    now: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.w.append(b);
        if self.now {
            self.w.flush_now();
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { w: self, now: true }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LineWriter {
            w: self,
            now: !batched(meta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wait_in_the_buffer_until_it_is_full_or_flushed() {
        let out = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let seen = out.clone();
        let w = LogWriter {
            buf: Arc::new(Mutex::new(Vec::new())),
            sink: Arc::new(move |b: &[u8]| seen.lock().unwrap().push(b.to_vec())),
        };
        w.append(b"{\"a\":1}\n");
        w.append(b"{\"b\":2}\n");
        assert!(out.lock().unwrap().is_empty(), "buffered");
        w.flush_now();
        assert_eq!(
            *out.lock().unwrap(),
            [b"{\"a\":1}\n{\"b\":2}\n".to_vec()],
            "one write"
        );
        w.flush_now();
        assert_eq!(out.lock().unwrap().len(), 1, "nothing to write, no write");
        // A line that fills the buffer writes it out at once.
        w.append(&vec![b' '; FLUSH_AT]);
        assert_eq!(out.lock().unwrap().len(), 2);
        assert!(w.buf.lock().unwrap().is_empty());
        // A line that may not wait goes out with what waits before it.
        w.append(b"{\"c\":3}\n");
        LineWriter { w: &w, now: true }
            .write_all(b"{\"d\":4}\n")
            .unwrap();
        assert_eq!(out.lock().unwrap()[2], b"{\"c\":3}\n{\"d\":4}\n".to_vec());
    }

    #[test]
    fn only_the_request_paths_lines_at_info_and_below_wait() {
        use tracing::callsite::{Callsite, DefaultCallsite};
        macro_rules! meta {
            ($lvl:expr, $target:expr) => {{
                static CS: DefaultCallsite = DefaultCallsite::new(&META);
                static META: tracing::Metadata<'static> = tracing::metadata! {
                    name: "probe",
                    target: $target,
                    level: $lvl,
                    fields: &[],
                    callsite: &CS,
                    kind: tracing::metadata::Kind::EVENT,
                };
                CS.metadata()
            }};
        }
        use tracing::Level;
        assert!(batched(meta!(Level::INFO, "promptgate::telemetry::stream")));
        assert!(batched(meta!(
            Level::INFO,
            "promptgate::extproc::state::record"
        )));
        assert!(batched(meta!(Level::DEBUG, "promptgate::extproc")));
        assert!(!batched(meta!(
            Level::WARN,
            "promptgate::telemetry::stream"
        )));
        assert!(!batched(meta!(Level::ERROR, "promptgate::extproc")));
        assert!(!batched(meta!(Level::INFO, "promptgate::server")));
        assert!(!batched(meta!(Level::INFO, "promptgate::cli::serve")));
    }
}
