//! Detection over an input that arrives in pieces, with bounded memory: what
//! [`StreamRedactor`](crate::StreamRedactor) and [`ChunkScanner`] share.
//!
//! [`StreamCore`] holds the bytes not yet final plus the context the detector needs, runs the
//! keyword pass over what arrived, lets [`Detector::detect`] say up to where its findings are
//! final (the commit point), reads the completed lines for tables ([`TableStream`]), and
//! releases, in order, the findings one pass over the whole input would give: the detector's,
//! and the credential cells of tables that no finding overlaps (as [`Detector::scan`] joins them).

use super::detector::{Detector, Finding, Hit, LineCount, Span};
use super::tables::TableStream;

/// The streaming state; offsets in `Span`s it returns are absolute (from the input's start).
#[derive(Debug, Default)]
pub(crate) struct StreamCore {
    /// Context (already released) followed by pending bytes.
    pub(crate) buf: Vec<u8>,
    /// Absolute offset of `buf[0]`.
    pub(crate) base: usize,
    /// Keyword hits in `buf`, in `buf` offsets.
    hits: Vec<Hit>,
    /// Offset in `buf` up to which keywords have been searched.
    scanned: usize,
    /// Offset in `buf` before which the detector's findings are final.
    committed: usize,
    /// The detector's final findings, not released yet (absolute).
    pending: Vec<Span>,
    /// Released findings a table cell found later may still overlap (absolute).
    recent: Vec<(usize, usize)>,
    tables: TableStream,
    /// Table cells found, not released yet (absolute).
    cells: Vec<(usize, usize)>,
    /// Absolute offset up to which everything is released (and, for a redactor, written).
    pub(crate) released: usize,
}

/// What a step may release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Up to wherever the findings are final (a redactor: output as early as possible).
    Final,
    /// Only findings whose lines have all arrived (a scanner reports the lines around each).
    WholeLines,
}

impl StreamCore {
    /// Adds `chunk` to the pending bytes.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes received but not yet released.
    pub(crate) fn pending(&self) -> usize {
        self.base + self.buf.len() - self.released
    }

    /// Runs the detector over what arrived (its keyword pass on `threads` threads), and
    /// returns the findings now final, in order (absolute offsets); [`released`](Self::released)
    /// moves past them. At `eof` everything is released.
    pub(crate) fn step(&mut self, det: &Detector, eof: bool, threads: usize, release: Release) -> Vec<Span> {
        if threads > 1 && self.buf.len() - self.scanned >= super::detector::PARALLEL_HITS {
            det.collect_hits_parallel(&self.buf, self.scanned, threads, &mut self.hits);
        } else {
            det.collect_hits(&self.buf, self.scanned, &mut self.hits);
        }
        self.scanned = self.buf.len();
        let (spans, commit) = det.detect(&self.buf, &self.hits, self.committed, eof);
        self.committed = commit;
        let base = self.base;
        self.pending.extend(spans.into_iter().map(|s| Span {
            start: s.start + base,
            end: s.end + base,
            ..s
        }));
        self.tables.step(&self.buf, base, eof, &mut self.cells);
        let committed = base + commit;

        // Where releasing stops: findings after it may not be final yet.
        let mut until = committed;
        if self.tables.is_open() {
            // The line at `done` may be a row of the open table.
            until = until.min(self.tables.done());
        }
        if let Some(c) = self.cells.iter().find(|c| c.1 > committed) {
            until = until.min(c.0);
        }
        if release == Release::WholeLines && !eof {
            // Only whole lines: a finding whose last line has not ended waits for it.
            let whole = self.tables.done();
            until = until.min(whole);
            if let Some(s) = self.pending.iter().find(|s| s.end > whole) {
                until = until.min(s.start);
            }
        }

        // Release the findings and the cells no finding overlaps that start before `until`,
        // merged in order.
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        // Released items never overlap (the detector resolves its own; a cell under a finding
        // is dropped). As a guard, an item reaching back before the end of the last one is
        // released from there: its bytes are still masked, and a caller writing items in order
        // never goes backwards.
        let mut written = self.released;
        let mut release_one = |out: &mut Vec<Span>, s: Span| {
            let start = s.start.max(written);
            if start < s.end {
                out.push(Span { start, ..s });
                written = s.end;
            }
        };
        loop {
            let span = self.pending.get(i).filter(|s| s.start < until);
            let cell = self.cells.get(j).filter(|c| c.0 < until);
            let span_first = match (span, cell) {
                (Some(s), Some(c)) => s.start <= c.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            if let (true, Some(&s)) = (span_first, span) {
                self.recent.push((s.start, s.end));
                release_one(&mut out, s);
                i += 1;
            } else if let Some(&(a, b)) = cell {
                let overlaps = |&(s, e): &(usize, usize)| s < b && a < e;
                let covered = self.recent.iter().any(overlaps)
                    || self.pending.iter().map(|s| (s.start, s.end)).any(|r| overlaps(&r));
                if !covered {
                    let cell = Span {
                        id: det.table_id,
                        start: a,
                        end: b,
                        context: b - a,
                    };
                    release_one(&mut out, cell);
                }
                j += 1;
            }
        }
        self.pending.drain(..i);
        self.cells.drain(..j);
        let end = out.iter().map(|s| s.end).max().unwrap_or(0);
        self.released = self.released.max(until.min(base + self.buf.len())).max(end);
        // Later cells start at or after the first unreleased cell or the table pass's frontier.
        let frontier = self.cells.first().map_or(self.tables.done(), |c| c.0);
        self.recent.retain(|&(_, e)| e > frontier);
        out
    }

    /// Drops bytes before `keep` (absolute) when that is worth a copy, and never what the
    /// detector, the table pass or the unreleased bytes still need.
    pub(crate) fn trim(&mut self, det: &Detector, keep: usize) {
        let done = self.tables.done();
        // The table pass needs the line before `done` (a header whose rule line comes next).
        let table_keep = if done > self.base {
            super::tables::line_start(&self.buf, done - self.base - 1) + self.base
        } else {
            self.base
        };
        let keep = keep
            .min((self.base + self.committed).saturating_sub(det.context))
            .min(self.released)
            .min(table_keep);
        let drop = keep.saturating_sub(self.base);
        if drop > 0 && (drop >= 64 * 1024 || drop * 2 >= self.buf.len()) {
            self.buf.drain(..drop);
            self.base += drop;
            self.committed -= drop;
            self.scanned -= drop;
            self.hits.retain_mut(|h| {
                if h.start < drop {
                    return false;
                }
                h.start -= drop;
                h.end -= drop;
                true
            });
        }
    }
}

/// Scans an input that arrives in pieces (a large file read a bounded piece at a time) with
/// bounded memory: the findings of [`Detector::scan`] of the whole input, in the same order,
/// each handed over with the whole lines it is on as soon as it is final.
///
/// Memory held: the detector's context, the longest line (a finding's lines are handed over
/// whole), and the current row of a table being read.
///
/// ```
/// # fn main() -> Result<(), sluice_core::Error> {
/// let det = sluice_core::Detector::builtin()?;
/// let text = b"one\nkey = \"glpat-Xa3kLm9Qr7Tz2Wv5Yb8N\"\ntwo\n"; // sluice:allow
/// let mut found = Vec::new();
/// let mut scanner = det.chunk_scanner();
/// for piece in text.chunks(7) {
///     scanner.feed(piece, |f, lines| found.push((f.line, lines.text.to_vec())));
/// }
/// scanner.finish(|f, lines| found.push((f.line, lines.text.to_vec())));
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].0, 2);
/// assert!(found[0].1.starts_with(b"key = "));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChunkScanner<'d> {
    det: &'d Detector,
    core: StreamCore,
    threads: usize,
    lines: LineCount,
}

/// The whole lines a finding is on.
#[derive(Debug, Clone, Copy)]
pub struct FindingLines<'a> {
    /// From the start of the finding's first line to the end of its last (without the newline).
    pub text: &'a [u8],
    /// Absolute offset of `text` in the input.
    pub offset: usize,
}

impl Detector {
    /// A scanner for an input that arrives in pieces. See [`ChunkScanner`].
    pub fn chunk_scanner(&self) -> ChunkScanner<'_> {
        ChunkScanner {
            det: self,
            core: StreamCore::default(),
            threads: 1,
            lines: LineCount::default(),
        }
    }
}

impl ChunkScanner<'_> {
    /// Runs the keyword pass of each large piece on up to `threads` threads (default 1).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Feeds the next piece; calls `found` with each finding now final, in order.
    pub fn feed(&mut self, chunk: &[u8], found: impl FnMut(Finding, FindingLines<'_>)) {
        if chunk.is_empty() {
            return;
        }
        self.core.push(chunk);
        self.step(false, found);
    }

    /// Ends the input; calls `found` with the findings still held.
    pub fn finish(&mut self, found: impl FnMut(Finding, FindingLines<'_>)) {
        self.step(true, found);
    }

    /// Bytes held now (received and not yet final, and the context kept before them).
    pub fn held(&self) -> usize {
        self.core.buf.len()
    }

    fn step(&mut self, eof: bool, mut found: impl FnMut(Finding, FindingLines<'_>)) {
        let spans = self.core.step(self.det, eof, self.threads, Release::WholeLines);
        let (buf, base) = (&self.core.buf, self.core.base);
        for s in spans {
            let finding = self.det.finding(&s, buf, base, &mut self.lines);
            let from = s.end - base;
            let end = memchr::memchr(b'\n', &buf[from..]).map_or(buf.len(), |p| from + p);
            let lines = FindingLines {
                text: &buf[self.lines.start - base..end],
                offset: self.lines.start,
            };
            found(finding, lines);
        }
        self.lines.advance(buf, base, self.core.released);
        let keep = self.lines.start;
        self.core.trim(self.det, keep);
    }
}
