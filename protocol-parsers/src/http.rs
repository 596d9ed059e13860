//! HTTP/1.1 messages: heads through [`httparse`] (not rewritten here), the body framing they
//! imply, an incremental chunked-body decoder and the chunked encoder, with limits.
//!
//! ```
//! use sluice_protocols::http::{self, BodyKind, Limits, Status};
//! let buf = b"POST /v1/items HTTP/1.1\r\nHost: api.example.org\r\nContent-Length: 2\r\n\r\n{}";
//! let mut headers = [http::EMPTY_HEADER; 32];
//! let Status::Complete((req, used)) = http::parse_request(buf, &mut headers, &Limits::default())? else { unreachable!() };
//! assert_eq!((req.method, req.path), ("POST", "/v1/items"));
//! assert_eq!(req.header("host"), Some(&b"api.example.org"[..]));
//! assert_eq!(http::request_body(&req)?, BodyKind::ContentLength(2));
//! assert_eq!(&buf[used..], b"{}");
//! # Ok::<(), sluice_protocols::http::Error>(())
//! ```

use std::fmt;

pub use crate::postgres::Status;
pub use httparse::{EMPTY_HEADER, Header};

/// Limits applied while parsing.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The longest head (request or status line and headers), in bytes (default 64 KiB).
    pub max_head: usize,
    /// The longest chunk-size line, extensions included (default 1 KiB).
    pub max_chunk_line: usize,
    /// The largest trailer section (default 16 KiB).
    pub max_trailers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head: 64 * 1024,
            max_chunk_line: 1024,
            max_trailers: 16 * 1024,
        }
    }
}

/// Why a message could not be parsed.
pub type Error = crate::Error<ErrorKind>;

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// httparse rejected the head (its reason is the error's detail and source).
    Head,
    /// The head is longer than [`Limits::max_head`].
    HeadTooLarge,
    /// More headers than the storage the caller gave.
    TooManyHeaders,
    /// A Content-Length that is not a number, or two that disagree.
    BadContentLength,
    /// A Transfer-Encoding other than `chunked` last, or chunked with Content-Length.
    BadTransferEncoding,
    /// A malformed chunk-size line or chunk terminator.
    BadChunk,
    /// A chunk-size line or trailer section over its limit.
    ChunkTooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = self.offset();
        match self.kind() {
            ErrorKind::Head => write!(f, "invalid HTTP head: {}", self.detail().unwrap_or("rejected")),
            ErrorKind::HeadTooLarge => write!(f, "HTTP head exceeds the size limit"),
            ErrorKind::TooManyHeaders => write!(f, "too many HTTP headers"),
            ErrorKind::BadContentLength => write!(f, "invalid or conflicting Content-Length"),
            ErrorKind::BadTransferEncoding => write!(f, "unsupported Transfer-Encoding"),
            ErrorKind::BadChunk => write!(f, "malformed chunk at offset {offset}"),
            ErrorKind::ChunkTooLarge => write!(f, "chunk line or trailers exceed the limit at offset {offset}"),
        }
    }
}

/// A request head, borrowing the buffer and the caller's header storage.
#[derive(Debug)]
pub struct Request<'h, 'b> {
    /// The method (`GET`, `POST`, …).
    pub method: &'b str,
    /// The request target as sent (origin form `/path?q`, or absolute form for proxies).
    pub path: &'b str,
    /// The minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// The headers, in order.
    pub headers: &'h [Header<'b>],
}

/// A response head.
#[derive(Debug)]
pub struct Response<'h, 'b> {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: &'b str,
    /// The minor version.
    pub version: u8,
    /// The headers, in order.
    pub headers: &'h [Header<'b>],
}

fn find<'b>(headers: &[Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

impl<'b> Request<'_, 'b> {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        find(self.headers, name)
    }
}

impl<'b> Response<'_, 'b> {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'b [u8]> {
        find(self.headers, name)
    }
}

fn head_error(e: httparse::Error, buf_len: usize, limits: &Limits) -> Error {
    if matches!(e, httparse::Error::TooManyHeaders) {
        return Error::new(ErrorKind::TooManyHeaders, 0);
    }
    if buf_len > limits.max_head {
        return Error::new(ErrorKind::HeadTooLarge, limits.max_head);
    }
    Error::new(ErrorKind::Head, 0).with_source(e)
}

/// Parses a request head at the start of `buf`, with `headers` as storage. Returns the head and
/// its length; the body (if any) follows.
pub fn parse_request<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Status<(Request<'h, 'b>, usize)>, Error> {
    let mut req = httparse::Request::new(headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => {
            Err(Error::new(ErrorKind::HeadTooLarge, limits.max_head))
        }
        Ok(httparse::Status::Complete(n)) => Ok(Status::Complete((
            Request {
                method: req.method.unwrap_or_default(),
                path: req.path.unwrap_or_default(),
                version: req.version.unwrap_or(1),
                headers: req.headers,
            },
            n,
        ))),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            Err(Error::new(ErrorKind::HeadTooLarge, limits.max_head))
        }
        Ok(httparse::Status::Partial) => Ok(Status::Partial),
        Err(e) => Err(head_error(e, buf.len(), limits)),
    }
}

/// Parses a response head at the start of `buf`.
pub fn parse_response<'h, 'b>(
    buf: &'b [u8],
    headers: &'h mut [Header<'b>],
    limits: &Limits,
) -> Result<Status<(Response<'h, 'b>, usize)>, Error> {
    let mut resp = httparse::Response::new(headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n > limits.max_head => {
            Err(Error::new(ErrorKind::HeadTooLarge, limits.max_head))
        }
        Ok(httparse::Status::Complete(n)) => Ok(Status::Complete((
            Response {
                status: resp.code.unwrap_or_default(),
                reason: resp.reason.unwrap_or_default(),
                version: resp.version.unwrap_or(1),
                headers: resp.headers,
            },
            n,
        ))),
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            Err(Error::new(ErrorKind::HeadTooLarge, limits.max_head))
        }
        Ok(httparse::Status::Partial) => Ok(Status::Partial),
        Err(e) => Err(head_error(e, buf.len(), limits)),
    }
}

/// How a message's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// Exactly this many bytes.
    ContentLength(u64),
    /// Chunked transfer coding: use [`ChunkedDecoder`].
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// What the headers say about the body.
enum Framing {
    /// Transfer-Encoding with `chunked` last.
    Chunked,
    /// Transfer-Encoding without `chunked` last.
    NotChunked,
    /// Content-Length.
    Length(u64),
    /// Neither header.
    Absent,
}

fn framing(headers: &[Header<'_>]) -> Result<Framing, Error> {
    let mut chunked = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
        chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
    }
    let mut length: Option<u64> = None;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case("content-length")) {
        for part in h.value.split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
                return Err(Error::new(ErrorKind::BadContentLength, 0));
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Error::new(ErrorKind::BadContentLength, 0))?;
            if length.is_some_and(|l| l != n) {
                return Err(Error::new(ErrorKind::BadContentLength, 0));
            }
            length = Some(n);
        }
    }
    match (chunked, length) {
        // Both present is a request-smuggling vector: refuse rather than guess.
        (Some(_), Some(_)) => Err(Error::new(ErrorKind::BadTransferEncoding, 0)),
        (Some(true), None) => Ok(Framing::Chunked),
        (Some(false), None) => Ok(Framing::NotChunked),
        (None, Some(n)) => Ok(Framing::Length(n)),
        (None, None) => Ok(Framing::Absent),
    }
}

/// The body framing of a request. A request whose last transfer coding is not chunked cannot
/// be delimited and is an error.
pub fn request_body(req: &Request<'_, '_>) -> Result<BodyKind, Error> {
    match framing(req.headers)? {
        Framing::Chunked => Ok(BodyKind::Chunked),
        Framing::NotChunked => Err(Error::new(ErrorKind::BadTransferEncoding, 0)),
        Framing::Length(0) | Framing::Absent => Ok(BodyKind::None),
        Framing::Length(n) => Ok(BodyKind::ContentLength(n)),
    }
}

/// The body framing of a response to a request with `method`.
pub fn response_body(resp: &Response<'_, '_>, method: &str) -> Result<BodyKind, Error> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&resp.status)
        || resp.status == 204
        || resp.status == 304
    {
        return Ok(BodyKind::None);
    }
    if method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&resp.status) {
        return Ok(BodyKind::None);
    }
    match framing(resp.headers)? {
        Framing::Chunked => Ok(BodyKind::Chunked),
        Framing::NotChunked | Framing::Absent => Ok(BodyKind::UntilClose),
        Framing::Length(0) => Ok(BodyKind::None),
        Framing::Length(n) => Ok(BodyKind::ContentLength(n)),
    }
}

/// A piece of a chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk<'b> {
    /// Body bytes.
    Data(&'b [u8]),
    /// The body ended; the raw trailer section (header lines, without the final empty line).
    End {
        /// Trailer header lines, possibly empty.
        trailers: &'b [u8],
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Incremental decoder of the chunked transfer coding. Feed it the bytes after the head; each
/// call returns a [`Chunk`] and how many bytes it used, or `Partial`.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    limits: Limits,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body.
    pub fn new(limits: Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            limits,
        }
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes the next piece from `buf`. Data chunks may be returned in several pieces when
    /// `buf` holds part of one.
    pub fn next<'b>(&mut self, buf: &'b [u8]) -> Result<Status<(Chunk<'b>, usize)>, Error> {
        let mut used = 0;
        loop {
            let rest = &buf[used..];
            match self.state {
                State::Done => return Ok(Status::Complete((Chunk::End { trailers: &[] }, used))),
                State::Size => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        if rest.len() > self.limits.max_chunk_line {
                            return Err(Error::new(ErrorKind::ChunkTooLarge, used));
                        }
                        return Ok(progress(used));
                    };
                    if nl > self.limits.max_chunk_line {
                        return Err(Error::new(ErrorKind::ChunkTooLarge, used));
                    }
                    let line = rest[..nl]
                        .strip_suffix(b"\r")
                        .ok_or(Error::new(ErrorKind::BadChunk, used + nl))?;
                    let hex = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
                    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Error::new(ErrorKind::BadChunk, used));
                    }
                    let size = hex.iter().fold(0u64, |acc, &b| {
                        acc << 4 | u64::from((b as char).to_digit(16).unwrap_or(0))
                    });
                    used += nl + 1;
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                }
                State::Data(left) => {
                    if rest.is_empty() {
                        return Ok(progress(used));
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(rest.len());
                    let remaining = left - n as u64;
                    self.state = if remaining == 0 {
                        State::DataEnd
                    } else {
                        State::Data(remaining)
                    };
                    return Ok(Status::Complete((Chunk::Data(&rest[..n]), used + n)));
                }
                State::DataEnd => {
                    if rest.len() < 2 {
                        return Ok(progress(used));
                    }
                    if &rest[..2] != b"\r\n" {
                        return Err(Error::new(ErrorKind::BadChunk, used));
                    }
                    used += 2;
                    self.state = State::Size;
                }
                State::Trailers => {
                    // Trailer lines end with an empty line.
                    if rest.starts_with(b"\r\n") {
                        self.state = State::Done;
                        return Ok(Status::Complete((Chunk::End { trailers: &[] }, used + 2)));
                    }
                    let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
                        if rest.len() > self.limits.max_trailers {
                            return Err(Error::new(ErrorKind::ChunkTooLarge, used));
                        }
                        return Ok(progress(used));
                    };
                    if end > self.limits.max_trailers {
                        return Err(Error::new(ErrorKind::ChunkTooLarge, used));
                    }
                    self.state = State::Done;
                    return Ok(Status::Complete((
                        Chunk::End {
                            trailers: &rest[..end + 2],
                        },
                        used + end + 4,
                    )));
                }
            }
        }
    }
}

/// Out of input: `Partial`, or, when framing bytes were consumed, an empty data piece so that
/// the caller advances past them.
fn progress<'b>(used: usize) -> Status<(Chunk<'b>, usize)> {
    if used == 0 {
        Status::Partial
    } else {
        Status::Complete((Chunk::Data(&[]), used))
    }
}

/// Appends one chunk (size line, data, CRLF); an empty `data` writes nothing.
pub fn encode_chunk(data: &[u8], out: &mut Vec<u8>) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the last chunk and the end of the (empty) trailer section.
pub fn encode_last_chunk(out: &mut Vec<u8>) {
    out.extend_from_slice(b"0\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(body: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>, usize), Error> {
        let mut dec = ChunkedDecoder::new(Limits::default());
        let (mut data, mut trailers, mut at) = (Vec::new(), Vec::new(), 0);
        let mut avail = step.min(body.len());
        loop {
            match dec.next(&body[at..avail])? {
                Status::Complete((Chunk::Data(d), used)) => {
                    data.extend_from_slice(d);
                    at += used;
                }
                Status::Complete((Chunk::End { trailers: t }, used)) => {
                    trailers.extend_from_slice(t);
                    at += used;
                    return Ok((data, trailers, at));
                }
                Status::Partial => {
                    assert!(avail < body.len(), "decoder wants more than the whole body");
                    avail = (avail + step).min(body.len());
                }
            }
        }
    }

    #[test]
    fn pipelined_requests_and_their_bodies() {
        let buf = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcDELETE /c HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut at = 0;
        let mut seen = Vec::new();
        while at < buf.len() {
            let mut h = [EMPTY_HEADER; 16];
            let Status::Complete((req, used)) = parse_request(&buf[at..], &mut h, &Limits::default()).expect("valid")
            else {
                panic!()
            };
            let body = match request_body(&req).expect("framing") {
                BodyKind::ContentLength(n) => n as usize,
                BodyKind::None => 0,
                other => panic!("{other:?}"),
            };
            seen.push((req.method.to_string(), req.path.to_string(), body));
            at += used + body;
        }
        assert_eq!(
            seen,
            vec![
                ("GET".into(), "/a".into(), 0),
                ("POST".into(), "/b".into(), 3),
                ("DELETE".into(), "/c".into(), 0)
            ]
        );
    }

    #[test]
    fn partial_heads_and_limits() {
        let buf = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        for cut in 0..buf.len() {
            let mut h = [EMPTY_HEADER; 4];
            assert!(
                matches!(
                    parse_request(&buf[..cut], &mut h, &Limits::default()),
                    Ok(Status::Partial)
                ),
                "cut {cut}"
            );
        }
        let mut h = [EMPTY_HEADER; 1];
        let two = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert_eq!(
            parse_request(two, &mut h, &Limits::default())
                .map(|_| ())
                .map_err(|e| e.kind()),
            Err(ErrorKind::TooManyHeaders)
        );
        let mut h = [EMPTY_HEADER; 4];
        let small = Limits {
            max_head: 10,
            ..Limits::default()
        };
        assert_eq!(
            parse_request(buf, &mut h, &small).map(|_| ()).map_err(|e| e.kind()),
            Err(ErrorKind::HeadTooLarge)
        );
        let mut h = [EMPTY_HEADER; 4];
        assert!(
            matches!(parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", &mut h, &Limits::default()), Err(e) if matches!(e.kind(), ErrorKind::Head))
        );
    }

    #[test]
    fn framing_rules() {
        let frame = |head: &[u8]| {
            let mut h = [EMPTY_HEADER; 8];
            let Ok(Status::Complete((r, _))) = parse_request(head, &mut h, &Limits::default()) else {
                panic!()
            };
            request_body(&r).map_err(|e| e.kind())
        };
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(BodyKind::ContentLength(5))
        );
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Err(ErrorKind::BadContentLength)
        );
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(ErrorKind::BadContentLength)
        );
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(ErrorKind::BadTransferEncoding)
        );
        assert_eq!(
            frame(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Err(ErrorKind::BadTransferEncoding)
        );
        let mut h = [EMPTY_HEADER; 8];
        let Ok(Status::Complete((r, _))) =
            parse_response(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", &mut h, &Limits::default())
        else {
            panic!()
        };
        assert_eq!(response_body(&r, "GET"), Ok(BodyKind::UntilClose));
        assert_eq!(response_body(&r, "HEAD"), Ok(BodyKind::None));
    }

    #[test]
    fn chunked_round_trip_in_any_step() {
        let mut body = Vec::new();
        encode_chunk(b"hello ", &mut body);
        encode_chunk(&[b'x'; 300], &mut body);
        encode_chunk(b"", &mut body);
        encode_chunk(b"!", &mut body);
        encode_last_chunk(&mut body);
        let mut expect = b"hello ".to_vec();
        expect.extend_from_slice(&[b'x'; 300]);
        expect.push(b'!');
        for step in [1, 2, 3, 7, 64, body.len()] {
            let (data, trailers, used) = decode_all(&body, step).expect("valid");
            assert_eq!(
                (data.as_slice(), trailers.as_slice(), used),
                (expect.as_slice(), &b""[..], body.len()),
                "step {step}"
            );
        }
    }

    #[test]
    fn chunk_extensions_trailers_and_errors() {
        let body = b"5;ext=1\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n";
        let (data, trailers, used) = decode_all(body, body.len()).expect("valid");
        assert_eq!(
            (data.as_slice(), trailers.as_slice(), used),
            (&b"hello"[..], &b"X-Checksum: abc\r\n"[..], body.len())
        );
        assert!(matches!(decode_all(b"zz\r\n", 4), Err(e) if e.kind() == ErrorKind::BadChunk));
        assert!(matches!(decode_all(b"3\r\nabcXY0\r\n\r\n", 13), Err(e) if e.kind() == ErrorKind::BadChunk));
        let long = [b'1'; 2000];
        let mut dec = ChunkedDecoder::new(Limits::default());
        assert!(matches!(dec.next(&long), Err(e) if e.kind() == ErrorKind::ChunkTooLarge));
    }
}
