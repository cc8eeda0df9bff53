//! The parser: recursive descent over the lexer's tokens. Operator precedence, loosest first:
//! `or`; `and`; `not`; comparisons (`=`, `!=`, `<`, `<=`, `>`, `>=`, `like`, `not like`, `=~`,
//! `in`, `not in`); `+ -`; `* / %`; unary `-`.
//!
//! Errors carry the span of the offending text and what was expected there; [`QueryError::render`]
//! prints the query line with a caret under it.

use std::fmt;

use super::ast::{BinOp, Command, Expr, Named, ParsePattern, Query, SortKey, Span};
use super::lex::{LexError, Lexer, Tok};
use super::UNSUPPORTED_COMMANDS;

pub const COMMANDS: &[&str] = &[
    "fields", "filter", "stats", "sort", "limit", "display", "parse", "dedup",
];

pub const AGGREGATES: &[&str] = &[
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "pct",
    "stddev",
    "earliest",
    "latest",
];

pub const FUNCTIONS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "greatest",
    "least",
    "concat",
    "strlen",
    "toupper",
    "tolower",
    "trim",
    "ltrim",
    "rtrim",
    "substr",
    "replace",
    "strcontains",
    "ispresent",
    "isempty",
    "isblank",
    "coalesce",
    "datefloor",
    "dateceil",
    "frommillis",
    "tomillis",
    "bin",
];

/// A query that cannot be run, with the place in the query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryError {
    pub span: Span,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QueryError {}

impl From<LexError> for QueryError {
    fn from(e: LexError) -> QueryError {
        QueryError {
            span: e.span,
            message: e.message,
        }
    }
}

impl QueryError {
    /// The message, then the query line with a caret under the place.
    pub fn render(&self, query: &str) -> String {
        let start = self.span.start.min(query.len());
        let line_start = query[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = query[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(query.len());
        let line_no = query[..line_start].matches('\n').count() + 1;
        let col = query[line_start..start].chars().count();
        let width = query[start..self.span.end.clamp(start, line_end)]
            .chars()
            .count()
            .max(1);
        let location = if query.contains('\n') {
            format!(" (line {line_no}, column {})", col + 1)
        } else {
            String::new()
        };
        format!(
            "{}{location}\n  {}\n  {}{}",
            self.message,
            &query[line_start..line_end],
            " ".repeat(col),
            "^".repeat(width)
        )
    }
}

/// The closest of `candidates` to `name` by edit distance, if it is close enough to be a typo.
pub fn closest<'c>(name: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let name_l = name.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&name_l, &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(2))
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + (ca != *cb) as usize)
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Parses a whole query.
pub fn parse_query(src: &str) -> Result<Query, QueryError> {
    let mut p = Parser::new(src)?;
    let mut commands = Vec::new();
    if p.tok == Tok::End {
        return Err(p.error(format!(
            "an empty query: expected a command ({})",
            COMMANDS.join(", ")
        )));
    }
    loop {
        commands.push(p.command()?);
        match p.tok {
            Tok::Pipe => {
                p.bump()?;
            }
            Tok::End => break,
            _ => return Err(p.expected("`|` before the next command, or the end of the query")),
        }
    }
    Ok(Query { commands })
}

struct Parser<'q> {
    src: &'q str,
    lex: Lexer<'q>,
    tok: Tok,
    span: Span,
    /// Where the last consumed token ended.
    prev_end: usize,
}

impl<'q> Parser<'q> {
    fn new(src: &'q str) -> Result<Parser<'q>, QueryError> {
        let mut lex = Lexer::new(src);
        let (tok, span) = lex.next()?;
        Ok(Parser {
            src,
            lex,
            tok,
            span,
            prev_end: 0,
        })
    }

    fn bump(&mut self) -> Result<(Tok, Span), QueryError> {
        self.prev_end = self.span.end;
        let (t, s) = self.lex.next()?;
        Ok((
            std::mem::replace(&mut self.tok, t),
            std::mem::replace(&mut self.span, s),
        ))
    }

    fn error(&self, message: String) -> QueryError {
        QueryError {
            span: self.span.clone(),
            message,
        }
    }

    fn expected(&self, what: &str) -> QueryError {
        self.error(format!("expected {what}, found {}", self.tok.describe()))
    }

    /// The current token is the unquoted keyword `kw` (any case).
    fn at_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Ident { text, quoted: false } if text.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> Result<bool, QueryError> {
        if self.at_kw(kw) {
            self.bump()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn command(&mut self) -> Result<Command, QueryError> {
        let name = match &self.tok {
            Tok::Ident {
                text,
                quoted: false,
            } => text.to_ascii_lowercase(),
            _ => return Err(self.expected(&format!("a command ({})", COMMANDS.join(", ")))),
        };
        let name_span = self.span.clone();
        if !COMMANDS.contains(&name.as_str()) {
            let message = if UNSUPPORTED_COMMANDS.contains(&name.as_str()) {
                format!("`{name}` is a CloudWatch Logs Insights command that bedrock-usage does not support")
            } else {
                let hint = closest(&name, COMMANDS.iter().copied())
                    .map(|c| format!("; did you mean `{c}`?"))
                    .unwrap_or_default();
                format!(
                    "unknown command `{name}`{hint} (commands: {})",
                    COMMANDS.join(", ")
                )
            };
            return Err(QueryError {
                span: name_span,
                message,
            });
        }
        self.bump()?;
        let cmd = match name.as_str() {
            "fields" => Command::Fields(self.named_list("a field or expression after `fields`")?),
            "display" => Command::Display(self.named_list("a field after `display`")?),
            "filter" => Command::Filter(self.expr()?),
            "stats" => {
                let aggregates = self.named_list("an aggregate after `stats`, such as `count(*)` or `sum(input.inputTokenCount)`")?;
                let by = if self.eat_kw("by")? {
                    self.named_list("a field or `bin(...)` after `by`")?
                } else {
                    Vec::new()
                };
                Command::Stats { aggregates, by }
            }
            "sort" => {
                let mut keys = Vec::new();
                loop {
                    let expr = self.expr()?;
                    let descending = if self.eat_kw("desc")? {
                        true
                    } else {
                        self.eat_kw("asc")?;
                        false
                    };
                    keys.push(SortKey { expr, descending });
                    if self.tok != Tok::Comma {
                        break;
                    }
                    self.bump()?;
                }
                Command::Sort(keys)
            }
            "limit" => match self.tok {
                Tok::Number(n) if n >= 1.0 && n.fract() == 0.0 => {
                    self.bump()?;
                    Command::Limit(n as u64)
                }
                _ => return Err(self.expected("a whole number of rows after `limit`")),
            },
            "parse" => self.parse_command()?,
            "dedup" => {
                let fields = self.named_list("a field after `dedup`")?;
                Command::Dedup(fields.into_iter().map(|n| n.expr).collect())
            }
            _ => unreachable!("checked against COMMANDS"),
        };
        self.check_aggregates(&cmd, name_span)?;
        Ok(cmd)
    }

    fn parse_command(&mut self) -> Result<Command, QueryError> {
        let field = self.primary()?;
        match self.tok.clone() {
            Tok::Str(pattern) => {
                let pattern_span = self.span.clone();
                self.bump()?;
                if !self.eat_kw("as")? {
                    return Err(self.expected("`as` and the names of the fields the `*` of the pattern capture"));
                }
                let mut names = Vec::new();
                loop {
                    names.push(self.name("a field name")?);
                    if self.tok != Tok::Comma {
                        break;
                    }
                    self.bump()?;
                }
                let stars = pattern.matches('*').count();
                if stars != names.len() {
                    return Err(QueryError { span: pattern_span, message: format!("the pattern has {stars} `*` but {} names follow `as`", names.len()) });
                }
                Ok(Command::Parse { field, pattern: ParsePattern::Glob { pattern, names } })
            }
            Tok::Slash => {
                let open = self.span.start;
                let (pattern, span) = self.lex.regex_from(open)?;
                self.prev_end = span.end;
                let (t, s) = self.lex.next()?;
                self.tok = t;
                self.span = s;
                let names = capture_names(&pattern);
                if names.is_empty() {
                    return Err(QueryError { span, message: "the regular expression has no named capture, such as `(?<model>[^\"]+)`".into() });
                }
                Ok(Command::Parse { field, pattern: ParsePattern::Regex { pattern, names } })
            }
            _ => Err(self.expected("a pattern after the field: a glob string such as `'user=*'`, or a regular expression `/(?<name>...)/`")),
        }
    }

    /// Aggregates belong in `stats`, and `stats` needs one in each of its expressions.
    fn check_aggregates(&self, cmd: &Command, at: Span) -> Result<(), QueryError> {
        match cmd {
            Command::Stats { aggregates, by } => {
                for n in aggregates {
                    if !contains_aggregate(&n.expr) {
                        return Err(QueryError { span: at.clone(), message: "each expression of `stats` needs an aggregate, such as `count(*)`, `sum(f)` or `avg(f)`".into() });
                    }
                }
                for n in by {
                    if let Some((name, span)) = find_aggregate(&n.expr) {
                        return Err(QueryError {
                            span,
                            message: format!(
                                "`{name}` is an aggregate: it cannot stand after `by`"
                            ),
                        });
                    }
                }
            }
            Command::Fields(v) | Command::Display(v) => {
                for n in v {
                    if let Some((name, span)) = find_aggregate(&n.expr) {
                        return Err(QueryError {
                            span,
                            message: format!("`{name}` is an aggregate: use it in `stats`"),
                        });
                    }
                }
            }
            Command::Filter(e) => {
                if let Some((name, span)) = find_aggregate(e) {
                    return Err(QueryError { span, message: format!("`{name}` is an aggregate: use it in `stats`, then `filter` on its alias") });
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn named_list(&mut self, what: &str) -> Result<Vec<Named>, QueryError> {
        let mut out = Vec::new();
        loop {
            if matches!(self.tok, Tok::Pipe | Tok::End) || self.at_kw("by") {
                return Err(self.expected(what));
            }
            let start = self.span.start;
            let expr = self.expr()?;
            let text = self.src[start..self.prev_end.max(start)].trim().to_string();
            let alias = if self.eat_kw("as")? {
                Some(self.name("a name after `as`")?)
            } else {
                None
            };
            out.push(Named { expr, alias, text });
            if self.tok != Tok::Comma {
                return Ok(out);
            }
            self.bump()?;
        }
    }

    fn name(&mut self, what: &str) -> Result<String, QueryError> {
        match self.tok.clone() {
            Tok::Ident { text, .. } => {
                self.bump()?;
                Ok(text)
            }
            _ => Err(self.expected(what)),
        }
    }

    /// One left-associative level of binary operators: `next (op next)*`.
    fn left_assoc(
        &mut self,
        next: fn(&mut Self) -> Result<Expr, QueryError>,
        op_at: fn(&Self) -> Option<BinOp>,
    ) -> Result<Expr, QueryError> {
        let mut left = next(self)?;
        while let Some(op) = op_at(self) {
            self.bump()?;
            let right = next(self)?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        self.left_assoc(Self::and, |p| p.at_kw("or").then_some(BinOp::Or))
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        self.left_assoc(Self::not, |p| p.at_kw("and").then_some(BinOp::And))
    }

    fn not(&mut self) -> Result<Expr, QueryError> {
        if self.eat_kw("not")? {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, QueryError> {
        let left = self.additive()?;
        let op = match &self.tok {
            Tok::Eq => BinOp::Eq,
            Tok::Ne => BinOp::Ne,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::Matches => BinOp::Matches,
            _ if self.at_kw("like") => BinOp::Like,
            _ if self.at_kw("in") => BinOp::In,
            _ if self.at_kw("not") => {
                // `not like` / `not in` after a value.
                self.bump()?;
                if self.at_kw("like") {
                    BinOp::NotLike
                } else if self.at_kw("in") {
                    BinOp::NotIn
                } else {
                    return Err(self.expected("`like` or `in` after `not`"));
                }
            }
            _ => return Ok(left),
        };
        self.bump()?;
        let right = match op {
            BinOp::In | BinOp::NotIn => {
                if self.tok != Tok::LBracket {
                    return Err(self.expected("a list such as `[\"a\", \"b\"]` after `in`"));
                }
                self.primary()?
            }
            _ => self.additive()?,
        };
        Ok(Expr::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        })
    }

    fn additive(&mut self) -> Result<Expr, QueryError> {
        self.left_assoc(Self::multiplicative, |p| match p.tok {
            Tok::Plus => Some(BinOp::Add),
            Tok::Minus => Some(BinOp::Sub),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Result<Expr, QueryError> {
        self.left_assoc(Self::unary, |p| match p.tok {
            Tok::Star => Some(BinOp::Mul),
            Tok::Slash => Some(BinOp::Div),
            Tok::Percent => Some(BinOp::Mod),
            _ => None,
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.tok == Tok::Minus {
            self.bump()?;
            return Ok(match self.unary()? {
                Expr::Number(n) => Expr::Number(-n),
                e => Expr::Neg(Box::new(e)),
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, QueryError> {
        match self.tok.clone() {
            Tok::Number(n) => {
                self.bump()?;
                Ok(Expr::Number(n))
            }
            Tok::Duration(ms) => {
                self.bump()?;
                Ok(Expr::Duration(ms))
            }
            Tok::Str(s) => {
                self.bump()?;
                Ok(Expr::Str(s))
            }
            Tok::Slash => {
                let open = self.span.start;
                let (pattern, span) = self.lex.regex_from(open)?;
                self.prev_end = span.end;
                let (t, s) = self.lex.next()?;
                self.tok = t;
                self.span = s;
                Ok(Expr::Regex(pattern))
            }
            Tok::LParen => {
                self.bump()?;
                let e = self.expr()?;
                if self.tok != Tok::RParen {
                    return Err(self.expected("`)`"));
                }
                self.bump()?;
                Ok(e)
            }
            Tok::LBracket => {
                self.bump()?;
                let mut items = Vec::new();
                if self.tok != Tok::RBracket {
                    loop {
                        items.push(self.expr()?);
                        if self.tok != Tok::Comma {
                            break;
                        }
                        self.bump()?;
                    }
                }
                if self.tok != Tok::RBracket {
                    return Err(self.expected("`,` or `]` in the list"));
                }
                self.bump()?;
                Ok(Expr::List(items))
            }
            Tok::Ident { text, quoted } => {
                let span = self.span.clone();
                self.bump()?;
                if !quoted && self.tok == Tok::LParen {
                    return self.call(text, span);
                }
                if !quoted
                    && (text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false"))
                {
                    return Ok(Expr::Bool(text.eq_ignore_ascii_case("true")));
                }
                if !quoted
                    && ["and", "or", "as", "by", "like", "in", "asc", "desc"]
                        .iter()
                        .any(|k| text.eq_ignore_ascii_case(k))
                {
                    return Err(QueryError {
                        span,
                        message: format!("expected a value, found the keyword `{text}`"),
                    });
                }
                Ok(Expr::Field { name: text, span })
            }
            _ => Err(self.expected("a value: a field, a number, a string, a function call or `(`")),
        }
    }

    fn call(&mut self, name: String, span: Span) -> Result<Expr, QueryError> {
        let lower = name.to_ascii_lowercase();
        if !AGGREGATES.contains(&lower.as_str()) && !FUNCTIONS.contains(&lower.as_str()) {
            let hint = closest(&lower, AGGREGATES.iter().chain(FUNCTIONS).copied())
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            return Err(QueryError {
                span,
                message: format!("unknown function `{name}`{hint}"),
            });
        }
        self.bump()?; // (
        let mut args = Vec::new();
        if lower == "count" && self.tok == Tok::Star {
            self.bump()?;
        } else if self.tok != Tok::RParen {
            loop {
                args.push(self.expr()?);
                if self.tok != Tok::Comma {
                    break;
                }
                self.bump()?;
            }
        }
        if self.tok != Tok::RParen {
            return Err(self.expected(&format!("`,` or `)` in the arguments of `{name}`")));
        }
        let end = self.span.end;
        self.bump()?;
        if let Some(msg) = arity_error(&lower, args.len()) {
            return Err(QueryError {
                span: span.start..end,
                message: msg,
            });
        }
        Ok(Expr::Call {
            name: lower,
            args,
            span: span.start..end,
        })
    }
}

/// How many arguments each function takes; `None` if `n` is right.
fn arity_error(name: &str, n: usize) -> Option<String> {
    let (lo, hi) = match name {
        "count" => (0, 1),
        "count_distinct" | "sum" | "avg" | "min" | "max" | "stddev" | "earliest" | "latest" => {
            (1, 1)
        }
        "pct" => (2, 2),
        "abs" | "ceil" | "floor" | "strlen" | "toupper" | "tolower" | "ispresent" | "isempty"
        | "isblank" | "frommillis" | "tomillis" | "bin" => (1, 1),
        "trim" | "ltrim" | "rtrim" => (1, 2),
        "greatest" | "least" | "concat" | "coalesce" => (1, usize::MAX),
        "substr" => (2, 3),
        "replace" => (3, 3),
        "strcontains" | "datefloor" | "dateceil" => (2, 2),
        _ => return None,
    };
    if n < lo || n > hi {
        let want = if lo == hi {
            format!("{lo}")
        } else if hi == usize::MAX {
            format!("at least {lo}")
        } else {
            format!("{lo} to {hi}")
        };
        return Some(format!(
            "`{name}` takes {want} argument{}, not {n}",
            if want == "1" { "" } else { "s" }
        ));
    }
    None
}

fn find_aggregate(e: &Expr) -> Option<(String, Span)> {
    match e {
        Expr::Call { name, args, span } => {
            if AGGREGATES.contains(&name.as_str()) {
                return Some((name.clone(), span.clone()));
            }
            args.iter().find_map(find_aggregate)
        }
        Expr::Binary { left, right, .. } => find_aggregate(left).or_else(|| find_aggregate(right)),
        Expr::Not(x) | Expr::Neg(x) => find_aggregate(x),
        Expr::List(v) => v.iter().find_map(find_aggregate),
        _ => None,
    }
}

fn contains_aggregate(e: &Expr) -> bool {
    find_aggregate(e).is_some()
}

/// Names of `(?<name>...)` and `(?P<name>...)` groups, in order.
fn capture_names(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = pattern;
    while let Some(i) = rest.find("(?") {
        let after = &rest[i + 2..];
        let after = after.strip_prefix('P').unwrap_or(after);
        if let Some(body) = after.strip_prefix('<') {
            if let Some(end) = body.find('>') {
                let name = &body[..end];
                if !name.is_empty() && !name.starts_with('=') && !name.starts_with('!') {
                    out.push(name.to_string());
                }
            }
        }
        rest = &rest[i + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(q: &str) -> String {
        parse_query(q).expect_err(q).render(q)
    }

    #[test]
    fn console_queries_parse() {
        let queries = [
            "fields @timestamp, identity.arn, modelId, input.inputTokenCount | sort @timestamp desc | limit 20",
            "stats sum(input.inputTokenCount) as input, sum(output.outputTokenCount) as output by identity.arn, modelId",
            "filter modelId like /claude-sonnet/ and not ispresent(errorCode) | stats count(*) by bin(1h)",
            "stats count(*) as calls by bin(5m) as t | sort t asc",
            "parse identity.arn 'assumed-role/*/*' as role, session | stats count(*) by role, session",
            "parse @message /\"modelId\":\"(?<model>[^\"]+)\"/ | stats count(*) by model",
            "filter operation in [\"Converse\", \"ConverseStream\"] and input.inputTokenCount >= 1000",
            "fields (input.inputTokenCount * 3 + output.outputTokenCount * 15) / 1000000 as cost | stats sum(cost) by `requestMetadata.developer`",
            "# comment\nfilter region != 'us-east-1' # trailing\n| dedup requestId | display requestId, region",
            "stats pct(output.outputTokenCount, 95), avg(input.inputTokenCount), stddev(x), count_distinct(identity.arn), earliest(@timestamp), latest(modelId) by modelId",
            "filter strcontains(modelId, 'opus') or modelId =~ /haiku/ | fields concat(region, '/', modelId) as where, datefloor(@timestamp, 1d) as day",
            "stats count(*) as n by identity.arn | filter n > 10 | stats sum(n)",
            "filter x not like 'abc%' and y not in [1, 2]",
        ];
        for q in queries {
            if let Err(e) = parse_query(q) {
                panic!("{}", e.render(q));
            }
        }
    }

    #[test]
    fn precedence() {
        let q = parse_query("filter a = 1 or b = 2 and not c = 3").expect("parse");
        let Command::Filter(Expr::Binary {
            op: BinOp::Or,
            right,
            ..
        }) = &q.commands[0]
        else {
            panic!("{q:?}")
        };
        let Expr::Binary {
            op: BinOp::And,
            right: not,
            ..
        } = right.as_ref()
        else {
            panic!("{right:?}")
        };
        assert!(matches!(not.as_ref(), Expr::Not(_)));
        let q = parse_query("fields 1 + 2 * 3 as x").expect("parse");
        let Command::Fields(v) = &q.commands[0] else {
            panic!()
        };
        assert!(matches!(&v[0].expr, Expr::Binary { op: BinOp::Add, .. }));
        assert_eq!(v[0].alias.as_deref(), Some("x"));
        let q = parse_query(
            "stats sum(input.inputTokenCount) ,  count(*) by bin(1h) | filter x like /a b/",
        )
        .expect("parse");
        let Command::Stats { aggregates, by } = &q.commands[0] else {
            panic!()
        };
        assert_eq!(
            (aggregates[0].name(), aggregates[1].name(), by[0].name()),
            ("sum(input.inputTokenCount)", "count(*)", "bin(1h)")
        );
    }

    #[test]
    fn every_error_points_at_its_place() {
        let cases = [
            ("filter modelId =", "expected a value: a field, a number, a string, a function call or `(`, found the end of the query\n  filter modelId =\n                  ^"),
            ("pattern @message", "`pattern` is a CloudWatch Logs Insights command that bedrock-usage does not support\n  pattern @message\n  ^^^^^^^"),
            ("stast count(*)", "unknown command `stast`; did you mean `stats`? (commands: fields, filter, stats, sort, limit, display, parse, dedup)\n  stast count(*)\n  ^^^^^"),
            ("stats summ(x)", "unknown function `summ`; did you mean `sum`?\n  stats summ(x)\n        ^^^^"),
            ("stats x by y", "each expression of `stats` needs an aggregate, such as `count(*)`, `sum(f)` or `avg(f)`\n  stats x by y\n  ^^^^^"),
            ("fields sum(x)", "`sum` is an aggregate: use it in `stats`\n  fields sum(x)\n         ^^^^^^"),
            ("filter count(*) > 1", "`count` is an aggregate: use it in `stats`, then `filter` on its alias\n  filter count(*) > 1\n         ^^^^^^^^"),
            ("stats count(*) by sum(x)", "`sum` is an aggregate: it cannot stand after `by`\n  stats count(*) by sum(x)\n                    ^^^^^^"),
            ("limit ten", "expected a whole number of rows after `limit`, found `ten`\n  limit ten\n        ^^^"),
            ("fields a b", "expected `|` before the next command, or the end of the query, found `b`\n  fields a b\n           ^"),
            ("filter a = 'x", "a string is not closed (expected a closing ')\n  filter a = 'x\n             ^^"),
            ("filter a like /x", "a regular expression is not closed (expected a closing `/`)\n  filter a like /x\n                ^^"),
            ("parse f 'a=* b=*' as x", "the pattern has 2 `*` but 1 names follow `as`\n  parse f 'a=* b=*' as x\n          ^^^^^^^^^"),
            ("parse f /a(b)/", "the regular expression has no named capture, such as `(?<model>[^\"]+)`\n  parse f /a(b)/\n          ^^^^^^"),
            ("stats pct(x)", "`pct` takes 2 arguments, not 1\n  stats pct(x)\n        ^^^^^^"),
            ("filter a in 3", "expected a list such as `[\"a\", \"b\"]` after `in`, found the number 3\n  filter a in 3\n              ^"),
            ("stats count(*) by bin(5x)", "`5x` is not a number or a duration (units: ms, s, m, h, d, w)\n  stats count(*) by bin(5x)\n                        ^^"),
            ("", "an empty query: expected a command (fields, filter, stats, sort, limit, display, parse, dedup)\n  \n  ^"),
            ("fields `a", "a backquoted name is not closed (expected a closing `` ` ``)\n  fields `a\n         ^^"),
            ("filter a = ;", "unexpected character `;`\n  filter a = ;\n             ^"),
            ("filter a = 1\n| stats count(*) by", "expected a field or `bin(...)` after `by`, found the end of the query (line 2, column 20)\n  | stats count(*) by\n                     ^"),
        ];
        for (q, want) in cases {
            assert_eq!(err(q), want, "query: {q}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            closest(
                "usage.inputTokens",
                [
                    "input.inputTokenCount",
                    "output.outputTokenCount",
                    "modelId"
                ]
            ),
            None
        );
        assert_eq!(
            closest(
                "input.inputTokenCont",
                ["input.inputTokenCount", "output.outputTokenCount"]
            ),
            Some("input.inputTokenCount")
        );
    }
}
