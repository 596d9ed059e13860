//! Who acts and on what: identities (given, or established by an OIDC ID token) and targets.

use std::collections::HashMap;

use napi::bindgen_prelude::Either;
use napi_derive::napi;
use sluice_core::policy::{self as core_policy, oidc};

use crate::{Error, err, no_fields};

/// Who acts: a user, their groups and attributes (what `OidcVerifier.verify` returns).
#[napi(object)]
#[derive(Debug, Default, Clone)]
pub struct Identity {
    /// User or agent id.
    pub user: String,
    /// Groups.
    pub groups: Option<Vec<String>>,
    /// Other attributes (`team`, `email`, …).
    pub attributes: Option<HashMap<String, String>>,
}

impl Identity {
    pub(crate) fn into_core(self) -> core_policy::Identity {
        core_policy::Identity {
            user: self.user,
            groups: self.groups.unwrap_or_default(),
            attributes: self.attributes.unwrap_or_default().into_iter().collect(),
        }
    }

    fn from_core(i: core_policy::Identity) -> Identity {
        Identity {
            user: i.user,
            groups: Some(i.groups),
            attributes: Some(i.attributes.into_iter().collect()),
        }
    }
}

/// What a command acts on: a name and labels.
#[napi(object)]
#[derive(Debug, Default, Clone)]
pub struct Target {
    /// Target name.
    pub name: String,
    /// Labels.
    pub labels: Option<HashMap<String, String>>,
}

/// An identity given as a user name or an `Identity`.
pub(crate) fn identity(given: Either<String, Identity>) -> core_policy::Identity {
    match given {
        Either::A(user) => core_policy::Identity::new(user),
        Either::B(i) => i.into_core(),
    }
}

/// A target given as a name or a `Target`.
pub(crate) fn target(given: Either<String, Target>) -> core_policy::Target {
    match given {
        Either::A(name) => core_policy::Target::new(name),
        Either::B(t) => core_policy::Target {
            name: t.name,
            labels: t.labels.unwrap_or_default().into_iter().collect(),
        },
    }
}

/// Options for `new OidcVerifier(jwks, options)`.
#[napi(object)]
#[derive(Debug)]
pub struct OidcOptions {
    /// The issuer (`iss`) tokens must name.
    pub issuer: String,
    /// The audience (`aud`) tokens must name: one, or any of several.
    pub audience: Either<String, Vec<String>>,
    /// The claim that names the user (default `sub`).
    pub user_claim: Option<String>,
    /// The claim that lists the groups (default `groups`).
    pub groups_claim: Option<String>,
    /// Clock leeway in seconds for `exp`/`nbf` (default 60).
    pub leeway: Option<u32>,
}

/// Verifies OIDC ID tokens (RS256, ES256, EdDSA) against a JWKS document.
#[napi]
pub struct OidcVerifier {
    inner: oidc::Verifier,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OidcVerifier(..)")
    }
}

fn oidc_err(e: &oidc::OidcError) -> Error {
    let kind = format!("{:?}", e.kind());
    err("SLUICE_OIDC", e.to_string(), serde_json::json!({ "kind": kind }))
}

#[napi]
impl OidcVerifier {
    /// A verifier for tokens signed by a key of `jwks` (the JWKS document's JSON text).
    #[napi(constructor)]
    pub fn new(jwks: String, options: OidcOptions) -> Result<OidcVerifier, Error> {
        if options.issuer.is_empty() {
            return Err(err("SLUICE_OIDC", "issuer must not be empty", no_fields()));
        }
        let config = oidc::Config {
            issuer: options.issuer,
            audience: match options.audience {
                Either::A(a) => vec![a],
                Either::B(a) => a,
            },
            groups_claim: options.groups_claim.unwrap_or_else(|| "groups".into()),
            user_claim: options.user_claim.unwrap_or_else(|| "sub".into()),
            leeway_secs: u64::from(options.leeway.unwrap_or(60)),
        };
        oidc::Verifier::new(config, &jwks)
            .map(|inner| OidcVerifier { inner })
            .map_err(|e| oidc_err(&e))
    }

    /// The identity a valid token establishes; throws `OidcError` otherwise.
    #[napi]
    pub fn verify(&self, token: String) -> Result<Identity, Error> {
        self.inner
            .verify(&token)
            .map(Identity::from_core)
            .map_err(|e| oidc_err(&e))
    }
}
