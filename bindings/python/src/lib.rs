//! `sluice._native`: the Sluice engine for Python. The pure-Python package `sluice` re-exports
//! everything here; the types are documented in `python/sluice/_native.pyi`.
//!
//! Conventions: every function that takes data accepts `bytes` or `str` and returns the same
//! type; offsets into a `str` are in code points (so `text[f.start:f.end]` is the secret),
//! offsets into `bytes` in bytes. Scanning and redacting release the GIL.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::IntoPyObjectExt;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use sluice_core::policy::cases::{OwnedRequest, SshKind};
use sluice_core::policy::grant::{self, GrantVerifier, MemoryStore, RedisStore, ReplayStore};
use sluice_core::policy::{self as core_policy, Action, Dialect, EngineHandle, Protocol};
use sluice_core::session::{self, Guard, Hook};
use sluice_core::{Detector, ErrorKind};

create_exception!(
    sluice,
    SluiceError,
    PyException,
    "Base class of every error Sluice raises."
);
create_exception!(
    sluice,
    DetectorError,
    SluiceError,
    "A rule file, rule or known value was rejected."
);
create_exception!(
    sluice,
    RuleFileError,
    DetectorError,
    "A rule file is not valid TOML or does not follow the format."
);
create_exception!(
    sluice,
    PatternError,
    DetectorError,
    "A rule's pattern does not parse or compile."
);
create_exception!(
    sluice,
    RuleError,
    DetectorError,
    "A rule field other than the pattern is invalid."
);
create_exception!(sluice, LimitError, DetectorError, "A configured limit was exceeded.");
create_exception!(
    sluice,
    ExampleError,
    DetectorError,
    "A rule's own examples disagree with its pattern."
);
create_exception!(
    sluice,
    KnownValueError,
    DetectorError,
    "A registered known value is unusable."
);
create_exception!(sluice, PolicyError, SluiceError, "A policy document was rejected.");
create_exception!(
    sluice,
    RequestError,
    SluiceError,
    "A request given to check() is malformed."
);
create_exception!(
    sluice,
    GrantError,
    SluiceError,
    "A grant or key was not issued or not accepted."
);
create_exception!(sluice, OidcError, SluiceError, "An OIDC token or key set was rejected.");
create_exception!(
    sluice,
    SessionError,
    SluiceError,
    "A session got bad input: close the connection."
);

/// Inputs larger than this are scanned with the GIL released; below it the release costs more
/// than it frees.
const RELEASE_GIL_ABOVE: usize = 16 * 1024;

/// Sets keyword attributes on a new exception of type `T`.
fn error_with<T: pyo3::PyTypeInfo>(py: Python<'_>, message: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let err = PyErr::new::<T, _>(message);
    let value = err.value(py);
    for (k, v) in attrs {
        if let Err(e) = value.setattr(*k, v) {
            return e;
        }
    }
    err
}

/// A string as Python's `repr` shows it.
fn quote(s: &str) -> String {
    format!(
        "'{}'",
        s.replace('\\', "\\\\").replace('\'', "\\'").replace('\n', "\\n")
    )
}

/// An optional string as Python's `repr` shows it.
fn quote_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "None".to_string(), quote)
}

/// A list of strings as Python's `repr` shows it.
fn quote_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", inner.join(", "))
}

/// A dict of strings as Python's `repr` shows it.
fn quote_map(map: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{}: {}", quote(k), quote(v))).collect();
    format!("{{{}}}", inner.join(", "))
}

/// Any value as a Python object for an exception attribute (`None` if it cannot be converted).
fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> Py<PyAny> {
    v.into_py_any(py).unwrap_or_else(|_| py.None())
}

/// A core error on its way to Python: `?` turns it into the matching `SluiceError` subclass,
/// with what the core knows (origin, rule, line, column, path, kind, side) as attributes.
enum Error {
    Detector(sluice_core::Error),
    Policy(core_policy::PolicyError),
    Grant(grant::GrantError),
    Oidc(core_policy::oidc::OidcError),
    Session(session::SessionError),
}

macro_rules! from_core {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Error {
                Error::$variant(e)
            }
        }
    )*};
}

from_core!(
    Detector(sluice_core::Error),
    Policy(core_policy::PolicyError),
    Grant(grant::GrantError),
    Oidc(core_policy::oidc::OidcError),
    Session(session::SessionError),
);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| match e {
            Error::Detector(e) => {
                let (line, column) = e.line_col().unzip();
                let attrs = [
                    ("origin", obj(py, e.origin())),
                    ("rule", obj(py, e.rule())),
                    ("line", obj(py, line)),
                    ("column", obj(py, column)),
                ];
                let msg = e.to_string();
                match e.kind() {
                    ErrorKind::RuleFile => error_with::<RuleFileError>(py, msg, &attrs),
                    ErrorKind::Pattern => error_with::<PatternError>(py, msg, &attrs),
                    ErrorKind::Rule => error_with::<RuleError>(py, msg, &attrs),
                    ErrorKind::Limit => error_with::<LimitError>(py, msg, &attrs),
                    ErrorKind::Example => error_with::<ExampleError>(py, msg, &attrs),
                    ErrorKind::KnownValue => error_with::<KnownValueError>(py, msg, &attrs),
                    // Kinds added to the core later still land in the hierarchy.
                    _ => error_with::<DetectorError>(py, msg, &attrs),
                }
            }
            Error::Policy(e) => {
                let (line, column) = e.line_col().unzip();
                let attrs = [
                    ("origin", obj(py, Some(e.origin()))),
                    ("path", obj(py, e.path())),
                    ("line", obj(py, line)),
                    ("column", obj(py, column)),
                ];
                error_with::<PolicyError>(py, e.to_string(), &attrs)
            }
            Error::Grant(e) => {
                let kind = e.kind().as_str();
                error_with::<GrantError>(py, e.to_string(), &[("kind", obj(py, Some(kind)))])
            }
            Error::Oidc(e) => error_with::<OidcError>(py, e.to_string(), &[]),
            Error::Session(e) => {
                let attrs = [
                    ("side", obj(py, Some(e.side().as_str()))),
                    ("reason", obj(py, Some(e.reason()))),
                ];
                error_with::<SessionError>(py, e.to_string(), &attrs)
            }
        })
    }
}

/// The Python exception for a core error.
fn py_err(e: impl Into<Error>) -> PyErr {
    PyErr::from(e.into())
}

/// Runs `f` over `len` bytes of input, without the GIL when the input is large enough for other
/// threads to gain from it.
fn detach_if_large<T: Send>(py: Python<'_>, len: usize, f: impl FnOnce() -> T + Send) -> T {
    if len > RELEASE_GIL_ABOVE { py.detach(f) } else { f() }
}

/// Data as bytes, remembering which type it came as.
struct Input<'py, 'a> {
    /// The `bytes` object itself, or the UTF-8 encoding of the `str`.
    utf8: Bound<'py, PyBytes>,
    is_str: bool,
    original: &'a Bound<'py, PyAny>,
}

impl Input<'_, '_> {
    /// The bytes, read in place from the Python object that holds them.
    fn bytes(&self) -> &[u8] {
        self.utf8.as_bytes()
    }
}

fn input<'py, 'a>(obj: &'a Bound<'py, PyAny>) -> PyResult<Input<'py, 'a>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Input {
            utf8: b.clone(),
            is_str: false,
            original: obj,
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        // The stable ABI for Python 3.9 has no borrowed UTF-8 view of a str: one encoding copy,
        // made by Python, read in place from then on.
        return Ok(Input {
            utf8: s.encode_utf8()?,
            is_str: true,
            original: obj,
        });
    }
    Err(PyTypeError::new_err(format!(
        "expected bytes or str, got {}",
        obj.get_type()
            .name()
            .map_or_else(|_| "?".to_string(), |n| n.to_string())
    )))
}

/// Returns `data` as the Python type the input came as.
fn output<'py>(py: Python<'py>, data: &[u8], is_str: bool) -> PyResult<Bound<'py, PyAny>> {
    if is_str {
        let s = std::str::from_utf8(data).map_err(|e| PyValueError::new_err(format!("not UTF-8: {e}")))?;
        Ok(PyString::new(py, s).into_any())
    } else {
        Ok(PyBytes::new(py, data).into_any())
    }
}

/// Converts ascending byte offsets into code-point offsets of the same UTF-8 text.
struct CharIndex<'a> {
    data: &'a [u8],
    ascii: bool,
    byte: usize,
    chars: usize,
}

impl<'a> CharIndex<'a> {
    fn new(data: &'a [u8], is_str: bool) -> CharIndex<'a> {
        CharIndex {
            data,
            ascii: !is_str || data.is_ascii(),
            byte: 0,
            chars: 0,
        }
    }

    fn at(&mut self, offset: usize) -> usize {
        if self.ascii {
            return offset;
        }
        if offset < self.byte {
            (self.byte, self.chars) = (0, 0);
        }
        self.chars += self.data[self.byte..offset]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count();
        self.byte = offset;
        self.chars
    }
}

/// One secret found by [`Engine::scan`].
#[pyclass(frozen, eq, module = "sluice", from_py_object)]
#[derive(Clone, PartialEq, Eq)]
struct Finding {
    #[pyo3(get)]
    rule: String,
    #[pyo3(get)]
    start: usize,
    #[pyo3(get)]
    end: usize,
    #[pyo3(get)]
    line: usize,
    #[pyo3(get)]
    column: usize,
    #[pyo3(get)]
    fingerprint: String,
}

#[pymethods]
impl Finding {
    fn __repr__(&self) -> String {
        format!(
            "Finding(rule={}, start={}, end={}, line={}, column={}, fingerprint={})",
            quote(&self.rule),
            self.start,
            self.end,
            self.line,
            self.column,
            quote(&self.fingerprint)
        )
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&self.rule, self.start, self.end, &self.fingerprint).hash(&mut h);
        h.finish()
    }
}

/// Who acts.
#[pyclass(frozen, eq, module = "sluice", from_py_object)]
#[derive(Clone, PartialEq, Eq)]
struct Identity {
    inner: core_policy::Identity,
}

#[pymethods]
impl Identity {
    #[new]
    #[pyo3(signature = (user, groups = Vec::new(), attributes = BTreeMap::new()))]
    fn new(user: String, groups: Vec<String>, attributes: BTreeMap<String, String>) -> Identity {
        Identity {
            inner: core_policy::Identity {
                user,
                groups,
                attributes,
            },
        }
    }

    #[getter]
    fn user(&self) -> &str {
        &self.inner.user
    }

    #[getter]
    fn groups(&self) -> Vec<String> {
        self.inner.groups.clone()
    }

    #[getter]
    fn attributes(&self) -> BTreeMap<String, String> {
        self.inner.attributes.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Identity(user={}, groups={}, attributes={})",
            quote(&self.inner.user),
            quote_list(&self.inner.groups),
            quote_map(&self.inner.attributes)
        )
    }
}

/// What is acted on.
#[pyclass(frozen, eq, module = "sluice", from_py_object)]
#[derive(Clone, PartialEq, Eq)]
struct Target {
    inner: core_policy::Target,
}

#[pymethods]
impl Target {
    #[new]
    #[pyo3(signature = (name, labels = BTreeMap::new()))]
    fn new(name: String, labels: BTreeMap<String, String>) -> Target {
        Target {
            inner: core_policy::Target { name, labels },
        }
    }

    #[getter]
    fn name(&self) -> &str {
        &self.inner.name
    }

    #[getter]
    fn labels(&self) -> BTreeMap<String, String> {
        self.inner.labels.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "Target(name={}, labels={})",
            quote(&self.inner.name),
            quote_map(&self.inner.labels)
        )
    }
}

/// `Identity` or a user name; `None` is the user `agent`.
#[derive(FromPyObject)]
enum IdentityArg {
    Identity(Identity),
    User(String),
}

/// `Target` or a target name; `None` is the target `default`.
#[derive(FromPyObject)]
enum TargetArg {
    Target(Target),
    Name(String),
}

impl IdentityArg {
    fn into_core(self) -> core_policy::Identity {
        match self {
            IdentityArg::Identity(i) => i.inner,
            IdentityArg::User(u) => core_policy::Identity::new(u),
        }
    }
}

impl TargetArg {
    fn into_core(self) -> core_policy::Target {
        match self {
            TargetArg::Target(t) => t.inner,
            TargetArg::Name(n) => core_policy::Target::new(n),
        }
    }
}

/// The identity given, or the user `agent`.
fn identity_of(arg: Option<IdentityArg>) -> core_policy::Identity {
    arg.map_or_else(|| core_policy::Identity::new("agent"), IdentityArg::into_core)
}

/// The target given, or the target `default`.
fn target_of(arg: Option<TargetArg>) -> core_policy::Target {
    arg.map_or_else(|| core_policy::Target::new("default"), TargetArg::into_core)
}

/// What a human is asked to approve.
#[pyclass(frozen, module = "sluice", from_py_object)]
#[derive(Clone)]
struct ApprovalRequest {
    inner: grant::ApprovalRequest,
}

#[pymethods]
impl ApprovalRequest {
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }
    #[getter]
    fn rule(&self) -> Option<&str> {
        self.inner.rule.as_deref()
    }
    #[getter]
    fn user(&self) -> &str {
        &self.inner.user
    }
    #[getter]
    fn target(&self) -> &str {
        &self.inner.target
    }
    #[getter]
    fn protocol(&self) -> &'static str {
        self.inner.protocol.as_str()
    }
    #[getter]
    fn command(&self) -> &str {
        &self.inner.command
    }
    #[getter]
    fn fingerprint(&self) -> &str {
        &self.inner.fingerprint
    }
    #[getter]
    fn reason(&self) -> &str {
        &self.inner.reason
    }
    #[getter]
    fn created_at(&self) -> u64 {
        self.inner.created_at
    }
    #[getter]
    fn expires_at(&self) -> u64 {
        self.inner.expires_at
    }
    #[getter]
    fn count(&self) -> u32 {
        self.inner.count
    }
    #[getter]
    fn allow_self(&self) -> bool {
        self.inner.allow_self
    }
    #[getter]
    fn approver_users(&self) -> Vec<String> {
        self.inner.approvers.users.clone()
    }
    #[getter]
    fn approver_groups(&self) -> Vec<String> {
        self.inner.approvers.groups.clone()
    }

    /// The request as JSON, the form `sluice approve` reads.
    fn to_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.inner).map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// A request from its JSON form.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<ApprovalRequest> {
        serde_json::from_str(text)
            .map(|inner| ApprovalRequest { inner })
            .map_err(|e| RequestError::new_err(format!("not an approval request: {e}")))
    }

    fn __repr__(&self) -> String {
        format!(
            "ApprovalRequest(id={}, rule={}, user={}, target={}, command={})",
            quote(&self.inner.id),
            quote_opt(self.inner.rule.as_deref()),
            quote(&self.inner.user),
            quote(&self.inner.target),
            quote(&self.inner.command)
        )
    }
}

/// The outcome of [`Engine::check`].
#[pyclass(frozen, module = "sluice")]
struct Decision {
    #[pyo3(get)]
    decision: &'static str,
    #[pyo3(get)]
    rule: Option<String>,
    #[pyo3(get)]
    reason: String,
    #[pyo3(get)]
    approval: Option<ApprovalRequest>,
    #[pyo3(get)]
    mask: bool,
    #[pyo3(get)]
    uncertain: bool,
}

#[pymethods]
impl Decision {
    /// Whether the command may go through.
    #[getter]
    fn allowed(&self) -> bool {
        self.decision == Action::Allow.as_str()
    }

    fn __bool__(&self) -> bool {
        self.allowed()
    }

    fn __repr__(&self) -> String {
        format!(
            "Decision(decision={}, rule={}, reason={})",
            quote(self.decision),
            quote_opt(self.rule.as_deref()),
            quote(&self.reason)
        )
    }
}

impl From<core_policy::Decision> for Decision {
    fn from(d: core_policy::Decision) -> Decision {
        Decision {
            decision: d.action().as_str(),
            rule: d.rule().map(str::to_string),
            reason: d.reason().to_string(),
            approval: d.approval().map(|inner| ApprovalRequest { inner: inner.clone() }),
            mask: d.mask(),
            uncertain: d.uncertain(),
        }
    }
}

/// One approver, as the host vouches for them.
#[pyclass(frozen, eq, module = "sluice", from_py_object)]
#[derive(Clone, PartialEq, Eq)]
struct Approver {
    inner: grant::Approver,
}

#[pymethods]
impl Approver {
    #[new]
    #[pyo3(signature = (user, groups = Vec::new()))]
    fn new(user: String, groups: Vec<String>) -> Approver {
        Approver {
            inner: grant::Approver { user, groups },
        }
    }
    #[getter]
    fn user(&self) -> &str {
        &self.inner.user
    }
    #[getter]
    fn groups(&self) -> Vec<String> {
        self.inner.groups.clone()
    }
    fn __repr__(&self) -> String {
        format!(
            "Approver(user={}, groups={})",
            quote(&self.inner.user),
            quote_list(&self.inner.groups)
        )
    }
}

#[derive(FromPyObject)]
enum ApproverArg {
    Approver(Approver),
    User(String),
}

/// A grant signing or verifying key (HMAC-SHA256 or Ed25519).
#[pyclass(frozen, module = "sluice", from_py_object)]
#[derive(Clone)]
struct GrantKey {
    inner: grant::GrantKey,
}

#[pymethods]
impl GrantKey {
    /// A new random HMAC-SHA256 key (signs and verifies).
    #[staticmethod]
    fn generate_hmac() -> GrantKey {
        GrantKey {
            inner: grant::GrantKey::generate_hmac(),
        }
    }

    /// A new random Ed25519 signing key; give `public()` to verifiers.
    #[staticmethod]
    fn generate_ed25519() -> GrantKey {
        GrantKey {
            inner: grant::GrantKey::generate_ed25519(),
        }
    }

    /// A key from its text form (as written by `sluice keygen` or `to_text()`).
    #[staticmethod]
    fn parse(text: &str) -> PyResult<GrantKey> {
        grant::GrantKey::parse(text)
            .map(|inner| GrantKey { inner })
            .map_err(py_err)
    }

    /// The key's text form. Secret keys are secrets: store them as such.
    fn to_text(&self) -> String {
        self.inner.to_text()
    }

    /// The verifying half of an Ed25519 key; `None` for HMAC keys.
    fn public(&self) -> Option<GrantKey> {
        self.inner.public().map(|inner| GrantKey { inner })
    }

    /// Issues a single-use grant for `request`, approved by `approvers` (user names or
    /// `Approver`s with groups). Raises `GrantError` when the approvers do not satisfy the rule
    /// or the request has expired.
    #[pyo3(signature = (request, approvers, *, now = None))]
    fn issue(&self, request: &ApprovalRequest, approvers: Vec<ApproverArg>, now: Option<u64>) -> PyResult<String> {
        let approvers: Vec<grant::Approver> = approvers
            .into_iter()
            .map(|a| match a {
                ApproverArg::Approver(a) => a.inner,
                ApproverArg::User(u) => grant::Approver::new(u),
            })
            .collect();
        grant::issue(&self.inner, &request.inner, &approvers, now.unwrap_or_else(grant::now)).map_err(py_err)
    }

    fn __repr__(&self) -> String {
        let kind = match (&self.inner, self.inner.public()) {
            (grant::GrantKey::Hmac(_), _) => "hmac",
            (_, Some(_)) => "ed25519 signing",
            (_, None) => "ed25519 verifying",
        };
        format!("GrantKey({kind})")
    }
}

/// Verifies OIDC ID tokens (RS256, ES256, EdDSA) against a JWKS document.
#[pyclass(frozen, module = "sluice")]
struct OidcVerifier {
    inner: core_policy::oidc::Verifier,
}

#[derive(FromPyObject)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[pymethods]
impl OidcVerifier {
    #[new]
    #[pyo3(signature = (jwks, issuer, audience, *, user_claim = "sub", groups_claim = "groups", leeway = 60))]
    fn new(
        jwks: &str,
        issuer: String,
        audience: Audience,
        user_claim: &str,
        groups_claim: &str,
        leeway: u64,
    ) -> PyResult<OidcVerifier> {
        let config = core_policy::oidc::Config {
            issuer,
            audience: match audience {
                Audience::One(a) => vec![a],
                Audience::Many(a) => a,
            },
            groups_claim: groups_claim.to_string(),
            user_claim: user_claim.to_string(),
            leeway_secs: leeway,
        };
        core_policy::oidc::Verifier::new(config, jwks)
            .map(|inner| OidcVerifier { inner })
            .map_err(py_err)
    }

    /// The identity a valid token establishes; `OidcError` otherwise.
    fn verify(&self, token: &str) -> PyResult<Identity> {
        self.inner.verify(token).map(|inner| Identity { inner }).map_err(py_err)
    }
}

/// Streaming redaction: feed chunks, get masked chunks; a secret cut across chunks is still
/// masked. The output type follows the first chunk (`bytes` or `str`).
#[pyclass(module = "sluice")]
struct StreamRedactor {
    inner: sluice_core::StreamRedactor<'static>,
    /// `None` until the first chunk; then whether chunks are `str`.
    is_str: Option<bool>,
    out: Vec<u8>,
    /// `str` mode: bytes of a character not yet complete.
    partial: Vec<u8>,
    finished: bool,
}

impl StreamRedactor {
    fn emit<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if self.is_str != Some(true) {
            let r = PyBytes::new(py, &self.out).into_any();
            self.out.clear();
            return Ok(r);
        }
        self.partial.append(&mut self.out);
        let valid = match std::str::from_utf8(&self.partial) {
            Ok(_) => self.partial.len(),
            Err(e) if e.error_len().is_none() && !self.finished => e.valid_up_to(),
            Err(e) => return Err(PyValueError::new_err(format!("redacted text is not UTF-8: {e}"))),
        };
        let s = std::str::from_utf8(&self.partial[..valid]).unwrap_or_default();
        let r = PyString::new(py, s).into_any();
        self.partial.drain(..valid);
        Ok(r)
    }
}

#[pymethods]
impl StreamRedactor {
    /// Masks `chunk`; returns what can be released now (a suffix that may begin a secret is held
    /// back until the next chunk or `finish()`).
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if self.finished {
            return Err(PyValueError::new_err("feed() after finish()"));
        }
        let data = input(chunk)?;
        match self.is_str {
            None => self.is_str = Some(data.is_str),
            Some(s) if s != data.is_str => {
                return Err(PyTypeError::new_err(
                    "a stream's chunks must all be bytes or all be str",
                ));
            }
            Some(_) => {}
        }
        let (inner, out) = (&mut self.inner, &mut self.out);
        let bytes = data.bytes();
        detach_if_large(py, bytes.len(), || inner.feed(bytes, out));
        self.emit(py)
    }

    /// Releases what was held back. Call once at the end of the stream.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if !self.finished {
            self.inner.finish(&mut self.out);
            self.finished = true;
        }
        self.emit(py)
    }

    /// Bytes held back now.
    #[getter]
    fn pending(&self) -> usize {
        self.inner.pending() + self.partial.len()
    }
}

/// Forwards session events to a Python callable, as dicts.
struct PyHook(Py<PyAny>);

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
struct Engine {
    guard: Arc<Guard>,
}

/// `Engine` options, from keyword arguments.
#[derive(Default)]
struct Options {
    rules: Vec<String>,
    builtin_rules: bool,
    known_values: Vec<(String, Vec<u8>)>,
    grant_key: Option<grant::GrantKey>,
    replay_store: Option<String>,
    on_event: Option<Py<PyAny>>,
}

impl Options {
    fn from_kwargs(kw: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
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

    fn build(self, py: Python<'_>, policy: Arc<core_policy::Engine>) -> PyResult<Engine> {
        let mut b = Detector::builder().builtin_rules(self.builtin_rules);
        for (i, text) in self.rules.into_iter().enumerate() {
            b = b.rules_toml(format!("rules[{i}]"), text);
        }
        for (label, value) in &self.known_values {
            b = b.known_value(label.clone(), value);
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
            }),
        })
    }
}

fn parse_protocol(p: &str) -> PyResult<Protocol> {
    p.parse::<Protocol>()
        .map_err(|_| RequestError::new_err(format!("unknown protocol `{p}` (shell, sql, http, mcp or ssh)")))
}

/// Builds the request for `check`: the command is text, or for MCP a dict (a JSON-RPC message,
/// or `{"name": …, "arguments": …}` for a tool call).
#[allow(clippy::too_many_arguments)]
fn build_request(
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
    let kind = match ssh {
        "exec" => SshKind::Exec,
        "env" => SshKind::Env,
        "subsystem" => SshKind::Subsystem,
        "shell" => SshKind::Shell,
        "forward" => SshKind::Forward,
        "channel" => SshKind::Channel,
        other => {
            return Err(RequestError::new_err(format!(
                "unknown ssh request `{other}` (exec, env, subsystem, shell, forward or channel)"
            )));
        }
    };
    Ok((req.ssh(kind), text))
}

#[pymethods]
impl Engine {
    /// The built-in rules and the embedded agent-safe policy. Keyword options: `rules` (rule-file
    /// TOML text, or a list of them), `builtin_rules`, `known_values` (a dict label → value or a
    /// list of values), `grant_key`, `replay_store` (`"memory"` or a `redis://` URL), `on_event`.
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
    #[pyo3(signature = (protocol, command, *, identity = None, target = None, grant = None, dialect = "postgres", headers = None, body = None, ssh = "exec"))]
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
    ) -> PyResult<Decision> {
        let protocol = parse_protocol(protocol)?;
        let (req, text) = build_request(py, protocol, command, dialect, headers, body, ssh)?;
        let (identity, target) = (identity_of(identity), target_of(target));
        req.with(|r| self.guard.decide(&identity, &target, r, &text, grant))
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
    /// PostgreSQL and MySQL take identity and target from the startup when not given.
    #[pyo3(signature = (protocol, *, identity = None, target = None))]
    fn session(&self, protocol: &str, identity: Option<IdentityArg>, target: Option<TargetArg>) -> PyResult<Session> {
        let g = self.guard.clone();
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

    fn __repr__(&self) -> String {
        format!(
            "Engine(policy={}, rules={})",
            quote(self.guard.policy.load().name()),
            self.guard.detector.rules().len()
        )
    }
}

enum Inner {
    Pg(session::postgres::PgSession),
    MySql(session::mysql::MySqlSession),
    Http(session::http::HttpSession),
    Mcp(session::mcp::McpSession),
}

/// One connection's enforcement: feed it each direction's bytes, forward what it returns.
/// Every call returns `(to_server, to_client)`. After a `SessionError` the session is closed.
#[pyclass(module = "sluice")]
struct Session {
    inner: Inner,
    out: session::Output,
    closed: Option<session::SessionError>,
}

impl Session {
    fn run<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        f: impl FnOnce(&mut Inner, &[u8], &mut session::Output) -> Result<(), session::SessionError>,
    ) -> PyResult<Pair<'py>> {
        if let Some(e) = &self.closed {
            return Err(py_err(e.clone()));
        }
        let data = input(data)?;
        self.out.clear();
        if let Err(e) = f(&mut self.inner, data.bytes(), &mut self.out) {
            let err = py_err(e.clone());
            self.closed = Some(e);
            return Err(err);
        }
        Ok((
            PyBytes::new(py, &self.out.to_server),
            PyBytes::new(py, &self.out.to_client),
        ))
    }
}

impl Inner {
    fn client(&mut self, data: &[u8], out: &mut session::Output) -> Result<(), session::SessionError> {
        match self {
            Inner::Pg(s) => s.from_client(data, out),
            Inner::MySql(s) => s.from_client(data, out),
            Inner::Http(s) => s.from_client(data, out),
            Inner::Mcp(s) => s.from_client(data, out),
        }
    }

    fn server(&mut self, data: &[u8], out: &mut session::Output) -> Result<(), session::SessionError> {
        match self {
            Inner::Pg(s) => s.from_server(data, out),
            Inner::MySql(s) => s.from_server(data, out),
            Inner::Http(s) => s.from_server(data, out),
            Inner::Mcp(s) => s.from_server(data, out),
        }
    }

    /// The MCP session, for the per-message calls.
    fn mcp(&mut self) -> PyResult<&mut session::mcp::McpSession> {
        match self {
            Inner::Mcp(s) => Ok(s),
            _ => Err(RequestError::new_err(
                "client_message() and server_message() are for MCP sessions",
            )),
        }
    }
}

/// What a session call returns: `(to_server, to_client)`.
type Pair<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>);

// `from_client` / `from_server` keep the core's names.
#[allow(clippy::wrong_self_convention)]
#[pymethods]
impl Session {
    /// Bytes from the client.
    fn from_client<'py>(&mut self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.run(py, data, Inner::client)
    }

    /// Bytes from the server.
    fn from_server<'py>(&mut self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.run(py, data, Inner::server)
    }

    /// MCP only: one whole JSON-RPC message from the client (any transport).
    fn client_message<'py>(&mut self, py: Python<'py>, message: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.inner.mcp()?;
        self.run(py, message, |s, d, o| {
            s.mcp().map_or(Ok(()), |m| m.client_message(d, o))
        })
    }

    /// MCP only: one whole JSON-RPC message from the server (any transport).
    fn server_message<'py>(&mut self, py: Python<'py>, message: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.inner.mcp()?;
        self.run(py, message, |s, d, o| {
            s.mcp().map_or(Ok(()), |m| m.server_message(d, o))
        })
    }

    /// MCP only: JSON-RPC errors (newline-delimited) for every client request still waiting
    /// for the server, to send the client before closing the connection.
    fn abort_pending<'py>(&mut self, py: Python<'py>, reason: &str) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = session::Output::default();
        self.inner.mcp()?.abort_pending(reason, &mut out);
        Ok(PyBytes::new(py, &out.to_client))
    }

    /// The protocol: postgres, mysql, http or mcp.
    #[getter]
    fn protocol(&self) -> &'static str {
        match self.inner {
            Inner::Pg(_) => "postgres",
            Inner::MySql(_) => "mysql",
            Inner::Http(_) => "http",
            Inner::Mcp(_) => "mcp",
        }
    }

    /// Whether a `SessionError` closed the session.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.is_some()
    }
}

/// Runs the `sluice` command line (the same code as the binary) and returns its exit status.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| sluice_cli::run(argv))
}

/// The `sluice._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("AGENT_SAFE_POLICY", core_policy::AGENT_SAFE)?;
    m.add_class::<Engine>()?;
    m.add_class::<Finding>()?;
    m.add_class::<Decision>()?;
    m.add_class::<ApprovalRequest>()?;
    m.add_class::<Identity>()?;
    m.add_class::<Target>()?;
    m.add_class::<Approver>()?;
    m.add_class::<GrantKey>()?;
    m.add_class::<OidcVerifier>()?;
    m.add_class::<StreamRedactor>()?;
    m.add_class::<Session>()?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add("SluiceError", py.get_type::<SluiceError>())?;
    m.add("DetectorError", py.get_type::<DetectorError>())?;
    m.add("RuleFileError", py.get_type::<RuleFileError>())?;
    m.add("PatternError", py.get_type::<PatternError>())?;
    m.add("RuleError", py.get_type::<RuleError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("ExampleError", py.get_type::<ExampleError>())?;
    m.add("KnownValueError", py.get_type::<KnownValueError>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("RequestError", py.get_type::<RequestError>())?;
    m.add("GrantError", py.get_type::<GrantError>())?;
    m.add("OidcError", py.get_type::<OidcError>())?;
    m.add("SessionError", py.get_type::<SessionError>())?;
    // The attributes each error carries, `None` on the class until an instance sets them.
    for name in ["origin", "rule", "line", "column"] {
        py.get_type::<DetectorError>().setattr(name, py.None())?;
    }
    for name in ["origin", "path", "line", "column"] {
        py.get_type::<PolicyError>().setattr(name, py.None())?;
    }
    py.get_type::<GrantError>().setattr("kind", py.None())?;
    for name in ["side", "reason"] {
        py.get_type::<SessionError>().setattr(name, py.None())?;
    }
    Ok(())
}
