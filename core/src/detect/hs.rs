//! The keyword pass on Hyperscan (cargo feature `hyperscan`, against the system library).
//!
//! One block-mode database holds every keyword as a case-insensitive literal; a scan reports
//! each keyword occurrence by its end, its start is the end less the keyword's length, and at
//! each start the longest keyword wins: the same hits as the pure-Rust prefilter and verifier
//! (the tests run the same reference against whichever pass the detector uses).

use std::sync::Mutex;

use hyperscan::PatternFlags as Flags;
use hyperscan::prelude::{BlockDatabase, Builder, Matching, Pattern, Patterns, Scratch};

use super::detector::Hit;
use crate::{Error, ErrorKind};

/// The compiled keyword database and a pool of scratch spaces (one per concurrent scan).
pub(crate) struct HsKeywords {
    db: BlockDatabase,
    scratch: Mutex<Vec<Scratch>>,
    /// Each keyword's length, by its id.
    lens: Vec<usize>,
}

impl std::fmt::Debug for HsKeywords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsKeywords")
            .field("keywords", &self.lens.len())
            .finish()
    }
}

/// A keyword as a Hyperscan expression matching exactly its bytes.
fn literal(k: &str) -> String {
    let mut e = String::with_capacity(k.len() * 2);
    for b in k.bytes() {
        if b.is_ascii_alphanumeric() {
            e.push(char::from(b));
        } else {
            e.push_str(&format!("\\x{b:02x}"));
        }
    }
    e
}

impl HsKeywords {
    /// The database of `keywords` (lowercase). Keywords shorter than two bytes are left out, as
    /// the pure-Rust prefilter leaves them out.
    pub(crate) fn new(keywords: &[String]) -> Result<HsKeywords, Error> {
        let patterns: Patterns = keywords
            .iter()
            .enumerate()
            .filter(|(_, k)| k.len() >= 2)
            .map(|(i, k)| Pattern {
                flags: Flags::CASELESS,
                id: Some(i),
                ..Pattern::new(literal(k)).unwrap_or_else(|_| unreachable!("Pattern::new does not fail"))
            })
            .collect();
        let fail =
            |e: hyperscan::Error| Error::new(ErrorKind::Backend, format!("Hyperscan: keywords do not compile: {e}"));
        if patterns.0.is_empty() {
            // Hyperscan refuses an empty database (the detector does not ask for one).
            return Err(Error::new(
                ErrorKind::Backend,
                "Hyperscan: no keyword of two bytes or more",
            ));
        }
        let db: BlockDatabase = patterns.build().map_err(fail)?;
        let first = db.alloc_scratch().map_err(fail)?;
        Ok(HsKeywords {
            db,
            scratch: Mutex::new(vec![first]),
            lens: keywords.iter().map(String::len).collect(),
        })
    }

    /// Appends to `out`, in order, the keyword hits of `hay[begin..]` that end after `from`:
    /// at each start, the longest keyword.
    pub(crate) fn hits(&self, hay: &[u8], begin: usize, from: usize, out: &mut Vec<Hit>) {
        let scratch = self
            .scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop();
        let scratch = match scratch {
            Some(s) => s,
            None => match self.db.alloc_scratch() {
                Ok(s) => s,
                // Out of memory for a scratch space: nothing sensible is left to do.
                Err(e) => panic!("Hyperscan: cannot allocate scratch space: {e}"),
            },
        };
        let first = out.len();
        let lens = &self.lens;
        let r = self
            .db
            .scan(&hay[begin..], &scratch, |id: u32, _from: u64, to: u64, _flags: u32| {
                let end = begin + to as usize;
                let len = lens[id as usize];
                if end > from {
                    out.push(Hit {
                        start: end - len,
                        end,
                        keyword: id,
                    });
                }
                Matching::Continue
            });
        self.scratch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(scratch);
        if let Err(e) = r {
            // A block scan fails only on bad arguments or a scratch space from another
            // database: a bug, not input.
            panic!("Hyperscan: scan failed: {e}");
        }
        // Reports come by end; hits are wanted by start, the longest at each.
        let new = &mut out[first..];
        new.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut keep = first;
        for i in first..out.len() {
            if keep == first || out[keep - 1].start != out[i].start {
                out[keep] = out[i];
                keep += 1;
            }
        }
        out.truncate(keep);
    }
}
