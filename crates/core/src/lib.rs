//! The pure core of bedrock-usage: the invocation record, attribution, pricing, time and report
//! maths. No network, no database, no async: everything here is a function of its inputs, so it
//! builds and tests in seconds and the binary crate stays a thin layer of I/O around it.

pub mod attribution;
pub mod budget;
pub mod config;
#[doc(hidden)]
pub mod diff;
pub mod eventstream;
pub mod facts;
pub mod layout;
pub mod limits;
pub mod meter;
pub mod money;
pub mod pricing;
pub mod pricing_sources;
pub mod query;
pub mod record;
pub mod report;
pub mod rollup;
pub(crate) mod scan;
pub mod time;

pub use attribution::{Attribution, Attributor, Identity};
pub use config::Config;
pub use facts::{FactRow, FactSet, StoredInvocation};
pub use money::NanoUsd;
pub use pricing::{normalize_model_id, ModelName, PriceCatalog, Unpriced};
pub use record::{parse_record, Invocation, RecordError, Tokens};
