//! `http-proxy`: a forward proxy for an agent's HTTP calls. Point the agent at it with
//! `HTTP_PROXY=http://127.0.0.1:8080` (and `HTTPS_PROXY` for CONNECT decisions by host); every
//! request is decided by the policy, refusals are `403` with a JSON body, response bodies are
//! masked (decompressing gzip, deflate and br).
//!
//! ```sh
//! cargo run --release -p sluice-examples --example http-proxy -- --listen 127.0.0.1:8080 [--policy FILE]
//! curl -x http://127.0.0.1:8080 http://api.example.test/v1/items
//! ```
//!
//! Reverse-proxy mode, `--upstream https://api.example.test` (or `http://…`): the agent sends
//! plain requests to the proxy as if it were the API (`curl http://127.0.0.1:8080/v1/items`),
//! decided and brokered for that origin, and the proxy calls it over verified TLS
//! (`--upstream-ca FILE`, default the system's roots).
//!
//! HTTPS interception, `--intercept-ca CA.pem --intercept-ca-key CA.key`: an allowed `CONNECT`
//! is answered with TLS under a certificate for its host minted by that CA (the agent must trust
//! it), and every request inside is decided, brokered and masked like a plain one, then sent to
//! the host over verified TLS. Without it:
//!
//! HTTPS (`CONNECT`) is decided by host and port; the tunnel must then start with a TLS
//! ClientHello (plain traffic is refused) and is relayed without inspection: this example does
//! not terminate TLS. Every name is decided again on the addresses it resolves to. Timeouts:
//! `--connect-timeout` (10 s), `--idle-timeout` (60 s, request heads and idle connections),
//! `--upstream-timeout` (300 s between response reads); an unreachable or silent upstream is a
//! `502` / `504`. One JSON line per decision goes to stderr.

use clap::Parser;
use sluice_core::policy::{Identity, Target};
use sluice_core::session::Output;
use sluice_core::session::http::HttpSession;
use std::time::Duration;

use sluice_examples::{Common, accept, default_user, log, session_guard, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

#[derive(Parser, Debug)]
#[command(name = "http-proxy", about = "A forward HTTP proxy enforcing a Sluice policy")]
struct Cli {
    /// Address to listen on (HOST:PORT).
    #[arg(long)]
    listen: String,
    /// Who the agent behind this proxy is (default: $USER, else `agent`).
    #[arg(long)]
    user: Option<String>,
    /// Target name for decisions (default: each request's host).
    #[arg(long)]
    target: Option<String>,
    /// Seconds a client may take to send a whole request (head and body), and a connection may
    /// stay idle between requests.
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    idle_timeout: u64,
    /// Seconds to wait for the upstream's response (between reads).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    upstream_timeout: u64,
    /// Reverse-proxy mode: every request goes to this origin (`https://HOST[:PORT]` over
    /// verified TLS, or `http://HOST[:PORT]`), whatever its Host header says.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,
    /// CA bundle (PEM) the origin's certificate must chain to (default: the system's roots);
    /// for intercepted hosts too.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<std::path::PathBuf>,
    /// HTTPS interception: the CA certificate (PEM) that signs a certificate for each host an
    /// allowed CONNECT names (the agent must trust this CA).
    #[arg(long, value_name = "FILE", requires = "intercept_ca_key")]
    intercept_ca: Option<std::path::PathBuf>,
    /// The CA's private key (PEM, PKCS#8).
    #[arg(long, value_name = "FILE", requires = "intercept_ca")]
    intercept_ca_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: Common,
}

/// Timeouts of one connection.
#[derive(Clone, Copy)]
struct Timeouts {
    connect: Duration,
    idle: Duration,
    upstream: Duration,
}

/// A connection to the upstream, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

/// Reverse-proxy mode: the origin (TLS, host, port) and, for TLS, the verifying connector.
struct Origin {
    tls: Option<tokio_rustls::TlsConnector>,
    host: String,
    port: u16,
}

/// Minted certificates kept for reuse (forgotten all at once when full).
const MINTED_MAX: usize = 1024;

/// HTTPS interception: certificates minted per host by the CA the host provides, and the
/// connector that verifies the real hosts.
struct Interceptor {
    issuer: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// One server configuration per host, minted once.
    minted: std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<rustls::ServerConfig>>>,
    upstream: tokio_rustls::TlsConnector,
}

impl Interceptor {
    fn load(
        cert: &std::path::Path,
        key: &std::path::Path,
        upstream_ca: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let key_pair = rcgen::KeyPair::from_pem(&read(key)?)
            .map_err(|e| format!("{}: not a PEM private key rcgen can sign with: {e}", key.display()))?;
        let issuer = rcgen::CertificateParams::from_ca_cert_pem(&read(cert)?)
            .map_err(|e| format!("{}: not a PEM CA certificate: {e}", cert.display()))?
            .self_signed(&key_pair)
            .map_err(|e| format!("{}: the key does not fit the certificate: {e}", key.display()))?;
        Ok(Interceptor {
            issuer,
            key: key_pair,
            minted: Default::default(),
            upstream: sluice_examples::tls::connector(upstream_ca)?,
        })
    }

    /// The TLS acceptor presenting a certificate for `host` (minted on first use).
    fn acceptor(&self, host: &str) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut minted = self.minted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = minted.get(host) {
            return Ok(tokio_rustls::TlsAcceptor::from(c.clone()));
        }
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).map_err(|e| e.to_string())?;
        params.distinguished_name.push(rcgen::DnType::CommonName, host);
        let leaf = params
            .signed_by(&leaf_key, &self.issuer, &self.key)
            .map_err(|e| format!("minting a certificate for {host}: {e}"))?;
        let config = rustls::ServerConfig::builder_with_provider(sluice_examples::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .map_err(|e| e.to_string())?;
        let config = std::sync::Arc::new(config);
        // Bounded: an agent naming ever new hosts cannot grow the cache without end.
        if minted.len() >= MINTED_MAX {
            minted.clear();
        }
        minted.insert(host.to_string(), config.clone());
        Ok(tokio_rustls::TlsAcceptor::from(config))
    }
}

impl Origin {
    /// `https://HOST[:PORT]` or `http://HOST[:PORT]` (a trailing `/` at most).
    fn parse(url: &str, ca: Option<&std::path::Path>) -> Result<Origin, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!(
                "--upstream {url}: give https://HOST[:PORT] or http://HOST[:PORT]"
            ));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "--upstream {url}: an origin only (scheme, host, port), no path or user"
            ));
        }
        let default = if tls { 443 } else { 80 };
        // `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
        let (host, port) = match authority.strip_prefix('[').and_then(|r| r.split_once(']')) {
            Some((h, "")) => (h, None),
            Some((h, p)) => (h, Some(p.strip_prefix(':').unwrap_or(p))),
            None => match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port {
            None => default,
            Some(p) => p.parse().map_err(|_| format!("--upstream {url}: bad port {p:?}"))?,
        };
        let host = host.to_string();
        let tls = if tls {
            Some(sluice_examples::tls::connector(ca)?)
        } else {
            None
        };
        Ok(Origin { tls, host, port })
    }
}

/// What every connection shares: the reverse-proxy origin and the interceptor.
#[derive(Clone, Copy)]
struct Modes<'a> {
    origin: Option<&'a Origin>,
    intercept: Option<&'a Interceptor>,
}

async fn serve(
    mut client: Box<dyn Stream>,
    mut session: HttpSession,
    modes: Modes<'_>,
    t: Timeouts,
) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Output::default();
    let mut input: Vec<u8> = Vec::new();
    // A whole request must arrive within the idle timeout (not each read: a client sending a
    // byte at a time would otherwise hold the connection forever).
    let mut deadline = tokio::time::Instant::now() + t.idle;
    loop {
        out.clear();
        let r = session.from_client(&input, &mut out);
        input.clear();
        client.write_all(&out.to_client).await.map_err(|e| e.to_string())?;
        r.map_err(|e| e.to_string())?;
        if let Some(u) = session.upstream() {
            let request = std::mem::take(&mut out.to_server);
            upstream(&mut client, &mut session, modes, u, &request, &mut buf, t).await?;
            if session.tunnel() {
                return Ok(());
            }
            deadline = tokio::time::Instant::now() + t.idle;
            // A pipelined request may already be buffered.
            continue;
        }
        if !out.to_client.is_empty() {
            deadline = tokio::time::Instant::now() + t.idle;
            continue; // a refusal; the next request may be buffered too
        }
        let n = match tokio::time::timeout_at(deadline, client.read(&mut buf)).await {
            Err(_) => {
                // A request cut short gets a 408; an idle connection just closes.
                if !input.is_empty() || session.has_partial_request() {
                    let _ = client
                        .write_all(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                }
                let _ = client.shutdown().await;
                return Err("client idle or too slow to send a request: closed".into());
            }
            Ok(r) => r.map_err(|e| e.to_string())?,
        };
        if n == 0 {
            return Ok(());
        }
        input.extend_from_slice(&buf[..n]);
    }
}

/// Fails the request with a 502/504 to the client (when no response has started) and ends the
/// connection.
async fn fail(
    client: &mut Box<dyn Stream>,
    session: &mut HttpSession,
    why: String,
    timed_out: bool,
) -> Result<(), String> {
    let mut out = Output::default();
    session.upstream_failed(&why, timed_out, &mut out);
    let _ = client.write_all(&out.to_client).await;
    let _ = client.shutdown().await;
    Err(why)
}

/// Sends one allowed request upstream and relays its (masked) response, or opens a tunnel.
async fn upstream(
    client: &mut Box<dyn Stream>,
    session: &mut HttpSession,
    modes: Modes<'_>,
    (host, port): (String, u16),
    request: &[u8],
    buf: &mut [u8],
    t: Timeouts,
) -> Result<(), String> {
    // Decide again on each address the name resolves to: a name pointing at a protected
    // address is refused like the address.
    let addrs: Vec<std::net::SocketAddr> =
        match timeout(t.connect, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => return fail(client, session, format!("cannot resolve {host}: {e}"), false).await,
            Err(_) => return fail(client, session, format!("resolving {host} timed out"), true).await,
        };
    let mut refusal = Output::default();
    for a in &addrs {
        if !session.decide_address(a.ip(), port, &mut refusal) {
            client.write_all(&refusal.to_client).await.map_err(|e| e.to_string())?;
            let _ = client.shutdown().await;
            return Err(format!("{host} resolves to {}, which the policy refuses", a.ip()));
        }
    }
    if session.tunnel()
        && let Some(intercept) = modes.intercept
    {
        // Interception: TLS with the agent under a certificate for the host, then every
        // request inside decided like a plain one and sent to the host over verified TLS.
        let acceptor = intercept.acceptor(&host)?;
        let tls = match timeout(
            t.idle,
            acceptor.accept(std::mem::replace(client, Box::new(tokio::io::empty()))),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("TLS with the agent for {host}: {e}")),
            Err(_) => return Err(format!("TLS with the agent for {host} timed out")),
        };
        let inner = session.intercept(&host, port);
        let origin = Origin {
            tls: Some(intercept.upstream.clone()),
            host: host.clone(),
            port,
        };
        let modes = Modes {
            origin: Some(&origin),
            intercept: None,
        };
        return Box::pin(serve(Box::new(tls), inner, modes, t)).await;
    }
    let tcp = match timeout(t.connect, TcpStream::connect(&addrs[..])).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return fail(client, session, format!("cannot reach {host}:{port}: {e}"), false).await,
        Err(_) => return fail(client, session, format!("connecting to {host}:{port} timed out"), true).await,
    };
    let mut server: Box<dyn Stream> = match modes.origin.and_then(|o| o.tls.as_ref()) {
        None => Box::new(tcp),
        Some(connector) => {
            let name = match sluice_examples::tls::server_name(Some(&host), "") {
                Ok(n) => n,
                Err(e) => return fail(client, session, e, false).await,
            };
            match timeout(t.connect, sluice_examples::tls::handshake(connector, name, tcp)).await {
                Ok(Ok(s)) => Box::new(s),
                Ok(Err(e)) => return fail(client, session, format!("{host}:{port}: {e}"), false).await,
                Err(_) => return fail(client, session, format!("TLS with {host}:{port} timed out"), true).await,
            }
        }
    };
    if session.tunnel() {
        // The first client bytes must open TLS: plain traffic is not tunnelled uninspected.
        // They are held until the check is complete, however the client cuts them.
        let mut head = Vec::new();
        let deadline = tokio::time::Instant::now() + t.idle;
        while !session.tunnel_checked() {
            let n = match tokio::time::timeout_at(deadline, client.read(buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return Err("tunnel: the client did not start a TLS handshake in time".into()),
            };
            if let Err(e) = session.tunnel_client(&buf[..n]) {
                let _ = client.shutdown().await;
                return Err(e.to_string());
            }
            head.extend_from_slice(&buf[..n]);
        }
        server.write_all(&head).await.map_err(|e| e.to_string())?;
        tokio::io::copy_bidirectional(&mut **client, &mut *server)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    server.write_all(request).await.map_err(|e| e.to_string())?;
    let mut out = Output::default();
    while !session.response_done() {
        let n = match timeout(t.upstream, server.read(buf)).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return fail(client, session, format!("reading from {host}: {e}"), false).await,
            Err(_) => return fail(client, session, format!("{host} did not answer in time"), true).await,
        };
        out.clear();
        let r = session.from_server(&buf[..n], &mut out);
        client.write_all(&out.to_client).await.map_err(|e| e.to_string())?;
        if let Err(e) = r {
            // A response cut or refused half-way: the client sees the connection end (never a
            // body that looks complete).
            let _ = client.shutdown().await;
            return Err(e.to_string());
        }
        if n == 0 {
            break;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    let (guard, listener) = match start("http-proxy", &mut cli.common, &cli.listen).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let user = default_user(cli.user.as_deref());
    let origin = match cli
        .upstream
        .as_deref()
        .map(|u| Origin::parse(u, cli.upstream_ca.as_deref()))
    {
        None => None,
        Some(Ok(o)) => Some(std::sync::Arc::new(o)),
        Some(Err(e)) => {
            eprintln!("http-proxy: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let intercept = match (&cli.intercept_ca, &cli.intercept_ca_key) {
        (Some(c), Some(k)) => match Interceptor::load(c, k, cli.upstream_ca.as_deref()) {
            Ok(i) => Some(std::sync::Arc::new(i)),
            Err(e) => {
                eprintln!("http-proxy: {e}");
                return std::process::ExitCode::from(2);
            }
        },
        _ => None,
    };
    match &cli.upstream {
        Some(u) => log(
            "http-proxy",
            &format!("listening on {}, reverse proxy to {u}", cli.listen),
        ),
        None => log("http-proxy", &format!("listening on {}", cli.listen)),
    }
    let t = Timeouts {
        connect: cli.common.connect(),
        idle: Duration::from_secs(cli.idle_timeout),
        upstream: Duration::from_secs(cli.upstream_timeout),
    };
    loop {
        let (client, peer) = accept(&listener).await;
        let guard = match session_guard(
            "http-proxy",
            &guard,
            &cli.common,
            "http",
            Some(&user),
            cli.target.as_deref(),
        ) {
            Ok(g) => g,
            Err(e) => {
                log("http-proxy", &format!("{peer}: cannot record the session: {e}"));
                continue;
            }
        };
        let mut session = HttpSession::new(guard, Identity::new(user.clone()), cli.target.clone().map(Target::new));
        if let Some(o) = &origin {
            session = session.with_origin(o.tls.is_some(), &o.host, o.port);
        }
        let (origin, intercept) = (origin.clone(), intercept.clone());
        tokio::spawn(async move {
            let _ = client.set_nodelay(true);
            let modes = Modes {
                origin: origin.as_deref(),
                intercept: intercept.as_deref(),
            };
            if let Err(e) = serve(Box::new(client), session, modes, t).await
                && e != "client closed"
            {
                log("http-proxy", &format!("{peer}: {e}"));
            }
        });
    }
}
