//! Core errors as Python exceptions: one `SluiceError` hierarchy, each exception carrying what
//! the core knows (origin, rule, line, column, path, kind, side) as attributes.

use pyo3::IntoPyObjectExt;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use sluice_core::ErrorKind;
use sluice_core::policy::grant;
use sluice_core::policy::{self as core_policy};
use sluice_core::session::{self};

create_exception!(
    sluice,
    SluiceError,
    PyException,
    "Base class of every error Sluice raises."
);
create_exception!(
    sluice,
    DetectorError,
    SluiceError,
    "A rule file, rule or known value was rejected."
);
create_exception!(
    sluice,
    RuleFileError,
    DetectorError,
    "A rule file is not valid TOML or does not follow the format."
);
create_exception!(
    sluice,
    PatternError,
    DetectorError,
    "A rule's pattern does not parse or compile."
);
create_exception!(
    sluice,
    RuleError,
    DetectorError,
    "A rule field other than the pattern is invalid."
);
create_exception!(sluice, LimitError, DetectorError, "A configured limit was exceeded.");
create_exception!(
    sluice,
    ExampleError,
    DetectorError,
    "A rule's own examples disagree with its pattern."
);
create_exception!(
    sluice,
    KnownValueError,
    DetectorError,
    "A registered known value is unusable."
);
create_exception!(sluice, PolicyError, SluiceError, "A policy document was rejected.");
create_exception!(
    sluice,
    RequestError,
    SluiceError,
    "A request given to check() is malformed."
);
create_exception!(
    sluice,
    GrantError,
    SluiceError,
    "A grant or key was not issued or not accepted."
);
create_exception!(sluice, OidcError, SluiceError, "An OIDC token or key set was rejected.");
create_exception!(
    sluice,
    SessionError,
    SluiceError,
    "A session got bad input: close the connection."
);
create_exception!(
    sluice,
    RecordingError,
    SluiceError,
    "A session recording cannot be started, written or read."
);

/// Sets keyword attributes on a new exception of type `T`.
pub(crate) fn error_with<T: pyo3::PyTypeInfo>(py: Python<'_>, message: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let err = PyErr::new::<T, _>(message);
    let value = err.value(py);
    for (k, v) in attrs {
        if let Err(e) = value.setattr(*k, v) {
            return e;
        }
    }
    err
}

/// Any value as a Python object for an exception attribute (`None` if it cannot be converted).
pub(crate) fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> Py<PyAny> {
    v.into_py_any(py).unwrap_or_else(|_| py.None())
}

/// A core error on its way to Python: `?` turns it into the matching `SluiceError` subclass,
/// with what the core knows (origin, rule, line, column, path, kind, side) as attributes.
pub(crate) enum Error {
    Detector(sluice_core::Error),
    Policy(core_policy::PolicyError),
    Grant(grant::GrantError),
    Oidc(core_policy::oidc::OidcError),
    Session(session::SessionError),
}

macro_rules! from_core {
    ($($variant:ident($ty:ty)),* $(,)?) => {$(
        impl From<$ty> for Error {
            fn from(e: $ty) -> Error {
                Error::$variant(e)
            }
        }
    )*};
}

from_core!(
    Detector(sluice_core::Error),
    Policy(core_policy::PolicyError),
    Grant(grant::GrantError),
    Oidc(core_policy::oidc::OidcError),
    Session(session::SessionError),
);

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| match e {
            Error::Detector(e) => {
                let (line, column) = e.line_col().unzip();
                let attrs = [
                    ("origin", obj(py, e.origin())),
                    ("rule", obj(py, e.rule())),
                    ("line", obj(py, line)),
                    ("column", obj(py, column)),
                ];
                let msg = e.to_string();
                match e.kind() {
                    ErrorKind::RuleFile => error_with::<RuleFileError>(py, msg, &attrs),
                    ErrorKind::Pattern => error_with::<PatternError>(py, msg, &attrs),
                    ErrorKind::Rule => error_with::<RuleError>(py, msg, &attrs),
                    ErrorKind::Limit => error_with::<LimitError>(py, msg, &attrs),
                    ErrorKind::Example => error_with::<ExampleError>(py, msg, &attrs),
                    ErrorKind::KnownValue => error_with::<KnownValueError>(py, msg, &attrs),
                    // Kinds added to the core later still land in the hierarchy.
                    _ => error_with::<DetectorError>(py, msg, &attrs),
                }
            }
            Error::Policy(e) => {
                let (line, column) = e.line_col().unzip();
                let attrs = [
                    ("origin", obj(py, Some(e.origin()))),
                    ("path", obj(py, e.path())),
                    ("line", obj(py, line)),
                    ("column", obj(py, column)),
                ];
                error_with::<PolicyError>(py, e.to_string(), &attrs)
            }
            Error::Grant(e) => {
                let kind = e.kind().as_str();
                error_with::<GrantError>(py, e.to_string(), &[("kind", obj(py, Some(kind)))])
            }
            Error::Oidc(e) => error_with::<OidcError>(py, e.to_string(), &[]),
            Error::Session(e) => {
                let attrs = [
                    ("side", obj(py, Some(e.side().as_str()))),
                    ("reason", obj(py, Some(e.reason()))),
                ];
                error_with::<SessionError>(py, e.to_string(), &attrs)
            }
        })
    }
}

/// The Python exception for a core error.
pub(crate) fn py_err(e: impl Into<Error>) -> PyErr {
    PyErr::from(e.into())
}
