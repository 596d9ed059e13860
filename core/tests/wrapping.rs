//! Property: wrapping never loosens. For any command C, a wrapper that runs C (`sudo C`,
//! `sh -c 'C'`, `echo 'C' | sh`, `{ C; }`, `f() { C; }; f`, `ssh host 'C'`,
//! `python3 -c "os.system('C')"`, …) is decided by the embedded agent-safe policy at least as
//! strictly as C (allow < require_approval < deny).
//!
//! A sweep of the cross product of our own lists of commands, paths and wrappers, then proptest
//! compositions of up to three wrappers. `PROPTEST_CASES` raises the number of compositions.

use base64::Engine as _;
use proptest::prelude::*;
use sluice_core::policy::{Action, Engine, Identity, Request, Target};

fn rank(a: Action) -> u8 {
    match a {
        Action::Allow => 0,
        Action::RequireApproval => 1,
        Action::Deny => 2,
        // An action added later ranks as the strictest until this test learns it.
        _ => u8::MAX,
    }
}

/// Commands: ordinary work, questions and denials; the path ones are filled from `PATHS`.
const COMMANDS: &[&str] = &[
    "cargo test --workspace",
    "git status",
    "git push origin main",
    "ls -la src",
    "make -j4",
    "npm test",
    "grep -rn TODO src",
    "echo hello",
    "env",
    "printenv",
    "printenv GITHUB_TOKEN",
    "echo $AWS_SECRET_ACCESS_KEY",
    "gh auth token",
    "aws secretsmanager get-secret-value --secret-id prod/db",
    "kubectl get secret db -o yaml",
    "vault kv get secret/prod",
    "curl http://169.254.169.254/latest/meta-data/iam/",
    "rm -rf /",
    "rm -rf ~",
    "rm -rf /var/lib/postgresql",
    "git push --force origin main",
    "terraform destroy -auto-approve",
    "kubectl delete ns prod",
    "docker system prune -af",
    "dd if=/dev/zero of=/dev/sda",
    "chmod -R 777 /etc",
    "systemctl stop postgresql",
    "iptables -F",
    "crontab -r",
    "docker run --privileged img",
    "ps auxe",
    "docker inspect web",
    "getent passwd",
    "mytool show-credentials",
    "cat ~/.aws/credentials | base64",
    "env | grep KEY",
    "cargo build && printenv",
];

/// Paths read with `cat`, `cp … /tmp/x`, `base64`.
const PATHS: &[&str] = &[
    "~/.aws/credentials",
    "~/.ssh/id_rsa",
    "/root/.ssh/id_ed25519",
    "~/.netrc",
    "~/.git-credentials",
    "~/.kube/config",
    "/etc/shadow",
    "/etc/passwd",
    "/proc/1/environ",
    ".env",
    "config/.env.production",
    "src/main.rs",
    "README.md",
    "/tmp/build.log",
    "~/.docker/config.json",
];

fn commands() -> Vec<String> {
    let mut v: Vec<String> = COMMANDS.iter().map(|s| s.to_string()).collect();
    for p in PATHS {
        v.push(format!("cat {p}"));
        v.push(format!("cp {p} /tmp/x"));
        v.push(format!("base64 {p}"));
    }
    v
}

/// Single-quoted for the shell.
fn sq(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A Python string literal.
fn py(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Whether C is one simple command (no operators): argv-prefix wrappers can only wrap those.
fn simple(c: &str) -> bool {
    let first = c.split_whitespace().next().unwrap_or("");
    !c.contains(['|', '&', ';', '>', '<', '\n', '(', '{', '`'])
        && !matches!(
            first,
            "!" | "if" | "for" | "while" | "case" | "function" | "time" | "coproc"
        )
}

/// Wrappers: (name, applies to compound commands, how it wraps C).
type Wrap = (&'static str, bool, fn(&str) -> String);

const WRAPPERS: &[Wrap] = &[
    ("sudo", false, |c| format!("sudo {c}")),
    ("sudo -u", false, |c| format!("sudo -u root {c}")),
    ("env", false, |c| format!("env A=1 B=2 {c}")),
    ("timeout", false, |c| format!("timeout 5 {c}")),
    ("nohup", false, |c| format!("nohup {c}")),
    ("nice", false, |c| format!("nice -n 5 {c}")),
    ("command", false, |c| format!("command {c}")),
    ("exec", false, |c| format!("exec {c}")),
    ("time", false, |c| format!("time {c}")),
    ("xargs", false, |c| format!("echo | xargs {c}")),
    ("find -exec", false, |c| format!("find . -maxdepth 0 -exec {c} \\;")),
    ("kubectl exec", false, |c| format!("kubectl exec -it pod -- {c}")),
    ("docker exec", false, |c| format!("docker exec ctr {c}")),
    ("busybox", false, |c| format!("busybox {c}")),
    ("sh -c", true, |c| format!("sh -c {}", sq(c))),
    ("bash -lc", true, |c| format!("bash -lc {}", sq(c))),
    ("eval", true, |c| format!("eval {}", sq(c))),
    ("echo | sh", true, |c| format!("echo {} | sh", sq(c))),
    ("printf | bash", true, |c| format!("printf '%s\\n' {} | bash", sq(c))),
    ("here-string", true, |c| format!("bash <<< {}", sq(c))),
    ("here-doc", true, |c| format!("sh <<'EOF'\n{c}\nEOF\n")),
    ("process substitution", true, |c| format!("bash <(echo {})", sq(c))),
    ("base64", true, |c| {
        format!(
            "echo {} | base64 -d | sh",
            base64::engine::general_purpose::STANDARD.encode(c)
        )
    }),
    ("group", true, |c| format!("{{\n{c}\n}}")),
    ("subshell", true, |c| format!("(\n{c}\n)")),
    ("if", true, |c| format!("if true; then\n{c}\nfi")),
    ("else", true, |c| format!("if false; then :; else\n{c}\nfi")),
    ("for", true, |c| format!("for i in 1; do\n{c}\ndone")),
    ("while", true, |c| format!("while true; do\n{c}\nbreak; done")),
    ("case", true, |c| format!("case x in *)\n{c}\n;; esac")),
    ("function", true, |c| format!("f() {{\n{c}\n}}\nf")),
    ("function keyword", true, |c| format!("function g {{\n{c}\n}}")),
    ("and", true, |c| format!("true && {c}")),
    ("or", true, |c| format!("false || {c}")),
    ("background", true, |c| format!("(\n{c}\n) & wait")),
    ("negation", true, |c| format!("! {c}")),
    ("substitution", true, |c| format!("echo \"$( {c}\n)\"")),
    ("backticks", false, |c| format!("echo `{c}`")),
    ("default value", false, |c| format!("echo ${{X:-$({c})}}")),
    ("ssh", true, |c| format!("ssh host {}", sq(c))),
    ("ssh --", true, |c| format!("ssh -p 22 host -- {}", sq(c))),
    ("watch", true, |c| format!("watch -n 1 {}", sq(c))),
    ("script -c", true, |c| format!("script -qc {} /dev/null", sq(c))),
    ("su -c", true, |c| format!("su -c {} root", sq(c))),
    ("busybox sh", true, |c| format!("busybox sh -c {}", sq(c))),
    ("xargs sh -c", true, |c| format!("echo | xargs sh -c {}", sq(c))),
    ("python os.system", true, |c| {
        format!("python3 -c {}", sq(&format!("import os; os.system({})", py(c))))
    }),
    ("python subprocess", true, |c| {
        format!(
            "python3 -c {}",
            sq(&format!("import subprocess; subprocess.run({}, shell=True)", py(c)))
        )
    }),
    ("perl system", true, |c| {
        format!("perl -e {}", sq(&format!("system({})", py(c))))
    }),
    ("node execSync", true, |c| {
        format!(
            "node -e {}",
            sq(&format!("require('child_process').execSync({})", py(c)))
        )
    }),
    ("cd /tmp", true, |c| format!("cd /tmp && {c}")),
];

fn decide(engine: &Engine, line: &str) -> Action {
    engine
        .decide(&Identity::new("agent"), &Target::new("laptop"), &Request::Shell(line))
        .action()
}

#[test]
fn every_wrapper_decides_at_least_as_strictly_as_what_it_wraps() {
    let engine = Engine::agent_safe();
    let mut failures = Vec::new();
    let mut checked = 0;
    for c in commands() {
        let base = decide(&engine, &c);
        for (name, compound, wrap) in WRAPPERS {
            if !compound && !simple(&c) {
                continue;
            }
            let w = wrap(&c);
            let got = decide(&engine, &w);
            checked += 1;
            if rank(got) < rank(base) {
                failures.push(format!("{name}: {w:?} is {got:?}, {c:?} is {base:?}"));
            }
        }
    }
    assert!(checked > 3000, "{checked}");
    assert!(
        failures.is_empty(),
        "{} of {checked} loosened:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_sweep_holds_denials_and_questions() {
    // The list holds every kind of decision, so the sweep above is not vacuous.
    let engine = Engine::agent_safe();
    let decisions: Vec<Action> = commands().iter().map(|c| decide(&engine, c)).collect();
    for a in [Action::Allow, Action::RequireApproval, Action::Deny] {
        assert!(decisions.contains(&a), "no command decided {a:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]
    #[test]
    fn compositions_of_wrappers_never_loosen(
        c in proptest::sample::select(commands()),
        ws in proptest::collection::vec(0..WRAPPERS.len(), 1..=3),
    ) {
        let engine = Engine::agent_safe();
        let base = decide(&engine, &c);
        let mut line = c.clone();
        let mut names = Vec::new();
        for i in ws {
            let (name, compound, wrap) = WRAPPERS[i];
            if !compound && !simple(&line) {
                continue;
            }
            line = wrap(&line);
            names.push(name);
        }
        let got = decide(&engine, &line);
        prop_assert!(rank(got) >= rank(base), "{:?} over {:?}: {:?} is {:?}, the command is {:?}", names, c, line, got, base);
    }
}
