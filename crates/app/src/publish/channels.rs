//! Alert channels: how one alert (the JSON of `crate::alerts`) is rendered and delivered to a
//! Slack incoming webhook, a signed webhook, an SNS topic or e-mail. Secrets (the Slack URL, the webhook secret) are
//! read when sending and appear in no message, error or log.

use std::time::Duration;

use bedrock_usage_core::budget::{Channel, ChannelKind};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::http::Poster;

/// The headers a webhook receiver checks: the signature over `TIMESTAMP.BODY`, and the key that
/// is the same for a repeated delivery of the same alert.
pub const SIGNATURE_HEADER: &str = "x-bedrock-usage-signature";
pub const TIMESTAMP_HEADER: &str = "x-bedrock-usage-timestamp";
pub const IDEMPOTENCY_HEADER: &str = "x-bedrock-usage-idempotency-key";

/// The idempotency key of an alert on a channel: a hash of both, the same on every attempt.
pub fn idempotency_key(key: &str, channel: &str) -> String {
    let h = Sha256::digest(format!("{key}\n{channel}").as_bytes());
    h.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `sha256=HEX` of HMAC-SHA256(secret, `TIMESTAMP.BODY`).
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hmac_sha256_hex(secret, &[timestamp.as_bytes(), b".", body])
    )
}

/// Slack Block Kit: a header, the sentence a person reads, the figures as fields, and a button to
/// the dashboard when the alert has a link.
pub fn slack_payload(alert: &serde_json::Value) -> serde_json::Value {
    let s = |k: &str| alert[k].as_str().unwrap_or("").to_string();
    let field = |label: &str, value: &str| serde_json::json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")});
    let mut blocks = vec![
        serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": s("title")}}),
    ];
    let mut fields = Vec::new();
    if alert["kind"] == "report" {
        // Slack takes 3,000 characters a text block: a longer table is cut (use --top).
        let mut table = s("text").trim_end().to_string();
        if table.len() > 2_900 {
            let cut = (0..=2_900)
                .rev()
                .find(|i| table.is_char_boundary(*i))
                .unwrap_or(0);
            table.truncate(cut);
            table.push_str("\n... (cut: send fewer rows with --top)");
        }
        blocks.push(serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("```\n{table}\n```")}}));
        return serde_json::json!({"text": s("title"), "blocks": blocks});
    }
    blocks.push(
        serde_json::json!({"type": "section", "text": {"type": "mrkdwn", "text": s("text")}}),
    );
    if let Some(facts) = alert["facts"].as_array() {
        // Alerts other than budgets carry their figures as label/value pairs.
        for f in facts {
            fields.push(field(
                f["label"].as_str().unwrap_or(""),
                f["value"].as_str().unwrap_or(""),
            ));
        }
    } else {
        fields.push(field(
            "Spent",
            &format!("{} of {}", s("spent_display"), s("amount_display")),
        ));
        fields.push(field(
            "Period",
            &format!("{} ({} day(s) left)", s("period"), alert["days_left"]),
        ));
        if let Some(f) = alert["forecast_display"].as_str() {
            fields.push(field("Forecast for the period", f));
        }
        if let Some(top) = alert["top_models"].as_array().filter(|t| !t.is_empty()) {
            let lines: Vec<String> = top
                .iter()
                .map(|m| {
                    format!(
                        "{} {}",
                        m["model"].as_str().unwrap_or(""),
                        m["cost_display"].as_str().unwrap_or("")
                    )
                })
                .collect();
            fields.push(field("Top models", &lines.join("\n")));
        }
    }
    blocks.push(serde_json::json!({"type": "section", "fields": fields}));
    if let Some(link) = alert["link"].as_str() {
        blocks.push(serde_json::json!({"type": "actions", "elements": [{
            "type": "button", "text": {"type": "plain_text", "text": "Open the dashboard"}, "url": link,
        }]}));
    }
    blocks.push(serde_json::json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("bedrock-usage · {}", s("kind"))}]}));
    serde_json::json!({"text": s("text"), "blocks": blocks})
}

/// Delivers one alert to one channel (one attempt).
pub async fn send(
    poster: &Poster,
    channel: &Channel,
    alert: &serde_json::Value,
    idempotency: &str,
    now_ms: i64,
    timeout: Duration,
) -> Result<(), String> {
    match &channel.kind {
        ChannelKind::Slack { url } => {
            let url = url.reveal()?;
            let body = slack_payload(alert).to_string().into_bytes();
            poster
                .post(
                    &url,
                    &[("content-type", "application/json".into())],
                    body,
                    timeout,
                )
                .await
                .map(drop)
        }
        ChannelKind::Webhook { url, secret } => {
            let secret = secret.reveal()?;
            let body = alert.to_string().into_bytes();
            let ts = (now_ms / 1000).to_string();
            let sig = signature(secret.as_bytes(), &ts, &body);
            poster
                .post(
                    url,
                    &[
                        ("content-type", "application/json".into()),
                        (TIMESTAMP_HEADER, ts),
                        (SIGNATURE_HEADER, sig),
                        (IDEMPOTENCY_HEADER, idempotency.to_string()),
                    ],
                    body,
                    timeout,
                )
                .await
                .map(drop)
        }
        ChannelKind::Email {
            smtp_url,
            from,
            to,
            username_env,
            password_env,
        } => {
            let credentials = match (username_env, password_env) {
                (Some(u), Some(p)) => Some((env(u)?, env(p)?)),
                _ => None,
            };
            let s = |k: &str| alert[k].as_str().unwrap_or("").to_string();
            let mut text = s("text");
            let mut link_html = String::new();
            if let Some(link) = alert["link"].as_str() {
                text.push_str(&format!("\n\nDashboard: {link}\n"));
                link_html = format!("<p><a href=\"{0}\">{0}</a></p>", html_escape(link));
            }
            let html = format!(
                "<html><body><h2>{}</h2><pre style=\"font-family:monospace\">{}</pre>{link_html}</body></html>",
                html_escape(&s("title")),
                html_escape(&s("text"))
            );
            let mail = super::smtp::Mail {
                from,
                to,
                subject: &s("title"),
                text: &text,
                html: &html,
                idempotency,
                date_rfc2822: rfc2822(now_ms),
            };
            super::smtp::send(smtp_url, credentials, &mail, timeout).await
        }
        ChannelKind::Sns { topic_arn, access } => {
            let s = |k: &str| alert[k].as_str().unwrap_or("").to_string();
            let mut text = s("text");
            if let Some(link) = alert["link"].as_str() {
                text.push_str(&format!("\n\nDashboard: {link}\n"));
            }
            let json = alert.to_string();
            let m = bedrock_usage_aws::sns::Message {
                topic_arn,
                subject: &s("title"),
                json: &json,
                text: &text,
                idempotency_key: idempotency,
            };
            let publish = async {
                let conf = bedrock_usage_aws::connect(access).await?;
                bedrock_usage_aws::sns::publish(&conf, &m).await
            };
            match tokio::time::timeout(timeout, publish).await {
                Ok(r) => r.map(drop).map_err(|f| f.message),
                Err(_) => Err(format!(
                    "no answer from SNS within {} ms",
                    timeout.as_millis()
                )),
            }
        }
    }
}

/// An environment variable the config names; the error names it (never its value).
pub fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("the environment variable `{name}` is not set"))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `Wed, 02 Dec 2026 19:30:00 +0000`.
fn rfc2822(ms: i64) -> String {
    let day = ms.div_euclid(86_400_000);
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    let (y, m, d) = bedrock_usage_core::time::civil_from_days(day);
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][day.rem_euclid(7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(m as usize).saturating_sub(1).min(11)];
    format!(
        "{wd}, {d:02} {mon} {y} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_messages_have_the_figures_and_a_button_to_the_dashboard() {
        let alert = serde_json::json!({
            "kind": "budget.threshold", "title": "Budget people: alice reached 80%",
            "text": "alice has spent $80.00", "spent_display": "$80.00", "amount_display": "$100.00",
            "period": "month 2026-12", "days_left": 3, "forecast_display": "$120.00",
            "top_models": [{"model": "claude-haiku-4-5", "cost_display": "$70.00"}],
            "link": "https://usage.example.com/developers/alice",
        });
        let p = slack_payload(&alert);
        let blocks = p["blocks"].as_array().unwrap();
        let types: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["header", "section", "section", "actions", "context"]
        );
        let fields: Vec<&str> = blocks[2]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "*Spent*\n$80.00 of $100.00",
                "*Period*\nmonth 2026-12 (3 day(s) left)",
                "*Forecast for the period*\n$120.00",
                "*Top models*\nclaude-haiku-4-5 $70.00",
            ]
        );
        assert_eq!(
            blocks[3]["elements"][0]["url"],
            "https://usage.example.com/developers/alice"
        );
        let mut plain = alert.clone();
        plain["link"] = serde_json::Value::Null;
        let types = slack_payload(&plain)["blocks"].as_array().unwrap().len();
        assert_eq!(types, 4, "no button without serve.public_url");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            hmac_sha256_hex(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            signature(b"Jefe", "what do ya want for nothing", b"?"),
            format!(
                "sha256={}",
                hmac_sha256_hex(b"Jefe", &[b"what do ya want for nothing.?"])
            )
        );
    }

    #[test]
    fn dates_are_rfc_2822() {
        let ms = bedrock_usage_core::time::parse_timestamp_ms("2026-12-02T19:30:05Z").unwrap();
        assert_eq!(rfc2822(ms), "Wed, 02 Dec 2026 19:30:05 +0000");
    }

    #[test]
    fn the_idempotency_key_is_stable_and_differs_by_channel() {
        assert_eq!(idempotency_key("k", "a"), idempotency_key("k", "a"));
        assert_ne!(idempotency_key("k", "a"), idempotency_key("k", "b"));
        assert_eq!(idempotency_key("k", "a").len(), 32);
    }
}
