//! Report maths: groups facts (token counts per identity, model, region, operation, time bucket
//! and price class) by the keys a user asks for, attributes and prices them, and sums.
//!
//! Money is derived here, at read time, from the catalog: a catalog change reprices history.
//! Sums are integer pico-dollars, rounded to nano-dollars once per row.

use std::collections::{BTreeMap, HashMap};

use crate::attribution::{Attribution, Attributor, Identity, Via};
use crate::money::NanoUsd;
use crate::pricing::{normalize_model_id, ModelName, PriceCatalog, Unpriced};
use crate::record::Tokens;
use crate::time::{day_label, month_label, week_label, Zone, MS_PER_DAY};

/// What a report can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupKey {
    Developer,
    Team,
    CostCenter,
    Model,
    Principal,
    Operation,
    Region,
    Hour,
    Day,
    Week,
    Month,
}

impl GroupKey {
    pub const ALL: [GroupKey; 11] = [
        GroupKey::Developer,
        GroupKey::Team,
        GroupKey::CostCenter,
        GroupKey::Model,
        GroupKey::Principal,
        GroupKey::Operation,
        GroupKey::Region,
        GroupKey::Hour,
        GroupKey::Day,
        GroupKey::Week,
        GroupKey::Month,
    ];

    pub fn parse(s: &str) -> Option<GroupKey> {
        GroupKey::ALL
            .into_iter()
            .find(|k| k.cli_name() == s || k.field_name() == s)
    }

    /// As written after `--by`.
    pub fn cli_name(self) -> &'static str {
        match self {
            GroupKey::CostCenter => "cost-center",
            k => k.field_name(),
        }
    }

    /// As a JSON field or CSV column.
    pub fn field_name(self) -> &'static str {
        match self {
            GroupKey::Developer => "developer",
            GroupKey::Team => "team",
            GroupKey::CostCenter => "cost_center",
            GroupKey::Model => "model",
            GroupKey::Principal => "principal",
            GroupKey::Operation => "operation",
            GroupKey::Region => "region",
            GroupKey::Hour => "hour",
            GroupKey::Day => "day",
            GroupKey::Week => "week",
            GroupKey::Month => "month",
        }
    }

    pub fn is_time(self) -> bool {
        matches!(
            self,
            GroupKey::Hour | GroupKey::Day | GroupKey::Week | GroupKey::Month
        )
    }
}

/// Aggregated facts of one (bucket, identity, model, region, operation, price class).
#[derive(Debug, Clone)]
pub struct Fact<'a> {
    /// Any instant inside the fact's time bucket (buckets never straddle a UTC day or a local
    /// quarter hour).
    pub bucket_ms: i64,
    /// Index into the identity table given to [`ReportBuilder::new`].
    pub identity: usize,
    /// Index into the model-id table.
    pub model: usize,
    pub region: &'a str,
    pub operation: &'a str,
    /// Where the calls' input sides fall among the tiers' thresholds.
    pub input_band: crate::pricing::InputBand,
    pub calls: u64,
    pub errors: u64,
    /// Calls with no tokens at all (failed before any): they cost nothing whatever the model,
    /// so they are never unpriced.
    pub empty_calls: u64,
    pub tokens: Tokens,
}

/// A `--model` filter (or a budget's or limit's `model`): the raw id exactly, or part of the
/// normalized model key, case-insensitively.
pub fn model_matches(query: &str, raw_id: &str, label: &str) -> bool {
    let q = query.to_lowercase();
    raw_id.to_lowercase() == q || label.contains(q.as_str())
}

/// Which facts a report keeps (after attribution).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub developers: Vec<String>,
    pub teams: Vec<String>,
    /// Matches the normalized model key (`claude-sonnet-4-5`), as a substring, or the raw id.
    pub models: Vec<String>,
}

/// The figures of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Figures {
    pub calls: u64,
    pub errors: u64,
    pub tokens: Tokens,
    /// Cost of the priced calls.
    pub cost: NanoUsd,
    /// What prompt caching saved on the priced calls: their cache tokens at the plain input
    /// rate, less what those tokens cost (negative when cache writes cost more than reads saved).
    pub cache_saved: NanoUsd,
    pub unpriced_calls: u64,
    /// Calls with tokens that were priced (when 0 with unpriced calls, the cost is unknown, not
    /// zero).
    pub priced_calls: u64,
}

impl Figures {
    /// The cost, if any call with tokens was priced or none needed a price; `None` when every
    /// call with tokens is unpriced (a script summing costs must not read that as $0).
    pub fn known_cost(&self) -> Option<NanoUsd> {
        (self.priced_calls > 0 || self.unpriced_calls == 0).then_some(self.cost)
    }
}

#[derive(Debug, Clone, Default)]
struct Acc {
    calls: u64,
    errors: u64,
    tokens: Tokens,
    pico: i128,
    saved_pico: i128,
    unpriced_calls: u64,
    priced_calls: u64,
}

impl Acc {
    fn figures(&self) -> Figures {
        Figures {
            calls: self.calls,
            errors: self.errors,
            tokens: self.tokens,
            cost: NanoUsd::from_pico(self.pico),
            cache_saved: NanoUsd::from_pico(self.saved_pico),
            unpriced_calls: self.unpriced_calls,
            priced_calls: self.priced_calls,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// One value per group key; `None` where the key has no value (a developer with no team).
    pub keys: Vec<Option<String>>,
    pub figures: Figures,
}

/// A model that could not be priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpricedModel {
    pub model_id: String,
    pub reason: String,
    pub calls: u64,
}

/// A principal whose calls could not be told apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPrincipal {
    pub principal: String,
    pub reason: String,
    pub calls: u64,
}

/// Calls of a personal principal whose request metadata named someone else (counted as the
/// principal's person: metadata is believed only from shared principals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConflict {
    pub principal: String,
    pub developer: String,
    pub claimed: String,
    pub calls: u64,
}

#[derive(Debug, Clone)]
pub struct UsageReport {
    pub keys: Vec<GroupKey>,
    pub rows: Vec<ReportRow>,
    /// Rows left out by [`UsageReport::keep_top`] (the total still counts them).
    pub omitted: usize,
    pub total: Figures,
    pub unpriced: Vec<UnpricedModel>,
    pub shared: Vec<SharedPrincipal>,
    pub conflicts: Vec<MetadataConflict>,
}

impl UsageReport {
    /// Keeps the `n` rows that cost most (ties: most calls first), in that order.
    pub fn keep_top(&mut self, n: usize) {
        self.rows.sort_by(|a, b| {
            b.figures
                .cost
                .cmp(&a.figures.cost)
                .then(b.figures.calls.cmp(&a.figures.calls))
        });
        self.omitted += self.rows.len().saturating_sub(n);
        self.rows.truncate(n);
    }
}

/// What a report groups by, in which zone, keeping what.
#[derive(Debug, Clone)]
pub struct ReportSpec {
    pub keys: Vec<GroupKey>,
    pub zone: Zone,
    pub filters: Filters,
}

struct ModelInfo {
    name: ModelName,
    /// Interned label (the normalized key, or the raw id).
    label: u32,
}

/// Strings to small ids and back, so that grouping hashes integers, not strings.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), self.names.len() as u32 - 1);
        self.names.len() as u32 - 1
    }
}

/// A missing value (a developer without a team) in a group key.
const NONE: u64 = u64::MAX;
const MAX_KEYS: usize = GroupKey::ALL.len();

/// Per identity: interned developer, team and cost center, and whether it is shared.
struct Who {
    developer: u64,
    team: u64,
    cost_center: u64,
    principal: u64,
    shared: bool,
    /// (developer, the name metadata claimed instead).
    claimed: Option<(String, String)>,
}

/// (model, UTC day, input band, region id).
type PriceKey = (usize, i64, crate::pricing::InputBand, u32);

/// Builds a [`UsageReport`] from facts. Facts are grouped by integer keys (interned strings, day
/// numbers) and priced through a cache per (model, day, class): a month of quarter-hour rollups
/// is a few hundred thousand facts, and each must cost well under a microsecond.
pub struct ReportBuilder<'a> {
    keys: Vec<GroupKey>,
    zone: Zone,
    catalog: &'a PriceCatalog,
    model_ids: &'a [String],
    models: Vec<ModelInfo>,
    who: Vec<Who>,
    kept: Vec<bool>,
    identities: &'a [Identity],
    attributor: &'a Attributor<'a>,
    strings: Interner,
    local_days: HashMap<i64, i64>,
    prices: HashMap<PriceKey, Result<crate::pricing::Rates, Unpriced>>,
    /// Regions seen, numbered (rates may differ by the request's region).
    regions: HashMap<String, u32>,
    groups: HashMap<[u64; MAX_KEYS], Acc>,
    total: Acc,
    unpriced: BTreeMap<String, (String, u64)>,
    shared: BTreeMap<String, u64>,
    conflicts: BTreeMap<(String, String, String), u64>,
}

impl<'a> ReportBuilder<'a> {
    pub fn new(
        spec: ReportSpec,
        catalog: &'a PriceCatalog,
        attributor: &'a Attributor<'a>,
        identities: &'a [Identity],
        model_ids: &'a [String],
        app_profiles: &HashMap<String, String>,
    ) -> ReportBuilder<'a> {
        let mut strings = Interner::default();
        let models: Vec<ModelInfo> = model_ids
            .iter()
            .map(|id| {
                let name = normalize_model_id(id, app_profiles);
                let label = strings.id(name.key.as_deref().unwrap_or(id));
                ModelInfo { name, label }
            })
            .collect();
        let mut who = Vec::with_capacity(identities.len());
        let mut kept_dev = Vec::with_capacity(identities.len());
        // Filters match case-insensitively, and a name before aliasing (an e-mail, a session
        // name) matches the developer it is an alias of.
        let f = &spec.filters;
        let dev_filters: Vec<String> = f
            .developers
            .iter()
            .map(|d| attributor.resolve_alias(d).to_lowercase())
            .collect();
        let team_filters: Vec<String> = f.teams.iter().map(|t| t.to_lowercase()).collect();
        for i in identities {
            let a: Attribution = attributor.attribute(i);
            kept_dev.push(
                (dev_filters.is_empty() || dev_filters.contains(&a.developer.to_lowercase()))
                    && (team_filters.is_empty()
                        || a.team
                            .as_ref()
                            .is_some_and(|t| team_filters.contains(&t.to_lowercase()))),
            );
            let opt = |s: &Option<String>, st: &mut Interner| {
                s.as_deref().map(|v| st.id(v) as u64).unwrap_or(NONE)
            };
            who.push(Who {
                developer: strings.id(&a.developer) as u64,
                team: opt(&a.team, &mut strings),
                cost_center: opt(&a.cost_center, &mut strings),
                principal: strings.id(if i.principal.is_empty() {
                    "unknown"
                } else {
                    &i.principal
                }) as u64,
                shared: a.via == Via::Shared,
                claimed: a.claimed.clone().map(|c| (a.developer.clone(), c)),
            });
        }
        // Model filters are decided once per model.
        let kept_model: Vec<bool> = model_ids
            .iter()
            .zip(&models)
            .map(|(raw, m)| {
                spec.filters.models.is_empty()
                    || spec
                        .filters
                        .models
                        .iter()
                        .any(|q| model_matches(q, raw, &strings.names[m.label as usize]))
            })
            .collect();
        let mut kept = Vec::with_capacity(identities.len() * model_ids.len());
        for &d in &kept_dev {
            for &m in &kept_model {
                kept.push(d && m);
            }
        }
        ReportBuilder {
            keys: spec.keys,
            zone: spec.zone,
            catalog,
            model_ids,
            models,
            who,
            kept,
            identities,
            attributor,
            strings,
            local_days: HashMap::new(),
            prices: HashMap::new(),
            regions: HashMap::new(),
            groups: HashMap::new(),
            total: Acc::default(),
            unpriced: BTreeMap::new(),
            shared: BTreeMap::new(),
            conflicts: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, fact: &Fact) {
        if !self.kept[fact.identity * self.model_ids.len() + fact.model] {
            return;
        }
        let utc_day = fact.bucket_ms.div_euclid(MS_PER_DAY);
        let region_id = match self.regions.get(fact.region) {
            Some(&id) => id,
            None => {
                let id = self.regions.len() as u32;
                self.regions.insert(fact.region.to_string(), id);
                id
            }
        };
        let (catalog, models, model_ids) = (self.catalog, &self.models, self.model_ids);
        let rates = self
            .prices
            .entry((fact.model, utc_day, fact.input_band, region_id))
            .or_insert_with(|| {
                catalog
                    .decide(
                        &models[fact.model].name,
                        &model_ids[fact.model],
                        fact.region,
                        utc_day,
                        fact.input_band,
                    )
                    .map(|d| d.rates)
            });
        let priced = match rates {
            Ok(r) => r
                .cost_pico(&fact.tokens)
                .map(|p| (p, r.cache_saving_pico(&fact.tokens)))
                .map_err(|class| {
                    Unpriced::NoClassRate(
                        models[fact.model].name.key.clone().unwrap_or_default(),
                        class,
                    )
                }),
            Err(e) => Err(e.clone()),
        };
        // Calls that failed with no tokens cost nothing whatever the model: they are never
        // "unpriced", whatever the grain the fact was read at.
        let with_tokens = fact.calls.saturating_sub(fact.empty_calls);
        let ((pico, saved_pico), unpriced_calls, priced_calls) = match priced {
            Ok(p) => (p, 0, with_tokens),
            Err(_) if with_tokens == 0 || fact.tokens.total() == 0 => ((0, 0), 0, 0),
            Err(why) => {
                let e = self
                    .unpriced
                    .entry(model_ids[fact.model].clone())
                    .or_insert_with(|| (why.to_string(), 0));
                e.1 += with_tokens;
                ((0, 0), with_tokens, 0)
            }
        };
        let who = &self.who[fact.identity];
        if who.shared {
            *self
                .shared
                .entry(self.identities[fact.identity].principal.clone())
                .or_default() += fact.calls;
        }
        if let Some((developer, claimed)) = &who.claimed {
            *self
                .conflicts
                .entry((
                    self.identities[fact.identity].principal.clone(),
                    developer.clone(),
                    claimed.clone(),
                ))
                .or_default() += fact.calls;
        }
        let mut key = [0u64; MAX_KEYS];
        for (slot, k) in key.iter_mut().zip(&self.keys) {
            *slot = match k {
                GroupKey::Developer => who.developer,
                GroupKey::Team => who.team,
                GroupKey::CostCenter => who.cost_center,
                GroupKey::Model => models[fact.model].label as u64,
                GroupKey::Principal => who.principal,
                GroupKey::Operation if fact.operation.is_empty() => NONE,
                GroupKey::Operation => self.strings.id(fact.operation) as u64,
                GroupKey::Region if fact.region.is_empty() => NONE,
                GroupKey::Region => self.strings.id(fact.region) as u64,
                // An hour holds the instant its local hour starts at; calendar keys hold the
                // local day number. Labels are made at the end.
                GroupKey::Hour => self.zone.hour_start_ms(fact.bucket_ms) as u64,
                GroupKey::Day | GroupKey::Week | GroupKey::Month => {
                    let zone = &self.zone;
                    *self
                        .local_days
                        .entry(fact.bucket_ms)
                        .or_insert_with(|| zone.local_day(fact.bucket_ms))
                        as u64
                }
            };
        }
        for k in self.keys.iter().enumerate() {
            // Week and month group whole days: fold the day into its period.
            match k.1 {
                GroupKey::Week => {
                    let day = key[k.0] as i64;
                    key[k.0] = (day - (day + 3).rem_euclid(7)) as u64;
                }
                GroupKey::Month => {
                    let (y, m, _) = crate::time::civil_from_days(key[k.0] as i64);
                    key[k.0] = crate::time::days_from_civil(y, m, 1) as u64;
                }
                _ => {}
            }
        }
        for acc in [self.groups.entry(key).or_default(), &mut self.total] {
            acc.calls += fact.calls;
            acc.errors += fact.errors;
            acc.tokens.add(&fact.tokens);
            acc.pico += pico;
            acc.saved_pico += saved_pico;
            acc.unpriced_calls += unpriced_calls;
            acc.priced_calls += priced_calls;
        }
    }

    fn label(&self, k: GroupKey, v: u64) -> Option<String> {
        if v == NONE && !k.is_time() {
            return None;
        }
        Some(match k {
            GroupKey::Hour => self.zone.format_local_minute(v as i64),
            GroupKey::Day => day_label(v as i64),
            GroupKey::Week => week_label(v as i64),
            GroupKey::Month => month_label(v as i64),
            _ => self.strings.names[v as usize].clone(),
        })
    }

    pub fn finish(self) -> UsageReport {
        let time_first = self.keys.iter().any(|k| k.is_time());
        let mut rows: Vec<ReportRow> = self
            .groups
            .iter()
            .map(|(key, acc)| ReportRow {
                keys: self
                    .keys
                    .iter()
                    .zip(key)
                    .map(|(k, v)| self.label(*k, *v))
                    .collect(),
                figures: acc.figures(),
            })
            .collect();
        if time_first {
            rows.sort_by(|a, b| a.keys.cmp(&b.keys));
        } else {
            rows.sort_by(|a, b| {
                b.figures
                    .cost
                    .cmp(&a.figures.cost)
                    .then(b.figures.calls.cmp(&a.figures.calls))
                    .then(a.keys.cmp(&b.keys))
            });
        }
        let attributor = self.attributor;
        UsageReport {
            omitted: 0,
            keys: self.keys,
            rows,
            total: self.total.figures(),
            unpriced: self
                .unpriced
                .into_iter()
                .map(|(model_id, (reason, calls))| UnpricedModel {
                    model_id,
                    reason,
                    calls,
                })
                .collect(),
            shared: self
                .shared
                .into_iter()
                .map(|(principal, calls)| SharedPrincipal {
                    reason: attributor
                        .shared_reasons
                        .get(&principal)
                        .cloned()
                        .unwrap_or_default(),
                    principal,
                    calls,
                })
                .collect(),
            conflicts: self
                .conflicts
                .into_iter()
                .map(
                    |((principal, developer, claimed), calls)| MetadataConflict {
                        principal,
                        developer,
                        claimed,
                        calls,
                    },
                )
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::time::parse_timestamp_ms;

    #[test]
    fn groups_prices_and_flags() {
        let config = Config::defaults();
        let identities = vec![
            Identity {
                principal: "arn:aws:iam::1:user/alice".into(),
                signal: None,
            },
            Identity {
                principal: "arn:aws:sts::1:assumed-role/r/i-0a1b2c3d4e5f67890".into(),
                signal: None,
            },
        ];
        let models = vec![
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0".to_string(),
            "anthropic.claude-9".to_string(),
        ];
        let attributor = Attributor::new(&config, &identities);
        let catalog = PriceCatalog::embedded();
        let mut b = ReportBuilder::new(
            ReportSpec {
                keys: vec![GroupKey::Developer],
                zone: Zone::utc(),
                filters: Filters::default(),
            },
            &catalog,
            &attributor,
            &identities,
            &models,
            &HashMap::new(),
        );
        let ts = parse_timestamp_ms("2026-11-03T10:00:00Z").expect("ts");
        let million = Tokens {
            input: 1_000_000,
            ..Default::default()
        };
        let fact = |identity, model, calls| Fact {
            bucket_ms: ts,
            identity,
            model,
            region: "us-east-1",
            operation: "Converse",
            input_band: Default::default(),
            calls,
            errors: 0,
            empty_calls: 0,
            tokens: million,
        };
        b.add(&fact(0, 0, 2));
        b.add(&fact(0, 1, 1));
        b.add(&fact(1, 0, 1));
        let r = b.finish();
        assert_eq!(r.rows.len(), 2);
        let alice = r
            .rows
            .iter()
            .find(|row| row.keys[0].as_deref() == Some("alice"))
            .expect("alice");
        assert_eq!(alice.figures.calls, 3);
        assert_eq!(alice.figures.cost, NanoUsd(3_000_000_000));
        assert_eq!(alice.figures.unpriced_calls, 1);
        assert_eq!(r.unpriced.len(), 1);
        assert_eq!(r.shared.len(), 1);
        assert_eq!(r.total.cost, NanoUsd(6_000_000_000));
        assert!(r
            .rows
            .iter()
            .any(|row| row.keys[0].as_deref() == Some("shared:r/i-0a1b2c3d4e5f67890")));
        // Empty calls summed with others into one fact are not unpriced.
        let mut b2 = ReportBuilder::new(
            ReportSpec {
                keys: vec![GroupKey::Model],
                zone: Zone::utc(),
                filters: Filters::default(),
            },
            &catalog,
            &attributor,
            &identities,
            &models,
            &HashMap::new(),
        );
        b2.add(&Fact {
            calls: 10,
            empty_calls: 4,
            ..fact(0, 1, 10)
        });
        let r = b2.finish();
        assert_eq!(r.total.unpriced_calls, 6);
        assert_eq!(
            r.total.known_cost(),
            None,
            "all calls with tokens unpriced: unknown"
        );
        assert_eq!(r.unpriced[0].calls, 6);
    }
}
