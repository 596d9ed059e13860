//! Identities from OIDC ID or access tokens, verified against a JWKS the host supplies
//! (fetched from the issuer's `jwks_uri` and refreshed by the host; this crate does no I/O).
//!
//! Checks: signature (RS256, ES256 or EdDSA; the key is picked by `kid` and must be of the
//! header's family, so an `alg` swap or an HMAC `oct` key is refused), issuer, audience, expiry
//! and not-before with a leeway. The user comes from `sub` (or `user_claim`), groups from
//! `groups_claim` (a dotted path such as `realm_access.roles`; an array, or a space- or
//! comma-separated string), and every other top-level scalar claim becomes an attribute.
//!
//! Signature checking is done by `jsonwebtoken` with its RustCrypto backend.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use super::Identity;

/// What the verifier expects of tokens.
#[derive(Debug, Clone)]
pub struct Config {
    /// Required `iss`.
    pub issuer: String,
    /// Accepted `aud` values (one must be present in the token).
    pub audience: Vec<String>,
    /// Where the groups are (default `groups`).
    pub groups_claim: String,
    /// Where the user id is (default `sub`).
    pub user_claim: String,
    /// Clock skew allowed on `exp`/`nbf`, in seconds (default 60).
    pub leeway_secs: u64,
}

impl Config {
    /// Defaults for `issuer` and `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Config {
        Config {
            issuer: issuer.into(),
            audience: vec![audience.into()],
            groups_claim: "groups".into(),
            user_claim: "sub".into(),
            leeway_secs: 60,
        }
    }
}

/// Why a token or key set was not accepted: a [kind](OidcErrorKind), the detail, and the
/// decoder's error ([`jsonwebtoken`]'s, serde_json's) as [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct OidcError {
    kind: OidcErrorKind,
    detail: String,
    source: Option<crate::error::Source>,
}

/// What kind of problem an [`OidcError`] is. More kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OidcErrorKind {
    /// The JWKS document is unreadable or holds no usable key.
    KeySet,
    /// The token is not a JWT (its header does not decode).
    Malformed,
    /// The token is signed with an algorithm that is not accepted (only RS256, ES256, EdDSA).
    Algorithm,
    /// No key of the set matches the token's key id and algorithm.
    NoKey,
    /// The signature, expiry, issuer or audience does not verify.
    Rejected,
    /// A claim the identity needs is missing.
    Claims,
}

impl OidcError {
    fn new(kind: OidcErrorKind, detail: impl Into<String>) -> OidcError {
        OidcError {
            kind,
            detail: detail.into(),
            source: None,
        }
    }

    fn caused(kind: OidcErrorKind, what: &str, e: impl std::error::Error + Send + Sync + 'static) -> OidcError {
        OidcError {
            kind,
            detail: if what.is_empty() {
                e.to_string()
            } else {
                format!("{what}: {e}")
            },
            source: Some(Arc::new(e)),
        }
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> OidcErrorKind {
        self.kind
    }

    /// What was wrong, in words.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl PartialEq for OidcError {
    fn eq(&self, other: &OidcError) -> bool {
        self.kind == other.kind && self.detail == other.detail
    }
}

impl Eq for OidcError {}

impl fmt::Display for OidcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OIDC token rejected: {}", self.detail)
    }
}

impl std::error::Error for OidcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        crate::error::source_of(&self.source)
    }
}

/// Verifies tokens against a key set.
#[derive(Clone)]
pub struct Verifier {
    config: Config,
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Verifier {
    /// A verifier for `config` with the keys of a JWKS document (`{"keys":[…]}`). Keys of
    /// other types (`oct`, RSA keys marked for another algorithm) are skipped.
    pub fn new(config: Config, jwks_json: &str) -> Result<Verifier, OidcError> {
        let set: JwkSet =
            serde_json::from_str(jwks_json).map_err(|e| OidcError::caused(OidcErrorKind::KeySet, "JWKS", e))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                _ => continue,
            };
            if let Some(a) = jwk.common.key_algorithm
                && format!("{a:?}") != format!("{alg:?}")
            {
                continue;
            }
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| OidcError::caused(OidcErrorKind::KeySet, "JWKS key", e))?;
            keys.push((jwk.common.key_id.clone(), alg, key));
        }
        if keys.is_empty() {
            return Err(OidcError::new(
                OidcErrorKind::KeySet,
                "the JWKS holds no RS256, ES256 or EdDSA key",
            ));
        }
        Ok(Verifier { config, keys })
    }

    /// Verifies `token` and returns the identity it establishes.
    pub fn verify(&self, token: &str) -> Result<Identity, OidcError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| OidcError::caused(OidcErrorKind::Malformed, "header", e))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA) {
            return Err(OidcError::new(
                OidcErrorKind::Algorithm,
                format!("algorithm {:?} is not accepted", header.alg),
            ));
        }
        let candidates = self.keys.iter().filter(|(kid, alg, _)| {
            *alg == header.alg && (header.kid.is_none() || kid.as_deref() == header.kid.as_deref())
        });
        let mut last = OidcError::new(
            OidcErrorKind::NoKey,
            format!("no key in the JWKS for kid {:?} and {:?}", header.kid, header.alg),
        );
        for (_, alg, key) in candidates {
            let mut v = Validation::new(*alg);
            v.set_issuer(&[&self.config.issuer]);
            v.set_audience(&self.config.audience);
            v.leeway = self.config.leeway_secs;
            v.validate_nbf = true;
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
            match jsonwebtoken::decode::<Value>(token, key, &v) {
                Ok(data) => return self.identity(&data.claims),
                Err(e) => last = OidcError::caused(OidcErrorKind::Rejected, "", e),
            }
        }
        Err(last)
    }

    fn identity(&self, claims: &Value) -> Result<Identity, OidcError> {
        let user = match lookup(claims, &self.config.user_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(OidcError::new(
                    OidcErrorKind::Claims,
                    format!("no `{}` claim", self.config.user_claim),
                ));
            }
        };
        let groups = match lookup(claims, &self.config.groups_claim) {
            Some(Value::Array(a)) => a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect(),
            Some(Value::String(s)) => s
                .split([' ', ','])
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let mut attributes = BTreeMap::new();
        if let Value::Object(m) = claims {
            for (k, v) in m {
                if *k == self.config.groups_claim {
                    continue;
                }
                match v {
                    Value::String(s) => {
                        attributes.insert(k.clone(), s.clone());
                    }
                    Value::Number(_) | Value::Bool(_) => {
                        attributes.insert(k.clone(), v.to_string());
                    }
                    _ => {}
                }
            }
        }
        Ok(Identity {
            user,
            groups,
            attributes,
        })
    }
}

fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}
