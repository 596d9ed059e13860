//! The security oracle of `core/tests/support/oracle.rs` under coverage-guided fuzzing: the
//! input is the script of one conversation (its first byte picks the protocol). A planted
//! secret reaching the client, an undecided or refused command reaching the server, or a grant
//! buying two executions is a crash.
#![no_main]

#[path = "../checks/oracle.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
