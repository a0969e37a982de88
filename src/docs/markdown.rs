//! The structure of one document as search needs it: front matter, title,
//! heading-delimited sections (Markdown ATX/setext headings outside code
//! fences, reStructuredText underlined titles) and a short description.
//!
//! Sections are byte ranges into the original text, never copies. This is not
//! a Markdown renderer: anything it does not recognise is plain body text.
//! [`prose`] turns text into clean sentences for snippets and descriptions.

pub mod prose;

/// A part of a document under one heading.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Byte range of the heading text (`None` for text before the first heading).
    pub heading: Option<(usize, usize)>,
    /// Byte range of the body, after the heading line(s).
    pub body: (usize, usize),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub title: Option<String>,
    /// Front-matter `description`, if any (indexed with the title).
    pub description: Option<String>,
    pub sections: Vec<Section>,
}

/// Sections longer than this are cut at paragraph breaks, so that BM25 sees
/// passages of comparable size and snippets come from the right place.
const MAX_SECTION_BYTES: usize = 3000;

/// Front matter must close within this many lines to count as front matter.
const MAX_FRONT_MATTER_LINES: usize = 60;

/// Lines of `text` as (start, end-without-newline) byte ranges; CRLF aware.
fn lines(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            let end = if i > start && text.as_bytes()[i - 1] == b'\r' {
                i - 1
            } else {
                i
            };
            out.push((start, end));
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push((start, text.len()));
    }
    out
}

/// Key/value pairs of a front-matter block at the very top, and the number
/// of lines it spans. Both `---` YAML and the `<!--- Hugo front matter ...
/// --->` comment of semantic-conventions are recognised. A `---` rule
/// followed by prose or HTML is not front matter.
fn front_matter(text: &str, lines: &[(usize, usize)]) -> Option<(Vec<(String, String)>, usize)> {
    let first = lines.first().map(|&(s, e)| text[s..e].trim_end())?;
    let first = first.trim_start_matches('\u{feff}');
    let closing: &[&str] = if first == "---" {
        &["---", "..."]
    } else if first.starts_with("<!---") && first.to_ascii_lowercase().contains("front matter") {
        &["--->", "-->"]
    } else {
        return None;
    };
    let mut pairs = Vec::new();
    for (n, &(s, e)) in lines
        .iter()
        .enumerate()
        .skip(1)
        .take(MAX_FRONT_MATTER_LINES)
    {
        let line = text[s..e].trim_end();
        if closing.contains(&line) {
            if n == 1 && first == "---" {
                return None; // "---\n---": two rules, not front matter
            }
            return Some((pairs, n + 1));
        }
        if line.is_empty()
            || line.starts_with(' ')
            || line.starts_with('\t')
            || line.starts_with('-')
            || line.starts_with('#')
        {
            continue; // blank, nested value, list item or YAML comment
        }
        let (k, v) = line.split_once(':')?;
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return None;
        }
        pairs.push((k.to_string(), unquote(v.trim()).to_string()));
    }
    None
}

fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// Tracks fenced code blocks line by line: [`Fences::code`] is true for a
/// fence line and every line inside a fence (never headings or prose).
#[derive(Default)]
struct Fences(Option<u8>);

impl Fences {
    fn code(&mut self, line: &str) -> bool {
        match (self.0, is_fence(line)) {
            (Some(open), close) => {
                if close == Some(open) {
                    self.0 = None;
                }
                true
            }
            (None, Some(f)) => {
                self.0 = Some(f);
                true
            }
            (None, None) => false,
        }
    }
}

fn is_fence(line: &str) -> Option<u8> {
    let t = line.trim_start();
    if line.len() - t.len() > 3 {
        return None;
    }
    if t.starts_with("```") {
        Some(b'`')
    } else if t.starts_with("~~~") {
        Some(b'~')
    } else {
        None
    }
}

/// ATX heading: level and the heading text's byte range within `line`.
fn atx_heading(line: &str) -> Option<(usize, usize, usize)> {
    let t = line.trim_start();
    let indent = line.len() - t.len();
    if indent > 3 {
        return None;
    }
    let level = t.bytes().take_while(|&b| b == b'#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &t[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let content = rest.trim().trim_end_matches('#').trim_end();
    if content.is_empty() {
        return None;
    }
    let start = indent + level + (rest.len() - rest.trim_start().len());
    Some((level, start, start + content.len()))
}

/// An underline/overline of one repeated punctuation character.
fn adornment(line: &str, rst: bool) -> Option<u8> {
    let t = line.trim_end();
    let b = t.as_bytes();
    let c = *b.first()?;
    let allowed: &[u8] = if rst { b"=-~^\"'`#*+:._" } else { b"=-" };
    if !allowed.contains(&c) || !b.iter().all(|&x| x == c) {
        return None;
    }
    if rst && b.len() < 3 {
        return None;
    }
    Some(c)
}

/// Whether a line is an underline, overline or rule of one repeated
/// punctuation character (Markdown or reStructuredText).
pub fn is_adornment(line: &str) -> bool {
    adornment(line.trim(), true).is_some()
        || line.trim().len() >= 3 && adornment(line.trim(), false).is_some()
}

/// Byte offset where a document's content starts, after any front matter.
pub fn content_start(text: &str) -> usize {
    let lines = lines(text);
    match front_matter(text, &lines) {
        Some((_, n)) => lines.get(n).map_or(text.len(), |l| l.0),
        None => 0,
    }
}

/// Splits a document into title and sections. `rst` selects
/// reStructuredText title rules instead of Markdown ones.
pub fn parse(text: &str, rst: bool) -> Parsed {
    let lines = lines(text);
    let mut parsed = Parsed::default();
    let mut first_line = 0;
    let mut link_title = None;
    if let Some((pairs, n)) = front_matter(text, &lines) {
        first_line = n;
        for (k, v) in pairs {
            match k.as_str() {
                "title" if !v.is_empty() => parsed.title = Some(v),
                "linkTitle" if !v.is_empty() => link_title = Some(v),
                "description" if !v.is_empty() && v != ">-" && v != "|" && v != ">" => {
                    parsed.description = Some(v)
                }
                _ => {}
            }
        }
    }

    // (line index where the heading starts, heading range, body start, level)
    let mut heads: Vec<(usize, (usize, usize), usize, usize)> = Vec::new();
    let next_line = |i: usize| lines.get(i + 1).map_or(text.len(), |l| l.0);
    let mut fences = Fences::default();
    let mut prev_text: Option<usize> = None; // index of previous non-blank paragraph line
    for i in first_line..lines.len() {
        let (s, e) = lines[i];
        let line = &text[s..e];
        if !rst {
            if fences.code(line) {
                prev_text = None;
                continue;
            }
            if let Some((level, hs, he)) = atx_heading(line) {
                heads.push((i, (s + hs, s + he), next_line(i), level));
                prev_text = None;
                continue;
            }
        }
        if line.trim().is_empty() {
            prev_text = None;
            continue;
        }
        if let (Some(p), Some(c)) = (prev_text, adornment(line, rst)) {
            let (ps, pe) = lines[p];
            let title = text[ps..pe].trim();
            let long_enough = !rst || line.trim_end().chars().count() + 1 >= title.chars().count();
            let plausible =
                !title.starts_with(['|', '-', '*', '>', '<']) && adornment(title, rst).is_none();
            if long_enough && plausible {
                let level = if c == b'=' { 1 } else { 2 };
                let lead = text[ps..pe].len() - text[ps..pe].trim_start().len();
                // RST overline: same adornment on the line above the title.
                let start_line = if rst
                    && p > first_line
                    && adornment(&text[lines[p - 1].0..lines[p - 1].1], true) == Some(c)
                {
                    p - 1
                } else {
                    p
                };
                heads.push((
                    start_line,
                    (ps + lead, ps + lead + title.len()),
                    next_line(i),
                    level,
                ));
                prev_text = None;
                continue;
            }
        }
        prev_text = Some(i);
    }

    let content_start = lines.get(first_line).map_or(text.len(), |l| l.0);
    let mut push = |heading: Option<(usize, usize)>, start: usize, end: usize| {
        split_long(text, heading, start, end, &mut parsed.sections);
    };
    let first_head_at = heads.first().map_or(text.len(), |h| lines[h.0].0);
    push(None, content_start, first_head_at);
    for (n, h) in heads.iter().enumerate() {
        let end = heads.get(n + 1).map_or(text.len(), |next| lines[next.0].0);
        push(Some(h.1), h.2.min(end), end);
    }

    if parsed.title.is_none() {
        let best = heads.iter().find(|h| h.3 == 1).or(heads.first());
        parsed.title = best
            .map(|h| clean_inline(&text[h.1.0..h.1.1]))
            .filter(|t| !t.is_empty())
            .or(link_title);
    }
    parsed
}

/// Adds one section, cut at blank lines into pieces of at most
/// [`MAX_SECTION_BYTES`] (bigger when a paragraph alone is bigger).
fn split_long(
    text: &str,
    heading: Option<(usize, usize)>,
    mut start: usize,
    end: usize,
    out: &mut Vec<Section>,
) {
    if heading.is_none() && text[start..end].trim().is_empty() {
        return;
    }
    while end - start > MAX_SECTION_BYTES {
        let mut limit = start + MAX_SECTION_BYTES;
        while !text.is_char_boundary(limit) {
            limit -= 1;
        }
        let window = &text[start..limit];
        let cut = window
            .rfind("\n\n")
            .or_else(|| window.rfind("\r\n\r\n"))
            .filter(|&c| c > MAX_SECTION_BYTES / 3)
            .or_else(|| window.rfind('\n').filter(|&c| c > 0));
        let Some(cut) = cut else {
            break;
        };
        let cut = start + cut + 1;
        out.push(Section {
            heading,
            body: (start, cut),
        });
        start = cut;
    }
    out.push(Section {
        heading,
        body: (start, end),
    });
}

/// The index just past the bracket that closes the one at `open` (`[` or
/// `(`), counting nested pairs; `None` when it is not closed.
fn closing(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let (o, c) = match b.get(open)? {
        b'[' => (b'[', b']'),
        b'(' => (b'(', b')'),
        _ => return None,
    };
    let mut depth = 0usize;
    for (i, &x) in b.iter().enumerate().skip(open) {
        if x == o {
            depth += 1;
        } else if x == c {
            depth -= 1;
            if depth == 0 {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The character an HTML entity stands for (the common named ones and
/// numeric references), and its length.
fn entity(s: &str) -> Option<(char, usize)> {
    let end = s.bytes().take(12).position(|b| b == b';')?;
    let name = &s[1..end];
    let c = match name {
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "bull" => '•',
        "middot" => '·',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "rarr" => '→',
        "larr" => '←',
        "times" => '×',
        _ => {
            let num = name.strip_prefix('#')?;
            let v = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(v).filter(|c| !c.is_control())?
        }
    };
    Some((c, end + 1))
}

/// Inline Markdown and reStructuredText reduced to their words: links to
/// their text, images and badges dropped, code ticks, emphasis and HTML tags
/// dropped (an autolink keeps its URL), entities decoded, `{#anchor}`,
/// rst roles and `|substitutions|` removed, whitespace collapsed.
pub fn clean_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    clean_into(s, &mut out);
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out
}

fn space(out: &mut String) {
    if !out.ends_with(' ') && !out.is_empty() {
        out.push(' ');
    }
}

fn clean_into(s: &str, out: &mut String) {
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let Some(c) = rest.chars().next() else { break };
        let next = rest[c.len_utf8()..].chars().next();
        match c {
            '<' if rest.starts_with("<!--") => match rest.find("-->") {
                Some(e) => {
                    i += e + 3;
                    continue;
                }
                None => break,
            },
            '<' if next.is_some_and(|n| n.is_ascii_alphabetic() || n == '/' || n == '!') => {
                if let Some(end) = rest.find('>') {
                    let inner = &rest[1..end];
                    if inner.starts_with("http://") || inner.starts_with("https://") {
                        out.push_str(inner);
                    } else {
                        space(out);
                    }
                    i += end + 1;
                    continue;
                }
                out.push(c);
            }
            // An image or a badge: nothing of it is prose.
            '!' if next == Some('[') => {
                if let Some(close) = closing(rest, 1) {
                    let after = &rest[close..];
                    let skip = match after.as_bytes().first() {
                        Some(b'(' | b'[') => closing(after, 0).unwrap_or(0),
                        _ => 0,
                    };
                    i += close + skip;
                    continue;
                }
                out.push(c);
            }
            '[' => {
                if let Some(close) = closing(rest, 0) {
                    let inner = &rest[1..close - 1];
                    let after = &rest[close..];
                    let skip = match after.as_bytes().first() {
                        Some(b'(' | b'[') => closing(after, 0).unwrap_or(0),
                        _ => 0,
                    };
                    clean_into(inner, out);
                    i += close + skip;
                    continue;
                }
            }
            // rst: `text <url>`_ and ``literal``.
            '`' => {
                if let Some(end) = rest[1..].find("`_")
                    && let Some(lt) = rest[1..1 + end].rfind(" <")
                    && rest[1..1 + end].ends_with('>')
                {
                    clean_into(&rest[1..1 + lt], out);
                    i += 1 + end + 2;
                    while s[i..].starts_with('_') {
                        i += 1;
                    }
                    continue;
                }
            }
            // rst role: :role:`text`
            ':' if next.is_some_and(|n| n.is_ascii_lowercase()) => {
                let name_len = rest[1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_lowercase() || matches!(b, b'-' | b'_' | b':'))
                    .count();
                let name = &rest[1..1 + name_len];
                if name.ends_with(':') && rest[1 + name_len..].starts_with('`') {
                    i += 1 + name_len;
                    continue;
                }
                // An emoji shortcode: ":warning: Note".
                let after = rest[1 + name_len..].chars().next();
                let alone = (out.is_empty() || out.ends_with(' '))
                    && after.is_none_or(|a| a.is_whitespace() || a.is_ascii_punctuation());
                if name.ends_with(':') && name.matches(':').count() == 1 && alone {
                    i += 1 + name_len;
                    continue;
                }
                out.push(c);
            }
            // rst substitution: |name|
            '|' if next.is_some_and(|n| n.is_ascii_alphanumeric()) => {
                let len = rest[1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                    .count();
                if rest[1 + len..].starts_with('|') {
                    i += len + 2;
                    continue;
                }
                space(out);
            }
            '{' if next == Some('#') => match rest.find('}') {
                Some(end) => {
                    i += end + 1;
                    continue;
                }
                None => out.push(c),
            },
            '&' => match entity(rest) {
                Some((ch, len)) => {
                    if ch == ' ' {
                        space(out);
                    } else {
                        out.push(ch);
                    }
                    i += len;
                    continue;
                }
                None => out.push(c),
            },
            '\\' if next.is_some_and(|n| n.is_ascii_punctuation()) => {}
            // Emphasis "_like this_", not the "_" of OTEL_SERVICE_NAME.
            '_' => {
                let inside = out.chars().last().is_some_and(char::is_alphanumeric)
                    && next.is_some_and(char::is_alphanumeric);
                if inside {
                    out.push(c);
                }
            }
            '*' | ']' | '|' => space_if_pipe(c, out),
            c if c.is_whitespace() => space(out),
            c => out.push(c),
        }
        i += c.len_utf8();
    }
}

fn space_if_pipe(c: char, out: &mut String) {
    if c == '|' {
        space(out);
    }
}

/// A README's first real sentences, shortened: a repository's description
/// when the source has none. Skips front matter, headings, badges, HTML,
/// link rows, code and table rows, quoted notes, and lines that are headings
/// written as text ("Table of Contents", "Status"); entities are decoded.
pub fn readme_description(text: &str, max_chars: usize) -> Option<String> {
    /// A real sentence has at least this many words.
    const MIN_WORDS: usize = 4;
    let units = prose::units(text);
    let is_real = |u: &prose::Unit| {
        !u.code
            && u.text.split_whitespace().count() >= MIN_WORDS
            && u.text.chars().filter(|c| c.is_alphabetic()).count() * 2 > u.text.len()
            && !u.quote
            && !u.text.contains(" | ")
            && !u.text.contains(" • ")
            && !u.text.to_lowercase().starts_with("table of contents")
    };
    let first = units.iter().position(is_real)?;
    let mut desc = units[first].text.clone();
    for u in units[first + 1..]
        .iter()
        .take_while(|u| u.block == units[first].block && !u.code)
    {
        if desc.chars().count() >= max_chars {
            break;
        }
        desc.push(' ');
        desc.push_str(&u.text);
    }
    Some(shorten(&desc, max_chars))
}

/// Cuts at a word boundary before `max_chars` characters, adding "…".
pub fn shorten(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let cut = s.char_indices().nth(max_chars).map_or(s.len(), |(i, _)| i);
    let head = &s[..cut];
    let head = match head.rfind(' ') {
        Some(sp) if sp > cut / 2 => &head[..sp],
        _ => head,
    };
    format!("{}…", head.trim_end_matches([',', ';', ':', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headings(text: &str, rst: bool) -> Vec<String> {
        parse(text, rst)
            .sections
            .iter()
            .map(|s| {
                s.heading
                    .map_or("-".to_string(), |(a, b)| text[a..b].to_string())
            })
            .collect()
    }

    #[test]
    fn yaml_front_matter_title() {
        let t = "---\ntitle: \"Hello\"\nweight: 3\ndescription: Short\n---\n\n# Other\nbody\n";
        let p = parse(t, false);
        assert_eq!(p.title.as_deref(), Some("Hello"));
        assert_eq!(p.description.as_deref(), Some("Short"));
        assert_eq!(headings(t, false), ["Other"]);
    }

    #[test]
    fn fake_front_matter_is_a_rule() {
        let t = "---\n<p align=\"center\">logo</p>\n---\n# Real Title\n";
        assert_eq!(parse(t, false).title.as_deref(), Some("Real Title"));
        let t = "---\nJust prose here, no key.\n\n# T\n";
        assert_eq!(parse(t, false).title.as_deref(), Some("T"));
    }

    #[test]
    fn hugo_comment_front_matter() {
        let t = "<!--- Hugo front matter used to generate the website version of this page:\nlinkTitle: Spans\n--->\n\n# Semantic conventions for HTTP spans\n\ntext";
        let p = parse(t, false);
        assert_eq!(
            p.title.as_deref(),
            Some("Semantic conventions for HTTP spans")
        );
        let t = "<!--- Hugo front matter used to generate the website version of this page:\nlinkTitle: Spans\n--->\n\nno heading";
        assert_eq!(parse(t, false).title.as_deref(), Some("Spans"));
    }

    #[test]
    fn headings_outside_fences_only() {
        let t = "intro\n# A\nx\n```sh\n# not a heading\n```\n## B ##\ny\nSetext\n======\nz\n";
        assert_eq!(headings(t, false), ["-", "A", "B", "Setext"]);
        let p = parse(t, false);
        let body = p.sections[2].body;
        assert_eq!(&t[body.0..body.1], "y\n");
    }

    #[test]
    fn crlf_lines() {
        let t = "# Title\r\nbody\r\n## Next\r\nmore\r\n";
        assert_eq!(headings(t, false), ["Title", "Next"]);
        assert_eq!(parse(t, false).title.as_deref(), Some("Title"));
    }

    #[test]
    fn rst_titles() {
        let t = "=====\nTop\n=====\n\nIntro\n\nUsage\n-----\n\ntext\n\nshort\n--\n";
        assert_eq!(headings(t, true), ["Top", "Usage"]);
        assert_eq!(parse(t, true).title.as_deref(), Some("Top"));
    }

    #[test]
    fn long_sections_split_on_paragraphs() {
        let para = "word ".repeat(100) + "\n\n";
        let t = format!("# H\n{}", para.repeat(20));
        let p = parse(&t, false);
        assert!(p.sections.len() > 3);
        assert!(p.sections.iter().all(|s| s.heading.is_some()));
        assert!(
            p.sections
                .iter()
                .all(|s| s.body.1 - s.body.0 <= MAX_SECTION_BYTES)
        );
        assert_eq!(p.sections.last().unwrap().body.1, t.len());
    }

    #[test]
    fn long_sections_split_on_char_boundaries() {
        let t = format!("# H\n{}", "─".repeat(5000));
        let p = parse(&t, false);
        assert_eq!(p.sections.len(), 1);
        let t = format!("# H\n{}", "─x\n".repeat(2000));
        assert!(parse(&t, false).sections.len() > 1);
    }

    /// The kinds of junk the open-telemetry READMEs gave as descriptions.
    #[test]
    fn readme_description_skips_layout() {
        let t = "---\n\n<p align=\"center\">\n  <strong>\n    <a href=\"x\">Getting Started</a>\n    &nbsp;&nbsp;&bull;&nbsp;&nbsp;\n    <a href=\"y\">Getting Involved</a>\n  </strong>\n</p>\n\n<img\n  src=\"logo.png\"\n  alt=\"logo\">\n\n**Table of Contents**\n\n- [Status](#status)\n\nStatus\n\n> :warning: **Important note:** tags may change at any time, do not rely on them.\n\n[![Build](https://b/x.svg)](https://b) |pypi|\n\nThe _collector_ receives, processes &amp; exports telemetry.\n";
        assert_eq!(
            readme_description(t, 200).as_deref(),
            Some("The collector receives, processes & exports telemetry.")
        );
    }

    #[test]
    fn inline_cleaning() {
        assert_eq!(
            clean_inline(
                "See [the docs][ref], ![logo](l.png) `code` <https://x.y/z> &lt;b&gt; :smile: x"
            ),
            "See the docs, code https://x.y/z <b> x"
        );
        assert_eq!(
            clean_inline("Set OTEL_SERVICE_NAME, not _this_"),
            "Set OTEL_SERVICE_NAME, not this"
        );
        assert_eq!(
            clean_inline("Use `the guide <https://g>`_ and :ref:`config` |badge|"),
            "Use the guide and config"
        );
    }

    #[test]
    fn readme_first_paragraph() {
        let t = "# Proj\n\n[![badge](x)](y)\n\nThe **fast** `thing` for [people](http://x).\nSecond line.\n\nMore.";
        assert_eq!(
            readme_description(t, 200).as_deref(),
            Some("The fast thing for people. Second line.")
        );
        assert_eq!(readme_description("# only\n", 200), None);
        let long = format!("# T\n\n{}", "word ".repeat(100));
        let d = readme_description(&long, 50).unwrap();
        assert!(d.ends_with('…') && d.chars().count() <= 51);
    }
}
