//! The Bedrock model-invocation log record (schemaType `ModelInvocationLog`, schemaVersion 1.0),
//! parsed into one slim [`Invocation`].
//!
//! Rules this module keeps, pinned by its tests:
//! - A field is read only from its real place in the record: keys are matched per object as the
//!   parser walks the record, so a `requestId` or `inputTokenCount` inside a request or response
//!   body (tool inputs carry arbitrary JSON) is never taken for the record's own.
//! - Bodies are skipped while parsing (structurally, in bulk: see `scan`), never built into
//!   values and never kept.
//!   The one thing read from a body is the 5-minute / 1-hour split of cache writes, from the
//!   Anthropic `usage.cache_creation` of a response (or of the `message_start` event of a stream).
//! - Parsing never panics: any byte string gives an `Invocation` or a [`RecordError`].

use std::borrow::Cow;

use crate::scan::Scan;
use crate::time::parse_record_timestamp_ms;

/// Token counts of one call (or a sum of calls), one field per price class.
/// Cache tokens are not part of `input` (Bedrock reports them apart).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

impl Tokens {
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m + self.cache_write_1h
    }
    /// Everything on the input side: what the long-context threshold is measured against.
    pub fn input_side(&self) -> u64 {
        self.input + self.cache_read + self.cache_write()
    }
    pub fn total(&self) -> u64 {
        self.input_side() + self.output
    }
    /// Adds `o` (saturating: counts are capped at parse, so a sum never comes near the limit).
    pub fn add(&mut self, o: &Tokens) {
        self.input = self.input.saturating_add(o.input);
        self.output = self.output.saturating_add(o.output);
        self.cache_read = self.cache_read.saturating_add(o.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(o.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(o.cache_write_1h);
    }
}

/// One invocation, as much of it as bedrock-usage keeps: facts, no bodies.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invocation {
    pub request_id: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    pub account_id: String,
    /// The region the request was made in (prices are per this region).
    pub region: String,
    /// Where a cross-region inference profile actually ran, when the record says.
    pub inference_region: Option<String>,
    pub operation: String,
    pub model_id: String,
    /// `identity.arn`; empty when the record carries no identity.
    pub principal: String,
    /// `requestMetadata`, sorted by key.
    pub request_metadata: Vec<(String, String)>,
    pub error_code: Option<String>,
    pub tokens: Tokens,
    /// The record says a body was offloaded to S3 (`inputBodyS3Path` / `outputBodyS3Path`).
    pub input_body_in_s3: bool,
    pub output_body_in_s3: bool,
}

impl Invocation {
    /// The first metadata value among `keys` (in that order) that is present and not blank.
    pub fn metadata_signal<'a>(&'a self, keys: &'a [String]) -> Option<(&'a str, &'a str)> {
        keys.iter().find_map(|k| {
            self.request_metadata
                .iter()
                .find(|(mk, v)| mk == k && !v.trim().is_empty())
                .map(|(mk, v)| (mk.as_str(), v.as_str()))
        })
    }
}

/// Why a line is not an invocation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("invalid JSON at column {column}: {message}")]
    Json { column: usize, message: String },
    #[error("not an invocation record: a record is a JSON object, this line is {0}")]
    NotAnObject(&'static str),
    #[error("field `{field}`: {message}")]
    Field { field: String, message: String },
    #[error("not an invocation record: schemaType is `{0}`, expected `ModelInvocationLog`")]
    WrongSchema(String),
    #[error("not an invocation record: missing field `{0}`")]
    Missing(&'static str),
    #[error("field `timestamp`: `{0}` is not an ISO-8601 time")]
    BadTimestamp(String),
    #[error("field `{0}` is empty")]
    Empty(&'static str),
}

/// The 5-minute / 1-hour split of cache writes, as found in an output body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheSplit {
    pub found: bool,
    pub ephemeral_5m: u64,
    pub ephemeral_1h: u64,
}

/// Parses one record (one line of a delivered log object, or one CloudWatch event's message).
pub fn parse_record(line: &[u8]) -> Result<Invocation, RecordError> {
    let mut sc = Scan::new(line);
    sc.ws();
    match sc.peek() {
        Some(b'{') => {}
        Some(b'[') => return Err(RecordError::NotAnObject("an array")),
        Some(b'"') => return Err(RecordError::NotAnObject("a string")),
        None => return Err(RecordError::NotAnObject("empty")),
        Some(_) => return Err(sc.err("expected a JSON object")),
    }
    let raw = read_record(&mut sc)?;
    sc.ws();
    if !sc.at_end() {
        return Err(sc.err("trailing characters after the record"));
    }
    into_invocation(raw)
}

/// What the record says, borrowed from the line where no escape forced a copy.
#[derive(Default)]
struct RawRecord<'a> {
    schema_type: Option<Cow<'a, str>>,
    timestamp: Option<Cow<'a, str>>,
    account_id: Option<Cow<'a, str>>,
    principal: Option<Cow<'a, str>>,
    region: Option<Cow<'a, str>>,
    inference_region: Option<Cow<'a, str>>,
    request_id: Option<Cow<'a, str>>,
    operation: Option<Cow<'a, str>>,
    model_id: Option<Cow<'a, str>>,
    error_code: Option<Cow<'a, str>>,
    request_metadata: Vec<(String, String)>,
    input_tokens: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
    input_s3: bool,
    output_tokens: Option<u64>,
    output_s3: bool,
    split: CacheSplit,
}

/// Top-level fields seen so far: a field given twice is an error, not a silent overwrite.
#[derive(Default)]
struct Seen(Vec<&'static str>);

impl Seen {
    fn once(&mut self, field: &'static str) -> Result<&'static str, RecordError> {
        if self.0.contains(&field) {
            return Err(RecordError::Field {
                field: field.to_string(),
                message: "given twice".to_string(),
            });
        }
        self.0.push(field);
        Ok(field)
    }
}

fn read_record<'a>(sc: &mut Scan<'a>) -> Result<RawRecord<'a>, RecordError> {
    let mut r = RawRecord::default();
    let mut seen = Seen::default();
    sc.object(|sc, key| {
        match key.as_ref() {
            "schemaType" => r.schema_type = sc.opt_string(seen.once("schemaType")?)?,
            "timestamp" => r.timestamp = sc.opt_string(seen.once("timestamp")?)?,
            "accountId" => r.account_id = sc.opt_string(seen.once("accountId")?)?,
            "region" => r.region = sc.opt_string(seen.once("region")?)?,
            "inferenceRegion" => {
                r.inference_region = sc.opt_string(seen.once("inferenceRegion")?)?
            }
            "requestId" => r.request_id = sc.opt_string(seen.once("requestId")?)?,
            "operation" => r.operation = sc.opt_string(seen.once("operation")?)?,
            "modelId" => r.model_id = sc.opt_string(seen.once("modelId")?)?,
            "errorCode" => r.error_code = sc.opt_string(seen.once("errorCode")?)?,
            "identity" => {
                if sc.opt_object(seen.once("identity")?)? {
                    sc.object(|sc, k| match k.as_ref() {
                        "arn" => {
                            r.principal = sc.opt_string(seen.once("identity.arn")?)?;
                            Ok(())
                        }
                        _ => sc.skip_value(),
                    })?;
                }
            }
            "requestMetadata" => {
                if sc.opt_object(seen.once("requestMetadata")?)? {
                    let mut m = Vec::new();
                    sc.object(|sc, k| {
                        if let Some(v) = sc.opt_string("requestMetadata")? {
                            m.push((k.into_owned(), v.into_owned()));
                        }
                        Ok(())
                    })?;
                    m.sort();
                    r.request_metadata = m;
                }
            }
            "input" => {
                if sc.opt_object(seen.once("input")?)? {
                    sc.object(|sc, k| {
                        match k.as_ref() {
                            "inputTokenCount" => {
                                r.input_tokens = sc.opt_u64(seen.once("input.inputTokenCount")?)?
                            }
                            "cacheReadInputTokenCount" => {
                                r.cache_read =
                                    sc.opt_u64(seen.once("input.cacheReadInputTokenCount")?)?
                            }
                            "cacheWriteInputTokenCount" => {
                                r.cache_write =
                                    sc.opt_u64(seen.once("input.cacheWriteInputTokenCount")?)?
                            }
                            "inputBodyS3Path" => r.input_s3 = sc.present()?,
                            _ => sc.skip_value()?,
                        }
                        Ok(())
                    })?;
                }
            }
            "output" => {
                if sc.opt_object(seen.once("output")?)? {
                    sc.object(|sc, k| {
                        match k.as_ref() {
                            "outputTokenCount" => {
                                r.output_tokens =
                                    sc.opt_u64(seen.once("output.outputTokenCount")?)?
                            }
                            "outputBodyS3Path" => r.output_s3 = sc.present()?,
                            "outputBodyJson" => r.split = body_cache_split(sc)?,
                            _ => sc.skip_value()?,
                        }
                        Ok(())
                    })?;
                }
            }
            _ => sc.skip_value()?,
        }
        Ok(())
    })?;
    Ok(r)
}

/// The 5-minute / 1-hour split from a response body: a non-streaming Anthropic message's
/// `usage`, or the `message_start` event's `message.usage` of a stream. A body of any other shape
/// gives no split; only broken JSON is an error.
fn body_cache_split(sc: &mut Scan) -> Result<CacheSplit, RecordError> {
    let mut split = CacheSplit::default();
    match sc.peek_value() {
        Some(b'{') => sc.object(|sc, k| {
            if k == "usage" {
                usage_split(sc).map(|s| split = s)
            } else {
                sc.skip_value()
            }
        })?,
        Some(b'[') => sc.array(|sc| {
            // Only the first `message_start` counts: once it is found, the rest of the stream's
            // events are skipped whole.
            if split.found || sc.peek_value() != Some(b'{') {
                return sc.skip_value();
            }
            let mut is_start = false;
            let mut event = CacheSplit::default();
            sc.object(|sc, k| match (k.as_ref(), sc.peek_value()) {
                ("type", Some(b'"')) => sc.string().map(|t| is_start = t == "message_start"),
                ("message", Some(b'{')) => sc.object(|sc, k| {
                    if k == "usage" {
                        usage_split(sc).map(|s| event = s)
                    } else {
                        sc.skip_value()
                    }
                }),
                _ => sc.skip_value(),
            })?;
            if is_start && !split.found {
                split = event;
            }
            Ok(())
        })?,
        _ => sc.skip_value()?,
    }
    Ok(split)
}

/// `{"cache_creation": {"ephemeral_5m_input_tokens": N, "ephemeral_1h_input_tokens": M}, ...}`.
fn usage_split(sc: &mut Scan) -> Result<CacheSplit, RecordError> {
    let mut split = CacheSplit::default();
    if sc.peek_value() != Some(b'{') {
        sc.skip_value()?;
        return Ok(split);
    }
    sc.object(|sc, k| {
        if k != "cache_creation" || sc.peek_value() != Some(b'{') {
            return sc.skip_value();
        }
        let (mut m5, mut h1) = (None, None);
        sc.object(|sc, k| {
            match k.as_ref() {
                "ephemeral_5m_input_tokens" => m5 = sc.lenient_u64()?,
                "ephemeral_1h_input_tokens" => h1 = sc.lenient_u64()?,
                _ => sc.skip_value()?,
            }
            Ok(())
        })?;
        if m5.is_some() || h1.is_some() {
            split = CacheSplit {
                found: true,
                ephemeral_5m: m5.unwrap_or(0),
                ephemeral_1h: h1.unwrap_or(0),
            };
        }
        Ok(())
    })?;
    Ok(split)
}

fn into_invocation(raw: RawRecord) -> Result<Invocation, RecordError> {
    if let Some(s) = &raw.schema_type {
        if s != "ModelInvocationLog" {
            return Err(RecordError::WrongSchema(s.to_string()));
        }
    }
    let request_id = raw.request_id.ok_or(RecordError::Missing("requestId"))?;
    if request_id.trim().is_empty() {
        return Err(RecordError::Empty("requestId"));
    }
    let ts = raw.timestamp.ok_or(RecordError::Missing("timestamp"))?;
    let timestamp_ms =
        parse_record_timestamp_ms(&ts).ok_or_else(|| RecordError::BadTimestamp(ts.to_string()))?;
    let model_id = raw.model_id.ok_or(RecordError::Missing("modelId"))?;
    if model_id.trim().is_empty() {
        return Err(RecordError::Empty("modelId"));
    }
    let (cw5m, cw1h) = split_cache_writes(raw.cache_write.unwrap_or(0), raw.split);
    Ok(Invocation {
        request_id: request_id.into_owned(),
        timestamp_ms,
        account_id: raw.account_id.map(Cow::into_owned).unwrap_or_default(),
        region: raw.region.map(Cow::into_owned).unwrap_or_default(),
        inference_region: raw.inference_region.map(Cow::into_owned),
        operation: raw.operation.map(Cow::into_owned).unwrap_or_default(),
        model_id: model_id.into_owned(),
        principal: raw.principal.map(Cow::into_owned).unwrap_or_default(),
        request_metadata: raw.request_metadata,
        error_code: raw
            .error_code
            .map(Cow::into_owned)
            .filter(|s| !s.is_empty()),
        tokens: Tokens {
            input: raw.input_tokens.unwrap_or(0),
            output: raw.output_tokens.unwrap_or(0),
            cache_read: raw.cache_read.unwrap_or(0),
            cache_write_5m: cw5m,
            cache_write_1h: cw1h,
        },
        input_body_in_s3: raw.input_s3,
        output_body_in_s3: raw.output_s3,
    })
}

/// The record's `cacheWriteInputTokenCount` is the truth for the total; the body only splits it.
/// Without a split every write is a 5-minute write. A split that claims more 1-hour tokens than
/// the total is capped at the total.
pub(crate) fn split_cache_writes(total: u64, split: CacheSplit) -> (u64, u64) {
    if !split.found {
        return (total, 0);
    }
    let h1 = split.ephemeral_1h.min(total);
    (total - h1, h1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inside_bodies_are_not_the_records() {
        let line = br#"{"schemaType":"ModelInvocationLog","timestamp":"2026-11-03T02:14:07Z","requestId":"real","modelId":"anthropic.claude-3-haiku-20240307-v1:0","input":{"inputBodyJson":{"requestId":"fake","inputTokenCount":999,"tool":{"input":{"modelId":"x"}}},"inputTokenCount":5},"output":{"outputBodyJson":{"outputTokenCount":77,"content":[{"usage":{"cache_creation":{"ephemeral_1h_input_tokens":5}}}]},"outputTokenCount":3}}"#;
        let inv = parse_record(line).expect("record");
        assert_eq!(inv.request_id, "real");
        assert_eq!(inv.tokens.input, 5);
        assert_eq!(inv.tokens.output, 3);
        assert_eq!(inv.model_id, "anthropic.claude-3-haiku-20240307-v1:0");
    }

    #[test]
    fn stream_split_read_only_from_message_start() {
        let line = br#"{"timestamp":"2026-11-03T02:14:07Z","requestId":"r","modelId":"m","input":{"cacheWriteInputTokenCount":100},"output":{"outputBodyJson":[{"type":"content_block_delta","message":{"usage":{"cache_creation":{"ephemeral_1h_input_tokens":100}}}},{"type":"message_start","message":{"usage":{"cache_creation":{"ephemeral_5m_input_tokens":30,"ephemeral_1h_input_tokens":70}}}}]}}"#;
        let inv = parse_record(line).expect("record");
        assert_eq!(inv.tokens.cache_write_5m, 30);
        assert_eq!(inv.tokens.cache_write_1h, 70);
    }

    #[test]
    fn split_is_capped_by_the_records_total() {
        let line = br#"{"timestamp":"2026-11-03T02:14:07Z","requestId":"r","modelId":"m","input":{"cacheWriteInputTokenCount":50},"output":{"outputBodyJson":{"usage":{"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":80}}}}}"#;
        let inv = parse_record(line).expect("record");
        assert_eq!(
            (inv.tokens.cache_write_5m, inv.tokens.cache_write_1h),
            (0, 50)
        );
    }

    #[test]
    fn odd_bodies_are_not_errors() {
        for body in [
            r#""text""#,
            "null",
            "3",
            "[1,2,{\"type\":\"message_start\",\"message\":7}]",
            r#"{"usage":[1]}"#,
        ] {
            let line = format!(
                r#"{{"timestamp":"2026-11-03T02:14:07Z","requestId":"r","modelId":"m","output":{{"outputBodyJson":{body}}}}}"#
            );
            assert!(parse_record(line.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn not_records() {
        assert_eq!(
            parse_record(br#"{"timestamp":"2026-11-03T02:14:07Z","modelId":"m"}"#),
            Err(RecordError::Missing("requestId"))
        );
        assert!(matches!(
            parse_record(br#"{"schemaType":"Other","requestId":"r"}"#),
            Err(RecordError::WrongSchema(_))
        ));
        assert_eq!(
            parse_record(b"[1,2]"),
            Err(RecordError::NotAnObject("an array"))
        );
        assert!(matches!(
            parse_record(br#"{"requestId":"r","timestamp":"yesterday","modelId":"m"}"#),
            Err(RecordError::BadTimestamp(_))
        ));
        assert_eq!(
            parse_record(br#"{"requestId":"r","timestamp":"2026-11-03T02:14:07Z","modelId":"m","input":{"inputTokenCount":-1}}"#),
            Err(RecordError::Field { field: "input.inputTokenCount".into(), message: "expected a non-negative integer, found `-1`".into() })
        );
    }

    fn with(field: &str, value: &str) -> String {
        format!(
            r#"{{"schemaType":"ModelInvocationLog","timestamp":"2026-11-03T00:00:00Z","requestId":"r1","modelId":"m","input":{{"inputTokenCount":{}}},"output":{{"outputTokenCount":1}}}}"#,
            if field == "input" { value } else { "1" }
        )
    }

    #[test]
    fn token_counts_that_do_not_fit_are_refused_with_the_field_named() {
        for v in [
            "18446744073709551615",
            "9223372036854775808",
            "1099511627777",
        ] {
            let e = parse_record(with("input", v).as_bytes())
                .err()
                .map(|e| e.to_string());
            assert!(
                e.as_deref().is_some_and(
                    |e| e.contains("input.inputTokenCount") && e.contains("larger than")
                ),
                "{v}: {e:?}"
            );
        }
        assert!(parse_record(with("input", "1099511627776").as_bytes()).is_ok());
        let e = parse_record(with("input", "00012").as_bytes())
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("leading zeros")),
            "{e:?}"
        );
        assert!(parse_record(with("input", "0").as_bytes()).is_ok());
    }

    #[test]
    fn a_field_given_twice_inside_an_object_is_refused() {
        let line = r#"{"schemaType":"ModelInvocationLog","timestamp":"2026-11-03T00:00:00Z","requestId":"r1","modelId":"m","input":{"inputTokenCount":5,"inputTokenCount":7},"output":{"outputTokenCount":1}}"#;
        let e = parse_record(line.as_bytes()).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("input.inputTokenCount") && e.contains("twice")),
            "{e:?}"
        );
    }

    #[test]
    fn a_body_nested_deeper_than_any_limit_is_skipped() {
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let line = format!(
            r#"{{"schemaType":"ModelInvocationLog","timestamp":"2026-11-03T00:00:00Z","requestId":"r1","modelId":"m","input":{{"inputTokenCount":5,"inputBodyJson":{{"messages":{deep}}}}},"output":{{"outputTokenCount":1}}}}"#
        );
        let r = parse_record(line.as_bytes()).expect("a deep body is skipped, not refused");
        assert_eq!(r.tokens.input, 5);
        let broken = line.replacen("]]", "}]", 1);
        assert!(parse_record(broken.as_bytes()).is_err());
    }
}
