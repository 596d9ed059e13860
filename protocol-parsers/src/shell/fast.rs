//! The hand-written fast path: simple commands joined by `|`, `;`, `&&`, `||`, `&` and newlines,
//! with quotes, escapes, `$VAR`, `$(…)`, backticks, globs and plain redirections. Anything else
//! (reserved words, groups, subshells, `${…}`, here-documents, process substitution, braces, …)
//! is not its business: it says so and the grammar front end takes the whole line.
//!
//! It lexes the whole line before feeding the back end, so that a line it gives up on leaves no
//! trace.

use super::build::{Builder, Flow, Redir, Simple, Word};
use super::{Error, ErrorKind};

/// Words that are syntax in command position.
const RESERVED: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in", "function",
    "select", "coproc", "time", "!", "[[", "]]", "{", "}",
];

/// Not in the subset: the grammar decides.
struct NotMine;

enum Step {
    Err(Error),
    Bail,
}

impl From<Error> for Step {
    fn from(e: Error) -> Step {
        Step::Err(e)
    }
}

impl From<NotMine> for Step {
    fn from(_: NotMine) -> Step {
        Step::Bail
    }
}

/// A lexed word with the command substitutions it holds.
struct Lexed {
    text: String,
    unresolved: bool,
    subs: Vec<(String, usize)>,
}

impl Lexed {
    fn word(self) -> Word {
        Word {
            text: self.text,
            unresolved: self.unresolved,
            ..Word::default()
        }
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    variables: Vec<String>,
}

fn is_meta(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')')
}

/// Bytes that end a run of plain word text: metacharacters, quotes, expansions, globs, braces.
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let stops = b" \t\n;&|<>()\\'\"$`*?[{}!";
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = true;
        i += 1;
    }
    t
};

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at(&self, off: usize) -> Option<u8> {
        self.s.get(self.pos + off).copied()
    }

    fn unterminated(&self, at: usize) -> Step {
        Step::Err(Error::new(ErrorKind::Unterminated, at))
    }

    /// `$name`, `$1`, `$?`, `$(…)` at `pos` (which is at `$`).
    fn dollar(&mut self, w: &mut Lexed) -> Result<(), Step> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some(b'(') => {
                if self.at(1) == Some(b'(') {
                    return Err(Step::Bail);
                }
                // The body up to the matching `)`, outside single quotes; anything that could
                // hide a parenthesis from this count is the grammar's business.
                let mut depth = 0usize;
                let mut i = self.pos;
                let end = loop {
                    match self.s.get(i) {
                        None => return Err(self.unterminated(start)),
                        Some(b'"' | b'`' | b'\\' | b'#' | b'<') => return Err(Step::Bail),
                        Some(b'\'') => {
                            let close = self.s[i + 1..].iter().position(|&b| b == b'\'');
                            match close {
                                Some(c) => i += c + 1,
                                None => return Err(self.unterminated(i)),
                            }
                        }
                        Some(b'(') => depth += 1,
                        Some(b')') => {
                            depth -= 1;
                            if depth == 0 {
                                break i;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                };
                let body = String::from_utf8_lossy(&self.s[self.pos + 1..end]).into_owned();
                w.subs.push((body, self.pos + 1));
                self.pos = end + 1;
            }
            Some(b) if b.is_ascii_alphabetic() || b == b'_' => {
                let name_start = self.pos;
                while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    self.pos += 1;
                }
                self.variables
                    .push(String::from_utf8_lossy(&self.s[name_start..self.pos]).into_owned());
            }
            Some(b) if b.is_ascii_digit() || b"@*#?$!-".contains(&b) => self.pos += 1,
            Some(b'{' | b'\'' | b'"' | b'[') => return Err(Step::Bail),
            _ => {
                // A lone `$` is literal.
                w.text.push('$');
                return Ok(());
            }
        }
        w.text.push_str(&String::from_utf8_lossy(&self.s[start..self.pos]));
        w.unresolved = true;
        Ok(())
    }

    fn backtick(&mut self, w: &mut Lexed) -> Result<(), Step> {
        let start = self.pos;
        let Some(len) = self.s[self.pos + 1..].iter().position(|&b| b == b'`') else {
            return Err(self.unterminated(start));
        };
        let end = self.pos + 1 + len;
        let body = &self.s[self.pos + 1..end];
        if body.iter().any(|&b| matches!(b, b'\\' | b'"' | b'\'')) {
            return Err(Step::Bail);
        }
        w.subs.push((String::from_utf8_lossy(body).into_owned(), start + 1));
        w.text.push_str(&String::from_utf8_lossy(&self.s[start..=end]));
        w.unresolved = true;
        self.pos = end + 1;
        Ok(())
    }

    /// One word at `pos`, or None at a metacharacter.
    fn word(&mut self) -> Result<Option<Lexed>, Step> {
        let mut w = Lexed {
            text: String::new(),
            unresolved: false,
            subs: Vec::new(),
        };
        let start = self.pos;
        while let Some(b) = self.peek() {
            if is_meta(b) {
                if b == b'(' || b == b')' {
                    return Err(Step::Bail);
                }
                break;
            }
            match b {
                b'\\' => {
                    match self.at(1) {
                        None => return Err(Step::Bail),
                        Some(b'\n') => return Err(Step::Bail),
                        Some(n) if n >= 0x80 => return Err(Step::Bail),
                        Some(n) => w.text.push(n as char),
                    }
                    self.pos += 2;
                }
                b'\'' => {
                    let Some(end) = self.s[self.pos + 1..].iter().position(|&b| b == b'\'') else {
                        return Err(self.unterminated(self.pos));
                    };
                    w.text
                        .push_str(&String::from_utf8_lossy(&self.s[self.pos + 1..self.pos + 1 + end]));
                    self.pos += end + 2;
                }
                b'"' => {
                    let q = self.pos;
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return Err(self.unterminated(q)),
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b'\\') => return Err(Step::Bail),
                            Some(b'$') => self.dollar(&mut w)?,
                            Some(b'`') => self.backtick(&mut w)?,
                            Some(_) => {
                                let run = self.s[self.pos..]
                                    .iter()
                                    .position(|&c| matches!(c, b'"' | b'\\' | b'$' | b'`'))
                                    .unwrap_or(self.s.len() - self.pos);
                                w.text
                                    .push_str(&String::from_utf8_lossy(&self.s[self.pos..self.pos + run]));
                                self.pos += run;
                            }
                        }
                    }
                }
                b'$' => self.dollar(&mut w)?,
                b'`' => self.backtick(&mut w)?,
                b'{' | b'}' | b'!' => return Err(Step::Bail),
                b'*' | b'?' | b'[' => {
                    // `[` opens a class only when a `]` follows in the word (`[ -f x ]` is a program).
                    let mut class = b != b'[';
                    if b == b'[' && self.pos > 0 && self.s[self.pos - 1] == b'$' {
                        // `$[…]`, `$$[…]`: arithmetic to some readers.
                        return Err(Step::Bail);
                    }
                    if b == b'[' {
                        for &c in self.s[self.pos + 1..].iter().take_while(|&&c| !is_meta(c)) {
                            match c {
                                b']' => {
                                    class = true;
                                    break;
                                }
                                // Whether a quoted `]` closes the class: the grammar's business.
                                b'\'' | b'"' | b'\\' | b'$' | b'`' => return Err(Step::Bail),
                                _ => {}
                            }
                        }
                    }
                    w.text.push(b as char);
                    w.unresolved |= class;
                    self.pos += 1;
                }
                _ => {
                    // Keep UTF-8 intact: copy the whole run of plain bytes.
                    let run = self.s[self.pos..]
                        .iter()
                        .position(|&c| STOP[c as usize])
                        .unwrap_or(self.s.len() - self.pos);
                    w.text
                        .push_str(&String::from_utf8_lossy(&self.s[self.pos..self.pos + run]));
                    self.pos += run;
                }
            }
        }
        Ok((self.pos > start).then_some(w))
    }

    fn blanks(&mut self) {
        while self.peek().is_some_and(|b| b == b' ' || b == b'\t') {
            self.pos += 1;
        }
        if self.peek() == Some(b'#') {
            while self.peek().is_some_and(|b| b != b'\n') {
                self.pos += 1;
            }
        }
    }

    /// A redirection at `pos` (at `<`, `>` or `&>`).
    fn redirect(&mut self, cmd: &mut Cmd) -> Result<(), Step> {
        let both = self.peek() == Some(b'&');
        if both {
            self.pos += 1;
        }
        let op = self.peek();
        self.pos += 1;
        let kind = match (op, self.peek()) {
            (Some(b'>'), Some(b'>')) => {
                self.pos += 1;
                1
            }
            (Some(b'>'), Some(b'&')) | (Some(b'<'), Some(b'&')) if !both => {
                self.pos += 1;
                // `>&2`, `<&0`, `>&-`: a descriptor.
                let d = self.word()?;
                if !d.is_some_and(|d| d.subs.is_empty() && d.text.bytes().all(|b| b.is_ascii_digit() || b == b'-')) {
                    return Err(Step::Bail);
                }
                cmd.simple.redirs.push(Redir::Dup);
                return Ok(());
            }
            (Some(b'>'), Some(b'|' | b'&')) | (Some(b'<'), Some(b'<' | b'>' | b'&')) => return Err(Step::Bail),
            (Some(b'>'), _) => 1,
            _ => 0,
        };
        self.blanks();
        let Some(mut w) = self.word()? else {
            return Err(Step::Bail);
        };
        cmd.subs.append(&mut w.subs);
        let r = if kind == 1 {
            Redir::Write(w.word())
        } else {
            Redir::Read(w.word())
        };
        cmd.simple.redirs.push(r);
        Ok(())
    }
}

struct Cmd {
    simple: Simple,
    /// Command substitutions, in the order they appear.
    subs: Vec<(String, usize)>,
    piped: bool,
}

/// Analyses `script` into `b` if it is in the subset; `Ok(false)` if it is not (nothing was
/// fed to `b`).
pub(super) fn analyze(script: &str, b: &mut Builder<'_>) -> Result<bool, Error> {
    if script
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t' && b != b'\n') || b == 0x7f)
    {
        return Ok(false);
    }
    let mut lx = Lexer {
        s: script.as_bytes(),
        pos: 0,
        variables: Vec::new(),
    };
    let cmds = match lex(&mut lx) {
        Ok(c) => c,
        Err(Step::Bail) => return Ok(false),
        Err(Step::Err(e)) => return Err(e),
    };
    b.out.variables.append(&mut lx.variables);
    let mut prev: Option<Flow> = None;
    for c in cmds {
        for (body, at) in &c.subs {
            b.nested(body, *at)?;
        }
        let stdin = if c.piped { prev.take() } else { None };
        prev = Some(b.simple(c.simple, stdin)?);
    }
    Ok(true)
}

fn lex(lx: &mut Lexer<'_>) -> Result<Vec<Cmd>, Step> {
    let mut cmds = Vec::with_capacity(4);
    let mut piped = false;
    loop {
        lx.blanks();
        match lx.peek() {
            None => {
                if piped {
                    return Err(Step::Bail);
                }
                return Ok(cmds);
            }
            Some(b'\n' | b';' | b'&') => {
                if piped || (lx.peek() == Some(b';') && lx.at(1) == Some(b';')) {
                    return Err(Step::Bail);
                }
                lx.pos += 1;
                if lx.s[lx.pos - 1] == b'&' && lx.peek() == Some(b'&') {
                    lx.pos += 1;
                }
                continue;
            }
            Some(b'|') => {
                if lx.at(1) == Some(b'|') {
                    lx.pos += 2;
                    continue;
                }
                return Err(Step::Bail);
            }
            _ => {}
        }
        let mut cmd = Cmd {
            simple: Simple {
                argv: Vec::with_capacity(4),
                ..Simple::default()
            },
            subs: Vec::new(),
            piped,
        };
        loop {
            lx.blanks();
            match lx.peek() {
                None | Some(b'\n' | b';') => break,
                Some(b'&') if lx.at(1) == Some(b'>') => lx.redirect(&mut cmd)?,
                Some(b'&') => break,
                Some(b'|') => break,
                Some(b'(' | b')') => return Err(Step::Bail),
                Some(b'<' | b'>') => lx.redirect(&mut cmd)?,
                Some(d) if d.is_ascii_digit() && matches!(lx.at(1), Some(b'<' | b'>')) => {
                    lx.pos += 1;
                    lx.redirect(&mut cmd)?;
                }
                _ => {
                    let start = lx.pos;
                    let Some(mut w) = lx.word()? else {
                        return Err(Step::Bail);
                    };
                    let t = &w.text;
                    // `~+`, `~-`, `~1`: the directory stack, the grammar's business.
                    if lx.s[start] == b'~'
                        && lx
                            .s
                            .get(start + 1)
                            .is_some_and(|c| matches!(c, b'+' | b'-' | b'0'..=b'9'))
                    {
                        return Err(Step::Bail);
                    }
                    // `99<file`: a descriptor number, not a word.
                    if matches!(lx.peek(), Some(b'<' | b'>')) && lx.s[start..lx.pos].iter().all(u8::is_ascii_digit) {
                        return Err(Step::Bail);
                    }
                    // An assignment's name is written plainly: `\EE=x` and `"A"=x` are commands.
                    let raw = &lx.s[start..lx.pos];
                    let assignment = cmd.simple.argv.is_empty()
                        && raw.iter().position(|&b| b == b'=').is_some_and(|i| {
                            i > 0
                                && !raw[0].is_ascii_digit()
                                && raw[..i].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
                        });
                    if cmd.simple.argv.is_empty() && !assignment && t.contains('=') {
                        // Quoting around a would-be name: the grammar decides.
                        return Err(Step::Bail);
                    }
                    if cmd.simple.argv.is_empty()
                        && !assignment
                        && (RESERVED.contains(&t.as_str()) || t.contains('=') && t.contains('['))
                    {
                        return Err(Step::Bail);
                    }
                    if assignment {
                        let (k, v) = t.split_once('=').unwrap_or_default();
                        let (k, v) = (k.to_string(), v.to_string());
                        // `a=~/x`: the tilde after `=` expands, a subtlety left to the grammar.
                        if v.starts_with('~') {
                            return Err(Step::Bail);
                        }
                        cmd.subs.append(&mut w.subs);
                        cmd.simple.assign(
                            k,
                            Word {
                                text: v,
                                unresolved: w.unresolved,
                                ..Word::default()
                            },
                        );
                    } else {
                        cmd.subs.append(&mut w.subs);
                        cmd.simple.push_plain(w.text, w.unresolved);
                    }
                }
            }
        }
        if cmd.simple.argv.is_empty() && cmd.simple.assignments.is_empty() && cmd.simple.redirs.is_empty() {
            return Err(Step::Bail);
        }
        // Separator after the command.
        lx.blanks();
        piped = false;
        if lx.peek() == Some(b'|') && lx.at(1) != Some(b'|') {
            if lx.at(1) == Some(b'&') {
                return Err(Step::Bail);
            }
            lx.pos += 1;
            piped = true;
        }
        cmds.push(cmd);
    }
}
