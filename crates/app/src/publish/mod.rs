//! Publishing: what leaves bedrock-usage for other systems. Today CloudWatch metrics
//! (`metrics`); the alert channels (Slack, webhooks, SNS, e-mail) will sit beside it.

pub mod metrics;
