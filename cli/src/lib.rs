//! `sluice`: scan files for secrets and redact streams, on the embedded rules or your own;
//! decide on commands against a policy; issue grants for approved commands.
//!
//! Exit status: 0 when nothing is found (scan) or the command is allowed (check), 1 when
//! something is found or the command is not allowed, 2 on error.
//!
//! The command line is a library so that other front ends run the very same code: the `sluice`
//! binary and the Python wheel's `sluice` / `python -m sluice` both call [`run`].

mod approvals;
mod diff;
mod hook;
mod output;
mod policy;
mod record;
mod scan;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sluice_core::Detector;

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "Find and mask secrets, decide on agent commands: the Sluice enforcement engine's command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Scan files, directories (recursively, honouring .gitignore and .sluiceignore) or stdin.
    Scan(ScanArgs),
    /// Copy a file or stdin to stdout with every secret masked, streaming in constant memory.
    Redact(RedactArgs),
    /// List the rules, or check a rule file and its examples.
    Rules(RulesArgs),
    /// Decide on a command (shell, SQL, HTTP, MCP, SSH) and print the decision as JSON.
    Check(Box<policy::CheckArgs>),
    /// Turn an approval request into a signed, single-use grant.
    Approve(policy::ApproveArgs),
    /// Run the approval service reviewers approve held commands through.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCommand),
    /// Create a grant signing key.
    Keygen(policy::KeygenArgs),
    /// Validate or test policy files.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify, replay, export or re-audit session recordings.
    #[command(subcommand)]
    Record(record::RecordCommand),
    /// Guard a coding agent: `sluice hook AGENT EVENT` is the hook command (the agent's JSON
    /// on stdin, its answer on stdout); `install`, `uninstall` and `doctor` manage it.
    Hook(Box<hook::HookArgs>),
}

#[derive(Args, Debug, Clone)]
struct RuleSource {
    /// A rule file (TOML) to add to the built-in rules; may be repeated.
    #[arg(long = "rules", value_name = "FILE")]
    rules: Vec<PathBuf>,
    /// Do not load the built-in rules.
    #[arg(long)]
    no_builtin_rules: bool,
    /// The engine of the keyword pass: rust, or hyperscan when built with the cargo feature
    /// `hyperscan` (the default then). Findings are the same with either.
    #[arg(long, value_name = "NAME")]
    backend: Option<sluice_core::Backend>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
    Jsonl,
    Sarif,
}

#[derive(Args, Debug)]
struct ScanArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value = "text")]
    format: Format,
    #[command(flatten)]
    source: RuleSource,
    /// Print the secrets themselves (never done otherwise).
    #[arg(long)]
    show_secrets: bool,
    /// Skip files larger than this many bytes.
    #[arg(long, default_value_t = 256 * 1024 * 1024, value_name = "BYTES")]
    max_file_size: u64,
    /// Also scan files that .gitignore / .sluiceignore exclude.
    #[arg(long)]
    no_ignore: bool,
    /// Number of scanning threads (default: one per core).
    #[arg(long, short = 'j')]
    threads: Option<usize>,
    /// Report only secrets on lines that `git diff BASE` adds: BASE alone compares with the
    /// working tree, `A..B` / `A...B` compare commits. PATHs then limit the diff.
    #[arg(long, value_name = "BASE")]
    diff: Option<String>,
    /// Files or directories to scan; `-` reads stdin. Default: the current directory.
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

#[derive(Args, Debug)]
struct RedactArgs {
    #[command(flatten)]
    source: RuleSource,
    /// The file to redact; `-` or nothing reads stdin.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RulesArgs {
    #[command(flatten)]
    source: RuleSource,
    /// Check that every rule finds its examples and none of its counter-examples.
    #[arg(long)]
    check: bool,
}

fn build_detector(src: &RuleSource) -> Result<Detector, String> {
    let mut b = Detector::builder()
        .builtin_rules(!src.no_builtin_rules)
        .backend(src.backend.unwrap_or_else(sluice_core::Backend::best));
    for path in &src.rules {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read rule file {}: {e}", path.display()))?;
        b = b.rules_toml(path.display().to_string(), text);
    }
    b.build().map_err(|e| e.to_string())
}

/// Runs the command line with `args` (the first being the program name) and returns the exit
/// status. Usage errors print clap's message and return 2; `--help` and `--version` print and
/// return 0. Never exits the process, so a host (the Python wheel) keeps control.
pub fn run<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let result = match cli.command {
        Command::Scan(args) => scan::run(args),
        Command::Redact(args) => redact(args),
        Command::Rules(args) => rules(args),
        Command::Check(args) => policy::check(*args),
        Command::Approve(args) => policy::approve(args),
        Command::Approvals(cmd) => approvals::run(cmd),
        Command::Keygen(args) => policy::keygen(args),
        Command::Policy(cmd) => policy::policy(cmd),
        Command::Record(cmd) => record::run(cmd),
        Command::Hook(args) => hook::run(*args),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            let _ = writeln!(std::io::stderr(), "sluice: error: {msg}");
            2
        }
    }
}

fn redact(args: RedactArgs) -> Result<u8, String> {
    let det = build_detector(&args.source)?;
    let mut input: Box<dyn Read> = match &args.file {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::fs::File::open(p).map_err(|e| format!("cannot open {}: {e}", p.display()))?),
    };
    let name = args
        .file
        .as_ref()
        .map_or_else(|| "stdin".to_string(), |p| p.display().to_string());
    let mut stdout = std::io::stdout().lock();
    let mut stream = det.stream_redactor();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = Vec::with_capacity(80 * 1024);
    let write = |out: &mut Vec<u8>, stdout: &mut std::io::StdoutLock<'_>| -> Result<bool, String> {
        if out.is_empty() {
            return Ok(true);
        }
        // A closed pipe (`sluice redact | head`) ends the job quietly.
        match stdout.write_all(out).and_then(|()| stdout.flush()) {
            Ok(()) => {
                out.clear();
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
            Err(e) => Err(format!("cannot write output: {e}")),
        }
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read {name}: {e}")),
        };
        stream.feed(&buf[..n], &mut out);
        if !write(&mut out, &mut stdout)? {
            return Ok(0);
        }
    }
    stream.finish(&mut out);
    write(&mut out, &mut stdout)?;
    Ok(0)
}

fn rules(args: RulesArgs) -> Result<u8, String> {
    let det = build_detector(&args.source)?;
    let mut stdout = std::io::stdout().lock();
    if args.check {
        let failures = det.check_rule_examples();
        let (ex, cex) = det.example_counts();
        for f in &failures {
            let _ = writeln!(stdout, "FAIL {f}");
        }
        let _ = writeln!(
            stdout,
            "{} rules, {ex} examples, {cex} counter-examples, {} failures",
            det.rules().len(),
            failures.len()
        );
        return Ok(u8::from(!failures.is_empty()));
    }
    for r in det.rules() {
        let _ = writeln!(
            stdout,
            "{}\t{}\t{}",
            r.id,
            r.provider.as_deref().unwrap_or("-"),
            r.description
        );
    }
    Ok(0)
}
