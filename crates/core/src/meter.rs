//! Reading a call's token usage from its response as the response goes by: the gateway relays
//! every byte to the client at once and hands a copy to a [`Meter`], which keeps only what it
//! needs to count (a streaming response's frames one at a time; a non-streaming body, which is
//! small, up to [`MAX_BODY`]).
//!
//! Where the counts come from, per operation:
//! - `InvokeModel`: the `X-Amzn-Bedrock-*-Token-Count` response headers (Bedrock's own totals),
//!   and the body's Anthropic `usage.cache_creation` for the 5-minute / 1-hour split of cache
//!   writes (without it every write is a 5-minute write, as for logs).
//! - `InvokeModelWithResponseStream`: each `chunk` event's base64 payload, an Anthropic stream
//!   event: `message_start` (input, cache and the split), `message_delta` (output so far), and
//!   the `amazon-bedrock-invocationMetrics` Bedrock adds to the last chunk (the totals, which win).
//! - `Converse`: the body's `usage`. `ConverseStream`: the `metadata` event's `usage`.
//!
//! Token classes are Bedrock's: input excludes cache reads and writes.

use crate::eventstream::{Decoder, Message};
use crate::record::{split_cache_writes, CacheSplit};
use crate::Tokens;

/// Largest non-streaming body kept for its `usage` (Bedrock answers are far smaller; a larger
/// one is counted from the headers alone).
pub const MAX_BODY: usize = 8 * 1024 * 1024;

/// The four Bedrock runtime operations that are billed per token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    InvokeModel,
    InvokeModelWithResponseStream,
    Converse,
    ConverseStream,
}

impl Operation {
    /// The operation a runtime path's last segment names (`invoke`, `converse-stream`, ...).
    pub fn from_action(action: &str) -> Option<Operation> {
        Some(match action {
            "invoke" => Operation::InvokeModel,
            "invoke-with-response-stream" => Operation::InvokeModelWithResponseStream,
            "converse" => Operation::Converse,
            "converse-stream" => Operation::ConverseStream,
            _ => return None,
        })
    }

    /// The name Bedrock's invocation logs give it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::InvokeModel => "InvokeModel",
            Operation::InvokeModelWithResponseStream => "InvokeModelWithResponseStream",
            Operation::Converse => "Converse",
            Operation::ConverseStream => "ConverseStream",
        }
    }

    pub fn is_stream(self) -> bool {
        matches!(
            self,
            Operation::InvokeModelWithResponseStream | Operation::ConverseStream
        )
    }

    /// Converse operations carry request metadata in the body; InvokeModel ones in a header.
    pub fn is_converse(self) -> bool {
        matches!(self, Operation::Converse | Operation::ConverseStream)
    }
}

/// What a call used, as far as its response showed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metered {
    pub tokens: Tokens,
    /// Bedrock's error type (an HTTP error's `x-amzn-ErrorType`, or an in-stream exception).
    pub error_code: Option<String>,
    /// The response ended where its protocol says it ends (a whole body, or a stream whose
    /// totals arrived); false for a cut stream, whose counts are what had arrived.
    pub complete: bool,
}

/// Counts one response. Feed it the status and headers, then every body chunk, then finish.
#[derive(Debug)]
pub struct Meter {
    op: Operation,
    status: u16,
    body: Vec<u8>,
    body_overflow: bool,
    decoder: Decoder,
    header_totals: HeaderTotals,
    stream: StreamCounts,
    error_code: Option<String>,
}

#[derive(Debug, Default)]
struct HeaderTotals {
    input: Option<u64>,
    output: Option<u64>,
    cache_read: Option<u64>,
    cache_write: Option<u64>,
}

#[derive(Debug, Default)]
struct StreamCounts {
    input: u64,
    output: u64,
    cache_read: u64,
    cache_write: u64,
    split: CacheSplit,
    totals: Option<(u64, u64, u64, u64)>,
}

impl Meter {
    pub fn new(op: Operation) -> Meter {
        Meter {
            op,
            status: 200,
            body: Vec::new(),
            body_overflow: false,
            decoder: Decoder::new(),
            header_totals: HeaderTotals::default(),
            stream: StreamCounts::default(),
            error_code: None,
        }
    }

    pub fn operation(&self) -> Operation {
        self.op
    }

    /// The response's status and headers (`get` looks one up, case-insensitively).
    pub fn head(&mut self, status: u16, get: &dyn Fn(&str) -> Option<String>) {
        self.status = status;
        if status >= 400 {
            self.error_code = Some(
                get("x-amzn-errortype")
                    .map(|t| error_type(&t).to_string())
                    .unwrap_or_else(|| format!("HTTP{status}")),
            );
            return;
        }
        let n = |name: &str| get(name).and_then(|v| v.trim().parse::<u64>().ok());
        self.header_totals = HeaderTotals {
            input: n("x-amzn-bedrock-input-token-count"),
            output: n("x-amzn-bedrock-output-token-count"),
            cache_read: n("x-amzn-bedrock-cache-read-input-token-count"),
            cache_write: n("x-amzn-bedrock-cache-write-input-token-count"),
        };
    }

    /// A chunk of the response body, as it was relayed.
    pub fn bytes(&mut self, chunk: &[u8]) {
        if self.status >= 400 {
            return;
        }
        if !self.op.is_stream() {
            if self.body.len() + chunk.len() <= MAX_BODY {
                self.body.extend_from_slice(chunk);
            } else {
                self.body_overflow = true;
            }
            return;
        }
        self.decoder.push(chunk);
        while let Some(m) = self.decoder.next_message() {
            match m {
                Ok(m) => self.message(&m),
                // Framing lost: the counts so far stand; the client gets the bytes as sent.
                Err(_) => break,
            }
        }
    }

    fn message(&mut self, m: &Message) {
        match m.header(":message-type") {
            Some("exception") | Some("error") => {
                let kind = m
                    .header(":exception-type")
                    .or_else(|| m.header(":error-code"))
                    .unwrap_or("StreamException");
                self.error_code = Some(kind.to_string());
            }
            Some("event") => match (self.op, m.header(":event-type")) {
                (Operation::InvokeModelWithResponseStream, Some("chunk")) => self.chunk(&m.payload),
                (Operation::ConverseStream, Some("metadata")) => {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&m.payload) {
                        if let Some(t) = converse_usage(&v["usage"]) {
                            self.stream.totals = Some(t);
                        }
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// One `chunk` event: `{"bytes": BASE64}`, the base64 of an Anthropic stream event.
    fn chunk(&mut self, payload: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let Some(b64) = v["bytes"].as_str() else {
            return;
        };
        let Some(raw) = base64_decode(b64) else {
            return;
        };
        let Ok(ev) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            return;
        };
        let s = &mut self.stream;
        match ev["type"].as_str() {
            Some("message_start") => {
                let u = &ev["message"]["usage"];
                s.input = u64_of(&u["input_tokens"]);
                s.cache_read = u64_of(&u["cache_read_input_tokens"]);
                s.cache_write = u64_of(&u["cache_creation_input_tokens"]);
                s.output = u64_of(&u["output_tokens"]);
                s.split = anthropic_split(u);
            }
            Some("message_delta") => {
                let u = &ev["usage"];
                if let Some(o) = u["output_tokens"].as_u64() {
                    s.output = o;
                }
            }
            _ => {}
        }
        let m = &ev["amazon-bedrock-invocationMetrics"];
        if m.is_object() {
            s.totals = Some((
                u64_of(&m["inputTokenCount"]),
                u64_of(&m["outputTokenCount"]),
                u64_of(&m["cacheReadInputTokenCount"]),
                u64_of(&m["cacheWriteInputTokenCount"]),
            ));
        }
    }

    /// The counts, once the body has ended (`ended`: it ended normally; false when the client
    /// went away or the upstream connection broke).
    pub fn finish(mut self, ended: bool) -> Metered {
        if self.status >= 400 {
            return Metered {
                tokens: Tokens::default(),
                error_code: self.error_code,
                complete: ended,
            };
        }
        let (totals, split, complete) = if self.op.is_stream() {
            let s = &self.stream;
            match s.totals {
                Some(t) => (t, s.split, ended && self.decoder.pending() == 0),
                None => (
                    (s.input, s.output, s.cache_read, s.cache_write),
                    s.split,
                    false,
                ),
            }
        } else {
            let body: serde_json::Value = if self.body_overflow || !ended {
                serde_json::Value::Null
            } else {
                serde_json::from_slice(&std::mem::take(&mut self.body))
                    .unwrap_or(serde_json::Value::Null)
            };
            let h = &self.header_totals;
            let from_body = match self.op {
                Operation::Converse => converse_usage(&body["usage"]),
                _ => {
                    let u = &body["usage"];
                    u.is_object().then(|| {
                        (
                            u64_of(&u["input_tokens"]),
                            u64_of(&u["output_tokens"]),
                            u64_of(&u["cache_read_input_tokens"]),
                            u64_of(&u["cache_creation_input_tokens"]),
                        )
                    })
                }
            };
            let b = from_body.unwrap_or_default();
            let totals = (
                h.input.unwrap_or(b.0),
                h.output.unwrap_or(b.1),
                h.cache_read.unwrap_or(b.2),
                h.cache_write.unwrap_or(b.3),
            );
            let have = from_body.is_some() || h.input.is_some() || h.output.is_some();
            (totals, anthropic_split(&body["usage"]), ended && have)
        };
        let (w5, w1) = split_cache_writes(totals.3, split);
        Metered {
            tokens: Tokens {
                input: totals.0,
                output: totals.1,
                cache_read: totals.2,
                cache_write_5m: w5,
                cache_write_1h: w1,
            },
            error_code: self.error_code,
            complete,
        }
    }
}

/// `x-amzn-ErrorType` may carry a namespace and a URL after a colon:
/// `ThrottlingException:http://internal.amazon.com/coral/...`.
pub fn error_type(header: &str) -> &str {
    let t = header.split(':').next().unwrap_or(header);
    t.rsplit('#').next().unwrap_or(t).trim()
}

fn u64_of(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn converse_usage(u: &serde_json::Value) -> Option<(u64, u64, u64, u64)> {
    u.is_object().then(|| {
        (
            u64_of(&u["inputTokens"]),
            u64_of(&u["outputTokens"]),
            u64_of(&u["cacheReadInputTokens"]),
            u64_of(&u["cacheWriteInputTokens"]),
        )
    })
}

fn anthropic_split(u: &serde_json::Value) -> CacheSplit {
    let c = &u["cache_creation"];
    if !c.is_object() {
        return CacheSplit::default();
    }
    CacheSplit {
        found: true,
        ephemeral_5m: u64_of(&c["ephemeral_5m_input_tokens"]),
        ephemeral_1h: u64_of(&c["ephemeral_1h_input_tokens"]),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (padding optional), as Bedrock encodes chunk payloads.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut table = [255u8; 256];
    for (i, c) in B64.iter().enumerate() {
        table[*c as usize] = i as u8;
    }
    let bytes = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        let v = table[*b as usize];
        if v == 255 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventstream::Message;
    use serde_json::json;

    fn chunk(ev: serde_json::Value) -> Vec<u8> {
        let b = base64_encode(ev.to_string().as_bytes());
        Message::event("chunk", json!({ "bytes": b }).to_string().as_bytes()).encode()
    }

    fn no_headers(_: &str) -> Option<String> {
        None
    }

    fn invoke_stream() -> Vec<u8> {
        let mut out = chunk(json!({"type":"message_start","message":{"usage":{
            "input_tokens": 12, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 50,
            "cache_creation": {"ephemeral_5m_input_tokens": 20, "ephemeral_1h_input_tokens": 30},
            "output_tokens": 1}}}));
        out.extend(chunk(
            json!({"type":"content_block_delta","delta":{"text":"hi"}}),
        ));
        out.extend(chunk(
            json!({"type":"message_delta","usage":{"output_tokens": 7}}),
        ));
        out.extend(chunk(
            json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{
            "inputTokenCount": 12, "outputTokenCount": 7, "cacheReadInputTokenCount": 100,
            "cacheWriteInputTokenCount": 50, "invocationLatency": 5, "firstByteLatency": 2}}),
        ));
        out
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "{\"type\":\"x\"}"] {
            let e = base64_encode(s.as_bytes());
            assert_eq!(base64_decode(&e).unwrap(), s.as_bytes(), "{e}");
        }
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert!(base64_decode("a*b").is_none());
    }

    #[test]
    fn a_stream_is_counted_in_any_chunking() {
        let bytes = invoke_stream();
        for size in [1, 3, 7, 64, bytes.len()] {
            let mut m = Meter::new(Operation::InvokeModelWithResponseStream);
            m.head(200, &no_headers);
            for c in bytes.chunks(size) {
                m.bytes(c);
            }
            let got = m.finish(true);
            assert!(got.complete, "chunks of {size}");
            assert_eq!(
                got.tokens,
                Tokens {
                    input: 12,
                    output: 7,
                    cache_read: 100,
                    cache_write_5m: 20,
                    cache_write_1h: 30
                },
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn a_cut_stream_counts_what_arrived() {
        let bytes = invoke_stream();
        let mut m = Meter::new(Operation::InvokeModelWithResponseStream);
        m.head(200, &no_headers);
        // Everything up to the middle of the message_delta frame's successor.
        let first_three: usize = {
            let mut d = Decoder::new();
            d.push(&bytes);
            (0..3)
                .map(|_| d.next_message().unwrap().unwrap().encode().len())
                .sum()
        };
        m.bytes(&bytes[..first_three + 5]);
        let got = m.finish(false);
        assert!(!got.complete);
        assert_eq!((got.tokens.input, got.tokens.output), (12, 7));
    }

    #[test]
    fn in_stream_exceptions_are_the_error_code() {
        let mut bytes = chunk(json!({"type":"message_start","message":{"usage":{
            "input_tokens": 5, "output_tokens": 1}}}));
        bytes.extend(Message::exception("throttlingException", "slow down").encode());
        let mut m = Meter::new(Operation::InvokeModelWithResponseStream);
        m.head(200, &no_headers);
        m.bytes(&bytes);
        let got = m.finish(true);
        assert_eq!(got.error_code.as_deref(), Some("throttlingException"));
        assert_eq!(got.tokens.input, 5);
    }

    #[test]
    fn converse_stream_reads_the_metadata_event() {
        let mut bytes = Message::event("messageStart", br#"{"role":"assistant"}"#).encode();
        bytes.extend(
            Message::event(
                "metadata",
                br#"{"usage":{"inputTokens":9,"outputTokens":4,"cacheReadInputTokens":3,"cacheWriteInputTokens":2,"totalTokens":18},"metrics":{"latencyMs":10}}"#,
            )
            .encode(),
        );
        let mut m = Meter::new(Operation::ConverseStream);
        m.head(200, &no_headers);
        m.bytes(&bytes);
        let t = m.finish(true).tokens;
        assert_eq!(
            (t.input, t.output, t.cache_read, t.cache_write_5m),
            (9, 4, 3, 2)
        );
    }

    #[test]
    fn invoke_headers_are_the_totals_and_the_body_splits() {
        let body = br#"{"content":[],"usage":{"input_tokens":1,"output_tokens":2,"cache_creation_input_tokens":40,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":30}}}"#;
        let mut m = Meter::new(Operation::InvokeModel);
        m.head(200, &|h: &str| match h {
            "x-amzn-bedrock-input-token-count" => Some("11".into()),
            "x-amzn-bedrock-output-token-count" => Some("22".into()),
            "x-amzn-bedrock-cache-write-input-token-count" => Some("40".into()),
            _ => None,
        });
        m.bytes(&body[..10]);
        m.bytes(&body[10..]);
        let got = m.finish(true);
        assert!(got.complete);
        assert_eq!(
            got.tokens,
            Tokens {
                input: 11,
                output: 22,
                cache_read: 0,
                cache_write_5m: 10,
                cache_write_1h: 30
            }
        );
    }

    #[test]
    fn errors_carry_the_error_type() {
        let mut m = Meter::new(Operation::Converse);
        m.head(429, &|h: &str| {
            (h == "x-amzn-errortype").then(|| {
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/".into()
            })
        });
        m.bytes(br#"{"message":"Too many requests"}"#);
        let got = m.finish(true);
        assert_eq!(got.error_code.as_deref(), Some("ThrottlingException"));
        assert_eq!(got.tokens, Tokens::default());
    }

    #[test]
    fn a_corrupt_frame_stops_the_count_not_the_stream() {
        let mut bytes = invoke_stream();
        bytes[20] ^= 0xff;
        let mut m = Meter::new(Operation::InvokeModelWithResponseStream);
        m.head(200, &no_headers);
        m.bytes(&bytes);
        assert!(!m.finish(true).complete);
    }
}
