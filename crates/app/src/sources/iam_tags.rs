//! IAM tags as a source of teams and cost centers (`attribution.iam_tags`): the tags of every IAM
//! user and role behind the calls in the store, read through the AWS layer and kept in the store
//! with when they were read. Read again after [`MAX_AGE_MS`]; an entity whose tags cannot be read
//! is counted and kept as it was.

use std::collections::BTreeSet;

use bedrock_usage_aws::{iam, Failure, SdkConfig};
use bedrock_usage_core::attribution::iam_entity;

use crate::store::{Store, StoreError};

/// Tags are read again after a day.
pub const MAX_AGE_MS: i64 = 24 * 3_600_000;

/// What a refresh did.
#[derive(Debug, Default, Clone)]
pub struct Refresh {
    /// IAM users and roles behind the stored calls.
    pub entities: u64,
    /// Read now.
    pub read: u64,
    /// Could not be read (the first failure says why).
    pub failed: u64,
    pub first_failure: Option<Failure>,
}

/// Reads the tags of the entities not read within [`MAX_AGE_MS`] of `now_ms`.
pub async fn refresh(
    conf: &SdkConfig,
    store: &mut dyn Store,
    now_ms: i64,
) -> Result<Refresh, StoreError> {
    let known = store.iam_tags()?;
    let entities: BTreeSet<String> = store
        .identities()?
        .iter()
        .filter_map(|i| iam_entity(&i.principal))
        .collect();
    let mut out = Refresh {
        entities: entities.len() as u64,
        ..Refresh::default()
    };
    let mut fresh = Vec::new();
    for e in entities {
        if known
            .read_ms
            .get(&e)
            .is_some_and(|&t| now_ms - t < MAX_AGE_MS)
        {
            continue;
        }
        match iam::tags(conf, &e).await {
            Ok(tags) => {
                tracing::debug!(entity = %e, tags = tags.len(), "Read IAM tags");
                fresh.push((e, tags));
            }
            Err(f) => {
                out.failed += 1;
                out.first_failure.get_or_insert(f);
            }
        }
    }
    out.read = fresh.len() as u64;
    store.put_iam_tags(&fresh, now_ms)?;
    Ok(out)
}
