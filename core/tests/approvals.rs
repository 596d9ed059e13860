//! Just-in-time approval: approval requests, grants signed with HMAC-SHA256 and Ed25519, bound
//! to command, user and target, single use, self-approval and approver rules, tampering.

use std::sync::Arc;

use sluice_core::policy::grant::{self, Approver, GrantErrorKind, GrantKey, GrantVerifier, MemoryStore, issue, now};
use sluice_core::policy::{Action, Dialect, Engine, Identity, Request, Target};

fn sql(text: &str) -> Request<'_> {
    Request::Sql {
        text,
        dialect: Dialect::Postgres,
        lexing: Default::default(),
    }
}

fn verifier(key: &GrantKey) -> GrantVerifier {
    GrantVerifier::new(
        key.public().unwrap_or_else(|| key.clone()),
        Arc::new(MemoryStore::default()),
    )
}

#[test]
fn a_grant_allows_exactly_that_command_once() {
    let engine = Engine::agent_safe();
    let (me, db) = (Identity::new("agent-7"), Target::new("orders"));
    for key in [GrantKey::generate_hmac(), GrantKey::generate_ed25519()] {
        let v = verifier(&key);
        let d = engine.decide(&me, &db, &sql("DROP TABLE old_orders;"));
        assert_eq!(d.action(), Action::RequireApproval);
        let req = d.approval().expect("approval request");
        assert_eq!(
            (req.user.as_str(), req.target.as_str(), req.command.as_str()),
            ("agent-7", "orders", "DROP TABLE old_orders")
        );
        assert_eq!(req.rule.as_deref(), Some("destructive-sql"));
        assert!(req.expires_at > req.created_at);
        let token = issue(&key, req, &[Approver::new("alice")], now()).expect("issued");
        assert!(token.starts_with("sg1."), "{token}");

        // Another command, user or target: refused, and the grant is not consumed.
        let other = engine.decide_with_grant(&me, &db, &sql("DROP TABLE customers"), Some(&token), &v);
        assert_eq!(other.action(), Action::RequireApproval);
        assert!(
            other
                .reason()
                .contains("grant rejected: grant is for a different command"),
            "{}",
            other.reason()
        );
        let who = engine.decide_with_grant(
            &Identity::new("agent-8"),
            &db,
            &sql("DROP TABLE old_orders"),
            Some(&token),
            &v,
        );
        assert!(who.reason().contains("different"), "{}", who.reason());
        let wher = engine.decide_with_grant(
            &me,
            &Target::new("billing"),
            &sql("DROP TABLE old_orders"),
            Some(&token),
            &v,
        );
        assert_eq!(wher.action(), Action::RequireApproval);

        // The approved command (trailing `;` and blanks are normalised away): once.
        let ok = engine.decide_with_grant(&me, &db, &sql("  DROP TABLE old_orders "), Some(&token), &v);
        assert_eq!(ok.action(), Action::Allow, "{}", ok.reason());
        assert!(ok.reason().starts_with("approved by alice"), "{}", ok.reason());
        let again = engine.decide_with_grant(&me, &db, &sql("DROP TABLE old_orders"), Some(&token), &v);
        assert_eq!(again.action(), Action::RequireApproval);
        assert!(again.reason().contains("grant already used"), "{}", again.reason());
    }
}

#[test]
fn grants_never_override_a_deny_and_are_not_needed_for_an_allow() {
    let engine = Engine::agent_safe();
    let key = GrantKey::generate_hmac();
    let v = verifier(&key);
    let (me, db) = (Identity::new("agent-7"), Target::new("orders"));
    let req = engine
        .decide(&me, &db, &sql("DROP TABLE t"))
        .into_approval()
        .expect("request");
    let token = issue(&key, &req, &[Approver::new("alice")], now()).expect("issued");
    assert_eq!(
        engine
            .decide_with_grant(&me, &db, &sql("SELECT * FROM pg_shadow"), Some(&token), &v)
            .action(),
        Action::Deny
    );
    assert_eq!(
        engine
            .decide_with_grant(&me, &db, &sql("SELECT 1"), Some(&token), &v)
            .action(),
        Action::Allow
    );
    // Still unused: it works for its own command.
    assert_eq!(
        engine
            .decide_with_grant(&me, &db, &sql("DROP TABLE t"), Some(&token), &v)
            .action(),
        Action::Allow
    );
}

#[test]
fn bad_tokens_are_refused() {
    let engine = Engine::agent_safe();
    let key = GrantKey::generate_ed25519();
    let (me, db) = (Identity::new("agent-7"), Target::new("orders"));
    let req = engine
        .decide(&me, &db, &sql("TRUNCATE t"))
        .into_approval()
        .expect("request");
    let token = issue(&key, &req, &[Approver::new("alice")], now()).expect("issued");
    // Another key.
    let other = verifier(&GrantKey::generate_ed25519());
    assert!(matches!(other.redeem(&req, &token, now()), Err(e) if e.kind() == GrantErrorKind::Invalid));
    // An HMAC verifier for an Ed25519 token.
    assert!(matches!(
        verifier(&GrantKey::generate_hmac()).redeem(&req, &token, now()),
        Err(e) if e.kind() == GrantErrorKind::Invalid
    ));
    // Tampered payload.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[2] = parts[2].replacen('e', "f", 1);
    assert!(matches!(
        verifier(&key).redeem(&req, &parts.join("."), now()),
        Err(e) if e.kind() == GrantErrorKind::Invalid
    ));
    // Expired.
    assert_eq!(
        verifier(&key)
            .redeem(&req, &token, now() + 24 * 3600)
            .map_err(|e| e.kind()),
        Err(GrantErrorKind::Expired)
    );
    // A public key cannot sign.
    assert!(issue(&key.public().expect("public"), &req, &[Approver::new("alice")], now()).is_err());
    // Garbage.
    assert!(verifier(&key).redeem(&req, "sg1.nope", now()).is_err());
    // No grant issued for an expired request.
    assert_eq!(
        issue(&key, &req, &[Approver::new("alice")], req.expires_at).map_err(|e| e.kind()),
        Err(GrantErrorKind::Expired)
    );
}

#[test]
fn approver_rules_and_self_approval() {
    let policy = r#"
version: 1
default: allow
approval: { ttl: 10m }
rules:
  - id: prod-writes
    action: require_approval
    approval: { count: 2, approvers: { groups: [sre], users: [carol] } }
    when: { labels: { env: prod }, sql: { kinds: [update, delete, insert] } }
  - id: self-ok
    action: require_approval
    approval: { allow_self: true }
    when: { sql: { kinds: [truncate] } }
"#;
    let engine = Engine::from_yaml("approvers.yaml", policy).expect("compiles");
    let key = GrantKey::generate_hmac();
    let me = Identity::new("bob").group("sre");
    let prod = Target::new("db").label("env", "prod");
    let req = engine
        .decide(&me, &prod, &sql("DELETE FROM t WHERE id = 1"))
        .into_approval()
        .expect("request");
    assert_eq!((req.count, req.expires_at - req.created_at), (2, 600));
    let sre = |u: &str| Approver::new(u).group("sre");
    // One approver is not enough; the requester does not count; outsiders do not count.
    assert!(matches!(
        issue(&key, &req, &[sre("dan")], now()),
        Err(e) if e.kind() == GrantErrorKind::Approvers
    ));
    let e = issue(&key, &req, &[sre("dan"), sre("bob")], now()).expect_err("self");
    assert!(e.to_string().contains("self-approval is not allowed"), "{e}");
    assert!(issue(&key, &req, &[sre("dan"), Approver::new("mallory")], now()).is_err());
    assert!(
        issue(&key, &req, &[sre("dan"), sre("dan")], now()).is_err(),
        "the same approver twice"
    );
    let token = issue(&key, &req, &[sre("dan"), Approver::new("carol")], now()).expect("two approvers");
    let v = verifier(&key);
    let d = engine.decide_with_grant(&me, &prod, &sql("DELETE FROM t WHERE id = 1"), Some(&token), &v);
    assert_eq!(d.action(), Action::Allow, "{}", d.reason());

    let req = engine
        .decide(&me, &prod, &sql("TRUNCATE t"))
        .into_approval()
        .expect("request");
    assert!(
        issue(&key, &req, &[Approver::new("bob")], now()).is_ok(),
        "self-approval allowed by this rule"
    );
}

#[test]
fn keys_round_trip_through_text() {
    for key in [GrantKey::generate_hmac(), GrantKey::generate_ed25519()] {
        let text = key.to_text();
        let back = GrantKey::parse(&text).expect("parses");
        assert_eq!(back.to_text(), text);
    }
    let pubkey = GrantKey::generate_ed25519().public().expect("public");
    assert!(pubkey.to_text().contains(":ed25519-public:"));
    for bad in [
        "",
        "sluice-grant-key:hmac-sha256:",
        "sluice-grant-key:rot13:AAAA",
        "sluice-grant-key:ed25519-secret:AAAA", // sluice:allow (a malformed key)
        "hello",
    ] {
        assert!(GrantKey::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        grant::fingerprint(sluice_core::policy::Protocol::Sql, "a", "b").len(),
        64
    );
}

#[test]
fn mcp_retries_with_a_new_json_rpc_id_match_the_grant() {
    let engine = Engine::from_yaml(
        "mcp.yaml",
        "version: 1\ndefault: allow\nrules:\n  - id: deploys\n    action: require_approval\n    when: { mcp: { tools: [deploy] } }\n",
    )
    .expect("compiles");
    let key = GrantKey::generate_hmac();
    let v = verifier(&key);
    let me = Identity::new("agent");
    let t = Target::new("mcp-server");
    let call = |id: u32| {
        format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"deploy","arguments":{{"env":"prod"}}}}}}"#
        )
    };
    let first = call(1);
    let req = engine
        .decide(&me, &t, &Request::Mcp(first.as_bytes()))
        .into_approval()
        .expect("request");
    let token = issue(&key, &req, &[Approver::new("alice")], now()).expect("issued");
    let retry = call(2);
    let d = engine.decide_with_grant(&me, &t, &Request::Mcp(retry.as_bytes()), Some(&token), &v);
    assert_eq!(d.action(), Action::Allow, "{}", d.reason());
}

mod held {
    //! Holding a command for approval in a session's guard: whatever the hold returns, only a
    //! valid grant for exactly the held command, from the key the guard trusts, lets it run.

    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use sluice_core::Detector;
    use sluice_core::policy::approvals::{Hold, LocalHold, MemoryApprovals, Outcome};
    use sluice_core::policy::grant::{ApprovalRequest, Approver, GrantKey, GrantVerifier, MemoryStore, issue, now};
    use sluice_core::policy::{Action, Engine, EngineHandle, Identity, Target};
    use sluice_core::session::{Event, Guard, Hook};

    use super::sql;

    /// A hold that answers with whatever the test says (a compromised or confused service).
    type Answer = Box<dyn FnMut(&ApprovalRequest) -> Outcome + Send>;
    struct Answers(Mutex<Answer>);

    impl std::fmt::Debug for Answers {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Answers")
        }
    }

    impl Hold for Answers {
        fn hold(&self, request: &ApprovalRequest, waiting: &mut dyn FnMut(Duration)) -> Outcome {
            waiting(Duration::from_secs(2));
            (self.0.lock().expect("lock"))(request)
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn poll(&self, request: &ApprovalRequest) -> Option<Outcome> {
            Some((self.0.lock().expect("lock"))(request))
        }
    }

    #[derive(Default)]
    struct Notes(Mutex<Vec<String>>);

    impl Hook for Notes {
        fn event(&self, e: &Event<'_>) {
            self.0.lock().expect("lock").push(e.to_json().to_string());
        }
    }

    fn guard(key: &GrantKey, hold: Arc<dyn Hold>) -> (Guard, Arc<Notes>) {
        let mut g = Guard::new(
            Arc::new(EngineHandle::new(Engine::agent_safe())),
            Arc::new(Detector::builder().build().expect("detector")),
        );
        g.grants = Some(GrantVerifier::new(
            key.public().unwrap_or_else(|| key.clone()),
            Arc::new(MemoryStore::default()),
        ));
        g.hold = Some(hold);
        let notes = Arc::new(Notes::default());
        g.hook = Some(Arc::clone(&notes) as Arc<dyn Hook>);
        (g, notes)
    }

    fn decide(g: &Guard, text: &str) -> sluice_core::policy::Decision {
        g.decide_waiting(
            &Identity::new("agent-7"),
            &Target::new("orders"),
            &sql(text),
            text,
            None,
            &mut |_| {},
        )
    }

    #[test]
    fn only_a_grant_for_the_held_command_from_the_trusted_key_runs_it() {
        let key = GrantKey::generate_ed25519();
        let other_key = GrantKey::generate_ed25519();
        let engine = Engine::agent_safe();
        let grant_for = |k: &GrantKey, text: &str| {
            let d = engine.decide(&Identity::new("agent-7"), &Target::new("orders"), &sql(text));
            issue(k, d.approval().expect("approval"), &[Approver::new("alice")], now()).expect("grant")
        };
        let cases: Vec<(Outcome, Action, &str)> = vec![
            (
                Outcome::Approved {
                    grant: grant_for(&key, "DROP TABLE other"),
                },
                Action::RequireApproval,
                "grant is for a different command",
            ),
            (
                Outcome::Approved {
                    grant: grant_for(&other_key, "DROP TABLE t"),
                },
                Action::RequireApproval,
                "signature does not verify",
            ),
            (
                Outcome::Approved {
                    grant: "sg1.ed25519.e30.AAAA".into(),
                },
                Action::RequireApproval,
                "grant rejected",
            ),
            (
                Outcome::Denied {
                    by: "bob".into(),
                    comment: "no".into(),
                },
                Action::RequireApproval,
                "denied by bob: no",
            ),
            (Outcome::TimedOut, Action::RequireApproval, "not approved within 5s"),
            (
                Outcome::Failed("connection refused".into()),
                Action::RequireApproval,
                "approval service: connection refused",
            ),
        ];
        for (answer, action, why) in cases {
            let answer = Mutex::new(Some(answer));
            let hold = Answers(Mutex::new(Box::new(move |_| {
                answer.lock().expect("lock").take().unwrap_or(Outcome::TimedOut)
            })));
            let (g, notes) = guard(&key, Arc::new(hold));
            let d = decide(&g, "DROP TABLE t");
            assert_eq!(d.action(), action, "{why}: {}", d.reason());
            assert!(d.reason().contains(why), "{why}: {}", d.reason());
            let notes = notes.0.lock().expect("lock");
            assert!(
                notes.iter().any(|n| n.contains("requested from reviewers")),
                "{notes:?}"
            );
        }
        // The held request's own grant runs it, once per grant; a guard trusting another key
        // refuses even that.
        let signer = key.clone();
        let hold = Answers(Mutex::new(Box::new(move |r: &ApprovalRequest| Outcome::Approved {
            grant: issue(&signer, r, &[Approver::new("alice")], now()).expect("grant"),
        })));
        let (g, _) = guard(&key, Arc::new(hold));
        assert_eq!(decide(&g, "DROP TABLE t").action(), Action::Allow);
        let hold = Answers(Mutex::new(Box::new(move |r: &ApprovalRequest| Outcome::Approved {
            grant: issue(&key, r, &[Approver::new("alice")], now()).expect("grant"),
        })));
        let (g, _) = guard(&GrantKey::generate_hmac(), Arc::new(hold));
        assert_eq!(decide(&g, "DROP TABLE t").action(), Action::RequireApproval);
    }

    #[test]
    fn a_local_hold_runs_the_command_once_approved_and_holds_the_next() {
        let key = GrantKey::generate_ed25519();
        let store = Arc::new(MemoryApprovals::default());
        let (hold, service) = LocalHold::new(Arc::clone(&store), key.clone(), Duration::from_secs(30));
        let (g, notes) = guard(&key, Arc::new(hold));
        let reviewer = std::thread::spawn(move || {
            for _ in 0..500 {
                if let Ok(list) = service.list()
                    && let Some(e) = list.first()
                {
                    return service
                        .review(&e.request.id, &Approver::new("alice"), true, "fine")
                        .map(|e| e.state);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("nothing was submitted")
        });
        let d = decide(&g, "DROP TABLE t");
        assert!(reviewer.join().expect("reviewer").is_ok());
        assert_eq!(d.action(), Action::Allow, "{}", d.reason());
        assert!(d.reason().starts_with("approved by alice"), "{}", d.reason());
        let notes = notes.0.lock().expect("lock").clone();
        assert!(notes.iter().any(|n| n.contains("approved by alice")), "{notes:?}");
        // Nobody approves the second: held until the (short) hold times out, then refused.
        let (hold, _) = LocalHold::new(store, key.clone(), Duration::from_millis(300));
        let (g, _) = guard(&key, Arc::new(hold));
        assert_eq!(decide(&g, "DROP TABLE t").action(), Action::RequireApproval);
        // A command that needs no approval is never held; a deny is never held either.
        assert_eq!(decide(&g, "SELECT 1").action(), Action::Allow);
        assert_eq!(decide(&g, "SELECT * FROM pg_shadow").action(), Action::Deny);
    }

    fn pg_msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// A statement a hold's grant allowed is like one a presented grant allowed: prepared once,
    /// it binds once (the grant buys one execution, not a reusable statement).
    #[test]
    fn a_held_and_approved_prepared_statement_binds_once() {
        use sluice_core::session::Output;
        use sluice_core::session::postgres::PgSession;

        let key = GrantKey::generate_ed25519();
        let signer = key.clone();
        let hold = Answers(Mutex::new(Box::new(move |r: &ApprovalRequest| Outcome::Approved {
            grant: issue(&signer, r, &[Approver::new("alice")], now()).expect("grant"),
        })));
        let (g, _) = guard(&key, Arc::new(hold));
        let mut s = PgSession::new(Arc::new(g), None, Some(Target::new("orders")));
        let mut out = Output::default();
        let mut startup = 196_608u32.to_be_bytes().to_vec();
        startup.extend_from_slice(b"user\0agent-7\0database\0app\0\0");
        let mut first = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
        first.extend_from_slice(&startup);
        s.from_client(&first, &mut out).expect("startup");
        let mut srv = pg_msg(b'R', &0u32.to_be_bytes());
        srv.extend_from_slice(&pg_msg(b'Z', b"I"));
        s.from_server(&srv, &mut out).expect("auth ok");

        out.clear();
        let mut batch = pg_msg(b'P', b"wipe\0DELETE FROM accounts\0\0\0");
        let bind = pg_msg(b'B', b"\0wipe\0\0\0\0\0\0\0");
        batch.extend_from_slice(&bind);
        batch.extend_from_slice(&pg_msg(b'E', b"\0\0\0\0\0"));
        batch.extend_from_slice(&pg_msg(b'S', b""));
        s.from_client(&batch, &mut out).expect("handled");
        assert!(
            out.to_server.windows(20).any(|w| w == b"DELETE FROM accounts"),
            "the approved statement went to the server"
        );
        let mut srv = pg_msg(b'1', b"");
        srv.extend_from_slice(&pg_msg(b'2', b""));
        srv.extend_from_slice(&pg_msg(b'C', b"DELETE 3\0"));
        srv.extend_from_slice(&pg_msg(b'Z', b"I"));
        s.from_server(&srv, &mut out).expect("server");

        // Bound again: refused, nothing reaches the server.
        out.clear();
        let mut again = bind.clone();
        again.extend_from_slice(&pg_msg(b'E', b"\0\0\0\0\0"));
        again.extend_from_slice(&pg_msg(b'S', b""));
        s.from_client(&again, &mut out).expect("handled");
        assert!(
            out.to_server.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&out.to_server)
        );
        assert!(String::from_utf8_lossy(&out.to_client).contains("was not prepared through this session"));
    }
}
