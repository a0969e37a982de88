//! Documents that are one page under several names: translations (the same
//! relative path under another language folder, `content/en/x.md` and
//! `content/fr/x.md`) and copies (the same title and the same headings, such
//! as a repository's guide republished on the website). Search shows one
//! member per group, so that one page does not take several result slots.
//!
//! A folder counts as a language folder only when it has a sibling `en`
//! folder: `docs/go/` is not Galician.

use super::lang::Lang;
use std::collections::{HashMap, HashSet};

/// No group: the document stands alone.
pub const NONE: u32 = u32::MAX;

/// What grouping needs to know of one document.
pub struct Member<'a> {
    pub repo: u32,
    pub path: &'a str,
    pub title: Option<&'a str>,
    /// Hash of the heading texts, in order.
    pub structure: u64,
    pub headings: usize,
}

/// A copy needs at least this many headings, so that two short READMEs
/// titled "Examples" are not taken for one page.
const MIN_COPY_HEADINGS: usize = 3;

pub struct Grouping {
    /// Group of each document, dense from 0, or [`NONE`].
    pub group: Vec<u32>,
    /// Language folder of each document ([`Lang::UNKNOWN`] outside one).
    pub lang: Vec<Lang>,
    pub groups: usize,
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let p = parent[x as usize];
        parent[x as usize] = parent[p as usize];
        x = p;
    }
    x
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        parent[ra.max(rb) as usize] = ra.min(rb);
    }
}

/// The language folder of `path` (its index among the segments) when the
/// folder above it also holds an `en` folder.
fn language_folder(
    repo: u32,
    path: &str,
    en_parents: &HashSet<(u32, &str)>,
) -> Option<(usize, Lang)> {
    let mut offset = 0;
    let segments: Vec<&str> = path.split('/').collect();
    for (i, seg) in segments
        .iter()
        .enumerate()
        .take(segments.len().saturating_sub(1))
    {
        if let Some(lang) = Lang::from_folder(seg)
            && en_parents.contains(&(repo, &path[..offset]))
        {
            return Some((i, lang));
        }
        offset += seg.len() + 1;
    }
    None
}

pub fn group(members: &[Member]) -> Grouping {
    // Folders that hold an "en" folder, as (repo, "prefix/").
    let mut en_parents: HashSet<(u32, &str)> = HashSet::new();
    for m in members {
        let mut offset = 0;
        for seg in m.path.split('/') {
            if seg == "en" && offset + 2 < m.path.len() {
                en_parents.insert((m.repo, &m.path[..offset]));
            }
            offset += seg.len() + 1;
        }
    }
    let n = members.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    let mut lang = vec![Lang::UNKNOWN; n];
    let mut by_key: HashMap<(u32, String), u32> = HashMap::new();
    let mut by_structure: HashMap<(String, u64), u32> = HashMap::new();
    for (d, m) in members.iter().enumerate() {
        let d = d as u32;
        if let Some((i, l)) = language_folder(m.repo, m.path, &en_parents) {
            lang[d as usize] = l;
            let mut segs: Vec<&str> = m.path.split('/').collect();
            segs[i] = "*";
            let first = *by_key.entry((m.repo, segs.join("/"))).or_insert(d);
            union(&mut parent, first, d);
        }
        if let Some(title) = m.title
            && m.headings >= MIN_COPY_HEADINGS
        {
            let key = (title.trim().to_lowercase(), m.structure);
            let first = *by_structure.entry(key).or_insert(d);
            union(&mut parent, first, d);
        }
    }
    // Dense ids for groups of two or more.
    let mut size = vec![0u32; n];
    for d in 0..n as u32 {
        size[find(&mut parent, d) as usize] += 1;
    }
    let mut dense = vec![NONE; n];
    let mut groups = 0usize;
    let mut group = vec![NONE; n];
    for d in 0..n as u32 {
        let root = find(&mut parent, d) as usize;
        if size[root] < 2 {
            continue;
        }
        if dense[root] == NONE {
            dense[root] = groups as u32;
            groups += 1;
        }
        group[d as usize] = dense[root];
    }
    Grouping {
        group,
        lang,
        groups,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m<'a>(repo: u32, path: &'a str, title: Option<&'a str>, structure: u64) -> Member<'a> {
        Member {
            repo,
            path,
            title,
            structure,
            headings: 4,
        }
    }

    #[test]
    fn translations_and_copies() {
        let members = [
            m(0, "content/en/docs/a.md", Some("A"), 1),
            m(0, "content/fr/docs/a.md", Some("Á"), 2),
            m(0, "content/ja/docs/a.md", Some("エー"), 3),
            m(0, "content/fr/docs/only-fr.md", None, 0),
            m(0, "content/en/docs/b.md", Some("Redaction"), 7),
            m(1, "docs/logs/redaction/README.md", Some("Redaction"), 7),
            m(1, "docs/go/a.md", Some("Other"), 9),
            m(1, "docs/logs/README.md", Some("Redaction"), 8),
        ];
        let g = group(&members);
        assert_eq!(g.groups, 2);
        let (t, c) = (g.group[0], g.group[4]);
        assert_ne!(t, NONE);
        assert_eq!(&g.group[..3], &[t, t, t]);
        assert_eq!(g.group[3], NONE, "no English original");
        assert_eq!(g.group[5], c, "same title and headings");
        assert_eq!(g.group[6], NONE, "go/ is no language folder");
        assert_eq!(g.group[7], NONE, "same title, other headings");
        assert_eq!(g.lang[1], Lang::from_folder("fr").unwrap());
        assert_eq!(g.lang[0], Lang::EN);
        assert_eq!(g.lang[5], Lang::UNKNOWN);
    }
}
