//! The error type of sluice-core.

use std::fmt;
use std::sync::Arc;

/// An error from building a detector: a bad rule file, a bad pattern, a limit exceeded or an
/// invalid known value.
///
/// The [`Display`](fmt::Display) form says what went wrong and where: the rule file and its line
/// and column, the rule id, and the byte offset inside the pattern. When TOML's or the regex
/// parser's error found the problem, it is the [`source`](std::error::Error::source).
#[derive(Debug, Clone)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    origin: Option<String>,
    line_col: Option<(usize, usize)>,
    rule: Option<String>,
    message: String,
    source: Option<Source>,
}

/// The underlying error every sluice-core error may carry (shared: errors stay `Clone`).
pub(crate) type Source = Arc<dyn std::error::Error + Send + Sync>;

/// An error's [`source`](std::error::Error::source), from its stored [`Source`].
pub(crate) fn source_of(source: &Option<Source>) -> Option<&(dyn std::error::Error + 'static)> {
    source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
}

/// What kind of error happened. More kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The rule file is not valid TOML, or does not follow the rule-file format.
    RuleFile,
    /// A rule's pattern does not parse or compile.
    Pattern,
    /// A rule's field other than the pattern is invalid (entropy, validator, keywords, …).
    Rule,
    /// A configured limit was exceeded (rules, pattern size, match length, keywords, known values).
    Limit,
    /// A rule's own examples disagree with its pattern (used when rules are tested).
    Example,
    /// A registered known value is unusable (too short or too long).
    KnownValue,
    /// The matching backend asked for is not in this build, or could not compile the keywords.
    Backend,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            kind,
            origin: None,
            line_col: None,
            rule: None,
            message: message.into(),
            source: None,
        }))
    }

    /// The underlying error (TOML's, the regex parser's) that found the problem.
    pub(crate) fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.0.source = Some(Arc::new(e));
        self
    }

    pub(crate) fn with_origin(mut self, origin: &str) -> Error {
        self.0.origin = Some(origin.to_string());
        self
    }

    pub(crate) fn with_line_col(mut self, line: usize, col: usize) -> Error {
        self.0.line_col = Some((line, col));
        self
    }

    pub(crate) fn with_rule(mut self, rule: &str) -> Error {
        self.0.rule = Some(rule.to_string());
        self
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The rule file (or other origin) the error was found in, when known.
    pub fn origin(&self) -> Option<&str> {
        self.0.origin.as_deref()
    }

    /// The 1-based line and column in the rule file, when known.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        self.0.line_col
    }

    /// The id of the rule at fault, when known.
    pub fn rule(&self) -> Option<&str> {
        self.0.rule.as_deref()
    }

    /// The description of what went wrong, without the location.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.origin, self.0.line_col) {
            (Some(o), Some((l, c))) => write!(f, "{o}:{l}:{c}: ")?,
            (Some(o), None) => write!(f, "{o}: ")?,
            (None, Some((l, c))) => write!(f, "line {l}, column {c}: ")?,
            (None, None) => {}
        }
        if let Some(r) = &self.0.rule {
            write!(f, "rule `{r}`: ")?;
        }
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        source_of(&self.0.source)
    }
}

/// Converts a byte offset in `text` into a 1-based (line, column), counting columns in characters.
pub(crate) fn line_col_of(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = memchr::memchr_iter(b'\n', before).count() + 1;
    let line_start = memchr::memrchr(b'\n', before).map_or(0, |p| p + 1);
    let col = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count())
        + 1;
    (line, col)
}
