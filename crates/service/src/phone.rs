//! The phone channel's use cases: call events and CDR rows become call records, tickets with
//! the call on their timeline, and call-back work with a deadline; plus the call log, the
//! call-back queue and what operators record about calls and call-backs.
//!
//! Ingestion works in batches (one webhook request, or a slice of a CDR file) inside one
//! transaction: the state the batch touches is loaded once, every item is applied in memory in
//! order, and all changes are written with multi-row statements. A webhook event and an
//! imported row go through the same code.
//!
//! The rules, in the order they are decided for a call once its outcome is known:
//! - the citizen is the caller of an inbound call or the callee of an outbound one, matched by
//!   E.164 number; an unknown number gets a citizen created ("Chiamante +39..."); a withheld
//!   number gets none, and a call-back is impossible;
//! - a call from or to a number with an open call-back joins that call-back (its entry goes on
//!   the call-back ticket); the call-back is done once an answered call (the citizen got through,
//!   or an operator reached them) started at or after the latest missed call, or when none of its
//!   calls turns out missed after all (a late `answer`);
//! - otherwise a missed inbound call opens a call-back, unless an answered call with the same
//!   number started at or after it;
//! - otherwise an answered call joins the citizen's open front-office phone ticket, or opens one.
//!
//! New tickets get their numbers once the batch is planned, reserved from the year's counter
//! inside the batch's own transaction (see `reserve_numbers`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend,
    DatabaseTransaction, EntityTrait, QueryFilter, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sportello_domain::calendar::BusinessCalendar;
use sportello_domain::event::DomainEvent;
use sportello_domain::{Channel, EntryKind, Priority, Status, TicketNumber, Tier};
use sportello_phone::{
    AnsweredBy, CallEnd, CallEvent, CallOutcome, CallRecord, CdrRow, Direction, Party,
};
use sportello_store::calls::{self as q, CallFilter, Cursor};
use sportello_store::chunked::CHUNK;
use sportello_store::entities::{
    audit_log, call, callback, citizen, citizen_contact, ticket, ticket_entry, user,
};
use uuid::Uuid;

use crate::error::Problems;
use crate::tickets::EntryView;
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceConfig, ServiceError};

/// The adapter crate, for the server's webhooks and the binary's CDR import.
pub use sportello_phone;

/// The tag every call-back ticket carries.
pub const CALLBACK_TAG: &str = "callback";
/// How long a call-back may wait, in business days of the calendar.
pub const CALLBACK_BUSINESS_DAYS: u32 = 1;
/// Most attempts a batch is planned before giving up (write races).
const MAX_ATTEMPTS: usize = 5;

/// PostgreSQL advisory lock serialising call ingestion across instances (see `lock`).
const PHONE_LOCK_KEY: i64 = 0x0053_5050_484f_4e45; // "SPPHONE"

const ACTIVE: [&str; 5] = [
    "new",
    "assigned",
    "open",
    "waiting_citizen",
    "waiting_internal",
];

/// What the phone channel needs beyond its configuration, built once at start-up.
pub(crate) struct PhoneRuntime {
    calendar: BusinessCalendar,
}

impl PhoneRuntime {
    /// Checks the `[phone]` section and the business calendar, naming what is wrong.
    pub(crate) fn new(config: &ServiceConfig) -> Result<PhoneRuntime, ServiceError> {
        config
            .phone
            .validate()
            .map_err(|e| ServiceError::field("phone", e.to_string()))?;
        let calendar = BusinessCalendar::from_config(&config.calendar)
            .map_err(|e| ServiceError::field("calendar", e.to_string()))?;
        Ok(PhoneRuntime { calendar })
    }
}

// ---------------------------------------------------------------------------------------------
// Views and requests
// ---------------------------------------------------------------------------------------------

/// One call as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CallView {
    pub id: Uuid,
    /// The integration that reported it (or the CDR import's source).
    pub source: String,
    /// The switchboard's id of the call.
    pub call_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// `answered`, `missed`, `abandoned`, `voicemail`; absent while the call is ringing.
    pub outcome: Option<String>,
    /// The calling party: an E.164 number, an extension, or `anonymous`.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The caller hid the number.
    pub withheld: bool,
    pub citizen_id: Option<Uuid>,
    /// The ticket whose timeline holds the call.
    pub ticket_id: Option<Uuid>,
    /// The call-back ticket the call belongs to.
    pub callback_ticket_id: Option<Uuid>,
    /// For a call nobody answered: `open`, `done` (its call-back), `not_needed` (the citizen was
    /// reached later), `impossible` (no number to call back).
    pub callback_state: Option<String>,
    pub operator_id: Option<Uuid>,
    /// The operator's user name.
    pub operator: Option<String>,
    /// The extension that answered (or placed an outbound call).
    pub extension: Option<String>,
    pub queue: Option<String>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// From the first ring to the hangup.
    pub duration_secs: Option<i32>,
    /// From the answer to the hangup.
    pub talk_secs: Option<i32>,
    /// The outcome an operator recorded for the call.
    pub result: Option<String>,
}

/// Call log filters as the API receives them.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct CallQuery {
    pub citizen_id: Option<Uuid>,
    pub ticket_id: Option<Uuid>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// `answered`, `missed`, `abandoned` or `voicemail`.
    pub outcome: Option<String>,
    /// Calls started at or after this RFC 3339 time.
    pub from: Option<String>,
    /// Calls started before this RFC 3339 time.
    pub to: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of calls, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallPage {
    pub items: Vec<CallView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One call-back as the API shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackView {
    /// The call-back ticket.
    pub ticket_id: Uuid,
    pub ticket_number: String,
    #[schema(value_type = String)]
    pub ticket_status: Status,
    /// The number to call back, E.164.
    pub number: String,
    pub citizen_id: Option<Uuid>,
    pub citizen_name: Option<String>,
    /// `open` or `done`.
    pub state: String,
    /// Missed calls from the number that this call-back covers.
    pub missed_count: i32,
    /// Attempts to call back: unanswered outbound calls to the number, and attempts recorded by
    /// operators.
    pub attempts: i32,
    pub first_missed_at: DateTime<Utc>,
    pub last_missed_at: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// Open past its deadline.
    pub overdue: bool,
    pub done_at: Option<DateTime<Utc>>,
    /// `reached` (an operator got through), `citizen_called` (the citizen got through),
    /// `answered` (the missed calls turned out answered), `closed` (closed by an operator).
    pub done_reason: Option<String>,
}

/// Call-back queue parameters.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct CallbackQuery {
    /// `open` (default: by deadline, most urgent first) or `done` (most recent first).
    pub state: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of call-backs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CallbackPage {
    pub items: Vec<CallbackView>,
    pub next_cursor: Option<String>,
}

/// An attempt to call a citizen back that the switchboard did not report (or a decision to
/// stop trying).
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackAttempt {
    /// Whether the citizen was reached; `true` completes the call-back.
    pub reached: bool,
    pub note: Option<String>,
    /// Close the call-back even though the citizen was not reached.
    #[serde(default)]
    pub close: bool,
}

/// An operator's note about a call, and optionally its outcome.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallNote {
    pub body: String,
    /// What came of the call, in the operator's words (e.g. "informazioni fornite").
    pub result: Option<String>,
}

/// What a batch of call reports did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Reports (events or rows) about calls not known before them.
    pub new: u64,
    /// Reports about calls already known (a repeat, or a later event of the call).
    pub known: u64,
    /// Reports that changed nothing.
    pub unchanged: u64,
    pub tickets_created: u64,
    pub callbacks_opened: u64,
    /// The calls touched, in the order first reported.
    pub calls: Vec<CallSummary>,
}

/// Where one reported call stands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallSummary {
    pub id: Uuid,
    pub call_id: String,
    pub outcome: Option<String>,
    pub ticket_id: Option<Uuid>,
    pub callback_ticket_id: Option<Uuid>,
}

// ---------------------------------------------------------------------------------------------
// Ingestion
// ---------------------------------------------------------------------------------------------

/// One report about one call.
enum Change<'a> {
    Event(&'a CallEvent),
    Row(&'a CdrRow),
}

struct Item<'a> {
    source: &'a str,
    call_id: &'a str,
    change: Change<'a>,
}

impl Item<'_> {
    /// Public numbers this report mentions (a superset of the citizen numbers it may need).
    fn numbers(&self) -> impl Iterator<Item = String> + '_ {
        let (a, b) = match &self.change {
            Change::Event(e) => (e.from.as_ref(), e.to.as_ref()),
            Change::Row(r) => (Some(&r.from), r.to.as_ref()),
        };
        [a, b]
            .into_iter()
            .flatten()
            .filter_map(Party::number)
            .map(|n| n.as_str().to_owned())
    }
}

/// Whose call it is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    /// A public number that is not one of ours.
    Citizen(String),
    /// The caller hid the number (or the report gave none).
    Anonymous,
    /// An extension, one of our own numbers: not a citizen.
    Internal,
}

fn who(record: &CallRecord, own: &[sportello_domain::PhoneNumber]) -> Who {
    let party = match record.direction {
        Direction::Inbound => record.from.as_ref(),
        Direction::Outbound => record.to.as_ref(),
    };
    match (party, record.direction) {
        (Some(Party::Number(n)), _) if own.contains(n) => Who::Internal,
        (Some(Party::Number(n)), _) => Who::Citizen(n.as_str().to_owned()),
        (Some(Party::Withheld) | None, Direction::Inbound) => Who::Anonymous,
        _ => Who::Internal,
    }
}

/// A call's row and record while a batch works on it.
#[derive(Clone)]
struct Slot {
    model: call::Model,
    record: CallRecord,
    is_new: bool,
    dirty: bool,
}

impl Slot {
    /// The slot as the next batch sees it once this one is written.
    fn settled(&self) -> Slot {
        Slot {
            is_new: false,
            dirty: false,
            ..self.clone()
        }
    }
}

/// What a call-back's state is computed from: its calls.
#[derive(Clone, Copy)]
struct LinkedCall {
    direction: Direction,
    outcome: Option<CallOutcome>,
    started_at: DateTime<Utc>,
}

#[derive(Clone)]
struct CbSlot {
    model: callback::Model,
    is_new: bool,
    dirty: bool,
    calls: HashMap<Uuid, LinkedCall>,
}

impl CbSlot {
    /// The call-back as the next batch sees it once this one is written.
    fn settled(&self) -> CbSlot {
        CbSlot {
            is_new: false,
            dirty: false,
            ..self.clone()
        }
    }
}

/// Everything one batch reads, decides and then writes.
struct Batch {
    app: App,
    at: DateTime<Utc>,
    /// Numbers whose citizen, open call-back and last answered call this batch knows (the
    /// maps below hold them, absent meaning none), and citizens whose open ticket it knows.
    known_numbers: HashSet<String>,
    known_citizens: HashSet<Uuid>,
    calls: HashMap<(String, String), Slot>,
    /// Keys in the order first reported, for the report.
    order: Vec<(String, String)>,
    /// Citizen by phone number (`None`: nobody has it).
    citizens: HashMap<String, Option<Uuid>>,
    /// Open call-backs by number.
    open_cbs: HashMap<String, CbSlot>,
    /// Call-backs done in this batch (written at the end).
    done_cbs: Vec<CbSlot>,
    /// When the latest answered call with each number started.
    last_answered: HashMap<String, DateTime<Utc>>,
    /// Each citizen's most recent active front-office phone ticket.
    open_ticket: HashMap<Uuid, Uuid>,
    /// Status of the existing tickets this batch may change.
    ticket_status: HashMap<Uuid, Status>,
    users: HashMap<String, Uuid>,
    /// Placeholders handed out for new tickets' numbers, replaced once reserved.
    pending_numbers: usize,
    /// Keys already in `order`.
    seen: HashSet<(String, String)>,

    new_citizens: Vec<citizen::Model>,
    new_contacts: Vec<citizen_contact::Model>,
    new_tickets: Vec<ticket::Model>,
    new_ticket_index: HashMap<Uuid, usize>,
    touched: HashSet<Uuid>,
    resolved: Vec<(Uuid, Status)>,
    /// System entries (a call-back done resolves its ticket). The calls themselves are on
    /// their tickets' timelines from `calls` ([`call_entry`]).
    new_entries: Vec<ticket_entry::Model>,
    /// What the batch did, for its one audit record.
    done: BatchCounts,
    events: Vec<DomainEvent>,
    report: IngestReport,
}

/// What one batch of call reports created and finished, beyond the report's own counts: the
/// batch's audit record (one per batch, so an import of 100,000 calls adds 10 audit rows, not
/// 100,000; the tickets and citizens carry their own creation times, and each call-back's end
/// is on its ticket's timeline).
#[derive(Default)]
struct BatchCounts {
    citizens_created: u64,
    callbacks_done: u64,
    first_ticket: Option<String>,
    last_ticket: Option<String>,
}

/// What a planned batch knows about the calls, numbers and citizens it touched, as they will
/// be once it is written: the next batch of a CDR import is planned from it while this one is
/// still being written ([`CdrImport`]). Whatever it does not know, the next batch reads from
/// the database, where nothing this batch writes can change it.
#[derive(Default)]
struct Carry {
    calls: HashMap<(String, String), Slot>,
    numbers: HashSet<String>,
    citizens: HashMap<String, Option<Uuid>>,
    open_cbs: HashMap<String, CbSlot>,
    last_answered: HashMap<String, DateTime<Utc>>,
    known_citizens: HashSet<Uuid>,
    open_ticket: HashMap<Uuid, Uuid>,
    /// Status of the tickets of `open_cbs` and `open_ticket`.
    ticket_status: HashMap<Uuid, Status>,
    users: HashMap<String, Uuid>,
}

impl App {
    fn phone_runtime(&self) -> &PhoneRuntime {
        &self.inner.phone
    }

    /// Records switchboard events (one webhook request) in one transaction: all of them, or
    /// none if anything fails.
    pub async fn ingest_call_events(
        &self,
        events: &[CallEvent],
    ) -> Result<IngestReport, ServiceError> {
        let items: Vec<Item<'_>> = events
            .iter()
            .map(|e| Item {
                source: &e.source,
                call_id: &e.call_id,
                change: Change::Event(e),
            })
            .collect();
        self.ingest_calls(&items).await
    }

    /// Records rows of a CDR file imported under `source`, in one transaction. Rows of calls
    /// already known are merged into them (so a re-import changes nothing).
    pub async fn import_cdr_rows(
        &self,
        source: &str,
        rows: &[CdrRow],
    ) -> Result<IngestReport, ServiceError> {
        let items: Vec<Item<'_>> = rows
            .iter()
            .map(|r| Item {
                source,
                call_id: &r.call_id,
                change: Change::Row(r),
            })
            .collect();
        self.ingest_calls(&items).await
    }

    async fn ingest_calls(&self, items: &[Item<'_>]) -> Result<IngestReport, ServiceError> {
        if items.is_empty() {
            return Ok(IngestReport::default());
        }
        let mut last_error = None;
        for _ in 0..MAX_ATTEMPTS {
            let txn = self.db().write.begin().await?;
            match self.plan_and_write_calls(&txn, items).await {
                Ok((report, events)) => {
                    txn.commit().await?;
                    self.bus().publish_all(events);
                    tracing::debug!(
                        calls.new = report.new,
                        calls.known = report.known,
                        tickets.created = report.tickets_created,
                        callbacks.opened = report.callbacks_opened,
                        "call reports recorded"
                    );
                    return Ok(report);
                }
                Err(e) => {
                    let _ = txn.rollback().await;
                    if !retryable(&e) {
                        return Err(e.into());
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(match last_error {
            Some(e) => e.into(),
            None => ServiceError::Internal("call ingestion gave up".into()),
        })
    }

    async fn plan_and_write_calls(
        &self,
        txn: &DatabaseTransaction,
        items: &[Item<'_>],
    ) -> Result<(IngestReport, Vec<DomainEvent>), sea_orm::DbErr> {
        lock(txn).await?;
        let batch = Batch::plan(self, txn, items, None).await?;
        self.write_planned(txn, batch).await
    }

    /// Numbers the new tickets of a planned batch and writes it.
    async fn write_planned(
        &self,
        txn: &DatabaseTransaction,
        mut batch: Batch,
    ) -> Result<(IngestReport, Vec<DomainEvent>), sea_orm::DbErr> {
        let prefix = &self.config().ticket_prefix;
        let numbers = reserve_numbers(txn, prefix, batch.new_tickets.len()).await?;
        batch.number_tickets(numbers);
        batch.write(txn).await
    }

    /// Starts a CDR import under `source`, fed batch by batch (see [`CdrImport`]).
    pub fn cdr_import(&self, source: &str) -> CdrImport {
        CdrImport {
            app: self.clone(),
            source: source.to_owned(),
            ahead: None,
            last_version: None,
            pipelined: self.db().backend() == DatabaseBackend::Sqlite,
            stats: CdrImportStats::default(),
        }
    }
}

/// A CDR import, fed batch by batch, each batch written in its own transaction.
///
/// On SQLite the next batch is planned while the previous one is written: planning (reading
/// the calls, citizens, call-backs and tickets a batch touches and deciding what to write)
/// runs on the main thread and a reader connection, writing on SQLite's writer thread, and
/// done one after the other the two took turns on a two-core machine. The next batch starts
/// from what the previous one knew once planned ([`Carry`]), so nothing it reads from the
/// database can be changed by the batch being written. Before a plan made ahead is written,
/// its transaction (`BEGIN IMMEDIATE`, so nobody can commit after it starts) checks that
/// nothing was written since the previous batch began: `PRAGMA data_version` (commits by other
/// connections: the server, a second import) as read when the previous batch started, and
/// `total_changes()` (rows written through this same connection, by a server running in the
/// same process) as it stood when the previous batch finished. Otherwise the plan may be stale
/// and the batch is planned again inside its own transaction, as a webhook's events always are.
/// On PostgreSQL every batch is planned inside its transaction.
pub struct CdrImport {
    app: App,
    source: String,
    ahead: Option<Ahead>,
    /// `PRAGMA data_version` when the last batch's transaction started and `total_changes()`
    /// when it finished; `None` after a batch that had to be retried, so the plan made ahead
    /// of the next one is not trusted.
    last_version: Option<(i64, i64)>,
    pipelined: bool,
    stats: CdrImportStats,
}

/// How the batches of a [`CdrImport`] were planned.
#[derive(Clone, Copy, Debug, Default)]
pub struct CdrImportStats {
    pub batches: u64,
    /// Written as planned while the batch before was written.
    pub planned_ahead: u64,
    /// Planned again inside their transaction (another connection had committed, or the
    /// batch before had to be retried).
    pub planned_again: u64,
}

/// The batch after the one being written: its rows, and its plan when one is being made.
struct Ahead {
    rows: Arc<Vec<CdrRow>>,
    plan: Option<PlanTask>,
}

type PlanTask = tokio::task::JoinHandle<Result<Planned, sea_orm::DbErr>>;

/// A batch planned ahead, and what the batch after it will take from it: both made on the
/// task that planned it, so the write of the batch before never waits for them.
struct Planned {
    batch: Batch,
    carry: Carry,
}

fn items_of<'r>(source: &'r str, rows: &'r [CdrRow]) -> Vec<Item<'r>> {
    rows.iter()
        .map(|r| Item {
            source,
            call_id: &r.call_id,
            change: Change::Row(r),
        })
        .collect()
}

impl CdrImport {
    /// Hands over the next batch of rows. Returns the report of the batch written meanwhile
    /// (the previous one), if any; [`CdrImport::finish`] writes the last.
    pub async fn push(&mut self, rows: Vec<CdrRow>) -> Result<Option<IngestReport>, ServiceError> {
        if rows.is_empty() {
            return Ok(None);
        }
        if !self.pipelined {
            self.stats.batches += 1;
            return self
                .app
                .import_cdr_rows(&self.source, &rows)
                .await
                .map(Some);
        }
        let rows = Arc::new(rows);
        let report = match self.ahead.take() {
            Some(previous) => {
                let (report, plan) = self.write_ahead(previous, Some(rows.clone())).await?;
                self.ahead = Some(Ahead { rows, plan });
                Some(report)
            }
            None => {
                self.ahead = Some(Ahead { rows, plan: None });
                None
            }
        };
        Ok(report)
    }

    /// Writes the last batch handed over, if any; returns its report and how the batches
    /// were planned.
    pub async fn finish(mut self) -> Result<(Option<IngestReport>, CdrImportStats), ServiceError> {
        let report = match self.ahead.take() {
            Some(last) => Some(self.write_ahead(last, None).await?.0),
            None => None,
        };
        Ok((report, self.stats))
    }

    /// Writes `batch` (with its plan made ahead if it still holds) and, once it is planned,
    /// starts planning `next`.
    async fn write_ahead(
        &mut self,
        batch: Ahead,
        next: Option<Arc<Vec<CdrRow>>>,
    ) -> Result<(IngestReport, Option<PlanTask>), ServiceError> {
        let app = self.app.clone();
        let items = items_of(&self.source, &batch.rows);
        let ahead = match batch.plan {
            // A plan that failed (a read error, say) is simply made again below.
            Some(plan) => plan.await.ok().and_then(Result::ok),
            None => None,
        };
        let txn = app
            .db()
            .write
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        let attempt = async {
            let version = versions(&txn).await?;
            self.stats.batches += 1;
            let had_plan = ahead.is_some();
            let (planned, carry) = match ahead {
                Some(plan) if self.last_version == Some(version) => {
                    self.stats.planned_ahead += 1;
                    (plan.batch, Some(plan.carry))
                }
                _ => {
                    if had_plan {
                        self.stats.planned_again += 1;
                    }
                    (Batch::plan(&app, &txn, &items, None).await?, None)
                }
            };
            self.last_version = None;
            let next_plan = next.map(|rows| {
                let carry = carry.unwrap_or_else(|| planned.next_carry());
                let (app, source) = (app.clone(), self.source.clone());
                tokio::spawn(async move {
                    let items = items_of(&source, &rows);
                    // One read transaction: one snapshot, and one connection whose page
                    // cache serves every look-up of the plan.
                    let read = app.db().read.begin().await?;
                    let batch = Batch::plan(&app, &read, &items, Some(carry)).await?;
                    read.commit().await?;
                    let carry = batch.next_carry();
                    Ok(Planned { batch, carry })
                })
            });
            let written = match app.write_planned(&txn, planned).await {
                Ok(done) => {
                    // Rows written through this connection, this batch's included.
                    self.last_version = Some((version.0, versions(&txn).await?.1));
                    Ok(done)
                }
                Err(e) => Err(e),
            };
            Ok::<_, sea_orm::DbErr>((written, next_plan))
        }
        .await;
        let (written, next_plan) = match attempt {
            Ok(v) => v,
            Err(e) => (Err(e), None),
        };
        match written {
            Ok((report, events)) => {
                if let Err(e) = txn.commit().await {
                    self.last_version = None;
                    return Err(e.into());
                }
                app.bus().publish_all(events);
                Ok((report, next_plan))
            }
            Err(e) => {
                let _ = txn.rollback().await;
                if !retryable(&e) {
                    return Err(e.into());
                }
                // Lost a race: plan this batch again from fresh state (with the usual
                // retries), and do not trust the plan made ahead of the next one.
                self.last_version = None;
                let report = app.ingest_calls(&items).await?;
                Ok((report, next_plan))
            }
        }
    }
}

/// SQLite's count of commits by other connections as this connection has seen them, and of
/// rows written through this connection.
async fn versions<C: ConnectionTrait>(conn: &C) -> Result<(i64, i64), sea_orm::DbErr> {
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT (SELECT data_version FROM pragma_data_version) AS v, total_changes() AS t",
        ))
        .await?
        .ok_or_else(|| internal("the database versions returned nothing"))?;
    Ok((row.try_get("", "v")?, row.try_get("", "t")?))
}

/// Reserves `n` ticket numbers inside the batch's own transaction: the same atomic
/// `UPDATE ... RETURNING` on the year's counter row as the number allocator, so ranges never
/// overlap, but committed (or rolled back) with the tickets, so a batch leaves no gaps and
/// needs no second connection (SQLite's single writer is this transaction's).
async fn reserve_numbers(
    txn: &DatabaseTransaction,
    prefix: &str,
    n: usize,
) -> Result<Vec<TicketNumber>, sea_orm::DbErr> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let year = chrono::Datelike::year(&Utc::now());
    let count = i64::try_from(n).map_err(|_| internal("too many tickets in one batch"))?;
    let backend = txn.get_database_backend();
    let (insert, update) = match backend {
        DatabaseBackend::Postgres => (
            "INSERT INTO ticket_counters (year, next_value) VALUES ($1, 1) ON CONFLICT (year) DO NOTHING",
            "UPDATE ticket_counters SET next_value = next_value + $1 WHERE year = $2 RETURNING next_value",
        ),
        _ => (
            "INSERT INTO ticket_counters (year, next_value) VALUES (?, 1) ON CONFLICT (year) DO NOTHING",
            "UPDATE ticket_counters SET next_value = next_value + ? WHERE year = ? RETURNING next_value",
        ),
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        insert,
        [year.into()],
    ))
    .await?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            update,
            [count.into(), year.into()],
        ))
        .await?
        .ok_or_else(|| internal("the ticket counter row vanished"))?;
    let end: i64 = row.try_get("", "next_value")?;
    Ok((end - count..end)
        .map(|seq| TicketNumber::new(prefix, year, u64::try_from(seq).unwrap_or_default()))
        .collect())
}

/// A write that lost a race (a duplicate from a concurrent writer, a busy SQLite file) is
/// planned again from fresh state.
fn retryable(e: &sea_orm::DbErr) -> bool {
    if sportello_store::error::is_unique_violation(e) {
        return true;
    }
    let text = e.to_string();
    text.contains("database is locked")
        || text.contains("SQLITE_BUSY")
        || text.contains("could not serialize")
}

/// Serialises call ingestion on PostgreSQL for the rest of the transaction. Deciding where a
/// call goes reads several tables and then writes them; one ingestion at a time (as SQLite's
/// single writer gives for free) keeps those decisions consistent across instances, and call
/// rates are far below what one writer sustains.
async fn lock<C: ConnectionTrait>(conn: &C) -> Result<(), sea_orm::DbErr> {
    crate::util::xact_lock(conn, PHONE_LOCK_KEY).await
}

/// Merges one report into the record of its call.
fn apply_item(record: &mut CallRecord, item: &Item<'_>) -> Result<(), sea_orm::DbErr> {
    match &item.change {
        Change::Event(e) => record.apply(e).map_err(|e| internal(e.to_string())),
        Change::Row(r) => r
            .to_events(item.source)
            .iter()
            .try_for_each(|e| record.apply(e).map_err(|e| internal(e.to_string()))),
    }
}

fn parse_direction(s: &str) -> Direction {
    Direction::parse(s).unwrap_or(Direction::Inbound)
}

fn parse_outcome(s: Option<&str>) -> Option<CallOutcome> {
    s.and_then(|o| CallOutcome::parse(o).ok())
}

fn needs_callback(direction: Direction, outcome: Option<CallOutcome>) -> bool {
    direction == Direction::Inbound
        && matches!(
            outcome,
            Some(CallOutcome::Missed | CallOutcome::Abandoned | CallOutcome::Voicemail)
        )
}

fn secs(v: Option<u32>) -> Option<i32> {
    v.map(|s| i32::try_from(s).unwrap_or(i32::MAX))
}

fn internal(msg: impl Into<String>) -> sea_orm::DbErr {
    sea_orm::DbErr::Custom(msg.into())
}

impl Batch {
    /// Reads what the batch of `items` needs and decides what each item changes; nothing is
    /// written yet.
    async fn plan<C: ConnectionTrait>(
        app: &App,
        conn: &C,
        items: &[Item<'_>],
        carry: Option<Carry>,
    ) -> Result<Batch, sea_orm::DbErr> {
        let mut batch = Batch::load(app, conn, items, carry).await?;
        for item in items {
            batch.process(item)?;
        }
        batch.seal()?;
        Ok(batch)
    }

    /// Stores the record of every call the batch changed in its row (`calls.record`), so
    /// writing has nothing left to compute (the writer waits for the first statement).
    fn seal(&mut self) -> Result<(), sea_orm::DbErr> {
        for slot in self.calls.values_mut().filter(|s| s.dirty) {
            slot.model.record = serde_json::to_string(&StoredRecord::of(&slot.record))
                .map_err(|e| internal(format!("call record cannot be stored: {e}")))?;
        }
        Ok(())
    }

    /// Reads what a batch needs: its calls already recorded, and for every number and citizen
    /// they mention the citizen, open call-back, last answered call and open ticket. With a
    /// `carry` (what the previous batch knew once planned) whatever it knew is taken from it
    /// and only the rest is read from `conn`; see [`CdrImport`].
    async fn load<C: ConnectionTrait>(
        app: &App,
        conn: &C,
        items: &[Item<'_>],
        carry: Option<Carry>,
    ) -> Result<Batch, sea_orm::DbErr> {
        let mut carry = carry.unwrap_or_default();
        let mut calls = HashMap::new();
        let mut by_source: HashMap<&str, Vec<String>> = HashMap::new();
        for item in items {
            let key = (item.source.to_owned(), item.call_id.to_owned());
            if let Some(slot) = carry.calls.remove(&key) {
                calls.insert(key, slot);
            } else if !calls.contains_key(&key) {
                by_source
                    .entry(item.source)
                    .or_default()
                    .push(item.call_id.to_owned());
            }
        }
        for (source, mut ids) in by_source {
            ids.sort();
            ids.dedup();
            for model in q::calls_by_ids(conn, source, &ids).await? {
                let record = stored_record(&model)?;
                calls.insert(
                    (model.source.clone(), model.call_id.clone()),
                    Slot {
                        model,
                        record,
                        is_new: false,
                        dirty: false,
                    },
                );
            }
        }
        let mut wanted: HashSet<String> = items.iter().flat_map(Item::numbers).collect();
        let mut citizen_ids: HashSet<Uuid> = HashSet::new();
        for slot in calls.values() {
            if let Some(n) = &slot.model.citizen_number {
                wanted.insert(n.clone());
            }
            if let Some(c) = slot.model.citizen_id {
                citizen_ids.insert(c);
            }
        }
        // A batch that changes no call (a re-import, a repeated delivery) needs nothing else.
        let quiet = items.iter().all(|item| {
            calls
                .get(&(item.source.to_owned(), item.call_id.to_owned()))
                .is_some_and(|slot| {
                    let mut record = slot.record.clone();
                    apply_item(&mut record, item).is_ok() && record == slot.record
                })
        });
        if quiet {
            wanted.clear();
            citizen_ids.clear();
        }
        // Numbers the carry knows come from it; the others from the database.
        let (known, unknown): (Vec<String>, Vec<String>) = wanted
            .iter()
            .cloned()
            .partition(|n| carry.numbers.contains(n));

        // Independent look-ups, run together: one is decoded while the next runs.
        let need_users = carry.users.is_empty();
        let (by_phone, cb_models, last_answered, active_users) = futures::try_join!(
            q::citizens_by_phone(conn, &unknown),
            q::open_callbacks(conn, &unknown),
            q::last_answered(conn, &unknown),
            async {
                if need_users {
                    user::Entity::find()
                        .filter(user::Column::Active.eq(true))
                        .all(conn)
                        .await
                } else {
                    Ok(Vec::new())
                }
            },
        )?;
        let mut citizens: HashMap<String, Option<Uuid>> = HashMap::new();
        for (number, id) in by_phone {
            // Oldest citizen first: when relatives share a number, calls go to the first one.
            citizens.entry(number).or_insert(Some(id));
        }
        let mut last_answered: HashMap<String, DateTime<Utc>> = last_answered.into_iter().collect();
        let mut open_cbs = HashMap::new();
        let mut ticket_status = HashMap::new();
        for n in &known {
            if let Some(c) = carry.citizens.remove(n) {
                citizens.insert(n.clone(), c);
            }
            if let Some(t) = carry.last_answered.remove(n) {
                last_answered.insert(n.clone(), t);
            }
            if let Some(cb) = carry.open_cbs.remove(n) {
                if let Some(s) = carry.ticket_status.get(&cb.model.ticket_id) {
                    ticket_status.insert(cb.model.ticket_id, *s);
                }
                open_cbs.insert(n.clone(), cb);
            }
        }
        citizen_ids.extend(citizens.values().flatten().copied());

        let cb_ids: Vec<Uuid> = cb_models.iter().map(|c| c.ticket_id).collect();
        for (id, status) in q::ticket_statuses(conn, &cb_ids).await? {
            ticket_status.insert(id, Status::parse(&status).unwrap_or(Status::New));
        }
        let mut linked: HashMap<Uuid, HashMap<Uuid, LinkedCall>> = HashMap::new();
        for (id, callback, direction, outcome, started_at) in
            q::calls_of_callbacks(conn, &cb_ids).await?
        {
            if let Some(cb) = callback {
                linked.entry(cb).or_default().insert(
                    id,
                    LinkedCall {
                        direction: parse_direction(&direction),
                        outcome: parse_outcome(outcome.as_deref()),
                        started_at,
                    },
                );
            }
        }
        let at = now();
        let mut done_cbs = Vec::new();
        for model in cb_models {
            let calls = linked.remove(&model.ticket_id).unwrap_or_default();
            let mut slot = CbSlot {
                model,
                is_new: false,
                dirty: false,
                calls,
            };
            let active = ticket_status
                .get(&slot.model.ticket_id)
                .is_some_and(|s| s.is_active());
            if active {
                open_cbs.insert(slot.model.number.clone(), slot);
            } else {
                // An operator closed the ticket: the call-back is over.
                mark_done(&mut slot.model, "closed", at);
                slot.dirty = true;
                done_cbs.push(slot);
            }
        }

        // Citizens the carry knows come with their open ticket; the others' are read.
        let cb_tickets: HashSet<Uuid> = open_cbs.values().map(|c| c.model.ticket_id).collect();
        let (known_citizens, unknown_citizens): (Vec<Uuid>, Vec<Uuid>) = citizen_ids
            .iter()
            .copied()
            .partition(|c| carry.known_citizens.contains(c));
        let mut open_ticket: HashMap<Uuid, Uuid> = HashMap::new();
        for c in &known_citizens {
            if let Some(t) = carry.open_ticket.get(c).copied() {
                if let Some(s) = carry.ticket_status.get(&t) {
                    ticket_status.insert(t, *s);
                }
                open_ticket.insert(*c, t);
            }
        }
        for (id, citizen, status) in q::open_phone_tickets(conn, &unknown_citizens, &ACTIVE).await?
        {
            ticket_status.insert(id, Status::parse(&status).unwrap_or(Status::New));
            let (Some(cid), false) = (citizen, cb_tickets.contains(&id)) else {
                continue;
            };
            let slot = open_ticket.entry(cid).or_insert(id);
            if id > *slot {
                *slot = id;
            }
        }

        let users = if need_users {
            active_users
                .into_iter()
                .map(|u| (u.username, u.id))
                .collect()
        } else {
            std::mem::take(&mut carry.users)
        };

        Ok(Batch {
            app: app.clone(),
            at,
            known_numbers: wanted,
            known_citizens: citizen_ids,
            calls,
            order: Vec::new(),
            citizens,
            open_cbs,
            done_cbs,
            last_answered,
            open_ticket,
            ticket_status,
            users,
            pending_numbers: 0,
            seen: HashSet::new(),
            new_citizens: Vec::new(),
            new_contacts: Vec::new(),
            new_tickets: Vec::new(),
            new_ticket_index: HashMap::new(),
            touched: HashSet::new(),
            resolved: Vec::new(),
            new_entries: Vec::new(),
            done: BatchCounts::default(),
            events: Vec::new(),
            report: IngestReport::default(),
        })
    }

    fn process(&mut self, item: &Item<'_>) -> Result<(), sea_orm::DbErr> {
        let key = (item.source.to_owned(), item.call_id.to_owned());
        let existing = self.calls.remove(&key);
        let known = existing.is_some();
        let mut slot = match existing {
            Some(mut slot) => {
                let before = slot.record.clone();
                apply_item(&mut slot.record, item)?;
                if self.seen.insert(key.clone()) {
                    self.order.push(key.clone());
                }
                if slot.record == before {
                    self.report.known += 1;
                    self.report.unchanged += 1;
                    self.calls.insert(key, slot);
                    return Ok(());
                }
                slot
            }
            None => {
                let record = match &item.change {
                    Change::Event(e) => CallRecord::from_event(e),
                    Change::Row(r) => r.to_record(item.source),
                };
                self.seen.insert(key.clone());
                self.order.push(key.clone());
                Slot {
                    model: blank_call(&record, self.at),
                    record,
                    is_new: true,
                    dirty: true,
                }
            }
        };
        if known {
            self.report.known += 1;
        } else {
            self.report.new += 1;
        }
        slot.dirty = true;
        self.update_call(&mut slot);
        self.calls.insert(key, slot);
        Ok(())
    }

    /// Brings a call's row, ticket and call-back in line with its (changed) record.
    fn update_call(&mut self, slot: &mut Slot) {
        let app = self.app.clone();
        let config = &app.config().phone;
        let record = &slot.record;
        let who = who(record, &config.own_numbers);
        let (extension, operator) = self.operator_of(record);
        {
            let m = &mut slot.model;
            m.direction = record.direction.as_str().to_owned();
            m.outcome = record.outcome.map(|o| o.as_str().to_owned());
            m.from_party = record.from.as_ref().map(ToString::to_string);
            m.to_party = record.to.as_ref().map(ToString::to_string);
            m.queue = record.queue.clone();
            m.started_at = record.started_at;
            m.answered_at = record.answered_at;
            m.ended_at = record.ended_at();
            m.duration_secs = secs(record.duration_secs());
            m.talk_secs = secs(record.talk_secs());
            m.extension = extension;
            m.operator_id = operator;
            m.updated_at = self.at;
            if let Who::Citizen(n) = &who {
                m.citizen_number = Some(n.clone());
                if m.citizen_id.is_none() {
                    m.citizen_id = Some(self.citizen_for(n));
                }
            }
        }

        let outcome = record.outcome;
        let placed_now = slot.model.ticket_id.is_none() && outcome.is_some();
        if placed_now && let Some(outcome) = outcome {
            self.place(slot, &who, outcome);
        }
        // A call already on a ticket shows its new state there (the timeline reads `calls`).
        if let Some(t) = slot.model.ticket_id.filter(|_| !placed_now) {
            self.touch(t);
        }
        if let (Who::Citizen(n), Some(CallOutcome::Answered)) = (&who, outcome) {
            let last = self
                .last_answered
                .entry(n.clone())
                .or_insert(slot.record.started_at);
            if *last < slot.record.started_at {
                *last = slot.record.started_at;
            }
        }
        if let (Some(cb), Who::Citizen(n)) = (slot.model.callback_id, &who) {
            let linked = LinkedCall {
                direction: slot.record.direction,
                outcome,
                started_at: slot.record.started_at,
            };
            if let Some(open) = self.open_cbs.get_mut(n).filter(|c| c.model.ticket_id == cb) {
                open.calls.insert(slot.model.id, linked);
                self.recompute(n);
            }
        }
    }

    /// Decides where a call whose outcome just became known goes.
    fn place(&mut self, slot: &mut Slot, who: &Who, outcome: CallOutcome) {
        let record = &slot.record;
        let answered = outcome == CallOutcome::Answered;
        let missed = needs_callback(record.direction, Some(outcome));
        let ticket = match who {
            Who::Citizen(n) => {
                let citizen = slot.model.citizen_id;
                if let Some(cb) = self.open_cbs.get(n) {
                    let id = cb.model.ticket_id;
                    slot.model.callback_id = Some(id);
                    Some(id)
                } else if missed {
                    let covered = self
                        .last_answered
                        .get(n)
                        .is_some_and(|t| *t >= record.started_at);
                    if covered {
                        citizen.and_then(|c| self.open_ticket.get(&c).copied())
                    } else {
                        let id = self.open_callback(n, citizen, record.started_at);
                        slot.model.callback_id = Some(id);
                        Some(id)
                    }
                } else if answered {
                    match citizen.and_then(|c| self.open_ticket.get(&c).copied()) {
                        Some(t) => Some(t),
                        None => {
                            let subject = match record.direction {
                                Direction::Inbound => format!("Chiamata ricevuta da {n}"),
                                Direction::Outbound => format!("Chiamata a {n}"),
                            };
                            // The citizen had their answer on the phone.
                            let responded = Some(record.answered_at.unwrap_or(record.started_at));
                            let t = self.new_ticket(
                                subject,
                                citizen,
                                slot.model.operator_id,
                                responded,
                                false,
                            );
                            if let Some(c) = citizen {
                                self.open_ticket.insert(c, t);
                            }
                            Some(t)
                        }
                    }
                } else {
                    // An unanswered outbound call with no call-back pending: log it on the
                    // citizen's open ticket, if there is one.
                    citizen.and_then(|c| self.open_ticket.get(&c).copied())
                }
            }
            Who::Anonymous if answered => Some(self.new_ticket(
                "Chiamata da numero anonimo".to_owned(),
                None,
                slot.model.operator_id,
                Some(record.answered_at.unwrap_or(record.started_at)),
                false,
            )),
            // A withheld caller nobody answered cannot be called back; the call stays in the
            // call log with callback_state "impossible".
            Who::Anonymous | Who::Internal => None,
        };
        if let Some(t) = ticket {
            // The call joins the ticket's timeline through its own row: the timeline item is
            // the call (`call_entry`), its id the call's.
            slot.model.ticket_id = Some(t);
            self.events.push(DomainEvent::EntryAdded {
                ticket_id: t,
                entry_id: slot.model.id,
                kind: EntryKind::Call,
                at: self.at,
            });
            self.touch(t);
        }
    }

    /// Extension and operator of a call: who answered (an extension mapped through
    /// `[phone.extensions]`, or an operator by user name), else the first mapped extension the
    /// call passed through (the caller of an outbound call).
    fn operator_of(&self, record: &CallRecord) -> (Option<String>, Option<Uuid>) {
        let config = &self.app.config().phone;
        let answerer = record.answerer();
        let extension = match answerer {
            Some(sportello_phone::Answerer::Extension(e)) => Some(e.clone()),
            Some(sportello_phone::Answerer::Operator(_)) => None,
            None if record.direction == Direction::Outbound
                || record.outcome == Some(CallOutcome::Answered) =>
            {
                record
                    .extensions
                    .iter()
                    .find(|e| config.extensions.contains_key(*e))
                    .cloned()
            }
            None => None,
        };
        let username = match answerer {
            Some(a) => config.operator_for(a),
            None => extension
                .as_ref()
                .and_then(|e| config.extensions.get(e))
                .map(String::as_str),
        };
        let operator = username.and_then(|u| self.users.get(u).copied());
        (extension, operator)
    }

    /// Whether the batch leaves every call, citizen, ticket and call-back as it found them.
    fn changes_no_call(&self) -> bool {
        self.calls.values().all(|s| !s.dirty)
            && self.open_cbs.values().all(|c| !c.dirty)
            && self.done_cbs.is_empty()
            && self.new_citizens.is_empty()
            && self.new_tickets.is_empty()
            && self.new_entries.is_empty()
            && self.touched.is_empty()
            && self.resolved.is_empty()
    }

    /// What the next batch may take from this one once it is written (see [`Carry`]). A
    /// batch that writes no call (a re-import) leaves the database as the next batch would
    /// read it: nothing to carry.
    fn next_carry(&self) -> Carry {
        if self.changes_no_call() {
            Carry::default()
        } else {
            self.carry()
        }
    }

    fn carry(&self) -> Carry {
        let status_of = |t: Uuid| -> Option<Status> {
            match self.new_ticket_index.get(&t) {
                Some(&i) => Status::parse(&self.new_tickets[i].status).ok(),
                None => self.ticket_status.get(&t).copied(),
            }
        };
        let mut ticket_status = HashMap::new();
        let open_cbs: HashMap<String, CbSlot> = self
            .open_cbs
            .iter()
            .map(|(n, cb)| (n.clone(), cb.settled()))
            .collect();
        for t in open_cbs
            .values()
            .map(|c| c.model.ticket_id)
            .chain(self.open_ticket.values().copied())
        {
            if let Some(s) = status_of(t) {
                ticket_status.insert(t, s);
            }
        }
        Carry {
            calls: self
                .calls
                .iter()
                .map(|(k, slot)| (k.clone(), slot.settled()))
                .collect(),
            numbers: self.known_numbers.clone(),
            citizens: self.citizens.clone(),
            open_cbs,
            last_answered: self.last_answered.clone(),
            known_citizens: self.known_citizens.clone(),
            open_ticket: self.open_ticket.clone(),
            ticket_status,
            users: self.users.clone(),
        }
    }

    /// The citizen with this number, created on first call.
    fn citizen_for(&mut self, number: &str) -> Uuid {
        if let Some(Some(id)) = self.citizens.get(number) {
            return *id;
        }
        let id = Uuid::now_v7();
        self.known_citizens.insert(id);
        let name = format!("Chiamante {number}");
        self.new_citizens.push(citizen::Model {
            id,
            name_lower: name.to_lowercase(),
            name,
            codice_fiscale: None,
            created_at: self.at,
            updated_at: self.at,
        });
        self.new_contacts.push(citizen_contact::Model {
            id: Uuid::now_v7(),
            citizen_id: id,
            kind: "phone".to_owned(),
            value: number.to_owned(),
            created_at: self.at,
        });
        self.citizens.insert(number.to_owned(), Some(id));
        self.done.citizens_created += 1;
        self.events.push(DomainEvent::CitizenCreated {
            citizen_id: id,
            at: self.at,
        });
        id
    }

    /// A placeholder for a new ticket's number; `number_tickets` puts the real ones in.
    fn next_number(&mut self) -> String {
        self.pending_numbers += 1;
        format!("pending-{}", self.pending_numbers)
    }

    /// Gives the new tickets their reserved numbers, in creation order, and records them.
    fn number_tickets(&mut self, numbers: Vec<TicketNumber>) {
        let mut real: HashMap<String, String> = HashMap::new();
        for (t, n) in self.new_tickets.iter_mut().zip(numbers) {
            let number = n.as_str().to_owned();
            real.insert(
                std::mem::replace(&mut t.number, number.clone()),
                number.clone(),
            );
            self.done.first_ticket.get_or_insert_with(|| number.clone());
            self.done.last_ticket = Some(number);
        }
        for e in &mut self.events {
            if let DomainEvent::TicketCreated { number, .. } = e
                && let Some(n) = real.get(number)
            {
                *number = n.clone();
            }
        }
    }

    fn new_ticket(
        &mut self,
        subject: String,
        citizen: Option<Uuid>,
        operator: Option<Uuid>,
        first_response: Option<DateTime<Utc>>,
        callback: bool,
    ) -> Uuid {
        let id = Uuid::now_v7();
        let number = self.next_number();
        let status = if operator.is_some() && !callback {
            Status::Assigned
        } else {
            Status::New
        };
        let tags: &[&str] = if callback { &[CALLBACK_TAG] } else { &[] };
        let model = ticket::Model {
            id,
            number: number.clone(),
            channel: Channel::Phone.as_str().to_owned(),
            tier: Tier::FrontOffice.as_str().to_owned(),
            status: status.as_str().to_owned(),
            priority: Priority::Normal.as_str().to_owned(),
            category: None,
            measure: None,
            subject,
            citizen_id: citizen,
            assignee_id: if callback { None } else { operator },
            tags: serde_json::to_string(tags).unwrap_or_else(|_| "[]".into()),
            created_by: None,
            created_at: self.at,
            updated_at: self.at,
            first_response_at: first_response,
            resolved_at: None,
            closed_at: None,
            sla_due_at: None,
        };
        self.events.push(DomainEvent::TicketCreated {
            ticket_id: id,
            number,
            channel: Channel::Phone,
            tier: Tier::FrontOffice,
            category: None,
            at: self.at,
        });
        if status == Status::Assigned {
            self.events.push(DomainEvent::TicketAssigned {
                ticket_id: id,
                assignee_id: operator,
                tier: Tier::FrontOffice,
                at: self.at,
            });
        }
        self.report.tickets_created += 1;
        self.new_ticket_index.insert(id, self.new_tickets.len());
        self.new_tickets.push(model);
        id
    }

    /// Opens a call-back for a number, with its ticket in the front-office queue.
    fn open_callback(
        &mut self,
        number: &str,
        citizen: Option<Uuid>,
        missed_at: DateTime<Utc>,
    ) -> Uuid {
        let app = self.app.clone();
        let deadline = app
            .phone_runtime()
            .calendar
            .add_business_days(missed_at, CALLBACK_BUSINESS_DAYS)
            .unwrap_or(missed_at + Duration::days(1));
        let id = self.new_ticket(format!("Richiamare {number}"), citizen, None, None, true);
        if let Some(i) = self.new_ticket_index.get(&id).copied() {
            self.new_tickets[i].sla_due_at = Some(deadline);
        }
        let model = callback::Model {
            ticket_id: id,
            number: number.to_owned(),
            open_number: Some(number.to_owned()),
            citizen_id: citizen,
            state: "open".to_owned(),
            missed_count: 0,
            call_attempts: 0,
            manual_attempts: 0,
            first_missed_at: missed_at,
            last_missed_at: missed_at,
            deadline,
            done_at: None,
            done_reason: None,
            created_at: self.at,
            updated_at: self.at,
        };
        self.open_cbs.insert(
            number.to_owned(),
            CbSlot {
                model,
                is_new: true,
                dirty: true,
                calls: HashMap::new(),
            },
        );
        self.report.callbacks_opened += 1;
        id
    }

    /// Recomputes an open call-back from its calls, and finishes it when it is done.
    fn recompute(&mut self, number: &str) {
        let Some(cb) = self.open_cbs.get_mut(number) else {
            return;
        };
        let missed: Vec<&LinkedCall> = cb
            .calls
            .values()
            .filter(|c| needs_callback(c.direction, c.outcome))
            .collect();
        let last_missed = missed.iter().map(|c| c.started_at).max();
        let first_missed = missed.iter().map(|c| c.started_at).min();
        let m = &mut cb.model;
        m.missed_count = i32::try_from(missed.len()).unwrap_or(i32::MAX);
        if let (Some(first), Some(last)) = (first_missed, last_missed) {
            m.first_missed_at = first;
            m.last_missed_at = last;
        }
        m.call_attempts = i32::try_from(
            cb.calls
                .values()
                .filter(|c| {
                    c.direction == Direction::Outbound && c.outcome != Some(CallOutcome::Answered)
                })
                .count(),
        )
        .unwrap_or(i32::MAX);
        m.updated_at = self.at;
        cb.dirty = true;
        let reached = cb
            .calls
            .values()
            .filter(|c| c.outcome == Some(CallOutcome::Answered))
            .filter(|c| last_missed.is_none_or(|l| c.started_at >= l))
            .max_by_key(|c| (c.direction == Direction::Outbound, c.started_at));
        let reason = match (last_missed, reached) {
            (None, _) => Some("answered"),
            (Some(_), Some(c)) if c.direction == Direction::Outbound => Some("reached"),
            (Some(_), Some(_)) => Some("citizen_called"),
            (Some(_), None) => None,
        };
        if let Some(reason) = reason
            && let Some(mut cb) = self.open_cbs.remove(number)
        {
            mark_done(&mut cb.model, reason, self.at);
            let ticket = cb.model.ticket_id;
            self.done.callbacks_done += 1;
            self.done_cbs.push(cb);
            self.resolve(ticket, reason);
        }
    }

    /// Resolves a finished call-back's ticket, with a system entry saying why.
    fn resolve(&mut self, ticket_id: Uuid, reason: &str) {
        let from = if let Some(&i) = self.new_ticket_index.get(&ticket_id) {
            let t = &mut self.new_tickets[i];
            let from = Status::parse(&t.status).unwrap_or(Status::New);
            t.status = Status::Resolved.as_str().to_owned();
            t.resolved_at = Some(self.at);
            t.first_response_at.get_or_insert(self.at);
            from
        } else {
            let Some(from) = self.ticket_status.get(&ticket_id).copied() else {
                return;
            };
            if !from.is_active() {
                return;
            }
            self.resolved.push((ticket_id, from));
            from
        };
        self.ticket_status.insert(ticket_id, Status::Resolved);
        let meta = json!({ "from": from, "to": Status::Resolved, "callback": reason });
        let entry = ticket_entry::Model {
            id: Uuid::now_v7(),
            ticket_id,
            kind: EntryKind::System.as_str().to_owned(),
            author_id: None,
            body: format!("{from} → {}: {}", Status::Resolved, done_text(reason)),
            body_html: None,
            meta: Some(meta.to_string()),
            created_at: self.at,
        };
        self.new_entries.push(entry);
        self.events.push(DomainEvent::TicketTransitioned {
            ticket_id,
            from,
            to: Status::Resolved,
            at: self.at,
        });
    }

    fn touch(&mut self, ticket: Uuid) {
        if !self.new_ticket_index.contains_key(&ticket) {
            self.touched.insert(ticket);
        }
    }

    async fn write(
        mut self,
        txn: &DatabaseTransaction,
    ) -> Result<(IngestReport, Vec<DomainEvent>), sea_orm::DbErr> {
        let at = self.at;
        let mut summaries = Vec::new();
        for key in &self.order {
            if let Some(slot) = self.calls.get(key) {
                summaries.push(CallSummary {
                    id: slot.model.id,
                    call_id: slot.model.call_id.clone(),
                    outcome: slot.model.outcome.clone(),
                    ticket_id: slot.model.ticket_id,
                    callback_ticket_id: slot.model.callback_id,
                });
            }
        }
        let mut new_cbs = Vec::new();
        let mut changed_cbs = Vec::new();
        for cb in self.open_cbs.into_values().chain(self.done_cbs) {
            if cb.is_new {
                new_cbs.push(cb.model);
            } else if cb.dirty {
                changed_cbs.push(cb.model);
            }
        }
        let mut new_calls = Vec::new();
        let mut changed_calls = Vec::new();
        for slot in self.calls.into_values() {
            if !slot.dirty {
                continue;
            }
            // `record` was stored by `seal`, when the batch was planned.
            if slot.is_new {
                new_calls.push(slot.model);
            } else {
                changed_calls.push(slot.model);
            }
        }

        // Parents before children (the foreign keys are checked statement by statement), and
        // call-backs that finished give up their number before a new one takes it.
        let mut writes = q::insert_chunks(txn, std::mem::take(&mut self.new_citizens));
        writes.extend(q::insert_chunks(
            txn,
            std::mem::take(&mut self.new_contacts),
        ));
        writes.extend(q::insert_chunks(txn, std::mem::take(&mut self.new_tickets)));
        writes.extend(q::callback_updates(txn, changed_cbs));
        writes.extend(q::insert_chunks(txn, new_cbs));
        writes.extend(q::insert_chunks(txn, std::mem::take(&mut self.new_entries)));
        writes.extend(q::insert_chunks(txn, new_calls));
        for model in changed_calls {
            writes.push(Box::pin(async move {
                let id = model.id;
                let am: call::ActiveModel = call::ActiveModel::from(model).reset_all();
                call::Entity::update_many()
                    .set(am)
                    .filter(call::Column::Id.eq(id))
                    .exec(txn)
                    .await
                    .map(drop)
            }));
        }
        let touched: Vec<Uuid> = self.touched.into_iter().collect();
        for chunk in touched.chunks(CHUNK) {
            let chunk = chunk.to_vec();
            writes.push(Box::pin(async move {
                ticket::Entity::update_many()
                    .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
                    .filter(ticket::Column::Id.is_in(chunk))
                    .exec(txn)
                    .await
                    .map(drop)
            }));
        }
        q::run_in_order(writes).await?;

        let calendar = &self.app.inner.routing.calendar;
        resolve_existing(txn, calendar, &self.resolved, at).await?;

        let mut report = self.report;
        let done = &self.done;
        let details = json!({
            "new": report.new,
            "known": report.known,
            "tickets_created": report.tickets_created,
            "first_ticket": done.first_ticket,
            "last_ticket": done.last_ticket,
            "callbacks_opened": report.callbacks_opened,
            "callbacks_done": done.callbacks_done,
            "citizens_created": done.citizens_created,
        });
        audit(at, "calls.recorded", "call", None, Some(details))
            .insert(txn)
            .await?;
        report.calls = summaries;
        Ok((report, self.events))
    }
}

/// What `calls.record` holds: the part of a call's record its row's columns do not (source,
/// call id, direction, start, answer time, queue and outcome are columns, written from the
/// record every time it changes). About 40 % smaller than the whole record. Rows written
/// before held the whole record; it reads the same way.
#[derive(Serialize)]
struct StoredRecord<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'r Party>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'r Party>,
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    extensions: &'r BTreeSet<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    answered_by: Option<&'r AnsweredBy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended: Option<&'r CallEnd>,
}

impl<'r> StoredRecord<'r> {
    fn of(record: &'r CallRecord) -> StoredRecord<'r> {
        StoredRecord {
            from: record.from.as_ref(),
            to: record.to.as_ref(),
            extensions: &record.extensions,
            answered_by: record.answered_by.as_ref(),
            ended: record.ended.as_ref(),
        }
    }
}

/// [`StoredRecord`] as read back.
#[derive(Deserialize)]
struct StoredRecordOwned {
    #[serde(default)]
    from: Option<Party>,
    #[serde(default)]
    to: Option<Party>,
    #[serde(default)]
    extensions: BTreeSet<String>,
    #[serde(default)]
    answered_by: Option<AnsweredBy>,
    #[serde(default)]
    ended: Option<CallEnd>,
}

/// The record of a stored call: its columns and what `calls.record` adds to them.
fn stored_record(model: &call::Model) -> Result<CallRecord, sea_orm::DbErr> {
    let stored: StoredRecordOwned = serde_json::from_str(&model.record).map_err(|e| {
        internal(format!(
            "stored call record {} is unreadable: {e}",
            model.id
        ))
    })?;
    Ok(CallRecord {
        source: model.source.clone(),
        call_id: model.call_id.clone(),
        direction: parse_direction(&model.direction),
        from: stored.from,
        to: stored.to,
        queue: model.queue.clone(),
        extensions: stored.extensions,
        started_at: model.started_at,
        answered_at: model.answered_at,
        answered_by: stored.answered_by,
        ended: stored.ended,
        outcome: parse_outcome(model.outcome.as_deref()),
    })
}

/// The row of a call first seen now; `update_call` fills in the rest.
fn blank_call(record: &CallRecord, at: DateTime<Utc>) -> call::Model {
    call::Model {
        id: Uuid::now_v7(),
        source: record.source.clone(),
        call_id: record.call_id.clone(),
        direction: record.direction.as_str().to_owned(),
        outcome: None,
        from_party: None,
        to_party: None,
        citizen_number: None,
        citizen_id: None,
        ticket_id: None,
        callback_id: None,
        operator_id: None,
        extension: None,
        queue: None,
        started_at: record.started_at,
        answered_at: None,
        ended_at: None,
        duration_secs: None,
        talk_secs: None,
        result: None,
        record: String::new(),
        created_at: at,
        updated_at: at,
    }
}

fn mark_done(m: &mut callback::Model, reason: &str, at: DateTime<Utc>) {
    m.state = "done".to_owned();
    m.open_number = None;
    m.done_at = Some(at);
    m.done_reason = Some(reason.to_owned());
    m.updated_at = at;
}

fn done_text(reason: &str) -> &'static str {
    match reason {
        "reached" => "richiamata completata, il cittadino è stato raggiunto",
        "citizen_called" => {
            "richiamata non più necessaria, il cittadino ha richiamato ed è stato servito"
        }
        "answered" => "richiamata non necessaria, la chiamata risulta risposta",
        _ => "richiamata chiusa dall'operatore",
    }
}

/// Resolves existing tickets unless someone moved them meanwhile (each is resolved only from
/// the status it was seen in), a few statements per chunk of tickets rather than per ticket.
async fn resolve_existing<C: ConnectionTrait>(
    conn: &C,
    calendar: &BusinessCalendar,
    resolved: &[(Uuid, Status)],
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    if resolved.is_empty() {
        return Ok(());
    }
    let mut by_status: HashMap<Status, Vec<Uuid>> = HashMap::new();
    for (id, from) in resolved {
        by_status.entry(*from).or_default().push(*id);
    }
    for (from, ids) in &by_status {
        for chunk in ids.chunks(CHUNK) {
            ticket::Entity::update_many()
                .col_expr(
                    ticket::Column::Status,
                    Expr::value(Status::Resolved.as_str()),
                )
                .col_expr(ticket::Column::ResolvedAt, Expr::value(Some(at)))
                .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
                .filter(ticket::Column::Id.is_in(chunk.to_vec()))
                .filter(ticket::Column::Status.eq(from.as_str()))
                .exec(conn)
                .await?;
        }
    }
    let ids: Vec<Uuid> = resolved.iter().map(|(id, _)| *id).collect();
    for chunk in ids.chunks(CHUNK) {
        ticket::Entity::update_many()
            .col_expr(ticket::Column::FirstResponseAt, Expr::value(Some(at)))
            .filter(ticket::Column::Id.is_in(chunk.to_vec()))
            .filter(ticket::Column::FirstResponseAt.is_null())
            .exec(conn)
            .await?;
    }
    let events: Vec<(Uuid, crate::routing::SlaEvent)> = resolved
        .iter()
        .map(|(id, from)| {
            let change = crate::routing::SlaEvent::Transition {
                from: *from,
                to: Status::Resolved,
            };
            (*id, change)
        })
        .collect();
    crate::routing::sla_events(conn, calendar, &events, at)
        .await
        .map_err(|e| sea_orm::DbErr::Custom(e.to_string()))
}

fn audit(
    at: DateTime<Utc>,
    action: &str,
    entity_type: &str,
    entity_id: Option<Uuid>,
    details: Option<Value>,
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

fn minutes(secs: u32) -> String {
    if secs >= 60 {
        format!("{} min {} s", secs / 60, secs % 60)
    } else {
        format!("{secs} s")
    }
}

/// The call entry's text, in Italian for operators.
fn describe(record: &CallRecord, operator: Option<&String>) -> String {
    let party = |p: &Option<Party>| match p {
        Some(Party::Withheld) | None => "numero anonimo".to_owned(),
        Some(p) => p.to_string(),
    };
    let by = match (operator, record.answerer()) {
        (Some(op), _) => format!(", operatore {op}"),
        (None, Some(sportello_phone::Answerer::Extension(e))) => format!(", interno {e}"),
        (None, Some(sportello_phone::Answerer::Operator(o))) => format!(", operatore {o}"),
        (None, None) => String::new(),
    };
    let talk = record
        .talk_secs()
        .filter(|t| *t > 0)
        .map(|t| format!(", conversazione {}", minutes(t)))
        .unwrap_or_default();
    match (record.direction, record.outcome) {
        (Direction::Inbound, Some(CallOutcome::Answered)) => {
            format!("Chiamata ricevuta da {}{by}{talk}.", party(&record.from))
        }
        (Direction::Inbound, Some(CallOutcome::Abandoned)) => {
            format!(
                "Chiamata abbandonata da {}: ha riagganciato in attesa.",
                party(&record.from)
            )
        }
        (Direction::Inbound, Some(CallOutcome::Voicemail)) => {
            format!("Chiamata da {} finita in segreteria.", party(&record.from))
        }
        (Direction::Inbound, _) => format!(
            "Chiamata persa da {}: nessuna risposta.",
            party(&record.from)
        ),
        (Direction::Outbound, Some(CallOutcome::Answered)) => {
            format!("Chiamata effettuata a {}{by}{talk}.", party(&record.to))
        }
        (Direction::Outbound, _) => format!("Chiamata a {} senza risposta{by}.", party(&record.to)),
    }
}

/// A switchboard call as an item of its ticket's timeline: kind `call`, the call's id, the
/// operator who answered (or placed it) as author, a sentence saying what happened and the
/// documented `meta` keys. Built from the call's row each time the timeline is read, so it
/// always shows the call as the latest event left it.
///
/// `names` are the users' display names (the author), `usernames` their user names (as the
/// call's text and `meta.operator` give them, like the extension map in the configuration).
pub(crate) fn call_entry(
    model: &call::Model,
    names: &HashMap<Uuid, String>,
    usernames: &HashMap<Uuid, String>,
) -> EntryView {
    let operator = model.operator_id.and_then(|o| usernames.get(&o));
    let (body, meta) = match stored_record(model) {
        Ok(record) => (
            describe(&record, operator),
            call_meta(model, &record, operator),
        ),
        Err(_) => {
            // The row's columns still say what the call was; the rest is lost, say so. (The
            // parse error may quote the record, numbers included: it is not logged.)
            tracing::warn!(call = %model.id, "call record unreadable, shown from its columns");
            (
                "Chiamata: dettagli non leggibili.".to_owned(),
                json!({
                    "call": model.id,
                    "direction": model.direction,
                    "outcome": model.outcome,
                    "extension": model.extension,
                    "operator_id": model.operator_id,
                    "operator": operator,
                    "duration_secs": model.duration_secs,
                    "talk_secs": model.talk_secs,
                }),
            )
        }
    };
    EntryView {
        id: model.id,
        kind: EntryKind::Call,
        author_id: model.operator_id,
        author_name: model.operator_id.and_then(|o| names.get(&o)).cloned(),
        body,
        body_html: None,
        meta: Some(meta),
        created_at: model.started_at,
    }
}

fn call_meta(model: &call::Model, record: &CallRecord, operator: Option<&String>) -> Value {
    // The call's own row (`call`, see GET /api/v1/calls) holds the rest: the numbers, the
    // times, the queue. Not repeating them here keeps one copy of the caller's number.
    json!({
        "call": model.id,
        "direction": record.direction,
        "outcome": record.outcome,
        "extension": model.extension,
        "operator_id": model.operator_id,
        "operator": operator,
        "duration_secs": record.duration_secs(),
        "talk_secs": record.talk_secs(),
    })
}

// ---------------------------------------------------------------------------------------------
// Reading and operator actions
// ---------------------------------------------------------------------------------------------

fn parse_time(p: &mut Problems, field: &str, raw: Option<&str>) -> Option<DateTime<Utc>> {
    let raw = raw.map(str::trim).filter(|s| !s.is_empty())?;
    p.check(
        field,
        DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "must be an RFC 3339 time with offset, such as 2026-03-02T09:00:00+01:00"),
    )
}

fn page_params(
    p: &mut Problems,
    limit: Option<u64>,
    cursor: Option<&str>,
) -> (u64, Option<Cursor>) {
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        p.add("limit", "must be between 1 and 200");
    }
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => p.check(
            "cursor",
            Cursor::decode(c).ok_or("is not a cursor returned by this API"),
        ),
        None => None,
    };
    (limit, cursor)
}

fn call_filter(query: &CallQuery) -> Result<(CallFilter, u64, Option<Cursor>), ServiceError> {
    let mut p = Problems::default();
    let mut f = CallFilter {
        citizen_id: query.citizen_id,
        ticket_id: query.ticket_id,
        ..Default::default()
    };
    if let Some(d) = query.direction.as_deref().filter(|s| !s.is_empty()) {
        f.direction = p
            .check("direction", Direction::parse(d.trim()))
            .map(|d| d.as_str().to_owned());
    }
    if let Some(o) = query.outcome.as_deref().filter(|s| !s.is_empty()) {
        f.outcome = p
            .check("outcome", CallOutcome::parse(o.trim()))
            .map(|o| o.as_str().to_owned());
    }
    f.from = parse_time(&mut p, "from", query.from.as_deref());
    f.to = parse_time(&mut p, "to", query.to.as_deref());
    let (limit, cursor) = page_params(&mut p, query.limit, query.cursor.as_deref());
    p.finish()?;
    Ok((f, limit, cursor))
}

async fn call_views<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<call::Model>,
) -> Result<Vec<CallView>, sea_orm::DbErr> {
    let mut operators: Vec<Uuid> = rows.iter().filter_map(|c| c.operator_id).collect();
    operators.sort();
    operators.dedup();
    let names: HashMap<Uuid, String> = if operators.is_empty() {
        HashMap::new()
    } else {
        user::Entity::find()
            .filter(user::Column::Id.is_in(operators))
            .all(conn)
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect()
    };
    let mut cb_ids: Vec<Uuid> = rows.iter().filter_map(|c| c.callback_id).collect();
    cb_ids.sort();
    cb_ids.dedup();
    let states: HashMap<Uuid, String> = q::callbacks_by_ids(conn, &cb_ids)
        .await?
        .into_iter()
        .map(|c| (c.ticket_id, c.state))
        .collect();
    Ok(rows
        .into_iter()
        .map(|c| {
            let direction = parse_direction(&c.direction);
            let outcome = parse_outcome(c.outcome.as_deref());
            let callback_state = match c.callback_id {
                Some(cb) => states.get(&cb).cloned(),
                None if needs_callback(direction, outcome) => Some(
                    if c.citizen_number.is_some() {
                        "not_needed"
                    } else {
                        "impossible"
                    }
                    .to_owned(),
                ),
                None => None,
            };
            let withheld =
                c.from_party.as_deref() == Some("anonymous") && direction == Direction::Inbound;
            CallView {
                id: c.id,
                source: c.source,
                call_id: c.call_id,
                direction: c.direction,
                outcome: c.outcome,
                from: c.from_party,
                to: c.to_party,
                withheld,
                citizen_id: c.citizen_id,
                ticket_id: c.ticket_id,
                callback_ticket_id: c.callback_id,
                callback_state,
                operator: c.operator_id.and_then(|o| names.get(&o).cloned()),
                operator_id: c.operator_id,
                extension: c.extension,
                queue: c.queue,
                started_at: c.started_at,
                answered_at: c.answered_at,
                ended_at: c.ended_at,
                duration_secs: c.duration_secs,
                talk_secs: c.talk_secs,
                result: c.result,
            }
        })
        .collect())
}

async fn callback_views<C: ConnectionTrait>(
    conn: &C,
    rows: Vec<callback::Model>,
    at: DateTime<Utc>,
) -> Result<Vec<CallbackView>, sea_orm::DbErr> {
    let ids: Vec<Uuid> = rows.iter().map(|c| c.ticket_id).collect();
    let tickets: HashMap<Uuid, ticket::Model> = q::tickets_by_ids(conn, &ids)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let mut citizen_ids: Vec<Uuid> = rows.iter().filter_map(|c| c.citizen_id).collect();
    citizen_ids.sort();
    citizen_ids.dedup();
    let names: HashMap<Uuid, String> = if citizen_ids.is_empty() {
        HashMap::new()
    } else {
        citizen::Entity::find()
            .filter(citizen::Column::Id.is_in(citizen_ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect()
    };
    Ok(rows
        .into_iter()
        .map(|c| {
            let t = tickets.get(&c.ticket_id);
            CallbackView {
                ticket_id: c.ticket_id,
                ticket_number: t.map(|t| t.number.clone()).unwrap_or_default(),
                ticket_status: t
                    .and_then(|t| Status::parse(&t.status).ok())
                    .unwrap_or(Status::New),
                number: c.number,
                citizen_name: c.citizen_id.and_then(|id| names.get(&id).cloned()),
                citizen_id: c.citizen_id,
                overdue: c.state == "open" && c.deadline < at,
                state: c.state,
                missed_count: c.missed_count,
                attempts: c.call_attempts.saturating_add(c.manual_attempts),
                first_missed_at: c.first_missed_at,
                last_missed_at: c.last_missed_at,
                deadline: c.deadline,
                done_at: c.done_at,
                done_reason: c.done_reason,
            }
        })
        .collect())
}

/// Call-backs whose ticket an operator resolved or closed are done.
async fn settle_closed_callbacks<C: ConnectionTrait>(
    conn: &C,
    at: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    callback::Entity::update_many()
        .col_expr(callback::Column::State, Expr::value("done"))
        .col_expr(callback::Column::OpenNumber, Expr::value(Option::<String>::None))
        .col_expr(callback::Column::DoneAt, Expr::value(Some(at)))
        .col_expr(callback::Column::DoneReason, Expr::value(Some("closed")))
        .col_expr(callback::Column::UpdatedAt, Expr::value(at))
        .filter(callback::Column::State.eq("open"))
        .filter(Expr::cust(
            "EXISTS (SELECT 1 FROM tickets t WHERE t.id = callbacks.ticket_id AND t.status IN ('resolved', 'closed'))",
        ))
        .exec(conn)
        .await?;
    Ok(())
}

impl App {
    /// A page of the call log, newest first. Filtering by citizen or ticket is audited as a
    /// reading of their data.
    pub async fn list_calls(
        &self,
        actor: &Actor,
        query: &CallQuery,
    ) -> Result<CallPage, ServiceError> {
        actor.require_operator()?;
        let (filter, limit, cursor) = call_filter(query)?;
        let read = &self.db().read;
        let (rows, next) = q::list_calls(read, &filter, cursor, limit).await?;
        let items = call_views(read, rows).await?;
        self.audit_call_read(actor, &filter).await?;
        Ok(CallPage {
            items,
            next_cursor: next.map(|c| c.encode()),
        })
    }

    /// How many calls match the filters.
    pub async fn count_calls(&self, actor: &Actor, query: &CallQuery) -> Result<u64, ServiceError> {
        actor.require_operator()?;
        let (filter, _, _) = call_filter(query)?;
        Ok(q::count_calls(&self.db().read, &filter).await?)
    }

    async fn audit_call_read(
        &self,
        actor: &Actor,
        filter: &CallFilter,
    ) -> Result<(), ServiceError> {
        let target = match (filter.citizen_id, filter.ticket_id) {
            (Some(c), _) => Some(("citizen.calls_viewed", "citizen", c)),
            (None, Some(t)) => Some(("ticket.calls_viewed", "ticket", t)),
            (None, None) => None,
        };
        if let Some((action, kind, id)) = target {
            crate::audit::record(
                &self.db().write,
                Some(actor.id),
                action,
                kind,
                Some(id),
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// The call-back queue: open call-backs by deadline, or done ones most recent first.
    pub async fn list_callbacks(
        &self,
        actor: &Actor,
        query: &CallbackQuery,
    ) -> Result<CallbackPage, ServiceError> {
        actor.require_operator()?;
        actor.require_tier(Tier::FrontOffice)?;
        let mut p = Problems::default();
        let open = match query.state.as_deref().map(str::trim) {
            None | Some("") | Some("open") => true,
            Some("done") => false,
            Some(_) => {
                p.add("state", "must be 'open' or 'done'");
                true
            }
        };
        let (limit, cursor) = page_params(&mut p, query.limit, query.cursor.as_deref());
        p.finish()?;
        let at = now();
        settle_closed_callbacks(&self.db().write, at).await?;
        let read = &self.db().read;
        let (rows, next) = q::list_callbacks(read, open, cursor, limit).await?;
        Ok(CallbackPage {
            items: callback_views(read, rows, at).await?,
            next_cursor: next.map(|c| c.encode()),
        })
    }

    /// Records an attempt to call a citizen back; reaching them, or choosing to close, finishes
    /// the call-back and resolves its ticket.
    pub async fn record_callback_attempt(
        &self,
        actor: &Actor,
        ticket_id: Uuid,
        input: CallbackAttempt,
    ) -> Result<CallbackView, ServiceError> {
        actor.require_operator()?;
        actor.require_tier(Tier::FrontOffice)?;
        let note = match input
            .note
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            Some(n) => Some(bounded(n, 1, 2000).map_err(|e| ServiceError::field("note", e))?),
            None => None,
        };
        let at = now();
        let txn = self.db().write.begin().await?;
        lock(&txn).await?;
        settle_closed_callbacks(&txn, at).await?;
        let mut cb = callback::Entity::find_by_id(ticket_id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("call-back"))?;
        if cb.state != "open" {
            return Err(ServiceError::Conflict(format!(
                "this call-back is already done ({})",
                cb.done_reason.as_deref().unwrap_or("closed")
            )));
        }
        let t = ticket::Entity::find_by_id(ticket_id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        let from = Status::parse(&t.status).unwrap_or(Status::New);
        cb.manual_attempts = cb.manual_attempts.saturating_add(1);
        let attempt = cb.call_attempts.saturating_add(cb.manual_attempts);
        let body = format!(
            "Tentativo di richiamata n. {attempt} verso {}: {}.{}",
            cb.number,
            if input.reached {
                "cittadino raggiunto"
            } else {
                "cittadino non raggiunto"
            },
            note.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
        );
        let meta = json!({
            "manual": true, "direction": "outbound",
            "outcome": if input.reached { "answered" } else { "missed" },
            "attempt": attempt, "note": note,
        });
        let entry = ticket_entry::Model {
            id: Uuid::now_v7(),
            ticket_id,
            kind: EntryKind::Call.as_str().to_owned(),
            author_id: Some(actor.id),
            body,
            body_html: None,
            meta: Some(meta.to_string()),
            created_at: at,
        };
        let entry_id = entry.id;
        q::insert_all(&txn, vec![entry]).await?;
        let mut events = vec![DomainEvent::EntryAdded {
            ticket_id,
            entry_id,
            kind: EntryKind::Call,
            at,
        }];
        crate::audit::record(
            &txn,
            Some(actor.id),
            "callback.attempt",
            "ticket",
            Some(ticket_id),
            Some(json!({ "reached": input.reached, "attempt": attempt })),
        )
        .await?;
        let reason = if input.reached {
            Some("reached")
        } else if input.close {
            Some("closed")
        } else {
            None
        };
        cb.updated_at = at;
        if let Some(reason) = reason {
            mark_done(&mut cb, reason, at);
            crate::audit::record(
                &txn,
                Some(actor.id),
                "callback.done",
                "ticket",
                Some(ticket_id),
                Some(json!({ "reason": reason })),
            )
            .await?;
            if from.is_active() {
                resolve_existing(&txn, &self.inner.routing.calendar, &[(ticket_id, from)], at)
                    .await?;
                let meta = json!({ "from": from, "to": Status::Resolved, "callback": reason });
                let system = ticket_entry::Model {
                    id: Uuid::now_v7(),
                    ticket_id,
                    kind: EntryKind::System.as_str().to_owned(),
                    author_id: Some(actor.id),
                    body: format!("{from} → {}: {}", Status::Resolved, done_text(reason)),
                    body_html: None,
                    meta: Some(meta.to_string()),
                    created_at: at,
                };
                q::insert_all(&txn, vec![system]).await?;
                events.push(DomainEvent::TicketTransitioned {
                    ticket_id,
                    from,
                    to: Status::Resolved,
                    at,
                });
            }
        } else {
            ticket::Entity::update_many()
                .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
                .filter(ticket::Column::Id.eq(ticket_id))
                .exec(&txn)
                .await?;
        }
        let am: callback::ActiveModel = callback::ActiveModel::from(cb.clone()).reset_all();
        callback::Entity::update_many()
            .set(am)
            .filter(callback::Column::TicketId.eq(ticket_id))
            .exec(&txn)
            .await?;
        let view = callback_views(&txn, vec![cb], at).await?.remove(0);
        txn.commit().await?;
        self.bus().publish_all(events);
        Ok(view)
    }

    /// Adds an operator's note about a call to the call's ticket, recording the call's outcome
    /// when given.
    pub async fn add_call_note(
        &self,
        actor: &Actor,
        call_id: Uuid,
        input: CallNote,
    ) -> Result<EntryView, ServiceError> {
        actor.require_operator()?;
        let mut p = Problems::default();
        let body = p.check("body", bounded(&input.body, 1, 20_000));
        let result = match input
            .result
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
        {
            Some(r) => p.check("result", bounded(r, 1, 200)),
            None => None,
        };
        p.finish()?;
        let body = body.unwrap_or_default();
        let at = now();
        let txn = self.db().write.begin().await?;
        let c = call::Entity::find_by_id(call_id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("call"))?;
        let Some(ticket_id) = c.ticket_id else {
            return Err(ServiceError::Conflict(
                "this call is on no ticket (a withheld or internal call nobody answered): nothing to note it on".into(),
            ));
        };
        let t = ticket::Entity::find_by_id(ticket_id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("ticket"))?;
        actor.require_tier(Tier::parse(&t.tier).unwrap_or(Tier::FrontOffice))?;
        let meta = json!({ "call": call_id, "result": result });
        let entry = ticket_entry::Model {
            id: Uuid::now_v7(),
            ticket_id,
            kind: EntryKind::Note.as_str().to_owned(),
            author_id: Some(actor.id),
            body,
            body_html: None,
            meta: Some(meta.to_string()),
            created_at: at,
        };
        q::insert_all(&txn, vec![entry.clone()]).await?;
        if result.is_some() {
            call::Entity::update_many()
                .col_expr(call::Column::Result, Expr::value(result.clone()))
                .col_expr(call::Column::UpdatedAt, Expr::value(at))
                .filter(call::Column::Id.eq(call_id))
                .exec(&txn)
                .await?;
        }
        ticket::Entity::update_many()
            .col_expr(ticket::Column::UpdatedAt, Expr::value(at))
            .filter(ticket::Column::Id.eq(ticket_id))
            .exec(&txn)
            .await?;
        crate::audit::record(
            &txn,
            Some(actor.id),
            "ticket.note_added",
            "ticket",
            Some(ticket_id),
            Some(json!({ "call": call_id })),
        )
        .await?;
        txn.commit().await?;
        self.bus().publish_all(vec![DomainEvent::EntryAdded {
            ticket_id,
            entry_id: entry.id,
            kind: EntryKind::Note,
            at,
        }]);
        Ok(EntryView {
            id: entry.id,
            kind: EntryKind::Note,
            author_id: Some(actor.id),
            author_name: Some(actor.name.clone()),
            body: entry.body,
            body_html: None,
            meta: Some(meta),
            created_at: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sportello_phone::synth::synthetic_cdr;
    use sportello_phone::{CdrReader, PhoneConfig};

    /// The row `update_call` writes for a record: the columns `stored_record` reads back.
    fn row_of(record: &CallRecord, stored: String) -> call::Model {
        let mut m = blank_call(record, Utc::now());
        m.direction = record.direction.as_str().to_owned();
        m.outcome = record.outcome.map(|o| o.as_str().to_owned());
        m.queue = record.queue.clone();
        m.answered_at = record.answered_at;
        m.record = stored;
        m
    }

    #[test]
    fn stored_records_read_back_whole_in_the_new_and_the_old_form() {
        let synth = synthetic_cdr(400, 7);
        let rows: Vec<CdrRow> =
            CdrReader::new(synth.csv.as_bytes(), PhoneConfig::default().cdr_timezone)
                .map(|r| r.expect("synthetic rows parse"))
                .collect();
        assert!(rows.len() >= 400);
        let mut answered = 0;
        for row in &rows {
            let record = row.to_record("cdr");
            answered += usize::from(record.answered_by.is_some());
            let compact = serde_json::to_string(&StoredRecord::of(&record)).unwrap();
            let whole = serde_json::to_string(&record).unwrap();
            assert!(
                compact.len() * 3 < whole.len() * 2,
                "{compact} is not a third smaller than {whole}"
            );
            assert_eq!(stored_record(&row_of(&record, compact)).unwrap(), record);
            // Rows written before the compact form held the whole record.
            assert_eq!(stored_record(&row_of(&record, whole)).unwrap(), record);
        }
        assert!(answered > 0, "the sample has answered calls");
    }

    #[test]
    fn an_unreadable_stored_record_is_an_error_naming_the_call() {
        let synth = synthetic_cdr(1, 7);
        let row = CdrReader::new(synth.csv.as_bytes(), PhoneConfig::default().cdr_timezone)
            .next()
            .unwrap()
            .unwrap();
        let model = row_of(&row.to_record("cdr"), "{not json".into());
        let err = stored_record(&model).unwrap_err().to_string();
        assert!(err.contains(&model.id.to_string()), "{err}");
    }
}
