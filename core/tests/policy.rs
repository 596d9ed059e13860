//! The table-driven policy cases in `testdata/policy/` (shared with the bindings), the embedded
//! agent-safe policy, policy file errors, grants and OIDC identities.

use sluice_core::policy::cases::parse_cases;
use sluice_core::policy::{Action, Engine, PolicyErrorKind};

fn testdata(name: &str) -> String {
    let path = format!("{}/../testdata/policy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn agent_safe_cases() {
    let engine = Engine::agent_safe();
    let cases = parse_cases(&testdata("agent-safe.json")).expect("cases parse");
    assert!(cases.len() > 200, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let r = case.run(&engine);
        if !r.passed() {
            failures.push(format!(
                "{}\n    command:  {}\n    expected: {} {:?}\n    got:      {:?}",
                case.name,
                case.command,
                case.expect.as_str(),
                case.rule,
                r.decision
                    .map(|d| (d.action(), d.rule().map(str::to_string), d.reason().to_string()))
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_agent_safe_rule_is_exercised() {
    let engine = Engine::agent_safe();
    let cases = parse_cases(&testdata("agent-safe.json")).expect("cases parse");
    let fired: std::collections::HashSet<String> = cases
        .iter()
        .filter_map(|c| c.run(&engine).decision.ok()?.rule().map(str::to_string))
        .collect();
    let text = sluice_core::policy::AGENT_SAFE;
    let ids: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("- id: ")).collect();
    let missing: Vec<&&str> = ids.iter().filter(|id| !fired.contains(**id)).collect();
    assert!(missing.is_empty(), "rules no case exercises: {missing:?}");
    assert_eq!(ids.len(), engine.rule_count());
    let _ = Action::Allow;
}

use sluice_core::policy::{Dialect, EngineHandle, HttpRequest, Identity, Request, SshRequest, Target};

fn sql(text: &str) -> Request<'_> {
    Request::Sql {
        text,
        dialect: Dialect::Postgres,
        lexing: Default::default(),
    }
}

#[test]
fn bad_policies_say_what_and_where() {
    let cases: &[(&str, &str, &str)] = &[
        ("version: 2\n", "version", "unsupported policy version 2"),
        (
            "version: 1\nrules:\n  - id: a\n    action: maybe\n",
            "4:13",
            "unknown variant `maybe`",
        ),
        (
            "version: 1\nrules:\n  - id: a\n    action: deny\n    when: { shell: { pathz: [x] } }\n",
            "5:",
            "unknown field `pathz`",
        ),
        (
            "version: 1\nrules:\n  - id: a\n    action: deny\n    when: { shell: { paths: [ok, '[oops'] } }\n",
            "rules[0].when.shell.paths[1]",
            "unclosed character class",
        ),
        (
            "version: 1\nrules:\n  - { id: a, action: deny }\n  - { id: a, action: allow }\n",
            "rules[1].id",
            "duplicate rule id `a`",
        ),
        (
            "version: 1\nrules:\n  - { id: a, action: deny, when: { roles: [dba] } }\n",
            "rules[0].when.roles[0]",
            "no role named `dba`",
        ),
        (
            "version: 1\nrules:\n  - { id: a, action: deny, when: { sql: { kinds: [dropp] } } }\n",
            "rules[0].when.sql.kinds[0]",
            "unknown statement kind `dropp`",
        ),
        (
            "version: 1\nrules:\n  - { id: a, action: deny, when: { protocols: [ftp] } }\n",
            "rules[0].when.protocols[0]",
            "unknown protocol `ftp`",
        ),
        (
            "version: 1\nrules:\n  - { id: a, action: deny, approval: { ttl: 5m } }\n",
            "rules[0].approval",
            "only require_approval rules",
        ),
        (
            "version: 1\napproval: { ttl: soon }\n",
            "approval.ttl",
            "`soon` is not a duration",
        ),
        (
            "version: 1\nextends: strict\n",
            "extends",
            "unknown base policy `strict`",
        ),
        (
            "version: 1\nroles: { r: {} }\n",
            "roles.r",
            "needs users, groups or attributes",
        ),
        (
            "version: 1\nrules: [\n",
            "p.yaml:3:1",
            "did not find expected node content",
        ),
    ];
    for (text, location, message) in cases {
        let e = Engine::from_yaml("p.yaml", text).expect_err(text);
        let shown = e.to_string();
        assert!(shown.starts_with("p.yaml"), "{shown}");
        assert!(shown.contains(location), "{text:?}: `{shown}` lacks `{location}`");
        assert!(shown.contains(message), "{text:?}: `{shown}` lacks `{message}`");
    }
    let e = Engine::from_json("p.json", "{\"version\": 1,\n \"rules\": [{\"id\": 1}]}").expect_err("json");
    assert_eq!(e.line_col().map(|l| l.0), Some(2), "{e}");
    assert_eq!(e.kind(), PolicyErrorKind::Syntax);
    assert!(
        std::error::Error::source(&e).is_some_and(|s| s.is::<serde_json::Error>()),
        "{e}"
    );
    let e = Engine::from_file("/nonexistent/policy.yaml").expect_err("missing");
    assert!(e.to_string().contains("cannot read"), "{e}");
    assert_eq!(
        (e.kind(), e.origin()),
        (PolicyErrorKind::Io, "/nonexistent/policy.yaml")
    );
    assert!(
        std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()),
        "{e}"
    );
    let e = Engine::from_yaml(
        "p.yaml",
        "version: 1\nrules: [{id: x, action: deny, when: {shell: {paths: ['[']}}}]\n",
    )
    .expect_err("bad glob");
    assert_eq!(e.kind(), PolicyErrorKind::Invalid);
    assert_eq!(e.path(), Some("rules[0].when.shell.paths[0]"), "{e}");
    assert!(e.message().contains('['), "{e}");
}

#[test]
fn custom_policy_conditions() {
    let e = Engine::from_yaml("team.yaml", &testdata("examples/team.yaml")).expect("compiles");
    assert_eq!(e.name(), "team-policy");
    let dev = Identity::new("dev1").group("eng");
    let dba = Identity::new("dana").group("dba");
    let contractor = Identity::new("cora").attribute("employment", "contractor");
    let prod = Target::new("orders").label("env", "prod");
    let staging = Target::new("orders").label("env", "staging");
    let check = |id: &Identity, t: &Target, r: &Request<'_>, want: Action, rule: Option<&str>| {
        let d = e.decide(id, t, r);
        assert_eq!(
            (d.action(), d.rule()),
            (want, rule),
            "{r:?} as {} on {}: {}",
            id.user,
            t.name,
            d.reason()
        );
    };
    check(&dev, &prod, &sql("select 1"), Action::Allow, Some("reads"));
    check(
        &dev,
        &prod,
        &sql("update t set a = 1 where id = 2"),
        Action::RequireApproval,
        Some("prod-writes-dba-only"),
    );
    check(
        &dba,
        &prod,
        &sql("update t set a = 1 where id = 2"),
        Action::Allow,
        Some("writes"),
    );
    check(
        &dev,
        &staging,
        &sql("delete from t where id = 2"),
        Action::Allow,
        Some("writes"),
    );
    check(&dev, &prod, &sql("drop table t"), Action::Deny, None); // default deny
    check(
        &contractor,
        &prod,
        &sql("select 1"),
        Action::Deny,
        Some("no-contractors-on-prod"),
    );
    check(&contractor, &staging, &sql("select 1"), Action::Allow, Some("reads"));
    // Uncertain SQL under `uncertain: deny`.
    check(
        &dev,
        &staging,
        &sql("DO $$ BEGIN EXECUTE 'x' || y; END $$"),
        Action::Deny,
        None,
    );
    let d = e.decide(&dev, &staging, &sql("EXECUTE 'SEL' || 'ECT 1'"));
    assert_eq!(d.action(), Action::Deny, "{d:?}");
    // The approval request names the approvers from the rule.
    let req = e
        .decide(&dev, &prod, &sql("insert into t values (1)"))
        .into_approval()
        .expect("approval");
    assert_eq!(req.approvers.groups, ["dba"]);

    check(
        &dev,
        &staging,
        &Request::Shell("git status && cargo build"),
        Action::Allow,
        Some("shell-basics"),
    );
    // An allow rule must cover every command and statement.
    check(
        &dev,
        &staging,
        &Request::Shell("git status; curl https://x.example.test"),
        Action::Deny,
        None,
    );
    let d = e.decide(
        &dev,
        &staging,
        &Request::Shell("git status; curl https://x.example.test"),
    );
    assert_eq!(
        d.reason(),
        "no rule allows `curl https://x.example.test`; policy default is deny"
    );
    check(&dev, &staging, &sql("select 1; drop table t"), Action::Deny, None);
    check(
        &dev,
        &staging,
        &sql("select 1; insert into t values (1)"),
        Action::Allow,
        Some("reads"),
    );
    check(&dev, &staging, &Request::Shell("sudo git status"), Action::Deny, None);
    let http = |method: &'static str,
                url: &'static str,
                headers: &'static [(&'static str, &'static [u8])],
                body: Option<&'static [u8]>| {
        Request::Http(HttpRequest {
            method,
            url,
            headers,
            body,
        })
    };
    check(
        &dev,
        &staging,
        &http("get", "https://api.example.test/v1/items/3", &[], None),
        Action::Allow,
        Some("api-reads"),
    );
    check(
        &dev,
        &staging,
        &http("GET", "https://api.example.test/v2/items", &[], None),
        Action::Deny,
        None,
    );
    check(
        &dev,
        &staging,
        &http("GET", "https://api.example.test/v1/../admin", &[], None),
        Action::Deny,
        None,
    );
    check(
        &dev,
        &staging,
        &http("GET", "/v1/x", &[("Host", b"api.example.test:443")], None),
        Action::Allow,
        Some("api-reads"),
    );
    check(
        &dev,
        &staging,
        &http(
            "GET",
            "https://api.example.test/v1/x",
            &[("X-Impersonate", b"root")],
            None,
        ),
        Action::Deny,
        Some("api-admin-header"),
    );
    check(
        &dev,
        &staging,
        &http(
            "POST",
            "https://api.example.test/jobs",
            &[],
            Some(br#"{"op":"delete","filter":{"all":true}}"#),
        ),
        Action::RequireApproval,
        Some("api-bulk-delete"),
    );
    check(
        &dev,
        &staging,
        &http(
            "POST",
            "https://api.example.test/jobs",
            &[],
            Some(br#"{"op":"delete","filter":{"id":4}}"#),
        ),
        Action::Allow,
        Some("api-writes"),
    );
    // A JSON condition over a body the engine cannot read is undecided, never a pass: the
    // bulk-delete approval is asked for, not skipped.
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    for (headers, body) in [
        (&[][..], &b"{\"op\":\"delete\",\"filter\":{\"all\":true}"[..]),
        (&[][..], &b"op=delete&filter=all"[..]),
        (&[("Content-Encoding", &b"gzip"[..])][..], &b"\x1f\x8b\x08\x00"[..]),
        (&[][..], deep.as_bytes()),
    ] {
        let d = e.decide(
            &dev,
            &staging,
            &Request::Http(HttpRequest {
                method: "POST",
                url: "https://api.example.test/jobs",
                headers,
                body: Some(body),
            }),
        );
        assert_eq!(
            (d.action(), d.uncertain()),
            (Action::RequireApproval, true),
            "{}",
            d.reason()
        );
    }

    let mcp = |s: &'static str| Request::Mcp(s.as_bytes());
    // Tool names and argument patterns match whatever the case.
    check(
        &dev,
        &staging,
        &mcp(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"SEARCH_Docs","arguments":{"query":"x"}}}"#,
        ),
        Action::Allow,
        Some("mcp-search"),
    );
    check(
        &dev,
        &staging,
        &mcp(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"x"}}}"#,
        ),
        Action::Allow,
        Some("mcp-search"),
    );
    check(
        &dev,
        &staging,
        &mcp(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_docs","arguments":{}}}"#),
        Action::Deny,
        None,
    );
    check(
        &dev,
        &staging,
        &mcp(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run","arguments":{"cmd":"git log"}}}"#),
        Action::Allow,
        Some("shell-basics"),
    );
    check(
        &dev,
        &staging,
        &mcp(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run","arguments":{"cmd":"rm x"}}}"#),
        Action::Deny,
        None,
    );

    let env = |name: &'static str| Request::Ssh(SshRequest::Env { name, value: b"x" });
    check(&dev, &staging, &env("LD_PRELOAD"), Action::Deny, Some("ssh-env"));
    check(&dev, &staging, &env("LC_ALL"), Action::Allow, Some("ssh-lang"));
    check(
        &Identity::new("deploy-1"),
        &staging,
        &Request::Ssh(SshRequest::Subsystem("sftp")),
        Action::Allow,
        Some("sftp"),
    );
    check(
        &dev,
        &staging,
        &Request::Ssh(SshRequest::Subsystem("sftp")),
        Action::Deny,
        None,
    );
    check(
        &dev,
        &staging,
        &Request::Ssh(SshRequest::Exec("ls -la")),
        Action::Allow,
        Some("shell-basics"),
    );
}

#[test]
fn json_policies_extends_and_swapping() {
    let json = r#"{"version": 1, "name": "j", "extends": "agent-safe", "default": "allow",
        "rules": [{"id": "no-friday-deploys", "action": "deny", "when": {"shell": {"commands": ["kubectl apply"]}}}]}"#;
    let e = Engine::from_text("p.json", json).expect("compiles");
    let me = Identity::new("agent");
    let t = Target::new("laptop");
    assert_eq!(
        e.decide(&me, &t, &Request::Shell("kubectl -n web apply -f x.yaml"))
            .rule(),
        Some("no-friday-deploys")
    );
    assert_eq!(
        e.decide(&me, &t, &Request::Shell("cat ~/.netrc")).rule(),
        Some("credential-files")
    );

    let handle = EngineHandle::new(Engine::agent_safe());
    let in_flight = handle.load();
    handle.swap(std::sync::Arc::new(e));
    // The decision in flight keeps its engine; new loads see the new one.
    assert_eq!(
        in_flight
            .decide(&me, &t, &Request::Shell("kubectl apply -f x"))
            .action(),
        Action::Allow
    );
    assert_eq!(
        handle
            .load()
            .decide(&me, &t, &Request::Shell("kubectl apply -f x"))
            .action(),
        Action::Deny
    );
}

#[test]
fn engines_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
    assert_send_sync::<EngineHandle>();
    let e = Engine::agent_safe();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let e = e.clone();
            std::thread::spawn(move || {
                let cmd = format!("cat ~/.ssh/id_rsa{i}");
                e.decide(&Identity::new("a"), &Target::new("t"), &Request::Shell(&cmd))
                    .action()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), Action::Deny);
    }
}

#[test]
fn decisions_explain_themselves() {
    let e = Engine::agent_safe();
    let d = e.decide(
        &Identity::new("a"),
        &Target::new("t"),
        &Request::Shell("make && cat ~/.aws/credentials"),
    );
    assert_eq!(d.rule(), Some("credential-files"));
    assert!(
        d.reason().contains("credential stores") && d.reason().contains("`cat ~/.aws/credentials`"),
        "{}",
        d.reason()
    );
    let json = serde_json::to_value(&d).expect("serialises");
    assert_eq!(json["decision"], "deny");
    let d = e.decide(&Identity::new("a"), &Target::new("t"), &Request::Shell("cargo test"));
    assert_eq!(
        (d.rule(), d.reason()),
        (None, "no rule matched; policy default is allow")
    );
    let d = e.decide(&Identity::new("a"), &Target::new("t"), &Request::Shell("echo 'open"));
    assert!(
        d.reason().contains("could not analyse the shell input"),
        "{}",
        d.reason()
    );
}
