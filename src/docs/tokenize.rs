//! Turning text into search terms, identically for documents and queries.
//!
//! Words are runs of alphanumeric characters (any script), lowercased, with a
//! light English suffix stripper; camelCase words also yield their parts.
//! Han, Hiragana, Katakana and Hangul have no spaces between words, so their
//! runs become overlapping character bigrams (a lone character stays a
//! unigram). This module deliberately knows nothing of Markdown or scoring.

/// Words that carry no meaning for ranking. Dropped from documents and
/// queries alike, so the index never holds them.
const STOP_WORDS: [&str; 44] = [
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "if", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "so", "that",
    "the", "their", "then", "there", "these", "this", "to", "was", "we", "what", "when", "where",
    "which", "with", "you",
];

/// Longer "words" are hashes, base64 or minified noise, not search terms.
const MAX_WORD_BYTES: usize = 40;

/// Whether a character belongs to a script written without spaces between
/// words (or, for Hangul, with long compounds) and so is indexed as bigrams.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x31F0..=0x31FF    // Katakana phonetic extensions
        | 0x3400..=0x4DBF    // Han extension A
        | 0x4E00..=0x9FFF    // Han
        | 0xF900..=0xFAFF    // Han compatibility
        | 0xFF66..=0xFF9F    // half-width Katakana
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x20000..=0x2FA1F  // Han extensions B and later
    )
}

fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.binary_search(&w).is_ok()
}

/// Strips common English inflections so that "exporters", "exporting" and
/// "exported" meet "export". Only plain ASCII-letter words are touched.
pub fn stem(word: &mut String) {
    if word.len() <= 3 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return;
    }
    let b = word.as_bytes();
    let n = b.len();
    if word.ends_with("ies") && n > 4 {
        word.truncate(n - 3);
        word.push('y');
    } else if word.ends_with("sses") {
        word.truncate(n - 2);
    } else if word.ends_with('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        word.truncate(n - 1);
    } else if word.ends_with("ing") && n > 5 {
        word.truncate(n - 3);
        undouble(word);
    } else if word.ends_with("ed") && n > 4 {
        word.truncate(n - 2);
        undouble(word);
    }
    // "configure" / "configur(ing)": drop a final silent e on longer words.
    if word.len() > 4 && word.ends_with('e') && !word.ends_with("ee") {
        word.pop();
    }
}

/// "running" -> "runn" -> "run"; keeps ll/ss/zz ("install", "process").
fn undouble(word: &mut String) {
    let b = word.as_bytes();
    let n = b.len();
    if n >= 3 && b[n - 1] == b[n - 2] && !matches!(b[n - 1], b'l' | b's' | b'z' | b'e' | b'o') {
        word.pop();
    }
}

/// Calls `emit(term, start, end)` for every search term of `text`, with the
/// byte range of the text it came from. `term` is only valid during the call.
pub fn tokenize(text: &str, mut emit: impl FnMut(&str, usize, usize)) {
    let mut buf = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if is_cjk(c) {
            // A run of CJK characters: overlapping bigrams.
            let mut prev: Option<(usize, char)> = None;
            let mut count = 0;
            while let Some(&(i, c)) = chars.peek() {
                if !is_cjk(c) {
                    break;
                }
                chars.next();
                if let Some((pi, pc)) = prev {
                    buf.clear();
                    buf.push(pc);
                    buf.push(c);
                    emit(&buf, pi, i + c.len_utf8());
                }
                prev = Some((i, c));
                count += 1;
            }
            if count == 1
                && let Some((pi, pc)) = prev
            {
                buf.clear();
                buf.push(pc);
                emit(&buf, pi, pi + pc.len_utf8());
            }
        } else if c.is_alphanumeric() {
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if !c.is_alphanumeric() || is_cjk(c) {
                    break;
                }
                chars.next();
                end = i + c.len_utf8();
            }
            word_terms(&text[start..end], start, &mut buf, &mut emit);
        } else {
            chars.next();
        }
    }
}

/// Emits a word, and for camelCase words also each part ("TracerProvider"
/// yields "tracerprovider", "tracer", "provider").
fn word_terms(
    word: &str,
    start: usize,
    buf: &mut String,
    emit: &mut impl FnMut(&str, usize, usize),
) {
    if word.len() > MAX_WORD_BYTES {
        return;
    }
    emit_word(word, start, buf, emit);
    let b = word.as_bytes();
    if !word.is_ascii() || b.len() < 4 {
        return;
    }
    let mut part_start = 0;
    let mut parts = 0;
    for i in 1..b.len() {
        if b[i].is_ascii_uppercase() && b[i - 1].is_ascii_lowercase() {
            parts += 1;
            emit_word(&word[part_start..i], start + part_start, buf, emit);
            part_start = i;
        }
    }
    if parts > 0 {
        emit_word(&word[part_start..], start + part_start, buf, emit);
    }
}

fn emit_word(
    word: &str,
    start: usize,
    buf: &mut String,
    emit: &mut impl FnMut(&str, usize, usize),
) {
    buf.clear();
    if word.is_ascii() {
        buf.push_str(word);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(word.chars().flat_map(char::to_lowercase));
    }
    // Stop words, and lone Latin letters (the "s" of "collector's").
    if is_stop_word(buf) || (buf.len() == 1 && buf.as_bytes()[0].is_ascii_alphabetic()) {
        return;
    }
    stem(buf);
    emit(buf, start, start + word.len());
}

/// The terms of a text as owned strings (queries, tests).
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    tokenize(text, |t, _, _| out.push(t.to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted() {
        let mut s = STOP_WORDS;
        s.sort();
        assert_eq!(s, STOP_WORDS);
    }

    #[test]
    fn words_lowercase_and_split() {
        assert_eq!(
            terms("OTEL_EXPORTER_OTLP_ENDPOINT, http.server.duration!"),
            [
                "otel", "exporter", "otlp", "endpoint", "http", "server", "duration"
            ]
        );
        assert_eq!(terms("The Über café"), ["über", "café"]);
    }

    #[test]
    fn stemming_joins_inflections() {
        for (a, b) in [
            ("exporters", "exporter"),
            ("configuring", "configure"),
            ("configured", "configuration"),
            ("libraries", "library"),
            ("running", "run"),
            ("processes", "process"),
        ] {
            let (ta, tb) = (terms(a), terms(b));
            if (a, b) == ("configured", "configuration") {
                assert_ne!(ta, tb); // different words stay different
            } else {
                assert_eq!(ta, tb, "{a} vs {b}");
            }
        }
        assert_eq!(terms("status"), ["status"]);
        assert_eq!(terms("install"), ["install"]);
    }

    #[test]
    fn camel_case_parts() {
        assert_eq!(
            terms("TracerProvider"),
            ["tracerprovider", "tracer", "provider"]
        );
        assert_eq!(terms("HTTP"), ["http"]);
    }

    #[test]
    fn cjk_bigrams_with_offsets() {
        let mut out = Vec::new();
        tokenize("トレース。可 xy", |t, s, e| {
            out.push((t.to_string(), s, e))
        });
        assert_eq!(
            out,
            [
                ("トレ".to_string(), 0, 6),
                ("レー".to_string(), 3, 9),
                ("ース".to_string(), 6, 12),
                ("可".to_string(), 15, 18),
                ("xy".to_string(), 19, 21),
            ]
        );
        // Mixed script: the Latin word and the Han run are separate tokens.
        assert_eq!(
            terms("使用OpenTelemetry收集"),
            ["使用", "opentelemetry", "open", "telemetry", "收集"]
        );
        // Korean
        assert_eq!(terms("추적"), ["추적"]);
    }

    #[test]
    fn lone_latin_letters_dropped() {
        assert_eq!(terms("collector's X y 7"), ["collector", "7"]);
    }

    #[test]
    fn long_noise_dropped() {
        assert!(terms(&"a1".repeat(30)).is_empty());
    }
}
