//! `sluice scan`: walk the inputs in parallel, scan each file, report.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_core::{Detector, Finding};

use crate::diff::Diff;
use crate::output::{self, Report, Reported};
use crate::{Format, ScanArgs, build_detector};

/// Lines carrying this marker are not reported by `scan` (redaction still masks them).
const ALLOW_MARKER: &[u8] = b"sluice:allow";
/// A file whose first bytes hold a NUL is binary and skipped.
const BINARY_SNIFF: usize = 8192;

#[derive(Default)]
struct Counters {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
    large: AtomicU64,
}

pub(crate) fn run(args: ScanArgs) -> Result<u8, String> {
    let started = Instant::now();
    // The threads one large input is scanned on (`--threads`, default one per core).
    let threads = args
        .threads
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let det = build_detector(&args.source)?;
    let counters = Arc::new(Counters::default());
    let done = Arc::new(AtomicBool::new(false));
    let progress = std::io::stderr().is_terminal().then(|| {
        let (c, d) = (counters.clone(), done.clone());
        std::thread::spawn(move || progress_loop(&c, &d, started))
    });

    let (mut findings, errors) = if let Some(base) = &args.diff {
        if args.paths.iter().any(|p| p.as_os_str() == "-") {
            return Err("--diff scans a git diff, not stdin".into());
        }
        scan_diff(&det, base, &args, &counters, threads)?
    } else {
        let paths = if args.paths.is_empty() {
            vec![PathBuf::from(".")]
        } else {
            args.paths.clone()
        };
        let (stdin, fs_paths): (Vec<&PathBuf>, Vec<&PathBuf>) = paths.iter().partition(|p| p.as_os_str() == "-");
        let mut found = if stdin.is_empty() {
            Vec::new()
        } else {
            scan_stdin(&det, &counters, args.show_secrets, threads)?
        };
        let (walked, errors) = scan_tree(&det, &fs_paths, &args, &counters, threads);
        found.extend(walked);
        (found, errors)
    };
    done.store(true, Ordering::Relaxed);
    if let Some(h) = progress {
        let _ = h.join();
    }

    findings.sort_by(|a, b| (&a.path, a.finding.start).cmp(&(&b.path, b.finding.start)));
    let report = Report {
        findings,
        files: counters.files.load(Ordering::Relaxed),
        bytes: counters.bytes.load(Ordering::Relaxed),
        skipped_binary: counters.binary.load(Ordering::Relaxed),
        skipped_large: counters.large.load(Ordering::Relaxed),
        errors: errors.len() as u64,
        seconds: started.elapsed().as_secs_f64(),
        rules: det.rules().len(),
    };
    write_report(&args, &report, &det)?;
    for e in &errors {
        let _ = writeln!(std::io::stderr(), "sluice: error: {e}");
    }
    Ok(if !errors.is_empty() {
        2
    } else {
        u8::from(!report.findings.is_empty())
    })
}

/// `--diff BASE`: the changed files, findings only on changed lines.
fn scan_diff(
    det: &Detector,
    base: &str,
    args: &ScanArgs,
    counters: &Counters,
    threads: usize,
) -> Result<(Vec<Reported>, Vec<String>), String> {
    let diff = Diff::load(base, &args.paths)?;
    let (mut found, mut errors) = (Vec::new(), Vec::new());
    for file in &diff.files {
        match diff.content(file) {
            Ok(data) => found.extend(
                scan_content(det, &file.path, &data, counters, args.show_secrets, threads)
                    .into_iter()
                    .filter(|r| file.touches(r.finding.line, r.end_line)),
            ),
            Err(e) => errors.push(e),
        }
    }
    Ok((found, errors))
}

/// `-`: standard input, read whole.
fn scan_stdin(det: &Detector, counters: &Counters, show: bool, threads: usize) -> Result<Vec<Reported>, String> {
    let mut data = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    counters.files.fetch_add(1, Ordering::Relaxed);
    counters.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    let found = scan_bytes(det, &data, threads);
    Ok(report(det, "-", &data, found, show))
}

/// Files and directories, walked in parallel with gitignore and `.sluiceignore` semantics.
fn scan_tree(
    det: &Detector,
    paths: &[&PathBuf],
    args: &ScanArgs,
    counters: &Arc<Counters>,
    threads: usize,
) -> (Vec<Reported>, Vec<String>) {
    let results: Arc<Mutex<Vec<Reported>>> = Arc::new(Mutex::new(Vec::new()));
    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let Some((first, rest)) = paths.split_first() else {
        return (Vec::new(), Vec::new());
    };
    let mut walk = ignore::WalkBuilder::new(first);
    for p in rest {
        walk.add(p);
    }
    walk.hidden(false)
        .parents(!args.no_ignore)
        .ignore(!args.no_ignore)
        .git_ignore(!args.no_ignore)
        .git_global(!args.no_ignore)
        .git_exclude(!args.no_ignore)
        .require_git(false)
        .threads(args.threads.unwrap_or(0))
        .filter_entry(|e| e.file_name() != ".git");
    if !args.no_ignore {
        walk.add_custom_ignore_filename(".sluiceignore");
    }
    for p in paths {
        if !p.exists() {
            errors
                .lock()
                .expect("no panics while locked")
                .push(format!("{}: no such file or directory", p.display()));
        }
    }
    walk.build_parallel().run(|| {
        let (results, errors, counters) = (results.clone(), errors.clone(), counters.clone());
        let max = args.max_file_size;
        let show = args.show_secrets;
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    errors.lock().expect("no panics while locked").push(e.to_string());
                    return ignore::WalkState::Continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return ignore::WalkState::Continue;
            }
            match scan_file(det, entry.path(), max, &counters, show, threads) {
                Ok(found) => results.lock().expect("no panics while locked").extend(found),
                Err(e) => errors.lock().expect("no panics while locked").push(e),
            }
            ignore::WalkState::Continue
        })
    });
    let found = std::mem::take(&mut *results.lock().expect("no panics while locked"));
    let errors = std::mem::take(&mut *errors.lock().expect("no panics while locked"));
    (found, errors)
}

/// Writes the report in the chosen format (a closed pipe is not an error).
fn write_report(args: &ScanArgs, report: &Report, det: &Detector) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    let written = match args.format {
        Format::Text => output::text(&mut stdout, report, args.show_secrets),
        Format::Json => output::json(&mut stdout, report, args.show_secrets),
        Format::Jsonl => output::jsonl(&mut stdout, report, args.show_secrets),
        Format::Sarif => output::sarif(&mut stdout, report, det),
    };
    written
        .and_then(|()| stdout.flush())
        .or_else(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| format!("cannot write output: {e}"))
}

fn scan_file(
    det: &Detector,
    path: &Path,
    max: u64,
    counters: &Counters,
    show: bool,
    threads: usize,
) -> Result<Vec<Reported>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?.len();
    if len > max {
        counters.large.fetch_add(1, Ordering::Relaxed);
        let _ = writeln!(
            std::io::stderr(),
            "sluice: skipped {} ({len} bytes > --max-file-size {max})",
            path.display()
        );
        return Ok(Vec::new());
    }
    if len >= CHUNKED_MIN {
        return scan_in_pieces(det, path, file.take(max + 1), counters, show, threads);
    }
    // One buffer per walker thread, reused from file to file (a tree of small files costs no
    // allocation per file); a buffer grown past 64 MiB by a large file is given back after it.
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|data| {
        data.clear();
        data.reserve(len as usize);
        file.take(max + 1)
            .read_to_end(data)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path.to_string_lossy();
        let name = name.strip_prefix("./").unwrap_or(&name);
        let found = scan_content(det, name, data, counters, show, threads);
        if data.capacity() > 64 << 20 {
            *data = Vec::new();
        }
        Ok(found)
    })
}

/// Files at least this large are read a piece at a time (`ChunkScanner`): memory stays about
/// a piece, whatever the file's size, and no page of a whole-file buffer is faulted in.
const CHUNKED_MIN: u64 = 16 << 20;
/// The piece read at a time.
const PIECE: usize = 8 << 20;

/// Scans a large file a piece at a time: the findings of `scan_content` on the whole file.
fn scan_in_pieces(
    det: &Detector,
    path: &Path,
    mut file: impl Read,
    counters: &Counters,
    show: bool,
    threads: usize,
) -> Result<Vec<Reported>, String> {
    let name = path.to_string_lossy();
    let name = name.strip_prefix("./").unwrap_or(&name);
    let mut scanner = det.chunk_scanner().threads(threads);
    let mut buf = vec![0u8; PIECE];
    let mut out = Vec::new();
    let mut first = true;
    let mut keep = |f: Finding, lines: sluice_core::FindingLines<'_>| {
        if memchr::memmem::find(lines.text, ALLOW_MARKER).is_some() {
            return;
        }
        out.push(reported(det, name, lines.text, lines.offset, f, show));
    };
    loop {
        // Fill the piece (a read may return less).
        let mut n = 0;
        while n < buf.len() {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        if first {
            first = false;
            if memchr::memchr(0, &buf[..n.min(BINARY_SNIFF)]).is_some() {
                counters.binary.fetch_add(1, Ordering::Relaxed);
                return Ok(Vec::new());
            }
            counters.files.fetch_add(1, Ordering::Relaxed);
        }
        counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        if n == 0 {
            break;
        }
        scanner.feed(&buf[..n], &mut keep);
    }
    scanner.finish(&mut keep);
    Ok(out)
}

/// Scans a file's content and counts it; binary content is counted as skipped instead.
fn scan_content(
    det: &Detector,
    name: &str,
    data: &[u8],
    counters: &Counters,
    show: bool,
    threads: usize,
) -> Vec<Reported> {
    if memchr::memchr(0, &data[..data.len().min(BINARY_SNIFF)]).is_some() {
        counters.binary.fetch_add(1, Ordering::Relaxed);
        return Vec::new();
    }
    counters.files.fetch_add(1, Ordering::Relaxed);
    counters.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    let found = scan_bytes(det, data, threads);
    report(det, name, data, found, show)
}

/// Inputs at least this large are scanned on several threads (`Detector::scan_parallel`): a
/// tree's walker keeps every core busy with small files, but one large file would hold one.
const PARALLEL_MIN: usize = 8 << 20;

/// Scans (on `threads` threads when `data` is large) and drops findings on lines marked
/// `sluice:allow`.
fn scan_bytes(det: &Detector, data: &[u8], threads: usize) -> Vec<Finding> {
    let mut found = if data.len() >= PARALLEL_MIN {
        det.scan_parallel(data, threads)
    } else {
        det.scan(data)
    };
    if memchr::memmem::find(data, ALLOW_MARKER).is_some() {
        found.retain(|f| {
            let ls = memchr::memrchr(b'\n', &data[..f.start]).map_or(0, |p| p + 1);
            let le = memchr::memchr(b'\n', &data[f.end..]).map_or(data.len(), |p| f.end + p);
            memchr::memmem::find(&data[ls..le], ALLOW_MARKER).is_none()
        });
    }
    found
}

fn report(det: &Detector, path: &str, data: &[u8], found: Vec<Finding>, show: bool) -> Vec<Reported> {
    found
        .into_iter()
        .map(|f| reported(det, path, data, 0, f, show))
        .collect()
}

/// Finding `f` as reported, from `text`, the input's bytes from absolute offset `offset` on
/// (holding the finding).
fn reported(det: &Detector, path: &str, text: &[u8], offset: usize, f: Finding, show: bool) -> Reported {
    let (start, end) = (f.start - offset, f.end - offset);
    let secret = &text[start..end];
    let (end_line, end_column) = output::line_col(text, end, f.line, start, f.column);
    Reported {
        path: path.to_string(),
        placeholder: det.placeholder(&f.rule, secret),
        secret: show.then(|| String::from_utf8_lossy(secret).into_owned()),
        end_line,
        end_column,
        finding: f,
    }
}

fn progress_loop(c: &Counters, done: &AtomicBool, started: Instant) {
    let mut shown = false;
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        if started.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let files = c.files.load(Ordering::Relaxed);
        let mb = c.bytes.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = write!(
            std::io::stderr(),
            "\rsluice: scanned {files} files, {mb:.1} MB, {:.1}s",
            started.elapsed().as_secs_f64()
        );
        shown = true;
    }
    if shown {
        let _ = writeln!(std::io::stderr());
    }
}
