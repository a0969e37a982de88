//! Snippets: a short, readable excerpt of a section centred on the words
//! that matched a query. Markup is stripped only lightly (fence lines,
//! HTML tags, link targets, emphasis); the excerpt is never rendered.

use super::markdown::clean_inline;
use super::tokenize::tokenize;
use std::collections::HashSet;

/// Length of the excerpt in bytes (roughly characters for Latin text).
const SNIPPET_BYTES: usize = 260;
/// Context kept before the first matched word.
const LEAD_BYTES: usize = 70;

/// Section text as one line of prose: fence markers and heading/quote
/// markers dropped, inline markup cleaned, whitespace collapsed.
pub fn plain_text(section: &str) -> String {
    let mut joined = String::with_capacity(section.len());
    for line in section.lines() {
        let t = line.trim();
        if t.starts_with("```") || t.starts_with("~~~") || t.starts_with("<!--") {
            continue;
        }
        let t = t.trim_start_matches(['#', '>']).trim_start();
        if t.is_empty()
            || t.bytes()
                .all(|b| matches!(b, b'-' | b'=' | b'|' | b':' | b' '))
        {
            continue; // rules, underlines, table separators
        }
        joined.push_str(t);
        joined.push(' ');
    }
    clean_inline(&joined)
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// An excerpt of `section` around the densest cluster of `terms` (normalised
/// query terms), with "…" where text was cut.
pub fn snippet(section: &str, terms: &HashSet<String>) -> String {
    let text = plain_text(section);
    let mut hits: Vec<(usize, usize)> = Vec::new(); // (byte start, term index)
    let term_list: Vec<&String> = terms.iter().collect();
    tokenize(&text, |t, s, _| {
        if let Some(i) = term_list.iter().position(|q| q.as_str() == t) {
            hits.push((s, i));
        }
    });
    // Best window: most distinct terms, then most hits, then earliest.
    let mut best = (0usize, 0usize, 0usize); // (distinct, hits, start byte)
    let mut seen = vec![0usize; term_list.len()];
    for i in 0..hits.len() {
        seen.iter_mut().for_each(|s| *s = 0);
        let mut k = i;
        while k < hits.len() && hits[k].0 < hits[i].0 + SNIPPET_BYTES - LEAD_BYTES {
            seen[hits[k].1] += 1;
            k += 1;
        }
        let distinct = seen.iter().filter(|&&c| c > 0).count();
        let n = k - i;
        if (distinct, n) > (best.0, best.1) {
            best = (distinct, n, hits[i].0);
        }
    }
    let centre = best.2;
    let mut start = floor_boundary(&text, centre.saturating_sub(LEAD_BYTES));
    if start > 0 {
        // Begin at a word boundary when one is close.
        if let Some(sp) = text[start..centre].find(' ') {
            start += sp + 1;
        }
    }
    let mut end = floor_boundary(&text, start + SNIPPET_BYTES);
    if end < text.len()
        && let Some(sp) = text[start..end].rfind(' ')
        && sp > SNIPPET_BYTES / 2
    {
        end = start + sp;
    }
    let mut out = String::with_capacity(end - start + 8);
    if start > 0 {
        out.push('…');
    }
    out.push_str(text[start..end].trim());
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(words: &[&str]) -> HashSet<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn centred_on_the_match() {
        let text = format!(
            "{} The batch processor groups spans before export. {}",
            "filler words here. ".repeat(40),
            "more filler text. ".repeat(40)
        );
        let s = snippet(&text, &set(&["batch", "processor"]));
        assert!(s.contains("batch processor"), "{s}");
        assert!(s.starts_with('…') && s.ends_with('…'));
        assert!(s.len() < 300, "{}", s.len());
    }

    #[test]
    fn markup_is_stripped() {
        let text = "```yaml\nexporters:\n  otlp: {}\n```\n<div class=\"x\">See [the **docs**](https://x.y/z) for otlp.</div>\n";
        let s = snippet(text, &set(&["otlp"]));
        assert_eq!(s, "exporters: otlp: {} See the docs for otlp.");
    }

    #[test]
    fn cjk_text_cut_on_char_boundaries() {
        let text = "トレースは、リクエストがアプリケーションに投げられたときに何が起こるかの全体像を教えてくれます。".repeat(10);
        let s = snippet(&text, &set(&["全体"]));
        assert!(s.contains("全体像"));
    }

    #[test]
    fn no_match_gives_the_beginning() {
        assert_eq!(snippet("Short text.", &set(&["zzz"])), "Short text.");
    }
}
