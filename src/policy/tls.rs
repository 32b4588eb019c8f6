//! The `tls` setting compiled: the three files of the ext_proc port's TLS,
//! relative to the policy file's folder (see [`crate::tls`]; `serve` reads
//! them).

use std::path::Path;

use super::config::TlsSpec;
use super::{join, PlaceErr};
use crate::tls::TlsFiles;

pub(super) fn compile(place: &str, spec: &TlsSpec, dir: &Path) -> Result<TlsFiles, PlaceErr> {
    let file = |field: &str, p: &Path| {
        if p.as_os_str().is_empty() {
            Err((join(place, field), "must name a PEM file".to_owned()))
        } else {
            Ok(dir.join(p))
        }
    };
    Ok(TlsFiles {
        cert: file("certFile", &spec.cert_file)?,
        key: file("keyFile", &spec.key_file)?,
        client_ca: file("clientCaFile", &spec.client_ca_file)?,
    })
}
