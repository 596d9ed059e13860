//! Grants and OIDC: approvers, grant keys, and the ID-token verifier.

use pyo3::prelude::*;
use sluice_core::policy::grant;
use sluice_core::policy::{self as core_policy};

use crate::convert::*;
use crate::errors::*;
use crate::types::*;

/// One approver, as the host vouches for them.
#[pyclass(frozen, eq, module = "sluice", from_py_object)]
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Approver {
    pub(crate) inner: grant::Approver,
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
pub(crate) enum ApproverArg {
    Approver(Approver),
    User(String),
}

/// A grant signing or verifying key (HMAC-SHA256 or Ed25519).
#[pyclass(frozen, module = "sluice", from_py_object)]
#[derive(Clone)]
pub(crate) struct GrantKey {
    pub(crate) inner: grant::GrantKey,
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
pub(crate) struct OidcVerifier {
    pub(crate) inner: core_policy::oidc::Verifier,
}

#[derive(FromPyObject)]
pub(crate) enum Audience {
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
