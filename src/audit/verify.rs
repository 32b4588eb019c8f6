//! `promptgate audit verify FILE… [--head HASH]`: checks a chain across
//! files given oldest first (`audit.jsonl.3 audit.jsonl.2 audit.jsonl.1
//! audit.jsonl`) and names the first line that fails.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::chain::{check_line, Head};

/// A chain that held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub lines: u64,
    pub head: Head,
}

/// The first failure: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub file: PathBuf,
    /// 1-based line of that file (0: the file as a whole).
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.why)
    }
}

/// Verifies `files` as one chain. The first line of the first file may
/// continue an older chain (rotated files deleted); every later line must
/// follow the one before it. With `head`, the chain must reach that
/// published head (a truncated tail does not).
pub fn verify(files: &[PathBuf], head: Option<&str>) -> Result<Verified, Failure> {
    let mut last: Option<Head> = None;
    let mut lines = 0u64;
    let mut reached_head = head.is_none();
    for file in files {
        let fail = |line: usize, why: String| Failure {
            file: file.clone(),
            line,
            why,
        };
        let f = std::fs::File::open(file).map_err(|e| fail(0, format!("cannot open: {e}")))?;
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|e| fail(i + 1, format!("cannot read: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let next = check_line(&line, last.as_ref()).map_err(|why| fail(i + 1, why))?;
            if head == Some(next.hash.as_str()) {
                reached_head = true;
            }
            last = Some(next);
            lines += 1;
        }
    }
    let Some(last) = last else {
        return Err(Failure {
            file: files.first().cloned().unwrap_or_default(),
            line: 0,
            why: "no audit lines".into(),
        });
    };
    if !reached_head {
        return Err(Failure {
            file: files.last().cloned().unwrap_or_default(),
            line: 0,
            why: format!(
                "the chain ends at line {} ({}) without reaching the published head {}: its tail was cut",
                last.seq,
                last.hash,
                head.unwrap_or_default()
            ),
        });
    }
    Ok(Verified { lines, head: last })
}

/// `path` and its rotated files, oldest first, as `serve` writes them.
pub fn rotation_of(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..=1000)
        .map(|i| super::writer::rotated(path, i))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    out.push(path.to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, AuditSettings, Overflow};
    use serde_json::json;
    use std::time::Duration;

    fn settings(dir: &Path, max_bytes: u64) -> AuditSettings {
        AuditSettings {
            path: dir.join("audit.jsonl"),
            allows: false,
            max_bytes,
            max_files: 50,
            queue: 1000,
            overflow: Overflow::Drop,
            head_every: Duration::from_millis(50),
            otlp: false,
        }
    }

    fn wait_for(log: &AuditLog, seq: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while log.head().seq < seq {
            assert!(
                std::time::Instant::now() < deadline,
                "writer stuck at {:?}",
                log.head()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn written_chains_verify_across_rotation_and_restart_and_fail_where_edited() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path(), 600);
        let log = AuditLog::open(s.clone()).unwrap();
        for i in 0..20 {
            log.submit(json!({"rule": format!("r{i}"), "decision": "mask"}))
                .unwrap();
        }
        wait_for(&log, 20);
        let head = log.head();
        drop(log);
        // A restarted writer goes on with the chain.
        let log = AuditLog::open(s.clone()).unwrap();
        for i in 20..25 {
            log.submit(json!({"rule": format!("r{i}")})).unwrap();
        }
        wait_for(&log, 25);
        let files = rotation_of(&s.path);
        assert!(files.len() > 3, "rotated: {files:?}");
        let ok = verify(&files, Some(&head.hash)).unwrap();
        assert_eq!(ok.lines, 25);
        assert_eq!(ok.head, log.head());
        // An edited line fails at that line.
        let target = files[1].clone();
        let text = std::fs::read_to_string(&target).unwrap();
        let first = text.lines().next().unwrap();
        let edited = text.replacen(first, &first.replacen("\"r", "\"R", 1), 1);
        std::fs::write(&target, edited).unwrap();
        let e = verify(&files, None).unwrap_err();
        assert_eq!((e.file.clone(), e.line), (target.clone(), 1), "{e}");
        std::fs::write(&target, text.clone()).unwrap();
        // A deleted line fails at the line after it.
        let without: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
        std::fs::write(&target, without).unwrap();
        let e = verify(&files, None).unwrap_err();
        assert_eq!((e.file.clone(), e.line), (target.clone(), 1), "{e}");
        assert!(e.why.contains("missing") || e.why.contains("prev"), "{e}");
        std::fs::write(&target, text).unwrap();
        // A cut tail fails against the head published after it.
        let last = files.last().unwrap();
        std::fs::write(last, "").unwrap();
        let e = verify(&files, Some(&log.head().hash)).unwrap_err();
        assert!(e.why.contains("tail was cut"), "{e}");
    }

    #[test]
    fn a_full_queue_drops_or_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), 1 << 30);
        s.queue = 1;
        s.overflow = Overflow::FailClosed;
        let log = AuditLog::open(s).unwrap();
        let results: Vec<bool> = (0..5000)
            .map(|i| log.submit(json!({"n": i})).is_ok())
            .collect();
        assert!(results.contains(&false), "a queue of one must fill");
        assert!(log.dropped() > 0);
        // A corrupt last line stops a restart from going on blindly.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("audit.jsonl"), "{\"not\": \"a chain\"}\n").unwrap();
        let err = AuditLog::open(settings(dir.path(), 1 << 30)).err().unwrap();
        assert!(err.contains("does not continue a chain"), "{err}");
    }
}
