//! Test helpers for bounded random inputs: a seeded generator and a byte
//! mutator, so each random-input test is the same every run (a fixed seed
//! and a fixed number of cases, seconds not minutes).

/// xorshift64: small, fast, and reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that break a parser: structural characters, line ends, UTF-8
/// fragments, quotes and digits.
const NASTY: &[&[u8]] = &[
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b",",
    b"0",
    b"-1",
    b"1e999",
    b"null",
    b"\xe6",
    b"\xe6\x97",
    b"\xff",
    b"\0",
    b"data: ",
    b"event: ",
    b"id: ",
];

/// A copy of `seed` with a few random edits: bytes cut, repeated,
/// replaced, or nasty fragments inserted.
pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            1 => {
                let end = (at + rng.below(16)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(
                    at..at,
                    piece
                        .iter()
                        .cycle()
                        .take(piece.len() * rng.below(4))
                        .copied(),
                );
            }
            2 if at < out.len() => out[at] = rng.next() as u8,
            _ => {
                let piece = NASTY[rng.below(NASTY.len())];
                out.splice(at..at, piece.iter().copied());
            }
        }
    }
    out
}

/// Random bytes, `len` at most.
pub fn noise(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..rng.below(len + 1)).map(|_| rng.next() as u8).collect()
}
