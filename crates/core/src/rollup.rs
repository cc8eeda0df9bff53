//! Rollup planning: which pre-summed grain a read may use, and how a time range splits into
//! pieces of each grain. The store keeps sums per quarter hour, hour and UTC day; every IANA
//! zone's local day is a union of quarter hours, a zone whose offsets are whole hours over the
//! data has local days made of hours, and UTC days are whole days. A read over `[since, until)`
//! takes the coarsest exact grain in the middle, finer grains toward the edges and raw rows only
//! for the partial quarter hours at the very edges, so it is exact at any boundary and reads
//! tens of thousands of rows for a month, whatever the number of calls.

use crate::report::GroupKey;
use crate::time::{Zone, MS_PER_DAY};

pub const QUARTER_MS: i64 = 15 * 60_000;
pub const HOUR_MS: i64 = 3_600_000;

/// The coarsest rollup a read may use between its edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grain {
    Quarter,
    Hour,
    Day,
}

impl Grain {
    pub const ALL: [Grain; 3] = [Grain::Quarter, Grain::Hour, Grain::Day];

    pub fn step_ms(self) -> i64 {
        match self {
            Grain::Quarter => QUARTER_MS,
            Grain::Hour => HOUR_MS,
            Grain::Day => MS_PER_DAY,
        }
    }
}

/// Where one piece of a range is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Raw invocations.
    Raw,
    Rollup(Grain),
}

/// `[lo, hi)` split into pieces: raw head, quarters, hours, days, hours, quarters, raw tail
/// (each only as needed, none coarser than `grain`). Empty pieces are left out.
pub fn pieces(since: Option<i64>, until: Option<i64>, grain: Grain) -> Vec<(Level, i64, i64)> {
    let lo = since.unwrap_or(i64::MIN / 4);
    let hi = until.unwrap_or(i64::MAX / 4);
    if lo >= hi {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut left, mut right, mut inner) = (lo, hi, Level::Raw);
    for g in Grain::ALL {
        if g > grain {
            break;
        }
        let step = g.step_ms();
        let (a, b) = (ceil_to(left, step), floor_to(right, step));
        if a >= b {
            break;
        }
        out.push((inner, left, a));
        out.push((inner, b, right));
        (left, right, inner) = (a, b, Level::Rollup(g));
    }
    out.push((inner, left, right));
    out.retain(|(_, a, b)| a < b);
    out
}

/// The grain a report grouped by `keys` in `zone` may read, given the store's data range
/// (`first`, `last`) and the report's range.
pub fn report_grain(
    keys: &[GroupKey],
    zone: &Zone,
    data: Option<(i64, i64)>,
    since: Option<i64>,
    until: Option<i64>,
) -> Grain {
    let hours = keys.contains(&GroupKey::Hour);
    let local_periods = keys
        .iter()
        .any(|k| matches!(k, GroupKey::Day | GroupKey::Week | GroupKey::Month));
    if hours && zone.name() == "UTC" {
        return Grain::Hour;
    }
    if !hours && (!local_periods || zone.name() == "UTC") {
        return Grain::Day;
    }
    match data {
        Some((first, last)) => {
            let from = since.unwrap_or(first).max(first);
            let to = until.unwrap_or(last).min(last);
            if zone.whole_hour_offsets(from, to) {
                Grain::Hour
            } else {
                Grain::Quarter
            }
        }
        None => Grain::Quarter,
    }
}

/// The coarsest grain whose buckets fit a query's `bin()` (in ms; `i64::MAX` for no bin).
pub fn query_grain(bin_ms: i64) -> Option<Grain> {
    [Grain::Day, Grain::Hour, Grain::Quarter]
        .into_iter()
        .find(|g| bin_ms == i64::MAX || bin_ms % g.step_ms() == 0)
}

pub fn floor_to(v: i64, step: i64) -> i64 {
    v.div_euclid(step) * step
}

pub fn ceil_to(v: i64, step: i64) -> i64 {
    let f = floor_to(v, step);
    if f == v {
        v
    } else {
        f.saturating_add(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_range_once() {
        let day = MS_PER_DAY;
        let since = 3 * day + 7 * 60_000; // 00:07 on day 3
        let until = 9 * day + 5 * HOUR_MS + 20 * 60_000; // 05:20 on day 9
        let p = pieces(Some(since), Some(until), Grain::Day);
        let mut sorted = p.clone();
        sorted.sort_by_key(|x| x.1);
        assert_eq!(sorted.first().map(|x| x.1), Some(since));
        assert_eq!(sorted.last().map(|x| x.2), Some(until));
        for w in sorted.windows(2) {
            assert_eq!(w[0].2, w[1].1, "{sorted:?}");
        }
        assert!(p.contains(&(Level::Rollup(Grain::Day), 4 * day, 9 * day)));
        assert!(p.contains(&(Level::Raw, since, since + 8 * 60_000)));
        assert!(p.contains(&(Level::Raw, until - 5 * 60_000, until)));
        // No coarser than asked.
        assert!(pieces(Some(since), Some(until), Grain::Quarter)
            .iter()
            .all(|x| matches!(x.0, Level::Raw | Level::Rollup(Grain::Quarter))));
        assert!(pieces(Some(5), Some(5), Grain::Day).is_empty());
    }

    #[test]
    fn grains() {
        assert_eq!(query_grain(i64::MAX), Some(Grain::Day));
        assert_eq!(query_grain(HOUR_MS), Some(Grain::Hour));
        assert_eq!(query_grain(30 * 60_000), Some(Grain::Quarter));
        assert_eq!(query_grain(60_000), None);
        let utc = Zone::utc();
        assert_eq!(
            report_grain(&[GroupKey::Day], &utc, None, None, None),
            Grain::Day
        );
        assert_eq!(
            report_grain(&[GroupKey::Hour, GroupKey::Model], &utc, None, None, None),
            Grain::Hour
        );
        let kolkata = Zone::named("Asia/Kolkata").unwrap();
        assert_eq!(
            report_grain(
                &[GroupKey::Hour],
                &kolkata,
                Some((0, MS_PER_DAY)),
                None,
                None
            ),
            Grain::Quarter
        );
        assert_eq!(
            report_grain(
                &[GroupKey::Day],
                &kolkata,
                Some((0, MS_PER_DAY)),
                None,
                None
            ),
            Grain::Quarter
        );
        let berlin = Zone::named("Europe/Berlin").unwrap();
        assert_eq!(
            report_grain(&[GroupKey::Developer], &berlin, None, None, None),
            Grain::Day
        );
    }
}
