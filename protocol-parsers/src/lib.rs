//! # sluice-protocols
//!
//! Zero-copy, incremental parsers for the protocols Sluice enforces on (PostgreSQL, MySQL,
//! HTTP/1.1, SSH, MCP/JSON-RPC) and SQL and shell analysis. This crate knows nothing of policy.
//!
//! Every parser reads through a bounds-checked [`Cursor`] that never indexes raw input directly.
//! So far: [`postgres`] (protocol v3, both directions, with the encoders a proxy needs),
//! [`mysql`] (framing, handshake, commands, text result sets, ERR and row encoders),
//! [`http`] (HTTP/1.1 heads through httparse, body framing, chunked decoder and encoder),
//! [`mcp`] (JSON-RPC 2.0 / MCP messages over stdio lines and SSE, typed views, result rewriting),
//! [`ssh`] (the RFC 4254 connection protocol after transport decryption), [`shell`] (static
//! analysis of sh/bash command lines) and [`sql`] (statement kinds, relations, functions, COPY,
//! DO/EXECUTE bodies; PostgreSQL and MySQL dialects).
//!
//! ```
//! use sluice_protocols::Cursor;
//! let mut c = Cursor::new(b"\x00\x00\x00\x08rest");
//! assert_eq!(c.u32_be(), Some(8));
//! assert_eq!(c.take(4), Some(&b"rest"[..]));
//! assert_eq!(c.take(1), None);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::sync::Arc;

pub mod http;
pub mod mcp;
pub mod mysql;
pub mod postgres;
pub mod shell;
pub mod sql;
pub mod ssh;

/// A parse error, the same shape in every parser module: what was wrong (the module's
/// `ErrorKind`), where (a byte offset into the input given to the parser), a detail where the
/// kind alone does not say it (the message type, the grammar's own words), and the error of the
/// library that found it as [`source`](std::error::Error::source) (serde_json, pg_query).
/// Each module gives `Error<ItsKind>` a lowercase `Display`.
#[derive(Debug, Clone)]
pub struct Error<K> {
    kind: K,
    offset: usize,
    detail: Option<Box<str>>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl<K: Copy> Error<K> {
    pub(crate) fn new(kind: K, offset: usize) -> Error<K> {
        Error {
            kind,
            offset,
            detail: None,
            source: None,
        }
    }

    pub(crate) fn with_detail(mut self, detail: impl Into<Box<str>>) -> Error<K> {
        self.detail = Some(detail.into());
        self
    }

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error<K> {
        self.detail = Some(source.to_string().into());
        self.source = Some(Arc::new(source));
        self
    }

    /// What was wrong.
    pub fn kind(&self) -> K {
        self.kind
    }

    /// Where, as a byte offset into the input given to the parser.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// More about what was wrong, when the kind alone does not say it.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

impl<K: PartialEq> PartialEq for Error<K> {
    fn eq(&self, other: &Error<K>) -> bool {
        self.kind == other.kind && self.offset == other.offset && self.detail == other.detail
    }
}

impl<K: Eq> Eq for Error<K> {}

impl<K: fmt::Debug> std::error::Error for Error<K>
where
    Error<K>: fmt::Display,
{
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A read cursor over a borrowed buffer. Every read is bounds-checked and returns `None` when
/// the input is too short, so a truncated message is "need more bytes", never a panic.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Takes the next `n` bytes, or `None` if fewer remain (nothing is consumed then).
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Takes one byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// Takes a big-endian u32.
    pub fn u32_be(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Takes bytes up to (not including) the next NUL, and the NUL.
    pub fn cstr(&mut self) -> Option<&'a [u8]> {
        let rest = self.remaining();
        let n = rest.iter().position(|&b| b == 0)?;
        let s = self.take(n)?;
        self.pos += 1;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_reads_consume_nothing() {
        let mut c = Cursor::new(b"ab\0c");
        assert_eq!(c.cstr(), Some(&b"ab"[..]));
        assert_eq!(c.u32_be(), None);
        assert_eq!(c.position(), 3);
        assert_eq!(c.u8(), Some(b'c'));
        assert_eq!(c.u8(), None);
    }
}
