//! Test certificates (rcgen) and a gRPC client over mutual TLS (rustls),
//! for promptgate's TLS port.
//!
//! ```ignore
//! let ca = TestCa::new("promptgate test CA");
//! let files = ca.server_files(dir);                  // --tls-cert/--tls-key/--client-ca
//! let envoy = ca.client("envoy");                    // a client certificate
//! let ch = tls_channel(port, &ca, Some(&envoy)).await?;
//! ```

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// A certificate authority that signs server and client certificates.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate (PEM).
    pub cert_pem: String,
}

/// A certificate and its key (PEM).
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Paths of the server's files: what `--tls-cert`, `--tls-key` and
/// `--client-ca` (or `tls:`) take.
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

impl ServerFiles {
    /// `--tls-cert … --tls-key … --client-ca …`
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
            "--client-ca".into(),
            self.client_ca.display().to_string(),
        ]
    }
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            cert_pem: cert.pem(),
        }
    }

    fn leaf(&self, cn: &str, sans: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// promptgate's certificate: `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Leaf {
        self.leaf(
            "promptgate",
            vec!["localhost".into(), "127.0.0.1".into()],
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate (Envoy's, a test client's).
    pub fn client(&self, cn: &str) -> Leaf {
        self.leaf(cn, Vec::new(), rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Writes a server certificate of this CA and this CA as the client CA
    /// into `dir` (`server.crt`, `server.key`, `client-ca.crt`), replacing
    /// what is there.
    pub fn write_server_files(&self, dir: &Path) -> ServerFiles {
        std::fs::create_dir_all(dir).unwrap();
        let server = self.server();
        let files = ServerFiles {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            client_ca: dir.join("client-ca.crt"),
        };
        write_atomically(&files.cert, &server.cert_pem);
        write_atomically(&files.key, &server.key_pem);
        write_atomically(&files.client_ca, &self.cert_pem);
        files
    }
}

/// `launch` with promptgate serving mutual TLS (its certificate and client
/// CA from `ca`) and Envoy's promptgate cluster speaking it with a client
/// certificate of `client_ca` (`ca` itself for a trusted Envoy, another CA
/// for a refused one); the files are written under `dir`.
pub fn with_envoy_mtls(
    launch: super::launcher::Launch,
    ca: &TestCa,
    client_ca: &TestCa,
    dir: &Path,
) -> super::launcher::Launch {
    let files = ca.write_server_files(&dir.join("promptgate"));
    let (client_cert, client_key) = client_ca
        .client("envoy")
        .write(&dir.join("envoy"), "client");
    let server_ca = dir.join("envoy/ca.crt");
    std::fs::write(&server_ca, &ca.cert_pem).unwrap();
    let args = files.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    launch.args(&args).edit_envoy(move |cfg| {
        super::envoy::insert_promptgate_mtls(
            cfg,
            &super::envoy::PromptgateTls {
                client_cert: &client_cert,
                client_key: &client_key,
                server_ca: &server_ca,
            },
        )
    })
}

impl Leaf {
    /// Writes `<dir>/<name>.crt` and `<dir>/<name>.key`.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        write_atomically(&cert, &self.cert_pem);
        write_atomically(&key, &self.key_pem);
        (cert, key)
    }
}

/// Write-then-rename: a watcher never reads half a file.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A tonic channel to `127.0.0.1:port` over TLS: the server must present a
/// certificate of `trust` for `localhost`; `client` is the client
/// certificate offered (none: the handshake has none). Errors, of the
/// handshake included, show at the first call.
pub async fn tls_channel(
    port: u16,
    trust: &TestCa,
    client: Option<&Leaf>,
) -> Result<Channel, tonic::transport::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(trust.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect_with_connector(TlsConnector {
            config: Arc::new(config),
            port,
        })
        .await
}

/// A plaintext (h2c) channel, as Envoy without TLS opens.
pub async fn plain_channel(port: u16) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5))
        .connect()
        .await
}

#[derive(Clone)]
struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    port: u16,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>>
            + Send,
    >,
>;

impl tonic::codegen::Service<Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Connecting {
        let (config, port) = (self.config.clone(), self.port);
        Box::pin(async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
