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
    // Inputs are forwarded while they can be recorded; the input whose records fail ends the
    // session (nothing of it forwarded); a host that goes on gets every later command refused.
    let mut forwarded = 0;
    let mut failed_at = None;
    for id in 0..6 {
        let mut out = Output::default();
        match mcp.from_client(format!("{}\n", call(id)).as_bytes(), &mut out) {
            Ok(()) if failed_at.is_none() => {
                assert!(!out.to_server.is_empty(), "recorded and allowed, so forwarded");
                forwarded += 1;
            }
            Ok(()) => {
                assert!(out.to_server.is_empty(), "forwarded after the recording failed");
                assert!(
                    String::from_utf8_lossy(&out.to_client).contains("recording failed"),
                    "{}",
                    String::from_utf8_lossy(&out.to_client)
                );
            }
            Err(e) => {
                assert!(failed_at.is_none(), "only the failing input ends the session: {e}");
                assert!(e.reason().contains("disk full"), "{e}");
                failed_at = Some(id);
            }
        }
    }
    assert!(
        forwarded >= 1 && failed_at.is_some(),
        "forwarded {forwarded}, failed at {failed_at:?}"
    );
}

/// A sink that buffers like a file and whose writes out start failing (a disk filling up).
struct FillingDisk {
    pending: Vec<u8>,
    flushes_left: u32,
    written: MemorySink,
}

impl Sink for FillingDisk {
    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(record);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.flushes_left == 0 {
            return Err(io::Error::other("No space left on device"));
        }
        self.flushes_left -= 1;
        let r = self.written.write(&self.pending);
        self.pending.clear();
        r
    }

    fn sync(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// Records are batched per input and written out before the host forwards anything: the input
/// whose batch cannot be written ends the session, so nothing unrecorded is forwarded.
#[test]
fn a_buffered_sink_that_fails_forwards_nothing_unrecorded() {
    let k = key(1);
    let written = MemorySink::default();
    let sink = FillingDisk {
        pending: Vec::new(),
        flushes_left: 3,
        written: written.clone(),
    };
    let rec = Recorder::start(Box::new(sink), &k, SessionStart::new("mcp"), RecordOptions::default()).expect("starts");
    let policy = Arc::new(EngineHandle::new(Engine::agent_safe()));
    let guard = Guard::new(policy, Arc::new(crate::Detector::builder().build().expect("builds")));
    let mut mcp = McpSession::new(
        Arc::new(guard.with_recorder(Arc::new(rec))),
        Identity::new("agent-7"),
        Target::new("files"),
    );
    let call = |id: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"read_file","arguments":{{"path":"README.md"}}}}}}"#
        )
    };
    let mut outcomes = Vec::new();
    for id in 0..4 {
        let mut out = Output::default();
        let r = mcp.from_client(format!("{}\n", call(id)).as_bytes(), &mut out);
        outcomes.push((r.is_ok(), !out.to_server.is_empty()));
        if r.is_ok() {
            let answer = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[]}}}}"#);
            let _ = mcp.from_server(format!("{answer}\n").as_bytes(), &mut out);
        }
    }
    // The start took one flush; inputs flushed while the budget lasted; then the failing one.
    let failed = outcomes.iter().position(|(ok, _)| !ok).expect("an input failed");
    assert!(failed >= 1, "{outcomes:?}");
    assert!(outcomes[..failed].iter().all(|&(ok, fwd)| ok && fwd), "{outcomes:?}");
    // Every forwarded command's decision reached the disk.
    let on_disk = String::from_utf8_lossy(&written.contents()).into_owned();
    for id in 0..failed {
        assert!(
            on_disk.contains(&format!(r#"\"id\":{id},"#)),
            "call {id} forwarded unrecorded"
        );
    }
}

/// An input that only answers the client (here the server's replies) leaves its records in
/// the sink's buffer; they go out with the next input that forwards something, or at a tick:
/// one write per round trip, and a failure to write them refuses that next command.
#[test]
fn output_is_written_with_the_next_forwarded_input_or_at_a_tick() {
    let k = key(1);
    let written = MemorySink::default();
    let sink = FillingDisk {
        pending: Vec::new(),
        flushes_left: 4,
        written: written.clone(),
    };
    let rec = Arc::new(
        Recorder::start(Box::new(sink), &k, SessionStart::new("mcp"), RecordOptions::default()).expect("starts"),
    );
    let policy = Arc::new(EngineHandle::new(Engine::agent_safe()));
    let guard = Guard::new(policy, Arc::new(crate::Detector::builder().build().expect("builds")));
    let mut mcp = McpSession::new(
        Arc::new(guard.with_recorder(rec.clone())),
        Identity::new("agent-7"),
        Target::new("files"),
    );
    let call = |id: u32| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"tools/call\",\"params\":{{\"name\":\"read_file\",\"arguments\":{{\"path\":\"README.md\"}}}}}}\n"
        )
    };
    let answer = |id: u32, text: &str| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}}]}}}}\n"
        )
    };
    let on_disk = || String::from_utf8_lossy(&written.contents()).into_owned();
    let mut out = Output::default();
    mcp.from_client(call(1).as_bytes(), &mut out).expect("forwarded");
    assert!(!out.to_server.is_empty());
    assert!(
        on_disk().contains(r#"\"id\":1,"#),
        "the decision is written before forwarding"
    );
    let mut out = Output::default();
    mcp.from_server(answer(1, "first-answer").as_bytes(), &mut out)
        .expect("answered");
    assert!(String::from_utf8_lossy(&out.to_client).contains("first-answer"));
    // Held: the reply went to the client, its record waits for the next write.
    assert!(!on_disk().contains("\"output\""), "{}", on_disk());
    let mut out = Output::default();
    mcp.from_client(call(2).as_bytes(), &mut out).expect("forwarded");
    assert_eq!(
        on_disk().matches("\"output\"").count(),
        1,
        "written with the next command"
    );
    let mut out = Output::default();
    mcp.from_server(answer(2, "second-answer").as_bytes(), &mut out)
        .expect("answered");
    assert_eq!(on_disk().matches("\"output\"").count(), 1);
    rec.tick();
    assert_eq!(
        on_disk().matches("\"output\"").count(),
        2,
        "a tick writes what was held"
    );
    // The budget is spent (start, two commands, the tick): the next reply is held, and the
    // command after it cannot be written with it, so it is refused, not forwarded.
    let mut out = Output::default();
    let note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"late\"}}\n";
    mcp.from_server(note.as_bytes(), &mut out).expect("a held reply");
    let mut out = Output::default();
    let e = mcp
        .from_client(call(3).as_bytes(), &mut out)
        .expect_err("refused: the host forwards nothing");
    assert!(e.reason().contains("No space left"), "{e}");
    assert!(!on_disk().contains(r#"\"id\":3,"#));
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

/// A recording rotated into parts by size, written to files under a fresh directory.
fn rotated(dir: &std::path::Path, session: &str, k: &SigningKey) -> Vec<Vec<u8>> {
    let base = dir.join(format!("{session}.jsonl"));
    let opts = RecordOptions {
        checkpoint_every: 4,
        rotate_bytes: Some(1500),
        ..RecordOptions::default()
    };
    let start = SessionStart::new("mcp").session_id(session);
    let rec = Recorder::start(Box::new(FileSink::create(&base).expect("creates")), k, start, opts).expect("starts");
    for i in 0..30 {
        rec.notice("mcp", &format!("event {i} of a session long enough to be rotated"));
    }
    rec.close().expect("closes");
    let mut parts = Vec::new();
    for n in 0.. {
        match std::fs::read(FileSink::part_path(&base, n)) {
            Ok(d) => parts.push(d),
            Err(_) => break,
        }
    }
    parts
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sluice-record-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

#[test]
fn rotated_parts_verify_as_one_chain() {
    let dir = tempdir("parts");
    let k = key(1);
    let parts = rotated(&dir, "s1", &k);
    assert!(parts.len() >= 3, "{} parts", parts.len());
    let all: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let r = verify_parts(&all, Some(&k.verifying_key()));
    assert!(r.is_ok(), "{r}");
    assert_eq!(r.parts, parts.len() as u64);
    // Every part but the last ends with the checkpoint that names the next; each later one
    // begins with its `continue` record.
    for (n, p) in parts.iter().enumerate().skip(1) {
        assert!(
            p.starts_with(b"{\"part\":") && String::from_utf8_lossy(p).contains("\"type\":\"continue\""),
            "part {n}"
        );
    }
    // The parts concatenated are the same chain.
    assert!(verify(&parts.concat(), Some(&k.verifying_key())).is_ok());
    // The first part alone is intact but not closed: it names the part that follows.
    let r = verify(&parts[0], None);
    let p = r.problem.as_ref().expect("not closed");
    assert!(p.torn && p.reason.contains("part 1"), "{r}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn missing_reordered_repeated_or_foreign_parts_are_detected() {
    let dir = tempdir("bad-parts");
    let k = key(1);
    let parts = rotated(&dir, "s1", &k);
    let other = rotated(&dir, "s2", &k);
    let n = parts.len();
    let check = |list: Vec<&Vec<u8>>, what: &str| {
        let list: Vec<&[u8]> = list.into_iter().map(Vec::as_slice).collect();
        let r = verify_parts(&list, Some(&k.verifying_key()));
        assert!(!r.is_ok(), "{what} went unnoticed");
        r
    };
    for i in 0..n {
        let mut l: Vec<&Vec<u8>> = parts.iter().collect();
        l.remove(i);
        let r = check(l, &format!("dropping part {i}"));
        if i + 1 < n {
            assert_eq!(r.problem.as_ref().map(|p| p.input), Some(i), "{r}");
        }
        let mut l: Vec<&Vec<u8>> = parts.iter().collect();
        l.insert(i, &parts[i]);
        check(l, &format!("repeating part {i}"));
        if i + 1 < n {
            let mut l: Vec<&Vec<u8>> = parts.iter().collect();
            l.swap(i, i + 1);
            check(l, &format!("swapping parts {i} and {}", i + 1));
        }
        if i > 0 && i < other.len() {
            let mut l: Vec<&Vec<u8>> = parts.iter().collect();
            l[i] = &other[i];
            let r = check(l, &format!("part {i} from another session"));
            assert_eq!(r.problem.as_ref().map(|p| p.input), Some(i), "{r}");
        }
    }
    // A flipped byte in any part.
    for i in 0..n {
        for at in (0..parts[i].len()).step_by(97) {
            let mut bad = parts.clone();
            bad[i][at] ^= 0x20;
            check(bad.iter().collect(), &format!("flipping byte {at} of part {i}"));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn time_rotates_parts_and_a_tick_signs_an_idle_tail() {
    let k = key(1);
    let sink = MemorySink::default();
    let opts = RecordOptions {
        checkpoint_every: 1_000_000,
        checkpoint_interval: Duration::from_millis(30),
        rotate_interval: Some(Duration::from_millis(60)),
        ..RecordOptions::default()
    };
    let rec = Recorder::start(Box::new(sink.clone()), &k, SessionStart::new("sql"), opts).expect("starts");
    rec.notice("sql", "a");
    let before = verify(&sink.contents(), None);
    assert_eq!(before.signed, 0, "nothing is signed yet: {before}");
    std::thread::sleep(Duration::from_millis(40));
    rec.tick();
    let idle = verify(&sink.contents(), None);
    assert_eq!(idle.signed, idle.records, "the tick signed the idle tail: {idle}");
    // A tick with nothing new to sign writes nothing.
    let len = sink.contents().len();
    rec.tick();
    assert_eq!(sink.contents().len(), len);
    std::thread::sleep(Duration::from_millis(70));
    rec.notice("sql", "b");
    rec.close().expect("closes");
    let r = verify(&sink.contents(), Some(&k.verifying_key()));
    assert!(r.is_ok() && r.parts == 2, "{r}");
}

#[test]
fn database_output_replays_as_rows_even_when_cut_across_records() {
    use sluice_protocols::{mysql, postgres};
    let k = key(1);
    // PostgreSQL: the SSL refusal, a row description, two rows (one NULL), the tag, an error.
    let mut pg = Vec::new();
    let col = |name: &'static [u8]| postgres::Column {
        name,
        table_oid: 0,
        attr: 0,
        type_oid: 25,
        type_size: -1,
        type_mod: -1,
        format: 0,
    };
    postgres::encode_row_description(&[col(b"id"), col(b"name")], &mut pg);
    postgres::encode_data_row(&[Some(b"1"), Some(b"alpha")], &mut pg);
    postgres::encode_data_row(&[Some(b"2"), None], &mut pg);
    postgres::encode_command_complete(b"SELECT 2", &mut pg);
    postgres::encode_error(
        &[(b'S', b"ERROR"), (b'C', b"42P01"), (b'M', b"no such table")],
        false,
        &mut pg,
    );
    postgres::encode_ready_for_query(b'I', &mut pg);
    let sink = MemorySink::default();
    let rec = Recorder::start(
        Box::new(sink.clone()),
        &k,
        SessionStart::new("postgres"),
        RecordOptions::default(),
    )
    .expect("starts");
    rec.output("sql", b"N");
    let cut = pg.len() / 2 + 3;
    rec.output("sql", &pg[..cut]);
    rec.output("sql", &pg[cut..]);
    rec.close().expect("closes");
    let t = transcript(&sink.contents()).to_string();
    for want in [
        "< id | name",
        "< 1 | alpha",
        "< 2 | NULL",
        "< (SELECT 2)",
        "< ERROR: no such table (42P01)",
    ] {
        assert!(t.contains(want), "{want:?} missing from\n{t}");
    }
    assert!(!t.contains("< N"), "{t}");

    // MySQL: handshake, OK after authentication, a result set, an OK, an error.
    let mut my = Vec::new();
    mysql::encode_packet(0, &[b"\x0a8.0.0\0"], &mut my);
    mysql::encode_packet(2, &[b"\x00\x00\x00\x02\x00\x00\x00"], &mut my);
    mysql::encode_packet(1, &[b"\x02"], &mut my);
    let def = |name: &[u8]| {
        let mut d = Vec::new();
        for n in [&b"def"[..], b"app", b"t", b"t", name, name] {
            d.push(n.len() as u8);
            d.extend_from_slice(n);
        }
        d.extend_from_slice(&[0x0c, 0x21, 0, 0xff, 0, 0, 0, 0xfd, 0, 0, 0, 0, 0]);
        d
    };
    mysql::encode_packet(2, &[&def(b"id")], &mut my);
    mysql::encode_packet(3, &[&def(b"name")], &mut my);
    mysql::encode_packet(4, &[b"\xfe\x00\x00\x02\x00"], &mut my);
    mysql::encode_text_row(5, &[Some(b"1"), Some(b"alpha")], &mut my);
    mysql::encode_text_row(6, &[Some(b"2"), None], &mut my);
    mysql::encode_packet(7, &[b"\xfe\x00\x00\x02\x00"], &mut my);
    mysql::encode_packet(1, &[b"\x00\x03\x00\x02\x00\x00\x00"], &mut my);
    mysql::encode_err(1, 1146, b"42S02", b"Table 'app.x' doesn't exist", &mut my);
    let sink = MemorySink::default();
    let rec = Recorder::start(
        Box::new(sink.clone()),
        &k,
        SessionStart::new("mysql"),
        RecordOptions::default(),
    )
    .expect("starts");
    for piece in my.chunks(7) {
        rec.output("sql", piece);
    }
    rec.close().expect("closes");
    let t = transcript(&sink.contents()).to_string();
    for want in [
        "< (authenticated)",
        "< id | name",
        "< 1 | alpha",
        "< 2 | NULL",
        "< (2 row(s))",
        "< (OK, 3 row(s) affected)",
        "< ERROR 1146: Table 'app.x' doesn't exist",
    ] {
        assert!(t.contains(want), "{want:?} missing from\n{t}");
    }
}
