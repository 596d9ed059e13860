//! An SSH session over connection-protocol messages (RFC 4254). The host terminates the SSH
//! transport on both legs (it holds the host key and, for the upstream leg, the credentials) and
//! passes each decrypted message payload in; the session answers with the payloads to send on.
//!
//! - `exec` requests are decided through shell analysis; `env` and `subsystem` requests and
//!   interactive `shell` requests are decided too. A refused request is not forwarded: the client
//!   gets `SSH_MSG_CHANNEL_FAILURE` (when it asked for a reply) and the reason on the channel's
//!   stderr.
//! - Channel output (`data` and `extended data`) is masked by a streaming redactor per channel
//!   and stream, flushed at EOF or close. Because masking changes lengths, the session keeps its
//!   own account of the client's channel window and holds back what does not fit until the
//!   client grants more.
//! - Keystrokes of an interactive shell are passed through: decide shells as a whole.

use std::collections::HashMap;
use std::sync::Arc;

use sluice_protocols::ssh::{self, ChannelRequest, Message};

use super::{Event, Guard, SessionError, refusal_verb};
use crate::StreamRedactor;
use crate::policy::{Action, Identity, Protocol, Request, SshRequest, Target};

/// Payloads to send on, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SshOutput {
    /// To the server.
    pub to_server: Vec<Vec<u8>>,
    /// To the client.
    pub to_client: Vec<Vec<u8>>,
}

struct Channel {
    /// The client's id for this channel (what the server addresses).
    client_id: u32,
    /// Bytes the client can still receive.
    window: u64,
    /// Masked output waiting for window.
    queued: Vec<(Option<u32>, Vec<u8>)>,
    out: StreamRedactor<'static>,
    err: StreamRedactor<'static>,
}

/// One SSH connection.
pub struct SshSession {
    guard: Arc<Guard>,
    identity: Identity,
    target: Target,
    /// Channels the client opened, by the client's id, with their initial window.
    opening: HashMap<u32, u64>,
    /// Open channels, by the server's id.
    channels: HashMap<u32, Channel>,
}

impl std::fmt::Debug for SshSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshSession")
            .field("identity", &self.identity)
            .field("target", &self.target)
            .field("channels", &self.channels.len())
            .finish()
    }
}

impl SshSession {
    /// A session for `identity` on the host `target`.
    pub fn new(guard: Arc<Guard>, identity: Identity, target: Target) -> SshSession {
        SshSession {
            guard,
            identity,
            target,
            opening: HashMap::new(),
            channels: HashMap::new(),
        }
    }

    /// One message payload from the client.
    pub fn client_message(&mut self, payload: &[u8], out: &mut SshOutput) -> Result<(), SessionError> {
        let m = ssh::parse_message(payload).map_err(|e| SessionError::client(e.to_string()))?;
        match m {
            Message::ChannelOpen { sender, window, .. } => {
                self.opening.insert(sender, u64::from(window));
            }
            Message::WindowAdjust { recipient, bytes } => {
                if let Some(c) = self.channels.get_mut(&recipient) {
                    c.window += u64::from(bytes);
                    flush(c, &mut out.to_client);
                }
            }
            Message::ChannelRequest {
                recipient,
                want_reply,
                request,
            } => {
                let (req, command) = match &request {
                    ChannelRequest::Exec(cmd) => {
                        let cmd =
                            std::str::from_utf8(cmd).map_err(|_| SessionError::client("exec command is not UTF-8"))?;
                        (Some(SshRequest::Exec(cmd)), cmd.to_string())
                    }
                    ChannelRequest::Env { name, value } => {
                        let name =
                            std::str::from_utf8(name).map_err(|_| SessionError::client("env name is not UTF-8"))?;
                        (Some(SshRequest::Env { name, value }), format!("env {name}"))
                    }
                    ChannelRequest::Subsystem(s) => {
                        let s = std::str::from_utf8(s).map_err(|_| SessionError::client("subsystem is not UTF-8"))?;
                        (Some(SshRequest::Subsystem(s)), format!("subsystem {s}"))
                    }
                    ChannelRequest::Shell => (Some(SshRequest::Shell), "shell".to_string()),
                    _ => (None, String::new()),
                };
                if let Some(r) = req {
                    let d = self
                        .guard
                        .decide(&self.identity, &self.target, &Request::Ssh(r), &command, None);
                    if d.action != Action::Allow {
                        let client_id = self.channels.get(&recipient).map_or(recipient, |c| c.client_id);
                        let verb = refusal_verb(&d);
                        let mut msg = Vec::new();
                        ssh::encode_extended_data(
                            client_id,
                            1,
                            format!("sluice: {verb}: {}\r\n", d.reason).as_bytes(),
                            &mut msg,
                        );
                        out.to_client.push(msg);
                        if want_reply {
                            let mut f = Vec::new();
                            ssh::encode_channel_failure(client_id, &mut f);
                            out.to_client.push(f);
                        }
                        return Ok(());
                    }
                }
            }
            _ => {}
        }
        out.to_server.push(payload.to_vec());
        Ok(())
    }

    /// One message payload from the server.
    pub fn server_message(&mut self, payload: &[u8], out: &mut SshOutput) -> Result<(), SessionError> {
        let m = ssh::parse_message(payload).map_err(|e| SessionError::server(e.to_string()))?;
        match m {
            Message::ChannelOpenConfirmation { recipient, sender } => {
                let window = self.opening.remove(&recipient).unwrap_or(0);
                self.channels.insert(
                    sender,
                    Channel {
                        client_id: recipient,
                        window,
                        queued: Vec::new(),
                        out: self.guard.detector.shared_stream_redactor(),
                        err: self.guard.detector.shared_stream_redactor(),
                    },
                );
            }
            Message::Data { recipient, data } | Message::ExtendedData { recipient, data, .. } => {
                let code = match m {
                    Message::ExtendedData { code, .. } => Some(code),
                    _ => None,
                };
                let c = self
                    .channels
                    .values_mut()
                    .find(|c| c.client_id == recipient)
                    .ok_or_else(|| SessionError::server(format!("data for unknown channel {recipient}")))?;
                let mut masked = Vec::new();
                let r = if code.is_some() { &mut c.err } else { &mut c.out };
                r.feed(data, &mut masked);
                if masked != data {
                    self.guard.emit(&Event::Masked {
                        protocol: Protocol::Ssh,
                        count: 1,
                    });
                }
                if !masked.is_empty() {
                    c.queued.push((code, masked));
                }
                flush(c, &mut out.to_client);
                return Ok(());
            }
            Message::Eof(recipient) | Message::Close(recipient) => {
                if let Some(c) = self.channels.values_mut().find(|c| c.client_id == recipient) {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    c.out.finish(&mut a);
                    c.err.finish(&mut b);
                    if !a.is_empty() {
                        c.queued.push((None, a));
                    }
                    if !b.is_empty() {
                        c.queued.push((Some(1), b));
                    }
                    // Held-back output is released at the end whatever the window: the channel
                    // is ending and the client must see it all.
                    c.window = u64::MAX / 2;
                    flush(c, &mut out.to_client);
                }
                if matches!(m, Message::Close(_)) {
                    self.channels.retain(|_, c| c.client_id != recipient);
                }
            }
            _ => {}
        }
        out.to_client.push(payload.to_vec());
        Ok(())
    }
}

/// Sends queued output that fits the client's window.
fn flush(c: &mut Channel, out: &mut Vec<Vec<u8>>) {
    while let Some((code, data)) = c.queued.first_mut() {
        if c.window == 0 {
            return;
        }
        let n = (data.len() as u64).min(c.window) as usize;
        let part: Vec<u8> = data.drain(..n).collect();
        let mut msg = Vec::new();
        match code {
            Some(code) => ssh::encode_extended_data(c.client_id, *code, &part, &mut msg),
            None => ssh::encode_data(c.client_id, &part, &mut msg),
        }
        out.push(msg);
        c.window -= n as u64;
        if data.is_empty() {
            c.queued.remove(0);
        }
    }
}
