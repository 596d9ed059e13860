//! Sessions: one connection's enforcement, fed each direction's bytes.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use sluice_core::session::{self};

use crate::convert::*;
use crate::errors::*;

pub(crate) enum Inner {
    Pg(session::postgres::PgSession),
    MySql(session::mysql::MySqlSession),
    Http(session::http::HttpSession),
    Mcp(session::mcp::McpSession),
}

/// One connection's enforcement: feed it each direction's bytes, forward what it returns.
/// Every call returns `(to_server, to_client)`. After a `SessionError` the session is closed.
#[pyclass(module = "sluice")]
pub(crate) struct Session {
    pub(crate) inner: Inner,
    pub(crate) out: session::Output,
    pub(crate) closed: Option<session::SessionError>,
}

impl Session {
    pub(crate) fn run<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        f: impl FnOnce(&mut Inner, &[u8], &mut session::Output) -> Result<(), session::SessionError>,
    ) -> PyResult<Pair<'py>> {
        if let Some(e) = &self.closed {
            return Err(py_err(e.clone()));
        }
        let data = input(data)?;
        self.out.clear();
        if let Err(e) = f(&mut self.inner, data.bytes(), &mut self.out) {
            let err = py_err(e.clone());
            self.closed = Some(e);
            return Err(err);
        }
        Ok((
            PyBytes::new(py, &self.out.to_server),
            PyBytes::new(py, &self.out.to_client),
        ))
    }
}

impl Inner {
    pub(crate) fn client(&mut self, data: &[u8], out: &mut session::Output) -> Result<(), session::SessionError> {
        match self {
            Inner::Pg(s) => s.from_client(data, out),
            Inner::MySql(s) => s.from_client(data, out),
            Inner::Http(s) => s.from_client(data, out),
            Inner::Mcp(s) => s.from_client(data, out),
        }
    }

    pub(crate) fn server(&mut self, data: &[u8], out: &mut session::Output) -> Result<(), session::SessionError> {
        match self {
            Inner::Pg(s) => s.from_server(data, out),
            Inner::MySql(s) => s.from_server(data, out),
            Inner::Http(s) => s.from_server(data, out),
            Inner::Mcp(s) => s.from_server(data, out),
        }
    }

    /// The MCP session, for the per-message calls.
    pub(crate) fn mcp(&mut self) -> PyResult<&mut session::mcp::McpSession> {
        match self {
            Inner::Mcp(s) => Ok(s),
            _ => Err(RequestError::new_err(
                "client_message() and server_message() are for MCP sessions",
            )),
        }
    }
}

/// What a session call returns: `(to_server, to_client)`.
pub(crate) type Pair<'py> = (Bound<'py, PyBytes>, Bound<'py, PyBytes>);

// `from_client` / `from_server` keep the core's names.
#[allow(clippy::wrong_self_convention)]
#[pymethods]
impl Session {
    /// Bytes from the client.
    fn from_client<'py>(&mut self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.run(py, data, Inner::client)
    }

    /// Bytes from the server.
    fn from_server<'py>(&mut self, py: Python<'py>, data: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.run(py, data, Inner::server)
    }

    /// MCP only: one whole JSON-RPC message from the client (any transport).
    fn client_message<'py>(&mut self, py: Python<'py>, message: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.inner.mcp()?;
        self.run(py, message, |s, d, o| {
            s.mcp().map_or(Ok(()), |m| m.client_message(d, o))
        })
    }

    /// MCP only: one whole JSON-RPC message from the server (any transport).
    fn server_message<'py>(&mut self, py: Python<'py>, message: &Bound<'py, PyAny>) -> PyResult<Pair<'py>> {
        self.inner.mcp()?;
        self.run(py, message, |s, d, o| {
            s.mcp().map_or(Ok(()), |m| m.server_message(d, o))
        })
    }

    /// MCP only: JSON-RPC errors (newline-delimited) for every client request still waiting
    /// for the server, to send the client before closing the connection.
    fn abort_pending<'py>(&mut self, py: Python<'py>, reason: &str) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = session::Output::default();
        self.inner.mcp()?.abort_pending(reason, &mut out);
        Ok(PyBytes::new(py, &out.to_client))
    }

    /// The protocol: postgres, mysql, http or mcp.
    #[getter]
    fn protocol(&self) -> &'static str {
        match self.inner {
            Inner::Pg(_) => "postgres",
            Inner::MySql(_) => "mysql",
            Inner::Http(_) => "http",
            Inner::Mcp(_) => "mcp",
        }
    }

    /// Whether a `SessionError` closed the session.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.is_some()
    }
}
