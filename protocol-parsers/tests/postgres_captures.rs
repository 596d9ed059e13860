//! Real PostgreSQL 15 traffic, captured with a recording relay between psql / pgbench and a
//! server (`testdata/pg/*.client.bin` and `*.server.bin`), parsed end to end, and fed back in
//! every possible cut: a parser must never fail on a prefix of valid traffic.

use sluice_protocols::postgres::{self, Backend, Frontend, Limits, Startup, Status};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../testdata/pg/{name}", env!("CARGO_MANIFEST_DIR"))).expect("capture present")
}

fn frontend_stream(buf: &[u8]) -> (Startup<'_>, Vec<Frontend<'_>>) {
    let limits = Limits::default();
    let Status::Complete((startup, mut at)) = postgres::parse_startup(buf, &limits).expect("startup") else {
        panic!("partial startup")
    };
    let mut msgs = Vec::new();
    while at < buf.len() {
        match postgres::parse_frontend(&buf[at..], &limits).expect("frontend message") {
            Status::Complete((m, used)) => {
                msgs.push(m);
                at += used;
            }
            Status::Partial => panic!("capture ends inside a message at {at}"),
        }
    }
    (startup, msgs)
}

fn backend_stream(buf: &[u8]) -> Vec<Backend<'_>> {
    let limits = Limits::default();
    let mut at = 0;
    let mut msgs = Vec::new();
    while at < buf.len() {
        match postgres::parse_backend(&buf[at..], &limits).expect("backend message") {
            Status::Complete((m, used)) => {
                msgs.push(m);
                at += used;
            }
            Status::Partial => panic!("capture ends inside a message at {at}"),
        }
    }
    msgs
}

#[test]
fn psql_simple_query_session() {
    let client = read("psql-session.client.bin");
    let (startup, msgs) = frontend_stream(&client);
    assert_eq!(startup.param("user"), Some(&b"postgres"[..]));
    assert_eq!(startup.param("application_name"), Some(&b"psql"[..]));
    let queries: Vec<&[u8]> = msgs
        .iter()
        .filter_map(|m| if let Frontend::Query(q) = m { Some(*q) } else { None })
        .collect();
    assert!(queries.iter().any(|q| q.starts_with(b"SELECT * FROM creds")));
    assert!(matches!(msgs.last(), Some(Frontend::Terminate)));

    let server = read("psql-session.server.bin");
    let msgs = backend_stream(&server);
    assert!(matches!(msgs[0], Backend::Authentication { code: 0, .. }));
    let rows: Vec<Vec<Option<&[u8]>>> = msgs
        .iter()
        .filter_map(|m| {
            if let Backend::DataRow(r) = m {
                Some(r.to_vec())
            } else {
                None
            }
        })
        .collect();
    assert!(rows.iter().any(|r| r.len() == 4 && r[3] == Some(&b"synthetic"[..])));
    assert!(rows.iter().any(|r| r.len() == 4 && r[2].is_none()), "the NULL api_key");
    let err = msgs
        .iter()
        .find_map(|m| {
            if let Backend::ErrorResponse(f) = m {
                Some(f)
            } else {
                None
            }
        })
        .expect("syntax error");
    assert!(err.iter().any(|(c, v)| *c == b'C' && *v == b"42601"));
    assert!(msgs.iter().any(|m| matches!(m, Backend::CopyOutResponse(_))));
    assert!(
        msgs.iter()
            .any(|m| matches!(m, Backend::CopyData(d) if d.starts_with(b"1\tgitlab")))
    );
    assert!(matches!(msgs.last(), Some(Backend::ReadyForQuery { status: b'I' })));
}

#[test]
fn pgbench_extended_protocol_session() {
    let client = read("pgbench-extended.client.bin");
    let (startup, msgs) = frontend_stream(&client);
    assert_eq!(startup.param("application_name"), Some(&b"pgbench"[..]));
    assert!(msgs.iter().any(
        |m| matches!(m, Frontend::Parse { query, .. } if query.starts_with(b"SELECT abalance FROM pgbench_accounts"))
    ));
    let binds = msgs
        .iter()
        .filter(|m| matches!(m, Frontend::Bind { params, .. } if params.len() == 1 && params[0].is_some()))
        .count();
    assert_eq!(binds, 3, "one Bind per transaction");
    assert!(msgs.iter().any(|m| matches!(m, Frontend::Sync)));

    let server = read("pgbench-extended.server.bin");
    let msgs = backend_stream(&server);
    assert_eq!(msgs.iter().filter(|m| matches!(m, Backend::ParseComplete)).count(), 3);
    assert_eq!(msgs.iter().filter(|m| matches!(m, Backend::BindComplete)).count(), 3);
    assert!(msgs.iter().any(|m| matches!(m, Backend::BackendKeyData { .. })));
}

#[test]
fn every_prefix_of_real_traffic_is_partial_or_complete() {
    let limits = Limits::default();
    for name in ["psql-session.server.bin", "pgbench-extended.server.bin"] {
        let buf = read(name);
        let mut at = 0;
        while at < buf.len() {
            for cut in at..buf.len() {
                let r = postgres::parse_backend(&buf[at..cut], &limits);
                assert!(r.is_ok(), "{name}: message at {at} cut at {cut}: {r:?}");
                if matches!(r, Ok(Status::Complete(_))) {
                    break;
                }
            }
            let Ok(Status::Complete((_, used))) = postgres::parse_backend(&buf[at..], &limits) else {
                panic!("{name} at {at}")
            };
            at += used;
        }
    }
}
