//! The secret detector: compiled rules ([`rules`]), the matcher and its verifiers
//! (`detector`), the filters a candidate passes (`filters`: entropy, placeholders,
//! identifiers), checksum validators (`validate`), known values (`known`), and redaction, one-shot
//! and streaming (`redact`, `tables` for tabular input). The crate root re-exports the public
//! types ([`crate::Detector`], [`crate::StreamRedactor`], …).

pub(crate) mod detector;
pub(crate) mod filters;
#[cfg(feature = "hyperscan")]
mod hs;
pub(crate) mod known;
mod prefilter;
pub(crate) mod redact;
pub mod rules;
pub(crate) mod stream;
pub(crate) mod tables;
pub(crate) mod validate;

/// Which engine runs the detector's keyword pass (everything after it is the same code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Backend {
    /// The pure-Rust hash prefilter and verifier: no system library, the default.
    #[default]
    Rust,
    /// Hyperscan (the system library, cargo feature `hyperscan`): every keyword in one
    /// database.
    Hyperscan,
}

impl Backend {
    /// The backends this build has.
    pub fn available() -> &'static [Backend] {
        if cfg!(feature = "hyperscan") {
            &[Backend::Rust, Backend::Hyperscan]
        } else {
            &[Backend::Rust]
        }
    }

    /// The fastest backend this build has: Hyperscan when compiled in.
    pub fn best() -> Backend {
        if cfg!(feature = "hyperscan") {
            Backend::Hyperscan
        } else {
            Backend::Rust
        }
    }

    /// Its name: `rust` or `hyperscan`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Rust => "rust",
            Backend::Hyperscan => "hyperscan",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "rust" => Ok(Backend::Rust),
            "hyperscan" => Ok(Backend::Hyperscan),
            other => Err(format!("unknown backend `{other}` (rust or hyperscan)")),
        }
    }
}
