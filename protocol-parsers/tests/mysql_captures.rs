//! Real MariaDB 10.11 traffic: the `mariadb` client creating a table of (synthetic) API keys,
//! selecting it, sending a syntax error and dropping the table, recorded with
//! `scripts/capture_relay.py` into `testdata/mysql/`, parsed end to end.

use sluice_protocols::mysql::{self, Command, Response, Status};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../testdata/mysql/{name}", env!("CARGO_MANIFEST_DIR"))).expect("capture present")
}

fn packets(buf: &[u8]) -> Vec<mysql::Packet<'_>> {
    let (mut at, mut out) = (0, Vec::new());
    while at < buf.len() {
        match mysql::parse_packet(&buf[at..], 1 << 24).expect("framing") {
            Status::Complete((p, used)) => {
                out.push(p);
                at += used;
            }
            Status::Partial => panic!("capture ends inside a packet at {at}"),
        }
    }
    out
}

#[test]
fn mariadb_client_session() {
    let client = read("mysql-session.client.bin");
    let cp = packets(&client);
    let hr = mysql::parse_handshake_response(cp[0].payload).expect("handshake response");
    assert_eq!((hr.user, hr.database), (&b"app"[..], Some(&b"shop"[..])));
    let queries: Vec<&[u8]> = cp[1..]
        .iter()
        .filter_map(|p| match mysql::parse_command(p.payload) {
            Ok(Command::Query(q)) => Some(q),
            _ => None,
        })
        .collect();
    assert!(
        queries.iter().any(|q| q.starts_with(b"SELECT * FROM creds")),
        "{queries:?}"
    );
    assert!(cp.iter().all(|p| p.seq <= 1), "each command starts a new sequence");

    let server = read("mysql-session.server.bin");
    let sp = packets(&server);
    let hs = mysql::parse_handshake(sp[0].payload).expect("handshake");
    assert!(hs.server_version.ends_with(b"MariaDB-0+deb12u2") || hs.server_version.windows(7).any(|w| w == b"MariaDB"));
    let deprecate_eof = hs.capabilities & hr.capabilities & mysql::caps::DEPRECATE_EOF != 0;

    // Walk the responses: OK, ERR, or a result set (count, definitions, [EOF], rows, EOF/OK).
    let (mut i, mut rows, mut errors) = (1, Vec::new(), Vec::new());
    while i < sp.len() {
        match mysql::parse_response(sp[i].payload).expect("response") {
            Response::ColumnCount(n) => {
                let n = n as usize;
                let defs: Vec<_> = sp[i + 1..i + 1 + n]
                    .iter()
                    .map(|p| mysql::parse_column_definition(p.payload).expect("column"))
                    .collect();
                i += 1 + n;
                if !deprecate_eof {
                    i += 1; // EOF after the definitions
                }
                while sp[i].payload.first() != Some(&0xFE) || sp[i].payload.len() >= 9 {
                    rows.push((
                        defs.len(),
                        mysql::parse_text_row(sp[i].payload, defs.len()).expect("row"),
                    ));
                    i += 1;
                }
                i += 1; // EOF / OK after the rows
            }
            Response::Err { code, sql_state, .. } => {
                errors.push((code, sql_state.map(<[u8]>::to_vec)));
                i += 1;
            }
            _ => i += 1,
        }
    }
    assert!(
        rows.iter()
            .any(|(n, r)| *n == 4 && r[1] == Some(&b"gitlab"[..]) && r[3] == Some(&b"synthetic"[..])),
        "{rows:?}"
    );
    assert!(rows.iter().any(|(n, r)| *n == 4 && r[2].is_none()), "the NULL api_key");
    assert_eq!(errors, [(1064, Some(b"42000".to_vec()))]);
}
