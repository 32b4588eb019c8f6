//! A real `redis-server` on a loopback port, for the budget tests: no
//! persistence (`--save '' --appendonly no`), killed on drop. Stop, pause
//! (SIGSTOP: a Redis that does not answer) and restart it on its port.
//!
//! The binary is `REDIS_SERVER_BIN` or `redis-server` on the PATH
//! (`scripts/test.sh` installs Debian's `redis-server` when it is missing).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{find_on_path, free_port};

pub fn redis_server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return PathBuf::from(p);
    }
    find_on_path("redis-server").unwrap_or_else(|| {
        panic!(
            "redis-server not found: the budget tests need a real Redis. Run ./scripts/test.sh \
             (it installs Debian's redis-server), or `apt-get install -y redis-server`, or set REDIS_SERVER_BIN"
        )
    })
}

/// A running `redis-server`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
            dir: tempfile::Builder::new()
                .prefix("promptgate-redis-")
                .tempdir()
                .unwrap(),
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .unwrap();
        let child = Command::new(redis_server_bin())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", self.dir.path().to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.command(&["PING"]).is_ok_and(|r| r == "+PONG") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "redis-server did not answer on 127.0.0.1:{} within 10s",
            self.port
        );
    }

    /// The server's process id, while it runs.
    #[allow(dead_code)] // benches only
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command over RESP; the reply's first line (`+OK`, `:12`,
    /// `$-1`) or, for a bulk string, its value.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes())?;
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line)?;
        let line = line.trim_end().to_owned();
        if let Some(n) = line.strip_prefix('$') {
            let n: i64 = n.parse().unwrap_or(-1);
            if n < 0 {
                return Ok(line);
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf)?;
            return Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned());
        }
        Ok(line)
    }

    /// The integer value of `key` (0 when absent).
    pub fn get_u64(&self, key: &str) -> u64 {
        let v = self.command(&["GET", key]).expect("redis GET");
        if v == "$-1" {
            0
        } else {
            v.parse().unwrap_or_else(|_| panic!("GET {key}: {v}"))
        }
    }

    /// Milliseconds `key` lives on (`PTTL`).
    pub fn pttl(&self, key: &str) -> i64 {
        let v = self.command(&["PTTL", key]).expect("redis PTTL");
        v.trim_start_matches(':').parse().unwrap()
    }

    /// Kills the server (its data is gone: no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// SIGSTOP / SIGCONT: a server that accepts but does not answer.
    pub fn pause(&self, paused: bool) {
        let pid = self.child.as_ref().expect("running").id();
        let sig = if paused { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A paused server must be woken to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.stop();
    }
}
