//! The `sluice` npm package's native addon (napi-rs): the Sluice engine for Node.
//!
//! This is the glue only: values converted, work handed to `sluice-core`. `Buffer` and
//! `Uint8Array` inputs are read in place (no copy) in the synchronous calls; strings are UTF-8
//! and offsets into them are in UTF-16 code units, as JavaScript counts. Errors carry a `code`
//! (`SLUICE_RULE`, `SLUICE_POLICY`, `SLUICE_REQUEST`, …) and, in their message, a JSON object
//! with the fields the JavaScript wrapper (`index.js`) turns into `SluiceError` properties.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use napi::bindgen_prelude::{AsyncTask, Buffer, Either, Uint8Array};
use napi::{Env, Result, Task};
use napi_derive::napi;
use sluice_core::Detector;
use sluice_core::broker::MemoryVault;
use sluice_core::policy::cases::{OwnedRequest, SshKind};
use sluice_core::policy::grant;
use sluice_core::policy::{self as core_policy, Dialect, EngineHandle, Protocol};
use sluice_core::session::{self, Guard};

mod identity;
mod recording;

pub use identity::{Identity, OidcOptions, OidcVerifier, Target};
pub use recording::{
    Recorder, RecorderOptions, RecordingProblem, RecordingReport, export_asciicast, replay_recording, verify_recording,
};

/// The errors every call returns: a code (`SLUICE_…`) and a JSON message.
pub(crate) type Error = napi::Error<String>;

/// No fields beyond the message.
pub(crate) fn no_fields() -> serde_json::Value {
    serde_json::json!({})
}

/// An error with a code and its fields as JSON, for the wrapper.
pub(crate) fn err(code: &str, message: impl Into<String>, extra: serde_json::Value) -> Error {
    let mut v = serde_json::json!({ "message": message.into() });
    if let (Some(o), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    Error::new(code.to_string(), v.to_string())
}

fn core_err(e: &sluice_core::Error) -> Error {
    let code = match e.kind() {
        sluice_core::ErrorKind::RuleFile | sluice_core::ErrorKind::Rule | sluice_core::ErrorKind::Pattern => {
            "SLUICE_RULE"
        }
        sluice_core::ErrorKind::Limit => "SLUICE_LIMIT",
        _ => "SLUICE_ERROR",
    };
    let (line, column) = e.line_col().unzip();
    err(
        code,
        e.to_string(),
        serde_json::json!({ "rule": e.rule(), "line": line, "column": column, "origin": e.origin() }),
    )
}

fn policy_err(e: &core_policy::PolicyError) -> Error {
    let (line, column) = e.line_col().unzip();
    err(
        "SLUICE_POLICY",
        e.to_string(),
        serde_json::json!({ "origin": e.origin(), "line": line, "column": column }),
    )
}

/// Input bytes: a `Buffer`/`Uint8Array` (read in place) or a string.
fn bytes(input: &Either<Uint8Array, String>) -> &[u8] {
    match input {
        Either::A(b) => b,
        Either::B(s) => s.as_bytes(),
    }
}

/// A byte offset into `s` as a UTF-16 offset (what JavaScript strings index by).
fn utf16_offset(s: &str, byte: usize) -> u32 {
    let byte = byte.min(s.len());
    let mut b = byte;
    while !s.is_char_boundary(b) {
        b -= 1;
    }
    s[..b].encode_utf16().count() as u32
}

/// Options for `new Engine(options)`.
#[napi(object)]
#[derive(Default)]
pub struct EngineOptions {
    /// Rule files' text (TOML) added to the built-in rules.
    pub rules: Option<Vec<String>>,
    /// Load the built-in rules (default true).
    pub builtin_rules: Option<bool>,
    /// A policy document (YAML or JSON text); default: the embedded agent-safe policy.
    pub policy: Option<String>,
    /// The key that verifies grants (`GrantKey.toText()`, or its public half): with it, a
    /// `grant` from `GrantKey.issue` lets a `require_approval` command through once.
    pub grant_key: Option<String>,
    /// Where used grants are remembered: `memory` (this process, the default) or a
    /// `redis://` URL (every process sharing it).
    pub replay_store: Option<String>,
    /// Values the host knows are secret (label → value): masked wherever they appear.
    pub known_values: Option<HashMap<String, Either<String, Uint8Array>>>,
    /// Credentials held for the agent (name → value): the agent writes
    /// `sluice:secret/NAME`, sessions swap the value in where the policy's `credentials`
    /// section lets it go, and every echo of the value comes back as the placeholder.
    pub credentials: Option<HashMap<String, Either<String, Uint8Array>>>,
    /// Queue session events for `takeEvents` (the wrapper sets it for `onEvent`).
    pub events: Option<bool>,
}

impl std::fmt::Debug for EngineOptions {
    // Never the known values' or credentials' values: their names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |m: &Option<HashMap<String, Either<String, Uint8Array>>>| {
            m.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>())
        };
        f.debug_struct("EngineOptions")
            .field("rules", &self.rules.as_ref().map(Vec::len))
            .field("builtin_rules", &self.builtin_rules)
            .field("policy", &self.policy.is_some())
            .field("grant_key", &self.grant_key.is_some())
            .field("replay_store", &self.replay_store.is_some())
            .field("known_values", &names(&self.known_values))
            .field("credentials", &names(&self.credentials))
            .field("events", &self.events)
            .finish()
    }
}

/// A secret found: where and by which rule; never the secret itself.
#[napi(object)]
#[derive(Debug)]
pub struct Finding {
    /// The rule id, e.g. `github-pat`.
    pub rule: String,
    /// Start offset (bytes for a Buffer, UTF-16 code units for a string).
    pub start: u32,
    /// End offset, exclusive.
    pub end: u32,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub column: u32,
    /// Keyed fingerprint of the secret (hex).
    pub fingerprint: String,
}

/// Options for `engine.check(...)`.
#[napi(object)]
#[derive(Debug, Default)]
pub struct CheckOptions {
    /// Who acts: a user name or an `Identity` (as `OidcVerifier.verify` returns); default
    /// the user `agent`.
    pub identity: Option<Either<String, Identity>>,
    /// The acting user (shorthand for `identity`).
    pub user: Option<String>,
    /// The user's groups (with `user`).
    pub groups: Option<Vec<String>>,
    /// The user's attributes (with `user`).
    pub attributes: Option<HashMap<String, String>>,
    /// The target: a name or a `Target` (default `default`).
    pub target: Option<Either<String, Target>>,
    /// Target labels (with a target name).
    pub labels: Option<HashMap<String, String>>,
    /// SQL dialect: `postgres` (default) or `mysql`.
    pub dialect: Option<String>,
    /// HTTP headers.
    pub headers: Option<std::collections::HashMap<String, String>>,
    /// HTTP body.
    pub body: Option<String>,
    /// SSH request kind: exec (default), env, subsystem, shell, forward, channel.
    pub ssh: Option<String>,
    /// A grant (from `GrantKey.issue`) for exactly this command; needs the engine's `grantKey`.
    pub grant: Option<String>,
}

/// A decision.
#[napi(object)]
#[derive(Debug)]
pub struct Decision {
    /// `allow`, `deny` or `require_approval`.
    pub decision: String,
    /// The rule that decided, if one did.
    pub rule: Option<String>,
    /// Why.
    pub reason: String,
    /// Whether the analysis could not see everything.
    pub uncertain: bool,
    /// Whether responses are masked.
    pub mask: bool,
    /// The approval request (JSON) when the decision is `require_approval`.
    pub approval: Option<serde_json::Value>,
}

/// The Sluice engine: a compiled detector and a policy, shared by every call.
#[napi]
#[derive(Debug)]
pub struct Engine {
    guard: Arc<Guard>,
    /// Session events waiting for `takeEvents`, when the engine was built with `events`.
    events: Option<Arc<Mutex<Vec<String>>>>,
    /// What rotating credentials needs, when the engine holds credentials.
    broker: Option<Broker>,
}

/// The credentials an engine holds, and how to rebuild its detector when they change.
struct Broker {
    vault: Arc<MemoryVault>,
    /// The detector's rules and known values, without the credentials.
    base: sluice_core::DetectorBuilder,
    /// Every value held since the engine was built: an echo of a rotated-out value still
    /// must not get out.
    seen: Mutex<Vec<(String, Vec<u8>)>>,
    /// The detector sessions mask with (the guard's `rotated`).
    current: Arc<arc_swap::ArcSwap<Detector>>,
}

impl std::fmt::Debug for Broker {
    // Never a value: the names held only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Broker")
            .field("held", &seen.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// Queues session events as JSON for the wrapper, which hands them to `onEvent`.
#[derive(Debug)]
struct QueueHook(Arc<Mutex<Vec<String>>>);

impl session::Hook for QueueHook {
    fn event(&self, e: &session::Event<'_>) {
        let mut q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        q.push(e.to_json().to_string());
    }
}

/// A credential's or known value's name and bytes, the name checked as a placeholder name.
fn named_values(
    what: &str,
    given: Option<HashMap<String, Either<String, Uint8Array>>>,
    placeholder: bool,
) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut out = given
        .unwrap_or_default()
        .into_iter()
        .map(|(name, v)| named_value(what, name, v, placeholder))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    Ok(out)
}

/// One credential's or known value's name and bytes, checked: not empty, and for a credential
/// a valid placeholder name.
fn named_value(
    what: &str,
    name: String,
    value: Either<String, Uint8Array>,
    placeholder: bool,
) -> Result<(String, Vec<u8>), String> {
    if placeholder {
        sluice_core::broker::Placeholder::new(&name)
            .map_err(|e| err("SLUICE_REQUEST", format!("{what}: {e}"), no_fields()))?;
    }
    let value = match value {
        Either::A(s) => s.into_bytes(),
        Either::B(b) => b.to_vec(),
    };
    if value.is_empty() {
        return Err(err("SLUICE_REQUEST", format!("{what}: `{name}` is empty"), no_fields()));
    }
    Ok((name, value))
}

fn build(options: Option<EngineOptions>) -> Result<Engine, String> {
    let o = options.unwrap_or_default();
    let mut b = Detector::builder().builtin_rules(o.builtin_rules.unwrap_or(true));
    for (i, text) in o.rules.unwrap_or_default().into_iter().enumerate() {
        b = b.rules_toml(format!("rules[{i}]"), text);
    }
    for (label, value) in named_values("knownValues", o.known_values, false)? {
        b = b.known_value(label, &value);
    }
    let credentials = named_values("credentials", o.credentials, true)?;
    let base = b.clone();
    for (name, value) in &credentials {
        b = b.brokered_value(name.clone(), value);
    }
    let detector = Arc::new(b.build().map_err(|e| core_err(&e))?);
    let broker = (!credentials.is_empty()).then(|| {
        let vault = Arc::new(MemoryVault::new());
        for (name, value) in &credentials {
            vault.set(name.clone(), value);
        }
        Broker {
            vault,
            base,
            seen: Mutex::new(credentials),
            current: Arc::new(arc_swap::ArcSwap::new(Arc::clone(&detector))),
        }
    });
    let events = o.events.unwrap_or(false).then(|| Arc::new(Mutex::new(Vec::new())));
    let grants = match o.grant_key {
        None if o.replay_store.is_some() => {
            return Err(err("SLUICE_REQUEST", "replayStore needs a grantKey", no_fields()));
        }
        None => None,
        Some(text) => {
            let key = grant::GrantKey::parse(&text).map_err(|e| err("SLUICE_GRANT", e.to_string(), no_fields()))?;
            let store: Arc<dyn grant::ReplayStore> = match o.replay_store.as_deref() {
                None | Some("memory") => Arc::new(grant::MemoryStore::default()),
                Some(url) => Arc::new(
                    grant::RedisStore::new(url, "sluice:grant:")
                        .map_err(|e| err("SLUICE_GRANT", e.to_string(), no_fields()))?,
                ),
            };
            Some(grant::GrantVerifier::new(key, store))
        }
    };
    let policy = match &o.policy {
        Some(text) => Arc::new(core_policy::Engine::from_text("policy", text).map_err(|e| policy_err(&e))?),
        None => core_policy::Engine::agent_safe(),
    };
    Ok(Engine {
        guard: Arc::new(Guard {
            policy: Arc::new(EngineHandle::new(policy)),
            detector,
            grants,
            hook: events
                .as_ref()
                .map(|q| Arc::new(QueueHook(Arc::clone(q))) as Arc<dyn session::Hook>),
            recorder: None,
            vault: broker
                .as_ref()
                .map(|b| Arc::clone(&b.vault) as Arc<dyn sluice_core::broker::Vault>),
            rotated: broker.as_ref().map(|b| Arc::clone(&b.current)),
            hold: None,
        }),
        events,
        broker,
    })
}

/// Who acts, from `check`'s options: `identity`, or the `user`/`groups`/`attributes` shorthand.
fn check_identity(o: &mut CheckOptions) -> Result<core_policy::Identity, String> {
    let shorthand = o.user.is_some() || o.groups.is_some() || o.attributes.is_some();
    match o.identity.take() {
        Some(_) if shorthand => Err(err(
            "SLUICE_REQUEST",
            "give `identity` or `user`/`groups`/`attributes`, not both",
            no_fields(),
        )),
        Some(given) => Ok(identity::identity(given)),
        None => {
            let mut identity = core_policy::Identity::new(o.user.take().unwrap_or_else(|| "agent".into()));
            identity.groups = o.groups.take().unwrap_or_default();
            identity.attributes = o.attributes.take().unwrap_or_default().into_iter().collect();
            Ok(identity)
        }
    }
}

/// What a command acts on, from `check`'s options: `target` (a name, with `labels`, or a `Target`).
fn check_target(o: &mut CheckOptions) -> Result<core_policy::Target, String> {
    let labels = o.labels.take();
    match o.target.take() {
        Some(Either::B(_)) if labels.is_some() => Err(err(
            "SLUICE_REQUEST",
            "give labels inside the `target` object, not beside it",
            no_fields(),
        )),
        Some(given) => {
            let mut t = identity::target(given);
            t.labels.extend(labels.unwrap_or_default());
            Ok(t)
        }
        None => Ok(core_policy::Target {
            name: "default".into(),
            labels: labels.unwrap_or_default().into_iter().collect(),
        }),
    }
}

impl Engine {
    /// This engine's guard, recording through `recorder` when one is given.
    fn guard_for(&self, recorder: Option<&Recorder>) -> Arc<Guard> {
        match recorder {
            Some(r) => Arc::new(self.guard.with_recorder(Arc::clone(&r.inner))),
            None => Arc::clone(&self.guard),
        }
    }
}

#[napi]
impl Engine {
    /// An engine on the built-in rules and the embedded agent-safe policy, or as `options` say.
    #[napi(constructor)]
    pub fn new(options: Option<EngineOptions>) -> Result<Engine, String> {
        build(options)
    }

    /// An engine with the policy in `text` (YAML or JSON).
    #[napi(factory)]
    pub fn from_yaml(text: String, options: Option<EngineOptions>) -> Result<Engine, String> {
        let mut o = options.unwrap_or_default();
        o.policy = Some(text);
        build(Some(o))
    }

    /// An engine with the policy in the file at `path`.
    #[napi(factory)]
    pub fn from_file(path: String, options: Option<EngineOptions>) -> Result<Engine, String> {
        let text = std::fs::read_to_string(&path).map_err(|e| {
            err(
                "SLUICE_POLICY",
                format!("{path}: cannot read: {e}"),
                serde_json::json!({ "origin": path }),
            )
        })?;
        let mut o = options.unwrap_or_default();
        o.policy = Some(text);
        build(Some(o))
    }

    /// The policy's name.
    #[napi(getter)]
    pub fn policy_name(&self) -> String {
        self.guard.policy.load().name().to_string()
    }

    /// Every secret in `input`.
    #[napi]
    pub fn scan(&self, input: Either<Uint8Array, String>) -> Vec<Finding> {
        let text = match &input {
            Either::B(s) => Some(s.as_str()),
            Either::A(_) => None,
        };
        findings(&self.guard.current_detector(), bytes(&input), text)
    }

    /// `input` with every secret replaced by its placeholder (a string for a string, a Buffer
    /// for bytes).
    #[napi]
    pub fn redact(&self, input: Either<Uint8Array, String>) -> Either<Buffer, String> {
        let out = self.guard.current_detector().redact(bytes(&input)).into_owned();
        match input {
            Either::A(_) => Either::A(out.into()),
            // Placeholders are ASCII and replace whole matches: the text stays UTF-8.
            Either::B(_) => Either::B(String::from_utf8_lossy(&out).into_owned()),
        }
    }

    /// Decides on a command: `protocol` is shell, sql, http (`METHOD URL`), mcp (a JSON-RPC
    /// message) or ssh. With `recorder`, the decision is recorded (and refused if it cannot be).
    #[napi]
    pub fn check(
        &self,
        protocol: String,
        command: String,
        options: Option<CheckOptions>,
        recorder: Option<&Recorder>,
    ) -> Result<Decision, String> {
        let mut o = options.unwrap_or_default();
        let protocol: Protocol = protocol
            .parse()
            .map_err(|e: String| err("SLUICE_REQUEST", e, no_fields()))?;
        let mut req = OwnedRequest::new(protocol, command.clone());
        req = match o.dialect.as_deref().unwrap_or("postgres") {
            "postgres" | "postgresql" => req.dialect(Dialect::Postgres),
            "mysql" | "mariadb" => req.dialect(Dialect::MySql),
            other => {
                return Err(err(
                    "SLUICE_REQUEST",
                    format!("unknown dialect `{other}` (postgres or mysql)"),
                    no_fields(),
                ));
            }
        };
        for (n, v) in o.headers.take().unwrap_or_default() {
            req = req.header(n, v.into_bytes());
        }
        if let Some(b) = o.body.take() {
            req = req.body(b.into_bytes());
        }
        let kind: SshKind = o
            .ssh
            .as_deref()
            .unwrap_or("exec")
            .parse()
            .map_err(|e: String| err("SLUICE_REQUEST", e, no_fields()))?;
        let req = req.ssh(kind);
        let identity = check_identity(&mut o)?;
        let target = check_target(&mut o)?;
        let guard = self.guard_for(recorder);
        let d = req
            .with(|r| guard.decide(&identity, &target, r, &command, o.grant.as_deref()))
            .map_err(|e| err("SLUICE_REQUEST", e, no_fields()))?;
        Ok(Decision {
            decision: d.action().as_str().to_string(),
            rule: d.rule().map(str::to_string),
            reason: d.reason().to_string(),
            uncertain: d.uncertain(),
            mask: d.mask(),
            approval: d.approval().and_then(|a| serde_json::to_value(a).ok()),
        })
    }

    /// The roles the policy gives `identity` (a user name or an `Identity`).
    #[napi]
    pub fn roles(&self, identity: Either<String, Identity>) -> Vec<String> {
        let identity = identity::identity(identity);
        let policy = self.guard.policy.load();
        policy.roles_of(&identity).into_iter().map(str::to_string).collect()
    }

    /// The session events queued since the last call (JSON), for the wrapper's `onEvent`.
    #[napi]
    pub fn take_events(&self) -> Vec<String> {
        match &self.events {
            Some(q) => std::mem::take(&mut *q.lock().unwrap_or_else(PoisonError::into_inner)),
            None => Vec::new(),
        }
    }

    /// The names of the placeholders (`sluice:secret/NAME`) in `text`, in order.
    #[napi]
    pub fn placeholders(&self, text: String) -> Vec<String> {
        sluice_core::broker::placeholders(&text)
            .into_iter()
            .map(|(_, _, name)| name.to_string())
            .collect()
    }

    /// Swaps each placeholder in `text` for the credential held under its name, when its name
    /// is in `allowed`; a placeholder not allowed or not held throws `RequestError` naming it
    /// (never a value), and nothing is substituted.
    #[napi]
    pub fn substitute(&self, text: String, allowed: Vec<String>) -> Result<Substitution, String> {
        let Some(broker) = &self.broker else {
            return Err(err(
                "SLUICE_REQUEST",
                "this engine holds no credentials (give `credentials` when building it)",
                no_fields(),
            ));
        };
        sluice_core::broker::substitute(&text, &*broker.vault, |name| allowed.iter().any(|a| a == name))
            .map(|s| Substitution {
                text: s.text.into_owned(),
                used: s.used,
            })
            .map_err(|e| {
                err(
                    "SLUICE_REQUEST",
                    e.to_string(),
                    serde_json::json!({ "credential": e.name }),
                )
            })
    }

    /// Rotates a credential: `name` now holds `value` for every substitution from now on,
    /// and open sessions mask echoes of the new value and of every value held before.
    #[napi]
    pub fn set_credential(&self, name: String, value: Either<String, Uint8Array>) -> Result<(), String> {
        let Some(broker) = &self.broker else {
            return Err(err(
                "SLUICE_REQUEST",
                "this engine holds no credentials (give `credentials` when building it)",
                no_fields(),
            ));
        };
        let (name, value) = named_value("setCredential", name, value, true)?;
        let mut seen = broker.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if !seen.iter().any(|(n, v)| *n == name && *v == value) {
            let b = seen
                .iter()
                .chain(std::iter::once(&(name.clone(), value.clone())))
                .fold(broker.base.clone(), |b, (n, v)| b.brokered_value(n.clone(), v));
            let detector = b.build().map_err(|e| core_err(&e))?;
            seen.push((name.clone(), value.clone()));
            broker.current.store(Arc::new(detector));
        }
        broker.vault.set(name, value);
        Ok(())
    }

    /// Starts a session recording signed with `options.key` (an Ed25519 key's text): to
    /// `options.path`, or in memory. The first record names this engine's policy and its
    /// digest; what is written passes through this engine's detector.
    #[napi]
    pub fn recorder(&self, options: RecorderOptions) -> Result<Recorder, String> {
        let policy = self.guard.policy.load();
        Recorder::start(options, (policy.name(), policy.digest()), self.guard.current_detector())
    }

    /// `scan` off the JavaScript thread (on libuv's pool): for large inputs. The input is
    /// copied first, so the caller may reuse its buffer at once.
    #[napi(ts_return_type = "Promise<Array<Finding>>")]
    pub fn scan_async(&self, input: Either<Uint8Array, String>) -> AsyncTask<ScanTask> {
        let text = matches!(input, Either::B(_));
        AsyncTask::new(ScanTask {
            detector: Arc::clone(&self.guard.current_detector()),
            data: bytes(&input).to_vec(),
            text,
        })
    }

    /// `redact` off the JavaScript thread; resolves to the same type as the input.
    #[napi(ts_return_type = "Promise<Buffer | string>")]
    pub fn redact_async(&self, input: Either<Uint8Array, String>) -> AsyncTask<RedactTask> {
        let text = matches!(input, Either::B(_));
        AsyncTask::new(RedactTask {
            detector: Arc::clone(&self.guard.current_detector()),
            data: bytes(&input).to_vec(),
            text,
        })
    }

    /// A protocol session for one connection: `protocol` is postgres, mysql, http or mcp.
    /// The session never does I/O: feed it what each side sent and write what it returns.
    #[napi]
    pub fn session(
        &self,
        protocol: String,
        options: Option<SessionOptions>,
        recorder: Option<&Recorder>,
    ) -> Result<Session, String> {
        let o = options.unwrap_or_default();
        let g = self.guard_for(recorder);
        let identity = match (o.identity, o.user) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "SLUICE_REQUEST",
                    "give `identity` or `user`, not both",
                    no_fields(),
                ));
            }
            (Some(i), None) => Some(identity::identity(i)),
            (None, user) => user.map(core_policy::Identity::new),
        };
        let target = o.target.map(identity::target);
        let inner = match protocol.as_str() {
            "postgres" | "postgresql" => Inner::Pg(session::postgres::PgSession::new(g, identity, target)),
            "mysql" | "mariadb" => Inner::MySql(session::mysql::MySqlSession::new(g, identity, target)),
            "http" => Inner::Http(session::http::HttpSession::new(
                g,
                identity.unwrap_or_else(|| core_policy::Identity::new("agent")),
                target,
            )),
            "mcp" => Inner::Mcp(session::mcp::McpSession::new(
                g,
                identity.unwrap_or_else(|| core_policy::Identity::new("agent")),
                target.unwrap_or_else(|| core_policy::Target::new("default")),
            )),
            other => {
                return Err(err(
                    "SLUICE_REQUEST",
                    format!("unknown session protocol `{other}` (postgres, mysql, http or mcp)"),
                    no_fields(),
                ));
            }
        };
        Ok(Session { inner, closed: None })
    }

    /// A redactor for a stream: `feed` chunks, `finish` at the end; secrets split across
    /// chunks are still masked.
    #[napi]
    pub fn stream_redactor(&self) -> StreamRedactor {
        StreamRedactor {
            inner: Some(self.guard.current_detector().shared_stream_redactor()),
        }
    }
}

/// Streaming redaction: what `feed` returns is final; held-back bytes come with the next call.
#[napi]
#[derive(Debug)]
pub struct StreamRedactor {
    inner: Option<sluice_core::StreamRedactor<'static>>,
}

#[napi]
impl StreamRedactor {
    /// Masks a chunk: returns the bytes that are now safe to pass on.
    #[napi]
    pub fn feed(&mut self, chunk: Either<Uint8Array, String>) -> Result<Buffer, String> {
        let r = self
            .inner
            .as_mut()
            .ok_or_else(|| err("SLUICE_STATE", "feed after finish", no_fields()))?;
        let mut out = Vec::new();
        r.feed(bytes(&chunk), &mut out);
        Ok(out.into())
    }

    /// Ends the stream: returns what was held back.
    #[napi]
    pub fn finish(&mut self) -> Result<Buffer, String> {
        let mut r = self
            .inner
            .take()
            .ok_or_else(|| err("SLUICE_STATE", "finish called twice", no_fields()))?;
        let mut out = Vec::new();
        r.finish(&mut out);
        Ok(out.into())
    }
}

fn findings(det: &Detector, data: &[u8], text: Option<&str>) -> Vec<Finding> {
    let off = |b: usize| text.map_or(b as u32, |s| utf16_offset(s, b));
    det.scan(data)
        .into_iter()
        .map(|f| Finding {
            rule: f.rule.to_string(),
            start: off(f.start),
            end: off(f.end),
            line: f.line as u32,
            column: f.column as u32,
            fingerprint: f.fingerprint.to_hex(),
        })
        .collect()
}

/// `scanAsync`'s work.
#[derive(Debug)]
pub struct ScanTask {
    detector: Arc<Detector>,
    data: Vec<u8>,
    text: bool,
}

impl Task for ScanTask {
    type Output = Vec<Finding>;
    type JsValue = Vec<Finding>;

    fn compute(&mut self) -> Result<Vec<Finding>> {
        let text = if self.text {
            std::str::from_utf8(&self.data).ok()
        } else {
            None
        };
        Ok(findings(&self.detector, &self.data, text))
    }

    fn resolve(&mut self, _: Env, out: Vec<Finding>) -> Result<Vec<Finding>> {
        Ok(out)
    }
}

/// `redactAsync`'s work.
#[derive(Debug)]
pub struct RedactTask {
    detector: Arc<Detector>,
    data: Vec<u8>,
    text: bool,
}

impl Task for RedactTask {
    type Output = Vec<u8>;
    type JsValue = Either<Buffer, String>;

    fn compute(&mut self) -> Result<Vec<u8>> {
        Ok(self.detector.redact(&self.data).into_owned())
    }

    fn resolve(&mut self, _: Env, out: Vec<u8>) -> Result<Either<Buffer, String>> {
        Ok(if self.text {
            Either::B(String::from_utf8_lossy(&out).into_owned())
        } else {
            Either::A(out.into())
        })
    }
}

/// Options for `engine.session(protocol, options)`.
#[napi(object)]
#[derive(Debug, Default)]
pub struct SessionOptions {
    /// Who acts: a user name or an `Identity` (PostgreSQL and MySQL default to the startup's
    /// user, the others to `agent`).
    pub identity: Option<Either<String, Identity>>,
    /// The acting user (shorthand for `identity`).
    pub user: Option<String>,
    /// The target: a name or a `Target` (PostgreSQL and MySQL default to the startup's
    /// database).
    pub target: Option<Either<String, Target>>,
}

/// What `substitute` returns.
#[napi(object)]
#[derive(Debug)]
pub struct Substitution {
    /// The text with the values swapped in (send it on; never show it to the agent).
    pub text: String,
    /// The names substituted, in order (repeats kept): what an audit records.
    pub used: Vec<String>,
}

/// What a session returns for each input: bytes for the server and bytes for the client.
#[napi(object)]
pub struct Exchange {
    /// Forward these to the server.
    pub to_server: Buffer,
    /// Send these to the client.
    pub to_client: Buffer,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("to_server", &self.to_server.len())
            .field("to_client", &self.to_client.len())
            .finish()
    }
}

enum Inner {
    Pg(session::postgres::PgSession),
    MySql(session::mysql::MySqlSession),
    Http(session::http::HttpSession),
    Mcp(session::mcp::McpSession),
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Inner::Pg(_) => "postgres",
            Inner::MySql(_) => "mysql",
            Inner::Http(_) => "http",
            Inner::Mcp(_) => "mcp",
        })
    }
}

/// One connection's enforcement, as a state machine: every input decided, masked or refused.
/// After a `SessionError` the session is closed (the host closes the connection).
#[napi]
#[derive(Debug)]
pub struct Session {
    inner: Inner,
    closed: Option<String>,
}

impl Session {
    fn run(
        &mut self,
        data: &[u8],
        f: impl FnOnce(&mut Inner, &[u8], &mut session::Output) -> std::result::Result<(), session::SessionError>,
    ) -> Result<Exchange, String> {
        if let Some(e) = &self.closed {
            return Err(err(
                "SLUICE_SESSION",
                format!("the session is closed: {e}"),
                no_fields(),
            ));
        }
        let mut out = session::Output::default();
        if let Err(e) = f(&mut self.inner, data, &mut out) {
            self.closed = Some(e.to_string());
            return Err(err("SLUICE_SESSION", e.to_string(), no_fields()));
        }
        Ok(Exchange {
            to_server: std::mem::take(&mut out.to_server).into(),
            to_client: std::mem::take(&mut out.to_client).into(),
        })
    }
}

#[napi]
impl Session {
    /// Bytes the client sent.
    #[napi]
    pub fn from_client(&mut self, data: Either<Uint8Array, String>) -> Result<Exchange, String> {
        self.run(bytes(&data), |s, d, o| match s {
            Inner::Pg(s) => s.from_client(d, o),
            Inner::MySql(s) => s.from_client(d, o),
            Inner::Http(s) => s.from_client(d, o),
            Inner::Mcp(s) => s.from_client(d, o),
        })
    }

    /// Bytes the server sent.
    #[napi]
    pub fn from_server(&mut self, data: Either<Uint8Array, String>) -> Result<Exchange, String> {
        self.run(bytes(&data), |s, d, o| match s {
            Inner::Pg(s) => s.from_server(d, o),
            Inner::MySql(s) => s.from_server(d, o),
            Inner::Http(s) => s.from_server(d, o),
            Inner::Mcp(s) => s.from_server(d, o),
        })
    }

    /// One JSON-RPC message from the MCP client (an object's JSON text, no framing).
    #[napi]
    pub fn client_message(&mut self, message: String) -> Result<Exchange, String> {
        self.run(message.as_bytes(), |s, d, o| match s {
            Inner::Mcp(s) => s.client_message(d, o),
            _ => Err(session::SessionError::new(
                session::Side::Client,
                "clientMessage is for MCP sessions",
            )),
        })
    }

    /// One JSON-RPC message from the MCP server.
    #[napi]
    pub fn server_message(&mut self, message: String) -> Result<Exchange, String> {
        self.run(message.as_bytes(), |s, d, o| match s {
            Inner::Mcp(s) => s.server_message(d, o),
            _ => Err(session::SessionError::new(
                session::Side::Server,
                "serverMessage is for MCP sessions",
            )),
        })
    }

    /// The session's protocol.
    #[napi(getter)]
    pub fn protocol(&self) -> String {
        format!("{:?}", self.inner)
    }

    /// Whether a `SessionError` closed the session.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.closed.is_some()
    }
}

/// An approver: a user and the groups they belong to.
#[napi(object)]
#[derive(Debug)]
pub struct Approver {
    /// The approving user.
    pub user: String,
    /// Their groups.
    pub groups: Option<Vec<String>>,
}

/// A key that signs grants (and verifies them): Ed25519 (the signing half verifies elsewhere
/// with its public half) or HMAC (shared).
#[napi]
#[derive(Debug)]
pub struct GrantKey {
    inner: grant::GrantKey,
}

#[napi]
impl GrantKey {
    /// A new Ed25519 signing key.
    #[napi(factory)]
    pub fn generate_ed25519() -> GrantKey {
        GrantKey {
            inner: grant::GrantKey::generate_ed25519(),
        }
    }

    /// A new HMAC key.
    #[napi(factory)]
    pub fn generate_hmac() -> GrantKey {
        GrantKey {
            inner: grant::GrantKey::generate_hmac(),
        }
    }

    /// A key from its text form (as `toText()` or `sluice keygen` write it).
    #[napi(factory)]
    pub fn parse(text: String) -> Result<GrantKey, String> {
        grant::GrantKey::parse(&text)
            .map(|inner| GrantKey { inner })
            .map_err(|e| err("SLUICE_GRANT", e.to_string(), no_fields()))
    }

    /// The key's text form (secret: keep it off the agent's machine).
    #[napi]
    pub fn to_text(&self) -> String {
        self.inner.to_text()
    }

    /// The public half of an Ed25519 key (what engines verify with), as text.
    #[napi]
    pub fn public_text(&self) -> Option<String> {
        self.inner.public().map(|k| k.to_text())
    }

    /// Signs a single-use grant for an approval request (the `approval` of a
    /// `require_approval` decision) by `approvers` (user names or `{ user, groups }`).
    #[napi]
    pub fn issue(
        &self,
        request: serde_json::Value,
        approvers: Vec<Either<String, Approver>>,
    ) -> Result<String, String> {
        let request: grant::ApprovalRequest = serde_json::from_value(request)
            .map_err(|e| err("SLUICE_GRANT", format!("not an approval request: {e}"), no_fields()))?;
        let approvers: Vec<grant::Approver> = approvers
            .into_iter()
            .map(|a| match a {
                Either::A(user) => grant::Approver::new(user),
                Either::B(a) => grant::Approver {
                    user: a.user,
                    groups: a.groups.unwrap_or_default(),
                },
            })
            .collect();
        grant::issue(&self.inner, &request, &approvers, grant::now())
            .map_err(|e| err("SLUICE_GRANT", e.to_string(), no_fields()))
    }
}
