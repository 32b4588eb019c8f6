//! Several `promptgate serve` processes behind one real Envoy, for lifecycle,
//! reload and scale tests. Use with `mod common; mod pool;`.
//!
//! The Envoy config is `common::test_envoy_config` (derived from
//! deploy/envoy/envoy.yaml, health checks and outlier detection included)
//! with the `promptgate` cluster given one endpoint per instance.
//!
//! The instances share one policy file laid out like a mounted Kubernetes
//! ConfigMap (`config/policy.yaml -> ..data/policy.yaml`,
//! `..data -> ..<version>`), so [`Pool::write_policy`] updates it the way
//! the kubelet does: a new versioned folder and an atomic rename of the
//! `..data` symlink.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_yaml::Value as Yaml;

use crate::common::{self, FakeUpstream};

pub struct Instance {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
    starts: u32,
}

impl Instance {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

pub struct Pool {
    dir: tempfile::TempDir,
    upstream: FakeUpstream,
    pub config_path: PathBuf,
    secrets_dir: PathBuf,
    args: Vec<String>,
    pub instances: Vec<Instance>,
    envoy: Option<Child>,
    admin_port: u16,
    listener_port: u16,
    policy_version: u32,
}

impl Pool {
    /// `n` instances with `policy_yaml`, secrets `(name, value)` and extra
    /// `serve` arguments (e.g. `--drain-grace 2s`), behind one Envoy.
    pub fn start(n: usize, policy_yaml: &str, secrets: &[(&str, &str)], args: &[&str]) -> Pool {
        Self::start_with(n, policy_yaml, secrets, args, |_| {})
    }

    pub fn start_with(
        n: usize,
        policy_yaml: &str,
        secrets: &[(&str, &str)],
        args: &[&str],
        mut edit_envoy: impl FnMut(&mut Yaml),
    ) -> Pool {
        let dir = tempfile::Builder::new()
            .prefix("promptgate-pool-")
            .tempdir()
            .expect("tempdir");
        let config_dir = dir.path().join("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        let secrets_dir = dir.path().join("secrets");
        for (name, value) in secrets {
            let d = secrets_dir.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("Authorization"), value).unwrap();
        }
        std::fs::create_dir_all(&secrets_dir).unwrap();
        let mut pool = Pool {
            upstream: FakeUpstream::start(),
            config_path: config_dir.join("policy.yaml"),
            secrets_dir,
            args: args.iter().map(|s| s.to_string()).collect(),
            instances: Vec::new(),
            envoy: None,
            admin_port: 0,
            listener_port: 0,
            policy_version: 0,
            dir,
        };
        pool.write_policy(policy_yaml);
        std::os::unix::fs::symlink("..data/policy.yaml", &pool.config_path).unwrap();
        for i in 0..n {
            let port = common::free_port();
            pool.instances.push(Instance {
                port,
                child: None,
                log: pool.dir.path().join(format!("promptgate-{i}.log")),
                starts: 0,
            });
            pool.start_instance(i);
        }
        pool.start_envoy(&mut edit_envoy);
        pool
    }

    /// Replaces the policy the way the kubelet updates a ConfigMap volume.
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

    /// Starts (or restarts) instance `i` on its port.
    pub fn start_instance(&mut self, i: usize) {
        let port = self.instances[i].port;
        let log_path = self.instances[i].log.clone();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = Command::new(common::promptgate_bin())
                .arg("serve")
                .arg("--config")
                .arg(&self.config_path)
                .arg("--secrets-dir")
                .arg(&self.secrets_dir)
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .expect("spawn promptgate");
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let out = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if out.contains("in use") && Instant::now() < deadline {
                        // the old process's port is not free yet
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                    panic!("promptgate {i} exited early ({status}):\n{out}");
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    self.instances[i].child = Some(child);
                    self.instances[i].starts += 1;
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("promptgate {i} did not listen on {port} within 20s");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
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
        let child = self.instances[i]
            .child
            .as_mut()
            .expect("instance is running");
        loop {
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
        if let Some(mut c) = self.instances[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&mut self, i: usize) -> bool {
        match self.instances[i].child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Hosts of the `promptgate` cluster Envoy reports healthy (ports).
    pub fn healthy_ports(&self) -> Vec<u16> {
        let Ok(body) = common::admin_get(self.admin_port, "/clusters?format=json") else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let mut out = Vec::new();
        for c in v["cluster_statuses"].as_array().into_iter().flatten() {
            if c["name"] != "promptgate" {
                continue;
            }
            for h in c["host_statuses"].as_array().into_iter().flatten() {
                let hs = &h["health_status"];
                // healthy = EDS HEALTHY and no failure flag set
                let flagged = hs
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .any(|(k, v)| k != "eds_health_status" && v.as_bool() == Some(true))
                    })
                    .unwrap_or(true);
                if !flagged {
                    if let Some(p) = h["address"]["socket_address"]["port_value"].as_u64() {
                        out.push(p as u16);
                    }
                }
            }
        }
        out
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
                    common::admin_get(self.admin_port, "/clusters").unwrap_or_default()
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

    fn start_envoy(&mut self, edit: &mut dyn FnMut(&mut Yaml)) {
        let mut cfg = common::test_envoy_config(self.instances[0].port, self.upstream.port());
        let clusters = cfg["static_resources"]["clusters"]
            .as_sequence_mut()
            .unwrap();
        let pg = clusters
            .iter_mut()
            .find(|c| c["name"].as_str() == Some("promptgate"))
            .unwrap();
        let eps = pg["load_assignment"]["endpoints"][0]["lb_endpoints"]
            .as_sequence_mut()
            .unwrap();
        let template = eps[0].clone();
        eps.clear();
        for inst in &self.instances {
            let mut ep = template.clone();
            ep["endpoint"]["address"]["socket_address"]["port_value"] =
                Yaml::from(inst.port as u64);
            eps.push(ep);
        }
        edit(&mut cfg);
        let cfg_path = self.dir.path().join("envoy.yaml");
        std::fs::write(&cfg_path, serde_yaml::to_string(&cfg).unwrap()).unwrap();
        let admin_path = self.dir.path().join("admin-address");
        let access = std::fs::File::create(self.dir.path().join("access.log")).unwrap();
        let stderr = std::fs::File::create(self.dir.path().join("envoy.log")).unwrap();
        let level = std::env::var("ENVOY_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
        let child = Command::new(common::envoy_bin())
            .arg("-c")
            .arg(&cfg_path)
            .arg("--use-dynamic-base-id")
            .args(["--concurrency", "1"])
            .args(["--log-level", &level])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--file-flush-interval-msec", "200"])
            .stdin(Stdio::null())
            .stdout(access)
            .stderr(stderr)
            .spawn()
            .expect("spawn envoy");
        match common::wait_envoy_ready(child, &admin_path) {
            Ok(ready) => {
                self.admin_port = ready.admin_port;
                self.listener_port = ready.listener_port;
                self.envoy = Some(ready.child);
            }
            Err(why) => panic!("envoy {why}:\n{}", self.envoy_log()),
        }
    }

    pub fn upstream(&self) -> &FakeUpstream {
        &self.upstream
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.listener_port, path)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.instances[i].log).unwrap_or_default()
    }

    pub fn envoy_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// Envoy counters whose name contains `filter`.
    pub fn envoy_stats(&self, filter: &str) -> Vec<(String, u64)> {
        common::admin_get(self.admin_port, "/stats")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.contains(filter))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
            .collect()
    }

    /// Everything worth reading when a test fails.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for i in 0..self.instances.len() {
            s += &format!(
                "===== promptgate {i} =====\n{}\n",
                common::tail(&self.log(i), 60)
            );
        }
        s += &format!(
            "===== envoy =====\n{}\n",
            common::tail(&self.envoy_log(), 60)
        );
        s += &format!(
            "===== promptgate cluster stats =====\n{:?}\n",
            self.envoy_stats("cluster.promptgate.")
                .into_iter()
                .filter(|(_, v)| *v != 0)
                .collect::<Vec<_>>()
        );
        s
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- pool logs (test failed) -----\n{}", self.logs());
        }
        let children = self
            .instances
            .iter_mut()
            .filter_map(|i| i.child.take())
            .chain(self.envoy.take());
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::env::var_os("PROMPTGATE_KEEP_TMP").is_some() {
            let keep = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
            eprintln!("kept {}", keep.keep().display());
        }
    }
}
