//! MySQL / MariaDB client-server protocol: packet framing with sequence ids, the handshake and its
//! response, commands, and the text result set; encoders for ERR packets and text rows.
//!
//! Framing is incremental and zero-copy like the PostgreSQL parser: [`parse_packet`] returns
//! [`Status::Partial`] until a whole packet is buffered. Payloads of exactly 0xFFFFFF bytes
//! continue in the next packet ([`Packet::continues`]); callers that need a whole command join
//! them. The payload decoders then read one payload.
//!
//! ```
//! use sluice_protocols::mysql::{self, Command, Status};
//! let mut buf = Vec::new();
//! mysql::encode_packet(0, &[&[0x03], b"SELECT 1"], &mut buf);
//! let Status::Complete((packet, used)) = mysql::parse_packet(&buf, 1 << 20)? else { unreachable!() };
//! assert_eq!(used, buf.len());
//! assert_eq!(mysql::parse_command(packet.payload)?, Command::Query(b"SELECT 1"));
//! # Ok::<(), sluice_protocols::mysql::Error>(())
//! ```

use std::fmt;

use crate::Cursor;

pub use crate::postgres::Status;

/// Capability flags this parser reads.
pub mod caps {
    /// The client sends a database name in the handshake response.
    pub const CONNECT_WITH_DB: u32 = 0x0000_0008;
    /// 4.1 protocol.
    pub const PROTOCOL_41: u32 = 0x0000_0200;
    /// Auth response with a one-byte length.
    pub const SECURE_CONNECTION: u32 = 0x0000_8000;
    /// Auth plugin name in the handshake response.
    pub const PLUGIN_AUTH: u32 = 0x0008_0000;
    /// Connection attributes in the handshake response.
    pub const CONNECT_ATTRS: u32 = 0x0010_0000;
    /// Auth response with a length-encoded length.
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
    /// OK packets replace EOF packets.
    pub const DEPRECATE_EOF: u32 = 0x0100_0000;
}

/// Why a packet or payload could not be parsed.
pub type Error = crate::Error<ErrorKind>;

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The packet is larger than the configured maximum.
    TooLarge(usize),
    /// The payload ended before a field.
    Truncated,
    /// A string without its terminating NUL.
    Unterminated,
    /// A handshake that is not protocol version 10.
    UnsupportedProtocol(u8),
    /// An empty command packet.
    Empty,
    /// A length-encoded integer with an invalid first byte.
    BadLengthEncoding(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::TooLarge(n) => write!(f, "mysql packet of {n} bytes exceeds the limit"),
            ErrorKind::Truncated => write!(f, "mysql payload ends early at offset {}", self.offset),
            ErrorKind::Unterminated => write!(f, "mysql string without NUL at offset {}", self.offset),
            ErrorKind::UnsupportedProtocol(v) => write!(f, "mysql handshake protocol {v} is not 10"),
            ErrorKind::Empty => write!(f, "empty mysql command packet"),
            ErrorKind::BadLengthEncoding(b) => {
                write!(f, "bad length-encoded integer 0x{b:02x} at offset {}", self.offset)
            }
        }
    }
}

/// One packet: its sequence id and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Sequence id; each side increments it, a new command restarts at 0.
    pub seq: u8,
    /// The payload.
    pub payload: &'a [u8],
}

impl Packet<'_> {
    /// Whether the payload continues in the next packet (it is exactly 0xFFFFFF bytes).
    pub fn continues(&self) -> bool {
        self.payload.len() == 0xFF_FFFF
    }
}

/// Splits one packet off the front of `buf`.
pub fn parse_packet(buf: &[u8], max: usize) -> Result<Status<(Packet<'_>, usize)>, Error> {
    let mut c = Cursor::new(buf);
    let Some(h) = c.take(4) else { return Ok(Status::Partial) };
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    if len > max {
        return Err(Error::new(ErrorKind::TooLarge(len), 0));
    }
    match c.take(len) {
        Some(payload) => Ok(Status::Complete((Packet { seq: h[3], payload }, len + 4))),
        None => Ok(Status::Partial),
    }
}

struct Reader<'a> {
    c: Cursor<'a>,
}

impl<'a> Reader<'a> {
    fn new(p: &'a [u8]) -> Reader<'a> {
        Reader { c: Cursor::new(p) }
    }
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.c.position())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let e = self.err(ErrorKind::Truncated);
        self.c.take(n).ok_or(e)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn le(&mut self, n: usize) -> Result<u64, Error> {
        Ok(self.take(n)?.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b)))
    }
    fn cstr(&mut self) -> Result<&'a [u8], Error> {
        let e = self.err(ErrorKind::Unterminated);
        self.c.cstr().ok_or(e)
    }
    /// A length-encoded integer; `None` for 0xFB (NULL in a text row).
    fn lenenc(&mut self) -> Result<Option<u64>, Error> {
        let at = self.c.position();
        match self.u8()? {
            n @ 0..=0xFA => Ok(Some(u64::from(n))),
            0xFB => Ok(None),
            0xFC => self.le(2).map(Some),
            0xFD => self.le(3).map(Some),
            0xFE => self.le(8).map(Some),
            b => Err(Error::new(ErrorKind::BadLengthEncoding(b), at)),
        }
    }
    fn lenenc_str(&mut self) -> Result<Option<&'a [u8]>, Error> {
        match self.lenenc()? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| self.err(ErrorKind::Truncated))?;
                self.take(n).map(Some)
            }
        }
    }
    fn rest(&mut self) -> &'a [u8] {
        let r = self.c.remaining();
        let _ = self.c.take(r.len());
        r
    }
}

/// The server's first packet (protocol 10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake<'a> {
    /// Server version string.
    pub server_version: &'a [u8],
    /// Connection (thread) id.
    pub connection_id: u32,
    /// Server capability flags.
    pub capabilities: u32,
    /// Authentication plugin name, when sent.
    pub auth_plugin: Option<&'a [u8]>,
    /// The authentication data (the scramble): its first 8 bytes and the rest as sent (for
    /// `mysql_native_password`, 12 more and a NUL).
    pub auth_data: (&'a [u8], &'a [u8]),
}

/// Parses the server's initial handshake payload.
pub fn parse_handshake(payload: &[u8]) -> Result<Handshake<'_>, Error> {
    let mut r = Reader::new(payload);
    let version = r.u8()?;
    if version != 10 {
        return Err(Error::new(ErrorKind::UnsupportedProtocol(version), 0));
    }
    let server_version = r.cstr()?;
    let connection_id = r.le(4)? as u32;
    let data_1 = r.take(8)?; // auth-plugin-data part 1
    let mut data_2: &[u8] = b"";
    r.take(1)?; // filler
    let mut capabilities = r.le(2)? as u32;
    let mut auth_plugin = None;
    if !r.c.remaining().is_empty() {
        r.take(1)?; // character set
        r.take(2)?; // status flags
        capabilities |= (r.le(2)? as u32) << 16;
        let data_len = usize::from(r.u8()?);
        r.take(10)?; // reserved
        if capabilities & caps::SECURE_CONNECTION != 0 {
            data_2 = r.take(data_len.saturating_sub(8).max(13))?;
        }
        if capabilities & caps::PLUGIN_AUTH != 0 {
            auth_plugin = Some(r.c.cstr().unwrap_or_else(|| r.rest()));
        }
    }
    Ok(Handshake {
        server_version,
        connection_id,
        capabilities,
        auth_plugin,
        auth_data: (data_1, data_2),
    })
}

/// The client's handshake response (protocol 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse<'a> {
    /// Client capability flags.
    pub capabilities: u32,
    /// The user name.
    pub user: &'a [u8],
    /// The authentication response (a scrambled password, not the password).
    pub auth_response: &'a [u8],
    /// The initial database, when sent.
    pub database: Option<&'a [u8]>,
    /// The authentication plugin, when sent.
    pub auth_plugin: Option<&'a [u8]>,
}

/// Parses the client's handshake response payload (an SSLRequest is the same packet cut after
/// the 32-byte header: `user` is then empty).
pub fn parse_handshake_response(payload: &[u8]) -> Result<HandshakeResponse<'_>, Error> {
    let mut r = Reader::new(payload);
    let capabilities = r.le(4)? as u32;
    r.take(4 + 1 + 23)?; // max packet, charset, reserved
    if r.c.remaining().is_empty() {
        return Ok(HandshakeResponse {
            capabilities,
            user: b"",
            auth_response: b"",
            database: None,
            auth_plugin: None,
        });
    }
    let user = r.cstr()?;
    let auth_response = if capabilities & caps::PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
        r.lenenc_str()?.unwrap_or_default()
    } else if capabilities & caps::SECURE_CONNECTION != 0 {
        let n = usize::from(r.u8()?);
        r.take(n)?
    } else {
        r.cstr()?
    };
    let database = if capabilities & caps::CONNECT_WITH_DB != 0 && !r.c.remaining().is_empty() {
        Some(r.cstr()?)
    } else {
        None
    };
    let auth_plugin = if capabilities & caps::PLUGIN_AUTH != 0 && !r.c.remaining().is_empty() {
        Some(r.cstr()?)
    } else {
        None
    };
    Ok(HandshakeResponse {
        capabilities,
        user,
        auth_response,
        database,
        auth_plugin,
    })
}

/// A command from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// COM_QUIT.
    Quit,
    /// COM_INIT_DB: switch database.
    InitDb(&'a [u8]),
    /// COM_QUERY: a text query.
    Query(&'a [u8]),
    /// COM_STMT_PREPARE: prepare a statement.
    StmtPrepare(&'a [u8]),
    /// COM_STMT_EXECUTE: execute a prepared statement (parameters left encoded: their types are
    /// known only from the prepare response).
    StmtExecute {
        /// The statement id from the prepare response.
        statement_id: u32,
        /// Cursor flags.
        flags: u8,
        /// The rest of the payload: iteration count, NULL bitmap, types and values.
        params: &'a [u8],
    },
    /// COM_STMT_CLOSE.
    StmtClose(u32),
    /// COM_PING.
    Ping,
    /// Any other command: its code and payload.
    Other(u8, &'a [u8]),
}

/// Parses a command payload.
pub fn parse_command(payload: &[u8]) -> Result<Command<'_>, Error> {
    let mut r = Reader::new(payload);
    let code = r.u8().map_err(|_| Error::new(ErrorKind::Empty, 0))?;
    Ok(match code {
        0x01 => Command::Quit,
        0x02 => Command::InitDb(r.rest()),
        0x03 => Command::Query(r.rest()),
        0x0e => Command::Ping,
        0x16 => Command::StmtPrepare(r.rest()),
        0x17 => Command::StmtExecute {
            statement_id: r.le(4)? as u32,
            flags: r.u8()?,
            params: r.rest(),
        },
        0x19 => Command::StmtClose(r.le(4)? as u32),
        c => Command::Other(c, r.rest()),
    })
}

/// What a response packet in a command phase is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Response<'a> {
    /// OK: affected rows and last insert id.
    Ok {
        /// Rows affected.
        affected_rows: u64,
        /// Last insert id.
        last_insert_id: u64,
    },
    /// ERR: code, SQLSTATE and message.
    Err {
        /// Error code.
        code: u16,
        /// Five-character SQLSTATE, when sent.
        sql_state: Option<&'a [u8]>,
        /// The message.
        message: &'a [u8],
    },
    /// EOF (without CLIENT_DEPRECATE_EOF).
    Eof,
    /// A result set starts with this many columns.
    ColumnCount(u64),
}

/// Parses the first packet of a command's response.
pub fn parse_response(payload: &[u8]) -> Result<Response<'_>, Error> {
    let mut r = Reader::new(payload);
    match payload.first() {
        None => Err(Error::new(ErrorKind::Empty, 0)),
        Some(0x00) if payload.len() >= 7 => {
            r.u8()?;
            let affected_rows = r.lenenc()?.unwrap_or(0);
            let last_insert_id = r.lenenc()?.unwrap_or(0);
            Ok(Response::Ok {
                affected_rows,
                last_insert_id,
            })
        }
        Some(0xFE) if payload.len() < 9 => Ok(Response::Eof),
        Some(0xFE) => {
            r.u8()?;
            let affected_rows = r.lenenc()?.unwrap_or(0);
            let last_insert_id = r.lenenc()?.unwrap_or(0);
            Ok(Response::Ok {
                affected_rows,
                last_insert_id,
            })
        }
        Some(0xFF) => {
            r.u8()?;
            let code = r.le(2)? as u16;
            let sql_state = if r.c.remaining().first() == Some(&b'#') {
                r.take(1)?;
                Some(r.take(5)?)
            } else {
                None
            };
            Ok(Response::Err {
                code,
                sql_state,
                message: r.rest(),
            })
        }
        Some(_) => Ok(Response::ColumnCount(r.lenenc()?.unwrap_or(0))),
    }
}

/// A column definition (protocol 4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDefinition<'a> {
    /// Catalog (always `def`).
    pub catalog: &'a [u8],
    /// Schema.
    pub schema: &'a [u8],
    /// Table alias.
    pub table: &'a [u8],
    /// Table name.
    pub org_table: &'a [u8],
    /// Column alias.
    pub name: &'a [u8],
    /// Column name.
    pub org_name: &'a [u8],
    /// Column type code.
    pub column_type: u8,
    /// The fixed-length fields after the names (character set, length, type, flags, decimals)
    /// and anything after them, as sent.
    pub fixed: &'a [u8],
}

impl<'a> ColumnDefinition<'a> {
    /// The six names in wire order: catalog, schema, table, org_table, name, org_name.
    pub fn names(&self) -> [&'a [u8]; 6] {
        [
            self.catalog,
            self.schema,
            self.table,
            self.org_table,
            self.name,
            self.org_name,
        ]
    }
}

/// Parses a column definition payload.
pub fn parse_column_definition(payload: &[u8]) -> Result<ColumnDefinition<'_>, Error> {
    let mut r = Reader::new(payload);
    let mut s = || -> Result<&[u8], Error> { Ok(r.lenenc_str()?.unwrap_or_default()) };
    let catalog = s()?;
    let schema = s()?;
    let table = s()?;
    let org_table = s()?;
    let name = s()?;
    let org_name = s()?;
    let fixed = r.rest();
    let mut f = Reader::new(fixed);
    f.lenenc()?; // length of the fixed fields, 0x0c
    f.take(2 + 4)?; // character set, column length
    let column_type = f.u8()?;
    Ok(ColumnDefinition {
        catalog,
        schema,
        table,
        org_table,
        name,
        org_name,
        column_type,
        fixed,
    })
}

/// Encodes a column definition with sequence id `seq`, with `names` (catalog, schema, table,
/// org_table, name, org_name) in place of the definition's own.
pub fn encode_column_definition(seq: u8, names: [&[u8]; 6], def: &ColumnDefinition<'_>, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(64);
    for n in names {
        lenenc_int(n.len() as u64, &mut payload);
        payload.extend_from_slice(n);
    }
    payload.extend_from_slice(def.fixed);
    encode_packet(seq, &[&payload], out);
}

/// Parses a text-protocol row: one value per column, `None` for NULL.
pub fn parse_text_row(payload: &[u8], columns: usize) -> Result<Vec<Option<&[u8]>>, Error> {
    let mut r = Reader::new(payload);
    (0..columns).map(|_| r.lenenc_str()).collect()
}

/// One value of a binary-protocol row (the reply to `COM_STMT_EXECUTE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryValue<'a> {
    /// NULL (from the row's NULL bitmap).
    Null,
    /// A length-encoded value: strings, blobs, JSON, decimals, enums, sets, bits, geometry.
    Text(&'a [u8]),
    /// A fixed-width or length-prefixed binary value (integers, floats, dates, times), raw.
    Raw(&'a [u8]),
}

/// Parses a binary-protocol row given the column type codes from the column definitions.
pub fn parse_binary_row<'a>(payload: &'a [u8], types: &[u8]) -> Result<Vec<BinaryValue<'a>>, Error> {
    let mut r = Reader::new(payload);
    if r.u8()? != 0x00 {
        return Err(Error::new(ErrorKind::Truncated, 0));
    }
    let bitmap = r.take((types.len() + 7 + 2) / 8)?;
    let mut out = Vec::with_capacity(types.len());
    for (i, &t) in types.iter().enumerate() {
        let bit = i + 2;
        if bitmap[bit / 8] & (1 << (bit % 8)) != 0 {
            out.push(BinaryValue::Null);
            continue;
        }
        let v = match t {
            0x06 => BinaryValue::Raw(&[]),
            0x01 => BinaryValue::Raw(r.take(1)?),
            0x02 | 0x0d => BinaryValue::Raw(r.take(2)?),
            0x03 | 0x09 | 0x04 => BinaryValue::Raw(r.take(4)?),
            0x08 | 0x05 => BinaryValue::Raw(r.take(8)?),
            0x07 | 0x0a | 0x0b | 0x0c => {
                let at = r.c.position();
                let n = usize::from(r.u8()?);
                r.take(n)?;
                BinaryValue::Raw(&payload[at..at + 1 + n])
            }
            _ => BinaryValue::Text(r.lenenc_str()?.unwrap_or_default()),
        };
        out.push(v);
    }
    Ok(out)
}

/// Encodes a binary-protocol row with sequence id `seq`.
pub fn encode_binary_row(seq: u8, values: &[BinaryValue<'_>], out: &mut Vec<u8>) {
    let mut payload = vec![0x00];
    let mut bitmap = vec![0u8; (values.len() + 7 + 2) / 8];
    for (i, v) in values.iter().enumerate() {
        if matches!(v, BinaryValue::Null) {
            bitmap[(i + 2) / 8] |= 1 << ((i + 2) % 8);
        }
    }
    payload.extend_from_slice(&bitmap);
    for v in values {
        match v {
            BinaryValue::Null => {}
            BinaryValue::Raw(b) => payload.extend_from_slice(b),
            BinaryValue::Text(b) => {
                lenenc_int(b.len() as u64, &mut payload);
                payload.extend_from_slice(b);
            }
        }
    }
    encode_packet(seq, &[&payload], out);
}

/// Writes a packet: the 3-byte length, the sequence id, then the parts of the payload.
pub fn encode_packet(seq: u8, parts: &[&[u8]], out: &mut Vec<u8>) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
    out.push(seq);
    for p in parts {
        out.extend_from_slice(p);
    }
}

fn lenenc_int(n: u64, out: &mut Vec<u8>) {
    match n {
        0..=0xFA => out.push(n as u8),
        0xFB..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Encodes an ERR packet with sequence id `seq` (protocol 4.1: `#` and the SQLSTATE).
pub fn encode_err(seq: u8, code: u16, sql_state: &[u8; 5], message: &[u8], out: &mut Vec<u8>) {
    let mut payload = vec![0xFF];
    payload.extend_from_slice(&code.to_le_bytes());
    payload.push(b'#');
    payload.extend_from_slice(sql_state);
    payload.extend_from_slice(message);
    encode_packet(seq, &[&payload], out);
}

/// Encodes a text-protocol row with sequence id `seq`; `None` is NULL.
pub fn encode_text_row(seq: u8, values: &[Option<&[u8]>], out: &mut Vec<u8>) {
    let mut payload = Vec::new();
    for v in values {
        match v {
            None => payload.push(0xFB),
            Some(v) => {
                lenenc_int(v.len() as u64, &mut payload);
                payload.extend_from_slice(v);
            }
        }
    }
    encode_packet(seq, &[&payload], out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_rows_round_trip() {
        // id INT, name VARCHAR, note TEXT (NULL), created DATETIME
        let types = [0x03, 0x0f, 0xfc, 0x0c];
        let values = [
            BinaryValue::Raw(&[7, 0, 0, 0]),
            BinaryValue::Text(b"alice"),
            BinaryValue::Null,
            BinaryValue::Raw(&[4, 0xea, 0x07, 11, 26]),
        ];
        let mut buf = Vec::new();
        encode_binary_row(3, &values, &mut buf);
        let Status::Complete((p, _)) = parse_packet(&buf, 1 << 20).expect("packet") else {
            panic!("partial")
        };
        assert_eq!(p.seq, 3);
        assert_eq!(parse_binary_row(p.payload, &types).expect("row"), values);
        assert!(parse_binary_row(&p.payload[..p.payload.len() - 1], &types).is_err());
    }

    #[test]
    fn framing_is_incremental() {
        let mut buf = Vec::new();
        encode_packet(3, &[&[0x03], b"SELECT 1"], &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(parse_packet(&buf[..cut], 1 << 20), Ok(Status::Partial));
        }
        let Ok(Status::Complete((p, used))) = parse_packet(&buf, 1 << 20) else {
            panic!()
        };
        assert_eq!((p.seq, used, p.continues()), (3, buf.len(), false));
        assert_eq!(parse_packet(&buf, 4).map_err(|e| e.kind()), Err(ErrorKind::TooLarge(9)));
    }

    #[test]
    fn handshake_and_response() {
        let mut hs = vec![10];
        hs.extend_from_slice(b"11.4.2-MariaDB\0");
        hs.extend_from_slice(&42u32.to_le_bytes());
        hs.extend_from_slice(b"abcdefgh\0");
        let cap: u32 = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH | caps::CONNECT_WITH_DB;
        hs.extend_from_slice(&(cap as u16).to_le_bytes());
        hs.push(45);
        hs.extend_from_slice(&2u16.to_le_bytes());
        hs.extend_from_slice(&((cap >> 16) as u16).to_le_bytes());
        hs.push(21);
        hs.extend_from_slice(&[0; 10]);
        hs.extend_from_slice(b"ijklmnopqrst\0");
        hs.extend_from_slice(b"mysql_native_password\0");
        let h = parse_handshake(&hs).expect("handshake");
        assert_eq!(h.server_version, b"11.4.2-MariaDB");
        assert_eq!(h.connection_id, 42);
        assert_eq!(h.auth_plugin, Some(&b"mysql_native_password"[..]));

        let mut resp = cap.to_le_bytes().to_vec();
        resp.extend_from_slice(&(1u32 << 24).to_le_bytes());
        resp.push(45);
        resp.extend_from_slice(&[0; 23]);
        resp.extend_from_slice(b"app\0");
        resp.push(20);
        resp.extend_from_slice(&[7; 20]);
        resp.extend_from_slice(b"shop\0mysql_native_password\0");
        let r = parse_handshake_response(&resp).expect("response");
        assert_eq!((r.user, r.database), (&b"app"[..], Some(&b"shop"[..])));
        assert_eq!(r.auth_response.len(), 20);
    }

    #[test]
    fn commands_and_responses() {
        assert_eq!(parse_command(b"\x03SELECT 1"), Ok(Command::Query(b"SELECT 1")));
        assert_eq!(parse_command(b"\x02shop"), Ok(Command::InitDb(b"shop")));
        assert_eq!(parse_command(b"\x01"), Ok(Command::Quit));
        assert_eq!(
            parse_command(b"\x17\x05\x00\x00\x00\x00\x01\x00\x00\x00"),
            Ok(Command::StmtExecute {
                statement_id: 5,
                flags: 0,
                params: b"\x01\x00\x00\x00"
            })
        );
        assert_eq!(parse_command(b"").map_err(|e| e.kind()), Err(ErrorKind::Empty));
        assert_eq!(
            parse_response(b"\x00\x01\x00\x02\x00\x00\x00"),
            Ok(Response::Ok {
                affected_rows: 1,
                last_insert_id: 0
            })
        );
        assert_eq!(parse_response(b"\xfe\x00\x00\x02\x00"), Ok(Response::Eof));
        assert_eq!(parse_response(b"\x03"), Ok(Response::ColumnCount(3)));
    }

    #[test]
    fn err_and_rows_round_trip() {
        let mut buf = Vec::new();
        encode_err(1, 1142, b"42000", b"blocked by policy", &mut buf);
        let Ok(Status::Complete((p, _))) = parse_packet(&buf, 1 << 20) else {
            panic!()
        };
        assert_eq!(p.seq, 1);
        assert_eq!(
            parse_response(p.payload),
            Ok(Response::Err {
                code: 1142,
                sql_state: Some(b"42000"),
                message: b"blocked by policy"
            })
        );
        let long = vec![b'x'; 300];
        let mut buf = Vec::new();
        encode_text_row(4, &[Some(b"gitlab"), None, Some(&long), Some(b"")], &mut buf);
        let Ok(Status::Complete((p, _))) = parse_packet(&buf, 1 << 20) else {
            panic!()
        };
        assert_eq!(
            parse_text_row(p.payload, 4),
            Ok(vec![Some(&b"gitlab"[..]), None, Some(&long[..]), Some(&b""[..])])
        );
        assert_eq!(
            parse_text_row(p.payload, 5).map_err(|e| e.kind()),
            Err(ErrorKind::Truncated)
        );
    }

    #[test]
    fn column_definition() {
        let mut p = Vec::new();
        for s in [&b"def"[..], b"shop", b"creds", b"creds", b"api_key", b"api_key"] {
            lenenc_int(s.len() as u64, &mut p);
            p.extend_from_slice(s);
        }
        p.push(0x0c);
        p.extend_from_slice(&[45, 0, 0, 1, 0, 0, 253, 0, 0, 0, 0, 0]);
        let c = parse_column_definition(&p).expect("column");
        assert_eq!(
            (c.schema, c.table, c.name, c.column_type),
            (&b"shop"[..], &b"creds"[..], &b"api_key"[..], 253)
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            let mut v = Vec::new();
            for _ in 0..(seed % 48) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                v.push(if seed & 3 == 0 {
                    0xFB + (seed >> 8) as u8 % 5
                } else {
                    (seed >> 16) as u8 % 16
                });
            }
            seed = seed.wrapping_add(1);
            let _ = parse_packet(&v, 1 << 20);
            let _ = parse_handshake(&v);
            let _ = parse_handshake_response(&v);
            let _ = parse_command(&v);
            let _ = parse_response(&v);
            let _ = parse_column_definition(&v);
            let _ = parse_text_row(&v, 3);
        }
    }
}
