//! STS for `bedrock-usage credentials`: one role session per developer, named after them, with
//! their team and cost center as session tags and the developer as the source identity (which
//! later role chains cannot change).

use aws_config::SdkConfig;

use crate::{classify, Failure};

/// A session to ask for.
#[derive(Debug, Clone)]
pub struct SessionRequest {
    pub role_arn: String,
    /// Valid for STS (see the core's `attribution::sts_name`).
    pub session_name: String,
    pub source_identity: String,
    /// Session tags (key, value).
    pub tags: Vec<(String, String)>,
    pub duration_secs: i32,
}

/// Temporary credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// When they expire (epoch ms).
    pub expiration_ms: i64,
}

/// Assumes the role as the developer.
pub async fn assume(conf: &SdkConfig, req: &SessionRequest) -> Result<Credentials, Failure> {
    let mut tags = Vec::new();
    for (k, v) in &req.tags {
        tags.push(
            aws_sdk_sts::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| Failure::new(crate::Kind::Invalid, "BuildError", e.to_string()))?,
        );
    }
    let out = aws_sdk_sts::Client::new(conf)
        .assume_role()
        .role_arn(&req.role_arn)
        .role_session_name(&req.session_name)
        .source_identity(&req.source_identity)
        .set_tags((!tags.is_empty()).then_some(tags))
        .duration_seconds(req.duration_secs)
        .send()
        .await
        .map_err(|e| {
            classify(e).context(&format!(
                "assuming {} as {}",
                req.role_arn, req.session_name
            ))
        })?;
    let c = out.credentials().ok_or_else(|| {
        Failure::new(
            crate::Kind::Transient,
            "NoCredentials",
            "STS answered without credentials",
        )
    })?;
    let exp = c.expiration();
    Ok(Credentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: c.session_token().to_string(),
        expiration_ms: exp.secs() * 1000 + i64::from(exp.subsec_nanos() / 1_000_000),
    })
}
