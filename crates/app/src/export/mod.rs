//! Export: the stored calls in the warehouse's formats (Parquet for Athena, Spark, Trino and
//! DuckDB). Derived from the store, never a second source of truth.

pub mod parquet;
