//! The syntax tree of a query. Every node that can be wrong at run time keeps its byte span in
//! the query text, so later errors and warnings can point at it too.

use std::ops::Range;

pub type Span = Range<usize>;

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub commands: Vec<Command>,
}

/// An expression with an optional `as` alias.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub expr: Expr,
    pub alias: Option<String>,
    /// The expression as written (the column's name when there is no alias).
    pub text: String,
}

impl Named {
    /// The name of the column this expression makes.
    pub fn name(&self) -> &str {
        self.alias.as_deref().unwrap_or(match &self.expr {
            Expr::Field { name, .. } => name,
            _ => &self.text,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    pub expr: Expr,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParsePattern {
    /// `'... * ... *'` with `as a, b`: each `*` captures into the next name.
    Glob { pattern: String, names: Vec<String> },
    /// `/...(?<name>...).../`: named captures.
    Regex { pattern: String, names: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Fields(Vec<Named>),
    Display(Vec<Named>),
    Filter(Expr),
    Stats {
        aggregates: Vec<Named>,
        by: Vec<Named>,
    },
    Sort(Vec<SortKey>),
    Limit(u64),
    Parse {
        field: Expr,
        pattern: ParsePattern,
    },
    Dedup(Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    NotLike,
    Matches,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Field {
        name: String,
        span: Span,
    },
    Number(f64),
    Str(String),
    Regex(String),
    Bool(bool),
    /// `5m`, `1h`, `1d`: a duration in milliseconds (the argument of `bin`, `datefloor`, ...).
    Duration(i64),
    List(Vec<Expr>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Call {
        name: String,
        args: Vec<Expr>,
        span: Span,
    },
}
