//! The CloudWatch Logs Insights query language, as bedrock-usage understands it.
//!
//! This module holds the language only: the lexer, the syntax tree and the parser, with errors
//! that point at the place in the query (a caret under it) and say what was expected there.
//! Evaluating queries over the store or over log files builds on it (issue 3).

mod ast;
mod lex;
mod parse;

pub use ast::{BinOp, Command, Expr, Named, ParsePattern, Query, SortKey};
pub use parse::{parse_query, QueryError};

/// Commands CloudWatch has and bedrock-usage does not (yet): named as such in errors, not as a
/// syntax error.
pub const UNSUPPORTED_COMMANDS: &[&str] = &["pattern", "anomaly", "diff", "unmask", "unnest", "lookup", "filterindex", "source", "stats_if"];
