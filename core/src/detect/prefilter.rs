//! The detector's first pass: a branch-free hash prefilter over every byte, and the verifier
//! that confirms a candidate position against the keywords sharing its prefix hash.

/// The first pass over every byte. A position can start a keyword only if its next bytes,
/// case-folded with `| 0x20` (which maps `A`–`Z` onto `a`–`z`, and a few symbols onto others:
/// harmless for a filter built with the same fold), pass a 16-bit hash table of the first three
/// bytes of every keyword, then a table of its first four bytes (or a second hash of three-byte
/// keywords). Candidates are confirmed by the [`Verifier`].
///
/// Why not Aho-Corasick: with ~400 case-insensitive keywords its DFA runs at ~330 MB/s on source
/// code (measured), because every byte is a transition in a large table. Here a position costs a
/// share of one 8-byte load, a multiply and one byte load from a 64 KiB table, and ~97% of the
/// positions of source code fail that test. (The keyword automaton is kept as the reference the
/// tests check this against.)
#[derive(Debug, Clone)]
pub(super) struct Prefilter {
    /// Hash of the first three bytes of every keyword of three bytes or more, one byte per
    /// entry: a byte load is cheaper than extracting a bit, and this is the test every
    /// position takes.
    tri: Box<[u8; 1 << 16]>,
    /// Hash of the first four bytes of every keyword of four bytes or more.
    four: Box<[u8; 1 << 16]>,
    /// Another hash of the three-byte keywords.
    three: Box<[u64; 1024]>,
    /// Exact two-byte keywords (user rules may have them; the built-in rules do not).
    two: Box<[u64; 1024]>,
    has_two: bool,
}

const FOLD: u32 = 0x2020_2020;

#[inline(always)]
fn h16(x: u32) -> usize {
    (x.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

#[inline(always)]
fn h16b(x: u32) -> usize {
    (x.wrapping_mul(0x85EB_CA6B).rotate_left(13).wrapping_mul(0xC2B2_AE35) >> 16) as usize
}

#[inline(always)]
fn test(t: &[u64; 1024], h: usize) -> bool {
    (t[(h >> 6) & 1023] >> (h & 63)) & 1 != 0
}

impl Prefilter {
    pub(super) fn new(keywords: &[String]) -> Prefilter {
        let mut p = Prefilter {
            tri: Box::new([0u8; 1 << 16]),
            four: Box::new([0u8; 1 << 16]),
            three: Box::new([0; 1024]),
            two: Box::new([0; 1024]),
            has_two: false,
        };
        let set = |t: &mut [u64; 1024], h: usize| t[h >> 6] |= 1 << (h & 63);
        for k in keywords {
            let k: Vec<u32> = k.bytes().map(|b| u32::from(b) | 0x20).collect();
            match k.len() {
                0 | 1 => {}
                2 => {
                    set(&mut p.two, (k[0] << 8 | k[1]) as usize);
                    p.has_two = true;
                }
                3 => {
                    p.tri[h16(k[0] << 16 | k[1] << 8 | k[2])] = 1;
                    set(&mut p.three, h16b(k[0] << 16 | k[1] << 8 | k[2]));
                }
                _ => {
                    p.tri[h16(k[0] << 16 | k[1] << 8 | k[2])] = 1;
                    p.four[h16(k[0] << 24 | k[1] << 16 | k[2] << 8 | k[3])] = 1;
                }
            }
        }
        p
    }

    /// The tests after the first (`tri` or `two`) has passed.
    #[inline(always)]
    pub(super) fn confirm(&self, w: u32) -> bool {
        self.four[h16(w) & 0xFFFF] != 0
            || test(&self.three, h16b(w >> 8))
            || (self.has_two && test(&self.two, (w >> 16) as usize))
    }

    #[inline(always)]
    pub(super) fn hit(&self, w: u32) -> bool {
        let t = w >> 8;
        (self.tri[h16(t) & 0xFFFF] != 0 && (self.four[h16(w) & 0xFFFF] != 0 || test(&self.three, h16b(t))))
            || (self.has_two && test(&self.two, (w >> 16) as usize))
    }

    /// Calls `f` with every position at or after `from` where a keyword may start.
    #[inline]
    pub(super) fn candidates(&self, hay: &[u8], from: usize, mut f: impl FnMut(usize, u32)) {
        let word = |q: usize| {
            let byte = |i: usize| hay.get(i).map_or(0u32, |&b| u32::from(b));
            (byte(q) << 24 | byte(q + 1) << 16 | byte(q + 2) << 8 | byte(q + 3)) | FOLD
        };
        let mut p = from;
        let (tri, has_two) = (&*self.tri, self.has_two);
        // Six positions per step from one 8-byte load, without branches; a step with a candidate
        // (a few percent of steps on source code) looks at its positions one by one. Zero
        // padding past the end is safe: no keyword holds NUL.
        while let Some(c) = hay.get(p..p + 8) {
            let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) | 0x2020_2020_2020_2020;
            let mut mask = 0u32;
            for j in 0..6 {
                let t = (w >> (40 - 8 * j)) as u32 & 0x00FF_FFFF;
                mask |= u32::from(tri[h16(t) & 0xFFFF]) << j;
            }
            if has_two {
                for j in 0..6 {
                    let t = (w >> (48 - 8 * j)) as usize & 0xFFFF;
                    mask |= u32::from(test(&self.two, t)) << j;
                }
            }
            while mask != 0 {
                let j = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let w4 = if j <= 4 {
                    (w >> (32 - 8 * j)) as u32
                } else {
                    word(p + j)
                };
                if self.confirm(w4) {
                    f(p + j, w4);
                }
            }
            p += 6;
        }
        while p < hay.len() {
            let w = word(p);
            if self.hit(w) {
                f(p, w);
            }
            p += 1;
        }
    }
}

/// Confirms a prefilter candidate: the keywords that can start at a position, found through the
/// same hash of their first four (or three, or two) bytes, longest first, compared ASCII-case-
/// insensitively. It answers what an anchored leftmost-longest Aho-Corasick search would (a test
/// checks this) without the automaton's per-call setup, which showed at ~7% of a scan.
#[derive(Debug, Clone)]
pub(super) struct Verifier {
    keywords: Vec<Box<[u8]>>,
    by4: Buckets,
    by3: Buckets,
    by2: Buckets,
}

/// Keyword indices in 2^16 buckets, stored flat (bucket `b` is `items[start[b]..start[b + 1]]`):
/// two allocations instead of 65,536 small ones, zeroed memory the kernel hands out lazily, so
/// a short-lived process (an agent hook) does not spend its time building the table.
#[derive(Debug, Clone)]
struct Buckets {
    start: Vec<u32>,
    items: Vec<u32>,
}

impl Buckets {
    fn new(entries: &[(usize, u32)]) -> Buckets {
        let mut start = vec![0u32; (1 << 16) + 1];
        for &(b, _) in entries {
            start[b + 1] += 1;
        }
        for b in 0..1 << 16 {
            start[b + 1] += start[b];
        }
        let mut fill = start.clone();
        let mut items = vec![0u32; entries.len()];
        for &(b, i) in entries {
            items[fill[b] as usize] = i;
            fill[b] += 1;
        }
        Buckets { start, items }
    }

    #[inline]
    fn get(&self, b: usize) -> &[u32] {
        &self.items[self.start[b] as usize..self.start[b + 1] as usize]
    }
}

impl Verifier {
    pub(super) fn new(keywords: &[String]) -> Verifier {
        let fold = |b: u8| u32::from(b) | 0x20;
        let (mut by4, mut by3, mut by2) = (Vec::new(), Vec::new(), Vec::new());
        // Longest first within a bucket: entries are added in that order.
        let mut order: Vec<usize> = (0..keywords.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(keywords[i].len()));
        for i in order {
            let k = keywords[i].as_bytes();
            match k.len() {
                0 | 1 => {}
                2 => by2.push(((fold(k[0]) << 8 | fold(k[1])) as usize, i as u32)),
                3 => by3.push((h16(fold(k[0]) << 16 | fold(k[1]) << 8 | fold(k[2])), i as u32)),
                _ => by4.push((
                    h16(fold(k[0]) << 24 | fold(k[1]) << 16 | fold(k[2]) << 8 | fold(k[3])),
                    i as u32,
                )),
            }
        }
        Verifier {
            keywords: keywords
                .iter()
                .map(|k| k.as_bytes().to_vec().into_boxed_slice())
                .collect(),
            by4: Buckets::new(&by4),
            by3: Buckets::new(&by3),
            by2: Buckets::new(&by2),
        }
    }

    /// The longest keyword at `p` (its index and length), given the folded bytes `w` there.
    #[inline]
    pub(super) fn longest(&self, hay: &[u8], p: usize, w: u32) -> Option<(u32, usize)> {
        let rest = &hay[p..];
        let is = |i: u32| {
            let k = &self.keywords[i as usize];
            rest.len() >= k.len() && rest[..k.len()].eq_ignore_ascii_case(k)
        };
        let found = self
            .by4
            .get(h16(w))
            .iter()
            .chain(self.by3.get(h16(w >> 8)))
            .chain(self.by2.get((w >> 16) as usize))
            .copied()
            .find(|&i| is(i));
        found.map(|i| (i, self.keywords[i as usize].len()))
    }
}
