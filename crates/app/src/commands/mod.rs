//! The commands, one file each: each takes the checked [`crate::context::Context`] (and its own
//! flags) and returns the exit status, printing its results through `crate::output`.

pub mod aws_setup;
pub mod aws_status;
pub mod budget;
pub mod config;
pub mod credentials;
pub mod demo;
pub mod export;
pub mod gateway;
pub mod ingest;
pub mod keys;
pub mod me;
pub mod pricing;
pub mod pricing_sources;
pub mod query;
mod query_columns;
pub mod report;
pub mod report_html;
pub mod serve;
pub mod store;
pub mod sync;
