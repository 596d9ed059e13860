//! Logging in for the agent: the password exchanges a proxy performs with the server itself,
//! with a held credential (or the password the agent gave), so the agent never holds the
//! value the server checks.
//!
//! PostgreSQL: cleartext, MD5 ([`md5_password`]) and SCRAM-SHA-256 ([`ScramClient`], RFC 5802
//! and RFC 7677, without channel binding: the hop to the server is plain TCP). MySQL:
//! `mysql_native_password` ([`mysql_native_password`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// Why a login exchange cannot go on: the server said something this client cannot accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginError(pub String);

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoginError {}

fn fail<T>(why: impl Into<String>) -> Result<T, LoginError> {
    Err(LoginError(why.into()))
}

/// The most PBKDF2 iterations a server may ask for (PostgreSQL's default is 4,096): a server
/// cannot make the proxy spend seconds of CPU on one login.
pub const MAX_ITERATIONS: u32 = 1 << 20;

/// The mechanism name PostgreSQL offers and this client speaks.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";

/// The client side of one SCRAM-SHA-256 exchange.
pub struct ScramClient {
    password: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    /// What the server must prove it knows, once the client's final message is sent.
    server_signature: Option<[u8; 32]>,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("ScramClient")
            .field("nonce", &self.nonce)
            .finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

impl ScramClient {
    /// A client for `password` with a fresh random nonce. PostgreSQL takes the user from the
    /// startup packet and ignores the SCRAM user name, which is left empty.
    pub fn new(password: &[u8]) -> Result<ScramClient, LoginError> {
        let mut raw = [0u8; 18];
        getrandom::fill(&mut raw).map_err(|e| LoginError(format!("OS randomness: {e}")))?;
        Ok(ScramClient::with_nonce("", password, &STANDARD.encode(raw)))
    }

    /// A client with a given user name and nonce (tests; the nonce must be printable ASCII
    /// without commas).
    pub fn with_nonce(user: &str, password: &[u8], nonce: &str) -> ScramClient {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            password: password.to_vec(),
            client_first_bare: format!("n={user},r={nonce}"),
            nonce: nonce.to_owned(),
            server_signature: None,
        }
    }

    /// The client-first message (`n,,n=…,r=…`: no channel binding).
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// The client-final message answering the server-first message (`r=…,s=…,i=…`).
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, LoginError> {
        let Ok(text) = std::str::from_utf8(server_first) else {
            return fail("the server's SCRAM message is not text");
        };
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attr in text.split(',') {
            match attr.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("m", _)) => return fail("the server asks for a SCRAM extension this client does not know"),
                // Other attributes are extensions a client may ignore (RFC 5802, 5.1).
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return fail("the server's SCRAM message lacks its nonce, salt or iteration count");
        };
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return fail("the server's SCRAM nonce does not extend the client's");
        }
        let Ok(salt) = STANDARD.decode(salt) else {
            return fail("the server's SCRAM salt is not base64");
        };
        let iterations: u32 = match iterations.parse() {
            Ok(n) if (1..=MAX_ITERATIONS).contains(&n) => n,
            _ => {
                return fail(format!(
                    "the server's SCRAM iteration count {iterations:?} is out of range"
                ));
            }
        };
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &salt, iterations, &mut salted);
        let client_key = hmac(&salted, &[b"Client Key"]);
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth = [
            self.client_first_bare.as_bytes(),
            b",",
            server_first,
            b",",
            without_proof.as_bytes(),
        ];
        let signature = hmac(&stored_key, &auth);
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        let server_key = hmac(&salted, &[b"Server Key"]);
        self.server_signature = Some(hmac(&server_key, &auth));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)))
    }

    /// Checks the server-final message: the server proves it knows the password too (a
    /// server that does not is not the one the credential is for).
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), LoginError> {
        let Some(expected) = self.server_signature else {
            return fail("the server ended SCRAM before the client's final message");
        };
        let text = String::from_utf8_lossy(server_final);
        if let Some(e) = text.strip_prefix("e=") {
            return fail(format!("the server refused the SCRAM proof: {e}"));
        }
        let Some(v) = text.split(',').find_map(|a| a.strip_prefix("v=")) else {
            return fail("the server's final SCRAM message has no verifier");
        };
        match STANDARD.decode(v) {
            Ok(got) if got == expected => Ok(()),
            _ => fail("the server's SCRAM signature is wrong: it does not know the password"),
        }
    }
}

/// PostgreSQL's MD5 password answer: `md5` and hex(md5(hex(md5(password ‖ user)) ‖ salt)).
pub fn md5_password(user: &[u8], password: &[u8], salt: &[u8]) -> String {
    let inner = hex(&Md5::new().chain_update(password).chain_update(user).finalize());
    let outer = Md5::new().chain_update(inner.as_bytes()).chain_update(salt).finalize();
    format!("md5{}", hex(&outer))
}

/// MySQL's `mysql_native_password` answer to the server's 20-byte scramble:
/// SHA1(password) XOR SHA1(scramble ‖ SHA1(SHA1(password))); empty for an empty password.
pub fn mysql_native_password(password: &[u8], scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    use sha1::Sha1;
    let h1 = Sha1::digest(password);
    let h2 = Sha1::digest(h1);
    let h3 = Sha1::new().chain_update(scramble).chain_update(h2).finalize();
    h1.iter().zip(h3).map(|(a, b)| a ^ b).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677, section 3: the SCRAM-SHA-256 example exchange.
    #[test]
    fn scram_sha_256_matches_the_rfc_example() {
        let mut c = ScramClient::with_nonce("user", b"pencil", "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            c.client_final(first).expect("answers"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("the server's signature");
        assert!(
            c.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
                .is_err()
        );
        assert!(c.verify_server_final(b"e=invalid-proof").is_err());
    }

    #[test]
    fn a_server_first_message_that_cheats_is_refused() {
        let cases: [&[u8]; 6] = [
            b"r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
            b"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=999999999",
            b"r=abcdef,s=not base64!,i=4096",
            b"m=ext,r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        ];
        for first in cases {
            let mut c = ScramClient::with_nonce("", b"pw", "abc");
            assert!(c.client_final(first).is_err(), "{}", String::from_utf8_lossy(first));
        }
        let c = ScramClient::with_nonce("", b"pw", "abc");
        assert!(c.verify_server_final(b"v=x").is_err(), "no final before the client's");
    }

    #[test]
    fn md5_and_native_password_answers() {
        // PostgreSQL: md5(md5("secret" || "alice") || salt), computed independently.
        assert_eq!(md5_password(b"alice", b"secret", &[1, 2, 3, 4]), {
            let inner = hex(&Md5::digest(b"secretalice"));
            let mut v = inner.into_bytes();
            v.extend_from_slice(&[1, 2, 3, 4]);
            format!("md5{}", hex(&Md5::digest(&v)))
        });
        assert_eq!(md5_password(b"alice", b"secret", &[1, 2, 3, 4]).len(), 35);
        // MySQL: the XOR undoes with the same mask, and an empty password sends nothing.
        let scramble = [7u8; 20];
        let answer = mysql_native_password(b"pw", &scramble);
        use sha1::Sha1;
        let mask = Sha1::new()
            .chain_update(scramble)
            .chain_update(Sha1::digest(Sha1::digest(b"pw")))
            .finalize();
        let back: Vec<u8> = answer.iter().zip(mask).map(|(a, b)| a ^ b).collect();
        assert_eq!(back, Sha1::digest(b"pw").to_vec());
        assert!(mysql_native_password(b"", &scramble).is_empty());
    }
}
