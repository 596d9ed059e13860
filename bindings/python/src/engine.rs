//! The engine: detector and policy together (`scan`, `redact`, `check`, grants, events).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use sluice_core::Detector;
use sluice_core::policy::cases::{OwnedRequest, SshKind};
use sluice_core::policy::grant::{self, GrantVerifier, MemoryStore, RedisStore, ReplayStore};
use sluice_core::policy::{self as core_policy, Dialect, EngineHandle, Protocol};
use sluice_core::session::{self, Guard, Hook};

use crate::convert::*;
use crate::errors::*;
use crate::grants::*;
use crate::recording::*;
use crate::sessions::*;
use crate::streaming::*;
use crate::types::*;

/// Forwards session events to a Python callable, as dicts.
pub(crate) struct PyHook(Py<PyAny>);

impl Hook for PyHook {
    fn event(&self, e: &session::Event<'_>) {
        let text = e.to_json().to_string();
        Python::attach(|py| {
            let r = py
                .import("json")
                .and_then(|json| json.call_method1("loads", (text,)))
                .and_then(|ev| self.0.call1(py, (ev,)));
            if let Err(err) = r {
                err.write_unraisable(py, None);
            }
        });
    }
}

/// The Sluice engine: a compiled detector and a policy, shared by every call and thread.
#[pyclass(frozen, module = "sluice")]
pub(crate) struct Engine {
    pub(crate) guard: Arc<Guard>,
    /// The credentials held for the agent (`credentials=`): scrubbed inbound, substituted by
    /// `substitute`.
    pub(crate) vault: Arc<sluice_core::broker::MemoryVault>,
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

/// `Engine` options, from keyword arguments.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) rules: Vec<String>,
    pub(crate) builtin_rules: bool,
    pub(crate) known_values: Vec<(String, Vec<u8>)>,
    pub(crate) grant_key: Option<grant::GrantKey>,
    pub(crate) replay_store: Option<String>,
    pub(crate) on_event: Option<Py<PyAny>>,
    pub(crate) credentials: Vec<(String, Vec<u8>)>,
}

impl Options {
    pub(crate) fn from_kwargs(kw: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
        let mut o = Options {
            builtin_rules: true,
            ..Options::default()
        };
        let Some(kw) = kw else { return Ok(o) };
        for (k, v) in kw.iter() {
            let key: String = k.extract()?;
            if v.is_none() {
                continue;
            }
            match key.as_str() {
                "rules" => {
                    o.rules = if let Ok(one) = v.extract::<String>() {
                        vec![one]
                    } else {
                        v.extract()?
                    }
                }
                "builtin_rules" => o.builtin_rules = v.extract()?,
                "known_values" => {
                    let items: Vec<(String, Bound<'_, PyAny>)> = if let Ok(d) = v.cast::<PyDict>() {
                        d.iter()
                            .map(|(k, v)| Ok((k.extract::<String>()?, v)))
                            .collect::<PyResult<_>>()?
                    } else {
                        let vals: Vec<Bound<'_, PyAny>> = v.extract()?;
                        vals.into_iter()
                            .enumerate()
                            .map(|(i, v)| (format!("known-value-{}", i + 1), v))
                            .collect()
                    };
                    for (label, value) in items {
                        o.known_values.push((label, input(&value)?.bytes().to_vec()));
                    }
                }
                "grant_key" => {
                    o.grant_key = Some(if let Ok(k) = v.extract::<GrantKey>() {
                        k.inner
                    } else {
                        let text: String = v.extract()?;
                        grant::GrantKey::parse(&text).map_err(py_err)?
                    })
                }
                "replay_store" => o.replay_store = Some(v.extract()?),
                "credentials" => {
                    let d = v
                        .cast::<PyDict>()
                        .map_err(|_| PyTypeError::new_err("credentials must be a dict of name -> value"))?;
                    for (k, v) in d.iter() {
                        let name: String = k.extract()?;
                        sluice_core::broker::Placeholder::new(&name)
                            .map_err(|e| PyValueError::new_err(format!("credentials: {e}")))?;
                        o.credentials.push((name, input(&v)?.bytes().to_vec()));
                    }
                }
                "on_event" => {
                    if !v.is_callable() {
                        return Err(PyTypeError::new_err("on_event must be callable"));
                    }
                    o.on_event = Some(v.unbind());
                }
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "Engine got an unexpected keyword argument '{other}'"
                    )));
                }
            }
        }
        Ok(o)
    }

    pub(crate) fn build(self, py: Python<'_>, policy: Arc<core_policy::Engine>) -> PyResult<Engine> {
        let mut b = Detector::builder().builtin_rules(self.builtin_rules);
        for (i, text) in self.rules.into_iter().enumerate() {
            b = b.rules_toml(format!("rules[{i}]"), text);
        }
        for (label, value) in &self.known_values {
            b = b.known_value(label.clone(), value);
        }
        let vault = Arc::new(sluice_core::broker::MemoryVault::new());
        for (name, value) in &self.credentials {
            b = b.brokered_value(name.clone(), value);
            vault.set(name.clone(), value);
        }
        let detector = py.detach(|| b.build()).map_err(py_err)?;
        let grants = match self.grant_key {
            None => None,
            Some(key) => {
                let store: Arc<dyn ReplayStore> = match self.replay_store.as_deref() {
                    None | Some("memory") => Arc::new(MemoryStore::default()),
                    Some(url) => Arc::new(RedisStore::new(url, "sluice:grant:").map_err(py_err)?),
                };
                Some(GrantVerifier::new(key, store))
            }
        };
        if self.replay_store.is_some() && grants.is_none() {
            return Err(PyValueError::new_err("replay_store needs a grant_key"));
        }
        Ok(Engine {
            guard: Arc::new(Guard {
                policy: Arc::new(EngineHandle::new(policy)),
                detector: Arc::new(detector),
                grants,
                hook: self.on_event.map(|f| Arc::new(PyHook(f)) as Arc<dyn Hook>),
                recorder: None,
                vault: (!self.credentials.is_empty())
                    .then(|| Arc::clone(&vault) as Arc<dyn sluice_core::broker::Vault>),
                rotated: None,
                hold: None,
            }),
            vault,
        })
    }
}

pub(crate) fn parse_protocol(p: &str) -> PyResult<Protocol> {
    p.parse::<Protocol>()
        .map_err(|_| RequestError::new_err(format!("unknown protocol `{p}` (shell, sql, http, mcp or ssh)")))
}

/// Builds the request for `check`: the command is text, or for MCP a dict (a JSON-RPC message,
/// or `{"name": …, "arguments": …}` for a tool call).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_request(
    py: Python<'_>,
    protocol: Protocol,
    command: &Bound<'_, PyAny>,
    dialect: &str,
    headers: Option<BTreeMap<String, String>>,
    body: Option<&Bound<'_, PyAny>>,
    ssh: &str,
) -> PyResult<(OwnedRequest, String)> {
    let text = if let Ok(s) = command.extract::<String>() {
        s
    } else if protocol == Protocol::Mcp && command.cast::<PyDict>().is_ok() {
        let json = py.import("json")?;
        let d = command.cast::<PyDict>()?;
        let msg = if d.contains("jsonrpc")? {
            command.clone()
        } else {
            let m = PyDict::new(py);
            m.set_item("jsonrpc", "2.0")?;
            m.set_item("id", 0)?;
            m.set_item("method", "tools/call")?;
            m.set_item("params", d)?;
            m.into_any()
        };
        json.call_method1("dumps", (msg,))?.extract()?
    } else {
        return Err(PyTypeError::new_err(
            "command must be a str (or, for mcp, a dict: a JSON-RPC message or {'name', 'arguments'})",
        ));
    };
    let mut req = OwnedRequest::new(protocol, text.clone());
    req = match dialect {
        "postgres" | "postgresql" => req.dialect(Dialect::Postgres),
        "mysql" | "mariadb" => req.dialect(Dialect::MySql),
        other => {
            return Err(RequestError::new_err(format!(
                "unknown dialect `{other}` (postgres or mysql)"
            )));
        }
    };
    for (n, v) in headers.unwrap_or_default() {
        req = req.header(n, v.into_bytes());
    }
    if let Some(b) = body {
        req = req.body(input(b)?.bytes().to_vec());
    }
    let kind: SshKind = ssh.parse().map_err(RequestError::new_err)?;
    Ok((req.ssh(kind), text))
}

#[pymethods]
impl Engine {
    /// The built-in rules and the embedded agent-safe policy. Keyword options: `rules` (rule-file
    /// TOML text, or a list of them), `builtin_rules`, `known_values` (a dict label → value or a
    /// list of values), `grant_key`, `replay_store` (`"memory"` or a `redis://` URL), `on_event`,
    /// `credentials` (a dict name → value held for the agent: every echo, in any form or piece
    /// of 8+ characters, is masked as `sluice:secret/NAME`; `substitute` swaps them in).
    #[new]
    #[pyo3(signature = (**options))]
    fn new(py: Python<'_>, options: Option<&Bound<'_, PyDict>>) -> PyResult<Engine> {
        Options::from_kwargs(options)?.build(py, core_policy::Engine::agent_safe())
    }

    /// An engine with the policy in `text` (YAML or JSON); the same options as `Engine()`.
    #[staticmethod]
    #[pyo3(signature = (text, **options))]
    fn from_yaml(py: Python<'_>, text: &str, options: Option<&Bound<'_, PyDict>>) -> PyResult<Engine> {
        let opts = Options::from_kwargs(options)?;
        let policy = core_policy::Engine::from_text("<string>", text).map_err(py_err)?;
        opts.build(py, Arc::new(policy))
    }

    /// An engine with the policy file at `path`; the same options as `Engine()`.
    #[staticmethod]
    #[pyo3(signature = (path, **options))]
    fn from_file(py: Python<'_>, path: std::path::PathBuf, options: Option<&Bound<'_, PyDict>>) -> PyResult<Engine> {
        let opts = Options::from_kwargs(options)?;
        let policy = core_policy::Engine::from_file(&path).map_err(py_err)?;
        opts.build(py, Arc::new(policy))
    }

    /// Replaces the policy with the one in `text` (YAML or JSON); calls in flight finish on the
    /// old one. A bad policy raises `PolicyError` and leaves the current one in place.
    fn load_policy(&self, text: &str) -> PyResult<()> {
        let policy = core_policy::Engine::from_text("<string>", text).map_err(py_err)?;
        self.guard.policy.swap(Arc::new(policy));
        Ok(())
    }

    /// The policy's name.
    #[getter]
    fn policy_name(&self) -> String {
        self.guard.policy.load().name().to_string()
    }

    /// The ids of the detector's rules.
    #[getter]
    fn rules(&self) -> Vec<String> {
        self.guard.detector.rules().map(|r| r.id.to_string()).collect()
    }

    /// Every secret in `data` (bytes or str), in order.
    fn scan(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Vec<Finding>> {
        let data = input(data)?;
        let det = &self.guard.detector;
        let bytes: &[u8] = data.bytes();
        let found = detach_if_large(py, bytes.len(), || det.scan(bytes));
        let mut idx = CharIndex::new(bytes, data.is_str);
        Ok(found
            .into_iter()
            .map(|f| Finding {
                rule: f.rule.to_string(),
                start: idx.at(f.start),
                end: idx.at(f.end),
                line: f.line,
                column: f.column,
                fingerprint: f.fingerprint.to_hex(),
            })
            .collect())
    }

    /// `data` with every secret replaced by a placeholder such as `[REDACTED:github-pat:3fa9c1]`;
    /// the same type as given, and the very same object when there was nothing to mask.
    fn redact<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let data = input(data)?;
        let det = &self.guard.detector;
        let bytes: &[u8] = data.bytes();
        let masked = detach_if_large(py, bytes.len(), || det.redact(bytes));
        match masked {
            Cow::Borrowed(_) => Ok(data.original.clone()),
            Cow::Owned(m) => output(py, &m, data.is_str),
        }
    }

    /// A streaming redactor over this engine's detector.
    fn stream_redactor(&self) -> StreamRedactor {
        StreamRedactor {
            inner: self.guard.detector.shared_stream_redactor(),
            is_str: None,
            out: Vec::new(),
            partial: Vec::new(),
            finished: false,
        }
    }

    /// Decides on a command. `protocol` is shell, sql, http (`command` = `"METHOD URL"`), mcp
    /// (a JSON-RPC message as str or dict, or `{"name", "arguments"}`) or ssh. A `grant` from
    /// `GrantKey.issue` lets a `require_approval` command through once (needs `grant_key`).
    /// With `recorder`, the decision is recorded (and refused if it cannot be).
    #[pyo3(signature = (protocol, command, *, identity = None, target = None, grant = None, dialect = "postgres", headers = None, body = None, ssh = "exec", recorder = None))]
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        py: Python<'_>,
        protocol: &str,
        command: &Bound<'_, PyAny>,
        identity: Option<IdentityArg>,
        target: Option<TargetArg>,
        grant: Option<&str>,
        dialect: &str,
        headers: Option<BTreeMap<String, String>>,
        body: Option<&Bound<'_, PyAny>>,
        ssh: &str,
        recorder: Option<&Recorder>,
    ) -> PyResult<Decision> {
        let protocol = parse_protocol(protocol)?;
        let (req, text) = build_request(py, protocol, command, dialect, headers, body, ssh)?;
        let (identity, target) = (identity_of(identity), target_of(target));
        let guard = self.guard_for(recorder);
        req.with(|r| guard.decide(&identity, &target, r, &text, grant))
            .map(Decision::from)
            .map_err(RequestError::new_err)
    }

    /// The roles the policy gives `identity`.
    fn roles(&self, identity: IdentityArg) -> Vec<String> {
        let identity = identity.into_core();
        self.guard
            .policy
            .load()
            .roles_of(&identity)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// A protocol session for one connection: `protocol` is postgres, mysql, http or mcp.
    /// PostgreSQL and MySQL take identity and target from the startup when not given. With
    /// `recorder` (from `recorder()`), every decision, masking count and output sent to the
    /// client is recorded; a command that cannot be recorded is refused.
    #[pyo3(signature = (protocol, *, identity = None, target = None, recorder = None))]
    fn session(
        &self,
        protocol: &str,
        identity: Option<IdentityArg>,
        target: Option<TargetArg>,
        recorder: Option<&Recorder>,
    ) -> PyResult<Session> {
        let g = self.guard_for(recorder);
        // PostgreSQL and MySQL fall back to the user and database of the startup, not to defaults.
        let inner = match protocol {
            "postgres" | "postgresql" => Inner::Pg(session::postgres::PgSession::new(
                g,
                identity.map(IdentityArg::into_core),
                target.map(TargetArg::into_core),
            )),
            "mysql" | "mariadb" => Inner::MySql(session::mysql::MySqlSession::new(
                g,
                identity.map(IdentityArg::into_core),
                target.map(TargetArg::into_core),
            )),
            "http" => Inner::Http(session::http::HttpSession::new(
                g,
                identity_of(identity),
                target.map(TargetArg::into_core),
            )),
            "mcp" => Inner::Mcp(session::mcp::McpSession::new(
                g,
                identity_of(identity),
                target_of(target),
            )),
            other => {
                return Err(RequestError::new_err(format!(
                    "unknown session protocol `{other}` (postgres, mysql, http or mcp)"
                )));
            }
        };
        Ok(Session {
            inner,
            out: session::Output::default(),
            closed: None,
        })
    }

    /// Swaps each placeholder `sluice:secret/NAME` in `text` for the credential held under NAME
    /// (`credentials=`), when `allowed` (a list of names, or a callable taking a name) lets it
    /// go where `text` goes. Returns `(text, names used)`; a placeholder not allowed or not held
    /// raises `RequestError` naming it (never a value), and nothing is substituted.
    #[pyo3(signature = (text, *, allowed))]
    fn substitute(&self, text: &str, allowed: &Bound<'_, PyAny>) -> PyResult<(String, Vec<String>)> {
        let names: Option<Vec<String>> = allowed.extract().ok();
        let callable = allowed.is_callable();
        if names.is_none() && !callable {
            return Err(PyTypeError::new_err(
                "allowed: a list of names or a callable taking a name",
            ));
        }
        let mut err = None;
        let ok = |name: &str| match &names {
            Some(list) => list.iter().any(|n| n == name),
            None => match allowed.call1((name,)).and_then(|r| r.is_truthy()) {
                Ok(b) => b,
                Err(e) => {
                    err.get_or_insert(e);
                    false
                }
            },
        };
        let r = sluice_core::broker::substitute(text, &*self.vault, ok);
        if let Some(e) = err {
            return Err(e);
        }
        r.map(|s| (s.text.into_owned(), s.used))
            .map_err(|e| RequestError::new_err(e.to_string()))
    }

    /// Starts a session recording signed with `key` (an Ed25519 `GrantKey` or its text): to
    /// `to`, a path (created new; later parts of a rotated recording next to it), a callable
    /// that takes each record as bytes, or `None` (memory: `Recorder.data()`). The first record
    /// names this engine's policy and its digest; what is written passes through this engine's
    /// detector. Pass it to `session()` or `check()`; close it (or use `with`) at the end.
    #[pyo3(signature = (to = None, *, key, protocol = "host", user = None, target = None, session_id = None, fsync = "checkpoint", checkpoint_every = 1000, checkpoint_interval = 10.0, rotate_bytes = None, rotate_interval = None, fail_closed = true))]
    #[allow(clippy::too_many_arguments)]
    fn recorder(
        &self,
        py: Python<'_>,
        to: Option<Bound<'_, PyAny>>,
        key: Bound<'_, PyAny>,
        protocol: &str,
        user: Option<String>,
        target: Option<String>,
        session_id: Option<String>,
        fsync: &str,
        checkpoint_every: u64,
        checkpoint_interval: f64,
        rotate_bytes: Option<u64>,
        rotate_interval: Option<f64>,
        fail_closed: bool,
    ) -> PyResult<Recorder> {
        let policy = self.guard.policy.load();
        let mut start = sluice_core::record::SessionStart::new(protocol).policy(policy.name(), policy.digest());
        if let Some(u) = user {
            start = start.user(u);
        }
        if let Some(t) = target {
            start = start.target(t);
        }
        if let Some(id) = session_id {
            start = start.session_id(id);
        }
        let s = Start {
            to,
            key,
            start,
            fsync: fsync.to_string(),
            checkpoint_every,
            checkpoint_interval,
            rotate_bytes,
            rotate_interval,
            fail_closed,
        };
        Recorder::start(py, s, Arc::clone(&self.guard.detector))
    }

    fn __repr__(&self) -> String {
        format!(
            "Engine(policy={}, rules={})",
            quote(self.guard.policy.load().name()),
            self.guard.detector.rules().len()
        )
    }
}
