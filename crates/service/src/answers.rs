//! Prepared answers ("risposte predefinite") and the knowledge base built on them: list and
//! search, edit (supervisors and administrators), render for a ticket, and the seeding of the
//! orientation answers in `config/answers.*.toml` on first start.

use std::collections::HashSet;

use chrono::{DateTime, NaiveTime, Utc};
use sea_orm::sea_query::{LikeExpr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sportello_domain::answer::{
    Placeholder, TOPICS, Topic, letter_core, long_date, render, search_key, topics, validate_lang,
    validate_template, validate_topic,
};
use sportello_domain::taxonomy::{TaxonomyKind, validate_slug};
use sportello_domain::{Role, Tier};
use sportello_store::Database;
use sportello_store::entities::{citizen, counter_session, prepared_answer, ticket};
use sportello_store::query::escape_like;
use uuid::Uuid;

use crate::error::Problems;
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// The seed files, embedded so a fresh installation has its knowledge base with nothing else
/// installed; administrators read them in the repository's `config/` directory.
pub const SEED_IT: &str = include_str!("../../../config/answers.it.toml");
pub const SEED_EN: &str = include_str!("../../../config/answers.en.toml");

pub const MAX_TITLE: usize = 200;
pub const MAX_SUBJECT: usize = 300;
pub const MAX_BODY: usize = 20_000;
/// Most answers one list returns; the knowledge base is a few hundred answers at most.
const MAX_LIST: u64 = 500;

/// Roles that may write answers.
const EDITORS: &[Role] = &[Role::Supervisor, Role::Admin];

/// A prepared answer as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AnswerView {
    pub id: Uuid,
    /// Stable name, unique per language: the Italian and English versions share it.
    pub slug: String,
    /// `it` or `en`.
    pub lang: String,
    /// Measure slug (see `/api/v1/taxonomy`), or none for answers about no one measure.
    pub measure: Option<String>,
    /// The measure's label in the answer's language.
    pub measure_label: Option<String>,
    /// `who_can_apply`, `isee_thresholds`, `documents`, `how_to_apply`, `payment_timing`,
    /// `application_status`, `appointment` or `general`.
    pub topic: String,
    /// The topic's label in the answer's language.
    pub topic_label: String,
    pub title: String,
    /// E-mail subject template.
    pub subject: String,
    /// Body template: the whole letter, greeting and sign-off included.
    pub body: String,
    pub active: bool,
    /// The placeholders subject and body use, as `{{name}}`.
    pub placeholders: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Who last edited it; none for the seeded text.
    pub updated_by: Option<Uuid>,
}

/// Filters of a list; every one optional.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
pub struct AnswerQuery {
    /// A measure slug; `none` for answers about no one measure.
    pub measure: Option<String>,
    /// A topic slug.
    pub topic: Option<String>,
    /// Words to find in title, subject or body (all of them; case and accents ignored).
    pub q: Option<String>,
    /// `it` or `en`; both when absent.
    pub lang: Option<String>,
    /// Include deactivated answers (supervisors and administrators only).
    pub include_inactive: Option<bool>,
}

/// A new answer.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct NewAnswer {
    /// 1–40 lowercase letters, digits or `_`; unique per language.
    pub slug: String,
    pub lang: String,
    pub measure: Option<String>,
    pub topic: String,
    pub title: String,
    pub subject: String,
    pub body: String,
}

/// The editable fields of an answer; slug and language never change. `active` is left as it
/// is when absent (`true` reactivates a deactivated answer).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
pub struct AnswerUpdate {
    pub measure: Option<String>,
    pub topic: String,
    pub title: String,
    pub subject: String,
    pub body: String,
    pub active: Option<bool>,
}

/// An answer filled in for one ticket.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct RenderedAnswer {
    pub answer_id: Uuid,
    pub ticket_id: Uuid,
    pub lang: String,
    /// A subject for the e-mail; the reply form offers it (the ticket tag is added on sending).
    pub subject: String,
    /// The whole letter, greeting and sign-off included.
    pub body: String,
    /// The letter without its greeting line and sign-off paragraph: what goes in the reply
    /// form, since the e-mail reply adds its own greeting and signature.
    pub reply_body: String,
    /// Placeholders with no value for this ticket (e.g. `{{measure.label}}` on a ticket with no
    /// measure): left as written, for the operator to fill in before sending.
    pub missing: Vec<String>,
}

/// An entry of a seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAnswer {
    pub slug: String,
    pub measure: Option<String>,
    pub topic: String,
    pub title: String,
    pub subject: String,
    pub body: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    lang: String,
    #[serde(default)]
    answer: Vec<SeedAnswer>,
}

/// Parses a seed file into its language and answers, checking each as an edit would be.
pub fn parse_seed(text: &str) -> Result<(String, Vec<SeedAnswer>), String> {
    let f: SeedFile = toml::from_str(text).map_err(|e| e.to_string())?;
    validate_lang(&f.lang)?;
    let mut seen = HashSet::new();
    for a in &f.answer {
        let mut p = Problems::default();
        check_fields(&mut p, &a.topic, &a.title, &a.subject, &a.body);
        p.check("slug", validate_slug(&a.slug));
        if let Err(ServiceError::Validation(errs)) = p.finish() {
            return Err(format!(
                "answer '{}': {}",
                a.slug,
                errs.iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if !seen.insert(a.slug.clone()) {
            return Err(format!("answer '{}' appears twice", a.slug));
        }
    }
    Ok((f.lang, f.answer))
}

/// Inserts the seeded answers missing from the table; an answer already there — edited or
/// deactivated — is never touched. Safe with several instances starting at once.
pub(crate) async fn seed(db: &Database) -> Result<usize, ServiceError> {
    let existing: HashSet<(String, String)> = prepared_answer::Entity::find()
        .select_only()
        .column(prepared_answer::Column::Slug)
        .column(prepared_answer::Column::Lang)
        .into_tuple::<(String, String)>()
        .all(&db.read)
        .await?
        .into_iter()
        .collect();
    let mut rows = Vec::new();
    for text in [SEED_IT, SEED_EN] {
        let (lang, answers) =
            parse_seed(text).map_err(|e| ServiceError::Internal(format!("answer seeds: {e}")))?;
        for a in answers {
            if !existing.contains(&(a.slug.clone(), lang.clone())) {
                rows.push((lang.clone(), a));
            }
        }
    }
    if rows.is_empty() {
        return Ok(0);
    }
    let n = rows.len();
    let at = now();
    let txn = db.write.begin().await?;
    for (lang, a) in rows {
        let search_text = search_text(&a.title, &a.subject, &a.body);
        prepared_answer::Entity::insert(prepared_answer::ActiveModel {
            id: Set(Uuid::now_v7()),
            slug: Set(a.slug),
            lang: Set(lang),
            measure: Set(a.measure),
            topic: Set(a.topic),
            title: Set(a.title.trim().to_owned()),
            subject: Set(a.subject.trim().to_owned()),
            body: Set(a.body.trim().to_owned()),
            active: Set(true),
            search_text: Set(search_text),
            created_at: Set(at),
            updated_at: Set(at),
            updated_by: Set(None),
        })
        .on_conflict(
            OnConflict::columns([prepared_answer::Column::Slug, prepared_answer::Column::Lang])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    }
    txn.commit().await?;
    tracing::info!(answers = n, "prepared answers seeded");
    Ok(n)
}

fn search_text(title: &str, subject: &str, body: &str) -> String {
    search_key(&format!("{title}\n{subject}\n{body}"))
}

/// Checks the fields an edit and a seed share; template errors name the placeholder at fault.
fn check_fields(p: &mut Problems, topic: &str, title: &str, subject: &str, body: &str) {
    p.check("topic", validate_topic(topic.trim()));
    p.check("title", bounded(title, 1, MAX_TITLE));
    if p.check("subject", bounded(subject, 1, MAX_SUBJECT))
        .is_some()
    {
        template_problems(p, "subject", subject);
    }
    if p.check("body", bounded(body, 1, MAX_BODY)).is_some() {
        template_problems(p, "body", body);
    }
}

fn template_problems(p: &mut Problems, field: &str, text: &str) {
    if let Err(errs) = validate_template(text) {
        for e in errs {
            p.add(field, e);
        }
    }
}

fn placeholders_of(subject: &str, body: &str) -> Vec<String> {
    let mut used: Vec<Placeholder> = Vec::new();
    for t in [subject, body] {
        for p in validate_template(t).unwrap_or_default() {
            if !used.contains(&p) {
                used.push(p);
            }
        }
    }
    used.sort();
    used.into_iter().map(|p| p.to_string()).collect()
}

fn topic_label(topic: &str, lang: &str) -> String {
    TOPICS
        .iter()
        .find(|(s, _, _)| *s == topic)
        .map(|(_, it, en)| if lang == "en" { *en } else { *it })
        .unwrap_or(topic)
        .to_owned()
}

impl App {
    fn answer_measure_label(&self, measure: &str, lang: &str) -> Option<String> {
        self.taxonomy()
            .measures
            .into_iter()
            .find(|m| m.slug == measure)
            .map(|m| if lang == "en" { m.label_en } else { m.label_it })
    }

    fn answer_view(&self, m: prepared_answer::Model) -> AnswerView {
        AnswerView {
            measure_label: m
                .measure
                .as_deref()
                .and_then(|s| self.answer_measure_label(s, &m.lang)),
            topic_label: topic_label(&m.topic, &m.lang),
            placeholders: placeholders_of(&m.subject, &m.body),
            id: m.id,
            slug: m.slug,
            lang: m.lang,
            measure: m.measure,
            topic: m.topic,
            title: m.title,
            subject: m.subject,
            body: m.body,
            active: m.active,
            created_at: m.created_at,
            updated_at: m.updated_at,
            updated_by: m.updated_by,
        }
    }

    /// The topics answers are filed under, with their labels.
    pub fn answer_topics(&self) -> Vec<Topic> {
        topics()
    }

    /// Lists answers matching every filter given, ordered by measure (as the taxonomy lists
    /// them), topic, language and title. Every operator role may read.
    pub async fn list_answers(
        &self,
        actor: &Actor,
        q: &AnswerQuery,
    ) -> Result<Vec<AnswerView>, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let mut find = prepared_answer::Entity::find();
        if let Some(lang) = q.lang.as_deref().map(str::trim).filter(|s| !s.is_empty())
            && p.check("lang", validate_lang(lang)).is_some()
        {
            find = find.filter(prepared_answer::Column::Lang.eq(lang));
        }
        match q
            .measure
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some("none") => find = find.filter(prepared_answer::Column::Measure.is_null()),
            Some(m) => find = find.filter(prepared_answer::Column::Measure.eq(m)),
            None => {}
        }
        if let Some(topic) = q.topic.as_deref().map(str::trim).filter(|s| !s.is_empty())
            && p.check("topic", validate_topic(topic)).is_some()
        {
            find = find.filter(prepared_answer::Column::Topic.eq(topic));
        }
        if q.include_inactive == Some(true) {
            if !EDITORS.iter().any(|r| actor.has(*r)) {
                return Err(ServiceError::Forbidden(
                    "only supervisors and administrators see deactivated answers".into(),
                ));
            }
        } else {
            find = find.filter(prepared_answer::Column::Active.eq(true));
        }
        if let Some(text) = q.q.as_deref() {
            if text.chars().count() > 200 {
                p.add("q", "must be at most 200 characters");
            }
            for word in search_key(text)
                .split(' ')
                .filter(|w| !w.is_empty())
                .take(8)
            {
                find = find.filter(
                    prepared_answer::Column::SearchText
                        .like(LikeExpr::new(format!("%{}%", escape_like(word))).escape('\\')),
                );
            }
        }
        p.finish()?;
        let rows = find
            .order_by_asc(prepared_answer::Column::Id)
            .limit(MAX_LIST)
            .all(&self.db().read)
            .await?;
        let measures: Vec<String> = self
            .taxonomy()
            .measures
            .into_iter()
            .map(|m| m.slug)
            .collect();
        let rank = |m: &prepared_answer::Model| {
            (
                m.measure
                    .as_ref()
                    .map(|s| {
                        measures
                            .iter()
                            .position(|x| x == s)
                            .unwrap_or(usize::MAX - 1)
                    })
                    .unwrap_or(usize::MAX),
                TOPICS
                    .iter()
                    .position(|(t, _, _)| *t == m.topic)
                    .unwrap_or(usize::MAX),
                m.lang != "it",
                m.title.to_lowercase(),
            )
        };
        let mut rows = rows;
        rows.sort_by_cached_key(rank);
        Ok(rows.into_iter().map(|m| self.answer_view(m)).collect())
    }

    /// One answer, active or not.
    pub async fn get_answer(&self, actor: &Actor, id: Uuid) -> Result<AnswerView, ServiceError> {
        actor.require_operator()?;
        let m = prepared_answer::Entity::find_by_id(id)
            .one(&self.db().read)
            .await?
            .ok_or(ServiceError::NotFound("answer"))?;
        Ok(self.answer_view(m))
    }

    fn answer_check_measure(&self, p: &mut Problems, measure: &Option<String>) -> Option<String> {
        let m = measure
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())?;
        if self.taxonomy().contains(TaxonomyKind::Measure, m) {
            Some(m.to_owned())
        } else {
            p.add(
                "measure",
                format!(
                    "'{}' is not an active measure (see /api/v1/taxonomy)",
                    clip(m)
                ),
            );
            None
        }
    }

    /// Adds an answer (supervisors and administrators).
    pub async fn create_answer(
        &self,
        actor: &Actor,
        input: NewAnswer,
    ) -> Result<AnswerView, ServiceError> {
        actor.require_any(EDITORS)?;
        let mut p = Problems::default();
        let slug = input.slug.trim().to_owned();
        let lang = input.lang.trim().to_owned();
        p.check("slug", validate_slug(&slug));
        p.check("lang", validate_lang(&lang));
        let measure = self.answer_check_measure(&mut p, &input.measure);
        check_fields(
            &mut p,
            &input.topic,
            &input.title,
            &input.subject,
            &input.body,
        );
        p.finish()?;
        let at = now();
        let id = Uuid::now_v7();
        let model = prepared_answer::ActiveModel {
            id: Set(id),
            slug: Set(slug.clone()),
            lang: Set(lang.clone()),
            measure: Set(measure),
            topic: Set(input.topic.trim().to_owned()),
            title: Set(input.title.trim().to_owned()),
            subject: Set(input.subject.trim().to_owned()),
            body: Set(input.body.trim().to_owned()),
            active: Set(true),
            search_text: Set(search_text(&input.title, &input.subject, &input.body)),
            created_at: Set(at),
            updated_at: Set(at),
            updated_by: Set(Some(actor.id)),
        };
        let txn = self.db().write.begin().await?;
        let taken = prepared_answer::Entity::find()
            .filter(prepared_answer::Column::Slug.eq(slug.as_str()))
            .filter(prepared_answer::Column::Lang.eq(lang.as_str()))
            .one(&txn)
            .await?
            .is_some();
        if taken {
            return Err(ServiceError::Conflict(format!(
                "an answer '{slug}' in '{lang}' already exists"
            )));
        }
        let inserted = prepared_answer::Entity::insert(model)
            .on_conflict(
                OnConflict::columns([prepared_answer::Column::Slug, prepared_answer::Column::Lang])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        if inserted == 0 {
            return Err(ServiceError::Conflict(format!(
                "an answer '{slug}' in '{lang}' already exists"
            )));
        }
        crate::audit::record(
            &txn,
            Some(actor.id),
            "answer.created",
            "prepared_answer",
            Some(id),
            Some(serde_json::json!({ "slug": slug, "lang": lang })),
        )
        .await?;
        txn.commit().await?;
        self.get_answer(actor, id).await
    }

    /// Replaces an answer's editable fields (supervisors and administrators).
    pub async fn update_answer(
        &self,
        actor: &Actor,
        id: Uuid,
        input: AnswerUpdate,
    ) -> Result<AnswerView, ServiceError> {
        actor.require_any(EDITORS)?;
        let mut p = Problems::default();
        let measure = self.answer_check_measure(&mut p, &input.measure);
        check_fields(
            &mut p,
            &input.topic,
            &input.title,
            &input.subject,
            &input.body,
        );
        p.finish()?;
        let txn = self.db().write.begin().await?;
        let old = prepared_answer::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("answer"))?;
        let active = input.active.unwrap_or(old.active);
        prepared_answer::Entity::update(prepared_answer::ActiveModel {
            id: Set(id),
            measure: Set(measure),
            topic: Set(input.topic.trim().to_owned()),
            title: Set(input.title.trim().to_owned()),
            subject: Set(input.subject.trim().to_owned()),
            body: Set(input.body.trim().to_owned()),
            active: Set(active),
            search_text: Set(search_text(&input.title, &input.subject, &input.body)),
            updated_at: Set(now()),
            updated_by: Set(Some(actor.id)),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "answer.updated",
            "prepared_answer",
            Some(id),
            Some(serde_json::json!({
                "slug": old.slug,
                "lang": old.lang,
                "active": active,
            })),
        )
        .await?;
        txn.commit().await?;
        self.get_answer(actor, id).await
    }

    /// Deactivates an answer (supervisors and administrators): it leaves lists and the
    /// console but stays in the database, so seeding never brings it back.
    pub async fn deactivate_answer(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<AnswerView, ServiceError> {
        actor.require_any(EDITORS)?;
        let txn = self.db().write.begin().await?;
        let old = prepared_answer::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("answer"))?;
        if old.active {
            prepared_answer::Entity::update(prepared_answer::ActiveModel {
                id: Set(id),
                active: Set(false),
                updated_at: Set(now()),
                updated_by: Set(Some(actor.id)),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            crate::audit::record(
                &txn,
                Some(actor.id),
                "answer.deactivated",
                "prepared_answer",
                Some(id),
                Some(serde_json::json!({ "slug": old.slug, "lang": old.lang })),
            )
            .await?;
        }
        txn.commit().await?;
        self.get_answer(actor, id).await
    }

    /// Fills an answer's placeholders from a ticket the actor may see, its citizen and the
    /// actor. The rendering is audited (it shows the citizen's name), without the text.
    pub async fn render_answer(
        &self,
        actor: &Actor,
        answer_id: Uuid,
        ticket_id: Uuid,
    ) -> Result<RenderedAnswer, ServiceError> {
        actor.require_operator()?;
        let read = &self.db().read;
        let a = prepared_answer::Entity::find_by_id(answer_id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("answer"))?;
        let t = ticket::Entity::find_by_id(ticket_id)
            .one(read)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        actor.require_tier(Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice))?;
        let citizen_name = match t.citizen_id {
            Some(cid) => citizen::Entity::find_by_id(cid)
                .one(read)
                .await?
                .map(|c| c.name)
                .filter(|n| !n.trim().is_empty()),
            None => None,
        };
        // The answer's own measure first: a B2 answer stays about B2 on a ticket filed under
        // another measure; an answer about no one measure takes the ticket's.
        let measure_label = a
            .measure
            .as_deref()
            .or(t.measure.as_deref())
            .and_then(|m| self.answer_measure_label(m, &a.lang));
        let uses_opening = validate_template(&a.body)
            .unwrap_or_default()
            .contains(&Placeholder::CounterNextOpening)
            || validate_template(&a.subject)
                .unwrap_or_default()
                .contains(&Placeholder::CounterNextOpening);
        let next_opening = if uses_opening {
            self.answer_next_opening(&a.lang).await?
        } else {
            None
        };
        let today = long_date(&a.lang, self.inner.routing.calendar.local_date(now()));
        let values = |p: Placeholder| -> Option<String> {
            match p {
                Placeholder::CitizenName => citizen_name.clone(),
                Placeholder::TicketNumber => Some(t.number.clone()),
                Placeholder::TicketSubject => Some(t.subject.clone()),
                Placeholder::OperatorName => Some(actor.name.clone()),
                Placeholder::MeasureLabel => measure_label.clone(),
                Placeholder::CounterNextOpening => next_opening.clone(),
                Placeholder::Today => Some(today.clone()),
            }
        };
        let subject = render(&a.subject, values);
        let body = render(&a.body, values);
        let reply = render(letter_core(&a.body), values);
        let mut missing: Vec<Placeholder> = subject.missing.clone();
        for p in body.missing.iter().chain(reply.missing.iter()) {
            if !missing.contains(p) {
                missing.push(*p);
            }
        }
        missing.sort();
        crate::audit::record(
            &self.db().write,
            Some(actor.id),
            "answer.rendered",
            "ticket",
            Some(ticket_id),
            Some(serde_json::json!({ "answer": a.slug, "lang": a.lang })),
        )
        .await?;
        Ok(RenderedAnswer {
            answer_id,
            ticket_id,
            lang: a.lang,
            subject: subject.text,
            body: body.text,
            reply_body: reply.text,
            missing: missing.into_iter().map(|p| p.to_string()).collect(),
        })
    }

    /// The next counter opening that has not ended yet, spelled out for a letter.
    async fn answer_next_opening(&self, lang: &str) -> Result<Option<String>, ServiceError> {
        let cal = &self.inner.routing.calendar;
        let at = now();
        let today = cal.local_date(at);
        let local_now = at.with_timezone(&cal.timezone()).time();
        let sessions = counter_session::Entity::find()
            .filter(counter_session::Column::Day.gte(today.to_string()))
            .order_by_asc(counter_session::Column::Day)
            .order_by_asc(counter_session::Column::StartTime)
            .limit(50)
            .all(&self.db().read)
            .await?;
        for s in sessions {
            let Ok(day) = chrono::NaiveDate::parse_from_str(&s.day, "%Y-%m-%d") else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                NaiveTime::parse_from_str(&s.start_time, "%H:%M"),
                NaiveTime::parse_from_str(&s.end_time, "%H:%M"),
            ) else {
                continue;
            };
            if day == today && end <= local_now {
                continue;
            }
            let hm = |t: NaiveTime| t.format("%-H:%M").to_string();
            return Ok(Some(if lang == "en" {
                format!(
                    "{}, from {} to {}",
                    long_date(lang, day),
                    hm(start),
                    hm(end)
                )
            } else {
                format!(
                    "{}, dalle {} alle {}",
                    long_date(lang, day),
                    hm(start),
                    hm(end)
                )
            }));
        }
        Ok(None)
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_domain::taxonomy::default_measures;

    #[test]
    fn seed_files_parse_and_cover_every_measure_and_topic_in_both_languages() {
        let measures: Vec<String> = default_measures().into_iter().map(|m| m.slug).collect();
        let core_topics = [
            "who_can_apply",
            "isee_thresholds",
            "documents",
            "how_to_apply",
            "payment_timing",
        ];
        let (it_lang, it) = parse_seed(SEED_IT).unwrap();
        let (en_lang, en) = parse_seed(SEED_EN).unwrap();
        assert_eq!((it_lang.as_str(), en_lang.as_str()), ("it", "en"));
        for list in [&it, &en] {
            for m in &measures {
                for t in core_topics {
                    assert!(
                        list.iter()
                            .any(|a| a.measure.as_deref() == Some(m) && a.topic == t),
                        "no seed for {m}/{t}"
                    );
                }
            }
            for a in list.iter() {
                if let Some(m) = &a.measure {
                    assert!(measures.contains(m), "{}: unknown measure {m}", a.slug);
                }
                assert!(
                    a.body.contains("{{citizen.name}}") && a.body.contains("{{operator.name}}"),
                    "{}: greets the citizen and signs with the operator's name",
                    a.slug
                );
            }
        }
        let it_slugs: HashSet<&str> = it.iter().map(|a| a.slug.as_str()).collect();
        let en_slugs: HashSet<&str> = en.iter().map(|a| a.slug.as_str()).collect();
        assert_eq!(it_slugs, en_slugs, "every answer has both versions");
    }

    #[test]
    fn every_seed_leaves_greeting_and_sign_off_to_the_reply() {
        for text in [SEED_IT, SEED_EN] {
            let (_, answers) = parse_seed(text).unwrap();
            for a in answers {
                let core = letter_core(&a.body);
                for word in ["Gentile", "Cordiali saluti", "Dear ", "Kind regards"] {
                    assert!(!core.contains(word), "{}: {word} in\n{core}", a.slug);
                }
                assert!(!core.contains("{{operator.name}}"), "{}", a.slug);
                assert!(core.len() > 100, "{}: {core}", a.slug);
            }
        }
    }

    #[test]
    fn seeds_state_the_thresholds_the_office_gave() {
        let (_, it) = parse_seed(SEED_IT).unwrap();
        let body = |slug: &str| {
            it.iter()
                .find(|a| a.slug == slug)
                .map(|a| a.body.clone())
                .unwrap_or_default()
        };
        assert!(body("income_support_isee_thresholds").contains("6.000"));
        let b2 = body("b2_isee_thresholds");
        assert!(b2.contains("25.000") && b2.contains("40.000"), "{b2}");
    }

    #[test]
    fn bad_seed_is_refused_with_the_slug() {
        let bad = "lang = \"it\"\n[[answer]]\nslug = \"x\"\ntopic = \"general\"\ntitle = \"t\"\nsubject = \"s\"\nbody = \"{{citizen.surname}}\"\n";
        let e = parse_seed(bad).unwrap_err();
        assert!(e.contains("'x'") && e.contains("citizen.surname"), "{e}");
    }
}
