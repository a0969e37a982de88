//! Passages: the one to three sentences of a text that carry the most query
//! weight, from anywhere in it, as clean prose. Search results show one as
//! their snippet; offline answers show a longer one of the top document.
//!
//! Text is cut into clean units (sentences, list items, table rows, code
//! blocks) by [`super::markdown::prose`], which drops the markup noise; a
//! passage is one to three consecutive units of one section. The result is
//! plain text, never rendered.

use super::markdown::prose::{Unit, units};
use super::markdown::shorten;
use super::tokenize::tokenize;

/// Length of a search result's snippet, in characters.
pub const SNIPPET_CHARS: usize = 300;
/// Units in one passage, at most.
const MAX_UNITS: usize = 3;
/// A code block weighs this much of prose with the same words: it can be the
/// answer ("set `otel.javaagent.logging`"), but prose explains it.
const CODE_WEIGHT: f32 = 0.6;

/// Text cut to `max` characters at a word boundary around byte `centre`.
fn cut_around(text: &str, centre: usize, max: usize) -> String {
    let chars = text.chars().count();
    if chars <= max {
        return text.to_string();
    }
    // Start a little before the match, on a word boundary.
    let lead = max / 4;
    let centre_char = text[..centre.min(text.len())].chars().count();
    let start_char = centre_char.saturating_sub(lead).min(chars - max);
    let byte = |c: usize| text.char_indices().nth(c).map_or(text.len(), |(i, _)| i);
    let mut start = byte(start_char);
    if start > 0
        && let Some(sp) = text[start..].find(' ')
        && sp < lead
    {
        start += sp + 1;
    }
    // `shorten` may add "…" after its limit; the lead "…" is one more.
    let room = max.saturating_sub(1 + usize::from(start > 0)).max(1);
    let mut s = shorten(&text[start..], room);
    if start > 0 {
        s.insert(0, '…');
    }
    s
}

/// The best passage of `text` for weighted query `terms`, at most
/// `max_chars` characters; empty when the text has no words at all.
pub fn best_passage(text: &str, terms: &[(String, f32)], max_chars: usize) -> String {
    choose(&units(text), terms, max_chars)
}

fn choose(units: &[Unit], terms: &[(String, f32)], max_chars: usize) -> String {
    if units.is_empty() {
        return String::new();
    }
    // A snippet is one to three sentences; a longer passage (the offline
    // answer's) may take one more sentence per ~100 characters it allows.
    let max_units = MAX_UNITS.max(max_chars / 100);
    // Per unit: (term index, byte offset) of each match.
    let matches: Vec<Vec<(usize, usize)>> = units
        .iter()
        .map(|u| {
            let mut m = Vec::new();
            tokenize(&u.text, |tok| {
                if let Some(i) = terms.iter().position(|(t, _)| t == tok.term) {
                    m.push((i, tok.start));
                }
            });
            m
        })
        .collect();
    // Best window of 1..=max_units consecutive units of one section: the
    // most weight of distinct query words, then the fewest units, then the
    // most repeats.
    let mut best: Option<((f32, usize, f32), usize)> = None; // (key, first)
    let mut seen = vec![0u32; terms.len()];
    for first in 0..units.len() {
        if matches[first].is_empty() {
            continue; // a window starts with a match; context comes after
        }
        seen.iter_mut().for_each(|s| *s = 0);
        let (mut distinct, mut repeats, mut len) = (0f32, 0f32, 0usize);
        for count in 1..=max_units {
            let i = first + count - 1;
            let Some(u) = units.get(i) else { break };
            if u.section != units[first].section {
                break;
            }
            len += u.text.chars().count() + usize::from(count > 1);
            if count > 1 && len > max_chars {
                break;
            }
            let k = if u.code { CODE_WEIGHT } else { 1.0 };
            for &(t, _) in &matches[i] {
                let w = terms[t].1.max(0.0) * k;
                if seen[t] == 0 {
                    distinct += w;
                } else {
                    repeats += w;
                }
                seen[t] += 1;
            }
            if matches[i].is_empty() {
                continue; // nor does it end with a unit without one
            }
            let better = match best {
                None => true,
                Some(((d, c, r), _)) => {
                    distinct > d + 1e-4
                        || ((distinct - d).abs() <= 1e-4
                            && (count < c || (count == c && repeats > r + 1e-4)))
                }
            };
            if better && distinct > 0.0 {
                best = Some(((distinct, count, repeats), first));
            }
        }
    }
    let (first, mut count) = match best {
        Some(((_, c, _), f)) => (f, c),
        None => (units.iter().position(|u| !u.code).unwrap_or_default(), 1),
    };
    // A short passage gets the sentences that follow it in its block.
    let mut len: usize = units[first..first + count]
        .iter()
        .map(|u| u.text.chars().count() + 1)
        .sum();
    let fill = if max_units > MAX_UNITS {
        max_chars
    } else {
        max_chars / 2
    };
    while count < max_units
        && let Some(next) = units.get(first + count)
        && next.block == units[first + count - 1].block
        && len + next.text.chars().count() < fill
    {
        len += next.text.chars().count() + 1;
        count += 1;
    }
    let chosen = &units[first..first + count];
    let joined = chosen
        .iter()
        .map(|u| u.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let centre = matches[first].first().map_or(0, |m| m.1);
    cut_around(&joined, centre, max_chars)
}

/// The passage of any Markdown or reStructuredText `text` (a section or a
/// whole document) that best answers `query`, cleaned of markup and at most
/// `max_chars` characters. Needs no index: a query word weighs more when it
/// is rare among the text's sentences. Offline answers use it to show the
/// answer of the top document. Empty when no query word is in the text.
pub fn passage(text: &str, query: &str, max_chars: usize) -> String {
    let query = &query[..super::index::floor_boundary(query, super::index::MAX_QUERY_BYTES)];
    let mut terms: Vec<(String, f32)> = Vec::new();
    tokenize(query, |tok| {
        if terms.len() < super::index::MAX_QUERY_TERMS && !terms.iter().any(|t| t.0 == tok.term) {
            terms.push((tok.term.to_string(), 1.0));
        }
    });
    // Weights by rarity among the text's units.
    let units = units(text);
    let mut df = vec![0usize; terms.len()];
    for u in &units {
        let mut here = vec![false; terms.len()];
        tokenize(&u.text, |tok| {
            if let Some(i) = terms.iter().position(|t| t.0 == tok.term) {
                here[i] = true;
            }
        });
        for (d, h) in df.iter_mut().zip(here) {
            *d += usize::from(h);
        }
    }
    if df.iter().all(|d| *d == 0) {
        return String::new();
    }
    let n = units.len().max(1) as f32;
    for (t, d) in terms.iter_mut().zip(df) {
        t.1 = (1.0 + n / (1.0 + d as f32)).ln();
    }
    choose(&units, &terms, max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(words: &[&str]) -> Vec<(String, f32)> {
        words.iter().map(|w| (w.to_string(), 1.0)).collect()
    }

    #[test]
    fn the_sentence_that_answers_from_anywhere() {
        let text = format!(
            "{}\n\nThe batch processor groups spans before export. It flushes on a timer.\n\n{}",
            "Filler words here. ".repeat(40),
            "More filler text. ".repeat(40)
        );
        let s = best_passage(&text, &w(&["batch", "processor"]), SNIPPET_CHARS);
        assert!(
            s.starts_with("The batch processor groups spans before export."),
            "{s}"
        );
        assert!(s.chars().count() <= SNIPPET_CHARS);
    }

    #[test]
    fn more_query_weight_wins_over_the_first_match() {
        let text = "Sampling is mentioned here first.\n\nSomething else entirely.\n\n\
                    Tail sampling waits for the whole trace before deciding.";
        let s = passage(text, "tail sampling whole trace", SNIPPET_CHARS);
        assert!(s.starts_with("Tail sampling waits"), "{s}");
    }

    #[test]
    fn markup_noise_is_dropped() {
        let text = "\
[![PkgGoDev](https://pkg.go.dev/badge/x)](https://pkg.go.dev/x)
[![Build](https://ci/badge.svg)](https://ci) [![Cov](https://c/b.svg)](https://c)

.. |pypi| image:: https://badge.fury.io/py/x.svg
   :target: https://pypi.org/project/x/

<p align=\"center\"><img src=\"logo.png\"></p>

<!-- a comment
over lines -->

[Docs](https://d) | [Issues](https://i)

Set `otel.javaagent.logging` to `application` to use the **application** logger.

[logger]: https://example.com/logger
";
        let s = passage(text, "javaagent logging", SNIPPET_CHARS);
        assert_eq!(
            s,
            "Set otel.javaagent.logging to application to use the application logger."
        );
        for noise in [
            "PkgGoDev", "target", "pypi", "img", "comment", "Docs", "https",
        ] {
            assert!(!s.contains(noise), "{noise} in {s}");
        }
    }

    #[test]
    fn rst_links_and_directives() {
        let text = "Installation\n------------\n\n.. code-block:: sh\n\n    pip install x\n\n\
                    See `the guide <https://x.y/guide>`_ and ``opentelemetry-instrument`` to run it.\n";
        let s = passage(text, "guide run", SNIPPET_CHARS);
        assert_eq!(s, "See the guide and opentelemetry-instrument to run it.");
        let code = passage(text, "pip install", SNIPPET_CHARS);
        assert_eq!(code, "pip install x");
    }

    #[test]
    fn front_matter_headings_and_shortcodes() {
        let text = "---\ntitle: Agent\nweight: 3\n---\n\n## Logging\n\n\
                    {{% config_option name=\"otel.javaagent.logging\" %}} The agent logging mode. {{% /config_option %}}\n";
        let s = passage(text, "agent logging mode", 800);
        assert_eq!(s, "otel.javaagent.logging The agent logging mode.");
    }

    #[test]
    fn tables_are_rows() {
        let text = "| Name | Default |\n|---|---|\n| OTEL_BSP_SCHEDULE_DELAY | 5000 |\n| OTEL_BSP_MAX_QUEUE_SIZE | 2048 |\n";
        let s = passage(text, "OTEL_BSP_SCHEDULE_DELAY", SNIPPET_CHARS);
        assert!(s.starts_with("OTEL_BSP_SCHEDULE_DELAY | 5000"), "{s}");
    }

    #[test]
    fn long_sentences_are_cut_around_the_match_on_char_boundaries() {
        let text = "トレースは、リクエストがアプリケーションに投げられたときに何が起こるかの全体像を教えてくれます".repeat(10);
        let s = passage(&text, "全体像", 100);
        assert!(s.contains("全体像"), "{s}");
        assert!(s.chars().count() <= 100);
        let long = format!("{} needle {}", "word ".repeat(200), "word ".repeat(200));
        let s = best_passage(&long, &w(&["needl"]), SNIPPET_CHARS);
        assert!(
            s.contains("needle") && s.starts_with('…') && s.ends_with('…'),
            "{s}"
        );
        assert!(s.chars().count() <= SNIPPET_CHARS);
    }

    #[test]
    fn no_match_gives_nothing() {
        assert_eq!(passage("Short text. Second.", "zzz", 300), "");
        assert_eq!(passage("```\n```\n\n---\n", "zzz", 300), "");
    }
}
