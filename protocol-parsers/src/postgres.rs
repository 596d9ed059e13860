//! PostgreSQL frontend/backend protocol v3: incremental, zero-copy message parsing and the
//! encoders a proxy needs to answer or rewrite (ErrorResponse, DataRow, RowDescription,
//! CommandComplete, ReadyForQuery).
//!
//! Parsing never copies: every view borrows the caller's buffer. Given a buffer, a parser returns
//! [`Status::Complete`] with the message and the bytes it used, or [`Status::Partial`] when more
//! bytes are needed. Malformed input is an [`Error`] saying what and at which offset.
//!
//! ```
//! use sluice_protocols::postgres::{self, Backend, Status};
//! let mut buf = Vec::new();
//! postgres::encode_ready_for_query(b'I', &mut buf);
//! let limits = postgres::Limits::default();
//! match postgres::parse_backend(&buf, &limits)? {
//!     Status::Complete((Backend::ReadyForQuery { status }, used)) => {
//!         assert_eq!((status, used), (b'I', buf.len()));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), sluice_protocols::postgres::Error>(())
//! ```

use std::fmt;

use crate::Cursor;

/// The result of parsing a buffer that may hold an incomplete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status<T> {
    /// A whole message, and the number of bytes it used.
    Complete(T),
    /// The buffer ends inside a message; call again with more bytes.
    Partial,
}

/// Size limits applied while parsing.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest message accepted, length field included (default 64 MiB).
    pub max_message: usize,
    /// The most fields of a row, columns of a description or parameters of a Bind (default 4096).
    pub max_fields: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message: 64 * 1024 * 1024,
            max_fields: 4096,
        }
    }
}

/// Why a message could not be parsed; its detail names the message (`message 'Q'`, `startup
/// packet`).
pub type Error = crate::Error<ErrorKind>;

/// What was wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The length field is below the minimum (4) or above [`Limits::max_message`].
    BadLength(usize),
    /// The message type byte is not one this side of the protocol sends.
    UnknownType,
    /// The body ended before a field it announces.
    Truncated,
    /// A string field has no terminating NUL.
    Unterminated,
    /// A count exceeds [`Limits::max_fields`].
    TooManyFields(usize),
    /// A startup packet carries a protocol version this parser does not know.
    UnsupportedProtocol(u32),
    /// The body holds bytes after its last field.
    TrailingBytes,
}

/// An error in the message of type `tag` (0: the startup packet).
fn err(kind: ErrorKind, offset: usize, tag: u8) -> Error {
    let what = if tag == 0 {
        "startup packet".to_string()
    } else {
        format!("message '{}'", tag.escape_ascii())
    };
    Error::new(kind, offset).with_detail(what)
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = self.detail().unwrap_or("message");
        let offset = self.offset();
        match self.kind() {
            ErrorKind::BadLength(n) => write!(f, "{tag}: bad length {n} at offset {}", offset),
            ErrorKind::UnknownType => write!(f, "{tag}: unknown message type at offset {}", offset),
            ErrorKind::Truncated => write!(f, "{tag}: body ends early at offset {}", offset),
            ErrorKind::Unterminated => write!(f, "{tag}: string without NUL at offset {}", offset),
            ErrorKind::TooManyFields(n) => write!(f, "{tag}: {n} fields exceed the limit at offset {}", offset),
            ErrorKind::UnsupportedProtocol(v) => write!(
                f,
                "{tag}: unsupported protocol {}.{} at offset {}",
                v >> 16,
                v & 0xFFFF,
                offset
            ),
            ErrorKind::TrailingBytes => write!(f, "{tag}: trailing bytes at offset {}", offset),
        }
    }
}

/// The first packet of a connection, before any typed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup<'a> {
    /// The client asks for TLS.
    SslRequest,
    /// The client asks for GSSAPI encryption.
    GssEncRequest,
    /// The client cancels a query of another connection.
    CancelRequest {
        /// Process id from BackendKeyData.
        pid: u32,
        /// Secret key from BackendKeyData.
        key: u32,
    },
    /// The client opens a session: protocol 3.x and its parameters (`user`, `database`, …).
    Startup {
        /// The protocol version (major << 16 | minor).
        version: u32,
        /// Parameter names and values, in order.
        params: Vec<(&'a [u8], &'a [u8])>,
    },
}

impl<'a> Startup<'a> {
    /// The value of a startup parameter such as `user` or `database`.
    pub fn param(&self, name: &str) -> Option<&'a [u8]> {
        match self {
            Startup::Startup { params, .. } => params.iter().find(|(k, _)| *k == name.as_bytes()).map(|(_, v)| *v),
            _ => None,
        }
    }
}

/// A message from the client once the session has started.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frontend<'a> {
    /// Simple query.
    Query(&'a [u8]),
    /// Extended protocol: prepare a statement.
    Parse {
        /// Statement name (empty for the unnamed statement).
        name: &'a [u8],
        /// The SQL text.
        query: &'a [u8],
        /// Parameter type OIDs.
        param_types: Vec<u32>,
    },
    /// Extended protocol: bind parameters to a statement, creating a portal.
    Bind {
        /// Portal name.
        portal: &'a [u8],
        /// Statement name.
        statement: &'a [u8],
        /// Parameter values (None for NULL).
        params: Vec<Option<&'a [u8]>>,
    },
    /// Describe a statement (`S`) or portal (`P`).
    Describe {
        /// `S` or `P`.
        kind: u8,
        /// Its name.
        name: &'a [u8],
    },
    /// Execute a portal.
    Execute {
        /// Portal name.
        portal: &'a [u8],
        /// Row limit (0: all).
        max_rows: u32,
    },
    /// Close a statement (`S`) or portal (`P`).
    Close {
        /// `S` or `P`.
        kind: u8,
        /// Its name.
        name: &'a [u8],
    },
    /// End of an extended-protocol batch.
    Sync,
    /// Flush pending output.
    Flush,
    /// COPY data from the client.
    CopyData(&'a [u8]),
    /// End of COPY data.
    CopyDone,
    /// COPY aborted by the client, with its message.
    CopyFail(&'a [u8]),
    /// Password, SASLInitialResponse or SASLResponse (the body; its meaning depends on the
    /// authentication exchange).
    Password(&'a [u8]),
    /// The client closes the session.
    Terminate,
}

/// A message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend<'a> {
    /// An authentication request or outcome: the code (0 ok, 3 cleartext, 5 MD5, 10 SASL, …)
    /// and the rest of the body.
    Authentication {
        /// The authentication code.
        code: u32,
        /// The bytes after the code (salt, SASL mechanisms or data).
        data: &'a [u8],
    },
    /// A run-time parameter value.
    ParameterStatus {
        /// Parameter name.
        name: &'a [u8],
        /// Its value.
        value: &'a [u8],
    },
    /// The key a client needs to cancel queries.
    BackendKeyData {
        /// Process id.
        pid: u32,
        /// Secret key.
        key: u32,
    },
    /// The server is ready: `I` idle, `T` in a transaction, `E` in a failed transaction.
    ReadyForQuery {
        /// Transaction status.
        status: u8,
    },
    /// Columns of the rows that follow.
    RowDescription(Vec<Column<'a>>),
    /// One row, validated, read without allocating through [`Row::values`].
    DataRow(Row<'a>),
    /// A command finished, with its tag (`SELECT 3`).
    CommandComplete(&'a [u8]),
    /// An error: its fields by code (`S` severity, `C` SQLSTATE, `M` message, …).
    ErrorResponse(Vec<(u8, &'a [u8])>),
    /// A notice, with the same fields as an error.
    NoticeResponse(Vec<(u8, &'a [u8])>),
    /// COPY data from the server.
    CopyData(&'a [u8]),
    /// End of COPY data.
    CopyDone,
    /// COPY FROM STDIN starts (the body: format and column formats).
    CopyInResponse(&'a [u8]),
    /// COPY TO STDOUT starts (the body: format and column formats).
    CopyOutResponse(&'a [u8]),
    /// Parse completed.
    ParseComplete,
    /// Bind completed.
    BindComplete,
    /// Close completed.
    CloseComplete,
    /// The statement returns no rows.
    NoData,
    /// Parameter types of a statement.
    ParameterDescription(Vec<u32>),
    /// An empty query string was executed.
    EmptyQueryResponse,
    /// Execute stopped at its row limit.
    PortalSuspended,
    /// A LISTEN notification.
    NotificationResponse {
        /// The notifying backend's process id.
        pid: u32,
        /// The channel name.
        channel: &'a [u8],
        /// The payload.
        payload: &'a [u8],
    },
    /// The server cannot speak the requested minor protocol version or options (the body:
    /// newest minor version, then the options it did not recognise).
    NegotiateProtocolVersion(&'a [u8]),
}

/// The values of a DataRow, borrowed: iterate with [`Row::values`] (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    count: u16,
    body: &'a [u8],
}

impl<'a> Row<'a> {
    /// How many values the row holds.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether the row holds no values.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The values in order, `None` for NULL.
    pub fn values(&self) -> RowValues<'a> {
        RowValues {
            c: Cursor::new(self.body),
            left: self.count,
        }
    }

    /// The values collected into a vector (allocates; for tests and convenience).
    pub fn to_vec(&self) -> Vec<Option<&'a [u8]>> {
        self.values().collect()
    }
}

/// Iterator over the values of a [`Row`].
#[derive(Debug, Clone)]
pub struct RowValues<'a> {
    c: Cursor<'a>,
    left: u16,
}

impl<'a> Iterator for RowValues<'a> {
    type Item = Option<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The row was validated when parsed, so these reads succeed.
        let n = self.c.u32_be()? as i32;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.c.take(n as usize)?))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.left), Some(usize::from(self.left)))
    }
}

impl ExactSizeIterator for RowValues<'_> {}

/// One column of a RowDescription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column<'a> {
    /// Column name.
    pub name: &'a [u8],
    /// Table OID (0 if not a table column).
    pub table_oid: u32,
    /// Attribute number in its table.
    pub attr: i16,
    /// Data type OID.
    pub type_oid: u32,
    /// Type size (negative: variable).
    pub type_size: i16,
    /// Type modifier.
    pub type_mod: i32,
    /// Format code: 0 text, 1 binary.
    pub format: i16,
}

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// A typed message split off a buffer: (type, body, bytes used).
type Frame<'a> = (u8, &'a [u8], usize);

/// Splits a typed message off the front of `buf`.
fn frame<'a>(buf: &'a [u8], limits: &Limits) -> Result<Status<Frame<'a>>, Error> {
    let mut c = Cursor::new(buf);
    let (Some(tag), Some(len)) = (c.u8(), c.u32_be()) else {
        return Ok(Status::Partial);
    };
    let len = len as usize;
    if len < 4 || len > limits.max_message {
        return Err(err(ErrorKind::BadLength(len), 1, tag));
    }
    match c.take(len - 4) {
        Some(body) => Ok(Status::Complete((tag, body, len + 1))),
        None => Ok(Status::Partial),
    }
}

/// Parses the first packet of a connection (no type byte): SSLRequest, GSSENCRequest,
/// CancelRequest or StartupMessage.
pub fn parse_startup<'a>(buf: &'a [u8], limits: &Limits) -> Result<Status<(Startup<'a>, usize)>, Error> {
    let mut c = Cursor::new(buf);
    let Some(len) = c.u32_be() else {
        return Ok(Status::Partial);
    };
    let len = len as usize;
    if len < 8 || len > limits.max_message.min(10_000) {
        return Err(err(ErrorKind::BadLength(len), 0, 0));
    }
    let Some(body) = c.take(len - 4) else {
        return Ok(Status::Partial);
    };
    let mut b = Cursor::new(body);
    let code = b.u32_be().ok_or(err(ErrorKind::Truncated, 4, 0))?;
    let msg = match code {
        SSL_REQUEST | GSSENC_REQUEST => {
            if !b.remaining().is_empty() {
                return Err(err(ErrorKind::TrailingBytes, 8, 0));
            }
            if code == SSL_REQUEST {
                Startup::SslRequest
            } else {
                Startup::GssEncRequest
            }
        }
        CANCEL_REQUEST => {
            let (Some(pid), Some(key)) = (b.u32_be(), b.u32_be()) else {
                return Err(err(ErrorKind::Truncated, 4 + b.position(), 0));
            };
            Startup::CancelRequest { pid, key }
        }
        v if v >> 16 == 3 => {
            let mut params = Vec::new();
            loop {
                let at = 4 + b.position();
                let key = b.cstr().ok_or(err(ErrorKind::Unterminated, at, 0))?;
                if key.is_empty() {
                    break;
                }
                let at = 4 + b.position();
                let value = b.cstr().ok_or(err(ErrorKind::Unterminated, at, 0))?;
                if params.len() >= limits.max_fields {
                    return Err(err(ErrorKind::TooManyFields(params.len() + 1), at, 0));
                }
                params.push((key, value));
            }
            Startup::Startup { version: v, params }
        }
        v => return Err(err(ErrorKind::UnsupportedProtocol(v), 4, 0)),
    };
    Ok(Status::Complete((msg, len)))
}

/// A body reader that turns "ran out" into a positioned error.
struct Body<'a> {
    c: Cursor<'a>,
    tag: u8,
}

impl<'a> Body<'a> {
    fn err(&self, kind: ErrorKind) -> Error {
        err(kind, 5 + self.c.position(), self.tag)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        self.c.u8().ok_or_else(|| self.err(ErrorKind::Truncated))
    }
    fn u16(&mut self) -> Result<u16, Error> {
        self.c
            .take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| self.err(ErrorKind::Truncated))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        self.c.u32_be().ok_or_else(|| self.err(ErrorKind::Truncated))
    }
    fn cstr(&mut self) -> Result<&'a [u8], Error> {
        let e = self.err(ErrorKind::Unterminated);
        self.c.cstr().ok_or(e)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let e = self.err(ErrorKind::Truncated);
        self.c.take(n).ok_or(e)
    }
    fn count(&mut self, limits: &Limits) -> Result<usize, Error> {
        let n = usize::from(self.u16()?);
        if n > limits.max_fields {
            return Err(self.err(ErrorKind::TooManyFields(n)));
        }
        Ok(n)
    }
    /// A length-prefixed value; -1 is NULL.
    fn value(&mut self) -> Result<Option<&'a [u8]>, Error> {
        let n = self.u32()? as i32;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return Err(self.err(ErrorKind::BadLength(n as usize)));
        }
        self.take(n as usize).map(Some)
    }
    fn rest(&mut self) -> &'a [u8] {
        let r = self.c.remaining();
        let _ = self.c.take(r.len());
        r
    }
    fn end(&self) -> Result<(), Error> {
        if self.c.remaining().is_empty() {
            Ok(())
        } else {
            Err(self.err(ErrorKind::TrailingBytes))
        }
    }
    fn fields(&mut self) -> Result<Vec<(u8, &'a [u8])>, Error> {
        let mut out = Vec::new();
        loop {
            let code = self.u8()?;
            if code == 0 {
                return Ok(out);
            }
            out.push((code, self.cstr()?));
        }
    }
}

/// Parses one message the client sends after startup.
pub fn parse_frontend<'a>(buf: &'a [u8], limits: &Limits) -> Result<Status<(Frontend<'a>, usize)>, Error> {
    let (tag, body, used) = match frame(buf, limits)? {
        Status::Complete(f) => f,
        Status::Partial => return Ok(Status::Partial),
    };
    let mut b = Body {
        c: Cursor::new(body),
        tag,
    };
    let msg = match tag {
        b'Q' => Frontend::Query(b.cstr()?),
        b'P' => {
            let name = b.cstr()?;
            let query = b.cstr()?;
            let n = b.count(limits)?;
            let param_types = (0..n).map(|_| b.u32()).collect::<Result<_, _>>()?;
            Frontend::Parse {
                name,
                query,
                param_types,
            }
        }
        b'B' => {
            let portal = b.cstr()?;
            let statement = b.cstr()?;
            let nf = b.count(limits)?;
            for _ in 0..nf {
                b.u16()?;
            }
            let np = b.count(limits)?;
            let params = (0..np).map(|_| b.value()).collect::<Result<_, _>>()?;
            let nr = b.count(limits)?;
            for _ in 0..nr {
                b.u16()?;
            }
            Frontend::Bind {
                portal,
                statement,
                params,
            }
        }
        b'D' => Frontend::Describe {
            kind: b.u8()?,
            name: b.cstr()?,
        },
        b'E' => Frontend::Execute {
            portal: b.cstr()?,
            max_rows: b.u32()?,
        },
        b'C' => Frontend::Close {
            kind: b.u8()?,
            name: b.cstr()?,
        },
        b'S' => Frontend::Sync,
        b'H' => Frontend::Flush,
        b'd' => Frontend::CopyData(b.rest()),
        b'c' => Frontend::CopyDone,
        b'f' => Frontend::CopyFail(b.cstr()?),
        b'p' => Frontend::Password(b.rest()),
        b'X' => Frontend::Terminate,
        _ => return Err(err(ErrorKind::UnknownType, 0, tag)),
    };
    b.end()?;
    Ok(Status::Complete((msg, used)))
}

/// Parses one message the server sends.
pub fn parse_backend<'a>(buf: &'a [u8], limits: &Limits) -> Result<Status<(Backend<'a>, usize)>, Error> {
    let (tag, body, used) = match frame(buf, limits)? {
        Status::Complete(f) => f,
        Status::Partial => return Ok(Status::Partial),
    };
    let mut b = Body {
        c: Cursor::new(body),
        tag,
    };
    let msg = match tag {
        b'R' => Backend::Authentication {
            code: b.u32()?,
            data: b.rest(),
        },
        b'S' => Backend::ParameterStatus {
            name: b.cstr()?,
            value: b.cstr()?,
        },
        b'K' => Backend::BackendKeyData {
            pid: b.u32()?,
            key: b.u32()?,
        },
        b'Z' => Backend::ReadyForQuery { status: b.u8()? },
        b'T' => {
            let n = b.count(limits)?;
            let mut cols = Vec::with_capacity(n);
            for _ in 0..n {
                cols.push(Column {
                    name: b.cstr()?,
                    table_oid: b.u32()?,
                    attr: b.u16()? as i16,
                    type_oid: b.u32()?,
                    type_size: b.u16()? as i16,
                    type_mod: b.u32()? as i32,
                    format: b.u16()? as i16,
                });
            }
            Backend::RowDescription(cols)
        }
        b'D' => {
            let n = b.count(limits)?;
            let start = b.c.position();
            for _ in 0..n {
                b.value()?;
            }
            Backend::DataRow(Row {
                count: n as u16,
                body: &body[start..b.c.position()],
            })
        }
        b'C' => Backend::CommandComplete(b.cstr()?),
        b'E' => Backend::ErrorResponse(b.fields()?),
        b'N' => Backend::NoticeResponse(b.fields()?),
        b'd' => Backend::CopyData(b.rest()),
        b'c' => Backend::CopyDone,
        b'G' => Backend::CopyInResponse(b.rest()),
        b'H' => Backend::CopyOutResponse(b.rest()),
        b'1' => Backend::ParseComplete,
        b'2' => Backend::BindComplete,
        b'3' => Backend::CloseComplete,
        b'n' => Backend::NoData,
        b't' => {
            let n = b.count(limits)?;
            Backend::ParameterDescription((0..n).map(|_| b.u32()).collect::<Result<_, _>>()?)
        }
        b'I' => Backend::EmptyQueryResponse,
        b's' => Backend::PortalSuspended,
        b'A' => Backend::NotificationResponse {
            pid: b.u32()?,
            channel: b.cstr()?,
            payload: b.cstr()?,
        },
        b'v' => Backend::NegotiateProtocolVersion(b.rest()),
        _ => return Err(err(ErrorKind::UnknownType, 0, tag)),
    };
    b.end()?;
    Ok(Status::Complete((msg, used)))
}

/// Writes a typed message: the tag, the length, then what `body` writes.
/// Encodes a message of type `tag` with `body` as it is (its length prefixed).
pub fn encode_message(tag: u8, body: &[u8], out: &mut Vec<u8>) {
    encode(tag, out, |o| o.extend_from_slice(body));
}

fn encode(tag: u8, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    out.push(tag);
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    body(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(out: &mut Vec<u8>, s: &[u8]) {
    // A NUL inside would end the field early on the client: it is dropped, not forwarded.
    out.extend(s.iter().copied().filter(|&b| b != 0));
    out.push(0);
}

/// Encodes an ErrorResponse (or, with `notice`, a NoticeResponse) from `(code, value)` fields.
pub fn encode_error(fields: &[(u8, &[u8])], notice: bool, out: &mut Vec<u8>) {
    encode(if notice { b'N' } else { b'E' }, out, |o| {
        for (code, value) in fields {
            o.push(*code);
            cstr(o, value);
        }
        o.push(0);
    });
}

/// Encodes a DataRow; `None` is NULL.
pub fn encode_data_row(values: &[Option<&[u8]>], out: &mut Vec<u8>) {
    encode_data_row_iter(values.iter().copied(), out);
}

/// Encodes a DataRow from an iterator of values (a [`RowValues`], possibly mapped to masked
/// values), without collecting them first.
pub fn encode_data_row_iter<'v>(values: impl ExactSizeIterator<Item = Option<&'v [u8]>>, out: &mut Vec<u8>) {
    encode(b'D', out, |o| {
        o.extend_from_slice(&(values.len() as u16).to_be_bytes());
        for v in values {
            match v {
                None => o.extend_from_slice(&(-1i32).to_be_bytes()),
                Some(v) => {
                    o.extend_from_slice(&(v.len() as u32).to_be_bytes());
                    o.extend_from_slice(v);
                }
            }
        }
    });
}

/// Encodes a RowDescription.
pub fn encode_row_description(columns: &[Column<'_>], out: &mut Vec<u8>) {
    encode(b'T', out, |o| {
        o.extend_from_slice(&(columns.len() as u16).to_be_bytes());
        for c in columns {
            cstr(o, c.name);
            o.extend_from_slice(&c.table_oid.to_be_bytes());
            o.extend_from_slice(&c.attr.to_be_bytes());
            o.extend_from_slice(&c.type_oid.to_be_bytes());
            o.extend_from_slice(&c.type_size.to_be_bytes());
            o.extend_from_slice(&c.type_mod.to_be_bytes());
            o.extend_from_slice(&c.format.to_be_bytes());
        }
    });
}

/// Encodes a ParameterStatus.
pub fn encode_parameter_status(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    encode(b'S', out, |o| {
        cstr(o, name);
        cstr(o, value);
    });
}

/// Encodes a NotificationResponse.
pub fn encode_notification(pid: u32, channel: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    encode(b'A', out, |o| {
        o.extend_from_slice(&pid.to_be_bytes());
        cstr(o, channel);
        cstr(o, payload);
    });
}

/// Encodes a CopyData message.
pub fn encode_copy_data(data: &[u8], out: &mut Vec<u8>) {
    encode(b'd', out, |o| o.extend_from_slice(data));
}

/// Encodes a CommandComplete with its tag (`SELECT 1`).
pub fn encode_command_complete(tag: &[u8], out: &mut Vec<u8>) {
    encode(b'C', out, |o| cstr(o, tag));
}

/// Encodes a ReadyForQuery with its transaction status (`I`, `T` or `E`).
pub fn encode_ready_for_query(status: u8, out: &mut Vec<u8>) {
    encode(b'Z', out, |o| o.push(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn startup_message_and_its_params() {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for s in ["user", "app", "database", "shop", ""] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        let mut buf = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        buf.extend_from_slice(&body);
        let Status::Complete((msg, used)) = parse_startup(&buf, &lim()).expect("valid") else {
            panic!("partial")
        };
        assert_eq!(used, buf.len());
        assert_eq!(msg.param("user"), Some(&b"app"[..]));
        assert_eq!(msg.param("database"), Some(&b"shop"[..]));
        for cut in 0..buf.len() {
            assert_eq!(parse_startup(&buf[..cut], &lim()), Ok(Status::Partial), "cut {cut}");
        }
    }

    #[test]
    fn ssl_and_cancel_requests() {
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(
            parse_startup(&ssl, &lim()),
            Ok(Status::Complete((Startup::SslRequest, 8)))
        );
        let mut cancel = vec![0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];
        cancel.extend_from_slice(&7u32.to_be_bytes());
        cancel.extend_from_slice(&9u32.to_be_bytes());
        assert_eq!(
            parse_startup(&cancel, &lim()),
            Ok(Status::Complete((Startup::CancelRequest { pid: 7, key: 9 }, 16)))
        );
        let bad = [0, 0, 0, 8, 0, 9, 0, 0];
        assert_eq!(
            parse_startup(&bad, &lim()).map_err(|e| e.kind()),
            Err(ErrorKind::UnsupportedProtocol(0x0009_0000))
        );
    }

    #[test]
    fn encoders_round_trip_through_the_parser() {
        let mut buf = Vec::new();
        let cols = [Column {
            name: b"api_key",
            table_oid: 16384,
            attr: 2,
            type_oid: 25,
            type_size: -1,
            type_mod: -1,
            format: 0,
        }];
        encode_row_description(&cols, &mut buf);
        encode_data_row(&[Some(b"x"), None, Some(b"")], &mut buf);
        encode_command_complete(b"SELECT 1", &mut buf);
        encode_error(
            &[(b'S', b"ERROR"), (b'C', b"42501"), (b'M', b"blocked by policy")],
            false,
            &mut buf,
        );
        encode_ready_for_query(b'I', &mut buf);
        let mut at = 0;
        let mut got = Vec::new();
        while at < buf.len() {
            let Status::Complete((m, used)) = parse_backend(&buf[at..], &lim()).expect("valid") else {
                panic!("partial at {at}")
            };
            got.push(m);
            at += used;
        }
        assert_eq!(got[0], Backend::RowDescription(cols.to_vec()));
        let Backend::DataRow(row) = &got[1] else {
            panic!("{:?}", got[1])
        };
        assert_eq!(row.to_vec(), vec![Some(&b"x"[..]), None, Some(&b""[..])]);
        assert_eq!(row.values().len(), 3);
        assert_eq!(got[2], Backend::CommandComplete(b"SELECT 1"));
        assert_eq!(
            got[3],
            Backend::ErrorResponse(vec![
                (b'S', &b"ERROR"[..]),
                (b'C', &b"42501"[..]),
                (b'M', &b"blocked by policy"[..])
            ])
        );
        assert_eq!(got[4], Backend::ReadyForQuery { status: b'I' });
        // Every prefix of a message is Partial, never an error.
        for cut in 0..buf.len() {
            let r = parse_backend(&buf[..cut], &lim());
            assert!(
                matches!(r, Ok(Status::Partial) | Ok(Status::Complete(_))),
                "cut {cut}: {r:?}"
            );
        }
    }

    #[test]
    fn extended_protocol_messages() {
        let mut buf = Vec::new();
        encode(b'P', &mut buf, |o| {
            cstr(o, b"s1");
            cstr(o, b"SELECT $1");
            o.extend_from_slice(&1u16.to_be_bytes());
            o.extend_from_slice(&25u32.to_be_bytes());
        });
        encode(b'B', &mut buf, |o| {
            cstr(o, b"");
            cstr(o, b"s1");
            o.extend_from_slice(&0u16.to_be_bytes());
            o.extend_from_slice(&2u16.to_be_bytes());
            o.extend_from_slice(&3u32.to_be_bytes());
            o.extend_from_slice(b"abc");
            o.extend_from_slice(&(-1i32).to_be_bytes());
            o.extend_from_slice(&0u16.to_be_bytes());
        });
        encode(b'E', &mut buf, |o| {
            cstr(o, b"");
            o.extend_from_slice(&0u32.to_be_bytes());
        });
        encode(b'S', &mut buf, |_| {});
        let mut at = 0;
        let mut got = Vec::new();
        while at < buf.len() {
            let Status::Complete((m, used)) = parse_frontend(&buf[at..], &lim()).expect("valid") else {
                panic!("partial")
            };
            got.push(m);
            at += used;
        }
        assert_eq!(
            got[0],
            Frontend::Parse {
                name: b"s1",
                query: b"SELECT $1",
                param_types: vec![25]
            }
        );
        assert_eq!(
            got[1],
            Frontend::Bind {
                portal: b"",
                statement: b"s1",
                params: vec![Some(&b"abc"[..]), None]
            }
        );
        assert_eq!(
            got[2],
            Frontend::Execute {
                portal: b"",
                max_rows: 0
            }
        );
        assert_eq!(got[3], Frontend::Sync);
    }

    #[test]
    fn malformed_messages_are_positioned_errors() {
        let too_big = [b'Q', 0x7f, 0xff, 0xff, 0xff];
        let e = parse_frontend(&too_big, &lim()).expect_err("limit");
        assert!(matches!(e.kind(), ErrorKind::BadLength(_)));
        assert_eq!(e.offset(), 1);
        let no_nul = [b'Q', 0, 0, 0, 7, b'a', b'b', b'c'];
        assert_eq!(
            parse_frontend(&no_nul, &lim()).map_err(|e| e.kind()),
            Err(ErrorKind::Unterminated)
        );
        let unknown = [b'~', 0, 0, 0, 4];
        let e = parse_backend(&unknown, &lim()).expect_err("unknown");
        assert_eq!(e.kind(), ErrorKind::UnknownType);
        assert!(e.to_string().contains("message '~'"), "{e}");
        let trailing = [b'Z', 0, 0, 0, 6, b'I', b'x'];
        assert_eq!(
            parse_backend(&trailing, &lim()).map_err(|e| e.kind()),
            Err(ErrorKind::TrailingBytes)
        );
        let many = Limits {
            max_fields: 1,
            ..Limits::default()
        };
        let mut row = Vec::new();
        encode_data_row(&[Some(b"a"), Some(b"b")], &mut row);
        assert!(matches!(
            parse_backend(&row, &many).map_err(|e| e.kind()),
            Err(ErrorKind::TooManyFields(2))
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 40) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                v.push((seed >> 24) as u8 % 12);
            }
            seed = seed.wrapping_add(1);
            let _ = parse_backend(&v, &lim());
            let _ = parse_frontend(&v, &lim());
            let _ = parse_startup(&v, &lim());
        }
    }
}
