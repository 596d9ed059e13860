//! The security oracle (`core/tests/support/oracle.rs`) on mysql sessions only: the input is the
//! script of one conversation. A planted secret reaching the client, an undecided or refused
//! command reaching the server, or a grant buying two executions is a crash.

#[path = "../../core/tests/support/oracle.rs"]
mod oracle;

pub fn check(data: &[u8]) {
    if let Err(v) = oracle::run_protocol(1, data) {
        panic!("oracle: {v}");
    }
}
