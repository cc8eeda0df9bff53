//! Where Bedrock puts its records, and how one line of a log file holds one: the S3 delivery
//! layout (`AWSLogs/ACCT/BedrockModelInvocationLogs/REGION/YYYY/MM/DD/HH/*.json.gz`, with the
//! `amazon-bedrock-logs-permission-check` object and the `HH/data/` body offloads that are not
//! records) and the CloudWatch Logs export-task line (`TIMESTAMP {record}`).
//!
//! One copy of each rule, used by the file walker, the S3 source and both readers (ingest and
//! `query --from`), so that they can never disagree about what is a record.

use crate::time::civil_from_days;

/// The object Bedrock writes once to test that it may deliver to a bucket.
pub const PERMISSION_CHECK: &str = "amazon-bedrock-logs-permission-check";

fn all_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// `YYYY`, `MM`, `DD`, `HH`: the four parts of an hour partition, in order.
pub fn is_hour_partition(parts: &[&str]) -> bool {
    parts.len() == 4
        && all_digits(parts[0], 4)
        && all_digits(parts[1], 2)
        && all_digits(parts[2], 2)
        && all_digits(parts[3], 2)
}

/// Whether a path of the layout (the `/`-separated parts of an S3 key or a relative file path)
/// holds no records: the permission-check object, an empty name (a "folder" key), a hidden
/// name, or anything under a `data/` folder directly inside an hour partition
/// (`.../YYYY/MM/DD/HH/data/...`, where bodies over 100 KB are offloaded), at any depth.
pub fn is_skipped(parts: &[&str]) -> bool {
    let Some(name) = parts.last() else {
        return true;
    };
    if name.is_empty() || *name == PERMISSION_CHECK || name.starts_with('.') {
        return true;
    }
    is_offload_dir(parts)
}

/// Whether `parts` (a directory, or any path inside one) is or lies under an offload `data/`
/// folder of an hour partition.
pub fn is_offload_dir(parts: &[&str]) -> bool {
    parts
        .iter()
        .enumerate()
        .any(|(i, p)| *p == "data" && i >= 4 && is_hour_partition(&parts[i - 4..i]))
}

/// [`is_skipped`] for an S3 key.
pub fn is_skipped_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    is_skipped(&parts)
}

/// True for a prefix whose last part is a four-digit year (`.../2026/`).
pub fn is_year_prefix(p: &str) -> bool {
    let last = p.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    all_digits(last, 4)
}

/// `YYYY/MM/DD` of a UTC day number: the date part of a partition.
pub fn day_path(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}/{m:02}/{d:02}")
}

/// `s3://BUCKET/PREFIX` as (bucket, prefix ending in `/`, or empty).
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err(format!(
            "`{url}`: an S3 location is written s3://BUCKET/PREFIX"
        ));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("`{url}`: no bucket name"));
    }
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_string(), prefix))
}

/// Why a line is not an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// A line that starts with a digit (an export-task timestamp) with nothing after it.
    NumberOnly,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            LineError::NumberOnly => f.write_str(
                "not a record: the line starts with a number and has no record after it",
            ),
        }
    }
}

/// The event JSON of one line: the line without surrounding whitespace (and a `\r`), and, for a
/// CloudWatch Logs export-task line (`2026-11-03T02:14:07.123Z {...}`: it starts with a digit),
/// what follows the first space. `Ok(None)` for a blank line.
pub fn event_of_line(line: &[u8]) -> Result<Option<&[u8]>, LineError> {
    let text = line.trim_ascii();
    if text.is_empty() {
        return Ok(None);
    }
    if text[0].is_ascii_digit() {
        return match memchr::memchr(b' ', text) {
            Some(sp) => Ok(Some(text[sp + 1..].trim_ascii_start())),
            None => Err(LineError::NumberOnly),
        };
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_skipped() {
        let skipped = |k: &str| is_skipped_key(k);
        assert!(skipped(
            "AWSLogs/1/BedrockModelInvocationLogs/us-east-1/amazon-bedrock-logs-permission-check"
        ));
        assert!(skipped(
            "p/AWSLogs/1/BedrockModelInvocationLogs/us-east-1/2026/11/03/02/data/x.json.gz"
        ));
        assert!(skipped("2026/11/03/02/data/deeper/x.json"));
        assert!(skipped("a/folder/"));
        assert!(!skipped(
            "p/AWSLogs/1/BedrockModelInvocationLogs/us-east-1/2026/11/03/02/x.json.gz"
        ));
        // `data` elsewhere is a name like any other.
        assert!(!skipped("data/2026/11/03/02/x.json.gz"));
        assert!(!skipped("logs/02/data/x.json.gz"));
        assert!(is_year_prefix(
            "p/AWSLogs/1/BedrockModelInvocationLogs/us-east-1/2026/"
        ));
        assert!(!is_year_prefix("p/us-east-1/"));
        assert_eq!(
            day_path(crate::time::parse_date("2026-11-03").unwrap()),
            "2026/11/03"
        );
    }

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://logs/bedrock").ok(),
            Some(("logs".to_string(), "bedrock/".to_string()))
        );
        assert_eq!(
            parse_s3_url("s3://logs").ok(),
            Some(("logs".to_string(), String::new()))
        );
        assert!(parse_s3_url("logs/bedrock").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
    }

    #[test]
    fn lines() {
        assert_eq!(event_of_line(b"  {\"a\":1}\r"), Ok(Some(&b"{\"a\":1}"[..])));
        assert_eq!(
            event_of_line(b"2026-11-03T02:14:07.123Z {\"a\":1}"),
            Ok(Some(&b"{\"a\":1}"[..]))
        );
        assert_eq!(event_of_line(b"   "), Ok(None));
        assert_eq!(event_of_line(b"12345"), Err(LineError::NumberOnly));
    }
}

/// Decodes `%XX` escapes (S3 keys, IAM policy documents, model ids in request paths); a `%` not
/// followed by two hex digits is kept as it is.
pub fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod percent_tests {
    use super::percent_decode;

    #[test]
    fn escapes_are_decoded_and_odd_ones_kept() {
        assert_eq!(percent_decode("v1%3A0"), "v1:0");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a%zz"), "a%zz");
        // A multi-byte character right after `%` (a byte slice of a str would panic here).
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
