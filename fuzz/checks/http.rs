//! Any bytes as HTTP/1.1: heads, framing and the chunked decoder fed in small steps; never a
//! panic, and the decoder never claims more bytes than it was given.
use sluice_protocols::http::{self, ChunkedDecoder, EMPTY_HEADER, Limits, Status};

pub fn check(data: &[u8]) {
    let limits = Limits::default();
    let mut h = [EMPTY_HEADER; 32];
    if let Ok(Status::Complete((req, _))) = http::parse_request(data, &mut h, &limits) {
        let _ = http::request_body(&req);
    }
    let mut h = [EMPTY_HEADER; 32];
    if let Ok(Status::Complete((resp, _))) = http::parse_response(data, &mut h, &limits) {
        let _ = http::response_body(&resp, "GET");
    }
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 16) + 1;
    let mut dec = ChunkedDecoder::new(limits);
    let (mut at, mut avail) = (0, step.min(body.len()));
    for _ in 0..100_000 {
        match dec.next(&body[at..avail]) {
            Ok(Status::Complete((_, used))) => {
                assert!(used <= avail - at);
                at += used;
                if dec.is_done() {
                    break;
                }
            }
            Ok(Status::Partial) if avail < body.len() => avail = (avail + step).min(body.len()),
            _ => break,
        }
    }
}
