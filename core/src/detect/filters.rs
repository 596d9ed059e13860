//! Post-match filters that keep placeholders, hashes, identifiers and other look-alikes out of the
//! findings. They look only at the candidate secret (and, for generic rules, its shape), never at
//! bytes far away, so a decision is the same whether the input arrives whole or in chunks.

/// Shannon entropy of `s` in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Where `needle` first occurs in `hay`: for the short texts the filters look at (a secret,
/// the name before it), where building a `memmem` searcher per call costs more than the search.
pub(crate) fn find_short(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    memchr::memchr_iter(first, hay).find(|&i| hay[i + 1..].starts_with(rest))
}

/// Words that mark a value as an example or a placeholder rather than a live secret.
const PLACEHOLDER_WORDS: &[&str] = &[
    "example",
    "sample",
    "placeholder",
    "dummy",
    "changeme",
    "change_me",
    "change-me",
    "replace",
    "redacted",
    "your_",
    "your-",
    "yourkey",
    "yourtoken",
    "yoursecret",
    "yourpassword",
    "<your",
    "insert",
    "xxxxx",
    "fake",
    "notreal",
    "not_real",
    "not-real",
    "todo",
    "fixme",
    "secret_here",
    "token_here",
    "key_here",
    "password_here",
    "goes_here",
    "goes-here",
    "mysecret",
    "my_secret",
    "my-secret",
    "mypassword",
    "my_password",
    "test_key",
    "testkey",
    "foobar",
    "lorem",
    "ipsum",
    "undefined",
    "password1",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "secret123",
    "s3cr3t",
    "hunter2",
    "letmein",
    "qwerty",
    "********",
    "......",
    "------",
    "<redacted",
    "[redacted",
    "{redacted",
    "masked",
];

/// Whole values that are words, not secrets.
const PLACEHOLDER_VALUES: &[&str] = &[
    "password",
    "passwd",
    "pass",
    "token",
    "apikey",
    "api_key",
    "key",
    "value",
    "string",
    "test",
    "none",
    "null",
    "nil",
    "true",
    "false",
    "empty",
    "default",
    "required",
    "optional",
    "string",
    "user",
    "username",
    "admin:admin",
    "root",
    "guest",
    "demo",
    "sample",
    "example",
    "unknown",
    "unset",
];

/// Whether the value is a placeholder, a template expression or a reference to where a secret
/// lives (`${VAR}`, `{{ … }}`, `<YOUR_KEY>`, `os.environ[...]`, `xxxx…`, `********`, …).
pub fn is_placeholder(s: &[u8]) -> bool {
    if s.is_empty() {
        return true;
    }
    if is_trivial(s) {
        return true;
    }
    let lower: Vec<u8> = s.to_ascii_lowercase();
    if PLACEHOLDER_VALUES.iter().any(|w| w.as_bytes() == lower.as_slice()) {
        return true;
    }
    let has = |needle: &str| find_short(&lower, needle.as_bytes()).is_some();
    // Template and interpolation syntaxes.
    if has("${")
        || has("{{")
        || has("}}")
        || opens_and_closes(&lower, b"$(", b')')
        || opens_and_closes(&lower, b"%(", b')')
        || has("#{")
        || has("<%")
        || has("{%")
        || (lower.contains(&b'<') && lower.contains(&b'>'))
    {
        return true;
    }
    // References to the environment or a secret store.
    for r in [
        "os.environ",
        "os.getenv",
        "getenv(",
        "process.env",
        "env(",
        "env[",
        "env.",
        "secrets.",
        "vault:",
        "import.meta",
        "system.getenv",
        "environment.get",
        "config[",
        "settings.",
        "$env:",
        "keyring",
        "secretkeyref",
        "valuefrom",
        "secretref",
    ] {
        if has(r) {
            return true;
        }
    }
    // A shell / PHP / Makefile variable: `$TOKEN`, `$db_pass`.
    if lower.first() == Some(&b'$')
        && lower.get(1).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
        && lower[1..].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return true;
    }
    if lower.first() == Some(&b'%') && lower.last() == Some(&b'%') {
        return true;
    }
    // Interpolation in a format string: `{self.password}`, `f"{token}"`.
    if let (Some(a), Some(b)) = (memchr::memchr(b'{', &lower), memchr::memrchr(b'}', &lower))
        && a < b
    {
        return true;
    }
    // printf-style format strings: `%s`, `%d`, `%v`.
    if [&b"%s"[..], b"%d", b"%v", b"%x"]
        .iter()
        .any(|f| find_short(&lower, f).is_some())
    {
        return true;
    }
    // Truncated or elided values (`ops_eyJ...`, `sk-…`).
    if has("..") || has("\u{2026}") {
        return true;
    }
    PLACEHOLDER_WORDS.iter().any(|w| has(w)) || masked_run(&lower)
}

/// `open` followed later by `close`: `$(cat key)`, `%(name)s`. Random secrets from alphabets
/// with punctuation (Django keys) hold `$(` or `%(` by chance, rarely with a `)` after it.
fn opens_and_closes(s: &[u8], open: &[u8], close: u8) -> bool {
    find_short(s, open).is_some_and(|at| s[at + open.len()..].contains(&close))
}

/// Six or more of the same masking character (`x`, `*`, `#`, `.`, `0`, `-`, `_`) in a row.
/// (Not any character: formats with encoded zero fields hold long runs of `A`, such as Azure
/// DevOps and Twitter tokens.)
fn masked_run(s: &[u8]) -> bool {
    let mut run = 0;
    let mut prev = 0u8;
    for &b in s {
        if matches!(b, b'x' | b'*' | b'#' | b'.' | b'0' | b'-' | b'_') && b == prev {
            run += 1;
            if run >= 5 {
                return true;
            }
        } else {
            run = 0;
        }
        prev = b;
    }
    false
}

/// A run of one repeated character, or an ascending/descending run (`abcdef…`, `123456…`),
/// or a value with almost no variety.
pub fn is_trivial(s: &[u8]) -> bool {
    if s.len() < 4 {
        return true;
    }
    let first = s[0];
    if s.iter().all(|&b| b == first) {
        return true;
    }
    let asc = s.windows(2).all(|w| w[1] == w[0].wrapping_add(1));
    let desc = s.windows(2).all(|w| w[1] == w[0].wrapping_sub(1));
    if asc || desc {
        return true;
    }
    let mut seen = [false; 256];
    let distinct = s
        .iter()
        .filter(|&&b| !std::mem::replace(&mut seen[usize::from(b)], true))
        .count();
    distinct * 5 < s.len().min(40) // e.g. "abababababab…"
}

/// Shapes that are never secrets for a generic rule: digests, UUIDs, SRI integrity strings,
/// public SSH keys, file paths, URLs without credentials, numbers, and code identifiers.
///
/// Digests and UUIDs are not rejected here: a 40-hex-digit value assigned to `API_TOKEN` is a
/// token. Generic rules keep digests out through their context (`sha`, `checksum`, `commit`, …).
pub fn is_generic_noise(s: &[u8]) -> bool {
    let lower = s.to_ascii_lowercase();
    for p in [
        &b"sha1-"[..],
        b"sha256-",
        b"sha384-",
        b"sha512-",
        b"sha256:",
        b"sha1:",
        b"md5:",
        b"ssh-rsa",
        b"ssh-ed25519",
        b"ecdsa-sha2",
        b"ssh-dss",
        b"sk-ssh-",
        b"aaaab3nzac1",
        b"aaaac3nzac1",
        b"aaaae2vjzhnh",
        b"http://",
        b"https://",
        b"file://",
        b"data:",
        b"/",
        b"./",
        b"../",
        b"~/",
        b"arn:aws:",
        b"projects/",
    ] {
        if lower.starts_with(p) {
            return true;
        }
    }
    if matches!(lower.first(), Some(b'#' | b'@' | b'&')) && lower.len() < 40 {
        return true; // CSS selectors, decorators, references
    }
    // A timestamp: `1979-05-27T07:32:00Z`.
    if lower.len() >= 10 && lower[..4].iter().all(u8::is_ascii_digit) && lower[4] == b'-' && lower[7] == b'-' {
        return true;
    }
    if lower.last() == Some(&b':') {
        return true;
    }
    // A version requirement: `^7.0.4`, `~1.2`, `>=2.0`.
    if let Some(rest) = lower
        .strip_prefix(b"^")
        .or_else(|| lower.strip_prefix(b"~"))
        .or_else(|| lower.strip_prefix(b">="))
        && rest.first().is_some_and(u8::is_ascii_digit)
        && rest
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
    {
        return true;
    }
    // Code, not data: `Token::Whitespace` (a path), `quote!` (a macro), `*:*:secret:*` (a glob).
    if lower.first() == Some(&b':')
        || find_short(&lower, b"::").is_some()
        || (s.last() == Some(&b'!') && s[..s.len() - 1].iter().all(|b| b.is_ascii_lowercase() || *b == b'_'))
        || (is_glob(&lower) && (lower.contains(&b':') || lower.contains(&b'/')))
        || lower.last() == Some(&b'*')
    {
        return true;
    }
    if matches!(lower.first(), Some(b'*' | b'&')) && lower[1..].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return true; // a pointer to a named thing: `*private_key`
    }
    const FILE_EXTS: &[&str] = &[
        ".pem",
        ".p12",
        ".pfx",
        ".key",
        ".crt",
        ".cer",
        ".der",
        ".jks",
        ".keystore",
        ".json",
        ".yaml",
        ".yml",
        ".txt",
        ".env",
        ".xml",
        ".ini",
        ".cfg",
        ".conf",
        ".toml",
        ".properties",
        ".py",
        ".js",
        ".ts",
        ".rb",
        ".go",
        ".java",
        ".html",
        ".png",
        ".jpg",
        ".svg",
        ".gpg",
        ".asc",
        ".pub",
        ".sh",
        ".md",
    ];
    if FILE_EXTS.iter().any(|e| lower.ends_with(e.as_bytes())) {
        return true;
    }
    // All digits (ports, ids, timestamps) or a version number.
    if s.iter()
        .all(|b| b.is_ascii_digit() || *b == b'.' || *b == b'-' || *b == b'_' || *b == b':')
        && (s.len() < 20 || !s.iter().all(u8::is_ascii_digit))
    {
        return true;
    }
    is_identifier_like(s) || is_wordy(s)
}

/// A word or a name of six or more letters, digits, `_` and `-` with at least four letters
/// (`whiteduke`, `dev_admin`): a password when the context proves it is a literal, a code
/// identifier otherwise.
pub fn is_literal_word(s: &[u8]) -> bool {
    s.len() >= 6
        && s.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        && s.iter().filter(|b| b.is_ascii_alphabetic()).count() >= 4
        && !s.starts_with(b"-")
        && !names_a_password(s)
}

/// `challengePassword`, `smtp_password`, `db-passwd`: a name made of words, one of which says
/// password, is a field name or a stand-in, not a password (`rootpasswd` may be one).
fn names_a_password(s: &[u8]) -> bool {
    let lower = s.to_ascii_lowercase();
    let separated = s.iter().any(|b| matches!(b, b'_' | b'-'))
        || s.windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
    separated
        && ["pass", "pwd"]
            .iter()
            .any(|w| find_short(&lower, w.as_bytes()).is_some())
}

/// A wildcard as a whole segment (`*:*:secret:*`, `arn:aws:s3:::bucket/*`, `*.example.com`), not
/// a `*` among random characters.
fn is_glob(s: &[u8]) -> bool {
    let seg = |b: Option<&u8>| b.is_none_or(|b| matches!(b, b':' | b'/' | b'.' | b'-' | b'_' | b','));
    s.iter()
        .enumerate()
        .any(|(i, &b)| b == b'*' && (seg(i.checked_sub(1).and_then(|j| s.get(j))) || seg(s.get(i + 1))))
}

/// Separated words and numbers (`SalesResults-1.2`, `jetbrains.mps.v8_elimination`,
/// `dev-lb1.api.example.com:5215`, `X25519.secret_length`): names, versions, hosts, references.
fn is_wordy(s: &[u8]) -> bool {
    let segs: Vec<&[u8]> = s
        .split(|b| matches!(b, b'.' | b'_' | b'-' | b':' | b'/' | b'=' | b'@' | b'+' | b'~'))
        .filter(|g| !g.is_empty())
        .collect();
    if segs.len() < 2 {
        return false;
    }
    let wordy = |g: &&[u8]| {
        let letters = g.iter().filter(|b| b.is_ascii_alphabetic()).count();
        let digits = g.iter().filter(|b| b.is_ascii_digit()).count();
        let only_letters: Vec<u8> = g.iter().copied().filter(u8::is_ascii_alphabetic).collect();
        letters == g.len() && (g.len() <= 3 || is_identifier_like(g) || g.len() < 12)
            || (letters * 10 >= g.len() * 6 && only_letters.len() >= 3 && {
                let upper = only_letters.iter().filter(|b| b.is_ascii_uppercase()).count();
                upper == 0 || upper * 5 <= only_letters.len() || (upper == only_letters.len() && g.len() <= 12)
            })
            || digits == g.len()
            || (g.len() <= 6 && g[0].is_ascii_alphabetic() && digits <= 2 && letters + digits == g.len())
    };
    let long_alpha = segs
        .iter()
        .any(|g| g.len() >= 3 && g.iter().all(u8::is_ascii_alphabetic));
    long_alpha && segs.iter().all(wordy)
}

/// A value that reads as a code identifier or words (`get_password`, `self.token`,
/// `SomeClass.someMethod`, `my-service-name`): letters and separators only, no digits.
pub fn is_identifier_like(s: &[u8]) -> bool {
    let letters_only = s
        .iter()
        .all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b'-' | b'(' | b')' | b'[' | b']'));
    if !letters_only {
        return false;
    }
    // A long random-looking mixed-case run without separators may still be a secret.
    let separators = s
        .iter()
        .filter(|b| matches!(b, b'_' | b'.' | b'-' | b'(' | b')'))
        .count();
    let upper = s.iter().filter(|b| b.is_ascii_uppercase()).count();
    let lower = s.iter().filter(|b| b.is_ascii_lowercase()).count();
    // Separated words, all one case, or camelCase; a random mix of cases is not.
    separators > 0 || lower == 0 || upper == 0 || is_camel_case(s)
}

/// Words in camelCase or PascalCase (`secretLength`, `AmazonEKSNetworkingPolicy`): every word
/// (an optional run of capitals, then lowercase letters) has at least two lowercase letters, or
/// is a trailing acronym of up to five capitals. `DjayBenyJrtpvydFCzAphcqc` is not.
fn is_camel_case(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let caps = s[i..].iter().take_while(|b| b.is_ascii_uppercase()).count();
        let lows = s[i + caps..].iter().take_while(|b| b.is_ascii_lowercase()).count();
        if lows == 0 {
            return caps <= 5 && i + caps == s.len();
        }
        // `Of`, `By` are words; `FCz` is not.
        if (lows < 2 && caps != 1) || caps > 5 {
            return false;
        }
        i += caps + lows;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        for p in [
            "${API_KEY}",
            "{{ secrets.token }}",
            "<YOUR_KEY>",
            "os.environ['X']",
            "xxxxxxxxxxxx",
            "********",
            "changeme-in-prod",
            "REPLACE_ME",
            "$TOKEN",
        ] {
            assert!(is_placeholder(p.as_bytes()), "{p}");
        }
        for s in ["k1uDSKFQs1DxBA9R", "Qm9/seB1qRmUR8AK3R2GgLLT+ZQISA+pQyOMqlfZ"] {
            assert!(!is_placeholder(s.as_bytes()), "{s}");
        }
    }

    #[test]
    fn template_syntax_needs_its_closing_bracket() {
        assert!(is_placeholder(b"$(cat /run/secrets/db)"));
        assert!(is_placeholder(b"%(password)s"));
        // Random keys from alphabets with punctuation hold `$(` or `%(` by chance.
        assert!(!is_placeholder(b"_du9e^cmago!%(^+=gr@cu@v9-v7ulhbk2s3!w&39w4+n3*k*$"));
    }

    #[test]
    fn versions_globs_and_words() {
        for v in ["^7.0.4", "~1.2", ">=2.0.1"] {
            assert!(is_generic_noise(v.as_bytes()), "{v}");
        }
        assert!(is_generic_noise(b"arn:aws:s3:::bucket/*"));
        assert!(is_generic_noise(b"*:*:secret:*"));
        assert!(
            !is_generic_noise(b"sg>o5n>*=~Vj:zz8Gwb8*ewCIS"),
            "a star among random characters"
        );
        assert!(is_literal_word(b"whiteduke") && is_literal_word(b"dev_admin"));
        assert!(!is_literal_word(b"smtp_password") && !is_literal_word(b"challengePassword"));
        assert!(is_literal_word(b"rootpasswd"), "a single word may be a password");
        assert!(!is_literal_word(b"abc") && !is_literal_word(b"-flag-x"));
    }

    #[test]
    fn noise_shapes() {
        assert!(is_generic_noise(b"sha512-JMl2v+ccEj6GN6pwQslKCYLkyCm3G1x7yBpgbS1lE26z"));
        assert!(is_generic_noise(b"get_password"));
        assert!(!is_generic_noise(b"k1uDSKFQs1DxBA9R"));
    }

    #[test]
    fn entropy_bounds() {
        assert!(entropy(b"aaaa") < 0.01);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
