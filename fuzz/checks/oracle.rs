//! The security oracle of `core/tests/support/oracle.rs` under coverage-guided fuzzing: the
//! input is the script of one conversation (its first byte picks the protocol). A planted
//! secret reaching the client, an undecided or refused command reaching the server, or a grant
//! buying two executions is a crash.

#[path = "contain.rs"]
mod contain;

#[path = "../../core/tests/support/oracle.rs"]
mod oracle;

pub fn check(data: &[u8]) {
    contain::brush_panics_are_caught();
    if let Err(v) = oracle::run(data) {
        panic!("oracle: {v}");
    }
}
