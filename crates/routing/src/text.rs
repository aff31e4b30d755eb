//! Text folding for keyword rules: lowercase, accents removed, split into words.
//!
//! Citizens write "liberta", "libertà" and "LIBERTÀ" for the same thing, so rules and messages
//! are compared after the same folding.

/// How much of a message body keyword rules look at; long bodies are mostly quoted history.
pub const MAX_SCANNED_CHARS: usize = 64 * 1024;

/// Folds one lowercase character to its unaccented base, if it has one.
fn fold_char(c: char) -> char {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'č' => 'c',
        'ď' | 'đ' => 'd',
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => 'e',
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => 'i',
        'ł' | 'ľ' | 'ĺ' => 'l',
        'ñ' | 'ń' | 'ň' => 'n',
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => 'o',
        'ŕ' | 'ř' => 'r',
        'ś' | 'š' | 'ş' | 'ș' => 's',
        'ť' | 'ţ' | 'ț' => 't',
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => 'u',
        'ý' | 'ÿ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        other => other,
    }
}

/// Splits text into folded words (runs of letters and digits); apostrophes separate words,
/// so "dell'ISEE" gives "dell" and "isee".
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().take(MAX_SCANNED_CHARS) {
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                cur.push(fold_char(l));
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A keyword or phrase compiled for matching: folded words, the last one optionally a prefix
/// (written with a trailing `*`, e.g. `ricors*` for ricorso/ricorsi).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    words: Vec<String>,
    prefix: bool,
}

impl Keyword {
    /// Compiles a keyword; `None` when it has no letters or digits or a `*` anywhere but at
    /// the end.
    pub fn compile(raw: &str) -> Option<Keyword> {
        let trimmed = raw.trim();
        let (body, prefix) = match trimmed.strip_suffix('*') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        if body.contains('*') {
            return None;
        }
        let words = words(body);
        if words.is_empty() || (prefix && body.ends_with(|c: char| !c.is_alphanumeric())) {
            return None;
        }
        Some(Keyword { words, prefix })
    }

    /// Whether the words of a text contain this keyword as a run of whole words.
    pub fn matches(&self, text_words: &[String]) -> bool {
        let n = self.words.len();
        if n == 0 || text_words.len() < n {
            return false;
        }
        text_words.windows(n).any(|w| {
            w.iter().zip(&self.words).enumerate().all(|(i, (t, k))| {
                if self.prefix && i == n - 1 {
                    t.starts_with(k.as_str())
                } else {
                    t == k
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(kw: &str, text: &str) -> bool {
        Keyword::compile(kw).unwrap().matches(&words(text))
    }

    #[test]
    fn matching_ignores_case_and_accents() {
        assert!(m("libertà", "Chiedo la LIBERTA di scelta"));
        assert!(m("perche", "Perché non ho ricevuto il pagamento?"));
        assert!(m("ISEE", "il mio isee è scaduto"));
        assert!(m("isee", "copia dell'ISEE 2026"));
    }

    #[test]
    fn keywords_match_whole_words_and_phrases() {
        assert!(
            !m("isee", "iseeweb"),
            "a keyword is a word, not a substring"
        );
        assert!(m("assegno unico", "domanda di Assegno  Unico universale"));
        assert!(!m("assegno unico", "assegno non unico"));
        assert!(m("ricors*", "vorrei presentare ricorsi"));
        assert!(!m("ricors*", "il ricordo"));
    }

    #[test]
    fn bad_keywords_are_refused() {
        assert_eq!(Keyword::compile("  "), None);
        assert_eq!(Keyword::compile("!!"), None);
        assert_eq!(Keyword::compile("a*b"), None);
        assert_eq!(Keyword::compile("ciao *"), None);
    }
}
