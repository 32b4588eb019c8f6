//! The launcher: `promptgate serve` (one or more instances) behind a real
//! Envoy with a [`FakeUpstream`], all on loopback.
//!
//! ```ignore
//! let gw = Gateway::launch(&policy).start();                 // the usual
//! let gw = Gateway::launch(yaml).secret("s", "v").instances(3)
//!     .args(&["--drain-grace", "1s"]).quiet_envoy().start();
//! ```
//!
//! The instances share one policy file laid out like a mounted Kubernetes
//! ConfigMap (`config/policy.yaml -> ..data/policy.yaml`, `..data ->
//! ..<version>`), so [`Gateway::write_policy`] updates it the way the
//! kubelet does. Secrets are `<dir>/secrets/<name>/Authorization`. Every
//! wait is bounded; every child is killed on drop, and on a failing test
//! the logs are printed (`PROMPTGATE_KEEP_TMP=1` keeps the folder).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_yaml::Value as Yaml;

use super::envoy::{self, EnvoyLog, EnvoyProcess};
use super::policy::PolicyText;
use super::{free_port, promptgate_bin, tail, FakeUpstream};

type EnvoyEdit = Box<dyn FnMut(&mut Yaml)>;

/// What to start; [`Launch::start`] starts it.
#[must_use]
pub struct Launch {
    policy: PolicyText,
    instances: usize,
    args: Vec<String>,
    env: Vec<(String, String)>,
    bin: Option<PathBuf>,
    upstream: Option<FakeUpstream>,
    envoy: bool,
    envoy_log: EnvoyLog,
    envoy_otlp_port: Option<u16>,
    edits: Vec<EnvoyEdit>,
}

impl Launch {
    /// A secret file `<secrets>/<name>/Authorization` holding `value`.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.policy
            .secrets
            .push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn secrets(mut self, secrets: &[(&str, &str)]) -> Self {
        for (name, value) in secrets {
            self = self.secret(name, value);
        }
        self
    }

    /// `n` promptgate processes behind the one Envoy (default 1).
    pub fn instances(mut self, n: usize) -> Self {
        assert!(n >= 1);
        self.instances = n;
        self
    }

    /// Extra `promptgate serve` arguments (e.g. `--drain-grace 2s`).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// An environment variable of the promptgate processes (`OTEL_*`, `PROMPTGATE_LOG`).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Another promptgate binary than this build's (benchmarks compare builds).
    pub fn promptgate_bin(mut self, bin: PathBuf) -> Self {
        self.bin = Some(bin);
        self
    }

    /// This fake provider instead of a fresh [`FakeUpstream::start`].
    pub fn upstream(mut self, upstream: FakeUpstream) -> Self {
        self.upstream = Some(upstream);
        self
    }

    /// Envoy's OpenTelemetry tracer exports to this OTLP/gRPC port (by
    /// default it points at a closed port).
    pub fn envoy_tracing_to(mut self, otlp_port: u16) -> Self {
        self.envoy_otlp_port = Some(otlp_port);
        self
    }

    /// A last edit of the Envoy config rendered from `deploy/envoy/envoy.yaml`.
    pub fn edit_envoy(mut self, edit: impl FnMut(&mut Yaml) + 'static) -> Self {
        self.edits.push(Box::new(edit));
        self
    }

    /// Envoy logs at `warn` only (tests under load).
    pub fn quiet_envoy(mut self) -> Self {
        self.envoy_log = EnvoyLog::Quiet;
        self
    }

    /// promptgate alone, no Envoy (clients speak ext_proc themselves).
    pub fn without_envoy(mut self) -> Self {
        self.envoy = false;
        self
    }

    pub fn start(self) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("promptgate-e2e-")
            .tempdir()
            .expect("tempdir");
        let config_path = dir.path().join("config/policy.yaml");
        let secrets_dir = dir.path().join("secrets");
        std::fs::create_dir_all(config_path.parent().unwrap()).unwrap();
        std::fs::create_dir_all(&secrets_dir).unwrap();
        for (name, value) in &self.policy.secrets {
            let d = secrets_dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Authorization"), value).unwrap();
        }
        let mut gw = Gateway {
            upstream: self.upstream.unwrap_or_else(FakeUpstream::start),
            instances: Vec::new(),
            envoy: None,
            config_path,
            secrets_dir,
            bin: self.bin.unwrap_or_else(promptgate_bin),
            args: self.args,
            env: self.env,
            policy_version: 0,
            dir,
        };
        gw.write_policy(&self.policy.yaml);
        std::os::unix::fs::symlink("..data/policy.yaml", &gw.config_path).unwrap();
        for i in 0..self.instances {
            gw.instances.push(Instance {
                port: 0,
                admin_port: 0,
                child: None,
                log: gw.dir.path().join(format!("promptgate-{i}.log")),
                starts: 0,
            });
            gw.run_instance(i, true);
        }
        if self.envoy {
            let ports: Vec<u16> = gw.instances.iter().map(|i| i.port).collect();
            let mut cfg = envoy::test_envoy_config(&ports, gw.upstream.port());
            envoy::point_envoy_tracer(&mut cfg, self.envoy_otlp_port);
            for mut edit in self.edits {
                edit(&mut cfg);
            }
            match EnvoyProcess::start(gw.dir.path(), &cfg, self.envoy_log) {
                Ok(e) => gw.envoy = Some(e),
                Err(why) => panic!(
                    "envoy {why}.\n{}\n===== generated envoy.yaml =====\n{}",
                    gw.logs(),
                    serde_yaml::to_string(&cfg).unwrap()
                ),
            }
        }
        gw
    }
}

/// One `promptgate serve` process (killed on drop).
pub struct Instance {
    /// Its ext_proc gRPC port (kept across restarts: Envoy's endpoint).
    pub port: u16,
    /// Its admin HTTP port (`/metrics`, `/healthz`, `/readyz`).
    pub admin_port: u16,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

impl Instance {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Started promptgate instance(s), Envoy in front, the fake provider behind.
pub struct Gateway {
    upstream: FakeUpstream,
    pub instances: Vec<Instance>,
    envoy: Option<EnvoyProcess>,
    config_path: PathBuf,
    secrets_dir: PathBuf,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    policy_version: u32,
    // last: removed after the children are gone
    dir: tempfile::TempDir,
}

impl Gateway {
    /// What to start: `policy` is a [`Policy`] (its secrets come along) or
    /// literal YAML.
    pub fn launch(policy: impl Into<PolicyText>) -> Launch {
        Launch {
            policy: policy.into(),
            instances: 1,
            args: Vec::new(),
            env: Vec::new(),
            bin: None,
            upstream: None,
            envoy: true,
            envoy_log: EnvoyLog::default(),
            envoy_otlp_port: None,
            edits: Vec::new(),
        }
    }

    /// One promptgate with `policy`, Envoy, a fresh [`FakeUpstream`].
    pub fn start(policy: impl Into<PolicyText>) -> Gateway {
        Self::launch(policy).start()
    }

    /// Starts (first: fresh ports) or restarts (same ports) instance `i`;
    /// returns when it listens.
    fn run_instance(&mut self, i: usize, fresh_ports: bool) {
        let log_path = self.instances[i].log.clone();
        let deadline = Instant::now() + Duration::from_secs(20);
        for attempt in 1.. {
            if fresh_ports {
                self.instances[i].port = free_port();
                self.instances[i].admin_port = free_port();
            }
            let (port, admin_port) = (self.instances[i].port, self.instances[i].admin_port);
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .unwrap();
            // Ready is this run's own word, not a connect alone: a port
            // picked free may be taken meanwhile by another test's process,
            // whose listener would answer the connect.
            let listening_before = listening_lines(&log_path);
            let mut connected_at: Option<Instant> = None;
            let mut child = Command::new(&self.bin)
                .arg("serve")
                .arg("--config")
                .arg(&self.config_path)
                .arg("--secrets-dir")
                .arg(&self.secrets_dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--admin-listen")
                .arg(format!("127.0.0.1:{admin_port}"))
                .args(&self.args)
                .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn promptgate");
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                    let in_use = out.to_ascii_lowercase().contains("in use");
                    // a fresh port raced away: another; a kept one not free yet: wait
                    if in_use && fresh_ports && attempt < 3 {
                        break;
                    }
                    if in_use && !fresh_ports && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                    panic!("promptgate {i} exited early ({status}); output:\n{out}");
                }
                let connected = TcpStream::connect(("127.0.0.1", port)).is_ok();
                connected_at = connected.then(|| connected_at.unwrap_or_else(Instant::now));
                // Another processor in promptgate's place never says so:
                // alive and accepting for a while is its word.
                let said = listening_lines(&log_path) > listening_before
                    || connected_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2));
                if connected && said {
                    self.instances[i].child = Some(child);
                    self.instances[i].starts += 1;
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "promptgate {i} did not listen on 127.0.0.1:{port} within 20s; output:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Restarts instance `i` (after it exited or was killed) on its ports.
    pub fn start_instance(&mut self, i: usize) {
        self.instances[i].kill();
        self.run_instance(i, false);
    }

    /// Replaces the policy the way the kubelet updates a ConfigMap volume:
    /// a new versioned folder, then an atomic rename of the `..data` symlink.
    pub fn write_policy(&mut self, yaml: &str) {
        self.policy_version += 1;
        let config_dir = self.config_path.parent().unwrap().to_path_buf();
        let version = format!("..v{}", self.policy_version);
        let vdir = config_dir.join(&version);
        std::fs::create_dir_all(&vdir).unwrap();
        std::fs::write(vdir.join("policy.yaml"), yaml).unwrap();
        let tmp = config_dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, config_dir.join("..data")).unwrap();
        if self.policy_version > 1 {
            let old = config_dir.join(format!("..v{}", self.policy_version - 1));
            let _ = std::fs::remove_dir_all(old);
        }
    }

    /// Sends a signal (`TERM`, `HUP`, `KILL`, ...) to instance `i`.
    pub fn signal(&self, i: usize, sig: &str) {
        let pid = self.instances[i].pid().expect("instance is running");
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {pid} failed");
    }

    /// Waits for instance `i` to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, i: usize, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.instances[i]
                .child
                .as_mut()
                .expect("instance is running");
            if let Some(st) = child.try_wait().unwrap() {
                self.instances[i].child = None;
                return st;
            }
            if Instant::now() > deadline {
                panic!(
                    "promptgate {i} did not exit within {timeout:?}:\n{}",
                    self.log(i)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `kill -9`, then reap.
    pub fn kill9(&mut self, i: usize) {
        self.instances[i].kill();
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        match self.instances[i].child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Kills the (first) policy service and waits until its port is closed;
    /// Envoy keeps running.
    pub fn stop_promptgate(&mut self) {
        self.instances[0].kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.instances[0].port)).is_ok()
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Envoy's process id (`None` without Envoy).
    pub fn envoy_pid(&self) -> Option<u32> {
        self.envoy.as_ref().map(EnvoyProcess::pid)
    }

    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    fn envoy(&self) -> &EnvoyProcess {
        self.envoy.as_ref().expect("started without Envoy")
    }

    /// `http://127.0.0.1:<envoy listener port>`
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.envoy().listener_port)
    }

    /// `base_url() + path`
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.envoy().admin_port)
    }

    /// The (first) promptgate's ext_proc port.
    pub fn promptgate_port(&self) -> u16 {
        self.instances[0].port
    }

    pub fn promptgate_addr(&self) -> String {
        format!("127.0.0.1:{}", self.promptgate_port())
    }

    /// `GET <promptgate admin>/path` (e.g. `/metrics`), the body of a 200.
    pub fn promptgate_admin_get(&self, path: &str) -> std::io::Result<String> {
        envoy::admin_get(self.instances[0].admin_port, path)
    }

    /// promptgate's Prometheus exposition.
    pub fn promptgate_metrics(&self) -> String {
        self.promptgate_admin_get("/metrics")
            .unwrap_or_else(|e| panic!("promptgate /metrics: {e}\n{}", self.logs()))
    }

    /// The sum and count of promptgate's `promptgate_phase_duration_seconds`
    /// for `phase` (its seconds in messages of that phase, and how many);
    /// `None` where there is no such series or no promptgate admin port
    /// (another processor in its place, in the benchmarks).
    pub fn phase_durations(&self, phase: &str) -> Option<(f64, u64)> {
        phase_series(&self.promptgate_admin_get("/metrics").ok()?, phase)
    }

    /// How many messages of `phase` promptgate handled (0 before the
    /// first); its metrics must answer.
    pub fn phase_count(&self, phase: &str) -> u64 {
        phase_series(&self.promptgate_metrics(), phase).map_or(0, |(_, n)| n)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The policy file (`config/policy.yaml`, a ConfigMap-style symlink).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn secrets_dir(&self) -> &Path {
        &self.secrets_dir
    }

    /// Output of instance `i` (all its runs).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.instances[i].log).unwrap_or_default()
    }

    /// Output of the (first) promptgate.
    pub fn promptgate_log(&self) -> String {
        self.log(0)
    }

    pub fn envoy_log(&self) -> String {
        let mut s = std::fs::read_to_string(self.dir().join("envoy.log")).unwrap_or_default();
        s += &std::fs::read_to_string(self.dir().join("envoy.stderr")).unwrap_or_default();
        s
    }

    /// Raw access log (Envoy stdout), flushed every 50 ms.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir().join("access.log")).unwrap_or_default()
    }

    /// Access-log lines parsed as JSON (non-JSON lines are skipped).
    pub fn access_log_entries(&self) -> Vec<Value> {
        self.access_log()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Counter/gauge stats from the Envoy admin whose name contains `filter`.
    pub fn envoy_stats(&self, filter: &str) -> BTreeMap<String, u64> {
        self.envoy
            .as_ref()
            .map(|e| e.stats(filter))
            .unwrap_or_default()
    }

    /// ext_proc filter stats (`http.promptgate_ingress.ext_proc.*`, prefix stripped).
    pub fn ext_proc_stats(&self) -> BTreeMap<String, u64> {
        self.envoy_stats(".ext_proc.")
            .into_iter()
            .filter_map(|(k, v)| Some((k.split(".ext_proc.").nth(1)?.to_string(), v)))
            .collect()
    }

    /// Fails if Envoy counted protocol problems with promptgate's answers.
    pub fn assert_ext_proc_clean(&self) {
        let stats = self.ext_proc_stats();
        for key in [
            "spurious_msgs_received",
            "rejected_header_mutations",
            "message_timeouts",
            "streams_failed",
            "failure_mode_allowed",
            "clear_route_cache_ignored",
        ] {
            let v = stats.get(key).copied().unwrap_or(0);
            assert_eq!(
                v, 0,
                "ext_proc stat {key} = {v}; all ext_proc stats: {stats:?}"
            );
        }
    }

    /// Ports of the `promptgate` cluster's hosts Envoy reports healthy.
    pub fn healthy_ports(&self) -> Vec<u16> {
        self.envoy
            .as_ref()
            .map(|e| e.healthy_ports("promptgate"))
            .unwrap_or_default()
    }

    /// Waits until Envoy sees `n` healthy instances; returns how long it took.
    pub fn wait_healthy(&self, n: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.healthy_ports().len() >= n {
                return start.elapsed();
            }
            if start.elapsed() > timeout {
                panic!(
                    "Envoy did not see {n} healthy instances within {timeout:?}: {:?}\n{}",
                    self.healthy_ports(),
                    self.envoy().admin_get("/clusters").unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until instance `i` is not among Envoy's healthy hosts.
    pub fn wait_unhealthy(&self, i: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        let port = self.instances[i].port;
        while self.healthy_ports().contains(&port) {
            assert!(
                start.elapsed() < timeout,
                "instance {i} still healthy after {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    /// All logs plus ext_proc stats, for failure messages.
    pub fn logs(&self) -> String {
        let n = self.instances.len();
        let mut s = String::new();
        for (i, inst) in self.instances.iter().enumerate() {
            s += &format!(
                "===== promptgate {i} (127.0.0.1:{}) =====\n{}\n",
                inst.port,
                tail(&self.log(i), if n == 1 { 200 } else { 60 })
            );
        }
        s += &format!(
            "===== envoy =====\n{}\n===== access log =====\n{}\n===== ext_proc stats =====\n{:?}\n",
            tail(&envoy::without_startup_noise(&self.envoy_log()), 200),
            tail(&self.access_log(), 100),
            self.ext_proc_stats(),
        );
        if n > 1 {
            s += &format!(
                "===== promptgate cluster stats =====\n{:?}\n",
                self.envoy_stats("cluster.promptgate.")
                    .into_iter()
                    .filter(|(_, v)| *v != 0)
                    .collect::<Vec<_>>()
            );
        }
        s
    }

    pub fn dump_logs(&self) {
        eprintln!("{}", self.logs());
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- gateway logs (test failed) -----");
            self.dump_logs();
        }
        self.envoy = None;
        self.instances.clear();
        if std::env::var_os("PROMPTGATE_KEEP_TMP").is_some() {
            let keep = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept {}", keep.keep().display());
        }
    }
}

/// `promptgate_phase_duration_seconds`' sum and count for `phase` in a
/// Prometheus exposition.
fn phase_series(metrics: &str, phase: &str) -> Option<(f64, u64)> {
    let get = |what: &str| {
        let key = format!("promptgate_phase_duration_seconds_{what}{{phase=\"{phase}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&key)?.trim().parse::<f64>().ok())
    };
    Some((get("sum")?, get("count")? as u64))
}

/// How many times a promptgate log says it listens (one line per run).
fn listening_lines(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("promptgate listening")
        .count()
}
