//! A run's file in PostgreSQL: written in 1 MiB chunks in the transaction that marks the run
//! SUCCEEDED (so a file is whole or absent, and any instance can serve it), read back chunk by
//! chunk (so a download never holds the file in memory).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::db::report_runs;
use crate::error::{AppError, AppResult};

/// Bytes per stored chunk.
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// Stores `file` (read from its start) as the run's chunks; the bytes stored. Call inside the
/// transaction that ends the run.
pub async fn store(conn: &mut AsyncPgConnection, run_id: Uuid, file: &mut File) -> AppResult<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut buffer = vec![0u8; CHUNK_BYTES];
    let mut total = 0u64;
    for index in 0i32.. {
        let filled = fill(file, &mut buffer)?;
        if filled == 0 && index > 0 {
            break;
        }
        report_runs::insert_chunk(conn, run_id, index, &buffer[..filled]).await?;
        total += filled as u64;
        if filled < CHUNK_BYTES {
            break;
        }
    }
    Ok(total)
}

/// Reads until `buffer` is full or the file ends; the bytes read.
fn fill(file: &mut File, buffer: &mut [u8]) -> AppResult<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let n = file.read(&mut buffer[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// The run's finished file copied into an anonymous temporary file, read from its start, with
/// its size; None when the run has no file (not finished, failed, or past its retention).
pub async fn copy_to_temp(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    run_id: Uuid,
) -> AppResult<Option<(File, u64)>> {
    let mut file = tempfile::tempfile()?;
    let mut total = 0u64;
    let mut index = 0;
    while let Some(data) = report_runs::chunk(conn, tenant, run_id, index).await? {
        file.write_all(&data)?;
        total += data.len() as u64;
        index += 1;
    }
    if index == 0 {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(Some((file, total)))
}

/// One chunk of a run's file (downloads stream them in order).
pub async fn chunk(
    conn: &mut AsyncPgConnection,
    tenant: &Tenant,
    run_id: Uuid,
    index: i32,
) -> AppResult<Option<Vec<u8>>> {
    report_runs::chunk(conn, tenant, run_id, index).await
}

/// A file that should exist and does not.
pub fn missing() -> AppError {
    AppError::NotFound("the file of this run has expired or was never written".into())
}
