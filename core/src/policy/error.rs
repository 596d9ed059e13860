//! Why a policy document was rejected.

use std::fmt;
use std::sync::Arc;

/// Why a policy document was rejected, and where: the origin (file name), the line and column
/// when the parser knows them, the path of the offending field (`rules[3].when.shell.paths[1]`)
/// when the document parsed but a field is invalid, and the underlying error (I/O, YAML, JSON)
/// as [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct PolicyError {
    kind: PolicyErrorKind,
    origin: String,
    line_col: Option<(usize, usize)>,
    path: Option<String>,
    message: String,
    source: Option<crate::error::Source>,
}

/// What kind of problem a [`PolicyError`] is. More kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// The policy file could not be read.
    Io,
    /// The text is not YAML or JSON, or does not follow the policy format.
    Syntax,
    /// A field's value is invalid (a bad glob, an unknown role or statement kind, …).
    Invalid,
}

impl PolicyError {
    pub(crate) fn new(kind: PolicyErrorKind, origin: &str, message: impl Into<String>) -> PolicyError {
        PolicyError {
            kind,
            origin: origin.to_string(),
            line_col: None,
            path: None,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn at(mut self, line: usize, column: usize) -> PolicyError {
        self.line_col = Some((line, column));
        self
    }

    pub(crate) fn field(mut self, path: String) -> PolicyError {
        self.path = Some(path);
        self
    }

    pub(crate) fn source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> PolicyError {
        self.source = Some(Arc::new(e));
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> PolicyErrorKind {
        self.kind
    }

    /// The file or origin name the policy was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The 1-based line and column, when the parser knows them.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.line_col
    }

    /// The path of the offending field (`rules[3].when.shell.paths[1]`), when known.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// What is wrong, without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((l, c)) = self.line_col {
            write!(f, ":{l}:{c}")?;
        }
        if let Some(p) = &self.path {
            write!(f, ": {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        crate::error::source_of(&self.source)
    }
}
