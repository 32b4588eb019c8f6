//! The ext_proc port's TLS settings read from their PEM files into a rustls
//! `ServerConfig`: the server's certificate chain and key, and the CA that
//! every client certificate must chain to (client authentication required).

use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsFiles;

/// Why the TLS files did not make a server configuration: the file (when
/// one is to blame) and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// What the file is (`certificate`, `key`, `client CA`) and its path;
    /// empty when the files only fail together (a key that does not match).
    pub file: String,
    pub message: String,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.file.is_empty() {
            write!(f, "TLS: {}", self.message)
        } else {
            write!(f, "TLS {}: {}", self.file, self.message)
        }
    }
}

impl std::error::Error for TlsError {}

fn read(what: &str, path: &Path) -> Result<(String, Vec<u8>), TlsError> {
    let file = format!("{what} {}", path.display());
    match std::fs::read(path) {
        Ok(bytes) => Ok((file, bytes)),
        Err(e) => Err(TlsError {
            file,
            message: format!("cannot read: {e}"),
        }),
    }
}

fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let (file, bytes) = read(what, path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError {
            file: file.clone(),
            message: format!("not a PEM certificate file: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError {
            file,
            message: "holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)".into(),
        });
    }
    Ok(certs)
}

/// Reads the three files and builds the server configuration: TLS 1.2 and
/// 1.3 with rustls' safe defaults (ring), ALPN `h2`, and a client
/// certificate signed by `client_ca` required of every client.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates("certificate", &files.cert)?;
    let (key_file, key_bytes) = read("key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError {
        file: key_file.clone(),
        message: format!("no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
    })?;
    let ca_file = format!("client CA {}", files.client_ca.display());
    let mut roots = RootCertStore::empty();
    for ca in certificates("client CA", &files.client_ca)? {
        roots.add(ca).map_err(|e| TlsError {
            file: ca_file.clone(),
            message: format!("not a usable CA certificate: {e}"),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError {
            file: ca_file,
            message: format!("cannot verify clients with it: {e}"),
        })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError {
            file: String::new(),
            message: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError {
            file: String::new(),
            message: match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => format!(
                    "the key {} does not belong to the certificate {}",
                    files.key.display(),
                    files.cert.display()
                ),
                e => format!(
                    "certificate {} with key {}: {e}",
                    files.cert.display(),
                    files.key.display()
                ),
            },
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
            client_ca: dir.join("ca.pem"),
        }
    }

    /// A CA, a server certificate it signed, and the server's key.
    fn write_pki(dir: &Path) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    }

    #[test]
    fn good_files_make_a_config_with_h2() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let config = load(&files(dir.path())).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
        let e = load(&files(dir.path())).unwrap_err();
        assert!(e.file.starts_with("client CA "), "{e}");
        assert!(e.file.ends_with("ca.pem"), "{e}");
        assert!(e.message.starts_with("cannot read:"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        let other = rcgen::KeyPair::generate().unwrap();
        std::fs::write(dir.path().join("server.key"), other.serialize_pem()).unwrap();
        let e = load(&files(dir.path())).unwrap_err();
        assert!(
            e.to_string().contains("does not belong to the certificate"),
            "{e}"
        );
    }

    #[test]
    fn files_without_pem_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_pki(dir.path());
        std::fs::write(dir.path().join("server.pem"), "not a certificate\n").unwrap();
        let e = load(&files(dir.path())).unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        write_pki(dir.path());
        std::fs::write(dir.path().join("server.key"), "").unwrap();
        let e = load(&files(dir.path())).unwrap_err();
        assert!(e.file.starts_with("key "), "{e}");
        assert!(e.message.contains("no PEM private key"), "{e}");
    }
}
