//! Turning parsed commands into the strings policy globs are matched against: paths normalised
//! (`~`, `$HOME`, `..`, `//`), path operands found inside options (`--file=x`, `-d@x`, `if=x`,
//! `host:path`), variables referenced by a word.

use super::glob::skip_expansion;

/// Whether a word still holds something the shell would expand (variables, substitutions,
/// globs), after the home directory spellings were rewritten.
pub(crate) fn is_dynamic(w: &str) -> bool {
    w.bytes().any(|b| matches!(b, b'$' | b'`' | b'*' | b'?' | b'['))
}

/// Whether a word holds a variable or substitution (not merely a glob).
pub(crate) fn has_expansion(w: &str) -> bool {
    w.bytes().any(|b| matches!(b, b'$' | b'`'))
}

/// Rewrites the spellings of the home directory at the start of a path to `~`.
fn home(p: &str) -> String {
    for prefix in ["$HOME", "${HOME}", "~"] {
        if let Some(rest) = p.strip_prefix(prefix) {
            if rest.is_empty() || rest.starts_with('/') {
                return format!("~{rest}");
            }
            if prefix == "~" {
                // `~user/x`: another user's home.
                let (_, after) = rest.split_once('/').unwrap_or((rest, ""));
                return format!("~/{after}");
            }
        }
    }
    p.to_string()
}

/// Lexical normalisation: `//` and `/./` collapse, `a/..` resolves, trailing `/` goes.
/// Leading `..` components of a relative path are kept.
pub(crate) fn normalize(path: &str) -> String {
    if !path.contains(['/', '~', '$']) && path != "." && path != ".." {
        return path.to_string();
    }
    let p = home(path);
    let absolute = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != ".." && *l != "~") {
                    parts.pop();
                } else if parts.last() == Some(&"~") {
                    // `~/..` is the parent of home: unknown user directory.
                    parts.pop();
                    parts.push("/home");
                } else if !absolute {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    // `/proc/<pid>/root` and `/proc/<pid>/cwd` are links to `/` and the working directory: a
    // trick visible statically.
    if absolute && parts.len() >= 3 && parts[0] == "proc" {
        match parts[2] {
            "root" => {
                parts.drain(..3);
            }
            "cwd" => {
                parts.drain(..3);
                return parts.join("/");
            }
            _ => {}
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{}", joined.trim_start_matches('/'))
    } else if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// The strings a normalised path operand is matched as: itself, and the home-relative form of
/// `/home/<user>/…`, `/root/…` and `/Users/<user>/…`; a path that climbs out of the working
/// directory (`../../etc/shadow`) could be anywhere, so it is also tried from `/` and from `~`.
pub(crate) fn normalized_candidates(n: String, out: &mut Vec<String>) {
    let mut alt = None;
    for prefix in ["/home/", "/Users/"] {
        if let Some(rest) = n.strip_prefix(prefix) {
            let after = rest.split_once('/').map_or("", |(_, a)| a);
            alt = Some(if after.is_empty() {
                "~".to_string()
            } else {
                format!("~/{after}")
            });
        }
    }
    if let Some(rest) = n.strip_prefix("/root")
        && (rest.is_empty() || rest.starts_with('/'))
    {
        alt = Some(format!("~{rest}"));
    }
    if n.starts_with("../") || n == ".." {
        let rest = n.trim_start_matches("../").trim_start_matches("..");
        out.push(format!("/{rest}"));
        out.push(format!("~/{rest}"));
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out.extend(alt);
    out.push(n);
}

/// The path an argument names, if it may name one: the operand itself, the value of
/// `--opt=value` and `key=value`, curl's `@file`, `file://` URLs and scp's `host:path`.
pub(crate) fn path_operand(arg: &str) -> Option<&str> {
    let mut a = arg;
    if a.starts_with('-') {
        // `--file=x`, `-d@x`, `-ox`: a path may hide in an option value.
        if let Some((_, v)) = a.split_once('=') {
            a = v;
        } else if let Some(i) = a.find('@') {
            a = &a[i..];
        } else {
            return None;
        }
    } else if let Some((k, v)) = a.split_once('=')
        && !k.is_empty()
        && !k.contains('/')
    {
        a = v;
    }
    a = a.strip_prefix('@').unwrap_or(a);
    if let Some(rest) = a.strip_prefix("file://") {
        a = rest.strip_prefix("localhost").unwrap_or(rest);
    } else if let Some((host, path)) = a.split_once(':')
        && !host.is_empty()
        && !host.contains('/')
        && !host.contains('$')
        && !path.starts_with("//")
    {
        a = path;
    }
    (!a.is_empty()).then_some(a)
}

/// Variables a word references (`$NAME`, `${NAME…}`), appended to `out`.
pub(crate) fn variables(word: &str, out: &mut Vec<String>) {
    let w = word.as_bytes();
    let mut i = 0;
    while i < w.len() {
        if w[i] == b'$' {
            let start = match w.get(i + 1) {
                Some(b'{') => i + 2 + usize::from(w.get(i + 2) == Some(&b'!')),
                _ => i + 1,
            };
            let end = w[start.min(w.len())..]
                .iter()
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .map_or(w.len(), |p| start + p);
            if end > start && !w[start].is_ascii_digit() {
                out.push(word[start..end].to_string());
            }
            if w.get(i + 1) == Some(&b'(') {
                i = skip_expansion(w, i);
                continue;
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
}

/// Replaces `$NAME` and `${NAME}` for the `assigned` names with their values.
pub(crate) fn substitute(word: &str, assigned: &[(String, String)]) -> String {
    let mut out = word.to_string();
    for (k, v) in assigned {
        out = out.replace(&format!("${{{k}}}"), v);
        // `$K` only where the name ends (not a prefix of a longer name).
        let pat = format!("${k}");
        let mut s = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&pat) {
            let after = &rest[i + pat.len()..];
            s.push_str(&rest[..i]);
            if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                s.push_str(&pat);
            } else {
                s.push_str(v);
            }
            rest = after;
        }
        s.push_str(rest);
        out = s;
    }
    out
}

/// The program name of `argv[0]`: its last path component.
pub(crate) fn program_name(argv0: &str) -> &str {
    argv0.rsplit('/').next().unwrap_or(argv0)
}

/// Lowercase host without port, and the path of an absolute URL or an origin-form target.
pub(crate) fn split_url(url: &str) -> (Option<String>, String) {
    let (host, rest) = match url.split_once("://") {
        Some((_, after)) => {
            let end = after.find(['/', '?', '#']).unwrap_or(after.len());
            let authority = &after[..end];
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = if hostport.starts_with('[') {
                hostport
                    .split_once(']')
                    .map_or(hostport, |(h, _)| h)
                    .trim_start_matches('[')
            } else {
                hostport.split(':').next().unwrap_or(hostport)
            };
            (Some(normalize_host(host)), &after[end..])
        }
        None => (None, url),
    };
    let path = rest.split(['?', '#']).next().unwrap_or("");
    (host, normalize_url_path(path))
}

/// The canonical spelling of a host: lowercased, without a trailing dot, percent-decoded; IPv4
/// addresses in any form an address parser accepts (`127.1`, `169.254.43518`, `2852039166`,
/// `0xa9.0xfe.0xa9.0xfe`, octal `0251.…`) as a dotted quad; IPv6 addresses compressed, and an
/// IPv4-mapped or -compatible IPv6 address (`::ffff:169.254.169.254`, `::ffff:a9fe:a9fe`) as its
/// IPv4 address. Rules on hosts then match whatever spelling a request uses.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim_matches(['[', ']']);
    let decoded = percent_decode(h);
    let h = decoded.to_ascii_lowercase();
    let h = h.trim_end_matches('.');
    if let Some(v4) = parse_ipv4_loose(h) {
        return v4.to_string();
    }
    let no_zone = h.split('%').next().unwrap_or(h);
    if let Ok(v6) = no_zone.parse::<std::net::Ipv6Addr>() {
        if let Some(v4) = v6.to_ipv4_mapped() {
            return v4.to_string();
        }
        let seg = v6.segments();
        // IPv4-compatible (deprecated, ::a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) forms.
        if (seg[..6] == [0, 0, 0, 0, 0, 0] && (seg[6] != 0 || seg[7] > 1)) || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            let o = v6.octets();
            return std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]).to_string();
        }
        return v6.to_string();
    }
    h.to_string()
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|x| std::str::from_utf8(x).ok())
                .and_then(|x| u8::from_str_radix(x, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An IPv4 address as `inet_aton` reads it: one to four parts, each decimal, octal (leading
/// `0`) or hex (`0x`), the last part filling the remaining bytes.
fn parse_ipv4_loose(s: &str) -> Option<std::net::Ipv4Addr> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'x') {
        return None;
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let n = if let Some(hex) = p.strip_prefix("0x") {
            if hex.is_empty() {
                0
            } else {
                u64::from_str_radix(hex, 16).ok()?
            }
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()?
        } else {
            p.parse::<u64>().ok()?
        };
        nums.push(n);
    }
    let (last, init) = nums.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return None;
    }
    let room = 8 * (4 - init.len() as u32);
    if room < 64 && *last >= 1u64 << room {
        return None;
    }
    let mut v: u32 = 0;
    for (i, n) in init.iter().enumerate() {
        v |= (*n as u32) << (24 - 8 * i as u32);
    }
    v |= *last as u32;
    Some(std::net::Ipv4Addr::from(v))
}

/// Percent-decodes unreserved characters and resolves dot segments in a URL path.
pub(crate) fn normalize_url_path(path: &str) -> String {
    let b = path.as_bytes();
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&path[i + 1..i + 3], 16)
        {
            decoded.push(v);
            i += 3;
            continue;
        }
        decoded.push(b[i]);
        i += 1;
    }
    let s = String::from_utf8_lossy(&decoded);
    let n = normalize(&format!("/{}", s.trim_start_matches('/')));
    if n.is_empty() { "/".to_string() } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(w: &str) -> Vec<String> {
        let mut v = Vec::new();
        normalized_candidates(normalize(w), &mut v);
        v
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalize("~/.aws//credentials"), "~/.aws/credentials");
        assert_eq!(normalize("$HOME/.aws/./credentials"), "~/.aws/credentials");
        assert_eq!(normalize("${HOME}/x/../.netrc"), "~/.netrc");
        assert_eq!(normalize("/etc/../etc/shadow/"), "/etc/shadow");
        assert_eq!(normalize("/../../etc/shadow"), "/etc/shadow");
        assert_eq!(normalize("../../.ssh/id_rsa"), "../../.ssh/id_rsa");
        assert_eq!(normalize("./src/main.rs"), "src/main.rs");
        assert_eq!(normalize("~bob/.ssh/id_rsa"), "~/.ssh/id_rsa");
        assert_eq!(normalize("/proc/self/root/etc/shadow"), "/etc/shadow");
        assert_eq!(normalize("/proc/1/cwd/.env"), ".env");
        assert!(cands("/home/alice/.ssh/id_rsa").contains(&"~/.ssh/id_rsa".to_string()));
        assert!(cands("/root/.aws/credentials").contains(&"~/.aws/credentials".to_string()));
        assert!(cands("../../../etc/shadow").contains(&"/etc/shadow".to_string()));
    }

    #[test]
    fn operands() {
        assert_eq!(path_operand("--file=~/.netrc"), Some("~/.netrc"));
        assert_eq!(path_operand("-d@/etc/passwd"), Some("/etc/passwd"));
        assert_eq!(path_operand("@~/.aws/credentials"), Some("~/.aws/credentials"));
        assert_eq!(path_operand("if=/dev/sda"), Some("/dev/sda"));
        assert_eq!(path_operand("file:///etc/shadow"), Some("/etc/shadow"));
        assert_eq!(path_operand("host:.ssh/id_rsa"), Some(".ssh/id_rsa"));
        assert_eq!(path_operand("https://x.example/a"), Some("https://x.example/a"));
        assert_eq!(path_operand("-rf"), None);
    }

    #[test]
    fn variable_names() {
        let mut v = Vec::new();
        variables("a$GITHUB_TOKEN:${AWS_SECRET_ACCESS_KEY:-x}$(echo $HOME)$1", &mut v);
        assert_eq!(v, ["GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY"]);
    }

    #[test]
    fn urls() {
        assert_eq!(
            split_url("http://169.254.169.254:80/latest/meta-data/../meta-data/iam/"),
            (Some("169.254.169.254".into()), "/latest/meta-data/iam".into())
        );
        assert_eq!(
            split_url("https://u:p@API.Example.com./v1?q=1"),
            (Some("api.example.com".into()), "/v1".into())
        );
        assert_eq!(split_url("/a/%2e%2e/b").1, "/b");
    }
}
