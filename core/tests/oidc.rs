//! OIDC identities: tokens signed with freshly generated RS256, ES256 and EdDSA keys, verified
//! against a JWKS built from their public halves; wrong issuer, audience, expiry, key, algorithm
//! and tampering are refused; groups become policy roles.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sluice_core::policy::oidc::{Config, OidcErrorKind, Verifier};
use sluice_core::policy::{Action, Engine, Request, Target};

struct Keys {
    rsa: EncodingKey,
    ec: EncodingKey,
    ed: EncodingKey,
    jwks: String,
}

fn keys() -> Keys {
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::EncodePrivateKey as _;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let mut rng = rand::thread_rng();
    let rsa = rsa::RsaPrivateKey::new(&mut rng, 2048).expect("rsa key");
    let ec = p256::SecretKey::random(&mut rng);
    let ed = ed25519_dalek::SigningKey::generate(&mut rng);
    let point = ec.public_key().to_encoded_point(false);
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig",
         "n": B64.encode(rsa.n().to_bytes_be()), "e": B64.encode(rsa.e().to_bytes_be())},
        {"kty": "EC", "kid": "e1", "crv": "P-256", "alg": "ES256",
         "x": B64.encode(point.x().expect("x")), "y": B64.encode(point.y().expect("y"))},
        {"kty": "OKP", "kid": "d1", "crv": "Ed25519", "alg": "EdDSA",
         "x": B64.encode(ed.verifying_key().to_bytes())},
        {"kty": "oct", "kid": "h1", "k": B64.encode(b"an hmac key an attacker might pick")}
    ]})
    .to_string();
    Keys {
        rsa: EncodingKey::from_rsa_der(rsa.to_pkcs1_der().expect("der").as_bytes()),
        ec: EncodingKey::from_ec_der(ec.to_pkcs8_der().expect("der").as_bytes()),
        ed: EncodingKey::from_ed_der(ed.to_pkcs8_der().expect("der").as_bytes()),
        jwks,
    }
}

fn now() -> u64 {
    sluice_core::policy::grant::now()
}

fn claims(exp: u64) -> serde_json::Value {
    json!({"iss": "https://idp.example.test", "aud": "sluice", "sub": "alice", "exp": exp, "iat": now(),
           "email": "alice@example.test", "groups": ["dev", "dba"]})
}

fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &serde_json::Value) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, key).expect("sign")
}

#[test]
fn tokens_of_each_algorithm_verify_and_bad_ones_do_not() {
    let k = keys();
    let v = Verifier::new(Config::new("https://idp.example.test", "sluice"), &k.jwks).expect("jwks");
    let good = claims(now() + 600);
    for (alg, kid, key) in [
        (Algorithm::RS256, "r1", &k.rsa),
        (Algorithm::ES256, "e1", &k.ec),
        (Algorithm::EdDSA, "d1", &k.ed),
    ] {
        let id = v
            .verify(&sign(alg, kid, key, &good))
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(id.user, "alice");
        assert_eq!(id.groups, ["dev", "dba"]);
        assert_eq!(
            id.attributes.get("email").map(String::as_str),
            Some("alice@example.test")
        );
    }
    let refused = |token: String, why: &str, kind: OidcErrorKind| {
        let e = v.verify(&token).expect_err(why);
        assert_eq!(e.kind(), kind, "{why}: {e}");
        // A refusal by the JWT library carries its error as the source.
        if kind == OidcErrorKind::Rejected {
            assert!(std::error::Error::source(&e).is_some(), "{why}: {e}");
        }
    };
    refused(
        sign(Algorithm::RS256, "r1", &k.rsa, &claims(now() - 3600)),
        "expired",
        OidcErrorKind::Rejected,
    );
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.example.test");
    refused(
        sign(Algorithm::RS256, "r1", &k.rsa, &wrong_iss),
        "issuer",
        OidcErrorKind::Rejected,
    );
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("other-app");
    refused(
        sign(Algorithm::ES256, "e1", &k.ec, &wrong_aud),
        "audience",
        OidcErrorKind::Rejected,
    );
    // Signed by the RSA key but labelled as the EC key: no key of that family under that kid.
    refused(
        sign(Algorithm::RS256, "e1", &k.rsa, &good),
        "kid/alg mismatch",
        OidcErrorKind::NoKey,
    );
    // HS256 with the JWKS's own `oct` key: alg confusion is refused.
    let hs = EncodingKey::from_secret(b"an hmac key an attacker might pick");
    refused(
        sign(Algorithm::HS256, "h1", &hs, &good),
        "hmac",
        OidcErrorKind::Algorithm,
    );
    // Tampered payload.
    let t = sign(Algorithm::EdDSA, "d1", &k.ed, &good);
    let parts: Vec<&str> = t.split('.').collect();
    let mut evil = good.clone();
    evil["sub"] = json!("root");
    let forged = format!("{}.{}.{}", parts[0], B64.encode(evil.to_string()), parts[2]);
    refused(forged, "tampered", OidcErrorKind::Rejected);
    refused("not.a.jwt".into(), "garbage", OidcErrorKind::Malformed);
}

#[test]
fn groups_claim_and_roles() {
    let k = keys();
    let mut cfg = Config::new("https://idp.example.test", "sluice");
    cfg.groups_claim = "realm_access.roles".into();
    let v = Verifier::new(cfg, &k.jwks).expect("jwks");
    let mut c = claims(now() + 600);
    c["realm_access"] = json!({"roles": ["dba"]});
    let id = v.verify(&sign(Algorithm::ES256, "e1", &k.ec, &c)).expect("verifies");
    assert_eq!(id.groups, ["dba"]);

    let policy = r#"
version: 1
extends: agent-safe
default: allow
roles:
  dba: { groups: [dba] }
rules:
  - id: dba-may-drop-in-staging
    action: allow
    when: { roles: [dba], labels: { env: staging }, sql: { kinds: [drop] } }
"#;
    let engine = Engine::from_yaml("roles.yaml", policy).expect("compiles");
    assert_eq!(engine.roles_of(&id), ["dba"]);
    let drop = Request::Sql {
        text: "DROP TABLE t",
        dialect: sluice_core::policy::Dialect::Postgres,
        lexing: Default::default(),
    };
    // Deny-overrides: the allow rule does not beat agent-safe's approval rule.
    let d = engine.decide(&id, &Target::new("db").label("env", "staging"), &drop);
    assert_eq!(d.action(), Action::RequireApproval, "{d:?}");
}
