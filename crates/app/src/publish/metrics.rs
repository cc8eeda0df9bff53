//! Publishing per-developer CloudWatch metrics (`sync --publish-metrics`).
//!
//! Each record `sync` inserts is queued (`metric_pending`) in the same transaction as the record,
//! so a record is queued exactly once however often it is read. The publisher attributes and
//! prices the queued records, sums them per minute, developer and model, puts them, and takes
//! them off the queue once CloudWatch has accepted them. A record is published once, across
//! restarts; the one exception is a kill in the instant between CloudWatch's answer and the
//! commit that follows, which publishes that batch (at most 55 rows) again.

use std::collections::{BTreeMap, HashMap};

use bedrock_usage_aws::metrics::{self, Row};
use bedrock_usage_aws::{Backoff, SdkConfig};
use bedrock_usage_core::pricing::{normalize_model_id, InputBand};
use bedrock_usage_core::time::MS_PER_DAY;
use bedrock_usage_core::{Attributor, Config, NanoUsd, PriceCatalog};

use crate::sources::remote::SyncError;
use crate::store::Store;

/// CloudWatch takes data points up to two weeks old; older records are not published.
const MAX_AGE_MS: i64 = 14 * MS_PER_DAY - 3_600_000;

#[derive(Debug, Default, Clone)]
pub struct PublishReport {
    pub records: u64,
    pub rows: u64,
    pub calls: u64,
    /// Records older than CloudWatch accepts.
    pub too_old: u64,
    /// Records with no price (their CostUSD is missing from the metric).
    pub unpriced: u64,
    pub retries: u64,
}

/// Publishes every queued record.
pub async fn publish(
    conf: &SdkConfig,
    store: &mut dyn Store,
    config: &Config,
    catalog: &PriceCatalog,
    backoff: &Backoff,
    now_ms: i64,
) -> Result<PublishReport, SyncError> {
    let client = metrics::Client::new(conf);
    let mut rep = PublishReport::default();
    let identities = store.identities()?;
    let tags = store.iam_tags()?.tags;
    let attributor = Attributor::new(config, identities.iter()).with_iam_tags(&tags);
    loop {
        let pending = store.pending_metrics(20_000)?;
        if pending.is_empty() {
            return Ok(rep);
        }
        let mut rows: BTreeMap<(i64, String, String), (Row, Vec<String>)> = BTreeMap::new();
        let mut too_old = Vec::new();
        let mut names = HashMap::new();
        for inv in &pending {
            if inv.timestamp_ms < now_ms - MAX_AGE_MS {
                too_old.push(inv.request_id.as_str());
                continue;
            }
            let developer = attributor.attribute(&inv.identity).developer;
            let name = names
                .entry(inv.model_id.clone())
                .or_insert_with(|| normalize_model_id(&inv.model_id, &config.models))
                .clone();
            let model = name.key.clone().unwrap_or_else(|| inv.model_id.clone());
            let day = inv.timestamp_ms.div_euclid(MS_PER_DAY);
            let tokens = &inv.tokens;
            let priced = catalog.price(
                &name,
                &inv.model_id,
                &inv.region,
                day,
                tokens,
                InputBand::of(tokens),
            );
            let cost = match priced {
                Ok(c) => c,
                Err(_) => {
                    if inv.tokens.total() > 0 {
                        rep.unpriced += 1;
                    }
                    NanoUsd(0)
                }
            };
            let minute = inv.timestamp_ms.div_euclid(60_000) * 60_000;
            let (row, ids) = rows
                .entry((minute, developer.clone(), model.clone()))
                .or_insert_with(|| {
                    (
                        Row {
                            minute_ms: minute,
                            developer,
                            model,
                            invocations: 0,
                            input_tokens: 0,
                            output_tokens: 0,
                            cache_read_tokens: 0,
                            cache_write_tokens: 0,
                            cost_nano_usd: 0,
                        },
                        Vec::new(),
                    )
                });
            let t = &inv.tokens;
            row.invocations += 1;
            row.input_tokens += t.input;
            row.output_tokens += t.output;
            row.cache_read_tokens += t.cache_read;
            row.cache_write_tokens += t.cache_write_5m + t.cache_write_1h;
            // Each call priced as every reader prices one call (rounded to the nano-dollar).
            row.cost_nano_usd += cost.0;
            ids.push(inv.request_id.clone());
        }
        rep.too_old += too_old.len() as u64;
        store.clear_pending_metrics(&too_old)?;
        let rows: Vec<(Row, Vec<String>)> = rows.into_values().collect();
        for chunk in rows.chunks(metrics::ROWS_PER_CALL) {
            let batch: Vec<Row> = chunk.iter().map(|(r, _)| r.clone()).collect();
            bedrock_usage_aws::retry(
                backoff,
                || metrics::put(&client, metrics::NAMESPACE, &batch),
                |_, _| rep.retries += 1,
            )
            .await?;
            let ids: Vec<&str> = chunk
                .iter()
                .flat_map(|(_, ids)| ids.iter().map(String::as_str))
                .collect();
            store.clear_pending_metrics(&ids)?;
            rep.calls += 1;
            rep.rows += batch.len() as u64;
            rep.records += ids.len() as u64;
        }
    }
}
