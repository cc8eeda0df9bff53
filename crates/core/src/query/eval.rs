//! Running a parsed query over rows: commands in order, streaming until the first command that
//! needs every row (`stats`, `sort`, `dedup`, `limit`), then over the collected rows.
//! Output is a [`Table`]: named columns and rows of values.

use std::collections::{BTreeSet, HashMap, HashSet};

use regex::Regex;

use super::ast::{BinOp, Command, Expr, Named, ParsePattern, Query, SortKey};
use super::parse::{QueryError, AGGREGATES};
use super::value::Value;

/// CloudWatch returns at most this many rows unless the query says otherwise.
pub const DEFAULT_LIMIT: usize = 10_000;

/// One event: field name -> value. A missing field reads as `Null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub HashMap<String, Value>);

static NULL: Value = Value::Null;

impl Row {
    pub fn get(&self, name: &str) -> &Value {
        self.0.get(name).unwrap_or(&NULL)
    }
    pub fn set(&mut self, name: &str, v: Value) {
        self.0.insert(name.to_string(), v);
    }
}

/// A query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// Rows were cut at the default limit.
    pub truncated: bool,
}

/// A query ready to run: regular expressions compiled, fields it reads known.
pub struct Plan {
    query: Query,
    regexes: HashMap<String, Regex>,
    limit: usize,
}

/// `stats count(*) by developer | sort count(*) desc`: after a `stats`, a sort key written as one
/// of its aggregates or groups (`count(*)`, `sum(x)`, `bin(1d)`) means that column, as in
/// CloudWatch (the rows have no events left to evaluate it on).
fn name_sorts_after_stats(query: &mut Query) {
    let mut columns: Option<Vec<Named>> = None;
    for c in &mut query.commands {
        match c {
            Command::Stats { aggregates, by } => {
                columns = Some(aggregates.iter().chain(by.iter()).cloned().collect())
            }
            Command::Sort(keys) => {
                let Some(cols) = &columns else { continue };
                for k in keys.iter_mut() {
                    if matches!(k.expr, Expr::Field { .. }) {
                        continue;
                    }
                    if let Some(n) = cols.iter().find(|n| same_expr(&n.expr, &k.expr)) {
                        k.expr = Expr::Field {
                            name: n.name().to_string(),
                            span: span_of(&k.expr),
                        };
                    }
                }
            }
            _ => {}
        }
    }
}

/// Equal expressions, wherever they were written (spans aside).
fn same_expr(a: &Expr, b: &Expr) -> bool {
    match (a, b) {
        (Expr::Field { name: x, .. }, Expr::Field { name: y, .. }) => x == y,
        (
            Expr::Call {
                name: x, args: xa, ..
            },
            Expr::Call {
                name: y, args: ya, ..
            },
        ) => {
            x.eq_ignore_ascii_case(y)
                && xa.len() == ya.len()
                && xa.iter().zip(ya).all(|(p, q)| same_expr(p, q))
        }
        (
            Expr::Binary {
                op: o1,
                left: l1,
                right: r1,
            },
            Expr::Binary {
                op: o2,
                left: l2,
                right: r2,
            },
        ) => o1 == o2 && same_expr(l1, l2) && same_expr(r1, r2),
        (Expr::Not(x), Expr::Not(y)) | (Expr::Neg(x), Expr::Neg(y)) => same_expr(x, y),
        (Expr::List(x), Expr::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_expr(p, q))
        }
        (x, y) => x == y,
    }
}

fn span_of(e: &Expr) -> super::ast::Span {
    match e {
        Expr::Field { span, .. } | Expr::Call { span, .. } => span.clone(),
        _ => 0..0,
    }
}

impl Plan {
    /// `limit`: the row limit when the query has no `limit` command (CloudWatch: 10,000).
    pub fn new(mut query: Query, limit: usize) -> Result<Plan, QueryError> {
        name_sorts_after_stats(&mut query);
        let mut regexes = HashMap::new();
        let mut add = |pattern: &str| -> Result<(), QueryError> {
            if !regexes.contains_key(pattern) {
                let re = Regex::new(pattern).map_err(|e| QueryError {
                    span: 0..0,
                    message: format!("invalid regular expression /{pattern}/: {e}"),
                })?;
                regexes.insert(pattern.to_string(), re);
            }
            Ok(())
        };
        for c in &query.commands {
            let mut exprs: Vec<&Expr> = Vec::new();
            match c {
                Command::Fields(v) | Command::Display(v) => exprs.extend(v.iter().map(|n| &n.expr)),
                Command::Filter(e) => exprs.push(e),
                Command::Stats { aggregates, by } => {
                    exprs.extend(aggregates.iter().chain(by).map(|n| &n.expr))
                }
                Command::Sort(keys) => exprs.extend(keys.iter().map(|k| &k.expr)),
                Command::Dedup(v) => exprs.extend(v),
                Command::Parse { field, pattern } => {
                    exprs.push(field);
                    add(&match pattern {
                        ParsePattern::Glob { pattern, .. } => glob_to_regex(pattern),
                        ParsePattern::Regex { pattern, .. } => pattern.clone(),
                    })?;
                }
                Command::Limit(_) => {}
            }
            for e in exprs {
                visit(e, &mut |x| {
                    if let Expr::Regex(p) = x {
                        add(p)
                    } else {
                        Ok(())
                    }
                })?;
            }
        }
        Ok(Plan {
            query,
            regexes,
            limit,
        })
    }

    /// Fields the query reads from events before anything defines them (for warnings about
    /// fields no event has, and for reading only what is needed).
    pub fn input_fields(&self) -> BTreeSet<String> {
        let mut defined: HashSet<String> = HashSet::new();
        let mut after_stats = false;
        let mut out = BTreeSet::new();
        for c in &self.query.commands {
            let mut reads: Vec<&Expr> = Vec::new();
            let mut defines: Vec<String> = Vec::new();
            match c {
                Command::Fields(v) | Command::Display(v) => {
                    reads.extend(v.iter().map(|n| &n.expr));
                    defines.extend(
                        v.iter()
                            .filter(|n| n.alias.is_some())
                            .map(|n| n.name().to_string()),
                    );
                }
                Command::Filter(e) => reads.push(e),
                Command::Stats { aggregates, by } => {
                    reads.extend(aggregates.iter().chain(by).map(|n| &n.expr));
                    defines.extend(aggregates.iter().chain(by).map(|n| n.name().to_string()));
                }
                Command::Sort(keys) => reads.extend(keys.iter().map(|k| &k.expr)),
                Command::Dedup(v) => reads.extend(v),
                Command::Parse { field, pattern } => {
                    reads.push(field);
                    defines.extend(match pattern {
                        ParsePattern::Glob { names, .. } | ParsePattern::Regex { names, .. } => {
                            names.clone()
                        }
                    });
                }
                Command::Limit(_) => {}
            }
            // After a `stats`, rows hold only its columns: nothing more is read from events.
            if !after_stats {
                for e in reads {
                    read_fields(e, &defined, &mut out);
                }
            }
            after_stats |= matches!(c, Command::Stats { .. });
            defined.extend(defines);
        }
        out
    }

    /// Whether the query can run over pre-aggregated rows (sums of events): everything before
    /// its first `stats` is `filter` on `dims`; that `stats` groups by `dims` or `bin(...)` and
    /// aggregates only `count(*)`, and `count`, `sum` or `avg` of `additive` fields (fields every
    /// event has, summed in the pre-aggregated rows). Returns the smallest `bin` duration in
    /// milliseconds (`i64::MAX` for none), which the rows' time buckets must divide.
    pub fn additive_stats(&self, dims: &[&str], additive: &[&str]) -> Option<i64> {
        let cmds = &self.query.commands;
        let first = cmds.iter().position(|c| !matches!(c, Command::Filter(_)))?;
        let Command::Stats { aggregates, by } = &cmds[first] else {
            return None;
        };
        let fields_in = |e: &Expr, allowed: &dyn Fn(&str) -> bool| -> bool {
            let mut ok = true;
            let _ = visit(e, &mut |x| {
                match x {
                    Expr::Field { name, .. } if !allowed(name) => ok = false,
                    Expr::Call { name, .. }
                        if AGGREGATES.contains(&name.as_str()) || name == "bin" =>
                    {
                        ok = false
                    }
                    _ => {}
                }
                Ok(())
            });
            ok
        };
        let is_dim = |n: &str| dims.contains(&n);
        for c in &cmds[..first] {
            let Command::Filter(e) = c else { return None };
            if !fields_in(e, &is_dim) {
                return None;
            }
        }
        let mut bin = i64::MAX;
        for b in by {
            match &b.expr {
                Expr::Call { name, args, .. } if name == "bin" => match args.first() {
                    Some(Expr::Duration(d)) if *d > 0 => bin = bin.min(*d),
                    _ => return None,
                },
                e if fields_in(e, &is_dim) => {}
                _ => return None,
            }
        }
        for a in aggregates {
            let mut ok = true;
            let _ = visit(&a.expr, &mut |x| {
                match x {
                    Expr::Call { name, args, .. } if AGGREGATES.contains(&name.as_str()) => {
                        ok &= match (name.as_str(), args.as_slice()) {
                            ("count", []) => true,
                            ("count" | "sum" | "avg", [Expr::Field { name, .. }]) => {
                                additive.contains(&name.as_str())
                            }
                            _ => false,
                        };
                    }
                    Expr::Call { .. } => {}
                    // Fields outside aggregate calls are not allowed here.
                    Expr::Field { .. } => {}
                    _ => {}
                }
                Ok(())
            });
            if !ok || !aggregate_args_only(&a.expr) {
                return None;
            }
        }
        Some(bin)
    }

    /// The query's outline for a reader that can select and group rows itself (the store's
    /// columns): its leading filters, cut into conjuncts, and its first barrier.
    pub fn shape(&self) -> Shape<'_> {
        let cmds = &self.query.commands;
        let mut conjuncts = Vec::new();
        let mut i = 0;
        while let Some(Command::Filter(e)) = cmds.get(i) {
            split_and(e, &mut conjuncts);
            i += 1;
        }
        let barrier = self.start().barrier;
        let mut simple = true;
        let mut defined = HashSet::new();
        for c in &cmds[i..barrier] {
            match c {
                Command::Fields(v) | Command::Display(v) => defined.extend(
                    v.iter()
                        .filter(|n| n.alias.is_some() || !matches!(n.expr, Expr::Field { .. }))
                        .map(|n| n.name().to_string()),
                ),
                _ => simple = false,
            }
        }
        let barrier = match (cmds.get(barrier), cmds.get(barrier + 1)) {
            (Some(Command::Stats { .. }), _) => Barrier::Stats,
            (Some(Command::Sort(keys)), Some(Command::Limit(n))) => Barrier::Sort {
                keys,
                n: *n as usize,
            },
            (Some(Command::Sort(keys)), None) => Barrier::Sort {
                keys,
                n: self.limit,
            },
            (Some(Command::Limit(n)), _) => Barrier::Limit(*n as usize),
            (Some(_), _) => Barrier::Other,
            // Only streaming commands: the result shows the first `limit` rows (and says
            // whether there were more).
            (None, _) => Barrier::Limit(self.limit.saturating_add(1)),
        };
        Shape {
            conjuncts,
            simple,
            defined,
            barrier,
        }
    }

    /// How the query reads each event field up to its first `stats`, when that `stats` is its
    /// first barrier: the aggregate calls (`max`, `min`, `count`) that take the field as their
    /// whole argument, or `None` when the field is read any other way (a filter, a `by`, an
    /// expression). Fields read only by `max` (or only by `min`) need each group's largest (or
    /// smallest) value only.
    pub fn stats_uses(&self) -> Option<HashMap<String, Option<BTreeSet<String>>>> {
        let cmds = &self.query.commands;
        let barrier = self.start().barrier;
        let Some(Command::Stats { aggregates, by }) = cmds.get(barrier) else {
            return None;
        };
        let mut uses: HashMap<String, Option<BTreeSet<String>>> = HashMap::new();
        let other = |e: &Expr, uses: &mut HashMap<String, Option<BTreeSet<String>>>| {
            for f in Plan::expr_fields(e) {
                uses.insert(f, None);
            }
        };
        for c in &cmds[..barrier] {
            match c {
                Command::Fields(v) | Command::Display(v) => {
                    v.iter().for_each(|n| other(&n.expr, &mut uses))
                }
                Command::Filter(e) => other(e, &mut uses),
                Command::Parse { field, .. } => other(field, &mut uses),
                _ => return None,
            }
        }
        for n in by {
            other(&n.expr, &mut uses);
        }
        fn walk(e: &Expr, uses: &mut HashMap<String, Option<BTreeSet<String>>>) {
            match e {
                Expr::Call { name, args, .. }
                    if matches!(name.as_str(), "max" | "min" | "count") && args.len() == 1 =>
                {
                    if let Expr::Field { name: f, .. } = &args[0] {
                        match uses.entry(f.clone()) {
                            std::collections::hash_map::Entry::Occupied(mut o) => {
                                if let Some(set) = o.get_mut() {
                                    set.insert(name.clone());
                                }
                            }
                            std::collections::hash_map::Entry::Vacant(v) => {
                                v.insert(Some(BTreeSet::from([name.clone()])));
                            }
                        }
                    } else {
                        for f in Plan::expr_fields(e) {
                            uses.insert(f, None);
                        }
                    }
                }
                Expr::Call { name, args, .. }
                    if name == "earliest" || name == "latest" || name == "bin" =>
                {
                    uses.insert("@timestamp".into(), None);
                    args.iter().for_each(|a| walk(a, uses));
                }
                Expr::Field { name, .. } => {
                    uses.insert(name.clone(), None);
                }
                Expr::Not(x) | Expr::Neg(x) => walk(x, uses),
                Expr::Binary { left, right, .. } => {
                    walk(left, uses);
                    walk(right, uses);
                }
                Expr::Call { args, .. } | Expr::List(args) => {
                    args.iter().for_each(|a| walk(a, uses))
                }
                _ => {}
            }
        }
        for n in aggregates {
            walk(&n.expr, &mut uses);
        }
        Some(uses)
    }

    /// The event fields an expression reads (`bin`, `earliest` and `latest` read `@timestamp`).
    pub fn expr_fields(e: &Expr) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        read_fields(e, &HashSet::new(), &mut out);
        out
    }

    /// Whether the result shows the default columns (`@timestamp`, `@message`): the query has no
    /// `fields`, `display` or `stats`.
    pub fn shows_default_columns(&self) -> bool {
        !self.query.commands.iter().any(|c| {
            matches!(
                c,
                Command::Fields(_) | Command::Display(_) | Command::Stats { .. }
            )
        })
    }

    /// Runs the query over `rows`.
    pub fn run(&self, rows: impl IntoIterator<Item = Row>) -> Table {
        let mut exec = self.start();
        for row in rows {
            if !exec.push(row) {
                break;
            }
        }
        exec.finish()
    }

    /// Starts a run that takes rows one at a time ([`Execution::push`]), for sources that
    /// call back rather than iterate.
    pub fn start(&self) -> Execution<'_> {
        let cmds = &self.query.commands;
        let barrier = cmds
            .iter()
            .position(|c| {
                matches!(
                    c,
                    Command::Stats { .. }
                        | Command::Sort(_)
                        | Command::Dedup(_)
                        | Command::Limit(_)
                )
            })
            .unwrap_or(cmds.len());
        let mut columns: Vec<String> = Vec::new();
        let mut explicit_columns = false;
        for c in &cmds[..barrier] {
            self.note_columns(c, &mut columns, &mut explicit_columns);
        }
        let stats = match cmds.get(barrier) {
            Some(Command::Stats { aggregates, by }) => Some(StatsState::new(aggregates, by)),
            _ => None,
        };
        let early_limit = match cmds.get(barrier) {
            Some(Command::Limit(n)) => Some(*n as usize),
            _ => None,
        };
        // `sort ... | limit N` (or a last `sort`, which shows the default limit's rows): only the
        // first N in that order can be shown, so the rest is dropped as rows come.
        let top = match (cmds.get(barrier), cmds.get(barrier + 1)) {
            (Some(Command::Sort(keys)), Some(Command::Limit(n))) => Some((keys, *n as usize)),
            (Some(Command::Sort(keys)), None) => Some((keys, self.limit)),
            _ => None,
        };
        Execution {
            plan: self,
            barrier,
            columns,
            explicit_columns,
            stats,
            early_limit,
            top,
            pruned: false,
            collected: Vec::new(),
        }
    }

    fn finish_run(&self, e: Execution) -> Table {
        let cmds = &self.query.commands;
        let Execution {
            barrier,
            mut columns,
            mut explicit_columns,
            stats,
            early_limit,
            mut collected,
            pruned,
            ..
        } = e;
        let mut rest = barrier;
        if let Some(s) = stats {
            let (cols, rows) = s.finish(self);
            columns = cols;
            explicit_columns = true;
            collected = rows;
            rest += 1;
        }
        let mut limited = early_limit.is_some();
        for c in cmds.iter().skip(rest) {
            match c {
                Command::Stats { aggregates, by } => {
                    let mut s = StatsState::new(aggregates, by);
                    for r in &collected {
                        s.add(self, r, 1, true);
                    }
                    let (cols, rows) = s.finish(self);
                    columns = cols;
                    explicit_columns = true;
                    collected = rows;
                }
                Command::Sort(keys) => collected = self.sort_rows(keys, collected),
                Command::Limit(n) => {
                    collected.truncate(*n as usize);
                    limited = true;
                }
                Command::Dedup(fields) => {
                    let mut seen = HashSet::new();
                    collected.retain(|r| {
                        let vals: Vec<Value> = fields.iter().map(|f| self.eval(f, r)).collect();
                        // Rows with a null in a dedup field are never duplicates.
                        vals.iter().any(Value::is_null)
                            || seen.insert(vals.iter().map(Value::key).collect::<Vec<_>>())
                    });
                }
                c => {
                    self.note_columns(c, &mut columns, &mut explicit_columns);
                    collected.retain_mut(|r| self.apply_streaming(c, r));
                }
            }
        }
        if !explicit_columns {
            columns = vec!["@timestamp".to_string(), "@message".to_string()];
        }
        // A last `sort` that dropped rows beyond the default limit: the result is cut there.
        let truncated = !limited && (pruned || collected.len() > self.limit);
        if truncated {
            collected.truncate(self.limit);
        }
        let rows = collected
            .iter()
            .map(|r| columns.iter().map(|c| r.get(c).clone()).collect())
            .collect();
        Table {
            columns,
            rows,
            truncated,
        }
    }

    /// `rows` in the order of `keys` (stable: ties keep their order; nulls last either way).
    fn sort_rows(&self, keys: &[SortKey], rows: Vec<Row>) -> Vec<Row> {
        let mut keyed: Vec<(Vec<Value>, Row)> = rows
            .into_iter()
            .map(|r| (keys.iter().map(|k| self.eval(&k.expr, &r)).collect(), r))
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, k) in keys.iter().enumerate() {
                let o = a[i].sort_cmp(&b[i]);
                // Nulls stay last in both directions.
                let o = if k.descending && !a[i].is_null() && !b[i].is_null() {
                    o.reverse()
                } else {
                    o
                };
                if o != std::cmp::Ordering::Equal {
                    return o;
                }
            }
            std::cmp::Ordering::Equal
        });
        keyed.into_iter().map(|(_, r)| r).collect()
    }

    fn note_columns(&self, c: &Command, columns: &mut Vec<String>, explicit: &mut bool) {
        match c {
            Command::Fields(v) => {
                for n in v {
                    let name = n.name().to_string();
                    if !columns.contains(&name) {
                        columns.push(name);
                    }
                }
                *explicit = true;
            }
            Command::Display(v) => {
                *columns = v.iter().map(|n| n.name().to_string()).collect();
                *explicit = true;
            }
            _ => {}
        }
    }

    /// Applies a row-at-a-time command; false drops the row.
    fn apply_streaming(&self, c: &Command, row: &mut Row) -> bool {
        match c {
            Command::Fields(v) | Command::Display(v) => {
                for n in v {
                    if n.alias.is_some() || !matches!(n.expr, Expr::Field { .. }) {
                        let val = self.eval(&n.expr, row);
                        row.set(n.name(), val);
                    }
                }
                true
            }
            Command::Filter(e) => self.eval(e, row).truthy(),
            Command::Parse { field, pattern } => {
                let text = self.eval(field, row);
                let (key, names) = match pattern {
                    ParsePattern::Glob { pattern, names } => (glob_to_regex(pattern), names),
                    ParsePattern::Regex { pattern, names } => (pattern.clone(), names),
                };
                let caps = match (&text, self.regexes.get(&key)) {
                    (Value::Null, _) | (_, None) => None,
                    (t, Some(re)) => re.captures(&t.text()).map(|c| {
                        let by_index = matches!(pattern, ParsePattern::Glob { .. });
                        names
                            .iter()
                            .enumerate()
                            .map(|(i, n)| {
                                let m = if by_index { c.get(i + 1) } else { c.name(n) };
                                m.map(|m| Value::Str(m.as_str().to_string()))
                                    .unwrap_or(Value::Null)
                            })
                            .collect::<Vec<_>>()
                    }),
                };
                for (i, n) in names.iter().enumerate() {
                    row.set(
                        n,
                        caps.as_ref().map(|c| c[i].clone()).unwrap_or(Value::Null),
                    );
                }
                true
            }
            _ => true,
        }
    }

    /// Evaluates an expression over a row (aggregates read as null here; see `StatsState`).
    pub fn eval(&self, e: &Expr, row: &Row) -> Value {
        self.eval_with(e, row, &mut |_| Value::Null)
    }

    fn eval_with(&self, e: &Expr, row: &Row, agg: &mut dyn FnMut(&Expr) -> Value) -> Value {
        match e {
            Expr::Field { name, .. } => row.get(name).clone(),
            Expr::Number(n) => Value::Num(*n),
            Expr::Str(s) => Value::Str(s.clone()),
            Expr::Regex(s) => Value::Str(s.clone()),
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Duration(ms) => Value::Num(*ms as f64),
            Expr::List(_) => Value::Null,
            Expr::Not(x) => {
                let v = self.eval_with(x, row, agg);
                Value::Bool(!v.truthy())
            }
            Expr::Neg(x) => match self.eval_with(x, row, agg).as_f64() {
                Some(n) => Value::Num(-n),
                None => Value::Null,
            },
            Expr::Binary { op, left, right } => self.binary(*op, left, right, row, agg),
            Expr::Call { name, args, .. } => {
                if AGGREGATES.contains(&name.as_str()) {
                    return agg(e);
                }
                let vals: Vec<Value> = args.iter().map(|a| self.eval_with(a, row, agg)).collect();
                call(name, args, &vals, row)
            }
        }
    }

    fn binary(
        &self,
        op: BinOp,
        left: &Expr,
        right: &Expr,
        row: &Row,
        agg: &mut dyn FnMut(&Expr) -> Value,
    ) -> Value {
        match op {
            BinOp::And => {
                let l = self.eval_with(left, row, agg).truthy();
                Value::Bool(l && self.eval_with(right, row, agg).truthy())
            }
            BinOp::Or => {
                let l = self.eval_with(left, row, agg).truthy();
                Value::Bool(l || self.eval_with(right, row, agg).truthy())
            }
            BinOp::In | BinOp::NotIn => {
                let l = self.eval_with(left, row, agg);
                let found = match right {
                    Expr::List(items) => items
                        .iter()
                        .any(|i| l.loose_eq(&self.eval_with(i, row, agg))),
                    _ => false,
                };
                Value::Bool(!l.is_null() && (found == (op == BinOp::In)))
            }
            BinOp::Like | BinOp::NotLike | BinOp::Matches => {
                let l = self.eval_with(left, row, agg);
                if l.is_null() {
                    return Value::Bool(false);
                }
                let text = l.text();
                let hit = match right {
                    Expr::Regex(p) => self.regexes.get(p).is_some_and(|re| re.is_match(&text)),
                    other => {
                        let pat = self.eval_with(other, row, agg);
                        if op == BinOp::Matches {
                            Regex::new(&pat.text()).is_ok_and(|re| re.is_match(&text))
                        } else {
                            text.contains(&pat.text())
                        }
                    }
                };
                Value::Bool(hit != (op == BinOp::NotLike))
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let l = self.eval_with(left, row, agg);
                let r = self.eval_with(right, row, agg);
                use std::cmp::Ordering::*;
                Value::Bool(match op {
                    BinOp::Eq => l.loose_eq(&r),
                    BinOp::Ne => !l.is_null() && !r.is_null() && !l.loose_eq(&r),
                    BinOp::Lt => l.compare(&r) == Some(Less),
                    BinOp::Le => matches!(l.compare(&r), Some(Less | Equal)),
                    BinOp::Gt => l.compare(&r) == Some(Greater),
                    _ => matches!(l.compare(&r), Some(Greater | Equal)),
                })
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Mod => {
                let l = self.eval_with(left, row, agg);
                let r = self.eval_with(right, row, agg);
                let (Some(a), Some(b)) = (l.as_f64(), r.as_f64()) else {
                    return Value::Null;
                };
                let n = match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div if b == 0.0 => return Value::Null,
                    BinOp::Div => a / b,
                    _ if b == 0.0 => return Value::Null,
                    _ => a % b,
                };
                // Time plus or minus a duration stays a time.
                match (&l, op) {
                    (Value::Time(_), BinOp::Add | BinOp::Sub) if !matches!(r, Value::Time(_)) => {
                        Value::Time(n as i64)
                    }
                    _ => Value::Num(n),
                }
            }
        }
    }
}

/// The non-aggregate functions.
fn call(name: &str, args: &[Expr], v: &[Value], row: &Row) -> Value {
    let num = |i: usize| v.get(i).and_then(Value::as_f64);
    let text = |i: usize| v.get(i).map(Value::text).unwrap_or_default();
    let time = |x: &Value| match x {
        Value::Time(t) => Some(*t),
        other => other.as_f64().map(|n| n as i64),
    };
    let duration = |i: usize| match args.get(i) {
        Some(Expr::Duration(ms)) => Some(*ms),
        _ => num(i).map(|n| n as i64),
    };
    match name {
        "abs" => num(0).map(|n| Value::Num(n.abs())).unwrap_or(Value::Null),
        "ceil" => num(0).map(|n| Value::Num(n.ceil())).unwrap_or(Value::Null),
        "floor" => num(0).map(|n| Value::Num(n.floor())).unwrap_or(Value::Null),
        "greatest" => v
            .iter()
            .filter_map(Value::as_f64)
            .reduce(f64::max)
            .map(Value::Num)
            .unwrap_or(Value::Null),
        "least" => v
            .iter()
            .filter_map(Value::as_f64)
            .reduce(f64::min)
            .map(Value::Num)
            .unwrap_or(Value::Null),
        "concat" => Value::Str(v.iter().map(Value::text).collect()),
        "strlen" if v[0].is_null() => Value::Null,
        "strlen" => Value::Num(text(0).chars().count() as f64),
        "toupper" if v[0].is_null() => Value::Null,
        "toupper" => Value::Str(text(0).to_uppercase()),
        "tolower" if v[0].is_null() => Value::Null,
        "tolower" => Value::Str(text(0).to_lowercase()),
        "trim" | "ltrim" | "rtrim" if v[0].is_null() => Value::Null,
        "trim" | "ltrim" | "rtrim" => {
            let s = text(0);
            let chars: Vec<char> = if v.len() > 1 {
                text(1).chars().collect()
            } else {
                Vec::new()
            };
            let pred = |c: char| {
                if chars.is_empty() {
                    c.is_whitespace()
                } else {
                    chars.contains(&c)
                }
            };
            Value::Str(match name {
                "trim" => s.trim_matches(pred).to_string(),
                "ltrim" => s.trim_start_matches(pred).to_string(),
                _ => s.trim_end_matches(pred).to_string(),
            })
        }
        "substr" if v[0].is_null() => Value::Null,
        "substr" => {
            let s: Vec<char> = text(0).chars().collect();
            let start = num(1).unwrap_or(0.0).max(0.0) as usize;
            let len = num(2).map(|n| n.max(0.0) as usize).unwrap_or(usize::MAX);
            Value::Str(s.iter().skip(start).take(len).collect())
        }
        "replace" if v[0].is_null() => Value::Null,
        "replace" => Value::Str(text(0).replace(&text(1), &text(2))),
        "strcontains" if v[0].is_null() => Value::Null,
        "strcontains" => Value::Bool(text(0).contains(&text(1))),
        "ispresent" => Value::Bool(!v[0].is_null()),
        "isempty" => Value::Bool(v[0].is_null() || text(0).is_empty()),
        "isblank" => Value::Bool(v[0].is_null() || text(0).trim().is_empty()),
        "coalesce" => v
            .iter()
            .find(|x| !x.is_null())
            .cloned()
            .unwrap_or(Value::Null),
        "datefloor" | "dateceil" => match (time(&v[0]), duration(1)) {
            (Some(t), Some(d)) if d > 0 => {
                let f = t.div_euclid(d) * d;
                Value::Time(if name == "dateceil" && f != t {
                    f + d
                } else {
                    f
                })
            }
            _ => Value::Null,
        },
        "bin" => match (time(row.get("@timestamp")), duration(0)) {
            (Some(t), Some(d)) if d > 0 => Value::Time(t.div_euclid(d) * d),
            _ => Value::Null,
        },
        "frommillis" => num(0).map(|n| Value::Time(n as i64)).unwrap_or(Value::Null),
        "tomillis" => time(&v[0])
            .map(|t| Value::Num(t as f64))
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// `'user=*, model=*'` -> a regex whose groups are the stars (lazy, the last one greedy).
fn glob_to_regex(glob: &str) -> String {
    let parts: Vec<&str> = glob.split('*').collect();
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        out.push_str(&regex::escape(p));
        if i + 1 < parts.len() {
            out.push_str(if i + 2 == parts.len() && parts[i + 1].is_empty() {
                "(.*)"
            } else {
                "(.*?)"
            });
        }
    }
    out
}

/// True when every field of `e` is inside an aggregate call (so the expression is a function
/// of the aggregates alone, as `sum(a) / count(*)` is).
fn aggregate_args_only(e: &Expr) -> bool {
    match e {
        Expr::Call { name, .. } if AGGREGATES.contains(&name.as_str()) => true,
        Expr::Field { .. } => false,
        Expr::Not(x) | Expr::Neg(x) => aggregate_args_only(x),
        Expr::Binary { left, right, .. } => aggregate_args_only(left) && aggregate_args_only(right),
        Expr::Call { args, .. } | Expr::List(args) => args.iter().all(aggregate_args_only),
        _ => true,
    }
}

/// Adds the fields `e` reads (and that `defined` does not hold) to `out`.
fn read_fields(e: &Expr, defined: &HashSet<String>, out: &mut BTreeSet<String>) {
    let _ = visit(e, &mut |x| {
        match x {
            Expr::Field { name, .. } if !defined.contains(name) => {
                out.insert(name.clone());
            }
            Expr::Call { name, .. } if name == "bin" || name == "earliest" || name == "latest" => {
                out.insert("@timestamp".to_string());
            }
            _ => {}
        }
        Ok(())
    });
}

fn split_and<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match e {
        Expr::Binary {
            op: BinOp::And,
            left,
            right,
        } => {
            split_and(left, out);
            split_and(right, out);
        }
        e => out.push(e),
    }
}

/// See [`Plan::shape`].
pub struct Shape<'p> {
    /// The conjuncts of the filters the query starts with: a row is kept only if each is true.
    pub conjuncts: Vec<&'p Expr>,
    /// Between those filters and the first barrier there are only `fields` and `display`: the
    /// conjuncts alone decide which rows reach the barrier.
    pub simple: bool,
    /// Names those `fields` and `display` define (an alias, or an expression's text).
    pub defined: HashSet<String>,
    pub barrier: Barrier<'p>,
}

/// The first command that needs more than one row at a time.
pub enum Barrier<'p> {
    /// A `stats`: rows that read alike can be counted together ([`Execution::push_repeated`]).
    Stats,
    /// A `sort` whose first `n` rows are shown.
    Sort { keys: &'p [SortKey], n: usize },
    /// No more than this many rows are needed.
    Limit(usize),
    /// A `dedup`.
    Other,
}

fn visit<'e>(
    e: &'e Expr,
    f: &mut dyn FnMut(&'e Expr) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    f(e)?;
    match e {
        Expr::Not(x) | Expr::Neg(x) => visit(x, f),
        Expr::Binary { left, right, .. } => {
            visit(left, f)?;
            visit(right, f)
        }
        Expr::Call { args, .. } | Expr::List(args) => args.iter().try_for_each(|a| visit(a, f)),
        _ => Ok(()),
    }
}

/// A run in progress: the streaming commands applied to each row as it comes, the first
/// command that needs every row fed as they pass.
pub struct Execution<'p> {
    plan: &'p Plan,
    barrier: usize,
    columns: Vec<String>,
    explicit_columns: bool,
    stats: Option<StatsState<'p>>,
    early_limit: Option<usize>,
    /// `sort` keys and how many rows of that order can be shown (see [`Plan::start`]).
    top: Option<(&'p Vec<SortKey>, usize)>,
    /// Rows were dropped by `top`.
    pruned: bool,
    collected: Vec<Row>,
}

impl Execution<'_> {
    /// Takes one row; `false` when no more rows can change the result (a `limit` is full).
    pub fn push(&mut self, mut row: Row) -> bool {
        let plan = self.plan;
        for c in &plan.query.commands[..self.barrier] {
            if !plan.apply_streaming(c, &mut row) {
                return true;
            }
        }
        match &mut self.stats {
            Some(s) => s.add(plan, &row, 1, true),
            None => {
                self.collected.push(row);
                if self.early_limit.is_some_and(|n| self.collected.len() >= n) {
                    return false;
                }
                if let Some((keys, n)) = self.top {
                    // Sorting and cutting at twice N keeps memory flat and costs O(log N) a row.
                    if self.collected.len() >= n.saturating_mul(2).saturating_add(1024) {
                        let rows = std::mem::take(&mut self.collected);
                        self.collected = plan.sort_rows(keys, rows);
                        self.collected.truncate(n);
                        self.pruned = true;
                    }
                }
            }
        }
        true
    }

    /// Rows held now (for tests of memory bounds).
    pub fn held(&self) -> usize {
        self.collected.len()
    }

    /// Takes a pre-aggregated row standing for `weight` events. Only for a plan whose
    /// [`Plan::additive_stats`] accepted the row's fields: its prefix is filters and its first
    /// barrier a `stats` of additive aggregates.
    pub fn push_weighted(&mut self, mut row: Row, weight: u64) {
        let plan = self.plan;
        for c in &plan.query.commands[..self.barrier] {
            if !plan.apply_streaming(c, &mut row) {
                return;
            }
        }
        if let Some(s) = &mut self.stats {
            s.add(plan, &row, weight, false);
        }
    }

    /// Takes a row that `times` events share exactly (every field the query reads is equal):
    /// what pushing it `times` times would give. With a `stats` as the first barrier (see
    /// [`Plan::shape`]) the row is counted once with its multiplicity; otherwise it is pushed
    /// `times` times.
    pub fn push_repeated(&mut self, mut row: Row, times: u64) -> bool {
        if self.stats.is_none() {
            for _ in 1..times {
                if !self.push(row.clone()) {
                    return false;
                }
            }
            return times == 0 || self.push(row);
        }
        let plan = self.plan;
        for c in &plan.query.commands[..self.barrier] {
            if !plan.apply_streaming(c, &mut row) {
                return true;
            }
        }
        if let Some(s) = &mut self.stats {
            s.add(plan, &row, times, true);
        }
        true
    }

    pub fn finish(self) -> Table {
        self.plan.finish_run(self)
    }
}

/// One aggregate's running state.
enum AggState {
    Count {
        star: bool,
        n: u64,
    },
    Distinct(HashSet<String>),
    /// Compensated (Neumaier) sums: nearly independent of the order of the events.
    Sum(Option<(f64, f64)>),
    Avg((f64, f64), u64),
    Min(Option<Value>),
    Max(Option<Value>),
    /// Values with how many events had each.
    Pct(Vec<(f64, u64)>, f64),
    Stddev {
        n: u64,
        mean: f64,
        m2: f64,
    },
    Earliest(Option<(i64, Value)>),
    Latest(Option<(i64, Value)>),
}

impl AggState {
    fn new(call: &Expr) -> AggState {
        let Expr::Call { name, args, .. } = call else {
            return AggState::Count { star: true, n: 0 };
        };
        match name.as_str() {
            "count" => AggState::Count {
                star: args.is_empty(),
                n: 0,
            },
            "count_distinct" => AggState::Distinct(HashSet::new()),
            "sum" => AggState::Sum(None),
            "avg" => AggState::Avg((0.0, 0.0), 0),
            "min" => AggState::Min(None),
            "max" => AggState::Max(None),
            "pct" => AggState::Pct(
                Vec::new(),
                match args.get(1) {
                    Some(Expr::Number(p)) => *p,
                    _ => 50.0,
                },
            ),
            "stddev" => AggState::Stddev {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            },
            "earliest" => AggState::Earliest(None),
            _ => AggState::Latest(None),
        }
    }

    /// Adds `v` for `weight` events: a pre-aggregated row's sum (`repeated` false: sums are
    /// added once, counts by `weight`) or `weight` events that all had `v` (`repeated`).
    fn add(&mut self, v: Value, ts: Option<i64>, weight: u64, repeated: bool) {
        // Sums and running moments take the value once per event, in the order events give,
        // so that repeated rows give exactly what the events one by one would.
        let times = if repeated { weight } else { 1 };
        match self {
            AggState::Count { star: true, n } => *n += weight,
            AggState::Count { n, .. } => *n += if v.is_null() { 0 } else { weight },
            AggState::Distinct(set) => {
                if !v.is_null() {
                    set.insert(v.key());
                }
            }
            AggState::Sum(s) => {
                if let Some(x) = v.as_f64() {
                    let acc = s.get_or_insert((0.0, 0.0));
                    for _ in 0..times {
                        neumaier(acc, x);
                    }
                }
            }
            AggState::Avg(s, n) => {
                if let Some(x) = v.as_f64() {
                    for _ in 0..times {
                        neumaier(s, x);
                    }
                    *n += weight;
                }
            }
            AggState::Min(m) => {
                if !v.is_null()
                    && m.as_ref()
                        .is_none_or(|cur| v.compare(cur) == Some(std::cmp::Ordering::Less))
                {
                    *m = Some(v);
                }
            }
            AggState::Max(m) => {
                if !v.is_null()
                    && m.as_ref()
                        .is_none_or(|cur| v.compare(cur) == Some(std::cmp::Ordering::Greater))
                {
                    *m = Some(v);
                }
            }
            AggState::Pct(vals, _) => {
                if let Some(x) = v.as_f64() {
                    vals.push((x, times));
                }
            }
            AggState::Stddev { n, mean, m2 } => {
                if let Some(x) = v.as_f64() {
                    for _ in 0..times {
                        *n += 1;
                        let d = x - *mean;
                        *mean += d / *n as f64;
                        *m2 += d * (x - *mean);
                    }
                }
            }
            AggState::Earliest(e) => {
                if let (Some(t), false) = (ts, v.is_null()) {
                    if e.as_ref().is_none_or(|(et, _)| t < *et) {
                        *e = Some((t, v));
                    }
                }
            }
            AggState::Latest(e) => {
                if let (Some(t), false) = (ts, v.is_null()) {
                    if e.as_ref().is_none_or(|(et, _)| t >= *et) {
                        *e = Some((t, v));
                    }
                }
            }
        }
    }

    fn finish(&mut self) -> Value {
        match self {
            AggState::Count { n, .. } => Value::Num(*n as f64),
            AggState::Distinct(s) => Value::Num(s.len() as f64),
            AggState::Sum(s) => s.map(|(sum, c)| Value::Num(sum + c)).unwrap_or(Value::Null),
            AggState::Avg((sum, c), n) => {
                if *n == 0 {
                    Value::Null
                } else {
                    Value::Num((*sum + *c) / *n as f64)
                }
            }
            AggState::Min(m) | AggState::Max(m) => m.clone().unwrap_or(Value::Null),
            AggState::Pct(vals, p) => {
                if vals.is_empty() {
                    return Value::Null;
                }
                vals.sort_by(|a, b| a.0.total_cmp(&b.0));
                // Nearest rank, counting each value as often as events had it.
                let total: u64 = vals.iter().map(|v| v.1).sum();
                let rank = (((*p / 100.0) * total as f64).ceil().max(1.0) as u64).min(total);
                let mut seen = 0;
                for (x, n) in vals.iter() {
                    seen += n;
                    if seen >= rank {
                        return Value::Num(*x);
                    }
                }
                Value::Null
            }
            AggState::Stddev { n, m2, .. } => {
                if *n < 2 {
                    Value::Null
                } else {
                    Value::Num((*m2 / (*n - 1) as f64).sqrt())
                }
            }
            AggState::Earliest(e) | AggState::Latest(e) => {
                e.as_ref().map(|(_, v)| v.clone()).unwrap_or(Value::Null)
            }
        }
    }
}

/// Adds `x` to a compensated sum `(sum, compensation)`.
fn neumaier(acc: &mut (f64, f64), x: f64) {
    let (sum, c) = *acc;
    let t = sum + x;
    let c = if sum.abs() >= x.abs() {
        c + ((sum - t) + x)
    } else {
        c + ((x - t) + sum)
    };
    *acc = (t, c);
}

/// `stats`: groups by the `by` values; each group keeps one state per aggregate call.
struct StatsState<'q> {
    aggregates: &'q [Named],
    by: &'q [Named],
    calls: Vec<&'q Expr>,
    groups: HashMap<Vec<String>, (Vec<Value>, Vec<AggState>)>,
}

impl<'q> StatsState<'q> {
    fn new(aggregates: &'q [Named], by: &'q [Named]) -> StatsState<'q> {
        let mut calls = Vec::new();
        for n in aggregates {
            let _ = visit(&n.expr, &mut |x| {
                if let Expr::Call { name, .. } = x {
                    if AGGREGATES.contains(&name.as_str()) {
                        calls.push(x);
                    }
                }
                Ok(())
            });
        }
        StatsState {
            aggregates,
            by,
            calls,
            groups: HashMap::new(),
        }
    }

    /// Adds a row standing for `weight` events (1, or the number of calls a pre-aggregated row
    /// sums, whose additive fields hold sums: see [`Plan::additive_stats`]).
    fn add(&mut self, plan: &Plan, row: &Row, weight: u64, repeated: bool) {
        let keys: Vec<Value> = self.by.iter().map(|b| plan.eval(&b.expr, row)).collect();
        let k: Vec<String> = keys.iter().map(Value::key).collect();
        let calls = &self.calls;
        let entry = self
            .groups
            .entry(k)
            .or_insert_with(|| (keys, calls.iter().map(|c| AggState::new(c)).collect()));
        let ts = match row.get("@timestamp") {
            Value::Time(t) => Some(*t),
            other => other.as_f64().map(|n| n as i64),
        };
        for (call, state) in self.calls.iter().zip(entry.1.iter_mut()) {
            let Expr::Call { args, .. } = call else {
                continue;
            };
            let v = match args.first() {
                Some(a) => plan.eval(a, row),
                None => Value::Null,
            };
            state.add(v, ts, weight, repeated);
        }
    }

    /// The result rows, sorted by their group values.
    fn finish(self, plan: &Plan) -> (Vec<String>, Vec<Row>) {
        let mut columns: Vec<String> = self.by.iter().map(|b| b.name().to_string()).collect();
        columns.extend(self.aggregates.iter().map(|a| a.name().to_string()));
        let mut groups: Vec<(Vec<Value>, Vec<AggState>)> = self.groups.into_values().collect();
        // A stats without `by` over no rows still gives one row (count 0).
        if groups.is_empty() && self.by.is_empty() {
            groups.push((
                Vec::new(),
                self.calls.iter().map(|c| AggState::new(c)).collect(),
            ));
        }
        groups.sort_by(|a, b| {
            a.0.iter()
                .zip(&b.0)
                .map(|(x, y)| x.sort_cmp(y))
                .find(|o| *o != std::cmp::Ordering::Equal)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let rows = groups
            .into_iter()
            .map(|(keys, mut states)| {
                let results: Vec<Value> = states.iter_mut().map(AggState::finish).collect();
                let mut row = Row::default();
                for (b, v) in self.by.iter().zip(keys) {
                    row.set(b.name(), v);
                }
                let mut i = 0;
                for a in self.aggregates {
                    let v = plan.eval_with(&a.expr, &row, &mut |_| {
                        let v = results.get(i).cloned().unwrap_or(Value::Null);
                        i += 1;
                        v
                    });
                    row.set(a.name(), v);
                }
                row
            })
            .collect();
        (columns, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse_query;

    fn rows() -> Vec<Row> {
        let mk = |ts: i64,
                  arn: &str,
                  model: &str,
                  input: f64,
                  output: Option<f64>,
                  dev: Option<&str>| {
            let mut r = Row::default();
            r.set("@timestamp", Value::Time(ts));
            r.set("identity.arn", Value::Str(arn.into()));
            r.set("modelId", Value::Str(model.into()));
            r.set("input.inputTokenCount", Value::Num(input));
            if let Some(o) = output {
                r.set("output.outputTokenCount", Value::Num(o));
            }
            if let Some(d) = dev {
                r.set("requestMetadata.developer", Value::Str(d.into()));
            }
            r
        };
        vec![
            mk(
                1_000,
                "arn:aws:iam::1:user/alice",
                "us.anthropic.claude-sonnet-4-5",
                10.0,
                Some(1.0),
                None,
            ),
            mk(
                2_000,
                "arn:aws:iam::1:user/alice",
                "anthropic.claude-3-haiku",
                20.0,
                Some(2.0),
                None,
            ),
            mk(
                400_000,
                "arn:aws:sts::1:assumed-role/r/i-1",
                "us.anthropic.claude-sonnet-4-5",
                30.0,
                None,
                Some("carol"),
            ),
            mk(
                700_000,
                "arn:aws:sts::1:assumed-role/r/i-1",
                "us.anthropic.claude-sonnet-4-5",
                40.0,
                Some(4.0),
                Some("erin"),
            ),
        ]
    }

    #[test]
    fn sort_then_limit_keeps_the_top_rows_only_and_answers_as_a_full_sort() {
        // 50,000 rows, keys with many ties and some nulls, in a scrambled order.
        let many: Vec<Row> = (0..50_000u64)
            .map(|i| {
                let k = (i * 7919) % 50_000;
                let mut r = Row::default();
                r.set("@timestamp", Value::Time((k / 3) as i64));
                r.set("requestId", Value::Str(format!("r{k}")));
                if k % 11 != 0 {
                    r.set("output.outputTokenCount", Value::Num((k % 97) as f64));
                }
                r
            })
            .collect();
        for (q, limit) in [
            ("sort @timestamp desc | limit 20", DEFAULT_LIMIT),
            (
                "sort output.outputTokenCount desc, @timestamp | limit 7",
                DEFAULT_LIMIT,
            ),
            (
                "filter output.outputTokenCount > 50 | sort output.outputTokenCount | limit 1",
                DEFAULT_LIMIT,
            ),
            ("sort @timestamp", 1_000),
        ] {
            let plan = Plan::new(parse_query(q).expect("query"), limit).expect("plan");
            let mut e = plan.start();
            let mut most = 0;
            for r in many.iter().cloned() {
                e.push(r);
                most = most.max(e.held());
            }
            let got = e.finish();
            // The same query with nothing dropped early: a sort of every row, then the cut.
            let all = Plan::new(parse_query(q).expect("query"), usize::MAX).expect("plan");
            let mut want = all.run(many.iter().cloned());
            if limit < want.rows.len() && !q.contains("limit") {
                want.rows.truncate(limit);
                want.truncated = true;
            }
            assert_eq!(got, want, "{q}");
            assert!(
                most <= 2 * limit.min(20) + 1024 || most <= 2 * limit + 1024,
                "{q}: held {most}"
            );
            assert!(most < 25_000, "{q}: held {most} rows");
        }
    }

    fn run(q: &str) -> Table {
        let plan = Plan::new(
            parse_query(q).unwrap_or_else(|e| panic!("{}", e.render(q))),
            DEFAULT_LIMIT,
        )
        .expect("plan");
        plan.run(rows())
    }

    fn cells(t: &Table) -> Vec<Vec<String>> {
        t.rows
            .iter()
            .map(|r| r.iter().map(|v| v.to_string()).collect())
            .collect()
    }

    #[test]
    fn stats_by_with_nulls_and_arithmetic() {
        let t = run("stats count(*) as n, count(output.outputTokenCount) as with_output, sum(output.outputTokenCount) as out, sum(input.inputTokenCount) / count(*) as mean by identity.arn");
        assert_eq!(
            t.columns,
            ["identity.arn", "n", "with_output", "out", "mean"]
        );
        assert_eq!(
            cells(&t),
            [
                ["arn:aws:iam::1:user/alice", "2", "2", "3", "15"],
                ["arn:aws:sts::1:assumed-role/r/i-1", "2", "1", "4", "35"]
            ]
        );
    }

    #[test]
    fn filters_like_in_and_null_comparisons() {
        assert_eq!(
            run("filter modelId like /sonnet/ | stats count(*)").rows[0][0],
            Value::Num(3.0)
        );
        assert_eq!(
            run("filter modelId like 'haiku' | stats count(*)").rows[0][0],
            Value::Num(1.0)
        );
        assert_eq!(
            run("filter modelId not like 'haiku' | stats count(*)").rows[0][0],
            Value::Num(3.0)
        );
        // A missing field compares false both ways.
        assert_eq!(run("filter output.outputTokenCount > 0 or output.outputTokenCount <= 0 | stats count(*)").rows[0][0], Value::Num(3.0));
        assert_eq!(
            run("filter requestMetadata.developer in ['carol', 'x'] | stats count(*)").rows[0][0],
            Value::Num(1.0)
        );
        assert_eq!(
            run("filter not ispresent(requestMetadata.developer) | stats count(*)").rows[0][0],
            Value::Num(2.0)
        );
        assert_eq!(
            run("filter input.inputTokenCount = '20' | stats count(*)").rows[0][0],
            Value::Num(1.0)
        );
    }

    #[test]
    fn bins_sort_limit_dedup_fields() {
        let t = run("stats sum(input.inputTokenCount) as s by bin(5m) as t | sort t desc");
        assert_eq!(
            cells(&t),
            [
                ["1970-01-01 00:10:00.000", "40"],
                ["1970-01-01 00:05:00.000", "30"],
                ["1970-01-01 00:00:00.000", "30"]
            ]
        );
        let t = run(
            "fields identity.arn, input.inputTokenCount * 2 as double | sort double desc | limit 2",
        );
        assert_eq!(
            cells(&t),
            [
                ["arn:aws:sts::1:assumed-role/r/i-1", "80"],
                ["arn:aws:sts::1:assumed-role/r/i-1", "60"]
            ]
        );
        let t = run("dedup identity.arn | fields identity.arn");
        assert_eq!(t.rows.len(), 2);
        let t = run("fields toupper(substr(modelId, 0, 2)) as p, concat(modelId, '!') as c, strlen(modelId) as l, coalesce(requestMetadata.developer, 'none') as d | limit 1");
        assert_eq!(
            cells(&t),
            [["US", "us.anthropic.claude-sonnet-4-5!", "30", "none"]]
        );
    }

    #[test]
    fn parse_glob_and_regex() {
        let t = run("parse identity.arn 'assumed-role/*/*' as role, session | filter ispresent(role) | stats count(*) by role, session");
        assert_eq!(cells(&t), [["r", "i-1", "2"]]);
        let t = run("parse modelId /claude-(?<family>[a-z]+)/ | stats count(*) by family");
        // The haiku id (`claude-3-haiku`) does not match: its group is null, sorted last.
        assert_eq!(cells(&t), [["sonnet", "3"], ["", "1"]]);
    }

    #[test]
    fn aggregates() {
        let t = run("stats min(input.inputTokenCount), max(input.inputTokenCount), avg(input.inputTokenCount), pct(input.inputTokenCount, 50), stddev(input.inputTokenCount), count_distinct(modelId), earliest(modelId), latest(requestMetadata.developer)");
        assert_eq!(
            cells(&t)[0][..6],
            ["10", "40", "25", "20", "12.9099444874", "2"]
        );
        assert_eq!(
            cells(&t)[0][6..],
            ["us.anthropic.claude-sonnet-4-5", "erin"]
        );
        // Over no rows: one row, count 0, sum null.
        let t = run("filter modelId = 'none' | stats count(*), sum(input.inputTokenCount)");
        assert_eq!(t.rows, [[Value::Num(0.0), Value::Null]]);
    }

    #[test]
    fn pre_aggregated_rows_give_the_same_stats() {
        let dims = ["identity.arn", "modelId"];
        let additive = ["input.inputTokenCount"];
        let q = "filter modelId like /sonnet/ | stats count(*) as n, sum(input.inputTokenCount) as s, avg(input.inputTokenCount) as a by identity.arn | sort n";
        let plan = Plan::new(parse_query(q).expect("q"), DEFAULT_LIMIT).expect("plan");
        assert_eq!(plan.additive_stats(&dims, &additive), Some(i64::MAX));
        let per_event = plan.run(rows());
        // The same events, pre-aggregated by (arn, model).
        let mut exec = plan.start();
        let mut grouped: HashMap<(String, String), (f64, u64)> = HashMap::new();
        for r in rows() {
            let e = grouped
                .entry((r.get("identity.arn").text(), r.get("modelId").text()))
                .or_default();
            e.0 += r.get("input.inputTokenCount").as_f64().unwrap_or(0.0);
            e.1 += 1;
        }
        for ((arn, model), (sum, n)) in grouped {
            let mut r = Row::default();
            r.set("identity.arn", Value::Str(arn));
            r.set("modelId", Value::Str(model));
            r.set("input.inputTokenCount", Value::Num(sum));
            exec.push_weighted(r, n);
        }
        assert_eq!(exec.finish(), per_event);
        // What cannot run over sums is refused.
        for q in [
            "stats max(input.inputTokenCount)",
            "filter input.inputTokenCount > 5 | stats count(*)",
            "fields x | stats count(*)",
            "stats count(*) by requestId",
            "stats sum(output.outputTokenCount)",
        ] {
            let plan = Plan::new(parse_query(q).expect("q"), DEFAULT_LIMIT).expect("plan");
            assert_eq!(plan.additive_stats(&dims, &additive), None, "{q}");
        }
        let plan = Plan::new(
            parse_query("stats count(*) by bin(1h), bin(1d)").expect("q"),
            DEFAULT_LIMIT,
        )
        .expect("plan");
        assert_eq!(plan.additive_stats(&dims, &additive), Some(3_600_000));
    }

    #[test]
    fn default_columns_limit_and_input_fields() {
        let q =
            parse_query("filter x > 1 | fields a, b + c as d | stats sum(d) by a | filter a = 'z'")
                .expect("parse");
        let plan = Plan::new(q, 2).expect("plan");
        assert_eq!(
            plan.input_fields().into_iter().collect::<Vec<_>>(),
            ["a", "b", "c", "x"]
        );
        let t = Plan::new(parse_query("filter ispresent(modelId)").expect("q"), 2)
            .expect("plan")
            .run(rows());
        assert_eq!(t.columns, ["@timestamp", "@message"]);
        assert!(t.truncated && t.rows.len() == 2);
    }
}
