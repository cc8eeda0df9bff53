//! Facts as the store hands them back: one stored invocation (no bodies, no money), and sums
//! over rollup buckets with their lookup tables. Readers (reports, queries, metrics, status)
//! attribute and price these; the store only keeps them.

use crate::attribution::Identity;
use crate::record::Tokens;

/// One stored invocation, as a query or the metric publisher reads it.
#[derive(Debug, Clone, Default)]
pub struct StoredInvocation {
    pub request_id: String,
    pub timestamp_ms: i64,
    pub identity: Identity,
    pub model_id: String,
    pub account_id: String,
    pub region: String,
    pub inference_region: Option<String>,
    pub operation: String,
    pub error_code: Option<String>,
    pub tokens: Tokens,
    /// A JSON object, as stored.
    pub request_metadata: Option<String>,
    /// The store's ids of the identity and the model (stable keys for caches).
    pub identity_id: i64,
    pub model_ref: i64,
}

/// Facts read back for a report, with their lookup tables.
#[derive(Debug, Default)]
pub struct FactSet {
    pub identities: Vec<Identity>,
    pub model_ids: Vec<String>,
    pub strings: Vec<String>,
    pub rows: Vec<FactRow>,
}

/// The sums of one (bucket, identity, model, region, operation, price class).
#[derive(Debug, Clone)]
pub struct FactRow {
    pub bucket_ms: i64,
    /// Index into [`FactSet::identities`].
    pub identity: usize,
    /// Index into [`FactSet::model_ids`].
    pub model: usize,
    /// Index into [`FactSet::strings`].
    pub region: usize,
    pub operation: usize,
    /// Where the calls' input sides fall among the tiers' thresholds.
    pub input_band: crate::pricing::InputBand,
    pub calls: u64,
    pub errors: u64,
    /// Calls with no tokens at all.
    pub empty_calls: u64,
    pub tokens: Tokens,
}

impl FactSet {
    /// The row as the report maths takes it.
    pub fn fact<'a>(&'a self, r: &FactRow) -> crate::report::Fact<'a> {
        crate::report::Fact {
            bucket_ms: r.bucket_ms,
            identity: r.identity,
            model: r.model,
            region: &self.strings[r.region],
            operation: &self.strings[r.operation],
            input_band: r.input_band,
            calls: r.calls,
            errors: r.errors,
            empty_calls: r.empty_calls,
            tokens: r.tokens,
        }
    }
}
