//! The language of a query, guessed from its script and its small words, so
//! that a page and its translations can show the reader's language.
//!
//! Only what the corpus can use: a two-letter code compared with the
//! language folders of translated sites (`content/fr/...`). English is the
//! default; a guess needs a clear signal (a script, or several small words).

/// A two-letter language code, or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Lang([u8; 2]);

impl Lang {
    pub const UNKNOWN: Lang = Lang([0, 0]);
    pub const EN: Lang = Lang(*b"en");

    /// The language of a folder name such as `fr`, `pt-br` or `zh_CN`.
    pub fn from_folder(name: &str) -> Option<Lang> {
        let b = name.as_bytes();
        let code = b.len() >= 2 && b[..2].iter().all(u8::is_ascii_lowercase);
        let rest_ok = match b.len() {
            2 => true,
            5..=7 => matches!(b[2], b'-' | b'_') && b[3..].iter().all(u8::is_ascii_alphanumeric),
            _ => false,
        };
        (code && rest_ok).then(|| Lang([b[0], b[1]]))
    }

    /// English or unknown: what an untranslated repository is written in.
    pub fn is_default(self) -> bool {
        self == Lang::EN || self == Lang::UNKNOWN
    }
}

/// Small words that mark a language. English has its own list so that an
/// English query with a stray "do" or "e" (of "e.g.") stays English.
const MARKERS: [(&[u8; 2], &[&str]); 6] = [
    (
        b"en",
        &[
            "the", "how", "do", "does", "is", "are", "what", "why", "which", "to", "in", "of",
            "my", "with", "and", "for", "i", "a", "an", "can", "should", "when", "on", "it",
        ],
    ),
    (
        b"fr",
        &[
            "le", "la", "les", "des", "une", "un", "est", "pour", "dans", "avec", "comment",
            "pourquoi", "je", "ne", "pas", "mes", "du", "au", "aux", "sur", "quoi", "quel",
            "quelle", "mon", "ma", "et", "ou", "qui", "que", "seule", "de", "l", "d", "n",
        ],
    ),
    (
        b"es",
        &[
            "el", "los", "las", "una", "un", "por", "para", "cómo", "qué", "con", "del", "mis",
            "está", "cuándo", "conviene", "y", "es", "se", "mi", "lo", "al", "de",
        ],
    ),
    (
        b"pt",
        &[
            "o", "os", "uma", "um", "não", "com", "do", "da", "dos", "das", "como", "para", "em",
            "meu", "minha", "é", "ao", "e", "se", "qual", "de",
        ],
    ),
    (
        b"ro",
        &["și", "cum", "pentru", "este", "în", "sau", "care", "de"],
    ),
    (
        b"pl",
        &["jak", "się", "nie", "czy", "dla", "jest", "oraz", "mój"],
    ),
];

/// Letters that belong to one of the languages above only.
fn accent_vote(c: char) -> Option<&'static [u8; 2]> {
    Some(match c {
        'ç' | 'è' | 'ê' | 'à' | 'ù' | 'î' | 'ô' | 'œ' | 'ë' => b"fr",
        'ñ' | '¿' | '¡' => b"es",
        'ã' | 'õ' => b"pt",
        'ș' | 'ț' | 'ă' | 'â' => b"ro",
        'ł' | 'ą' | 'ę' | 'ś' | 'ż' | 'ź' | 'ń' => b"pl",
        _ => return None,
    })
}

/// The language `text` is most likely written in; English when unsure.
pub fn detect(text: &str) -> Lang {
    let (mut kana, mut han, mut hangul, mut cyrillic, mut bengali) = (0, 0, 0, 0, 0);
    let mut votes = [0u32; MARKERS.len()];
    let vote = |votes: &mut [u32; MARKERS.len()], code: &[u8; 2], n: u32| {
        if let Some(i) = MARKERS.iter().position(|(c, _)| *c == code) {
            votes[i] += n;
        }
    };
    for c in text.chars() {
        match c as u32 {
            0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9F => kana += 1,
            0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF => han += 1,
            0x1100..=0x11FF | 0x3130..=0x318F | 0xAC00..=0xD7AF => hangul += 1,
            0x0400..=0x04FF => cyrillic += 1,
            0x0980..=0x09FF => bengali += 1,
            _ => {
                if let Some(code) = accent_vote(c.to_lowercase().next().unwrap_or(c)) {
                    vote(&mut votes, code, 2);
                }
            }
        }
    }
    if kana > 0 {
        return Lang(*b"ja");
    }
    if hangul > 0 {
        return Lang(*b"ko");
    }
    if han > 0 {
        return Lang(*b"zh");
    }
    if cyrillic > 0 {
        return Lang(*b"uk");
    }
    if bengali > 0 {
        return Lang(*b"bn");
    }
    for word in text
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
    {
        let w = word.to_lowercase();
        for (i, (_, words)) in MARKERS.iter().enumerate() {
            if words.contains(&w.as_str()) {
                votes[i] += 1;
            }
        }
    }
    let best = (0..MARKERS.len()).max_by_key(|&i| votes[i]);
    match best {
        Some(i) if votes[i] >= 2 && votes.iter().filter(|&&v| v == votes[i]).count() == 1 => {
            Lang(*MARKERS[i].0)
        }
        _ => Lang::EN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_small_words() {
        let code = |t: &str| String::from_utf8_lossy(&detect(t).0).into_owned();
        assert_eq!(code("トレースとスパンの関係"), "ja");
        assert_eq!(code("如何在 Kubernetes 上使用 OpenTelemetry"), "zh");
        assert_eq!(code("추적 설정"), "ko");
        assert_eq!(
            code("Comment désactiver une instrumentation de l'agent Java ?"),
            "fr"
        );
        assert_eq!(code("¿cómo combino spans manuales con Go?"), "es");
        assert_eq!(code("como configurar o endpoint do exportador OTLP"), "pt");
        assert_eq!(code("how do I configure the OTLP exporter endpoint"), "en");
        assert_eq!(code("how do I set e.g. the endpoint"), "en");
        assert_eq!(code("OTEL_EXPORTER_OTLP_ENDPOINT"), "en");
        // One ambiguous small word is not enough.
        assert_eq!(code("la collector config"), "en");
    }

    #[test]
    fn folder_names() {
        assert_eq!(Lang::from_folder("fr"), Some(Lang(*b"fr")));
        assert_eq!(Lang::from_folder("pt-br"), Some(Lang(*b"pt")));
        assert_eq!(Lang::from_folder("zh_CN"), Some(Lang(*b"zh")));
        assert_eq!(Lang::from_folder("docs"), None);
        assert_eq!(Lang::from_folder("Go"), None);
        assert!(Lang::EN.is_default() && Lang::UNKNOWN.is_default());
    }
}
