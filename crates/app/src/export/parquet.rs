//! Stored calls as Parquet: one file per UTC day under `dt=YYYY-MM-DD/` (Hive partitions), in
//! one schema ([`SCHEMA`], docs/export.md). Each row is one stored invocation with who it is
//! attributed to and what it cost, priced exactly as reports price it: `cost_pico_usd` sums to
//! the report's cost, `cost_nano_usd` is the call's price rounded once (what `query` shows).
//! Rows are written in row groups of [`ROW_GROUP`] calls, so memory stays flat in the day's size.

use std::collections::HashMap;
use std::sync::Arc;

use bedrock_usage_core::pricing::{normalize_model_id, InputBand};
use bedrock_usage_core::time::MS_PER_DAY;
use bedrock_usage_core::{Attributor, Config, PriceCatalog, StoredInvocation};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::store::FactReader;

/// Calls per row group.
pub const ROW_GROUP: usize = 131_072;

/// The export's schema, column by column (the order of [`Row`]'s fields).
pub const SCHEMA: &str = "message bedrock_usage_call {
  REQUIRED BYTE_ARRAY request_id (STRING);
  REQUIRED INT64 timestamp (TIMESTAMP(MILLIS,true));
  REQUIRED BYTE_ARRAY account_id (STRING);
  REQUIRED BYTE_ARRAY region (STRING);
  OPTIONAL BYTE_ARRAY inference_region (STRING);
  REQUIRED BYTE_ARRAY operation (STRING);
  REQUIRED BYTE_ARRAY model_id (STRING);
  OPTIONAL BYTE_ARRAY model (STRING);
  REQUIRED BYTE_ARRAY principal (STRING);
  REQUIRED BYTE_ARRAY developer (STRING);
  OPTIONAL BYTE_ARRAY team (STRING);
  OPTIONAL BYTE_ARRAY cost_center (STRING);
  REQUIRED BYTE_ARRAY attributed_by (STRING);
  OPTIONAL BYTE_ARRAY error_code (STRING);
  REQUIRED INT64 input_tokens;
  REQUIRED INT64 output_tokens;
  REQUIRED INT64 cache_read_tokens;
  REQUIRED INT64 cache_write_5m_tokens;
  REQUIRED INT64 cache_write_1h_tokens;
  OPTIONAL BYTE_ARRAY request_metadata (STRING);
  OPTIONAL INT64 cost_pico_usd;
  OPTIONAL INT64 cost_nano_usd;
  OPTIONAL INT64 cost_usd (DECIMAL(18,12));
  OPTIONAL BYTE_ARRAY unpriced_reason (STRING);
}";

/// The columns as the Athena DDL names them (name, Hive type).
pub const HIVE_COLUMNS: [(&str, &str); 24] = [
    ("request_id", "string"),
    ("timestamp", "timestamp"),
    ("account_id", "string"),
    ("region", "string"),
    ("inference_region", "string"),
    ("operation", "string"),
    ("model_id", "string"),
    ("model", "string"),
    ("principal", "string"),
    ("developer", "string"),
    ("team", "string"),
    ("cost_center", "string"),
    ("attributed_by", "string"),
    ("error_code", "string"),
    ("input_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("cache_read_tokens", "bigint"),
    ("cache_write_5m_tokens", "bigint"),
    ("cache_write_1h_tokens", "bigint"),
    ("request_metadata", "string"),
    ("cost_pico_usd", "bigint"),
    ("cost_nano_usd", "bigint"),
    ("cost_usd", "decimal(18,12)"),
    ("unpriced_reason", "string"),
];

/// One column being filled: values, and definition levels when it may be null.
enum Col {
    I64(Vec<i64>, Option<Vec<i16>>),
    Str(Vec<ByteArray>, Option<Vec<i16>>),
}

impl Col {
    fn str(&mut self, v: Option<&str>) {
        if let Col::Str(vals, defs) = self {
            if let Some(d) = defs {
                d.push(v.is_some() as i16);
            }
            if let Some(s) = v {
                vals.push(ByteArray::from(s.as_bytes().to_vec()));
            }
        }
    }
    fn i64(&mut self, v: Option<i64>) {
        if let Col::I64(vals, defs) = self {
            if let Some(d) = defs {
                d.push(v.is_some() as i16);
            }
            if let Some(x) = v {
                vals.push(x);
            }
        }
    }
    fn clear(&mut self) {
        match self {
            Col::I64(v, d) => {
                v.clear();
                if let Some(d) = d {
                    d.clear();
                }
            }
            Col::Str(v, d) => {
                v.clear();
                if let Some(d) = d {
                    d.clear();
                }
            }
        }
    }
}

/// Who each identity is, and how each call is priced, for one export.
pub struct Pricer<'a> {
    config: &'a Config,
    catalog: &'a PriceCatalog,
    attributor: Attributor<'a>,
    who: HashMap<i64, bedrock_usage_core::attribution::Attribution>,
    models: HashMap<i64, bedrock_usage_core::pricing::ModelName>,
}

impl<'a> Pricer<'a> {
    pub fn new(config: &'a Config, catalog: &'a PriceCatalog, attributor: Attributor<'a>) -> Self {
        Pricer {
            config,
            catalog,
            attributor,
            who: HashMap::new(),
            models: HashMap::new(),
        }
    }
}

/// A day's calls as columns, flushed to a row group every [`ROW_GROUP`] calls.
pub struct DayWriter<W: std::io::Write + Send> {
    writer: SerializedFileWriter<W>,
    cols: Vec<Col>,
    rows: usize,
    pub written: u64,
}

fn schema_cols() -> parquet::errors::Result<(Arc<parquet::schema::types::Type>, Vec<Col>)> {
    let schema = Arc::new(parse_message_type(SCHEMA)?);
    let cols = schema
        .get_fields()
        .iter()
        .map(|f| {
            let optional = f.get_basic_info().repetition() == parquet::basic::Repetition::OPTIONAL;
            let defs = optional.then(Vec::new);
            match f.get_physical_type() {
                parquet::basic::Type::INT64 => Col::I64(Vec::new(), defs),
                _ => Col::Str(Vec::new(), defs),
            }
        })
        .collect();
    Ok((schema, cols))
}

impl<W: std::io::Write + Send> DayWriter<W> {
    pub fn new(out: W) -> parquet::errors::Result<DayWriter<W>> {
        let (schema, cols) = schema_cols()?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("bedrock-usage {}", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(DayWriter {
            writer: SerializedFileWriter::new(out, schema, Arc::new(props))?,
            cols,
            rows: 0,
            written: 0,
        })
    }

    pub fn add(&mut self, p: &mut Pricer, c: &StoredInvocation) -> parquet::errors::Result<()> {
        let who = p
            .who
            .entry(c.identity_id)
            .or_insert_with(|| p.attributor.attribute(&c.identity))
            .clone();
        let model = p
            .models
            .entry(c.model_ref)
            .or_insert_with(|| normalize_model_id(&c.model_id, &p.config.models))
            .clone();
        let day = c.timestamp_ms.div_euclid(MS_PER_DAY);
        let priced = p.catalog.cost_pico_with(
            &model,
            &c.model_id,
            &c.region,
            day,
            &c.tokens,
            InputBand::of(&c.tokens),
        );
        let (pico, reason) = match priced {
            Ok(pico) => (Some(pico), None),
            // A call with no tokens costs nothing whatever the model (as in reports).
            Err(_) if c.tokens.total() == 0 => (Some(0), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let pico = pico.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let nano = pico.map(|v| bedrock_usage_core::NanoUsd::from_pico(v as i128).0);
        let t = &c.tokens;
        let c_ = &mut self.cols;
        c_[0].str(Some(&c.request_id));
        c_[1].i64(Some(c.timestamp_ms));
        c_[2].str(Some(&c.account_id));
        c_[3].str(Some(&c.region));
        c_[4].str(c.inference_region.as_deref());
        c_[5].str(Some(&c.operation));
        c_[6].str(Some(&c.model_id));
        c_[7].str(model.key.as_deref());
        c_[8].str(Some(&c.identity.principal));
        c_[9].str(Some(&who.developer));
        c_[10].str(who.team.as_deref());
        c_[11].str(who.cost_center.as_deref());
        c_[12].str(Some(&format!("{:?}", who.via).to_lowercase()));
        c_[13].str(c.error_code.as_deref());
        for (i, n) in [
            t.input,
            t.output,
            t.cache_read,
            t.cache_write_5m,
            t.cache_write_1h,
        ]
        .into_iter()
        .enumerate()
        {
            c_[14 + i].i64(Some(n as i64));
        }
        c_[19].str(c.request_metadata.as_deref());
        c_[20].i64(pico);
        c_[21].i64(nano);
        c_[22].i64(pico);
        c_[23].str(reason.as_deref());
        self.rows += 1;
        if self.rows >= ROW_GROUP {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> parquet::errors::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut rg = self.writer.next_row_group()?;
        for col in &mut self.cols {
            let Some(mut w) = rg.next_column()? else {
                break;
            };
            match col {
                Col::I64(v, d) => {
                    w.typed::<Int64Type>().write_batch(v, d.as_deref(), None)?;
                }
                Col::Str(v, d) => {
                    w.typed::<ByteArrayType>()
                        .write_batch(v, d.as_deref(), None)?;
                }
            }
            w.close()?;
            col.clear();
        }
        rg.close()?;
        self.written += self.rows as u64;
        self.rows = 0;
        Ok(())
    }

    /// Writes what is left and the file's footer.
    pub fn finish(mut self) -> parquet::errors::Result<u64> {
        self.flush()?;
        self.writer.close()?;
        Ok(self.written)
    }
}

/// Writes the calls of UTC day `day` from `store` to `out`; how many.
pub fn write_day<W: std::io::Write + Send>(
    store: &dyn FactReader,
    pricer: &mut Pricer,
    day: i64,
    out: W,
) -> crate::error::Result<u64> {
    let mut w = DayWriter::new(out).map_err(pq)?;
    let mut failed = None;
    store.scan_invocations(
        Some(day * MS_PER_DAY),
        Some((day + 1) * MS_PER_DAY),
        &mut |c| match w.add(pricer, &c) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        },
    )?;
    if let Some(e) = failed {
        return Err(pq(e));
    }
    w.finish().map_err(pq)
}

pub fn pq(e: parquet::errors::ParquetError) -> crate::error::Error {
    crate::error::Error::Invalid(format!("writing Parquet: {e}"))
}
