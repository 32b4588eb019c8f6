//! Certificates reloaded on change, like the policy (see [`crate::reload`]):
//! the folders of the three files are watched (a Kubernetes Secret volume
//! swaps its `..data` link, which a watch on the files would miss), and
//! SIGHUP reloads too. After a burst of events settles, the files are read
//! again; a configuration that loads replaces the current one for new
//! connections (open connections keep theirs), one that does not is logged
//! and counted and the current one keeps serving.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecursiveMode};
use rustls::ServerConfig;

use super::TlsFiles;

/// Quiet time after the last event before the files are read.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Reads the files again and swaps the configuration in when they load.
pub fn reload(
    files: &TlsFiles,
    current: &ArcSwap<ServerConfig>,
    trigger: &str,
) -> Result<(), super::TlsError> {
    match super::load(files) {
        Ok(config) => {
            current.store(config);
            crate::telemetry::metrics().tls_reload(true);
            tracing::info!(trigger, cert = %files.cert.display(), "TLS certificates reloaded");
            Ok(())
        }
        Err(e) => {
            crate::telemetry::metrics().tls_reload(false);
            tracing::error!(
                trigger,
                error = %e,
                "TLS reload failed; the previous certificates keep serving"
            );
            Err(e)
        }
    }
}

/// The folders to watch, and the file names in them that matter.
fn watched(files: &TlsFiles) -> (Vec<PathBuf>, Vec<OsString>) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut names: Vec<OsString> = Vec::new();
    for f in [&files.cert, &files.key, &files.client_ca] {
        let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
        for p in [Some(abs), std::fs::canonicalize(f).ok()]
            .into_iter()
            .flatten()
        {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dirs.iter().any(|d| d == dir) {
                    dirs.push(dir.to_path_buf());
                }
            }
            if let Some(n) = p.file_name() {
                if !names.iter().any(|m| m == n) {
                    names.push(n.to_owned());
                }
            }
        }
    }
    (dirs, names)
}

/// Whether an event is a change of one of the files (or of a Kubernetes
/// `..data` link or timestamped folder beside them).
fn concerns(names: &[OsString], event: &notify::Event) -> bool {
    if matches!(event.kind, EventKind::Access(_)) {
        return false; // our own reads
    }
    event.paths.is_empty()
        || event.paths.iter().any(|p: &PathBuf| {
            p.file_name().is_some_and(|n| {
                names.iter().any(|m| m == n) || n.to_string_lossy().starts_with("..")
            })
        })
}

/// Runs until the process ends: reloads `current` from `files` on SIGHUP
/// and, when `watch` is on, on changes of the files (the loop is
/// [`crate::reload::on_triggers`], the policy's).
pub async fn run(files: TlsFiles, current: Arc<ArcSwap<ServerConfig>>, watch: bool) {
    let watch = watch.then(|| {
        let (dirs, names) = watched(&files);
        crate::reload::Watch {
            what: "TLS certificates",
            dirs: dirs
                .into_iter()
                .map(|d| (d, RecursiveMode::NonRecursive))
                .collect(),
            concerns: Box::new(move |e| concerns(&names, e)),
        }
    });
    crate::reload::on_triggers(watch, DEBOUNCE, move |trigger| {
        let _ = reload(&files, &current, trigger);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: dir.join("ca.crt"),
        }
    }

    #[test]
    fn the_files_and_kubernetes_links_concern_the_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (dirs, names) = watched(&files(dir.path()));
        assert_eq!(dirs, vec![dir.path().to_path_buf()]);
        let ev = |kind, p: PathBuf| notify::Event::new(kind).add_path(p);
        let create = EventKind::Create(notify::event::CreateKind::Any);
        assert!(concerns(&names, &ev(create, dir.path().join("tls.key"))));
        assert!(concerns(&names, &ev(create, dir.path().join("..data"))));
        assert!(!concerns(&names, &ev(create, dir.path().join("notes.txt"))));
        let read = EventKind::Access(notify::event::AccessKind::Any);
        assert!(!concerns(&names, &ev(read, dir.path().join("tls.crt"))));
    }
}
