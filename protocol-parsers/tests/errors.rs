//! Every parser reports errors in one shape: a kind, a byte offset, a lowercase message, and
//! the error of the library that found the problem as `source()`.

use std::error::Error as _;

use sluice_protocols::{http, mcp, postgres, shell, sql};

/// Messages start lowercase (or with a protocol's own capitalised name).
fn lowercase(e: &dyn std::error::Error) {
    let shown = e.to_string();
    let first = shown.split_whitespace().next().unwrap_or_default();
    assert!(
        shown.starts_with(|c: char| c.is_lowercase()) || ["HTTP", "JSON-RPC"].iter().any(|w| first.contains(w)),
        "{shown}"
    );
}

#[test]
fn mcp_errors_carry_serde_json_as_source() {
    let e = mcp::parse_message(b"{\"jsonrpc\": \"2.0\", \"id\": 1,\n \"method\": }").expect_err("bad JSON");
    assert_eq!(e.kind(), mcp::ErrorKind::Json);
    assert!(e.offset() > 20, "{e}: offset {}", e.offset());
    assert!(e.source().is_some_and(|s| s.is::<serde_json::Error>()), "{e}");
    lowercase(&e);
    let (_, _) = mcp::split_lines(b"0123456789\n", 100).expect("short lines");
    let e = mcp::split_lines(b"0123456789\n", 4).expect_err("long line");
    assert_eq!((e.kind(), e.offset()), (mcp::ErrorKind::LineTooLong, 0));
    assert!(e.source().is_none());
}

#[test]
fn sql_errors_carry_the_grammar_as_source() {
    let e = sql::analyze("SELECT FROM WHERE (", sql::Dialect::Postgres).expect_err("not SQL");
    assert_eq!(e.kind(), sql::ErrorKind::Syntax);
    assert!(e.source().is_some(), "{e}");
    assert!(e.detail().is_some_and(|d| d.contains("syntax error")), "{e}");
    lowercase(&e);
    let e = sql::analyze("SELECT 'open", sql::Dialect::MySql).expect_err("unterminated");
    assert_eq!((e.kind(), e.offset()), (sql::ErrorKind::Unterminated, 7));
    lowercase(&e);
}

#[test]
fn wire_errors_name_kind_offset_and_message() {
    let mut h = [http::EMPTY_HEADER; 8];
    let e = http::parse_request(
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        &mut h,
        &http::Limits::default(),
    )
    .expect_err("bad head");
    assert_eq!(e.kind(), http::ErrorKind::Head);
    assert!(e.source().is_some() && e.detail().is_some(), "{e}");
    lowercase(&e);
    // A Query message whose length field is 3 (below the minimum of 4).
    let e = postgres::parse_frontend(b"Q\x00\x00\x00\x03", &postgres::Limits::default()).expect_err("bad length");
    assert_eq!((e.kind(), e.offset()), (postgres::ErrorKind::BadLength(3), 1));
    assert_eq!(e.detail(), Some("message 'Q'"));
    lowercase(&e);
    let e = shell::analyze("echo 'open", &shell::Limits::default()).expect_err("unterminated");
    assert_eq!(e.kind(), shell::ErrorKind::Unterminated);
    lowercase(&e);
}
