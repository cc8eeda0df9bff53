//! Money as integers. Rates are kept in pico-dollars per token (USD per million tokens x 1e6),
//! so every published rate, its 10% regional premium and its long-context multiple are exact;
//! sums are `i128` pico-dollars and become [`NanoUsd`] once, at the end, rounded half up.
//! No floating point touches a sum: the lint below refuses float arithmetic in this module.

#![deny(clippy::float_arithmetic)]

use std::fmt;

/// An amount of money in nano-dollars (1e-9 USD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NanoUsd(pub i64);

pub const PICO_PER_NANO: i128 = 1000;

impl NanoUsd {
    /// Rounds pico-dollars to nano-dollars, half away from zero.
    pub fn from_pico(pico: i128) -> NanoUsd {
        let half = PICO_PER_NANO / 2;
        let n = if pico >= 0 {
            (pico + half) / PICO_PER_NANO
        } else {
            (pico - half) / PICO_PER_NANO
        };
        NanoUsd(n.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }

    /// A decimal amount of US dollars as typed by a person (`25.50`, `500`, `0.000000001`):
    /// exact, never through a float; more than nine decimals, a sign or anything else is an
    /// error that says so.
    pub fn parse_usd(s: &str) -> Result<NanoUsd, String> {
        let t = s.trim().trim_start_matches('$');
        if t.starts_with('-') || t.starts_with('+') {
            return Err(format!("`{s}` is not a positive amount of USD"));
        }
        parse_scaled_decimal(t, 9).map(NanoUsd)
    }

    /// Whole micro-dollars, rounded half away from zero.
    pub fn micros(self) -> i64 {
        let n = self.0;
        if n >= 0 {
            (n + 500) / 1000
        } else {
            (n - 500) / 1000
        }
    }

    /// `12.345678`: dollars exact to the micro-dollar, as a decimal string (for JSON and CSV).
    pub fn to_decimal_micros(self) -> String {
        let m = self.micros();
        let sign = if m < 0 { "-" } else { "" };
        let a = m.unsigned_abs();
        format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
    }

    /// `$1,234.57` for people: cents, or four decimals below a dollar so small costs do not read
    /// as zero.
    pub fn to_display(self) -> String {
        let n = self.0;
        let sign = if n < 0 { "-" } else { "" };
        let a = n.unsigned_abs() as u128;
        if a < 1_000_000_000 {
            // Below a dollar: four decimals (1e5 nano each).
            let tenth_millis = (a + 50_000) / 100_000;
            return format!(
                "{sign}${}.{:04}",
                tenth_millis / 10_000,
                tenth_millis % 10_000
            );
        }
        let cents = (a + 5_000_000) / 10_000_000;
        format!(
            "{sign}${}.{:02}",
            group_thousands((cents / 100) as u64),
            cents % 100
        )
    }
}

impl fmt::Display for NanoUsd {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.to_display())
    }
}

/// `1234567` -> `1,234,567`.
pub fn group_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parses a decimal such as `3.75` exactly into an integer scaled by 10^`scale`.
/// More fractional digits than `scale` is an error: a rate is never silently rounded.
pub fn parse_scaled_decimal(s: &str, scale: u32) -> Result<i64, String> {
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let (int, frac) = match t.split_once('.') {
        Some((a, b)) => (a, b),
        None => (t, ""),
    };
    if int.is_empty() && frac.is_empty()
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!("`{s}` is not a decimal number"));
    }
    if frac.len() > scale as usize {
        return Err(format!("`{s}` has more than {scale} decimals"));
    }
    let mut v: i64 = 0;
    for c in int.chars().chain(frac.chars()) {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((c as u8 - b'0') as i64))
            .ok_or_else(|| format!("`{s}` is too large"))?;
    }
    for _ in frac.len()..scale as usize {
        v = v
            .checked_mul(10)
            .ok_or_else(|| format!("`{s}` is too large"))?;
    }
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_display() {
        assert_eq!(NanoUsd::from_pico(1499), NanoUsd(1));
        assert_eq!(NanoUsd::from_pico(1500), NanoUsd(2));
        assert_eq!(NanoUsd::from_pico(-1500), NanoUsd(-2));
        assert_eq!(NanoUsd(1_234_567_890_123).to_display(), "$1,234.57");
        assert_eq!(NanoUsd(12_345_678).to_display(), "$0.0123");
        assert_eq!(NanoUsd(12_345_678).to_decimal_micros(), "0.012346");
        assert_eq!(NanoUsd(3_000_000_000).to_decimal_micros(), "3.000000");
        assert_eq!(group_thousands(1_000), "1,000");
        assert_eq!(group_thousands(999), "999");
    }

    #[test]
    fn amounts_typed_by_people() {
        assert_eq!(NanoUsd::parse_usd("25.50"), Ok(NanoUsd(25_500_000_000)));
        assert_eq!(NanoUsd::parse_usd("$500"), Ok(NanoUsd(500_000_000_000)));
        assert_eq!(NanoUsd::parse_usd("0.000000001"), Ok(NanoUsd(1)));
        assert!(NanoUsd::parse_usd("0.0000000001").is_err());
        assert!(NanoUsd::parse_usd("-5").is_err());
        assert!(NanoUsd::parse_usd("1e3").is_err());
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_scaled_decimal("3.75", 6), Ok(3_750_000));
        assert_eq!(parse_scaled_decimal("0.03", 6), Ok(30_000));
        assert_eq!(parse_scaled_decimal("15", 6), Ok(15_000_000));
        assert!(parse_scaled_decimal("0.0000001", 6).is_err());
        assert!(parse_scaled_decimal("abc", 6).is_err());
        assert!(parse_scaled_decimal(".", 6).is_err());
    }
}
