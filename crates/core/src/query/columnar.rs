//! Queries over stored calls kept column by column (the store's segments): which columns a
//! query reads, the rows its leading filters keep (each conjunct that reads one column is
//! decided once per distinct value of that column, not once per row), and what reaches the
//! plan: for a `stats`, one row per distinct combination of the columns read with how many
//! calls share it ([`Execution::push_repeated`](super::Execution::push_repeated)); for
//! `sort <column> | limit N`, only the rows that can be among the first N; otherwise the rows.
//! The answer is the one the same calls give row by row: every row handed on is a real stored
//! call, and the plan still runs every command over it.
//!
//! Columns are read and written here too ([`ColumnData::encode`], [`ColumnData::decode`]);
//! files, freshness and threads are the store's business.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use super::eval::{Barrier, Plan};
use super::rows::StoreRows;
use super::Expr;
use crate::attribution::Identity;
use crate::facts::StoredInvocation;

/// The columns of a stored call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// The store's id of the call: the order calls were stored in.
    Seq,
    Ts,
    RequestId,
    Identity,
    Model,
    Account,
    Region,
    InferenceRegion,
    Operation,
    ErrorCode,
    Metadata,
    Input,
    Output,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
}

pub const COLUMNS: [Column; 16] = [
    Column::Seq,
    Column::Ts,
    Column::RequestId,
    Column::Identity,
    Column::Model,
    Column::Account,
    Column::Region,
    Column::InferenceRegion,
    Column::Operation,
    Column::ErrorCode,
    Column::Metadata,
    Column::Input,
    Column::Output,
    Column::CacheRead,
    Column::CacheWrite5m,
    Column::CacheWrite1h,
];

/// How a column holds its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Epoch milliseconds, one per row.
    Time,
    /// A text per row (request ids: every one different).
    Text,
    /// The store's id of an identity or a model.
    Id,
    /// Few distinct texts (or none): a code per row into a table of values.
    Dict,
    /// A token count.
    Count,
}

impl Column {
    pub fn name(self) -> &'static str {
        match self {
            Column::Seq => "id",
            Column::Ts => "ts_ms",
            Column::RequestId => "request_id",
            Column::Identity => "identity_id",
            Column::Model => "model_ref",
            Column::Account => "account_id",
            Column::Region => "region",
            Column::InferenceRegion => "inference_region",
            Column::Operation => "operation",
            Column::ErrorCode => "error_code",
            Column::Metadata => "request_metadata",
            Column::Input => "input_tokens",
            Column::Output => "output_tokens",
            Column::CacheRead => "cache_read_tokens",
            Column::CacheWrite5m => "cache_write_5m_tokens",
            Column::CacheWrite1h => "cache_write_1h_tokens",
        }
    }

    pub fn from_name(name: &str) -> Option<Column> {
        COLUMNS.into_iter().find(|c| c.name() == name)
    }

    pub fn kind(self) -> Kind {
        match self {
            Column::Seq | Column::Ts => Kind::Time,
            Column::RequestId => Kind::Text,
            Column::Identity | Column::Model => Kind::Id,
            Column::Account
            | Column::Region
            | Column::InferenceRegion
            | Column::Operation
            | Column::ErrorCode
            | Column::Metadata => Kind::Dict,
            _ => Kind::Count,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A set of columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnSet(u32);

impl ColumnSet {
    pub const ALL: ColumnSet = ColumnSet((1 << COLUMNS.len()) - 1);

    pub fn of(cols: &[Column]) -> ColumnSet {
        let mut s = ColumnSet::default();
        for c in cols {
            s.insert(*c);
        }
        s
    }
    pub fn insert(&mut self, c: Column) {
        self.0 |= 1 << c.index();
    }
    pub fn contains(self, c: Column) -> bool {
        self.0 & (1 << c.index()) != 0
    }
    pub fn union(self, o: ColumnSet) -> ColumnSet {
        ColumnSet(self.0 | o.0)
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn iter(self) -> impl Iterator<Item = Column> {
        COLUMNS.into_iter().filter(move |c| self.contains(*c))
    }
}

const TOKENS: [Column; 5] = [
    Column::Input,
    Column::Output,
    Column::CacheRead,
    Column::CacheWrite5m,
    Column::CacheWrite1h,
];

/// The columns a field of a stored-call row ([`StoreRows::invocation`]) is made from; none for
/// the fields every call has alike and for fields a stored call does not have.
pub fn field_columns(name: &str) -> ColumnSet {
    use Column as C;
    match name {
        "@timestamp" | "timestamp" => ColumnSet::of(&[C::Ts]),
        "@message" => ColumnSet::ALL,
        "@log" | "accountId" => ColumnSet::of(&[C::Account]),
        "identity.arn" | "developer" | "team" | "cost_center" => ColumnSet::of(&[C::Identity]),
        "region" => ColumnSet::of(&[C::Region]),
        "inferenceRegion" => ColumnSet::of(&[C::InferenceRegion]),
        "requestId" => ColumnSet::of(&[C::RequestId]),
        "operation" => ColumnSet::of(&[C::Operation]),
        "modelId" | "model" => ColumnSet::of(&[C::Model]),
        "errorCode" => ColumnSet::of(&[C::ErrorCode]),
        "input.inputTokenCount" => ColumnSet::of(&[C::Input]),
        "output.outputTokenCount" => ColumnSet::of(&[C::Output]),
        "input.cacheReadInputTokenCount" => ColumnSet::of(&[C::CacheRead]),
        "cache_write_5m_tokens" => ColumnSet::of(&[C::CacheWrite5m]),
        "cache_write_1h_tokens" => ColumnSet::of(&[C::CacheWrite1h]),
        "input.cacheWriteInputTokenCount" => ColumnSet::of(&[C::CacheWrite5m, C::CacheWrite1h]),
        "cost_usd" => ColumnSet::of(&[C::Model, C::Region, C::Ts]).union(ColumnSet::of(&TOKENS)),
        n if n.starts_with("requestMetadata.") => ColumnSet::of(&[C::Metadata]),
        _ => ColumnSet::default(),
    }
}

/// Integers of a column, as narrow as they fit.
#[derive(Debug, Clone, PartialEq)]
pub enum Ints {
    I64(Vec<i64>),
    U32(Vec<u32>),
    U64(Vec<u64>),
}

impl Ints {
    pub fn len(&self) -> usize {
        match self {
            Ints::I64(v) => v.len(),
            Ints::U32(v) => v.len(),
            Ints::U64(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The value of row `i` (an `i64` as its bits).
    #[inline]
    pub fn get(&self, i: usize) -> u64 {
        match self {
            Ints::I64(v) => v[i] as u64,
            Ints::U32(v) => v[i] as u64,
            Ints::U64(v) => v[i],
        }
    }
}

/// One column of a segment.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Ints(Ints),
    /// `codes[i]` is row i's index into `values` (`None`: the call has no such value).
    Dict {
        codes: Vec<u32>,
        values: Vec<Option<String>>,
    },
    /// Row i is `bytes[offsets[i]..offsets[i + 1]]`.
    Text {
        offsets: Vec<u32>,
        bytes: Vec<u8>,
    },
}

const TAG_I64: u8 = 1;
const TAG_U32: u8 = 2;
const TAG_U64: u8 = 3;
const TAG_DICT: u8 = 4;
const TAG_TEXT: u8 = 5;

impl ColumnData {
    pub fn rows(&self) -> usize {
        match self {
            ColumnData::Ints(v) => v.len(),
            ColumnData::Dict { codes, .. } => codes.len(),
            ColumnData::Text { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// The column as bytes: a tag, then little-endian values (see [`ColumnData::decode`]).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let u64s = |out: &mut Vec<u8>, v: &mut dyn Iterator<Item = u64>, n: usize| {
            out.extend_from_slice(&(n as u64).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        let u32s = |out: &mut Vec<u8>, v: &[u32]| {
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        };
        match self {
            ColumnData::Ints(Ints::I64(v)) => {
                out.push(TAG_I64);
                u64s(out, &mut v.iter().map(|x| *x as u64), v.len());
            }
            ColumnData::Ints(Ints::U64(v)) => {
                out.push(TAG_U64);
                u64s(out, &mut v.iter().copied(), v.len());
            }
            ColumnData::Ints(Ints::U32(v)) => {
                out.push(TAG_U32);
                u32s(out, v);
            }
            ColumnData::Dict { codes, values } => {
                out.push(TAG_DICT);
                out.extend_from_slice(&(values.len() as u64).to_le_bytes());
                for v in values {
                    match v {
                        None => out.push(0),
                        Some(s) => {
                            out.push(1);
                            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                            out.extend_from_slice(s.as_bytes());
                        }
                    }
                }
                u32s(out, codes);
            }
            ColumnData::Text { offsets, bytes } => {
                out.push(TAG_TEXT);
                u32s(out, offsets);
                out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                out.extend_from_slice(bytes);
            }
        }
    }

    /// Reads a column [`ColumnData::encode`] wrote; what is wrong says where.
    pub fn decode(b: &[u8]) -> Result<ColumnData, String> {
        let mut r = Reader { b, at: 0 };
        let tag = r.u8()?;
        let col = match tag {
            TAG_I64 => {
                ColumnData::Ints(Ints::I64(r.u64s()?.into_iter().map(|x| x as i64).collect()))
            }
            TAG_U64 => ColumnData::Ints(Ints::U64(r.u64s()?)),
            TAG_U32 => ColumnData::Ints(Ints::U32(r.u32s()?)),
            TAG_DICT => {
                let n = r.len(1)?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    values.push(match r.u8()? {
                        0 => None,
                        _ => {
                            let len = r.u32()? as usize;
                            let s = std::str::from_utf8(r.take(len)?)
                                .map_err(|_| format!("a value at byte {} is not UTF-8", r.at))?;
                            Some(s.to_string())
                        }
                    });
                }
                let codes = r.u32s()?;
                if let Some(c) = codes.iter().find(|c| **c as usize >= values.len()) {
                    return Err(format!("code {c} is beyond the {} values", values.len()));
                }
                ColumnData::Dict { codes, values }
            }
            TAG_TEXT => {
                let offsets = r.u32s()?;
                let n = r.len(1)?;
                let bytes = r.take(n)?.to_vec();
                if offsets.windows(2).any(|w| w[0] > w[1])
                    || offsets.last().is_some_and(|l| *l as usize > bytes.len())
                    || std::str::from_utf8(&bytes).is_err()
                {
                    return Err("its texts do not add up".into());
                }
                ColumnData::Text { offsets, bytes }
            }
            t => return Err(format!("unknown column type {t}")),
        };
        if r.at != b.len() {
            return Err(format!("{} bytes after the column", b.len() - r.at));
        }
        Ok(col)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err(format!("cut short at byte {}", self.b.len()));
        };
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    /// A count of items of `size` bytes each that must fit in what is left.
    fn len(&mut self, size: usize) -> Result<usize, String> {
        let n = u64::from_le_bytes(self.take(8)?.try_into().unwrap_or_default());
        if n.saturating_mul(size as u64) > (self.b.len() - self.at) as u64 {
            return Err(format!("says {n} items, more than its bytes hold"));
        }
        Ok(n as usize)
    }
    fn u64s(&mut self) -> Result<Vec<u64>, String> {
        let n = self.len(8)?;
        Ok(self
            .take(n * 8)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }
    fn u32s(&mut self) -> Result<Vec<u32>, String> {
        let n = self.len(4)?;
        Ok(self
            .take(n * 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect())
    }
}

/// The stored calls of one segment, with the columns that were read.
#[derive(Debug, Clone, Default)]
pub struct CallColumns {
    pub rows: usize,
    data: [Option<ColumnData>; COLUMNS.len()],
}

impl CallColumns {
    pub fn new(rows: usize) -> CallColumns {
        CallColumns {
            rows,
            data: Default::default(),
        }
    }

    pub fn get(&self, c: Column) -> Option<&ColumnData> {
        self.data[c.index()].as_ref()
    }

    /// Sets a column; it must have a value per row and the column's kind.
    pub fn set(&mut self, c: Column, d: ColumnData) -> Result<(), String> {
        if d.rows() != self.rows {
            return Err(format!(
                "column {} has {} rows, not {}",
                c.name(),
                d.rows(),
                self.rows
            ));
        }
        let fits = matches!(
            (c.kind(), &d),
            (Kind::Time, ColumnData::Ints(Ints::I64(_)))
                | (
                    Kind::Id | Kind::Count,
                    ColumnData::Ints(Ints::U32(_) | Ints::U64(_))
                )
                | (Kind::Dict, ColumnData::Dict { .. })
                | (Kind::Text, ColumnData::Text { .. })
        );
        if !fits {
            return Err(format!("column {} has the wrong type", c.name()));
        }
        self.data[c.index()] = Some(d);
        Ok(())
    }

    /// The key of row `i` in column `c` for grouping: the value, the code, or the row.
    #[inline]
    fn key(&self, c: Column, i: usize) -> u64 {
        match &self.data[c.index()] {
            Some(ColumnData::Ints(v)) => v.get(i),
            Some(ColumnData::Dict { codes, .. }) => codes[i] as u64,
            _ => i as u64,
        }
    }

    fn ints(&self, c: Column) -> Option<&Ints> {
        match self.get(c) {
            Some(ColumnData::Ints(v)) => Some(v),
            _ => None,
        }
    }

    fn text(&self, c: Column, i: usize) -> Option<Option<&str>> {
        match self.get(c)? {
            ColumnData::Dict { codes, values } => Some(values[codes[i] as usize].as_deref()),
            ColumnData::Text { offsets, bytes } => {
                Some(std::str::from_utf8(&bytes[offsets[i] as usize..offsets[i + 1] as usize]).ok())
            }
            ColumnData::Ints(_) => None,
        }
    }

    /// Fills `inv` with row `i`'s value of column `c` (which must have been read).
    fn fill(
        &self,
        c: Column,
        i: usize,
        inv: &mut StoredInvocation,
        lookups: &Lookups,
    ) -> Result<(), String> {
        let part = match c.kind() {
            Kind::Dict | Kind::Text => Part::S(self.text(c, i).flatten().map(str::to_string)),
            _ => Part::N(self.ints(c).map(|v| v.get(i)).unwrap_or(0)),
        };
        fill_part(c, part, inv, lookups)
    }

    /// Row `i` as a stored call, with the columns in `cols` filled (the rest left empty).
    fn call(
        &self,
        cols: ColumnSet,
        i: usize,
        lookups: &Lookups,
    ) -> Result<StoredInvocation, String> {
        let mut inv = StoredInvocation::default();
        for c in cols.iter() {
            if c != Column::Seq && self.get(c).is_some() {
                self.fill(c, i, &mut inv, lookups)?;
            }
        }
        Ok(inv)
    }
}

/// A text column being built: codes, values, and each value's code.
/// (Looked up by the text borrowed, so a known text costs no allocation; the empty key stands
/// for "none" in `index` only through `none`.)
type DictBuilder = (
    Vec<u32>,
    Vec<Option<String>>,
    HashMap<String, u32>,
    Option<u32>,
);

/// Columns of stored calls, built a call at a time (for writing a segment).
#[derive(Default)]
pub struct ColumnsBuilder {
    rows: usize,
    seq: Vec<i64>,
    ts: Vec<i64>,
    ids: [Vec<u64>; 2],
    tokens: [Vec<u64>; 5],
    dicts: [DictBuilder; 6],
    offsets: Vec<u32>,
    bytes: Vec<u8>,
}

const DICTS: [Column; 6] = [
    Column::Account,
    Column::Region,
    Column::InferenceRegion,
    Column::Operation,
    Column::ErrorCode,
    Column::Metadata,
];

impl ColumnsBuilder {
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Adds the call the store names `id` (ids must come in increasing order).
    pub fn push(&mut self, id: i64, inv: &StoredInvocation) -> Result<(), String> {
        if self.seq.last().is_some_and(|l| *l >= id) {
            return Err(format!(
                "call {id} comes after call {}",
                self.seq[self.seq.len() - 1]
            ));
        }
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        self.seq.push(id);
        self.ts.push(inv.timestamp_ms);
        self.ids[0].push(inv.identity_id as u64);
        self.ids[1].push(inv.model_ref as u64);
        let t = &inv.tokens;
        for (v, x) in self.tokens.iter_mut().zip([
            t.input,
            t.output,
            t.cache_read,
            t.cache_write_5m,
            t.cache_write_1h,
        ]) {
            v.push(x);
        }
        let texts: [Option<&str>; 6] = [
            Some(&inv.account_id),
            Some(&inv.region),
            inv.inference_region.as_deref(),
            Some(&inv.operation),
            inv.error_code.as_deref(),
            inv.request_metadata.as_deref(),
        ];
        for ((codes, values, index, none), text) in self.dicts.iter_mut().zip(texts) {
            let known = match text {
                Some(t) => index.get(t).copied(),
                None => *none,
            };
            let code = match known {
                Some(c) => c,
                None => {
                    let c = values.len() as u32;
                    values.push(text.map(str::to_string));
                    match text {
                        Some(t) => {
                            index.insert(t.to_string(), c);
                        }
                        None => *none = Some(c),
                    }
                    c
                }
            };
            codes.push(code);
        }
        self.bytes.extend_from_slice(inv.request_id.as_bytes());
        let end = u32::try_from(self.bytes.len())
            .map_err(|_| "a segment holds at most 4 GiB of request ids".to_string())?;
        self.offsets.push(end);
        self.rows += 1;
        Ok(())
    }

    /// Every column, in [`COLUMNS`] order.
    pub fn finish(self) -> Vec<(Column, ColumnData)> {
        let narrow = |v: Vec<u64>| -> Ints {
            if v.iter().all(|x| *x <= u32::MAX as u64) {
                Ints::U32(v.into_iter().map(|x| x as u32).collect())
            } else {
                Ints::U64(v)
            }
        };
        let mut out = Vec::new();
        let ColumnsBuilder {
            seq,
            ts,
            ids,
            tokens,
            dicts,
            mut offsets,
            bytes,
            ..
        } = self;
        if offsets.is_empty() {
            offsets.push(0);
        }
        out.push((Column::Seq, ColumnData::Ints(Ints::I64(seq))));
        out.push((Column::Ts, ColumnData::Ints(Ints::I64(ts))));
        out.push((Column::RequestId, ColumnData::Text { offsets, bytes }));
        let [identity, model] = ids;
        out.push((Column::Identity, ColumnData::Ints(narrow(identity))));
        out.push((Column::Model, ColumnData::Ints(narrow(model))));
        for (c, (codes, values, _, _)) in DICTS.into_iter().zip(dicts) {
            out.push((c, ColumnData::Dict { codes, values }));
        }
        for (c, v) in TOKENS.into_iter().zip(tokens) {
            out.push((c, ColumnData::Ints(narrow(v))));
        }
        out
    }
}

/// Identities and models by the store's ids.
#[derive(Debug, Default, Clone)]
pub struct Lookups {
    pub identities: HashMap<i64, Identity>,
    pub models: HashMap<i64, String>,
}

/// A value of a group's key that means the same in every segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    N(u64),
    S(Option<String>),
}

/// What one segment gives a query.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Rows of the segment in the time range.
    pub rows: u64,
    /// A few calls with the columns read, for telling which fields the calls have.
    pub samples: Vec<StoredInvocation>,
    /// Otherwise: the calls that reach the plan, with their ids, in the segment's order.
    pub calls: Vec<(i64, StoredInvocation)>,
}

enum Mode {
    Groups,
    Top { col: Column, desc: bool, n: usize },
    Rows { cap: Option<usize> },
}

/// A query planned over columns (see the module's documentation).
pub struct ColumnScan<'p> {
    plan: &'p Plan,
    /// The columns the plan's rows are made from.
    needed: ColumnSet,
    /// Conjuncts that read one column, and conjuncts that read none.
    pushed: Vec<(Column, &'p Expr)>,
    constant: Vec<&'p Expr>,
    mode: Mode,
    codes: SharedCodes,
    /// With a `stats`: the columns calls are counted by, and count columns read only by `max`
    /// (true) or only by `min` (false), of which each group keeps its one extreme value.
    key_cols: ColumnSet,
    reduced: Vec<(Column, bool)>,
}

/// Call `i`'s sort key in column `col` (times are signed; counts are not).
fn sort_key(v: &Ints, col: Column, i: u32) -> i128 {
    let x = v.get(i as usize);
    if col == Column::Ts {
        x as i64 as i128
    } else {
        x as i128
    }
}

/// The n-th key in the sort's order (`None`: there are no more than n, all can be shown).
pub fn top_bound(keys: &mut [i128], desc: bool, n: usize) -> Option<i128> {
    if keys.len() <= n {
        return None;
    }
    if n == 0 {
        return Some(if desc { i128::MAX } else { i128::MIN });
    }
    Some(if desc {
        *keys.select_nth_unstable_by(n - 1, |a, b| b.cmp(a)).1
    } else {
        *keys.select_nth_unstable(n - 1).1
    })
}

/// Whether a key is at or before the bound in the sort's order.
pub fn within(k: i128, bound: i128, desc: bool) -> bool {
    if desc {
        k >= bound
    } else {
        k <= bound
    }
}

/// Row fields for which the sort key is the column's own value.
fn sort_column(name: &str) -> Option<Column> {
    Some(match name {
        "@timestamp" => Column::Ts,
        "input.inputTokenCount" => Column::Input,
        "output.outputTokenCount" => Column::Output,
        "input.cacheReadInputTokenCount" => Column::CacheRead,
        "cache_write_5m_tokens" => Column::CacheWrite5m,
        "cache_write_1h_tokens" => Column::CacheWrite1h,
        _ => return None,
    })
}

impl<'p> ColumnScan<'p> {
    /// `wanted`: the fields the plan reads ([`Plan::input_fields`]); `default_columns`: the
    /// result shows `@timestamp` and `@message`.
    pub fn new(
        plan: &'p Plan,
        wanted: &std::collections::BTreeSet<String>,
        default_columns: bool,
    ) -> ColumnScan<'p> {
        let mut needed = ColumnSet::default();
        for w in wanted {
            needed = needed.union(field_columns(w));
        }
        if default_columns {
            needed = needed
                .union(field_columns("@timestamp"))
                .union(field_columns("@message"));
        }
        let shape = plan.shape();
        let (mut pushed, mut constant, mut all_pushed) = (Vec::new(), Vec::new(), true);
        for c in &shape.conjuncts {
            let mut deps = ColumnSet::default();
            for f in Plan::expr_fields(c) {
                deps = deps.union(field_columns(&f));
            }
            match deps.len() {
                0 => constant.push(*c),
                1 => pushed.extend(deps.iter().next().map(|col| (col, *c))),
                _ => all_pushed = false,
            }
        }
        // The conjuncts alone decide which rows reach the barrier.
        let decided = shape.simple && all_pushed;
        let mode = match shape.barrier {
            Barrier::Stats => Mode::Groups,
            Barrier::Sort { keys, n } if decided => match keys.first().map(|k| (&k.expr, k)) {
                Some((Expr::Field { name, .. }, k)) if !shape.defined.contains(name) => {
                    match sort_column(name) {
                        Some(col) => Mode::Top {
                            col,
                            desc: k.descending,
                            n,
                        },
                        None => Mode::Rows { cap: None },
                    }
                }
                _ => Mode::Rows { cap: None },
            },
            Barrier::Limit(n) if decided => Mode::Rows { cap: Some(n) },
            _ => Mode::Rows { cap: None },
        };
        // A count column whose only field is read by `max` alone (or `min` alone, `count` aside)
        // need not split groups: each keeps its extreme value.
        let (mut key_cols, mut reduced) = (needed, Vec::new());
        if let (Mode::Groups, Some(uses)) = (&mode, plan.stats_uses()) {
            for w in wanted {
                let (Some(col), Some(Some(calls))) = (sort_column(w), uses.get(w)) else {
                    continue;
                };
                let others = wanted
                    .iter()
                    .filter(|o| *o != w)
                    .any(|o| field_columns(o).contains(col));
                let max = calls.iter().all(|c| c == "max" || c == "count");
                let min = calls.iter().all(|c| c == "min" || c == "count");
                if col != Column::Ts && !others && (max || min) && reduced.len() < REDUCED {
                    reduced.push((col, max));
                    key_cols = ColumnSet(key_cols.0 & !(1 << col.index()));
                }
            }
        }
        ColumnScan {
            plan,
            needed,
            pushed,
            constant,
            mode,
            codes: SharedCodes::default(),
            key_cols,
            reduced,
        }
    }

    /// The columns to read from each segment (`ranged`: the time range cuts the segment, so
    /// its times are read too).
    pub fn columns(&self, ranged: bool) -> ColumnSet {
        let mut s = self.needed;
        for (c, _) in &self.pushed {
            s.insert(*c);
        }
        match self.mode {
            Mode::Top { col, .. } => {
                s.insert(col);
                s.insert(Column::Seq);
            }
            Mode::Rows { .. } => s.insert(Column::Seq),
            Mode::Groups => {}
        }
        if ranged {
            s.insert(Column::Ts);
        }
        s
    }

    /// Whether the plan counts rows together (a `stats`): [`ColumnScan::scan`] counts into
    /// its `groups`.
    pub fn groups(&self) -> bool {
        matches!(self.mode, Mode::Groups)
    }

    /// Adds another thread's counts to `into`.
    pub fn merge(&self, into: &mut Groups, other: Groups) {
        for (k, a) in other.narrow {
            into.narrow
                .entry(k)
                .or_insert(Agg::new(&self.reduced))
                .merge(&a, &self.reduced);
        }
        for (k, a) in other.wide {
            into.wide
                .entry(k)
                .or_insert(Agg::new(&self.reduced))
                .merge(&a, &self.reduced);
        }
    }

    /// Reads one segment (its columns from [`ColumnScan::columns`]); `range`: only the calls
    /// in `[since, until)`. With a `stats` ([`ColumnScan::groups`]) the calls are counted into
    /// `groups` (see [`ColumnScan::grouped`]).
    pub fn scan(
        &self,
        seg: &CallColumns,
        range: Option<(i64, i64)>,
        rows: &mut StoreRows,
        lookups: &Lookups,
        groups: &mut Groups,
        bound: Option<i128>,
    ) -> Result<Scanned, String> {
        let (mut sel, rows_in_range) = self.select(seg, range, rows, lookups)?;
        let mut out = Scanned {
            rows: rows_in_range,
            ..Scanned::default()
        };
        out.samples = self.samples(seg, &sel, lookups)?;
        match self.mode {
            Mode::Groups => self.group(seg, &sel, groups)?,
            Mode::Top { col, desc, n } => {
                let v = seg
                    .ints(col)
                    .ok_or_else(|| format!("the column {} was not read", col.name()))?;
                if let Some(b) = bound {
                    sel.retain(|i| within(sort_key(v, col, *i), b, desc));
                }
                let mut keys: Vec<i128> = sel.iter().map(|i| sort_key(v, col, *i)).collect();
                if let Some(b) = top_bound(&mut keys, desc, n) {
                    // Ties with the n-th stay: the plan's own sort decides among them.
                    sel.retain(|i| within(sort_key(v, col, *i), b, desc));
                }
                out.calls = self.numbered(seg, &sel, lookups)?;
            }
            Mode::Rows { cap } => {
                if let Some(cap) = cap {
                    sel.truncate(cap);
                }
                out.calls = self.numbered(seg, &sel, lookups)?;
            }
        }
        Ok(out)
    }

    /// The calls of a segment in the range that pass the pushed-down conjuncts, and how many
    /// are in the range.
    fn select(
        &self,
        seg: &CallColumns,
        range: Option<(i64, i64)>,
        rows: &mut StoreRows,
        lookups: &Lookups,
    ) -> Result<(Vec<u32>, u64), String> {
        let mut sel: Vec<u32> = match (range, seg.ints(Column::Ts)) {
            (Some((a, b)), Some(ts)) => (0..seg.rows)
                .filter(|i| {
                    let t = ts.get(*i) as i64;
                    t >= a && t < b
                })
                .map(|i| i as u32)
                .collect(),
            (Some(_), None) => return Err("the segment's times were not read".into()),
            (None, _) => (0..seg.rows as u32).collect(),
        };
        let rows_in_range = sel.len() as u64;
        let plan = self.plan;
        let mut truth = |cols: ColumnSet, i: usize, e: &Expr| -> Result<bool, String> {
            let inv = seg.call(cols, i, lookups)?;
            let (row, _) = rows.invocation(&inv);
            Ok(plan.eval(e, &row).truthy())
        };
        for e in &self.constant {
            if !sel.is_empty() && !truth(ColumnSet::default(), sel[0] as usize, e)? {
                sel.clear();
            }
        }
        for (col, e) in &self.pushed {
            let cols = ColumnSet::of(&[*col]);
            let mut err = None;
            match (col.kind(), seg.get(*col)) {
                (Kind::Dict, Some(ColumnData::Dict { codes, values })) => {
                    // 0: not decided yet, 1: false, 2: true.
                    let mut memo = vec![0u8; values.len()];
                    sel.retain(|i| {
                        let code = codes[*i as usize] as usize;
                        if memo[code] == 0 {
                            memo[code] = match truth(cols, *i as usize, e) {
                                Ok(b) => 1 + b as u8,
                                Err(x) => {
                                    err.get_or_insert(x);
                                    1
                                }
                            };
                        }
                        memo[code] == 2
                    });
                }
                (Kind::Id | Kind::Count, Some(ColumnData::Ints(v))) => {
                    let mut memo: HashMap<u64, bool, Fx> = HashMap::default();
                    sel.retain(|i| {
                        let x = v.get(*i as usize);
                        *memo.entry(x).or_insert_with(|| {
                            truth(cols, *i as usize, e).unwrap_or_else(|x| {
                                err.get_or_insert(x);
                                false
                            })
                        })
                    });
                }
                _ => sel.retain(|i| {
                    truth(cols, *i as usize, e).unwrap_or_else(|x| {
                        err.get_or_insert(x);
                        false
                    })
                }),
            }
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok((sel, rows_in_range))
    }

    /// With `sort F | limit N` on a column ([`ColumnScan::top`]): the columns a first pass
    /// reads (the sort column, what the filters read, and what tells which fields calls have),
    /// not the texts the rows show.
    pub fn first_pass_columns(&self, ranged: bool) -> ColumnSet {
        let mut s = ColumnSet::default();
        for c in self.columns(ranged).iter() {
            if c.kind() != Kind::Text || self.pushed.iter().any(|p| p.0 == c) {
                s.insert(c);
            }
        }
        s
    }

    /// The sort column, its direction and how many rows are shown, for `sort F | limit N`.
    pub fn top(&self) -> Option<(Column, bool, usize)> {
        match self.mode {
            Mode::Top { col, desc, n } => Some((col, desc, n)),
            _ => None,
        }
    }

    /// A first pass over a segment for [`ColumnScan::top`]: the keys of the calls that can be
    /// among its first N (ties included), a few calls (for which fields calls have), and how
    /// many calls are in the range.
    pub fn top_keys(
        &self,
        seg: &CallColumns,
        range: Option<(i64, i64)>,
        rows: &mut StoreRows,
        lookups: &Lookups,
    ) -> Result<(Vec<i128>, Vec<StoredInvocation>, u64), String> {
        let (sel, in_range) = self.select(seg, range, rows, lookups)?;
        let samples = self.samples(seg, &sel, lookups)?;
        let Mode::Top { col, desc, n } = self.mode else {
            return Ok((Vec::new(), samples, in_range));
        };
        let v = seg
            .ints(col)
            .ok_or_else(|| format!("the column {} was not read", col.name()))?;
        let mut keys: Vec<i128> = sel.iter().map(|i| sort_key(v, col, *i)).collect();
        let nth = top_bound(&mut keys, desc, n);
        if let Some(b) = nth {
            keys.retain(|k| within(*k, b, desc));
        }
        Ok((keys, samples, in_range))
    }

    fn calls(
        &self,
        seg: &CallColumns,
        sel: &[u32],
        lookups: &Lookups,
    ) -> Result<Vec<StoredInvocation>, String> {
        sel.iter()
            .map(|i| seg.call(self.needed, *i as usize, lookups))
            .collect()
    }

    /// The calls of `sel` with their ids.
    fn numbered(
        &self,
        seg: &CallColumns,
        sel: &[u32],
        lookups: &Lookups,
    ) -> Result<Vec<(i64, StoredInvocation)>, String> {
        let seq = seg
            .ints(Column::Seq)
            .ok_or_else(|| "the segment's ids were not read".to_string())?;
        sel.iter()
            .map(|i| {
                Ok((
                    seq.get(*i as usize) as i64,
                    seg.call(self.needed, *i as usize, lookups)?,
                ))
            })
            .collect()
    }

    /// The first call of each distinct value of each grouping column read (at most 200).
    fn samples(
        &self,
        seg: &CallColumns,
        sel: &[u32],
        lookups: &Lookups,
    ) -> Result<Vec<StoredInvocation>, String> {
        let mut picked: Vec<u32> = sel.first().copied().into_iter().collect();
        for c in self.needed.iter() {
            match seg.get(c) {
                // The first call of each text (a pass over the codes, stopping once each is seen).
                Some(ColumnData::Dict { codes, values }) => {
                    let mut seen = vec![false; values.len()];
                    let mut left = values.len().min(50);
                    for i in sel {
                        if left == 0 || picked.len() >= 200 {
                            break;
                        }
                        let code = codes[*i as usize] as usize;
                        if !seen[code] {
                            seen[code] = true;
                            left -= 1;
                            picked.push(*i);
                        }
                    }
                }
                // Identities and models: the first few thousand calls are enough to tell.
                Some(ColumnData::Ints(_)) if c.kind() == Kind::Id => {
                    let mut seen: HashMap<u64, (), Fx> = HashMap::default();
                    for i in sel.iter().take(4096) {
                        if seen.len() >= 50 || picked.len() >= 200 {
                            break;
                        }
                        if seen.insert(seg.key(c, *i as usize), ()).is_none() {
                            picked.push(*i);
                        }
                    }
                }
                _ => {}
            }
        }
        picked.sort_unstable();
        picked.dedup();
        self.calls(seg, &picked, lookups)
    }

    /// Counts the selected rows into `groups` by the values of the columns read.
    fn group(&self, seg: &CallColumns, sel: &[u32], groups: &mut Groups) -> Result<(), String> {
        let cols: Vec<Column> = self.key_cols.iter().collect();
        let mut extremes: Vec<(&Ints, bool)> = Vec::new();
        for (c, max) in &self.reduced {
            match seg.ints(*c) {
                Some(v) => extremes.push((v, *max)),
                None => return Err(format!("the column {} was not read", c.name())),
            }
        }
        let fresh = Agg::new(&self.reduced);
        let add = |agg: &mut Agg, i: u32| {
            agg.n += 1;
            for (j, (v, max)) in extremes.iter().enumerate() {
                let x = v.get(i as usize);
                agg.r[j] = if *max {
                    agg.r[j].max(x)
                } else {
                    agg.r[j].min(x)
                };
            }
        };
        let mut keys: Vec<Key> = Vec::with_capacity(cols.len());
        for c in &cols {
            keys.push(match seg.get(*c) {
                Some(ColumnData::Ints(v)) => Key::Value(v),
                Some(ColumnData::Dict { codes, values }) => Key::Coded(
                    codes,
                    self.codes
                        .translate(*c, &mut values.iter().map(|v| v.as_deref())),
                ),
                Some(ColumnData::Text { .. }) => {
                    let mut texts = sel.iter().map(|i| seg.text(*c, *i as usize).flatten());
                    Key::Rows(self.codes.translate(*c, &mut texts))
                }
                None => return Err(format!("the column {} was not read", c.name())),
            });
        }
        if let (Some(a), true) = (keys.first(), keys.len() <= 2) {
            // One or two columns (most queries): a key of two numbers, no allocation per call.
            let b = keys.get(1);
            if self.reduced.is_empty() && self.count_dense(a, b, sel, groups) {
                return Ok(());
            }
            for (pos, i) in sel.iter().enumerate() {
                let k = Pair(
                    key_of(a, *i, pos),
                    b.map(|b| key_of(b, *i, pos)).unwrap_or(0),
                );
                add(groups.narrow.entry(k).or_insert(fresh), *i);
            }
            return Ok(());
        }
        let mut key: Vec<u64> = Vec::with_capacity(cols.len());
        for (pos, i) in sel.iter().enumerate() {
            key.clear();
            key.extend(keys.iter().map(|k| key_of(k, *i, pos)));
            match groups.wide.get_mut(key.as_slice()) {
                Some(agg) => add(agg, *i),
                None => {
                    let mut agg = fresh;
                    add(&mut agg, *i);
                    groups.wide.insert(key.clone().into_boxed_slice(), agg);
                }
            }
        }
        Ok(())
    }

    /// Counts by one or two columns of few distinct values in an array (no hashing per call):
    /// false when their values span too much for that.
    fn count_dense(&self, a: &Key, b: Option<&Key>, sel: &[u32], groups: &mut Groups) -> bool {
        if sel.is_empty() || matches!(a, Key::Rows(_)) || matches!(b, Some(Key::Rows(_))) {
            return false;
        }
        let span = |k: &Key| -> (u64, u64) {
            sel.iter().fold((u64::MAX, 0), |(lo, hi), i| {
                let x = k.local(*i);
                (lo.min(x), hi.max(x))
            })
        };
        let (amin, amax) = span(a);
        let (bmin, bmax) = b.map(span).unwrap_or((0, 0));
        let (wa, wb) = (amax - amin + 1, bmax - bmin + 1);
        let limit = (sel.len() as u64 * 8).max(1 << 20);
        if wa.checked_mul(wb).is_none_or(|cells| cells > limit) {
            return false;
        }
        let mut counts = vec![0u64; (wa * wb) as usize];
        match b {
            None => {
                for i in sel {
                    counts[(a.local(*i) - amin) as usize] += 1;
                }
            }
            Some(b) => {
                for i in sel {
                    counts[((a.local(*i) - amin) * wb + (b.local(*i) - bmin)) as usize] += 1;
                }
            }
        }
        for (cell, n) in counts.into_iter().enumerate().filter(|c| c.1 > 0) {
            let (x, y) = (cell as u64 / wb + amin, cell as u64 % wb + bmin);
            let k = Pair(a.global(x), b.map(|b| b.global(y)).unwrap_or(0));
            groups.narrow.entry(k).or_insert(Agg::new(&[])).n += n;
        }
        true
    }

    /// The groups of every segment as calls with their counts, in the order of their values
    /// (so that a run is repeatable whatever order the threads took).
    pub fn grouped(
        &self,
        groups: Groups,
        lookups: &Lookups,
    ) -> Result<Vec<(StoredInvocation, u64)>, String> {
        let cols: Vec<Column> = self.key_cols.iter().collect();
        let mut out: Vec<(Vec<Part>, u64)> = groups
            .into_keys()
            .map(|(k, agg)| {
                let mut parts: Vec<Part> = cols
                    .iter()
                    .zip(k.iter())
                    .map(|(c, v)| match c.kind() {
                        Kind::Dict | Kind::Text => Part::S(self.codes.value(*c, *v)),
                        _ => Part::N(*v),
                    })
                    .collect();
                parts.extend(agg.r[..self.reduced.len()].iter().map(|v| Part::N(*v)));
                (parts, agg.n)
            })
            .collect();
        out.sort_unstable();
        let all: Vec<Column> = cols
            .iter()
            .copied()
            .chain(self.reduced.iter().map(|r| r.0))
            .collect();
        out.into_iter()
            .map(|(parts, n)| {
                let mut inv = StoredInvocation::default();
                for (c, p) in all.iter().zip(parts) {
                    fill_part(*c, p, &mut inv, lookups)?;
                }
                Ok((inv, n))
            })
            .collect()
    }
}

/// A column's per-call key under the codes every segment shares: texts translated once per
/// distinct value, numbers as they are.
enum Key<'a> {
    Value(&'a Ints),
    Coded(&'a [u32], Vec<u64>),
    /// A text per call (request ids), translated call by call.
    Rows(Vec<u64>),
}

impl Key<'_> {
    /// Call `i`'s key before translation (a number, or the segment's code).
    #[inline]
    fn local(&self, i: u32) -> u64 {
        match self {
            Key::Value(v) => v.get(i as usize),
            Key::Coded(codes, _) => codes[i as usize] as u64,
            Key::Rows(_) => i as u64,
        }
    }

    /// A key of [`Key::local`] under the shared codes.
    #[inline]
    fn global(&self, local: u64) -> u64 {
        match self {
            Key::Coded(_, tr) => tr[local as usize],
            _ => local,
        }
    }
}

fn key_of(k: &Key, i: u32, pos: usize) -> u64 {
    match k {
        Key::Value(v) => v.get(i as usize),
        Key::Coded(codes, tr) => tr[codes[i as usize] as usize],
        Key::Rows(tr) => tr[pos],
    }
}

/// Sets column `c` of `inv` to a group's value.
fn fill_part(
    c: Column,
    p: Part,
    inv: &mut StoredInvocation,
    lookups: &Lookups,
) -> Result<(), String> {
    let (n, text) = match p {
        Part::N(n) => (n, None),
        Part::S(t) => (0, t),
    };
    match c {
        Column::Seq => {}
        Column::Ts => inv.timestamp_ms = n as i64,
        Column::RequestId => inv.request_id = text.unwrap_or_default(),
        Column::Identity => {
            let id = n as i64;
            inv.identity = lookups
                .identities
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("a call names identity {id}, which is not stored"))?;
            inv.identity_id = id;
        }
        Column::Model => {
            let id = n as i64;
            inv.model_id = lookups
                .models
                .get(&id)
                .cloned()
                .ok_or_else(|| format!("a call names model {id}, which is not stored"))?;
            inv.model_ref = id;
        }
        Column::Account => inv.account_id = text.unwrap_or_default(),
        Column::Region => inv.region = text.unwrap_or_default(),
        Column::InferenceRegion => inv.inference_region = text,
        Column::Operation => inv.operation = text.unwrap_or_default(),
        Column::ErrorCode => inv.error_code = text,
        Column::Metadata => inv.request_metadata = text,
        Column::Input => inv.tokens.input = n,
        Column::Output => inv.tokens.output = n,
        Column::CacheRead => inv.tokens.cache_read = n,
        Column::CacheWrite5m => inv.tokens.cache_write_5m = n,
        Column::CacheWrite1h => inv.tokens.cache_write_1h = n,
    }
    Ok(())
}

/// Calls counted by the values of the columns a query reads (texts under [`SharedCodes`]).
#[derive(Default)]
pub struct Groups {
    /// Keys of one or two columns (the second 0 for one).
    narrow: HashMap<Pair, Agg, Fx>,
    wide: HashMap<Box<[u64]>, Agg, Fx>,
}

/// Count columns a group keeps one extreme value of, at most.
const REDUCED: usize = 4;

/// A group's calls and the extreme values it keeps (see [`ColumnScan`]'s `reduced`).
#[derive(Clone, Copy)]
struct Agg {
    n: u64,
    r: [u64; REDUCED],
}

impl Agg {
    fn new(reduced: &[(Column, bool)]) -> Agg {
        let mut r = [0; REDUCED];
        for (j, (_, max)) in reduced.iter().enumerate() {
            r[j] = if *max { 0 } else { u64::MAX };
        }
        Agg { n: 0, r }
    }

    fn merge(&mut self, o: &Agg, reduced: &[(Column, bool)]) {
        self.n += o.n;
        for (j, (_, max)) in reduced.iter().enumerate() {
            self.r[j] = if *max {
                self.r[j].max(o.r[j])
            } else {
                self.r[j].min(o.r[j])
            };
        }
    }
}

/// Two numbers as a hash key, hashed as two words.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Pair(u64, u64);

impl std::hash::Hash for Pair {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
        state.write_u64(self.1);
    }
}

impl Groups {
    pub fn is_empty(&self) -> bool {
        self.narrow.is_empty() && self.wide.is_empty()
    }

    /// Every key (as many numbers as columns: `cols`) with its calls.
    fn into_keys(self) -> impl Iterator<Item = (Vec<u64>, Agg)> {
        self.narrow
            .into_iter()
            .map(|(k, n)| (vec![k.0, k.1], n))
            .chain(self.wide.into_iter().map(|(k, n)| (k.into_vec(), n)))
    }
}

/// Each text's code, and the texts by code.
type CodeTable = (HashMap<Option<String>, u64>, Vec<Option<String>>);

/// Codes for the texts of a query's columns that mean the same in every segment.
#[derive(Default)]
pub struct SharedCodes {
    cols: Mutex<HashMap<Column, CodeTable>>,
}

impl SharedCodes {
    /// The shared code of each text, in order.
    fn translate(&self, c: Column, texts: &mut dyn Iterator<Item = Option<&str>>) -> Vec<u64> {
        let mut all = self.cols.lock().unwrap_or_else(|p| p.into_inner());
        let (index, values) = all.entry(c).or_default();
        texts
            .map(|t| {
                let key = t.map(str::to_string);
                if let Some(code) = index.get(&key) {
                    return *code;
                }
                let code = values.len() as u64;
                values.push(key.clone());
                index.insert(key, code);
                code
            })
            .collect()
    }

    fn value(&self, c: Column, code: u64) -> Option<String> {
        let all = self.cols.lock().unwrap_or_else(|p| p.into_inner());
        all.get(&c)
            .and_then(|(_, v)| v.get(code as usize).cloned())
            .flatten()
    }
}

/// A fast hash for integer keys (FxHash's multiply-rotate): keys here are the store's own
/// values, not input an attacker picks for collisions.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

pub type Fx = BuildHasherDefault<FxHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_read_back_and_damage_is_named() {
        let mut b = ColumnsBuilder::default();
        for i in 0..100u64 {
            let inv = StoredInvocation {
                request_id: format!("r{i}"),
                timestamp_ms: 1_700_000_000_000 + i as i64,
                identity_id: (i % 3) as i64 + 1,
                model_ref: 1,
                account_id: "1".into(),
                region: "us-east-1".into(),
                error_code: (i % 10 == 0).then(|| "ThrottlingException".into()),
                tokens: crate::record::Tokens {
                    input: i * 5_000_000_000,
                    output: i,
                    ..Default::default()
                },
                ..Default::default()
            };
            b.push(i as i64 + 1, &inv).expect("push");
        }
        for (c, d) in b.finish() {
            let mut bytes = Vec::new();
            d.encode(&mut bytes);
            assert_eq!(ColumnData::decode(&bytes).as_ref(), Ok(&d), "{}", c.name());
            if c == Column::Input {
                assert!(matches!(d, ColumnData::Ints(Ints::U64(_))));
            }
            if c == Column::Output {
                assert!(matches!(d, ColumnData::Ints(Ints::U32(_))));
            }
            let cut = ColumnData::decode(&bytes[..bytes.len() - 1]);
            assert!(cut.is_err(), "{}: a cut column reads", c.name());
        }
    }

    #[test]
    fn field_columns_cover_every_store_field() {
        for f in super::super::rows::STORE_FIELDS {
            let cols = field_columns(f);
            let constant = [
                "@logStream",
                "schemaType",
                "schemaVersion",
                "input.cacheWriteInputTokenCount",
            ];
            assert!(
                !cols.is_empty() || constant.contains(f),
                "{f} reads no column"
            );
        }
    }
}
