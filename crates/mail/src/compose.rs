//! Outgoing messages: operator replies from the Italian (or English) template and automatic
//! acknowledgements, with the threading headers and ticket tag that bring answers back to the
//! right ticket.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment as LettreAttachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sportello_domain::{TicketNumber, slug_enum};

use crate::parse::Party;

slug_enum! {
    /// Language of the text a citizen receives; Italian unless the citizen chose English.
    #[derive(Default)]
    pub enum Language as "language" {
        #[default]
        It => "it",
        En => "en",
    }
}

/// How many Message-IDs a `References` header keeps: the thread's first and the most recent.
pub const MAX_REFERENCES: usize = 20;

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("{field} address cannot be used in a message: {reason}")]
    Address { field: &'static str, reason: String },
    #[error("attachment {index} has an invalid content type '{value}'")]
    ContentType { index: usize, value: String },
    #[error("message could not be built: {0}")]
    Build(String),
}

/// Closing lines of a reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    /// The operator signing the reply (first name and surname, or a desk name).
    pub operator_name: String,
    /// The office, e.g. `Sportello Welfare - Comune di Milano`.
    pub office: String,
    /// Contact details printed under the signature separator (phone, opening hours, web site).
    pub contact_lines: Vec<String>,
}

/// A file sent with a reply.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundAttachment {
    pub filename: String,
    /// `type/subtype`, e.g. `application/pdf`.
    pub content_type: String,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for OutboundAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboundAttachment")
            .field("content_type", &self.content_type)
            .field("size", &self.data.len())
            .finish_non_exhaustive()
    }
}

/// Everything needed for an operator's reply.
#[derive(Clone)]
pub struct ReplyDraft {
    /// The mailbox the ticket came in through (address and display name).
    pub from: Party,
    /// The citizen.
    pub to: Party,
    pub ticket: TicketNumber,
    /// Subject of the citizen's last message (or of the ticket).
    pub subject: String,
    /// A subject the operator chose, used instead of `Re:` + `subject` (see
    /// [`operator_subject`]).
    pub custom_subject: Option<String>,
    /// Message-ID of the citizen's last message.
    pub in_reply_to: Option<String>,
    /// `References` of the citizen's last message.
    pub references: Vec<String>,
    /// Name for the greeting; `None` greets neutrally.
    pub greeting_name: Option<String>,
    /// What the operator wrote.
    pub body: String,
    pub signature: Signature,
    pub language: Language,
    pub attachments: Vec<OutboundAttachment>,
    /// Domain of the new Message-ID; the sender's domain when `None`.
    pub message_id_domain: Option<String>,
}

/// Everything needed for an automatic acknowledgement of a new ticket.
#[derive(Clone)]
pub struct AutoAckDraft {
    pub from: Party,
    pub to: Party,
    pub ticket: TicketNumber,
    /// Subject of the citizen's message.
    pub subject: String,
    /// Message-ID of the citizen's message.
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub greeting_name: Option<String>,
    pub language: Language,
    /// Configured text replacing the default body; `{numero}` (or `{ticket}`) becomes the ticket
    /// number and `{tag}` the subject tag.
    pub text: Option<String>,
    /// Office name closing the message.
    pub office: String,
    pub message_id_domain: Option<String>,
}

/// A built message and what the caller stores about it.
#[derive(Debug, Clone)]
pub struct ComposedMessage {
    pub message: Message,
    /// Without angle brackets.
    pub message_id: String,
    /// The message exactly as it will be sent.
    pub raw: Vec<u8>,
    pub envelope: lettre::address::Envelope,
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
}

/// A fresh Message-ID on our domain, without angle brackets.
pub fn new_message_id(domain: &str) -> String {
    format!("{}@{}", uuid::Uuid::now_v7().simple(), domain)
}

/// Reply and forward prefixes mail clients add, in the languages our citizens write in
/// (Italian Outlook writes `R:` and `I:`).
const SUBJECT_PREFIXES: &[&str] = &[
    "re", "r", "ri", "rif", "aw", "sv", "fw", "fwd", "i", "inoltro", "tr", "wg", "rv", "enc",
];

fn strip_prefixes(mut s: &str) -> &str {
    loop {
        let t = s.trim_start();
        let Some(colon) = t.find(':') else { return t };
        let head = t[..colon].trim();
        // `Re[2]:` and `Re(2):` count as `Re:`.
        let word = head
            .split(['[', '('])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !SUBJECT_PREFIXES.contains(&word.as_str()) || head.len() > word.len() + 4 {
            return t;
        }
        s = &t[colon + 1..];
    }
}

/// Removes every occurrence of `[TICKET]` (any letter case) from a subject.
fn remove_tag(subject: &str, ticket: &TicketNumber) -> String {
    let tag = ticket.subject_tag().to_ascii_lowercase();
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(pos) = rest.to_ascii_lowercase().find(&tag) {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + tag.len()..];
    }
    out.push_str(rest);
    out
}

/// The subject's core: reply/forward prefixes and our tag removed, whitespace collapsed.
pub fn base_subject(subject: &str, ticket: &TicketNumber) -> String {
    let mut s = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    // Clients stack prefixes around the tag (`R: [SP-..] Re: x`), so alternate until stable.
    loop {
        let next = strip_prefixes(remove_tag(strip_prefixes(&s), ticket).trim())
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if next == s {
            return s;
        }
        s = next;
    }
}

/// `Re: [SP-2026-000123] subject`: exactly one `Re:` and one tag, whatever the citizen's
/// client did to the subject.
pub fn reply_subject(subject: &str, ticket: &TicketNumber, language: Language) -> String {
    let base = base_subject(subject, ticket);
    let base = if base.is_empty() {
        match language {
            Language::It => "La sua richiesta".to_owned(),
            Language::En => "Your request".to_owned(),
        }
    } else {
        base
    };
    format!("Re: {} {}", ticket.subject_tag(), base)
}

/// A subject the operator wrote, on one line (line breaks and other control characters become
/// spaces, so no header can be smuggled in) and carrying the ticket tag, which is put in front
/// when missing, so the citizen's answer threads back. `None` when nothing is left.
pub fn operator_subject(subject: &str, ticket: &TicketNumber) -> Option<String> {
    let line: String = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return None;
    }
    let tag = ticket.subject_tag();
    if line
        .to_ascii_lowercase()
        .contains(&tag.to_ascii_lowercase())
    {
        Some(line)
    } else {
        Some(format!("{tag} {line}"))
    }
}

/// The subject of an operator's reply: the operator's own, or `Re:` and the thread's.
pub fn draft_subject(draft: &ReplyDraft) -> String {
    draft
        .custom_subject
        .as_deref()
        .and_then(|s| operator_subject(s, &draft.ticket))
        .unwrap_or_else(|| reply_subject(&draft.subject, &draft.ticket, draft.language))
}

/// The `References` of a reply: the parent's references plus the parent, keeping the first
/// (thread root) and the most recent ones when there are more than `max`.
pub fn reply_references(
    parent_references: &[String],
    parent_id: Option<&str>,
    max: usize,
) -> Vec<String> {
    let mut refs: Vec<String> = Vec::with_capacity(parent_references.len() + 1);
    for id in parent_references
        .iter()
        .map(String::as_str)
        .chain(parent_id)
    {
        let id = id.trim().trim_start_matches('<').trim_end_matches('>');
        if !id.is_empty() && !refs.iter().any(|r| r == id) {
            refs.push(id.to_owned());
        }
    }
    if max == 0 {
        return Vec::new();
    }
    if refs.len() > max {
        let keep_tail = max - 1;
        let tail = refs.split_off(refs.len() - keep_tail);
        refs.truncate(1);
        refs.extend(tail);
        if max == 1 {
            refs.truncate(1);
        }
    }
    refs
}

fn greeting(name: Option<&str>, language: Language) -> String {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    match (language, name) {
        (Language::It, Some(n)) => format!("Gentile {n},"),
        (Language::It, None) => "Gentile utente,".to_owned(),
        (Language::En, Some(n)) => format!("Dear {n},"),
        (Language::En, None) => "Dear Sir or Madam,".to_owned(),
    }
}

fn normalise_body(body: &str) -> String {
    body.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim()
        .to_owned()
}

/// The text of an operator reply from the template.
pub fn render_reply_text(draft: &ReplyDraft) -> String {
    let tag = draft.ticket.subject_tag();
    let sig = &draft.signature;
    let mut out = String::new();
    out.push_str(&greeting(draft.greeting_name.as_deref(), draft.language));
    out.push_str("\n\n");
    out.push_str(&normalise_body(&draft.body));
    out.push_str("\n\n");
    out.push_str(match draft.language {
        Language::It => "Cordiali saluti,",
        Language::En => "Kind regards,",
    });
    out.push('\n');
    for line in [&sig.operator_name, &sig.office] {
        if !line.trim().is_empty() {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out.push_str("\n-- \n");
    for line in &sig.contact_lines {
        if !line.trim().is_empty() {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out.push_str(&match draft.language {
        Language::It => format!(
            "Per rispondere usi la funzione \"Rispondi\" e lasci nell'oggetto il codice {tag}."
        ),
        Language::En => format!("To answer, reply to this message and keep {tag} in the subject."),
    });
    out.push('\n');
    out
}

/// The default acknowledgement text; `{numero}` and `{tag}` are filled in by [`render_auto_ack_text`].
pub fn default_auto_ack_text(language: Language) -> &'static str {
    match language {
        Language::It => {
            "abbiamo ricevuto il suo messaggio e lo abbiamo registrato con il numero di pratica \
             {numero}.\nUn operatore le risponderà al più presto.\n\nPer aggiungere informazioni \
             risponda a questo messaggio lasciando nell'oggetto il codice {tag}.\n\nQuesto è un \
             messaggio automatico."
        }
        Language::En => {
            "we have received your message and registered it as request {numero}.\nAn operator \
             will answer as soon as possible.\n\nTo add information, reply to this message and \
             keep {tag} in the subject.\n\nThis is an automatic message."
        }
    }
}

/// The text of an automatic acknowledgement.
pub fn render_auto_ack_text(draft: &AutoAckDraft) -> String {
    let template = draft
        .text
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| default_auto_ack_text(draft.language));
    let body = template
        .replace("{numero}", draft.ticket.as_str())
        .replace("{ticket}", draft.ticket.as_str())
        .replace("{tag}", &draft.ticket.subject_tag());
    let mut out = greeting(draft.greeting_name.as_deref(), draft.language);
    out.push_str("\n\n");
    out.push_str(&normalise_body(&body));
    out.push('\n');
    if !draft.office.trim().is_empty() {
        out.push('\n');
        out.push_str(draft.office.trim());
        out.push('\n');
    }
    out
}

fn mailbox(field: &'static str, party: &Party) -> Result<Mailbox, ComposeError> {
    let address: Address =
        party
            .address
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| ComposeError::Address {
                field,
                reason: e.to_string(),
            })?;
    let name = party
        .name
        .as_deref()
        .map(|n| n.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, address))
}

fn angle(id: &str) -> String {
    format!("<{id}>")
}

struct Common<'a> {
    from: &'a Party,
    to: &'a Party,
    subject: String,
    in_reply_to: Option<&'a str>,
    references: Vec<String>,
    message_id_domain: Option<&'a str>,
    auto_submitted: bool,
}

fn build(
    common: Common<'_>,
    text: String,
    attachments: &[OutboundAttachment],
) -> Result<ComposedMessage, ComposeError> {
    let from = mailbox("From", common.from)?;
    let to = mailbox("To", common.to)?;
    let domain = common
        .message_id_domain
        .map(str::to_owned)
        .unwrap_or_else(|| common.from.address.domain().to_owned());
    let message_id = new_message_id(&domain);
    let in_reply_to = common
        .in_reply_to
        .map(|id| {
            id.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
        .filter(|id| !id.is_empty());

    let mut builder = Message::builder()
        .from(from)
        .to(to)
        .subject(common.subject.clone())
        .message_id(Some(angle(&message_id)))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Loop"),
            common.from.address.as_str().to_owned(),
        ));
    if let Some(id) = &in_reply_to {
        builder = builder.in_reply_to(angle(id));
    }
    if !common.references.is_empty() {
        let joined = common
            .references
            .iter()
            .map(|r| angle(r))
            .collect::<Vec<_>>()
            .join(" ");
        builder = builder.references(joined);
    }
    if common.auto_submitted {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-replied".to_owned(),
            ))
            // Keeps Outlook's out-of-office robots from answering our robot.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Auto-Response-Suppress"),
                "All".to_owned(),
            ));
    }

    let text_part = SinglePart::plain(text);
    let message = if attachments.is_empty() {
        builder.singlepart(text_part)
    } else {
        let mut multi = MultiPart::mixed().singlepart(text_part);
        for (index, a) in attachments.iter().enumerate() {
            let ct =
                ContentType::parse(&a.content_type).map_err(|_| ComposeError::ContentType {
                    index,
                    value: a.content_type.clone(),
                })?;
            multi = multi
                .singlepart(LettreAttachment::new(a.filename.clone()).body(a.data.clone(), ct));
        }
        builder.multipart(multi)
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;

    let raw = message.formatted();
    let envelope = message.envelope().clone();
    Ok(ComposedMessage {
        message,
        message_id,
        raw,
        envelope,
        subject: common.subject,
        in_reply_to,
        references: common.references,
    })
}

/// Builds an operator's reply.
pub fn compose_reply(draft: &ReplyDraft) -> Result<ComposedMessage, ComposeError> {
    let references = reply_references(
        &draft.references,
        draft.in_reply_to.as_deref(),
        MAX_REFERENCES,
    );
    build(
        Common {
            from: &draft.from,
            to: &draft.to,
            subject: draft_subject(draft),
            in_reply_to: draft.in_reply_to.as_deref(),
            references,
            message_id_domain: draft.message_id_domain.as_deref(),
            auto_submitted: false,
        },
        render_reply_text(draft),
        &draft.attachments,
    )
}

/// Builds an automatic acknowledgement, marked `Auto-Submitted: auto-replied`.
pub fn compose_auto_ack(draft: &AutoAckDraft) -> Result<ComposedMessage, ComposeError> {
    let references = reply_references(
        &draft.references,
        draft.in_reply_to.as_deref(),
        MAX_REFERENCES,
    );
    build(
        Common {
            from: &draft.from,
            to: &draft.to,
            subject: reply_subject(&draft.subject, &draft.ticket, draft.language),
            in_reply_to: draft.in_reply_to.as_deref(),
            references,
            message_id_domain: draft.message_id_domain.as_deref(),
            auto_submitted: true,
        },
        render_auto_ack_text(draft),
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TicketNumber {
        TicketNumber::parse("SP-2026-000123").unwrap()
    }

    #[test]
    fn subjects_get_one_re_and_one_tag() {
        let cases = [
            ("Domanda B2", "Re: [SP-2026-000123] Domanda B2"),
            ("Re: Domanda B2", "Re: [SP-2026-000123] Domanda B2"),
            (
                "R: RE: Re[2]: Domanda B2",
                "Re: [SP-2026-000123] Domanda B2",
            ),
            (
                "Re: [SP-2026-000123] Domanda B2",
                "Re: [SP-2026-000123] Domanda B2",
            ),
            (
                "R: [sp-2026-000123] Re: [SP-2026-000123] Domanda B2",
                "Re: [SP-2026-000123] Domanda B2",
            ),
            ("I: Domanda  ISEE", "Re: [SP-2026-000123] Domanda ISEE"),
            ("", "Re: [SP-2026-000123] La sua richiesta"),
            ("Re:", "Re: [SP-2026-000123] La sua richiesta"),
            ("Reclamo: ritardo", "Re: [SP-2026-000123] Reclamo: ritardo"),
            (
                "[SP-2026-000999] altra pratica",
                "Re: [SP-2026-000123] [SP-2026-000999] altra pratica",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(reply_subject(input, &t(), Language::It), want, "{input:?}");
        }
        assert_eq!(
            reply_subject("", &t(), Language::En),
            "Re: [SP-2026-000123] Your request"
        );
    }

    #[test]
    fn operator_subjects_keep_their_words_and_get_the_tag() {
        let cases = [
            (
                "Esito della domanda B2",
                "[SP-2026-000123] Esito della domanda B2",
            ),
            (
                "Re: [sp-2026-000123] Domanda B2",
                "Re: [sp-2026-000123] Domanda B2",
            ),
            (
                "Esito\r\nBcc: altri@example.it",
                "[SP-2026-000123] Esito Bcc: altri@example.it",
            ),
            ("  due   spazi\t", "[SP-2026-000123] due spazi"),
        ];
        for (input, want) in cases {
            assert_eq!(
                operator_subject(input, &t()).as_deref(),
                Some(want),
                "{input:?}"
            );
        }
        assert_eq!(operator_subject(" \r\n ", &t()), None);
    }

    #[test]
    fn references_keep_root_and_latest() {
        let refs: Vec<String> = (1..=30).map(|i| format!("m{i}@x")).collect();
        let out = reply_references(&refs, Some("<m31@x>"), 5);
        assert_eq!(out, ["m1@x", "m28@x", "m29@x", "m30@x", "m31@x"]);
        assert_eq!(reply_references(&[], Some("a@x"), 20), ["a@x"]);
        assert_eq!(reply_references(&["a@x".into()], Some("a@x"), 20), ["a@x"]);
        assert!(reply_references(&[], None, 20).is_empty());
    }
}
