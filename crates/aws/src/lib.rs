//! The AWS side of bedrock-usage, on the official AWS SDK for Rust: reading invocation logs from
//! CloudWatch Logs and S3, publishing per-developer metrics, and setting up and checking the
//! account. This crate knows AWS, not the store: it hands out plain data (log events, object
//! bytes) and takes plain data (metric rows, a setup plan), so the command-line layer decides what
//! is new and what to commit.
//!
//! Every call goes through the SDK's standard retry (throttling, 5xx, dropped connections, with
//! exponential backoff and jitter) and then through [`retry`], which backs off again for failures
//! the SDK gave up on.

use std::future::Future;
use std::time::Duration;

pub use aws_config::SdkConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

pub mod iam;
pub mod logs;
pub mod metrics;
pub mod s3;
pub mod setup;
pub mod signer;
pub mod sns;
pub mod status;
pub mod sts;

/// Where and as whom to call AWS (the config's type: one definition for the file, the flags
/// and the SDK). Unset fields come from the standard chain (environment, profiles, SSO,
/// instance metadata, web identity).
pub use bedrock_usage_core::config::AwsAccess as Access;

/// Loads the SDK configuration for `access`: credentials, region, retries and timeouts.
pub async fn connect(access: &Access) -> Result<SdkConfig, Failure> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            // Few attempts here, more in [`retry`] (with its own backoff, for the kinds worth
            // waiting for): an endpoint that refuses connections fails in well under a second.
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(100))
                .with_max_backoff(Duration::from_secs(2)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .read_timeout(Duration::from_secs(60))
                .operation_attempt_timeout(Duration::from_secs(120))
                .build(),
        );
    if let Some(p) = &access.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &access.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(u) = &access.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    let base = loader.load().await;
    if base.region().is_none() {
        return Err(Failure::new(
            Kind::Invalid,
            "NoRegion",
            "no AWS region: pass --region, set `region` on the source, or set AWS_REGION",
        ));
    }
    let Some(role) = &access.role_arn else {
        return Ok(base);
    };
    let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
        .session_name("bedrock-usage")
        .configure(&base)
        .build()
        .await;
    Ok(base
        .into_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build())
}

/// What kind of failure an AWS call ended in, for deciding what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The log group, bucket, key or role does not exist.
    NotFound,
    /// These credentials may not do this.
    Denied,
    /// No credentials, or expired or invalid ones.
    Credentials,
    /// Throttled even after the SDK's retries.
    Throttled,
    /// A 5xx, a timeout or a dropped connection, even after the SDK's retries.
    Transient,
    /// A bad request (a bad name, a missing region).
    Invalid,
    /// No connection at all: refused, or a name that does not resolve. Not retried: waiting
    /// does not open a port.
    Unreachable,
    Other,
}

/// A failed AWS call: its kind, the service's error code and a message for people.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: Kind,
    pub code: String,
    pub message: String,
}

impl Failure {
    pub fn new(kind: Kind, code: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// Worth another try after a backoff. (Bad or expired credentials are not: the SDK's identity
    /// cache already refreshes what can be refreshed, and `sync --watch` loads the chain again
    /// after a credentials failure.)
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, Kind::Throttled | Kind::Transient)
    }

    /// Prefixes the message with what was being done.
    pub fn context(mut self, what: &str) -> Failure {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

type SdkError<E> =
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>;

/// Classifies an SDK error.
/// An error and its causes, `outer: inner: ...`, each as it displays itself (never a debug dump).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

pub fn classify<E>(e: SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_smithy_runtime_api::client::result::SdkError as S;
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or_default().to_string();
    let detail = match e.message() {
        Some(m) if !m.is_empty() => format!("{code}: {m}"),
        _ if !code.is_empty() => code.clone(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
    };
    let kind = match (&e, code.as_str()) {
        (S::TimeoutError(_), _) | (S::DispatchFailure(_), _) => Kind::Transient,
        (_, c) if c.contains("NotFound") || c.starts_with("NoSuch") => Kind::NotFound,
        (
            _,
            "AccessDenied"
            | "AccessDeniedException"
            | "UnauthorizedOperation"
            | "AuthorizationError"
            | "Forbidden",
        ) => Kind::Denied,
        (
            _,
            "ExpiredToken"
            | "ExpiredTokenException"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "RequestExpired",
        ) => Kind::Credentials,
        (
            _,
            "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "SlowDown"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "RequestThrottled",
        ) => Kind::Throttled,
        (S::ConstructionFailure(_), _) => {
            // Most often: no credentials anywhere in the chain.
            let text = aws_smithy_types::error::display::DisplayErrorContext(&e).to_string();
            if text.contains("credentials") || text.contains("identity") {
                return Failure::new(
                    Kind::Credentials,
                    "NoCredentials",
                    format!("no usable AWS credentials ({text}); set AWS_PROFILE, run `aws sso login`, or pass --profile"),
                );
            }
            Kind::Invalid
        }
        _ if status.is_some_and(|s| s == 404) => Kind::NotFound,
        _ if status.is_some_and(|s| s == 403) => Kind::Denied,
        _ if status.is_some_and(|s| s == 429) => Kind::Throttled,
        _ if status.is_some_and(|s| s >= 500) => Kind::Transient,
        _ if status.is_some_and(|s| s == 400) => Kind::Invalid,
        _ => Kind::Other,
    };
    let message = if matches!(e, S::TimeoutError(_) | S::DispatchFailure(_)) {
        let text = chain(&e);
        if [
            "Connection refused",
            "failed to lookup address",
            "Name or service not known",
            "dns error",
        ]
        .iter()
        .any(|w| text.contains(w))
        {
            return Failure::new(
                Kind::Unreachable,
                "Unreachable",
                format!("cannot connect to AWS ({text})"),
            );
        }
        // The credential chain runs inside the dispatch: nothing in it gave credentials.
        if [
            "loading credentials",
            "credential provider",
            "credentials provider",
            "no credentials",
        ]
        .iter()
        .any(|w| text.contains(w))
        {
            return Failure::new(
                Kind::Credentials,
                "NoCredentials",
                format!("no usable AWS credentials ({text}); set AWS_PROFILE, run `aws sso login`, or pass --profile"),
            );
        }
        text
    } else {
        detail
    };
    Failure {
        kind,
        code,
        message,
    }
}

/// How [`retry`] backs off: attempts in all, the first delay and the cap.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            attempts: 6,
            first: Duration::from_millis(500),
            max: Duration::from_secs(20),
        }
    }
}

/// Equal jitter: a random delay between half and all of `min(max, first * 2^attempt)`.
pub fn jittered(b: &Backoff, attempt: u32) -> Duration {
    let cap = b
        .first
        .saturating_mul(1u32 << attempt.min(16))
        .min(b.max)
        .as_millis() as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    // A cheap mix of the clock's low bits; good enough to spread clients apart.
    let r = nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    Duration::from_millis(cap / 2 + r % (cap / 2 + 1))
}

/// Runs `call` until it succeeds, fails for good, or `backoff.attempts` are used; sleeps with
/// jitter between tries. `on_retry` hears each failure that will be retried.
pub async fn retry<T, F, Fut>(
    backoff: &Backoff,
    mut call: F,
    mut on_retry: impl FnMut(&Failure, u32),
) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(f) if f.is_retryable() && attempt + 1 < backoff.attempts => {
                on_retry(&f, attempt);
                tokio::time::sleep(jittered(backoff, attempt)).await;
                attempt += 1;
            }
            Err(f) => return Err(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_not_retried() {
        assert!(!Failure::new(Kind::Unreachable, "Unreachable", "x").is_retryable());
        assert!(Failure::new(Kind::Transient, "500", "x").is_retryable());
    }

    #[test]
    fn jitter_stays_within_the_cap() {
        let b = Backoff {
            attempts: 5,
            first: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for a in 0..20 {
            let d = jittered(&b, a);
            let cap = (100u64 << a.min(16)).min(1000);
            assert!(d.as_millis() as u64 <= cap, "{a}: {d:?}");
            assert!(d.as_millis() as u64 >= cap / 2, "{a}: {d:?}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let file = Access {
            profile: Some("dev".into()),
            region: Some("us-east-1".into()),
            ..Access::default()
        };
        let flags = Access {
            region: Some("eu-west-1".into()),
            ..Access::default()
        };
        let a = file.overridden_by(&flags);
        assert_eq!(a.profile.as_deref(), Some("dev"));
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
    }

    #[tokio::test]
    async fn retry_gives_up_on_permanent_failures_at_once() {
        let mut calls = 0;
        let b = Backoff {
            attempts: 5,
            first: Duration::from_millis(1),
            max: Duration::from_millis(2),
        };
        let r: Result<(), Failure> = retry(
            &b,
            || {
                calls += 1;
                async { Err(Failure::new(Kind::Denied, "AccessDenied", "no")) }
            },
            |_, _| {},
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r: Result<u32, Failure> = retry(
            &b,
            || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 3 {
                        Err(Failure::new(Kind::Throttled, "ThrottlingException", "slow"))
                    } else {
                        Ok(n)
                    }
                }
            },
            |_, _| {},
        )
        .await;
        assert_eq!(r.ok(), Some(3));
    }
}
