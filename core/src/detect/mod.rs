//! The secret detector: compiled rules ([`rules`]), the matcher and its verifiers
//! (`detector`), the filters a candidate passes (`filters`: entropy, placeholders,
//! identifiers), checksum validators (`validate`), known values (`known`), and redaction, one-shot
//! and streaming (`redact`, `tables` for tabular input). The crate root re-exports the public
//! types ([`crate::Detector`], [`crate::StreamRedactor`], …).

pub(crate) mod detector;
pub(crate) mod filters;
pub(crate) mod known;
mod prefilter;
pub(crate) mod redact;
pub mod rules;
pub(crate) mod tables;
pub(crate) mod validate;
