//! Budgets: how much a scope (a developer, a team, everyone, ...) may spend per calendar period,
//! and where it stands: spent, percent, a forecast for the period's end, its state, and which
//! thresholds it has crossed. Pure maths over integers: the caller brings the spend (the same
//! figures `report` computes) and the clock.

#![deny(clippy::float_arithmetic)]

use crate::money::NanoUsd;
use crate::time::{civil_from_days, days_from_civil, format_date, Zone};

const MS_PER_DAY: i64 = 86_400_000;

/// A calendar period in a zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    /// ISO weeks: Monday to Sunday.
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// The period that holds the instant `now_ms`, in `zone`.
    pub fn around(self, zone: &Zone, now_ms: i64) -> Bounds {
        let today = zone.local_day(now_ms);
        let (first, next) = match self {
            Period::Day => (today, today + 1),
            Period::Week => {
                // 1970-01-01 was a Thursday: day 0 has weekday index 3 (Monday = 0).
                let monday = today - (today + 3).rem_euclid(7);
                (monday, monday + 7)
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(today);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (days_from_civil(y, m, 1), days_from_civil(ny, nm, 1))
            }
        };
        let label = match self {
            Period::Day => format_date(first),
            Period::Week => format!("week of {}", format_date(first)),
            Period::Month => {
                let (y, m, _) = civil_from_days(first);
                format!("{y:04}-{m:02}")
            }
        };
        Bounds {
            start_ms: zone.day_start_ms(first),
            end_ms: zone.day_start_ms(next),
            first_day: first,
            label,
        }
    }
}

/// One period: `[start_ms, end_ms)`, its first local day and a label (`2026-12`,
/// `week of 2026-11-30`, `2026-12-02`) that names it in alerts and their keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounds {
    pub start_ms: i64,
    pub end_ms: i64,
    pub first_day: i64,
    pub label: String,
}

/// Where a budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok,
    /// A threshold below 100% is crossed.
    Warning,
    /// Not exceeded yet, but the forecast for the period's end is at or above the amount.
    ForecastExceeded,
    Exceeded,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::ForecastExceeded => "forecast-exceeded",
            State::Exceeded => "exceeded",
        }
    }
}

/// A forecast needs this much of the period behind it (a day for weeks and months, six hours for
/// a day): before that, one busy morning would predict a fortune.
pub fn forecast_needs_ms(period: Period) -> i64 {
    match period {
        Period::Day => 6 * 3_600_000,
        Period::Week | Period::Month => MS_PER_DAY,
    }
}

/// The rate a forecast extends: the spend of the last seven days of the period (or of all of it,
/// when it is younger), per millisecond.
pub const FORECAST_WINDOW_MS: i64 = 7 * MS_PER_DAY;

/// The window whose spend [`evaluate`] takes as the recent rate: `[from, now)`, `from` on a
/// quarter hour (where the store's rollups begin) and never before the period.
pub fn forecast_window(b: &Bounds, now_ms: i64) -> (i64, i64) {
    let from = (now_ms - FORECAST_WINDOW_MS).div_euclid(900_000) * 900_000;
    (from.max(b.start_ms), now_ms)
}

/// What a budget's figures are, at `now_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub spent: NanoUsd,
    pub amount: NanoUsd,
    /// Spent over amount in basis points (1/100 of a percent), rounded down.
    pub basis_points: i64,
    /// Spend expected by the period's end at the recent rate; `None` when forecasts are off or
    /// too little of the period has passed.
    pub forecast: Option<NanoUsd>,
    pub state: State,
    /// Whole or part days until the period ends (0 once it has).
    pub days_left: i64,
    /// The configured thresholds (percent) the spend has reached, ascending.
    pub crossed: Vec<u32>,
}

/// Spent over amount in basis points, rounded down.
pub fn basis_points(spent: NanoUsd, amount: NanoUsd) -> i64 {
    (i128::from(spent.0) * 10_000 / i128::from(amount.0.max(1))) as i64
}

/// What a budget's status is. `recent` is the spend in [`forecast_window`]; `thresholds` are
/// percentages.
pub fn evaluate(
    amount: NanoUsd,
    thresholds: &[u32],
    period: Period,
    bounds: &Bounds,
    spent: NanoUsd,
    recent: Option<NanoUsd>,
    now_ms: i64,
) -> Status {
    let a = i128::from(amount.0.max(1));
    let s = i128::from(spent.0);
    let basis_points = basis_points(spent, amount);
    let mut crossed: Vec<u32> = thresholds
        .iter()
        .copied()
        .filter(|t| s * 100 >= a * i128::from(*t))
        .collect();
    crossed.sort_unstable();
    crossed.dedup();
    let elapsed = now_ms.clamp(bounds.start_ms, bounds.end_ms) - bounds.start_ms;
    let left = bounds.end_ms - now_ms.clamp(bounds.start_ms, bounds.end_ms);
    let forecast = recent.and_then(|r| {
        if elapsed < forecast_needs_ms(period) {
            return None;
        }
        let (from, to) = forecast_window(bounds, now_ms.min(bounds.end_ms));
        let span = i128::from((to - from).max(1));
        Some(NanoUsd(
            (s + i128::from(r.0) * i128::from(left) / span).min(i128::from(i64::MAX)) as i64,
        ))
    });
    let state = if s >= a {
        State::Exceeded
    } else if forecast.is_some_and(|f| i128::from(f.0) >= a) {
        State::ForecastExceeded
    } else if crossed.iter().any(|t| *t < 100) {
        State::Warning
    } else {
        State::Ok
    };
    Status {
        spent,
        amount,
        basis_points,
        forecast,
        state,
        days_left: (left + MS_PER_DAY - 1) / MS_PER_DAY,
        crossed,
    }
}

/// `41.25%` from basis points.
pub fn percent_text(basis_points: i64) -> String {
    format!("{}.{:02}%", basis_points / 100, basis_points % 100)
}

/// An alert that is due, and the key that makes it happen once: the budget, the scope value,
/// the period and the threshold (never the amount, so raising a budget does not re-send what
/// was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub key: String,
    pub kind: DueKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueKind {
    Threshold(u32),
    Forecast,
}

/// The alerts a status makes due (the caller drops the ones already sent, by key).
pub fn due(budget: &str, scope_value: &str, bounds: &Bounds, st: &Status) -> Vec<Due> {
    let base = format!("budget/{budget}/{scope_value}/{}", bounds.label);
    let mut out: Vec<Due> = st
        .crossed
        .iter()
        .map(|t| Due {
            key: format!("{base}/{t}%"),
            kind: DueKind::Threshold(*t),
        })
        .collect();
    if st.state == State::ForecastExceeded {
        out.push(Due {
            key: format!("{base}/forecast"),
            kind: DueKind::Forecast,
        });
    }
    out
}

/// The median of daily spends (days without spend count as zero), rounded down.
pub fn median(days: &[NanoUsd]) -> NanoUsd {
    let mut v: Vec<i64> = days.iter().map(|d| d.0).collect();
    if v.is_empty() {
        return NanoUsd(0);
    }
    v.sort_unstable();
    let n = v.len();
    NanoUsd(if n % 2 == 1 {
        v[n / 2]
    } else {
        ((i128::from(v[n / 2 - 1]) + i128::from(v[n / 2])) / 2) as i64
    })
}

/// Whether today's spend is an anomaly: above `factor_milli / 1000` times the median of the
/// trailing days and above the floor. Returns the median when it is.
pub fn anomaly(
    today: NanoUsd,
    trailing: &[NanoUsd],
    factor_milli: i64,
    floor: NanoUsd,
) -> Option<NanoUsd> {
    let m = median(trailing);
    let over = i128::from(today.0) * 1000 > i128::from(m.0) * i128::from(factor_milli);
    (over && today > floor).then_some(m)
}

/// A digest of the period that ended: due at `hour` (local) on the first day of the next
/// period, and for a day after that (a digest a run missed for longer is skipped, not sent
/// late). Returns the period to report and the one before it (for the change).
pub fn digest_due(every: Period, hour: u32, zone: &Zone, now_ms: i64) -> Option<(Bounds, Bounds)> {
    let current = every.around(zone, now_ms);
    let due_at = current.start_ms + i64::from(hour) * 3_600_000;
    if now_ms < due_at || now_ms - due_at >= MS_PER_DAY {
        return None;
    }
    let done = every.around(zone, current.start_ms - 1);
    let before = every.around(zone, done.start_ms - 1);
    Some((done, before))
}

/// The change from `before` to `now` in basis points, `None` when there was nothing before.
pub fn change_basis_points(before: NanoUsd, now: NanoUsd) -> Option<i64> {
    (before.0 > 0).then(|| {
        ((i128::from(now.0) - i128::from(before.0)) * 10_000 / i128::from(before.0)) as i64
    })
}

// ---- Configuration: `[[budgets]]`, `[[channels]]` and `[alerts]` ----

/// What a budget does at 100%.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Notify (the default).
    Alert,
    /// Refuse calls at the gateway (the limits issue) as well as notify.
    Block,
}

/// Whose spend a budget counts: every field set narrows it (all must match); none set is
/// everyone. `each_developer` makes one budget per developer within the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub developer: Option<String>,
    pub team: Option<String>,
    pub cost_center: Option<String>,
    /// A model key or id substring, as `report --model` takes it.
    pub model: Option<String>,
    pub each_developer: bool,
}

impl Scope {
    /// `team ml, each developer`, `developer alice`, `everyone`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("developer", &self.developer),
            ("team", &self.team),
            ("cost center", &self.cost_center),
            ("model", &self.model),
        ] {
            if let Some(v) = v {
                parts.push(format!("{k} {v}"));
            }
        }
        if self.each_developer {
            parts.push("each developer".into());
        }
        if parts.is_empty() {
            "everyone".into()
        } else {
            parts.join(", ")
        }
    }
}

/// A checked `[[budgets]]` entry.
#[derive(Debug, Clone)]
pub struct Budget {
    pub name: String,
    pub scope: Scope,
    pub period: Period,
    pub zone: Zone,
    pub amount: NanoUsd,
    /// Percentages, ascending.
    pub thresholds: Vec<u32>,
    pub forecast: bool,
    pub channels: Vec<String>,
    pub action: Action,
}

/// A checked `[[channels]]` entry. Secrets are held as given (or as the name of the environment
/// variable that holds them) and never printed: `Debug` redacts them.
#[derive(Clone, PartialEq, Eq)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
}

#[derive(Clone, PartialEq, Eq)]
pub enum ChannelKind {
    /// A Slack incoming-webhook URL (a secret).
    Slack { url: Secret },
    /// JSON POSTed to `url`, signed with HMAC-SHA256 of `secret`.
    Webhook { url: String, secret: Secret },
    /// Published to an SNS topic through the AWS SDK; the region defaults to the topic's.
    Sns {
        topic_arn: String,
        access: crate::config::AwsAccess,
    },
    Email {
        /// `smtp://host:port` or `smtps://host:port`.
        smtp_url: String,
        from: String,
        to: Vec<String>,
        username_env: Option<String>,
        password_env: Option<String>,
    },
}

impl ChannelKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Sns { .. } => "sns",
            ChannelKind::Email { .. } => "email",
        }
    }
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("type", &self.kind.type_name())
            .finish_non_exhaustive()
    }
}

/// A secret from the file or from an environment variable named there.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    Env(String),
}

impl Secret {
    /// The secret itself; the error names the variable that is not set.
    pub fn reveal(&self) -> Result<String, String> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::Env(name) => std::env::var(name)
                .map_err(|_| format!("the environment variable `{name}` is not set")),
        }
    }
}

/// A checked `[[digests]]` entry: a report of the period that ended, sent once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub name: String,
    pub every: Period,
    /// Local hour (in the alerts zone) on the next period's first day.
    pub hour: u32,
    pub by: Vec<String>,
    pub top: usize,
    pub channels: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDigest {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub every: String,
    #[serde(default)]
    pub hour: Option<u32>,
    #[serde(default)]
    pub by: Vec<String>,
    #[serde(default)]
    pub top: Option<usize>,
    #[serde(default)]
    pub channels: Vec<String>,
}

/// Checks `[[digests]]` (the `by` keys are checked by the caller, which knows the report keys).
pub fn check_digests(
    raw: Vec<RawDigest>,
    channels: &[Channel],
    problems: &mut Vec<String>,
) -> Vec<Digest> {
    let mut out = Vec::new();
    for (i, d) in raw.into_iter().enumerate() {
        let here = format!("digests[{i}] ({})", d.name);
        let before = problems.len();
        if d.name.trim().is_empty() || d.name.contains('/') {
            problems.push(format!(
                "`digests[{i}].name`: give each digest a name (no `/`)"
            ));
        }
        let every = Period::parse(&d.every);
        if every.is_none() {
            problems.push(format!(
                "`{here}.every` = `{}`: one of day, week, month",
                d.every
            ));
        }
        let hour = d.hour.unwrap_or(9);
        if hour > 23 {
            problems.push(format!("`{here}.hour` = {hour}: from 0 to 23"));
        }
        let top = d.top.unwrap_or(10);
        if top == 0 {
            problems.push(format!("`{here}.top`: at least 1"));
        }
        for c in &d.channels {
            if !channels.iter().any(|k| &k.name == c) {
                problems.push(format!("`{here}.channels`: no channel is named `{c}`"));
            }
        }
        if out.iter().any(|o: &Digest| o.name == d.name) {
            problems.push(format!("`{here}`: another digest is named `{}`", d.name));
        }
        if problems.len() == before {
            if let Some(every) = every {
                out.push(Digest {
                    name: d.name,
                    every,
                    hour,
                    by: if d.by.is_empty() {
                        vec!["developer".into()]
                    } else {
                        d.by
                    },
                    top,
                    channels: d.channels,
                });
            }
        }
    }
    out
}

/// `[alerts]`: settings shared by every budget.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// The zone calendar periods are counted in (a budget's own `timezone` wins).
    pub zone: Zone,
    /// How long one delivery attempt may take.
    pub timeout_ms: i64,
    /// `[alerts.anomaly]`, when set.
    pub anomaly: Option<Anomaly>,
}

/// A developer's spend today above `factor` times their median daily spend over the trailing
/// `days` (days without spend count as zero) and above `floor`: one alert per developer per day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The factor in thousandths (`"2.5"` is 2500).
    pub factor_milli: i64,
    pub floor: NanoUsd,
    pub days: u32,
    pub channels: Vec<String>,
}

impl Default for AlertSettings {
    fn default() -> AlertSettings {
        AlertSettings {
            zone: Zone::utc(),
            timeout_ms: 10_000,
            anomaly: None,
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnomaly {
    /// Times the trailing median, a decimal string (default `"3"`).
    #[serde(default)]
    pub factor: Option<String>,
    /// USD below which a day is never an anomaly (default `"10"`).
    #[serde(default)]
    pub floor: Option<String>,
    /// The trailing window in days (default 14).
    #[serde(default)]
    pub days: Option<u32>,
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// IANA zone for calendar periods (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// How long one delivery attempt may take (default `10s`).
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub anomaly: Option<RawAnomaly>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub developer: Option<String>,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub cost_center: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub each_developer: bool,
    #[serde(default)]
    pub period: String,
    /// USD as a decimal string (`"300"`, `"25.50"`); an integer is accepted, a float is not.
    #[serde(default)]
    pub amount: Option<toml::Value>,
    #[serde(default)]
    pub thresholds: Option<Vec<toml::Value>>,
    #[serde(default)]
    pub forecast: Option<bool>,
    #[serde(default)]
    pub channels: Vec<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub topic_arn: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub smtp_url: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub username_env: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
}

pub const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];

/// Checks `[alerts]`, `[[channels]]` and `[[budgets]]` together, pushing every problem (each
/// naming its field) onto `problems`.
pub fn check(
    alerts: RawAlerts,
    channels: Vec<RawChannel>,
    budgets: Vec<RawBudget>,
    problems: &mut Vec<String>,
) -> (AlertSettings, Vec<Channel>, Vec<Budget>) {
    let mut settings = AlertSettings::default();
    if let Some(z) = &alerts.timezone {
        match Zone::named(z) {
            Ok(zone) => settings.zone = zone,
            Err(e) => problems.push(format!("`alerts.timezone`: {e}")),
        }
    }
    if let Some(t) = &alerts.timeout {
        match crate::time::parse_duration_ms(t) {
            Some(ms) if ms > 0 => settings.timeout_ms = ms,
            _ => problems.push(format!(
                "`alerts.timeout` = `{t}`: not a duration (10s, 1m)"
            )),
        }
    }
    let channels: Vec<Channel> = channels
        .into_iter()
        .enumerate()
        .filter_map(|(i, c)| check_channel(i, c, problems))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for c in &channels {
        if !names.insert(c.name.clone()) {
            problems.push(format!(
                "`channels`: two channels are named `{}`; names must be unique",
                c.name
            ));
        }
    }
    if let Some(a) = alerts.anomaly {
        let before = problems.len();
        let factor_milli = match a.factor.as_deref() {
            None => 3000,
            Some(f) => match crate::money::parse_scaled_decimal(f, 3) {
                Ok(v) if v > 1000 => v,
                _ => {
                    problems.push(format!(
                        "`alerts.anomaly.factor` = `{f}`: a decimal string above 1 (\"3\", \"2.5\")"
                    ));
                    0
                }
            },
        };
        let floor = match a.floor.as_deref() {
            None => NanoUsd(10_000_000_000),
            Some(f) => NanoUsd::parse_usd(f).unwrap_or_else(|e| {
                problems.push(format!("`alerts.anomaly.floor`: {e}"));
                NanoUsd(0)
            }),
        };
        let days = a.days.unwrap_or(14);
        if !(3..=90).contains(&days) {
            problems.push(format!("`alerts.anomaly.days` = {days}: from 3 to 90"));
        }
        for c in &a.channels {
            if !names.contains(c) {
                problems.push(format!(
                    "`alerts.anomaly.channels`: no channel is named `{c}`"
                ));
            }
        }
        if problems.len() == before {
            settings.anomaly = Some(Anomaly {
                factor_milli,
                floor,
                days,
                channels: a.channels,
            });
        }
    }
    let mut out = Vec::new();
    let mut budget_names = std::collections::BTreeSet::new();
    for (i, b) in budgets.into_iter().enumerate() {
        let here = if b.name.is_empty() {
            format!("budgets[{i}]")
        } else {
            format!("budgets[{i}] ({})", b.name)
        };
        if let Some(b) = check_budget(&here, b, &settings, &names, problems) {
            if !budget_names.insert(b.name.clone()) {
                problems.push(format!(
                    "`{here}`: another budget is named `{}`; names must be unique",
                    b.name
                ));
            }
            out.push(b);
        }
    }
    (settings, channels, out)
}

fn check_budget(
    here: &str,
    b: RawBudget,
    settings: &AlertSettings,
    channels: &std::collections::BTreeSet<String>,
    problems: &mut Vec<String>,
) -> Option<Budget> {
    let before = problems.len();
    if b.name.trim().is_empty() || b.name.contains(['/', '\n']) {
        problems.push(format!("`{here}.name`: give each budget a name (no `/`)"));
    }
    let period = Period::parse(&b.period);
    if period.is_none() {
        problems.push(format!(
            "`{here}.period` = `{}`: one of day, week, month",
            b.period
        ));
    }
    let amount = match &b.amount {
        None => {
            problems.push(format!(
                "`{here}.amount`: missing (USD as a string: amount = \"300\")"
            ));
            None
        }
        Some(toml::Value::String(s)) => match NanoUsd::parse_usd(s) {
            Ok(a) if a.0 > 0 => Some(a),
            Ok(_) => {
                problems.push(format!("`{here}.amount` = `{s}`: must be above zero"));
                None
            }
            Err(e) => {
                problems.push(format!(
                    "`{here}.amount`: {e} (write dollars as a decimal string: \"300\", \"25.50\")"
                ));
                None
            }
        },
        Some(toml::Value::Integer(n)) if *n > 0 => {
            n.checked_mul(1_000_000_000).map(NanoUsd).or_else(|| {
                problems.push(format!("`{here}.amount` = {n}: too large"));
                None
            })
        }
        Some(v) => {
            problems.push(format!(
                "`{here}.amount` = {v}: not an amount; write USD as a decimal string (amount = \"300\"), never a float"
            ));
            None
        }
    };
    let mut thresholds = Vec::new();
    match &b.thresholds {
        None => thresholds.extend(DEFAULT_THRESHOLDS),
        Some(ts) if ts.is_empty() => problems.push(format!(
            "`{here}.thresholds`: empty (leave it out for 50, 80, 100)"
        )),
        Some(ts) => {
            for t in ts {
                match t {
                    toml::Value::Integer(n) if (1..=1000).contains(n) => thresholds.push(*n as u32),
                    other => problems.push(format!(
                        "`{here}.thresholds`: `{other}` is not a whole percentage from 1 to 1000"
                    )),
                }
            }
        }
    }
    thresholds.sort_unstable();
    thresholds.dedup();
    let action = match b.action.as_deref() {
        None | Some("alert") => Action::Alert,
        Some("block") => Action::Block,
        Some(other) => {
            problems.push(format!("`{here}.action` = `{other}`: one of alert, block"));
            Action::Alert
        }
    };
    let zone = match &b.timezone {
        None => settings.zone.clone(),
        Some(z) => match Zone::named(z) {
            Ok(z) => z,
            Err(e) => {
                problems.push(format!("`{here}.timezone`: {e}"));
                Zone::utc()
            }
        },
    };
    for c in &b.channels {
        if !channels.contains(c) {
            problems.push(format!(
                "`{here}.channels`: no channel is named `{c}` (known: {})",
                if channels.is_empty() {
                    "none; add [[channels]]".to_string()
                } else {
                    channels.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            ));
        }
    }
    for (field, v) in [
        ("developer", &b.developer),
        ("team", &b.team),
        ("cost_center", &b.cost_center),
        ("model", &b.model),
    ] {
        if v.as_ref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(format!("`{here}.{field}`: empty"));
        }
    }
    if b.each_developer && b.developer.is_some() {
        problems.push(format!(
            "`{here}`: `developer` and `each_developer = true` together name one person twice; keep one"
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(Budget {
        name: b.name,
        scope: Scope {
            developer: b.developer,
            team: b.team,
            cost_center: b.cost_center,
            model: b.model,
            each_developer: b.each_developer,
        },
        period: period?,
        zone,
        amount: amount?,
        thresholds,
        forecast: b.forecast.unwrap_or(true),
        channels: b.channels,
        action,
    })
}

fn check_channel(i: usize, c: RawChannel, problems: &mut Vec<String>) -> Option<Channel> {
    let here = if c.name.is_empty() {
        format!("channels[{i}]")
    } else {
        format!("channels[{i}] ({})", c.name)
    };
    let before = problems.len();
    if c.name.trim().is_empty() {
        problems.push(format!("`{here}.name`: give each channel a name"));
    }
    let secret = |value: &Option<String>,
                  env: &Option<String>,
                  field: &str,
                  problems: &mut Vec<String>| {
        match (value, env) {
            (Some(v), None) if !v.trim().is_empty() => Some(Secret::Value(v.clone())),
            (None, Some(e)) if !e.trim().is_empty() => Some(Secret::Env(e.clone())),
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "`{here}`: give `{field}` or `{field}_env`, not both"
                ));
                None
            }
            _ => {
                problems.push(format!(
                    "`{here}.{field}`: missing (or `{field}_env`, the environment variable that holds it)"
                ));
                None
            }
        }
    };
    let url_ok = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    // Fields that belong to other channel types are mistakes worth naming.
    let mut allowed: &[&str] = &[];
    let kind = match c.kind.as_str() {
        "slack" => {
            allowed = &["url", "url_env"];
            let url = secret(&c.url, &c.url_env, "url", problems);
            if let Some(Secret::Value(u)) = &url {
                if !url_ok(u) {
                    problems.push(format!("`{here}.url`: not an http(s) URL"));
                }
            }
            url.map(|url| ChannelKind::Slack { url })
        }
        "webhook" => {
            allowed = &["url", "secret", "secret_env"];
            let s = secret(&c.secret, &c.secret_env, "secret", problems);
            let url = match &c.url {
                Some(u) if url_ok(u) => Some(u.clone()),
                Some(u) => {
                    problems.push(format!("`{here}.url` = `{u}`: not an http(s) URL"));
                    None
                }
                None => {
                    problems.push(format!("`{here}.url`: missing"));
                    None
                }
            };
            match (url, s) {
                (Some(url), Some(secret)) => Some(ChannelKind::Webhook { url, secret }),
                _ => None,
            }
        }
        "sns" => {
            allowed = &["topic_arn", "region", "profile", "endpoint_url", "role_arn"];
            let parts: Vec<&str> = c.topic_arn.as_deref().unwrap_or("").split(':').collect();
            match &c.topic_arn {
                Some(t)
                    if parts.len() == 6
                        && parts[0] == "arn"
                        && parts[2] == "sns"
                        && !parts[3].is_empty()
                        && !parts[5].is_empty() =>
                {
                    Some(ChannelKind::Sns {
                        topic_arn: t.clone(),
                        access: crate::config::AwsAccess {
                            region: c.region.clone().or_else(|| Some(parts[3].to_string())),
                            profile: c.profile.clone(),
                            role_arn: c.role_arn.clone(),
                            endpoint_url: c.endpoint_url.clone(),
                        },
                    })
                }
                Some(t) => {
                    problems.push(format!("`{here}.topic_arn` = `{t}`: not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"));
                    None
                }
                None => {
                    problems.push(format!("`{here}.topic_arn`: missing"));
                    None
                }
            }
        }
        "email" => {
            allowed = &["smtp_url", "from", "to", "username_env", "password_env"];
            let smtp = match &c.smtp_url {
                Some(u) if u.starts_with("smtp://") || u.starts_with("smtps://") => Some(u.clone()),
                Some(u) => {
                    problems.push(format!("`{here}.smtp_url` = `{u}`: use smtp://HOST:PORT or smtps://HOST:PORT (credentials go in username_env and password_env)"));
                    None
                }
                None => {
                    problems.push(format!("`{here}.smtp_url`: missing"));
                    None
                }
            };
            if smtp.as_ref().is_some_and(|u| u.contains('@')) {
                problems.push(format!("`{here}.smtp_url`: no credentials in the URL; name environment variables in username_env and password_env"));
            }
            let from = c.from.clone().filter(|f| f.contains('@'));
            if from.is_none() {
                problems.push(format!("`{here}.from`: an e-mail address"));
            }
            if c.to.is_empty() || c.to.iter().any(|t| !t.contains('@')) {
                problems.push(format!("`{here}.to`: a list of e-mail addresses"));
            }
            if c.password_env.is_some() != c.username_env.is_some() {
                problems.push(format!(
                    "`{here}`: give both username_env and password_env, or neither"
                ));
            }
            match (smtp, from) {
                (Some(smtp_url), Some(from)) => Some(ChannelKind::Email {
                    smtp_url,
                    from,
                    to: c.to.clone(),
                    username_env: c.username_env.clone(),
                    password_env: c.password_env.clone(),
                }),
                _ => None,
            }
        }
        other => {
            problems.push(format!(
                "`{here}.type` = `{other}`: one of slack, webhook, sns, email"
            ));
            None
        }
    };
    if matches!(c.kind.as_str(), "slack" | "webhook" | "sns" | "email") {
        for (field, set) in [
            ("url", c.url.is_some()),
            ("url_env", c.url_env.is_some()),
            ("secret", c.secret.is_some()),
            ("secret_env", c.secret_env.is_some()),
            ("topic_arn", c.topic_arn.is_some()),
            ("region", c.region.is_some()),
            ("profile", c.profile.is_some()),
            ("endpoint_url", c.endpoint_url.is_some()),
            ("role_arn", c.role_arn.is_some()),
            ("smtp_url", c.smtp_url.is_some()),
            ("from", c.from.is_some()),
            ("to", !c.to.is_empty()),
            ("username_env", c.username_env.is_some()),
            ("password_env", c.password_env.is_some()),
        ] {
            if set && !allowed.contains(&field) {
                problems.push(format!(
                    "`{here}.{field}`: not a field of a {} channel (its fields: {})",
                    c.kind,
                    allowed.join(", ")
                ));
            }
        }
    }
    if problems.len() > before {
        return None;
    }
    Some(Channel {
        name: c.name,
        kind: kind?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_timestamp_ms;

    fn at(s: &str) -> i64 {
        parse_timestamp_ms(s).unwrap()
    }

    #[test]
    fn periods_are_calendar_periods_in_the_zone() {
        let berlin = Zone::named("Europe/Berlin").unwrap();
        // 23:30 UTC on Nov 30 is already December 1st in Berlin.
        let b = Period::Month.around(&berlin, at("2026-11-30T23:30:00Z"));
        assert_eq!(b.label, "2026-12");
        assert_eq!(b.start_ms, at("2026-11-30T23:00:00Z"));
        assert_eq!(b.end_ms, at("2026-12-31T23:00:00Z"));
        let w = Period::Week.around(&Zone::utc(), at("2026-12-02T10:00:00Z"));
        assert_eq!(w.label, "week of 2026-11-30");
        assert_eq!(w.end_ms - w.start_ms, 7 * MS_PER_DAY);
        // A day with a DST change is 23 hours long.
        let d = Period::Day.around(&berlin, at("2026-03-29T12:00:00Z"));
        assert_eq!(d.end_ms - d.start_ms, 23 * 3_600_000);
        let dec = Period::Month.around(&Zone::utc(), at("2026-12-31T23:59:59Z"));
        assert_eq!(dec.end_ms, at("2027-01-01T00:00:00Z"));
    }

    #[test]
    fn thresholds_percent_and_state() {
        let b = Period::Month.around(&Zone::utc(), at("2026-12-10T00:00:00Z"));
        let usd = |d: i64| NanoUsd(d * 1_000_000_000);
        let st = evaluate(
            usd(300),
            &[50, 80, 100],
            Period::Month,
            &b,
            usd(240),
            None,
            at("2026-12-10T00:00:00Z"),
        );
        assert_eq!(st.basis_points, 8000);
        assert_eq!(st.crossed, [50, 80]);
        assert_eq!(st.state, State::Warning);
        assert_eq!(st.days_left, 22);
        assert_eq!(percent_text(st.basis_points), "80.00%");
        // One nano-dollar short of 100% is not exceeded.
        let st = evaluate(
            usd(300),
            &[100],
            Period::Month,
            &b,
            NanoUsd(usd(300).0 - 1),
            None,
            b.start_ms,
        );
        assert_eq!(st.state, State::Ok);
        assert_eq!(st.basis_points, 9999);
        let st = evaluate(
            usd(300),
            &[100],
            Period::Month,
            &b,
            usd(300),
            None,
            b.start_ms,
        );
        assert_eq!(st.state, State::Exceeded);
        assert_eq!(st.crossed, [100]);
    }

    #[test]
    fn the_forecast_extends_the_last_week_to_the_period_end() {
        let b = Period::Month.around(&Zone::utc(), at("2026-12-01T00:00:00Z"));
        let now = at("2026-12-15T00:00:00Z");
        let usd = |d: i64| NanoUsd(d * 1_000_000_000);
        // $700 in the last 7 days = $100 a day; 17 days left: 500 + 1,700.
        let st = evaluate(
            usd(2000),
            &[],
            Period::Month,
            &b,
            usd(500),
            Some(usd(700)),
            now,
        );
        assert_eq!(st.forecast, Some(usd(2200)));
        assert_eq!(st.state, State::ForecastExceeded);
        assert_eq!(
            due("team-ml", "ml", &b, &st),
            [Due {
                key: "budget/team-ml/ml/2026-12/forecast".into(),
                kind: DueKind::Forecast
            }]
        );
        // Too early in the period: no forecast.
        let early = evaluate(
            usd(2000),
            &[],
            Period::Month,
            &b,
            usd(50),
            Some(usd(50)),
            at("2026-12-01T12:00:00Z"),
        );
        assert_eq!(early.forecast, None);
        // Three days in: the window is the period so far.
        let st = evaluate(
            usd(2000),
            &[],
            Period::Month,
            &b,
            usd(300),
            Some(usd(300)),
            at("2026-12-04T00:00:00Z"),
        );
        assert_eq!(st.forecast, Some(usd(300 + 100 * 28)));
    }

    #[test]
    fn an_anomaly_is_above_the_factor_times_the_median_and_the_floor() {
        let usd = |c: i64| NanoUsd(c * 10_000_000); // cents
        let trailing = [usd(25), usd(0), usd(25), usd(30), usd(20)];
        assert_eq!(median(&trailing), usd(25));
        assert_eq!(median(&[usd(10), usd(20)]), usd(15));
        // 3 x $0.25 = $0.75: $0.76 is over, $0.75 is not; the floor ($0.50) is passed.
        assert_eq!(anomaly(usd(76), &trailing, 3000, usd(50)), Some(usd(25)));
        assert_eq!(anomaly(usd(75), &trailing, 3000, usd(50)), None);
        // Under the floor, never.
        assert_eq!(anomaly(usd(76), &trailing, 3000, usd(100)), None);
        // A first day of use after silence: the median is zero, the floor decides.
        assert_eq!(
            anomaly(usd(200), &[usd(0); 14], 3000, usd(100)),
            Some(usd(0))
        );
    }

    #[test]
    fn a_digest_is_due_from_its_hour_for_a_day() {
        let z = Zone::utc();
        // Monday 2026-12-07: the week of Nov 30 is done; due from 09:00 until Tuesday 09:00.
        assert_eq!(
            digest_due(Period::Week, 9, &z, at("2026-12-07T08:59:00Z")),
            None
        );
        let (done, before) = digest_due(Period::Week, 9, &z, at("2026-12-07T09:00:00Z")).unwrap();
        assert_eq!(done.label, "week of 2026-11-30");
        assert_eq!(before.label, "week of 2026-11-23");
        assert!(digest_due(Period::Week, 9, &z, at("2026-12-08T08:59:00Z")).is_some());
        assert_eq!(
            digest_due(Period::Week, 9, &z, at("2026-12-08T09:00:00Z")),
            None
        );
        let (m, _) = digest_due(Period::Month, 0, &z, at("2027-01-01T03:00:00Z")).unwrap();
        assert_eq!(m.label, "2026-12");
        assert_eq!(change_basis_points(NanoUsd(100), NanoUsd(150)), Some(5000));
        assert_eq!(change_basis_points(NanoUsd(0), NanoUsd(150)), None);
    }

    #[test]
    fn due_keys_name_budget_scope_period_and_threshold_not_the_amount() {
        let b = Period::Day.around(&Zone::utc(), at("2026-12-02T10:00:00Z"));
        let usd = |d: i64| NanoUsd(d * 1_000_000_000);
        let small = evaluate(
            usd(10),
            &[50, 100],
            Period::Day,
            &b,
            usd(6),
            None,
            b.start_ms,
        );
        let raised = evaluate(
            usd(11),
            &[50, 100],
            Period::Day,
            &b,
            usd(6),
            None,
            b.start_ms,
        );
        assert_eq!(
            due("d", "alice", &b, &small),
            due("d", "alice", &b, &raised)
        );
        assert_eq!(
            due("d", "alice", &b, &small)[0].key,
            "budget/d/alice/2026-12-02/50%"
        );
    }
}
