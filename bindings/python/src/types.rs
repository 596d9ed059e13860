//! Value types: findings, identities, targets, approval requests and decisions.

use std::collections::BTreeMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use sluice_core::policy::grant;
use sluice_core::policy::{self as core_policy, Action};

use crate::convert::*;
use crate::errors::*;

/// One secret found by [`Engine::scan`].
#[pyclass(frozen, eq, module = "sluice", from_py_object)]
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    #[pyo3(get)]
    pub(crate) rule: String,
    #[pyo3(get)]
    pub(crate) start: usize,
    #[pyo3(get)]
    pub(crate) end: usize,
    #[pyo3(get)]
    pub(crate) line: usize,
    #[pyo3(get)]
    pub(crate) column: usize,
    #[pyo3(get)]
    pub(crate) fingerprint: String,
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
pub(crate) struct Identity {
    pub(crate) inner: core_policy::Identity,
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
pub(crate) struct Target {
    pub(crate) inner: core_policy::Target,
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
pub(crate) enum IdentityArg {
    Identity(Identity),
    User(String),
}

/// `Target` or a target name; `None` is the target `default`.
#[derive(FromPyObject)]
pub(crate) enum TargetArg {
    Target(Target),
    Name(String),
}

impl IdentityArg {
    pub(crate) fn into_core(self) -> core_policy::Identity {
        match self {
            IdentityArg::Identity(i) => i.inner,
            IdentityArg::User(u) => core_policy::Identity::new(u),
        }
    }
}

impl TargetArg {
    pub(crate) fn into_core(self) -> core_policy::Target {
        match self {
            TargetArg::Target(t) => t.inner,
            TargetArg::Name(n) => core_policy::Target::new(n),
        }
    }
}

/// The identity given, or the user `agent`.
pub(crate) fn identity_of(arg: Option<IdentityArg>) -> core_policy::Identity {
    arg.map_or_else(|| core_policy::Identity::new("agent"), IdentityArg::into_core)
}

/// The target given, or the target `default`.
pub(crate) fn target_of(arg: Option<TargetArg>) -> core_policy::Target {
    arg.map_or_else(|| core_policy::Target::new("default"), TargetArg::into_core)
}

/// What a human is asked to approve.
#[pyclass(frozen, module = "sluice", from_py_object)]
#[derive(Clone)]
pub(crate) struct ApprovalRequest {
    pub(crate) inner: grant::ApprovalRequest,
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
pub(crate) struct Decision {
    #[pyo3(get)]
    pub(crate) decision: &'static str,
    #[pyo3(get)]
    pub(crate) rule: Option<String>,
    #[pyo3(get)]
    pub(crate) reason: String,
    #[pyo3(get)]
    pub(crate) approval: Option<ApprovalRequest>,
    #[pyo3(get)]
    pub(crate) mask: bool,
    #[pyo3(get)]
    pub(crate) uncertain: bool,
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
