//! Prices: model-id normalization and the [`PriceCatalog`] that turns token counts into money.
//!
//! Cost = sum over token classes of tokens x rate, in integer pico-dollars (see `money`). A model
//! the catalog does not know is *unpriced*: it is named and counted, never priced at $0.
//! Each model has dated rate blocks; every rule (regional and GovCloud premiums, rates by the
//! request's region, input-size tiers, 1-hour cache rates) belongs to a block, so a rule can
//! start and end.
//! Rates and costs are integers: the lint below refuses float arithmetic in this module.

#![deny(clippy::float_arithmetic)]

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::money::{parse_scaled_decimal, NanoUsd};
use crate::record::Tokens;
use crate::time::{format_date, parse_date};

/// The threshold of a `long_context` rule that names none (the 200k rule of Sonnet 4 and 4.5).
pub const LONG_CONTEXT_THRESHOLD: u64 = 200_000;

/// Input-side sizes (input + cache read + cache write tokens) at which a price list may change
/// rates. The store keeps its sums apart on either side of each, so a tier starting above any of
/// them prices stored history exactly; a catalog tier must start at one of them.
pub const INPUT_BAND_EDGES: [u64; 6] = [100_000, 128_000, 200_000, 256_000, 500_000, 1_000_000];

/// Where a call's input side falls among [`INPUT_BAND_EDGES`]: 0 up to the first edge, `i`
/// above the `i`-th.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputBand(pub u8);

impl InputBand {
    /// The band of an input side of `tokens` tokens.
    pub fn of_side(tokens: u64) -> InputBand {
        InputBand(INPUT_BAND_EDGES.iter().filter(|&&e| tokens > e).count() as u8)
    }
    /// The band of one call.
    pub fn of(t: &Tokens) -> InputBand {
        InputBand::of_side(t.input_side())
    }
    /// Whether every call of this band is above `edge` input-side tokens.
    pub fn above(self, edge: u64) -> bool {
        INPUT_BAND_EDGES
            .iter()
            .position(|&e| e == edge)
            .is_some_and(|i| self.0 as usize > i)
    }
    /// The band as stored (an integer column), from a stored value (clamped).
    pub fn from_stored(v: i64) -> InputBand {
        InputBand(v.clamp(0, INPUT_BAND_EDGES.len() as i64) as u8)
    }
}

const EMBEDDED_CATALOG: &str = include_str!("../data/catalog.toml");

/// The geography prefixes of system inference profiles.
const GEO_PREFIXES: &[&str] = &[
    "us-gov.", "global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "uk.", "sa.",
];

/// Where a request was served from, as far as pricing cares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Geography {
    /// A `global.` cross-region profile.
    Global,
    /// A geographic cross-region profile (`us.`, `eu.`, ...): the prefix without its dot.
    Geo(String),
    /// A plain model id or foundation-model ARN: in-region.
    InRegion,
}

/// What form a modelId had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdForm {
    Plain,
    SystemProfile,
    FoundationModelArn,
    InferenceProfileArn,
    ApplicationProfileArn,
    ProvisionedModelArn,
    OtherArn,
}

impl IdForm {
    pub fn describe(self) -> &'static str {
        match self {
            IdForm::Plain => "a plain model id",
            IdForm::SystemProfile => "a system inference profile id",
            IdForm::FoundationModelArn => "a foundation-model ARN",
            IdForm::InferenceProfileArn => "an inference-profile ARN",
            IdForm::ApplicationProfileArn => "an application-inference-profile ARN",
            IdForm::ProvisionedModelArn => "a provisioned-model ARN",
            IdForm::OtherArn => "an ARN of an unknown kind",
        }
    }
}

/// A modelId taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName {
    pub form: IdForm,
    pub geography: Geography,
    /// The normalized model key (`claude-sonnet-4-5`), when the id names a model.
    pub key: Option<String>,
    /// The id an application-inference-profile ARN was mapped to by the config, if any.
    pub mapped_to: Option<String>,
}

/// Takes a modelId apart: ARN, geography prefix, provider, version and date suffixes.
/// `app_profiles` maps application-inference-profile ARNs (which name no model) to model ids.
pub fn normalize_model_id(model_id: &str, app_profiles: &HashMap<String, String>) -> ModelName {
    let id = model_id.trim();
    if let Some(target) = app_profiles.get(id) {
        let mut inner = normalize_model_id(target, &HashMap::new());
        inner.form = IdForm::ApplicationProfileArn;
        inner.mapped_to = Some(target.clone());
        return inner;
    }
    let (form, rest) = if id.starts_with("arn:") {
        let resource = id.splitn(6, ':').nth(5).unwrap_or("");
        let (kind, name) = resource.split_once('/').unwrap_or((resource, ""));
        let form = match kind {
            "foundation-model" => IdForm::FoundationModelArn,
            "inference-profile" => IdForm::InferenceProfileArn,
            "application-inference-profile" => IdForm::ApplicationProfileArn,
            "provisioned-model" => IdForm::ProvisionedModelArn,
            _ => IdForm::OtherArn,
        };
        (form, name)
    } else {
        (IdForm::Plain, id)
    };
    if matches!(
        form,
        IdForm::ApplicationProfileArn | IdForm::ProvisionedModelArn | IdForm::OtherArn
    ) {
        return ModelName {
            form,
            geography: Geography::InRegion,
            key: None,
            mapped_to: None,
        };
    }
    let mut geography = Geography::InRegion;
    let mut name = rest;
    for p in GEO_PREFIXES {
        if let Some(r) = name.strip_prefix(p) {
            geography = if *p == "global." {
                Geography::Global
            } else {
                Geography::Geo(p.trim_end_matches('.').to_string())
            };
            name = r;
            break;
        }
    }
    let form = if form == IdForm::Plain && geography != Geography::InRegion {
        IdForm::SystemProfile
    } else {
        form
    };
    let name = name.strip_prefix("anthropic.").unwrap_or(name);
    ModelName {
        form,
        geography,
        key: Some(strip_version(name)).filter(|k| !k.is_empty()),
        mapped_to: None,
    }
}

/// `claude-sonnet-4-5-20250929-v1:0` -> `claude-sonnet-4-5`; `claude-opus-4-6-v1` ->
/// `claude-opus-4-6`; `claude-3-5-sonnet-20241022-v2:0:200k` -> `claude-3-5-sonnet`.
fn strip_version(name: &str) -> String {
    // Everything after the first ':' is a version or context-window qualifier.
    let mut s = name.split(':').next().unwrap_or(name).to_ascii_lowercase();
    // A trailing `-vN`, unless it is the model's own name (`claude-v2`, `claude-instant-v1`):
    // a versioned id keeps a digit (generation or date) before it.
    if let Some(i) = s.rfind("-v") {
        if i + 2 < s.len()
            && s[i + 2..].chars().all(|c| c.is_ascii_digit())
            && s[..i].chars().any(|c| c.is_ascii_digit())
        {
            s.truncate(i);
        }
    }
    // A Vertex-style `@YYYYMMDD` (seen in price maps).
    if let Some(i) = s.find('@') {
        s.truncate(i);
    }
    // A trailing `-YYYYMMDD` release date.
    if let Some(i) = s.rfind('-') {
        let tail = &s[i + 1..];
        if tail.len() == 8 && tail.chars().all(|c| c.is_ascii_digit()) {
            s.truncate(i);
        }
    }
    s
}

/// A multiplier kept as a fraction, so that 1.5x or +10% stays exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    pub num: i64,
    pub den: i64,
}

impl Ratio {
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };
    /// `pico` times the ratio, rounded half up.
    pub fn apply(self, pico: i64) -> i64 {
        // Rates are whole pico-dollars; published multiples of them stay whole. Round half up
        // for a user's odd multiple rather than truncating.
        let n = pico as i128 * self.num as i128;
        ((n + self.den as i128 / 2) / self.den as i128) as i64
    }
    fn parse_multiple(s: &str) -> Result<Ratio, String> {
        Ok(Ratio {
            num: parse_scaled_decimal(s, 6)?,
            den: 1_000_000,
        })
    }
    /// `10%` -> 1.1.
    pub fn parse_percent_increase(s: &str) -> Result<Ratio, String> {
        let t = s
            .trim()
            .strip_suffix('%')
            .ok_or_else(|| format!("`{s}` must be a percentage such as `10%`"))?;
        let pct = parse_scaled_decimal(t, 4)?; // percent x 1e4
        Ok(Ratio {
            num: 1_000_000 + pct,
            den: 1_000_000,
        })
    }
    /// `1.5`, `2`, `1.1`: for messages.
    pub fn describe(self) -> String {
        let scaled = self.num as i128 * 1_000_000 / self.den as i128;
        let int = scaled / 1_000_000;
        let frac = scaled % 1_000_000;
        if frac == 0 {
            format!("{int}")
        } else {
            format!("{int}.{}", format!("{frac:06}").trim_end_matches('0'))
        }
    }
}

/// Rates of one model in force from one day, in pico-dollars per token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rates {
    pub from_day: i64,
    pub input: i64,
    pub output: i64,
    /// `None`: the price list gives no such rate (calls with those tokens are unpriced).
    pub cache_write_5m: Option<i64>,
    pub cache_write_1h: Option<i64>,
    pub cache_read: Option<i64>,
}

impl Rates {
    fn scaled(&self, input_side: Ratio, output: Ratio) -> Rates {
        Rates {
            from_day: self.from_day,
            input: input_side.apply(self.input),
            output: output.apply(self.output),
            cache_write_5m: self.cache_write_5m.map(|r| input_side.apply(r)),
            cache_write_1h: self.cache_write_1h.map(|r| input_side.apply(r)),
            cache_read: self.cache_read.map(|r| input_side.apply(r)),
        }
    }

    /// The cost of `t` in pico-dollars, or the name of a token class `t` has tokens of and
    /// these rates have no price for.
    pub fn cost_pico(&self, t: &Tokens) -> Result<i128, &'static str> {
        let class = |n: u64, rate: Option<i64>, name: &'static str| match (n, rate) {
            (0, _) => Ok(0),
            (n, Some(r)) => Ok(n as i128 * r as i128),
            (_, None) => Err(name),
        };
        Ok(t.input as i128 * self.input as i128
            + t.output as i128 * self.output as i128
            + class(t.cache_read, self.cache_read, "cache-read")?
            + class(
                t.cache_write_5m,
                self.cache_write_5m,
                "5-minute cache-write",
            )?
            + class(t.cache_write_1h, self.cache_write_1h, "1-hour cache-write")?)
    }

    /// What the cache tokens of `t` would have cost as plain input, less what they cost at
    /// these rates, in pico-dollars: the dollars prompt caching saved (negative when writes
    /// cost more than the reads saved). Classes without a rate count as plain input.
    pub fn cache_saving_pico(&self, t: &Tokens) -> i128 {
        let class = |n: u64, rate: Option<i64>| {
            n as i128 * (self.input as i128 - rate.unwrap_or(self.input) as i128)
        };
        class(t.cache_read, self.cache_read)
            + class(t.cache_write_5m, self.cache_write_5m)
            + class(t.cache_write_1h, self.cache_write_1h)
    }

    /// The dearest input-side rate (a bound for any mix of input and cache classes).
    pub fn dearest_input_side(&self) -> i64 {
        self.input
            .max(self.cache_write_5m.unwrap_or(0))
            .max(self.cache_write_1h.unwrap_or(0))
            .max(self.cache_read.unwrap_or(0))
    }
}

/// How a tier changes the rates above its threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierRates {
    /// Multiples of the block's rates: input and both cache classes x `input`, output x
    /// `output` (the long-context form).
    Multiple { input: Ratio, output: Ratio },
    /// Rates of their own (a price list's second column).
    Absolute(Rates),
}

/// Rates for calls whose input side is above `above` tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    pub above: u64,
    pub rates: TierRates,
}

impl Tier {
    /// `above 200,000 input-side tokens: input and cache x2, output x1.5`.
    pub fn describe(&self) -> String {
        let what = match &self.rates {
            TierRates::Multiple { input, output } => format!(
                "input and cache x{}, output x{}",
                input.describe(),
                output.describe()
            ),
            TierRates::Absolute(_) => "rates of their own".to_string(),
        };
        format!(
            "above {} input-side tokens: {what}",
            crate::money::group_thousands(self.above)
        )
    }
}

/// One dated block of a model's prices: the rates and every rule in force from `from_day`
/// until the next block starts. A rule that starts or ends is a new block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBlock {
    /// The rates (and `from_day`).
    pub base: Rates,
    /// Rates that differ by the region the request was made in (`ap-northeast-1`, ...).
    pub regions: BTreeMap<String, Rates>,
    /// Input-side tiers, lowest threshold first; the highest one a call is above applies.
    pub tiers: Vec<Tier>,
    /// The multiple on geographic and in-region endpoints (not `global.`).
    pub regional_premium: Option<Ratio>,
    /// The multiple in AWS GovCloud (`us-gov.` profiles, `arn:aws-us-gov` ARNs, `us-gov-*`
    /// regions), in place of the regional premium.
    pub govcloud_premium: Option<Ratio>,
    pub source: Option<String>,
    pub confirmed: bool,
}

/// One model of the catalog.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub key: String,
    pub name: String,
    /// Sorted by `base.from_day`.
    pub blocks: Vec<RateBlock>,
    /// Where the entry came from: `embedded` or a file path.
    pub origin: String,
    /// Where its rates were taken from (a price list).
    pub source: Option<String>,
    /// False when any of its rates or rules is taken from secondary sources.
    pub confirmed: bool,
}

impl ModelEntry {
    /// The block in force on `day` (UTC day number).
    pub fn block_on(&self, day: i64) -> Option<&RateBlock> {
        self.blocks.iter().rev().find(|b| b.base.from_day <= day)
    }
}

/// Why a call could not be priced.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unpriced {
    /// The id names no model (an application-inference-profile ARN with no mapping, ...).
    NoModel(String),
    /// The catalog has no entry for this model key.
    UnknownModel(String),
    /// The entry has no rates in force on that day.
    NoRateOnDay(String, String),
    /// Tokens of a class (1-hour cache writes, ...) the entry has no rate for.
    NoClassRate(String, &'static str),
}

impl std::fmt::Display for Unpriced {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Unpriced::NoModel(why) => write!(f, "{why}"),
            Unpriced::UnknownModel(k) => write!(f, "no catalog entry for model `{k}`"),
            Unpriced::NoRateOnDay(k, d) => {
                write!(f, "catalog entry `{k}` has no rate in force on {d}")
            }
            Unpriced::NoClassRate(k, class) => {
                write!(f, "catalog entry `{k}` has no {class} rate")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {}", problems.join("; "))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<String>,
    #[serde(default)]
    model: Vec<RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    key: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    confirmed: Option<bool>,
    /// Defaults for every block that does not name its own.
    #[serde(default)]
    regional_premium: Option<String>,
    #[serde(default)]
    govcloud_premium: Option<String>,
    #[serde(default)]
    long_context: Option<RawLongContext>,
    #[serde(default)]
    rates: Vec<RawRates>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawLongContext {
    #[serde(default)]
    above: Option<u64>,
    input: String,
    output: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates {
    from: String,
    input: String,
    output: String,
    #[serde(default)]
    cache_write_5m: Option<String>,
    #[serde(default)]
    cache_write_1h: Option<String>,
    #[serde(default)]
    cache_read: Option<String>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    confirmed: Option<bool>,
    #[serde(default)]
    regional_premium: Option<String>,
    #[serde(default)]
    govcloud_premium: Option<String>,
    #[serde(default)]
    long_context: Option<RawLongContext>,
    #[serde(default)]
    tiers: Vec<RawTier>,
    #[serde(default)]
    regions: BTreeMap<String, RawRegionRates>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    above: u64,
    input: String,
    output: String,
    #[serde(default)]
    cache_write_5m: Option<String>,
    #[serde(default)]
    cache_write_1h: Option<String>,
    #[serde(default)]
    cache_read: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegionRates {
    input: String,
    output: String,
    #[serde(default)]
    cache_write_5m: Option<String>,
    #[serde(default)]
    cache_write_1h: Option<String>,
    #[serde(default)]
    cache_read: Option<String>,
}

/// The price catalog: model key -> entry.
#[derive(Debug, Clone)]
pub struct PriceCatalog {
    entries: BTreeMap<String, ModelEntry>,
}

/// Which premium a decision applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Premium {
    Regional(Ratio),
    GovCloud(Ratio),
}

/// How one call (or a group of calls of one model, day, region and input band) is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceDecision {
    pub key: String,
    pub name: String,
    /// The rates with every rule applied (`from_day`: the block's).
    pub rates: Rates,
    pub premium: Option<Premium>,
    /// The tier applied, if the call is above one.
    pub tier: Option<Tier>,
    /// The request region whose own rates were used, if the block has some for it.
    pub region_rates: Option<String>,
    pub source: Option<String>,
    pub confirmed: bool,
}

/// Whether a call was made in AWS GovCloud: a `us-gov.` profile, an `arn:aws-us-gov` ARN or a
/// `us-gov-*` region.
pub fn is_govcloud(model: &ModelName, raw_id: &str, region: &str) -> bool {
    model.geography == Geography::Geo("us-gov".into())
        || raw_id.trim().starts_with("arn:aws-us-gov:")
        || region.starts_with("us-gov-")
}

/// Parses the catalog's rate fields of one block (USD per million tokens -> pico per token).
struct FieldParser<'a> {
    at: String,
    problems: &'a mut Vec<String>,
}

impl FieldParser<'_> {
    fn rate(&mut self, name: &str, v: &str) -> i64 {
        match parse_scaled_decimal(v, 6) {
            Ok(x) if x >= 0 => x,
            Ok(_) => {
                self.problems
                    .push(format!("{}: `{name}` = `{v}` is negative", self.at));
                0
            }
            Err(e) => {
                self.problems.push(format!("{}: `{name}`: {e}", self.at));
                0
            }
        }
    }
    fn premium(&mut self, name: &str, v: Option<&str>) -> Option<Ratio> {
        let v = v?;
        Ratio::parse_percent_increase(v)
            .map_err(|e| self.problems.push(format!("{}: `{name}`: {e}", self.at)))
            .ok()
    }
    fn threshold(&mut self, name: &str, above: u64) -> u64 {
        if !INPUT_BAND_EDGES.contains(&above) {
            self.problems.push(format!(
                "{}: `{name}` = {above}: a tier starts above one of {} input-side tokens (the store keeps its sums apart at these sizes)",
                self.at,
                INPUT_BAND_EDGES.map(crate::money::group_thousands).join(", ")
            ));
        }
        above
    }
    fn long_context(&mut self, lc: &RawLongContext) -> Option<Tier> {
        let above = self.threshold(
            "long_context.above",
            lc.above.unwrap_or(LONG_CONTEXT_THRESHOLD),
        );
        let i = Ratio::parse_multiple(&lc.input)
            .map_err(|e| {
                self.problems
                    .push(format!("{}: `long_context.input`: {e}", self.at))
            })
            .ok();
        let o = Ratio::parse_multiple(&lc.output)
            .map_err(|e| {
                self.problems
                    .push(format!("{}: `long_context.output`: {e}", self.at))
            })
            .ok();
        let (input, output) = i.zip(o)?;
        Some(Tier {
            above,
            rates: TierRates::Multiple { input, output },
        })
    }
}

impl PriceCatalog {
    /// The catalog compiled into the binary.
    pub fn embedded() -> PriceCatalog {
        match PriceCatalog::parse(EMBEDDED_CATALOG, "embedded catalog") {
            Ok(c) => c,
            // The embedded file is pinned by a test; this cannot happen in a released binary.
            Err(e) => panic!("the embedded price catalog is invalid: {e}"),
        }
    }

    /// The embedded catalog's text (for `pricing diff` and tests).
    pub fn embedded_text() -> &'static str {
        EMBEDDED_CATALOG
    }

    pub fn parse(text: &str, origin: &str) -> Result<PriceCatalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| CatalogError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        for m in raw.model {
            let key = m.key.trim().to_ascii_lowercase();
            let model_confirmed = m.confirmed.unwrap_or(true);
            let mut blocks = Vec::new();
            for r in &m.rates {
                let mut p = FieldParser {
                    at: format!("model `{key}`, rates from {}", r.from),
                    problems: &mut problems,
                };
                let from_day = parse_date(&r.from);
                if from_day.is_none() {
                    let at = p.at.clone();
                    p.problems.push(format!(
                        "{at}: `from` = `{}` is not a date (YYYY-MM-DD)",
                        r.from
                    ));
                }
                let from_day = from_day.unwrap_or(0);
                let base = Rates {
                    from_day,
                    input: p.rate("input", &r.input),
                    output: p.rate("output", &r.output),
                    cache_write_5m: r
                        .cache_write_5m
                        .as_deref()
                        .map(|v| p.rate("cache_write_5m", v)),
                    cache_write_1h: r
                        .cache_write_1h
                        .as_deref()
                        .map(|v| p.rate("cache_write_1h", v)),
                    cache_read: r.cache_read.as_deref().map(|v| p.rate("cache_read", v)),
                };
                let mut regions = BTreeMap::new();
                for (region, rr) in &r.regions {
                    let rates = Rates {
                        from_day,
                        input: p.rate(&format!("regions.{region}.input"), &rr.input),
                        output: p.rate(&format!("regions.{region}.output"), &rr.output),
                        cache_write_5m: match &rr.cache_write_5m {
                            Some(v) => Some(p.rate(&format!("regions.{region}.cache_write_5m"), v)),
                            None => base.cache_write_5m,
                        },
                        cache_write_1h: match &rr.cache_write_1h {
                            Some(v) => Some(p.rate(&format!("regions.{region}.cache_write_1h"), v)),
                            None => base.cache_write_1h,
                        },
                        cache_read: match &rr.cache_read {
                            Some(v) => Some(p.rate(&format!("regions.{region}.cache_read"), v)),
                            None => base.cache_read,
                        },
                    };
                    regions.insert(region.trim().to_ascii_lowercase(), rates);
                }
                let mut tiers = Vec::new();
                if let Some(lc) = r.long_context.as_ref().or(m.long_context.as_ref()) {
                    tiers.extend(p.long_context(lc));
                }
                for t in &r.tiers {
                    let above = p.threshold("tiers.above", t.above);
                    let rates = Rates {
                        from_day,
                        input: p.rate("tiers.input", &t.input),
                        output: p.rate("tiers.output", &t.output),
                        cache_write_5m: t
                            .cache_write_5m
                            .as_deref()
                            .map(|v| p.rate("tiers.cache_write_5m", v)),
                        cache_write_1h: t
                            .cache_write_1h
                            .as_deref()
                            .map(|v| p.rate("tiers.cache_write_1h", v)),
                        cache_read: t
                            .cache_read
                            .as_deref()
                            .map(|v| p.rate("tiers.cache_read", v)),
                    };
                    tiers.push(Tier {
                        above,
                        rates: TierRates::Absolute(rates),
                    });
                }
                tiers.sort_by_key(|t| t.above);
                if tiers.windows(2).any(|w| w[0].above == w[1].above) {
                    let at = p.at.clone();
                    p.problems
                        .push(format!("{at}: two tiers start above the same size"));
                }
                if !regions.is_empty()
                    && tiers
                        .iter()
                        .any(|t| matches!(t.rates, TierRates::Absolute(_)))
                {
                    let at = p.at.clone();
                    p.problems.push(format!("{at}: rates by region and tiers with rates of their own cannot be combined (write the tier as `long_context` multiples)"));
                }
                let regional_premium = p.premium(
                    "regional_premium",
                    r.regional_premium
                        .as_deref()
                        .or(m.regional_premium.as_deref()),
                );
                let govcloud_premium = p.premium(
                    "govcloud_premium",
                    r.govcloud_premium
                        .as_deref()
                        .or(m.govcloud_premium.as_deref()),
                );
                blocks.push(RateBlock {
                    base,
                    regions,
                    tiers,
                    regional_premium,
                    govcloud_premium,
                    source: r.source.clone().or_else(|| m.source.clone()),
                    confirmed: r.confirmed.unwrap_or(model_confirmed),
                });
            }
            let at = format!("model `{key}`");
            if blocks.is_empty() {
                problems.push(format!("{at}: no `[[model.rates]]`"));
            }
            blocks.sort_by_key(|b| b.base.from_day);
            if blocks
                .windows(2)
                .any(|w| w[0].base.from_day == w[1].base.from_day)
            {
                problems.push(format!("{at}: two rate blocks start on the same day"));
            }
            let entry = ModelEntry {
                name: m.name.clone().unwrap_or_else(|| key.clone()),
                key: key.clone(),
                confirmed: model_confirmed && blocks.iter().all(|b| b.confirmed),
                blocks,
                origin: origin.to_string(),
                source: m.source.clone(),
            };
            if entries.insert(key.clone(), entry).is_some() {
                problems.push(format!("{at} appears twice"));
            }
        }
        if problems.is_empty() {
            Ok(PriceCatalog { entries })
        } else {
            Err(CatalogError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Entries of `other` replace entries with the same key and add new ones.
    pub fn merge(&mut self, other: PriceCatalog) {
        self.entries.extend(other.entries);
    }

    pub fn entries(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries.values()
    }

    pub fn entry(&self, key: &str) -> Option<&ModelEntry> {
        self.entries.get(key)
    }

    /// The rates that price calls of `model` made in `region` on `day` (UTC day number) whose
    /// input side falls in `band`, with every rule of the block in force applied.
    pub fn decide(
        &self,
        model: &ModelName,
        raw_id: &str,
        region: &str,
        day: i64,
        band: InputBand,
    ) -> Result<PriceDecision, Unpriced> {
        let key = match &model.key {
            Some(k) => k,
            None => {
                return Err(Unpriced::NoModel(match model.form {
                    IdForm::ApplicationProfileArn => format!("`{raw_id}` is an application inference profile: map it to a model id under [models] in the config"),
                    IdForm::ProvisionedModelArn => format!("`{raw_id}` is provisioned throughput, billed by the hour, not per token"),
                    _ => format!("`{raw_id}` names no model"),
                }))
            }
        };
        let entry = self
            .entries
            .get(key)
            .ok_or_else(|| Unpriced::UnknownModel(key.clone()))?;
        let block = entry
            .block_on(day)
            .ok_or_else(|| Unpriced::NoRateOnDay(key.clone(), format_date(day)))?;
        let region_key = region.trim().to_ascii_lowercase();
        let (mut rates, region_rates) = match block.regions.get(&region_key) {
            Some(r) => (r.clone(), Some(region_key)),
            None => (block.base.clone(), None),
        };
        let tier = block
            .tiers
            .iter()
            .rev()
            .find(|t| band.above(t.above))
            .cloned();
        if let Some(t) = &tier {
            rates = match &t.rates {
                TierRates::Multiple { input, output } => rates.scaled(*input, *output),
                TierRates::Absolute(r) => r.clone(),
            };
        }
        let premium = if model.geography == Geography::Global {
            None
        } else if is_govcloud(model, raw_id, region) {
            block
                .govcloud_premium
                .map(Premium::GovCloud)
                .or(block.regional_premium.map(Premium::Regional))
        } else {
            block.regional_premium.map(Premium::Regional)
        };
        if let Some(Premium::Regional(p) | Premium::GovCloud(p)) = premium {
            rates = rates.scaled(p, p);
        }
        Ok(PriceDecision {
            key: key.clone(),
            name: entry.name.clone(),
            rates,
            premium,
            tier,
            region_rates,
            source: block.source.clone(),
            confirmed: block.confirmed,
        })
    }

    /// The cost of one call's `tokens` in pico-dollars, made in `region` on UTC day `day`.
    pub fn cost_pico(
        &self,
        model: &ModelName,
        raw_id: &str,
        region: &str,
        day: i64,
        tokens: &Tokens,
    ) -> Result<i128, Unpriced> {
        self.cost_pico_with(model, raw_id, region, day, tokens, InputBand::of(tokens))
    }

    /// The cost of `tokens` in pico-dollars at the rates of input band `band` (a single call:
    /// [`InputBand::of`]; a fact: the band it was summed under).
    pub fn cost_pico_with(
        &self,
        model: &ModelName,
        raw_id: &str,
        region: &str,
        day: i64,
        tokens: &Tokens,
        band: InputBand,
    ) -> Result<i128, Unpriced> {
        let d = self.decide(model, raw_id, region, day, band)?;
        d.rates
            .cost_pico(tokens)
            .map_err(|class| Unpriced::NoClassRate(d.key, class))
    }

    /// The cost of one call (or one fact) in nano-dollars, rounded once: the one price every
    /// reader of single calls uses (queries, metrics). Sums over many calls (reports) add
    /// [`PriceCatalog::cost_pico`] and round at the end instead.
    pub fn price(
        &self,
        model: &ModelName,
        raw_id: &str,
        region: &str,
        day: i64,
        tokens: &Tokens,
        band: InputBand,
    ) -> Result<NanoUsd, Unpriced> {
        self.cost_pico_with(model, raw_id, region, day, tokens, band)
            .map(NanoUsd::from_pico)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::NanoUsd;
    use crate::time::parse_date;

    fn norm(id: &str) -> ModelName {
        normalize_model_id(id, &HashMap::new())
    }

    #[test]
    fn one_price_for_one_call_rounded_once() {
        let c = PriceCatalog::embedded();
        let id = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let day = parse_date("2026-11-03").expect("date");
        // 1,234 input tokens at $3.30/M (a geographic profile: +10%) = $0.0040722.
        let t = Tokens {
            input: 1_234,
            ..Tokens::default()
        };
        let got = c.price(&norm(id), id, "us-east-1", day, &t, InputBand::of(&t));
        assert_eq!(got, Ok(NanoUsd(4_072_200)));
        assert_eq!(
            got.map(|n| n.0 as i128),
            c.cost_pico(&norm(id), id, "us-east-1", day, &t)
                .map(|p| NanoUsd::from_pico(p).0 as i128)
        );
        // A fact is priced by the band it was summed under, not by its (summed) tokens.
        let many = Tokens {
            input: 300_000,
            ..Tokens::default()
        };
        let standard = c
            .price(&norm(id), id, "us-east-1", day, &many, InputBand(0))
            .expect("priced");
        let long = c
            .price(
                &norm(id),
                id,
                "us-east-1",
                day,
                &many,
                InputBand::of_side(200_001),
            )
            .expect("priced");
        assert_eq!(long.0, 2 * standard.0);
    }

    #[test]
    fn every_model_id_form() {
        let cases = [
            ("anthropic.claude-3-haiku-20240307-v1:0", IdForm::Plain, Geography::InRegion, Some("claude-3-haiku")),
            ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", IdForm::SystemProfile, Geography::Global, Some("claude-sonnet-4-5")),
            ("apac.anthropic.claude-haiku-4-5-20251001-v1:0", IdForm::SystemProfile, Geography::Geo("apac".into()), Some("claude-haiku-4-5")),
            ("us-gov.anthropic.claude-3-7-sonnet-20250219-v1:0", IdForm::SystemProfile, Geography::Geo("us-gov".into()), Some("claude-3-7-sonnet")),
            ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-1-20250805-v1:0", IdForm::FoundationModelArn, Geography::InRegion, Some("claude-opus-4-1")),
            ("arn:aws:bedrock:ap-southeast-1:123456789012:inference-profile/apac.anthropic.claude-3-5-sonnet-20241022-v2:0", IdForm::InferenceProfileArn, Geography::Geo("apac".into()), Some("claude-3-5-sonnet")),
            ("arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123", IdForm::ApplicationProfileArn, Geography::InRegion, None),
            ("anthropic.claude-opus-4-6-v1", IdForm::Plain, Geography::InRegion, Some("claude-opus-4-6")),
            ("anthropic.claude-sonnet-4-6", IdForm::Plain, Geography::InRegion, Some("claude-sonnet-4-6")),
            ("anthropic.claude-v2:1", IdForm::Plain, Geography::InRegion, Some("claude-v2")),
            ("anthropic.claude-instant-v1", IdForm::Plain, Geography::InRegion, Some("claude-instant-v1")),
            ("anthropic.claude-3-5-sonnet-20240620-v1:0:200k", IdForm::Plain, Geography::InRegion, Some("claude-3-5-sonnet")),
        ];
        for (id, form, geo, key) in cases {
            let m = norm(id);
            assert_eq!(
                (m.form, m.geography, m.key.as_deref()),
                (form, geo, key),
                "{id}"
            );
        }
        let mut map = HashMap::new();
        map.insert(
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/x".to_string(),
            "global.anthropic.claude-opus-4-5-20251101-v1:0".to_string(),
        );
        let m = normalize_model_id(
            "arn:aws:bedrock:us-east-1:1:application-inference-profile/x",
            &map,
        );
        assert_eq!(
            (m.form, m.geography, m.key.as_deref()),
            (
                IdForm::ApplicationProfileArn,
                Geography::Global,
                Some("claude-opus-4-5")
            )
        );
    }

    fn cost(id: &str, date: &str, t: Tokens) -> Result<NanoUsd, Unpriced> {
        let c = PriceCatalog::embedded();
        c.cost_pico(
            &norm(id),
            id,
            "us-east-1",
            parse_date(date).expect("date"),
            &t,
        )
        .map(NanoUsd::from_pico)
    }

    #[test]
    fn reference_rates_and_rules() {
        let m = Tokens {
            input: 1_000_000,
            ..Default::default()
        };
        // 100k input tokens: below the long-context threshold.
        let k = Tokens {
            input: 100_000,
            ..Default::default()
        };
        // Claude 3 Haiku: $0.25 per million input.
        assert_eq!(
            cost("anthropic.claude-3-haiku-20240307-v1:0", "2026-11-03", m),
            Ok(NanoUsd(250_000_000))
        );
        // Sonnet 4.5 global: $3; in a geography: +10%.
        assert_eq!(
            cost(
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "2026-11-03",
                k
            ),
            Ok(NanoUsd(300_000_000))
        );
        assert_eq!(
            cost(
                "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "2026-11-03",
                k
            ),
            Ok(NanoUsd(330_000_000))
        );
        assert_eq!(
            cost("anthropic.claude-sonnet-4-5-20250929-v1:0", "2026-11-03", k),
            Ok(NanoUsd(330_000_000))
        );
        // No regional premium before the 4.5 generation; 1M input is long context for Sonnet 4.
        assert_eq!(
            cost(
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
                "2026-11-03",
                k
            ),
            Ok(NanoUsd(300_000_000))
        );
        assert_eq!(
            cost(
                "us.anthropic.claude-sonnet-4-20250514-v1:0",
                "2026-11-03",
                m
            ),
            Ok(NanoUsd(6_000_000_000))
        );
        // Long context: input side over 200k: input x2, output x1.5; with the premium on top.
        let long = Tokens {
            input: 150_000,
            cache_read: 50_001,
            output: 1000,
            ..Default::default()
        };
        // (150000*6 + 50001*0.6 + 1000*22.5) per million = 0.9 + 0.0300006 + 0.0225
        assert_eq!(
            cost(
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "2026-11-03",
                long
            ),
            Ok(NanoUsd(952_500_600))
        );
        let at_threshold = Tokens {
            input: 200_000,
            ..Default::default()
        };
        assert_eq!(
            cost(
                "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "2026-11-03",
                at_threshold
            ),
            Ok(NanoUsd(600_000_000))
        );
        // Cache classes: Opus 4.5 global 5m 6.25, 1h 10, read 0.50.
        let cache = Tokens {
            cache_write_5m: 1_000_000,
            cache_write_1h: 1_000_000,
            cache_read: 1_000_000,
            ..Default::default()
        };
        assert_eq!(
            cost(
                "global.anthropic.claude-opus-4-5-20251101-v1:0",
                "2026-11-03",
                cache
            ),
            Ok(NanoUsd(16_750_000_000))
        );
        // Claude 3 Haiku has no 1-hour rate.
        assert!(matches!(
            cost(
                "anthropic.claude-3-haiku-20240307-v1:0",
                "2026-11-03",
                cache
            ),
            Err(Unpriced::NoClassRate(_, "1-hour cache-write"))
        ));
        // Sonnet 5 stayed at $2 after 2026-09-01 (the return to $3 was cancelled).
        assert_eq!(
            cost("global.anthropic.claude-sonnet-5", "2026-08-31", m),
            Ok(NanoUsd(2_000_000_000))
        );
        assert_eq!(
            cost("global.anthropic.claude-sonnet-5", "2026-09-02", m),
            Ok(NanoUsd(2_000_000_000))
        );
        assert!(matches!(
            cost("global.anthropic.claude-sonnet-5", "2026-01-01", m),
            Err(Unpriced::NoRateOnDay(..))
        ));
        // Unknown models are unpriced, never $0.
        assert_eq!(
            cost("anthropic.claude-9-mystery", "2026-11-03", m),
            Err(Unpriced::UnknownModel("claude-9-mystery".into()))
        );
        assert!(matches!(
            cost(
                "arn:aws:bedrock:us-east-1:1:application-inference-profile/zz",
                "2026-11-03",
                m
            ),
            Err(Unpriced::NoModel(_))
        ));
    }

    fn cost_in(id: &str, region: &str, date: &str, t: Tokens) -> Result<NanoUsd, Unpriced> {
        let c = PriceCatalog::embedded();
        c.cost_pico(&norm(id), id, region, parse_date(date).expect("date"), &t)
            .map(NanoUsd::from_pico)
    }

    #[test]
    fn input_bands_split_at_every_edge() {
        assert_eq!(InputBand::of_side(100_000), InputBand(0));
        assert_eq!(InputBand::of_side(100_001), InputBand(1));
        assert_eq!(InputBand::of_side(200_000), InputBand(2));
        assert_eq!(InputBand::of_side(200_001), InputBand(3));
        assert_eq!(InputBand::of_side(5_000_000), InputBand(6));
        assert!(InputBand(3).above(200_000) && !InputBand(2).above(200_000));
        assert!(InputBand(1).above(100_000) && !InputBand(1).above(128_000));
        assert!(!InputBand(6).above(150_000), "not an edge: never above");
    }

    #[test]
    fn dated_rules_start_and_end_with_their_block() {
        let m = Tokens {
            input: 1_000_000,
            ..Default::default()
        };
        let long = Tokens {
            input: 300_000,
            ..Default::default()
        };
        // Opus 4.6 above 200k: x2 until 2026-03-12, standard from 2026-03-13.
        let opus = "global.anthropic.claude-opus-4-6-v1";
        assert_eq!(cost(opus, "2026-03-12", long), Ok(NanoUsd(3_000_000_000)));
        assert_eq!(cost(opus, "2026-03-13", long), Ok(NanoUsd(1_500_000_000)));
        let sonnet = "global.anthropic.claude-sonnet-4-6";
        assert_eq!(cost(sonnet, "2026-03-12", long), Ok(NanoUsd(1_800_000_000)));
        assert_eq!(cost(sonnet, "2026-03-13", long), Ok(NanoUsd(900_000_000)));
        // Sonnet 5.5 cache reads: 0.20 until 2026-10-06, 0.10 from 2026-10-07.
        let reads = Tokens {
            cache_read: 1_000_000,
            ..Default::default()
        };
        let s55 = "global.anthropic.claude-sonnet-5-5";
        assert_eq!(cost(s55, "2026-10-06", reads), Ok(NanoUsd(200_000_000)));
        assert_eq!(cost(s55, "2026-10-08", reads), Ok(NanoUsd(100_000_000)));
        // Haiku 5.5: a tier of its own above 100,000 input-side tokens (5x).
        let h = "global.anthropic.claude-haiku-5-5";
        let at = Tokens {
            input: 100_000,
            ..Default::default()
        };
        let over = Tokens {
            input: 100_001,
            ..Default::default()
        };
        assert_eq!(cost(h, "2026-11-03", at), Ok(NanoUsd(10_000_000)));
        assert_eq!(cost(h, "2026-11-03", over), Ok(NanoUsd(50_000_500)));
        // GovCloud: +20% over global in place of the commercial +10%.
        let gov = "us-gov.anthropic.claude-sonnet-4-5-20250929-v1:0";
        let k = Tokens {
            input: 100_000,
            ..Default::default()
        };
        assert_eq!(cost(gov, "2026-11-03", k), Ok(NanoUsd(360_000_000)));
        let gov_arn = "arn:aws-us-gov:bedrock:us-gov-west-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0";
        assert_eq!(cost(gov_arn, "2026-11-03", m), Ok(NanoUsd(1_200_000_000)));
        assert_eq!(
            cost_in(
                "anthropic.claude-3-haiku-20240307-v1:0",
                "us-gov-west-1",
                "2026-11-03",
                m
            ),
            Ok(NanoUsd(300_000_000))
        );
        // Rates by the request's region (Claude Instant).
        let inst = "anthropic.claude-instant-v1";
        assert_eq!(
            cost_in(inst, "us-east-1", "2026-11-03", m),
            Ok(NanoUsd(800_000_000))
        );
        assert_eq!(
            cost_in(inst, "ap-northeast-1", "2026-11-03", m),
            Ok(NanoUsd(2_230_000_000))
        );
        assert_eq!(
            cost_in(inst, "eu-central-1", "2026-11-03", m),
            Ok(NanoUsd(2_480_000_000))
        );
    }

    #[test]
    fn where_the_catalog_differs_from_litellm_it_is_right() {
        let m = Tokens {
            input: 1_000_000,
            ..Default::default()
        };
        let cache = Tokens {
            cache_write_5m: 1_000_000,
            cache_read: 1_000_000,
            ..Default::default()
        };
        // Claude 3 Haiku's cache rates: write 0.30, read 0.03.
        assert_eq!(
            cost(
                "anthropic.claude-3-haiku-20240307-v1:0",
                "2026-11-03",
                cache
            ),
            Ok(NanoUsd(330_000_000))
        );
        // The regional premium applies to plain in-region ids of the 4.5 generation.
        assert_eq!(
            cost(
                "anthropic.claude-sonnet-4-5-20250929-v1:0",
                "2026-11-03",
                Tokens {
                    input: 100_000,
                    ..Default::default()
                }
            ),
            Ok(NanoUsd(330_000_000))
        );
        // eu. Opus 4.5: $5.50.
        assert_eq!(
            cost(
                "eu.anthropic.claude-opus-4-5-20251101-v1:0",
                "2026-11-03",
                m
            ),
            Ok(NanoUsd(5_500_000_000))
        );
        // No long context for Claude 3.5 Sonnet.
        let long = Tokens {
            input: 300_000,
            ..Default::default()
        };
        assert_eq!(
            cost(
                "anthropic.claude-3-5-sonnet-20241022-v2:0",
                "2026-11-03",
                long
            ),
            Ok(NanoUsd(900_000_000))
        );
    }

    #[test]
    fn a_tier_must_start_at_a_band_edge_and_rules_are_checked() {
        let bad = PriceCatalog::parse(
            "[[model]]\nkey = \"x\"\n[[model.rates]]\nfrom = \"2026-01-01\"\ninput = \"1\"\noutput = \"2\"\ncache_write_5m = \"1\"\ncache_read = \"0.1\"\ngovcloud_premium = \"twenty\"\n[[model.rates.tiers]]\nabove = 150000\ninput = \"2\"\noutput = \"4\"\ncache_write_5m = \"2\"\ncache_read = \"0.2\"\n",
            "bad.toml",
        );
        let msg = bad.expect_err("invalid").to_string();
        assert!(
            msg.contains("150000") && msg.contains("100,000") && msg.contains("govcloud_premium"),
            "{msg}"
        );
    }

    #[test]
    fn overrides_replace_and_add() {
        let mut c = PriceCatalog::embedded();
        let user = PriceCatalog::parse(
            "[[model]]\nkey = \"claude-3-haiku\"\n[[model.rates]]\nfrom = \"2020-01-01\"\ninput = \"1\"\noutput = \"2\"\ncache_write_5m = \"1\"\ncache_read = \"0.1\"\n",
            "user.toml",
        )
        .expect("parse");
        c.merge(user);
        let e = c.entry("claude-3-haiku").expect("entry");
        assert_eq!(e.origin, "user.toml");
        assert_eq!(e.blocks[0].base.input, 1_000_000);
        let bad = PriceCatalog::parse("[[model]]\nkey = \"x\"\nregional_premium = \"ten\"\n[[model.rates]]\nfrom = \"2020-13-01\"\ninput = \"1.0000001\"\noutput = \"2\"\ncache_write_5m = \"1\"\ncache_read = \"0.1\"\n", "bad.toml");
        let msg = bad.expect_err("invalid").to_string();
        assert!(
            msg.contains("regional_premium") && msg.contains("`from`") && msg.contains("`input`"),
            "{msg}"
        );
    }
}
