//! `credentials`: one AWS role session per developer, printed for a `credential_process`, Claude
//! Code's `awsCredentialExport` or a shell, and cached in a private file until shortly before it
//! expires (an SDK may call the helper before every request).
//!
//! Rule kept here: the cache holds secrets. Its directory is 0700 and each file 0600, owned by the
//! user; a file with any other permissions, another owner, or content that does not parse is
//! replaced, never trusted. Credentials are written to a temporary file and renamed into place, so
//! a reader never sees half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use bedrock_usage_aws::sts::{self, Credentials, SessionRequest};
use bedrock_usage_core::attribution::{sts_name, tag_value};
use bedrock_usage_core::time::{format_utc, parse_duration_ms, parse_timestamp_ms};

use crate::cli::{AwsArgs, CredentialsOutput};
use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::invalid;
use crate::output::emit;
use crate::private::{create_private_dir, is_private, open_private};
use crate::sources::remote;

/// Cached credentials are used until this long before they expire.
pub const REFRESH_MARGIN_MS: i64 = 5 * 60_000;

/// `credentials`: the flags as typed.
pub struct CredentialsArgs<'a> {
    pub role_arn: &'a str,
    pub developer: &'a str,
    pub team: Option<&'a str>,
    pub cost_center: Option<&'a str>,
    pub duration: &'a str,
    pub output: CredentialsOutput,
    pub refresh: bool,
    pub aws: &'a AwsArgs,
}

pub fn run(ctx: &Context, a: &CredentialsArgs) -> Result<u8> {
    if !(a.role_arn.starts_with("arn:") && a.role_arn.contains(":role/")) {
        invalid!(
            "--role-arn: `{}` is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)",
            a.role_arn
        );
    }
    let Some(session_name) = sts_name(a.developer) else {
        invalid!(
            "--developer: `{}` is too short for an STS session name (2 to 64 characters)",
            a.developer
        );
    };
    if session_name != a.developer.trim() {
        eprintln!(
            "note: the session is named `{session_name}` (STS allows 2-64 of A-Za-z0-9_+=,.@-); alias it to `{}` in the config if needed",
            a.developer
        );
    }
    let duration_secs = match parse_duration_ms(a.duration) {
        Some(ms) if (900_000..=43_200_000).contains(&ms) => (ms / 1000) as i32,
        _ => invalid!(
            "--duration: `{}` must be a duration from 15m to 12h",
            a.duration
        ),
    };
    // Team and cost center: the flags, else what the config says of the developer.
    let configured = ctx.config.developers.get(a.developer.trim());
    let team = a
        .team
        .map(str::to_string)
        .or_else(|| configured.and_then(|(t, _)| t.clone()));
    let cost_center = a.cost_center.map(str::to_string).or_else(|| {
        configured.and_then(|(t, cc)| {
            cc.clone().or_else(|| {
                t.as_ref()
                    .and_then(|t| ctx.config.team_cost_centers.get(t).cloned())
            })
        })
    });
    let mut tags = vec![("developer".to_string(), tag_value(a.developer))];
    if let Some(t) = &team {
        tags.push(("team".into(), tag_value(t)));
    }
    if let Some(c) = &cost_center {
        tags.push(("cost-center".into(), tag_value(c)));
    }
    let req = SessionRequest {
        role_arn: a.role_arn.to_string(),
        session_name: session_name.clone(),
        source_identity: session_name,
        tags,
        duration_secs,
    };
    let access = a.aws.access();
    // What the cached credentials must have been asked for to be reused.
    let key = format!(
        "{}|{}|{:?}|{}|{:?}|{:?}|{:?}",
        req.role_arn,
        req.session_name,
        req.tags,
        req.duration_secs,
        access.profile,
        access.region,
        access.endpoint_url
    );
    let cache = Cache::new(&key)?;
    let now = ctx.clock.now_ms();
    let cached = if a.refresh { None } else { cache.read(now) };
    let creds = match cached {
        Some(c) => {
            tracing::debug!(file = %cache.path.display(), "Credentials from the cache");
            c
        }
        None => {
            let rt = remote::runtime()?;
            let creds = rt
                .block_on(async {
                    let conf = bedrock_usage_aws::connect(&access).await?;
                    sts::assume(&conf, &req).await
                })
                .map_err(|f| {
                    Error::aws(
                        &f,
                        "cannot get credentials: ",
                        &format!(
                            "the role {} (its trust policy must allow sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity to the credentials this runs with: `bedrock-usage aws setup --developer-role NAME --trusted-role ARN` sets it up; see docs/developers.md)",
                            req.role_arn
                        ),
                    )
                })?;
            if let Err(e) = cache.write(&creds) {
                // Still usable: the next call asks STS again.
                eprintln!(
                    "warning: cannot cache the credentials in {}: {e}",
                    cache.path.display()
                );
            }
            creds
        }
    };
    emit(&render(&creds, a.output))?;
    Ok(EXIT_OK)
}

/// The credentials as the chosen consumer reads them.
fn render(c: &Credentials, output: CredentialsOutput) -> String {
    let expiration = format_utc(c.expiration_ms);
    match output {
        CredentialsOutput::Process => {
            serde_json::json!({
                "Version": 1,
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "SessionToken": c.session_token,
                "Expiration": expiration,
            })
            .to_string()
                + "\n"
        }
        CredentialsOutput::ClaudeCode => {
            serde_json::json!({
                "Credentials": {
                    "AccessKeyId": c.access_key_id,
                    "SecretAccessKey": c.secret_access_key,
                    "SessionToken": c.session_token,
                    "Expiration": expiration,
                }
            })
            .to_string()
                + "\n"
        }
        CredentialsOutput::Env => format!(
            "export AWS_ACCESS_KEY_ID={}\nexport AWS_SECRET_ACCESS_KEY={}\nexport AWS_SESSION_TOKEN={}\nexport AWS_CREDENTIAL_EXPIRATION={}\n",
            shell_quote(&c.access_key_id),
            shell_quote(&c.secret_access_key),
            shell_quote(&c.session_token),
            expiration
        ),
    }
}

/// `'...'` for a POSIX shell.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// One cache file of credentials.
struct Cache {
    path: PathBuf,
    key: String,
}

/// The cache directory: `BEDROCK_USAGE_CACHE_DIR`, else `bedrock-usage/credentials` in the
/// user's cache directory (`~/.cache` on Linux).
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("BEDROCK_USAGE_CACHE_DIR") {
        Some(d) if !d.is_empty() => Some(PathBuf::from(d)),
        _ => dirs::cache_dir().map(|d| d.join("bedrock-usage").join("credentials")),
    }
}

impl Cache {
    fn new(key: &str) -> Result<Cache> {
        let Some(dir) = cache_dir() else {
            invalid!("no cache directory is known for this user: set BEDROCK_USAGE_CACHE_DIR");
        };
        // FNV-1a of the key names the file; the key inside says whose it is.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(Cache {
            path: dir.join(format!("{h:016x}.json")),
            key: key.to_string(),
        })
    }

    /// The cached credentials, if the file is private, whole, for this key and good for longer
    /// than the margin.
    fn read(&self, now_ms: i64) -> Option<Credentials> {
        if !is_private(&self.path) {
            return None;
        }
        let text = std::fs::read_to_string(&self.path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        if v.get("Key")?.as_str()? != self.key {
            return None;
        }
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        let c = Credentials {
            access_key_id: field("AccessKeyId")?,
            secret_access_key: field("SecretAccessKey")?,
            session_token: field("SessionToken")?,
            expiration_ms: parse_timestamp_ms(&field("Expiration")?)?,
        };
        (c.expiration_ms - now_ms > REFRESH_MARGIN_MS).then_some(c)
    }

    fn write(&self, c: &Credentials) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let text = serde_json::json!({
            "Key": self.key,
            "AccessKeyId": c.access_key_id,
            "SecretAccessKey": c.secret_access_key,
            "SessionToken": c.session_token,
            "Expiration": format_utc(c.expiration_ms),
        })
        .to_string();
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        let mut f = open_private(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs() {
        let c = Credentials {
            access_key_id: "AKID".into(),
            secret_access_key: "se'cret".into(),
            session_token: "tok".into(),
            expiration_ms: 1_800_000_000_000,
        };
        let p: serde_json::Value =
            serde_json::from_str(&render(&c, CredentialsOutput::Process)).unwrap();
        assert_eq!(p["Version"], 1);
        assert_eq!(p["AccessKeyId"], "AKID");
        assert_eq!(p["Expiration"], "2027-01-15T08:00:00Z");
        let cc: serde_json::Value =
            serde_json::from_str(&render(&c, CredentialsOutput::ClaudeCode)).unwrap();
        assert_eq!(cc["Credentials"]["SessionToken"], "tok");
        let env = render(&c, CredentialsOutput::Env);
        assert!(
            env.contains("export AWS_SECRET_ACCESS_KEY='se'\\''cret'\n"),
            "{env}"
        );
    }
}
