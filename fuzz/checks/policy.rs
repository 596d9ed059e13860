//! Decisions on arbitrary input never panic, and a command that embeds a known credential path
//! read after arbitrary shell text is never allowed.

#[path = "contain.rs"]
mod contain;

use sluice_core::policy::{Action, Dialect, Engine, Identity, Request, Target};

pub fn check(data: &[u8]) {
    contain::brush_panics_are_caught();
    let Ok(text) = std::str::from_utf8(data) else { return };
    let e = Engine::agent_safe();
    let id = Identity::new("fuzz");
    let t = Target::new("t");
    let _ = e.decide(&id, &t, &Request::Shell(text));
    let _ = e.decide(
        &id,
        &t,
        &Request::Sql {
            text,
            dialect: Dialect::Postgres,
            lexing: Default::default(),
        },
    );
    let _ = e.decide(
        &id,
        &t,
        &Request::Sql {
            text,
            dialect: Dialect::MySql,
            lexing: Default::default(),
        },
    );
    let _ = e.decide(&id, &t, &Request::Mcp(data));
    // Whatever comes after it, a leading `cat ~/.aws/credentials` line is not allowed (the
    // shell runs a line before it reads the next).
    let line = format!("cat ~/.aws/credentials\n{text}");
    let d = e.decide(&id, &t, &Request::Shell(&line));
    assert_ne!(d.action(), Action::Allow, "{line:?}: {d:?}");
    // Whatever comes before, a following one is not allowed either (a prefix may leave a quote
    // or substitution open: then the whole line is uncertain, not allowed), unless the prefix
    // opens a here-document, which takes the following lines as its text, not as commands.
    if !text.contains("<<") {
        let line = format!("{text}\n cat ~/.aws/credentials");
        let d = e.decide(&id, &t, &Request::Shell(&line));
        assert_ne!(d.action(), Action::Allow, "{line:?}: {d:?}");
    }
}
