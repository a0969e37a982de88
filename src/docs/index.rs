//! The in-memory search index over every source's snapshot: repositories and
//! documents in name/path order, heading-aware sections, and two inverted
//! indexes scored with BM25 (section text, and per document its title and
//! path). An index is immutable once built; the provider builds a new one
//! aside and swaps it in.
//!
//! Document text is not copied: the index keeps the snapshots (`Arc`) and
//! refers to sections by byte ranges. Snippets and JSON are not made here.

use super::markdown::{self, readme_description};
use super::source::{DocFile, RepoSnapshot};
use super::tokenize::tokenize;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

/// BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B_SECTION: f32 = 0.75;
/// Titles and paths are short; their length matters less.
const B_FIELDS: f32 = 0.5;
/// A heading word counts as this many body words.
const HEADING_WEIGHT: usize = 3;
/// A title word counts as this many path words in the document field.
const TITLE_WEIGHT: usize = 2;
/// How much the title/path score adds to the best section's score.
const FIELDS_BOOST: f32 = 1.0;
/// Length of repository descriptions taken from a README.
const DESCRIPTION_CHARS: usize = 160;

/// FxHash: terms are short and not attacker-chosen in a way that matters for
/// an index rebuilt from local files, and SipHash doubles the build time.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(v))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

pub struct Repo {
    pub name: String,
    pub description: Option<String>,
    /// Document ids, in path order.
    pub docs: Vec<u32>,
}

struct Doc {
    source: u32,
    repo_in_source: u32,
    file: u32,
    repo: u32,
    title: Option<String>,
    first_section: u32,
    /// Multiplier on the final score, below 1 for test fixtures.
    prior: f32,
}

/// Test fixtures and end-to-end test folders hold many small READMEs that
/// repeat product words but rarely answer a question about the product.
const TEST_PRIOR: f32 = 0.7;

fn path_prior(path: &str) -> f32 {
    let is_test = path.split('/').rev().skip(1).any(|seg| {
        matches!(seg, "test" | "tests" | "testdata" | "e2e" | "testbed")
            || seg.starts_with("e2e-")
            || seg.ends_with("-tests")
    });
    if is_test { TEST_PRIOR } else { 1.0 }
}

struct Section {
    doc: u32,
    repo: u32,
    /// Byte range of the heading; equal bounds when there is none.
    heading: (u32, u32),
    body: (u32, u32),
    /// Number of words (heading and body), for length normalisation.
    len: u32,
}

/// Postings of all terms in one flat array, sliced by `offsets[term]`.
#[derive(Default)]
struct Postings {
    offsets: Vec<u32>,
    ids: Vec<u32>,
    tfs: Vec<u16>,
}

impl Postings {
    /// Counting sort of (term, id, tf) triples, which arrive in id order.
    fn from_triples(triples: Vec<(u32, u32, u16)>, terms: usize) -> Postings {
        let mut offsets = vec![0u32; terms + 1];
        for t in &triples {
            offsets[t.0 as usize + 1] += 1;
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let mut next: Vec<u32> = offsets[..terms].to_vec();
        let mut ids = vec![0u32; triples.len()];
        let mut tfs = vec![0u16; triples.len()];
        for (term, id, tf) in triples {
            let p = &mut next[term as usize];
            ids[*p as usize] = id;
            tfs[*p as usize] = tf;
            *p += 1;
        }
        Postings { offsets, ids, tfs }
    }

    fn get(&self, term: u32) -> (&[u32], &[u16]) {
        let t = term as usize;
        match (self.offsets.get(t), self.offsets.get(t + 1)) {
            (Some(&a), Some(&b)) => (
                &self.ids[a as usize..b as usize],
                &self.tfs[a as usize..b as usize],
            ),
            _ => (&[], &[]),
        }
    }
}

/// One ranked document: its best section and the score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub section: u32,
    pub score: f32,
}

pub struct Index {
    snapshots: Vec<Arc<Vec<RepoSnapshot>>>,
    repos: Vec<Repo>,
    docs: Vec<Doc>,
    sections: Vec<Section>,
    vocab: FxMap<Box<str>, u32>,
    section_postings: Postings,
    section_avg_len: f32,
    field_postings: Postings,
    field_len: Vec<u32>,
    field_avg_len: f32,
    bytes: u64,
    /// Per-section accumulators reused across queries (zeroed after use),
    /// so a query does not allocate and fault in two corpus-sized arrays.
    scratch: Mutex<Vec<Scratch>>,
}

#[derive(Default)]
struct Scratch {
    score: Vec<f32>,
    matched: Vec<f32>,
}

/// Sorts term ids and turns runs into (term, count) triples for `id`.
fn count_terms(scratch: &mut [u32], id: u32, out: &mut Vec<(u32, u32, u16)>) {
    scratch.sort_unstable();
    let mut i = 0;
    while i < scratch.len() {
        let mut j = i;
        while j < scratch.len() && scratch[j] == scratch[i] {
            j += 1;
        }
        out.push((scratch[i], id, (j - i).min(u16::MAX as usize) as u16));
        i = j;
    }
}

fn intern(vocab: &mut FxMap<Box<str>, u32>, term: &str) -> u32 {
    if let Some(&id) = vocab.get(term) {
        return id;
    }
    let id = vocab.len() as u32;
    vocab.insert(term.into(), id);
    id
}

fn bm25(tf: f32, len: f32, avg: f32, b: f32) -> f32 {
    tf * (K1 + 1.0) / (tf + K1 * (1.0 - b + b * len / avg.max(1.0)))
}

fn idf(n: usize, df: usize) -> f32 {
    let (n, df) = (n as f32, df as f32);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

impl Index {
    /// Indexes the snapshots of all sources. A repository name that appears
    /// in two sources is served from the first and logged.
    pub fn build(snapshots: Vec<Arc<Vec<RepoSnapshot>>>) -> Index {
        let mut order: Vec<(&str, u32, u32)> = Vec::new();
        for (s, snap) in snapshots.iter().enumerate() {
            for (r, repo) in snap.iter().enumerate() {
                order.push((repo.name.as_str(), s as u32, r as u32));
            }
        }
        order.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
        order.dedup_by(|later, first| {
            let dup = later.0 == first.0;
            if dup {
                log::warn!(
                    "repository {:?} appears in two sources; keeping the first",
                    later.0
                );
            }
            dup
        });

        let mut vocab: FxMap<Box<str>, u32> = FxMap::default();
        let mut repos = Vec::with_capacity(order.len());
        let mut docs = Vec::new();
        let mut sections = Vec::new();
        let mut section_triples = Vec::new();
        let mut field_triples = Vec::new();
        let mut field_len = Vec::new();
        let mut scratch: Vec<u32> = Vec::new();
        let mut bytes = 0u64;

        for (name, s, r) in order {
            let snap = &snapshots[s as usize][r as usize];
            let repo_id = repos.len() as u32;
            let mut files: Vec<u32> = (0..snap.docs.len() as u32).collect();
            files.sort_by(|a, b| {
                snap.docs[*a as usize]
                    .path
                    .cmp(&snap.docs[*b as usize].path)
            });
            files.dedup_by(|a, b| snap.docs[*a as usize].path == snap.docs[*b as usize].path);
            let description = snap
                .description
                .clone()
                .filter(|d| !d.trim().is_empty())
                .or_else(|| {
                    files
                        .iter()
                        .map(|&f| &snap.docs[f as usize])
                        .find(|d| {
                            let p = d.path.to_ascii_lowercase();
                            p == "readme.md"
                                || p == "readme"
                                || p == "readme.rst"
                                || p == "readme.txt"
                        })
                        .and_then(|d| readme_description(&d.text, DESCRIPTION_CHARS))
                });
            let mut repo_docs = Vec::with_capacity(files.len());
            for f in files {
                let file = &snap.docs[f as usize];
                let doc_id = docs.len() as u32;
                bytes += file.text.len() as u64;
                let text = file.text.as_str();
                let rst = file.path.to_ascii_lowercase().ends_with(".rst");
                let parsed = markdown::parse(text, rst);

                // Title, description and path as one short field.
                scratch.clear();
                let mut flen = 0u32;
                if let Some(t) = &parsed.title {
                    tokenize(t, |term, _, _| {
                        let id = intern(&mut vocab, term);
                        scratch.extend(std::iter::repeat_n(id, TITLE_WEIGHT));
                        flen += 1;
                    });
                }
                for field in [parsed.description.as_deref(), Some(file.path.as_str())]
                    .into_iter()
                    .flatten()
                {
                    tokenize(field, |term, _, _| {
                        scratch.push(intern(&mut vocab, term));
                        flen += 1;
                    });
                }
                count_terms(&mut scratch, doc_id, &mut field_triples);
                field_len.push(flen);

                let first_section = sections.len() as u32;
                for sec in &parsed.sections {
                    scratch.clear();
                    let mut len = 0u32;
                    let heading = sec.heading.unwrap_or((sec.body.0, sec.body.0));
                    tokenize(&text[heading.0..heading.1], |term, _, _| {
                        let id = intern(&mut vocab, term);
                        scratch.extend(std::iter::repeat_n(id, HEADING_WEIGHT));
                        len += 1;
                    });
                    tokenize(&text[sec.body.0..sec.body.1], |term, _, _| {
                        scratch.push(intern(&mut vocab, term));
                        len += 1;
                    });
                    let sec_id = sections.len() as u32;
                    count_terms(&mut scratch, sec_id, &mut section_triples);
                    sections.push(Section {
                        doc: doc_id,
                        repo: repo_id,
                        heading: (heading.0 as u32, heading.1 as u32),
                        body: (sec.body.0 as u32, sec.body.1 as u32),
                        len,
                    });
                }
                if sections.len() as u32 == first_section {
                    // An empty document still gets a (empty) section, so
                    // every document has one to point at.
                    sections.push(Section {
                        doc: doc_id,
                        repo: repo_id,
                        heading: (0, 0),
                        body: (0, 0),
                        len: 0,
                    });
                }
                docs.push(Doc {
                    source: s,
                    repo_in_source: r,
                    file: f,
                    repo: repo_id,
                    title: parsed.title,
                    first_section,
                    prior: path_prior(&file.path),
                });
                repo_docs.push(doc_id);
            }
            repos.push(Repo {
                name: name.to_string(),
                description,
                docs: repo_docs,
            });
        }

        let terms = vocab.len();
        let section_avg_len = sections.iter().map(|s| s.len as f64).sum::<f64>() as f32
            / sections.len().max(1) as f32;
        let field_avg_len =
            field_len.iter().map(|&l| l as f64).sum::<f64>() as f32 / field_len.len().max(1) as f32;
        vocab.shrink_to_fit();
        Index {
            repos,
            docs,
            sections,
            vocab,
            section_postings: Postings::from_triples(section_triples, terms),
            section_avg_len,
            field_postings: Postings::from_triples(field_triples, terms),
            field_len,
            field_avg_len,
            bytes,
            snapshots,
            scratch: Mutex::new(Vec::new()),
        }
    }

    pub fn repos(&self) -> &[Repo] {
        &self.repos
    }

    pub fn repo_by_name(&self, name: &str) -> Option<&Repo> {
        self.repos
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.repos[i])
    }

    pub fn repo_id(&self, name: &str) -> Option<u32> {
        self.repos
            .binary_search_by(|r| r.name.as_str().cmp(name))
            .ok()
            .map(|i| i as u32)
    }

    pub fn repo_name(&self, doc: u32) -> &str {
        &self.repos[self.docs[doc as usize].repo as usize].name
    }

    pub fn file(&self, doc: u32) -> &DocFile {
        let d = &self.docs[doc as usize];
        &self.snapshots[d.source as usize][d.repo_in_source as usize].docs[d.file as usize]
    }

    pub fn title(&self, doc: u32) -> Option<&str> {
        self.docs[doc as usize].title.as_deref()
    }

    pub fn doc_by_path(&self, repo: &Repo, path: &str) -> Option<u32> {
        repo.docs
            .binary_search_by(|&d| self.file(d).path.as_str().cmp(path))
            .ok()
            .map(|i| repo.docs[i])
    }

    /// The heading text and body of a section.
    pub fn section_text(&self, section: u32) -> (Option<&str>, &str) {
        let s = &self.sections[section as usize];
        let text = self.file(s.doc).text.as_str();
        let heading =
            (s.heading.0 != s.heading.1).then(|| &text[s.heading.0 as usize..s.heading.1 as usize]);
        (heading, &text[s.body.0 as usize..s.body.1 as usize])
    }

    pub fn doc_count(&self) -> usize {
        self.docs.len()
    }

    pub fn section_count(&self) -> usize {
        self.sections.len()
    }

    pub fn term_count(&self) -> usize {
        self.vocab.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Ranks documents for a query: each document scores as its best
    /// section (BM25 over heading and body, scaled by the idf-weighted share
    /// of query terms the section contains) plus its title/path field score.
    pub fn search(&self, query: &str, repo: Option<u32>, limit: usize) -> Vec<Hit> {
        let mut terms: Vec<u32> = Vec::new();
        tokenize(query, |t, _, _| {
            if let Some(&id) = self.vocab.get(t)
                && !terms.contains(&id)
            {
                terms.push(id);
            }
        });
        if terms.is_empty() || limit == 0 {
            return Vec::new();
        }

        let mut scratch = crate::sync::lock(&self.scratch).pop().unwrap_or_default();
        if scratch.score.len() != self.sections.len() {
            scratch.score = vec![0.0; self.sections.len()];
            scratch.matched = vec![0.0; self.sections.len()];
        }
        let Scratch {
            score: acc,
            matched,
        } = &mut scratch;
        let mut total_idf = 0f32;
        let mut touched: Vec<u32> = Vec::new();
        for &t in &terms {
            let (ids, tfs) = self.section_postings.get(t);
            let w = idf(self.sections.len(), ids.len());
            total_idf += w;
            for (&s, &tf) in ids.iter().zip(tfs) {
                let sec = &self.sections[s as usize];
                if repo.is_some_and(|r| r != sec.repo) {
                    continue;
                }
                let slot = &mut acc[s as usize];
                if *slot == 0.0 {
                    touched.push(s);
                }
                *slot += w * bm25(tf as f32, sec.len as f32, self.section_avg_len, B_SECTION);
                matched[s as usize] += w;
            }
        }

        // Best section per document.
        let mut best: FxMap<u32, (f32, u32)> = FxMap::default();
        for &s in &touched {
            let sec = &self.sections[s as usize];
            let coverage = matched[s as usize] / total_idf.max(f32::EPSILON);
            let score = acc[s as usize] * (0.5 + 0.5 * coverage.min(1.0));
            let e = best.entry(sec.doc).or_insert((0.0, s));
            if score > e.0 {
                *e = (score, s);
            }
        }
        // Title and path.
        for &t in &terms {
            let (ids, tfs) = self.field_postings.get(t);
            let w = idf(self.docs.len(), ids.len());
            for (&d, &tf) in ids.iter().zip(tfs) {
                let doc = &self.docs[d as usize];
                if repo.is_some_and(|r| r != doc.repo) {
                    continue;
                }
                let score = FIELDS_BOOST
                    * w
                    * bm25(
                        tf as f32,
                        self.field_len[d as usize] as f32,
                        self.field_avg_len,
                        B_FIELDS,
                    );
                best.entry(d).or_insert((0.0, doc.first_section)).0 += score;
            }
        }

        for &s in &touched {
            acc[s as usize] = 0.0;
            matched[s as usize] = 0.0;
        }
        crate::sync::lock(&self.scratch).push(scratch);

        let mut hits: Vec<Hit> = best
            .into_iter()
            .map(|(doc, (score, section))| Hit {
                doc,
                section,
                score: score * self.docs[doc as usize].prior,
            })
            .collect();
        let by_rank = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc));
        if hits.len() > limit {
            hits.select_nth_unstable_by(limit - 1, by_rank);
            hits.truncate(limit);
        }
        hits.sort_by(by_rank);
        hits
    }
}
