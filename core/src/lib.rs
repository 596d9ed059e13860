//! # sluice-core
//!
//! The engine behind Sluice, the enforcement point between AI agents and infrastructure. This
//! crate holds the compiled **secret detector** and **redaction**, one-shot and streaming, the
//! **policy engine**, and the **protocol sessions** that build on both.
//!
//! ```
//! use sluice_core::Detector;
//!
//! # fn main() -> Result<(), sluice_core::Error> {
//! // Compile the built-in rules once; the detector is immutable, `Send + Sync` and cheap to share.
//! let detector = Detector::builder()
//!     .known_value("db-password", "s3rv1ce-pw-Synthetic-42")   // a credential the host holds
//!     .build()?;
//!
//! let text = b"DATABASE_URL=postgres://app:s3rv1ce-pw-Synthetic-42@db.internal:5432/app\n"; // synthetic: sluice:allow
//! let findings = detector.scan(text);
//! assert_eq!(findings.len(), 1);
//! assert_eq!((findings[0].line, findings[0].column), (1, 29));
//!
//! // Placeholders name the rule and a keyed fingerprint, never the secret.
//! let masked = detector.redact(text);
//! assert!(!masked.windows(6).any(|w| w == b"s3rv1c"));
//! assert!(masked.starts_with(b"DATABASE_URL=postgres://app:[REDACTED:db-password:"));
//!
//! // Streaming: the output is the same however the input is cut.
//! let mut stream = detector.stream_redactor();
//! let mut out = Vec::new();
//! for chunk in text.chunks(7) {
//!     stream.feed(chunk, &mut out);
//! }
//! stream.finish(&mut out);
//! assert_eq!(out, &*masked);
//! # Ok(()) }
//! ```
//!
//! ## Subsystems
//! - [`detect`]: the secret detector and redaction (its public types are re-exported here).
//! - [`policy`]: decisions on shell, SQL, HTTP, MCP and SSH requests, grants, OIDC identities.
//! - [`session`]: one closed state machine per protocol that decides every command and masks
//!   every response on the wire (an example in its docs).
//!
//! ## Main types
//! - [`Detector`] / [`DetectorBuilder`]: built-in rules, rule files ([`rules`] documents the
//!   format), known values, the fingerprint key.
//! - [`Finding`]: rule id, byte span, line and column, [`Fingerprint`].
//! - [`StreamRedactor`]: chunked redaction with bounded hold-back.
//! - [`Error`] / [`ErrorKind`]: what went wrong building a detector, and where.
//! - [`policy`]: the policy engine ([`policy::Engine`], the embedded agent-safe policy),
//!   just-in-time approval grants ([`policy::grant`]) and OIDC identities ([`policy::oidc`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod broker;
pub mod detect;
mod error;
pub mod policy;
pub mod record;
pub mod session;

pub use detect::Backend;
pub use detect::detector::{BUILTIN_RULES, CREDENTIAL_COLUMN, Detector, DetectorBuilder, Finding, Fingerprint};
pub use detect::redact::{StreamRedactor, credential_column, looks_like_credential};
pub use detect::rules::{self, Limits, RuleInfo};
pub use detect::stream::{ChunkScanner, FindingLines};
pub use detect::validate::Validator;
pub use error::{Error, ErrorKind};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
