//! The demo: a synthetic, realistic month of Bedrock invocation logs for a team of eight, and
//! the generator's own ledger of what it wrote (the truth the end-to-end tests check reports
//! against, independent of the parser).
//!
//! The team: alice (IAM user), bob and dave (SSO sessions named by e-mail), carol, erin and frank
//! (containers behind one shared EC2 instance role that set `developer` or `user` in request
//! metadata), grace (a container behind the same role that sets no developer: her calls can only
//! be shown as the shared principal), and heidi (her own instance, aliased in the config, calling
//! through an application inference profile and an old unpriced model).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
use crate::invalid;
use bedrock_usage_core::record::Tokens;
use bedrock_usage_core::time::{civil_from_days, days_from_civil, format_utc, MS_PER_DAY};
use flate2::write::GzEncoder;

use crate::cli::Compression;

pub const ACCOUNT: &str = "123456789012";
pub const SHARED_ROLE: &str = "code-server-multi-dev-ec2-role";
pub const SHARED_INSTANCE: &str = "i-0a1b2c3d4e5f67890";
pub const HEIDI_INSTANCE: &str = "i-0fedcba9876543210";
pub const APP_PROFILE: &str =
    "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6";

/// The config the demo corpus is meant to be read with.
pub const DEMO_CONFIG: &str = r#"# bedrock-usage configuration for the demo corpus (see docs/configuration.md).

[attribution]
# Read before the defaults (`developer`, then `user`).
metadata_keys = []

[aliases]
"bob@example.com" = "bob"
"dave@example.com" = "dave"
# heidi's own dev box: an instance profile that only she uses.
"i-0fedcba9876543210" = "heidi"

[developers.alice]
team = "platform"
[developers.bob]
team = "platform"
[developers.heidi]
team = "platform"
cost_center = "CC-110"
[developers.carol]
team = "payments"
[developers.dave]
team = "payments"
[developers.erin]
team = "data"
[developers.frank]
team = "data"

[teams.platform]
cost_center = "CC-100"
[teams.payments]
cost_center = "CC-200"
[teams.data]
cost_center = "CC-300"

[models]
# An application inference profile names no model: say which one it wraps.
"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6" = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
"#;

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same month.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1000 < per_mille
    }
    fn pick<'a, T>(&mut self, items: &'a [(T, u64)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.next_u64() % total.max(1);
        for (t, w) in items {
            if x < *w {
                return t;
            }
            x -= w;
        }
        &items[0].0
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    IamUser,
    Sso,
    SharedWithMeta(&'static str),
    SharedNoMeta,
    OwnInstance,
}

struct Dev {
    name: &'static str,
    who: Who,
    region: &'static str,
    weight: u64,
    models: &'static [(&'static str, u64)],
}

const US_MODELS: &[(&str, u64)] = &[
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", 30),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", 10),
    ("global.anthropic.claude-sonnet-4-6", 20),
    ("global.anthropic.claude-opus-4-6-v1", 6),
    ("global.anthropic.claude-opus-4-5-20251101-v1:0", 4),
    ("us.anthropic.claude-opus-4-1-20250805-v1:0", 2),
    ("global.anthropic.claude-sonnet-5", 10),
    ("global.anthropic.claude-opus-4-7", 2),
    ("global.anthropic.claude-opus-4-8", 2),
    ("us.anthropic.claude-sonnet-4-20250514-v1:0", 5),
    ("global.anthropic.claude-haiku-4-5-20251001-v1:0", 10),
    ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", 2),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0", 1),
];

const APAC_MODELS: &[(&str, u64)] = &[
    ("apac.anthropic.claude-haiku-4-5-20251001-v1:0", 20),
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0", 30),
    ("global.anthropic.claude-sonnet-4-6", 15),
    ("global.anthropic.claude-opus-4-5-20251101-v1:0", 3),
    ("anthropic.claude-3-5-haiku-20241022-v1:0", 5),
    ("anthropic.claude-3-haiku-20240307-v1:0", 5),
    ("apac.anthropic.claude-sonnet-4-20250514-v1:0", 4),
];

const HEIDI_MODELS: &[(&str, u64)] = &[
    (APP_PROFILE, 20),
    ("global.anthropic.claude-opus-4-6-v1", 5),
    (
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-opus-20240229-v1:0",
        1,
    ),
    // A model the catalog does not price (not a Claude model): unpriced, and said so.
    ("meta.llama3-1-70b-instruct-v1:0", 1),
];

const TEAM: &[Dev] = &[
    Dev {
        name: "alice",
        who: Who::IamUser,
        region: "us-east-1",
        weight: 14,
        models: US_MODELS,
    },
    Dev {
        name: "bob",
        who: Who::Sso,
        region: "us-west-2",
        weight: 22,
        models: US_MODELS,
    },
    Dev {
        name: "carol",
        who: Who::SharedWithMeta("developer"),
        region: "ap-southeast-1",
        weight: 12,
        models: APAC_MODELS,
    },
    Dev {
        name: "dave",
        who: Who::Sso,
        region: "us-east-1",
        weight: 16,
        models: US_MODELS,
    },
    Dev {
        name: "erin",
        who: Who::SharedWithMeta("developer"),
        region: "ap-southeast-1",
        weight: 10,
        models: APAC_MODELS,
    },
    Dev {
        name: "frank",
        who: Who::SharedWithMeta("user"),
        region: "ap-southeast-1",
        weight: 8,
        models: APAC_MODELS,
    },
    Dev {
        name: "grace",
        who: Who::SharedNoMeta,
        region: "ap-southeast-1",
        weight: 9,
        models: APAC_MODELS,
    },
    Dev {
        name: "heidi",
        who: Who::OwnInstance,
        region: "us-east-1",
        weight: 9,
        models: HEIDI_MODELS,
    },
];

impl Dev {
    fn principal(&self) -> String {
        match self.who {
            Who::IamUser => format!("arn:aws:iam::{ACCOUNT}:user/{}", self.name),
            Who::Sso => format!("arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Developer_3c5a1f2b9d8e7f60/{}@example.com", self.name),
            Who::SharedWithMeta(_) | Who::SharedNoMeta => format!("arn:aws:sts::{ACCOUNT}:assumed-role/{SHARED_ROLE}/{SHARED_INSTANCE}"),
            Who::OwnInstance => format!("arn:aws:sts::{ACCOUNT}:assumed-role/heidi-devbox-role/{HEIDI_INSTANCE}"),
        }
    }
    /// Who the demo config and the attribution defaults should name for this developer's calls.
    fn attributed(&self) -> String {
        match self.who {
            Who::SharedNoMeta => format!("shared:{SHARED_ROLE}/{SHARED_INSTANCE}"),
            _ => self.name.to_string(),
        }
    }
}

/// One generated call, as the generator meant it: the ledger.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LedgerEntry {
    pub request_id: String,
    pub timestamp_ms: i64,
    /// The developer the report should show (the shared principal for grace's calls).
    pub developer: String,
    /// Who really made the call.
    pub person: String,
    pub principal: String,
    pub model_id: String,
    pub region: String,
    pub operation: String,
    pub error_code: Option<String>,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    /// Input body size in bytes (0 for the quick demo); over 100 KB it is offloaded to S3.
    pub body_bytes: u64,
    #[serde(skip)]
    meta_key: Option<&'static str>,
}

impl LedgerEntry {
    /// The invocation this entry's record parses into (for filling stores in benchmarks without
    /// writing JSON).
    pub fn to_invocation(&self) -> bedrock_usage_core::Invocation {
        let mut request_metadata = Vec::new();
        if let Some(k) = self.meta_key {
            request_metadata.push((
                "container".to_string(),
                format!("code-server-{}", self.person),
            ));
            request_metadata.push((k.to_string(), self.person.clone()));
        } else if self.person == "grace" {
            request_metadata.push(("container".to_string(), "code-server-grace".to_string()));
        }
        request_metadata.sort();
        bedrock_usage_core::Invocation {
            request_id: self.request_id.clone(),
            timestamp_ms: self.timestamp_ms,
            account_id: ACCOUNT.to_string(),
            region: self.region.clone(),
            inference_region: None,
            operation: self.operation.clone(),
            model_id: self.model_id.clone(),
            principal: self.principal.clone(),
            request_metadata,
            error_code: self.error_code.clone(),
            tokens: self.tokens(),
            input_body_in_s3: false,
            output_body_in_s3: false,
        }
    }

    pub fn tokens(&self) -> Tokens {
        Tokens {
            input: self.input,
            output: self.output,
            cache_read: self.cache_read,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
        }
    }
}

pub struct DemoOptions {
    pub seed: u64,
    pub records: u64,
    pub first_day: i64,
    pub days: i64,
    pub compress: Compression,
    pub body_min: u64,
    pub body_max: u64,
}

impl DemoOptions {
    pub fn from_args(
        seed: u64,
        records: Option<u64>,
        month: &str,
        compress: Compression,
        body_kb: &str,
        writing: bool,
    ) -> Result<DemoOptions> {
        let (y, m) = month
            .split_once('-')
            .and_then(|(y, m)| Some((y.parse::<i64>().ok()?, m.parse::<u32>().ok()?)))
            .filter(|(y, m)| (1970..=9999).contains(y) && (1..=12).contains(m))
            .ok_or_else(|| {
                Error::Invalid(format!("--month: `{month}` is not a month (YYYY-MM)"))
            })?;
        let first_day = days_from_civil(y, m, 1);
        let next = if m == 12 {
            days_from_civil(y + 1, 1, 1)
        } else {
            days_from_civil(y, m + 1, 1)
        };
        let (lo, hi) = body_kb
            .split_once('-')
            .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
            .filter(|(a, b)| a <= b)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "--body-kb: `{body_kb}` is not MIN-MAX in KB, such as 5-100"
                ))
            })?;
        let records = records.unwrap_or(if writing { 10_000 } else { 6_000 });
        if records == 0 {
            invalid!("--records: give at least 1");
        }
        let (body_min, body_max) = if writing {
            (lo * 1024, hi * 1024)
        } else {
            (0, 0)
        };
        Ok(DemoOptions {
            seed,
            records,
            first_day,
            days: next - first_day,
            compress,
            body_min,
            body_max,
        })
    }
}

fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// Generates the month's calls (the ledger), sorted by time.
pub fn generate(opts: &DemoOptions) -> Vec<LedgerEntry> {
    let mut rng = Rng::new(opts.seed);
    let devs: Vec<(usize, u64)> = TEAM
        .iter()
        .enumerate()
        .map(|(i, d)| (i, d.weight))
        .collect();
    let mut out = Vec::with_capacity(opts.records as usize);
    for _ in 0..opts.records {
        let dev = &TEAM[*rng.pick(&devs)];
        // Weekdays carry most of the work; office hours in UTC-ish.
        let mut day = opts.first_day + rng.range(0, opts.days as u64 - 1) as i64;
        if (day + 3).rem_euclid(7) >= 5 && !rng.chance(250) {
            day = opts.first_day + rng.range(0, opts.days as u64 - 1) as i64;
        }
        let ms = day * MS_PER_DAY + rng.range(6 * 3_600_000, 20 * 3_600_000 - 1) as i64;
        let model = *rng.pick(dev.models);
        let operation = *rng.pick(&[
            ("InvokeModelWithResponseStream", 60),
            ("InvokeModel", 20),
            ("Converse", 10),
            ("ConverseStream", 10),
        ]);
        let error_code = if rng.chance(20) {
            Some("ThrottlingException")
        } else if rng.chance(5) {
            Some("ValidationException")
        } else {
            None
        };
        let mut e = LedgerEntry {
            request_id: uuid(&mut rng),
            timestamp_ms: ms,
            developer: dev.attributed(),
            person: dev.name.to_string(),
            principal: dev.principal(),
            model_id: model.to_string(),
            region: dev.region.to_string(),
            operation: operation.to_string(),
            error_code: error_code.map(String::from),
            input: 0,
            output: 0,
            cache_read: 0,
            cache_write_5m: 0,
            cache_write_1h: 0,
            body_bytes: 0,
            meta_key: match dev.who {
                Who::SharedWithMeta(k) => Some(k),
                _ => None,
            },
        };
        if error_code.is_none() {
            let modern = model.contains("-4-")
                || model.contains("-4-5")
                || model.contains("-5")
                || model.contains("sonnet-4")
                || model.contains("opus-4")
                || model.contains("haiku-4");
            let caching = !model.contains("llama") && rng.chance(700);
            e.input = if caching {
                rng.range(1, 60)
            } else {
                rng.range(200, 8000)
            };
            e.output = rng.range(20, 4000);
            if caching {
                e.cache_read = rng.range(5_000, 150_000);
                if rng.chance(300) {
                    let w = rng.range(500, 20_000);
                    // Only Anthropic-native bodies report the 5m/1h split; Converse reports a sum.
                    let split_known = operation.starts_with("Invoke") && modern;
                    let h1 = if split_known && rng.chance(400) {
                        rng.range(0, w)
                    } else {
                        0
                    };
                    e.cache_write_1h = h1;
                    e.cache_write_5m = w - h1;
                }
                // Now and then a long-context request on a model with long-context rates.
                if (model.contains("sonnet-4-5") || model.contains("sonnet-4-2")) && rng.chance(30)
                {
                    e.cache_read = rng.range(200_001, 400_000);
                }
            }
        }
        if opts.body_max > 0 {
            e.body_bytes = if rng.chance(15) {
                rng.range(110 * 1024, 300 * 1024)
            } else {
                rng.range(opts.body_min, opts.body_max)
            };
        }
        out.push(e);
    }
    out.sort_by(|a, b| {
        a.timestamp_ms
            .cmp(&b.timestamp_ms)
            .then(a.request_id.cmp(&b.request_id))
    });
    out
}

/// Text to fill bodies with: already JSON-escaped, cut only at spaces (never inside an escape).
struct TextPool(String);

impl TextPool {
    fn new(rng: &mut Rng) -> TextPool {
        const WORDS: &[&str] = &[
            "fn",
            "main()",
            "let",
            "mut",
            "config",
            "the",
            "test",
            "fails",
            "because",
            "\\\"unwrap\\\"",
            "on",
            "None",
            "at",
            "src/lib.rs:42",
            "\\n",
            "cargo",
            "build",
            "error[E0502]:",
            "cannot",
            "borrow",
            "as",
            "mutable",
            "{\\\"requestId\\\":",
            "\\\"x\\\"}",
            "inputTokenCount",
            "résumé",
            "\\u00e9t\\u00e9",
            "deploy",
            "kubectl",
            "logs",
            "\\t",
            "SELECT",
            "*",
            "FROM",
            "invocations;",
        ];
        let mut s = String::with_capacity(600 << 10);
        while s.len() < 512 << 10 {
            s.push_str(WORDS[rng.range(0, WORDS.len() as u64 - 1) as usize]);
            s.push(' ');
        }
        TextPool(s)
    }
    /// About `n` bytes of text.
    fn take(&self, rng: &mut Rng, n: usize) -> &str {
        let n = n.min(self.0.len() - 64);
        let start = rng.range(0, (self.0.len() - n - 32) as u64) as usize;
        let b = self.0.as_bytes();
        let s = start
            + b[start..]
                .iter()
                .position(|&c| c == b' ')
                .map(|i| i + 1)
                .unwrap_or(0);
        let mut e = (s + n).min(b.len() - 1);
        while e > s && b[e] != b' ' {
            e -= 1;
        }
        &self.0[s..e]
    }
}

/// Writes one record as Bedrock would log it.
fn write_record(
    out: &mut Vec<u8>,
    e: &LedgerEntry,
    pool: &TextPool,
    rng: &mut Rng,
    offload_path: Option<&str>,
) {
    let anthropic = e.operation.starts_with("Invoke");
    let stream = e.operation.ends_with("Stream");
    let model_name = e.model_id.rsplit('/').next().unwrap_or(&e.model_id);
    let cw = e.cache_write_5m + e.cache_write_1h;
    let inference_region = if e.model_id.contains("global.") {
        ",\"inferenceRegion\":\"eu-west-1\""
    } else if e.model_id.contains("us.") {
        ",\"inferenceRegion\":\"us-east-2\""
    } else if e.model_id.contains("apac.") {
        ",\"inferenceRegion\":\"ap-northeast-1\""
    } else {
        ""
    };
    let meta = match e.meta_key {
        Some(k) => format!(
            ",\"requestMetadata\":{{\"{k}\":\"{}\",\"container\":\"code-server-{}\"}}",
            e.person, e.person
        ),
        None if e.person == "grace" => {
            ",\"requestMetadata\":{\"container\":\"code-server-grace\"}".to_string()
        }
        None => String::new(),
    };
    let text = pool.take(rng, e.body_bytes as usize);
    let input_body = match offload_path {
        Some(p) => format!("\"inputBodyS3Path\":\"{p}\""),
        None if anthropic => format!(
            "\"inputBodyJson\":{{\"anthropic_version\":\"bedrock-2023-05-31\",\"max_tokens\":32000,\"system\":[{{\"type\":\"text\",\"text\":\"You are Claude Code.\",\"cache_control\":{{\"type\":\"ephemeral\"}}}}],\"messages\":[{{\"role\":\"user\",\"content\":[{{\"type\":\"text\",\"text\":\"{text}\"}},{{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01\",\"content\":\"{{\\\"requestId\\\":\\\"not-this\\\",\\\"inputTokenCount\\\":999}}\"}}]}}]}}"
        ),
        None => format!("\"inputBodyJson\":{{\"messages\":[{{\"role\":\"user\",\"content\":[{{\"text\":\"{text}\"}}]}}],\"inferenceConfig\":{{\"maxTokens\":4096}}}}"),
    };
    let reply = pool.take(rng, (e.output as usize * 4).min(8000));
    let cache_json = |inp: u64| {
        format!(
            "\"input_tokens\":{inp},\"cache_creation_input_tokens\":{cw},\"cache_read_input_tokens\":{},\"cache_creation\":{{\"ephemeral_5m_input_tokens\":{},\"ephemeral_1h_input_tokens\":{}}}",
            e.cache_read, e.cache_write_5m, e.cache_write_1h
        )
    };
    let output_body = if e.error_code.is_some() {
        String::new()
    } else if anthropic && !stream {
        format!(
            ",\"outputBodyJson\":{{\"id\":\"msg_bdrk_{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"{model_name}\",\"content\":[{{\"type\":\"text\",\"text\":\"{reply}\"}}],\"stop_reason\":\"end_turn\",\"usage\":{{{},\"output_tokens\":{}}}}}",
            &e.request_id[..8],
            cache_json(e.input),
            e.output
        )
    } else if anthropic {
        let mut events = format!(
            "[{{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_bdrk_{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"{model_name}\",\"content\":[],\"usage\":{{{},\"output_tokens\":1}}}}}},{{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}",
            &e.request_id[..8],
            cache_json(e.input)
        );
        for part in reply.split_inclusive(". ").take(40) {
            events.push_str(&format!(",{{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{part}\"}}}}"));
        }
        events.push_str(&format!(
            ",{{\"type\":\"content_block_stop\",\"index\":0}},{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\"}},\"usage\":{{\"output_tokens\":{}}}}},{{\"type\":\"message_stop\",\"amazon-bedrock-invocationMetrics\":{{\"inputTokenCount\":{},\"outputTokenCount\":{},\"invocationLatency\":{},\"firstByteLatency\":{},\"cacheReadInputTokenCount\":{},\"cacheWriteInputTokenCount\":{cw}}}}}]",
            e.output,
            e.input,
            e.output,
            rng.range(800, 60_000),
            rng.range(300, 3000),
            e.cache_read
        ));
        format!(",\"outputBodyJson\":{events}")
    } else {
        let usage = format!(
            "\"usage\":{{\"inputTokens\":{},\"outputTokens\":{},\"totalTokens\":{},\"cacheReadInputTokens\":{},\"cacheWriteInputTokens\":{cw}}}",
            e.input,
            e.output,
            e.input + e.output + e.cache_read + cw,
            e.cache_read
        );
        if stream {
            format!(",\"outputBodyJson\":[{{\"messageStart\":{{\"role\":\"assistant\"}}}},{{\"contentBlockDelta\":{{\"delta\":{{\"text\":\"{reply}\"}},\"contentBlockIndex\":0}}}},{{\"contentBlockStop\":{{\"contentBlockIndex\":0}}}},{{\"messageStop\":{{\"stopReason\":\"end_turn\"}}}},{{\"metadata\":{{{usage},\"metrics\":{{\"latencyMs\":{}}}}}}}]", rng.range(500, 40_000))
        } else {
            format!(",\"outputBodyJson\":{{\"output\":{{\"message\":{{\"role\":\"assistant\",\"content\":[{{\"text\":\"{reply}\"}}]}}}},\"stopReason\":\"end_turn\",{usage},\"metrics\":{{\"latencyMs\":{}}}}}", rng.range(500, 40_000))
        }
    };
    let error = e
        .error_code
        .as_ref()
        .map(|c| format!(",\"errorCode\":\"{c}\""))
        .unwrap_or_default();
    let cache_in = if e.cache_read > 0 || cw > 0 {
        format!(
            ",\"cacheReadInputTokenCount\":{},\"cacheWriteInputTokenCount\":{cw}",
            e.cache_read
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "{{\"schemaType\":\"ModelInvocationLog\",\"schemaVersion\":\"1.0\",\"timestamp\":\"{}\",\"accountId\":\"{ACCOUNT}\",\"identity\":{{\"arn\":\"{}\"}},\"region\":\"{}\"{inference_region},\"requestId\":\"{}\",\"operation\":\"{}\",\"modelId\":\"{}\"{meta}{error},\"input\":{{\"inputContentType\":\"application/json\",{input_body},\"inputTokenCount\":{}{cache_in}}},\"output\":{{\"outputContentType\":\"application/json\"{output_body},\"outputTokenCount\":{}}}}}",
        format_utc(e.timestamp_ms),
        e.principal,
        e.region,
        e.request_id,
        e.operation,
        e.model_id,
        e.input,
        e.output
    );
}

fn ymdh(ms: i64) -> (String, String, String, String) {
    let (y, m, d) = civil_from_days(ms.div_euclid(MS_PER_DAY));
    let h = ms.rem_euclid(MS_PER_DAY) / 3_600_000;
    (
        format!("{y:04}"),
        format!("{m:02}"),
        format!("{d:02}"),
        format!("{h:02}"),
    )
}

fn write_object(path: &Path, data: &[u8], compress: Compression) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| cannot("cannot create", dir, e))?;
    }
    let f = std::fs::File::create(path).map_err(|e| cannot("cannot create", path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    match compress {
        Compression::Gzip => {
            let mut gz = GzEncoder::new(w, flate2::Compression::fast());
            gz.write_all(data)?;
            gz.finish()?.flush()?;
        }
        Compression::None => {
            w.write_all(data)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// What `write_corpus` wrote.
pub struct CorpusInfo {
    pub objects: u64,
    pub bytes: u64,
    pub ledger: Vec<LedgerEntry>,
}

/// Writes the corpus in the S3 delivery layout under `dir/AWSLogs`, the demo config and the
/// ledger.
pub fn write_corpus(dir: &Path, opts: &DemoOptions) -> Result<CorpusInfo> {
    let started = std::time::Instant::now();
    let ledger = generate(opts);
    let mut rng = Rng::new(opts.seed.wrapping_add(1));
    let pool = TextPool::new(&mut rng);
    let root = dir
        .join("AWSLogs")
        .join(ACCOUNT)
        .join("BedrockModelInvocationLogs");
    std::fs::create_dir_all(&root).map_err(|e| cannot("cannot create", &root, e))?;
    std::fs::write(root.join("amazon-bedrock-logs-permission-check"), b"")?;
    let ext = if opts.compress == Compression::Gzip {
        "json.gz"
    } else {
        "json"
    };
    // One object per region and hour, as Bedrock delivers them (in order of time).
    let mut by_object: BTreeMap<(String, i64), Vec<usize>> = BTreeMap::new();
    for (i, e) in ledger.iter().enumerate() {
        by_object
            .entry((e.region.clone(), e.timestamp_ms.div_euclid(3_600_000)))
            .or_default()
            .push(i);
    }
    let mut objects = 0u64;
    let mut bytes = 0u64;
    let mut buf = Vec::with_capacity(8 << 20);
    for ((region, hour), idx) in &by_object {
        let (y, m, d, h) = ymdh(hour * 3_600_000);
        let part = root.join(region).join(&y).join(&m).join(&d).join(&h);
        buf.clear();
        for &i in idx {
            let e = &ledger[i];
            let offload = if e.body_bytes > 100 * 1024 {
                let key = format!("AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/{region}/{y}/{m}/{d}/{h}/data/{}_input.json.gz", e.request_id);
                let mut body = Vec::new();
                let _ = write!(
                    body,
                    "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
                    pool.take(&mut rng, e.body_bytes as usize)
                );
                write_object(&dir.join(&key), &body, Compression::Gzip)?;
                Some(format!("s3://bedrock-logs-{ACCOUNT}/{key}"))
            } else {
                None
            };
            write_record(&mut buf, e, &pool, &mut rng, offload.as_deref());
        }
        let first = &ledger[idx[0]];
        let stamp: String = format_utc(first.timestamp_ms)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let name = format!("{stamp}_{:016x}.{ext}", rng.next_u64());
        write_object(&part.join(name), &buf, opts.compress)?;
        objects += 1;
        bytes += buf.len() as u64;
    }
    std::fs::write(dir.join("bedrock-usage.toml"), DEMO_CONFIG)?;
    let mut lf = std::io::BufWriter::new(std::fs::File::create(dir.join("ledger.jsonl"))?);
    for e in &ledger {
        serde_json::to_writer(&mut lf, e)?;
        lf.write_all(b"\n")?;
    }
    lf.flush()?;
    eprintln!(
        "wrote {} records in {} objects ({:.1} MB of JSON lines{}) under {} in {:.1} s",
        ledger.len(),
        objects,
        bytes as f64 / 1e6,
        if opts.compress == Compression::Gzip {
            ", gzipped"
        } else {
            ""
        },
        dir.join("AWSLogs").display(),
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "config: {}; ledger (the generator's truth): {}",
        dir.join("bedrock-usage.toml").display(),
        dir.join("ledger.jsonl").display()
    );
    eprintln!(
        "next: bedrock-usage --db {0}/usage.db --config {0}/bedrock-usage.toml ingest {0}/AWSLogs",
        dir.display()
    );
    Ok(CorpusInfo {
        objects,
        bytes,
        ledger,
    })
}

/// The records of `ledger` as JSON lines (bodies as `opts` says, none offloaded).
pub fn render_jsonl(opts: &DemoOptions, ledger: &[LedgerEntry]) -> Vec<u8> {
    let mut rng = Rng::new(opts.seed.wrapping_add(1));
    let pool = TextPool::new(&mut rng);
    let mut buf = Vec::new();
    for e in ledger {
        write_record(&mut buf, e, &pool, &mut rng, None);
    }
    buf
}

fn cannot(what: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::File {
        what,
        path: path.to_path_buf(),
        source,
    }
}
