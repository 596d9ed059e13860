//! Every protocol session fed arbitrary bytes from both sides, in arbitrary cuts: an error or
//! output, never a panic.

#[path = "contain.rs"]
mod contain;

use std::sync::{Arc, OnceLock};

use sluice_core::Detector;
use sluice_core::policy::{Engine, EngineHandle, Identity, Target};
use sluice_core::session::http::HttpSession;
use sluice_core::session::mcp::McpSession;
use sluice_core::session::mysql::MySqlSession;
use sluice_core::session::postgres::PgSession;
use sluice_core::session::ssh::{SshOutput, SshSession};
use sluice_core::session::{Guard, Output};

fn guard() -> Arc<Guard> {
    static G: OnceLock<Arc<Guard>> = OnceLock::new();
    G.get_or_init(|| {
        let det = Arc::new(Detector::builder().build().expect("detector"));
        Arc::new(Guard::new(Arc::new(EngineHandle::new(Engine::agent_safe())), det))
    })
    .clone()
}

pub fn check(data: &[u8]) {
    contain::brush_panics_are_caught();
    if data.len() < 2 {
        return;
    }
    let (ctl, rest) = data.split_at(2);
    let cut = usize::from(ctl[1]).min(rest.len());
    let (a, b) = rest.split_at(cut);
    let g = guard();
    let mut out = Output::default();
    match ctl[0] % 5 {
        0 => {
            let mut s = PgSession::new(g, None, None);
            let _ = s.from_client(a, &mut out).and_then(|()| s.from_server(b, &mut out));
        }
        1 => {
            let mut s = MySqlSession::new(g, None, None);
            let _ = s.from_server(a, &mut out).and_then(|()| s.from_client(b, &mut out));
        }
        2 => {
            let mut s = HttpSession::new(g, Identity::new("f"), None);
            let _ = s.from_client(a, &mut out);
            let _ = s.upstream();
            let _ = s.from_server(b, &mut out).and_then(|()| s.from_server(&[], &mut out));
        }
        3 => {
            let mut s = McpSession::new(g, Identity::new("f"), Target::new("t"));
            let _ = s.from_client(a, &mut out).and_then(|()| s.from_server(b, &mut out));
        }
        _ => {
            let mut s = SshSession::new(g, Identity::new("f"), Target::new("t"));
            let mut o = SshOutput::default();
            let _ = s.client_message(a, &mut o).and_then(|()| s.server_message(b, &mut o));
        }
    }
}
