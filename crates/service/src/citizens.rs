//! Citizens (contacts): creation, find-or-create from channel data, search, and their history.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sportello_domain::event::DomainEvent;
use sportello_domain::{CodiceFiscale, EmailAddress, PhoneNumber};
use sportello_store::entities::{citizen, citizen_contact};
use sportello_store::query::{TicketFilter, list_tickets, search_citizens};
use uuid::Uuid;

use crate::error::Problems;
use crate::tickets::TicketView;
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// A citizen as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CitizenView {
    pub id: Uuid,
    pub name: String,
    pub codice_fiscale: Option<String>,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A citizen with their tickets, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CitizenDetail {
    #[serde(flatten)]
    pub citizen: CitizenView,
    pub tickets: Vec<TicketView>,
}

/// A new citizen, or the citizen data a channel knows about a requester.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct NewCitizen {
    pub name: String,
    pub codice_fiscale: Option<String>,
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub phones: Vec<String>,
}

/// A validated `NewCitizen`.
pub(crate) struct ValidCitizen {
    name: String,
    cf: Option<CodiceFiscale>,
    emails: Vec<EmailAddress>,
    phones: Vec<PhoneNumber>,
}

impl ValidCitizen {
    /// Validates, naming each field at fault under `prefix` (e.g. `citizen.emails[1]`).
    pub(crate) fn parse(
        input: &NewCitizen,
        prefix: &str,
        p: &mut Problems,
    ) -> Option<ValidCitizen> {
        let f = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        let name = p.check(&f("name"), bounded(&input.name, 1, 200));
        let cf = match input
            .codice_fiscale
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            Some(raw) => p
                .check(&f("codice_fiscale"), CodiceFiscale::parse(raw))
                .map(Some),
            None => Some(None),
        };
        let emails: Vec<_> = input
            .emails
            .iter()
            .enumerate()
            .filter_map(|(i, e)| p.check(&f(&format!("emails[{i}]")), EmailAddress::parse(e)))
            .collect();
        let phones: Vec<_> = input
            .phones
            .iter()
            .enumerate()
            .filter_map(|(i, e)| p.check(&f(&format!("phones[{i}]")), PhoneNumber::parse(e)))
            .collect();
        if input.emails.len() > 20 || input.phones.len() > 20 {
            p.add(
                f("emails"),
                "at most 20 e-mail addresses and 20 phone numbers",
            );
        }
        Some(ValidCitizen {
            name: name?,
            cf: cf?,
            emails,
            phones,
        })
    }

    fn contact_values(&self) -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = self
            .emails
            .iter()
            .map(|e| ("email", e.as_str().to_owned()))
            .collect();
        v.extend(
            self.phones
                .iter()
                .map(|ph| ("phone", ph.as_str().to_owned())),
        );
        v.sort();
        v.dedup();
        v
    }
}

async fn insert_contacts<C: ConnectionTrait>(
    conn: &C,
    citizen_id: Uuid,
    values: &[(&'static str, String)],
) -> Result<(), sea_orm::DbErr> {
    if values.is_empty() {
        return Ok(());
    }
    let at = now();
    citizen_contact::Entity::insert_many(values.iter().map(|(kind, value)| {
        citizen_contact::ActiveModel {
            id: Set(Uuid::now_v7()),
            citizen_id: Set(citizen_id),
            kind: Set((*kind).to_owned()),
            value: Set(value.clone()),
            created_at: Set(at),
        }
    }))
    .exec_without_returning(conn)
    .await?;
    Ok(())
}

async fn contacts_of<C: ConnectionTrait>(
    conn: &C,
    ids: &[Uuid],
) -> Result<BTreeMap<Uuid, Vec<citizen_contact::Model>>, sea_orm::DbErr> {
    let mut out: BTreeMap<Uuid, Vec<citizen_contact::Model>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let rows = citizen_contact::Entity::find()
        .filter(citizen_contact::Column::CitizenId.is_in(ids.to_vec()))
        .order_by_asc(citizen_contact::Column::Id)
        .all(conn)
        .await?;
    for r in rows {
        out.entry(r.citizen_id).or_default().push(r);
    }
    Ok(out)
}

fn to_view(c: citizen::Model, contacts: Vec<citizen_contact::Model>) -> CitizenView {
    let (mut emails, mut phones) = (Vec::new(), Vec::new());
    for k in contacts {
        match k.kind.as_str() {
            "email" => emails.push(k.value),
            _ => phones.push(k.value),
        }
    }
    CitizenView {
        id: c.id,
        name: c.name,
        codice_fiscale: c.codice_fiscale,
        emails,
        phones,
        created_at: c.created_at,
    }
}

/// Loads citizens' views by id, keeping the order of `models`.
pub(crate) async fn views<C: ConnectionTrait>(
    conn: &C,
    models: Vec<citizen::Model>,
) -> Result<Vec<CitizenView>, sea_orm::DbErr> {
    let ids: Vec<Uuid> = models.iter().map(|c| c.id).collect();
    let mut contacts = contacts_of(conn, &ids).await?;
    Ok(models
        .into_iter()
        .map(|c| {
            let k = contacts.remove(&c.id).unwrap_or_default();
            to_view(c, k)
        })
        .collect())
}

/// Finds the citizen a requester is, or creates them, inside the caller's transaction.
///
/// A codice fiscale identifies a citizen for sure; otherwise an e-mail address or phone number
/// that belongs to exactly one citizen does. New contact values are added to the citizen found.
/// Returns the citizen's id and whether it was created.
pub(crate) async fn find_or_create<C: ConnectionTrait>(
    conn: &C,
    v: &ValidCitizen,
) -> Result<(Uuid, String, bool), ServiceError> {
    let values = v.contact_values();
    let mut found: Option<(Uuid, String)> = None;
    if let Some(cf) = &v.cf {
        found = citizen::Entity::find()
            .filter(citizen::Column::CodiceFiscale.eq(cf.as_str()))
            .one(conn)
            .await?
            .map(|c| (c.id, c.name));
    }
    // One query answers both "who owns these values" and "which values are already theirs".
    let owned: Vec<citizen_contact::Model> = if values.is_empty() {
        Vec::new()
    } else {
        citizen_contact::Entity::find()
            .filter(citizen_contact::Column::Value.is_in(values.iter().map(|(_, v)| v.clone())))
            .all(conn)
            .await?
    };
    if found.is_none() {
        let mut owners: Vec<Uuid> = owned.iter().map(|c| c.citizen_id).collect();
        owners.sort();
        owners.dedup();
        if let [only] = owners[..] {
            found = citizen::Entity::find_by_id(only)
                .one(conn)
                .await?
                .map(|c| (c.id, c.name));
        }
    }
    if let Some((id, name)) = found {
        let new: Vec<_> = values
            .into_iter()
            .filter(|(_, val)| !owned.iter().any(|o| o.citizen_id == id && &o.value == val))
            .collect();
        insert_contacts(conn, id, &new).await?;
        return Ok((id, name, false));
    }
    Ok((insert_citizen(conn, v).await?, v.name.clone(), true))
}

impl App {
    /// Registers a citizen; a codice fiscale already on file is a conflict naming that citizen.
    pub async fn create_citizen(
        &self,
        actor: &Actor,
        input: NewCitizen,
    ) -> Result<CitizenView, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let v = ValidCitizen::parse(&input, "", &mut p);
        p.finish()?;
        let v = v.ok_or_else(|| ServiceError::Internal("validation produced no value".into()))?;
        let txn = self.db().write.begin().await?;
        if let Some(cf) = &v.cf
            && let Some(existing) = citizen::Entity::find()
                .filter(citizen::Column::CodiceFiscale.eq(cf.as_str()))
                .one(&txn)
                .await?
        {
            return Err(ServiceError::Conflict(format!(
                "a citizen with this codice fiscale already exists: {}",
                existing.id
            )));
        }
        // An explicit registration never merges into someone else by a shared e-mail or phone
        // (families share them): it always creates.
        let id = insert_citizen(&txn, &v).await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "citizen.created",
            "citizen",
            Some(id),
            None,
        )
        .await?;
        let view = self.citizen_view(&txn, id).await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::CitizenCreated {
            citizen_id: id,
            at: view.created_at,
        }]);
        Ok(view)
    }

    async fn citizen_view<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: Uuid,
    ) -> Result<CitizenView, ServiceError> {
        let c = citizen::Entity::find_by_id(id)
            .one(conn)
            .await?
            .ok_or(ServiceError::NotFound("citizen"))?;
        Ok(views(conn, vec![c]).await?.remove(0))
    }

    /// Searches by codice fiscale, e-mail or phone (exactly, after normalising) or by part of
    /// the name.
    pub async fn search_citizens(
        &self,
        actor: &Actor,
        q: &str,
        limit: u64,
    ) -> Result<Vec<CitizenView>, ServiceError> {
        actor.require_operator()?;
        let q = q.trim();
        if q.chars().count() < 2 {
            return Err(ServiceError::field("q", "type at least 2 characters"));
        }
        let cf = CodiceFiscale::parse(q).ok();
        let mut exact = Vec::new();
        if let Ok(e) = EmailAddress::parse(q) {
            exact.push(e.as_str().to_owned());
        }
        if let Ok(ph) = PhoneNumber::parse(q) {
            exact.push(ph.as_str().to_owned());
        }
        let read = &self.db().read;
        let found = search_citizens(
            read,
            q,
            &exact,
            cf.as_ref().map(|c| c.as_str()),
            limit.clamp(1, 100),
        )
        .await?;
        let ids: Vec<Uuid> = found.iter().map(|c| c.id).collect();
        let out = views(read, found).await?;
        let txn = self.db().write.begin().await?;
        for id in ids {
            crate::audit::record(
                &txn,
                Some(actor.id),
                "citizen.listed",
                "citizen",
                Some(id),
                None,
            )
            .await?;
        }
        txn.commit().await?;
        Ok(out)
    }

    /// A citizen with their tickets (those of tiers the actor may see).
    pub async fn get_citizen(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<CitizenDetail, ServiceError> {
        actor.require_operator()?;
        let read = &self.db().read;
        let citizen = self.citizen_view(read, id).await?;
        let filter = TicketFilter {
            citizen_id: Some(id),
            tiers: actor
                .tiers()
                .iter()
                .map(|t| t.as_str().to_owned())
                .collect(),
            ..Default::default()
        };
        let (rows, _) = list_tickets(read, &filter, Default::default(), None, 100).await?;
        let tickets = crate::tickets::summaries(read, rows).await?;
        crate::audit::record(
            &self.db().write,
            Some(actor.id),
            "citizen.viewed",
            "citizen",
            Some(id),
            None,
        )
        .await?;
        Ok(CitizenDetail { citizen, tickets })
    }
}

/// Inserts a new citizen with their contact values.
async fn insert_citizen<C: ConnectionTrait>(
    conn: &C,
    v: &ValidCitizen,
) -> Result<Uuid, ServiceError> {
    let id = Uuid::now_v7();
    let at = now();
    citizen::Entity::insert(citizen::ActiveModel {
        id: Set(id),
        name_lower: Set(v.name.to_lowercase()),
        name: Set(v.name.clone()),
        codice_fiscale: Set(v.cf.as_ref().map(|c| c.as_str().to_owned())),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .exec_without_returning(conn)
    .await?;
    insert_contacts(conn, id, &v.contact_values()).await?;
    Ok(id)
}
