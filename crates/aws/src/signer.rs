//! SigV4 for the gateway's upstream calls: the gateway's own credentials (the standard chain, or
//! a role session per developer), the signing name `bedrock`, the body's SHA-256 in the
//! canonical request. Only the headers Bedrock reads are signed, so a proxy on the way that adds
//! its own headers cannot break a signature.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

use crate::{Failure, Kind};

/// Signs requests for one region, with the chain's credentials or one role session per
/// developer.
pub struct Signer {
    region: String,
    base: Cached,
    sdk: SdkConfig,
    per_developer: Option<PerDeveloper>,
}

struct PerDeveloper {
    role_arn: String,
    sessions: Mutex<HashMap<String, std::sync::Arc<Cached>>>,
}

/// A provider and the credentials it last gave, used until five minutes before they expire: a
/// provider call can be an STS or instance-metadata request, far too slow for every call.
struct Cached {
    provider: SharedCredentialsProvider,
    last: Mutex<Option<Credentials>>,
}

/// Credentials this close to their expiry are renewed before use.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

impl Cached {
    fn new(provider: SharedCredentialsProvider) -> Cached {
        Cached {
            provider,
            last: Mutex::new(None),
        }
    }

    async fn get(&self) -> Result<Credentials, Failure> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|e| e > SystemTime::now() + RENEW_BEFORE)
        };
        if let Ok(last) = self.last.lock() {
            if let Some(c) = last.as_ref().filter(|c| fresh(c)) {
                return Ok(c.clone());
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| {
            Failure::new(
                Kind::Credentials,
                "CredentialsError",
                format!("the gateway's upstream credentials: {e}"),
            )
        })?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some(c.clone());
        }
        Ok(c)
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer for `region` with `sdk`'s credentials; with `assume_role_arn`, each developer's
    /// calls are signed with a session of that role named after them (cached and refreshed by
    /// the SDK until the gateway stops).
    pub fn new(
        sdk: &SdkConfig,
        region: &str,
        assume_role_arn: Option<&str>,
    ) -> Result<Signer, Failure> {
        let base = sdk.credentials_provider().ok_or_else(|| {
            Failure::new(
                Kind::Credentials,
                "NoCredentials",
                "no AWS credentials for the gateway's upstream calls: set AWS_PROFILE, AWS_ACCESS_KEY_ID, or run on a role",
            )
        })?;
        Ok(Signer {
            region: region.to_string(),
            base: Cached::new(base),
            sdk: sdk.clone(),
            per_developer: assume_role_arn.map(|arn| PerDeveloper {
                role_arn: arn.to_string(),
                sessions: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The credentials a developer's calls are signed with (cached until shortly before they
    /// expire).
    pub async fn credentials(&self, developer: &str) -> Result<Credentials, Failure> {
        let Some(p) = &self.per_developer else {
            return self.base.get().await;
        };
        fn lock(
            p: &PerDeveloper,
        ) -> Result<std::sync::MutexGuard<'_, HashMap<String, std::sync::Arc<Cached>>>, Failure>
        {
            p.sessions
                .lock()
                .map_err(|_| Failure::new(Kind::Transient, "Poisoned", "session cache lock"))
        }
        let cached = lock(p)?.get(developer).cloned();
        let session = match cached {
            Some(c) => c,
            None => {
                let provider = aws_config::sts::AssumeRoleProvider::builder(&p.role_arn)
                    .session_name(
                        bedrock_usage_core::attribution::sts_name(developer)
                            .unwrap_or_else(|| "developer".to_string()),
                    )
                    .configure(&self.sdk)
                    .build()
                    .await;
                let c = std::sync::Arc::new(Cached::new(SharedCredentialsProvider::new(provider)));
                lock(p)?.entry(developer.to_string()).or_insert(c).clone()
            }
        };
        session.get().await
    }

    /// The headers to add to a request (`x-amz-date`, `authorization`, `x-amz-security-token`,
    /// `x-amz-content-sha256`) so that Bedrock accepts it. `headers` are the ones to sign
    /// (lowercase names), `uri` the full upstream URI, exactly as it will be sent.
    pub fn sign(
        &self,
        creds: &Credentials,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        at: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, Failure> {
        let identity = creds.clone().into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        settings.expires_in = None::<Duration>;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("bedrock")
            .time(at)
            .settings(settings)
            .build()
            .map_err(|e| Failure::new(Kind::Invalid, "SigningError", e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            uri,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| Failure::new(Kind::Invalid, "SigningError", e.to_string()))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Failure::new(Kind::Invalid, "SigningError", e.to_string()))?
            .into_parts();
        let (add, _) = instructions.into_parts();
        Ok(add
            .into_iter()
            .map(|h| (h.name(), h.value().to_string()))
            .collect())
    }

    pub fn region(&self) -> &str {
        &self.region
    }
}
