//! The security oracle (`core/tests/support/oracle.rs`) on ssh sessions only: the input is the
//! script of one conversation. A planted secret reaching the client, an undecided or refused
//! command reaching the server, or a grant buying two executions is a crash.

#[path = "contain.rs"]
mod contain;

#[path = "../../core/tests/support/oracle.rs"]
mod oracle;

pub fn check(data: &[u8]) {
    contain::brush_panics_are_caught();
    if let Err(v) = oracle::run_protocol(4, data) {
        panic!("oracle: {v}");
    }
}
