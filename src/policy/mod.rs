//! Policy: loading, validation and compilation.
//!
//! A policy file is read once, validated with YAML paths in every error,
//! and compiled into an immutable [`Policy`]: regexes into sets, secrets read,
//! route tables sorted. The hot path only reads a compiled policy.

mod audit;
mod backend;
pub mod config;
mod identity;
mod mask_key;
mod routes;
mod tls;

pub use backend::{Backend, Matcher};
pub use routes::{RouteTable, RouteType};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use backend::compile_backend;
pub use config::TokenUsageMode;
use config::{
    AiSpec, AuditSpec, BackendSpec, IdentitySpec, K8sBackendDoc, MaskKeySpec, MatchSpec,
    NativeConfig, PoliciesSpec, SettingsDoc, TlsSpec,
};
pub use identity::IdentitySettings;
pub use mask_key::NO_MASK_KEY_WARNING;

/// The embedded default policy (`policies/default.yaml`), served when no
/// `--config` is given.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../../policies/default.yaml");

/// A load or validation error: names the file, the place and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub origin: String,
    pub place: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: at {}: {}", self.origin, self.place, self.message)
        }
    }
}

impl std::error::Error for PolicyError {}

/// Options that come from the command line rather than the file.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    /// Overrides the file's `secretsDir`.
    pub secrets_dir: Option<PathBuf>,
}

/// A compiled, immutable policy.
#[derive(Debug)]
pub struct Policy {
    pub origin: String,
    pub listen: Option<String>,
    /// `admin.listen`: address of the admin HTTP port, if configured.
    pub admin_listen: Option<String>,
    pub backends: Vec<Backend>,
    /// The key mask placeholders are tagged with (`maskKey`).
    pub mask_key: Arc<crate::guard::MaskKey>,
    /// Where the caller's verified identity comes from (`identity`).
    pub identity: Option<IdentitySettings>,
    /// Some guard has a `when:` condition (request headers are then copied
    /// for conditions to read).
    pub has_conditions: bool,
    /// The decision log (`audit`); opened once, by `serve`.
    pub audit: Option<crate::audit::AuditSettings>,
    /// The ext_proc port's TLS files (`tls`), read by `serve`.
    pub tls: Option<crate::tls::TlsFiles>,
    /// Things worth telling the operator that are not errors.
    pub warnings: Vec<String>,
}

/// Why no backend was selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectError {
    /// Envoy named a backend the policy does not have.
    UnknownName(String),
    /// Nothing named, nothing matched, and more than one backend exists.
    NoMatch,
}

impl Policy {
    /// Picks the backend: the one Envoy names (`x-promptgate-backend`), else
    /// the first whose `match` fits, else the only one.
    pub fn select(
        &self,
        hint: Option<&str>,
        host: &str,
        path: &str,
    ) -> Result<&Backend, SelectError> {
        if let Some(name) = hint {
            return self
                .backends
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| SelectError::UnknownName(name.to_owned()));
        }
        if let Some(b) = self
            .backends
            .iter()
            .find(|b| b.matcher.as_ref().is_some_and(|m| m.fits(host, path)))
        {
            return Ok(b);
        }
        match self.backends.as_slice() {
            [only] => Ok(only),
            _ => Err(SelectError::NoMatch),
        }
    }

    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends.iter().find(|b| b.name == name)
    }

    /// Loads the embedded default policy.
    pub fn embedded_default(opts: &LoadOptions) -> Result<Policy, PolicyError> {
        Policy::from_yaml(DEFAULT_POLICY_YAML, "<embedded default policy>", opts)
    }

    /// Loads and compiles a policy file.
    pub fn from_file(path: &Path, opts: &LoadOptions) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| PolicyError {
            origin: origin.clone(),
            place: String::new(),
            message: format!("cannot read the file: {e}"),
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Policy::from_yaml_in(&src, &origin, dir, opts)
    }

    /// Loads and compiles a policy from YAML text (one or more documents);
    /// files it names are relative to the current folder.
    pub fn from_yaml(src: &str, origin: &str, opts: &LoadOptions) -> Result<Policy, PolicyError> {
        Policy::from_yaml_in(src, origin, Path::new(""), opts)
    }

    /// [`Self::from_yaml`] for a policy in folder `dir`: files it names
    /// (`regex.gitleaks`) are relative to `dir`.
    pub fn from_yaml_in(
        src: &str,
        origin: &str,
        dir: &Path,
        opts: &LoadOptions,
    ) -> Result<Policy, PolicyError> {
        let err = |place: String, message: String| PolicyError {
            origin: origin.to_owned(),
            place,
            message,
        };

        // Pass 1: what form is each document?
        let mut forms = Vec::new();
        for (i, de) in serde_yaml::Deserializer::from_str(src).enumerate() {
            let value = serde_yaml::Value::deserialize(de)
                .map_err(|e| err(doc_place(i, ""), format!("not valid YAML: {e}")))?;
            forms.push(DocForm::of(&value).map_err(|m| err(doc_place(i, ""), m))?);
        }

        // Pass 2: deserialize each document into its form, keeping paths.
        let mut listen = None;
        let mut admin_listen = None;
        let mut secrets_dir = None;
        let mut mask_key: Option<(String, MaskKeySpec)> = None;
        let mut identity: Option<(String, IdentitySpec)> = None;
        let mut audit: Option<(String, AuditSpec)> = None;
        let mut tls: Option<(String, TlsSpec)> = None;
        let mut saw_settings = false;
        let mut specs: Vec<(String, String, Option<MatchSpec>, AiSpec, PoliciesSpec)> = Vec::new();
        let mut warnings = Vec::new();
        let mut saw_native = false;
        for (i, de) in serde_yaml::Deserializer::from_str(src).enumerate() {
            match &forms[i] {
                DocForm::Empty => {}
                DocForm::Other { kind } => warnings.push(format!(
                    "{}: skipped a `{kind}` document (only AgentgatewayBackend and PromptgateSettings are read)",
                    doc_place(i, "")
                )),
                DocForm::Native => {
                    if saw_settings {
                        return Err(err(
                            doc_place(i, ""),
                            "settings are given twice (a native policy beside a PromptgateSettings document); keep one"
                                .into(),
                        ));
                    }
                    if saw_native {
                        return Err(err(
                            doc_place(i, ""),
                            "a second native document (with `backends:`); put all backends in one"
                                .into(),
                        ));
                    }
                    saw_native = true;
                    let native: NativeConfig =
                        serde_path_to_error::deserialize(de).map_err(|e| {
                            err(
                                doc_place(i, &e.path().to_string()),
                                e.into_inner().to_string(),
                            )
                        })?;
                    listen = native.listen;
                    admin_listen = native.admin.and_then(|a| a.listen);
                    secrets_dir = native.secrets_dir;
                    if let Some(k) = native.mask_key {
                        mask_key = Some((doc_place(i, "maskKey"), k));
                    }
                    if let Some(id) = native.identity {
                        identity = Some((doc_place(i, "identity"), id));
                    }
                    if let Some(a) = native.audit {
                        audit = Some((doc_place(i, "audit"), a));
                    }
                    if let Some(t) = native.tls {
                        tls = Some((doc_place(i, "tls"), t));
                    }
                    for (j, b) in native.backends.into_iter().enumerate() {
                        let BackendSpec {
                            name,
                            matcher,
                            ai,
                            policies,
                        } = b;
                        specs.push((
                            doc_place(i, &format!("backends[{j}]")),
                            name,
                            matcher,
                            ai,
                            policies,
                        ));
                    }
                }
                DocForm::Settings => {
                    if saw_settings || saw_native {
                        return Err(err(
                            doc_place(i, ""),
                            "settings are given twice (a second PromptgateSettings document, or one beside a native policy); keep one"
                                .into(),
                        ));
                    }
                    saw_settings = true;
                    let doc: SettingsDoc = serde_path_to_error::deserialize(de).map_err(|e| {
                        err(
                            doc_place(i, &e.path().to_string()),
                            e.into_inner().to_string(),
                        )
                    })?;
                    debug_assert_eq!(doc.kind, "PromptgateSettings");
                    if let Some(k) = doc.spec.mask_key {
                        mask_key = Some((doc_place(i, "spec.maskKey"), k));
                    }
                    if let Some(id) = doc.spec.identity {
                        identity = Some((doc_place(i, "spec.identity"), id));
                    }
                    if let Some(a) = doc.spec.audit {
                        audit = Some((doc_place(i, "spec.audit"), a));
                    }
                    if let Some(t) = doc.spec.tls {
                        tls = Some((doc_place(i, "spec.tls"), t));
                    }
                }
                DocForm::K8s => {
                    let doc: K8sBackendDoc = serde_path_to_error::deserialize(de).map_err(|e| {
                        err(
                            doc_place(i, &e.path().to_string()),
                            e.into_inner().to_string(),
                        )
                    })?;
                    if !doc.api_version.starts_with("agentgateway.dev/") {
                        return Err(err(
                            doc_place(i, "apiVersion"),
                            format!(
                                "`{}` is not an agentgateway.dev API version",
                                doc.api_version
                            ),
                        ));
                    }
                    specs.push((
                        doc_place(i, "spec"),
                        doc.metadata.name,
                        None,
                        doc.spec.ai,
                        doc.spec.policies,
                    ));
                }
            }
        }
        if specs.is_empty() {
            return Err(err(String::new(), "the policy defines no backend".into()));
        }

        let secrets_dir = opts.secrets_dir.clone().or(secrets_dir);
        let mask_key = match &mask_key {
            Some((place, spec)) => {
                mask_key::resolve(place, Some(spec), secrets_dir.as_deref(), &mut warnings)
            }
            None => mask_key::resolve("maskKey", None, secrets_dir.as_deref(), &mut warnings),
        }
        .map_err(|(p, m)| err(p, m))?;
        let identity = identity
            .map(|(place, spec)| identity::compile(&place, &spec))
            .transpose()
            .map_err(|(p, m)| err(p, m))?;
        let audit = audit
            .map(|(place, spec)| audit::compile(&place, &spec))
            .transpose()
            .map_err(|(p, m)| err(p, m))?;
        let tls = tls
            .map(|(place, spec)| tls::compile(&place, &spec, dir))
            .transpose()
            .map_err(|(p, m)| err(p, m))?;
        let mut backends: Vec<Backend> = Vec::with_capacity(specs.len());
        for (place, name, matcher, ai, policies) in specs {
            if name.is_empty() {
                return Err(err(place, "a backend needs a non-empty name".into()));
            }
            if backends.iter().any(|b| b.name == name) {
                return Err(err(place, format!("backend name `{name}` is used twice")));
            }
            let backend = compile_backend(
                &place,
                name,
                matcher,
                ai,
                policies,
                &backend::Folders {
                    secrets: secrets_dir.as_deref(),
                    policy: dir,
                },
                &mut warnings,
            )
            .map_err(|(p, m)| err(p, m))?;
            let mut backend = backend;
            backend.set_mask_key(&mask_key);
            backends.push(backend);
        }
        if let Some(l) = &listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                return Err(err(
                    "listen".into(),
                    format!("`{l}` is not an address like 127.0.0.1:50051"),
                ));
            }
        }
        if let Some(l) = &admin_listen {
            if l.parse::<std::net::SocketAddr>().is_err() {
                return Err(err(
                    "admin.listen".into(),
                    format!("`{l}` is not an address like 127.0.0.1:9090"),
                ));
            }
        }
        let has_conditions = backends.iter().any(|b| b.reads_request_facts());
        Ok(Policy {
            has_conditions,
            origin: origin.to_owned(),
            listen,
            admin_listen,
            backends,
            mask_key,
            identity,
            audit,
            tls,
            warnings,
        })
    }
}

fn doc_place(index: usize, path: &str) -> String {
    match (index, path) {
        (0, "") => String::new(),
        (0, p) => p.to_owned(),
        (i, "") => format!("document {}", i + 1),
        (i, p) => format!("document {}: {p}", i + 1),
    }
}

enum DocForm {
    Empty,
    Native,
    K8s,
    Settings,
    Other { kind: String },
}

impl DocForm {
    fn of(value: &serde_yaml::Value) -> Result<DocForm, String> {
        let map = match value {
            serde_yaml::Value::Null => return Ok(DocForm::Empty),
            serde_yaml::Value::Mapping(m) => m,
            _ => return Err("a policy document must be a mapping".into()),
        };
        let get = |k: &str| map.get(k).and_then(|v| v.as_str());
        match (get("kind"), get("apiVersion")) {
            (Some("AgentgatewayBackend"), _) => Ok(DocForm::K8s),
            (Some("PromptgateSettings"), Some(api)) if api.starts_with("promptgate.dev/") => {
                Ok(DocForm::Settings)
            }
            (Some("PromptgateSettings"), api) => Err(format!(
                "PromptgateSettings needs `apiVersion: promptgate.dev/v1alpha1`, not {}",
                api.map_or("none".to_owned(), |a| format!("`{a}`"))
            )),
            (Some(kind), Some(api)) if api.starts_with("agentgateway.dev/") => Err(format!(
                "kind `{kind}` of {api} is not supported; promptgate reads AgentgatewayBackend"
            )),
            (Some(kind), _) => Ok(DocForm::Other {
                kind: kind.to_owned(),
            }),
            (None, _)
                if map.contains_key("backends")
                    || map.contains_key("listen")
                    || map.contains_key("admin")
                    || map.contains_key("maskKey")
                    || map.contains_key("identity")
                    || map.contains_key("audit")
                    || map.contains_key("tls")
                    || map.contains_key("secretsDir") =>
            {
                Ok(DocForm::Native)
            }
            (None, _) => Err(
                "neither a native policy (`backends:`) nor an `AgentgatewayBackend` document"
                    .into(),
            ),
        }
    }
}

type PlaceErr = (String, String);

fn join(place: &str, rest: &str) -> String {
    if place.is_empty() {
        rest.to_owned()
    } else if place.ends_with(':') {
        format!("{place} {rest}")
    } else {
        format!("{place}.{rest}")
    }
}

#[cfg(test)]
mod tests;
