//! promptgate's own door: the ext_proc port over mutual TLS. Clients with a
//! certificate of the client CA (Envoy, a gRPC client) get answers, the
//! provider key among them; a client without a certificate, with one of
//! another CA, or speaking plaintext is refused at the handshake. The
//! certificates reload without a restart; bad TLS settings stop the start.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::ext_proc::v3::external_processor_client::ExternalProcessorClient;
use envoy_types::pb::envoy::service::ext_proc::v3::processing_response;
use support::envoy::{insert_promptgate_mtls, PromptgateTls};
use support::messages::{request_body, request_headers};
use support::pki::{plain_channel, tls_channel, with_envoy_mtls, Leaf, TestCa};
use support::{client, Backend, Gateway, Policy};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const SECRET: &str = "sk-ant-mtls-secret-0001";

fn policy() -> Policy {
    Policy::new().backend(Backend::anthropic("anthropic").key("anthropic-secret", SECRET))
}

/// `grpc.health.v1` of the whole server over `channel`.
async fn health(channel: Channel) -> Result<i32, tonic::Status> {
    Ok(HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?
        .into_inner()
        .status)
}

/// The headers promptgate sets in its answers to the request headers and
/// body of `POST /v1/messages` (the body's answer injects the key), as
/// `name: value` lines.
async fn ext_proc_answer(channel: Channel) -> Result<String, tonic::Status> {
    let headers = request_headers(&[
        (":method", "POST"),
        (":path", "/v1/messages"),
        (":authority", "gw"),
        ("content-type", "application/json"),
        ("x-api-key", "sk-client"),
    ]);
    let body = request_body(
        br#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
    );
    let mut stream = ExternalProcessorClient::new(channel)
        .process(tokio_stream::iter(vec![headers, body]))
        .await?
        .into_inner();
    let mut answers = String::new();
    for _ in 0..2 {
        let answer = stream
            .message()
            .await?
            .ok_or_else(|| tonic::Status::unknown("the stream ended without an answer"))?;
        let common = match answer.response {
            Some(processing_response::Response::RequestHeaders(r)) => r.response,
            Some(processing_response::Response::RequestBody(r)) => r.response,
            other => panic!("not a request answer: {other:?}"),
        };
        let set = common
            .and_then(|c| c.header_mutation)
            .map(|m| m.set_headers)
            .unwrap_or_default();
        for h in set.into_iter().filter_map(|o| o.header) {
            answers += &format!("{}: {}\n", h.key, String::from_utf8_lossy(&h.raw_value));
        }
    }
    Ok(answers)
}

/// Health over TLS with `client`'s certificate (none: no certificate).
async fn tls_health(port: u16, ca: &TestCa, client: Option<&Leaf>) -> Result<i32, String> {
    let channel = tls_channel(port, ca, client)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    health(channel).await.map_err(|e| format!("{e:?}"))
}

/// `promptgate_tls_handshake_failures_total{reason="refused"}`.
fn refused_handshakes(gw: &Gateway) -> u64 {
    metric(
        gw,
        "promptgate_tls_handshake_failures_total{reason=\"refused\"}",
    )
}

/// Runs a client that must get no answer; returns its error once
/// promptgate has counted one more refused handshake (the client sees the
/// TLS alert or, when the connection closes first, only that).
async fn assert_refused(
    gw: &Gateway,
    what: &str,
    client: impl std::future::Future<Output = Result<i32, String>>,
) -> String {
    let before = refused_handshakes(gw);
    let e = match client.await {
        Ok(status) => panic!("{what}: answered (status {status})"),
        Err(e) => e,
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while refused_handshakes(gw) <= before {
        assert!(
            Instant::now() < deadline,
            "{what}: failed ({e}) but no refused handshake was counted\n{}",
            gw.promptgate_log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    e
}

fn metric(gw: &Gateway, series: &str) -> u64 {
    gw.promptgate_metrics()
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn only_clients_of_the_client_ca_get_answers() {
    let ca = TestCa::new("promptgate test CA");
    let other = TestCa::new("another CA");
    let certs = tempfile::tempdir().unwrap();
    let files = ca.write_server_files(certs.path());
    let args = files.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let gw = Gateway::launch(policy())
        .without_envoy()
        .args(&args)
        .start();
    let port = gw.promptgate_port();
    assert!(
        gw.promptgate_log().contains("mutual TLS"),
        "{}",
        gw.promptgate_log()
    );

    // A client with a certificate of the client CA: health and ext_proc.
    let good = ca.client("envoy");
    let channel = tls_channel(port, &ca, Some(&good)).await.unwrap();
    assert_eq!(health(channel.clone()).await.unwrap(), 1, "SERVING");
    let answer = ext_proc_answer(channel).await.unwrap();
    assert!(
        answer.contains(&format!("x-api-key: {SECRET}")),
        "the ext_proc answer should carry the provider key for Envoy: {answer}"
    );
    assert_eq!(refused_handshakes(&gw), 0);

    // No client certificate; a certificate of another CA; plaintext h2c
    // (as an Envoy without TLS speaks): refused at the handshake.
    assert_refused(&gw, "no client certificate", tls_health(port, &ca, None)).await;
    let stranger = other.client("envoy");
    assert_refused(
        &gw,
        "a client certificate of another CA",
        tls_health(port, &ca, Some(&stranger)),
    )
    .await;
    assert_refused(&gw, "plaintext", async {
        let channel = plain_channel(port).await.map_err(|e| format!("{e:?}"))?;
        health(channel).await.map_err(|e| format!("{e:?}"))
    })
    .await;
    // And no ext_proc answer (no provider key) without a certificate.
    assert_refused(&gw, "ext_proc without a certificate", async {
        let channel = tls_channel(port, &ca, None)
            .await
            .map_err(|e| format!("{e:?}"))?;
        match ext_proc_answer(channel).await {
            Ok(answer) => {
                assert!(!answer.contains(SECRET));
                Ok(0)
            }
            Err(e) => Err(format!("{e:?}")),
        }
    })
    .await;

    // The server serves on.
    assert_eq!(tls_health(port, &ca, Some(&good)).await, Ok(1));
}

#[tokio::test]
async fn new_certificates_are_served_without_a_restart() {
    let first = TestCa::new("first CA");
    let second = TestCa::new("second CA");
    let certs = tempfile::tempdir().unwrap();
    let files = first.write_server_files(certs.path());
    let args = files.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut gw = Gateway::launch(policy())
        .without_envoy()
        .env("PROMPTGATE_LOG", "info,promptgate::tls=debug")
        .args(&args)
        .start();
    let port = gw.promptgate_port();
    let (old_client, new_client) = (first.client("envoy"), second.client("envoy"));
    assert_eq!(tls_health(port, &first, Some(&old_client)).await, Ok(1));
    assert_refused(
        &gw,
        "the second CA's client before the reload",
        tls_health(port, &first, Some(&new_client)),
    )
    .await;

    // A broken certificate: counted, the current one keeps serving.
    std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&gw, "promptgate_tls_reloads_total{outcome=\"failure\"}") == 0 {
        assert!(
            Instant::now() < deadline,
            "a broken certificate was not noticed:\n{}",
            gw.promptgate_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.promptgate_log().contains("TLS reload failed"));
    assert_eq!(tls_health(port, &first, Some(&old_client)).await, Ok(1));

    // The second CA's files: its client is served, the first's refused.
    second.write_server_files(certs.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while tls_health(port, &second, Some(&new_client)).await != Ok(1) {
        assert!(
            Instant::now() < deadline,
            "the new certificates were not served:\n{}",
            gw.promptgate_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(
        &gw,
        "the first CA's client after the reload",
        tls_health(port, &second, Some(&old_client)),
    )
    .await;
    assert!(metric(&gw, "promptgate_tls_reloads_total{outcome=\"success\"}") >= 1);
    assert!(gw.is_running(0), "served by the same process");
}

/// Envoy with `deploy/envoy/promptgate-mtls.yaml` and its client
/// certificate: health checks and requests go through promptgate over
/// mutual TLS, and the provider key reaches the upstream.
#[tokio::test]
async fn envoy_with_its_client_certificate_routes_through_promptgate() {
    let ca = TestCa::new("promptgate test CA");
    let certs = tempfile::tempdir().unwrap();
    let gw = with_envoy_mtls(Gateway::launch(policy()), &ca, &ca, certs.path()).start();
    gw.wait_healthy(1, Duration::from_secs(10));
    let resp = client()
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-api-key", "sk-client-should-not-leak")
        .body(r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "{body}\n{}", gw.logs());
    let reqs = gw.upstream().requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        reqs[0].header("x-api-key"),
        Some(SECRET),
        "{:?}",
        reqs[0].headers
    );
    gw.assert_ext_proc_clean();
    assert_eq!(refused_handshakes(&gw), 0, "Envoy's handshakes all succeed");
    let ssl = gw.envoy_stats("cluster.promptgate.ssl.handshake");
    assert!(
        ssl.values().any(|v| *v > 0),
        "Envoy's promptgate cluster speaks TLS: {ssl:?}"
    );
}

/// Envoy with a client certificate of another CA: promptgate refuses it,
/// its health checks fail, and requests fail closed (never reach upstream).
#[tokio::test]
async fn envoy_with_a_foreign_certificate_gets_no_answer() {
    let ca = TestCa::new("promptgate test CA");
    let other = TestCa::new("another CA");
    let certs = tempfile::tempdir().unwrap();
    let gw = with_envoy_mtls(Gateway::launch(policy()), &ca, &other, certs.path()).start();
    let deadline = Instant::now() + Duration::from_secs(10);
    while refused_handshakes(&gw) == 0 {
        assert!(
            Instant::now() < deadline,
            "no refused handshake\n{}",
            gw.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.healthy_ports().is_empty());
    let resp = client()
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-client")
        .body(r#"{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_server_error(), "{}", resp.status());
    assert_eq!(gw.upstream().request_count(), 0);
}

fn serve(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptgate"))
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A bad setting ends the start at once; a good one would serve forever.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn bad_tls_settings_stop_the_start_with_exit_2() {
    let ca = TestCa::new("promptgate test CA");
    let dir = tempfile::tempdir().unwrap();
    let files = ca.write_server_files(dir.path());
    let listen = ["--listen", "127.0.0.1:0"];
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // A certificate without its key and CA.
    let o = serve(&[&listen[..], &["--tls-cert", &path(&files.cert)]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--tls-key"), "{}", stderr(&o));
    assert!(stderr(&o).contains("--client-ca"), "{}", stderr(&o));

    // A missing file.
    let missing = dir.path().join("nope.crt");
    let o = serve(
        &[
            &listen[..],
            &[
                "--tls-cert",
                &path(&files.cert),
                "--tls-key",
                &path(&files.key),
                "--client-ca",
                &path(&missing),
            ],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("TLS client CA {}: cannot read", missing.display())),
        "{}",
        stderr(&o)
    );

    // A key that is not the certificate's.
    let (_, other_key) = ca.client("someone").write(dir.path(), "other");
    let o = serve(
        &[
            &listen[..],
            &[
                "--tls-cert",
                &path(&files.cert),
                "--tls-key",
                &path(&other_key),
                "--client-ca",
                &path(&files.client_ca),
            ],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not belong to the certificate"),
        "{}",
        stderr(&o)
    );

    // `tls:` in the policy: a missing field, then a missing file
    // (paths relative to the policy's folder).
    let policy = dir.path().join("policy.yaml");
    let backend = "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n";
    std::fs::write(
        &policy,
        format!("tls: {{certFile: server.crt, clientCaFile: client-ca.crt}}\n{backend}"),
    )
    .unwrap();
    let o = serve(&[&listen[..], &["--config", &path(&policy)]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("keyFile"), "{}", stderr(&o));
    std::fs::write(
        &policy,
        format!(
            "tls: {{certFile: server.crt, keyFile: absent.key, clientCaFile: client-ca.crt}}\n{backend}"
        ),
    )
    .unwrap();
    let o = serve(&[&listen[..], &["--config", &path(&policy)]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "TLS key {}: cannot read",
            dir.path().join("absent.key").display()
        )),
        "{}",
        stderr(&o)
    );
}

/// `tls:` in the policy (relative paths) serves mutual TLS like the flags.
#[tokio::test]
async fn tls_settings_in_the_policy_serve_mutual_tls() {
    let ca = TestCa::new("promptgate test CA");
    let dir = tempfile::tempdir().unwrap();
    let files = ca.write_server_files(dir.path());
    let yaml = format!(
        "tls: {{certFile: {}, keyFile: server.key, clientCaFile: client-ca.crt}}\nbackends:\n- name: a\n  ai: {{provider: {{anthropic: {{}}}}}}\n",
        files.cert.file_name().unwrap().to_string_lossy()
    );
    let config = dir.path().join("policy.yaml");
    std::fs::write(&config, yaml).unwrap();
    let port = support::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptgate"))
        .args(["serve", "--config", &path(&config), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let good = ca.client("envoy");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = Err(String::new());
    while Instant::now() < deadline {
        last = tls_health(port, &ca, Some(&good)).await;
        if last == Ok(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let plain = match plain_channel(port).await {
        Ok(channel) => health(channel).await.map_err(|e| format!("{e:?}")),
        Err(e) => Err(format!("{e:?}")),
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(last, Ok(1));
    assert!(plain.is_err(), "{plain:?}");
}

/// The README's way: `scripts/make-certs.sh` (openssl) makes a CA,
/// promptgate's certificate and Envoy's; Envoy with them routes through
/// promptgate over mutual TLS.
#[tokio::test]
async fn certificates_from_make_certs_sh_work_end_to_end() {
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path().join("pki");
    let out = Command::new(support::repo_root().join("scripts/make-certs.sh"))
        .arg(&dir)
        .output()
        .expect("run scripts/make-certs.sh (needs openssl)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let f = |name: &str| path(&dir.join(name));
    let gw = Gateway::launch(policy())
        .args(&[
            "--tls-cert",
            &f("promptgate.crt"),
            "--tls-key",
            &f("promptgate.key"),
            "--client-ca",
            &f("ca.crt"),
        ])
        .edit_envoy({
            let dir = dir.clone();
            move |cfg| {
                insert_promptgate_mtls(
                    cfg,
                    &PromptgateTls {
                        client_cert: &dir.join("envoy.crt"),
                        client_key: &dir.join("envoy.key"),
                        server_ca: &dir.join("ca.crt"),
                    },
                )
            }
        })
        .start();
    gw.wait_healthy(1, Duration::from_secs(10));
    let resp = client()
        .post(gw.url("/v1/messages"))
        .header("content-type", "application/json")
        .header("x-api-key", "sk-client")
        .body(r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", gw.logs());
    assert_eq!(
        gw.upstream().requests()[0].header("x-api-key"),
        Some(SECRET)
    );
    assert_eq!(refused_handshakes(&gw), 0);
}

/// The drain works the same over TLS: on SIGTERM health turns NOT_SERVING
/// (asked over mutual TLS), then the listener closes and the process exits 0.
// Multi-threaded: the clients' connections must close on the server's
// GOAWAY while this test blocks in `wait_exit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_tls_port() {
    let ca = TestCa::new("promptgate test CA");
    let certs = tempfile::tempdir().unwrap();
    let files = ca.write_server_files(certs.path());
    let mut args = files.args();
    args.extend(["--drain-grace".into(), "1s".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut gw = Gateway::launch(policy())
        .without_envoy()
        .args(&args)
        .start();
    let port = gw.promptgate_port();
    let envoy = ca.client("envoy");
    assert_eq!(tls_health(port, &ca, Some(&envoy)).await, Ok(1));
    gw.signal(0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // NOT_SERVING = 2
        if tls_health(port, &ca, Some(&envoy)).await == Ok(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never NOT_SERVING\n{}",
            gw.promptgate_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = gw.wait_exit(0, Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", gw.promptgate_log());
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// `promptgate check` reads the files `tls` names, as `serve` would.
#[test]
fn check_reads_the_tls_files() {
    let ca = TestCa::new("promptgate test CA");
    let dir = tempfile::tempdir().unwrap();
    ca.write_server_files(dir.path());
    let policy = dir.path().join("policy.yaml");
    let backend = "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n";
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_promptgate"))
            .args(["check", "--config", &path(&policy)])
            .output()
            .unwrap()
    };
    std::fs::write(
        &policy,
        format!("tls: {{certFile: server.crt, keyFile: server.key, clientCaFile: client-ca.crt}}\n{backend}"),
    )
    .unwrap();
    let o = check();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(
        &policy,
        format!(
            "tls: {{certFile: server.crt, keyFile: server.key, clientCaFile: gone.crt}}\n{backend}"
        ),
    )
    .unwrap();
    let o = check();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "TLS client CA {}: cannot read",
            dir.path().join("gone.crt").display()
        )),
        "{err}"
    );
}
