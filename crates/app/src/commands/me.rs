//! `me`: where the developer whose gateway key this is stands (`GET /me` on the gateway), as one
//! line for a shell prompt or Claude Code's status line, or as the JSON the gateway answers.

use std::time::Duration;

use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::output::Format;

/// The environment variables `me` reads its key from, in order (the second is Claude Code's).
pub const KEY_ENV: [&str; 2] = ["BEDROCK_USAGE_KEY", "AWS_BEARER_TOKEN_BEDROCK"];

pub fn run(ctx: &Context, gateway: Option<&str>) -> Result<u8> {
    let base = gateway
        .map(String::from)
        .or_else(|| std::env::var("ANTHROPIC_BEDROCK_BASE_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8750".into());
    let key = KEY_ENV
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "no gateway key: set {} (or {}, as for Claude Code)",
                KEY_ENV[0], KEY_ENV[1]
            ))
        })?;
    let url = format!("{}/me", base.trim_end_matches('/'));
    let auth = [("authorization", format!("Bearer {key}"))];
    let (status, body) = crate::publish::http::get_blocking(&url, &auth, Duration::from_secs(5))
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    if status != 200 {
        let msg = v["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&body).chars().take(200).collect(),
            String::from,
        );
        return Err(Error::Invalid(format!("{url}: HTTP {status}: {msg}")));
    }
    match ctx.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        _ => println!("{}", line(&v)),
    }
    Ok(EXIT_OK)
}

/// `alice · $12.30 today · 41.00% of $300.00/month · 38k tok/min left`.
pub fn line(v: &serde_json::Value) -> String {
    let mut parts = vec![v["developer"].as_str().unwrap_or("?").to_string()];
    if let Some(t) = v["spend"]["today"]["cost_display"].as_str() {
        parts.push(format!("{t} today"));
    }
    let items = v["limits"].as_array().cloned().unwrap_or_default();
    for b in items.iter().filter(|i| i["kind"] == "budget") {
        let period = b["period"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("");
        parts.push(format!(
            "{} of {}/{period}",
            b["percent"].as_str().unwrap_or("?"),
            b["amount_display"].as_str().unwrap_or("?")
        ));
    }
    for l in items.iter().filter(|i| i["kind"] == "limit") {
        if let Some(n) = l["tokens_left"].as_u64() {
            parts.push(format!("{} tok/min left", short(n)));
        } else if let Some(n) = l["requests_left"].as_u64() {
            parts.push(format!("{n} req/min left"));
        }
    }
    parts.join(" · ")
}

/// 38400 -> `38k`, 1250000 -> `1.2M`.
fn short(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{}k", n / 1000),
        _ => format!("{}.{}M", n / 1_000_000, n / 100_000 % 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_for_a_status_line() {
        let v = serde_json::json!({
            "developer": "alice",
            "spend": {"today": {"cost_display": "$12.30"}},
            "limits": [
                {"kind": "limit", "name": "rate", "tokens_left": 38_400, "requests_left": 5},
                {"kind": "budget", "period": "month 2026-12", "percent": "41.00%", "amount_display": "$300.00"},
            ],
        });
        assert_eq!(
            line(&v),
            "alice · $12.30 today · 41.00% of $300.00/month · 38k tok/min left"
        );
        assert_eq!(short(1_250_000), "1.2M");
    }
}
