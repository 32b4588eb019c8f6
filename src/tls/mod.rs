//! promptgate's own door: the ext_proc port over TLS with client
//! certificates.
//!
//! Whoever can speak ext_proc to promptgate receives the provider keys in
//! its header mutations, so with `tls` set (or `--tls-cert`, `--tls-key`,
//! `--client-ca`) the port answers only clients whose certificate is signed
//! by the client CA (mutual TLS); everyone else fails the handshake and
//! never reaches gRPC. Without it the port is plaintext h2c, meant for
//! loopback.
//!
//! * [`config`] — the three PEM files read into a rustls `ServerConfig`.
//! * [`acceptor`] — the accept loop: a handshake per connection, off the
//!   loop and bounded in time; failed handshakes are counted, never fatal.
//! * [`reload`] — the files watched (and SIGHUP): a new `ServerConfig` for
//!   new connections, the old one kept when the new files do not load.

pub mod acceptor;
pub mod config;
pub mod reload;

use std::path::PathBuf;

pub use acceptor::{incoming, TlsConn, HANDSHAKE_TIMEOUT};
pub use config::{load, TlsError};

/// The three files of the ext_proc port's TLS (`tls:` in the policy, or
/// the `serve` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The CA(s) (PEM) that client certificates must chain to.
    pub client_ca: PathBuf,
}
