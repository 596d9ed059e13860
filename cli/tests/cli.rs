//! The `sluice` command-line contract: exit codes, formats, walking, redaction as a stream.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");

/// A synthetic secret, assembled at run time so this file holds none in one piece.
fn gitlab() -> String {
    format!("glpat-{}", "Xa3kLm9Qr7Tz2Wv5Yb8N")
}

fn sluice(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run sluice")
}

fn tree() -> tempdir::Dir {
    let d = tempdir::Dir::new();
    d.write("app/config.py", &format!("TOKEN = \"{}\"\nDEBUG = True\n", gitlab()));
    d.write("app/clean.py", "print('hello')\n");
    d.write("ignored/secret.txt", &format!("token = {}\n", gitlab()));
    d.write(".gitignore", "ignored/\n");
    d.write("fixtures/vector.txt", &format!("token = {}\n", gitlab()));
    d.write(".sluiceignore", "fixtures/\n");
    let mut bin = vec![0u8, 1, 2, 3];
    bin.extend_from_slice(format!("token = {}\n", gitlab()).as_bytes());
    d.write_bytes("app/blob.bin", &bin);
    d.write("app/allowed.py", &format!("TOKEN = \"{}\"  # sluice:allow\n", gitlab()));
    d
}

mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new() -> Dir {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p = std::env::temp_dir().join(format!("sluice-cli-test-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).expect("mkdir");
            Dir(p)
        }

        pub fn write(&self, rel: &str, text: &str) {
            self.write_bytes(rel, text.as_bytes());
        }

        pub fn write_bytes(&self, rel: &str, data: &[u8]) {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, data).expect("write");
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn scan_json_reports_offsets_honours_ignores_and_skips_binaries() {
    let d = tree();
    let out = sluice(&["scan", "--format", "json", "."], d.path());
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let f = v["findings"].as_array().expect("findings");
    assert_eq!(f.len(), 1, "{v}");
    assert_eq!(f[0]["rule"], "gitlab-pat");
    assert_eq!(f[0]["path"], "app/config.py");
    let text = std::fs::read_to_string(d.path().join("app/config.py")).expect("read");
    let (s, e) = (
        f[0]["start"].as_u64().expect("start") as usize,
        f[0]["end"].as_u64().expect("end") as usize,
    );
    assert_eq!(text[s..e], gitlab());
    assert_eq!((f[0]["line"].as_u64(), f[0]["column"].as_u64()), (Some(1), Some(10)));
    assert_eq!(f[0]["fingerprint"].as_str().map(str::len), Some(32));
    assert!(f[0].get("secret").is_none());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&gitlab()),
        "secrets are never printed by default"
    );
    assert_eq!(v["summary"]["skipped_binary"], 1);
    assert_eq!(v["summary"]["findings"], 1);
}

#[test]
fn show_secrets_prints_them_and_text_format_does_not_by_default() {
    let d = tree();
    let out = sluice(&["scan", "app/config.py"], d.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("app/config.py:1:10: gitlab-pat [REDACTED:gitlab-pat:"),
        "{text}"
    );
    assert!(!text.contains(&gitlab()));
    let out = sluice(
        &["scan", "--show-secrets", "--format", "jsonl", "app/config.py"],
        d.path(),
    );
    let first = out.stdout.split(|&b| b == b'\n').next().expect("a line");
    let line: serde_json::Value = serde_json::from_slice(first).expect("jsonl");
    assert_eq!(line["secret"].as_str(), Some(gitlab().as_str()));
}

#[test]
fn exit_codes_are_0_clean_1_found_2_error() {
    let d = tree();
    assert_eq!(sluice(&["scan", "app/clean.py"], d.path()).status.code(), Some(0));
    assert_eq!(sluice(&["scan", "app/config.py"], d.path()).status.code(), Some(1));
    let missing = sluice(&["scan", "no/such/path"], d.path());
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/path"));
    d.write(
        "bad.toml",
        "[[rule]]\nid = \"x\"\ndescription = \"d\"\npattern = '(unclosed'\nkeywords = [\"xx\"]\n",
    );
    let bad = sluice(&["scan", "--rules", "bad.toml", "app"], d.path());
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("bad.toml:4:") && err.contains("rule `x`"), "{err}");
}

/// `sluice scan --format json -` of `input`.
fn scan_stdin(input: &[u8]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(["scan", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(input).expect("write");
    child.wait_with_output().expect("wait")
}

#[test]
fn stdin_is_scanned_with_dash() {
    let out = scan_stdin(format!("x = {}\n", gitlab()).as_bytes());
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["findings"][0]["path"], "-");
}

#[test]
fn sarif_is_2_1_0_with_rules_and_regions() {
    let d = tree();
    let out = sluice(&["scan", "--format", "sarif", "app"], d.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sarif json");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "sluice");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert!(rules.len() >= 150);
    let r = &run["results"][0];
    assert_eq!(r["ruleId"], "gitlab-pat");
    let idx = r["ruleIndex"].as_u64().expect("index") as usize;
    assert_eq!(rules[idx]["id"], "gitlab-pat");
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "app/config.py");
    assert_eq!(loc["region"]["startLine"], 1);
    assert_eq!(loc["region"]["startColumn"], 10);
    assert_eq!(loc["region"]["endColumn"], 10 + gitlab().len() as u64);
    assert!(r["partialFingerprints"]["sluiceSecret/v1"].is_string());
}

#[test]
fn user_rules_extend_the_builtin_ones() {
    let d = tempdir::Dir::new();
    d.write(
        "acme.toml",
        "[[rule]]\nid = \"acme-key\"\ndescription = \"ACME key\"\npattern = '''\\b(?P<secret>acme_[A-Za-z0-9]{24})\\b'''\nkeywords = [\"acme_\"]\n",
    );
    d.write("a.txt", "k = acme_Zq7Lm2Xw9Rt4Kp8Vn3Bc6Hd1\n");
    let out = sluice(&["scan", "--rules", "acme.toml", "--format", "json", "a.txt"], d.path());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["findings"][0]["rule"], "acme-key");
    let list = sluice(&["rules", "--rules", "acme.toml"], d.path());
    assert!(String::from_utf8_lossy(&list.stdout).contains("acme-key"));
    assert_eq!(sluice(&["rules", "--check"], d.path()).status.code(), Some(0));
}

#[test]
fn a_large_file_read_in_pieces_reports_what_a_whole_read_does() {
    // Over 16 MiB: read a piece at a time. Secrets sit on and around the 8 MiB piece
    // boundaries, one line is marked `sluice:allow`, and a psql table's credential column
    // straddles a boundary; the findings must be those of the same bytes read whole (stdin).
    let line = "def handler(request, context):  # an ordinary line of Python code\n";
    let mut text = String::new();
    let (mut k, mut table) = (0, false);
    while text.len() < 20 << 20 {
        let piece = 8 << 20;
        let near = text.len() % piece > piece - 300 || text.len() % piece < 200;
        if near || k % 50_000 == 0 {
            text.push_str(&format!("token_{k} = \"{}\"\n", gitlab()));
        }
        if k == 1000 {
            text.push_str(&format!("ignored = \"{}\"  # {}\n", gitlab(), "sluice:allow"));
        }
        if text.len() > (8 << 20) - 120 && !table {
            table = true;
            text.push_str(" id | password\n----+-------------\n  1 | Zq8rT2mVw9Lp\n  2 | Kd7nX3bYc6Hs\n(2 rows)\n");
        }
        text.push_str(line);
        k += 1;
    }
    let d = tempdir::Dir::new();
    d.write("big.py", &text);
    let by_file = json(&sluice(
        &["scan", "--format", "json", "--threads", "2", "big.py"],
        d.path(),
    ));
    let whole = json(&scan_stdin(text.as_bytes()));
    let strip = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        let mut f = v["findings"].as_array().expect("findings").clone();
        for x in &mut f {
            x.as_object_mut().expect("object").remove("path");
        }
        f
    };
    let (a, b) = (strip(&by_file), strip(&whole));
    assert!(a.len() > 10, "{} findings", a.len());
    assert_eq!(a.iter().filter(|f| f["rule"] == "credential-column").count(), 2);
    assert_eq!(a, b);
}

#[test]
fn redact_masks_a_file_and_keeps_everything_else() {
    let d = tree();
    let out = sluice(&["redact", "app/config.py"], d.path());
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        text.starts_with("TOKEN = \"[REDACTED:gitlab-pat:") && text.ends_with("\"\nDEBUG = True\n"),
        "{text}"
    );
}

#[test]
fn redact_streams_line_by_line_like_at_the_end_of_tail_f() {
    let mut child = Command::new(BIN)
        .arg("redact")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    for i in 0..3 {
        stdin
            .write_all(format!("line {i} token={}\n", gitlab()).as_bytes())
            .expect("write");
        stdin.flush().expect("flush");
        // The line comes back before the input ends: the redactor does not wait for EOF.
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        assert!(
            line.starts_with(&format!("line {i} token=[REDACTED:gitlab-pat:")),
            "{line}"
        );
    }
    drop(stdin);
    assert!(child.wait().expect("wait").success());
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn check_prints_a_json_decision_for_each_protocol() {
    let d = tempdir::Dir::new();
    let cases: &[(&[&str], &str, Option<&str>, i32)] = &[
        (
            &["--protocol", "shell", "cat ~/.aws/credentials"],
            "deny",
            Some("credential-files"),
            1,
        ),
        (&["--protocol", "shell", "cargo test"], "allow", None, 0),
        (
            &["--protocol", "sql", "select * from PG_SHADOW"],
            "deny",
            Some("password-hash-catalogs"),
            1,
        ),
        (
            &["--protocol", "sql", "--dialect", "mysql", "DELETE FROM `t`"],
            "require_approval",
            Some("unbounded-writes"),
            1,
        ),
        (
            &["--protocol", "http", "GET http://169.254.169.254/latest/meta-data/"],
            "deny",
            Some("cloud-metadata"),
            1,
        ),
        (
            &[
                "--protocol",
                "mcp",
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"~/.ssh/id_rsa"}}}"#,
            ],
            "deny",
            Some("ssh-private-keys"),
            1,
        ),
        (&["--protocol", "ssh", "env"], "deny", Some("env-dump"), 1),
        (
            &["--protocol", "ssh", "--ssh", "subsystem", "sftp"],
            "require_approval",
            None,
            1,
        ),
        (
            &["--protocol", "ssh", "--ssh", "forward", "db.internal:5432"],
            "require_approval",
            None,
            1,
        ),
    ];
    for (args, decision, rule, code) in cases {
        let mut all = vec!["check"];
        all.extend_from_slice(args);
        let out = sluice(&all, d.path());
        let v = json(&out);
        assert_eq!(v["decision"], *decision, "{args:?}: {v}");
        assert_eq!(v["rule"].as_str(), *rule, "{args:?}: {v}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()));
        assert_eq!(out.status.code(), Some(*code), "{args:?}");
    }
    let out = sluice(&["check", "--protocol", "http", "not a request line"], d.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("METHOD URL"));
}

#[test]
fn approve_issues_a_grant_that_check_accepts_for_that_command() {
    let d = tempdir::Dir::new();
    let out = sluice(&["keygen", "--type", "ed25519", "--out", "grant.key"], d.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = sluice(&["keygen", "--out", "grant.key"], d.path());
    assert_eq!(again.status.code(), Some(2), "never overwrites a key");
    let check = |extra: &[&str], cmd: &str| {
        let mut args = vec!["check", "--user", "agent-7", "--target", "orders", "--protocol", "sql"];
        args.extend_from_slice(extra);
        args.push(cmd);
        sluice(&args, d.path())
    };
    let first = check(&[], "DROP TABLE old_orders");
    let v = json(&first);
    assert_eq!(v["decision"], "require_approval");
    assert_eq!(v["approval"]["command"], "DROP TABLE old_orders");
    d.write("request.json", &String::from_utf8_lossy(&first.stdout));
    let self_approved = sluice(
        &[
            "approve",
            "--key-file",
            "grant.key",
            "--approver",
            "agent-7",
            "request.json",
        ],
        d.path(),
    );
    assert_eq!(self_approved.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&self_approved.stderr).contains("self-approval"));
    let grant = sluice(
        &[
            "approve",
            "--key-file",
            "grant.key",
            "--approver",
            "alice:dba",
            "request.json",
        ],
        d.path(),
    );
    assert!(grant.status.success(), "{}", String::from_utf8_lossy(&grant.stderr));
    let token = String::from_utf8_lossy(&grant.stdout).trim().to_string();
    let with = |cmd: &str| check(&["--grant", &token, "--grant-key", "grant.key.pub"], cmd);
    let ok = with("DROP TABLE old_orders");
    assert_eq!(
        json(&ok)["decision"],
        "allow",
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert_eq!(ok.status.code(), Some(0));
    let other = with("DROP TABLE customers");
    assert_eq!(json(&other)["decision"], "require_approval");
    assert!(
        json(&other)["reason"]
            .as_str()
            .is_some_and(|r| r.contains("grant rejected"))
    );
}

#[test]
fn policy_validate_and_test() {
    let d = tempdir::Dir::new();
    d.write(
        "p.yaml",
        "version: 1\nname: mine\ndefault: deny\nrules:\n  - id: reads\n    action: allow\n    when: { sql: { kinds: [select] } }\n",
    );
    d.write(
        "bad.yaml",
        "version: 1\nrules:\n  - id: x\n    action: deny\n    when: { sql: { kinds: [selekt] } }\n",
    );
    d.write(
        "cases.json",
        r#"{"cases": [
            {"name": "select", "protocol": "sql", "command": "select 1", "expect": "allow", "rule": "reads"},
            {"name": "drop", "protocol": "sql", "command": "drop table t", "expect": "deny"},
            {"name": "wrong on purpose", "protocol": "sql", "command": "select 2", "expect": "deny"}
        ]}"#,
    );
    let ok = sluice(&["policy", "validate", "p.yaml"], d.path());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("ok (policy `mine`, 1 rules)"));
    let bad = sluice(&["policy", "validate", "bad.yaml"], d.path());
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("bad.yaml: rules[0].when.sql.kinds[0]: unknown statement kind `selekt`"),
        "{err}"
    );
    let t = sluice(&["policy", "test", "p.yaml", "cases.json"], d.path());
    let text = String::from_utf8_lossy(&t.stdout);
    assert_eq!(t.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL wrong on purpose: expected deny, got allow (reads)"),
        "{text}"
    );
    assert!(text.contains("2 passed, 1 failed"), "{text}");
    let shared = format!("{}/../testdata/policy/agent-safe.json", env!("CARGO_MANIFEST_DIR"));
    let t = sluice(&["policy", "test", "agent-safe", &shared], d.path());
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stdout));
    let shown = sluice(&["policy", "show"], d.path());
    assert!(String::from_utf8_lossy(&shown.stdout).contains("name: agent-safe"));
}

/// A recording rotated into parts: verified together in any order given, replayed as one;
/// a missing part is named.
#[test]
fn record_verify_joins_rotated_parts() {
    use sluice_core::policy::grant::GrantKey;
    use sluice_core::record::{FileSink, RecordOptions, Recorder, SessionStart};

    let d = tempdir::Dir::new();
    let key = GrantKey::generate_ed25519();
    let GrantKey::Ed25519(signing) = &key else {
        unreachable!("an Ed25519 key")
    };
    d.write("rec.pub", &key.public().expect("public half").to_text());
    let base = d.path().join("long.jsonl");
    let opts = RecordOptions {
        rotate_bytes: Some(600),
        ..RecordOptions::default()
    };
    let rec = Recorder::start(
        Box::new(FileSink::create(&base).expect("create")),
        signing,
        SessionStart::new("sql"),
        opts,
    )
    .expect("starts");
    for i in 0..12 {
        rec.notice("sql", &format!("statement {i} of a long session"));
    }
    rec.close().expect("closes");
    let names: Vec<String> = (0..)
        .map(|n| FileSink::part_path(&base, n))
        .take_while(|p| p.exists())
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    let mut args = vec!["record", "verify", "--key", "rec.pub"];
    // Given out of order: grouped and ordered by the part each file names.
    args.extend(names.iter().rev().map(String::as_str));
    let o = sluice(&args, d.path());
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("in {} parts", names.len())), "{text}");

    let mut args = vec!["record", "replay"];
    args.extend(names.iter().map(String::as_str));
    let o = sluice(&args, d.path());
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(t.contains("statement 11") && t.contains("part 2 begins"), "{t}");
    assert!(o.stderr.is_empty(), "{}", String::from_utf8_lossy(&o.stderr));

    // A middle part missing: named.
    let mut args = vec!["record", "verify"];
    args.extend(
        names
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, n)| n.as_str()),
    );
    let o = sluice(&args, d.path());
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("part 1 should begin here"), "{text}");
}

/// A recording made through a session (a permissive policy lets a credential read through),
/// then read back by `sluice record`.
#[test]
fn record_verify_replay_export_and_audit() {
    use std::sync::Arc;

    use sluice_core::Detector;
    use sluice_core::policy::grant::GrantKey;
    use sluice_core::policy::{Engine, EngineHandle, Identity, Target};
    use sluice_core::record::{FileSink, RecordOptions, Recorder, SessionStart};
    use sluice_core::session::mcp::McpSession;
    use sluice_core::session::{Guard, Output};

    let d = tempdir::Dir::new();
    let key = GrantKey::generate_ed25519();
    let GrantKey::Ed25519(signing) = &key else {
        unreachable!("an Ed25519 key")
    };
    d.write("rec.pub", &key.public().expect("public half").to_text());
    let open = Engine::from_yaml("open", "version: 1\nname: open\ndefault: allow\n").expect("compiles");
    let policy = Arc::new(EngineHandle::new(Arc::new(open)));
    let guard = Guard::new(
        Arc::clone(&policy),
        Arc::new(Detector::builder().build().expect("builds")),
    );
    let path = d.path().join("s.jsonl");
    let start = SessionStart::new("mcp")
        .user("agent-7")
        .policy("open", policy.load().digest());
    let rec = Arc::new(
        Recorder::start(
            Box::new(FileSink::create(&path).expect("create")),
            signing,
            start,
            RecordOptions::default(),
        )
        .expect("starts"),
    );
    let mut mcp = McpSession::new(
        Arc::new(guard.with_recorder(Arc::clone(&rec))),
        Identity::new("agent-7"),
        Target::new("files"),
    );
    let mut out = Output::default();
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"~/.aws/credentials"}}}"#;
    mcp.from_client(format!("{call}\n").as_bytes(), &mut out)
        .expect("handled");
    assert!(!out.to_server.is_empty(), "the open policy lets it through");
    let answer = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"[default]"}]}}"#;
    mcp.from_server(format!("{answer}\n").as_bytes(), &mut out)
        .expect("handled");
    rec.close().expect("closes");

    let o = sluice(&["record", "verify", "s.jsonl", "--key", "rec.pub"], d.path());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok: session"));

    let o = sluice(&["record", "replay", "s.jsonl"], d.path());
    let t = String::from_utf8_lossy(&o.stdout);
    assert!(
        t.contains("~/.aws/credentials") && t.contains("ALLOW") && t.contains("[default]"),
        "{t}"
    );

    let o = sluice(&["record", "export", "--format", "asciicast", "s.jsonl"], d.path());
    let first = String::from_utf8_lossy(&o.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(first.contains("\"version\":2"), "{first}");

    // Under agent-safe the credential read would have been denied.
    let o = sluice(
        &["record", "audit", "s.jsonl", "--policy", "agent-safe", "--json"],
        d.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["changed"][0]["was"], "allow");
    assert_eq!(doc["changed"][0]["now"], "deny");

    // One byte changed: verification fails and names the line; another key: refused.
    let mut data = std::fs::read(&path).expect("read");
    let at = data.iter().position(|&b| b == b'~').expect("the command");
    data[at] = b'/';
    d.write_bytes("bad.jsonl", &data);
    let o = sluice(&["record", "verify", "bad.jsonl", "s.jsonl"], d.path());
    assert_eq!(o.status.code(), Some(1));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("bad.jsonl: bad record at line 3") && text.contains("s.jsonl: ok"),
        "{text}"
    );
    let other = GrantKey::generate_ed25519().public().expect("public").to_text();
    d.write("other.pub", &other);
    let o = sluice(&["record", "verify", "s.jsonl", "--key", "other.pub"], d.path());
    assert_eq!(o.status.code(), Some(1));
    let o = sluice(&["record", "verify", "missing.jsonl"], d.path());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn approvals_serve_refuses_bad_setups_with_what_and_where() {
    let d = tree();
    let dir = d.path();
    assert_eq!(sluice(&["keygen", "--out", "k"], dir).status.code(), Some(0));
    let proxy = "proxy-token-0123456789abcdef"; // synthetic test token: sluice:allow
    std::fs::write(dir.join("proxy.token"), format!("{proxy}\n")).expect("write");
    std::fs::write(dir.join("short.token"), "short\n").expect("write");
    let reviewer = "reviewer-token-0123456789"; // synthetic test token: sluice:allow
    std::fs::write(dir.join("reviewers"), format!("# reviewers\n{reviewer} alice:dba\n")).expect("write");
    std::fs::write(dir.join("bad-reviewers"), format!("{reviewer}\n")).expect("write");
    std::fs::write(dir.join("proxy-as-reviewer"), format!("{proxy} bob\n")).expect("write");
    let base = ["approvals", "serve", "--listen", "127.0.0.1:0", "--key-file", "k"];
    let cases: &[(&[&str], &str)] = &[
        (&["--proxy-token-file", "proxy.token"], "no reviewer can sign in"),
        (
            &["--proxy-token-file", "short.token", "--reviewer-tokens", "reviewers"],
            "at least 16 characters",
        ),
        (
            &["--proxy-token-file", "missing.token", "--reviewer-tokens", "reviewers"],
            "missing.token",
        ),
        (
            &[
                "--proxy-token-file",
                "proxy.token",
                "--reviewer-tokens",
                "bad-reviewers",
            ],
            "bad-reviewers:1: expected `TOKEN USER",
        ),
        (
            &[
                "--proxy-token-file",
                "proxy.token",
                "--reviewer-tokens",
                "proxy-as-reviewer",
            ],
            "also a reviewer token",
        ),
        (
            &[
                "--proxy-token-file",
                "proxy.token",
                "--reviewer-tokens",
                "reviewers",
                "--store",
                "mysql://x",
            ],
            "expected `memory` or a redis:// URL",
        ),
        (
            &[
                "--proxy-token-file",
                "proxy.token",
                "--reviewer-tokens",
                "reviewers",
                "--store",
                "redis://127.0.0.1:1/",
            ],
            "--store redis://127.0.0.1:1/",
        ),
    ];
    for (extra, want) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let out = sluice(&args, dir);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    // A public key cannot sign grants.
    let out = sluice(
        &[
            "approvals",
            "serve",
            "--key-file",
            "k.pub",
            "--proxy-token-file",
            "proxy.token",
            "--reviewer-tokens",
            "reviewers",
        ],
        dir,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot sign grants"));
}
