//! Categories and measures: kept in the database, seeded with the defaults, cached in memory.

use std::sync::RwLock;

use sea_orm::{ActiveValue::Set, EntityTrait, PaginatorTrait, QueryOrder, TransactionTrait};
use serde::{Deserialize, Serialize};
use sportello_domain::Role;
use sportello_domain::taxonomy::{
    TaxonomyEntry, TaxonomyKind, default_categories, default_measures, validate_slug,
};
use sportello_store::Database;
use sportello_store::entities::taxonomy;

use crate::error::Problems;
use crate::{Actor, App, ServiceError};

/// Both lists as the API returns them.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Taxonomy {
    #[schema(value_type = Vec<Object>)]
    pub categories: Vec<TaxonomyEntry>,
    #[schema(value_type = Vec<Object>)]
    pub measures: Vec<TaxonomyEntry>,
}

impl Taxonomy {
    fn list(&self, kind: TaxonomyKind) -> &[TaxonomyEntry] {
        match kind {
            TaxonomyKind::Category => &self.categories,
            TaxonomyKind::Measure => &self.measures,
        }
    }

    pub fn contains(&self, kind: TaxonomyKind, slug: &str) -> bool {
        self.list(kind).iter().any(|e| e.slug == slug)
    }
}

pub(crate) struct TaxonomyCache(RwLock<Taxonomy>);

impl TaxonomyCache {
    /// Loads the lists, seeding the defaults into an empty table first.
    pub(crate) async fn load(db: &Database) -> Result<TaxonomyCache, ServiceError> {
        if taxonomy::Entity::find().count(&db.read).await? == 0 {
            let txn = db.write.begin().await?;
            for (kind, list) in [
                (TaxonomyKind::Category, default_categories()),
                (TaxonomyKind::Measure, default_measures()),
            ] {
                for (i, e) in list.into_iter().enumerate() {
                    taxonomy::Entity::insert(active(kind, e, i as i32))
                        .exec_without_returning(&txn)
                        .await?;
                }
            }
            txn.commit().await?;
        }
        let cache = TaxonomyCache(RwLock::new(Taxonomy::default()));
        cache.refresh(db).await?;
        Ok(cache)
    }

    async fn refresh(&self, db: &Database) -> Result<(), ServiceError> {
        let rows = taxonomy::Entity::find()
            .order_by_asc(taxonomy::Column::Position)
            .all(&db.read)
            .await?;
        let mut t = Taxonomy::default();
        for r in rows.into_iter().filter(|r| r.active) {
            let e = TaxonomyEntry {
                slug: r.slug,
                label_it: r.label_it,
                label_en: r.label_en,
            };
            match r.kind.as_str() {
                "category" => t.categories.push(e),
                "measure" => t.measures.push(e),
                _ => {}
            }
        }
        *self
            .0
            .write()
            .map_err(|_| ServiceError::Internal("taxonomy lock poisoned".into()))? = t;
        Ok(())
    }

    pub(crate) fn snapshot(&self) -> Taxonomy {
        self.0.read().map(|t| t.clone()).unwrap_or_default()
    }
}

fn active(kind: TaxonomyKind, e: TaxonomyEntry, position: i32) -> taxonomy::ActiveModel {
    taxonomy::ActiveModel {
        kind: Set(kind.as_str().to_owned()),
        slug: Set(e.slug),
        label_it: Set(e.label_it),
        label_en: Set(e.label_en),
        active: Set(true),
        position: Set(position),
    }
}

/// A new list entry from an administrator.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewTaxonomyEntry {
    pub slug: String,
    pub label_it: String,
    pub label_en: Option<String>,
}

impl App {
    pub fn taxonomy(&self) -> Taxonomy {
        self.inner.taxonomy.snapshot()
    }

    /// Adds a category or measure (admins only).
    pub async fn add_taxonomy_entry(
        &self,
        actor: &Actor,
        kind: TaxonomyKind,
        input: NewTaxonomyEntry,
    ) -> Result<TaxonomyEntry, ServiceError> {
        actor.require_any(&[Role::Admin])?;
        let mut p = Problems::default();
        p.check("slug", validate_slug(&input.slug));
        let label_it = p.check("label_it", crate::util::bounded(&input.label_it, 1, 100));
        p.finish()?;
        let label_it = label_it.unwrap_or_default();
        if self.taxonomy().contains(kind, &input.slug) {
            return Err(ServiceError::Conflict(format!(
                "{} '{}' already exists",
                kind.as_str(),
                input.slug
            )));
        }
        let entry = TaxonomyEntry {
            slug: input.slug,
            label_en: input
                .label_en
                .filter(|l| !l.trim().is_empty())
                .unwrap_or_else(|| label_it.clone()),
            label_it,
        };
        let position = self.taxonomy().list(kind).len() as i32;
        let txn = self.db().write.begin().await?;
        taxonomy::Entity::insert(active(kind, entry.clone(), position))
            .exec_without_returning(&txn)
            .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "taxonomy.created",
            kind.as_str(),
            None,
            Some(serde_json::json!({ "slug": entry.slug })),
        )
        .await?;
        txn.commit().await?;
        self.inner.taxonomy.refresh(self.db()).await?;
        Ok(entry)
    }
}
