//! Group commit for ticket creation.
//!
//! Intake arrives in bursts (a mailbox catching up, a switchboard replaying calls, many
//! operators at once). Each creation is a handful of small statements; on SQLite, with its one
//! writer, the cost is dominated by the writer connection waiting between statements for the
//! requesting task to be scheduled again. One task here takes every pending creation and writes
//! them back to back in one transaction, so a burst costs one commit instead of one per ticket.
//! A batch that fails as a whole is retried one job per transaction, so one bad request never
//! fails the others and every caller gets its own answer.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use sportello_domain::event::DomainEvent;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::ServiceError;
use crate::tickets::{TicketView, ValidTicket, insert_ticket};

/// Most creations written in one transaction.
const MAX_BATCH: usize = 128;

/// One ticket to create, validated, numbered and timestamped by the caller.
pub(crate) struct CreateJob {
    pub actor_id: Uuid,
    pub ticket: ValidTicket,
    pub citizen_id: Option<Uuid>,
    pub number: String,
    pub id: Uuid,
    pub at: DateTime<Utc>,
}

type Outcome = Result<(TicketView, Vec<DomainEvent>), ServiceError>;

pub(crate) struct Intake {
    tx: mpsc::Sender<(CreateJob, oneshot::Sender<Outcome>)>,
}

impl Intake {
    /// Starts the writer task; it ends when the last `Intake` handle is dropped.
    pub(crate) fn start(db: DatabaseConnection) -> Intake {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, rx));
        Intake { tx }
    }

    /// Creates the ticket; resolves once its transaction has committed.
    pub(crate) async fn submit(&self, job: CreateJob) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((job, reply))
            .await
            .map_err(|_| ServiceError::Internal("ticket writer stopped".into()))?;
        answer
            .await
            .map_err(|_| ServiceError::Internal("ticket writer dropped a request".into()))?
    }
}

async fn run(
    db: DatabaseConnection,
    mut rx: mpsc::Receiver<(CreateJob, oneshot::Sender<Outcome>)>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (jobs, replies): (Vec<CreateJob>, Vec<_>) = batch.into_iter().unzip();
        match write(&db, &jobs).await {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) if jobs.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(_) => {
                for (job, reply) in jobs.iter().zip(replies) {
                    let outcome = write(&db, std::slice::from_ref(job))
                        .await
                        .map(|mut o| o.remove(0));
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}

/// Writes all jobs in one transaction, or none of them.
async fn write(
    db: &DatabaseConnection,
    jobs: &[CreateJob],
) -> Result<Vec<(TicketView, Vec<DomainEvent>)>, ServiceError> {
    let txn = db.begin().await?;
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        out.push(insert_ticket(&txn, job).await?);
    }
    txn.commit().await?;
    Ok(out)
}
