//! Credential brokering: the host holds the credentials, the agent reads and writes
//! placeholders.
//!
//! A placeholder is `sluice:secret/NAME` ([`Placeholder`]; NAME is 1 to 64 of `a-z`, `0-9`,
//! `.`, `_`, `-`, starting with a letter or digit). A [`Vault`] maps names to values
//! ([`MemoryVault`], [`EnvVault`], [`FileVault`]; a host's own store behind the trait). Inbound,
//! a detector built with [`DetectorBuilder::brokered_value`](crate::DetectorBuilder::brokered_value)
//! (see [`Vault::detector`]) turns every echo of a value back into its placeholder, in every
//! form. Outbound, [`substitute`] swaps placeholders for values at the last hop, each one only
//! where the caller's rule allows it.
//!
//! ```
//! use sluice_core::broker::{MemoryVault, Vault, substitute};
//!
//! let vault = MemoryVault::new();
//! vault.set("gh-token", "ghp_synthetic0123456789abcdefghijklmnopqr"); // synthetic: sluice:allow
//! let detector = vault.detector(sluice_core::Detector::builder()).unwrap();
//! // Outbound: the real value goes to the host the rule allows…
//! let out = substitute("token sluice:secret/gh-token", &vault, |name| name == "gh-token").unwrap();
//! assert!(out.text.contains("ghp_synthetic"));
//! assert_eq!(out.used, ["gh-token"]);
//! // …and every echo comes back as the placeholder, even a piece of it.
//! let back = detector.redact(b"prefix ghp_synthetic0123 suffix");
//! assert_eq!(&back[..], &b"prefix sluice:secret/gh-token suffix"[..]);
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::{DetectorBuilder, Error};

/// What every placeholder begins with.
pub const PREFIX: &str = "sluice:secret/";

/// The longest placeholder name.
pub const MAX_NAME: usize = 64;

/// A placeholder, `sluice:secret/NAME`, with a valid name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placeholder(String);

/// Why a name cannot be a placeholder's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

fn name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
}

impl Placeholder {
    /// The placeholder of `name`.
    pub fn new(name: &str) -> Result<Placeholder, NameError> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() > MAX_NAME {
            return Err(NameError(format!(
                "a name is 1 to {MAX_NAME} characters, `{name}` is {}",
                b.len()
            )));
        }
        if !b[0].is_ascii_alphanumeric() || !b.iter().all(|&c| name_byte(c)) {
            return Err(NameError(format!(
                "`{name}`: a name is lowercase letters, digits, `.`, `_` and `-`, starting with a letter or digit"
            )));
        }
        Ok(Placeholder(format!("{PREFIX}{name}")))
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.0[PREFIX.len()..]
    }

    /// The placeholder's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The placeholders in `text`, in order: (start, end, name). A name runs as far as name bytes
/// go, so `sluice:secret/db-password.` names `db-password.`; a prefix followed by no valid name
/// is not a placeholder.
pub fn placeholders(text: &str) -> Vec<(usize, usize, &str)> {
    // Placeholders are ASCII: byte offsets found in the bytes fall on character boundaries.
    placeholders_in(text.as_bytes())
        .into_iter()
        .map(|(start, end)| (start, end, &text[start + PREFIX.len()..end]))
        .collect()
}

/// [`placeholders`] in bytes that need not be text: (start, end) of each, the name being
/// `bytes[start + PREFIX.len()..end]` (ASCII).
pub fn placeholders_in(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    let finder = memchr::memmem::Finder::new(PREFIX.as_bytes());
    while let Some(i) = finder.find(&bytes[from..]) {
        let start = from + i;
        let name_start = start + PREFIX.len();
        let len = bytes[name_start..]
            .iter()
            .take_while(|&&b| name_byte(b))
            .count()
            .min(MAX_NAME);
        // A trailing `.`, `-` or `_` is punctuation, not part of the name.
        let name = &bytes[name_start..name_start + len];
        let trimmed = name.len()
            - name
                .iter()
                .rev()
                .take_while(|b| matches!(b, b'.' | b'-' | b'_'))
                .count();
        let name = std::str::from_utf8(&name[..trimmed]).unwrap_or_default();
        if Placeholder::new(name).is_ok() {
            out.push((start, name_start + name.len()));
            from = name_start + name.len();
        } else {
            from = name_start;
        }
    }
    out
}

/// A store of the credentials a host holds: names to values. Values change by rotation
/// ([`generation`](Vault::generation) moves on); hosts rebuild what depends on them then.
pub trait Vault: Send + Sync {
    /// The value named `name`, if the vault holds it.
    fn get(&self, name: &str) -> Option<Arc<[u8]>>;
    /// Every name the vault holds.
    fn names(&self) -> Vec<String>;
    /// A number that changes whenever a value is added, changed or removed.
    fn generation(&self) -> u64;

    /// Adds every value of the vault to `builder` as a brokered value (scrubbed back into its
    /// placeholder in every form) and builds the detector.
    fn detector(&self, builder: DetectorBuilder) -> Result<crate::Detector, Error> {
        let mut b = builder;
        for name in self.names() {
            if let Some(v) = self.get(&name) {
                b = b.brokered_value(name, &*v);
            }
        }
        b.build()
    }
}

/// Values by name.
type Values = BTreeMap<String, Arc<[u8]>>;

/// A vault in memory: set and rotate values at run time.
#[derive(Debug, Default)]
pub struct MemoryVault {
    /// The values and their generation.
    inner: RwLock<(Values, u64)>,
}

impl MemoryVault {
    /// An empty vault.
    pub fn new() -> MemoryVault {
        MemoryVault::default()
    }

    /// Sets (or rotates) the value of `name`.
    pub fn set(&self, name: impl Into<String>, value: impl AsRef<[u8]>) {
        let mut g = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.0.insert(name.into(), Arc::from(value.as_ref()));
        g.1 += 1;
    }

    /// Removes `name`.
    pub fn remove(&self, name: &str) {
        let mut g = self.inner.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.0.remove(name).is_some() {
            g.1 += 1;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (Values, u64)> {
        self.inner.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Vault for MemoryVault {
    fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        self.read().0.get(name).cloned()
    }

    fn names(&self) -> Vec<String> {
        self.read().0.keys().cloned().collect()
    }

    fn generation(&self) -> u64 {
        self.read().1
    }
}

/// Values from environment variables `PREFIX` + the name upper-cased with `.` and `-` as `_`
/// (`SLUICE_SECRET_PG_PROD_PASSWORD` for `pg-prod-password` with the default prefix), read
/// when asked for; `names` lists the variables that carry the prefix.
#[derive(Debug, Clone)]
pub struct EnvVault {
    prefix: String,
}

impl Default for EnvVault {
    fn default() -> Self {
        EnvVault {
            prefix: "SLUICE_SECRET_".into(),
        }
    }
}

impl EnvVault {
    /// Values from variables beginning with `prefix`.
    pub fn with_prefix(prefix: impl Into<String>) -> EnvVault {
        EnvVault { prefix: prefix.into() }
    }

    fn var(&self, name: &str) -> String {
        let mut v = self.prefix.clone();
        v.extend(name.chars().map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        }));
        v
    }
}

impl Vault for EnvVault {
    fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        std::env::var_os(self.var(name)).map(|v| Arc::from(v.as_encoded_bytes()))
    }

    fn names(&self) -> Vec<String> {
        std::env::vars_os()
            .filter_map(|(k, _)| {
                let k = k.to_str()?.strip_prefix(&self.prefix)?;
                let name = k.to_ascii_lowercase().replace('_', "-");
                Placeholder::new(&name).ok().map(|_| name)
            })
            .collect()
    }

    fn generation(&self) -> u64 {
        // The environment of a process does not change under it in practice; a host that
        // changes it rebuilds.
        0
    }
}

/// Values from a file of `name = value` lines (`#` comments and blank lines skipped), read at
/// [`load`](FileVault::load) and again at [`reload`](FileVault::reload) (rotation: replace the
/// file, then reload).
#[derive(Debug)]
pub struct FileVault {
    path: PathBuf,
    values: MemoryVault,
}

impl FileVault {
    /// Reads `path`. Errors name the file and line.
    pub fn load(path: impl AsRef<Path>) -> Result<FileVault, String> {
        let v = FileVault {
            path: path.as_ref().to_path_buf(),
            values: MemoryVault::new(),
        };
        v.reload()?;
        Ok(v)
    }

    /// Reads the file again; on an error the values stay as they were.
    pub fn reload(&self) -> Result<(), String> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let parsed = parse_credentials(&text).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let mut g = self
            .values
            .inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.0 != parsed {
            g.0 = parsed;
            g.1 += 1;
        }
        Ok(())
    }
}

/// Parses `name = value` lines.
pub fn parse_credentials(text: &str) -> Result<BTreeMap<String, Arc<[u8]>>, String> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let Some((name, value)) = t.split_once('=') else {
            return Err(format!("line {}: expected `name = value`", i + 1));
        };
        let name = name.trim();
        Placeholder::new(name).map_err(|e| format!("line {}: {e}", i + 1))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("line {}: `{name}` has no value", i + 1));
        }
        if out.insert(name.to_string(), Arc::from(value.as_bytes())).is_some() {
            return Err(format!("line {}: `{name}` is given twice", i + 1));
        }
    }
    Ok(out)
}

impl Vault for FileVault {
    fn get(&self, name: &str) -> Option<Arc<[u8]>> {
        self.values.get(name)
    }

    fn names(&self) -> Vec<String> {
        self.values.names()
    }

    fn generation(&self) -> u64 {
        self.values.generation()
    }
}

/// Text with placeholders swapped for values, and which names were used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substituted<'a> {
    /// The text to send on (borrowed when it held no placeholder).
    pub text: Cow<'a, str>,
    /// The names substituted, in order of appearance (repeats kept): what an audit records.
    pub used: Vec<String>,
}

/// Why substitution refused: the placeholder named and why (never a value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The placeholder's name.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}: {}", self.name, self.reason)
    }
}

impl std::error::Error for Refused {}

/// Swaps every placeholder in `text` for its value from `vault`, when `allowed(name)` (the
/// caller's rule: may this name go to this target?). A placeholder not allowed, or naming
/// nothing the vault holds, refuses the whole text: nothing is sent half-substituted. Values
/// that are not UTF-8 cannot be substituted into text and are refused too.
pub fn substitute<'a>(
    text: &'a str,
    vault: &dyn Vault,
    allowed: impl FnMut(&str) -> bool,
) -> Result<Substituted<'a>, Refused> {
    let (out, used) = substitute_bytes(text.as_bytes(), vault, allowed)?;
    let text = match out {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8(bytes).map_err(|_| {
            // Text went in: only a value that is not text can have made it invalid.
            let name = used
                .iter()
                .find(|n| vault.get(n).is_some_and(|v| std::str::from_utf8(&v).is_err()))
                .cloned()
                .unwrap_or_default();
            Refused {
                name,
                reason: "the value is not text".into(),
            }
        })?),
    };
    Ok(Substituted { text, used })
}

/// [`substitute`] for bytes that need not be text (a binary or decoded request body): each
/// placeholder is swapped for its value's bytes, the bytes around it left as they are.
pub fn substitute_bytes<'a>(
    bytes: &'a [u8],
    vault: &dyn Vault,
    mut allowed: impl FnMut(&str) -> bool,
) -> Result<(Cow<'a, [u8]>, Vec<String>), Refused> {
    let found = placeholders_in(bytes);
    if found.is_empty() {
        return Ok((Cow::Borrowed(bytes), Vec::new()));
    }
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut used = Vec::with_capacity(found.len());
    let mut pos = 0;
    for (start, end) in found {
        let name = std::str::from_utf8(&bytes[start + PREFIX.len()..end]).unwrap_or_default();
        let refuse = |reason: &str| Refused {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if !allowed(name) {
            return Err(refuse("this credential may not be sent here"));
        }
        let value = vault.get(name).ok_or_else(|| refuse("no such credential"))?;
        out.extend_from_slice(&bytes[pos..start]);
        out.extend_from_slice(&value);
        used.push(name.to_string());
        pos = end;
    }
    out.extend_from_slice(&bytes[pos..]);
    Ok((Cow::Owned(out), used))
}

pub mod login;
#[cfg(test)]
mod tests;
