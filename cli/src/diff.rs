//! `sluice scan --diff BASE`: which lines a git diff adds, and the new content of each file.
//!
//! `BASE` alone compares BASE with the working tree (the files on disk are the new side);
//! `A..B` and `A...B` compare two commits (the new side is read from B). Whole files are
//! scanned so that a secret keeps its context; a finding is reported when any of its lines was
//! added.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The lines one file gained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Added {
    /// Path relative to the repository root, `/`-separated as git writes it.
    pub(crate) path: String,
    /// 1-based inclusive line ranges of the new file.
    pub(crate) ranges: Vec<(usize, usize)>,
}

impl Added {
    /// Whether any line of `first..=last` was added.
    pub(crate) fn touches(&self, first: usize, last: usize) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= last && first <= b)
    }
}

/// A diff to scan: where the repository is, where new content comes from, what was added.
#[derive(Debug)]
pub(crate) struct Diff {
    root: PathBuf,
    /// `None`: the working tree; otherwise the commit of the new side.
    new_rev: Option<String>,
    pub(crate) files: Vec<Added>,
}

impl Diff {
    /// Runs `git diff` against `base`, limited to `paths` (pathspecs; all when empty).
    pub(crate) fn load(base: &str, paths: &[PathBuf]) -> Result<Diff, String> {
        if base.starts_with('-') {
            return Err(format!(
                "--diff {base}: expected a revision, such as origin/main or HEAD~1"
            ));
        }
        let root =
            git(&["rev-parse", "--show-toplevel"], None).map_err(|e| format!("--diff needs a git repository: {e}"))?;
        let root = PathBuf::from(String::from_utf8_lossy(&root).trim_end_matches(['\n', '\r']));
        let new_rev = base.find("..").map(|i| {
            let rest = base[i..].trim_start_matches('.');
            if rest.is_empty() { "HEAD" } else { rest }.to_string()
        });
        let mut args = vec![
            "-c",
            "core.quotepath=off",
            "diff",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "--unified=0",
            "--diff-filter=ACMR",
            "-M",
            base,
            "--",
        ];
        let specs: Vec<String> = paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        args.extend(specs.iter().map(String::as_str));
        let out = git(&args, None).map_err(|e| format!("git diff {base}: {e}"))?;
        Ok(Diff {
            root,
            new_rev,
            files: parse(&out),
        })
    }

    /// The new content of `file`, and the path to show for it.
    pub(crate) fn content(&self, file: &Added) -> Result<Vec<u8>, String> {
        match &self.new_rev {
            None => {
                let p = self.root.join(&file.path);
                std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))
            }
            Some(rev) => git(&["show", &format!("{rev}:{}", file.path)], Some(&self.root))
                .map_err(|e| format!("{rev}:{}: {e}", file.path)),
        }
    }
}

fn git(args: &[&str], dir: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new("git");
    cmd.args(args);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr);
        return Err(msg.trim().lines().next().unwrap_or("git failed").to_string());
    }
    Ok(out.stdout)
}

/// Added line ranges per file from `git diff --unified=0` output.
fn parse(diff: &[u8]) -> Vec<Added> {
    let mut files: Vec<Added> = Vec::new();
    let mut current: Option<Added> = None;
    for line in diff.split(|&b| b == b'\n') {
        if line.starts_with(b"diff --git ") {
            files.extend(current.take().filter(|a| !a.ranges.is_empty()));
        } else if let Some(rest) = line.strip_prefix(b"+++ ") {
            let name = unquote(rest);
            current = name.strip_prefix("b/").map(|p| Added {
                path: p.to_string(),
                ranges: Vec::new(),
            });
        } else if line.starts_with(b"@@ ")
            && let (Some(cur), Some(range)) = (current.as_mut(), hunk_new_range(line))
        {
            cur.ranges.push(range);
        }
    }
    files.extend(current.filter(|a| !a.ranges.is_empty()));
    files
}

/// The new-side line range of a hunk header `@@ -a,b +c,d @@`; `None` when it adds nothing.
fn hunk_new_range(line: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(line).ok()?;
    let plus = text.split_whitespace().find(|w| w.starts_with('+'))?;
    let (start, count) = match plus[1..].split_once(',') {
        Some((s, c)) => (s.parse::<usize>().ok()?, c.parse::<usize>().ok()?),
        None => (plus[1..].parse::<usize>().ok()?, 1),
    };
    (count > 0).then(|| (start, start + count - 1))
}

/// A path as git prints it: plain, or C-quoted (`"b/a\"b\303\251"`) when it holds unusual bytes.
fn unquote(raw: &[u8]) -> String {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let Some(inner) = raw.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")) else {
        // Unquoted names may carry a trailing tab before a timestamp in other diff dialects.
        let end = raw.iter().position(|&b| b == b'\t').unwrap_or(raw.len());
        return String::from_utf8_lossy(&raw[..end]).into_owned();
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let b = inner[i];
        if b != b'\\' || i + 1 == inner.len() {
            out.push(b);
            i += 1;
            continue;
        }
        let e = inner[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'0'..=b'3' if i + 2 <= inner.len() => {
                let oct = [e, inner[i], inner[i + 1]];
                match std::str::from_utf8(&oct)
                    .ok()
                    .and_then(|s| u8::from_str_radix(s, 8).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(e),
                }
            }
            other => out.push(other),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_added_ranges_per_file() {
        let diff = b"diff --git a/src/a.py b/src/a.py\nindex 1..2 100644\n--- a/src/a.py\n+++ b/src/a.py\n\
@@ -3 +3,2 @@ def f():\n-x\n+y\n+z\n@@ -10,2 +11,0 @@\n-gone\n-gone\n\
diff --git a/old.txt b/old.txt\ndeleted file mode 100644\n--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n\
diff --git a/new.env b/new.env\nnew file mode 100644\n--- /dev/null\n+++ b/new.env\n@@ -0,0 +1 @@\n+K=v\n";
        let files = parse(diff);
        assert_eq!(
            files,
            vec![
                Added {
                    path: "src/a.py".into(),
                    ranges: vec![(3, 4)]
                },
                Added {
                    path: "new.env".into(),
                    ranges: vec![(1, 1)]
                },
            ]
        );
        assert!(files[0].touches(4, 9));
        assert!(!files[0].touches(5, 11));
    }

    #[test]
    fn unquotes_c_style_paths() {
        assert_eq!(unquote(b"\"b/a\\\"b \\303\\251.txt\""), "b/a\"b \u{e9}.txt");
        assert_eq!(unquote(b"b/plain name.txt"), "b/plain name.txt");
        assert_eq!(unquote(b"\"b/tab\\there\""), "b/tab\there");
    }

    #[test]
    fn hunk_headers() {
        assert_eq!(hunk_new_range(b"@@ -1,2 +5,3 @@ ctx"), Some((5, 7)));
        assert_eq!(hunk_new_range(b"@@ -1 +1 @@"), Some((1, 1)));
        assert_eq!(hunk_new_range(b"@@ -4,2 +3,0 @@"), None);
        assert_eq!(hunk_new_range(b"@@ garbage @@"), None);
    }
}
