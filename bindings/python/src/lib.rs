//! `sluice._native`: the Sluice engine for Python. The pure-Python package `sluice` re-exports
//! everything here; the types are documented in `python/sluice/_native.pyi`.
//!
//! Conventions: every function that takes data accepts `bytes` or `str` and returns the same
//! type; offsets into a `str` are in code points (so `text[f.start:f.end]` is the secret),
//! offsets into `bytes` in bytes. Scanning and redacting release the GIL.

mod convert;
mod engine;
mod errors;
mod grants;
mod recording;
mod sessions;
mod streaming;
mod types;

use pyo3::prelude::*;
use sluice_core::policy::{self as core_policy};

use crate::engine::*;
use crate::errors::*;
use crate::grants::*;
use crate::recording::*;
use crate::sessions::*;
use crate::streaming::*;
use crate::types::*;

/// Runs the `sluice` command line (the same code as the binary) and returns its exit status.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| sluice_cli::run(argv))
}

/// The `sluice._native` module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("AGENT_SAFE_POLICY", core_policy::AGENT_SAFE)?;
    m.add_class::<Engine>()?;
    m.add_class::<Finding>()?;
    m.add_class::<Decision>()?;
    m.add_class::<ApprovalRequest>()?;
    m.add_class::<Identity>()?;
    m.add_class::<Target>()?;
    m.add_class::<Approver>()?;
    m.add_class::<GrantKey>()?;
    m.add_class::<OidcVerifier>()?;
    m.add_class::<StreamRedactor>()?;
    m.add_class::<Session>()?;
    m.add_class::<Recorder>()?;
    m.add_class::<RecordingReport>()?;
    m.add_class::<RecordingProblem>()?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    m.add_function(wrap_pyfunction!(verify_recording, m)?)?;
    m.add_function(wrap_pyfunction!(replay_recording, m)?)?;
    m.add_function(wrap_pyfunction!(export_asciicast, m)?)?;
    m.add("SluiceError", py.get_type::<SluiceError>())?;
    m.add("DetectorError", py.get_type::<DetectorError>())?;
    m.add("RuleFileError", py.get_type::<RuleFileError>())?;
    m.add("PatternError", py.get_type::<PatternError>())?;
    m.add("RuleError", py.get_type::<RuleError>())?;
    m.add("LimitError", py.get_type::<LimitError>())?;
    m.add("ExampleError", py.get_type::<ExampleError>())?;
    m.add("KnownValueError", py.get_type::<KnownValueError>())?;
    m.add("PolicyError", py.get_type::<PolicyError>())?;
    m.add("RequestError", py.get_type::<RequestError>())?;
    m.add("GrantError", py.get_type::<GrantError>())?;
    m.add("OidcError", py.get_type::<OidcError>())?;
    m.add("SessionError", py.get_type::<SessionError>())?;
    m.add("RecordingError", py.get_type::<RecordingError>())?;
    // The attributes each error carries, `None` on the class until an instance sets them.
    for name in ["origin", "rule", "line", "column"] {
        py.get_type::<DetectorError>().setattr(name, py.None())?;
    }
    for name in ["origin", "path", "line", "column"] {
        py.get_type::<PolicyError>().setattr(name, py.None())?;
    }
    py.get_type::<GrantError>().setattr("kind", py.None())?;
    for name in ["side", "reason"] {
        py.get_type::<SessionError>().setattr(name, py.None())?;
    }
    Ok(())
}
