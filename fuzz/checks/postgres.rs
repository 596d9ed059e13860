//! Any bytes as PostgreSQL traffic, both directions: an error, a partial or a message whose
//! length is within the buffer; never a panic.
use sluice_protocols::postgres::{self, Limits, Status};

pub fn check(data: &[u8]) {
    let limits = Limits {
        max_message: 1 << 20,
        max_fields: 256,
    };
    let mut at = 0;
    while at < data.len() {
        match postgres::parse_backend(&data[at..], &limits) {
            Ok(Status::Complete((_, used))) => {
                assert!(used > 0 && used <= data.len() - at);
                at += used;
            }
            _ => break,
        }
    }
    let _ = postgres::parse_frontend(data, &limits);
    let _ = postgres::parse_startup(data, &limits);
}
