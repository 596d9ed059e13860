//! The back end both front ends feed: simple commands in execution order, with what flows into
//! their standard input. It records each command, looks through wrappers, analyses the strings
//! that will run as shell, follows `cd`, and notes what it cannot see.

use super::{Analysis, Command, Error, ErrorKind, Limits};

/// A word after quote removal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Word {
    /// The resolved text; where something could not be resolved, its source text.
    pub text: String,
    /// Whether the word holds a variable, a substitution or a glob.
    pub unresolved: bool,
    /// Other spellings the word may take (`${X:-default}` gives `default`).
    pub variants: Vec<String>,
    /// For a process substitution `<(…)`: what it outputs.
    pub output: Option<Flow>,
}

/// What flows through a pipe or into a standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Flow {
    /// Text known statically (an `echo` of literals, a here-document, a here-string).
    Known(String),
    /// Something only known at run time.
    Unknown,
}

/// A redirection of a simple command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Redir {
    Read(Word),
    Write(Word),
    ReadWrite(Word),
    /// A here-document or here-string: what it feeds.
    Input(Flow),
    /// `>&2`, `<&0`: a descriptor.
    Dup,
}

/// A simple command as a front end found it, laid out as the command it becomes (so that its
/// words move once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Simple {
    pub argv: Vec<String>,
    pub unresolved: Vec<usize>,
    /// Other spellings of `argv[i]`.
    pub variants: Vec<(usize, String)>,
    /// What the process substitution at `argv[i]` outputs.
    pub outputs: Vec<(usize, Flow)>,
    pub assignments: Vec<(String, String)>,
    /// Whether an assigned value could not be resolved.
    pub assigned_unresolved: bool,
    pub redirs: Vec<Redir>,
}

impl Simple {
    /// Appends a word to argv.
    pub fn push(&mut self, w: Word) {
        let i = self.argv.len();
        if w.unresolved {
            self.unresolved.push(i);
        }
        for v in w.variants {
            self.variants.push((i, v));
        }
        if let Some(o) = w.output {
            self.outputs.push((i, o));
        }
        self.argv.push(w.text);
    }

    /// Appends a word with nothing but its text.
    pub fn push_plain(&mut self, text: String, unresolved: bool) {
        if unresolved {
            self.unresolved.push(self.argv.len());
        }
        self.argv.push(text);
    }

    /// Appends an assignment before the command.
    pub fn assign(&mut self, name: String, value: Word) {
        self.assigned_unresolved |= value.unresolved;
        self.assignments.push((name, value.text));
    }
}

/// Shells: a `-c` string, a script operand or standard input is run as shell.
const SHELLS: &[&str] = &[
    "sh",
    "bash",
    "zsh",
    "dash",
    "ksh",
    "ash",
    "mksh",
    "yash",
    "fish",
    "rbash",
    "busybox-sh",
];

/// Plain wrappers: the command follows their options. Each with the options that take a value.
const WRAPPERS: &[(&str, &[&str])] = &[
    (
        "sudo",
        &[
            "-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "--user", "--group", "--chdir",
        ],
    ),
    ("doas", &["-u", "-C"]),
    ("nohup", &[]),
    ("time", &["-o", "-f", "--output", "--format"]),
    ("nice", &["-n", "--adjustment"]),
    ("ionice", &["-c", "-n", "-p", "--class", "--classdata"]),
    ("stdbuf", &["-i", "-o", "-e"]),
    ("command", &[]),
    ("exec", &["-a"]),
    ("builtin", &[]),
    ("setsid", &[]),
    ("unbuffer", &[]),
    ("caffeinate", &["-t", "-w"]),
    ("chrt", &[]),
    (
        "strace",
        &[
            "-o", "-e", "-p", "-s", "-u", "-a", "-b", "-E", "-I", "-O", "-S", "-P", "-X",
        ],
    ),
    ("ltrace", &["-o", "-e", "-p", "-s", "-u", "-a", "-n"]),
    ("firejail", &[]),
    ("proxychains", &["-f"]),
    ("proxychains4", &["-f"]),
    ("torsocks", &[]),
    ("fakeroot", &[]),
    (
        "systemd-run",
        &["-p", "-u", "--unit", "--property", "--uid", "--gid", "-E", "--setenv"],
    ),
    ("catchsegv", &[]),
    ("valgrind", &[]),
    ("xvfb-run", &["-a", "-n", "-s"]),
    ("dbus-run-session", &[]),
    ("busybox", &[]),
    ("toybox", &[]),
    ("runuser", &["-u", "-g", "-G"]),
    ("chronic", &[]),
    ("nsenter", &["-t", "--target"]),
    ("unshare", &[]),
];

/// Interpreters of other languages, and the option that takes inline code.
const INTERPRETERS: &[(&str, &[&str])] = &[
    ("python", &["-c"]),
    ("pypy", &["-c"]),
    ("perl", &["-e", "-E"]),
    ("node", &["-e", "--eval", "-p", "--print"]),
    ("nodejs", &["-e", "--eval", "-p", "--print"]),
    ("bun", &["-e", "--eval", "-p", "--print"]),
    ("deno", &["eval"]),
    ("ruby", &["-e"]),
    ("php", &["-r"]),
    ("lua", &["-e"]),
    ("luajit", &["-e"]),
    ("Rscript", &["-e"]),
    ("julia", &["-e", "--eval"]),
    ("osascript", &["-e"]),
    ("pwsh", &["-c", "-command", "-encodedcommand", "-ec"]),
    ("powershell", &["-c", "-command", "-encodedcommand", "-ec"]),
    ("tclsh", &[]),
    ("php-cgi", &["-r"]),
    ("groovy", &["-e"]),
    ("scala", &["-e"]),
    ("elixir", &["-e"]),
    ("erl", &["-eval"]),
    ("awk", &[]),
    ("gawk", &[]),
    ("mawk", &[]),
    ("nawk", &[]),
];

/// The most extra command variants one command may spawn (`${X:-a}` alternatives).
const MAX_VARIANTS: usize = 16;
/// The most string literals taken from one piece of inline code.
const MAX_LITERALS: usize = 64;

pub(super) struct Builder<'l> {
    pub out: Analysis,
    pub limits: &'l Limits,
    pub depth: usize,
    /// The working directory a `cd` set, and the `pushd` stack.
    pub cwd: Option<String>,
    dirs: Vec<Option<String>>,
    /// Files written by redirections on this line: running one of them is running unseen code.
    written: Vec<String>,
    /// The output of the last command recorded.
    pub last_output: Flow,
}

fn base(program: &str) -> &str {
    program.rfind('/').map_or(program, |i| &program[i + 1..])
}

/// `python3`, `python3.12`, `perl5.36`, `node20`: the family name without the version.
fn family(p: &str) -> &str {
    p.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
}

fn interpreter(program: &str) -> Option<&'static [&'static str]> {
    let p = base(program);
    let family = family(p);
    INTERPRETERS
        .iter()
        .find(|(name, _)| *name == p || *name == family)
        .map(|(_, opts)| *opts)
}

fn is_shell(program: &str) -> bool {
    SHELLS.contains(&base(program))
}

/// The string literals of a piece of code: `'…'`, `"…"` and backtick strings, escapes removed.
pub(super) fn code_literals(code: &str) -> Vec<String> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < MAX_LITERALS {
        let q = b[i];
        if matches!(q, b'\'' | b'"' | b'`') {
            let mut s = Vec::new();
            let mut j = i + 1;
            while j < b.len() && b[j] != q {
                if b[j] == b'\\' && j + 1 < b.len() {
                    j += 1;
                    s.push(match b[j] {
                        b'n' => b'\n',
                        b't' => b'\t',
                        c => c,
                    });
                } else {
                    s.push(b[j]);
                }
                j += 1;
            }
            if s.len() >= 2 {
                out.push(String::from_utf8_lossy(&s).into_owned());
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Decodes the backslash escapes `echo -e` and `printf` interpret.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('x') => {
                let h: String = std::iter::from_fn(|| it.next_if(char::is_ascii_hexdigit))
                    .take(2)
                    .collect();
                out.push(u8::from_str_radix(&h, 16).map_or('?', char::from));
            }
            Some('0') => {
                let o: String = std::iter::from_fn(|| it.next_if(|c| ('0'..='7').contains(c)))
                    .take(3)
                    .collect();
                out.push(u8::from_str_radix(&o, 8).map_or('\0', char::from));
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

impl<'l> Builder<'l> {
    pub fn new(limits: &'l Limits, depth: usize, cwd: Option<String>) -> Builder<'l> {
        Builder {
            out: Analysis::default(),
            limits,
            depth,
            cwd,
            dirs: Vec::new(),
            written: Vec::new(),
            last_output: Flow::Unknown,
        }
    }

    pub fn finish(mut self) -> Analysis {
        self.out.variables.sort();
        self.out.variables.dedup();
        self.out.opaque.dedup();
        self.out
    }

    pub fn opaque(&mut self, why: String) {
        self.out.uncertain = true;
        if !self.out.opaque.contains(&why) {
            self.out.opaque.push(why);
        }
    }

    /// Analyses `script` as the shell would run it, one level deeper, from the current working
    /// directory; merges what it finds and returns its output.
    pub fn nested(&mut self, script: &str, at: usize) -> Result<Flow, Error> {
        if self.depth + 1 > self.limits.max_depth {
            return Err(Error::new(ErrorKind::TooLarge, at));
        }
        if script.len() > self.limits.max_len {
            return Err(Error::new(ErrorKind::TooLarge, at));
        }
        let (child, result) = Builder::run(
            self.limits,
            self.depth + 1,
            self.cwd.clone(),
            self.written.clone(),
            script,
        );
        match result {
            Ok(_) => {
                let out = child.last_output.clone();
                let unclear = !child.out.opaque.is_empty();
                self.merge(child.out);
                if unclear {
                    // Part of it was not understood, and a grammar can misread what is around
                    // such a part: what parses in its pieces counts as well.
                    self.pieces(script);
                }
                Ok(out)
            }
            Err(e) if e.kind == ErrorKind::TooLarge => Err(Error::new(e.kind, e.offset + at)),
            Err(e) => {
                // A script that will run but does not parse: not understood, and what parses in
                // it still counts.
                self.opaque(format!("a script run on this line does not parse ({e})"));
                self.pieces(script);
                Ok(Flow::Unknown)
            }
        }
    }

    /// Analyses `script` into a new builder: by the fast path if it takes the line, else by the
    /// grammar. Returns the builder and which front end analysed it (or why neither could).
    pub fn run(
        limits: &'l Limits,
        depth: usize,
        cwd: Option<String>,
        written: Vec<String>,
        script: &str,
    ) -> (Builder<'l>, Result<super::Frontend, Error>) {
        let mut b = Builder::new(limits, depth, cwd.clone());
        b.written = written.clone();
        match super::fast::analyze(script, &mut b) {
            Ok(true) => (b, Ok(super::Frontend::Fast)),
            Ok(false) => {
                let mut b = Builder::new(limits, depth, cwd);
                b.written = written;
                let r = super::grammar::analyze(script, &mut b).map(|()| super::Frontend::Grammar);
                (b, r)
            }
            Err(e) => (b, Err(e)),
        }
    }

    /// Like [`Builder::nested`] for text that may not be shell at all (string literals of other
    /// languages): what does not parse is cut into pieces, and what parses of those counts.
    pub fn nested_tolerant(&mut self, text: &str) {
        if self.depth < self.limits.max_depth && !self.nested_tolerant_once(text) {
            self.pieces(text);
        }
    }

    /// What parses in text that does not: the text cut at newlines and operators (as written,
    /// then with quotes removed), each piece without the reserved word that may open it.
    pub fn pieces(&mut self, text: &str) {
        let unquoted: String = text.chars().filter(|c| !matches!(c, '\'' | '"')).collect();
        for t in [text, unquoted.as_str()] {
            for piece in t.split(['\n', ';', '&', '(', ')', '`', '{', '}']) {
                let mut piece = piece.trim_start();
                while let Some((first, rest)) = piece.split_once(char::is_whitespace)
                    && matches!(
                        first,
                        "then" | "do" | "else" | "elif" | "if" | "while" | "until" | "!" | "time"
                    )
                {
                    piece = rest.trim_start();
                }
                let piece = piece.trim_end_matches(['\\', ' ', '\t']);
                if piece.is_empty() {
                    continue;
                }
                self.nested_tolerant_once(piece);
            }
        }
    }

    /// Analyses a piece one level deeper and merges it; whether it parsed.
    fn nested_tolerant_once(&mut self, text: &str) -> bool {
        if self.depth + 1 > self.limits.max_depth {
            return false;
        }
        let (child, result) = Builder::run(self.limits, self.depth + 1, self.cwd.clone(), Vec::new(), text);
        if result.is_ok() {
            self.merge(child.out);
        }
        result.is_ok()
    }

    fn merge(&mut self, inner: Analysis) {
        self.out.uncertain |= inner.uncertain;
        self.out.commands.extend(inner.commands);
        self.out.reads.extend(inner.reads);
        self.out.writes.extend(inner.writes);
        self.out.variables.extend(inner.variables);
        for o in inner.opaque {
            self.opaque(o);
        }
    }

    /// Records a simple command with what flows into it; returns what flows out.
    pub fn simple(&mut self, s: Simple, piped: Option<Flow>) -> Result<Flow, Error> {
        let mut stdin = piped;
        for r in s.redirs {
            match r {
                Redir::Read(w) => {
                    self.out.uncertain |= w.unresolved;
                    self.out.reads.push(w.text);
                    stdin = Some(Flow::Unknown);
                }
                Redir::Write(w) => {
                    self.out.uncertain |= w.unresolved;
                    self.written.push(w.text.trim_start_matches("./").to_string());
                    self.out.writes.push(w.text);
                }
                Redir::ReadWrite(w) => {
                    self.out.uncertain |= w.unresolved;
                    self.out.reads.push(w.text.clone());
                    self.out.writes.push(w.text);
                }
                Redir::Input(f) => stdin = Some(f),
                Redir::Dup => {}
            }
        }
        self.out.uncertain |= s.assigned_unresolved || !s.unresolved.is_empty();
        let cmd = Command {
            argv: s.argv,
            unresolved: s.unresolved,
            assignments: s.assignments,
            depth: self.depth,
            cwd: self.cwd.clone(),
        };
        let (variants, outputs) = (s.variants, s.outputs);
        if cmd.argv.is_empty() {
            if !cmd.assignments.is_empty() {
                self.out.commands.push(cmd);
            }
            self.last_output = Flow::Unknown;
            return Ok(Flow::Unknown);
        }
        // A word that may take another spelling: the command once more with it.
        for (i, v) in variants.into_iter().take(MAX_VARIANTS) {
            let mut c = cmd.clone();
            let dynamic = dynamic(&v);
            c.argv[i] = v;
            c.unresolved.retain(|&u| u != i);
            if dynamic {
                c.unresolved.push(i);
            }
            self.out.commands.push(c);
        }
        let out = self.unwrap(cmd, stdin, &outputs)?;
        self.last_output = out.clone();
        Ok(out)
    }

    /// Records a command and looks through it to the commands it runs.
    fn unwrap(&mut self, cmd: Command, stdin: Option<Flow>, outputs: &[(usize, Flow)]) -> Result<Flow, Error> {
        // Most commands run nothing else: recorded as they are, without copies.
        if !cmd.unresolved.contains(&0) && !runs_others(base(&cmd.argv[0])) && !cmd.argv[0].contains('/') {
            let out = Self::output(base(&cmd.argv[0]), &cmd.argv, &cmd.unresolved, stdin);
            self.out.commands.push(cmd);
            return Ok(out);
        }
        let argv = cmd.argv.clone();
        let unresolved = cmd.unresolved.clone();
        let depth = cmd.depth;
        let program = base(&argv[0]).to_string();
        let output_of = |i: usize| outputs.iter().find(|(j, _)| *j == i).map(|(_, f)| f.clone());
        self.out.commands.push(cmd);
        if unresolved.contains(&0) {
            self.opaque(format!("the program `{}` is only known at run time", argv[0]));
            return Ok(Flow::Unknown);
        }
        let written = |b: &Builder<'_>, w: &str| b.written.iter().any(|x| x == w.trim_start_matches("./"));
        if argv[0].contains('/') && written(self, &argv[0]) {
            self.opaque(format!("`{}` runs a file written on the same line", argv[0]));
        }
        let rest = |from: usize| Command {
            argv: argv[from..].to_vec(),
            unresolved: unresolved.iter().filter(|&&i| i >= from).map(|&i| i - from).collect(),
            assignments: Vec::new(),
            depth: depth + 1,
            cwd: None,
        };
        let rest_outputs = |from: usize| -> Vec<(usize, Flow)> {
            outputs
                .iter()
                .filter(|(i, _)| *i >= from)
                .map(|(i, f)| (i - from, f.clone()))
                .collect()
        };
        // The first operand after options, skipping the values of `with_value` options.
        let operand = |from: usize, with_value: &[&str]| {
            let mut i = from;
            while i < argv.len() && argv[i].starts_with('-') && argv[i] != "-" {
                if argv[i] == "--" {
                    return i + 1;
                }
                if with_value.contains(&argv[i].as_str()) {
                    i += 1;
                }
                i += 1;
            }
            i
        };
        let joined = |from: usize, to: usize| argv[from.min(to)..to].join(" ");
        let any_unresolved = |from: usize, to: usize| unresolved.iter().any(|&u| u >= from && u < to);
        let script = |b: &mut Builder<'_>, from: usize, to: usize, what: &str| -> Result<(), Error> {
            if from >= to {
                return Ok(());
            }
            if any_unresolved(from, to) {
                b.opaque(format!("the script {what} runs is only known at run time"));
            }
            b.nested(&joined(from, to), 0).map(|_| ())
        };
        match program.as_str() {
            p if is_shell(p) => {
                let mut i = 1;
                let (mut has_c, mut from_stdin) = (false, false);
                while i < argv.len() && (argv[i].starts_with('-') || argv[i].starts_with('+')) && argv[i] != "-" {
                    let a = argv[i].as_str();
                    if a == "--" {
                        i += 1;
                        break;
                    }
                    if matches!(a, "-o" | "+o" | "-O" | "+O" | "--rcfile" | "--init-file") {
                        i += 2;
                        continue;
                    }
                    if !a.starts_with("--") {
                        has_c |= a.contains('c');
                        from_stdin |= a.contains('s');
                    }
                    i += 1;
                }
                if has_c {
                    if i < argv.len() {
                        script(self, i, i + 1, &program)?;
                    }
                } else if i < argv.len() && !from_stdin && argv[i] != "-" && argv[i] != "/dev/stdin" {
                    self.script_file(&program, &argv[i], output_of(i))?;
                } else {
                    self.stdin_script(&program, stdin)?;
                }
                Ok(Flow::Unknown)
            }
            "eval" => {
                script(self, 1, argv.len(), "eval")?;
                Ok(Flow::Unknown)
            }
            "source" | "." => {
                if let Some(f) = argv.get(1) {
                    self.script_file(&program, f, output_of(1))?;
                }
                Ok(Flow::Unknown)
            }
            "env" => {
                let mut i = 1;
                let mut assignments = Vec::new();
                let mut dir = None;
                while i < argv.len() {
                    let a = &argv[i];
                    if a == "-S" || a == "--split-string" {
                        script(self, i + 1, (i + 2).min(argv.len()), "env -S")?;
                        return Ok(Flow::Unknown);
                    } else if a == "-C" || a == "--chdir" {
                        dir = argv.get(i + 1).cloned();
                        i += 2;
                    } else if a == "-u" || a == "--unset" {
                        i += 2;
                    } else if a.starts_with('-') {
                        i += 1;
                    } else if let Some((k, v)) = a.split_once('=') {
                        assignments.push((k.to_string(), v.to_string()));
                        i += 1;
                    } else {
                        break;
                    }
                }
                if i < argv.len() {
                    let mut c = rest(i);
                    c.assignments = assignments;
                    let saved = self.cwd.clone();
                    if let Some(d) = dir {
                        self.cwd = Some(self.join_cwd(&d));
                    }
                    let r = self.unwrap_inner(c, stdin, &rest_outputs(i));
                    self.cwd = saved;
                    return r;
                }
                Ok(Flow::Unknown)
            }
            "xargs" => {
                let i = operand(
                    1,
                    &[
                        "-n",
                        "-s",
                        "-P",
                        "-L",
                        "-I",
                        "-E",
                        "-d",
                        "-a",
                        "--max-args",
                        "--delimiter",
                    ],
                );
                if i < argv.len() {
                    self.out.uncertain = true; // its arguments come from stdin
                    self.unwrap_inner(rest(i), None, &rest_outputs(i))?;
                }
                Ok(Flow::Unknown)
            }
            "find" => {
                // `{}` stands for each file found: the search roots joined with what `-name`
                // or `-path` asks for, as a glob (`find ~ -name id_rsa -exec cat {} \;` reads
                // `~/**/id_rsa`).
                let roots: Vec<&str> = argv[1..]
                    .iter()
                    .take_while(|a| !a.starts_with('-') && !matches!(a.as_str(), "(" | "!" | ","))
                    .map(String::as_str)
                    .collect();
                let roots = if roots.is_empty() { vec!["."] } else { roots };
                // A `-name` glob (`'*.rs'`) would stand for too much: only literal names count.
                let names: Vec<String> = argv
                    .windows(2)
                    .filter(|w| match w[0].as_str() {
                        "-name" | "-iname" => !dynamic(&w[1]),
                        "-path" | "-ipath" | "-wholename" => true,
                        _ => false,
                    })
                    .map(|w| {
                        if w[0].ends_with("path") || w[0] == "-wholename" {
                            w[1].trim_start_matches("./")
                                .trim_start_matches('*')
                                .trim_start_matches('/')
                                .to_string()
                        } else {
                            w[1].clone()
                        }
                    })
                    .collect();
                let found: Vec<String> = roots
                    .iter()
                    .flat_map(|r| {
                        let r = r.trim_end_matches('/');
                        if names.is_empty() {
                            Vec::new()
                        } else {
                            names.iter().map(|n| format!("{r}/**/{n}")).collect()
                        }
                    })
                    .collect();
                let mut from = 1;
                while let Some(off) = argv[from..]
                    .iter()
                    .position(|a| matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir"))
                {
                    let i = from + off;
                    let end = argv[i + 1..]
                        .iter()
                        .position(|a| a == ";" || a == "+")
                        .map_or(argv.len(), |e| i + 1 + e);
                    if end > i + 1 {
                        let mut c = rest(i + 1);
                        c.argv.truncate(end - i - 1);
                        c.unresolved.retain(|&u| u < c.argv.len());
                        // Once as written, and once per file pattern in place of `{}`.
                        let holders: Vec<usize> = (0..c.argv.len()).filter(|&k| c.argv[k].contains("{}")).collect();
                        if !holders.is_empty() {
                            for f in found.iter().take(MAX_VARIANTS) {
                                let mut v = c.clone();
                                for &k in &holders {
                                    v.argv[k] = v.argv[k].replace("{}", f);
                                    if !v.unresolved.contains(&k) {
                                        v.unresolved.push(k);
                                    }
                                }
                                v.cwd = self.cwd.clone();
                                self.out.commands.push(v);
                            }
                        }
                        self.unwrap_inner(c, None, &[])?;
                    }
                    from = end;
                }
                Ok(Flow::Unknown)
            }
            "timeout" => {
                let i = operand(1, &["-s", "-k", "--signal", "--kill-after"]) + 1; // the duration
                if i < argv.len() {
                    return self.unwrap_inner(rest(i), stdin, &rest_outputs(i));
                }
                Ok(Flow::Unknown)
            }
            "taskset" => {
                let i = operand(1, &[]);
                let i = if argv[1..i].iter().any(|a| a.contains('p')) {
                    argv.len()
                } else {
                    i + 1
                };
                if i < argv.len() {
                    return self.unwrap_inner(rest(i), stdin, &rest_outputs(i));
                }
                Ok(Flow::Unknown)
            }
            "chroot" => {
                let i = operand(1, &["--userspec", "--groups"]) + 1; // the new root
                if i < argv.len() {
                    return self.unwrap_inner(rest(i), stdin, &rest_outputs(i));
                }
                Ok(Flow::Unknown)
            }
            "flock" => {
                let i = operand(1, &["-w", "-E", "--timeout", "--conflict-exit-code"]);
                if let Some(c) = argv.iter().position(|a| a == "-c" || a == "--command") {
                    script(self, c + 1, (c + 2).min(argv.len()), "flock -c")?;
                } else if i + 1 < argv.len() {
                    return self.unwrap_inner(rest(i + 1), stdin, &rest_outputs(i + 1));
                }
                Ok(Flow::Unknown)
            }
            "watch" => {
                let i = operand(1, &["-n", "--interval", "-d", "-q", "--equexit"]);
                script(self, i, argv.len(), "watch")?;
                Ok(Flow::Unknown)
            }
            "parallel" => {
                let i = operand(1, &["-j", "--jobs", "-S", "--sshlogin", "--delay", "--timeout"]);
                let end = argv.iter().position(|a| a.starts_with(":::")).unwrap_or(argv.len());
                script(self, i, end, "parallel")?;
                Ok(Flow::Unknown)
            }
            "script" | "su" | "runuser" | "sg" if argv.iter().any(|a| is_c_option(a)) => {
                let c = argv.iter().position(|a| is_c_option(a)).unwrap_or(argv.len());
                if let Some(v) = argv[c].strip_prefix("--command=") {
                    let v = v.to_string();
                    self.nested(&v, 0)?;
                } else {
                    script(self, c + 1, (c + 2).min(argv.len()), &program)?;
                }
                Ok(Flow::Unknown)
            }
            "ssh" | "autossh" | "mosh" => {
                let i = operand(
                    1,
                    &[
                        "-p", "-i", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-E", "-e", "-m", "-O", "-Q",
                        "-S", "-W", "-w", "-B", "-I", "-M",
                    ],
                );
                if i + 1 < argv.len() {
                    let from = if argv[i + 1] == "--" { i + 2 } else { i + 1 };
                    script(self, from, argv.len(), "ssh")?;
                } else if i < argv.len() {
                    self.stdin_script(&program, stdin)?;
                }
                Ok(Flow::Unknown)
            }
            "kubectl" | "oc" if argv.get(1).is_some_and(|a| a == "exec") => {
                if let Some(d) = argv.iter().position(|a| a == "--") {
                    return self.unwrap_inner(rest(d + 1), stdin, &rest_outputs(d + 1));
                }
                Ok(Flow::Unknown)
            }
            "docker" | "podman" | "nerdctl" if argv.get(1).is_some_and(|a| a == "exec") => {
                let i = operand(
                    2,
                    &[
                        "-e",
                        "--env",
                        "-u",
                        "--user",
                        "-w",
                        "--workdir",
                        "--env-file",
                        "--detach-keys",
                    ],
                );
                if i + 1 < argv.len() {
                    return self.unwrap_inner(rest(i + 1), stdin, &rest_outputs(i + 1));
                }
                Ok(Flow::Unknown)
            }
            "alias" => {
                for a in &argv[1..] {
                    if let Some((_, v)) = a.split_once('=') {
                        let v = v.to_string();
                        self.nested_tolerant(&v);
                    }
                }
                Ok(Flow::Unknown)
            }
            "cd" | "pushd" | "popd" => {
                self.chdir(&program, &argv[1..], &unresolved);
                Ok(Flow::Unknown)
            }
            p if WRAPPERS.iter().any(|(w, _)| *w == p) => {
                let with_value = WRAPPERS.iter().find(|(w, _)| *w == p).map_or(&[][..], |(_, v)| v);
                let i = operand(1, with_value);
                if i < argv.len() {
                    return self.unwrap_inner(rest(i), stdin, &rest_outputs(i));
                }
                Ok(Flow::Unknown)
            }
            p if interpreter(p).is_some() => {
                let code_opts = interpreter(p).unwrap_or(&[]);
                self.interpreter_code(&program, &argv, &unresolved, code_opts, stdin, outputs)?;
                Ok(Flow::Unknown)
            }
            _ => Ok(Self::output(&program, &argv, &unresolved, stdin)),
        }
    }

    fn unwrap_inner(&mut self, c: Command, stdin: Option<Flow>, outputs: &[(usize, Flow)]) -> Result<Flow, Error> {
        let mut c = c;
        c.cwd = self.cwd.clone();
        self.unwrap(c, stdin, outputs)
    }

    /// A shell or `source` given a script file: a process substitution's known output is
    /// analysed; a file written on this line, or one whose content is produced at run time, is
    /// opaque. Other script files are outside a static view (see the README).
    fn script_file(&mut self, program: &str, file: &str, output: Option<Flow>) -> Result<(), Error> {
        match output {
            Some(Flow::Known(text)) => {
                self.nested(&text, 0)?;
            }
            Some(Flow::Unknown) => self.opaque(format!("`{program}` runs a script produced at run time")),
            None if self.written.iter().any(|w| w == file.trim_start_matches("./")) => {
                self.opaque(format!("`{program}` runs `{file}`, written on the same line"));
            }
            None => {}
        }
        Ok(())
    }

    /// A shell reading its script from standard input.
    fn stdin_script(&mut self, program: &str, stdin: Option<Flow>) -> Result<(), Error> {
        match stdin {
            Some(Flow::Known(text)) => {
                self.nested(&text, 0)?;
            }
            Some(Flow::Unknown) => self.opaque(format!("`{program}` runs a script read from its input")),
            None => {}
        }
        Ok(())
    }

    /// Inline code of another language: opaque, its string literals matched as words and
    /// analysed as shell where they parse.
    fn interpreter_code(
        &mut self,
        program: &str,
        argv: &[String],
        unresolved: &[usize],
        code_opts: &[&str],
        stdin: Option<Flow>,
        outputs: &[(usize, Flow)],
    ) -> Result<(), Error> {
        let family = base(program);
        let is_awk = family.ends_with("awk");
        let mut code: Option<(usize, String)> = None;
        let mut script_operand = None;
        let mut i = 1;
        while i < argv.len() {
            let a = argv[i].as_str();
            let lower = a.to_ascii_lowercase();
            if code_opts.contains(&lower.as_str()) {
                if let Some(c) = argv.get(i + 1) {
                    code = Some((i + 1, c.clone()));
                }
                break;
            }
            // Bundled short options ending in the code option: `perl -ne`, `python3 -Ic`.
            if a.starts_with('-')
                && !a.starts_with("--")
                && a.len() > 2
                && code_opts.iter().any(|o| o.len() == 2 && a.ends_with(&o[1..]))
            {
                if let Some(c) = argv.get(i + 1) {
                    code = Some((i + 1, c.clone()));
                }
                break;
            }
            if is_awk && (a == "-f" || a == "--file") {
                script_operand = argv.get(i + 1).cloned();
                break;
            }
            if is_awk && matches!(a, "-F" | "-v" | "--assign" | "--field-separator") {
                i += 2;
                continue;
            }
            if a == "-" || !a.starts_with('-') {
                if is_awk {
                    code = Some((i, a.to_string()));
                } else {
                    script_operand = Some(a.to_string());
                    if a != "-" {
                        if let Some((_, f)) = outputs.iter().find(|(j, _)| *j == i) {
                            match f {
                                Flow::Known(t) => code = Some((i, t.clone())),
                                Flow::Unknown => {
                                    self.opaque(format!("`{family}` runs code produced at run time"));
                                }
                            }
                        } else if self.written.iter().any(|w| w == a.trim_start_matches("./")) {
                            self.opaque(format!("`{family}` runs `{a}`, written on the same line"));
                        }
                    }
                }
                break;
            }
            i += 1;
        }
        if code.is_none() && (script_operand.is_none() || script_operand.as_deref() == Some("-")) {
            match stdin {
                Some(Flow::Known(t)) => code = Some((usize::MAX, t)),
                Some(Flow::Unknown) => self.opaque(format!("`{family}` runs code read from its input")),
                None => {}
            }
        }
        let Some((at, code)) = code else { return Ok(()) };
        if is_awk && !(code.contains("system") || code.contains('|')) {
            // An awk program that runs nothing and pipes nothing: text processing.
            return Ok(());
        }
        if unresolved.contains(&at) {
            self.opaque(format!("`{family}` runs code only known at run time"));
        }
        self.opaque(format!("inline `{family}` code is not analysed"));
        let literals = code_literals(&code);
        if !literals.is_empty() {
            let mut c = Command {
                argv: std::iter::once(argv[0].clone())
                    .chain(literals.iter().cloned())
                    .collect(),
                depth: self.depth + 1,
                cwd: self.cwd.clone(),
                ..Command::default()
            };
            c.unresolved = (1..c.argv.len()).filter(|&i| dynamic(&c.argv[i])).collect();
            self.out.commands.push(c);
            for l in &literals {
                self.nested_tolerant(l);
            }
        }
        Ok(())
    }

    /// What a command writes to its output, where it is known statically.
    fn output(program: &str, argv: &[String], unresolved: &[usize], stdin: Option<Flow>) -> Flow {
        let resolved = |from: usize| unresolved.iter().all(|&u| u < from);
        match program {
            "echo" => {
                let mut i = 1;
                let mut escapes = false;
                while i < argv.len() && matches!(argv[i].as_str(), "-n" | "-e" | "-E" | "-ne" | "-en") {
                    escapes |= argv[i].contains('e');
                    i += 1;
                }
                if !resolved(i) {
                    return Flow::Unknown;
                }
                let text = argv[i..].join(" ");
                Flow::Known(if escapes { unescape(&text) } else { text })
            }
            "printf" if argv.len() >= 2 && resolved(1) && argv[1] != "-v" => {
                let fmt = unescape(&argv[1]);
                let mut args = argv[2..].iter();
                let mut out = String::new();
                let mut it = fmt.chars();
                while let Some(c) = it.next() {
                    if c != '%' {
                        out.push(c);
                        continue;
                    }
                    match it.next() {
                        Some('%') => out.push('%'),
                        Some('s' | 'b') => out.push_str(args.next().map_or("", String::as_str)),
                        _ => return Flow::Unknown,
                    }
                }
                Flow::Known(out)
            }
            "cat" | "tee"
                if argv[1..]
                    .iter()
                    .all(|a| a == "-" || (program == "tee" && a.starts_with('-'))) =>
            {
                stdin.unwrap_or(Flow::Unknown)
            }
            "base64" | "base32" if argv[1..].iter().any(|a| matches!(a.as_str(), "-d" | "--decode" | "-D")) => {
                match stdin {
                    Some(Flow::Known(t)) => {
                        use base64::Engine as _;
                        let clean: String = t.chars().filter(|c| !c.is_whitespace()).collect();
                        if program == "base64"
                            && let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(clean.as_bytes())
                        {
                            Flow::Known(String::from_utf8_lossy(&bytes).into_owned())
                        } else {
                            Flow::Unknown
                        }
                    }
                    _ => Flow::Unknown,
                }
            }
            "rev" => match stdin {
                Some(Flow::Known(t)) => Flow::Known(
                    t.lines()
                        .map(|l| l.chars().rev().collect::<String>())
                        .collect::<Vec<_>>()
                        .join("\n"),
                ),
                _ => Flow::Unknown,
            },
            _ => Flow::Unknown,
        }
    }

    fn join_cwd(&self, dir: &str) -> String {
        if dir.starts_with('/') || dir.starts_with('~') || dir.starts_with('$') {
            return dir.to_string();
        }
        match &self.cwd {
            Some(c) => format!("{}/{dir}", c.trim_end_matches('/')),
            None => dir.to_string(),
        }
    }

    fn chdir(&mut self, program: &str, args: &[String], unresolved: &[usize]) {
        let operand = args
            .iter()
            .position(|a| !a.starts_with('-') || a == "-")
            .map(|i| (i, &args[i]));
        match (program, operand) {
            ("popd", _) => self.cwd = self.dirs.pop().unwrap_or(None),
            (_, None) if program == "cd" => self.cwd = Some("~".to_string()),
            (_, None) => {}
            (_, Some((_, d))) if d == "-" => self.cwd = Some("$OLDPWD".to_string()),
            (_, Some((i, d))) => {
                if program == "pushd" {
                    self.dirs.push(self.cwd.clone());
                }
                let d = if unresolved.contains(&(i + 1)) && !d.contains('$') {
                    format!("${{DIR}}/{d}")
                } else {
                    d.clone()
                };
                self.cwd = Some(self.join_cwd(&d));
            }
        }
    }
}

/// Whether a program may run other commands or code (the ones `unwrap` looks through).
fn runs_others(p: &str) -> bool {
    matches!(
        p,
        "sh" | "bash"
            | "zsh"
            | "dash"
            | "ksh"
            | "ash"
            | "mksh"
            | "yash"
            | "fish"
            | "rbash"
            | "busybox-sh"
            | "sudo"
            | "doas"
            | "nohup"
            | "time"
            | "nice"
            | "ionice"
            | "stdbuf"
            | "command"
            | "exec"
            | "builtin"
            | "setsid"
            | "unbuffer"
            | "caffeinate"
            | "chrt"
            | "strace"
            | "ltrace"
            | "firejail"
            | "proxychains"
            | "proxychains4"
            | "torsocks"
            | "fakeroot"
            | "systemd-run"
            | "catchsegv"
            | "valgrind"
            | "xvfb-run"
            | "dbus-run-session"
            | "busybox"
            | "toybox"
            | "runuser"
            | "chronic"
            | "nsenter"
            | "unshare"
            | "eval"
            | "source"
            | "."
            | "env"
            | "xargs"
            | "find"
            | "timeout"
            | "taskset"
            | "chroot"
            | "flock"
            | "watch"
            | "parallel"
            | "script"
            | "su"
            | "sg"
            | "ssh"
            | "autossh"
            | "mosh"
            | "kubectl"
            | "oc"
            | "docker"
            | "podman"
            | "nerdctl"
            | "alias"
            | "cd"
            | "pushd"
            | "popd"
    ) || matches!(
        family(p),
        "python"
            | "pypy"
            | "perl"
            | "node"
            | "nodejs"
            | "bun"
            | "deno"
            | "ruby"
            | "php"
            | "lua"
            | "luajit"
            | "Rscript"
            | "julia"
            | "osascript"
            | "pwsh"
            | "powershell"
            | "tclsh"
            | "php-cgi"
            | "groovy"
            | "scala"
            | "elixir"
            | "erl"
            | "awk"
            | "gawk"
            | "mawk"
            | "nawk"
    )
}

fn is_c_option(a: &str) -> bool {
    a == "-c"
        || a == "--command"
        || a.starts_with("--command=")
        || (a.starts_with('-') && !a.starts_with("--") && a.ends_with('c') && a.len() <= 4)
}

/// Whether text holds something the shell would expand.
pub(super) fn dynamic(w: &str) -> bool {
    w.bytes().any(|b| matches!(b, b'$' | b'`' | b'*' | b'?' | b'['))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quick_check_knows_every_program_unwrap_looks_through() {
        for p in SHELLS
            .iter()
            .chain(WRAPPERS.iter().map(|(w, _)| w))
            .chain(INTERPRETERS.iter().map(|(i, _)| i))
        {
            assert!(runs_others(p), "{p}");
        }
        for p in ["python3.12", "perl5.36", "node20"] {
            assert!(runs_others(p) && interpreter(p).is_some(), "{p}");
        }
        assert!(!runs_others("cargo") && !runs_others("git"));
    }
}
