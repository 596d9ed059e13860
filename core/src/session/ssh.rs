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
//! - Keystrokes of an interactive shell, a subsystem's protocol and a port forward's stream are
//!   opaque: `shell`, `subsystem` and channel opens other than `session` (`direct-tcpip` by its
//!   `host:port`, agent, X11) are allowed only by a rule that names them, otherwise `uncertain`.
//! - Every message type is handled explicitly; a channel the session did not see opened, a
//!   server-initiated channel, or an unknown message ends the session or is refused.

use std::collections::HashMap;
use std::sync::Arc;

use std::borrow::Cow;

use sluice_protocols::ssh::{self, ChannelRequest, Message};

use super::{Event, Guard, SessionError, Side, refusal_verb};
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

    /// One message payload from the client. Every message type is handled explicitly:
    /// channel opens other than `session` (port forwards, agent and X11 channels) and global
    /// forwarding requests are decided by policy (opaque: allowed only by a rule that names
    /// them, otherwise `uncertain`); `exec`, `env`, `subsystem` and `shell` requests are
    /// decided; data goes only to channels the session opened; anything else ends the session.
    pub fn client_message(&mut self, payload: &[u8], out: &mut SshOutput) -> Result<(), SessionError> {
        let sent = (out.to_client.len(), out.to_server.len());
        self.guard.handling();
        let r = self.handle_client_message(payload, out);
        self.recorded(sent, out, r)
    }

    fn handle_client_message(&mut self, payload: &[u8], out: &mut SshOutput) -> Result<(), SessionError> {
        let m = ssh::parse_message(payload).map_err(|e| SessionError::rejected(Side::Client, e))?;
        match m {
            Message::ChannelOpen {
                channel_type,
                sender,
                window,
                data,
                ..
            } => {
                let kind =
                    std::str::from_utf8(channel_type).map_err(|_| SessionError::client("channel type is not UTF-8"))?;
                let (req, command) = match kind {
                    "session" => (None, String::new()),
                    "direct-tcpip" => {
                        let (host, port) = forward_target(data)?;
                        let host =
                            std::str::from_utf8(host).map_err(|_| SessionError::client("forward host is not UTF-8"))?;
                        let r = SshRequest::Forward { host, port };
                        (Some(r), crate::policy::grant::describe_ssh(&r))
                    }
                    other => (Some(SshRequest::Channel(other)), format!("channel {other}")),
                };
                if let Some(r) = req {
                    let d = self
                        .guard
                        .decide(&self.identity, &self.target, &Request::Ssh(r), &command, None);
                    if d.action() != Action::Allow {
                        let mut f = Vec::new();
                        let why = format!("sluice: {}: {}", refusal_verb(&d), d.reason());
                        encode_open_failure(sender, &why, &mut f);
                        out.to_client.push(f);
                        return Ok(());
                    }
                }
                if self.opening.insert(sender, u64::from(window)).is_some()
                    || self.channels.values().any(|c| c.client_id == sender)
                {
                    return Err(SessionError::client(format!("channel {sender} opened twice")));
                }
            }
            Message::WindowAdjust { recipient, bytes } => {
                if let Some(c) = self.channels.get_mut(&recipient) {
                    c.window += u64::from(bytes);
                    flush(c, &mut out.to_client);
                } else {
                    return Err(SessionError::client(format!(
                        "window adjust for unknown channel {recipient}"
                    )));
                }
            }
            Message::Data { recipient, .. } | Message::ExtendedData { recipient, .. } => {
                // Stdin of a command, shell or forward that was decided when it was opened.
                if !self.channels.contains_key(&recipient) {
                    return Err(SessionError::client(format!("data for unknown channel {recipient}")));
                }
            }
            Message::Eof(recipient) | Message::Close(recipient) => {
                if !self.channels.contains_key(&recipient) {
                    return Err(SessionError::client(format!(
                        "EOF or close of unknown channel {recipient}"
                    )));
                }
            }
            Message::ChannelRequest {
                recipient,
                want_reply,
                request,
            } => {
                if !self.channels.contains_key(&recipient) {
                    return Err(SessionError::client(format!("request on unknown channel {recipient}")));
                }
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
                    // A terminal and its size carry no command.
                    ChannelRequest::PtyReq { .. } | ChannelRequest::WindowChange { .. } => (None, String::new()),
                    ChannelRequest::ExitStatus(_) | ChannelRequest::ExitSignal(_) => {
                        return Err(SessionError::client("exit status from the client"));
                    }
                    // Agent and X11 forwarding, signals, anything else: by name.
                    ChannelRequest::Other(name, _) => {
                        let name =
                            std::str::from_utf8(name).map_err(|_| SessionError::client("request name is not UTF-8"))?;
                        if matches!(name, "signal" | "break" | "xon-xoff" | "eow@openssh.com") {
                            (None, String::new())
                        } else {
                            (Some(SshRequest::Channel(name)), format!("channel {name}"))
                        }
                    }
                    _ => return Err(SessionError::client("a channel request this session does not know")),
                };
                if let Some(r) = req {
                    let mut d = self
                        .guard
                        .decide(&self.identity, &self.target, &Request::Ssh(r), &command, None);
                    // Allowed: the placeholders in an exec command or env value become the
                    // credentials they name, where the policy lets them go to this target.
                    if d.action() == Action::Allow {
                        match self.swap_credentials(recipient, want_reply, &request) {
                            Ok(Some(message)) => {
                                out.to_server.push(message);
                                return Ok(());
                            }
                            Ok(None) => {}
                            Err(refused) => {
                                d = self.guard.refuse(
                                    &self.identity,
                                    &self.target,
                                    &Request::Ssh(r),
                                    &command,
                                    refused.to_string(),
                                );
                            }
                        }
                    }
                    if d.action() != Action::Allow {
                        let client_id = self.channels.get(&recipient).map_or(recipient, |c| c.client_id);
                        let verb = refusal_verb(&d);
                        let mut msg = Vec::new();
                        ssh::encode_extended_data(
                            client_id,
                            1,
                            format!("sluice: {verb}: {}\r\n", d.reason()).as_bytes(),
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
            Message::GlobalRequest { name, want_reply, .. } => {
                let name = std::str::from_utf8(name).map_err(|_| SessionError::client("request name is not UTF-8"))?;
                if !matches!(name, "keepalive@openssh.com" | "no-more-sessions@openssh.com") {
                    // Remote forwards (`tcpip-forward`, `streamlocal-forward@openssh.com`) and
                    // the rest: decided by name, like channel types.
                    let r = SshRequest::Channel(name);
                    let d = self.guard.decide(
                        &self.identity,
                        &self.target,
                        &Request::Ssh(r),
                        &format!("channel {name}"),
                        None,
                    );
                    if d.action() != Action::Allow {
                        if want_reply {
                            out.to_client.push(vec![REQUEST_FAILURE]);
                        }
                        return Ok(());
                    }
                }
            }
            // Answers to the server's own requests.
            Message::ChannelSuccess(_) | Message::ChannelFailure(_) => {}
            Message::Other(REQUEST_SUCCESS | REQUEST_FAILURE, _) => {}
            Message::ChannelOpenConfirmation { .. } | Message::ChannelOpenFailure { .. } => {
                return Err(SessionError::client(
                    "an answer to a channel open the server never sent through",
                ));
            }
            _ => return Err(SessionError::client("a message type this session does not accept")),
        }
        out.to_server.push(payload.to_vec());
        Ok(())
    }

    /// An allowed `exec` or `env` request with its placeholders swapped for credentials
    /// (`None`: no vault, no placeholder, another request). A value swapped into a command must
    /// hold only characters no shell reads specially (letters, digits and `-_.:/+=@%,^`):
    /// anything else (quotes, spaces, `$`, `;`, a backslash, a newline) could end its word or
    /// run a command of its own, so the request is refused.
    fn swap_credentials(
        &self,
        recipient: u32,
        want_reply: bool,
        request: &ChannelRequest<'_>,
    ) -> Result<Option<Vec<u8>>, crate::broker::Refused> {
        let Some(vault) = &self.guard.vault else {
            return Ok(None);
        };
        let mut message = Vec::new();
        match request {
            ChannelRequest::Exec(cmd) => {
                let Ok(cmd) = std::str::from_utf8(cmd) else {
                    return Ok(None);
                };
                for (_, _, name) in crate::broker::placeholders(cmd) {
                    let safe = |v: &[u8]| {
                        v.iter()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@%,^".contains(b))
                    };
                    if vault.get(name).is_some_and(|v| !safe(&v[..])) {
                        return Err(crate::broker::Refused {
                            name: name.to_string(),
                            reason: "its value holds characters a shell reads specially (quotes, spaces, $, ;, …), so it cannot go in a command".into(),
                        });
                    }
                }
                let Cow::Owned(swapped) = self.guard.substitute(Protocol::Ssh, &self.target.name, cmd)? else {
                    return Ok(None);
                };
                ssh::encode_channel_request_exec(recipient, want_reply, swapped.as_bytes(), &mut message);
            }
            ChannelRequest::Env { name, value } => {
                let Ok(text) = std::str::from_utf8(value) else {
                    return Ok(None);
                };
                let Cow::Owned(swapped) = self.guard.substitute(Protocol::Ssh, &self.target.name, text)? else {
                    return Ok(None);
                };
                ssh::encode_channel_request_env(recipient, want_reply, name, swapped.as_bytes(), &mut message);
            }
            _ => return Ok(None),
        }
        Ok(Some(message))
    }

    /// Records what one message sent to the client (the messages from `client` on, joined);
    /// `server` is how many messages went to the server before it.
    fn recorded(
        &self,
        (client, server): (usize, usize),
        out: &SshOutput,
        r: Result<(), SessionError>,
    ) -> Result<(), SessionError> {
        if !self.guard.recording() {
            return r;
        }
        let bytes = out.to_client.get(client..).unwrap_or_default().concat();
        self.guard
            .handled_bytes(Protocol::Ssh, &bytes, out.to_server.len() > server, r)
    }

    /// One message payload from the server.
    pub fn server_message(&mut self, payload: &[u8], out: &mut SshOutput) -> Result<(), SessionError> {
        let sent = (out.to_client.len(), out.to_server.len());
        self.guard.handling();
        let r = self.handle_server_message(payload, out);
        self.recorded(sent, out, r)
    }

    fn handle_server_message(&mut self, payload: &[u8], out: &mut SshOutput) -> Result<(), SessionError> {
        let m = ssh::parse_message(payload).map_err(|e| SessionError::rejected(Side::Server, e))?;
        match m {
            Message::ChannelOpenConfirmation { recipient, sender } => {
                let window = self
                    .opening
                    .remove(&recipient)
                    .ok_or_else(|| SessionError::server(format!("confirmation of unknown channel {recipient}")))?;
                self.channels.insert(
                    sender,
                    Channel {
                        client_id: recipient,
                        window,
                        queued: Vec::new(),
                        out: self.guard.current_detector().shared_stream_redactor(),
                        err: self.guard.current_detector().shared_stream_redactor(),
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
            Message::ChannelOpenFailure {
                recipient, description, ..
            } => {
                self.opening.remove(&recipient);
                let masked = self.guard.current_detector().redact(description);
                if let std::borrow::Cow::Owned(d) = masked {
                    let mut f = Vec::new();
                    encode_open_failure(recipient, &String::from_utf8_lossy(&d), &mut f);
                    out.to_client.push(f);
                    return Ok(());
                }
            }
            Message::ChannelOpen { sender, .. } => {
                // The server opening a channel to the client (a remote forward, agent or X11
                // connection): nothing asked for one through this session.
                let mut f = Vec::new();
                encode_open_failure(sender, "sluice: channels from the server are not accepted", &mut f);
                out.to_server.push(f);
                return Ok(());
            }
            // Channel bookkeeping and the command's end: no text from the server's output.
            Message::WindowAdjust { .. }
            | Message::ChannelSuccess(_)
            | Message::ChannelFailure(_)
            | Message::GlobalRequest { .. }
            | Message::Other(REQUEST_SUCCESS | REQUEST_FAILURE, _) => {}
            Message::ChannelRequest { request, .. } => match request {
                ChannelRequest::ExitStatus(_) | ChannelRequest::ExitSignal(_) => {}
                ChannelRequest::Other(name, _) if name.ends_with(b"@openssh.com") => {}
                _ => return Err(SessionError::server("a channel request the server does not send")),
            },
            _ => return Err(SessionError::server("a message type this session does not accept")),
        }
        out.to_client.push(payload.to_vec());
        Ok(())
    }
}

const REQUEST_SUCCESS: u8 = 81;
const REQUEST_FAILURE: u8 = 82;

/// The host and port of a `direct-tcpip` open (then the originator's address and port).
fn forward_target(data: &[u8]) -> Result<(&[u8], u32), SessionError> {
    let bad = || SessionError::client("malformed direct-tcpip channel open");
    let n = u32::from_be_bytes(data.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    let host = data.get(4..4 + n).ok_or_else(bad)?;
    let port = data.get(4 + n..8 + n).ok_or_else(bad)?;
    Ok((host, u32::from_be_bytes([port[0], port[1], port[2], port[3]])))
}

/// SSH_MSG_CHANNEL_OPEN_FAILURE, administratively prohibited, with `why`.
fn encode_open_failure(recipient: u32, why: &str, out: &mut Vec<u8>) {
    out.push(92);
    out.extend_from_slice(&recipient.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&(why.len() as u32).to_be_bytes());
    out.extend_from_slice(why.as_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
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
