//! Switchboard calls appear on a ticket's timeline straight from `calls`: the `call` entry each
//! one used to add to `ticket_entries` repeated what the call's row holds (and had to follow
//! every later event of the call). Those entries go, with `calls.entry_id` that pointed at them;
//! calls an operator logs by hand (`POST /tickets/{id}/calls`, no row in `calls`) stay entries.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nothing refers to a call's entry but the call itself (no mail row, no outbox row),
        // and every fact in it is rebuilt from the call's row when the timeline is read.
        let mut drop_entries = Query::delete();
        drop_entries.from_table("ticket_entries").and_where(
            Expr::col("id").in_subquery(
                Query::select()
                    .column("entry_id")
                    .from("calls")
                    .and_where(Expr::col("entry_id").is_not_null())
                    .to_owned(),
            ),
        );
        manager.exec_stmt(drop_entries).await?;
        manager
            .alter_table(
                Table::alter()
                    .table("calls")
                    .drop_column("entry_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The column comes back empty: the timeline entries it pointed at are not rebuilt.
        manager
            .alter_table(
                Table::alter()
                    .table("calls")
                    .add_column(ColumnDef::new("entry_id").uuid().null())
                    .to_owned(),
            )
            .await
    }
}
