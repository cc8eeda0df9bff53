//! Limits at the gateway: `[[limits]]` (requests and tokens per minute, concurrent calls) and
//! hard budgets (`action = "block"`), decided at admission. Pure: the clock is a parameter and
//! nothing here touches the network or the store.
//!
//! - **Windows** are sliding logs of the last 60 seconds: a request is admitted when fewer than
//!   `requests_per_minute` were admitted in the 60 s before it, so N+k requests in a minute admit
//!   exactly N (a token bucket would let a burst of its capacity through on top of the refill).
//! - **Tokens per minute** count input, cache writes and output (cache reads not, as Anthropic's
//!   own input-token limits do not): a call is admitted while the last 60 s are under the limit,
//!   and its tokens count, at its admission time, once it ends.
//! - **Hard budgets** reserve an upper bound of the call's cost ([`estimate`], [`upper_cost`])
//!   against the period's spend; the reservation becomes the actual cost when the call ends
//!   (released on an error), so admitted calls together never spend past the budget.
//!
//! [`Ledger`] is the in-process state; the Redis backend runs the same decisions in a script.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::money::NanoUsd;
use crate::pricing::Rates;

/// The length of every rate window.
pub const WINDOW_MS: i64 = 60_000;

/// Tokens an image (or a document page) may stand for beyond its bytes: Claude scales images to
/// at most about 1.15 megapixels, about 1,600 tokens.
pub const IMAGE_TOKENS: u64 = 1_600;

/// `[[limits]]` as the file says it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub developer: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    /// A gateway key id (`keys list`).
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub each_developer: bool,
    #[serde(default)]
    pub requests_per_minute: Option<i64>,
    #[serde(default)]
    pub tokens_per_minute: Option<i64>,
    #[serde(default)]
    pub max_concurrent: Option<i64>,
    #[serde(default)]
    pub on_unavailable: Option<String>,
}

/// What to do when the shared state (Redis) cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnavailable {
    Allow,
    Deny,
}

/// Who a limit or budget applies to. Every field given must match; `each_developer` keeps one
/// count per developer instead of one for the whole scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitScope {
    pub developer: Option<String>,
    pub team: Option<String>,
    pub key: Option<String>,
    pub model: Option<String>,
    pub each_developer: bool,
}

/// A checked `[[limits]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub name: String,
    pub scope: LimitScope,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub max_concurrent: Option<u64>,
    pub on_unavailable: OnUnavailable,
}

/// What admission knows of a call.
#[derive(Debug, Clone)]
pub struct CallFacts<'a> {
    pub developer: &'a str,
    pub team: Option<&'a str>,
    pub cost_center: Option<&'a str>,
    pub key_id: &'a str,
    pub model_id: &'a str,
    /// The normalized model key (or the raw id when it names no model).
    pub model_label: &'a str,
}

fn same(want: &Option<String>, got: Option<&str>) -> bool {
    match want {
        None => true,
        Some(w) => got.is_some_and(|g| g.eq_ignore_ascii_case(w)),
    }
}

impl LimitScope {
    /// The instance of this scope the call counts in (`all`, or the developer), or `None` when
    /// the scope does not cover it.
    pub fn instance(&self, c: &CallFacts) -> Option<String> {
        let model_ok = self
            .model
            .as_deref()
            .is_none_or(|m| crate::report::model_matches(m, c.model_id, c.model_label));
        if !(same(&self.developer, Some(c.developer))
            && same(&self.team, c.team)
            && same(&self.key, Some(c.key_id))
            && model_ok)
        {
            return None;
        }
        Some(if self.each_developer {
            c.developer.to_string()
        } else {
            "all".to_string()
        })
    }
}

/// The instance of a budget's scope the call counts in (`all`, or the developer for
/// `each_developer`), or `None` when the budget does not cover it.
pub fn budget_instance(scope: &crate::budget::Scope, c: &CallFacts) -> Option<String> {
    let model_ok = scope
        .model
        .as_deref()
        .is_none_or(|m| crate::report::model_matches(m, c.model_id, c.model_label));
    if !(same(&scope.developer, Some(c.developer))
        && same(&scope.team, c.team)
        && same(&scope.cost_center, c.cost_center)
        && model_ok)
    {
        return None;
    }
    Some(if scope.each_developer {
        c.developer.to_string()
    } else {
        "all".to_string()
    })
}

/// Checks `[[limits]]`, each problem naming its field.
pub fn check_limits(raw: Vec<RawLimit>, problems: &mut Vec<String>) -> Vec<Limit> {
    let mut out: Vec<Limit> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let here = format!("limits[{i}] ({})", r.name);
        let before = problems.len();
        if r.name.trim().is_empty() {
            problems.push(format!("`limits[{i}].name`: missing"));
        } else if out.iter().any(|l| l.name == r.name) {
            problems.push(format!("`{here}.name`: another limit has this name"));
        }
        let mut positive = |field: &str, v: Option<i64>| match v {
            None => None,
            Some(n) if n >= 1 => Some(n as u64),
            Some(n) => {
                problems.push(format!("`{here}.{field}` = {n}: a whole number above 0"));
                None
            }
        };
        let rpm = positive("requests_per_minute", r.requests_per_minute);
        let tpm = positive("tokens_per_minute", r.tokens_per_minute);
        let conc = positive("max_concurrent", r.max_concurrent);
        if r.requests_per_minute.is_none()
            && r.tokens_per_minute.is_none()
            && r.max_concurrent.is_none()
        {
            problems.push(format!(
                "`{here}`: give requests_per_minute, tokens_per_minute or max_concurrent"
            ));
        }
        let on_unavailable = match r.on_unavailable.as_deref() {
            None | Some("allow") => OnUnavailable::Allow,
            Some("deny") => OnUnavailable::Deny,
            Some(o) => {
                problems.push(format!(
                    "`{here}.on_unavailable` = `{o}`: one of allow, deny"
                ));
                OnUnavailable::Allow
            }
        };
        for (field, v) in [
            ("developer", &r.developer),
            ("team", &r.team),
            ("key", &r.key),
            ("model", &r.model),
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                problems.push(format!("`{here}.{field}`: empty"));
            }
        }
        if r.each_developer && r.developer.is_some() {
            problems.push(format!(
                "`{here}`: each_developer with one developer; give one or the other"
            ));
        }
        if problems.len() == before {
            out.push(Limit {
                name: r.name,
                scope: LimitScope {
                    developer: r.developer,
                    team: r.team,
                    key: r.key,
                    model: r.model,
                    each_developer: r.each_developer,
                },
                requests_per_minute: rpm,
                tokens_per_minute: tpm,
                max_concurrent: conc,
                on_unavailable,
            });
        }
    }
    out
}

/// An upper bound of what a call can use, from its request alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Input-side tokens: no more than the body's bytes (a token is at least one byte of the
    /// text that carries it), plus [`IMAGE_TOKENS`] per image or document.
    pub input_tokens: u64,
    /// The body's `max_tokens` (Converse: `inferenceConfig.maxTokens`), else the default.
    pub output_tokens: u64,
    /// Whether the body named its output bound.
    pub max_tokens_given: bool,
}

/// The estimate for a request body.
pub fn estimate(body: &[u8], converse: bool, default_max_tokens: u64) -> Estimate {
    let v: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let given = v.as_ref().and_then(|v| {
        if converse {
            v["inferenceConfig"]["maxTokens"].as_u64()
        } else {
            v["max_tokens"].as_u64()
        }
    });
    let images = count_images(body);
    Estimate {
        input_tokens: body.len() as u64 + images * IMAGE_TOKENS,
        output_tokens: given.unwrap_or(default_max_tokens),
        max_tokens_given: given.is_some(),
    }
}

/// Image and document blocks: `"type":"image"` / `"type":"document"` (Messages), `"image":{` /
/// `"document":{` (Converse).
fn count_images(body: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(body);
    let compact: String = text.split_whitespace().collect();
    [
        "\"type\":\"image\"",
        "\"type\":\"document\"",
        "\"image\":{",
        "\"document\":{",
    ]
    .iter()
    .map(|p| compact.matches(p).count() as u64)
    .sum()
}

/// The most `est` can cost at `rates` (already chosen for long context when the estimate is
/// over the threshold): every input token at the dearest input-side rate (a 1-hour cache write
/// where there is one), every output token at the output rate. Rounded up to the nano-dollar.
pub fn upper_cost(rates: &Rates, est: &Estimate) -> NanoUsd {
    let input_rate = rates.dearest_input_side();
    let pico = est.input_tokens as i128 * input_rate as i128
        + est.output_tokens as i128 * rates.output as i128;
    NanoUsd(((pico + 999) / 1000) as i64)
}

/// One thing admission checks, with the key its count lives under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Requests {
        limit: String,
        key: String,
        per_minute: u64,
    },
    Tokens {
        limit: String,
        key: String,
        per_minute: u64,
    },
    Concurrent {
        limit: String,
        key: String,
        max: u64,
    },
    Budget {
        budget: String,
        /// budget name, scope instance and period label.
        key: String,
        amount: NanoUsd,
        /// When the period ends (epoch ms), for the message.
        resets_ms: i64,
        /// `month`, `week`, `day`.
        period: String,
    },
}

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// A rate limit: try again after `retry_after_ms`.
    Rate {
        limit: String,
        what: &'static str,
        per_minute: u64,
        retry_after_ms: i64,
    },
    Concurrent {
        limit: String,
        max: u64,
    },
    /// A hard budget: the spend (with open reservations) and this call would pass the amount.
    Budget {
        budget: String,
        period: String,
        spent: NanoUsd,
        reserved: NanoUsd,
        amount: NanoUsd,
        estimate: NanoUsd,
        resets_ms: i64,
    },
}

impl Refused {
    /// What the developer reads (Claude Code shows it as it is).
    pub fn message(&self) -> String {
        match self {
            Refused::Rate {
                limit,
                what,
                per_minute,
                retry_after_ms,
            } => format!(
                "Rate limit `{limit}`: {per_minute} {what} a minute; try again in {} s.",
                (retry_after_ms + 999) / 1000
            ),
            Refused::Concurrent { limit, max } => format!(
                "Limit `{limit}`: at most {max} call(s) at a time; one must end before the next."
            ),
            Refused::Budget {
                budget,
                period,
                spent,
                reserved,
                amount,
                estimate,
                resets_ms,
            } => {
                let open = if reserved.0 > 0 {
                    format!(" (and {} held by calls in flight)", reserved.to_display())
                } else {
                    String::new()
                };
                format!(
                    "Budget `{budget}` would be passed: {} of {} spent this {period}{open}, and this call could cost up to {}. It resets at {}.",
                    spent.to_display(),
                    amount.to_display(),
                    estimate.to_display(),
                    crate::time::format_utc(*resets_ms)
                )
            }
        }
    }
}

/// An admitted call's hold on every count it is in; settle or release it exactly once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub at_ms: i64,
    pub cost: NanoUsd,
    pub checks: Vec<Check>,
    /// The window entries this call added: (key, entry id).
    entries: Vec<(String, u64)>,
}

#[derive(Debug, Default)]
struct Window {
    /// (admitted at, amount, id), oldest first.
    log: VecDeque<(i64, u64, u64)>,
    sum: u64,
}

impl Window {
    fn expire(&mut self, now: i64) {
        while let Some(&(t, n, _)) = self.log.front() {
            if t > now - WINDOW_MS {
                break;
            }
            self.sum -= n;
            self.log.pop_front();
        }
    }
    /// How long until the window is under `limit` again.
    fn retry_after(&self, now: i64, limit: u64) -> i64 {
        let mut sum = self.sum;
        for &(t, n, _) in &self.log {
            sum -= n;
            if sum < limit {
                return (t + WINDOW_MS - now).max(1);
            }
        }
        WINDOW_MS
    }
}

/// One hard budget in one period: the store's spend, what this gateway settled since that the
/// store had not shown yet (by request id), and what calls in flight hold.
#[derive(Debug, Default, Clone)]
struct BudgetCount {
    base: i64,
    /// Request id -> (its cost, when it was settled: the store is asked about it near then).
    unseen: BTreeMap<String, (i64, i64)>,
    unseen_sum: i64,
    reserved: i64,
}

impl BudgetCount {
    fn spent(&self) -> i64 {
        self.base + self.unseen_sum
    }
}

/// Where one hard budget stands (for `/me`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetStanding {
    pub spent: NanoUsd,
    pub reserved: NanoUsd,
}

/// The in-process state of every limit and hard budget.
#[derive(Debug, Default)]
pub struct Ledger {
    windows: HashMap<String, Window>,
    concurrent: HashMap<String, u64>,
    budgets: HashMap<String, BudgetCount>,
    next_id: u64,
    no_id: u64,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Admits a call against every check, all or nothing: the first check that would be passed
    /// refuses it and nothing is counted.
    pub fn admit(
        &mut self,
        checks: Vec<Check>,
        cost: NanoUsd,
        now: i64,
    ) -> Result<Reservation, Refused> {
        for c in &checks {
            match c {
                Check::Requests {
                    limit,
                    key,
                    per_minute,
                }
                | Check::Tokens {
                    limit,
                    key,
                    per_minute,
                } => {
                    let w = self.windows.entry(key.clone()).or_default();
                    w.expire(now);
                    if w.sum >= *per_minute {
                        return Err(Refused::Rate {
                            limit: limit.clone(),
                            what: if matches!(c, Check::Requests { .. }) {
                                "requests"
                            } else {
                                "tokens"
                            },
                            per_minute: *per_minute,
                            retry_after_ms: w.retry_after(now, *per_minute),
                        });
                    }
                }
                Check::Concurrent { limit, key, max } => {
                    if self.concurrent.get(key).copied().unwrap_or(0) >= *max {
                        return Err(Refused::Concurrent {
                            limit: limit.clone(),
                            max: *max,
                        });
                    }
                }
                Check::Budget {
                    budget,
                    key,
                    amount,
                    resets_ms,
                    period,
                } => {
                    // Read in place: the count's map of unseen calls is not copied per call.
                    let (spent, reserved) = self
                        .budgets
                        .get(key)
                        .map_or((0, 0), |b| (b.spent(), b.reserved));
                    if spent + reserved + cost.0 > amount.0 {
                        return Err(Refused::Budget {
                            budget: budget.clone(),
                            period: period.clone(),
                            spent: NanoUsd(spent),
                            reserved: NanoUsd(reserved),
                            amount: *amount,
                            estimate: cost,
                            resets_ms: *resets_ms,
                        });
                    }
                }
            }
        }
        let mut entries = Vec::new();
        for c in &checks {
            match c {
                Check::Requests { key, .. } => {
                    self.next_id += 1;
                    let w = self.windows.entry(key.clone()).or_default();
                    w.log.push_back((now, 1, self.next_id));
                    w.sum += 1;
                    entries.push((key.clone(), self.next_id));
                }
                Check::Tokens { key, .. } => {
                    // Counted when the call ends (its tokens are known then).
                    self.next_id += 1;
                    self.windows.entry(key.clone()).or_default().log.push_back((
                        now,
                        0,
                        self.next_id,
                    ));
                    entries.push((key.clone(), self.next_id));
                }
                Check::Concurrent { key, .. } => {
                    *self.concurrent.entry(key.clone()).or_default() += 1;
                }
                Check::Budget { key, .. } => {
                    self.budgets.entry(key.clone()).or_default().reserved += cost.0;
                }
            }
        }
        Ok(Reservation {
            at_ms: now,
            cost,
            checks,
            entries,
        })
    }

    /// The call ended: `tokens` (input, cache writes, output) count in its token windows, and
    /// `actual` replaces its reservation in its budgets, kept under `request_id` until the store
    /// shows the call ([`Ledger::rebase`]).
    pub fn settle(
        &mut self,
        r: Reservation,
        tokens: u64,
        actual: NanoUsd,
        request_id: Option<&str>,
        now: i64,
    ) {
        let id = match request_id {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => {
                // Never recorded by the gateway: held until the period ends.
                self.no_id += 1;
                format!("\u{0}unrecorded-{}", self.no_id)
            }
        };
        for c in &r.checks {
            match c {
                Check::Tokens { key, .. } => {
                    let w = self.windows.entry(key.clone()).or_default();
                    let mine = r.entries.iter().find(|(k, _)| k == key).map(|e| e.1);
                    // From the newest end: a call's entry is among the last admitted, so this
                    // is short even with a full window of a busy minute.
                    match w.log.iter_mut().rev().find(|e| Some(e.2) == mine) {
                        Some(e) => e.1 += tokens,
                        // A call longer than the window: its tokens count from its end.
                        None => w.log.push_back((now, tokens, 0)),
                    }
                    w.sum += tokens;
                }
                Check::Budget { key, .. } => {
                    let b = self.budgets.entry(key.clone()).or_default();
                    b.reserved -= r.cost.0;
                    b.unseen.entry(id.clone()).or_insert((0, now)).0 += actual.0;
                    b.unseen_sum += actual.0;
                }
                _ => {}
            }
        }
        self.end(&r);
    }

    /// The call failed before it used anything: its holds go, its request still counts.
    pub fn release(&mut self, r: Reservation) {
        for c in &r.checks {
            if let Check::Budget { key, .. } = c {
                if let Some(b) = self.budgets.get_mut(key) {
                    b.reserved -= r.cost.0;
                }
            }
        }
        self.end(&r);
    }

    fn end(&mut self, r: &Reservation) {
        for c in &r.checks {
            if let Check::Concurrent { key, .. } = c {
                if let Some(n) = self.concurrent.get_mut(key) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }

    /// Request ids settled here that the store may not show yet, with when they were settled
    /// (the store finds a call by its request id near its time).
    pub fn unseen_ids(&self) -> HashMap<String, i64> {
        self.budgets
            .values()
            .flat_map(|b| b.unseen.iter().map(|(id, (_, at))| (id.clone(), *at)))
            .collect()
    }

    /// The store's spend per budget count (key -> spend; a count it does not name spent
    /// nothing there), read *after* `seen` (the unseen ids the store was found to hold): those
    /// leave the unseen sums, being in the spend now.
    pub fn rebase(&mut self, spend: &HashMap<String, NanoUsd>, seen: &HashSet<String>) {
        for k in spend.keys() {
            self.budgets.entry(k.clone()).or_default();
        }
        for (k, b) in self.budgets.iter_mut() {
            b.base = spend.get(k).map_or(0, |s| s.0);
            b.unseen.retain(|id, (c, _)| {
                let keep = !seen.contains(id);
                if !keep {
                    b.unseen_sum -= *c;
                }
                keep
            });
        }
    }

    pub fn budget(&self, key: &str) -> BudgetStanding {
        let (spent, reserved) = self
            .budgets
            .get(key)
            .map_or((0, 0), |b| (b.spent(), b.reserved));
        BudgetStanding {
            spent: NanoUsd(spent),
            reserved: NanoUsd(reserved),
        }
    }

    /// What a window holds now (requests or tokens of the last 60 s).
    pub fn window(&mut self, key: &str, now: i64) -> u64 {
        match self.windows.get_mut(key) {
            Some(w) => {
                w.expire(now);
                w.sum
            }
            None => 0,
        }
    }

    pub fn concurrent(&self, key: &str) -> u64 {
        self.concurrent.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpm(n: u64) -> Check {
        Check::Requests {
            limit: "l".into(),
            key: "rpm/l/all".into(),
            per_minute: n,
        }
    }

    fn budget(amount: i64) -> Check {
        Check::Budget {
            budget: "b".into(),
            key: "b/all/2026-12".into(),
            amount: NanoUsd(amount),
            resets_ms: 0,
            period: "month".into(),
        }
    }

    #[test]
    fn n_plus_k_requests_in_a_minute_admit_exactly_n_and_the_window_slides() {
        let mut l = Ledger::new();
        let mut admitted = 0;
        for i in 0..15 {
            if l.admit(vec![rpm(10)], NanoUsd(0), 1_000 + i * 100).is_ok() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 10);
        // The 11th is refused until the first leaves the window, 60 s after it.
        match l.admit(vec![rpm(10)], NanoUsd(0), 30_000) {
            Err(Refused::Rate { retry_after_ms, .. }) => assert_eq!(retry_after_ms, 31_000),
            other => panic!("{other:?}"),
        }
        assert!(l.admit(vec![rpm(10)], NanoUsd(0), 61_000).is_ok());
        assert!(l.admit(vec![rpm(10)], NanoUsd(0), 61_000).is_err());
    }

    #[test]
    fn a_refused_call_counts_nowhere() {
        let mut l = Ledger::new();
        let conc = Check::Concurrent {
            limit: "c".into(),
            key: "c/all".into(),
            max: 5,
        };
        let _r = l.admit(vec![rpm(100), budget(10)], NanoUsd(10), 0).unwrap();
        // The budget refuses: the request window and concurrency are untouched.
        assert!(l
            .admit(vec![rpm(100), conc.clone(), budget(10)], NanoUsd(1), 0)
            .is_err());
        assert_eq!(l.window("rpm/l/all", 0), 1);
        assert_eq!(l.concurrent("c/all"), 0);
    }

    #[test]
    fn reservations_settle_to_the_actual_cost_and_release_on_error() {
        let mut l = Ledger::new();
        let a = l.admit(vec![budget(100)], NanoUsd(40), 0).unwrap();
        let b = l.admit(vec![budget(100)], NanoUsd(40), 0).unwrap();
        assert!(
            l.admit(vec![budget(100)], NanoUsd(40), 0).is_err(),
            "80 held, 40 more > 100"
        );
        l.settle(a, 10, NanoUsd(7), Some("req-a"), 0);
        l.release(b);
        let s = l.budget("b/all/2026-12");
        assert_eq!((s.spent, s.reserved), (NanoUsd(7), NanoUsd(0)));
        // The store shows req-a: it moves from the unseen sum into the base, counted once.
        let seen: HashSet<String> = ["req-a".to_string()].into();
        let spend: HashMap<String, NanoUsd> =
            [("b/all/2026-12".to_string(), NanoUsd(7 + 50))].into();
        l.rebase(&spend, &seen);
        assert_eq!(l.budget("b/all/2026-12").spent, NanoUsd(57));
        // A store read that does not show it yet keeps it unseen, on top of the base.
        let mut l2 = Ledger::new();
        let a = l2.admit(vec![budget(100)], NanoUsd(40), 0).unwrap();
        l2.settle(a, 0, NanoUsd(7), Some("req-a"), 0);
        l2.rebase(
            &[("b/all/2026-12".to_string(), NanoUsd(50))].into(),
            &HashSet::new(),
        );
        assert_eq!(l2.budget("b/all/2026-12").spent, NanoUsd(57));
    }

    #[test]
    fn tokens_count_when_the_call_ends_at_its_admission_time() {
        let mut l = Ledger::new();
        let tpm = || Check::Tokens {
            limit: "t".into(),
            key: "tpm/t/alice".into(),
            per_minute: 1_000,
        };
        let r = l.admit(vec![tpm()], NanoUsd(0), 0).unwrap();
        assert!(
            l.admit(vec![tpm()], NanoUsd(0), 1).is_ok(),
            "nothing counted yet"
        );
        l.settle(r, 1_200, NanoUsd(0), None, 5);
        match l.admit(vec![tpm()], NanoUsd(0), 10_000) {
            Err(Refused::Rate {
                what,
                retry_after_ms,
                ..
            }) => {
                assert_eq!(what, "tokens");
                assert_eq!(retry_after_ms, 50_000);
            }
            other => panic!("{other:?}"),
        }
        assert!(l.admit(vec![tpm()], NanoUsd(0), 60_000).is_ok());
    }

    #[test]
    fn the_estimate_bounds_input_by_bytes_and_output_by_max_tokens() {
        let body = br#"{"max_tokens": 500, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}"#;
        let e = estimate(body, false, 64_000);
        assert_eq!(e.input_tokens, body.len() as u64 + IMAGE_TOKENS);
        assert_eq!((e.output_tokens, e.max_tokens_given), (500, true));
        let c = estimate(
            br#"{"messages": [], "inferenceConfig": {"maxTokens": 9}}"#,
            true,
            64_000,
        );
        assert_eq!(c.output_tokens, 9);
        let d = estimate(b"{}", true, 64_000);
        assert_eq!((d.output_tokens, d.max_tokens_given), (64_000, false));
        let rates = Rates {
            from_day: 0,
            input: 3_000_000,
            output: 15_000_000,
            cache_write_5m: Some(3_750_000),
            cache_write_1h: Some(6_000_000),
            cache_read: Some(300_000),
        };
        // 1,000 input at $6/M (the 1-hour write) + 500 output at $15/M = $0.0135.
        let est = Estimate {
            input_tokens: 1_000,
            output_tokens: 500,
            max_tokens_given: true,
        };
        assert_eq!(upper_cost(&rates, &est), NanoUsd(13_500_000));
    }

    #[test]
    fn scopes_match_case_insensitively_and_per_developer() {
        let c = CallFacts {
            developer: "alice",
            team: Some("ml"),
            cost_center: None,
            key_id: "k1",
            model_id: "us.anthropic.claude-opus-4-6-v1",
            model_label: "claude-opus-4-6",
        };
        let s = LimitScope {
            team: Some("ML".into()),
            model: Some("opus".into()),
            each_developer: true,
            ..LimitScope::default()
        };
        assert_eq!(s.instance(&c).as_deref(), Some("alice"));
        let other = LimitScope {
            key: Some("k2".into()),
            ..LimitScope::default()
        };
        assert_eq!(other.instance(&c), None);
        assert_eq!(LimitScope::default().instance(&c).as_deref(), Some("all"));
    }

    #[test]
    fn bad_limits_name_the_field() {
        let mut p = Vec::new();
        let got = check_limits(
            vec![
                RawLimit {
                    name: "a".into(),
                    requests_per_minute: Some(0),
                    on_unavailable: Some("maybe".into()),
                    ..RawLimit::default()
                },
                RawLimit {
                    name: "b".into(),
                    ..RawLimit::default()
                },
            ],
            &mut p,
        );
        assert!(got.is_empty());
        assert!(
            p.iter()
                .any(|m| m.contains("`limits[0] (a).requests_per_minute` = 0")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("`limits[0] (a).on_unavailable` = `maybe`")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("`limits[1] (b)`: give requests_per_minute")),
            "{p:?}"
        );
    }
}
