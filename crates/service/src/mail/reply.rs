//! An operator's reply by e-mail: stored on the ticket and queued in the outbox in one
//! transaction, threaded to the citizen's last message, from the Italian (or English) template.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sportello_domain::event::DomainEvent;
use sportello_domain::{EmailAddress, EntryKind, Status};
use sportello_mail::Party;
use sportello_mail::compose::{
    Language, OutboundAttachment, ReplyDraft, Signature, compose_reply, reply_subject,
};
use sportello_store::entities::{
    citizen, citizen_contact, mail_attachment, mail_message, ticket, ticket_entry,
};
use sportello_store::mail as q;
use uuid::Uuid;

use super::ingest::{OutgoingRows, entry, outgoing_rows};
use super::load_visible;
use crate::error::Problems;
use crate::tickets::{EntryView, MAX_BODY};
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// Most files one reply may carry.
const MAX_ATTACHMENTS: usize = 10;

/// Longest subject an operator may write (characters, before the ticket tag is added).
pub const MAX_REPLY_SUBJECT: usize = 200;

/// A reply to the citizen by e-mail.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewReply {
    /// What the operator writes; the template adds greeting, signature and contact lines.
    pub body: String,
    /// Language of the template: `it` (default) or `en`.
    pub template: Option<String>,
    /// The e-mail's subject, at most 200 characters on one line; the ticket tag
    /// (`[SP-2026-000123]`) is put in front when missing. Absent or blank: `Re:` and the
    /// subject of the citizen's last message (or of the ticket).
    #[serde(default)]
    #[schema(max_length = 200)]
    pub subject: Option<String>,
    /// Files to send with the reply.
    #[serde(default)]
    pub attachments: Vec<ReplyAttachment>,
}

/// A file sent with a reply.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct ReplyAttachment {
    pub filename: String,
    /// `type/subtype`, e.g. `application/pdf`.
    pub content_type: String,
    /// The content, base64-encoded (standard alphabet, padding optional).
    pub content_base64: String,
}

impl std::fmt::Debug for ReplyAttachment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyAttachment")
            .field("content_type", &self.content_type)
            .field("encoded_len", &self.content_base64.len())
            .finish_non_exhaustive()
    }
}

/// Where a queued message stands.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub outbox_id: Uuid,
    /// Without angle brackets.
    pub message_id: String,
    /// `queued`, `sent`, `failed` or `bounced`.
    pub state: String,
    pub to: String,
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub queued_at: DateTime<Utc>,
}

/// A stored, queued reply.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReplyView {
    pub entry: EntryView,
    pub delivery: DeliveryView,
}

struct ValidReply {
    body: String,
    subject: Option<String>,
    language: Language,
    attachments: Vec<OutboundAttachment>,
}

fn validate(input: &NewReply, max_attachment_bytes: usize) -> Result<ValidReply, ServiceError> {
    let mut p = Problems::default();
    let body = p.check("body", bounded(&input.body, 1, MAX_BODY));
    let subject = input
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(s) = subject {
        if s.chars().count() > MAX_REPLY_SUBJECT {
            p.add(
                "subject",
                format!("must be at most {MAX_REPLY_SUBJECT} characters"),
            );
        } else if s.chars().any(char::is_control) {
            p.add(
                "subject",
                "must be a single line (no line breaks or control characters)",
            );
        }
    }
    let language = match input.template.as_deref().map(str::trim) {
        None | Some("") => Some(Language::It),
        Some(t) => p.check(
            "template",
            Language::parse(t).map_err(|_| format!("unknown template '{t}' (expected it or en)")),
        ),
    };
    if input.attachments.len() > MAX_ATTACHMENTS {
        p.add(
            "attachments",
            format!("at most {MAX_ATTACHMENTS} files per reply"),
        );
    }
    let mut attachments = Vec::new();
    for (i, a) in input.attachments.iter().enumerate() {
        let field = |name: &str| format!("attachments[{i}].{name}");
        let filename = a.filename.trim();
        if filename.is_empty() || filename.chars().count() > 200 {
            p.add(field("filename"), "must be 1–200 characters");
        } else if filename.contains(['/', '\\']) || filename.chars().any(char::is_control) {
            p.add(
                field("filename"),
                "must be a plain file name (no path, no control characters)",
            );
        }
        let ct = a.content_type.trim().to_ascii_lowercase();
        let shape_ok = ct.split_once('/').is_some_and(|(t, s)| {
            !t.is_empty()
                && !s.is_empty()
                && ct
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/.+-_".contains(c))
        });
        if !shape_ok {
            p.add(
                field("content_type"),
                "must be a media type like application/pdf",
            );
        }
        let engine = base64::engine::general_purpose::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
        let engine = base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, engine);
        let cleaned: String = a
            .content_base64
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        match engine.decode(cleaned.as_bytes()) {
            Ok(data) if data.len() > max_attachment_bytes => p.add(
                field("content_base64"),
                format!(
                    "the file has {} bytes, more than the limit of {max_attachment_bytes}",
                    data.len()
                ),
            ),
            Ok(data) if shape_ok && !filename.is_empty() => {
                attachments.push(OutboundAttachment {
                    filename: filename.to_owned(),
                    content_type: ct,
                    data,
                });
            }
            Ok(_) => {}
            Err(e) => p.add(field("content_base64"), format!("is not base64: {e}")),
        }
    }
    p.finish()?;
    Ok(ValidReply {
        body: body.unwrap_or_default(),
        subject: subject.map(str::to_owned),
        language: language.unwrap_or_default(),
        attachments,
    })
}

/// The subject a reply answers: the citizen's last message's, else the ticket's.
fn thread_subject(last: Option<&mail_message::Model>, t: &ticket::Model) -> String {
    last.map(|m| m.subject.clone())
        .unwrap_or_else(|| t.subject.clone())
}

impl App {
    /// The subject a reply gets when the operator writes none (`Re: [SP-…] …`), to prefill the
    /// reply form with.
    pub async fn default_reply_subject(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
        template: Option<&str>,
    ) -> Result<String, ServiceError> {
        let read = &self.db().read;
        let t = load_visible(read, actor, ticket_id).await?;
        let last = q::last_inbound(read, ticket_id).await?;
        let number = sportello_domain::TicketNumber::parse(&t.number)
            .map_err(|e| ServiceError::Internal(format!("stored ticket number: {e}")))?;
        let language = template
            .and_then(|l| Language::parse(l.trim()).ok())
            .unwrap_or_default();
        Ok(reply_subject(
            &thread_subject(last.as_ref(), &t),
            &number,
            language,
        ))
    }

    /// Replies to a ticket's citizen by e-mail: the reply is stored on the timeline and queued
    /// for delivery in one transaction; the outbox worker sends it.
    pub async fn reply_by_email(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
        input: NewReply,
    ) -> Result<ReplyView, ServiceError> {
        actor.require_operator()?;
        let mail = self.mail();
        let v = validate(&input, mail.limits.max_attachment_bytes)?;
        let txn = self.db().write.begin().await?;
        let t = load_visible(&txn, actor, ticket_id).await?;
        if Status::parse(&t.status) == Ok(Status::Closed) {
            return Err(ServiceError::Conflict(
                "the ticket is closed; reopen it or open a new one to write to the citizen".into(),
            ));
        }
        let last = q::last_inbound(&txn, ticket_id).await?;
        let citizen = match t.citizen_id {
            Some(c) => citizen::Entity::find_by_id(c).one(&txn).await?,
            None => None,
        };
        // Answer where the citizen last wrote from; else the citizen's first e-mail address.
        let to = match last
            .as_ref()
            .and_then(|m| m.reply_to_address.clone().or(m.from_address.clone()))
        {
            Some(a) => Some(a),
            None => match &citizen {
                Some(c) => citizen_contact::Entity::find()
                    .filter(citizen_contact::Column::CitizenId.eq(c.id))
                    .filter(citizen_contact::Column::Kind.eq("email"))
                    .order_by_asc(citizen_contact::Column::Id)
                    .one(&txn)
                    .await?
                    .map(|c| c.value),
                None => None,
            },
        };
        let Some(to) = to.and_then(|a| EmailAddress::parse(&a).ok()) else {
            return Err(ServiceError::Conflict(
                "the ticket has no e-mail address to reply to: add one to the citizen".into(),
            ));
        };
        let Some((mailbox, from)) = mail.sender_for(last.as_ref().map_or("", |m| &m.mailbox))
        else {
            return Err(ServiceError::Conflict(
                "e-mail is not configured: no mailbox or SMTP sender to send from".into(),
            ));
        };
        let number = sportello_domain::TicketNumber::parse(&t.number)
            .map_err(|e| ServiceError::Internal(format!("stored ticket number: {e}")))?;
        let greeting_name = citizen
            .as_ref()
            .map(|c| c.name.clone())
            .filter(|n| !n.contains('@'));
        let draft = ReplyDraft {
            from,
            to: Party {
                address: to.clone(),
                name: greeting_name.clone(),
            },
            ticket: number,
            subject: thread_subject(last.as_ref(), &t),
            custom_subject: v.subject.clone(),
            in_reply_to: last.as_ref().map(|m| m.message_id.clone()),
            references: last
                .as_ref()
                .and_then(|m| m.references.clone())
                .map(|r| r.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
            greeting_name,
            body: v.body.clone(),
            signature: Signature {
                operator_name: actor.name.clone(),
                office: mail.office(),
                contact_lines: Vec::new(),
            },
            language: v.language,
            attachments: v.attachments.clone(),
            message_id_domain: mail.config.message_id_domain.clone(),
        };
        let composed = compose_reply(&draft).map_err(|e| {
            ServiceError::Conflict(format!("the reply cannot be built as an e-mail: {e}"))
        })?;

        let at = now();
        let outbox_id = Uuid::now_v7();
        let listed: Vec<serde_json::Value> = v
            .attachments
            .iter()
            .map(|a| json!({ "filename": a.filename, "content_type": a.content_type, "size": a.data.len() }))
            .collect();
        let e = entry(
            ticket_id,
            EntryKind::Outbound,
            Some(actor.id),
            v.body.clone(),
            None,
            json!({
                "source": "email",
                "message_id": composed.message_id,
                "to": to.as_str(),
                "subject": composed.subject,
                "in_reply_to": composed.in_reply_to,
                "template": v.language,
                "outbox_id": outbox_id,
                "delivery": "queued",
                "attachments": listed,
            }),
            at,
        );
        let (message, outbox) = outgoing_rows(OutgoingRows {
            ticket_id,
            entry_id: e.id,
            outbox_id,
            kind: "reply",
            mailbox,
            to: &to,
            composed: &composed,
            at,
        });
        let message_row_id = match &message.id {
            sea_orm::ActiveValue::Set(id) | sea_orm::ActiveValue::Unchanged(id) => *id,
            sea_orm::ActiveValue::NotSet => Uuid::nil(),
        };
        let attachment_rows: Vec<mail_attachment::ActiveModel> = v
            .attachments
            .iter()
            .map(|a| mail_attachment::ActiveModel {
                id: sea_orm::ActiveValue::Set(Uuid::now_v7()),
                mail_message_id: sea_orm::ActiveValue::Set(message_row_id),
                ticket_id: sea_orm::ActiveValue::Set(ticket_id),
                filename: sea_orm::ActiveValue::Set(a.filename.clone()),
                content_type: sea_orm::ActiveValue::Set(a.content_type.clone()),
                size: sea_orm::ActiveValue::Set(a.data.len() as i64),
                content_id: sea_orm::ActiveValue::Set(None),
                inline: sea_orm::ActiveValue::Set(false),
                data: sea_orm::ActiveValue::Set(Some(a.data.clone())),
                created_at: sea_orm::ActiveValue::Set(at),
            })
            .collect();
        let entry_model = e.clone();
        ticket_entry::Entity::insert(ticket_entry::ActiveModel::from(e))
            .exec_without_returning(&txn)
            .await?;
        q::insert_all(&txn, vec![message]).await?;
        q::insert_all(&txn, attachment_rows).await?;
        q::insert_all(&txn, vec![outbox]).await?;
        let mut update =
            ticket::Entity::update_many().col_expr(ticket::Column::UpdatedAt, Expr::value(at));
        if t.first_response_at.is_none() {
            update = update.col_expr(ticket::Column::FirstResponseAt, Expr::value(at));
        }
        update
            .filter(ticket::Column::Id.eq(ticket_id))
            .exec(&txn)
            .await?;
        crate::routing::sla_event(
            &txn,
            &self.inner.routing.calendar,
            ticket_id,
            crate::routing::SlaEvent::Responded,
            at,
        )
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "ticket.replied",
            "ticket",
            Some(ticket_id),
            Some(json!({ "outbox_id": outbox_id, "attachments": v.attachments.len() })),
        )
        .await?;
        txn.commit().await?;

        self.bus().publish_all(vec![DomainEvent::EntryAdded {
            ticket_id,
            entry_id: entry_model.id,
            kind: EntryKind::Outbound,
            at,
        }]);
        mail.outbox_wake.notify_one();
        tracing::info!(ticket.id = %ticket_id, outbox.id = %outbox_id, operator.id = %actor.id, "e-mail reply queued");
        let names = HashMap::from([(actor.id, actor.name.clone())]);
        Ok(ReplyView {
            entry: EntryView {
                id: entry_model.id,
                kind: EntryKind::Outbound,
                author_id: entry_model.author_id,
                author_name: entry_model.author_id.and_then(|a| names.get(&a).cloned()),
                body: entry_model.body,
                body_html: None,
                meta: entry_model
                    .meta
                    .as_deref()
                    .and_then(|m| serde_json::from_str(m).ok()),
                created_at: entry_model.created_at,
            },
            delivery: DeliveryView {
                outbox_id,
                message_id: composed.message_id,
                state: "queued".into(),
                to: to.as_str().to_owned(),
                subject: composed.subject,
                in_reply_to: composed.in_reply_to,
                queued_at: at,
            },
        })
    }
}
