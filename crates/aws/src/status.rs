//! `aws status`: checks of the AWS side, each with what to do when it fails.

use aws_config::SdkConfig;

use crate::{logs, s3, setup, Failure, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        }
    }
}

/// One check: what was checked, how it went, and what to do if it did not go well.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub level: Level,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn bad(
        level: Level,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            level,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// What to do about a failed call, by its kind.
pub fn fix_for(f: &Failure, what: &str) -> String {
    match f.kind {
        Kind::Credentials => "refresh the credentials (`aws sso login`, or check AWS_PROFILE / the keys in the environment)".into(),
        Kind::Denied => format!("grant these credentials read access to {what} (see docs/aws.md for the policy)"),
        Kind::NotFound => format!("create {what} (`bedrock-usage aws setup`) or correct the name in the config"),
        Kind::Throttled | Kind::Transient => "try again; AWS was slow or unreachable".into(),
        Kind::Unreachable => "check the endpoint (--endpoint-url, AWS_ENDPOINT_URL), the region, the network and any proxy".into(),
        Kind::Invalid | Kind::Other => format!("check the settings of {what}"),
    }
}

/// Who these credentials are.
pub async fn credentials(conf: &SdkConfig) -> Check {
    match setup::caller(conf).await {
        Ok((account, arn)) => Check::ok("credentials", format!("{arn} (account {account})")),
        Err(f) => Check::bad(
            Level::Fail,
            "credentials",
            f.message.clone(),
            fix_for(&f, "STS"),
        ),
    }
}

/// Is invocation logging on, and where does it deliver?
pub async fn logging(conf: &SdkConfig) -> (Check, Option<setup::Logging>) {
    let region = conf.region().map(|r| r.to_string()).unwrap_or_default();
    let name = format!("invocation logging ({region})");
    match setup::get_logging(conf).await {
        Ok(Some(l)) => {
            let mut to = Vec::new();
            if let Some(g) = &l.log_group {
                to.push(format!("CloudWatch Logs {g}"));
            }
            if let Some(b) = &l.bucket {
                to.push(format!("s3://{b}/{}", l.prefix.as_deref().unwrap_or("")));
            }
            let check = if to.is_empty() {
                Check::bad(Level::Fail, name, "enabled, but delivers nowhere", "run `bedrock-usage aws setup --log-group NAME` (or --bucket)")
            } else if !l.text {
                Check::bad(Level::Warn, name, format!("delivers to {}, but text data delivery is off: no records are written", to.join(" and ")), "run `bedrock-usage aws setup` to turn text delivery on")
            } else {
                Check::ok(name, format!("delivers to {}", to.join(" and ")))
            };
            (check, Some(l))
        }
        Ok(None) => (
            Check::bad(
                Level::Fail,
                name,
                "off: Bedrock writes no invocation logs in this region",
                "run `bedrock-usage aws setup --log-group /aws/bedrock/model-invocations` (add --dry-run to see the plan)",
            ),
            None,
        ),
        Err(f) => (
            Check::bad(Level::Fail, name, f.message.clone(), fix_for(&f, "bedrock:GetModelInvocationLoggingConfiguration")),
            None,
        ),
    }
}

/// Does the log group exist, can we read it, and when did its newest event arrive?
pub async fn log_group(conf: &SdkConfig, group: &str) -> (Check, Option<i64>) {
    let client = aws_sdk_cloudwatchlogs::Client::new(conf);
    let name = format!("source cloudwatch {group}");
    match logs::describe_group(&client, group).await {
        Ok(None) => (
            Check::bad(Level::Fail, name, "no such log group", "create it with `bedrock-usage aws setup --log-group NAME`, or correct `log_group` in the config"),
            None,
        ),
        Err(f) => (Check::bad(Level::Fail, name, f.message.clone(), fix_for(&f, &format!("log group {group}"))), None),
        Ok(Some(_)) => {
            // Reading one page proves logs:FilterLogEvents.
            let now = now_ms();
            let probe = logs::filter_page(&client, group, &logs::StreamFilter::default(), now - 60_000, now, None, Some(1)).await;
            if let Err(f) = probe {
                return (Check::bad(Level::Fail, name, format!("exists, but cannot be read: {}", f.message), fix_for(&f, &format!("log group {group} (logs:FilterLogEvents)"))), None);
            }
            match logs::newest_event_ms(&client, group).await {
                Ok(Some(ms)) => (Check::ok(name, format!("readable; newest event {}", ago(now, ms))), Some(ms)),
                Ok(None) => (Check::bad(Level::Warn, name, "readable, but holds no events yet", "make one Bedrock call in this region and account, then check again; if nothing arrives, check `invocation logging` above"), None),
                Err(f) => (Check::bad(Level::Warn, name, format!("readable; cannot list streams: {}", f.message), fix_for(&f, "logs:DescribeLogStreams")), None),
            }
        }
    }
}

/// Does the bucket exist and can we list the prefix?
pub async fn bucket(conf: &SdkConfig, bucket: &str, prefix: &str) -> Check {
    let client = s3::client(conf);
    let name = format!("source s3://{bucket}/{prefix}");
    if let Err(f) = s3::head_bucket(&client, bucket).await {
        return Check::bad(
            Level::Fail,
            name,
            f.message.clone(),
            fix_for(&f, &format!("bucket {bucket}")),
        );
    }
    match s3::list_page(&client, bucket, prefix, None, None, None, Some(5)).await {
        Ok(l) if l.objects.iter().all(|o| bedrock_usage_core::layout::is_skipped_key(&o.key)) => Check::bad(
            Level::Warn,
            name,
            "readable, but holds no invocation logs yet",
            "Bedrock writes S3 objects in batches, minutes after the calls; if none come, check `invocation logging` above",
        ),
        Ok(_) => match s3::newest_object(&client, bucket, prefix, &crate::Backoff::default()).await {
            Ok(Some((key, t))) => Check::ok(name, format!("readable; newest object {} ({key})", ago(now_ms(), t))),
            Ok(None) => Check::ok(name, "readable (no date partitions to find the newest object in)"),
            Err(f) => Check::bad(Level::Warn, name, format!("readable; cannot find the newest object: {}", f.message), fix_for(&f, &format!("s3://{bucket}/{prefix}"))),
        },
        Err(f) => Check::bad(Level::Fail, name, format!("cannot list: {}", f.message), fix_for(&f, &format!("s3://{bucket}/{prefix} (s3:ListBucket)"))),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// "5 min ago", "3 h ago", "2 days ago".
pub fn ago(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86_400),
    }
}
