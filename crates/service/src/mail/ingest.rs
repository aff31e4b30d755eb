//! Importing fetched mail into tickets: the IMAP fetchers' [`MailSink`].
//!
//! A batch is stored in one transaction together with the mailbox's checkpoint, so a crash at
//! any point either keeps the whole batch and its checkpoint or neither. Inside it:
//! - what cannot be parsed goes to the quarantine (raw bytes kept, admins can retry);
//! - a Message-ID the mailbox already holds is skipped (the second guard after the checkpoint,
//!   needed after a UIDVALIDITY change);
//! - a bounce is matched to the outgoing message that failed and recorded on its ticket;
//! - anything else is threaded with [`thread::decide`] over look-ups loaded for the whole batch
//!   in a few queries: it joins a ticket (a citizen's answer to a ticket waiting for them
//!   reopens it), or opens one (linked and flagged when it quoted another citizen's ticket),
//!   with its citizen found or created by sender address and an acknowledgement queued unless
//!   loop protection or the per-sender cap says no.
//!
//! Rows are collected in memory while the batch is planned and written with multi-row inserts.
//! Ticket numbers are reserved before the transaction (SQLite has one writer); if a batch needs
//! more than it holds it is rolled back, more are reserved, and it is planned again. Numbers
//! left over wait for the next batch.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Datelike, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QuerySelect, TransactionTrait,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sportello_domain::event::DomainEvent;
use sportello_domain::taxonomy::TaxonomyKind;
use sportello_domain::{Channel, EmailAddress, EntryKind, Priority, Status, TicketNumber, Tier};
use sportello_mail::compose::{AutoAckDraft, Language, compose_auto_ack, render_auto_ack_text};
use sportello_mail::imap::{Checkpoint, FetchedMessage, MailSink, SinkError};
use sportello_mail::loops::auto_reply_check;
use sportello_mail::parse::{self, Attachment, Bounce, InboundMessage, ParseFailure};
use sportello_mail::thread::{self, ThreadDecision, ThreadLookup, ThreadReason};
use sportello_mail::{ComposedMessage, Party};
use sportello_store::entities::{
    audit_log, citizen, citizen_contact, mail_attachment, mail_message, mail_outbox,
    mail_quarantine, ticket, ticket_entry,
};
use sportello_store::mail as q;
use uuid::Uuid;

use crate::util::now;
use crate::{App, ServiceError};

/// Longest text or HTML body kept on a timeline entry; longer bodies are cut with a note.
const MAX_ENTRY_BODY: usize = 1_000_000;
/// How often a batch is planned again for lack of ticket numbers before giving up.
const MAX_ATTEMPTS: usize = 5;
/// The tag of tickets opened for a message that quoted another citizen's ticket.
pub const LINKED_TAG: &str = "linked";

/// The fetchers' sink: stores batches and their checkpoints.
pub struct MailIngest {
    app: App,
}

/// What happened to one message of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// A new ticket; `linked_to` is the ticket the message pointed at but could not join.
    Created {
        ticket_id: Uuid,
        message_id: String,
        linked_to: Option<Uuid>,
        /// Whether an acknowledgement was queued.
        auto_ack: bool,
    },
    /// Appended to an existing ticket.
    Joined {
        ticket_id: Uuid,
        message_id: String,
        reason: ThreadReason,
    },
    /// Already stored: skipped.
    Duplicate { message_id: String },
    /// Recorded on the ticket of the outgoing message it reports on.
    Bounce { ticket_id: Uuid, message_id: String },
    /// Could not be imported; kept in the quarantine.
    Quarantined { quarantine_id: Uuid, reason: String },
    /// Already in the quarantine (the same bytes from the same mailbox).
    AlreadyQuarantined,
}

/// What a batch did, message by message in order.
#[derive(Clone, Debug, Default)]
pub struct IngestReport {
    pub outcomes: Vec<IngestOutcome>,
}

impl IngestReport {
    pub fn created(&self) -> usize {
        self.count(|o| matches!(o, IngestOutcome::Created { .. }))
    }
    pub fn joined(&self) -> usize {
        self.count(|o| matches!(o, IngestOutcome::Joined { .. }))
    }
    pub fn duplicates(&self) -> usize {
        self.count(|o| matches!(o, IngestOutcome::Duplicate { .. }))
    }
    pub fn quarantined(&self) -> usize {
        self.count(|o| {
            matches!(
                o,
                IngestOutcome::Quarantined { .. } | IngestOutcome::AlreadyQuarantined
            )
        })
    }
    fn count(&self, f: impl Fn(&IngestOutcome) -> bool) -> usize {
        self.outcomes.iter().filter(|o| f(o)).count()
    }
}

/// One message to import.
pub(crate) struct Item {
    pub(crate) uid: Option<u32>,
    pub(crate) raw: Vec<u8>,
    pub(crate) parsed: Result<InboundMessage, ParseFailure>,
}

impl Item {
    pub(crate) fn parse(uid: Option<u32>, raw: Vec<u8>, limits: &parse::ParseLimits) -> Item {
        let parsed = parse::parse(&raw, limits).map_err(|e| e.reason);
        Item { uid, raw, parsed }
    }
}

/// A batch and where it came from.
pub(crate) struct Batch {
    pub(crate) mailbox: String,
    pub(crate) uid_validity: Option<u32>,
    /// Set the mailbox's checkpoint to this in the same transaction.
    pub(crate) checkpoint: Option<Checkpoint>,
    /// The quarantined message being retried (then nothing new is quarantined).
    pub(crate) retry_of: Option<Uuid>,
    pub(crate) items: Vec<Item>,
}

impl MailIngest {
    pub(crate) fn new(app: App) -> Self {
        MailIngest { app }
    }

    /// Parses and stores fetched messages, setting the checkpoint to the highest UID, in one
    /// transaction; what [`MailSink::store_batch`] does, with the outcome of each message.
    pub async fn store(
        &self,
        mailbox: &str,
        uid_validity: u32,
        messages: Vec<FetchedMessage>,
    ) -> Result<IngestReport, ServiceError> {
        let checkpoint = messages
            .iter()
            .map(|m| m.uid)
            .max()
            .map(|last_uid| Checkpoint {
                uid_validity,
                last_uid,
            });
        let limits = self.app.mail().limits;
        // Parsing is CPU work: keep it off the async workers.
        let items = tokio::task::spawn_blocking(move || {
            messages
                .into_iter()
                .map(|m| Item::parse(Some(m.uid), m.raw, &limits))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ServiceError::Internal(format!("parsing task failed: {e}")))?;
        self.app
            .ingest_mail(Batch {
                mailbox: mailbox.to_owned(),
                uid_validity: Some(uid_validity),
                checkpoint,
                retry_of: None,
                items,
            })
            .await
    }

    /// The stored checkpoint of a mailbox.
    pub async fn checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, ServiceError> {
        let row = q::load_checkpoint(&self.app.db().read, mailbox).await?;
        Ok(row.map(|c| Checkpoint {
            uid_validity: u32::try_from(c.uid_validity).unwrap_or(0),
            last_uid: u32::try_from(c.last_uid).unwrap_or(0),
        }))
    }
}

impl MailSink for MailIngest {
    async fn load_checkpoint(&self, mailbox: &str) -> Result<Option<Checkpoint>, SinkError> {
        self.checkpoint(mailbox)
            .await
            .map_err(|e| Box::new(e) as SinkError)
    }

    async fn store_batch(
        &self,
        mailbox: &str,
        uid_validity: u32,
        messages: Vec<FetchedMessage>,
    ) -> Result<(), SinkError> {
        self.store(mailbox, uid_validity, messages)
            .await
            .map(|_| ())
            .map_err(|e| Box::new(e) as SinkError)
    }
}

/// What the planner knows about a ticket.
#[derive(Clone, Debug)]
struct TicketInfo {
    number: String,
    status: Status,
    citizen_id: Option<Uuid>,
}

/// Look-ups for threading: loaded for the whole batch, extended as the batch adds messages.
#[derive(Default)]
struct Index {
    /// Message-ID → the ticket holding it (the oldest holder when several mailboxes do).
    by_message_id: HashMap<String, Uuid>,
    /// Our outgoing messages by Message-ID → (ticket, outbox row, its entry).
    outbound: HashMap<String, (Uuid, Option<Uuid>, Option<Uuid>)>,
    /// Outlook conversation → the ticket of its most recent message.
    by_root: HashMap<String, Uuid>,
    by_number: HashMap<String, Uuid>,
    tickets: HashMap<Uuid, TicketInfo>,
    /// Citizen → their e-mail addresses, lowercase.
    citizen_emails: HashMap<Uuid, HashSet<String>>,
    /// Lowercase address → the citizen it identifies.
    email_owner: HashMap<String, Uuid>,
}

impl ThreadLookup for Index {
    type Ticket = Uuid;

    fn ticket_by_message_id(&self, message_id: &str) -> Option<Uuid> {
        self.by_message_id.get(message_id).copied()
    }

    fn ticket_by_number(&self, number: &TicketNumber) -> Option<Uuid> {
        self.by_number.get(number.as_str()).copied()
    }

    fn ticket_by_thread_index(&self, root: &str) -> Option<Uuid> {
        self.by_root.get(root).copied()
    }

    fn is_known_contact(&self, ticket: &Uuid, sender: &EmailAddress) -> bool {
        let sender = sender.as_str().to_lowercase();
        self.tickets
            .get(ticket)
            .and_then(|t| t.citizen_id)
            .and_then(|c| self.citizen_emails.get(&c))
            .is_some_and(|emails| emails.contains(&sender))
    }
}

/// A status change a citizen's message causes, applied only if the status is still `from`.
struct PlannedTransition {
    ticket_id: Uuid,
    from: Status,
    to: Status,
    entry: ticket_entry::Model,
    at: DateTime<Utc>,
}

/// Everything a batch writes, collected while planning.
#[derive(Default)]
struct Plan {
    citizens: Vec<citizen::ActiveModel>,
    contacts: Vec<citizen_contact::ActiveModel>,
    tickets: Vec<ticket::ActiveModel>,
    entries: Vec<ticket_entry::Model>,
    messages: Vec<mail_message::ActiveModel>,
    attachments: Vec<mail_attachment::ActiveModel>,
    outbox: Vec<mail_outbox::ActiveModel>,
    quarantine: Vec<mail_quarantine::ActiveModel>,
    audit: Vec<audit_log::ActiveModel>,
    touched: HashSet<Uuid>,
    transitions: Vec<PlannedTransition>,
    /// Outbox rows (and their entries) whose message bounced.
    bounced: Vec<(Uuid, Option<Uuid>, String)>,
    events: Vec<DomainEvent>,
    outcomes: Vec<IngestOutcome>,
    used_numbers: usize,
    queued_mail: bool,
}

enum Planned {
    Ready(Box<Plan>),
    /// The batch needs at least this many more ticket numbers.
    NeedNumbers(usize),
}

fn audit(
    action: &str,
    entity_type: &str,
    entity_id: Option<Uuid>,
    details: Option<Value>,
    at: DateTime<Utc>,
) -> audit_log::ActiveModel {
    audit_log::ActiveModel {
        at: Set(at),
        actor_id: Set(None),
        action: Set(action.to_owned()),
        entity_type: Set(entity_type.to_owned()),
        entity_id: Set(entity_id),
        details: Set(details.map(|d| d.to_string())),
        ..Default::default()
    }
}

pub(crate) fn entry(
    ticket_id: Uuid,
    kind: EntryKind,
    author: Option<Uuid>,
    body: String,
    body_html: Option<String>,
    meta: Value,
    at: DateTime<Utc>,
) -> ticket_entry::Model {
    ticket_entry::Model {
        id: Uuid::now_v7(),
        ticket_id,
        kind: kind.as_str().to_owned(),
        author_id: author,
        body,
        body_html,
        meta: Some(meta.to_string()),
        created_at: at,
    }
}

/// Cuts a text at a character boundary, saying so.
fn cap_text(text: &str, notes: &mut Vec<String>) -> String {
    if text.len() <= MAX_ENTRY_BODY {
        return text.to_owned();
    }
    let mut end = MAX_ENTRY_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    notes.push(format!(
        "Testo troncato a {} kB: il messaggio completo è nella casella di posta.",
        MAX_ENTRY_BODY / 1024
    ));
    text[..end].to_owned()
}

/// The ticket subject for a message: its subject cut to the ticket limit, or a placeholder.
fn ticket_subject(msg: &InboundMessage) -> String {
    let s: String = msg
        .subject
        .chars()
        .take(crate::tickets::MAX_SUBJECT)
        .collect();
    let s = s.trim().to_owned();
    if s.is_empty() {
        "(senza oggetto)".to_owned()
    } else {
        s
    }
}

fn digest(raw: &[u8]) -> String {
    Sha256::digest(raw)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) fn join_ids(ids: &[String]) -> Option<String> {
    if ids.is_empty() {
        None
    } else {
        Some(ids.join(" "))
    }
}

/// Attachment rows of a stored message, and what the timeline entry lists about them.
fn attachment_rows(
    attachments: &[Attachment],
    mail_message_id: Uuid,
    ticket_id: Uuid,
    at: DateTime<Utc>,
) -> (Vec<mail_attachment::ActiveModel>, Vec<Value>) {
    let mut rows = Vec::with_capacity(attachments.len());
    let mut listed = Vec::with_capacity(attachments.len());
    for a in attachments {
        let id = Uuid::now_v7();
        listed.push(json!({
            "id": id,
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "inline": a.inline,
            "content_id": a.content_id,
            "stored": a.data.is_some(),
        }));
        rows.push(mail_attachment::ActiveModel {
            id: Set(id),
            mail_message_id: Set(mail_message_id),
            ticket_id: Set(ticket_id),
            filename: Set(a.filename.clone()),
            content_type: Set(a.content_type.clone()),
            size: Set(i64::try_from(a.size).unwrap_or(i64::MAX)),
            content_id: Set(a.content_id.clone()),
            inline: Set(a.inline),
            data: Set(a.data.clone()),
            created_at: Set(at),
        });
    }
    (rows, listed)
}

/// Italian text of a bounce for the ticket's timeline.
fn bounce_text(b: &Bounce) -> String {
    let recipients: Vec<&str> = b.failed_recipients().collect();
    let who = if recipients.is_empty() {
        "il destinatario".to_owned()
    } else {
        recipients.join(", ")
    };
    let diagnostic = b
        .recipients
        .iter()
        .find_map(|r| r.diagnostic.as_deref())
        .map(|d| format!(" ({d})"))
        .unwrap_or_default();
    let status = b.status().map(|s| format!(" [{s}]")).unwrap_or_default();
    if b.is_failure() {
        format!("Il messaggio inviato a {who} non è stato consegnato{status}{diagnostic}.")
    } else {
        format!("La consegna del messaggio a {who} è in ritardo{status}{diagnostic}.")
    }
}

impl App {
    /// Reserves ticket numbers until `numbers` holds at least `want`.
    async fn reserve_mail_numbers(
        &self,
        numbers: &mut Vec<TicketNumber>,
        want: usize,
    ) -> Result<(), ServiceError> {
        while numbers.len() < want {
            numbers.push(self.inner.numbers.next(&self.db().write).await?);
        }
        Ok(())
    }

    /// Stores a batch in one transaction; see the module documentation.
    pub(crate) async fn ingest_mail(&self, batch: Batch) -> Result<IngestReport, ServiceError> {
        let mail = self.mail();
        let mut numbers = mail.take_numbers();
        // Numbers reserved last year are of no use now.
        let year = format!("-{}-", Utc::now().year());
        numbers.retain(|n| n.as_str().contains(&year));
        let certain_new = batch
            .items
            .iter()
            .filter(|i| {
                matches!(&i.parsed, Ok(m) if !m.is_bounce() && thread::thread_keys(m) == Default::default())
            })
            .count();
        let result = self
            .ingest_mail_with(&batch, &mut numbers, certain_new)
            .await;
        mail.return_numbers(numbers);
        result
    }

    async fn ingest_mail_with(
        &self,
        batch: &Batch,
        numbers: &mut Vec<TicketNumber>,
        want: usize,
    ) -> Result<IngestReport, ServiceError> {
        self.reserve_mail_numbers(numbers, want).await?;
        for _ in 0..MAX_ATTEMPTS {
            let txn = self.db().write.begin().await?;
            let plan = match self.plan_mail_batch(&txn, batch, numbers).await? {
                Planned::Ready(plan) => plan,
                Planned::NeedNumbers(more) => {
                    txn.rollback().await?;
                    let want = numbers.len() + more;
                    self.reserve_mail_numbers(numbers, want).await?;
                    continue;
                }
            };
            let used = plan.used_numbers;
            let queued = plan.queued_mail;
            let calendar = &self.inner.routing.calendar;
            let (events, outcomes) = write(&txn, batch, *plan, calendar).await?;
            txn.commit().await?;
            numbers.drain(..used);
            self.bus().publish_all(events);
            if queued {
                self.mail().outbox_wake.notify_one();
            }
            let report = IngestReport { outcomes };
            tracing::debug!(
                mailbox = %batch.mailbox,
                created = report.created(),
                joined = report.joined(),
                duplicates = report.duplicates(),
                quarantined = report.quarantined(),
                "mail batch stored"
            );
            return Ok(report);
        }
        Err(ServiceError::Internal(
            "mail batch kept needing more ticket numbers".into(),
        ))
    }

    /// Loads what the batch needs and decides what happens to every message.
    async fn plan_mail_batch(
        &self,
        txn: &DatabaseTransaction,
        batch: &Batch,
        numbers: &[TicketNumber],
    ) -> Result<Planned, ServiceError> {
        let mail = self.mail();
        let at = now();
        let parsed: Vec<&InboundMessage> = batch
            .items
            .iter()
            .filter_map(|i| i.parsed.as_ref().ok())
            .collect();

        // Everything the batch could look up, in a handful of queries.
        let mut ids: Vec<String> = parsed.iter().map(|m| m.message_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let existing = q::existing_message_ids(txn, &batch.mailbox, &ids).await?;
        let mut want_ids: Vec<String> = Vec::new();
        let mut want_numbers: Vec<String> = Vec::new();
        let mut want_roots: Vec<String> = Vec::new();
        let mut bounce_ids: Vec<String> = Vec::new();
        for m in &parsed {
            let keys = thread::thread_keys(m);
            want_ids.extend(keys.message_ids.into_iter().map(|(id, _)| id));
            want_numbers.extend(keys.ticket_numbers.iter().map(|n| n.as_str().to_owned()));
            want_roots.extend(keys.thread_index_root);
            if let Some(b) = &m.bounce {
                bounce_ids.extend(b.original_message_id.iter().cloned());
                bounce_ids.extend(m.in_reply_to.iter().cloned());
                bounce_ids.extend(m.references.iter().cloned());
            }
        }
        want_ids.extend(bounce_ids.iter().cloned());
        for v in [
            &mut want_ids,
            &mut want_numbers,
            &mut want_roots,
            &mut bounce_ids,
        ] {
            v.sort();
            v.dedup();
        }
        let known = q::messages_by_message_ids(txn, &want_ids).await?;
        let in_threads = q::messages_by_thread_roots(txn, &want_roots).await?;
        let numbered = q::tickets_by_numbers(txn, &want_numbers).await?;
        let sent = q::outbox_by_message_ids(txn, &bounce_ids).await?;

        let mut index = Index::default();
        for m in &known {
            index
                .by_message_id
                .entry(m.message_id.clone())
                .or_insert(m.ticket_id);
            if m.direction == "outbound" {
                index
                    .outbound
                    .insert(m.message_id.clone(), (m.ticket_id, None, m.entry_id));
            }
        }
        for o in &sent {
            index
                .outbound
                .insert(o.message_id.clone(), (o.ticket_id, Some(o.id), o.entry_id));
        }
        for m in &in_threads {
            if let Some(root) = &m.thread_index_root {
                index.by_root.insert(root.clone(), m.ticket_id);
            }
        }
        let mut ticket_ids: Vec<Uuid> = known
            .iter()
            .map(|m| m.ticket_id)
            .chain(in_threads.iter().map(|m| m.ticket_id))
            .filter(|id| !numbered.iter().any(|t| t.id == *id))
            .collect();
        ticket_ids.sort();
        ticket_ids.dedup();
        let mut tickets = q::tickets_by_ids(txn, &ticket_ids).await?;
        tickets.extend(numbered);
        let mut citizen_ids: Vec<Uuid> = Vec::new();
        for t in &tickets {
            index.by_number.insert(t.number.clone(), t.id);
            citizen_ids.extend(t.citizen_id);
            index.tickets.insert(
                t.id,
                TicketInfo {
                    number: t.number.clone(),
                    status: Status::parse(&t.status).unwrap_or(Status::Open),
                    citizen_id: t.citizen_id,
                },
            );
        }
        citizen_ids.sort();
        citizen_ids.dedup();
        let mut senders: Vec<String> = Vec::new();
        for m in &parsed {
            if let Some(p) = &m.from {
                senders.push(p.address.as_str().to_owned());
                senders.push(p.address.as_str().to_lowercase());
            }
        }
        senders.sort();
        senders.dedup();
        let contacts = q::email_contacts(txn, &citizen_ids, &senders).await?;
        for c in &contacts {
            let value = c.value.to_lowercase();
            index
                .citizen_emails
                .entry(c.citizen_id)
                .or_default()
                .insert(value.clone());
            // Contacts come oldest first: when several citizens share an address, the one who
            // had it first is the one mail from it belongs to.
            index.email_owner.entry(value).or_insert(c.citizen_id);
        }
        let mut recipients: Vec<String> = parsed
            .iter()
            .filter_map(|m| m.reply_to.as_ref().or(m.from.as_ref()))
            .map(|p| p.address.as_str().to_lowercase())
            .collect();
        recipients.sort();
        recipients.dedup();
        let mut acked: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
        for (r, t) in q::auto_ack_times(txn, &recipients, at - mail.cap.window).await? {
            acked.entry(r).or_default().push(t);
        }
        let digests: Vec<String> = batch
            .items
            .iter()
            .filter(|i| i.parsed.is_err() || i.parsed.as_ref().is_ok_and(|m| m.is_bounce()))
            .map(|i| digest(&i.raw))
            .collect();
        let held = if batch.retry_of.is_some() || digests.is_empty() {
            HashSet::new()
        } else {
            existing_digests(txn, &batch.mailbox, &digests).await?
        };

        let mut planner = Planner {
            app: self,
            batch,
            at,
            index,
            acked,
            held,
            existing,
            seen: HashSet::new(),
            plan: Plan::default(),
            numbers,
        };
        for (pos, item) in batch.items.iter().enumerate() {
            if let Some(more) = planner.item(item)? {
                // Every message from here on might open a ticket.
                let rest = batch.items[pos..]
                    .iter()
                    .filter(|i| i.parsed.is_ok())
                    .count();
                return Ok(Planned::NeedNumbers(more.max(rest)));
            }
        }
        Ok(Planned::Ready(Box::new(planner.plan)))
    }
}

async fn existing_digests<C: ConnectionTrait>(
    conn: &C,
    mailbox: &str,
    digests: &[String],
) -> Result<HashSet<String>, ServiceError> {
    let rows: Vec<String> = mail_quarantine::Entity::find()
        .select_only()
        .column(mail_quarantine::Column::Digest)
        .filter(mail_quarantine::Column::Mailbox.eq(mailbox))
        .filter(mail_quarantine::Column::Digest.is_in(digests.to_vec()))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

struct Planner<'a> {
    app: &'a App,
    batch: &'a Batch,
    at: DateTime<Utc>,
    index: Index,
    /// Recipient (lowercase) → when acknowledgements went to them within the cap's window.
    acked: HashMap<String, Vec<DateTime<Utc>>>,
    /// Digests of raw messages already in this mailbox's quarantine.
    held: HashSet<String>,
    existing: HashSet<String>,
    seen: HashSet<String>,
    plan: Plan,
    numbers: &'a [TicketNumber],
}

/// Where a message that opens a ticket points.
struct Link {
    ticket_id: Uuid,
    reason: ThreadReason,
    /// The sender is not a contact of that ticket's citizen: someone must look at it.
    flagged: bool,
}

impl Planner<'_> {
    /// Plans one message; `Some(n)` when ticket numbers ran out.
    fn item(&mut self, item: &Item) -> Result<Option<usize>, ServiceError> {
        let msg = match &item.parsed {
            Err(failure) => {
                self.quarantine(item, failure.to_string());
                return Ok(None);
            }
            Ok(m) => m,
        };
        if self.existing.contains(&msg.message_id) || !self.seen.insert(msg.message_id.clone()) {
            self.plan.outcomes.push(IngestOutcome::Duplicate {
                message_id: msg.message_id.clone(),
            });
            return Ok(None);
        }
        if let Some(b) = &msg.bounce {
            self.bounce(item, msg, b);
            return Ok(None);
        }
        match thread::decide(msg, &self.index) {
            ThreadDecision::Join { ticket, reason } => {
                let closed = self
                    .index
                    .tickets
                    .get(&ticket)
                    .is_some_and(|t| t.status == Status::Closed);
                if closed {
                    // A closed ticket is final: the message starts a follow-up.
                    self.open(
                        msg,
                        Some(Link {
                            ticket_id: ticket,
                            reason,
                            flagged: false,
                        }),
                    )
                } else {
                    self.join(msg, ticket, reason);
                    Ok(None)
                }
            }
            ThreadDecision::NewTicket => self.open(msg, None),
            ThreadDecision::NewLinked {
                quoted_ticket,
                reason,
            } => self.open(
                msg,
                Some(Link {
                    ticket_id: quoted_ticket,
                    reason,
                    flagged: true,
                }),
            ),
        }
    }

    fn quarantine(&mut self, item: &Item, reason: String) {
        if self.batch.retry_of.is_some() {
            // The retried row stays where it is; write() records the failed attempt.
            self.plan.outcomes.push(IngestOutcome::Quarantined {
                quarantine_id: self.batch.retry_of.unwrap_or_default(),
                reason,
            });
            return;
        }
        let d = digest(&item.raw);
        if !self.held.insert(d.clone()) {
            self.plan.outcomes.push(IngestOutcome::AlreadyQuarantined);
            return;
        }
        let id = Uuid::now_v7();
        self.plan.quarantine.push(mail_quarantine::ActiveModel {
            id: Set(id),
            mailbox: Set(self.batch.mailbox.clone()),
            uid_validity: Set(self.batch.uid_validity.map(i64::from)),
            uid: Set(item.uid.map(i64::from)),
            reason: Set(reason.clone()),
            digest: Set(d),
            raw: Set(item.raw.clone()),
            size: Set(item.raw.len() as i64),
            state: Set("held".to_owned()),
            attempts: Set(0),
            last_error: Set(None),
            ticket_id: Set(None),
            created_at: Set(self.at),
            updated_at: Set(self.at),
        });
        self.plan.audit.push(audit(
            "mail.quarantined",
            "mail_quarantine",
            Some(id),
            Some(json!({ "mailbox": self.batch.mailbox, "uid": item.uid })),
            self.at,
        ));
        tracing::warn!(mailbox = %self.batch.mailbox, uid = item.uid, quarantine.id = %id, "message quarantined: {reason}");
        self.plan.outcomes.push(IngestOutcome::Quarantined {
            quarantine_id: id,
            reason,
        });
    }

    fn message_row(
        &self,
        msg: &InboundMessage,
        ticket_id: Uuid,
        entry_id: Uuid,
        kind: &str,
    ) -> (Uuid, mail_message::ActiveModel) {
        let id = Uuid::now_v7();
        let row = mail_message::ActiveModel {
            id: Set(id),
            ticket_id: Set(ticket_id),
            entry_id: Set(Some(entry_id)),
            direction: Set("inbound".to_owned()),
            kind: Set(kind.to_owned()),
            mailbox: Set(self.batch.mailbox.clone()),
            message_id: Set(msg.message_id.clone()),
            in_reply_to: Set(msg.in_reply_to.clone()),
            references: Set(join_ids(&msg.references)),
            thread_index_root: Set(msg.thread_index_root()),
            from_address: Set(msg.from.as_ref().map(|p| p.address.as_str().to_owned())),
            to_address: Set(msg.to.first().map(|p| p.address.as_str().to_owned())),
            reply_to_address: Set(msg
                .reply_to
                .as_ref()
                .or(msg.from.as_ref())
                .map(|p| p.address.as_str().to_owned())),
            subject: Set(msg.subject.clone()),
            raw_size: Set(msg.raw_size as i64),
            created_at: Set(self.at),
        };
        (id, row)
    }

    fn bounce(&mut self, item: &Item, msg: &InboundMessage, b: &Bounce) {
        let candidates = b
            .original_message_id
            .iter()
            .chain(msg.in_reply_to.iter())
            .chain(msg.references.iter().rev());
        let found = candidates
            .filter_map(|id| self.index.outbound.get(id).map(|o| (id.clone(), *o)))
            .next();
        let Some((original, (ticket_id, outbox_id, outbound_entry))) = found else {
            self.quarantine(
                item,
                "delivery report about a message Sportello did not send (no matching outgoing \
                 message)"
                    .to_owned(),
            );
            return;
        };
        let meta = json!({
            "source": "email",
            "mailbox": self.batch.mailbox,
            "message_id": msg.message_id,
            "bounce": {
                "original_message_id": original,
                "failure": b.is_failure(),
                "status": b.status(),
                "recipients": b.recipients.iter().map(|r| json!({
                    "address": r.address,
                    "action": r.action,
                    "status": r.status,
                    "diagnostic": r.diagnostic,
                })).collect::<Vec<_>>(),
                "outbox_id": outbox_id,
            },
        });
        let e = entry(
            ticket_id,
            EntryKind::System,
            None,
            bounce_text(b),
            None,
            meta,
            self.at,
        );
        let (_, row) = self.message_row(msg, ticket_id, e.id, "bounce");
        self.plan.messages.push(row);
        self.plan.events.push(DomainEvent::EntryAdded {
            ticket_id,
            entry_id: e.id,
            kind: EntryKind::System,
            at: self.at,
        });
        self.plan.entries.push(e);
        self.plan.touched.insert(ticket_id);
        if b.is_failure()
            && let Some(outbox_id) = outbox_id
        {
            self.plan
                .bounced
                .push((outbox_id, outbound_entry, bounce_text(b)));
        }
        self.index
            .by_message_id
            .insert(msg.message_id.clone(), ticket_id);
        self.plan.outcomes.push(IngestOutcome::Bounce {
            ticket_id,
            message_id: msg.message_id.clone(),
        });
    }

    /// The inbound entry, its message row and attachments; returns the entry id.
    fn store_message(
        &mut self,
        msg: &InboundMessage,
        ticket_id: Uuid,
        mut meta: serde_json::Map<String, Value>,
    ) -> Uuid {
        let mut notes: Vec<String> = msg.notes.iter().map(|n| n.to_string()).collect();
        let body = cap_text(&msg.text, &mut notes);
        let html = msg.html.as_deref().map(|h| {
            let mut ignored = Vec::new();
            cap_text(h, &mut ignored)
        });
        let entry_id_placeholder = Uuid::nil();
        let (msg_row_id, mut row) =
            self.message_row(msg, ticket_id, entry_id_placeholder, "message");
        let (atts, listed) = attachment_rows(&msg.attachments, msg_row_id, ticket_id, self.at);
        meta.insert("source".into(), json!("email"));
        meta.insert("mailbox".into(), json!(self.batch.mailbox));
        meta.insert("message_id".into(), json!(msg.message_id));
        meta.insert(
            "from".into(),
            json!(msg.from.as_ref().map(|p| p.address.as_str())),
        );
        meta.insert(
            "from_name".into(),
            json!(msg.from.as_ref().and_then(|p| p.name.as_deref())),
        );
        meta.insert("subject".into(), json!(msg.subject));
        meta.insert("date".into(), json!(msg.date));
        meta.insert("raw_size".into(), json!(msg.raw_size));
        if !listed.is_empty() {
            meta.insert("attachments".into(), Value::Array(listed));
        }
        if !notes.is_empty() {
            meta.insert("notes".into(), json!(notes));
        }
        let e = entry(
            ticket_id,
            EntryKind::Inbound,
            None,
            body,
            html,
            Value::Object(meta),
            self.at,
        );
        row.entry_id = Set(Some(e.id));
        let entry_id = e.id;
        self.plan.entries.push(e);
        self.plan.messages.push(row);
        self.plan.attachments.extend(atts);
        self.index
            .by_message_id
            .insert(msg.message_id.clone(), ticket_id);
        if let Some(root) = msg.thread_index_root() {
            self.index.by_root.insert(root, ticket_id);
        }
        entry_id
    }

    fn join(&mut self, msg: &InboundMessage, ticket_id: Uuid, reason: ThreadReason) {
        let mut meta = serde_json::Map::new();
        meta.insert("thread".into(), json!({ "reason": reason }));
        let entry_id = self.store_message(msg, ticket_id, meta);
        self.plan.touched.insert(ticket_id);
        self.plan.events.push(DomainEvent::EntryAdded {
            ticket_id,
            entry_id,
            kind: EntryKind::Inbound,
            at: self.at,
        });
        // The citizen answered: a ticket waiting for them (or resolved) needs work again.
        if let Some(info) = self.index.tickets.get_mut(&ticket_id)
            && matches!(info.status, Status::WaitingCitizen | Status::Resolved)
            && info.status.transition(Status::Open).is_ok()
        {
            let from = info.status;
            info.status = Status::Open;
            let meta = json!({ "from": from, "to": Status::Open, "reason": "citizen_reply" });
            let e = entry(
                ticket_id,
                EntryKind::System,
                None,
                format!("{from} → open: risposta del cittadino"),
                None,
                meta,
                self.at,
            );
            self.plan.transitions.push(PlannedTransition {
                ticket_id,
                from,
                to: Status::Open,
                entry: e,
                at: self.at,
            });
        }
        self.plan.outcomes.push(IngestOutcome::Joined {
            ticket_id,
            message_id: msg.message_id.clone(),
            reason,
        });
    }

    fn citizen_for(&mut self, sender: &Party) -> Uuid {
        let key = sender.address.as_str().to_lowercase();
        if let Some(id) = self.index.email_owner.get(&key) {
            return *id;
        }
        let id = Uuid::now_v7();
        let name: String = sender
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| sender.address.as_str().to_owned())
            .chars()
            .take(200)
            .collect();
        self.plan.citizens.push(citizen::ActiveModel {
            id: Set(id),
            name_lower: Set(name.to_lowercase()),
            name: Set(name),
            codice_fiscale: Set(None),
            created_at: Set(self.at),
            updated_at: Set(self.at),
        });
        self.plan.contacts.push(citizen_contact::ActiveModel {
            id: Set(Uuid::now_v7()),
            citizen_id: Set(id),
            kind: Set("email".to_owned()),
            value: Set(sender.address.as_str().to_owned()),
            created_at: Set(self.at),
        });
        self.plan
            .audit
            .push(audit("citizen.created", "citizen", Some(id), None, self.at));
        self.plan.events.push(DomainEvent::CitizenCreated {
            citizen_id: id,
            at: self.at,
        });
        self.index.email_owner.insert(key.clone(), id);
        self.index.citizen_emails.entry(id).or_default().insert(key);
        id
    }

    fn open(
        &mut self,
        msg: &InboundMessage,
        link: Option<Link>,
    ) -> Result<Option<usize>, ServiceError> {
        let Some(number) = self.numbers.get(self.plan.used_numbers) else {
            return Ok(Some(1));
        };
        self.plan.used_numbers += 1;
        let mail = self.app.mail();
        let mailbox = mail.mailbox(&self.batch.mailbox);
        let tier = mailbox
            .and_then(|m| m.default_tier)
            .unwrap_or(Tier::FrontOffice);
        let category = mailbox
            .and_then(|m| m.default_category.clone())
            .filter(|c| self.app.taxonomy().contains(TaxonomyKind::Category, c));
        let citizen_id = msg.from.as_ref().map(|p| self.citizen_for(p));
        let id = Uuid::now_v7();
        let tags: Vec<&str> = match &link {
            Some(l) if l.flagged => vec![LINKED_TAG],
            _ => Vec::new(),
        };
        self.plan.tickets.push(
            ticket::Model {
                id,
                number: number.as_str().to_owned(),
                channel: Channel::Email.as_str().to_owned(),
                tier: tier.as_str().to_owned(),
                status: Status::New.as_str().to_owned(),
                priority: Priority::Normal.as_str().to_owned(),
                category: category.clone(),
                measure: None,
                subject: ticket_subject(msg),
                citizen_id,
                assignee_id: None,
                tags: serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into()),
                created_by: None,
                created_at: self.at,
                updated_at: self.at,
                first_response_at: None,
                resolved_at: None,
                closed_at: None,
                sla_due_at: None,
            }
            .into(),
        );
        self.index.tickets.insert(
            id,
            TicketInfo {
                number: number.as_str().to_owned(),
                status: Status::New,
                citizen_id,
            },
        );
        self.index.by_number.insert(number.as_str().to_owned(), id);

        let mut meta = serde_json::Map::new();
        if let Some(l) = &link {
            let quoted_number = self
                .index
                .tickets
                .get(&l.ticket_id)
                .map(|t| t.number.clone())
                .unwrap_or_default();
            meta.insert(
                "linked".into(),
                json!({
                    "ticket_id": l.ticket_id,
                    "number": quoted_number,
                    "reason": l.reason,
                    "flagged": l.flagged,
                    "follow_up": !l.flagged,
                }),
            );
            // The quoted ticket learns of the new one, without anything about its sender.
            let text = if l.flagged {
                format!(
                    "Un messaggio di un mittente che non è un contatto di questa pratica la cita: \
                     aperta la pratica collegata {number}, da verificare."
                )
            } else {
                format!("Nuovo messaggio su pratica chiusa: aperta la pratica {number}.")
            };
            let e = entry(
                l.ticket_id,
                EntryKind::System,
                None,
                text,
                None,
                json!({ "linked_ticket": { "ticket_id": id, "number": number.as_str(), "reason": l.reason, "flagged": l.flagged } }),
                self.at,
            );
            self.plan.events.push(DomainEvent::EntryAdded {
                ticket_id: l.ticket_id,
                entry_id: e.id,
                kind: EntryKind::System,
                at: self.at,
            });
            self.plan.entries.push(e);
            self.plan.touched.insert(l.ticket_id);
        }
        let ack = self.auto_ack(msg, id, number);
        meta.insert("auto_ack".into(), json!(ack.0));
        // The inbound entry comes first on the timeline, the acknowledgement after it.
        let _ = self.store_message(msg, id, meta);
        if let Some(queued) = ack.1 {
            self.queue_ack(queued);
        }
        self.plan.audit.push(audit(
            "ticket.created",
            "ticket",
            Some(id),
            Some(json!({ "number": number.as_str(), "channel": "email", "mailbox": self.batch.mailbox })),
            self.at,
        ));
        self.plan.events.push(DomainEvent::TicketCreated {
            ticket_id: id,
            number: number.as_str().to_owned(),
            channel: Channel::Email,
            tier,
            category,
            at: self.at,
        });
        let acked = ack.0 == "queued";
        self.plan.outcomes.push(IngestOutcome::Created {
            ticket_id: id,
            message_id: msg.message_id.clone(),
            linked_to: link.map(|l| l.ticket_id),
            auto_ack: acked,
        });
        Ok(None)
    }

    /// Decides about the acknowledgement of a new ticket: what to record, and the message
    /// when one goes out.
    fn auto_ack(
        &mut self,
        msg: &InboundMessage,
        ticket_id: Uuid,
        number: &TicketNumber,
    ) -> (String, Option<QueuedAck>) {
        let mail = self.app.mail();
        let cfg = &mail.config.auto_ack;
        if !cfg.enabled {
            return ("disabled".into(), None);
        }
        if let Err(why) = auto_reply_check(msg, &mail.own) {
            return (format!("suppressed: {why}"), None);
        }
        let Some(to) = msg.reply_to.clone().or_else(|| msg.from.clone()) else {
            return ("suppressed: no usable sender address".into(), None);
        };
        let key = to.address.as_str().to_lowercase();
        let times = self.acked.entry(key.clone()).or_default();
        if !mail.cap.allows(times, self.at) {
            return (
                format!(
                    "capped: at most {} acknowledgements per sender in {} hours",
                    cfg.max_per_sender, cfg.window_hours
                ),
                None,
            );
        }
        let Some((mailbox, from)) = mail.sender_for(&self.batch.mailbox) else {
            return ("not sent: no sender address configured".into(), None);
        };
        let draft = AutoAckDraft {
            from,
            to: to.clone(),
            ticket: number.clone(),
            subject: msg.subject.clone(),
            in_reply_to: Some(msg.message_id.clone()),
            references: msg.references.clone(),
            greeting_name: msg.from.as_ref().and_then(|p| p.name.clone()),
            language: Language::It,
            text: cfg.text_it.clone(),
            office: mail.office(),
            message_id_domain: mail.config.message_id_domain.clone(),
        };
        let composed = match compose_auto_ack(&draft) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(ticket.id = %ticket_id, "acknowledgement not composed: {e}");
                return (format!("not sent: {e}"), None);
            }
        };
        times.push(self.at);
        (
            "queued".into(),
            Some(QueuedAck {
                ticket_id,
                mailbox,
                to: to.address,
                text: render_auto_ack_text(&draft),
                composed,
            }),
        )
    }

    fn queue_ack(&mut self, ack: QueuedAck) {
        let outbox_id = Uuid::now_v7();
        let e = entry(
            ack.ticket_id,
            EntryKind::Outbound,
            None,
            ack.text,
            None,
            json!({
                "source": "email",
                "auto": true,
                "message_id": ack.composed.message_id,
                "to": ack.to.as_str(),
                "subject": ack.composed.subject,
                "outbox_id": outbox_id,
                "delivery": "queued",
            }),
            self.at,
        );
        let (row, outbox) = outgoing_rows(OutgoingRows {
            ticket_id: ack.ticket_id,
            entry_id: e.id,
            outbox_id,
            kind: "auto_ack",
            mailbox: ack.mailbox,
            to: &ack.to,
            composed: &ack.composed,
            at: self.at,
        });
        self.index
            .by_message_id
            .insert(ack.composed.message_id.clone(), ack.ticket_id);
        self.plan.entries.push(e);
        self.plan.messages.push(row);
        self.plan.outbox.push(outbox);
        self.plan.queued_mail = true;
    }
}

struct QueuedAck {
    ticket_id: Uuid,
    mailbox: String,
    to: EmailAddress,
    text: String,
    composed: ComposedMessage,
}

/// What an outgoing message stores besides its timeline entry.
pub(crate) struct OutgoingRows<'a> {
    pub(crate) ticket_id: Uuid,
    pub(crate) entry_id: Uuid,
    pub(crate) outbox_id: Uuid,
    pub(crate) kind: &'static str,
    pub(crate) mailbox: String,
    pub(crate) to: &'a EmailAddress,
    pub(crate) composed: &'a ComposedMessage,
    pub(crate) at: DateTime<Utc>,
}

/// The message row (for threading and dedupe) and the outbox row of an outgoing message.
pub(crate) fn outgoing_rows(
    o: OutgoingRows<'_>,
) -> (mail_message::ActiveModel, mail_outbox::ActiveModel) {
    let c = o.composed;
    let envelope_from = c.envelope.from().map(|a| a.to_string()).unwrap_or_default();
    let envelope_to = c
        .envelope
        .to()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let row_id = Uuid::now_v7();
    let message = mail_message::ActiveModel {
        id: Set(row_id),
        ticket_id: Set(o.ticket_id),
        entry_id: Set(Some(o.entry_id)),
        direction: Set("outbound".to_owned()),
        kind: Set(o.kind.to_owned()),
        mailbox: Set(o.mailbox),
        message_id: Set(c.message_id.clone()),
        in_reply_to: Set(c.in_reply_to.clone()),
        references: Set(join_ids(&c.references)),
        thread_index_root: Set(None),
        from_address: Set(Some(envelope_from.clone())),
        to_address: Set(Some(o.to.as_str().to_owned())),
        reply_to_address: Set(None),
        subject: Set(c.subject.clone()),
        raw_size: Set(c.raw.len() as i64),
        created_at: Set(o.at),
    };
    let outbox = mail_outbox::ActiveModel {
        id: Set(o.outbox_id),
        ticket_id: Set(o.ticket_id),
        entry_id: Set(Some(o.entry_id)),
        mail_message_id: Set(row_id),
        kind: Set(o.kind.to_owned()),
        state: Set("queued".to_owned()),
        message_id: Set(c.message_id.clone()),
        envelope_from: Set(envelope_from),
        envelope_to: Set(envelope_to),
        recipient: Set(o.to.as_str().to_lowercase()),
        raw: Set(c.raw.clone()),
        attempts: Set(0),
        next_attempt_at: Set(o.at),
        last_error: Set(None),
        created_at: Set(o.at),
        updated_at: Set(o.at),
        sent_at: Set(None),
    };
    (message, outbox)
}

/// Sets `delivery` (and more) in an outgoing entry's meta.
pub(crate) async fn update_entry_meta<C: ConnectionTrait>(
    conn: &C,
    entry_id: Uuid,
    changes: Value,
) -> Result<(), sea_orm::DbErr> {
    let Some(e) = ticket_entry::Entity::find_by_id(entry_id).one(conn).await? else {
        return Ok(());
    };
    let mut meta: serde_json::Map<String, Value> = e
        .meta
        .as_deref()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    if let Value::Object(changes) = changes {
        for (k, v) in changes {
            meta.insert(k, v);
        }
    }
    ticket_entry::Entity::update_many()
        .col_expr(
            ticket_entry::Column::Meta,
            Expr::value(Value::Object(meta).to_string()),
        )
        .filter(ticket_entry::Column::Id.eq(entry_id))
        .exec(conn)
        .await?;
    Ok(())
}

/// Writes a planned batch; returns the events to publish after commit and the outcomes.
async fn write(
    txn: &DatabaseTransaction,
    batch: &Batch,
    plan: Plan,
    calendar: &sportello_domain::calendar::BusinessCalendar,
) -> Result<(Vec<DomainEvent>, Vec<IngestOutcome>), ServiceError> {
    let Plan {
        citizens,
        contacts,
        tickets,
        mut entries,
        messages,
        attachments,
        outbox,
        quarantine,
        audit: mut audit_rows,
        touched,
        transitions,
        bounced,
        mut events,
        outcomes,
        ..
    } = plan;
    q::insert_all(txn, citizens).await?;
    q::insert_all(txn, contacts).await?;
    q::insert_all(txn, tickets).await?;
    for t in transitions {
        let mut update = ticket::Entity::update_many()
            .col_expr(ticket::Column::Status, Expr::value(t.to.as_str()))
            .col_expr(ticket::Column::UpdatedAt, Expr::value(t.at));
        if t.from == Status::Resolved {
            update = update.col_expr(
                ticket::Column::ResolvedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            );
        }
        let res = update
            .filter(ticket::Column::Id.eq(t.ticket_id))
            .filter(ticket::Column::Status.eq(t.from.as_str()))
            .exec(txn)
            .await?;
        // Changed by an operator meanwhile: their change stands.
        if res.rows_affected == 1 {
            audit_rows.push(audit(
                "ticket.transitioned",
                "ticket",
                Some(t.ticket_id),
                Some(json!({ "from": t.from, "to": t.to, "reason": "citizen_reply" })),
                t.at,
            ));
            events.push(DomainEvent::TicketTransitioned {
                ticket_id: t.ticket_id,
                from: t.from,
                to: t.to,
                at: t.at,
            });
            entries.push(t.entry);
            let change = crate::routing::SlaEvent::Transition {
                from: t.from,
                to: t.to,
            };
            crate::routing::sla_event(txn, calendar, t.ticket_id, change, t.at).await?;
        }
    }
    // A citizen's message on an existing ticket starts its next-response timer.
    for o in &outcomes {
        if let IngestOutcome::Joined { ticket_id, .. } = o {
            let wrote = crate::routing::SlaEvent::CitizenWrote;
            crate::routing::sla_event(txn, calendar, *ticket_id, wrote, now()).await?;
        }
    }
    let at = now();
    let touched: Vec<Uuid> = touched.into_iter().collect();
    for chunk in touched.chunks(500) {
        ticket::Entity::update_many()
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .filter(ticket::Column::Id.is_in(chunk.to_vec()))
            .exec(txn)
            .await?;
    }
    entries.sort_by_key(|e| e.id);
    q::insert_all(
        txn,
        entries
            .into_iter()
            .map(ticket_entry::ActiveModel::from)
            .collect(),
    )
    .await?;
    q::insert_all(txn, messages).await?;
    q::insert_all(txn, attachments).await?;
    q::insert_all(txn, outbox).await?;
    q::insert_all(txn, quarantine).await?;
    for (outbox_id, entry_id, text) in bounced {
        q::finish_outbox(txn, outbox_id, "bounced", at, Some(text.clone()), None, at).await?;
        if let Some(entry_id) = entry_id {
            update_entry_meta(
                txn,
                entry_id,
                json!({ "delivery": "bounced", "last_error": text }),
            )
            .await?;
        }
    }
    if let Some(qid) = batch.retry_of {
        let imported_to = outcomes.iter().find_map(|o| match o {
            IngestOutcome::Created { ticket_id, .. }
            | IngestOutcome::Joined { ticket_id, .. }
            | IngestOutcome::Bounce { ticket_id, .. } => Some(*ticket_id),
            _ => None,
        });
        let still_held = outcomes
            .iter()
            .any(|o| matches!(o, IngestOutcome::Quarantined { .. }));
        if !still_held {
            mail_quarantine::Entity::update_many()
                .col_expr(mail_quarantine::Column::State, Expr::value("imported"))
                .col_expr(mail_quarantine::Column::TicketId, Expr::value(imported_to))
                .col_expr(
                    mail_quarantine::Column::Attempts,
                    Expr::col(mail_quarantine::Column::Attempts).add(1),
                )
                .col_expr(
                    mail_quarantine::Column::LastError,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(mail_quarantine::Column::UpdatedAt, Expr::value(at))
                .filter(mail_quarantine::Column::Id.eq(qid))
                .exec(txn)
                .await?;
            audit_rows.push(audit(
                "mail.quarantine_imported",
                "mail_quarantine",
                Some(qid),
                Some(json!({ "ticket_id": imported_to })),
                at,
            ));
        }
    }
    q::insert_all(txn, audit_rows).await?;
    if let Some(cp) = batch.checkpoint {
        q::save_checkpoint(txn, &batch.mailbox, cp.uid_validity, cp.last_uid, at).await?;
    }
    Ok((events, outcomes))
}
