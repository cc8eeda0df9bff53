//! Publishing: what leaves bedrock-usage for other systems: CloudWatch metrics (`metrics`) and
//! the alert channels (`channels`, over `http` and `smtp`).

pub mod channels;
pub mod http;
pub mod metrics;
pub mod smtp;
