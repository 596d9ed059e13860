//! Tabular text: the header row names the columns. In `psql` output (aligned or `-A`), `mysql`
//! tables, CSV and TSV with a header row, a value in a column named like a credential
//! ([`crate::credential_column`]) that [looks like one](crate::looks_like_credential) is a
//! finding, even when no rule knows its format.
//!
//! A header is the first line of the input or the line before a rule line (`----+----`,
//! `+----+`), so CSV and TSV files are read by their first line. Whole inputs (`scan`, `redact`)
//! and streams (`StreamRedactor`, `ChunkScanner`) are read the same way: a stream's lines are
//! read as they complete ([`TableStream`]), the header of an open table kept, so a stream finds
//! the cells one pass over the whole input finds. (A stream cannot know the header of a table
//! that started before the stream did.) Protocol sessions know the column names from the wire.

use crate::{credential_column, looks_like_credential};

/// Finds tables: a header row is the first line of the input (CSV, TSV, `psql -A`) or the line
/// just before a rule line (`----+----` of `psql`, `+----+` of `mysql`). Finding those costs a
/// substring search, not a pass over every line.
#[derive(Debug, Default)]
pub(crate) struct Tables;

impl Tables {
    pub(crate) fn new() -> Tables {
        Tables
    }

    /// The byte ranges of credential values in the tables of `hay`.
    pub(crate) fn credential_cells(&self, hay: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        TableStream::default().step(hay, 0, true, &mut out);
        out
    }
}

/// The most rows read under one header.
const MAX_ROWS: usize = 1_000_000;

/// A longer line is not a row: it ends a table. (A stream can tell as soon as that many bytes
/// of the line have come, so it never holds more of a row than this.)
pub(crate) const MAX_ROW: usize = 1 << 20;

/// The table pass over an input that arrives in pieces: each [`step`](TableStream::step) reads
/// the lines completed since the last, keeping what a table open across steps needs (its
/// header and row count), so the cells found over all steps are those of one pass over the
/// whole input. Offsets are absolute (from the start of the input).
#[derive(Debug, Default)]
pub(crate) struct TableStream {
    /// Lines starting before this were read.
    done: usize,
    /// Where the last table ended: candidate headers before it were rows of that table.
    next_line: usize,
    /// A table whose rows may go on past `done`: its header and rows so far.
    open: Option<(Header, usize)>,
}

impl TableStream {
    /// Lines starting before this offset were read.
    pub(crate) fn done(&self) -> usize {
        self.done
    }

    /// Whether a table's rows may go on at [`done`](TableStream::done) (so the line there may
    /// hold cells).
    pub(crate) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Reads the complete lines of `hay` (which starts at absolute offset `base` and holds the
    /// line before `done`, if any) from `done` on, or all of it at `eof`; appends the cells
    /// found, in order.
    pub(crate) fn step(&mut self, hay: &[u8], base: usize, eof: bool, out: &mut Vec<(usize, usize)>) {
        let from = self.done - base;
        let limit = if eof {
            hay.len()
        } else {
            memchr::memrchr(b'\n', &hay[from..]).map_or(from, |p| from + p + 1)
        };
        if limit == from && !eof {
            self.close_if_too_long(hay, base, limit);
            return;
        }
        let mut next_line = self.next_line.saturating_sub(base);
        if let Some((header, mut rows)) = self.open.take() {
            match read_rows(hay, from, limit, eof, &header, &mut rows, base, out) {
                Some(end) => next_line = end,
                None => {
                    self.open = Some((header, rows));
                    self.done = base + limit;
                    self.close_if_too_long(hay, base, limit);
                    return;
                }
            }
        }
        // Candidate headers: the input's first line, and the line before each rule line.
        let mut candidates = Vec::new();
        if base + from == 0 {
            candidates.push(0);
        }
        // Rule lines hold `-+-` or `+--`: both hold `+-`, found in one pass.
        for p in memchr::memmem::find_iter(&hay[from..limit], b"+-").map(|p| from + p) {
            let crossing = (p > 0 && hay[p - 1] == b'-') || hay.get(p + 2) == Some(&b'-');
            if !crossing {
                continue;
            }
            let rule_start = line_start(hay, p);
            if rule_start > 0
                && candidates.last() != Some(&line_start(hay, rule_start - 1))
                && is_rule_line(&hay[rule_start..line_end(hay, rule_start)])
            {
                candidates.push(line_start(hay, rule_start - 1));
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        for start in candidates {
            // A row of a table read already. (The first line, a candidate of its own, may come
            // again in a later step through the rule line after it: it is read once.)
            if start < next_line {
                continue;
            }
            let end = line_end(hay, start);
            if let Some(header) = Header::parse(&hay[start..end]) {
                let mut rows = 0;
                match read_rows(hay, end + 1, limit, eof, &header, &mut rows, base, out) {
                    Some(e) => next_line = e,
                    None => {
                        self.open = Some((header, rows));
                        break;
                    }
                }
            }
        }
        self.next_line = base + next_line;
        self.done = base + limit;
        self.close_if_too_long(hay, base, limit);
    }

    /// Ends the open table when the line arriving at `limit` is already too long to be a row.
    fn close_if_too_long(&mut self, hay: &[u8], base: usize, limit: usize) {
        if self.open.is_some() && hay.len() - limit > MAX_ROW {
            self.open = None;
            self.next_line = base + limit;
        }
    }
}

/// Reads the rows of a table from the line starting at `start` up to `limit` (all of `hay` at
/// `eof`). Returns where the table ends (the first line that is not a row, or the end of the
/// last row read when there were too many), or `None` when its rows may go on past `limit`.
#[allow(clippy::too_many_arguments)]
fn read_rows(
    hay: &[u8],
    mut line_start: usize,
    limit: usize,
    eof: bool,
    header: &Header,
    rows: &mut usize,
    base: usize,
    out: &mut Vec<(usize, usize)>,
) -> Option<usize> {
    // At the end of the input an empty last line ends the table as any other non-row would;
    // before it, the line at `limit` has not arrived yet.
    while line_start < limit || (eof && line_start == limit && limit > 0 && hay[limit - 1] == b'\n') {
        let end = line_end(hay, line_start);
        let line = &hay[line_start..end];
        if line.len() > MAX_ROW {
            return Some(line_start);
        }
        if !is_rule_line(line) {
            let Some(cells) = header.split(line) else {
                return Some(line_start);
            };
            *rows += 1;
            for &c in &header.credential {
                let (a, b) = cells[c];
                if looks_like_credential(&line[a..b]) {
                    out.push((base + line_start + a, base + line_start + b));
                }
            }
            if *rows > MAX_ROWS {
                return Some(end);
            }
        }
        line_start = end + 1;
    }
    if eof { Some(limit) } else { None }
}

pub(crate) fn line_start(hay: &[u8], at: usize) -> usize {
    memchr::memrchr(b'\n', &hay[..at.min(hay.len())]).map_or(0, |p| p + 1)
}

fn line_end(hay: &[u8], from: usize) -> usize {
    memchr::memchr(b'\n', &hay[from.min(hay.len())..]).map_or(hay.len(), |p| from + p)
}

/// A separator between header and rows: `----+----`, `+----+----+`, `|---|---|`.
fn is_rule_line(line: &[u8]) -> bool {
    let l = line.trim_ascii();
    !l.is_empty() && l.contains(&b'-') && l.iter().all(|b| matches!(b, b'-' | b'+' | b'|' | b'=' | b':' | b' '))
}

/// A header row: its delimiter, whether it is boxed (`| a | b |`), its cell count, and which
/// cells name credentials.
#[derive(Debug)]
struct Header {
    delim: u8,
    boxed: bool,
    cells: usize,
    credential: Vec<usize>,
}

impl Header {
    fn parse(line: &[u8]) -> Option<Header> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for delim in [b'|', b'\t', b','] {
            let t = line.trim_ascii();
            let boxed = delim == b'|' && t.starts_with(b"|") && t.ends_with(b"|") && t.len() > 1;
            let probe = Header {
                delim,
                boxed,
                cells: 0,
                credential: Vec::new(),
            };
            let cells = probe.cells_of(line);
            if cells.len() < 2 {
                continue;
            }
            let names: Vec<&[u8]> = cells.iter().map(|&(a, b)| &line[a..b]).collect();
            if !names.iter().all(|n| is_column_name(n)) {
                continue;
            }
            let credential: Vec<usize> = (0..names.len()).filter(|&i| credential_column(names[i])).collect();
            if credential.is_empty() {
                return None;
            }
            return Some(Header {
                cells: cells.len(),
                credential,
                ..probe
            });
        }
        None
    }

    /// The cells of a row (trimmed, quotes stripped) when it has as many as the header.
    fn split(&self, line: &[u8]) -> Option<Vec<(usize, usize)>> {
        let cells = self.cells_of(line);
        (cells.len() == self.cells).then_some(cells)
    }

    fn cells_of(&self, line: &[u8]) -> Vec<(usize, usize)> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (mut from, mut to) = (0, line.len());
        if self.boxed {
            let lead = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(0);
            let trail = line.iter().rposition(|b| !b.is_ascii_whitespace()).unwrap_or(0);
            if line.get(lead) != Some(&b'|') || line.get(trail) != Some(&b'|') || trail <= lead {
                return Vec::new();
            }
            from = lead + 1;
            to = trail;
        }
        let mut out = Vec::new();
        let mut start = from;
        for i in from..=to {
            if i == to || line[i] == self.delim {
                out.push(trim_cell(line, start, i));
                start = i + 1;
            }
        }
        out
    }
}

/// A cell's range without surrounding blanks and quotes.
fn trim_cell(line: &[u8], mut a: usize, mut b: usize) -> (usize, usize) {
    while a < b && line[a].is_ascii_whitespace() {
        a += 1;
    }
    while b > a && line[b - 1].is_ascii_whitespace() {
        b -= 1;
    }
    if b >= a + 2 && matches!(line[a], b'"' | b'\'') && line[b - 1] == line[a] {
        a += 1;
        b -= 1;
    }
    (a, b)
}

/// A column name: a short identifier (letters, digits, `_`, `-`, `.`, inner spaces).
fn is_column_name(n: &[u8]) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && (n[0].is_ascii_alphabetic() || n[0] == b'_')
        && n.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(text: &str) -> Vec<String> {
        let t = Tables::new();
        t.credential_cells(text.as_bytes())
            .into_iter()
            .map(|(a, b)| text[a..b].to_string())
            .collect()
    }

    #[test]
    fn psql_mysql_csv_tsv() {
        let psql = " id | name  |   password\n----+-------+--------------\n  1 | alice | Xk29!pLq7#vv\n  2 | bob   | hunter2\n(2 rows)\n";
        assert_eq!(cells(psql), ["Xk29!pLq7#vv", "hunter2"]);
        let mysql = "+----+-----------------+\n| id | api_key         |\n+----+-----------------+\n|  1 | q8Fz0LmWv3XrT1 |\n+----+-----------------+\n";
        assert_eq!(cells(mysql), ["q8Fz0LmWv3XrT1"]);
        let csv = "user,token,note\nann,\"tk-9fQ2xLw0PzR7\",first\nben,null,second\n";
        assert_eq!(cells(csv), ["tk-9fQ2xLw0PzR7"]);
        let tsv = "name\tsecret\nx\tZ9x8C7v6B5n4\n";
        assert_eq!(cells(tsv), ["Z9x8C7v6B5n4"]);
        let aligned_a = "id|password\n1|Pq7#Lm2!Zx\n";
        assert_eq!(cells(aligned_a), ["Pq7#Lm2!Zx"]);
    }

    #[test]
    fn prose_and_code_are_not_tables() {
        assert!(cells("let token = get_token(a, b);\nlet x = f(token, y);\n").is_empty());
        assert!(cells("The password, token and key are rotated.\nSee docs, page 3, for more.\n").is_empty());
        // A header without credential columns.
        assert!(cells("id,name\n1,Xk29!pLq7#vv\n").is_empty());
        // Rows end where the shape changes.
        assert_eq!(
            cells("id,password\n1,Xk29!pLq7#vv\nsome prose, with commas, here\n2,Zz9!Qq8#Ww\n"),
            ["Xk29!pLq7#vv"]
        );
    }
}
