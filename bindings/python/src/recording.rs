//! Session recording: `Engine.recorder(...)` starts one, `Engine.session(..., recorder=)` and
//! `Engine.check(..., recorder=)` write through it; `verify_recording`, `replay_recording` and
//! `export_asciicast` read recordings back.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sluice_core::policy::grant;
use sluice_core::record::{self, CallbackSink, FileSink, Fsync, MemorySink, RecordOptions, SessionStart, Sink};

use crate::errors::*;
use crate::grants::GrantKey;

/// One session's recording: an append-only, hash-chained, signed log (JSON Lines).
#[pyclass(frozen, module = "sluice")]
pub(crate) struct Recorder {
    pub(crate) inner: Arc<record::Recorder>,
    memory: Option<MemorySink>,
}

/// Where a recording goes: a path, a callable taking each record, or memory.
fn sink(py: Python<'_>, to: Option<&Bound<'_, PyAny>>) -> PyResult<(Box<dyn Sink>, Option<MemorySink>)> {
    let Some(to) = to.filter(|t| !t.is_none()) else {
        let m = MemorySink::default();
        return Ok((Box::new(m.clone()), Some(m)));
    };
    if to.is_callable() {
        let f = to.clone().unbind();
        let sink = CallbackSink(move |record: &[u8]| {
            Python::attach(|py| {
                f.call1(py, (PyBytes::new(py, record),))
                    .map(drop)
                    .map_err(|e| io::Error::other(e.to_string()))
            })
        });
        return Ok((Box::new(sink), None));
    }
    let os = py.import("os")?;
    let path: std::path::PathBuf = os.call_method1("fspath", (to,))?.extract().map_err(|_| {
        PyTypeError::new_err("a recording goes to a path, a callable taking each record (bytes), or None (memory)")
    })?;
    let file = FileSink::create(&path).map_err(|e| RecordingError::new_err(format!("{}: {e}", path.display())))?;
    Ok((Box::new(file), None))
}

/// A key from a `GrantKey` or the text of one.
fn grant_key(key: &Bound<'_, PyAny>) -> PyResult<grant::GrantKey> {
    if let Ok(k) = key.extract::<GrantKey>() {
        return Ok(k.inner);
    }
    let text: String = key
        .extract()
        .map_err(|_| PyTypeError::new_err("key: a GrantKey or the text of one"))?;
    grant::GrantKey::parse(&text).map_err(py_err)
}

/// The Ed25519 secret key that signs, from a `GrantKey` or its text.
pub(crate) fn signing_key(key: &Bound<'_, PyAny>) -> PyResult<ed25519_dalek::SigningKey> {
    match grant_key(key)? {
        grant::GrantKey::Ed25519(k) => Ok(k),
        _ => Err(PyValueError::new_err(
            "recordings are signed with an Ed25519 secret key (GrantKey.generate_ed25519())",
        )),
    }
}

/// The Ed25519 public key that verifies, from a `GrantKey` (either half) or its text.
fn verifying_key(key: &Bound<'_, PyAny>) -> PyResult<ed25519_dalek::VerifyingKey> {
    match grant_key(key)? {
        grant::GrantKey::Ed25519(k) => Ok(k.verifying_key()),
        grant::GrantKey::Ed25519Public(k) => Ok(k),
        _ => Err(PyValueError::new_err("recordings are verified with an Ed25519 key")),
    }
}

/// What `Engine.recorder` was given.
pub(crate) struct Start<'py> {
    pub(crate) to: Option<Bound<'py, PyAny>>,
    pub(crate) key: Bound<'py, PyAny>,
    pub(crate) start: SessionStart,
    pub(crate) fsync: String,
    pub(crate) checkpoint_every: u64,
    pub(crate) checkpoint_interval: f64,
    pub(crate) rotate_bytes: Option<u64>,
    pub(crate) rotate_interval: Option<f64>,
    pub(crate) fail_closed: bool,
}

fn seconds(name: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| PyValueError::new_err(format!("{name}: not a number of seconds: {s}")))
}

impl Recorder {
    pub(crate) fn start(py: Python<'_>, s: Start<'_>, detector: Arc<sluice_core::Detector>) -> PyResult<Recorder> {
        let fsync: Fsync = s.fsync.parse().map_err(PyValueError::new_err)?;
        let opts = RecordOptions {
            fsync,
            checkpoint_every: s.checkpoint_every,
            checkpoint_interval: seconds("checkpoint_interval", s.checkpoint_interval)?,
            fail_closed: s.fail_closed,
            rotate_bytes: s.rotate_bytes,
            rotate_interval: s.rotate_interval.map(|t| seconds("rotate_interval", t)).transpose()?,
        };
        let key = signing_key(&s.key)?;
        let (sink, memory) = sink(py, s.to.as_ref())?;
        let inner = record::Recorder::start(sink, &key, s.start, opts)
            .map_err(|e| RecordingError::new_err(e.to_string()))?
            .with_detector(detector);
        Ok(Recorder {
            inner: Arc::new(inner),
            memory,
        })
    }
}

#[pymethods]
impl Recorder {
    /// The session id (the first record's).
    #[getter]
    fn session_id(&self) -> String {
        self.inner.session_id()
    }

    /// Why recording stopped (the sink failed, or it was closed), else `None`.
    #[getter]
    fn failure(&self) -> Option<String> {
        self.inner.failure()
    }

    /// What an in-memory recording (`to=None`) holds so far.
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        match &self.memory {
            Some(m) => Ok(PyBytes::new(py, &m.contents())),
            None => Err(PyTypeError::new_err(
                "data() is for in-memory recordings (to=None); read the file or your callable's records",
            )),
        }
    }

    /// Records something notable that is not a decision (masked like the rest).
    #[pyo3(signature = (message, *, protocol = "host"))]
    fn notice(&self, message: &str, protocol: &str) {
        self.inner.notice(protocol, message);
    }

    /// Writes a checkpoint or a new part that time has made due (call it now and then).
    fn tick(&self) {
        self.inner.tick();
    }

    /// Ends the recording: an `end` record and a final signed checkpoint, synced. Raises
    /// `RecordingError` if recording had failed. Closing twice does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.close())
            .map_err(|e| RecordingError::new_err(e.to_string()))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("Recorder(session_id='{}')", self.inner.session_id())
    }
}

/// Where verification stopped.
#[pyclass(frozen, get_all, module = "sluice")]
pub(crate) struct RecordingProblem {
    /// Which of the inputs holds it (0-based).
    input: usize,
    /// Its line in that input (1-based).
    line: u64,
    /// The byte offset of that line.
    offset: u64,
    /// What is wrong.
    reason: String,
    /// Cut short (torn last line, or not closed) rather than altered.
    torn: bool,
}

#[pymethods]
impl RecordingProblem {
    fn __repr__(&self) -> String {
        format!(
            "RecordingProblem(input={}, line={}, reason={:?}, torn={})",
            self.input,
            self.line,
            self.reason,
            if self.torn { "True" } else { "False" }
        )
    }
}

/// What `verify_recording` found; true when the recording is intact, signed and closed.
#[pyclass(frozen, module = "sluice")]
pub(crate) struct RecordingReport {
    #[pyo3(get)]
    ok: bool,
    #[pyo3(get)]
    session: Option<String>,
    #[pyo3(get)]
    key_id: Option<String>,
    #[pyo3(get)]
    key_given: bool,
    #[pyo3(get)]
    records: u64,
    #[pyo3(get)]
    checkpoints: u64,
    #[pyo3(get)]
    signed: u64,
    #[pyo3(get)]
    closed: bool,
    #[pyo3(get)]
    parts: u64,
    #[pyo3(get)]
    problem: Option<Py<RecordingProblem>>,
    text: String,
}

#[pymethods]
impl RecordingReport {
    fn __bool__(&self) -> bool {
        self.ok
    }

    fn __str__(&self) -> String {
        self.text.clone()
    }

    fn __repr__(&self) -> String {
        format!("RecordingReport({})", self.text)
    }
}

/// The bytes of each part: paths are read, bytes taken as they are.
fn parts(py: Python<'_>, given: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Vec<Vec<u8>>> {
    if given.is_empty() {
        return Err(PyTypeError::new_err(
            "give a recording: a path or bytes (several for a rotated recording's parts)",
        ));
    }
    let os = py.import("os")?;
    given
        .iter()
        .map(|p| {
            if let Ok(b) = p.cast::<PyBytes>() {
                return Ok(b.as_bytes().to_vec());
            }
            let path: std::path::PathBuf = os
                .call_method1("fspath", (&p,))?
                .extract()
                .map_err(|_| PyTypeError::new_err("a recording is a path or bytes"))?;
            std::fs::read(&path).map_err(|e| RecordingError::new_err(format!("{}: {e}", path.display())))
        })
        .collect()
}

/// Verifies a recording (its parts in order, for a rotated one): the hash chain, the order,
/// the signatures (against `key` when given), that it is closed.
#[pyfunction]
#[pyo3(signature = (*recording, key = None))]
pub(crate) fn verify_recording(
    py: Python<'_>,
    recording: &Bound<'_, pyo3::types::PyTuple>,
    key: Option<&Bound<'_, PyAny>>,
) -> PyResult<RecordingReport> {
    let data = parts(py, recording)?;
    let key = key.filter(|k| !k.is_none()).map(verifying_key).transpose()?;
    let slices: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    let r = py.detach(|| record::verify_parts(&slices, key.as_ref()));
    let problem = match &r.problem {
        None => None,
        Some(p) => Some(Py::new(
            py,
            RecordingProblem {
                input: p.input,
                line: p.line,
                offset: p.offset,
                reason: p.reason.clone(),
                torn: p.torn,
            },
        )?),
    };
    Ok(RecordingReport {
        ok: r.is_ok(),
        text: r.to_string(),
        session: r.session,
        key_id: r.key_id,
        key_given: r.key_given,
        records: r.records,
        checkpoints: r.checkpoints,
        signed: r.signed,
        closed: r.closed,
        parts: r.parts,
        problem,
    })
}

/// A recording as a readable transcript (database output decoded into rows).
#[pyfunction]
#[pyo3(signature = (*recording))]
pub(crate) fn replay_recording(py: Python<'_>, recording: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<String> {
    let data = parts(py, recording)?.concat();
    Ok(record::transcript(&data).to_string())
}

/// A shell or SSH recording as asciicast v2 (`asciinema play`).
#[pyfunction]
#[pyo3(signature = (*recording, width = 120, height = 32))]
pub(crate) fn export_asciicast(
    py: Python<'_>,
    recording: &Bound<'_, pyo3::types::PyTuple>,
    width: u16,
    height: u16,
) -> PyResult<String> {
    let data = parts(py, recording)?.concat();
    Ok(record::asciicast(&data, width, height))
}
