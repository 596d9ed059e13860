//! An HTTP/1.1 session for a forward proxy (the agent sets `HTTP_PROXY`) or a reverse proxy.
//!
//! - **Requests** are read whole (head and body, up to 8 MiB, chunked bodies decoded) and
//!   decided by method, host (its IP spellings normalised), path, headers and JSON body. A
//!   refusal is a `403` with a JSON body (`{"error":…,"decision":{…}}`); the server never sees
//!   the request. An allowed request goes upstream in origin form with the `Host` it was decided
//!   on and `Connection: close` (one upstream connection per request: [`HttpSession::upstream`]
//!   says where); the host decides it again on each resolved address
//!   ([`HttpSession::decide_address`]) and reports upstream failures
//!   ([`HttpSession::upstream_failed`]: `502`, `504`).
//! - A grant rides in the `Sluice-Grant` request header on the retry (removed before forwarding).
//! - **Responses** are masked: the status reason and every header name and value (interim `1xx`
//!   heads too); the body is decoded (chunked; `gzip`, `deflate`, `br`, up to 100 times its size
//!   plus 4 MiB) and passed through the streaming redactor, then sent chunked
//!   (`Content-Length` and `Content-Encoding` dropped), so event streams flow as they arrive. A
//!   body in any other content coding is refused with a `502`: never passed through unmasked. A
//!   body the upstream cuts short is an error, so the client's response is cut too.
//! - `CONNECT` (HTTPS through the proxy) is decided by host and port; the tunnel must start with
//!   a TLS ClientHello ([`HttpSession::tunnel_client`]) and is then opaque
//!   ([`HttpSession::tunnel`]): terminate TLS to inspect it.
//! - Malformed messages (bad heads, request smuggling framings, oversized bodies) are a
//!   [`SessionError`].

use std::io::Write;
use std::sync::Arc;

use sluice_protocols::http::{self, BodyKind, Chunk, ChunkedDecoder, Limits, Status};

use super::{Event, Guard, Output, SessionError, Side, refusal_verb};
use crate::StreamRedactor;
use crate::policy::{Action, Decision, HttpRequest, Identity, Protocol, Request, Target};

/// The largest request body read for a decision.
pub const MAX_REQUEST_BODY: u64 = 8 * 1024 * 1024;

enum Decoder {
    Identity,
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Deflate(Box<flate2::write::ZlibDecoder<Vec<u8>>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

impl Decoder {
    /// Decodes `data`, appending the plain bytes to `out`; fails once `out` holds more than
    /// `cap` bytes (the input is fed in small pieces, so the overshoot is bounded).
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>, cap: u64) -> std::io::Result<()> {
        for piece in data.chunks(1024) {
            self.feed_piece(piece, out)?;
            if out.len() as u64 > cap {
                return Err(std::io::Error::other(format!(
                    "the body decodes to over {MAX_DECODE_RATIO} times its size (a decompression bomb)"
                )));
            }
        }
        Ok(())
    }

    fn feed_piece(&mut self, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Decoder::Identity => out.extend_from_slice(data),
            Decoder::Gzip(d) => {
                d.write_all(data)?;
                out.append(d.get_mut());
            }
            Decoder::Deflate(d) => {
                d.write_all(data)?;
                out.append(d.get_mut());
            }
            Decoder::Brotli(d) => {
                d.write_all(data)?;
                out.append(d.get_mut());
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        match self {
            Decoder::Identity => {}
            Decoder::Gzip(d) => {
                d.try_finish()?;
                out.append(d.get_mut());
            }
            Decoder::Deflate(d) => {
                d.try_finish()?;
                out.append(d.get_mut());
            }
            Decoder::Brotli(d) => {
                d.flush()?;
                out.append(d.get_mut());
            }
        }
        Ok(())
    }
}

/// A request body in `coding` (gzip, deflate, br) decoded, within the bound responses have
/// ([`MAX_DECODE_RATIO`] times its size plus [`DECODED_SLACK`], and [`MAX_REQUEST_BODY`]);
/// `None` for another coding or a body that does not decode.
fn decode_request_body(coding: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let coding = String::from_utf8_lossy(coding).trim().to_ascii_lowercase();
    let mut d = match coding.as_str() {
        "gzip" | "x-gzip" => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new()))),
        "deflate" => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(Vec::new()))),
        "br" => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
        _ => return None,
    };
    let cap = (body.len() as u64)
        .saturating_mul(MAX_DECODE_RATIO)
        .saturating_add(DECODED_SLACK)
        .min(MAX_REQUEST_BODY);
    let mut out = Vec::new();
    d.feed(body, &mut out, cap).ok()?;
    d.finish(&mut out).ok()?;
    (out.len() as u64 <= cap).then_some(out)
}

/// Where the response body is.
enum Body {
    /// Waiting for a response head.
    Head,
    /// Content-Length bytes left.
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    /// The response is complete.
    Done,
}

/// One client connection.
pub struct HttpSession {
    guard: Arc<Guard>,
    identity: Identity,
    target: Option<Target>,
    limits: Limits,
    cbuf: Vec<u8>,
    sbuf: Vec<u8>,
    upstream: Option<(String, u16)>,
    method: String,
    body: Body,
    decoder: Decoder,
    redactor: Option<StreamRedactor<'static>>,
    tunnel: bool,
    /// The first client bytes of a tunnel were checked (a TLS ClientHello).
    tunnel_checked: bool,
    /// The first client bytes of a tunnel, until there are enough to check.
    tunnel_head: Vec<u8>,
    /// The allowed request waiting for its upstream: (scheme, host, path, allowed by a grant),
    /// for a decision on the address its host resolves to.
    pending: Option<(&'static str, String, String, bool)>,
    /// Reverse-proxy mode: the one origin every request goes to (scheme, host, port).
    origin: Option<(&'static str, String, u16)>,
    /// Bytes of the response body read (encoded) and decoded, for the decompression bound.
    body_in: u64,
    body_out: u64,
    plain: Vec<u8>,
    masked: Vec<u8>,
}

/// A decoded response body may grow to this many times its encoded size, plus
/// [`DECODED_SLACK`]: beyond that it is a decompression bomb, and the response is cut.
pub const MAX_DECODE_RATIO: u64 = 100;
/// Decoded bytes always allowed, whatever the ratio.
pub const DECODED_SLACK: u64 = 4 * 1024 * 1024;

impl std::fmt::Debug for HttpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSession")
            .field("identity", &self.identity)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl HttpSession {
    /// A session for `identity`; `target` names what decisions are made against (default: the
    /// request's host).
    pub fn new(guard: Arc<Guard>, identity: Identity, target: Option<Target>) -> HttpSession {
        HttpSession {
            guard,
            identity,
            target,
            limits: Limits::default(),
            cbuf: Vec::new(),
            sbuf: Vec::new(),
            upstream: None,
            method: String::new(),
            body: Body::Done,
            decoder: Decoder::Identity,
            redactor: None,
            tunnel: false,
            tunnel_checked: false,
            tunnel_head: Vec::new(),
            pending: None,
            origin: None,
            body_in: 0,
            body_out: 0,
            plain: Vec::new(),
            masked: Vec::new(),
        }
    }

    /// Reverse-proxy mode: every request is for the origin `https://host:port` (`tls`) or
    /// `http://host:port`, whatever its `Host` header says; requests come in origin form
    /// (`GET /path`), and `CONNECT` or a request for another URL is a [`SessionError`].
    /// Decisions, credentials and the forwarded `Host` are the origin's.
    pub fn with_origin(mut self, tls: bool, host: &str, port: u16) -> HttpSession {
        let scheme = if tls { "https" } else { "http" };
        self.origin = Some((scheme, crate::policy::normalize_host(host), port));
        self
    }

    /// A session for the requests inside an allowed `CONNECT` tunnel to `host:port` that the
    /// host decrypts (HTTPS interception): the same guard, identity and target, in
    /// reverse-proxy mode for `https://host:port` ([`HttpSession::with_origin`]), so every
    /// request in the tunnel is decided, brokered and masked like any other.
    pub fn intercept(&self, host: &str, port: u16) -> HttpSession {
        HttpSession::new(Arc::clone(&self.guard), self.identity.clone(), self.target.clone())
            .with_origin(true, host, port)
    }

    /// Where the bytes last put in `to_server` must go (host, port), once per allowed request.
    pub fn upstream(&mut self) -> Option<(String, u16)> {
        self.upstream.take()
    }

    /// Whether an allowed `CONNECT` turned the connection into an opaque tunnel.
    pub fn tunnel(&self) -> bool {
        self.tunnel
    }

    /// The first bytes the client sends into an allowed `CONNECT` tunnel: they must open a TLS
    /// handshake (a ClientHello record). Anything else (plain HTTP, another protocol) would
    /// carry requests past every check, so it ends the session. Bytes may come in pieces: the
    /// check is made on the first six, however they are cut; until [`HttpSession::tunnel_checked`]
    /// the host must hold what the client sent, not forward it.
    pub fn tunnel_client(&mut self, data: &[u8]) -> Result<(), SessionError> {
        if !self.tunnel {
            return Err(SessionError::client("tunnel data without an allowed CONNECT"));
        }
        if self.tunnel_checked {
            return Ok(());
        }
        let need = 6 - self.tunnel_head.len();
        self.tunnel_head.extend_from_slice(&data[..need.min(data.len())]);
        let h = &self.tunnel_head;
        // TLS record: handshake (22), version 3.x, length (2), then a ClientHello (1).
        let ok = h.first().is_none_or(|b| *b == 0x16)
            && h.get(1).is_none_or(|v| *v == 0x03)
            && h.get(5).is_none_or(|t| *t == 0x01);
        if !ok {
            return Err(SessionError::client(
                "a CONNECT tunnel that does not start with a TLS ClientHello (plain traffic is not tunnelled uninspected)",
            ));
        }
        self.tunnel_checked = h.len() == 6;
        Ok(())
    }

    /// Whether the start of the tunnel was checked: what the client sent may now go upstream.
    pub fn tunnel_checked(&self) -> bool {
        self.tunnel_checked
    }

    /// Decides the allowed request again on the address its host resolved to (the host calls
    /// this for each address before connecting): a name that resolves to a protected address
    /// (cloud metadata, loopback) is refused like the address itself. On refusal the `403` is
    /// in `out.to_client` and the request must not be sent.
    pub fn decide_address(&mut self, addr: std::net::IpAddr, port: u16, out: &mut Output) -> bool {
        let Some((scheme, name, path, granted)) = self.pending.clone() else {
            return true;
        };
        let host = match addr {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map_or_else(|| format!("[{v6}]"), |v4| v4.to_string()),
        };
        if host.trim_matches(['[', ']']) == name {
            return true; // decided on this address already
        }
        let url = format!("{scheme}://{host}:{port}{path}");
        let headers: Vec<(&str, &[u8])> = Vec::new();
        let request = Request::Http(HttpRequest {
            method: &self.method,
            url: &url,
            headers: &headers,
            body: None,
        });
        let target = self.target.clone().unwrap_or_else(|| Target::new(host.clone()));
        let command = format!("{} {url}", self.method);
        let d = self.guard.decide(&self.identity, &target, &request, &command, None);
        // A human approved this very request (by name): only a deny of the address stops it.
        if d.action() == Action::Allow || (granted && d.action() == Action::RequireApproval) {
            return true;
        }
        forbidden(&d, &mut out.to_client);
        self.body = Body::Done;
        self.tunnel = false;
        self.pending = None;
        false
    }

    /// The upstream could not be reached or did not answer in time: a `502` (or `504` when
    /// `timeout`) with the reason, if no response head was sent yet. The host then closes the
    /// connection.
    pub fn upstream_failed(&mut self, why: &str, timeout: bool, out: &mut Output) {
        if matches!(self.body, Body::Head) || (self.tunnel && !self.tunnel_checked) {
            let (code, text) = if timeout {
                (504, "Gateway Timeout")
            } else {
                (502, "Bad Gateway")
            };
            let body = serde_json::json!({ "error": format!("sluice: upstream: {why}") }).to_string();
            let _ = write!(
                out.to_client,
                "HTTP/1.1 {code} {text}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
        self.body = Body::Done;
    }

    /// Whether part of a request has arrived and the rest is awaited.
    pub fn has_partial_request(&self) -> bool {
        !self.cbuf.is_empty()
    }

    /// Whether the current response is complete (the host may then read the next request).
    pub fn response_done(&self) -> bool {
        matches!(self.body, Body::Done)
    }

    /// Bytes from the client. At most one request is processed per call; call again with an
    /// empty slice after its response to process a pipelined one.
    pub fn from_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mark = out.mark();
        self.guard.handling();
        let r = self.handle_client(data, out);
        self.guard.handled(Protocol::Http, out, mark, r)
    }

    fn handle_client(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        self.cbuf.extend_from_slice(data);
        let mut headers = [http::EMPTY_HEADER; 96];
        let buf = std::mem::take(&mut self.cbuf);
        let r = (|| {
            let (req, head_len) = match http::parse_request(&buf, &mut headers, &self.limits) {
                Ok(Status::Partial) => return Ok(0),
                Ok(Status::Complete(x)) => x,
                Err(e) => return Err(SessionError::rejected(Side::Client, e)),
            };
            // The body, whole.
            let (body, used): (Vec<u8>, usize) =
                match http::request_body(&req).map_err(|e| SessionError::rejected(Side::Client, e))? {
                    BodyKind::None => (Vec::new(), head_len),
                    BodyKind::ContentLength(n) if n > MAX_REQUEST_BODY => {
                        return Err(SessionError::client(format!(
                            "request body of {n} bytes is over the limit"
                        )));
                    }
                    BodyKind::ContentLength(n) => {
                        let end = head_len + n as usize;
                        if buf.len() < end {
                            return Ok(0);
                        }
                        (buf[head_len..end].to_vec(), end)
                    }
                    BodyKind::Chunked => {
                        let mut dec = ChunkedDecoder::new(self.limits.clone());
                        let (mut at, mut body) = (head_len, Vec::new());
                        loop {
                            match dec
                                .next(&buf[at..])
                                .map_err(|e| SessionError::rejected(Side::Client, e))?
                            {
                                Status::Partial => return Ok(0),
                                Status::Complete((Chunk::Data(d), n)) => {
                                    body.extend_from_slice(d);
                                    at += n;
                                    if body.len() as u64 > MAX_REQUEST_BODY {
                                        return Err(SessionError::client("request body over the limit"));
                                    }
                                }
                                Status::Complete((Chunk::End { .. }, n)) => {
                                    at += n;
                                    break;
                                }
                            }
                        }
                        (body, at)
                    }
                    BodyKind::UntilClose => return Err(SessionError::client("request body without a length")),
                };
            self.request(&req, &body, out)?;
            Ok(used)
        })();
        let mut buf = buf;
        match r {
            Ok(used) => {
                buf.drain(..used);
                self.cbuf = buf;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn request(&mut self, req: &http::Request<'_, '_>, body: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let connect = req.method.eq_ignore_ascii_case("CONNECT");
        let scheme = self.origin.as_ref().map_or("http", |o| o.0);
        let (host, port, path) = if let Some((_, host, port)) = &self.origin {
            if connect || !req.path.starts_with('/') {
                return Err(SessionError::client(format!(
                    "this proxy serves one origin: `{} {}` is not a request for a path of it",
                    req.method, req.path
                )));
            }
            (host.clone(), *port, req.path.to_string())
        } else if connect {
            let (h, p) = req.path.rsplit_once(':').unwrap_or((req.path, "443"));
            (
                h.trim_matches(['[', ']']).to_string(),
                p.parse().unwrap_or(443),
                "/".to_string(),
            )
        } else if let Some(rest) = req.path.strip_prefix("http://") {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let (h, p) = split_authority(authority, 80);
            (h, p, if path.is_empty() { "/".into() } else { path.to_string() })
        } else if req.path.starts_with('/') {
            let host = req
                .header("host")
                .map(|h| String::from_utf8_lossy(h).into_owned())
                .unwrap_or_default();
            let (h, p) = split_authority(&host, 80);
            (h, p, req.path.to_string())
        } else {
            return Err(SessionError::client(format!(
                "unsupported request target `{}`",
                req.path
            )));
        };
        if host.is_empty() {
            return Err(SessionError::client("request without a host"));
        }
        let host = crate::policy::normalize_host(&host);
        if req
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("host"))
            .count()
            > 1
        {
            return Err(SessionError::client("more than one Host header"));
        }
        let url = if connect {
            format!("https://{host}:{port}/")
        } else {
            format!("{scheme}://{host}:{port}{path}")
        };
        let grant = req
            .header("sluice-grant")
            .map(|g| String::from_utf8_lossy(g).trim().to_string());
        let headers: Vec<(&str, &[u8])> = req
            .headers
            .iter()
            .filter(|h| !h.name.eq_ignore_ascii_case("sluice-grant"))
            .map(|h| (h.name, h.value))
            .collect();
        let request = Request::Http(HttpRequest {
            method: req.method,
            url: &url,
            headers: &headers,
            body: (!body.is_empty()).then_some(body),
        });
        let target = self.target.clone().unwrap_or_else(|| Target::new(host.clone()));
        let command = format!("{} {url}", req.method);
        let d = self
            .guard
            .decide(&self.identity, &target, &request, &command, grant.as_deref());
        if d.action() != Action::Allow {
            forbidden(&d, &mut out.to_client);
            self.body = Body::Done;
            return Ok(());
        }
        self.method = req.method.to_string();
        if connect {
            out.to_client
                .extend_from_slice(b"HTTP/1.1 200 Connection established\r\n\r\n");
            self.tunnel = true;
            self.pending = Some(("https", host.clone(), "/".to_string(), grant.is_some() || d.granted()));
            self.upstream = Some((host, port));
            return Ok(());
        }
        // The decision was made on the placeholders; the server gets the credentials they name,
        // each only where the policy lets it go (else the whole request is refused).
        let swapped = match self.swap_credentials(&host, &path, &headers, body) {
            Ok(s) => s,
            Err(refused) => {
                let d = self
                    .guard
                    .refuse(&self.identity, &target, &request, &command, refused.to_string());
                forbidden(&d, &mut out.to_client);
                self.body = Body::Done;
                return Ok(());
            }
        };
        // The path as decided (placeholders, not credentials): what a later decision on the
        // resolved address shows and records.
        let decided_path = path.clone();
        let (path, headers, body) = match &swapped {
            Some((p, h, b)) => (
                p.clone(),
                h.iter().map(|(n, v)| (*n, v.as_slice())).collect(),
                b.as_slice(),
            ),
            None => (path, headers, body),
        };
        // Origin form, hop-by-hop headers dropped, one request per upstream connection; the Host
        // header is the one the request was decided on, whatever the client sent.
        let o = &mut out.to_server;
        write!(o, "{} {path} HTTP/1.1\r\n", req.method).map_err(|e| SessionError::rejected(Side::Client, e))?;
        let authority = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        if port == if scheme == "https" { 443 } else { 80 } {
            write!(o, "Host: {authority}\r\n")
        } else {
            write!(o, "Host: {authority}:{port}\r\n")
        }
        .map_err(|e| SessionError::rejected(Side::Client, e))?;
        for (n, v) in &headers {
            let hop = [
                "host",
                "connection",
                "proxy-connection",
                "keep-alive",
                "proxy-authorization",
                "te",
                "transfer-encoding",
                "content-length",
                "upgrade",
            ];
            if hop.iter().any(|h| n.eq_ignore_ascii_case(h)) {
                continue;
            }
            o.extend_from_slice(n.as_bytes());
            o.extend_from_slice(b": ");
            o.extend_from_slice(v);
            o.extend_from_slice(b"\r\n");
        }
        if !body.is_empty() {
            write!(o, "Content-Length: {}\r\n", body.len()).map_err(|e| SessionError::rejected(Side::Client, e))?;
        }
        o.extend_from_slice(b"Connection: close\r\n\r\n");
        o.extend_from_slice(body);
        self.pending = Some((scheme, host.clone(), decided_path, grant.is_some() || d.granted()));
        self.upstream = Some((host, port));
        self.body = Body::Head;
        self.body_in = 0;
        self.body_out = 0;
        Ok(())
    }

    /// The request's path, header values and body with placeholders swapped for credentials
    /// (`None` when there is no vault or no placeholder).
    #[allow(clippy::type_complexity)]
    fn swap_credentials<'h>(
        &self,
        host: &str,
        path: &str,
        headers: &[(&'h str, &[u8])],
        body: &[u8],
    ) -> Result<Option<(String, Vec<(&'h str, Vec<u8>)>, Vec<u8>)>, crate::broker::Refused> {
        if self.guard.vault.is_none() {
            return Ok(None);
        }
        let prefix = crate::broker::PREFIX.as_bytes();
        let holds = |b: &[u8]| memchr::memmem::find(b, prefix).is_some();
        // A compressed body is looked into: its placeholders are swapped in the decoded bytes,
        // which then go uncompressed (Content-Encoding dropped).
        let decoded = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
            .and_then(|(_, coding)| decode_request_body(coding, body))
            .filter(|d| holds(d));
        let body_seen = decoded.as_deref().unwrap_or(body);
        if !(holds(path.as_bytes()) || holds(body_seen) || headers.iter().any(|(_, v)| holds(v))) {
            return Ok(None);
        }
        // `head`: the text goes in the request line or a header, where a value holding a line
        // break, a control character (or, in the path, a space) would end it early and let the
        // value write its own request.
        let swap = |b: &[u8], head: Option<&[u8]>| -> Result<Vec<u8>, crate::broker::Refused> {
            let Ok(t) = std::str::from_utf8(b) else {
                // Not text: a placeholder in it is not substituted, and the bytes go as they are.
                return Ok(b.to_vec());
            };
            let std::borrow::Cow::Owned(out) = self.guard.substitute(Protocol::Http, host, t)? else {
                return Ok(b.to_vec());
            };
            let out = out.into_bytes();
            // Checked whenever something was substituted: a value as long as its placeholder
            // changes no length but may still hold a line break.
            if let Some(bad) = head
                && out.iter().any(|c| c.is_ascii_control() || bad.contains(c))
            {
                let name = crate::broker::placeholders(t).first().map_or("", |p| p.2).to_string();
                return Err(crate::broker::Refused {
                    name,
                    reason: "its value cannot go in an HTTP request head (control character or space)".into(),
                });
            }
            Ok(out)
        };
        let path = String::from_utf8(swap(path.as_bytes(), Some(b" "))?).unwrap_or_default();
        let mut hs = Vec::with_capacity(headers.len());
        for (n, v) in headers {
            if decoded.is_some() && n.eq_ignore_ascii_case("content-encoding") {
                continue;
            }
            hs.push((*n, swap(v, Some(b""))?));
        }
        // The body as bytes (text or not): placeholders are ASCII, the bytes around them stay.
        let body = self
            .guard
            .substitute_bytes(Protocol::Http, host, body_seen)?
            .into_owned();
        Ok(Some((path, hs, body)))
    }

    /// Bytes from the server (for the current request). An empty `data` means the server
    /// closed the connection.
    pub fn from_server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        let mark = out.mark();
        self.guard.handling();
        let r = self.handle_server(data, out);
        self.guard.handled(Protocol::Http, out, mark, r)
    }

    fn handle_server(&mut self, data: &[u8], out: &mut Output) -> Result<(), SessionError> {
        if self.tunnel {
            out.to_client.extend_from_slice(data);
            return Ok(());
        }
        let eof = data.is_empty();
        self.sbuf.extend_from_slice(data);
        // Interim (1xx) heads are relayed until the final one.
        while let Body::Head = self.body {
            let mut headers = [http::EMPTY_HEADER; 96];
            let buf = std::mem::take(&mut self.sbuf);
            let parsed = match http::parse_response(&buf, &mut headers, &self.limits) {
                Ok(Status::Partial) if eof => Err(SessionError::server("connection closed before a response")),
                Ok(Status::Partial) => {
                    self.sbuf = buf;
                    return Ok(());
                }
                Ok(Status::Complete((resp, n))) => self.response_head(&resp, out).map(|()| n),
                Err(e) => Err(SessionError::rejected(Side::Server, e)),
            };
            let n = parsed?;
            self.sbuf = buf[n..].to_vec();
        }
        self.response_body(eof, out)
    }

    fn response_head(&mut self, resp: &http::Response<'_, '_>, out: &mut Output) -> Result<(), SessionError> {
        let kind = http::response_body(resp, &self.method).map_err(|e| SessionError::rejected(Side::Server, e))?;
        let coding = resp
            .header("content-encoding")
            .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
            .unwrap_or_default();
        self.decoder = match coding.as_str() {
            "" | "identity" => Decoder::Identity,
            "gzip" | "x-gzip" => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new()))),
            "deflate" => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(Vec::new()))),
            "br" => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096))),
            other if kind != BodyKind::None => {
                let msg = format!("sluice: cannot inspect a response in content coding `{other}`");
                self.guard.emit(&Event::Notice {
                    protocol: Protocol::Http,
                    message: &msg,
                });
                let body = serde_json::json!({ "error": msg }).to_string();
                write!(
                    out.to_client,
                    "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .map_err(|e| SessionError::rejected(Side::Server, e))?;
                self.body = Body::Done;
                return Err(SessionError::server(msg));
            }
            _ => Decoder::Identity,
        };
        // The status line and every header (name and value, `Location` and `Set-Cookie`
        // included) are server data: each masked. (Not joined: a header's name and the next
        // value would read as `name=value` and cut the name.)
        let drop = [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "content-length",
            "content-encoding",
        ];
        let kept: Vec<&http::Header<'_>> = resp
            .headers
            .iter()
            .filter(|h| !drop.iter().any(|d| h.name.eq_ignore_ascii_case(d)))
            .collect();
        let mut fields: Vec<Option<&[u8]>> = vec![Some(resp.reason.as_bytes())];
        for h in &kept {
            fields.push(Some(h.name.as_bytes()));
            fields.push(Some(h.value));
        }
        let masked: Vec<Option<std::borrow::Cow<'_, [u8]>>> = fields
            .iter()
            .map(|f| f.map(|v| self.guard.current_detector().redact(v)))
            .collect();
        let changed = masked
            .iter()
            .filter(|m| matches!(m, Some(std::borrow::Cow::Owned(_))))
            .count();
        if changed > 0 {
            self.guard.emit(&Event::Masked {
                protocol: Protocol::Http,
                count: changed,
            });
        }
        let clean = |v: &[u8]| -> Vec<u8> { v.iter().copied().filter(|b| *b != b'\r' && *b != b'\n').collect() };
        let o = &mut out.to_client;
        o.extend_from_slice(format!("HTTP/1.1 {} ", resp.status).as_bytes());
        o.extend_from_slice(&clean(masked[0].as_deref().unwrap_or_default()));
        o.extend_from_slice(b"\r\n");
        for pair in masked[1..].chunks(2) {
            let name = clean(pair[0].as_deref().unwrap_or_default());
            // A masked name would not be a token: such a header is dropped.
            if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic() && *b != b':') {
                continue;
            }
            o.extend_from_slice(&name);
            o.extend_from_slice(b": ");
            o.extend_from_slice(&clean(pair[1].as_deref().unwrap_or_default()));
            o.extend_from_slice(b"\r\n");
        }
        if (100..200).contains(&resp.status) {
            // An interim response: the final one follows.
            if resp.status == 101 {
                return Err(SessionError::server("a protocol switch nothing asked for"));
            }
            o.extend_from_slice(b"\r\n");
            self.body = Body::Head;
            return Ok(());
        }
        if kind == BodyKind::None {
            o.extend_from_slice(b"Content-Length: 0\r\n\r\n");
            self.body = Body::Done;
            return Ok(());
        }
        o.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        self.redactor = Some(self.guard.current_detector().shared_stream_redactor());
        self.body = match kind {
            BodyKind::ContentLength(n) => Body::Length(n),
            BodyKind::Chunked => Body::Chunked(ChunkedDecoder::new(self.limits.clone())),
            _ => Body::UntilClose,
        };
        Ok(())
    }

    fn response_body(&mut self, eof: bool, out: &mut Output) -> Result<(), SessionError> {
        let mut done = false;
        self.plain.clear();
        let buf = std::mem::take(&mut self.sbuf);
        let mut at = 0;
        let dec_err = |e: std::io::Error| SessionError::server(format!("cannot decode the response body: {e}"));
        let cap = (self.body_in + buf.len() as u64)
            .saturating_mul(MAX_DECODE_RATIO)
            .saturating_add(DECODED_SLACK)
            .saturating_sub(self.body_out);
        match &mut self.body {
            Body::Head | Body::Done => {}
            Body::Length(left) => {
                let n = (*left).min(buf.len() as u64) as usize;
                self.decoder.feed(&buf[..n], &mut self.plain, cap).map_err(dec_err)?;
                *left -= n as u64;
                at = n;
                done = *left == 0;
                if eof && !done {
                    return Err(SessionError::server("connection closed inside a response body"));
                }
            }
            Body::Chunked(dec) => loop {
                match dec
                    .next(&buf[at..])
                    .map_err(|e| SessionError::rejected(Side::Server, e))?
                {
                    Status::Partial if eof => {
                        return Err(SessionError::server("connection closed inside a chunked response body"));
                    }
                    Status::Partial => break,
                    Status::Complete((Chunk::Data(d), n)) => {
                        self.decoder.feed(d, &mut self.plain, cap).map_err(dec_err)?;
                        at += n;
                    }
                    Status::Complete((Chunk::End { .. }, n)) => {
                        at += n;
                        done = true;
                        break;
                    }
                }
            },
            Body::UntilClose => {
                self.decoder.feed(&buf, &mut self.plain, cap).map_err(dec_err)?;
                at = buf.len();
                done = eof;
            }
        }
        self.sbuf = buf[at..].to_vec();
        if done {
            self.decoder.finish(&mut self.plain).map_err(dec_err)?;
        }
        self.body_in += at as u64;
        self.body_out += self.plain.len() as u64;
        if self.body_out > self.body_in.saturating_mul(MAX_DECODE_RATIO) + DECODED_SLACK {
            return Err(SessionError::server(format!(
                "the response body decodes to over {MAX_DECODE_RATIO} times its size (a decompression bomb)"
            )));
        }
        self.masked.clear();
        if let Some(r) = self.redactor.as_mut() {
            r.feed(&self.plain, &mut self.masked);
            if done {
                r.finish(&mut self.masked);
            }
        }
        if self.masked.as_slice() != self.plain.as_slice() {
            self.guard.emit(&Event::Masked {
                protocol: Protocol::Http,
                count: 1,
            });
        }
        if !self.masked.is_empty() {
            http::encode_chunk(&self.masked, &mut out.to_client);
        }
        if done {
            http::encode_last_chunk(&mut out.to_client);
            self.body = Body::Done;
            self.redactor = None;
        }
        Ok(())
    }
}

fn split_authority(a: &str, default: u16) -> (String, u16) {
    let a = a.rsplit_once('@').map_or(a, |(_, h)| h);
    if let Some(rest) = a.strip_prefix('[') {
        let (h, p) = rest.split_once(']').unwrap_or((rest, ""));
        return (h.to_string(), p.trim_start_matches(':').parse().unwrap_or(default));
    }
    match a.rsplit_once(':') {
        Some((h, p)) => (h.to_ascii_lowercase(), p.parse().unwrap_or(default)),
        None => (a.to_ascii_lowercase(), default),
    }
}

/// A `403` with the decision as JSON; a `202 Accepted` when the approval it needs is pending
/// with reviewers (the same request, repeated once approved, runs).
fn forbidden(d: &Decision, out: &mut Vec<u8>) {
    if d.pending() {
        let id = d.approval().map(|a| a.id.as_str()).unwrap_or_default();
        let body = serde_json::json!({
            "status": "pending approval",
            "approval": id,
            "decision": d,
            "retry": "repeat this same request once a reviewer approves it: it then runs, once",
        })
        .to_string();
        let _ = write!(
            out,
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nRetry-After: 5\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    let verb = refusal_verb(d);
    let body = serde_json::json!({
        "error": format!("sluice: {verb}: {}", d.reason()),
        "decision": d,
        "retry": d.approval().map(|_| "once approved, repeat the request with the header `Sluice-Grant: TOKEN`"),
    })
    .to_string();
    let _ = write!(
        out,
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}
