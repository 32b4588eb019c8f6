//! Where log lines go: standard error, in batches. A line is appended to a
//! shared buffer; a thread of its own writes the buffer out every
//! [`FLUSH_EVERY`], and a line that finds it over [`FLUSH_AT`] writes it
//! out at once. One `write` per request's decision line was ~2.5 % of the
//! server's CPU under 16 clients through Envoy (`perf`, the Envoy bench);
//! a queue handing each line to a writer thread cost more than the write
//! (a wake-up per line), so nothing is woken per line here: the thread
//! wakes on its clock whatever the load.
//!
//! A line reaches stderr at most [`FLUSH_EVERY`] after it was logged. What
//! is buffered is written when [`LogWriter::flush_now`] runs (the server's
//! shutdown) and before a panic's message.

use std::io::Write;
use std::sync::{Arc, Mutex, Once};
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
        static START: Once = Once::new();
        static BUF: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
        let buf = BUF
            .get_or_init(|| Arc::new(Mutex::new(Vec::with_capacity(FLUSH_AT))))
            .clone();
        let w = LogWriter {
            buf,
            sink: Arc::new(|b: &[u8]| {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(b);
                let _ = err.flush();
            }),
        };
        START.call_once(|| {
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
        });
        w
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

/// One event's bytes (the formatter writes a line in one piece).
pub struct LineWriter<'a>(&'a LogWriter);

impl Write for LineWriter<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.append(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(self)
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
    }
}
