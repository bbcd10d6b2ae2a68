//! JSON exports: one document — the report (id, title, version), the interval and zone, the
//! columns (key, label, unit of metrics), the rows as arrays in column order, the totals row
//! (or null), the rows found before the limit and whether it cut any. Written as a stream:
//! the head, then each row as it comes, then the tail, so a long export never sits in memory.

use std::fs::File;
use std::io::{BufWriter, Write};

use serde_json::{json, Value};

use super::{Cell, ExportMeta, TableWriter};
use crate::error::AppResult;

pub struct JsonWriter {
    out: BufWriter<File>,
    first: bool,
    total_rows: Option<u64>,
    truncated: bool,
}

fn cell(cell: &Cell) -> Value {
    match cell {
        Cell::Integer(n) => json!(n),
        Cell::Number(Some(v)) => serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number),
        Cell::Number(None) | Cell::Empty => Value::Null,
        Cell::Text(_) | Cell::Date(_) | Cell::Time(_) => Value::String(cell.text()),
    }
}

fn cells(row: &[Cell]) -> Value {
    Value::Array(row.iter().map(cell).collect())
}

impl JsonWriter {
    pub fn create(meta: &ExportMeta, file: File) -> AppResult<Self> {
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        let columns: Vec<Value> = meta
            .columns
            .iter()
            .map(|c| json!({ "key": c.key, "label": c.label, "unit": c.kind.unit_name() }))
            .collect();
        let head = json!({
            "report": { "id": meta.report_id, "title": meta.title, "version": meta.report_version },
            "start": meta.from,
            "end": meta.to,
            "timezone": meta.timezone.name(),
            "generatedAt": meta.generated_at,
            "columns": columns,
        });
        // The head object without its closing brace, then the rows array opens.
        let head = serde_json::to_string(&head)?;
        out.write_all(&head.as_bytes()[..head.len() - 1])?;
        out.write_all(b",\"rows\":[")?;
        Ok(JsonWriter {
            out,
            first: true,
            total_rows: meta.total_rows,
            truncated: meta.truncated,
        })
    }
}

impl TableWriter for JsonWriter {
    fn row(&mut self, row: &[Cell]) -> AppResult<()> {
        if !self.first {
            self.out.write_all(b",")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, &cells(row))?;
        Ok(())
    }

    fn finish(mut self: Box<Self>, totals: Option<&[Cell]>) -> AppResult<()> {
        self.out.write_all(b"],\"totals\":")?;
        serde_json::to_writer(&mut self.out, &totals.map(cells))?;
        write!(
            self.out,
            ",\"totalRows\":{},\"truncated\":{}}}",
            serde_json::to_string(&self.total_rows)?,
            self.truncated
        )?;
        self.out
            .into_inner()
            .map_err(|e| crate::error::AppError::internal(format!("writing JSON: {}", e.error())))?
            .sync_all()?;
        Ok(())
    }
}
