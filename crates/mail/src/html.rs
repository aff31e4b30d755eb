//! HTML from citizens' mail: sanitised for the operators' browser, and rendered as plain text.

use std::borrow::Cow;
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

/// One sanitiser for the whole process: building it allocates a dozen sets.
static SANITIZER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let mut b = Builder::default();
    b.add_url_schemes(["cid"])
        // A relative URL in a mail would resolve against our own UI: never useful, maybe harmful.
        .url_relative(UrlRelative::Deny)
        .add_clean_content_tags(["title"])
        .link_rel(Some("noopener noreferrer"))
        .attribute_filter(|element, attribute, value| {
            if element == "img" && attribute == "src" {
                // Remote images are tracking pixels or worse; inline parts (cid:) stay.
                return is_cid(value).then_some(Cow::Borrowed(value));
            }
            Some(Cow::Borrowed(value))
        });
    b
});

fn is_cid(url: &str) -> bool {
    url.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("cid:"))
}

/// Removes scripts, event handlers, styles that could load anything and remote images; keeps
/// `cid:` images and marks links `rel="noopener noreferrer"`.
pub(crate) fn sanitize(html: &str) -> String {
    SANITIZER.clean(html).to_string()
}

/// Whether the sanitised HTML differs from what was sent in a way a reader would notice:
/// used to note that remote images were blocked.
pub(crate) fn has_remote_images(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while let Some(pos) = rest.find("<img") {
        rest = &rest[pos + 4..];
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..tag_end];
        if tag.contains("http:") || tag.contains("https:") || tag.contains("src=\"//") {
            return true;
        }
    }
    false
}

const BLOCK_TAGS: &[&str] = &[
    "address",
    "article",
    "aside",
    "center",
    "dd",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "li",
    "nav",
    "section",
    "tr",
    "caption",
    "summary",
    "details",
];

const PARAGRAPH_TAGS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "hr",
];

/// Renders HTML as readable plain text: paragraphs and line breaks kept, lists bulleted, quotes
/// prefixed with `> `, link targets shown after their text when they differ from it.
#[cfg(test)]
pub(crate) fn to_text(html: &str) -> String {
    sanitized_to_text(&sanitize(html))
}

/// [`to_text`] for HTML that already went through [`sanitize`], whose regular output the
/// simple tag scanner below relies on.
pub(crate) fn sanitized_to_text(clean: &str) -> String {
    let mut out = TextWriter::default();
    let mut rest = clean;
    let mut links: Vec<Option<(String, usize)>> = Vec::new();
    let mut lists: Vec<Option<u32>> = Vec::new();
    while !rest.is_empty() {
        if let Some(tag_body) = rest.strip_prefix('<') {
            let end = tag_body.find('>').unwrap_or(tag_body.len());
            let tag = &tag_body[..end];
            rest = tag_body.get(end + 1..).unwrap_or("");
            let closing = tag.starts_with('/');
            let tag = tag.trim_start_matches('/');
            let name_end = tag
                .find(|c: char| c.is_ascii_whitespace() || c == '/')
                .unwrap_or(tag.len());
            let name = tag[..name_end].to_ascii_lowercase();
            let attrs = &tag[name_end..];
            match (name.as_str(), closing) {
                ("br", _) => out.newline(),
                ("pre", false) => {
                    out.paragraph();
                    out.pre += 1;
                }
                ("pre", true) => {
                    out.pre = out.pre.saturating_sub(1);
                    out.paragraph();
                }
                ("blockquote", false) => {
                    out.paragraph();
                    out.quote += 1;
                }
                ("blockquote", true) => {
                    out.quote = out.quote.saturating_sub(1);
                    out.paragraph();
                }
                ("ul", false) => {
                    out.paragraph();
                    lists.push(None);
                }
                ("ol", false) => {
                    out.paragraph();
                    lists.push(Some(0));
                }
                ("ul" | "ol", true) => {
                    lists.pop();
                    out.paragraph();
                }
                ("li", false) => {
                    out.newline();
                    let indent = "  ".repeat(lists.len().saturating_sub(1));
                    match lists.last_mut() {
                        Some(Some(n)) => {
                            *n += 1;
                            out.push_raw(&format!("{indent}{n}. "));
                        }
                        _ => out.push_raw(&format!("{indent}- ")),
                    }
                }
                ("td" | "th", false) => out.cell(),
                ("a", false) => {
                    let href = attr_value(attrs, "href").map(|h| decode_entities(&h));
                    links.push(href.map(|h| (h, out.text_len())));
                }
                ("a", true) => {
                    if let Some(Some((href, start))) = links.pop() {
                        let shown = out.text_since(start);
                        let target = href.strip_prefix("mailto:").unwrap_or(&href);
                        if !target.is_empty() && shown.trim() != target && !shown.contains(target) {
                            out.push_text(&format!(" ({target})"));
                        }
                    }
                }
                ("img", false) => {
                    if let Some(alt) = attr_value(attrs, "alt") {
                        let alt = decode_entities(&alt);
                        if !alt.trim().is_empty() {
                            out.push_text(&format!("[{}]", alt.trim()));
                        }
                    }
                }
                (n, _) if PARAGRAPH_TAGS.contains(&n) => out.paragraph(),
                (n, _) if BLOCK_TAGS.contains(&n) => out.newline(),
                _ => {}
            }
        } else {
            let end = rest.find('<').unwrap_or(rest.len());
            out.push_text(&decode_entities(&rest[..end]));
            rest = &rest[end..];
        }
    }
    out.finish()
}

/// The value of an attribute in a sanitised tag, where ammonia always writes `name="value"`.
fn attr_value(attrs: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let mut search = attrs;
    loop {
        let pos = search.find(&needle)?;
        let before_ok = pos == 0 || search.as_bytes()[pos - 1].is_ascii_whitespace();
        let after = &search[pos + needle.len()..];
        if before_ok {
            let end = after.find('"').unwrap_or(after.len());
            return Some(after[..end].to_owned());
        }
        search = after;
    }
}

/// Decodes the entities html5ever's serialiser writes, plus numeric ones.
fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let entity = &rest[1..e];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => entity.strip_prefix('#').and_then(|n| {
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => n.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            ch.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Accumulates text with HTML's whitespace rules and our block layout.
#[derive(Default)]
struct TextWriter {
    out: String,
    /// Newlines wanted before the next text: 1 for a line break, 2 for a paragraph.
    pending_breaks: usize,
    pending_space: bool,
    at_line_start: bool,
    pre: usize,
    quote: usize,
    /// Quote depth when the pending breaks were asked for: blank lines between a paragraph
    /// and a quote that follows it belong to neither, so they get the shallower prefix.
    break_quote: usize,
}

impl TextWriter {
    fn text_len(&self) -> usize {
        self.out.len()
    }

    fn text_since(&self, start: usize) -> &str {
        self.out.get(start..).unwrap_or("")
    }

    fn newline(&mut self) {
        if self.out.is_empty() {
            return;
        }
        self.note_break_depth();
        self.pending_breaks = self.pending_breaks.max(1);
        self.pending_space = false;
    }

    fn note_break_depth(&mut self) {
        self.break_quote = if self.pending_breaks == 0 {
            self.quote
        } else {
            self.break_quote.min(self.quote)
        };
    }

    fn paragraph(&mut self) {
        if self.out.is_empty() {
            return;
        }
        self.note_break_depth();
        self.pending_breaks = 2;
        self.pending_space = false;
    }

    fn cell(&mut self) {
        if !self.at_line_start && self.pending_breaks == 0 && !self.out.is_empty() {
            self.pending_space = true;
        }
    }

    fn flush_breaks(&mut self) {
        if self.pending_breaks > 0 {
            let depth = self.break_quote.min(self.quote);
            for i in 0..self.pending_breaks {
                self.out.push('\n');
                let last = i + 1 == self.pending_breaks;
                self.start_line(if last { self.quote } else { depth });
            }
            self.pending_breaks = 0;
            self.pending_space = false;
            self.at_line_start = true;
        } else if self.out.is_empty() {
            self.start_line(self.quote);
            self.at_line_start = true;
        }
    }

    fn start_line(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("> ");
        }
    }

    /// Markup the writer itself produces (bullets): no whitespace processing.
    fn push_raw(&mut self, s: &str) {
        self.flush_breaks();
        self.out.push_str(s);
        self.at_line_start = true;
    }

    fn push_text(&mut self, text: &str) {
        if self.pre > 0 {
            for (i, line) in text.split('\n').enumerate() {
                if i > 0 {
                    self.note_break_depth();
                    self.pending_breaks = self.pending_breaks.max(1);
                }
                if !line.is_empty() {
                    self.flush_breaks();
                    self.out.push_str(&line.replace('\u{a0}', " "));
                    self.at_line_start = false;
                }
            }
            return;
        }
        for (i, word) in text
            .split(|c: char| c.is_whitespace() && c != '\u{a0}')
            .enumerate()
        {
            if i > 0 {
                self.pending_space = true;
            }
            if word.is_empty() {
                continue;
            }
            self.flush_breaks();
            if self.pending_space && !self.at_line_start {
                self.out.push(' ');
            }
            self.pending_space = false;
            self.out.push_str(&word.replace('\u{a0}', " "));
            self.at_line_start = false;
        }
    }

    fn finish(self) -> String {
        let mut lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let mut out = String::with_capacity(self.out.len());
        let mut blank_run = 0;
        for line in lines {
            if line.is_empty() || line.chars().all(|c| c == '>' || c == ' ') {
                blank_run += 1;
                if blank_run > 1 {
                    continue;
                }
            } else {
                blank_run = 0;
            }
            out.push_str(line);
            out.push('\n');
        }
        out.trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_removes_active_content_and_remote_images() {
        let html = r#"<p onclick="steal()">Ciao <script>alert(1)</script><img src="http://t.example/p.gif" onerror="x()"><img src="cid:logo@x" alt="logo"><a href="https://comune.milano.it/x">link</a><a href="javascript:alert(1)">js</a><a href="/relative">rel</a></p>"#;
        let clean = sanitize(html);
        assert!(!clean.contains("script"), "{clean}");
        assert!(
            !clean.contains("onclick") && !clean.contains("onerror"),
            "{clean}"
        );
        assert!(!clean.contains("t.example"), "{clean}");
        assert!(clean.contains(r#"src="cid:logo@x""#), "{clean}");
        assert!(
            clean.contains(
                r#"<a href="https://comune.milano.it/x" rel="noopener noreferrer">link</a>"#
            ),
            "{clean}"
        );
        assert!(!clean.contains("javascript"), "{clean}");
        assert!(!clean.contains("/relative"), "{clean}");
        assert!(has_remote_images(html));
        assert!(!has_remote_images(&clean));
    }

    #[test]
    fn html_renders_as_readable_text() {
        let html = "<html><head><title>Titolo</title><style>p{color:red}</style></head><body>\
            <p>Buongiorno,<br>vorrei sapere lo stato della domanda&nbsp;B2.</p>\
            <ul><li>primo</li><li>secondo</li></ul>\
            <ol><li>uno</li><li>due</li></ol>\
            <p>Vedi <a href=\"https://comune.milano.it/b2\">la pagina</a> e \
            <a href=\"mailto:info@comune.milano.it\">info@comune.milano.it</a>.</p>\
            <blockquote><p>testo citato</p></blockquote>\
            <table><tr><td>Nome</td><td>Mario</td></tr></table>\
            <p>Caf&egrave; &amp; perch&#233; &lt;ok&gt;</p></body></html>";
        let text = to_text(html);
        assert_eq!(
            text,
            "Buongiorno,\nvorrei sapere lo stato della domanda B2.\n\n- primo\n- secondo\n\n\
             1. uno\n2. due\n\nVedi la pagina (https://comune.milano.it/b2) e \
             info@comune.milano.it.\n\n> testo citato\n\nNome Mario\n\nCafè & perché <ok>"
        );
    }

    #[test]
    fn entities_decode_and_bad_ones_pass_through() {
        assert_eq!(
            decode_entities("a &amp; b &#x20AC; &bogus; &"),
            "a & b € &bogus; &"
        );
    }
}
