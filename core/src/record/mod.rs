//! Session recording: every interaction of a session as an append-only, hash-chained, signed
//! log an auditor can verify offline.
//!
//! A [`Recorder`] writes one JSON object per line ([format version](FORMAT_VERSION) 1, the
//! schema is `schema/recording-v1.json`). Every record carries `seq` (0, 1, 2, …) and `prev`, the
//! SHA-256 of the previous line's bytes as written (the first record's `prev` is the hash of the
//! session id and the signing key's id, so a record cannot move to another session). Signed
//! checkpoints (Ed25519 over the session id, the checkpoint's `seq` and its `prev`) are written
//! every [`RecordOptions::checkpoint_every`] records, after
//! [`RecordOptions::checkpoint_interval`], and at [`Recorder::close`]; a signature covers every
//! record before it through the chain. [`verify`] names the first record that breaks any of this.
//!
//! A long session can be split into parts ([`RecordOptions::rotate_bytes`],
//! [`RecordOptions::rotate_interval`]; a [`FileSink`] writes each part to its own file). A part
//! ends with a signed checkpoint naming the next part, and the next begins with a `continue`
//! record chained to it, so the parts form one chain: [`verify_parts`] checks them together, and
//! a missing, reordered or foreign part is named like any other bad record.
//!
//! What is written never holds a secret: commands, reasons and messages pass through the
//! session's detector before they are written, and server output is recorded as the session
//! forwarded it (already masked). The recording holds approval ids, never grant tokens.
//!
//! ```
//! use std::sync::Arc;
//!
//! use sluice_core::record::{MemorySink, RecordOptions, Recorder, SessionStart, verify};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
//! let sink = MemorySink::default();
//! let start = SessionStart::new("sql").user("agent-7").target("orders");
//! let rec = Recorder::start(Box::new(sink.clone()), &key, start, RecordOptions::default())?;
//! rec.notice("sql", "connected");
//! rec.close()?;
//!
//! let report = verify(&sink.contents(), Some(&key.verifying_key()));
//! assert!(report.is_ok(), "{report}");
//! assert_eq!(report.records, 4); // start, notice, end, the closing checkpoint
//! # Ok(()) }
//! ```

mod fields;
mod replay;
mod sink;
mod verify;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use std::borrow::Cow;

use fields::{F, Fields};
use sha2::{Digest, Sha256};

use crate::Detector;
use crate::policy::{Decision, Request, SshRequest};

pub use replay::{Transcript, asciicast, transcript};
pub use sink::{CallbackSink, FileSink, MemorySink, Sink};
pub use verify::{Problem, Report, verify, verify_parts};

/// The recording format's version (`v` in every record).
pub const FORMAT_VERSION: u64 = 1;

/// When a batch's records are handed to the sink's storage ([`Recorder::end_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Now, with every record held before: the host is about to forward something.
    Now,
    /// With the next batch written now, a checkpoint, a tick or the close.
    Later,
}

/// When the recorder asks the sink to make records durable (`fsync` for files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fsync {
    /// After every record: nothing acknowledged is lost, at the cost of a sync per event.
    Every,
    /// After every checkpoint (and at close): a crash loses at most the unsigned tail.
    #[default]
    Checkpoint,
    /// Never: the operating system decides.
    Never,
}

impl std::str::FromStr for Fsync {
    type Err = String;
    /// The lowercase name: every, checkpoint or never.
    fn from_str(s: &str) -> Result<Fsync, String> {
        match s {
            "every" => Ok(Fsync::Every),
            "checkpoint" => Ok(Fsync::Checkpoint),
            "never" => Ok(Fsync::Never),
            other => Err(format!("fsync: `{other}` is not one of every, checkpoint, never")),
        }
    }
}

/// How a recorder writes.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// When to sync the sink.
    pub fsync: Fsync,
    /// A signed checkpoint after this many records (at least 1).
    pub checkpoint_every: u64,
    /// A signed checkpoint when a record is written this long after the last one.
    pub checkpoint_interval: Duration,
    /// A recorder that cannot write (full disk, failing sink) refuses new commands (`true`, the
    /// default) or lets the session go on unrecorded (`false`).
    pub fail_closed: bool,
    /// Start a new part ([`Sink::rotate`]: a new file) once a part holds this many bytes.
    pub rotate_bytes: Option<u64>,
    /// Start a new part when a record is written this long after the part began.
    pub rotate_interval: Option<Duration>,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            fsync: Fsync::Checkpoint,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            fail_closed: true,
            rotate_bytes: None,
            rotate_interval: None,
        }
    }
}

/// What the first record says of a session.
#[derive(Debug, Clone, Default)]
pub struct SessionStart {
    protocol: String,
    user: Option<String>,
    target: Option<String>,
    policy: Option<(String, String)>,
    session: Option<String>,
}

impl SessionStart {
    /// A session of `protocol` (`sql`, `shell`, `http`, `mcp`, `ssh`, or a host's own name).
    pub fn new(protocol: impl Into<String>) -> SessionStart {
        SessionStart {
            protocol: protocol.into(),
            ..SessionStart::default()
        }
    }

    /// Who acts, when known at the start.
    pub fn user(mut self, user: impl Into<String>) -> SessionStart {
        self.user = Some(user.into());
        self
    }

    /// Against what, when known at the start.
    pub fn target(mut self, target: impl Into<String>) -> SessionStart {
        self.target = Some(target.into());
        self
    }

    /// The policy in force: its name and its digest ([`crate::policy::Engine::digest`]).
    pub fn policy(mut self, name: impl Into<String>, digest: impl Into<String>) -> SessionStart {
        self.policy = Some((name.into(), digest.into()));
        self
    }

    /// The session id (default: 16 random bytes, hex).
    pub fn session_id(mut self, id: impl Into<String>) -> SessionStart {
        self.session = Some(id.into());
        self
    }
}

/// Why recording failed.
#[derive(Debug, Clone)]
pub struct RecordError {
    message: String,
}

impl RecordError {
    fn new(message: impl Into<String>) -> RecordError {
        RecordError {
            message: message.into(),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "recording failed: {}", self.message)
    }
}

impl std::error::Error for RecordError {}

/// The id of a public key in recordings: the first 16 hex digits of its SHA-256.
pub fn key_id(key: &ed25519_dalek::VerifyingKey) -> String {
    hex(&Sha256::digest(key.as_bytes()))[..16].to_string()
}

/// The `prev` of a session's first record.
pub(crate) fn genesis(session: &str, key_id: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"sluice-record/1\0");
    h.update(session.as_bytes());
    h.update(b"\0");
    h.update(key_id.as_bytes());
    h.finalize().into()
}

/// What a checkpoint signs: the session id and the checkpoint record without its `sig`, in
/// its canonical encoding (which holds its `seq` and `prev`, the hash of everything before).
pub(crate) fn checkpoint_message(session: &str, record: &[u8]) -> Vec<u8> {
    let mut m = format!("sluice-record/1 checkpoint\0{session}\0").into_bytes();
    m.extend_from_slice(record);
    m
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Records one session. Shared by the session's [`Guard`](crate::session::Guard) (writes are
/// serialised by a mutex nobody else contends for); closed by [`close`](Recorder::close) or,
/// best effort, when dropped.
pub struct Recorder {
    state: Mutex<State>,
    detector: Option<Arc<Detector>>,
    /// Texts masked lately and what they became (`None`: nothing to mask). A client repeats
    /// its statements (prepared ones above all), so most commands are masked once. (A fast
    /// hash of text the agent chooses: at most [`MASK_MEMO`] entries, so colliding keys cost
    /// little.)
    masked: Mutex<rustc_hash::FxHashMap<Box<str>, Option<Box<str>>>>,
    fail_closed: bool,
}

/// How many masked texts a recorder remembers (forgotten all at once when full), and the
/// longest it remembers.
const MASK_MEMO: usize = 64;
const MASK_MEMO_TEXT: usize = 4096;

struct State {
    sink: Box<dyn Sink>,
    key: SigningKey,
    session: String,
    seq: u64,
    prev: [u8; 32],
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// The part being written (0 first), its size so far and when it began.
    part: u64,
    part_bytes: u64,
    part_started: Instant,
    /// What the `start` and `continue` records say of the signer.
    signer: (String, String),
    opts: RecordOptions,
    failed: Option<String>,
    closed: bool,
    /// Inside a batch ([`Recorder::begin_batch`]): records are flushed at its end.
    batching: bool,
    /// Recording failed inside the current batch.
    failed_in_batch: bool,
    buf: Vec<u8>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("Recorder")
            .field("session", &s.session)
            .field("seq", &s.seq)
            .field("failed", &s.failed)
            .field("closed", &s.closed)
            .finish()
    }
}

impl Recorder {
    /// Starts a recording: writes the first record (the session, the key's id and public key,
    /// what `start` says) to `sink`.
    pub fn start(
        sink: Box<dyn Sink>,
        key: &SigningKey,
        start: SessionStart,
        opts: RecordOptions,
    ) -> Result<Recorder, RecordError> {
        let session = match start.session {
            Some(s) => s,
            None => {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id).map_err(|e| RecordError::new(format!("OS randomness: {e}")))?;
                hex(&id)
            }
        };
        let public = key.verifying_key();
        let kid = key_id(&public);
        let mut opts = opts;
        opts.checkpoint_every = opts.checkpoint_every.max(1);
        let fail_closed = opts.fail_closed;
        let state = State {
            sink,
            key: key.clone(),
            prev: genesis(&session, &kid),
            session: session.clone(),
            seq: 0,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            part: 0,
            part_bytes: 0,
            part_started: Instant::now(),
            signer: (kid.clone(), STANDARD.encode(public.as_bytes())),
            opts,
            failed: None,
            closed: false,
            batching: false,
            failed_in_batch: false,
            buf: Vec::with_capacity(512),
        };
        let rec = Recorder {
            state: Mutex::new(state),
            detector: None,
            masked: Mutex::new(rustc_hash::FxHashMap::default()),
            fail_closed,
        };
        let mut body = Fields::new()
            .with("session", session.as_str())
            .with("signer", kid.as_str())
            .with("signer_ed25519", STANDARD.encode(public.as_bytes()))
            .with("protocol", start.protocol.as_str());
        if let Some(u) = &start.user {
            body.set("user", u.as_str());
        }
        if let Some(t) = &start.target {
            body.set("target", t.as_str());
        }
        if let Some((name, digest)) = &start.policy {
            body.set(
                "policy",
                Fields::new()
                    .with("name", name.as_str())
                    .with("digest", digest.as_str()),
            );
        }
        {
            let mut s = rec.lock();
            s.append("start", body)?;
            s.sync_at(SyncPoint::Checkpoint)?;
        }
        Ok(rec)
    }

    /// Masks what is written with `detector` (commands, reasons, messages, output): a secret
    /// the detector knows never reaches the recording.
    pub fn with_detector(mut self, detector: Arc<Detector>) -> Recorder {
        self.detector = Some(detector);
        self
    }

    /// The session id.
    pub fn session_id(&self) -> String {
        self.lock().session.clone()
    }

    /// Why recording stopped, if it did (the sink failed, or the recording was closed).
    pub fn failure(&self) -> Option<String> {
        let s = self.lock();
        s.failed
            .as_ref()
            .map(|f| format!("recording failed: {f}"))
            .or_else(|| s.closed.then(|| "the recording is closed".to_string()))
    }

    /// Whether a failed recorder should stop the session's new commands.
    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }

    /// Records a decision on `request` (`command` as the session shows it).
    pub fn decision(&self, request: &Request<'_>, user: &str, target: &str, command: &str, d: &Decision) {
        let masked = self.mask(command);
        let mut body = Fields::new()
            .with("protocol", request.protocol().as_str())
            .with("user", self.mask(user))
            .with("target", self.mask(target))
            .with("request", self.request(request, command, &masked))
            .with("command", masked.clone())
            .with("action", d.action().as_str())
            .with("rule", d.rule())
            .with("reason", self.mask(d.reason()))
            .with("uncertain", d.uncertain());
        if let Some(a) = d.approval() {
            // The request's id and what it asks; never a token.
            body.set(
                "approval",
                Fields::new().with("id", a.id.as_str()).with("rule", a.rule.as_deref()),
            );
        }
        self.write("decision", body);
    }

    /// Records that `count` values were masked in a response.
    pub fn masked(&self, protocol: &str, count: usize) {
        self.write(
            "masked",
            Fields::new().with("protocol", protocol).with("count", count as u64),
        );
    }

    /// Records something notable that is not a decision.
    pub fn notice(&self, protocol: &str, message: &str) {
        self.write(
            "notice",
            Fields::new()
                .with("protocol", protocol)
                .with("message", self.mask(message)),
        );
    }

    /// Records bytes sent to the client as forwarded: the session masked them (they are not
    /// masked again, which would mask the placeholders). Text is kept as text; other bytes as
    /// base64.
    pub fn output(&self, protocol: &str, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut body = Fields::new().with("protocol", protocol);
        match std::str::from_utf8(bytes) {
            Ok(t) => body.set("text", t),
            Err(_) => body.set("data", STANDARD.encode(bytes)),
        }
        self.write("output", body);
    }

    /// Records an error that ends the session.
    pub fn error(&self, protocol: &str, side: &str, reason: &str) {
        self.write(
            "error",
            Fields::new()
                .with("protocol", protocol)
                .with("side", side)
                .with("reason", self.mask(reason)),
        );
    }

    /// Ends the recording: an `end` record and a final signed checkpoint, synced. Later
    /// records are refused; closing twice is a no-op.
    pub fn close(&self) -> Result<(), RecordError> {
        let mut s = self.lock();
        if s.closed {
            return Ok(());
        }
        if let Some(f) = &s.failed {
            return Err(RecordError::new(f.clone()));
        }
        let r = s
            .append("end", Fields::new())
            .and_then(|()| s.checkpoint(Seal::Final))
            .and_then(|()| s.sync_at(SyncPoint::Close));
        s.closed = true;
        r
    }

    fn write(&self, kind: &'static str, body: Fields<'_>) {
        let mut s = self.lock();
        if s.closed || s.failed.is_some() {
            return;
        }
        let r = s
            .append(kind, body)
            .and_then(|()| s.after_record())
            .and_then(|()| if s.batching { Ok(()) } else { s.flush() });
        if let Err(e) = r {
            s.failed = Some(e.message);
            s.failed_in_batch = s.batching;
        }
    }

    /// Starts a batch: the records written until [`end_batch`](Recorder::end_batch) reach the
    /// sink's buffer and are flushed together (one write for a session input's records). The
    /// sessions batch each input, ending it before the host forwards anything.
    pub fn begin_batch(&self) {
        self.lock().batching = true;
    }

    /// Ends a batch. With [`Write::Now`] every record so far is handed to the operating
    /// system (the sessions ask for this before the host forwards anything to the server);
    /// with [`Write::Later`] they stay in the sink's buffer until the next batch written now,
    /// a checkpoint, a [`tick`](Recorder::tick) or the close. An error means recording failed
    /// (during this batch, or writing records held from earlier ones), so some records are
    /// not written and the host must not forward what the batch produced. A recorder that had
    /// failed before the batch writes nothing and returns `Ok`: its decisions were refused as
    /// they were made.
    pub fn end_batch(&self, write: Write) -> Result<(), RecordError> {
        let mut s = self.lock();
        s.batching = false;
        let during = std::mem::take(&mut s.failed_in_batch);
        if let Some(f) = &s.failed {
            return if during {
                Err(RecordError::new(f.clone()))
            } else {
                Ok(())
            };
        }
        if s.closed || write == Write::Later {
            return Ok(());
        }
        let r = s.flush();
        if let Err(e) = &r {
            s.failed = Some(e.message.clone());
        }
        r
    }

    /// Writes what time has made due while no record came: a checkpoint over records written
    /// more than [`RecordOptions::checkpoint_interval`] ago, or a new part. A host calls this
    /// now and then (the example proxies every second) so an idle session's tail is signed
    /// and records held by [`Write::Later`] batches reach the file.
    pub fn tick(&self) {
        let mut s = self.lock();
        if s.closed || s.failed.is_some() {
            return;
        }
        if let Err(e) = s.after_record().and_then(|()| s.flush()) {
            s.failed = Some(e.message);
            // A batch open on another thread lost records too: its end must say so.
            s.failed_in_batch = s.batching;
        }
    }

    fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(d) = &self.detector else {
            return Cow::Borrowed(text);
        };
        let remember = text.len() <= MASK_MEMO_TEXT;
        if remember {
            let memo = self.masked.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(m) = memo.get(text) {
                return m.as_deref().map_or(Cow::Borrowed(text), |m| Cow::Owned(m.to_owned()));
            }
        }
        let masked = match d.redact(text.as_bytes()) {
            // Nothing found: the text as it is, not copied.
            Cow::Borrowed(_) => None,
            Cow::Owned(m) => Some(String::from_utf8_lossy(&m).into_owned()),
        };
        if remember {
            let mut memo = self.masked.lock().unwrap_or_else(|p| p.into_inner());
            if memo.len() >= MASK_MEMO {
                memo.clear();
            }
            memo.insert(text.into(), masked.as_deref().map(Into::into));
        }
        masked.map_or(Cow::Borrowed(text), Cow::Owned)
    }

    /// What `sluice record audit` needs to decide the request again (masked like the rest).
    fn request<'t>(&self, r: &Request<'t>, command: &str, masked_command: &Cow<'t, str>) -> F<'t> {
        // The request's text is usually the command itself: masked once.
        let mask = |t: &'t str| -> Cow<'t, str> {
            if t == command {
                masked_command.clone()
            } else {
                self.mask(t)
            }
        };
        let f = Fields::new();
        F::from(match *r {
            Request::Shell(cmd) => f.with("shell", mask(cmd)),
            Request::Sql { text, dialect, .. } => {
                let dialect = match dialect {
                    sluice_protocols::sql::Dialect::MySql => "mysql",
                    sluice_protocols::sql::Dialect::Postgres => "postgres",
                    _ => "unknown",
                };
                f.with("sql", mask(text)).with("dialect", dialect)
            }
            Request::Http(h) => f.with("method", h.method).with("url", mask(h.url)),
            Request::Mcp(m) => {
                let text = String::from_utf8_lossy(m);
                let masked = if text == command {
                    masked_command.clone()
                } else {
                    Cow::Owned(self.mask(&text).into_owned())
                };
                f.with("mcp", masked)
            }
            Request::Ssh(SshRequest::Exec(cmd)) => f.with("ssh_exec", mask(cmd)),
            Request::Ssh(SshRequest::Subsystem(name)) => f.with("ssh_subsystem", name),
            Request::Ssh(SshRequest::Shell) => f.with("ssh_shell", true),
            _ => return F::Null,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while writing leaves the state as it was before that record: still usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// What a checkpoint closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seal {
    /// Nothing: the recording goes on.
    Checkpoint,
    /// The recording (after its `end` record).
    Final,
    /// This part; the recording goes on in the part numbered.
    Part(u64),
}

/// Where the recorder may sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncPoint {
    Record,
    Checkpoint,
    /// Closing the recording: always synced.
    Close,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl State {
    /// Adds the fields every record has: `v`, `seq`, `time`, `type` and `prev`.
    fn stamp<'a>(&self, kind: &'static str, body: &mut Fields<'a>) {
        body.set("v", FORMAT_VERSION);
        body.set("seq", self.seq);
        body.set("time", now_ms());
        body.set("type", kind);
        body.set("prev", hex(&self.prev));
    }

    /// Writes one record: `body` and the fields every record has.
    fn append(&mut self, kind: &'static str, mut body: Fields<'_>) -> Result<(), RecordError> {
        self.stamp(kind, &mut body);
        self.write_line(&mut body)
    }

    /// Writes a stamped record in its canonical encoding (compact JSON, keys in order).
    fn write_line(&mut self, body: &mut Fields<'_>) -> Result<(), RecordError> {
        self.buf.clear();
        body.write(&mut self.buf);
        let hash: [u8; 32] = Sha256::digest(&self.buf).into();
        self.buf.push(b'\n');
        self.sink
            .write(&self.buf)
            .map_err(|e| RecordError::new(format!("writing record {}: {e}", self.seq)))?;
        self.prev = hash;
        self.seq += 1;
        self.since_checkpoint += 1;
        self.part_bytes += self.buf.len() as u64;
        Ok(())
    }

    /// After a record (or on a tick): a checkpoint or a new part when one is due, else the
    /// per-record sync.
    fn after_record(&mut self) -> Result<(), RecordError> {
        let o = &self.opts;
        let rotate = o.rotate_bytes.is_some_and(|n| self.part_bytes >= n)
            || o.rotate_interval.is_some_and(|t| self.part_started.elapsed() >= t);
        if rotate {
            return self.rotate();
        }
        let due = self.since_checkpoint >= o.checkpoint_every
            || (self.since_checkpoint > 0 && self.last_checkpoint.elapsed() >= o.checkpoint_interval);
        if due {
            self.checkpoint(Seal::Checkpoint)
        } else {
            self.sync_at(SyncPoint::Record)
        }
    }

    /// Ends this part with a checkpoint naming the next, and begins the next with a `continue`
    /// record chained to it.
    fn rotate(&mut self) -> Result<(), RecordError> {
        let next = self.part + 1;
        self.checkpoint(Seal::Part(next))?;
        self.sync_at(SyncPoint::Close)?;
        self.sink
            .rotate(next)
            .map_err(|e| RecordError::new(format!("starting part {next}: {e}")))?;
        self.part = next;
        self.part_bytes = 0;
        self.part_started = Instant::now();
        let (session, signer) = (self.session.clone(), self.signer.clone());
        let body = Fields::new()
            .with("session", session.as_str())
            .with("signer", signer.0.as_str())
            .with("signer_ed25519", signer.1.as_str())
            .with("part", next);
        self.append("continue", body)?;
        self.sync_at(SyncPoint::Checkpoint)
    }

    /// A checkpoint: its own fields (and through `prev`, every record before it) signed.
    fn checkpoint(&mut self, seal: Seal) -> Result<(), RecordError> {
        let mut body = Fields::new();
        match seal {
            Seal::Checkpoint => {}
            Seal::Final => body.set("final", true),
            Seal::Part(next) => body.set("next_part", next),
        }
        self.stamp("checkpoint", &mut body);
        let mut signed = Vec::with_capacity(256);
        body.write(&mut signed);
        let sig = self.key.sign(&checkpoint_message(&self.session, &signed));
        body.set("sig", STANDARD.encode(sig.to_bytes()));
        self.write_line(&mut body)?;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        self.sync_at(SyncPoint::Checkpoint)
    }

    /// Hands the sink's buffer to the operating system.
    fn flush(&mut self) -> Result<(), RecordError> {
        self.sink
            .flush()
            .map_err(|e| RecordError::new(format!("writing records before {}: {e}", self.seq)))
    }

    /// Syncs when the fsync policy asks for it at this point.
    fn sync_at(&mut self, at: SyncPoint) -> Result<(), RecordError> {
        let sync = match self.opts.fsync {
            Fsync::Every => true,
            Fsync::Checkpoint => at != SyncPoint::Record,
            Fsync::Never => at == SyncPoint::Close,
        };
        if sync {
            self.sink
                .sync()
                .map_err(|e| RecordError::new(format!("syncing: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
