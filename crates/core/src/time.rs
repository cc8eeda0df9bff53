//! Time: record timestamps to epoch milliseconds (a fast, allocation-free parser for the
//! ISO-8601 forms Bedrock and CloudWatch write), and calendar labels (day, week, month) in an
//! IANA time zone for reports.

use jiff::tz::TimeZone;
use jiff::Timestamp;

pub const MS_PER_MINUTE: i64 = 60_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (inverse of [`days_from_civil`]).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// `2026-11-03T02:14:07Z`, with optional fraction (`.123`, any digits) and a `Z` or `±HH:MM` /
/// `±HHMM` offset; a space may stand for the `T`. Returns epoch milliseconds, or `None`.
pub fn parse_timestamp_ms(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let y = digits(b, 0, 4)? as i64;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let mo = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T') | Some(b't') | Some(b' ')) {
        return None;
    }
    let h = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let mi = digits(b, 14, 2)?;
    let sec = digits(b, 17, 2)?;
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                ms = ms * 10 + (b[i] - b'0') as i64;
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            ms *= 10;
        }
    }
    let offset_min: i64 = match b.get(i) {
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits(b, i + 1, 2)? as i64;
            let (om, end) = if b.get(i + 3) == Some(&b':') {
                (digits(b, i + 4, 2)? as i64, i + 6)
            } else {
                (digits(b, i + 3, 2)? as i64, i + 5)
            };
            if end != b.len() || oh > 23 || om > 59 {
                return None;
            }
            let m = oh * 60 + om;
            if sign == b'+' {
                m
            } else {
                -m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h as i64 * 3600 + mi as i64 * 60 + sec as i64 - offset_min * 60;
    Some(secs * 1000 + ms)
}

/// A record's `timestamp`: what [`parse_timestamp_ms`] takes, and also a time with no zone at all
/// (`2025-05-15 14:17:22.000000000`, as log tools that normalize events write it), read as UTC:
/// Bedrock and CloudWatch write UTC.
pub fn parse_record_timestamp_ms(s: &str) -> Option<i64> {
    parse_timestamp_ms(s).or_else(|| {
        let t = s.trim();
        let b = t.as_bytes();
        // Only a zone-less time: the date, the time and digits of a fraction, nothing more.
        let zoneless = b.len() >= 19
            && b[19..]
                .iter()
                .enumerate()
                .all(|(i, c)| (i == 0 && (*c == b'.' || *c == b',')) || c.is_ascii_digit());
        zoneless
            .then(|| parse_timestamp_ms(&format!("{t}Z")))
            .flatten()
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// A duration: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`90s`, `15m`, `7d`), in ms.
pub fn parse_duration_ms(s: &str) -> Option<i64> {
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => MS_PER_DAY,
        "w" => 7 * MS_PER_DAY,
        _ => return None,
    };
    num.parse::<i64>().ok()?.checked_mul(unit_ms)
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DD` of a UTC day number.
pub fn format_date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2026-11-03T02:14:07Z` (milliseconds only when not zero).
pub fn format_utc(ms: i64) -> String {
    let day = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (h, mi, s, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    if milli == 0 {
        format!("{}T{h:02}:{mi:02}:{s:02}Z", format_date(day))
    } else {
        format!("{}T{h:02}:{mi:02}:{s:02}.{milli:03}Z", format_date(day))
    }
}

/// Parses `YYYY-MM-DD` into a day number.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = digits(b, 0, 4)? as i64;
    let m = digits(b, 5, 2)?;
    let d = digits(b, 8, 2)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// A `--since` / `--until` value that is none of the forms [`parse_when`] takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag}: `{value}` is not a date (2026-11-01), an RFC 3339 time (2026-11-01T09:00:00Z) or a duration (30m, 12h, 7d, 2w)")]
pub struct BadWhen {
    pub flag: String,
    pub value: String,
}

/// A date (local midnight in `zone`; for an `until` the whole day is included), an RFC 3339
/// time, or a duration back from `now` (`30m`, `12h`, `7d`, `2w`), in epoch ms. `flag` names
/// the option in the error.
pub fn parse_when(
    s: &str,
    zone: &Zone,
    now: i64,
    is_until: bool,
    flag: &str,
) -> Result<i64, BadWhen> {
    let t = s.trim();
    if let Some(day) = parse_date(t) {
        return Ok(zone.day_start_ms(if is_until { day + 1 } else { day }));
    }
    if let Some(ms) = parse_timestamp_ms(t) {
        return Ok(ms);
    }
    match parse_duration_ms(t) {
        Some(d) => Ok(now - d),
        None => Err(BadWhen {
            flag: flag.to_string(),
            value: s.to_string(),
        }),
    }
}

/// `--since` and `--until` together, each read by [`parse_when`] in `zone`.
pub fn parse_range(
    since: Option<&str>,
    until: Option<&str>,
    zone: &Zone,
    now: i64,
) -> Result<(Option<i64>, Option<i64>), BadWhen> {
    Ok((
        since
            .map(|s| parse_when(s, zone, now, false, "--since"))
            .transpose()?,
        until
            .map(|s| parse_when(s, zone, now, true, "--until"))
            .transpose()?,
    ))
}

/// A time zone for calendar labels, by IANA name (`UTC`, `Europe/Berlin`, ...).
#[derive(Clone, Debug)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown time zone `{0}` (use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`)")]
pub struct UnknownZone(pub String);

impl Zone {
    pub fn utc() -> Zone {
        Zone {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        }
    }
    pub fn named(name: &str) -> Result<Zone, UnknownZone> {
        if name.eq_ignore_ascii_case("utc") || name == "Z" {
            return Ok(Zone::utc());
        }
        let tz = TimeZone::get(name).map_err(|_| UnknownZone(name.to_string()))?;
        Ok(Zone {
            name: name.to_string(),
            tz,
        })
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The civil date (as a day number) of an instant in this zone.
    pub fn local_day(&self, ms: i64) -> i64 {
        (ms + self.offset_secs(ms) * 1000).div_euclid(MS_PER_DAY)
    }
    /// The zone's UTC offset at an instant, in seconds.
    pub fn offset_secs(&self, ms: i64) -> i64 {
        match Timestamp::from_millisecond(ms) {
            Ok(ts) => self.tz.to_offset(ts).seconds() as i64,
            Err(_) => 0,
        }
    }

    /// The instant the local hour holding `ms` starts at (hours of a zone with a half-hour
    /// offset start at :30 UTC). Each real hour has its own start, also where a change of
    /// offset shows a local hour twice.
    pub fn hour_start_ms(&self, ms: i64) -> i64 {
        let local = ms + self.offset_secs(ms) * 1000;
        ms - local.rem_euclid(3_600_000)
    }

    /// An instant as local time with its offset, to the minute: `2026-11-03T14:00+01:00`.
    pub fn format_local_minute(&self, ms: i64) -> String {
        let off = self.offset_secs(ms);
        let local = ms + off * 1000;
        let day = local.div_euclid(MS_PER_DAY);
        let mins = local.rem_euclid(MS_PER_DAY) / 60_000;
        let (sign, a) = if off < 0 { ('-', -off) } else { ('+', off) };
        format!(
            "{}T{:02}:{:02}{sign}{:02}:{:02}",
            format_date(day),
            mins / 60,
            mins % 60,
            a / 3600,
            a % 3600 / 60
        )
    }

    /// Whether this zone's UTC offset is a whole number of hours at every instant in
    /// `[from, to]` (checked at each transition; zones change offset at most a few times a year).
    pub fn whole_hour_offsets(&self, from: i64, to: i64) -> bool {
        let whole = |ms: i64| match Timestamp::from_millisecond(ms) {
            Ok(ts) => self.tz.to_offset(ts).seconds() % 3600 == 0,
            Err(_) => false,
        };
        if !whole(from) {
            return false;
        }
        let Ok(mut ts) = Timestamp::from_millisecond(from) else {
            return false;
        };
        while let Some(t) = self.tz.following(ts).next() {
            let at = t.timestamp();
            if at.as_millisecond() > to {
                break;
            }
            if t.offset().seconds() % 3600 != 0 {
                return false;
            }
            ts = at;
        }
        true
    }

    /// The instant a local date starts at in this zone (midnight, or the first valid time).
    pub fn day_start_ms(&self, day: i64) -> i64 {
        let (y, m, d) = civil_from_days(day);
        let start = i16::try_from(y)
            .ok()
            .and_then(|y| jiff::civil::Date::new(y, m as i8, d as i8).ok())
            .and_then(|date| date.to_zoned_datetime(self.tz.clone()).ok());
        match start {
            Some(z) => z.timestamp().as_millisecond(),
            None => day * MS_PER_DAY,
        }
    }
}

/// Calendar labels of a local day number.
pub fn day_label(day: i64) -> String {
    format_date(day)
}

/// The ISO week, labelled by the date of its Monday.
pub fn week_label(day: i64) -> String {
    // 1970-01-01 was a Thursday: day 0 has weekday index 3 (Monday = 0).
    let monday = day - (day + 3).rem_euclid(7);
    format_date(monday)
}

pub fn month_label(day: i64) -> String {
    let (y, m, _) = civil_from_days(day);
    format!("{y:04}-{m:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_hours_have_one_start_each_also_when_the_clock_goes_back() {
        let z = Zone::named("America/New_York").expect("zone");
        // 2026-11-01: 01:00-04:00 (05:00Z), then 01:00-05:00 (06:00Z).
        let first = parse_timestamp_ms("2026-11-01T05:20:00Z").expect("ts");
        let second = parse_timestamp_ms("2026-11-01T06:20:00Z").expect("ts");
        assert_ne!(z.hour_start_ms(first), z.hour_start_ms(second));
        assert_eq!(
            z.format_local_minute(z.hour_start_ms(first)),
            "2026-11-01T01:00-04:00"
        );
        assert_eq!(
            z.format_local_minute(z.hour_start_ms(second)),
            "2026-11-01T01:00-05:00"
        );
        let india = Zone::named("Asia/Kolkata").expect("zone");
        let t = parse_timestamp_ms("2026-11-03T08:10:00Z").expect("ts"); // 13:40 local
        assert_eq!(
            india.format_local_minute(india.hour_start_ms(t)),
            "2026-11-03T13:00+05:30"
        );
        assert_eq!(
            Zone::utc().format_local_minute(t - t % 3_600_000),
            "2026-11-03T08:00+00:00"
        );
    }

    #[test]
    fn record_timestamps_without_a_zone_are_utc() {
        assert_eq!(
            parse_record_timestamp_ms("2025-05-15 14:17:22.000000000"),
            parse_timestamp_ms("2025-05-15T14:17:22Z")
        );
        assert_eq!(parse_timestamp_ms("2025-05-15 14:17:22"), None);
        assert_eq!(parse_record_timestamp_ms("2025-05-15 14:17:22 junk"), None);
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_ms("2026-11-03T02:14:07Z"),
            Some(1_793_672_047_000)
        );
        assert_eq!(
            parse_timestamp_ms("2026-11-03T02:14:07.5Z"),
            Some(1_793_672_047_500)
        );
        assert_eq!(
            parse_timestamp_ms("2026-11-03T02:14:07.123456Z"),
            Some(1_793_672_047_123)
        );
        assert_eq!(
            parse_timestamp_ms("2026-11-03T04:14:07+02:00"),
            Some(1_793_672_047_000)
        );
        assert_eq!(
            parse_timestamp_ms("2026-11-03T00:14:07-0200"),
            Some(1_793_672_047_000)
        );
        for bad in [
            "",
            "2026-11-03",
            "2026-13-03T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-03T02:14:07",
            "2026-11-03T02:14:07Zx",
            "2026-11-03T02:14:07.",
        ] {
            assert_eq!(parse_timestamp_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for day in [-1000, -1, 0, 1, 20_000, 20_395, 100_000] {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
        assert_eq!(format_utc(1_793_672_047_000), "2026-11-03T02:14:07Z");
    }

    #[test]
    fn labels_in_a_zone() {
        let ms = parse_timestamp_ms("2026-11-03T02:14:07Z").expect("ts");
        let ny = Zone::named("America/New_York").expect("zone");
        assert_eq!(day_label(ny.local_day(ms)), "2026-11-02");
        assert_eq!(day_label(Zone::utc().local_day(ms)), "2026-11-03");
        assert_eq!(
            week_label(parse_date("2026-11-08").expect("d")),
            "2026-11-02"
        );
        assert_eq!(
            week_label(parse_date("2026-11-02").expect("d")),
            "2026-11-02"
        );
        assert_eq!(month_label(parse_date("2026-11-30").expect("d")), "2026-11");
        let kolkata = Zone::named("Asia/Kolkata").expect("zone");
        assert_eq!(
            kolkata.day_start_ms(parse_date("2026-11-03").expect("d")),
            parse_timestamp_ms("2026-11-02T18:30:00Z").expect("ts")
        );
        assert!(Zone::named("Mars/Olympus").is_err());
        let year = (
            parse_timestamp_ms("2026-01-01T00:00:00Z").expect("ts"),
            parse_timestamp_ms("2026-12-31T00:00:00Z").expect("ts"),
        );
        assert!(ny.whole_hour_offsets(year.0, year.1));
        assert!(!kolkata.whole_hour_offsets(year.0, year.1));
        assert!(!Zone::named("Australia/Lord_Howe")
            .expect("zone")
            .whole_hour_offsets(year.0, year.1));
    }
}
