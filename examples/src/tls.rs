//! TLS to the server (rustls with the ring provider): the proxies reach managed databases and
//! HTTPS APIs with the server's certificate checked against a CA bundle (the system's roots by
//! default) and the server's name. There is no unverified mode: brokered credentials go only
//! to a server that proves who it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Options for TLS to the server.
#[derive(Args, Debug, Clone, Default)]
pub struct UpstreamTls {
    /// TLS to the server: `disable` (plain TCP) or `verify-full` (the server's certificate
    /// checked against the CA bundle and the server's name; PostgreSQL: an SSLRequest first;
    /// MySQL: after the server's greeting, before the client's login).
    #[arg(long, value_name = "MODE", default_value = "disable", value_parser = ["disable", "verify-full"])]
    pub upstream_tls: String,
    /// CA bundle (PEM) the server's certificate must chain to (default: the system's roots).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of the upstream).
    #[arg(long, value_name = "NAME")]
    pub upstream_server_name: Option<String>,
}

impl UpstreamTls {
    /// Whether TLS to the server is on.
    pub fn enabled(&self) -> bool {
        self.upstream_tls == "verify-full"
    }
}

/// A connector for verified TLS: roots from `ca` (PEM), or the system's.
pub fn connector(ca: Option<&Path>) -> Result<TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("{}: no PEM certificate in it", path.display()));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: a certificate rustls cannot use: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // A system root rustls cannot parse is skipped, as browsers do.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("no system CA certificates found (give --upstream-ca FILE)".into());
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The crypto provider of every TLS connection the proxies make or accept: ring, which builds
/// with the C compiler alone (aws-lc-rs, rustls's preferred provider, needs cmake), at the cost
/// of the post-quantum key exchange rustls now nudges towards.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The name to verify: `given`, else the host part of `upstream` (`HOST:PORT`, `[V6]:PORT`).
pub fn server_name(given: Option<&str>, upstream: &str) -> Result<ServerName<'static>, String> {
    let host = match given {
        Some(n) => n,
        None => {
            let h = upstream.rsplit_once(':').map_or(upstream, |(h, _)| h);
            h.trim_start_matches('[').trim_end_matches(']')
        }
    };
    ServerName::try_from(host.to_owned()).map_err(|e| format!("{host:?} is not a server name: {e}"))
}

/// PostgreSQL's SSLRequest, then the TLS handshake: a server that does not offer TLS is an
/// error (never a fallback to plain text).
pub async fn postgres(
    connector: &TlsConnector,
    name: ServerName<'static>,
    mut tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .map_err(|e| e.to_string())?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(|e| e.to_string())?;
    if answer[0] != b'S' {
        return Err("the server does not offer TLS".into());
    }
    handshake(connector, name, tcp).await
}

/// The TLS handshake on a connected socket.
pub async fn handshake(
    connector: &TlsConnector,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with the server: {e}"))
}
