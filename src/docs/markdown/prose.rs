//! Prose of a Markdown or reStructuredText text, without its markup noise:
//! the units (sentences of paragraphs, list items, table rows, code blocks)
//! that snippets and descriptions are made of.
//!
//! Dropped: front matter, HTML tags, blocks and comments, badges and images,
//! link-only rows, reference definitions, reStructuredText directives with
//! their options, Hugo shortcodes, headings (they end a section) and rules.

use super::{clean_inline, closing, content_start, is_adornment};

/// Code blocks longer than this are cut before they become a unit.
const MAX_CODE_UNIT_CHARS: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub text: String,
    /// A code block (or rst literal block), flattened to one line.
    pub code: bool,
    /// Quoted (`> ...`): a note or a warning rather than the text itself.
    pub quote: bool,
    /// Units of one block (paragraph, list item run, table, code block)
    /// share a number; a heading starts a new section number.
    pub block: u32,
    pub section: u32,
}

impl Unit {
    /// A code block's text, flattened and cut.
    fn code(text: &str, block: u32, section: u32) -> Unit {
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        Unit {
            text: super::shorten(&flat, MAX_CODE_UNIT_CHARS),
            code: true,
            quote: false,
            block,
            section,
        }
    }
}

/// Words that end with a period without ending a sentence.
const ABBREVIATIONS: [&str; 8] = ["e.g", "i.e", "vs", "etc", "cf", "approx", "no", "eg"];

/// Splits cleaned prose into sentences.
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let end = i + c.len_utf8();
        let split = match c {
            '。' | '！' | '？' => true,
            '.' | '?' | '!' => {
                let next = iter.peek().map(|&(_, n)| n);
                let next_next = text[end..].chars().nth(1);
                let before = text[start..i]
                    .rsplit(|ch: char| ch.is_whitespace())
                    .next()
                    .unwrap_or("");
                next == Some(' ')
                    && next_next.is_some_and(|n| n.is_uppercase() || n.is_numeric() || n == '`')
                    && !ABBREVIATIONS.contains(&before.to_lowercase().as_str())
            }
            _ => false,
        };
        if split {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let s = text[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// Hugo shortcodes (`{{% tab %}}`, `{{< figure >}}`) dropped; the `name` of
/// a `config_option` kept, since it is the option being described.
fn strip_shortcodes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(close) = after.find("}}") else {
            rest = after;
            break;
        };
        let inner = &after[..close];
        if let Some(n) = inner.find("name=\"") {
            let v = &inner[n + 6..];
            if let Some(e) = v.find('"') {
                out.push_str(&v[..e]);
                out.push(' ');
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Whether a cleaned line says nothing: only punctuation, separators or
/// badge leftovers once links and images are gone.
fn is_noise(clean: &str) -> bool {
    !clean.chars().any(char::is_alphanumeric)
        || matches!(clean.trim(), "PkgGoDev" | "Go Reference" | "GoDoc")
}

/// Whether a raw line is links and images only (a badge row, a link row).
fn is_link_row(line: &str) -> bool {
    let t = line
        .trim()
        .trim_start_matches(['-', '*', '+', '|'])
        .trim_start();
    if !(t.starts_with('[') || t.starts_with("![") || t.starts_with('`')) {
        return false;
    }
    // Remove every [text](url), [text][ref], ![alt](src) and `text <url>`_,
    // and see whether any words are left.
    let mut rest = t;
    let mut left = false;
    while let Some(c) = rest.chars().next() {
        if c == '`'
            && let Some(e) = rest[1..].find(">`_")
            && rest[1..1 + e].contains(" <")
        {
            rest = rest[1 + e + 3..].trim_start_matches('_');
            continue;
        }
        let open = usize::from(rest.starts_with("!["));
        if rest[open..].starts_with('[')
            && let Some(close) = closing(rest, open)
        {
            let after = &rest[close..];
            let target = match after.as_bytes().first() {
                Some(b'(' | b'[') => closing(after, 0),
                _ => None,
            };
            if let Some(skip) = target {
                rest = &after[skip..];
                continue;
            }
        }
        left |= c.is_alphanumeric();
        rest = &rest[c.len_utf8()..];
    }
    !left
}

fn is_list_item(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() >= 2 && matches!(b[0], b'-' | b'*' | b'+') && b[1] == b' ' {
        return true;
    }
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    digits > 0 && digits < 4 && b.get(digits) == Some(&b'.') && b.get(digits + 1) == Some(&b' ')
}

/// Cuts `text` (Markdown or reStructuredText) into clean units.
pub fn units(text: &str) -> Vec<Unit> {
    let mut out: Vec<Unit> = Vec::new();
    let (mut block, mut section) = (0u32, 0u32);
    let mut para = String::new();
    let mut para_is_table = false;
    let mut para_quote = false;
    let push_para = |para: &mut String,
                     quote: &mut bool,
                     out: &mut Vec<Unit>,
                     block: &mut u32,
                     section: u32| {
        if !para.trim().is_empty() {
            let clean = clean_inline(para);
            for s in sentences(&clean) {
                if !is_noise(s) {
                    out.push(Unit {
                        text: s.to_string(),
                        code: false,
                        quote: *quote,
                        block: *block,
                        section,
                    });
                }
            }
        }
        para.clear();
        *quote = false;
        *block += 1;
    };
    let mut code: Option<(String, String)> = None; // (fence marker, text)
    let mut in_comment = false;
    // Inside an HTML tag that spans lines (`<img` then `src=...` lines).
    let mut in_tag = false;
    // reStructuredText: inside a directive's indented options/body.
    let mut rst_block: Option<bool> = None; // Some(is_code)
    let mut literal_next = false;
    let lines: Vec<&str> = text[content_start(text)..].lines().collect();
    for (n, raw) in lines.iter().enumerate() {
        let line = raw.trim_end();
        let t = line.trim_start();
        // Fenced code.
        if let Some((fence, body)) = &mut code {
            if t.starts_with(fence.as_str()) {
                let body = std::mem::take(body);
                code = None;
                if !body.trim().is_empty() {
                    out.push(Unit::code(&body, block, section));
                }
                block += 1;
            } else if body.len() < MAX_CODE_UNIT_CHARS * 2 {
                body.push_str(t);
                body.push(' ');
            }
            continue;
        }
        if t.starts_with("```") || t.starts_with("~~~") {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            code = Some((t[..3].to_string(), String::new()));
            continue;
        }
        // HTML comments, possibly over several lines.
        if in_comment {
            if t.contains("-->") {
                in_comment = false;
            }
            continue;
        }
        if t.starts_with("<!--") {
            in_comment = !t.contains("-->");
            continue;
        }
        if in_tag {
            in_tag = !t.contains('>');
            continue;
        }
        if t.starts_with('<')
            && t[1..].starts_with(|c: char| c.is_ascii_alphabetic())
            && !t.contains('>')
        {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            in_tag = true;
            continue;
        }
        // reStructuredText directives and literal blocks.
        if let Some(is_code) = rst_block {
            if t.is_empty() || line.starts_with([' ', '\t']) {
                if is_code && !t.is_empty() && !t.starts_with(':') {
                    para.push_str(t);
                    para.push(' ');
                }
                continue;
            }
            if is_code {
                let body = std::mem::take(&mut para);
                out.push(Unit::code(&body, block, section));
                block += 1;
            }
            rst_block = None;
        }
        if let Some(d) = t.strip_prefix(".. ") {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            let is_code = d.starts_with("code") || d.starts_with("sourcecode");
            rst_block = Some(is_code);
            continue;
        }
        if literal_next && line.starts_with([' ', '\t']) {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            rst_block = Some(true);
            para.push_str(t);
            para.push(' ');
            literal_next = false;
            continue;
        }
        if !t.is_empty() {
            literal_next = false;
        }
        // Headings end a section; adornments and rules are not text.
        let next_is_underline = lines
            .get(n + 1)
            .is_some_and(|l| is_adornment(l.trim()) && !t.is_empty());
        if t.starts_with('#') && t.trim_start_matches('#').starts_with([' ', '\t'])
            || next_is_underline
        {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            section += 1;
            continue;
        }
        if t.is_empty() || is_adornment(t) {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            continue;
        }
        // Reference definitions, link rows and badges.
        let is_ref_def = t.starts_with('[') && t.find("]:").is_some_and(|i| !t[..i].contains(']'));
        if is_ref_def || is_link_row(t) {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            continue;
        }
        // Tables: one unit per row, separator rows dropped.
        if t.starts_with('|') {
            if !para_is_table {
                push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
            }
            para_is_table = true;
            if t.bytes().all(|b| matches!(b, b'-' | b'|' | b':' | b' ')) {
                continue;
            }
            let cells: Vec<String> = t
                .trim_matches('|')
                .split('|')
                .map(|c| clean_inline(&strip_shortcodes(c)))
                .filter(|c| !c.is_empty())
                .collect();
            let row = cells.join(" | ");
            if !is_noise(&row) {
                out.push(Unit {
                    text: row,
                    code: false,
                    quote: false,
                    block,
                    section,
                });
            }
            continue;
        }
        if para_is_table {
            para_is_table = false;
            block += 1;
        }
        if para.is_empty() {
            para_quote = t.starts_with('>');
        }
        let body = t.trim_start_matches('>').trim_start();
        // GitHub admonitions: "> [!NOTE]".
        let body = body
            .strip_prefix("[!")
            .and_then(|b| b.split_once(']'))
            .filter(|(kind, _)| !kind.is_empty() && kind.bytes().all(|c| c.is_ascii_uppercase()))
            .map_or(body, |(_, rest)| rest.trim_start());
        if is_list_item(body) {
            push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
        }
        let body = strip_shortcodes(body);
        if body.trim_end().ends_with("::") && !body.trim_end().ends_with(":::") {
            literal_next = true;
            para.push_str(body.trim_end().trim_end_matches(':'));
            para.push_str(": ");
            continue;
        }
        para.push_str(&body);
        para.push(' ');
    }
    if let Some((_, body)) = code {
        // An unclosed fence: its text is still code.
        if !body.trim().is_empty() {
            out.push(Unit::code(&body, block, section));
        }
    } else if rst_block == Some(true) {
        let body = std::mem::take(&mut para);
        if !body.trim().is_empty() {
            out.push(Unit::code(&body, block, section));
        }
    }
    push_para(&mut para, &mut para_quote, &mut out, &mut block, section);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_but_not_on_abbreviations() {
        assert_eq!(
            sentences("Use a view, e.g. Drop. Then export. 1.5 is fine? Yes"),
            [
                "Use a view, e.g. Drop.",
                "Then export.",
                "1.5 is fine?",
                "Yes"
            ]
        );
    }
}
