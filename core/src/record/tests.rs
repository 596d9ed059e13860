use std::io;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::*;
use crate::policy::{Engine, EngineHandle, Identity, Target};
use crate::session::mcp::McpSession;
use crate::session::{Guard, Output};

fn key(b: u8) -> SigningKey {
    SigningKey::from_bytes(&[b; 32])
}

/// A closed recording of a few events, with a checkpoint every `every` records.
fn recording(session: &str, k: &SigningKey, every: u64) -> Vec<u8> {
    let sink = MemorySink::default();
    let opts = RecordOptions {
        checkpoint_every: every,
        ..RecordOptions::default()
    };
    let start = SessionStart::new("mcp")
        .user("agent-7")
        .target("files")
        .session_id(session);
    let rec = Recorder::start(Box::new(sink.clone()), k, start, opts).expect("starts");
    for i in 0..5 {
        rec.notice("mcp", &format!("event {i}"));
        rec.output("mcp", format!("line {i}\n").as_bytes());
    }
    rec.masked("mcp", 2);
    rec.close().expect("closes");
    sink.contents()
}

fn lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

#[test]
fn an_intact_recording_verifies() {
    let k = key(1);
    let data = recording("s1", &k, 3);
    let r = verify(&data, Some(&k.verifying_key()));
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.session.as_deref(), Some("s1"));
    assert!(r.checkpoints >= 4, "{r:?}");
    assert_eq!(r.signed, r.records);
    // Without a key, against the recording's own key.
    let r = verify(&data, None);
    assert!(r.is_ok() && !r.key_given, "{r}");
}

#[test]
fn every_flipped_byte_is_detected() {
    let k = key(1);
    let data = recording("s1", &k, 3);
    for i in 0..data.len() {
        let flip = [0x01u8, 0x20, 0x80][i % 3];
        let mut bad = data.clone();
        bad[i] ^= flip;
        let r = verify(&bad, Some(&k.verifying_key()));
        assert!(!r.is_ok(), "flipping byte {i} by {flip:#x} went unnoticed");
    }
}

#[test]
fn deleted_repeated_moved_records_are_detected_and_named() {
    let k = key(1);
    let data = recording("s1", &k, 3);
    let ls = lines(&data);
    for i in 0..ls.len() {
        let mut deleted = ls.clone();
        deleted.remove(i);
        let r = verify(&deleted.concat(), Some(&k.verifying_key()));
        assert!(!r.is_ok(), "deleting record {i}");
        if i + 1 < ls.len() {
            // The first bad line is the one after the gap.
            assert_eq!(r.problem.as_ref().map(|p| p.line), Some(i as u64 + 1), "{r}");
        }
        let mut repeated = ls.clone();
        repeated.insert(i, ls[i].clone());
        assert!(
            !verify(&repeated.concat(), Some(&k.verifying_key())).is_ok(),
            "repeating record {i}"
        );
        for j in 0..ls.len() {
            if i != j {
                let mut swapped = ls.clone();
                swapped.swap(i, j);
                assert!(
                    !verify(&swapped.concat(), Some(&k.verifying_key())).is_ok(),
                    "swapping {i} and {j}"
                );
            }
        }
    }
}

#[test]
fn every_truncation_is_reported_as_cut_short() {
    let k = key(1);
    let data = recording("s1", &k, 3);
    for n in 0..data.len() {
        let r = verify(&data[..n], Some(&k.verifying_key()));
        assert!(!r.is_ok(), "truncating at {n}");
        let p = r.problem.as_ref().expect("a problem");
        // What is before the cut verifies; only the tail is reported.
        assert!(p.torn || n == 0, "truncating at {n}: {r}");
        assert!(r.records <= lines(&data[..n]).len() as u64);
    }
}

#[test]
fn splices_from_another_session_or_key_are_detected() {
    let k = key(1);
    let a = lines(&recording("s1", &k, 3));
    let b = lines(&recording("s2", &k, 3));
    // Same key, same positions, another session: every record and checkpoint differs in its
    // chain or its signed message.
    for i in 0..a.len().min(b.len()) {
        let mut spliced = a.clone();
        spliced[i] = b[i].clone();
        if spliced == a {
            continue;
        }
        let r = verify(&spliced.concat(), Some(&k.verifying_key()));
        assert!(!r.is_ok(), "record {i} of another session went unnoticed");
    }
    // The whole recording signed by another key: refused against the right key.
    let other = recording("s1", &key(2), 3);
    let r = verify(&other, Some(&k.verifying_key()));
    assert!(
        r.problem
            .as_ref()
            .is_some_and(|p| p.line == 1 && p.reason.contains("another key")),
        "{r}"
    );
    // A start record that names another key than the one that signs: the checkpoints fail.
    let mut swapped = lines(&other);
    swapped[0] = a[0].clone();
    assert!(!verify(&swapped.concat(), None).is_ok());
}

#[test]
fn a_crash_leaves_a_verifiable_prefix_and_a_reported_tail() {
    let k = key(1);
    let sink = MemorySink::default();
    let opts = RecordOptions {
        checkpoint_every: 4,
        ..RecordOptions::default()
    };
    let rec = Recorder::start(Box::new(sink.clone()), &k, SessionStart::new("sql"), opts).expect("starts");
    for i in 0..10 {
        rec.notice("sql", &format!("n{i}"));
    }
    // The process dies: no close. Half a record is on disk.
    let mut data = sink.contents();
    std::mem::forget(rec);
    data.extend_from_slice(br#"{"v":1,"seq":13,"ty"#);
    let r = verify(&data, Some(&k.verifying_key()));
    let p = r.problem.as_ref().expect("reported");
    assert!(p.torn && p.reason.contains("torn"), "{r}");
    assert_eq!(r.records, 13, "{r}");
    assert_eq!(r.signed, 10, "the last checkpoint signs records 0..10: {r}");
}

#[test]
fn time_triggers_checkpoints() {
    let k = key(1);
    let sink = MemorySink::default();
    let opts = RecordOptions {
        checkpoint_every: 1_000_000,
        checkpoint_interval: Duration::ZERO,
        ..RecordOptions::default()
    };
    let rec = Recorder::start(Box::new(sink.clone()), &k, SessionStart::new("sql"), opts).expect("starts");
    rec.notice("sql", "a");
    rec.notice("sql", "b");
    rec.close().expect("closes");
    let r = verify(&sink.contents(), Some(&k.verifying_key()));
    assert!(r.is_ok() && r.checkpoints >= 3, "{r}");
}

#[test]
fn a_failing_sink_refuses_new_commands() {
    let k = key(1);
    let mut budget = 3;
    let sink = CallbackSink(move |_: &[u8]| {
        if budget == 0 {
            return Err(io::Error::other("disk full"));
        }
        budget -= 1;
        Ok(())
    });
    let rec = Recorder::start(Box::new(sink), &k, SessionStart::new("mcp"), RecordOptions::default()).expect("starts");
    let policy = Arc::new(EngineHandle::new(Engine::agent_safe()));
    let guard = Guard::new(policy, Arc::new(crate::Detector::builder().build().expect("builds")));
    let guard = Arc::new(guard.with_recorder(Arc::new(rec)));
    let mut mcp = McpSession::new(Arc::clone(&guard), Identity::new("agent-7"), Target::new("files"));
    let call = |id: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"read_file","arguments":{{"path":"README.md"}}}}}}"#
        )
    };
    let mut forwarded = 0;
    let mut refused = 0;
    for id in 0..6 {
        let mut out = Output::default();
        mcp.from_client(format!("{}\n", call(id)).as_bytes(), &mut out)
            .expect("handled");
        if out.to_server.is_empty() {
            assert!(
                String::from_utf8_lossy(&out.to_client).contains("recording failed"),
                "{}",
                String::from_utf8_lossy(&out.to_client)
            );
            refused += 1;
        } else {
            forwarded += 1;
        }
    }
    assert!(
        forwarded >= 1 && refused >= 1,
        "forwarded {forwarded}, refused {refused}"
    );
    // Once failed, nothing more is forwarded.
    let mut out = Output::default();
    mcp.from_client(format!("{}\n", call(99)).as_bytes(), &mut out)
        .expect("handled");
    assert!(out.to_server.is_empty());
}

#[test]
fn a_recorded_session_holds_decisions_output_and_no_secret() {
    let k = key(1);
    let planted = "s3rv1ce-pw-Synthetic-42"; // synthetic: sluice:allow
    let detector = Arc::new(
        crate::Detector::builder()
            .known_value("db-password", planted)
            .build()
            .expect("builds"),
    );
    let policy = Arc::new(EngineHandle::new(Engine::agent_safe()));
    let base = Guard::new(Arc::clone(&policy), Arc::clone(&detector));
    let sink = MemorySink::default();
    let start = SessionStart::new("mcp")
        .user("agent-7")
        .policy(policy.load().name(), policy.load().digest());
    let rec = Recorder::start(Box::new(sink.clone()), &k, start, RecordOptions::default())
        .expect("starts")
        .with_detector(Arc::clone(&detector));
    let rec = Arc::new(rec);
    let guard = Arc::new(base.with_recorder(Arc::clone(&rec)));
    let mut mcp = McpSession::new(guard, Identity::new("agent-7"), Target::new("files"));
    let mut out = Output::default();
    // The agent sends the secret in a command, reads an SSH key (refused) and gets the
    // password back from the server (masked).
    let send = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"write_file","arguments":{{"path":"notes.txt","content":"pw {planted}"}}}}}}"#
    );
    mcp.from_client(format!("{send}\n").as_bytes(), &mut out)
        .expect("handled");
    let key_read = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"~/.ssh/id_ed25519"}}}"#;
    mcp.from_client(format!("{key_read}\n").as_bytes(), &mut out)
        .expect("handled");
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"DB_PASSWORD={planted}"}}]}}}}"#
    );
    mcp.from_server(format!("{answer}\n").as_bytes(), &mut out)
        .expect("handled");
    drop(mcp);
    rec.close().expect("closes");
    let data = sink.contents();
    let text = String::from_utf8_lossy(&data);
    assert!(!text.contains(planted), "{text}");
    let found: Vec<_> = detector
        .scan(&data)
        .into_iter()
        .map(|f| String::from_utf8_lossy(&data[f.start..f.end]).into_owned())
        .collect();
    assert!(
        found.is_empty(),
        "the detector finds something in the recording: {found:?}"
    );
    let r = verify(&data, Some(&k.verifying_key()));
    assert!(r.is_ok(), "{r}");
    let t = transcript(&data).to_string();
    assert!(t.contains("DENY [ssh-private-keys]"), "{t}");
    assert!(t.contains("[REDACTED:db-password:"), "{t}");
    assert!(
        t.contains(&format!("policy agent-safe ({})", policy.load().digest())),
        "{t}"
    );
}

#[test]
fn asciicast_export_has_a_header_and_timed_events() {
    let k = key(1);
    let sink = MemorySink::default();
    let rec = Recorder::start(
        Box::new(sink.clone()),
        &k,
        SessionStart::new("shell"),
        RecordOptions::default(),
    )
    .expect("starts");
    rec.output("shell", b"hello\nworld\n");
    rec.close().expect("closes");
    let cast = asciicast(&sink.contents(), 100, 30);
    let mut lines = cast.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().expect("header")).expect("json");
    assert_eq!(header["version"], 2);
    assert_eq!(header["width"], 100);
    let ev: serde_json::Value = serde_json::from_str(lines.next().expect("event")).expect("json");
    assert_eq!(ev[1], "o");
    assert_eq!(ev[2], "hello\r\nworld\r\n");
}
