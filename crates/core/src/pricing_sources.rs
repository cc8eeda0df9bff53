//! Second sources for the price catalog, all pure (the caller reads the files):
//! - [`import_aws`]: AWS's own prices (the Price List offer file for Amazon Bedrock) mapped to
//!   catalog entries with effective dates, written as an override catalog. A usage type that
//!   cannot be mapped is listed with the reason, never guessed.
//! - [`diff`]: what an override catalog changes against another (the embedded one), by day.
//! - [`check_litellm`]: each difference between the catalog and a LiteLLM price map.
//!
//! Rates are compared and written as integers (pico-dollars per token); a source's decimal
//! strings are converted exactly.

#![deny(clippy::float_arithmetic)]

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::pricing::{
    normalize_model_id, InputBand, PriceCatalog, RateBlock, Rates, Ratio, TierRates,
    INPUT_BAND_EDGES,
};
use crate::time::{format_date, parse_date};

/// `3.75` from pico-dollars per token (USD per million tokens, at least two decimals).
pub fn usd_per_million(pico: i64) -> String {
    let int = pico / 1_000_000;
    let frac = pico % 1_000_000;
    let mut f = format!("{frac:06}");
    while f.len() > 2 && f.ends_with('0') {
        f.pop();
    }
    format!("{int}.{f}")
}

/// An exact decimal (`0.0030000000`, `3e-06`, `2.475E-05`) times 10^`scale`, rounded half up
/// at the last digit kept; `None` when it is not a plain non-negative number.
pub fn decimal_scaled(s: &str, scale: i32) -> Option<i64> {
    let t = s.trim();
    let (mant, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: String = format!("{int}{frac}");
    // value = digits x 10^(exp - frac.len()); scaled: x 10^scale.
    let shift = exp - frac.len() as i32 + scale;
    let mut v: i128 = 0;
    for b in digits.bytes() {
        v = v.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    let v = if shift >= 0 {
        v.checked_mul(10i128.checked_pow(shift as u32)?)?
    } else {
        let d = 10i128.checked_pow((-shift) as u32).unwrap_or(i128::MAX);
        (v + d / 2) / d
    };
    i64::try_from(v).ok()
}

/// AWS's region codes in usage types (`USE1-...`).
const USAGE_REGIONS: &[(&str, &str)] = &[
    ("USE1", "us-east-1"),
    ("USE2", "us-east-2"),
    ("USW1", "us-west-1"),
    ("USW2", "us-west-2"),
    ("UGW1", "us-gov-west-1"),
    ("UGE1", "us-gov-east-1"),
    ("CAN1", "ca-central-1"),
    ("SAE1", "sa-east-1"),
    ("EUC1", "eu-central-1"),
    ("EUC2", "eu-central-2"),
    ("EUW1", "eu-west-1"),
    ("EUW2", "eu-west-2"),
    ("EUW3", "eu-west-3"),
    ("EUN1", "eu-north-1"),
    ("EUS1", "eu-south-1"),
    ("EUS2", "eu-south-2"),
    ("APN1", "ap-northeast-1"),
    ("APN2", "ap-northeast-2"),
    ("APN3", "ap-northeast-3"),
    ("APS1", "ap-southeast-1"),
    ("APS2", "ap-southeast-2"),
    ("APS3", "ap-south-1"),
    ("APS4", "ap-southeast-3"),
    ("APS5", "ap-south-2"),
    ("APS6", "ap-southeast-4"),
    ("MEC1", "me-central-1"),
    ("MES1", "me-south-1"),
    ("AFS1", "af-south-1"),
    ("ILC1", "il-central-1"),
];

/// A token class of a price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    Input,
    Output,
    CacheWrite5m,
    CacheWrite1h,
    CacheRead,
}

/// Words of a usage type: camel case, `-`, `_`, `:` and `.` split, lower case.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev: Option<char> = None;
    for c in s.chars() {
        if matches!(c, '-' | '_' | ':' | ' ' | '/' | '(' | ')') {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur).to_ascii_lowercase());
            }
            prev = None;
            continue;
        }
        let boundary = match prev {
            Some(p) => {
                (c.is_ascii_uppercase() && p.is_ascii_lowercase())
                    || (c.is_ascii_alphabetic()
                        && p.is_ascii_digit()
                        && !matches!(c, 'k' | 'K' | 'h' | 'm' | 'M'))
                    || (c.is_ascii_digit() && p.is_ascii_alphabetic() && !cur.ends_with(['v', 'V']))
            }
            None => false,
        };
        if boundary && !cur.is_empty() {
            out.push(std::mem::take(&mut cur).to_ascii_lowercase());
        }
        cur.push(c);
        prev = Some(c);
    }
    if !cur.is_empty() {
        out.push(cur.to_ascii_lowercase());
    }
    out
}

/// What a usage type's words say: the class, the variant and the tier; or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Descriptor {
    class: Class,
    global: bool,
    tier: Option<u64>,
}

fn descriptor(ws: &[String]) -> Result<Descriptor, String> {
    let has = |w: &str| ws.iter().any(|x| x == w);
    let mut global = false;
    let mut tier = None;
    for w in ws {
        match w.as_str() {
            "input" | "output" | "tokens" | "token" | "count" | "units" | "unit" | "cache"
            | "read" | "write" | "hit" | "hits" | "1h" | "1hr" | "5m" | "cross" | "region"
            | "regional" | "geo" | "inference" | "on" | "demand" | "ondemand" | "long"
            | "context" | "lctx" | "standard" | "above" | "over" => {}
            v if v.starts_with('v')
                && v.len() > 1
                && v[1..].bytes().all(|b| b.is_ascii_digit()) => {}
            "global" => global = true,
            "100k" => tier = Some(100_000),
            "128k" => tier = Some(128_000),
            "200k" => tier = Some(200_000),
            "256k" => tier = Some(256_000),
            "500k" => tier = Some(500_000),
            "1m" => tier = Some(1_000_000),
            "batch" => return Err("batch inference: not an on-demand price".into()),
            "provisioned" | "pt" | "model" | "modelunits" | "commitment" | "reserved" => {
                return Err("provisioned throughput: billed by the hour, not per token".into())
            }
            "custom" | "customization" | "training" | "storage" => {
                return Err("model customization: not an inference price".into())
            }
            other => return Err(format!("unknown word `{other}` in the usage type")),
        }
    }
    if (has("long") && has("context")) || has("lctx") {
        tier = tier.or(Some(200_000));
    }
    let cache = has("cache");
    let class = if cache && (has("read") || has("hit") || has("hits")) {
        Class::CacheRead
    } else if cache && has("write") && (has("1h") || has("1hr")) {
        Class::CacheWrite1h
    } else if cache && has("write") {
        Class::CacheWrite5m
    } else if has("output") {
        Class::Output
    } else if has("input") {
        Class::Input
    } else {
        return Err("no token class (input, output, cache read or cache write) in it".into());
    };
    Ok(Descriptor {
        class,
        global,
        tier,
    })
}

/// `Claude4.6Sonnet`, `Claude Sonnet 4.6`, `Claude 3.5 Haiku`, `ClaudeInstant`, `Claude2.1`,
/// `Claude Mythos Preview` -> the catalog key, or why not.
pub fn model_key(name: &str) -> Result<String, String> {
    let ws = words(name);
    if !ws.iter().any(|w| w == "claude") {
        return Err(format!("`{name}` is not a Claude model"));
    }
    let families = ["haiku", "sonnet", "opus", "instant", "fable", "mythos"];
    let family = ws.iter().find(|w| families.contains(&w.as_str())).cloned();
    let version: Option<String> = ws
        .iter()
        .find(|w| {
            w.chars().next().is_some_and(|c| c.is_ascii_digit())
                && w.chars().all(|c| c.is_ascii_digit() || c == '.')
        })
        .cloned();
    let preview = ws.iter().any(|w| w == "preview");
    let dashed = |v: &str| {
        let v = v.strip_suffix(".0").unwrap_or(v);
        v.replace('.', "-")
    };
    match (family.as_deref(), version.as_deref()) {
        (Some("instant"), _) => Ok("claude-instant-v1".into()),
        (Some(f), _) if preview => Ok(format!("claude-{f}-preview")),
        (None, Some(v)) if v.starts_with('2') => Ok("claude-v2".into()),
        (None, Some("1" | "1.0")) => Ok("claude-v1".into()),
        (Some(f), Some(v)) => {
            let major: u32 = v
                .split('.')
                .next()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if major < 4 {
                Ok(format!("claude-{}-{f}", dashed(v)))
            } else {
                Ok(format!("claude-{f}-{}", dashed(v)))
            }
        }
        _ => Err(format!("`{name}`: no model family and version in it")),
    }
}

/// One price of the offer file that was mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub usage_type: String,
    pub key: String,
    pub region: String,
    pub class: Class,
    pub global: bool,
    pub tier: Option<u64>,
    pub from_day: i64,
    /// Pico-dollars per token.
    pub pico: i64,
}

/// A usage type that could not be mapped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    pub sku: String,
    pub usage_type: String,
    pub why: String,
}

/// What `pricing import-aws` found and wrote.
#[derive(Debug, Clone, Default)]
pub struct AwsImport {
    /// The override catalog (TOML), one entry per model with a price.
    pub catalog_toml: String,
    pub mapped: Vec<Mapped>,
    pub unmapped: Vec<Unmapped>,
    /// Products of other providers (Amazon, Meta, ...), not read further.
    pub other_products: usize,
    /// Catalog keys written, and those of them the given catalog does not have.
    pub models: Vec<String>,
    pub new_models: Vec<String>,
    /// Things written with a caveat (a premium that is not the same on every class, ...).
    pub notes: Vec<String>,
}

fn attr<'a>(attrs: &'a Value, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| attrs.get(*n).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

/// Tokens per priced unit, from the dimension's unit and description; `None`: it does not say.
fn tokens_per_unit(unit: &str, description: &str) -> Option<i64> {
    let says = |s: &str| -> Option<i64> {
        let l = s.to_ascii_lowercase().replace(',', "");
        if l.contains("1m ") || l.contains("1m-") || l.ends_with("1m") || l.contains("million") {
            Some(1_000_000)
        } else if l.contains("1k") || l.contains("1000 ") || l.contains("thousand") {
            Some(1_000)
        } else if l == "tokens" || l == "token" {
            Some(1)
        } else {
            None
        }
    };
    says(unit).or_else(|| {
        let d = description.to_ascii_lowercase().replace(',', "");
        if d.contains("per million") || d.contains("per 1m") {
            Some(1_000_000)
        } else if d.contains("per 1k") || d.contains("per 1000") || d.contains("per thousand") {
            Some(1_000)
        } else {
            None
        }
    })
}

/// Maps the offer file's products and on-demand terms to catalog entries and writes them as an
/// override catalog. `known` is the catalog the result will be merged over (names, and which
/// models are new).
pub fn import_aws(offer: &Value, known: &PriceCatalog) -> Result<AwsImport, String> {
    let products = offer
        .get("products")
        .and_then(Value::as_object)
        .ok_or("not an AWS Price List offer file: no `products` object")?;
    let terms = offer
        .get("terms")
        .and_then(|t| t.get("OnDemand"))
        .and_then(Value::as_object)
        .ok_or("not an AWS Price List offer file: no `terms.OnDemand` object")?;
    let mut out = AwsImport::default();
    for (sku, p) in products {
        let attrs = p.get("attributes").cloned().unwrap_or(Value::Null);
        let usage = attr(&attrs, &["usagetype"]).unwrap_or("").to_string();
        let model_attr = attr(&attrs, &["model", "modelName", "servicename", "titanModel"]);
        let claude = usage.to_ascii_lowercase().contains("claude")
            || model_attr.is_some_and(|m| m.to_ascii_lowercase().contains("claude"));
        if !claude {
            out.other_products += 1;
            continue;
        }
        let unmapped = |why: String| Unmapped {
            sku: sku.clone(),
            usage_type: usage.clone(),
            why,
        };
        // USE1-Claude4.6Sonnet-input-tokens, or USE1-MP:USE1_InputTokenCount-Units (the model
        // then comes from the product's attributes).
        let (prefix, rest) = usage.split_once('-').unwrap_or(("", usage.as_str()));
        let region_of_prefix = USAGE_REGIONS
            .iter()
            .find(|(c, _)| *c == prefix)
            .map(|(_, r)| r.to_string());
        let region = attr(&attrs, &["regionCode"])
            .map(str::to_string)
            .or(region_of_prefix);
        let Some(region) = region else {
            out.unmapped.push(unmapped(
                "no region (neither `regionCode` nor a known usage-type prefix)".into(),
            ));
            continue;
        };
        let (model_name, desc_part) = if let Some(mp) = rest.strip_prefix("MP:") {
            // `USE1_InputTokenCount-Units`: drop the region code.
            let d = mp.split_once('_').map_or(mp, |(_, d)| d);
            match model_attr {
                Some(m) => (m.to_string(), d.to_string()),
                None => {
                    out.unmapped.push(unmapped(
                        "a Marketplace usage type whose product names no model".into(),
                    ));
                    continue;
                }
            }
        } else {
            let (m, d) = rest.split_once('-').unwrap_or((rest, ""));
            (m.to_string(), d.to_string())
        };
        let key = match model_key(&model_name) {
            Ok(k) => k,
            Err(why) => {
                out.unmapped.push(unmapped(why));
                continue;
            }
        };
        let d = match descriptor(&words(&desc_part)) {
            Ok(d) => d,
            Err(why) => {
                out.unmapped.push(unmapped(why));
                continue;
            }
        };
        let Some(offers) = terms.get(sku).and_then(Value::as_object) else {
            out.unmapped
                .push(unmapped("no on-demand price for this product".into()));
            continue;
        };
        for term in offers.values() {
            let from_day = term
                .get("effectiveDate")
                .and_then(Value::as_str)
                .and_then(|s| parse_date(s.get(..10).unwrap_or(s)));
            let Some(from_day) = from_day else {
                out.unmapped
                    .push(unmapped("a term without an effectiveDate".into()));
                continue;
            };
            let dims: Vec<&Value> = term
                .get("priceDimensions")
                .and_then(Value::as_object)
                .map(|m| m.values().collect())
                .unwrap_or_default();
            if dims.len() != 1 {
                out.unmapped.push(unmapped(format!(
                    "{} price dimensions (volume ranges are not per-token rates)",
                    dims.len()
                )));
                continue;
            }
            let dim = dims[0];
            let unit = dim.get("unit").and_then(Value::as_str).unwrap_or("");
            let description = dim.get("description").and_then(Value::as_str).unwrap_or("");
            let Some(per) = tokens_per_unit(unit, description) else {
                out.unmapped.push(unmapped(format!(
                    "unit `{unit}` does not say how many tokens it is"
                )));
                continue;
            };
            let usd = dim
                .get("pricePerUnit")
                .and_then(|p| p.get("USD"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let Some(pico_per_unit) = decimal_scaled(usd, 12) else {
                out.unmapped
                    .push(unmapped(format!("price `{usd}` USD is not a number")));
                continue;
            };
            if pico_per_unit % per != 0 {
                out.unmapped.push(unmapped(format!(
                    "price `{usd}` USD per {per} tokens is not a whole number of pico-dollars per token"
                )));
                continue;
            }
            out.mapped.push(Mapped {
                usage_type: usage.clone(),
                key: key.clone(),
                region: region.clone(),
                class: d.class,
                global: d.global,
                tier: d.tier,
                from_day,
                pico: pico_per_unit / per,
            });
        }
    }
    let publication = offer
        .get("publicationDate")
        .and_then(Value::as_str)
        .unwrap_or("unknown date");
    let source = format!(
        "AWS Price List offer file for Amazon Bedrock (published {}, version {})",
        publication.get(..10).unwrap_or(publication),
        offer.get("version").and_then(Value::as_str).unwrap_or("?")
    );
    write_catalog(&mut out, known, &source);
    Ok(out)
}

/// One (region, global?, tier) column of a model's prices: class -> [(from_day, pico)].
type Series = BTreeMap<Class, Vec<(i64, i64)>>;
/// A model's columns by (region, global?, tier).
type Columns = BTreeMap<(String, bool, Option<u64>), Series>;
/// A block's fields, as compared.
type Fields = Vec<(String, String)>;

fn in_force(series: &Series, class: Class, day: i64) -> Option<i64> {
    series
        .get(&class)?
        .iter()
        .filter(|(d, _)| *d <= day)
        .max_by_key(|(d, _)| *d)
        .map(|(_, p)| *p)
}

/// The rates of one column in force on `day`: input and output, and each cache class the
/// source prices (one it does not price is left out: calls with such tokens stay unpriced).
fn push_rates(lines: &mut Vec<String>, s: &Series, day: i64, input: i64, output: i64) {
    let mut put = |name: &str, v: i64| lines.push(format!("{name} = \"{}\"", usd_per_million(v)));
    put("input", input);
    put("output", output);
    for (class, name) in [
        (Class::CacheWrite5m, "cache_write_5m"),
        (Class::CacheWrite1h, "cache_write_1h"),
        (Class::CacheRead, "cache_read"),
    ] {
        if let Some(v) = in_force(s, class, day) {
            put(name, v);
        }
    }
}

/// `10%` from new/old, when it is a whole number of hundredths of a percent.
fn premium_of(new: i64, old: i64) -> Option<String> {
    if old == 0 {
        return None;
    }
    let bp = (new as i128 - old as i128) * 1_000_000 / old as i128; // percent x 1e4
    if (old as i128 * (1_000_000 + bp)) != new as i128 * 1_000_000 || bp == 0 {
        return None;
    }
    let int = bp / 10_000;
    let frac = bp % 10_000;
    Some(if frac == 0 {
        format!("{int}%")
    } else {
        format!("{int}.{}%", format!("{frac:04}").trim_end_matches('0'))
    })
}

fn write_catalog(out: &mut AwsImport, known: &PriceCatalog, source: &str) {
    // key -> (region, global, tier) -> series
    let mut by_model: BTreeMap<String, Columns> = BTreeMap::new();
    for m in &out.mapped {
        by_model
            .entry(m.key.clone())
            .or_default()
            .entry((m.region.clone(), m.global, m.tier))
            .or_default()
            .entry(m.class)
            .or_default()
            .push((m.from_day, m.pico));
    }
    let mut text = format!(
        "# Written by `bedrock-usage pricing import-aws` from the {source}.\n# Check it with `pricing diff FILE` before using it as `[pricing] catalog`.\n\nversion = \"aws-import\"\n"
    );
    for (key, cols) in &by_model {
        let gov = |r: &str| r.starts_with("us-gov-");
        let regions: BTreeSet<&str> = cols.keys().map(|(r, _, _)| r.as_str()).collect();
        let reference = if regions.contains("us-east-1") {
            "us-east-1"
        } else {
            match regions.iter().find(|r| !gov(r)) {
                Some(r) => r,
                None => regions.iter().next().copied().unwrap_or(""),
            }
        };
        let col = |region: &str, global: bool, tier: Option<u64>| {
            cols.get(&(region.to_string(), global, tier))
        };
        let has_global = col(reference, true, None).is_some();
        let Some(base) = col(reference, has_global, None).or(col(reference, false, None)) else {
            out.notes.push(format!(
                "{key}: no standard input price in {reference}; not written"
            ));
            continue;
        };
        let regional = if has_global {
            col(reference, false, None)
        } else {
            None
        };
        let mut days: BTreeSet<i64> = BTreeSet::new();
        for s in cols.values() {
            for v in s.values() {
                days.extend(v.iter().map(|(d, _)| *d));
            }
        }
        let mut blocks: Vec<String> = Vec::new();
        let mut last = String::new();
        for &day in &days {
            let Some(input) = in_force(base, Class::Input, day) else {
                continue;
            };
            let Some(output) = in_force(base, Class::Output, day) else {
                continue;
            };
            let mut lines = Vec::new();
            let rate = |lines: &mut Vec<String>, name: &str, v: i64| {
                lines.push(format!("{name} = \"{}\"", usd_per_million(v)));
            };
            push_rates(&mut lines, base, day, input, output);
            let premium_vs = |other: &Series, what: &str, notes: &mut Vec<String>| {
                let p = in_force(other, Class::Input, day).and_then(|v| premium_of(v, input));
                if let Some(p) = &p {
                    let ratio = Ratio::parse_percent_increase(p).unwrap_or(Ratio::ONE);
                    for class in [Class::Output, Class::CacheWrite5m, Class::CacheRead] {
                        if let (Some(o), Some(b)) =
                            (in_force(other, class, day), in_force(base, class, day))
                        {
                            if ratio.apply(b) != o {
                                notes.push(format!(
                                    "{key} from {}: the {what} premium {p} (from the input rate) does not give its {class:?} rate",
                                    format_date(day)
                                ));
                            }
                        }
                    }
                }
                p
            };
            if let Some(r) = regional {
                if let Some(p) = premium_vs(r, "regional", &mut out.notes) {
                    lines.push(format!("regional_premium = \"{p}\""));
                }
            }
            let gov_region = regions.iter().find(|r| gov(r)).copied();
            if let Some(g) = gov_region.and_then(|g| col(g, false, None)) {
                if let Some(p) = premium_vs(g, "GovCloud", &mut out.notes) {
                    lines.push(format!("govcloud_premium = \"{p}\""));
                }
            }
            for edge in INPUT_BAND_EDGES {
                if let Some(t) = col(reference, has_global, Some(edge)) {
                    if let (Some(i), Some(o)) = (
                        in_force(t, Class::Input, day),
                        in_force(t, Class::Output, day),
                    ) {
                        lines.push("[[model.rates.tiers]]".into());
                        lines.push(format!("above = {edge}"));
                        push_rates(&mut lines, t, day, i, o);
                    }
                }
            }
            // Other commercial regions whose rates differ: rates of their own (only where the
            // model has no regional premium, whose multiple would apply to them again).
            for r in regions.iter().filter(|r| **r != reference && !gov(r)) {
                let Some(s) = col(r, false, None) else {
                    continue;
                };
                let (Some(i), Some(o)) = (
                    in_force(s, Class::Input, day),
                    in_force(s, Class::Output, day),
                ) else {
                    continue;
                };
                if i == input && o == output {
                    continue;
                }
                if let Some(reg) = regional {
                    if Some(i) != in_force(reg, Class::Input, day) {
                        out.notes.push(format!(
                            "{key}: {r} differs from {reference}'s regional rate; not written (the model has a regional premium)"
                        ));
                    }
                    continue;
                }
                lines.push(format!("[model.rates.regions.\"{r}\"]"));
                rate(&mut lines, "input", i);
                rate(&mut lines, "output", o);
            }
            let body = lines.join("\n");
            if body != last {
                blocks.push(format!(
                    "[[model.rates]]\nfrom = \"{}\"\n{body}",
                    format_date(day)
                ));
                last = body;
            }
        }
        if blocks.is_empty() {
            continue;
        }
        let name = known
            .entry(key)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| key.clone());
        if known.entry(key).is_none() {
            out.new_models.push(key.clone());
        }
        out.models.push(key.clone());
        text.push_str(&format!(
            "\n[[model]]\nkey = \"{key}\"\nname = \"{name}\"\nsource = \"{source}\"\n{}\n",
            blocks.join("\n")
        ));
    }
    out.catalog_toml = text;
}

/// One difference between two catalogs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: String,
    /// The first day the difference holds.
    pub from_day: Option<i64>,
    pub what: String,
    pub old: String,
    pub new: String,
}

/// A block's rates and rules as (field, value) pairs, for comparing.
fn block_fields(b: &RateBlock) -> Fields {
    let r = &b.base;
    let mut f = vec![
        ("input".to_string(), usd_per_million(r.input)),
        ("output".into(), usd_per_million(r.output)),
        (
            "cache_write_5m".into(),
            r.cache_write_5m.map_or("-".into(), usd_per_million),
        ),
        (
            "cache_write_1h".into(),
            r.cache_write_1h.map_or("-".into(), usd_per_million),
        ),
        (
            "cache_read".into(),
            r.cache_read.map_or("-".into(), usd_per_million),
        ),
        (
            "regional_premium".into(),
            b.regional_premium
                .map_or("-".into(), |p| format!("x{}", p.describe())),
        ),
        (
            "govcloud_premium".into(),
            b.govcloud_premium
                .map_or("-".into(), |p| format!("x{}", p.describe())),
        ),
    ];
    let tiers: Vec<String> = b
        .tiers
        .iter()
        .map(|t| match &t.rates {
            TierRates::Multiple { input, output } => {
                format!(
                    ">{}: in x{} out x{}",
                    t.above,
                    input.describe(),
                    output.describe()
                )
            }
            TierRates::Absolute(x) => format!(
                ">{}: {}/{}/{}/{}/{}",
                t.above,
                usd_per_million(x.input),
                usd_per_million(x.output),
                x.cache_write_5m.map_or("-".into(), usd_per_million),
                x.cache_write_1h.map_or("-".into(), usd_per_million),
                x.cache_read.map_or("-".into(), usd_per_million)
            ),
        })
        .collect();
    f.push((
        "tiers".into(),
        if tiers.is_empty() {
            "-".into()
        } else {
            tiers.join("; ")
        },
    ));
    let regions: Vec<String> = b
        .regions
        .iter()
        .map(|(k, x)| {
            format!(
                "{k} {}/{}",
                usd_per_million(x.input),
                usd_per_million(x.output)
            )
        })
        .collect();
    f.push((
        "region_rates".into(),
        if regions.is_empty() {
            "-".into()
        } else {
            regions.join("; ")
        },
    ));
    f
}

/// What `new` (an override file) changes against `old` (the embedded catalog), model by model
/// and day by day. A model only in `old` is kept by a merge, and said so.
pub fn diff(old: &PriceCatalog, new: &PriceCatalog) -> Vec<Difference> {
    let mut out = Vec::new();
    for n in new.entries() {
        let Some(o) = old.entry(&n.key) else {
            out.push(Difference {
                key: n.key.clone(),
                from_day: n.blocks.first().map(|b| b.base.from_day),
                what: "model".into(),
                old: "-".into(),
                new: "added".into(),
            });
            continue;
        };
        let days: BTreeSet<i64> = o
            .blocks
            .iter()
            .chain(&n.blocks)
            .map(|b| b.base.from_day)
            .collect();
        let mut previous: Option<(Fields, Fields)> = None;
        for day in days {
            let fo = o.block_on(day).map(block_fields);
            let fn_ = n.block_on(day).map(block_fields);
            let (fo, fn_) = match (fo, fn_) {
                (Some(a), Some(b)) => (a, b),
                (None, Some(_)) => {
                    out.push(Difference {
                        key: n.key.clone(),
                        from_day: Some(day),
                        what: "rates".into(),
                        old: "none in force".into(),
                        new: "priced".into(),
                    });
                    continue;
                }
                (Some(_), None) => {
                    out.push(Difference {
                        key: n.key.clone(),
                        from_day: Some(day),
                        what: "rates".into(),
                        old: "priced".into(),
                        new: "none in force (calls of that day become unpriced)".into(),
                    });
                    continue;
                }
                (None, None) => continue,
            };
            for ((k, a), (_, b)) in fo.iter().zip(&fn_) {
                let same_as_before = previous.as_ref().is_some_and(|(po, pn)| {
                    po.iter().any(|(pk, pa)| pk == k && pa == a)
                        && pn.iter().any(|(pk, pb)| pk == k && pb == b)
                });
                if a != b && !same_as_before {
                    out.push(Difference {
                        key: n.key.clone(),
                        from_day: Some(day),
                        what: k.clone(),
                        old: a.clone(),
                        new: b.clone(),
                    });
                }
            }
            previous = Some((fo, fn_));
        }
    }
    for o in old.entries() {
        if new.entry(&o.key).is_none() {
            out.push(Difference {
                key: o.key.clone(),
                from_day: None,
                what: "model".into(),
                old: "in the catalog".into(),
                new: "not in the file (kept: a file replaces and adds, never removes)".into(),
            });
        }
    }
    out
}

/// One disagreement between the catalog and LiteLLM's price map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteLlmDifference {
    pub litellm_key: String,
    pub field: String,
    /// USD per million tokens, or why the catalog has none.
    pub catalog: String,
    pub litellm: String,
}

/// What [`check_litellm`] read.
#[derive(Debug, Clone, Default)]
pub struct LiteLlmCheck {
    pub compared: usize,
    /// Entries not compared: (key, why).
    pub skipped: Vec<(String, String)>,
    pub differences: Vec<LiteLlmDifference>,
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts
            .last()
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// Compares every Bedrock Claude entry of a LiteLLM price map (`model_prices_and_context_window
/// .json`) with the catalog on `day`: standard rates, 1-hour cache writes and the tiers LiteLLM
/// lists (`..._above_200k_tokens`, `..._above_100k_tokens`).
pub fn check_litellm(
    map: &Value,
    catalog: &PriceCatalog,
    day: i64,
) -> Result<LiteLlmCheck, String> {
    let obj = map
        .as_object()
        .ok_or("not a LiteLLM price map: the file is not a JSON object")?;
    let mut out = LiteLlmCheck::default();
    for (k, v) in obj {
        let provider = v
            .get("litellm_provider")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !k.contains("claude") || !matches!(provider, "bedrock" | "bedrock_converse") {
            continue;
        }
        let mut rest = k.strip_prefix("bedrock/").unwrap_or(k);
        for p in ["invoke/", "converse/"] {
            rest = rest.strip_prefix(p).unwrap_or(rest);
        }
        if rest.starts_with("claude_platform/") {
            out.skipped.push((
                k.clone(),
                "Claude Platform on AWS: not Bedrock's on-demand billing".into(),
            ));
            continue;
        }
        let mut region = "";
        if let Some((first, after)) = rest.split_once('/') {
            if is_region(first) {
                region = first;
                rest = after;
            }
        }
        if let Some((first, _)) = rest.split_once('/') {
            out.skipped.push((
                k.clone(),
                format!("`{first}`: provisioned throughput, billed by the hour"),
            ));
            continue;
        }
        let id = rest;
        let name = normalize_model_id(id, &Default::default());
        out.compared += 1;
        let mut compare = |field: &str,
                           band: InputBand,
                           theirs: Option<&Value>,
                           pick: fn(&Rates) -> Option<i64>| {
            let Some(t) = theirs else { return };
            let Some(t) = decimal_scaled(&t.to_string(), 12) else {
                return;
            };
            let ours = catalog.decide(&name, id, region, day, band);
            let (ours_s, differs) = match &ours {
                Ok(d) => match pick(&d.rates) {
                    Some(o) => (usd_per_million(o), o != t),
                    None => ("none".to_string(), true),
                },
                Err(why) => (format!("unpriced ({why})"), true),
            };
            if differs {
                out.differences.push(LiteLlmDifference {
                    litellm_key: k.clone(),
                    field: field.to_string(),
                    catalog: ours_s,
                    litellm: usd_per_million(t),
                });
            }
        };
        let b0 = InputBand(0);
        compare("input", b0, v.get("input_cost_per_token"), |r| {
            Some(r.input)
        });
        compare("output", b0, v.get("output_cost_per_token"), |r| {
            Some(r.output)
        });
        compare(
            "cache_write_5m",
            b0,
            v.get("cache_creation_input_token_cost"),
            |r| r.cache_write_5m,
        );
        compare(
            "cache_write_1h",
            b0,
            v.get("cache_creation_input_token_cost_above_1hr"),
            |r| r.cache_write_1h,
        );
        compare(
            "cache_read",
            b0,
            v.get("cache_read_input_token_cost"),
            |r| r.cache_read,
        );
        for (edge, label) in [(100_000u64, "100k"), (200_000, "200k")] {
            let band = InputBand::of_side(edge + 1);
            compare(
                &format!("input above {label}"),
                band,
                v.get(format!("input_cost_per_token_above_{label}_tokens").as_str()),
                |r| Some(r.input),
            );
            compare(
                &format!("output above {label}"),
                band,
                v.get(format!("output_cost_per_token_above_{label}_tokens").as_str()),
                |r| Some(r.output),
            );
            compare(
                &format!("cache_read above {label}"),
                band,
                v.get(format!("cache_read_input_token_cost_above_{label}_tokens").as_str()),
                |r| r.cache_read,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_from_any_printed_form() {
        assert_eq!(decimal_scaled("0.0030000000", 12), Some(3_000_000_000));
        assert_eq!(decimal_scaled("3e-06", 12), Some(3_000_000));
        assert_eq!(decimal_scaled("2.475E-05", 12), Some(24_750_000));
        assert_eq!(decimal_scaled("1.1e-07", 12), Some(110_000));
        assert_eq!(decimal_scaled("-1", 12), None);
        assert_eq!(decimal_scaled("abc", 12), None);
    }

    #[test]
    fn model_names_of_every_form() {
        for (name, key) in [
            ("Claude4.6Sonnet", "claude-sonnet-4-6"),
            ("Claude Sonnet 4.6", "claude-sonnet-4-6"),
            ("Claude 3.5 Haiku", "claude-3-5-haiku"),
            ("Claude3Haiku", "claude-3-haiku"),
            ("Claude 3.5 Sonnet v2", "claude-3-5-sonnet"),
            ("ClaudeInstant", "claude-instant-v1"),
            ("Claude2.1", "claude-v2"),
            ("Claude Opus 4", "claude-opus-4"),
            ("Claude5.5Haiku", "claude-haiku-5-5"),
            ("Claude Mythos Preview", "claude-mythos-preview"),
        ] {
            assert_eq!(model_key(name).as_deref(), Ok(key), "{name}");
        }
        assert!(model_key("Llama3.1-70B").is_err());
        assert!(model_key("Claude").is_err());
    }

    #[test]
    fn usage_type_words_name_class_variant_and_tier() {
        let d = |s: &str| descriptor(&words(s));
        assert_eq!(d("input-tokens").map(|d| d.class), Ok(Class::Input));
        assert_eq!(
            d("cache-read-input-tokens").map(|d| d.class),
            Ok(Class::CacheRead)
        );
        assert_eq!(
            d("cache-write-1h-input-tokens").map(|d| d.class),
            Ok(Class::CacheWrite1h)
        );
        assert_eq!(
            d("CacheWriteInputTokenCount-Units").map(|d| d.class),
            Ok(Class::CacheWrite5m)
        );
        assert_eq!(d("output-tokens-global").map(|d| d.global), Ok(true));
        assert_eq!(
            d("input-tokens-long-context").map(|d| d.tier),
            Ok(Some(200_000))
        );
        assert_eq!(
            d("input-tokens-above-100k").map(|d| d.tier),
            Ok(Some(100_000))
        );
        assert!(d("batch-input-tokens").is_err_and(|e| e.contains("batch")));
        assert!(d("priority-input-tokens").is_err_and(|e| e.contains("priority")));
    }
}
