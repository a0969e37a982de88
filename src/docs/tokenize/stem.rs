//! The Snowball English stemmer ("Porter2"), step by step as `english.sbl`
//! of Snowball 3 defines it, for words of ASCII lowercase letters.
//!
//! A standard algorithm instead of a home-made suffix list: it joins the
//! plural, verb and -ation families ("ids"/"id", "configure"/"configured"/
//! "configuration", "exporters"/"exporting"/"export") by rules that were
//! tested on large vocabularies, and its mistakes are well known. Written
//! here because it is small; the unit tests pin words whose stems were
//! checked against the reference implementation.

use std::cell::RefCell;
use std::collections::HashMap;

fn is_v(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

/// Vowels plus w, x and Y: letters that cannot end a short syllable.
fn is_v_wxy(c: u8) -> bool {
    is_v(c) || matches!(c, b'w' | b'x' | b'Y')
}

fn valid_li(c: u8) -> bool {
    matches!(
        c,
        b'c' | b'd' | b'e' | b'g' | b'h' | b'k' | b'm' | b'n' | b'r' | b't'
    )
}

/// Stems of recent words, per thread: an index build stems every word of
/// every document, and a few thousand words make most of any text.
const CACHE_ENTRIES: usize = 16 * 1024;

thread_local! {
    static CACHE: RefCell<HashMap<Box<str>, Box<str>>> = RefCell::new(HashMap::new());
}

/// Stems `word` in place when it is made of ASCII lowercase letters only.
pub fn stem(word: &mut String) {
    if word.len() < 3 || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return;
    }
    let hit = CACHE.with(|c| match c.borrow().get(word.as_str()) {
        Some(s) => {
            word.clear();
            word.push_str(s);
            true
        }
        None => false,
    });
    if hit {
        return;
    }
    let original: Box<str> = word.as_str().into();
    stem_uncached(word);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(original, word.as_str().into());
    });
}

fn stem_uncached(word: &mut String) {
    let mut w = std::mem::take(word).into_bytes();
    // Words the algorithm leaves alone or maps by hand.
    let fixed: Option<&[u8]> = match w.as_slice() {
        b"andes" | b"atlas" | b"bias" | b"cosmos" | b"howe" | b"news" | b"sky" => None,
        b"skis" => Some(b"ski"),
        b"skies" => Some(b"sky"),
        b"idly" => Some(b"idl"),
        b"gently" => Some(b"gentl"),
        b"ugly" => Some(b"ugli"),
        b"early" => Some(b"earli"),
        b"only" => Some(b"onli"),
        b"singly" => Some(b"singl"),
        _ => {
            stem_bytes(&mut w);
            None
        }
    };
    if let Some(f) = fixed {
        w.clear();
        w.extend_from_slice(f);
    }
    // Only ASCII letters went in, and only ASCII letters come out.
    *word = String::from_utf8(w).unwrap_or_default();
}

/// The index after the first non-vowel that follows a vowel, from `from`.
fn region_after(w: &[u8], from: usize) -> usize {
    let n = w.len();
    let mut i = from;
    while i < n && !is_v(w[i]) {
        i += 1;
    }
    if i >= n {
        return n;
    }
    i += 1;
    while i < n && is_v(w[i]) {
        i += 1;
    }
    if i >= n { n } else { i + 1 }
}

/// Whether `w[..end]` ends in a short syllable.
fn short_v(w: &[u8], end: usize) -> bool {
    let b = &w[..end];
    let n = b.len();
    (n >= 3 && !is_v_wxy(b[n - 1]) && is_v(b[n - 2]) && !is_v(b[n - 3]))
        || (n == 2 && !is_v(b[1]) && is_v(b[0]))
        || ends(b, b"past")
}

fn has_vowel(b: &[u8]) -> bool {
    b.iter().any(|&c| is_v(c))
}

/// `w.ends_with(s)`, last byte first: most candidate suffixes fail there,
/// and this runs for every word of every document.
fn ends(w: &[u8], s: &[u8]) -> bool {
    w.len() >= s.len() && w.iter().rev().zip(s.iter().rev()).all(|(a, b)| a == b)
}

/// The longest of `suffixes` that `w` ends with.
fn longest<'a>(w: &[u8], suffixes: &[&'a str]) -> Option<&'a str> {
    suffixes
        .iter()
        .filter(|s| ends(w, s.as_bytes()))
        .max_by_key(|s| s.len())
        .copied()
}

/// The longest of `suffixes` that `w` ends with, and where it starts, when
/// it starts inside the region beginning at `region`.
fn suffix_in<'a>(w: &[u8], suffixes: &[&'a str], region: usize) -> Option<(&'a str, usize)> {
    let s = longest(w, suffixes)?;
    let start = w.len() - s.len();
    (start >= region).then_some((s, start))
}

fn replace_suffix(w: &mut Vec<u8>, suffix_len: usize, with: &str) {
    w.truncate(w.len() - suffix_len);
    w.extend_from_slice(with.as_bytes());
}

fn stem_bytes(w: &mut Vec<u8>) {
    // Prelude: a y that acts as a consonant becomes Y.
    let mut y_found = false;
    if w[0] == b'y' {
        w[0] = b'Y';
        y_found = true;
    }
    for i in 0..w.len() - 1 {
        if is_v(w[i]) && w[i + 1] == b'y' {
            w[i + 1] = b'Y';
            y_found = true;
        }
    }
    // Regions.
    const PREFIXES: [&str; 9] = [
        "arsen", "commun", "emerg", "gener", "inter", "later", "organ", "past", "univers",
    ];
    let p1 = PREFIXES
        .iter()
        .filter(|p| w.starts_with(p.as_bytes()))
        .map(|p| p.len())
        .max()
        .unwrap_or_else(|| region_after(w, 0));
    let p2 = region_after(w, p1);

    step_1a(w);
    step_1b(w, p1);
    step_1c(w);
    step_2(w, p1);
    step_3(w, p1, p2);
    step_4(w, p2);
    step_5(w, p1, p2);

    if y_found {
        for c in w.iter_mut() {
            if *c == b'Y' {
                *c = b'y';
            }
        }
    }
}

fn step_1a(w: &mut Vec<u8>) {
    let Some(s) = longest(w, &["ied", "s", "ies", "sses", "ss", "us"]) else {
        return;
    };
    let start = w.len() - s.len();
    match s {
        "sses" => replace_suffix(w, 4, "ss"),
        "ied" | "ies" => replace_suffix(w, 3, if start >= 2 { "i" } else { "ie" }),
        "s" if start >= 1 && has_vowel(&w[..start - 1]) => {
            w.pop();
        }
        _ => {} // "ss", "us"
    }
}

fn step_1b(w: &mut Vec<u8>, p1: usize) {
    let Some(s) = longest(w, &["ed", "eed", "ing", "edly", "eedly", "ingly"]) else {
        return;
    };
    let start = w.len() - s.len();
    match s {
        "eed" | "eedly" => {
            let whole_word_exception = matches!(&w[..start], b"succ" | b"proc" | b"exc");
            if start >= p1 && !whole_word_exception {
                replace_suffix(w, s.len(), "ee");
            }
            return;
        }
        "ing" => {
            let before = &w[..start];
            if ends(before, b"y") {
                // "dying", "lying", "tying": consonant + "ying" is the whole word.
                if before.len() == 2 && !is_v(before[0]) {
                    replace_suffix(w, 4, "ie");
                    return;
                }
            } else if matches!(
                before,
                b"even" | b"cann" | b"inn" | b"earr" | b"herr" | b"out"
            ) {
                return;
            }
        }
        _ => {}
    }
    // "ed", "edly", "ingly", and "ing" not handled above: delete when the
    // part before contains a vowel, then tidy the new ending.
    if !has_vowel(&w[..start]) {
        return;
    }
    w.truncate(start);
    let n = w.len();
    if ends(w, b"at") || ends(w, b"bl") || ends(w, b"iz") {
        w.push(b'e');
    } else if n >= 2
        && w[n - 1] == w[n - 2]
        && matches!(
            w[n - 1],
            b'b' | b'd' | b'f' | b'g' | b'm' | b'n' | b'p' | b'r' | b't'
        )
    {
        if !(n == 3 && matches!(w[0], b'a' | b'e' | b'o')) {
            w.pop();
        }
    } else if n == p1 && short_v(w, n) {
        w.push(b'e');
    }
}

fn step_1c(w: &mut [u8]) {
    let n = w.len();
    if n >= 3 && matches!(w[n - 1], b'y' | b'Y') && !is_v(w[n - 2]) {
        w[n - 1] = b'i';
    }
}

fn step_2(w: &mut Vec<u8>, p1: usize) {
    const SUFFIXES: [&str; 25] = [
        "anci", "enci", "ogi", "li", "bli", "abli", "alli", "fulli", "lessli", "ousli", "entli",
        "aliti", "biliti", "iviti", "tional", "ational", "alism", "ation", "ization", "izer",
        "ator", "iveness", "fulness", "ousness", "ogist",
    ];
    let Some((s, start)) = suffix_in(w, &SUFFIXES, p1) else {
        return;
    };
    let with = match s {
        "tional" => "tion",
        "enci" => "ence",
        "anci" => "ance",
        "abli" => "able",
        "entli" => "ent",
        "izer" | "ization" => "ize",
        "ational" | "ation" | "ator" => "ate",
        "alism" | "aliti" | "alli" => "al",
        "fulness" | "fulli" => "ful",
        "ousli" | "ousness" => "ous",
        "iveness" | "iviti" => "ive",
        "biliti" | "bli" => "ble",
        "ogist" => "og",
        "ogi" => {
            if start == 0 || w[start - 1] != b'l' {
                return;
            }
            "og"
        }
        "lessli" => "less",
        _ => {
            // "li"
            if start == 0 || !valid_li(w[start - 1]) {
                return;
            }
            ""
        }
    };
    replace_suffix(w, s.len(), with);
}

fn step_3(w: &mut Vec<u8>, p1: usize, p2: usize) {
    const SUFFIXES: [&str; 9] = [
        "icate", "ative", "alize", "iciti", "ical", "tional", "ational", "ful", "ness",
    ];
    let Some((s, start)) = suffix_in(w, &SUFFIXES, p1) else {
        return;
    };
    let with = match s {
        "tional" => "tion",
        "ational" => "ate",
        "alize" => "al",
        "icate" | "iciti" | "ical" => "ic",
        "ful" | "ness" => "",
        _ => {
            // "ative"
            if start < p2 {
                return;
            }
            ""
        }
    };
    replace_suffix(w, s.len(), with);
}

fn step_4(w: &mut Vec<u8>, p2: usize) {
    const SUFFIXES: [&str; 18] = [
        "ic", "ance", "ence", "able", "ible", "ate", "ive", "ize", "iti", "al", "ism", "ion", "er",
        "ous", "ant", "ent", "ment", "ement",
    ];
    let Some((s, start)) = suffix_in(w, &SUFFIXES, p2) else {
        return;
    };
    if s == "ion" && !(start > 0 && matches!(w[start - 1], b's' | b't')) {
        return;
    }
    w.truncate(start);
}

fn step_5(w: &mut Vec<u8>, p1: usize, p2: usize) {
    let n = w.len();
    match w.last() {
        Some(b'e') => {
            let start = n - 1;
            if start >= p2 || (start >= p1 && !short_v(w, start)) {
                w.pop();
            }
        }
        Some(b'l') if n > p2 && n >= 2 && w[n - 2] == b'l' => {
            w.pop();
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(word: &str) -> String {
        let mut w = word.to_string();
        stem(&mut w);
        w
    }

    /// Stems checked against the reference implementation (Snowball 3).
    #[test]
    fn reference_stems() {
        for (word, want) in [
            ("configure", "configur"),
            ("configured", "configur"),
            ("configuring", "configur"),
            ("configuration", "configur"),
            ("configurations", "configur"),
            ("ids", "id"),
            ("exporters", "export"),
            ("exporter", "export"),
            ("exporting", "export"),
            ("sampling", "sampl"),
            ("sampled", "sampl"),
            ("samples", "sampl"),
            ("sampler", "sampler"),
            ("kubernetes", "kubernet"),
            ("status", "status"),
            ("processes", "process"),
            ("running", "run"),
            ("instrumentation", "instrument"),
            ("instrumented", "instrument"),
            ("generate", "generat"),
            ("generically", "generic"),
            ("operator", "oper"),
            ("libraries", "librari"),
            ("library", "librari"),
            ("dying", "die"),
            ("cries", "cri"),
            ("ties", "tie"),
            ("gaps", "gap"),
            ("gas", "gas"),
            ("hoping", "hope"),
            ("hopping", "hop"),
            ("agreed", "agre"),
            ("succeed", "succeed"),
            ("skies", "sky"),
            ("news", "news"),
            ("enabled", "enabl"),
            ("enable", "enabl"),
            ("disabling", "disabl"),
            ("propagation", "propag"),
            ("propagator", "propag"),
            ("propagate", "propag"),
            ("yaml", "yaml"),
            ("say", "say"),
            ("cry", "cri"),
            ("by", "by"),
        ] {
            assert_eq!(s(word), want, "{word}");
        }
    }

    #[test]
    fn only_plain_lowercase_words() {
        assert_eq!(s("Exporters"), "Exporters");
        assert_eq!(s("v1beta"), "v1beta");
        assert_eq!(s("über"), "über");
        assert_eq!(s("is"), "is");
    }
}
