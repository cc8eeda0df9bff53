//! The CloudWatch Logs Insights query language, as bedrock-usage understands it.
//!
//! The lexer, the syntax tree and the parser (errors point at the place in the query with a
//! caret and say what was expected there), values with CloudWatch's null semantics, the
//! evaluator (`Plan::run` over rows of named values), and the flattening of JSON events into
//! dotted field names, and how stored invocations, rollup facts and log events become rows
//! (`rows`). Reading the store or the files is the binary's business.

mod ast;
pub mod columnar;
mod eval;
mod flatten;
mod lex;
mod parse;
pub mod rows;
mod value;

pub use ast::{BinOp, Command, Expr, Named, ParsePattern, Query, SortKey};
pub use eval::{Barrier, Execution, Plan, Row, Shape, Table, DEFAULT_LIMIT};
pub use flatten::{extract_fields, flatten_json, FieldSet};
pub use parse::{closest, parse_query, QueryError};
pub use value::{fmt_time, Value};

/// Commands CloudWatch has and bedrock-usage does not (yet): named as such in errors, not as a
/// syntax error.
pub const UNSUPPORTED_COMMANDS: &[&str] = &[
    "pattern",
    "anomaly",
    "diff",
    "unmask",
    "unnest",
    "lookup",
    "filterindex",
    "source",
];
