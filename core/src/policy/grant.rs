//! Just-in-time approval: a `require_approval` decision carries an [`ApprovalRequest`]; a
//! host-side approver turns it into a **grant**, a compact signed token bound to the command's
//! fingerprint, the requesting user and the target, with an expiry; presenting the grant on retry
//! allows exactly that command, once.
//!
//! Token: `sg1.<alg>.<payload>.<signature>`, where `alg` is `hs256` (HMAC-SHA256) or `ed25519`,
//! `payload` is base64url JSON and the signature covers `sg1.<alg>.<payload>`. Keys are text:
//! `sluice-grant-key:hmac-sha256:<base64>`, `sluice-grant-key:ed25519-secret:<base64 seed>` or
//! `sluice-grant-key:ed25519-public:<base64>` (a verifier can hold only the public half).
//!
//! Single use goes through a [`ReplayStore`]: [`MemoryStore`] in one process, `RedisStore` (with
//! the `redis` feature) for a fleet of proxies.
//!
//! ```
//! use std::sync::Arc;
//! use sluice_core::policy::grant::{Approver, GrantKey, GrantVerifier, MemoryStore, issue, now};
//! use sluice_core::policy::{Action, Engine, Identity, Request, Target};
//!
//! let engine = Engine::agent_safe();
//! let (me, db) = (Identity::new("agent-7"), Target::new("orders-db"));
//! let drop = Request::Sql { text: "DROP TABLE old_orders", dialect: sluice_core::policy::Dialect::Postgres, lexing: Default::default() };
//! let d = engine.decide(&me, &db, &drop);
//! assert_eq!(d.action(), Action::RequireApproval);
//!
//! let key = GrantKey::generate_hmac();
//! let grant = issue(&key, d.approval().unwrap(), &[Approver::new("alice")], now()).unwrap();
//! let verifier = GrantVerifier::new(key, Arc::new(MemoryStore::default()));
//! assert_eq!(engine.decide_with_grant(&me, &db, &drop, Some(&grant), &verifier).action(), Action::Allow);
//! // Used once: the same grant does not work twice.
//! assert_eq!(engine.decide_with_grant(&me, &db, &drop, Some(&grant), &verifier).action(), Action::RequireApproval);
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Action, ApprovalSpec, Decision, Engine, Identity, Protocol, Request, SshRequest, Target};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Who may approve.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvers {
    /// Users who may approve (empty: anyone allowed by `groups`, or anyone at all).
    pub users: Vec<String>,
    /// Groups whose members may approve.
    pub groups: Vec<String>,
}

/// What a human is asked to approve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// Unique id; also the grant's single-use id.
    pub id: String,
    /// The rule that asked for approval (none for the policy default or uncertainty).
    pub rule: Option<String>,
    /// Who asked.
    pub user: String,
    /// Against what.
    pub target: String,
    /// On which protocol.
    pub protocol: Protocol,
    /// The command, normalised (MCP: tool and canonical arguments; HTTP: method, URL, body hash).
    pub command: String,
    /// SHA-256 over protocol, target and normalised command (hex).
    pub fingerprint: String,
    /// Why approval is needed.
    pub reason: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; no grant is issued after this.
    pub expires_at: u64,
    /// Who may approve.
    pub approvers: Approvers,
    /// How many distinct approvers are needed.
    pub count: u32,
    /// Whether the requester may approve their own request.
    pub allow_self: bool,
}

/// One approver, as the host vouches for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    /// User id.
    pub user: String,
    /// Their groups.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Approver {
    /// An approver without groups.
    pub fn new(user: impl Into<String>) -> Approver {
        Approver {
            user: user.into(),
            groups: Vec::new(),
        }
    }

    /// Adds a group.
    pub fn group(mut self, g: impl Into<String>) -> Approver {
        self.groups.push(g.into());
        self
    }
}

/// The normalised form of a request, for fingerprints and display.
pub fn normalized_command(request: &Request<'_>) -> String {
    match *request {
        Request::Shell(c) | Request::Ssh(SshRequest::Exec(c)) => c.trim().to_string(),
        Request::Sql { text, .. } => text.trim().trim_end_matches([';', ' ', '\n', '\t', '\r']).to_string(),
        Request::Http(h) => {
            let mut s = format!("{} {}", h.method.to_ascii_uppercase(), h.url);
            if let Some(b) = h.body.filter(|b| !b.is_empty()) {
                s.push_str(&format!(" body-sha256:{}", hex(&Sha256::digest(b))));
            }
            s
        }
        Request::Mcp(msg) => match serde_json::from_slice::<serde_json::Value>(msg) {
            // The JSON-RPC id changes on retry; method and params are what is approved.
            // `_meta` (progress tokens, the grant itself) changes too.
            Ok(mut v) => {
                if let Some(p) = v.get_mut("params").and_then(|p| p.as_object_mut()) {
                    p.remove("_meta");
                }
                format!(
                    "{} {}",
                    v.get("method").and_then(|m| m.as_str()).unwrap_or(""),
                    v.get("params").map(|p| p.to_string()).unwrap_or_default()
                )
            }
            Err(_) => String::from_utf8_lossy(msg).trim().to_string(),
        },
        Request::Ssh(SshRequest::Env { name, value }) => {
            format!("env {name} value-sha256:{}", hex(&Sha256::digest(value)))
        }
        Request::Ssh(op) => describe_ssh(&op),
    }
}

/// An SSH request in words: `subsystem sftp`, `shell`, `forward db.internal:5432`,
/// `channel x11` (`exec` and `env` as their command and name).
pub fn describe_ssh(op: &SshRequest<'_>) -> String {
    match op {
        SshRequest::Exec(c) => c.trim().to_string(),
        SshRequest::Env { name, .. } => format!("env {name}"),
        SshRequest::Subsystem(s) => format!("subsystem {s}"),
        SshRequest::Shell => "shell".to_string(),
        SshRequest::Forward { host, port } => format!("forward {}:{port}", host.to_ascii_lowercase()),
        SshRequest::Channel(kind) => format!("channel {kind}"),
    }
}

/// The fingerprint a grant is bound to.
pub fn fingerprint(protocol: Protocol, target: &str, command: &str) -> String {
    let mut h = Sha256::new();
    for part in [protocol.as_str(), target, command] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn random_id() -> String {
    let mut b = [0u8; 12];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to time and a counter (ids must only be unique).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        b.copy_from_slice(&blake3::hash(format!("{t}:{n}").as_bytes()).as_bytes()[..12]);
    }
    format!("apr_{}", URL_SAFE_NO_PAD.encode(b))
}

impl ApprovalRequest {
    pub(crate) fn new(
        rule: Option<String>,
        spec: &ApprovalSpec,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
        reason: &str,
    ) -> ApprovalRequest {
        let command = normalized_command(request);
        let protocol = request.protocol();
        let created_at = now();
        ApprovalRequest {
            id: random_id(),
            rule,
            user: identity.user.clone(),
            target: target.name.clone(),
            protocol,
            fingerprint: fingerprint(protocol, &target.name, &command),
            command,
            reason: reason.to_string(),
            created_at,
            expires_at: created_at + spec.ttl_secs,
            approvers: Approvers {
                users: spec.users.clone(),
                groups: spec.groups.clone(),
            },
            count: spec.count,
            allow_self: spec.allow_self,
        }
    }

    /// Checks that `approvers` satisfy this request: enough distinct, allowed approvers, not
    /// the requester unless self-approval is allowed.
    pub fn check_approvers(&self, approvers: &[Approver]) -> Result<(), GrantError> {
        let mut ok: Vec<&str> = Vec::new();
        for a in approvers {
            if !self.allow_self && a.user == self.user {
                continue;
            }
            let listed = (self.approvers.users.is_empty() && self.approvers.groups.is_empty())
                || self.approvers.users.contains(&a.user)
                || a.groups.iter().any(|g| self.approvers.groups.contains(g));
            if listed && !ok.contains(&a.user.as_str()) {
                ok.push(&a.user);
            }
        }
        if ok.len() < self.count as usize {
            let self_note = if !self.allow_self && approvers.iter().any(|a| a.user == self.user) {
                " (self-approval is not allowed)"
            } else {
                ""
            };
            return Err(GrantError::new(
                GrantErrorKind::Approvers,
                format!("{} valid approver(s), {} needed{self_note}", ok.len(), self.count),
            ));
        }
        Ok(())
    }
}

/// Why a grant was not issued or not accepted: a [kind](GrantErrorKind), the detail (which key
/// format was expected, what does not match), and the store's or decoder's error as
/// [`source`](std::error::Error::source) (Redis, serde_json).
#[derive(Debug, Clone)]
pub struct GrantError {
    kind: GrantErrorKind,
    detail: String,
    source: Option<crate::error::Source>,
}

/// What kind of problem a [`GrantError`] is. More kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantErrorKind {
    /// The token is not a grant, or its signature does not verify.
    Invalid,
    /// The grant or request has expired.
    Expired,
    /// The grant is for another command, user or target (the detail says which).
    Mismatch,
    /// The approvers do not satisfy the rule.
    Approvers,
    /// The grant was already used.
    Replayed,
    /// The replay store could not be reached (the grant is refused).
    Store,
    /// A key could not be read or used.
    Key,
}

impl GrantErrorKind {
    /// The kind as a lowercase word (`invalid`, `expired`, …), as bindings report it.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantErrorKind::Invalid => "invalid",
            GrantErrorKind::Expired => "expired",
            GrantErrorKind::Mismatch => "mismatch",
            GrantErrorKind::Approvers => "approvers",
            GrantErrorKind::Replayed => "replayed",
            GrantErrorKind::Store => "store",
            GrantErrorKind::Key => "key",
        }
    }
}

impl GrantError {
    pub(crate) fn new(kind: GrantErrorKind, detail: impl Into<String>) -> GrantError {
        GrantError {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    /// An error of `kind` that `e` caused (its message is the detail).
    pub(crate) fn caused(kind: GrantErrorKind, e: impl std::error::Error + Send + Sync + 'static) -> GrantError {
        GrantError {
            kind,
            detail: e.to_string(),
            source: Some(Arc::new(e)),
        }
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> GrantErrorKind {
        self.kind
    }

    /// The detail (empty for kinds that need none).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<GrantErrorKind> for GrantError {
    fn from(kind: GrantErrorKind) -> GrantError {
        GrantError::new(kind, "")
    }
}

impl PartialEq for GrantError {
    fn eq(&self, other: &GrantError) -> bool {
        self.kind == other.kind && self.detail == other.detail
    }
}

impl Eq for GrantError {}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.detail;
        match self.kind {
            GrantErrorKind::Invalid => write!(f, "invalid grant: {m}"),
            GrantErrorKind::Expired => write!(f, "grant expired"),
            GrantErrorKind::Mismatch => write!(f, "grant is for a different {m}"),
            GrantErrorKind::Approvers => write!(f, "approvers do not satisfy the rule: {m}"),
            GrantErrorKind::Replayed => write!(f, "grant already used"),
            GrantErrorKind::Store => write!(f, "replay store unavailable: {m}"),
            GrantErrorKind::Key => write!(f, "bad key: {m}"),
        }
    }
}

impl std::error::Error for GrantError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        crate::error::source_of(&self.source)
    }
}

/// A signing or verifying key.
#[derive(Clone)]
pub enum GrantKey {
    /// A shared HMAC-SHA256 secret (signs and verifies).
    Hmac(Vec<u8>),
    /// An Ed25519 secret key (signs and verifies).
    Ed25519(SigningKey),
    /// An Ed25519 public key (verifies only).
    Ed25519Public(VerifyingKey),
}

impl fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrantKey::Hmac(_) => "GrantKey::Hmac(..)",
            GrantKey::Ed25519(_) => "GrantKey::Ed25519(..)",
            GrantKey::Ed25519Public(_) => "GrantKey::Ed25519Public(..)",
        })
    }
}

const KEY_PREFIX: &str = "sluice-grant-key:";

impl GrantKey {
    /// A new random 32-byte HMAC key.
    pub fn generate_hmac() -> GrantKey {
        let mut k = vec![0u8; 32];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut k).expect("OS randomness");
        GrantKey::Hmac(k)
    }

    /// A new random Ed25519 key.
    pub fn generate_ed25519() -> GrantKey {
        let mut seed = [0u8; 32];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut seed).expect("OS randomness");
        GrantKey::Ed25519(SigningKey::from_bytes(&seed))
    }

    /// Reads a key from its text form.
    pub fn parse(text: &str) -> Result<GrantKey, GrantError> {
        let t = text.trim();
        let rest = t
            .strip_prefix(KEY_PREFIX)
            .ok_or_else(|| GrantError::new(GrantErrorKind::Key, format!("expected `{KEY_PREFIX}<kind>:<base64>`")))?;
        let (kind, b64) = rest
            .split_once(':')
            .ok_or_else(|| GrantError::new(GrantErrorKind::Key, "missing `:` after the key kind"))?;
        let bytes = STANDARD
            .decode(b64.trim())
            .map_err(|e| GrantError::new(GrantErrorKind::Key, format!("base64: {e}")))?;
        let arr = |b: &[u8]| -> Result<[u8; 32], GrantError> {
            b.try_into().map_err(|_| {
                GrantError::new(
                    GrantErrorKind::Key,
                    format!("{kind} keys are 32 bytes, got {}", b.len()),
                )
            })
        };
        match kind {
            "hmac-sha256" if bytes.len() >= 16 => Ok(GrantKey::Hmac(bytes)),
            "hmac-sha256" => Err(GrantError::new(GrantErrorKind::Key, "HMAC keys need at least 16 bytes")),
            "ed25519-secret" => Ok(GrantKey::Ed25519(SigningKey::from_bytes(&arr(&bytes)?))),
            "ed25519-public" => VerifyingKey::from_bytes(&arr(&bytes)?)
                .map(GrantKey::Ed25519Public)
                .map_err(|e| GrantError::caused(GrantErrorKind::Key, e)),
            other => Err(GrantError::new(
                GrantErrorKind::Key,
                format!("unknown key kind `{other}` (hmac-sha256, ed25519-secret, ed25519-public)"),
            )),
        }
    }

    /// The text form (secret keys included: store it like a password).
    pub fn to_text(&self) -> String {
        let (kind, bytes): (&str, Vec<u8>) = match self {
            GrantKey::Hmac(k) => ("hmac-sha256", k.clone()),
            GrantKey::Ed25519(k) => ("ed25519-secret", k.to_bytes().to_vec()),
            GrantKey::Ed25519Public(k) => ("ed25519-public", k.to_bytes().to_vec()),
        };
        format!("{KEY_PREFIX}{kind}:{}", STANDARD.encode(bytes))
    }

    /// The public half of an Ed25519 key, for verifiers that must not sign.
    pub fn public(&self) -> Option<GrantKey> {
        match self {
            GrantKey::Ed25519(k) => Some(GrantKey::Ed25519Public(k.verifying_key())),
            GrantKey::Ed25519Public(k) => Some(GrantKey::Ed25519Public(*k)),
            GrantKey::Hmac(_) => None,
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            GrantKey::Hmac(_) => "hs256",
            GrantKey::Ed25519(_) | GrantKey::Ed25519Public(_) => "ed25519",
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, GrantError> {
        match self {
            GrantKey::Hmac(k) => {
                let mut m =
                    Hmac::<Sha256>::new_from_slice(k).map_err(|e| GrantError::caused(GrantErrorKind::Key, e))?;
                m.update(msg);
                Ok(m.finalize().into_bytes().to_vec())
            }
            GrantKey::Ed25519(k) => Ok(k.sign(msg).to_bytes().to_vec()),
            GrantKey::Ed25519Public(_) => Err(GrantError::new(GrantErrorKind::Key, "a public key cannot sign grants")),
        }
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            GrantKey::Hmac(k) => Hmac::<Sha256>::new_from_slice(k).is_ok_and(|mut m| {
                m.update(msg);
                m.verify_slice(sig).is_ok()
            }),
            GrantKey::Ed25519(k) => verify_ed(&k.verifying_key(), msg, sig),
            GrantKey::Ed25519Public(k) => verify_ed(k, msg, sig),
        }
    }
}

fn verify_ed(k: &VerifyingKey, msg: &[u8], sig: &[u8]) -> bool {
    ed25519_dalek::Signature::from_slice(sig).is_ok_and(|s| k.verify(msg, &s).is_ok())
}

/// The signed content of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantClaims {
    /// Format version (1).
    pub v: u32,
    /// Single-use id (the approval request id).
    pub jti: String,
    /// The requesting user.
    pub sub: String,
    /// The target.
    pub tgt: String,
    /// The command fingerprint.
    pub fp: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Who approved.
    pub apr: Vec<Approver>,
}

/// Issues a grant for `request`, approved by `approvers`, valid from `now` for the request's TTL.
pub fn issue(
    key: &GrantKey,
    request: &ApprovalRequest,
    approvers: &[Approver],
    now: u64,
) -> Result<String, GrantError> {
    if now >= request.expires_at {
        return Err(GrantError::from(GrantErrorKind::Expired));
    }
    request.check_approvers(approvers)?;
    let claims = GrantClaims {
        v: 1,
        jti: request.id.clone(),
        sub: request.user.clone(),
        tgt: request.target.clone(),
        fp: request.fingerprint.clone(),
        iat: now,
        exp: now + request.expires_at.saturating_sub(request.created_at).max(1),
        apr: approvers.to_vec(),
    };
    let payload = URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).map_err(|e| GrantError::caused(GrantErrorKind::Invalid, e))?);
    let signed = format!("sg1.{}.{payload}", key.alg());
    let sig = key.sign(signed.as_bytes())?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Checks a token's signature and decodes its claims (no expiry or binding checks).
pub fn decode(key: &GrantKey, token: &str) -> Result<GrantClaims, GrantError> {
    let token = token.trim();
    let (signed, sig) = token
        .rsplit_once('.')
        .ok_or_else(|| GrantError::new(GrantErrorKind::Invalid, "not a grant token"))?;
    let mut parts = signed.splitn(3, '.');
    let (Some("sg1"), Some(alg), Some(payload)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(GrantError::new(GrantErrorKind::Invalid, "not a `sg1.` grant token"));
    };
    if alg != key.alg() {
        return Err(GrantError::new(
            GrantErrorKind::Invalid,
            format!("signed with {alg}, the key is {}", key.alg()),
        ));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| GrantError::new(GrantErrorKind::Invalid, "signature is not base64url"))?;
    if !key.verify(signed.as_bytes(), &sig) {
        return Err(GrantError::new(GrantErrorKind::Invalid, "signature does not verify"));
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| GrantError::new(GrantErrorKind::Invalid, "payload is not base64url"))?;
    let claims: GrantClaims =
        serde_json::from_slice(&json).map_err(|e| GrantError::new(GrantErrorKind::Invalid, format!("payload: {e}")))?;
    if claims.v != 1 {
        return Err(GrantError::new(
            GrantErrorKind::Invalid,
            format!("unsupported grant version {}", claims.v),
        ));
    }
    Ok(claims)
}

/// Remembers which grants were used. Implementations must be atomic across every process that
/// shares them.
pub trait ReplayStore: Send + Sync + fmt::Debug {
    /// Marks `id` used until `expires_at`; `Ok(true)` the first time, `Ok(false)` after.
    fn use_once(&self, id: &str, expires_at: u64) -> Result<bool, GrantError>;
}

/// A replay store in this process's memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    used: Mutex<HashMap<String, u64>>,
}

impl ReplayStore for MemoryStore {
    fn use_once(&self, id: &str, expires_at: u64) -> Result<bool, GrantError> {
        let mut used = self
            .used
            .lock()
            .map_err(|_| GrantError::new(GrantErrorKind::Store, "poisoned"))?;
        let t = now();
        if used.len() > 4096 {
            used.retain(|_, &mut exp| exp > t);
        }
        if used.contains_key(id) {
            return Ok(false);
        }
        used.insert(id.to_string(), expires_at);
        Ok(true)
    }
}

/// A replay store in Redis (`SET key 1 NX EXAT exp`), shared by every proxy that uses the same
/// server. Connection errors refuse the grant.
#[cfg(feature = "redis")]
pub struct RedisStore {
    client: redis::Client,
    conn: Mutex<Option<redis::Connection>>,
    prefix: String,
}

#[cfg(feature = "redis")]
impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("server", &self.client.get_connection_info().addr.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

#[cfg(feature = "redis")]
impl RedisStore {
    /// A store at `url` (`redis://host:port/db`), keys under `prefix`.
    pub fn new(url: &str, prefix: impl Into<String>) -> Result<RedisStore, GrantError> {
        Ok(RedisStore {
            client: redis::Client::open(url).map_err(|e| GrantError::caused(GrantErrorKind::Store, e))?,
            conn: Mutex::new(None),
            prefix: prefix.into(),
        })
    }
}

#[cfg(feature = "redis")]
impl ReplayStore for RedisStore {
    fn use_once(&self, id: &str, expires_at: u64) -> Result<bool, GrantError> {
        let mut guard = self
            .conn
            .lock()
            .map_err(|_| GrantError::new(GrantErrorKind::Store, "poisoned"))?;
        if guard.is_none() {
            *guard = Some(
                self.client
                    .get_connection()
                    .map_err(|e| GrantError::caused(GrantErrorKind::Store, e))?,
            );
        }
        let Some(conn) = guard.as_mut() else {
            return Err(GrantError::new(GrantErrorKind::Store, "no connection"));
        };
        let r: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(format!("{}{id}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("EXAT")
            .arg(expires_at.max(now() + 1))
            .query(conn);
        match r {
            Ok(v) => Ok(v.is_some()),
            Err(e) => {
                *guard = None; // reconnect next time
                Err(GrantError::caused(GrantErrorKind::Store, e))
            }
        }
    }
}

/// Verifies grants presented on retry and enforces single use.
#[derive(Debug, Clone)]
pub struct GrantVerifier {
    key: GrantKey,
    store: Arc<dyn ReplayStore>,
}

impl GrantVerifier {
    /// A verifier with `key` (an HMAC key or an Ed25519 public or secret key) and `store`.
    pub fn new(key: GrantKey, store: Arc<dyn ReplayStore>) -> GrantVerifier {
        GrantVerifier { key, store }
    }

    /// Checks `token` against the approval `request` the engine produced for this retry, and
    /// consumes it. Returns its claims (who approved, which request).
    pub fn redeem(&self, request: &ApprovalRequest, token: &str, now: u64) -> Result<GrantClaims, GrantError> {
        let c = decode(&self.key, token)?;
        if now >= c.exp {
            return Err(GrantError::from(GrantErrorKind::Expired));
        }
        if c.fp != request.fingerprint {
            return Err(GrantError::new(GrantErrorKind::Mismatch, "command or target"));
        }
        if c.sub != request.user {
            return Err(GrantError::new(GrantErrorKind::Mismatch, "user"));
        }
        if c.tgt != request.target {
            return Err(GrantError::new(GrantErrorKind::Mismatch, "target"));
        }
        request.check_approvers(&c.apr)?;
        if !self.store.use_once(&c.jti, c.exp)? {
            return Err(GrantError::from(GrantErrorKind::Replayed));
        }
        Ok(c)
    }
}

impl Engine {
    /// [`Engine::decide`], then, when approval is required and a grant is presented, redeems
    /// it: a valid grant for exactly this command, user and target allows it once. A grant never
    /// turns a deny into an allow; a rejected grant leaves the decision as it was, with why.
    pub fn decide_with_grant(
        &self,
        identity: &Identity,
        target: &Target,
        request: &Request<'_>,
        grant: Option<&str>,
        verifier: &GrantVerifier,
    ) -> Decision {
        let mut d = self.decide(identity, target, request);
        if let Some(token) = grant {
            d.redeem(token, verifier);
        }
        d
    }
}

impl Decision {
    /// Redeems `token` for this decision: when approval is required and the grant is valid for
    /// exactly its approval request (command, user, target, approvers, unused), the decision
    /// becomes an allow, once. Any other decision is left as it is; a rejected grant leaves it
    /// as it was, with why.
    pub fn redeem(&mut self, token: &str, verifier: &GrantVerifier) {
        let (Action::RequireApproval, Some(req)) = (self.action, self.approval.as_ref()) else {
            return;
        };
        match verifier.redeem(req, token, now()) {
            Ok(claims) => {
                let names: Vec<&str> = claims.apr.iter().map(|a| a.user.as_str()).collect();
                self.reason = format!(
                    "approved by {} (grant {}): {}",
                    names.join(", "),
                    claims.jti,
                    self.reason
                );
                self.action = Action::Allow;
                self.approval = None;
                self.granted = true;
            }
            Err(e) => self.note(&format!("grant rejected: {e}")),
        }
    }
}
