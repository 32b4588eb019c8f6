//! Hot reload: re-read the policy file and the secrets, validate, then swap.
//!
//! Triggers: SIGHUP, and a change in the folder of the policy file or in the
//! secrets folder (when watching is on). The folder, not the file, is
//! watched: a Kubernetes ConfigMap or Secret volume replaces its content with
//! an atomic swap of the `..data` symlink, which a watch on the file itself
//! would miss. Events are debounced, then the whole policy is loaded again
//! exactly as at start (same file, same `--secrets-dir`), so a reload can
//! never produce a policy that a restart would not.
//!
//! A policy that fails to load leaves the current one serving; the error is
//! logged with its file and place and counted ([`counts`]). A successful
//! load replaces the policy with one `ArcSwap::store`: streams already open
//! keep the policy they started with, new streams get the new one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode, Watcher};

use crate::policy::{LoadOptions, Policy, PolicyError};

static RELOADS_OK: AtomicU64 = AtomicU64::new(0);
static RELOADS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Reload outcomes since the process started (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReloadCounts {
    pub succeeded: u64,
    pub failed: u64,
}

/// Reload outcomes since the process started.
pub fn counts() -> ReloadCounts {
    ReloadCounts {
        succeeded: RELOADS_OK.load(Ordering::Relaxed),
        failed: RELOADS_FAILED.load(Ordering::Relaxed),
    }
}

/// Where the policy comes from: a file (or the embedded default) and the
/// command-line options it was first loaded with.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub config: Option<PathBuf>,
    pub options: LoadOptions,
}

impl PolicySource {
    pub fn load(&self) -> Result<Policy, PolicyError> {
        match &self.config {
            Some(path) => Policy::from_file(path, &self.options),
            None => Policy::embedded_default(&self.options),
        }
    }

    /// Folders whose changes trigger a reload: the policy file's folder
    /// (and its symlink target's, if elsewhere) and the secrets folder
    /// (`--secrets-dir`, else the file's `secretsDir`).
    fn watched(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut out: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        let mut add = |p: PathBuf, mode| {
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, mode));
            }
        };
        if let Some(config) = &self.config {
            let dir = parent_dir(config);
            add(dir.clone(), RecursiveMode::NonRecursive);
            // A symlink to a file elsewhere: watch there too. (Kubernetes'
            // `..data/…` targets live inside the folder and are replaced
            // on every update: the folder watch covers them.)
            if let Ok(real) = std::fs::canonicalize(config) {
                let real_dir = parent_dir(&real);
                let dir_real = std::fs::canonicalize(&dir).unwrap_or(dir);
                if !real_dir.starts_with(&dir_real) {
                    add(real_dir, RecursiveMode::NonRecursive);
                }
            }
        }
        let secrets = self
            .options
            .secrets_dir
            .clone()
            .or_else(|| self.config.as_deref().and_then(secrets_dir_of));
        if let Some(dir) = secrets {
            add(dir, RecursiveMode::Recursive);
        }
        out
    }

    /// Whether a file-system event concerns the policy: any change in the
    /// secrets folder, and in the policy's folder a change of the file itself,
    /// of a `.toml` file (a gitleaks config) or of Kubernetes' `..data` links
    /// and timestamped folders.
    fn concerns(&self, event: &notify::Event) -> bool {
        if matches!(event.kind, EventKind::Access(_)) {
            // promptgate's own reads of the files must not trigger reloads.
            return false;
        }
        let Some(config) = &self.config else {
            return true;
        };
        let names: Vec<std::ffi::OsString> =
            [Some(config.clone()), std::fs::canonicalize(config).ok()]
                .into_iter()
                .flatten()
                .filter_map(|p| p.file_name().map(|n| n.to_owned()))
                .collect();
        let config_dirs: Vec<PathBuf> = [
            Some(parent_dir(config)),
            std::fs::canonicalize(config).ok().map(|p| parent_dir(&p)),
        ]
        .into_iter()
        .flatten()
        .collect();
        event.paths.iter().any(|p| {
            let in_config_dir = config_dirs.iter().any(|d| p.parent() == Some(d.as_path()));
            if !in_config_dir {
                return true; // the secrets folder
            }
            // `.toml` beside the policy: a gitleaks config it may load
            // (`regex.gitleaks`).
            p.file_name().is_some_and(|n| {
                names.iter().any(|c| c == n) || n.to_string_lossy().starts_with("..")
            }) || p.extension().is_some_and(|e| e == "toml")
        }) || event.paths.is_empty()
    }
}

/// The folder of `p`, absolute (watch events carry absolute paths).
fn parent_dir(p: &Path) -> PathBuf {
    let p = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("/"),
    }
}

/// `secretsDir:` of a native policy file, if any (the watcher needs it
/// before the file is compiled).
fn secrets_dir_of(config: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).ok()?;
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc).ok()?;
        if let Some(dir) = value.get("secretsDir").and_then(|v| v.as_str()) {
            return Some(PathBuf::from(dir));
        }
    }
    None
}

/// Reloads a shared policy from its source.
pub struct Reloader {
    source: PolicySource,
    current: Arc<ArcSwap<Policy>>,
}

impl Reloader {
    pub fn new(source: PolicySource, current: Arc<ArcSwap<Policy>>) -> Self {
        Reloader { source, current }
    }

    /// Loads and validates the policy again; on success swaps it in, on
    /// failure keeps the current one. Logs and counts either way.
    pub fn reload(&self, trigger: &str) -> Result<(), PolicyError> {
        match self.source.load() {
            Ok(policy) => {
                for w in &policy.warnings {
                    tracing::warn!(warning = %w, "policy");
                }
                tracing::info!(
                    trigger,
                    origin = %policy.origin,
                    backends = policy.backends.len(),
                    "policy reloaded"
                );
                self.current.store(Arc::new(policy));
                RELOADS_OK.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                RELOADS_FAILED.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    trigger,
                    origin = %e.origin,
                    place = %e.place,
                    problem = %e.message,
                    error = %e,
                    "policy reload failed; the previous policy keeps serving"
                );
                Err(e)
            }
        }
    }
}

/// Options of the reload loop.
#[derive(Debug, Clone, Copy)]
pub struct ReloadOptions {
    /// Watch the policy and secrets folders (else SIGHUP only).
    pub watch: bool,
    /// Quiet time after the last event before reloading.
    pub debounce: Duration,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        ReloadOptions {
            watch: true,
            debounce: Duration::from_millis(250),
        }
    }
}

/// Runs the reload loop until the process ends: SIGHUP and (if enabled)
/// file-system changes. Must be called within a Tokio runtime.
pub async fn run(reloader: Arc<Reloader>, opts: ReloadOptions) {
    let filter = reloader.source.clone();
    let watch = opts.watch.then(|| Watch {
        what: "policy",
        dirs: reloader.source.watched(),
        concerns: Box::new(move |e| filter.concerns(e)),
    });
    on_triggers(watch, opts.debounce, move |trigger| {
        let _ = reloader.reload(trigger);
    })
    .await;
}

/// Folders to watch for a reload, and which of their events matter.
pub struct Watch {
    /// What is reloaded, for the log lines ("policy", "TLS certificates").
    pub what: &'static str,
    pub dirs: Vec<(PathBuf, RecursiveMode)>,
    pub concerns: Box<dyn Fn(&notify::Event) -> bool + Send + Sync>,
}

/// The reload loop shared by the policy and the TLS certificates: SIGHUP
/// and (with `watch`) file changes are triggers; after a burst settles
/// (`debounce`), `reload` runs once on the blocking pool (it reads files
/// and compiles). Runs until the process ends.
pub async fn on_triggers<R>(watch: Option<Watch>, debounce: Duration, reload: R)
where
    R: Fn(&'static str) + Send + Sync + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<&'static str>(1);
    // Keep the watcher alive for as long as the loop runs.
    let _watcher = watch.and_then(|w| start_watcher(w, tx.clone()));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        // A full channel means a reload is pending anyway.
                        let _ = tx.try_send("SIGHUP");
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
        }
    }
    drop(tx);
    let reload = Arc::new(reload);
    while let Some(first) = rx.recv().await {
        let mut trigger = first;
        // Debounce: a ConfigMap update is a burst of events.
        while let Ok(Some(t)) = tokio::time::timeout(debounce, rx.recv()).await {
            if t == "SIGHUP" {
                trigger = t;
            }
        }
        let r = reload.clone();
        let _ = tokio::task::spawn_blocking(move || r(trigger)).await;
    }
}

fn start_watcher(
    watch: Watch,
    tx: tokio::sync::mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    let Watch {
        what,
        dirs,
        concerns,
    } = watch;
    let handler = move |res: notify::Result<notify::Event>| match res {
        Ok(event) if concerns(&event) => {
            tracing::debug!(what, kind = ?event.kind, paths = ?event.paths, "watched files changed");
            let _ = tx.try_send("file change");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(what, error = %e, "file watcher error"),
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(what, error = %e, "cannot watch the files; reload with SIGHUP");
            return None;
        }
    };
    let mut any = false;
    for (dir, mode) in dirs {
        match watcher.watch(&dir, mode) {
            Ok(()) => {
                tracing::info!(what, dir = %dir.display(), "watching for changes");
                any = true;
            }
            Err(e) => tracing::warn!(what, dir = %dir.display(), error = %e, "cannot watch folder"),
        }
    }
    any.then_some(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n";
    const GOOD2: &str = "backends:\n- name: b\n  ai: {provider: {anthropic: {}}}\n";
    const BAD: &str = "backends:\n- name: a\n  ai: {provider: {anthropic: {}}}\n  policies: {ai: {promptGuard: {request: [{regex: {action: Reject, matchs: [x]}}]}}}\n";

    #[test]
    fn bad_policy_keeps_the_old_one_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let source = PolicySource {
            config: Some(path.clone()),
            options: LoadOptions::default(),
        };
        let current = Arc::new(ArcSwap::from_pointee(source.load().unwrap()));
        let reloader = Reloader::new(source, current.clone());
        let before = counts();

        std::fs::write(&path, BAD).unwrap();
        let err = reloader.reload("test").unwrap_err();
        assert!(err.place.contains("matchs"), "{err}");
        assert_eq!(current.load().backends[0].name, "a");
        assert!(counts().failed > before.failed);

        std::fs::write(&path, GOOD2).unwrap();
        reloader.reload("test").unwrap();
        assert_eq!(current.load().backends[0].name, "b");
        assert!(counts().succeeded > before.succeeded);
    }

    #[test]
    fn a_held_policy_survives_a_swap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let source = PolicySource {
            config: Some(path.clone()),
            options: LoadOptions::default(),
        };
        let current = Arc::new(ArcSwap::from_pointee(source.load().unwrap()));
        let held = current.load_full(); // what a stream does at its start
        std::fs::write(&path, GOOD2).unwrap();
        Reloader::new(source, current.clone())
            .reload("test")
            .unwrap();
        assert_eq!(held.backends[0].name, "a");
        assert_eq!(current.load().backends[0].name, "b");
    }

    #[test]
    fn kubernetes_names_and_the_file_concern_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, GOOD).unwrap();
        let source = PolicySource {
            config: Some(path.clone()),
            options: LoadOptions::default(),
        };
        let ev = |kind, p: PathBuf| notify::Event::new(kind).add_path(p);
        let create = EventKind::Create(notify::event::CreateKind::Any);
        assert!(source.concerns(&ev(create, path.clone())));
        assert!(source.concerns(&ev(create, dir.path().join("..data"))));
        assert!(source.concerns(&ev(create, dir.path().join("..2026_11_25_10_00_00.1"))));
        assert!(!source.concerns(&ev(create, dir.path().join("unrelated.txt"))));
        assert!(
            source.concerns(&ev(create, dir.path().join("gitleaks.toml"))),
            "a gitleaks config beside the policy"
        );
        let read = EventKind::Access(notify::event::AccessKind::Any);
        assert!(!source.concerns(&ev(read, path)));
    }

    #[test]
    fn secrets_dir_is_read_from_a_native_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.yaml");
        std::fs::write(&path, format!("secretsDir: /run/secrets\n{GOOD}")).unwrap();
        assert_eq!(secrets_dir_of(&path), Some(PathBuf::from("/run/secrets")));
    }
}
