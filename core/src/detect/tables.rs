//! Tabular text: the header row names the columns. In `psql` output (aligned or `-A`), `mysql`
//! tables, CSV and TSV with a header row, a value in a column named like a credential
//! ([`crate::credential_column`]) that [looks like one](crate::looks_like_credential) is a
//! finding, even when no rule knows its format.
//!
//! A header is the first line of the input or the line before a rule line (`----+----`,
//! `+----+`), so CSV and TSV files are read by their first line. Only whole inputs are read this
//! way (`scan`, `redact`): a stream is masked line by line and cannot know the header of a table
//! that started before its window. Protocol sessions know the column names from the wire instead.

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
        let mut candidates = vec![0usize];
        // Rule lines hold `-+-` or `+--`: both hold `+-`, found in one pass.
        for p in memchr::memmem::find_iter(hay, b"+-") {
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
        let mut out = Vec::new();
        let mut next_line = 0; // lines before this were read already (as part of a table)
        for start in candidates {
            if start < next_line && start != 0 {
                continue;
            }
            let end = line_end(hay, start);
            if let Some(header) = Header::parse(&hay[start..end]) {
                next_line = self.rows(hay, end, &header, &mut out);
            }
        }
        out
    }

    /// Reads the rows after a header that ends at `at`; returns where the table ends.
    fn rows(&self, hay: &[u8], mut at: usize, header: &Header, out: &mut Vec<(usize, usize)>) -> usize {
        let mut rows = 0;
        while at < hay.len() {
            let line_start = at + 1;
            let end = line_end(hay, line_start);
            let line = &hay[line_start..end];
            at = end;
            if is_rule_line(line) {
                continue;
            }
            let Some(cells) = header.split(line) else {
                return line_start;
            };
            rows += 1;
            for &c in &header.credential {
                let (a, b) = cells[c];
                if looks_like_credential(&line[a..b]) {
                    out.push((line_start + a, line_start + b));
                }
            }
            if rows > 1_000_000 {
                break;
            }
        }
        at
    }
}

fn line_start(hay: &[u8], at: usize) -> usize {
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
