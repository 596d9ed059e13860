//! The SSH connection protocol (RFC 4254) as a terminating proxy sees it after transport
//! decryption: each function takes one message payload (starting with the message number).
//! Encoders write the messages a proxy sends back: channel data (masked output), extended data,
//! request failure, and exit status.
//!
//! ```
//! use sluice_protocols::ssh::{self, ChannelRequest, Message};
//! let mut payload = Vec::new();
//! ssh::encode_channel_request_exec(0, true, b"cat ~/.aws/credentials", &mut payload);
//! match ssh::parse_message(&payload)? {
//!     Message::ChannelRequest { recipient: 0, want_reply: true, request: ChannelRequest::Exec(cmd) } => {
//!         assert_eq!(cmd, b"cat ~/.aws/credentials");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), sluice_protocols::ssh::Error>(())
//! ```

use std::fmt;

use crate::Cursor;

/// Why a payload could not be parsed.
pub type Error = crate::Error<ErrorKind>;

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The payload ended before a field.
    Truncated,
    /// An empty payload.
    Empty,
    /// A string whose length runs past the end of the payload.
    BadLength(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Truncated => write!(f, "ssh message ends early at offset {}", self.offset),
            ErrorKind::Empty => write!(f, "empty ssh message"),
            ErrorKind::BadLength(n) => write!(
                f,
                "ssh string of {n} bytes runs past the message at offset {}",
                self.offset
            ),
        }
    }
}

/// A channel request (RFC 4254 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelRequest<'a> {
    /// Run a command.
    Exec(&'a [u8]),
    /// Start a shell.
    Shell,
    /// Allocate a terminal.
    PtyReq {
        /// The TERM value.
        term: &'a [u8],
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// Set an environment variable.
    Env {
        /// Its name.
        name: &'a [u8],
        /// Its value.
        value: &'a [u8],
    },
    /// Start a subsystem (`sftp`, …).
    Subsystem(&'a [u8]),
    /// The command's exit status (server to client).
    ExitStatus(u32),
    /// The command died of a signal (server to client).
    ExitSignal(&'a [u8]),
    /// The terminal was resized.
    WindowChange {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// Any other request type, and its data.
    Other(&'a [u8], &'a [u8]),
}

/// A connection-protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// SSH_MSG_GLOBAL_REQUEST (port forwarding and the like).
    GlobalRequest {
        /// The request name.
        name: &'a [u8],
        /// Whether a reply is expected.
        want_reply: bool,
        /// Request-specific data.
        data: &'a [u8],
    },
    /// SSH_MSG_CHANNEL_OPEN.
    ChannelOpen {
        /// `session`, `direct-tcpip`, `x11`, …
        channel_type: &'a [u8],
        /// The opener's channel number.
        sender: u32,
        /// Initial window size.
        window: u32,
        /// Maximum packet size.
        max_packet: u32,
        /// Type-specific data (for `direct-tcpip`: host, port, originator, port).
        data: &'a [u8],
    },
    /// SSH_MSG_CHANNEL_OPEN_CONFIRMATION.
    ChannelOpenConfirmation {
        /// The opener's channel number.
        recipient: u32,
        /// The confirmer's channel number.
        sender: u32,
    },
    /// SSH_MSG_CHANNEL_OPEN_FAILURE.
    ChannelOpenFailure {
        /// The opener's channel number.
        recipient: u32,
        /// Reason code.
        reason: u32,
        /// Description.
        description: &'a [u8],
    },
    /// SSH_MSG_CHANNEL_WINDOW_ADJUST.
    WindowAdjust {
        /// Channel.
        recipient: u32,
        /// Bytes added to the window.
        bytes: u32,
    },
    /// SSH_MSG_CHANNEL_DATA.
    Data {
        /// Channel.
        recipient: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// SSH_MSG_CHANNEL_EXTENDED_DATA (type 1 is stderr).
    ExtendedData {
        /// Channel.
        recipient: u32,
        /// Data type code.
        code: u32,
        /// The bytes.
        data: &'a [u8],
    },
    /// SSH_MSG_CHANNEL_EOF.
    Eof(u32),
    /// SSH_MSG_CHANNEL_CLOSE.
    Close(u32),
    /// SSH_MSG_CHANNEL_REQUEST.
    ChannelRequest {
        /// Channel.
        recipient: u32,
        /// Whether a reply is expected.
        want_reply: bool,
        /// The request.
        request: ChannelRequest<'a>,
    },
    /// SSH_MSG_CHANNEL_SUCCESS.
    ChannelSuccess(u32),
    /// SSH_MSG_CHANNEL_FAILURE.
    ChannelFailure(u32),
    /// Any other message number (transport and authentication messages), and its body.
    Other(u8, &'a [u8]),
}

struct Reader<'a> {
    c: Cursor<'a>,
}

impl<'a> Reader<'a> {
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(kind, self.c.position())
    }
    fn u8(&mut self) -> Result<u8, Error> {
        let e = self.err(ErrorKind::Truncated);
        self.c.u8().ok_or(e)
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let e = self.err(ErrorKind::Truncated);
        self.c.u32_be().ok_or(e)
    }
    fn bool(&mut self) -> Result<bool, Error> {
        Ok(self.u8()? != 0)
    }
    fn string(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()?;
        let e = self.err(ErrorKind::BadLength(n));
        self.c.take(n as usize).ok_or(e)
    }
    fn rest(&mut self) -> &'a [u8] {
        let r = self.c.remaining();
        let _ = self.c.take(r.len());
        r
    }
}

/// Parses one connection-protocol message payload.
pub fn parse_message(payload: &[u8]) -> Result<Message<'_>, Error> {
    let mut r = Reader {
        c: Cursor::new(payload),
    };
    let number = r.c.u8().ok_or_else(|| Error::new(ErrorKind::Empty, 0))?;
    Ok(match number {
        80 => Message::GlobalRequest {
            name: r.string()?,
            want_reply: r.bool()?,
            data: r.rest(),
        },
        90 => Message::ChannelOpen {
            channel_type: r.string()?,
            sender: r.u32()?,
            window: r.u32()?,
            max_packet: r.u32()?,
            data: r.rest(),
        },
        91 => {
            let (recipient, sender) = (r.u32()?, r.u32()?);
            Message::ChannelOpenConfirmation { recipient, sender }
        }
        92 => Message::ChannelOpenFailure {
            recipient: r.u32()?,
            reason: r.u32()?,
            description: r.string()?,
        },
        93 => Message::WindowAdjust {
            recipient: r.u32()?,
            bytes: r.u32()?,
        },
        94 => Message::Data {
            recipient: r.u32()?,
            data: r.string()?,
        },
        95 => Message::ExtendedData {
            recipient: r.u32()?,
            code: r.u32()?,
            data: r.string()?,
        },
        96 => Message::Eof(r.u32()?),
        97 => Message::Close(r.u32()?),
        98 => {
            let recipient = r.u32()?;
            let kind = r.string()?;
            let want_reply = r.bool()?;
            let request = match kind {
                b"exec" => ChannelRequest::Exec(r.string()?),
                b"shell" => ChannelRequest::Shell,
                b"pty-req" => ChannelRequest::PtyReq {
                    term: r.string()?,
                    cols: r.u32()?,
                    rows: r.u32()?,
                },
                b"env" => ChannelRequest::Env {
                    name: r.string()?,
                    value: r.string()?,
                },
                b"subsystem" => ChannelRequest::Subsystem(r.string()?),
                b"exit-status" => ChannelRequest::ExitStatus(r.u32()?),
                b"exit-signal" => ChannelRequest::ExitSignal(r.string()?),
                b"window-change" => ChannelRequest::WindowChange {
                    cols: r.u32()?,
                    rows: r.u32()?,
                },
                other => ChannelRequest::Other(other, r.rest()),
            };
            Message::ChannelRequest {
                recipient,
                want_reply,
                request,
            }
        }
        99 => Message::ChannelSuccess(r.u32()?),
        100 => Message::ChannelFailure(r.u32()?),
        n => Message::Other(n, r.rest()),
    })
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Encodes SSH_MSG_CHANNEL_DATA.
pub fn encode_data(recipient: u32, data: &[u8], out: &mut Vec<u8>) {
    out.push(94);
    out.extend_from_slice(&recipient.to_be_bytes());
    string(out, data);
}

/// Encodes SSH_MSG_CHANNEL_EXTENDED_DATA (code 1: stderr).
pub fn encode_extended_data(recipient: u32, code: u32, data: &[u8], out: &mut Vec<u8>) {
    out.push(95);
    out.extend_from_slice(&recipient.to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    string(out, data);
}

/// Encodes SSH_MSG_CHANNEL_FAILURE: the answer to a refused request.
pub fn encode_channel_failure(recipient: u32, out: &mut Vec<u8>) {
    out.push(100);
    out.extend_from_slice(&recipient.to_be_bytes());
}

/// Encodes an `exit-status` channel request.
pub fn encode_exit_status(recipient: u32, status: u32, out: &mut Vec<u8>) {
    out.push(98);
    out.extend_from_slice(&recipient.to_be_bytes());
    string(out, b"exit-status");
    out.push(0);
    out.extend_from_slice(&status.to_be_bytes());
}

/// Encodes an `exec` channel request (what a client sends; useful to tests and replays).
pub fn encode_channel_request_exec(recipient: u32, want_reply: bool, command: &[u8], out: &mut Vec<u8>) {
    out.push(98);
    out.extend_from_slice(&recipient.to_be_bytes());
    string(out, b"exec");
    out.push(u8::from(want_reply));
    string(out, command);
}

/// Encodes an `env` channel request.
pub fn encode_channel_request_env(recipient: u32, want_reply: bool, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(98);
    out.extend_from_slice(&recipient.to_be_bytes());
    string(out, b"env");
    out.push(u8::from(want_reply));
    string(out, name);
    string(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: &[u8], body: &[u8]) -> Vec<u8> {
        let mut p = vec![98, 0, 0, 0, 3];
        string(&mut p, kind);
        p.push(1);
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn channel_requests() {
        let mut env = Vec::new();
        string(&mut env, b"AWS_PROFILE");
        string(&mut env, b"prod");
        assert_eq!(
            parse_message(&req(b"env", &env)),
            Ok(Message::ChannelRequest {
                recipient: 3,
                want_reply: true,
                request: ChannelRequest::Env {
                    name: b"AWS_PROFILE",
                    value: b"prod"
                }
            })
        );
        let mut sub = Vec::new();
        string(&mut sub, b"sftp");
        assert!(matches!(
            parse_message(&req(b"subsystem", &sub)),
            Ok(Message::ChannelRequest {
                request: ChannelRequest::Subsystem(b"sftp"),
                ..
            })
        ));
        assert!(matches!(
            parse_message(&req(b"shell", b"")),
            Ok(Message::ChannelRequest {
                request: ChannelRequest::Shell,
                ..
            })
        ));
        let mut pty = Vec::new();
        string(&mut pty, b"xterm");
        for n in [80u32, 24, 0, 0] {
            pty.extend_from_slice(&n.to_be_bytes());
        }
        string(&mut pty, b"");
        assert!(matches!(
            parse_message(&req(b"pty-req", &pty)),
            Ok(Message::ChannelRequest {
                request: ChannelRequest::PtyReq {
                    term: b"xterm",
                    cols: 80,
                    rows: 24
                },
                ..
            })
        ));
    }

    #[test]
    fn channel_lifecycle_and_encoders() {
        let mut open = vec![90];
        string(&mut open, b"session");
        for n in [0u32, 2_097_152, 32_768] {
            open.extend_from_slice(&n.to_be_bytes());
        }
        assert_eq!(
            parse_message(&open),
            Ok(Message::ChannelOpen {
                channel_type: b"session",
                sender: 0,
                window: 2_097_152,
                max_packet: 32_768,
                data: b""
            })
        );
        let mut out = Vec::new();
        encode_data(5, b"output", &mut out);
        assert_eq!(
            parse_message(&out),
            Ok(Message::Data {
                recipient: 5,
                data: b"output"
            })
        );
        out.clear();
        encode_extended_data(5, 1, b"err", &mut out);
        assert_eq!(
            parse_message(&out),
            Ok(Message::ExtendedData {
                recipient: 5,
                code: 1,
                data: b"err"
            })
        );
        out.clear();
        encode_exit_status(5, 126, &mut out);
        assert_eq!(
            parse_message(&out),
            Ok(Message::ChannelRequest {
                recipient: 5,
                want_reply: false,
                request: ChannelRequest::ExitStatus(126)
            })
        );
        out.clear();
        encode_channel_failure(5, &mut out);
        assert_eq!(parse_message(&out), Ok(Message::ChannelFailure(5)));
        assert_eq!(parse_message(&[96, 0, 0, 0, 5]), Ok(Message::Eof(5)));
        assert_eq!(parse_message(&[97, 0, 0, 0, 5]), Ok(Message::Close(5)));
    }

    #[test]
    fn malformed_payloads() {
        assert_eq!(parse_message(&[]).map_err(|e| e.kind()), Err(ErrorKind::Empty));
        assert_eq!(
            parse_message(&[94, 0, 0]).map_err(|e| e.kind()),
            Err(ErrorKind::Truncated)
        );
        let e = parse_message(&[94, 0, 0, 0, 1, 0, 0, 1, 0, b'x']).expect_err("long string");
        assert_eq!((e.kind(), e.offset()), (ErrorKind::BadLength(256), 9));
        let mut seed = 0x1234_5678_9ABC_DEF0u64;
        for _ in 0..20_000 {
            let mut v = vec![90 + (seed % 12) as u8];
            for _ in 0..(seed % 30) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                v.push((seed >> 32) as u8 % 8);
            }
            seed = seed.wrapping_add(1);
            let _ = parse_message(&v);
        }
    }
}
