//! Shipped deployment configs:
//! * every manifest under deploy/kubernetes/ validates against its schema
//!   (scripts/validate-manifests.py: kubernetes-validate for core kinds, the
//!   JSON schemas in deploy/kubernetes/schemas for CRDs), and a broken one fails;
//! * the ext_proc processing modes of every shipped config (deploy/envoy, the
//!   Envoy Gateway EnvoyExtensionPolicy, the Istio EnvoyFilter) agree with
//!   what promptgate expects and with the overrides it actually sends;
//! * the ConfigMap's policy loads; the Deployment's drain fits its
//!   terminationGracePeriodSeconds; ports line up.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::processing_mode::{
    BodySendMode, HeaderSendMode,
};
use envoy_types::pb::envoy::extensions::filters::http::ext_proc::v3::ProcessingMode;
use envoy_types::pb::envoy::service::ext_proc::v3::{
    processing_request, HttpHeaders, ProcessingRequest,
};
use promptgate::contract;
use promptgate::extproc::StreamState;
use promptgate::policy::{LoadOptions, Policy};
use serde_yaml::Value as Yaml;

fn root() -> PathBuf {
    support::repo_root()
}

fn yaml_docs(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Yaml| !v.is_null())
        .collect()
}

fn doc_of_kind(path: &str, kind: &str) -> Yaml {
    yaml_docs(&root().join(path))
        .into_iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in {path}"))
}

// ---------------------------------------------------------------------------
// Schema validation
// ---------------------------------------------------------------------------

fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    let ok = p.exists()
        && Command::new(&p)
            .args(["-c", "import kubernetes_validate, jsonschema"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the manifest validator needs .venv with kubernetes-validate: run the tests with ./scripts/test.sh \
         (it runs .venv/bin/pip install kubernetes-validate)"
    );
    p
}

fn validate(extra: Option<&Path>) -> (bool, String) {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("scripts/validate-manifests.py"));
    if let Some(p) = extra {
        cmd.arg("--doc").arg(p);
    }
    let out = cmd.output().expect("run the validator");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn every_manifest_validates_against_its_schema() {
    let (ok, out) = validate(None);
    assert!(ok, "{out}");
    assert!(out.contains(" 0 invalid"), "{out}");
    for kind in [
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
        "ServiceAccount",
        "Gateway",
        "HTTPRoute",
        "Backend",
        "EnvoyExtensionPolicy",
        "EnvoyFilter",
        "EnvoyProxy",
        "BackendTLSPolicy",
        "PeerAuthentication",
        "AuthorizationPolicy",
    ] {
        assert!(
            out.contains(&format!("] {kind}/")),
            "{kind} not validated:\n{out}"
        );
    }
}

#[test]
fn broken_manifests_fail_validation() {
    let dir = tempfile::tempdir().unwrap();
    for (file, from, to) in [
        (
            "deployment.yaml",
            "readOnlyRootFilesystem",
            "readOnlyRootFileSystem",
        ),
        ("service.yaml", "port: 50051", "port: \"fifty\""),
        (
            "envoy-gateway/envoyextensionpolicy.yaml",
            "allowModeOverride: true",
            "allowModeOveride: true",
        ),
        (
            "envoy-gateway/envoyextensionpolicy.yaml",
            "statusOnError: 503",
            "statusOnError: 299",
        ),
        ("envoy-gateway/httproute.yaml", "PathPrefix", "Prefix"),
        ("istio/envoyfilter.yaml", "INSERT_BEFORE", "INSERT_BEFOR"),
        (
            "envoy-gateway/mtls/promptgate-mtls.yaml",
            "clientCertificateRef",
            "clientCertRef",
        ),
        (
            "envoy-gateway/mtls/promptgate-mtls.yaml",
            "hostname: promptgate.promptgate.svc",
            "hostname: Promptgate.svc",
        ),
        (
            "istio/mtls/promptgate-mtls.yaml",
            "mode: STRICT",
            "mode: STRICTER",
        ),
        (
            "istio/mtls/promptgate-mtls.yaml",
            "principals:",
            "principal:",
        ),
    ] {
        let text = std::fs::read_to_string(root().join("deploy/kubernetes").join(file)).unwrap();
        assert!(text.contains(from), "{file} lacks {from}");
        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, text.replace(from, to)).unwrap();
        let (ok, out) = validate(Some(&bad));
        assert!(
            !ok && out.contains("INVALID"),
            "{file} with {to} passed:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------
// Processing modes
// ---------------------------------------------------------------------------

/// An ext_proc filter config as the tests see it.
#[derive(Debug)]
struct FilterConfig {
    source: String,
    mode: ProcessingMode,
    allow_mode_override: bool,
    failure_mode_allow: bool,
    allowed_override_modes: Vec<ProcessingMode>,
    /// x-promptgate-backend values set anywhere for this filter.
    backend_metadata: Vec<String>,
}

fn header_mode(v: &Yaml, default: HeaderSendMode) -> i32 {
    match v.as_str() {
        None | Some("DEFAULT") => default as i32,
        Some(s) => {
            HeaderSendMode::from_str_name(s).unwrap_or_else(|| panic!("header mode {s}")) as i32
        }
    }
}

fn body_mode(v: &Yaml) -> i32 {
    match v.as_str() {
        None => BodySendMode::None as i32,
        Some(s) => BodySendMode::from_str_name(s).unwrap_or_else(|| panic!("body mode {s}")) as i32,
    }
}

/// Envoy's `processing_mode` (YAML) with defaults filled in as Envoy does.
fn envoy_mode(pm: &Yaml) -> ProcessingMode {
    ProcessingMode {
        request_header_mode: header_mode(&pm["request_header_mode"], HeaderSendMode::Send),
        response_header_mode: header_mode(&pm["response_header_mode"], HeaderSendMode::Send),
        request_body_mode: body_mode(&pm["request_body_mode"]),
        response_body_mode: body_mode(&pm["response_body_mode"]),
        request_trailer_mode: header_mode(&pm["request_trailer_mode"], HeaderSendMode::Skip),
        response_trailer_mode: header_mode(&pm["response_trailer_mode"], HeaderSendMode::Skip),
    }
}

fn metadata_values(list: &Yaml) -> Vec<String> {
    list.as_sequence()
        .into_iter()
        .flatten()
        .filter(|kv| kv["key"].as_str() == Some(contract::BACKEND_METADATA))
        .filter_map(|kv| kv["value"].as_str().map(str::to_owned))
        .collect()
}

fn envoy_filter(source: &str, typed_config: &Yaml, route_metadata: Vec<String>) -> FilterConfig {
    let mut backend_metadata = metadata_values(&typed_config["grpc_service"]["initial_metadata"]);
    backend_metadata.extend(route_metadata);
    FilterConfig {
        source: source.to_owned(),
        mode: envoy_mode(&typed_config["processing_mode"]),
        allow_mode_override: typed_config["allow_mode_override"]
            .as_bool()
            .unwrap_or(false),
        failure_mode_allow: typed_config["failure_mode_allow"]
            .as_bool()
            .unwrap_or(false),
        allowed_override_modes: typed_config["allowed_override_modes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(envoy_mode)
            .collect(),
        backend_metadata,
    }
}

fn deploy_envoy() -> FilterConfig {
    let cfg = &yaml_docs(&root().join("deploy/envoy/envoy.yaml"))[0];
    let hcm =
        &cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filter = hcm["http_filters"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "envoy.filters.http.ext_proc")
        .expect("ext_proc filter");
    let mut route_md = Vec::new();
    for vh in hcm["route_config"]["virtual_hosts"].as_sequence().unwrap() {
        for r in vh["routes"].as_sequence().unwrap() {
            let o = &r["typed_per_filter_config"]["envoy.filters.http.ext_proc"]["overrides"];
            let md = metadata_values(&o["grpc_initial_metadata"]);
            assert!(!md.is_empty(), "route {:?} names no backend", r["match"]);
            route_md.extend(md);
            assert!(
                o["processing_mode"].is_null(),
                "a route overrides the processing mode"
            );
        }
    }
    envoy_filter("deploy/envoy/envoy.yaml", &filter["typed_config"], route_md)
}

fn istio() -> FilterConfig {
    let ef = doc_of_kind("deploy/kubernetes/istio/envoyfilter.yaml", "EnvoyFilter");
    let patch = ef["spec"]["configPatches"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["patch"]["value"]["name"] == "envoy.filters.http.ext_proc")
        .expect("ext_proc patch");
    assert_eq!(patch["applyTo"], "HTTP_FILTER");
    assert_eq!(
        patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"],
        "envoy.filters.http.router"
    );
    envoy_filter(
        "deploy/kubernetes/istio/envoyfilter.yaml",
        &patch["patch"]["value"]["typed_config"],
        Vec::new(),
    )
}

/// Envoy Gateway's translation (v1.9, internal/xds/translator/extproc.go):
/// a present `request`/`response` sends that side's headers; a body mode is
/// set only when `body` is given; trailers are SKIP unless FullDuplexStreamed.
fn envoy_gateway() -> FilterConfig {
    let eep = doc_of_kind(
        "deploy/kubernetes/envoy-gateway/envoyextensionpolicy.yaml",
        "EnvoyExtensionPolicy",
    );
    let ext = &eep["spec"]["extProc"][0];
    let pm = &ext["processingMode"];
    let side = |v: &Yaml| -> (i32, i32) {
        if v.is_null() {
            return (HeaderSendMode::Skip as i32, BodySendMode::None as i32);
        }
        let body = match v["body"].as_str() {
            None => BodySendMode::None,
            Some("Streamed") => BodySendMode::Streamed,
            Some("Buffered") => BodySendMode::Buffered,
            Some("BufferedPartial") => BodySendMode::BufferedPartial,
            Some("FullDuplexStreamed") => BodySendMode::FullDuplexStreamed,
            Some(o) => panic!("body mode {o}"),
        };
        (HeaderSendMode::Send as i32, body as i32)
    };
    let (rqh, rqb) = side(&pm["request"]);
    let (rsh, rsb) = side(&pm["response"]);
    let trailer = |b: i32| {
        if b == BodySendMode::FullDuplexStreamed as i32 {
            HeaderSendMode::Send as i32
        } else {
            HeaderSendMode::Skip as i32
        }
    };
    // x-promptgate-backend comes from the EnvoyPatchPolicy on the filter.
    let epp = doc_of_kind(
        "deploy/kubernetes/envoy-gateway/envoypatchpolicy.yaml",
        "EnvoyPatchPolicy",
    );
    let filter_name = format!(
        "envoy.filters.http.ext_proc/envoyextensionpolicy/{}/{}/extproc/0",
        eep["metadata"]["namespace"].as_str().unwrap(),
        eep["metadata"]["name"].as_str().unwrap()
    );
    let mut backend_metadata = Vec::new();
    for p in epp["spec"]["jsonPatches"].as_sequence().unwrap() {
        let op = &p["operation"];
        if op["jsonPath"]
            .as_str()
            .is_some_and(|j| j.contains(&filter_name))
            && op["path"] == "/typed_config/grpc_service/initial_metadata"
        {
            backend_metadata.extend(metadata_values(&op["value"]));
        }
    }
    FilterConfig {
        source: "deploy/kubernetes/envoy-gateway/envoyextensionpolicy.yaml".into(),
        mode: ProcessingMode {
            request_header_mode: rqh,
            response_header_mode: rsh,
            request_body_mode: rqb,
            response_body_mode: rsb,
            request_trailer_mode: trailer(rqb),
            response_trailer_mode: trailer(rsb),
        },
        allow_mode_override: pm["allowModeOverride"].as_bool().unwrap_or(false),
        failure_mode_allow: ext["failOpen"].as_bool().unwrap_or(false),
        allowed_override_modes: Vec::new(),
        backend_metadata,
    }
}

/// The `mode_override`s promptgate sends on request headers, for an
/// inspected route and a passthrough one.
fn overrides_promptgate_sends() -> Vec<ProcessingMode> {
    let policy = Arc::new(Policy::embedded_default(&LoadOptions::default()).unwrap());
    let mut out = Vec::new();
    for (method, path) in [
        ("POST", "/v1/messages?beta=true"),
        ("GET", "/v1/models"),
        ("HEAD", "/"),
    ] {
        let hv = |k: &str, v: &str| HeaderValue {
            key: k.into(),
            raw_value: v.as_bytes().to_vec(),
            ..HeaderValue::default()
        };
        let msg = ProcessingRequest {
            request: Some(processing_request::Request::RequestHeaders(HttpHeaders {
                headers: Some(HeaderMap {
                    headers: vec![
                        hv(":method", method),
                        hv(":path", path),
                        hv(":authority", "gw"),
                        hv("content-type", "application/json"),
                    ],
                }),
                end_of_stream: method != "POST",
                ..HttpHeaders::default()
            })),
            ..ProcessingRequest::default()
        };
        let mut state = StreamState::new(policy.clone(), Some("anthropic".into()));
        let resp = futures_util::FutureExt::now_or_never(state.handle(msg))
            .expect("request headers are decided without waiting")
            .expect("answered");
        out.push(
            resp.mode_override
                .expect("promptgate sends a mode_override"),
        );
    }
    out
}

#[test]
fn processing_modes_of_every_shipped_config_agree_with_promptgate() {
    let expected = contract::configured_mode();
    let overrides = overrides_promptgate_sends();
    // promptgate raises the request body for inspected routes, never lowers.
    assert!(overrides
        .iter()
        .any(|o| o.request_body_mode == BodySendMode::Buffered as i32));
    for f in [deploy_envoy(), envoy_gateway(), istio()] {
        assert_eq!(
            f.mode, expected,
            "{}: processing mode differs from promptgate's contract",
            f.source
        );
        assert_eq!(
            f.allow_mode_override,
            contract::ALLOW_MODE_OVERRIDE,
            "{}: allow_mode_override",
            f.source
        );
        assert_eq!(
            f.failure_mode_allow,
            contract::FAILURE_MODE_ALLOW,
            "{}: must fail closed",
            f.source
        );
        for o in &overrides {
            // A body mode promptgate raises must start at NONE (an override
            // cannot lower it, so passthrough would get bodies otherwise).
            if o.request_body_mode != 0 {
                assert_eq!(
                    f.mode.request_body_mode,
                    BodySendMode::None as i32,
                    "{}",
                    f.source
                );
            }
            if o.response_body_mode != 0 {
                assert_eq!(
                    f.mode.response_body_mode,
                    BodySendMode::None as i32,
                    "{}",
                    f.source
                );
            }
            // With allowed_override_modes set, Envoy ignores any other override.
            if !f.allowed_override_modes.is_empty() {
                let same = |a: &ProcessingMode| ProcessingMode {
                    request_header_mode: 0,
                    ..*a
                };
                assert!(
                    f.allowed_override_modes.iter().any(|a| same(a) == same(o)),
                    "{}: allowed_override_modes lacks {o:?}",
                    f.source
                );
            }
        }
        assert!(
            f.backend_metadata.iter().any(|b| b == "anthropic"),
            "{}: no {} metadata naming the anthropic backend",
            f.source,
            contract::BACKEND_METADATA
        );
    }
}

// ---------------------------------------------------------------------------
// Base manifests
// ---------------------------------------------------------------------------

#[test]
fn the_configmap_policy_loads_and_the_deployment_lines_up() {
    let cm = doc_of_kind("deploy/kubernetes/configmap.yaml", "ConfigMap");
    let policy_yaml = cm["data"]["policy.yaml"].as_str().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(secrets.path().join("anthropic-secret")).unwrap();
    std::fs::write(
        secrets.path().join("anthropic-secret/Authorization"),
        "sk-ant-test",
    )
    .unwrap();
    std::fs::create_dir_all(secrets.path().join("promptgate-mask-key")).unwrap();
    std::fs::write(
        secrets.path().join("promptgate-mask-key/key"),
        "0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let policy = Policy::from_yaml(
        policy_yaml,
        "configmap policy.yaml",
        &LoadOptions {
            secrets_dir: Some(secrets.path().to_path_buf()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.backends[0].name, "anthropic");
    // The settings document's mask key is read, so no warning about it.
    assert_eq!(
        policy.mask_key.source,
        promptgate::guard::placeholder::KeySource::Configured
    );
    assert!(
        !policy
            .warnings
            .iter()
            .any(|w| w == promptgate::policy::NO_MASK_KEY_WARNING),
        "{:?}",
        policy.warnings
    );

    let dep = doc_of_kind("deploy/kubernetes/deployment.yaml", "Deployment");
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args: Vec<&str> = c["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let arg = |name: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_else(|| panic!("no --{name}= in {args:?}"))
    };
    let drain = promptgate::lifecycle::parse_duration(arg("drain-timeout")).unwrap();
    let grace_period = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        grace_period as f64 >= drain.as_secs_f64() + 5.0,
        "terminationGracePeriodSeconds {grace_period} must exceed --drain-timeout {drain:?} with a margin"
    );
    assert!(dep["spec"]["replicas"].as_u64().unwrap() >= 2);
    let port: u64 = arg("listen").rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port));
    assert_eq!(c["readinessProbe"]["grpc"]["port"].as_u64(), Some(port));
    assert_eq!(c["livenessProbe"]["grpc"]["port"].as_u64(), Some(port));
    assert_eq!(
        c["livenessProbe"]["grpc"]["service"].as_str(),
        Some(promptgate::lifecycle::LIVENESS_SERVICE)
    );
    assert!(
        c["readinessProbe"]["grpc"]["service"].is_null(),
        "readiness must follow the drain"
    );
    // the ConfigMap is mounted as a folder (subPath mounts never update)
    let mounts = c["volumeMounts"].as_sequence().unwrap();
    assert!(mounts.iter().all(|m| m["subPath"].is_null()));
    let config_dir = Path::new(arg("config"))
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(mounts
        .iter()
        .any(|m| m["mountPath"].as_str() == Some(config_dir.as_str())));
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));

    let svc = doc_of_kind("deploy/kubernetes/service.yaml", "Service");
    assert_eq!(svc["spec"]["ports"][0]["appProtocol"], "kubernetes.io/h2c");
    assert_eq!(svc["spec"]["ports"][0]["port"].as_u64(), Some(port));
}

/// The Envoy Gateway JWT SecurityPolicy guards the same route promptgate's
/// EnvoyExtensionPolicy processes, the EnvoyExtensionPolicy forwards the
/// namespace its jwt_authn filter writes, and promptgate's identity settings
/// with the provider's issuer as key (where Envoy Gateway puts the payload)
/// read the user and groups out of such metadata.
#[test]
fn the_security_policy_feeds_promptgate_identity() {
    use envoy_types::pb::envoy::config::core::v3::Metadata;
    use envoy_types::pb::google::protobuf::{value::Kind, ListValue, Struct, Value};
    use promptgate::decision::identity::Identity;

    let sp = doc_of_kind(
        "deploy/kubernetes/envoy-gateway/securitypolicy.yaml",
        "SecurityPolicy",
    );
    let eep = doc_of_kind(
        "deploy/kubernetes/envoy-gateway/envoyextensionpolicy.yaml",
        "EnvoyExtensionPolicy",
    );
    assert_eq!(sp["spec"]["targetRefs"], eep["spec"]["targetRefs"]);
    let namespace = "envoy.filters.http.jwt_authn";
    let forwarded = eep["spec"]["extProc"][0]["metadata"]["accessibleNamespaces"]
        .as_sequence()
        .expect("accessibleNamespaces");
    assert!(forwarded.iter().any(|n| n.as_str() == Some(namespace)));
    let issuer = sp["spec"]["jwt"]["providers"][0]["issuer"]
        .as_str()
        .expect("an issuer");

    let yaml = format!(
        "identity:\n  jwt: {{namespace: {namespace}, key: \"{issuer}\", user: sub, groups: groups}}\n  required: true\nbackends:\n- name: anthropic\n  ai: {{provider: {{anthropic: {{}}}}}}\n"
    );
    let policy = Policy::from_yaml(&yaml, "securitypolicy test", &LoadOptions::default())
        .expect("policy loads");
    let settings = policy.identity.as_ref().expect("identity settings");

    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.into())),
    };
    let payload = Struct {
        fields: [
            ("sub".to_string(), string("alice@example.com")),
            (
                "groups".to_string(),
                Value {
                    kind: Some(Kind::ListValue(ListValue {
                        values: vec![string("contractors")],
                    })),
                },
            ),
        ]
        .into(),
    };
    let metadata = Metadata {
        filter_metadata: [(
            namespace.to_string(),
            Struct {
                fields: [(
                    issuer.to_string(),
                    Value {
                        kind: Some(Kind::StructValue(payload)),
                    },
                )]
                .into(),
            },
        )]
        .into(),
        ..Default::default()
    };
    let claims = promptgate::extproc::claims::verified_claims(settings, Some(&metadata));
    let who = Identity::from_claims(settings, claims);
    assert_eq!(who.user.as_deref(), Some("alice@example.com"));
    assert_eq!(who.groups, ["contractors"]);
}

/// The opt-in mTLS manifests point at what the base ships: the
/// BackendTLSPolicy at the promptgate Service (and its in-cluster name), the
/// Istio policies at the Deployment's pods and the Service's port; the
/// example Secrets have the keys promptgate and Envoy Gateway read.
#[test]
fn the_mtls_manifests_line_up_with_the_base() {
    let svc = doc_of_kind("deploy/kubernetes/service.yaml", "Service");
    let (name, ns) = (
        svc["metadata"]["name"].as_str().unwrap(),
        svc["metadata"]["namespace"].as_str().unwrap(),
    );
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap();
    let pod_labels = &doc_of_kind("deploy/kubernetes/deployment.yaml", "Deployment")["spec"]
        ["template"]["metadata"]["labels"];

    let eg = "deploy/kubernetes/envoy-gateway/mtls/promptgate-mtls.yaml";
    let btp = doc_of_kind(eg, "BackendTLSPolicy");
    assert_eq!(btp["metadata"]["namespace"], ns);
    let target = &btp["spec"]["targetRefs"][0];
    assert_eq!(
        (target["group"].as_str(), target["kind"].as_str()),
        (Some(""), Some("Service"))
    );
    assert_eq!(target["name"], name);
    assert_eq!(
        btp["spec"]["validation"]["hostname"].as_str(),
        Some(format!("{name}.{ns}.svc").as_str())
    );
    let ca_map = btp["spec"]["validation"]["caCertificateRefs"][0]["name"]
        .as_str()
        .unwrap();
    let proxy = doc_of_kind(eg, "EnvoyProxy");
    // The EnvoyProxy lives beside the Gateway that references it.
    let gateway = doc_of_kind("deploy/kubernetes/envoy-gateway/gateway.yaml", "Gateway");
    assert_eq!(
        proxy["metadata"]["namespace"],
        gateway["metadata"]["namespace"]
    );
    let client_secret = proxy["spec"]["backendTLS"]["clientCertificateRef"]["name"]
        .as_str()
        .unwrap();

    let examples = yaml_docs(&root().join("deploy/kubernetes/examples/promptgate-tls.yaml"));
    let named = |kind: &str, n: &str| {
        examples
            .iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == n)
            .unwrap_or_else(|| panic!("no {kind} {n} in examples/promptgate-tls.yaml"))
            .clone()
    };
    let client = named("Secret", client_secret);
    assert_eq!(client["type"], "kubernetes.io/tls");
    assert!(named("ConfigMap", ca_map)["data"]["ca.crt"].is_string());
    let server = named("Secret", "promptgate-tls");
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(
            server["stringData"][key].is_string(),
            "promptgate-tls lacks {key}"
        );
    }

    let istio = "deploy/kubernetes/istio/mtls/promptgate-mtls.yaml";
    for kind in ["PeerAuthentication", "AuthorizationPolicy"] {
        let d = doc_of_kind(istio, kind);
        assert_eq!(d["metadata"]["namespace"], ns, "{kind}");
        let sel = d["spec"]["selector"]["matchLabels"].as_mapping().unwrap();
        for (k, v) in sel {
            assert_eq!(&pod_labels[k], v, "{kind} selects the promptgate pods");
        }
    }
    assert_eq!(
        doc_of_kind(istio, "PeerAuthentication")["spec"]["mtls"]["mode"],
        "STRICT"
    );
    let authz = doc_of_kind(istio, "AuthorizationPolicy");
    assert_eq!(authz["spec"]["action"], "ALLOW");
    let rule = &authz["spec"]["rules"][0];
    assert_eq!(
        rule["to"][0]["operation"]["ports"][0].as_str(),
        Some(port.to_string().as_str())
    );
    let principal = rule["from"][0]["source"]["principals"][0].as_str().unwrap();
    assert!(
        principal.starts_with("cluster.local/ns/") && principal.contains("/sa/"),
        "{principal}"
    );
}

#[test]
fn the_budgets_policy_loads_with_its_redis_store() {
    let cm = doc_of_kind(
        "deploy/kubernetes/redis/policy-with-budgets.yaml",
        "ConfigMap",
    );
    assert_eq!(
        cm["metadata"]["name"], "promptgate-policy",
        "it replaces the base policy"
    );
    let policy_yaml = cm["data"]["policy.yaml"].as_str().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    for (dir, file, value) in [
        ("anthropic-secret", "Authorization", "sk-ant-test"),
        (
            "promptgate-mask-key",
            "key",
            "0123456789abcdef0123456789abcdef\n",
        ),
    ] {
        std::fs::create_dir_all(secrets.path().join(dir)).unwrap();
        std::fs::write(secrets.path().join(dir).join(file), value).unwrap();
    }
    let policy = Policy::from_yaml(
        policy_yaml,
        "policy-with-budgets.yaml",
        &LoadOptions {
            secrets_dir: Some(secrets.path().to_path_buf()),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let budgets = policy.backends[0].budgets.as_deref().expect("budgets");
    assert_eq!(budgets.store.kind(), "redis");
    assert_eq!(budgets.limits.len(), 3);
    assert!(
        policy.identity.is_some(),
        "budgets per user need the identity"
    );
    let svc = doc_of_kind("deploy/kubernetes/redis/redis.yaml", "Service");
    assert!(
        policy_yaml.contains(&format!(
            "redis://{}.promptgate.svc.cluster.local:{}",
            svc["metadata"]["name"].as_str().unwrap(),
            svc["spec"]["ports"][0]["port"].as_u64().unwrap()
        )),
        "the policy points at the Service"
    );
}
