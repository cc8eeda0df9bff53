//! SNS for alert channels: one alert published to a topic. Subscribers get the alert's JSON (the
//! webhook body) by default and its text by e-mail; the idempotency key rides along as a message
//! attribute, and on a FIFO topic it is the deduplication id, so SNS itself drops a repeat.

use aws_config::SdkConfig;
use aws_sdk_sns::types::MessageAttributeValue;

use crate::{classify, Failure, Kind};

/// The message attribute that carries the idempotency key.
pub const IDEMPOTENCY_ATTRIBUTE: &str = "idempotency_key";

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    pub topic_arn: &'a str,
    /// The e-mail subject (cut to what SNS takes: 100 printable ASCII characters).
    pub subject: &'a str,
    /// What most subscribers (SQS, Lambda, HTTP) get: the alert's JSON.
    pub json: &'a str,
    /// What e-mail subscribers get.
    pub text: &'a str,
    pub idempotency_key: &'a str,
}

/// SNS subjects are printable ASCII without line breaks, at most 100 characters.
pub fn subject(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            c if c.is_ascii_graphic() || c == ' ' => c,
            c if c.is_control() => ' ',
            _ => '-',
        })
        .take(100)
        .collect();
    if out.trim().is_empty() {
        out = "bedrock-usage alert".into();
    }
    out
}

/// Publishes `m`; the message id SNS gave it.
pub async fn publish(conf: &SdkConfig, m: &Message<'_>) -> Result<String, Failure> {
    let structure = serde_json::json!({"default": m.json, "email": m.text}).to_string();
    let key = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(m.idempotency_key)
        .build()
        .map_err(|e| Failure::new(Kind::Invalid, "BuildError", e.to_string()))?;
    let mut req = aws_sdk_sns::Client::new(conf)
        .publish()
        .topic_arn(m.topic_arn)
        .subject(subject(m.subject))
        .message_structure("json")
        .message(structure)
        .message_attributes(IDEMPOTENCY_ATTRIBUTE, key);
    if m.topic_arn.ends_with(".fifo") {
        req = req
            .message_group_id("bedrock-usage")
            .message_deduplication_id(m.idempotency_key);
    }
    let out = req
        .send()
        .await
        .map_err(|e| classify(e).context(&format!("publishing to {}", m.topic_arn)))?;
    Ok(out.message_id().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_what_sns_accepts() {
        assert_eq!(
            subject("Budget x: alice · 80%\nmore"),
            "Budget x: alice - 80% more"
        );
        assert_eq!(subject(&"a".repeat(150)).len(), 100);
        assert_eq!(subject("\n"), "bedrock-usage alert");
    }
}
