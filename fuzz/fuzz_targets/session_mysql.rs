//! The security oracle (`core/tests/support/oracle.rs`) on mysql sessions only: the input is the
//! script of one conversation. A planted secret reaching the client, an undecided or refused
//! command reaching the server, or a grant buying two executions is a crash.
#![no_main]

#[path = "../checks/session_mysql.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
