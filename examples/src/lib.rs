//! What the example proxies share: the command-line options every proxy takes, building the
//! [`Guard`] from them, a hook that logs one JSON line per decision to stderr, and the relay
//! loop that feeds a session both directions of a TCP connection.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use sluice_core::Detector;
use sluice_core::policy::Target;
use sluice_core::policy::grant::{GrantKey, GrantVerifier, MemoryStore, RedisStore, ReplayStore};
use sluice_core::policy::{Engine, EngineHandle};
use sluice_core::record::{FileSink, Fsync, RecordOptions, Recorder, SessionStart};
use sluice_core::session::{Event, Guard, Hook, Output, SessionError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub mod approvals;
pub mod tls;

/// Options every proxy takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Policy file (YAML or JSON); the embedded agent-safe policy when absent.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Key that verifies grants (an Ed25519 public key or an HMAC key from `sluice keygen`).
    #[arg(long, value_name = "FILE")]
    pub grant_key: Option<PathBuf>,
    /// Grant replay store: `memory` or a redis:// URL shared by a fleet of proxies.
    #[arg(long, default_value = "memory", value_name = "URL")]
    pub replay_store: String,
    /// A file of values to mask wherever they appear (one per line): the credentials this
    /// proxy holds.
    #[arg(long, value_name = "FILE")]
    pub known_values: Option<PathBuf>,
    /// The credentials this proxy holds for the agent (`name = value` lines): every echo of a
    /// value from the server, in any form or piece of 8+ characters, reaches the client as its
    /// placeholder `sluice:secret/NAME`.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// An approval service (`sluice approvals serve`): a command that needs approval is held
    /// (the client waits) until reviewers there approve it, then runs once; a denial or
    /// timeout answers with the usual refusal. Needs --grant-key (the service key's public
    /// half) and --approvals-token.
    #[arg(long, value_name = "URL", requires_all = ["grant_key", "approvals_token"])]
    pub approvals: Option<String>,
    /// A file holding the token this proxy presents to the approval service.
    #[arg(long, value_name = "FILE", requires = "approvals")]
    pub approvals_token: Option<PathBuf>,
    /// How long a held command waits for its approval.
    #[arg(long, default_value_t = 300, value_name = "SECONDS", requires = "approvals")]
    pub hold: u64,
    /// With --approvals: `wait` holds a command until it is decided (the client sees a slow
    /// command); `retry` answers at once (HTTP `202 Accepted` with the request; other protocols
    /// their refusal, saying it is pending) and runs the same command when the client repeats
    /// it after a reviewer approved.
    #[arg(long, default_value = "wait", value_parser = ["wait", "retry"], value_name = "MODE", requires = "approvals")]
    pub approval_mode: String,
    /// Do not log decisions to stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Seconds to wait for an upstream connection.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// Record every session to a new file in DIR (`sluice record verify` checks them).
    #[arg(long, value_name = "DIR", requires = "record_key")]
    pub record: Option<PathBuf>,
    /// The Ed25519 secret key that signs recordings (`sluice keygen`); verifiers need only
    /// its `.pub` half.
    #[arg(long, value_name = "FILE", requires = "record")]
    pub record_key: Option<PathBuf>,
    /// Start a new recording file (a part; the parts verify together) once one holds this many
    /// bytes.
    #[arg(long, value_name = "BYTES", requires = "record")]
    pub record_rotate_bytes: Option<u64>,
    /// Start a new recording file after this many seconds.
    #[arg(long, value_name = "SECONDS", requires = "record")]
    pub record_rotate_seconds: Option<u64>,
    /// When recordings are synced to disk: after every record, after every signed checkpoint
    /// (and at close), or never (the operating system decides).
    #[arg(long, value_name = "WHEN", default_value = "checkpoint", value_parser = ["every", "checkpoint", "never"], requires = "record")]
    pub record_fsync: String,
    /// The recording key, read once at start-up by [`guard`].
    #[arg(skip)]
    pub record_signer: Option<Arc<ed25519_dalek::SigningKey>>,
}

impl Common {
    /// The connect timeout.
    pub fn connect(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.connect_timeout)
    }
}

/// Accepts the next connection; when accepting fails (out of file descriptors, say), waits
/// with a growing pause instead of spinning.
pub async fn accept(listener: &tokio::net::TcpListener) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match listener.accept().await {
            Ok(x) => return x,
            Err(e) => {
                log("proxy", &format!("accept failed: {e}; retrying in {pause:?}"));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// Logs each decision as one JSON line on stderr.
#[derive(Debug)]
pub struct StderrLog {
    /// The proxy's name, first field of every line.
    pub name: &'static str,
}

impl Hook for StderrLog {
    fn event(&self, e: &Event<'_>) {
        let mut line = e.to_json();
        line["proxy"] = serde_json::Value::from(self.name);
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

/// Logs a line of text to stderr, as JSON.
pub fn log(name: &str, message: &str) {
    let line = serde_json::json!({"proxy": name, "event": "log", "message": message});
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The guard from the common options and a listener on `listen`; on failure the reason is on
/// stderr and the exit status to return.
pub async fn start(
    name: &'static str,
    c: &mut Common,
    listen: &str,
) -> Result<(Arc<Guard>, TcpListener), std::process::ExitCode> {
    let fail = |msg: String| {
        eprintln!("{name}: {msg}");
        std::process::ExitCode::from(2)
    };
    let g = guard(name, c).map_err(fail)?;
    let l = TcpListener::bind(listen)
        .await
        .map_err(|e| fail(format!("cannot listen on {listen}: {e}")))?;
    Ok((g, l))
}

/// The acting user: the one given, else `$USER`, else `agent`.
pub fn default_user(given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "agent".into())
}

/// Builds the guard from the common options (and reads the recording key, once).
pub fn guard(name: &'static str, c: &mut Common) -> Result<Arc<Guard>, String> {
    let engine = match &c.policy {
        Some(p) => Arc::new(Engine::from_file(p).map_err(|e| e.to_string())?),
        None => Engine::agent_safe(),
    };
    let base = known_values(c)?;
    let mut b = base.clone();
    let mut vault = None;
    let mut file_vault = None;
    if let Some(path) = &c.credentials {
        let v = Arc::new(sluice_core::broker::FileVault::load(path)?);
        b = held(&*v).into_iter().fold(b, |b, (n, x)| b.brokered_value(n, &*x));
        vault = Some(Arc::clone(&v) as Arc<dyn sluice_core::broker::Vault>);
        file_vault = Some(v);
    }
    let detector = Arc::new(b.build().map_err(|e| e.to_string())?);
    let mut guard = Guard::new(Arc::new(EngineHandle::new(engine)), Arc::clone(&detector));
    guard.vault = vault;
    if let Some(v) = file_vault {
        let cell = Arc::new(arc_swap::ArcSwap::new(detector));
        guard.rotated = Some(Arc::clone(&cell));
        rotate_credentials(name, v, base, cell);
    }
    if let Some(path) = &c.grant_key {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let key = GrantKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let store: Arc<dyn ReplayStore> = if c.replay_store == "memory" {
            Arc::new(MemoryStore::default())
        } else {
            Arc::new(RedisStore::new(&c.replay_store, "sluice:grant:").map_err(|e| e.to_string())?)
        };
        guard.grants = Some(GrantVerifier::new(key, store));
    }
    if let (Some(url), Some(path)) = (&c.approvals, &c.approvals_token) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--approvals {url}: expected an http:// or https:// URL"));
        }
        let token = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let hold: Arc<dyn sluice_core::policy::approvals::Hold> = Arc::new(approvals::HttpHold::new(
            url,
            token.trim().to_string(),
            std::time::Duration::from_secs(c.hold),
        ));
        guard.hold = Some(if c.approval_mode == "retry" {
            Arc::new(sluice_core::policy::approvals::Retry::new(hold))
        } else {
            hold
        });
    }
    if !c.quiet {
        guard.hook = Some(Arc::new(StderrLog { name }));
    }
    // Read at start (a bad key fails here, not at the first connection), not per connection.
    c.record_signer = record_key(c)?.map(Arc::new);
    Ok(Arc::new(guard))
}

/// A detector builder with the known values of the common options.
fn known_values(c: &Common) -> Result<sluice_core::DetectorBuilder, String> {
    let mut b = Detector::builder();
    if let Some(path) = &c.known_values {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, v) in text.lines().filter(|l| !l.is_empty()).enumerate() {
            b = b.known_value(format!("known-value-{}", i + 1), v);
        }
    }
    Ok(b)
}

/// Every (name, value) a vault holds now.
fn held(v: &dyn sluice_core::broker::Vault) -> Vec<(String, Arc<[u8]>)> {
    v.names()
        .into_iter()
        .filter_map(|n| v.get(&n).map(|x| (n.clone(), x)))
        .collect()
}

/// Rotation without restarting sessions: the credentials file is read again every second;
/// when its values change, substitution uses the new ones at once (the vault), and a detector
/// holding every value held since start (an echo of a rotated-out value still must not get
/// out) replaces the one open sessions mask with.
fn rotate_credentials(
    name: &'static str,
    vault: Arc<sluice_core::broker::FileVault>,
    base: sluice_core::DetectorBuilder,
    cell: Arc<arc_swap::ArcSwap<Detector>>,
) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async move {
        let mut seen: Vec<(String, Arc<[u8]>)> = held(&*vault);
        let mut generation = sluice_core::broker::Vault::generation(&*vault);
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if let Err(e) = vault.reload() {
                log(name, &format!("credentials not reloaded (the old values stay): {e}"));
                continue;
            }
            let now = sluice_core::broker::Vault::generation(&*vault);
            if now == generation {
                continue;
            }
            generation = now;
            for (n, v) in held(&*vault) {
                if !seen.iter().any(|(sn, sv)| *sn == n && *sv == v) {
                    seen.push((n, v));
                }
            }
            let b = seen
                .iter()
                .fold(base.clone(), |b, (n, v)| b.brokered_value(n.as_str(), &**v));
            match b.build() {
                Ok(d) => {
                    cell.store(Arc::new(d));
                    log(name, &format!("credentials rotated ({} values held)", seen.len()));
                }
                Err(e) => log(
                    name,
                    &format!("credentials rotated, but the detector failed to build: {e}"),
                ),
            }
        }
    });
}

/// The recording key of the common options.
fn record_key(c: &Common) -> Result<Option<ed25519_dalek::SigningKey>, String> {
    let (Some(dir), Some(path)) = (&c.record, &c.record_key) else {
        return Ok(None);
    };
    if !dir.is_dir() {
        return Err(format!("--record {}: not a directory", dir.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    match GrantKey::parse(&text).map_err(|e| format!("{}: {e}", path.display()))? {
        GrantKey::Ed25519(k) => Ok(Some(k)),
        _ => Err(format!(
            "{}: recordings are signed with an Ed25519 secret key (`sluice keygen --type ed25519`)",
            path.display()
        )),
    }
}

/// The guard for one session: `base` itself, or, with `--record`, a guard that records the
/// session to a new file `DIR/NAME-SESSION.jsonl` (closed when the session is dropped; its later
/// parts, with `--record-rotate-*`, in `DIR/NAME-SESSION.N.jsonl`). Call it inside the runtime
/// that runs the session: a task there signs an idle session's tail every second.
pub fn session_guard(
    name: &str,
    base: &Arc<Guard>,
    c: &Common,
    protocol: &str,
    user: Option<&str>,
    target: Option<&str>,
) -> Result<Arc<Guard>, String> {
    let (Some(key), Some(dir)) = (&c.record_signer, &c.record) else {
        return Ok(Arc::clone(base));
    };
    let mut id = [0u8; 12];
    getrandom::fill(&mut id).map_err(|e| e.to_string())?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("{name}-{id}.jsonl"));
    let sink = FileSink::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let engine = base.policy.load();
    let mut start = SessionStart::new(protocol)
        .session_id(id)
        .policy(engine.name(), engine.digest());
    if let Some(u) = user {
        start = start.user(u);
    }
    if let Some(t) = target {
        start = start.target(t);
    }
    let opts = RecordOptions {
        rotate_bytes: c.record_rotate_bytes,
        rotate_interval: c.record_rotate_seconds.map(std::time::Duration::from_secs),
        fsync: c.record_fsync.parse::<Fsync>()?,
        ..RecordOptions::default()
    };
    let rec = Arc::new(
        Recorder::start(Box::new(sink), key, start, opts)
            .map_err(|e| e.to_string())?
            .with_detector(Arc::clone(&base.detector)),
    );
    // Time-based checkpoints and parts while the session is idle; ends with the recording.
    let ticking = Arc::downgrade(&rec);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match ticking.upgrade() {
                Some(r) => r.tick(),
                None => break,
            }
        }
    });
    Ok(Arc::new(base.with_recorder(rec)))
}

/// A protocol session a relay can drive.
pub trait Wire: Send {
    /// Bytes from the client.
    fn client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError>;
    /// Bytes from the server.
    fn server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError>;
    /// When the session asks for TLS with the server now (MySQL, after the client's handshake
    /// response): the bytes to send once it is up.
    fn start_tls(&mut self) -> Option<Vec<u8>> {
        None
    }
}

impl Wire for sluice_core::session::postgres::PgSession {
    fn client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        self.from_client(data, out)
    }
    fn server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        self.from_server(data, out)
    }
}

impl Wire for sluice_core::session::mysql::MySqlSession {
    fn client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        self.from_client(data, out)
    }
    fn server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        self.from_server(data, out)
    }
    fn start_tls(&mut self) -> Option<Vec<u8>> {
        sluice_core::session::mysql::MySqlSession::start_tls(self)
    }
}

/// Relays a client connection to its server (reached through any stream: TLS, given as its
/// two halves) through `session` until either side closes or the session refuses input
/// (logged, then both connections are closed).
pub async fn relay_to<R, W>(name: &str, mut client: TcpStream, mut sr: R, mut sw: W, mut session: impl Wire)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _ = client.set_nodelay(true);
    let (mut cr, mut cw) = client.split();
    let mut cbuf = vec![0u8; 64 * 1024];
    let mut sbuf = vec![0u8; 64 * 1024];
    let mut out = Output::default();
    loop {
        out.clear();
        let r = tokio::select! {
            n = cr.read(&mut cbuf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => session.client(&cbuf[..n], &mut out),
            },
            n = sr.read(&mut sbuf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => session.server(&sbuf[..n], &mut out),
            },
        };
        if let Err(e) = r {
            log(name, &e.to_string());
            break;
        }
        if !out.to_server.is_empty() && (sw.write_all(&out.to_server).await.is_err() || sw.flush().await.is_err()) {
            break;
        }
        if !out.to_client.is_empty() && cw.write_all(&out.to_client).await.is_err() {
            break;
        }
    }
    let _ = cw.shutdown().await;
    let _ = sw.shutdown().await;
}

/// Connects to `upstream` (`HOST:PORT`, each address it resolves to in turn) within `timeout`,
/// as a blocking socket.
pub fn connect_blocking(upstream: &str, timeout: std::time::Duration) -> std::io::Result<std::net::TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolves to no address");
    for addr in upstream.to_socket_addrs()? {
        match std::net::TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// What both directions of a blocking relay share: the session and the two sockets' write sides.
struct Shared<S> {
    session: S,
    out: Output,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
}

/// [`relay_to`] over blocking sockets, as a bare relay (socat) does it: this thread reads the
/// client, a second one the server, each blocking in `read` (no readiness polling, no reads
/// that find nothing), and the session and the writes are under one lock, so the session sees
/// its inputs one at a time and its outputs go out in the order it made them (to the server,
/// then to the client, as [`relay_to`]). When either side closes or the session refuses input,
/// both connections are shut down, which ends the other thread's read.
pub fn relay_blocking<S: Wire + 'static>(
    name: &str,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    session: S,
) {
    let setup = || -> std::io::Result<(std::net::TcpStream, std::net::TcpStream, Shared<S>)> {
        client.set_nonblocking(false)?;
        server.set_nonblocking(false)?;
        client.set_nodelay(true)?;
        server.set_nodelay(true)?;
        Ok((
            client.try_clone()?,
            server.try_clone()?,
            Shared {
                session,
                out: Output::default(),
                client,
                server,
            },
        ))
    };
    let (client_in, server_in, shared) = match setup() {
        Ok(x) => x,
        Err(e) => return log(name, &format!("relay: {e}")),
    };
    let shared = Arc::new(std::sync::Mutex::new(shared));
    let other = Arc::clone(&shared);
    let owned = name.to_string();
    let from_server = std::thread::spawn(move || pump(&owned, server_in, &other, false));
    pump(name, client_in, &shared, true);
    let _ = from_server.join();
}

/// One direction of [`relay_blocking`].
fn pump<S: Wire>(name: &str, mut from: std::net::TcpStream, shared: &std::sync::Mutex<Shared<S>>, client: bool) {
    use std::io::{Read, Write as _};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let Ok(mut g) = shared.lock() else { break };
        let s = &mut *g;
        s.out.clear();
        let r = if client {
            s.session.client(&buf[..n], &mut s.out)
        } else {
            s.session.server(&buf[..n], &mut s.out)
        };
        if let Err(e) = r {
            log(name, &e.to_string());
            break;
        }
        if !s.out.to_server.is_empty() && s.server.write_all(&s.out.to_server).is_err() {
            break;
        }
        if !s.out.to_client.is_empty() && s.client.write_all(&s.out.to_client).is_err() {
            break;
        }
    }
    if let Ok(g) = shared.lock() {
        let _ = g.client.shutdown(std::net::Shutdown::Both);
        let _ = g.server.shutdown(std::net::Shutdown::Both);
    }
}

/// [`relay_to`] for a protocol whose TLS starts inside it (MySQL): plain until the session asks
/// for TLS, then the verified handshake with the server, then the rest over TLS. A session
/// that never asks (its client was refused) ends in plain text, having sent the server nothing
/// but what the protocol sends before TLS.
pub async fn relay_starttls(
    name: &str,
    mut client: TcpStream,
    mut server: TcpStream,
    mut session: impl Wire,
    connector: &tokio_rustls::TlsConnector,
    server_name: rustls::pki_types::ServerName<'static>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut cbuf = vec![0u8; 64 * 1024];
    let mut sbuf = vec![0u8; 64 * 1024];
    let mut out = Output::default();
    let rest = loop {
        out.clear();
        let r = tokio::select! {
            n = client.read(&mut cbuf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => session.client(&cbuf[..n], &mut out),
            },
            n = server.read(&mut sbuf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => session.server(&sbuf[..n], &mut out),
            },
        };
        if let Err(e) = r {
            log(name, &e.to_string());
            return;
        }
        if !out.to_server.is_empty() && server.write_all(&out.to_server).await.is_err() {
            return;
        }
        if !out.to_client.is_empty() && client.write_all(&out.to_client).await.is_err() {
            return;
        }
        if let Some(rest) = session.start_tls() {
            break rest;
        }
    };
    let tls = match tls::handshake(connector, server_name, server).await {
        Ok(t) => t,
        Err(e) => {
            // The client's handshake response (its login) never reaches an unverified server.
            log(name, &e);
            return;
        }
    };
    let (sr, mut sw) = tokio::io::split(tls);
    if sw.write_all(&rest).await.is_err() || sw.flush().await.is_err() {
        return;
    }
    relay_to(name, client, sr, sw, session).await;
}

/// Options of a TCP proxy in front of a database.
#[derive(Args, Debug, Clone)]
pub struct TcpProxy {
    /// Address to listen on (HOST:PORT).
    #[arg(long)]
    pub listen: String,
    /// The server (HOST:PORT).
    #[arg(long)]
    pub upstream: String,
    /// Target name for decisions (default: the database the client asks for).
    #[arg(long)]
    pub target: Option<String>,
    /// Target label KEY=VALUE (such as env=prod); may be repeated.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub tls: tls::UpstreamTls,
    #[command(flatten)]
    pub common: Common,
}

/// Serves `args.listen` until killed: each connection gets its own session from `make` and
/// is relayed to `args.upstream`. `protocol` names the wire protocol in recordings
/// (`postgres`, `mysql`: replays decode its rows).
pub async fn serve<S, F>(name: &'static str, protocol: &'static str, args: TcpProxy, make: F) -> std::process::ExitCode
where
    S: Wire + 'static,
    F: Fn(Arc<Guard>, Option<Target>) -> S + Send + Sync + 'static,
{
    let mut args = args;
    let (guard, listener) = match start(name, &mut args.common, &args.listen).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    // TLS to the server, verified: PostgreSQL's SSLRequest first; MySQL's inside its handshake.
    let secure = if args.tls.enabled() {
        let made = tls::connector(args.tls.upstream_ca.as_deref()).and_then(|c| {
            Ok((
                c,
                tls::server_name(args.tls.upstream_server_name.as_deref(), &args.upstream)?,
            ))
        });
        match made {
            Ok(x) => Some(Arc::new(x)),
            Err(e) => {
                eprintln!("{name}: {e}");
                return std::process::ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let target = args.target.clone().map(|n| {
        let mut t = Target::new(n);
        for l in &args.labels {
            if let Some((k, v)) = l.split_once('=') {
                t.labels.insert(k.into(), v.into());
            }
        }
        t
    });
    log(
        name,
        &format!("listening on {}, upstream {}", args.listen, args.upstream),
    );
    let make = Arc::new(make);
    loop {
        let (client, peer) = accept(&listener).await;
        let (guard, upstream, target, make) = (guard.clone(), args.upstream.clone(), target.clone(), make.clone());
        let secure = secure.clone();
        let common = args.common.clone();
        let connect = args.common.connect();
        let Ok(client) = client.into_std() else { continue };
        let main = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let recorded = {
                // The recording's idle ticks run on the main runtime.
                let _in_main = main.enter();
                session_guard(
                    name,
                    &guard,
                    &common,
                    protocol,
                    None,
                    target.as_ref().map(|t| t.name.as_str()),
                )
            };
            let guard = match recorded {
                Ok(g) => g,
                // Recording is required: the connection is refused.
                Err(e) => return log(name, &format!("{peer}: cannot record the session: {e}")),
            };
            let Some(secure) = secure else {
                // Plain TCP: blocking sockets, one thread per direction (see `relay_blocking`).
                let server = match connect_blocking(&upstream, connect) {
                    Ok(s) => s,
                    Err(e) => return log(name, &format!("{peer}: cannot reach {upstream}: {e}")),
                };
                return relay_blocking(name, client, server, make(guard, target));
            };
            // TLS to the server: one thread with its own single-threaded runtime per connection
            // (a relay hop is mostly wake-ups; both sockets stay on one thread).
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .enable_time()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(client) = TcpStream::from_std(client) else {
                    return;
                };
                let server = match tokio::time::timeout(connect, TcpStream::connect(&upstream)).await {
                    Ok(Ok(server)) => server,
                    Ok(Err(e)) => return log(name, &format!("{peer}: cannot reach {upstream}: {e}")),
                    Err(_) => return log(name, &format!("{peer}: connecting to {upstream} timed out")),
                };
                let _ = server.set_nodelay(true);
                let (connector, server_name) = &*secure;
                if protocol != "postgres" {
                    // MySQL: TLS starts after the greeting, when the session asks for it.
                    return relay_starttls(
                        name,
                        client,
                        server,
                        make(guard, target),
                        connector,
                        server_name.clone(),
                    )
                    .await;
                }
                match tokio::time::timeout(connect, tls::postgres(connector, server_name.clone(), server)).await {
                    Ok(Ok(stream)) => {
                        let (sr, sw) = tokio::io::split(stream);
                        relay_to(name, client, sr, sw, make(guard, target)).await;
                    }
                    // The client is closed unanswered: nothing it sent reaches an unverified server.
                    Ok(Err(e)) => log(name, &format!("{peer}: {upstream}: {e}")),
                    Err(_) => log(name, &format!("{peer}: TLS with {upstream} timed out")),
                }
            });
        });
    }
}
