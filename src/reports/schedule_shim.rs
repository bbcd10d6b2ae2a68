//! TEMPORARY: the run queue's interface (`reports::jobs`, `db::report_runs`,
//! `reports::files`, `reports::downloads`) as the scheduler and the senders call it, until that
//! code lands; same names and signatures, minimal bodies. Removed on rebase.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::auth::Tenant;
use crate::error::AppResult;
use crate::reports::formats::ExportFormat;
use crate::state::AppState;

pub enum RunOrigin {
    #[allow(dead_code)]
    User {
        user_id: Uuid,
        api_key_id: Option<Uuid>,
    },
    Schedule {
        schedule_id: Uuid,
        fire_at: DateTime<Utc>,
    },
}

pub struct NewRun {
    pub report_id: Uuid,
    pub report_version: i32,
    pub format: ExportFormat,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub bom: bool,
    pub origin: RunOrigin,
}

#[derive(diesel::QueryableByName)]
struct Inserted {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

pub async fn enqueue(conn: &mut AsyncPgConnection, tenant: &Tenant, run: NewRun) -> AppResult<Option<Uuid>> {
    let (requested_by, schedule_id, fire_at) = match run.origin {
        RunOrigin::User { user_id, .. } => (Some(user_id), None, None),
        RunOrigin::Schedule { schedule_id, fire_at } => (None, Some(schedule_id), Some(fire_at)),
    };
    let rows: Vec<Inserted> = diesel::sql_query(
        "INSERT INTO report_runs (organization_id, report_id, report_version, requested_by, schedule_id, fire_at, \
         format, range_from, range_to, bom) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (schedule_id, fire_at) WHERE schedule_id IS NOT NULL DO NOTHING RETURNING id",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<SqlUuid, _>(run.report_id)
    .bind::<Int4, _>(run.report_version)
    .bind::<Nullable<SqlUuid>, _>(requested_by)
    .bind::<Nullable<SqlUuid>, _>(schedule_id)
    .bind::<Nullable<Timestamptz>, _>(fire_at)
    .bind::<Text, _>(run.format.extension().to_uppercase())
    .bind::<Timestamptz, _>(run.from)
    .bind::<Timestamptz, _>(run.to)
    .bind::<Bool, _>(run.bom)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next().map(|r| r.id))
}

pub fn wake(_state: &AppState) {}

#[derive(Debug, Clone, diesel::QueryableByName)]
pub struct RunRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::Int8>)]
    pub bytes: Option<i64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub filename: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub content_type: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Int8)]
    pub rows_written: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub finished_at: Option<DateTime<Utc>>,
}

pub async fn get_run(conn: &mut AsyncPgConnection, tenant: &Tenant, run_id: Uuid) -> AppResult<Option<RunRow>> {
    let rows: Vec<RunRow> = diesel::sql_query(
        "SELECT id, status, bytes, filename, content_type, error, rows_written, finished_at \
         FROM report_runs WHERE organization_id = $1 AND id = $2",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<SqlUuid, _>(run_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().next())
}

#[derive(diesel::QueryableByName)]
struct Chunk {
    #[diesel(sql_type = diesel::sql_types::Bytea)]
    data: Vec<u8>,
}

pub async fn copy_to_temp(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    run_id: Uuid,
) -> AppResult<Option<(std::fs::File, u64)>> {
    use std::io::{Seek, Write};
    let chunks: Vec<Chunk> = diesel::sql_query(
        "SELECT f.data FROM report_files f JOIN report_runs r ON r.id = f.run_id \
         WHERE r.organization_id = $1 AND f.run_id = $2 ORDER BY f.chunk",
    )
    .bind::<SqlUuid, _>(tenant.org_id())
    .bind::<SqlUuid, _>(run_id)
    .load(conn)
    .await?;
    if chunks.is_empty() {
        return Ok(None);
    }
    let mut file = tempfile::tempfile()?;
    let mut size = 0_u64;
    for chunk in chunks {
        file.write_all(&chunk.data)?;
        size += chunk.data.len() as u64;
    }
    file.rewind()?;
    Ok(Some((file, size)))
}

pub fn signed_url(state: &AppState, run_id: Uuid, _org_id: Uuid, _ttl: std::time::Duration) -> String {
    let base = state
        .settings
        .public_base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.settings.bind));
    format!("{base}/reports/runs/{run_id}/file")
}
