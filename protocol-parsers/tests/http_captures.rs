//! Real HTTP/1.1 traffic: curl reusing one keep-alive connection for GET (Content-Length), GET
//! (chunked event stream) and POST, against a small Python server, recorded with
//! `scripts/capture_relay.py` into `testdata/http/`. Both directions are parsed end to end,
//! bodies included.

use sluice_protocols::http::{self, BodyKind, Chunk, ChunkedDecoder, EMPTY_HEADER, Limits, Status};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../testdata/http/{name}", env!("CARGO_MANIFEST_DIR"))).expect("capture present")
}

/// Reads a body of `kind` at the start of `buf`: its bytes and the length it used.
fn body(buf: &[u8], kind: BodyKind) -> (Vec<u8>, usize) {
    match kind {
        BodyKind::None => (Vec::new(), 0),
        BodyKind::ContentLength(n) => (buf[..n as usize].to_vec(), n as usize),
        BodyKind::UntilClose => (buf.to_vec(), buf.len()),
        BodyKind::Chunked => {
            let mut dec = ChunkedDecoder::new(Limits::default());
            let (mut data, mut at) = (Vec::new(), 0);
            loop {
                match dec.next(&buf[at..]).expect("valid chunks") {
                    Status::Complete((Chunk::Data(d), used)) => {
                        data.extend_from_slice(d);
                        at += used;
                    }
                    Status::Complete((Chunk::End { .. }, used)) => return (data, at + used),
                    Status::Partial => panic!("capture ends inside a chunked body"),
                }
            }
        }
    }
}

#[test]
fn curl_keepalive_session() {
    let client = read("curl-keepalive.client.bin");
    let (mut at, mut methods) = (0, Vec::new());
    while at < client.len() {
        let mut h = [EMPTY_HEADER; 32];
        let Status::Complete((req, used)) =
            http::parse_request(&client[at..], &mut h, &Limits::default()).expect("request")
        else {
            panic!("partial")
        };
        let kind = http::request_body(&req).expect("framing");
        methods.push((req.method.to_string(), req.path.to_string()));
        let (_, n) = body(&client[at + used..], kind);
        at += used + n;
    }
    assert_eq!(
        methods,
        [
            ("GET".into(), "/items".into()),
            ("GET".into(), "/stream".into()),
            ("POST".into(), "/echo".to_string())
        ]
    );

    let server = read("curl-keepalive.server.bin");
    let (mut at, mut bodies) = (0, Vec::new());
    for (method, _) in &methods {
        let mut h = [EMPTY_HEADER; 32];
        let Status::Complete((resp, used)) =
            http::parse_response(&server[at..], &mut h, &Limits::default()).expect("response")
        else {
            panic!("partial")
        };
        let kind = http::response_body(&resp, method).expect("framing");
        let (data, n) = body(&server[at + used..], kind);
        bodies.push((resp.status, kind, data));
        at += used + n;
    }
    assert_eq!(at, server.len(), "every byte accounted for");
    assert!(matches!(bodies[0], (200, BodyKind::ContentLength(_), ref d) if d.starts_with(br#"{"items":"#)));
    assert_eq!((bodies[1].0, bodies[1].1), (200, BodyKind::Chunked));
    assert!(bodies[1].2.starts_with(b"data: one\n\n"));
    assert_eq!(
        (bodies[2].0, bodies[2].2.as_slice()),
        (201, &br#"{"q":"synthetic"}"#[..])
    );
}
