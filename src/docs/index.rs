//! The in-memory search index over every source's snapshot: repositories and
//! documents in name/path order, heading-aware sections, and two inverted
//! indexes (section text; per document its title, description, path and
//! repository name). An index is immutable once built; the provider builds a
//! new one aside and swaps it in.
//!
//! Ranking is by document: a document scores by its best few sections (a
//! decaying sum, so an answer spread over two sections beats one section
//! repeating a word), plus a BM25 over the whole document whose term counts
//! are summed from the section postings (no second index), plus its
//! title/path fields. Translations and copies of one page are one result, in
//! the query's language when there is a choice ([`groups`], [`lang`]).
//!
//! Document text is not copied: the index keeps the snapshots (`Arc`) and
//! refers to sections by byte ranges. Snippets and JSON are not made here.

mod groups;
mod lang;

use super::markdown::{self, readme_description};
use super::source::{DocFile, RepoSnapshot};
use super::tokenize::tokenize;
use lang::Lang;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

/// BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B_SECTION: f32 = 0.75;
/// Titles and paths are short; their length matters less.
const B_FIELDS: f32 = 0.5;
/// Length normalisation of the whole-document BM25: full, so that a long
/// page (a changelog, release notes) does not win by repeating words.
const B_DOC: f32 = 0.9;
/// A heading word counts as this many body words.
const HEADING_WEIGHT: usize = 3;
/// A title word counts as this many path words in the document field.
const TITLE_WEIGHT: usize = 2;
/// How much the title/path score adds to the section scores.
const FIELDS_BOOST: f32 = 1.0;
/// Weights of a document's best, second and third section.
const SECTION_DECAY: [f32; 3] = [1.0, 0.5, 0.25];
/// How much the whole-document BM25 adds.
const DOC_WEIGHT: f32 = 0.5;
/// Length of repository descriptions taken from a README.
const DESCRIPTION_CHARS: usize = 160;

/// The longest query considered, in bytes; the rest is cut (not refused).
pub const MAX_QUERY_BYTES: usize = 4096;
/// The most distinct query words considered; later ones are ignored.
pub const MAX_QUERY_TERMS: usize = 64;

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
    /// Number of words in all sections, for the whole-document BM25.
    len: u32,
    /// Translation/copy group ([`groups::NONE`] when alone).
    group: u32,
    /// Language folder the document is in, if any.
    lang: Lang,
    /// Multiplier on the final score, below 1 for test fixtures.
    prior: f32,
}

/// Test fixtures and end-to-end test folders hold many small READMEs that
/// repeat product words but rarely answer a question about the product.
const TEST_PRIOR: f32 = 0.7;
/// Changelogs and release notes are long pages that mention every feature
/// once per release: without this they win by size (measured: 11 of the top
/// three results of the 130 evaluation questions were changelogs, none of
/// them an answer). A length penalty for every long page hurt instead, since
/// long specifications often are the answer.
const RELEASE_LOG_PRIOR: f32 = 0.5;
/// A release log has at least this many headings, half of them releases.
const MIN_RELEASE_HEADINGS: usize = 4;

fn path_prior(path: &str, release_log: bool) -> f32 {
    let is_test = path.split('/').rev().skip(1).any(|seg| {
        matches!(seg, "test" | "tests" | "testdata" | "e2e" | "testbed")
            || seg.starts_with("e2e-")
            || seg.ends_with("-tests")
    });
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let release_log = release_log
        || ["changelog", "releasenotes", "release-notes", "history"]
            .iter()
            .any(|p| name.starts_with(p));
    let mut prior = if is_test { TEST_PRIOR } else { 1.0 };
    if release_log {
        prior *= RELEASE_LOG_PRIOR;
    }
    prior
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

/// One distinct word of a query that the index knows.
#[derive(Debug, Clone)]
pub struct QueryTerm {
    id: u32,
    /// The normalised term, as snippets look for it.
    pub text: String,
    /// Share of its query word: 1, or less for the parts of a camelCase word.
    weight: f32,
}

/// A query as the index reads it: cut to the budgets, normalised, and
/// reduced to the terms the index knows.
#[derive(Debug, Clone)]
pub struct Query {
    pub terms: Vec<QueryTerm>,
    lang: Lang,
    /// Distinct words looked at (known or not), at most [`MAX_QUERY_TERMS`].
    pub considered: usize,
    /// Whether the query was longer than the budgets allow.
    pub truncated: bool,
}

pub struct Index {
    snapshots: Vec<Arc<Vec<RepoSnapshot>>>,
    repos: Vec<Repo>,
    docs: Vec<Doc>,
    sections: Vec<Section>,
    vocab: FxMap<Box<str>, u32>,
    section_postings: Postings,
    section_avg_len: f32,
    /// Number of documents each term occurs in (for the document BM25).
    doc_freq: Vec<u32>,
    doc_avg_len: f32,
    field_postings: Postings,
    field_len: Vec<u32>,
    field_avg_len: f32,
    groups: usize,
    bytes: u64,
    /// Per-section and per-document accumulators reused across queries
    /// (cleared after use), so a query does not allocate and fault in
    /// corpus-sized arrays.
    scratch: Mutex<Vec<Scratch>>,
}

/// A document's best sections so far: (score, section), best first.
type Top = [(f32, u32); 3];

#[derive(Default)]
struct Scratch {
    section_score: Vec<f32>,
    section_matched: Vec<f32>,
    touched_sections: Vec<u32>,
    doc_bm25: Vec<f32>,
    doc_fields: Vec<f32>,
    doc_top: Vec<Top>,
    doc_seen: Vec<bool>,
    touched_docs: Vec<u32>,
    /// Per group: the slot of its member in the hits (+ 1, 0 for none yet),
    /// the group's best score and the shown member's own score.
    group_pick: Vec<(u32, f32, f32)>,
    touched_groups: Vec<u32>,
}

impl Scratch {
    fn fit(&mut self, sections: usize, docs: usize, groups: usize) {
        if self.section_score.len() != sections {
            self.section_score = vec![0.0; sections];
            self.section_matched = vec![0.0; sections];
        }
        if self.doc_bm25.len() != docs {
            self.doc_bm25 = vec![0.0; docs];
            self.doc_fields = vec![0.0; docs];
            self.doc_top = vec![[(0.0, 0); 3]; docs];
            self.doc_seen = vec![false; docs];
        }
        if self.group_pick.len() != groups {
            self.group_pick = vec![(0, 0.0, 0.0); groups];
        }
    }

    fn touch_doc(&mut self, d: u32) {
        let seen = &mut self.doc_seen[d as usize];
        if !*seen {
            *seen = true;
            self.touched_docs.push(d);
        }
    }

    /// Zeroes what this query wrote, so the next one starts clean.
    fn clear(&mut self) {
        for &s in &self.touched_sections {
            self.section_score[s as usize] = 0.0;
            self.section_matched[s as usize] = 0.0;
        }
        for &d in &self.touched_docs {
            let d = d as usize;
            self.doc_bm25[d] = 0.0;
            self.doc_fields[d] = 0.0;
            self.doc_top[d] = [(0.0, 0); 3];
            self.doc_seen[d] = false;
        }
        for &g in &self.touched_groups {
            self.group_pick[g as usize] = (0, 0.0, 0.0);
        }
        self.touched_sections.clear();
        self.touched_docs.clear();
        self.touched_groups.clear();
    }
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

fn mean(values: impl Iterator<Item = u32>) -> f32 {
    let (mut sum, mut n) = (0f64, 0usize);
    for v in values {
        sum += v as f64;
        n += 1;
    }
    (sum / n.max(1) as f64) as f32
}

/// The largest char boundary of `s` at or below `i`.
pub(super) fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Whether a heading names a release: "v1.2.3", "[0.110.0] - 2024-05-01",
/// "Version 2.0", "Unreleased".
fn is_release_heading(h: &str) -> bool {
    let t = h
        .trim()
        .trim_start_matches(['[', '#', ' '])
        .to_ascii_lowercase();
    let t = t
        .strip_prefix("version ")
        .or_else(|| t.strip_prefix("release "))
        .or_else(|| t.strip_prefix("v"))
        .unwrap_or(&t);
    // A version number ("1.2", "0.110.0"), not a numbered heading ("1. Why").
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let is_version = digits > 0
        && t.as_bytes().get(digits) == Some(&b'.')
        && t.as_bytes().get(digits + 1).is_some_and(u8::is_ascii_digit);
    is_version || t.starts_with("unreleased")
}

/// What the heading structure says about a document: a hash of the heading
/// texts (to recognise copies), their number, and whether most of them name
/// releases (a changelog or release notes, whatever the file is called).
fn structure(text: &str, sections: &[markdown::Section]) -> (u64, usize, bool) {
    let mut h = FxHasher::default();
    let (mut n, mut releases) = (0, 0);
    let mut last = None;
    for sec in sections {
        // Long sections are cut in pieces that repeat their heading.
        if sec.heading.is_some() && sec.heading != last {
            let (a, b) = sec.heading.unwrap_or_default();
            let heading = text[a..b].trim();
            h.write(heading.to_lowercase().as_bytes());
            h.write_u8(0);
            n += 1;
            releases += usize::from(is_release_heading(heading));
        }
        last = sec.heading;
    }
    (
        h.finish(),
        n,
        n >= MIN_RELEASE_HEADINGS && releases * 2 >= n,
    )
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
        let mut structures = Vec::new();
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

                // Title, description, path and repository name as one short field.
                scratch.clear();
                let mut flen = 0u32;
                if let Some(t) = &parsed.title {
                    tokenize(t, |tok| {
                        let id = intern(&mut vocab, tok.term);
                        scratch.extend(std::iter::repeat_n(id, TITLE_WEIGHT));
                        flen += u32::from(!tok.part);
                    });
                }
                for field in [parsed.description.as_deref(), Some(&file.path), Some(name)]
                    .into_iter()
                    .flatten()
                {
                    tokenize(field, |tok| {
                        scratch.push(intern(&mut vocab, tok.term));
                        flen += u32::from(!tok.part);
                    });
                }
                count_terms(&mut scratch, doc_id, &mut field_triples);
                field_len.push(flen);

                let first_section = sections.len() as u32;
                let mut doc_len = 0u32;
                for sec in &parsed.sections {
                    scratch.clear();
                    let mut len = 0u32;
                    let heading = sec.heading.unwrap_or((sec.body.0, sec.body.0));
                    tokenize(&text[heading.0..heading.1], |tok| {
                        let id = intern(&mut vocab, tok.term);
                        scratch.extend(std::iter::repeat_n(id, HEADING_WEIGHT));
                        len += u32::from(!tok.part);
                    });
                    tokenize(&text[sec.body.0..sec.body.1], |tok| {
                        scratch.push(intern(&mut vocab, tok.term));
                        len += u32::from(!tok.part);
                    });
                    let sec_id = sections.len() as u32;
                    count_terms(&mut scratch, sec_id, &mut section_triples);
                    doc_len += len;
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
                let (hash, headings, release_log) = structure(text, &parsed.sections);
                structures.push((hash, headings));
                docs.push(Doc {
                    source: s,
                    repo_in_source: r,
                    file: f,
                    repo: repo_id,
                    title: parsed.title,
                    first_section,
                    len: doc_len,
                    group: groups::NONE,
                    lang: Lang::UNKNOWN,
                    prior: path_prior(&file.path, release_log),
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
        let section_postings = Postings::from_triples(section_triples, terms);
        // Sections of a document are consecutive, so its postings are too.
        let mut doc_freq = vec![0u32; terms];
        for (t, df) in doc_freq.iter_mut().enumerate() {
            let (ids, _) = section_postings.get(t as u32);
            let mut last = u32::MAX;
            for &s in ids {
                let d = sections[s as usize].doc;
                if d != last {
                    *df += 1;
                    last = d;
                }
            }
        }

        let grouping = {
            let members: Vec<groups::Member> = docs
                .iter()
                .zip(&structures)
                .map(|(d, &(structure, headings))| groups::Member {
                    repo: d.repo,
                    path: &snapshots[d.source as usize][d.repo_in_source as usize].docs
                        [d.file as usize]
                        .path,
                    title: d.title.as_deref(),
                    structure,
                    headings,
                })
                .collect();
            groups::group(&members)
        };
        for (d, doc) in docs.iter_mut().enumerate() {
            doc.group = grouping.group[d];
            doc.lang = grouping.lang[d];
        }

        vocab.shrink_to_fit();
        Index {
            section_avg_len: mean(sections.iter().map(|s| s.len)),
            doc_avg_len: mean(docs.iter().map(|d| d.len)),
            field_avg_len: mean(field_len.iter().copied()),
            repos,
            docs,
            sections,
            vocab,
            section_postings,
            doc_freq,
            field_postings: Postings::from_triples(field_triples, terms),
            field_len,
            groups: grouping.groups,
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

    /// Reads a query within the budgets: at most [`MAX_QUERY_BYTES`] of it
    /// and [`MAX_QUERY_TERMS`] distinct words, in one pass. A camelCase word
    /// counts once: its whole form and its parts share one word's weight.
    pub fn query(&self, text: &str) -> Query {
        let cut = floor_boundary(text, MAX_QUERY_BYTES);
        let mut truncated = cut < text.len();
        let text = &text[..cut];
        let mut q = Query {
            terms: Vec::new(),
            lang: lang::detect(text),
            considered: 0,
            truncated: false,
        };
        // Distinct words seen, known or not (bounded by MAX_QUERY_TERMS).
        let mut seen: Vec<String> = Vec::new();
        // The current word: its whole form and its camelCase parts.
        let mut word: Vec<(Option<u32>, String)> = Vec::new();
        let flush = |word: &mut Vec<(Option<u32>, String)>, q: &mut Query| {
            let parts = word.len().saturating_sub(1);
            for (i, (id, term)) in word.drain(..).enumerate() {
                let Some(id) = id else { continue };
                let weight = match (parts, i) {
                    (0, _) => 1.0,
                    (_, 0) => 0.5,
                    _ => 0.5 / parts as f32,
                };
                match q.terms.iter_mut().find(|t| t.id == id) {
                    Some(t) => t.weight = t.weight.max(weight),
                    None => q.terms.push(QueryTerm {
                        id,
                        text: term,
                        weight,
                    }),
                }
            }
        };
        tokenize(text, |tok| {
            if q.considered >= MAX_QUERY_TERMS && !seen.iter().any(|s| s == tok.term) {
                truncated = true;
                return;
            }
            if !seen.iter().any(|s| s == tok.term) {
                seen.push(tok.term.to_string());
                q.considered += 1;
            }
            if !tok.part {
                flush(&mut word, &mut q);
            }
            word.push((self.vocab.get(tok.term).copied(), tok.term.to_string()));
        });
        flush(&mut word, &mut q);
        q.truncated = truncated;
        q
    }

    /// The query's terms with their weights in this index (inverse section
    /// frequency), for choosing a snippet.
    pub fn term_weights(&self, q: &Query) -> Vec<(String, f32)> {
        q.terms
            .iter()
            .map(|t| {
                let df = self.section_postings.get(t.id).0.len();
                (t.text.clone(), t.weight * idf(self.sections.len(), df))
            })
            .collect()
    }

    /// Ranks documents for a query. A section scores BM25 over its heading
    /// and body, scaled by the idf-weighted share of query terms it holds; a
    /// document scores the decaying sum of its three best sections, plus a
    /// share of a BM25 over the whole document, plus its title/path/repo
    /// field score. One hit per translation/copy group.
    pub fn search(&self, q: &Query, repo: Option<u32>, limit: usize) -> Vec<Hit> {
        if q.terms.is_empty() || limit == 0 {
            return Vec::new();
        }
        let mut scratch = crate::sync::lock(&self.scratch).pop().unwrap_or_default();
        scratch.fit(self.sections.len(), self.docs.len(), self.groups);
        let hits = self.rank(q, repo, limit, &mut scratch);
        scratch.clear();
        crate::sync::lock(&self.scratch).push(scratch);
        hits
    }

    fn rank(&self, q: &Query, repo: Option<u32>, limit: usize, sc: &mut Scratch) -> Vec<Hit> {
        let (n_sections, n_docs) = (self.sections.len(), self.docs.len());
        let mut total_idf = 0f32;
        for t in &q.terms {
            let (ids, tfs) = self.section_postings.get(t.id);
            let w = t.weight * idf(n_sections, ids.len());
            let w_doc = t.weight * idf(n_docs, self.doc_freq[t.id as usize] as usize);
            total_idf += w;
            // Term counts of the current document, summed over its sections.
            let (mut doc, mut doc_tf) = (u32::MAX, 0u32);
            let flush = |sc: &mut Scratch, doc: u32, tf: u32| {
                if doc != u32::MAX {
                    let len = self.docs[doc as usize].len as f32;
                    sc.doc_bm25[doc as usize] +=
                        w_doc * bm25(tf as f32, len, self.doc_avg_len, B_DOC);
                }
            };
            for (&s, &tf) in ids.iter().zip(tfs) {
                let sec = &self.sections[s as usize];
                if repo.is_some_and(|r| r != sec.repo) {
                    continue;
                }
                let slot = &mut sc.section_score[s as usize];
                if *slot == 0.0 {
                    sc.touched_sections.push(s);
                }
                *slot += w * bm25(tf as f32, sec.len as f32, self.section_avg_len, B_SECTION);
                sc.section_matched[s as usize] += w;
                if sec.doc != doc {
                    flush(sc, doc, doc_tf);
                    (doc, doc_tf) = (sec.doc, 0);
                    sc.touch_doc(doc);
                }
                doc_tf += tf as u32;
            }
            flush(sc, doc, doc_tf);
        }

        // The best three sections of each document.
        for i in 0..sc.touched_sections.len() {
            let s = sc.touched_sections[i];
            let coverage = sc.section_matched[s as usize] / total_idf.max(f32::EPSILON);
            let score = sc.section_score[s as usize] * (0.5 + 0.5 * coverage.min(1.0));
            let top = &mut sc.doc_top[self.sections[s as usize].doc as usize];
            if let Some(pos) = top.iter().position(|e| score > e.0) {
                top[pos..].rotate_right(1);
                top[pos] = (score, s);
            }
        }
        // Title, path and repository name.
        for t in &q.terms {
            let (ids, tfs) = self.field_postings.get(t.id);
            let w = t.weight * idf(n_docs, ids.len());
            for (&d, &tf) in ids.iter().zip(tfs) {
                if repo.is_some_and(|r| r != self.docs[d as usize].repo) {
                    continue;
                }
                let len = self.field_len[d as usize] as f32;
                sc.doc_fields[d as usize] +=
                    FIELDS_BOOST * w * bm25(tf as f32, len, self.field_avg_len, B_FIELDS);
                sc.touch_doc(d);
            }
        }

        // Document scores; translations and copies collapse to one member.
        let mut hits: Vec<Hit> = Vec::new();
        for i in 0..sc.touched_docs.len() {
            let d = sc.touched_docs[i];
            let doc = &self.docs[d as usize];
            let top = sc.doc_top[d as usize];
            let sections: f32 = top.iter().zip(SECTION_DECAY).map(|(e, k)| e.0 * k).sum();
            let score =
                (sections + DOC_WEIGHT * sc.doc_bm25[d as usize] + sc.doc_fields[d as usize])
                    * doc.prior;
            if score <= 0.0 {
                continue;
            }
            let section = if top[0].0 > 0.0 {
                top[0].1
            } else {
                doc.first_section
            };
            let hit = Hit {
                doc: d,
                section,
                score,
            };
            if doc.group == groups::NONE {
                hits.push(hit);
                continue;
            }
            let g = doc.group as usize;
            let (slot1, best, own) = sc.group_pick[g];
            if slot1 == 0 {
                sc.touched_groups.push(doc.group);
                sc.group_pick[g] = (hits.len() as u32 + 1, score, score);
                hits.push(hit);
                continue;
            }
            // One slot per group: the member in the query's language (else
            // in English), scored as the group's best member.
            let slot = (slot1 - 1) as usize;
            let shown = &self.docs[hits[slot].doc as usize];
            let rank = |l: Lang| u8::from(l == q.lang) * 2 + u8::from(l.is_default());
            let better = (rank(doc.lang), score) > (rank(shown.lang), own);
            let best = best.max(score);
            if better {
                hits[slot] = hit;
            }
            hits[slot].score = best;
            sc.group_pick[g] = (slot1, best, if better { score } else { own });
        }

        let by_rank = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc));
        if hits.len() > limit {
            hits.select_nth_unstable_by(limit - 1, by_rank);
            hits.truncate(limit);
        }
        hits.sort_by(by_rank);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(repos: &[(&str, &[(&str, &str)])]) -> Index {
        let snap = repos
            .iter()
            .map(|(name, docs)| RepoSnapshot {
                name: name.to_string(),
                description: None,
                docs: docs
                    .iter()
                    .map(|(path, text)| DocFile {
                        path: path.to_string(),
                        text: text.to_string(),
                        url: None,
                    })
                    .collect(),
            })
            .collect();
        Index::build(vec![Arc::new(snap)])
    }

    fn paths(idx: &Index, query: &str) -> Vec<String> {
        idx.search(&idx.query(query), None, 10)
            .iter()
            .map(|h| idx.file(h.doc).path.clone())
            .collect()
    }

    const FILLER: &str = "Words about pods, clusters and deployments. ";

    /// Unrelated documents, so that query words are rare, as in a corpus.
    fn others() -> Vec<(String, String)> {
        (0..20)
            .map(|i| {
                (
                    format!("other/{i}.md"),
                    format!("# Other {i}\n\n{}", FILLER.repeat(3)),
                )
            })
            .collect()
    }

    #[test]
    fn a_document_answering_across_sections_beats_one_repeating_a_word() {
        let across = format!(
            "# Delivery\n\n## Retry\n\nFailed requests are sent again with a retry.\n\n{}\n\n## Queue\n\nA queue keeps data on disk.\n\n{}",
            FILLER.repeat(4),
            FILLER.repeat(4)
        );
        let repeating = format!(
            "# Notes\n\n## Retry\n\n{}{}",
            "Retry, and retry again: a retry. ".repeat(8),
            FILLER.repeat(4)
        );
        let mut docs = others();
        // "queue" as rare as "retry": both in two documents.
        docs[0].1.push_str("\n\nA queue of pods.\n");
        docs.push(("across.md".into(), across));
        docs.push(("repeating.md".into(), repeating));
        let docs: Vec<(&str, &str)> = docs.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let idx = index(&[("r", &docs)]);
        assert_eq!(
            &paths(&idx, "retry queue")[..2],
            ["across.md", "repeating.md"]
        );
        // The hit names the best section.
        let q = idx.query("queue disk");
        let hit = idx.search(&q, None, 1)[0];
        assert_eq!(idx.section_text(hit.section).0, Some("Queue"));
    }

    #[test]
    fn release_logs_do_not_win_by_size() {
        let mut log = String::from("# Changes\n\n");
        for v in 0..40 {
            log.push_str(&format!(
                "## v1.{v}.0\n\n- the sampler keeps traces ({v})\n- exporter: retry\n\n"
            ));
        }
        let guide = format!(
            "# Guide\n\n## Keeping a share\n\nConfigure the sampler to keep a share of traces.\n\n{}",
            FILLER.repeat(3)
        );
        let mut docs = others();
        docs.push(("NEWS.md".into(), log));
        docs.push(("docs/guide.md".into(), guide));
        let docs: Vec<(&str, &str)> = docs.iter().map(|(p, t)| (p.as_str(), t.as_str())).collect();
        let idx = index(&[("r", &docs)]);
        assert_eq!(paths(&idx, "sampler traces")[0], "docs/guide.md");
        assert!(is_release_heading("v0.110.0") && is_release_heading("[1.2.0] - 2024-05-01"));
        assert!(!is_release_heading("1. Why sampling") && !is_release_heading("Usage"));
    }

    #[test]
    fn translations_take_one_slot_in_the_query_language() {
        let en = "# Sampling\n\nHead sampling and tail sampling of traces: the sampler decides.\n";
        let fr = "# Échantillonnage\n\nLe sampling des traces: head sampling et tail sampling, le sampler décide.\n";
        let ja = "# サンプリング\n\nトレースの head sampling と tail sampling。\n";
        let idx = index(&[(
            "site",
            &[
                ("content/en/docs/sampling.md", en),
                ("content/fr/docs/sampling.md", fr),
                ("content/ja/docs/sampling.md", ja),
            ],
        )]);
        assert_eq!(
            paths(&idx, "tail sampling traces"),
            ["content/en/docs/sampling.md"]
        );
        assert_eq!(
            paths(&idx, "comment fonctionne le tail sampling des traces"),
            ["content/fr/docs/sampling.md"]
        );
        assert_eq!(
            paths(&idx, "トレースの tail sampling"),
            ["content/ja/docs/sampling.md"]
        );
    }

    #[test]
    fn the_repository_name_is_searchable() {
        let idx = index(&[
            (
                "opentelemetry-rust",
                &[("docs/otlp.md", "# OTLP\n\nExport with gRPC.\n")],
            ),
            (
                "opentelemetry-go",
                &[("docs/otlp.md", "# OTLP\n\nExport with gRPC.\n")],
            ),
        ]);
        let hits = idx.search(&idx.query("rust otlp grpc"), None, 10);
        assert_eq!(idx.repo_name(hits[0].doc), "opentelemetry-rust");
    }

    /// A query of 49,000 distinct words is read within its budgets: the
    /// old duplicate check was quadratic in the number of words.
    #[test]
    fn query_budgets() {
        let idx = index(&[("r", &[("a.md", "# Alpha\n\nalpha beta gamma\n")])]);
        let huge: String = (0..49_000).map(|i| format!("w{i} ")).collect();
        let started = std::time::Instant::now();
        let q = idx.query(&huge);
        assert!(q.truncated);
        assert_eq!(q.considered, MAX_QUERY_TERMS);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Words past MAX_QUERY_BYTES are not read.
        let late = format!("{}alpha", "x ".repeat(MAX_QUERY_BYTES / 2));
        let q = idx.query(&late);
        assert!(q.truncated && q.terms.is_empty());
        // Distinct words past MAX_QUERY_TERMS are ignored, repeats are not new words.
        let many = format!(
            "{} beta",
            (0..100)
                .map(|i| format!("w{i}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert!(idx.query(&many).terms.is_empty());
        let q = idx.query(&"alpha ".repeat(500));
        assert_eq!((q.considered, q.terms.len()), (1, 1));
        // A short query is whole.
        let q = idx.query("alpha beta");
        assert!(!q.truncated && q.terms.len() == 2);
    }
}
