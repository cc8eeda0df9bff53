//! Per-developer CloudWatch metrics in the `BedrockUsage` namespace.
//!
//! Each row (one minute, one developer, one model) becomes six metrics — Invocations,
//! InputTokens, OutputTokens, CacheReadTokens, CacheWriteTokens, CostUSD — under three dimension
//! sets: `Developer, Model`; `Developer` (what a per-developer alarm watches); and none (the
//! account total, for the account-wide alarm).

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
pub use aws_sdk_cloudwatch::Client;
use aws_smithy_types::DateTime;

use crate::{classify, Failure};

pub const NAMESPACE: &str = "BedrockUsage";

/// The metric names, in the order [`Row::values`] gives them.
pub const METRICS: [&str; 6] = [
    "Invocations",
    "InputTokens",
    "OutputTokens",
    "CacheReadTokens",
    "CacheWriteTokens",
    "CostUSD",
];

/// What one developer did with one model in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub minute_ms: i64,
    pub developer: String,
    pub model: String,
    pub invocations: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Nano-dollars (exact in the store; CloudWatch takes a double).
    pub cost_nano_usd: i64,
}

impl Row {
    pub fn values(&self) -> [f64; 6] {
        [
            self.invocations as f64,
            self.input_tokens as f64,
            self.output_tokens as f64,
            self.cache_read_tokens as f64,
            self.cache_write_tokens as f64,
            self.cost_nano_usd as f64 / 1e9,
        ]
    }
}

/// The datums for `rows` (18 per row).
pub fn datums(rows: &[Row]) -> Vec<MetricDatum> {
    let mut out = Vec::with_capacity(rows.len() * 18);
    for r in rows {
        let dev = Dimension::builder()
            .name("Developer")
            .value(&r.developer)
            .build();
        let model = Dimension::builder().name("Model").value(&r.model).build();
        let sets: [Vec<Dimension>; 3] = [vec![dev.clone(), model], vec![dev], vec![]];
        for dims in sets {
            for (name, value) in METRICS.iter().zip(r.values()) {
                let unit = if *name == "CostUSD" || *name == "Invocations" {
                    StandardUnit::None
                } else {
                    StandardUnit::Count
                };
                out.push(
                    MetricDatum::builder()
                        .metric_name(*name)
                        .set_dimensions(Some(dims.clone()))
                        .timestamp(DateTime::from_millis(r.minute_ms))
                        .value(value)
                        .unit(unit)
                        .build(),
                );
            }
        }
    }
    out
}

/// How many rows fit one `PutMetricData` call (1,000 datums at most).
pub const ROWS_PER_CALL: usize = 1000 / 18;
const _: () = assert!(ROWS_PER_CALL * 18 <= 1000);

/// Puts `rows` (at most [`ROWS_PER_CALL`]) in one call.
pub async fn put(client: &Client, namespace: &str, rows: &[Row]) -> Result<(), Failure> {
    client
        .put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(datums(rows)))
        .send()
        .await
        .map_err(classify)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eighteen_datums_a_row_and_cost_in_dollars() {
        let r = Row {
            minute_ms: 1_772_000_000_000,
            developer: "alice".into(),
            model: "anthropic.claude-sonnet-4-5".into(),
            invocations: 2,
            input_tokens: 10,
            output_tokens: 20,
            cache_read_tokens: 30,
            cache_write_tokens: 40,
            cost_nano_usd: 1_500_000_000,
        };
        let d = datums(std::slice::from_ref(&r));
        assert_eq!(d.len(), 18);
        let cost: Vec<f64> = d
            .iter()
            .filter(|d| d.metric_name() == Some("CostUSD"))
            .filter_map(|d| d.value())
            .collect();
        assert_eq!(cost, [1.5, 1.5, 1.5]);
        assert_eq!(d[0].dimensions().len(), 2);
        assert_eq!(d[17].dimensions().len(), 0);
    }
}
