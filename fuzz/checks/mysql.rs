//! Any bytes as MySQL traffic: framing and every payload decoder; never a panic.
use sluice_protocols::mysql::{self, Status};

pub fn check(data: &[u8]) {
    let mut at = 0;
    while at < data.len() {
        match mysql::parse_packet(&data[at..], 1 << 20) {
            Ok(Status::Complete((p, used))) => {
                assert!(used >= 4 && used <= data.len() - at);
                let _ = mysql::parse_command(p.payload);
                let _ = mysql::parse_response(p.payload);
                let _ = mysql::parse_handshake(p.payload);
                let _ = mysql::parse_handshake_response(p.payload);
                let _ = mysql::parse_column_definition(p.payload);
                let _ = mysql::parse_text_row(p.payload, usize::from(p.seq % 8));
                at += used;
            }
            _ => break,
        }
    }
}
