//! CSV exports: RFC 4180 (CRLF line ends, quoting as needed), UTF-8, with a byte-order mark
//! first when asked (Excel reads UTF-8 only then): the header row, the rows, the totals row.
//! Timestamps are ISO-8601 with the organization's offset; a metric without a value (a ratio
//! over nothing) is an empty field.

use std::fs::File;
use std::io::{BufWriter, Write};

use super::{Cell, ExportMeta, TableWriter};
use crate::error::{AppError, AppResult};

pub struct CsvWriter {
    out: csv::Writer<BufWriter<File>>,
}

fn failed(error: csv::Error) -> AppError {
    AppError::internal(format!("writing CSV: {error}"))
}

impl CsvWriter {
    pub fn create(meta: &ExportMeta, file: File) -> AppResult<Self> {
        let mut file = BufWriter::with_capacity(64 * 1024, file);
        if meta.bom {
            file.write_all(b"\xEF\xBB\xBF")?;
        }
        let mut out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(file);
        out.write_record(meta.columns.iter().map(|c| c.label.as_str()))
            .map_err(failed)?;
        Ok(CsvWriter { out })
    }
}

impl TableWriter for CsvWriter {
    fn row(&mut self, row: &[Cell]) -> AppResult<()> {
        self.out.write_record(row.iter().map(Cell::text)).map_err(failed)
    }

    fn finish(mut self: Box<Self>, totals: Option<&[Cell]>) -> AppResult<()> {
        if let Some(totals) = totals {
            self.row(totals)?;
        }
        let file = self
            .out
            .into_inner()
            .map_err(|e| AppError::internal(format!("writing CSV: {}", e.error())))?;
        file.into_inner()
            .map_err(|e| AppError::internal(format!("writing CSV: {}", e.error())))?
            .sync_all()?;
        Ok(())
    }
}
