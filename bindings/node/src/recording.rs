//! Session recording: `engine.recorder(...)` starts one, `check(..., { recorder })` and
//! `session(..., { recorder })` write through it; `verifyRecording`, `replayRecording` and
//! `exportAsciicast` read recordings back.
//!
//! A recording goes to a file, to memory, or to a JavaScript function. Records for a function
//! are queued here and handed to it by the wrapper (`index.js`) on the JavaScript thread as soon
//! as the call that wrote them returns; if the function throws, the wrapper calls `fail`, and
//! the recorder then stops, refusing new commands when it fails closed (the default).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::{Buffer, Either, Uint8Array};
use napi_derive::napi;
use sluice_core::policy::grant;
use sluice_core::record::{self, CallbackSink, FileSink, Fsync, MemorySink, RecordOptions, SessionStart, Sink};

use crate::{Error, err, no_fields};

/// Options for `engine.recorder(options)`.
#[napi(object)]
#[derive(Debug, Default)]
pub struct RecorderOptions {
    /// The Ed25519 secret key that signs (`GrantKey.generateEd25519().toText()`, or
    /// `sluice keygen`'s file's text).
    pub key: String,
    /// A path (created new; a rotated recording's later parts next to it), or none: in
    /// memory (`recorder.data()`) unless the wrapper was given a function.
    pub path: Option<String>,
    /// Hand each record to the JavaScript wrapper (set by `index.js` for `to: function`).
    pub queue: Option<bool>,
    /// The protocol named in the first record (default `host`).
    pub protocol: Option<String>,
    /// The user named in the first record.
    pub user: Option<String>,
    /// The target named in the first record.
    pub target: Option<String>,
    /// The session id (default: a random one).
    pub session_id: Option<String>,
    /// When records are made durable: `every`, `checkpoint` (default) or `never`.
    pub fsync: Option<String>,
    /// A signed checkpoint after this many records (default 1000).
    pub checkpoint_every: Option<u32>,
    /// …and after this many seconds (default 10).
    pub checkpoint_interval: Option<f64>,
    /// Start a new part after this many bytes.
    pub rotate_bytes: Option<u32>,
    /// …or after this many seconds.
    pub rotate_interval: Option<f64>,
    /// Refuse new commands once recording fails (default true).
    pub fail_closed: Option<bool>,
}

/// Records waiting for the wrapper's function, and why that function failed.
#[derive(Debug, Default)]
struct Queue {
    records: VecDeque<Vec<u8>>,
    failed: Option<String>,
}

/// One session's recording: an append-only, hash-chained, signed log (JSON Lines).
#[napi]
pub struct Recorder {
    pub(crate) inner: Arc<record::Recorder>,
    memory: Option<MemorySink>,
    queue: Option<Arc<Mutex<Queue>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("session_id", &self.inner.session_id())
            .finish()
    }
}

fn seconds(name: &str, s: f64) -> Result<Duration, Error> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        err(
            "SLUICE_RECORDING",
            format!("{name}: not a number of seconds: {s}"),
            no_fields(),
        )
    })
}

/// A grant key's text, parsed.
fn parse_key(text: &str) -> Result<grant::GrantKey, Error> {
    grant::GrantKey::parse(text).map_err(|e| err("SLUICE_GRANT", e.to_string(), no_fields()))
}

impl Recorder {
    /// Starts a recording of a session whose policy is `policy` (name, digest).
    pub(crate) fn start(
        o: RecorderOptions,
        policy: (&str, &str),
        detector: Arc<sluice_core::Detector>,
    ) -> Result<Recorder, Error> {
        let fsync: Fsync = match o.fsync.as_deref() {
            None => Fsync::default(),
            Some(name) => name
                .parse()
                .map_err(|e: String| err("SLUICE_RECORDING", e, no_fields()))?,
        };
        let opts = RecordOptions {
            fsync,
            checkpoint_every: u64::from(o.checkpoint_every.unwrap_or(1000)),
            checkpoint_interval: seconds("checkpointInterval", o.checkpoint_interval.unwrap_or(10.0))?,
            fail_closed: o.fail_closed.unwrap_or(true),
            rotate_bytes: o.rotate_bytes.map(u64::from),
            rotate_interval: o.rotate_interval.map(|t| seconds("rotateInterval", t)).transpose()?,
        };
        let key = match parse_key(&o.key)? {
            grant::GrantKey::Ed25519(k) => k,
            _ => {
                return Err(err(
                    "SLUICE_RECORDING",
                    "recordings are signed with an Ed25519 secret key (GrantKey.generateEd25519())",
                    no_fields(),
                ));
            }
        };
        let mut start = SessionStart::new(o.protocol.unwrap_or_else(|| "host".into())).policy(policy.0, policy.1);
        if let Some(u) = o.user {
            start = start.user(u);
        }
        if let Some(t) = o.target {
            start = start.target(t);
        }
        if let Some(id) = o.session_id {
            start = start.session_id(id);
        }
        let (sink, memory, queue): (Box<dyn Sink>, _, _) = match (o.path, o.queue.unwrap_or(false)) {
            (Some(_), true) => {
                return Err(err(
                    "SLUICE_RECORDING",
                    "a recording goes to a path or a function, not both",
                    no_fields(),
                ));
            }
            (Some(path), false) => {
                let file = FileSink::create(&path).map_err(|e| {
                    err(
                        "SLUICE_RECORDING",
                        format!("{path}: {e}"),
                        serde_json::json!({ "origin": path }),
                    )
                })?;
                (Box::new(file), None, None)
            }
            (None, true) => {
                let q = Arc::new(Mutex::new(Queue::default()));
                let mine = Arc::clone(&q);
                let sink = CallbackSink(move |record: &[u8]| {
                    let mut q = mine.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if let Some(why) = &q.failed {
                        return Err(io::Error::other(format!("the record function failed: {why}")));
                    }
                    q.records.push_back(record.to_vec());
                    Ok(())
                });
                (Box::new(sink), None, Some(q))
            }
            (None, false) => {
                let m = MemorySink::default();
                (Box::new(m.clone()), Some(m), None)
            }
        };
        let inner = record::Recorder::start(sink, &key, start, opts)
            .map_err(|e| err("SLUICE_RECORDING", e.to_string(), no_fields()))?
            .with_detector(detector);
        Ok(Recorder {
            inner: Arc::new(inner),
            memory,
            queue,
        })
    }
}

#[napi]
impl Recorder {
    /// The session id (the first record's).
    #[napi(getter)]
    pub fn session_id(&self) -> String {
        self.inner.session_id()
    }

    /// Why recording stopped (the sink failed, or it was closed), else null.
    #[napi(getter)]
    pub fn failure(&self) -> Option<String> {
        self.inner.failure()
    }

    /// What an in-memory recording holds so far.
    #[napi]
    pub fn data(&self) -> Result<Buffer, Error> {
        match &self.memory {
            Some(m) => Ok(m.contents().into()),
            None => Err(err(
                "SLUICE_RECORDING",
                "data() is for in-memory recordings (no path, no function); read the file or your function's records",
                no_fields(),
            )),
        }
    }

    /// The records written since the last call, for the wrapper's function (in order).
    #[napi]
    pub fn take_records(&self) -> Vec<Buffer> {
        let Some(q) = &self.queue else { return Vec::new() };
        let mut q = q.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        q.records.drain(..).map(Buffer::from).collect()
    }

    /// The wrapper's function threw: every later record fails, which stops the recording.
    #[napi]
    pub fn fail(&self, reason: String) {
        if let Some(q) = &self.queue {
            let mut q = q.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            q.failed.get_or_insert(reason);
            q.records.clear();
        }
    }

    /// Records something notable that is not a decision (masked like the rest).
    #[napi]
    pub fn notice(&self, message: String, protocol: Option<String>) {
        self.inner.notice(protocol.as_deref().unwrap_or("host"), &message);
    }

    /// Writes a checkpoint or a new part that time has made due (call it now and then).
    #[napi]
    pub fn tick(&self) {
        self.inner.tick();
    }

    /// Ends the recording: an `end` record and a final signed checkpoint, synced. Throws if
    /// recording had failed. Closing twice does nothing.
    #[napi]
    pub fn close(&self) -> Result<(), Error> {
        self.inner
            .close()
            .map_err(|e| err("SLUICE_RECORDING", e.to_string(), no_fields()))
    }
}

/// Where verification stopped.
#[napi(object)]
#[derive(Debug)]
pub struct RecordingProblem {
    /// Which of the inputs holds it (0-based).
    pub input: u32,
    /// Its line in that input (1-based).
    pub line: i64,
    /// The byte offset of that line.
    pub offset: i64,
    /// What is wrong.
    pub reason: String,
    /// Cut short (torn last line, or not closed) rather than altered.
    pub torn: bool,
}

/// What `verifyRecording` found; `ok` when the recording is intact, signed and closed.
#[napi(object)]
#[derive(Debug)]
pub struct RecordingReport {
    /// Intact, signed and closed.
    pub ok: bool,
    /// The session id of the first record.
    pub session: Option<String>,
    /// The signing key's id.
    pub key_id: Option<String>,
    /// Whether a key was given (else only the key the recording names was checked).
    pub key_given: bool,
    /// Records read.
    pub records: i64,
    /// Checkpoints read.
    pub checkpoints: i64,
    /// Checkpoints whose signature verified.
    pub signed: i64,
    /// Whether the recording ends with its `end` record and final checkpoint.
    pub closed: bool,
    /// Parts read.
    pub parts: i64,
    /// The first problem, if any.
    pub problem: Option<RecordingProblem>,
    /// The report in words.
    pub text: String,
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The bytes of each part: a path is read, bytes taken as they are.
fn parts(given: Either<Vec<Either<Uint8Array, String>>, Either<Uint8Array, String>>) -> Result<Vec<Vec<u8>>, Error> {
    let list = match given {
        Either::A(list) => list,
        Either::B(one) => vec![one],
    };
    if list.is_empty() {
        return Err(err(
            "SLUICE_RECORDING",
            "give a recording: a path or bytes (a list of them for a rotated recording's parts)",
            no_fields(),
        ));
    }
    list.into_iter()
        .map(|p| match p {
            Either::A(bytes) => Ok(bytes.to_vec()),
            Either::B(path) => std::fs::read(&path).map_err(|e| {
                err(
                    "SLUICE_RECORDING",
                    format!("{path}: {e}"),
                    serde_json::json!({ "origin": path }),
                )
            }),
        })
        .collect()
}

/// Verifies a recording (a path or bytes, or a list of a rotated recording's parts in order):
/// the hash chain, the order, the signatures (against `key`, an Ed25519 key's text or its
/// public half, when given), that it is closed.
#[napi]
pub fn verify_recording(
    recording: Either<Vec<Either<Uint8Array, String>>, Either<Uint8Array, String>>,
    key: Option<String>,
) -> Result<RecordingReport, Error> {
    let data = parts(recording)?;
    let key = match key.as_deref().map(parse_key).transpose()? {
        None => None,
        Some(grant::GrantKey::Ed25519(k)) => Some(k.verifying_key()),
        Some(grant::GrantKey::Ed25519Public(k)) => Some(k),
        Some(_) => {
            return Err(err(
                "SLUICE_RECORDING",
                "recordings are verified with an Ed25519 key",
                no_fields(),
            ));
        }
    };
    let slices: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let r = record::verify_parts(&slices, key.as_ref());
    Ok(RecordingReport {
        ok: r.is_ok(),
        text: r.to_string(),
        problem: r.problem.as_ref().map(|p| RecordingProblem {
            input: u32::try_from(p.input).unwrap_or(u32::MAX),
            line: count(p.line),
            offset: count(p.offset),
            reason: p.reason.clone(),
            torn: p.torn,
        }),
        session: r.session,
        key_id: r.key_id,
        key_given: r.key_given,
        records: count(r.records),
        checkpoints: count(r.checkpoints),
        signed: count(r.signed),
        closed: r.closed,
        parts: count(r.parts),
    })
}

/// A recording as a readable transcript (database output decoded into rows).
#[napi]
pub fn replay_recording(
    recording: Either<Vec<Either<Uint8Array, String>>, Either<Uint8Array, String>>,
) -> Result<String, Error> {
    Ok(record::transcript(&parts(recording)?.concat()).to_string())
}

/// A shell or SSH recording as asciicast v2 (`asciinema play`).
#[napi]
pub fn export_asciicast(
    recording: Either<Vec<Either<Uint8Array, String>>, Either<Uint8Array, String>>,
    width: Option<u16>,
    height: Option<u16>,
) -> Result<String, Error> {
    Ok(record::asciicast(
        &parts(recording)?.concat(),
        width.unwrap_or(120),
        height.unwrap_or(32),
    ))
}
