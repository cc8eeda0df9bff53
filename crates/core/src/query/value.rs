//! Values of the query language and their CloudWatch-like semantics: a missing field is `Null`;
//! arithmetic with `Null` gives `Null`; a comparison with `Null` is false; aggregates skip `Null`.

use std::cmp::Ordering;
use std::fmt;

use crate::time::{civil_from_days, MS_PER_DAY};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Num(f64),
    Str(String),
    Bool(bool),
    /// An instant, in epoch milliseconds (`@timestamp`, `bin(...)`, `datefloor(...)`).
    Time(i64),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// As a number: numbers, times (milliseconds), numeric strings and booleans (1/0).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            Value::Time(t) => Some(*t as f64),
            Value::Str(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(*b as u8 as f64),
            Value::Null => None,
        }
    }

    /// Truth in `filter`: true, a non-zero number, a non-empty string; never null.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Num(n) => *n != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Time(_) => true,
            Value::Null => false,
        }
    }

    /// As text, for string functions and `like` (null is empty).
    pub fn text(&self) -> String {
        match self {
            Value::Null => String::new(),
            v => v.to_string(),
        }
    }

    /// Equality across types the way a query means it: `200` equals `"200"`.
    pub fn loose_eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => false,
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x == y,
                _ => a.text() == b.text(),
            },
        }
    }

    /// Order for comparisons: numbers (and times) numerically, strings lexicographically,
    /// mixed pairs by number when both read as numbers, else by text. `None` with a null.
    pub fn compare(&self, other: &Value) -> Option<Ordering> {
        match (self, other) {
            (Value::Null, _) | (_, Value::Null) => None,
            (Value::Str(a), Value::Str(b)) => Some(a.cmp(b)),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.partial_cmp(&y),
                _ => Some(a.text().cmp(&b.text())),
            },
        }
    }

    /// Order for `sort`: like [`Value::compare`], with nulls last.
    pub fn sort_cmp(&self, other: &Value) -> Ordering {
        match (self.is_null(), other.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => self.compare(other).unwrap_or(Ordering::Equal),
        }
    }

    /// A key for grouping and distinct counts (`1` and `1.0` are one key).
    pub fn key(&self) -> String {
        match self {
            Value::Null => "\u{0}null".into(),
            Value::Num(n) => format!("n{}", fmt_num(*n)),
            Value::Str(s) => format!("s{s}"),
            Value::Bool(b) => format!("b{b}"),
            Value::Time(t) => format!("t{t}"),
        }
    }
}

/// Numbers print as integers when they are whole, else with at most 12 significant digits, so
/// that the last bits of a floating-point sum (which depend on the order of the events) never
/// show.
pub fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        return format!("{}", n as i64);
    }
    if !n.is_finite() {
        return format!("{n}");
    }
    let int_digits = if n.abs() >= 1.0 {
        n.abs().log10().floor() as i32 + 1
    } else {
        0
    };
    let lead_zeros = if n.abs() < 1.0 && n != 0.0 {
        (-n.abs().log10()).floor() as i32
    } else {
        0
    };
    let decimals = (12 - int_digits + lead_zeros).clamp(0, 17) as usize;
    let s = format!("{n:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// `2026-11-03 02:14:07.000`, as the CloudWatch console shows times (UTC).
pub fn fmt_time(ms: i64) -> String {
    let day = ms.div_euclid(MS_PER_DAY);
    let rem = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(day);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Num(n) => f.write_str(&fmt_num(*n)),
            Value::Str(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{}", if *b { 1 } else { 0 }),
            Value::Time(t) => f.write_str(&fmt_time(*t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_stably() {
        assert_eq!(fmt_num(1.5169740000000003), "1.516974");
        assert_eq!(fmt_num(1.5169740000000005), "1.516974");
        assert_eq!(fmt_num(42.0), "42");
        assert_eq!(fmt_num(0.000123456789012345), "0.000123456789012");
        assert_eq!(fmt_num(12.909944487358056), "12.9099444874");
        assert_eq!(fmt_num(-2.5), "-2.5");
    }
}
