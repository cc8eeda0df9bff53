//! Prices: model-id normalization and the [`PriceCatalog`] that turns token counts into money.
//!
//! Cost = sum over token classes of tokens x rate, in integer pico-dollars (see `money`). A model
//! the catalog does not know is *unpriced*: it is named and counted, never priced at $0.
//! Rates and costs are integers: the lint below refuses float arithmetic in this module.

#![deny(clippy::float_arithmetic)]

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::money::{parse_scaled_decimal, NanoUsd};
use crate::record::Tokens;
use crate::time::{format_date, parse_date};

/// Requests whose input side exceeds this many tokens are long-context requests.
pub const LONG_CONTEXT_THRESHOLD: u64 = 200_000;

/// Whether one call is billed at long-context rates (where its model has them): its input side
/// (input + cache read + cache write) is over [`LONG_CONTEXT_THRESHOLD`].
pub fn is_long_context(tokens: &Tokens) -> bool {
    tokens.input_side() > LONG_CONTEXT_THRESHOLD
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
    fn apply(self, pico: i64) -> i64 {
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
    fn parse_percent_increase(s: &str) -> Result<Ratio, String> {
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
    pub cache_write_5m: i64,
    pub cache_write_1h: Option<i64>,
    pub cache_read: i64,
}

impl Rates {
    fn scaled(&self, input_side: Ratio, output: Ratio) -> Rates {
        Rates {
            from_day: self.from_day,
            input: input_side.apply(self.input),
            output: output.apply(self.output),
            cache_write_5m: input_side.apply(self.cache_write_5m),
            cache_write_1h: self.cache_write_1h.map(|r| input_side.apply(r)),
            cache_read: input_side.apply(self.cache_read),
        }
    }

    /// The cost of `t` in pico-dollars, or `None` if `t` has 1-hour cache writes and the model
    /// has no 1-hour rate.
    pub fn cost_pico(&self, t: &Tokens) -> Option<i128> {
        let h1 = match (t.cache_write_1h, self.cache_write_1h) {
            (0, _) => 0,
            (n, Some(r)) => n as i128 * r as i128,
            (_, None) => return None,
        };
        Some(
            t.input as i128 * self.input as i128
                + t.output as i128 * self.output as i128
                + t.cache_read as i128 * self.cache_read as i128
                + t.cache_write_5m as i128 * self.cache_write_5m as i128
                + h1,
        )
    }
}

/// One model of the catalog.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    pub key: String,
    pub name: String,
    pub regional_premium: Option<Ratio>,
    /// (input-side multiple, output multiple) above [`LONG_CONTEXT_THRESHOLD`].
    pub long_context: Option<(Ratio, Ratio)>,
    /// Sorted by `from_day`.
    pub rates: Vec<Rates>,
    /// Where the entry came from: `embedded` or a file path.
    pub origin: String,
    /// Where its rates were taken from (a price list).
    pub source: Option<String>,
    /// False for rates taken from secondary sources.
    pub confirmed: bool,
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
    /// 1-hour cache writes on a model without a 1-hour rate.
    NoOneHourRate(String),
}

impl std::fmt::Display for Unpriced {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Unpriced::NoModel(why) => write!(f, "{why}"),
            Unpriced::UnknownModel(k) => write!(f, "no catalog entry for model `{k}`"),
            Unpriced::NoRateOnDay(k, d) => {
                write!(f, "catalog entry `{k}` has no rate in force on {d}")
            }
            Unpriced::NoOneHourRate(k) => {
                write!(f, "catalog entry `{k}` has no 1-hour cache-write rate")
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
    #[serde(default)]
    regional_premium: Option<String>,
    #[serde(default)]
    long_context: Option<RawLongContext>,
    #[serde(default)]
    rates: Vec<RawRates>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongContext {
    input: String,
    output: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates {
    from: String,
    input: String,
    output: String,
    cache_write_5m: String,
    #[serde(default)]
    cache_write_1h: Option<String>,
    cache_read: String,
}

/// The price catalog: model key -> entry.
#[derive(Debug, Clone)]
pub struct PriceCatalog {
    entries: BTreeMap<String, ModelEntry>,
}

/// How one call (or a group of calls of one model, day and class) is priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceDecision {
    pub key: String,
    pub name: String,
    pub rates: Rates,
    pub regional_premium: Option<Ratio>,
    pub long_context: Option<(Ratio, Ratio)>,
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

    pub fn parse(text: &str, origin: &str) -> Result<PriceCatalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| CatalogError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        for m in raw.model {
            let key = m.key.trim().to_ascii_lowercase();
            let at = format!("model `{key}`");
            let regional_premium = m.regional_premium.as_deref().and_then(|s| {
                Ratio::parse_percent_increase(s)
                    .map_err(|e| problems.push(format!("{at}: `regional_premium`: {e}")))
                    .ok()
            });
            let long_context = m.long_context.as_ref().and_then(|lc| {
                let i = Ratio::parse_multiple(&lc.input)
                    .map_err(|e| problems.push(format!("{at}: `long_context.input`: {e}")))
                    .ok();
                let o = Ratio::parse_multiple(&lc.output)
                    .map_err(|e| problems.push(format!("{at}: `long_context.output`: {e}")))
                    .ok();
                i.zip(o)
            });
            let mut rates = Vec::new();
            for r in &m.rates {
                let from_day = parse_date(&r.from);
                if from_day.is_none() {
                    problems.push(format!(
                        "{at}: `from` = `{}` is not a date (YYYY-MM-DD)",
                        r.from
                    ));
                }
                let mut field = |name: &str, v: &str| -> i64 {
                    match parse_scaled_decimal(v, 6) {
                        Ok(x) if x >= 0 => x,
                        Ok(_) => {
                            problems.push(format!("{at}: `{name}` = `{v}` is negative"));
                            0
                        }
                        Err(e) => {
                            problems.push(format!("{at}: `{name}`: {e}"));
                            0
                        }
                    }
                };
                let rate = Rates {
                    from_day: from_day.unwrap_or(0),
                    input: field("input", &r.input),
                    output: field("output", &r.output),
                    cache_write_5m: field("cache_write_5m", &r.cache_write_5m),
                    cache_write_1h: r
                        .cache_write_1h
                        .as_deref()
                        .map(|v| field("cache_write_1h", v)),
                    cache_read: field("cache_read", &r.cache_read),
                };
                rates.push(rate);
            }
            if rates.is_empty() {
                problems.push(format!("{at}: no `[[model.rates]]`"));
            }
            rates.sort_by_key(|r| r.from_day);
            if rates.windows(2).any(|w| w[0].from_day == w[1].from_day) {
                problems.push(format!("{at}: two rate blocks start on the same day"));
            }
            let entry = ModelEntry {
                name: m.name.clone().unwrap_or_else(|| key.clone()),
                key: key.clone(),
                regional_premium,
                long_context,
                rates,
                origin: origin.to_string(),
                source: m.source.clone(),
                confirmed: m.confirmed.unwrap_or(true),
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

    /// The rates that price calls of `model` on `day` (UTC day number), with the rules applied.
    pub fn decide(
        &self,
        model: &ModelName,
        raw_id: &str,
        day: i64,
        long_context: bool,
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
        let base = entry
            .rates
            .iter()
            .rev()
            .find(|r| r.from_day <= day)
            .ok_or_else(|| Unpriced::NoRateOnDay(key.clone(), format_date(day)))?;
        let premium = match (&model.geography, entry.regional_premium) {
            (Geography::Global, _) | (_, None) => None,
            (_, Some(p)) => Some(p),
        };
        let lc = if long_context {
            entry.long_context
        } else {
            None
        };
        let mut rates = base.clone();
        if let Some((i, o)) = lc {
            rates = rates.scaled(i, o);
        }
        if let Some(p) = premium {
            rates = rates.scaled(p, p);
        }
        Ok(PriceDecision {
            key: key.clone(),
            name: entry.name.clone(),
            rates,
            regional_premium: premium,
            long_context: lc,
        })
    }

    /// The cost of one call's `tokens` in pico-dollars on UTC day `day`.
    pub fn cost_pico(
        &self,
        model: &ModelName,
        raw_id: &str,
        day: i64,
        tokens: &Tokens,
    ) -> Result<i128, Unpriced> {
        self.cost_pico_with(model, raw_id, day, tokens, is_long_context(tokens))
    }

    /// The cost of `tokens` in pico-dollars, on UTC day `day`, at long-context rates when
    /// `long_context` (a single call: [`is_long_context`]; a fact: the flag it was summed under).
    pub fn cost_pico_with(
        &self,
        model: &ModelName,
        raw_id: &str,
        day: i64,
        tokens: &Tokens,
        long_context: bool,
    ) -> Result<i128, Unpriced> {
        let d = self.decide(model, raw_id, day, long_context)?;
        d.rates
            .cost_pico(tokens)
            .ok_or(Unpriced::NoOneHourRate(d.key))
    }

    /// The cost of one call (or one fact) in nano-dollars, rounded once: the one price every
    /// reader of single calls uses (queries, metrics). Sums over many calls (reports) add
    /// [`PriceCatalog::cost_pico`] and round at the end instead.
    pub fn price(
        &self,
        model: &ModelName,
        raw_id: &str,
        day: i64,
        tokens: &Tokens,
        long_context: bool,
    ) -> Result<NanoUsd, Unpriced> {
        self.cost_pico_with(model, raw_id, day, tokens, long_context)
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
        let got = c.price(&norm(id), id, day, &t, is_long_context(&t));
        assert_eq!(got, Ok(NanoUsd(4_072_200)));
        assert_eq!(
            got.map(|n| n.0 as i128),
            c.cost_pico(&norm(id), id, day, &t)
                .map(|p| NanoUsd::from_pico(p).0 as i128)
        );
        // A fact is priced by the class it was summed under, not by its (summed) tokens.
        let many = Tokens {
            input: 300_000,
            ..Tokens::default()
        };
        let standard = c.price(&norm(id), id, day, &many, false).expect("priced");
        let long = c.price(&norm(id), id, day, &many, true).expect("priced");
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
        c.cost_pico(&norm(id), id, parse_date(date).expect("date"), &t)
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
            Err(Unpriced::NoOneHourRate(_))
        ));
        // Effective dates: Sonnet 5's introductory rate, then the list rate.
        assert_eq!(
            cost("global.anthropic.claude-sonnet-5", "2026-08-31", m),
            Ok(NanoUsd(2_000_000_000))
        );
        assert_eq!(
            cost("global.anthropic.claude-sonnet-5", "2026-09-01", m),
            Ok(NanoUsd(3_000_000_000))
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
        assert_eq!(e.rates[0].input, 1_000_000);
        let bad = PriceCatalog::parse("[[model]]\nkey = \"x\"\nregional_premium = \"ten\"\n[[model.rates]]\nfrom = \"2020-13-01\"\ninput = \"1.0000001\"\noutput = \"2\"\ncache_write_5m = \"1\"\ncache_read = \"0.1\"\n", "bad.toml");
        let msg = bad.expect_err("invalid").to_string();
        assert!(
            msg.contains("regional_premium") && msg.contains("`from`") && msg.contains("`input`"),
            "{msg}"
        );
    }
}
