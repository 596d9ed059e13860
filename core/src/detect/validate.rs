//! Validators: structural checks a candidate must pass to be reported as its rule's secret.

use base64::Engine as _;

/// A structural check applied to a candidate secret after its pattern matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Validator {
    /// The last six characters are the base62 CRC32 of the random part (the characters after the
    /// first `_`, before the checksum), as GitHub (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`) and npm
    /// (`npm_`) tokens carry.
    Crc32Base62,
    /// A JSON Web Token: three base64url segments, the first decoding to a JSON object with `alg`.
    Jwt,
    /// An HTTP Basic credential: base64 that decodes to printable `user:password`.
    BasicAuth,
    /// Not a run of repeated or sequential characters, and not all-decimal digits.
    NotTrivial,
    /// Random-looking: letters and digits, or at least 16 letters of both cases that do not read
    /// as camelCase words.
    Mixed,
}

impl Validator {
    /// The names accepted in rule files.
    pub const NAMES: &'static [&'static str] = &["crc32-base62", "jwt", "basic-auth", "not-trivial", "mixed"];

    pub(crate) fn from_name(name: &str) -> Option<Validator> {
        Some(match name {
            "crc32-base62" => Validator::Crc32Base62,
            "jwt" => Validator::Jwt,
            "basic-auth" => Validator::BasicAuth,
            "not-trivial" => Validator::NotTrivial,
            "mixed" => Validator::Mixed,
            _ => return None,
        })
    }

    /// Whether `secret` passes this validator.
    pub fn check(self, secret: &[u8]) -> bool {
        match self {
            Validator::Crc32Base62 => crc32_base62(secret),
            Validator::Jwt => jwt(secret),
            Validator::BasicAuth => basic_auth(secret),
            Validator::NotTrivial => !super::filters::is_trivial(secret),
            Validator::Mixed => {
                let letters = secret.iter().any(u8::is_ascii_alphabetic);
                (secret.iter().any(u8::is_ascii_digit) && letters)
                    || (secret.len() >= 16
                        && secret.iter().any(u8::is_ascii_uppercase)
                        && secret.iter().any(u8::is_ascii_lowercase)
                        && !super::filters::is_identifier_like(secret))
            }
        }
    }
}

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes `n` as base62, left-padded with zeros to six characters.
pub(crate) fn base62_6(mut n: u32) -> [u8; 6] {
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

fn crc32_base62(secret: &[u8]) -> bool {
    let Some(us) = memchr::memrchr(b'_', secret) else {
        return false;
    };
    let body = &secret[us + 1..];
    if body.len() < 7 {
        return false;
    }
    let (random, check) = body.split_at(body.len() - 6);
    base62_6(crc32(random)) == check
}

/// CRC-32 (IEEE 802.3, the zlib polynomial), bitwise: inputs here are a few dozen bytes.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn b64_decode_loose(s: &[u8]) -> Option<Vec<u8>> {
    let trimmed: Vec<u8> = s.iter().copied().filter(|&b| b != b'=').collect();
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let std = base64::engine::general_purpose::STANDARD_NO_PAD;
    url.decode(&trimmed).ok().or_else(|| std.decode(&trimmed).ok())
}

fn jwt(secret: &[u8]) -> bool {
    let mut parts = secret.split(|&b| b == b'.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Some(h) = b64_decode_loose(header) else {
        return false;
    };
    let h = String::from_utf8_lossy(&h);
    let h = h.trim_start();
    if !h.starts_with('{') || !h.contains("\"alg\"") && !h.contains("\"typ\"") && !h.contains("\"enc\"") {
        return false;
    }
    match b64_decode_loose(payload) {
        Some(p) => p.first() == Some(&b'{') || payload.is_empty(),
        None => false,
    }
}

fn basic_auth(secret: &[u8]) -> bool {
    let Some(raw) = b64_decode_loose(secret) else {
        return false;
    };
    let Some(colon) = raw.iter().position(|&b| b == b':') else {
        return false;
    };
    // The user id is printable ASCII; the password may hold any byte but a control character
    // (RFC 7617 allows UTF-8 passwords).
    colon > 0
        && colon + 1 < raw.len()
        && raw[..colon].iter().all(|&b| (0x20..0x7f).contains(&b))
        && raw[colon + 1..].iter().all(|&b| b >= 0x20 && b != 0x7f)
        && !super::filters::is_placeholder(&raw[colon + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_zlib_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn crc32_base62_token() {
        // A synthetic token built with the checksum in its last six characters.
        let random = b"abcdefghijklmnopqrstuvwxyz0123";
        let mut tok = b"ghp_".to_vec();
        tok.extend_from_slice(random);
        tok.extend_from_slice(&base62_6(crc32(random)));
        assert!(Validator::Crc32Base62.check(&tok));
        let last = tok.len() - 1;
        tok[last] = if tok[last] == b'A' { b'B' } else { b'A' };
        assert!(!Validator::Crc32Base62.check(&tok));
    }

    #[test]
    fn basic_auth_needs_user_and_password() {
        assert!(Validator::BasicAuth.check(b"YWxhZGRpbjpvcGVuc2VzYW1l"));
        assert!(!Validator::BasicAuth.check(b"bm9jb2xvbmhlcmU="));
    }
}
