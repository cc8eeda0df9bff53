//! The Bedrock model-invocation log record (schemaType `ModelInvocationLog`, schemaVersion 1.0),
//! parsed into one slim [`Invocation`].
//!
//! Rules this module keeps, pinned by its tests:
//! - A field is read only from its real place in the record. serde matches keys per struct, so a
//!   `requestId` or `inputTokenCount` inside a request or response body (tool inputs carry
//!   arbitrary JSON) is never taken for the record's own.
//! - Bodies are skipped while parsing (`IgnoredAny`), never built into values and never kept.
//!   The one thing read from a body is the 5-minute / 1-hour split of cache writes, from the
//!   Anthropic `usage.cache_creation` of a response (or of the `message_start` event of a stream).
//! - Parsing never panics: any byte string gives an `Invocation` or a [`RecordError`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::time::parse_timestamp_ms;

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
    pub fn add(&mut self, o: &Tokens) {
        self.input += o.input;
        self.output += o.output;
        self.cache_read += o.cache_read;
        self.cache_write_5m += o.cache_write_5m;
        self.cache_write_1h += o.cache_write_1h;
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

#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(rename = "schemaType", borrow, default)]
    schema_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(rename = "accountId", borrow, default)]
    account_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    identity: Option<RawIdentity<'a>>,
    #[serde(borrow, default)]
    region: Option<Cow<'a, str>>,
    #[serde(rename = "inferenceRegion", borrow, default)]
    inference_region: Option<Cow<'a, str>>,
    #[serde(rename = "requestId", borrow, default)]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    operation: Option<Cow<'a, str>>,
    #[serde(rename = "modelId", borrow, default)]
    model_id: Option<Cow<'a, str>>,
    #[serde(rename = "errorCode", borrow, default)]
    error_code: Option<Cow<'a, str>>,
    #[serde(rename = "requestMetadata", borrow, default)]
    request_metadata: Option<BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(default)]
    input: Option<RawInput>,
    #[serde(default)]
    output: Option<RawOutput>,
}

#[derive(Deserialize)]
struct RawIdentity<'a> {
    #[serde(borrow, default)]
    arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawInput {
    #[serde(rename = "inputTokenCount", default)]
    input_tokens: Option<u64>,
    #[serde(rename = "cacheReadInputTokenCount", default)]
    cache_read: Option<u64>,
    #[serde(rename = "cacheWriteInputTokenCount", default)]
    cache_write: Option<u64>,
    #[serde(rename = "inputBodyS3Path", default)]
    body_s3: Option<IgnoredAny>,
    #[serde(rename = "inputBodyJson", default)]
    _body: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RawOutput {
    #[serde(rename = "outputTokenCount", default)]
    output_tokens: Option<u64>,
    #[serde(rename = "outputBodyS3Path", default)]
    body_s3: Option<IgnoredAny>,
    #[serde(rename = "outputBodyJson", default)]
    body: Option<CacheSplit>,
}

/// The 5-minute / 1-hour split of cache writes, as found in an output body.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheSplit {
    pub found: bool,
    pub ephemeral_5m: u64,
    pub ephemeral_1h: u64,
}

#[derive(Deserialize, Default)]
struct RawUsage {
    #[serde(default)]
    cache_creation: Option<ObjectOrSkip<RawCacheCreation>>,
}

#[derive(Deserialize, Default)]
struct RawCacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: LenientU64,
    #[serde(default)]
    ephemeral_1h_input_tokens: LenientU64,
}

/// A count inside a body: a non-negative integer, or nothing (any other value is ignored, as a
/// body's shape is the caller's business, not the record's).
#[derive(Default)]
struct LenientU64(Option<u64>);

impl<'de> Deserialize<'de> for LenientU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = ObjectOrSkip::<IgnoredAny>::deserialize_number(d)?;
        Ok(LenientU64(v))
    }
}

impl RawUsage {
    fn split(&self) -> CacheSplit {
        match &self.cache_creation {
            Some(ObjectOrSkip(Some(c)))
                if c.ephemeral_5m_input_tokens.0.is_some() || c.ephemeral_1h_input_tokens.0.is_some() =>
            {
                CacheSplit {
                    found: true,
                    ephemeral_5m: c.ephemeral_5m_input_tokens.0.unwrap_or(0),
                    ephemeral_1h: c.ephemeral_1h_input_tokens.0.unwrap_or(0),
                }
            }
            _ => CacheSplit::default(),
        }
    }
}

/// An Anthropic message: only its `usage` is looked at.
#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    usage: Option<ObjectOrSkip<RawUsage>>,
}

/// One event of a streamed body; only a `message_start` event's `message.usage` counts.
#[derive(Deserialize)]
struct RawStreamEvent<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    message: Option<ObjectOrSkip<RawMessage>>,
}

impl<'de> Deserialize<'de> for CacheSplit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = CacheSplit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a response body")
            }
            // A non-streaming Anthropic response: `usage` at the top of the body.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CacheSplit, A::Error> {
                let mut split = CacheSplit::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "usage" {
                        // A body is the caller's business: a usage of another shape is not an
                        // error of the record, just no split.
                        let usage: Option<ObjectOrSkip<RawUsage>> = map.next_value()?;
                        if let Some(ObjectOrSkip(Some(u))) = usage {
                            split = u.split();
                        }
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(split)
            }
            // A streamed body: an array of events.
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<CacheSplit, A::Error> {
                let mut split = CacheSplit::default();
                while let Some(ev) = seq.next_element::<ObjectOrSkip<RawStreamEvent>>()? {
                    if let ObjectOrSkip(Some(ev)) = ev {
                        if !split.found && ev.kind.as_deref() == Some("message_start") {
                            if let Some(ObjectOrSkip(Some(u))) = ev.message.and_then(|m| m.0).and_then(|m| m.usage) {
                                split = u.split();
                            }
                        }
                    }
                }
                Ok(split)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<CacheSplit, E> {
                Ok(CacheSplit::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<CacheSplit, E> {
                Ok(CacheSplit::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<CacheSplit, E> {
                Ok(CacheSplit::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<CacheSplit, E> {
                Ok(CacheSplit::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<CacheSplit, E> {
                Ok(CacheSplit::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<CacheSplit, E> {
                Ok(CacheSplit::default())
            }
        }
        d.deserialize_any(BodyVisitor)
    }
}

/// Deserializes a value as `T` when it is an object, and skips it otherwise, so that a body of an
/// unexpected shape never makes the record an error.
struct ObjectOrSkip<T>(Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOrSkip<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = ObjectOrSkip<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let v = T::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(ObjectOrSkip(Some(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ObjectOrSkip(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(ObjectOrSkip(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(ObjectOrSkip(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(ObjectOrSkip(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(ObjectOrSkip(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(ObjectOrSkip(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ObjectOrSkip(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl ObjectOrSkip<IgnoredAny> {
    /// A non-negative integer, or `None` for any other JSON value (which is skipped).
    fn deserialize_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        struct N;
        impl<'de> Visitor<'de> for N {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
        }
        d.deserialize_any(N)
    }
}

/// Parses one record (one line of a delivered log object, or one CloudWatch event's message).
pub fn parse_record(line: &[u8]) -> Result<Invocation, RecordError> {
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[') => return Err(RecordError::NotAnObject("an array")),
        Some(b'"') => return Err(RecordError::NotAnObject("a string")),
        None => return Err(RecordError::NotAnObject("empty")),
        Some(_) => {}
    }
    let raw: RawRecord = match serde_json::from_slice(line) {
        Ok(r) => r,
        Err(e) if e.classify() == serde_json::error::Category::Data => return Err(field_error(line, e)),
        Err(e) => return Err(RecordError::Json { column: e.column(), message: strip_position(&e.to_string()) }),
    };
    into_invocation(raw)
}

/// A value of the wrong type: parse again (a cold path) tracking the path, to name the field.
fn field_error(line: &[u8], e: serde_json::Error) -> RecordError {
    let mut de = serde_json::Deserializer::from_slice(line);
    match serde_path_to_error::deserialize::<_, RawRecord>(&mut de) {
        Err(pe) if pe.path().iter().next().is_some() => RecordError::Field { field: pe.path().to_string(), message: strip_position(&pe.inner().to_string()) },
        _ => RecordError::Json { column: e.column(), message: strip_position(&e.to_string()) },
    }
}

fn strip_position(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
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
    let timestamp_ms = parse_timestamp_ms(&ts).ok_or_else(|| RecordError::BadTimestamp(ts.to_string()))?;
    let model_id = raw.model_id.ok_or(RecordError::Missing("modelId"))?;
    if model_id.trim().is_empty() {
        return Err(RecordError::Empty("modelId"));
    }
    let input = raw.input;
    let output = raw.output;
    let (input_tokens, cache_read, cache_write, input_s3) = match &input {
        Some(i) => (
            i.input_tokens.unwrap_or(0),
            i.cache_read.unwrap_or(0),
            i.cache_write.unwrap_or(0),
            i.body_s3.is_some(),
        ),
        None => (0, 0, 0, false),
    };
    let (output_tokens, split, output_s3) = match &output {
        Some(o) => (o.output_tokens.unwrap_or(0), o.body.unwrap_or_default(), o.body_s3.is_some()),
        None => (0, CacheSplit::default(), false),
    };
    let (cw5m, cw1h) = split_cache_writes(cache_write, split);
    Ok(Invocation {
        request_id: request_id.into_owned(),
        timestamp_ms,
        account_id: raw.account_id.map(Cow::into_owned).unwrap_or_default(),
        region: raw.region.map(Cow::into_owned).unwrap_or_default(),
        inference_region: raw.inference_region.map(Cow::into_owned),
        operation: raw.operation.map(Cow::into_owned).unwrap_or_default(),
        model_id: model_id.into_owned(),
        principal: raw.identity.and_then(|i| i.arn).map(Cow::into_owned).unwrap_or_default(),
        request_metadata: raw
            .request_metadata
            .map(|m| m.into_iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect())
            .unwrap_or_default(),
        error_code: raw.error_code.map(Cow::into_owned).filter(|s| !s.is_empty()),
        tokens: Tokens {
            input: input_tokens,
            output: output_tokens,
            cache_read,
            cache_write_5m: cw5m,
            cache_write_1h: cw1h,
        },
        input_body_in_s3: input_s3,
        output_body_in_s3: output_s3,
    })
}

/// The record's `cacheWriteInputTokenCount` is the truth for the total; the body only splits it.
/// Without a split every write is a 5-minute write. A split that claims more 1-hour tokens than
/// the total is capped at the total.
fn split_cache_writes(total: u64, split: CacheSplit) -> (u64, u64) {
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
        assert_eq!((inv.tokens.cache_write_5m, inv.tokens.cache_write_1h), (0, 50));
    }

    #[test]
    fn odd_bodies_are_not_errors() {
        for body in [r#""text""#, "null", "3", "[1,2,{\"type\":\"message_start\",\"message\":7}]", r#"{"usage":[1]}"#] {
            let line = format!(
                r#"{{"timestamp":"2026-11-03T02:14:07Z","requestId":"r","modelId":"m","output":{{"outputBodyJson":{body}}}}}"#
            );
            assert!(parse_record(line.as_bytes()).is_ok(), "{body}");
        }
    }

    #[test]
    fn not_records() {
        assert_eq!(parse_record(br#"{"timestamp":"2026-11-03T02:14:07Z","modelId":"m"}"#), Err(RecordError::Missing("requestId")));
        assert!(matches!(parse_record(br#"{"schemaType":"Other","requestId":"r"}"#), Err(RecordError::WrongSchema(_))));
        assert_eq!(parse_record(b"[1,2]"), Err(RecordError::NotAnObject("an array")));
        assert!(matches!(parse_record(br#"{"requestId":"r","timestamp":"yesterday","modelId":"m"}"#), Err(RecordError::BadTimestamp(_))));
        assert_eq!(
            parse_record(br#"{"requestId":"r","timestamp":"2026-11-03T02:14:07Z","modelId":"m","input":{"inputTokenCount":-1}}"#),
            Err(RecordError::Field { field: "input.inputTokenCount".into(), message: "invalid value: integer `-1`, expected u64".into() })
        );
    }
}
