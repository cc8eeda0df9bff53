//! `aws setup` and `aws status`, and what the AWS commands share: the `--profile` / `--region` /
//! `--endpoint-url` overrides and `s3://` locations.

use std::collections::BTreeSet;

use bedrock_usage_aws::status::{ago, Check, Level};
use bedrock_usage_aws::{setup, Access, Failure};
use bedrock_usage_core::config::{AwsAccess, Source};
use bedrock_usage_core::time::format_utc;
use bedrock_usage_core::{Attributor, NanoUsd};

use crate::cli::AwsArgs;
use crate::context::Context;
use crate::error::{Error, Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::invalid;
use crate::output::{Cell, Format, Records};
use crate::sources::{self, remote};

impl AwsArgs {
    pub fn access(&self) -> Access {
        Access {
            profile: self.profile.clone(),
            region: self.region.clone(),
            role_arn: None,
            endpoint_url: self.endpoint_url.clone(),
        }
    }
}

/// `s3://bucket/prefix` -> (bucket, prefix ending in `/` or empty).
pub fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let Some(rest) = url.strip_prefix("s3://") else {
        invalid!("`{url}`: an S3 location is written s3://BUCKET/PREFIX");
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        invalid!("`{url}`: no bucket name");
    }
    let mut prefix = prefix.to_string();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    Ok((bucket.to_string(), prefix))
}

/// An AWS failure as the command's error: what failed and what to do.
pub fn aws_failed(f: &Failure, stage: &str, what: &str) -> Error {
    Error::Aws(format!(
        "{stage}{} (to fix: {})",
        f.message,
        bedrock_usage_aws::status::fix_for(f, what)
    ))
}

pub struct SetupArgs<'a> {
    pub dry_run: bool,
    pub log_group: Option<&'a str>,
    pub retention_days: i32,
    pub role_name: &'a str,
    pub s3: Option<&'a str>,
    pub dashboard: Option<&'a str>,
    pub alarm: Option<&'a str>,
    pub alarm_developers: &'a [String],
    pub alarm_topic: Option<&'a str>,
    pub budget: Option<&'a str>,
    pub budget_email: Option<&'a str>,
    pub developer_role: Option<&'a str>,
    pub trusted_role: Option<&'a str>,
    pub aws: &'a AwsArgs,
}

/// Destinations default to the config's first CloudWatch and S3 sources; the call goes where
/// the first of them is (region, profile, endpoint), with the flags on top.
pub fn setup(ctx: &Context, a: &SetupArgs) -> Result<u8> {
    let mut base = AwsAccess::default();
    let mut log_group = a.log_group.map(str::to_string);
    let mut bucket = None;
    if let Some(u) = a.s3 {
        bucket = Some(parse_s3_url(u)?);
    }
    // `--developer-role` alone sets up that role only; otherwise destinations default to the
    // config's sources.
    if log_group.is_none() && bucket.is_none() && a.developer_role.is_none() {
        for s in &ctx.config.sources {
            match s {
                Source::CloudWatch {
                    log_group: g,
                    access,
                    ..
                } if log_group.is_none() => {
                    log_group = Some(g.clone());
                    base = access.clone();
                }
                Source::S3 {
                    bucket: b,
                    prefix,
                    access,
                } if bucket.is_none() => {
                    bucket = Some((b.clone(), prefix.clone()));
                    if log_group.is_none() {
                        base = access.clone();
                    }
                }
                _ => {}
            }
        }
    }
    let developer_role = match (a.developer_role, a.trusted_role) {
        (Some(name), Some(trusted)) => {
            if name.is_empty() || name.len() > 64 || name.contains(['/', ':', ' ']) {
                invalid!("--developer-role: `{name}` is not a role name (1-64 characters, no `/`)");
            }
            if !(trusted.starts_with("arn:") && trusted.contains(":role/")) {
                invalid!("--trusted-role: `{trusted}` is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME); for a session, give its role's ARN");
            }
            Some(setup::DeveloperRole {
                name: name.to_string(),
                trusted: trusted.to_string(),
            })
        }
        _ => None,
    };
    if log_group.is_none() && bucket.is_none() && developer_role.is_none() {
        invalid!("where should Bedrock deliver? pass --log-group NAME and/or --s3 s3://BUCKET/PREFIX, or add a source to the config");
    }
    let alarm = a
        .alarm
        .map(|v| positive_usd(v, "--alarm", "the threshold"))
        .transpose()?;
    let budget = a
        .budget
        .map(|v| positive_usd(v, "--budget", "the amount"))
        .transpose()?;
    if !(1..=3653).contains(&a.retention_days) {
        invalid!("--retention-days: between 1 and 3653");
    }
    let spec = setup::Spec {
        log_group,
        retention_days: a.retention_days,
        role_name: a.role_name.to_string(),
        bucket: bucket.as_ref().map(|b| b.0.clone()),
        prefix: bucket.map(|b| b.1).unwrap_or_default(),
        dashboard: a.dashboard.map(str::to_string),
        alarm_daily_usd: alarm,
        alarm_developers: a.alarm_developers.to_vec(),
        alarm_topic: a.alarm_topic.map(str::to_string),
        budget_monthly_usd: budget,
        budget_email: a.budget_email.map(str::to_string),
        developer_role,
    };
    let access = base.overridden_by(&a.aws.access());
    let rt = remote::runtime()?;
    let outcome = rt
        .block_on(async {
            let conf = bedrock_usage_aws::connect(&access).await?;
            setup::run(&conf, &spec, !a.dry_run).await
        })
        .map_err(|f| aws_failed(&f, "aws setup stopped: ", "the resource"))?;
    let steps = &outcome.steps;
    let rec = Records {
        fields: ["resource", "action", "detail"].map(String::from).to_vec(),
        rows: steps
            .iter()
            .map(|s| {
                vec![
                    Cell::text(&s.resource),
                    Cell::text(s.action.word(!a.dry_run)),
                    Cell::text(&s.detail),
                ]
            })
            .collect(),
    };
    rec.print(ctx.format)?;
    if matches!(ctx.format, Format::Table | Format::Markdown) {
        let changes = steps
            .iter()
            .filter(|s| s.action != setup::Action::Unchanged)
            .count();
        if a.dry_run {
            println!("dry run: {changes} changes planned, nothing changed");
        } else if changes == 0 {
            println!("nothing to change: the account is set up");
        } else {
            println!("{changes} changes made");
        }
        if let Some(arn) = &outcome.developer_role_arn {
            print!("{}", developer_snippets(arn, &outcome.region));
        }
    }
    Ok(EXIT_OK)
}

/// What to put in each developer's container to use the developer role.
fn developer_snippets(role_arn: &str, region: &str) -> String {
    format!(
        "\nIn each developer's container (here for alice; docs/developers.md):\n\n\
         # ~/.aws/config\n\
         [profile bedrock]\n\
         credential_process = bedrock-usage credentials --role-arn {role_arn} --developer alice\n\
         region = {region}\n\n\
         # ~/.claude/settings.json (Claude Code)\n\
         {{\n  \"env\": {{\"CLAUDE_CODE_USE_BEDROCK\": \"1\", \"AWS_REGION\": \"{region}\", \"AWS_PROFILE\": \"bedrock\"}}\n}}\n\n\
         # or, without ~/.aws/config:\n\
         {{\n  \"env\": {{\"CLAUDE_CODE_USE_BEDROCK\": \"1\", \"AWS_REGION\": \"{region}\"}},\n  \"awsCredentialExport\": \"bedrock-usage credentials --role-arn {role_arn} --developer alice --output claude-code\"\n}}\n\n\
         Then add to the bedrock-usage config, so that these sessions count as people:\n\n\
         [attribution]\n\
         developer_roles = [\"{}\"]\n",
        role_arn.rsplit('/').next().unwrap_or(role_arn)
    )
}

pub fn status(ctx: &Context, aws: &AwsArgs) -> Result<u8> {
    let over = aws.access();
    let sources = &ctx.config.sources;
    let base = sources
        .first()
        .map(|s| s.access().clone())
        .unwrap_or_default();
    let rt = remote::runtime()?;
    let mut checks: Vec<Check> = Vec::new();
    let base_access = base.overridden_by(&over);
    let logging = rt.block_on(async {
        match bedrock_usage_aws::connect(&base_access).await {
            Err(f) => {
                checks.push(Check::bad(
                    Level::Fail,
                    "credentials",
                    f.message.clone(),
                    bedrock_usage_aws::status::fix_for(&f, "the AWS configuration"),
                ));
                None
            }
            Ok(conf) => {
                let c = bedrock_usage_aws::status::credentials(&conf).await;
                let ok = c.level == Level::Ok;
                checks.push(c);
                if !ok {
                    return None;
                }
                let (c, l) = bedrock_usage_aws::status::logging(&conf).await;
                checks.push(c);
                l
            }
        }
    });
    if sources.is_empty() {
        checks.push(Check::bad(
            Level::Warn,
            "sources",
            "the config names no CloudWatch or S3 source, so `sync` has nothing to read",
            "add [[sources.cloudwatch]] log_group = \"...\" (or [[sources.s3]]) to the config; see docs/aws.md",
        ));
    }
    let mut newest_remote: Option<i64> = None;
    for s in sources {
        let access = s.access().overridden_by(&over);
        let c = rt.block_on(async {
            let conf = match bedrock_usage_aws::connect(&access).await {
                Ok(c) => c,
                Err(f) => {
                    return Check::bad(
                        Level::Fail,
                        format!("source {}", s.label()),
                        f.message.clone(),
                        bedrock_usage_aws::status::fix_for(&f, "the source's AWS settings"),
                    )
                }
            };
            match s {
                Source::CloudWatch { log_group, .. } => {
                    let (c, newest) = bedrock_usage_aws::status::log_group(&conf, log_group).await;
                    newest_remote = newest_remote.max(newest);
                    c
                }
                Source::S3 { bucket, prefix, .. } => {
                    bedrock_usage_aws::status::bucket(&conf, bucket, prefix).await
                }
            }
        });
        checks.push(c);
    }
    if ctx.config.iam_tags {
        checks.push(iam_tags_check(ctx, &rt, &base_access)?);
    }
    if let Some(l) = &logging {
        let read = |dest: &Source| match dest {
            Source::CloudWatch { log_group, .. } => l.log_group.as_deref() == Some(log_group),
            Source::S3 { bucket, .. } => l.bucket.as_deref() == Some(bucket),
        };
        if (l.log_group.is_some() || l.bucket.is_some()) && !sources.iter().any(read) {
            let dest = l
                .log_group
                .clone()
                .map(|g| format!("[[sources.cloudwatch]]\nlog_group = \"{g}\""))
                .or_else(|| {
                    l.bucket
                        .clone()
                        .map(|b| format!("[[sources.s3]]\nbucket = \"{b}\""))
                })
                .unwrap_or_default();
            checks.push(Check::bad(
                Level::Warn,
                "sources match logging",
                "Bedrock delivers somewhere no source of the config reads",
                format!("add to the config:\n{dest}"),
            ));
        }
    }
    checks.extend(store_checks(ctx, newest_remote)?);
    let rec = Records {
        fields: ["check", "status", "detail", "to_fix"]
            .map(String::from)
            .to_vec(),
        rows: checks
            .iter()
            .map(|c| {
                vec![
                    Cell::text(&c.name),
                    Cell::text(c.level.word()),
                    Cell::text(&c.detail),
                    c.fix.clone().map_or(Cell::Null, Cell::Text),
                ]
            })
            .collect(),
    };
    if matches!(ctx.format, Format::Table | Format::Markdown) {
        // Fixes are long: under the table, one per failed check.
        let short = Records {
            fields: rec.fields[..3].to_vec(),
            rows: rec.rows.iter().map(|r| r[..3].to_vec()).collect(),
        };
        short.print(ctx.format)?;
        for c in checks.iter().filter(|c| c.level != Level::Ok) {
            if let Some(f) = &c.fix {
                println!("\n{} ({}): {}", c.name, c.level.word(), f);
            }
        }
    } else {
        rec.print(ctx.format)?;
    }
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    Ok(if worst == Level::Fail {
        EXIT_CHECK_FAILED
    } else {
        EXIT_OK
    })
}

/// What the store says: the newest record, each source's last sync, and the records from shared
/// principals that cannot be told apart.
fn store_checks(ctx: &Context, newest_remote: Option<i64>) -> Result<Vec<Check>> {
    let path = ctx.db_path()?;
    if !path.exists() {
        return Ok(vec![Check::bad(
            Level::Warn,
            "store",
            format!("no store at {}", path.display()),
            "run `bedrock-usage sync` (or `ingest`)",
        )]);
    }
    let store = ctx.open_store()?;
    let now = ctx.clock.now_ms();
    let mut out = Vec::new();
    match store.newest_ms()? {
        None => out.push(Check::bad(
            Level::Warn,
            "store",
            "holds no records",
            "run `bedrock-usage sync`",
        )),
        Some(t) => {
            let behind = newest_remote.is_some_and(|r| r > t + 3_600_000);
            let detail = format!(
                "newest record {} ({}); {} records",
                format_utc(t),
                ago(now, t),
                store.invocation_count()?
            );
            out.push(if behind {
                Check::bad(
                    Level::Warn,
                    "store",
                    detail,
                    "the log group has newer events: run `bedrock-usage sync`",
                )
            } else {
                Check::ok("store", detail)
            });
        }
    }
    for c in store.cursors()? {
        out.push(Check::ok(
            format!("last sync {}", c.source),
            format!("{} (read up to {})", ago(now, c.updated_ms), c.position),
        ));
    }
    let identities = store.identities()?;
    let tags = store.iam_tags()?.tags;
    let attributor = Attributor::new(&ctx.config, identities.iter()).with_iam_tags(&tags);
    let facts = store.facts(None, None, bedrock_usage_core::rollup::Grain::Day)?;
    let mut shared_calls = 0u64;
    let mut principals = BTreeSet::new();
    for f in &facts.rows {
        let id = &facts.identities[f.identity];
        if attributor.attribute(id).is_shared() {
            shared_calls += f.calls;
            principals.insert(id.principal.clone());
        }
    }
    let pending = store.pending_metrics_count()?;
    if pending > 0 {
        out.push(Check::bad(
            Level::Warn,
            "metrics",
            format!("{pending} records wait for their CloudWatch metrics"),
            "run `bedrock-usage sync --publish-metrics`",
        ));
    }
    out.push(if shared_calls == 0 {
        Check::ok("shared principals", "every record is attributed to a developer")
    } else {
        Check::bad(
            Level::Warn,
            "shared principals",
            format!(
                "{shared_calls} records come from {} shared principal(s) that cannot be told apart: {}",
                principals.len(),
                principals.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            "have each developer's client send requestMetadata {\"developer\": NAME}, or give each a session name (see docs/configuration.md)",
        )
    });
    Ok(out)
}

/// Reads the IAM tags (`attribution.iam_tags`) as `sync` does, and says how it went.
fn iam_tags_check(ctx: &Context, rt: &tokio::runtime::Runtime, access: &Access) -> Result<Check> {
    let path = ctx.db_path()?;
    if !path.exists() {
        return Ok(Check::ok(
            "IAM tags",
            "no store yet: read on the first sync",
        ));
    }
    let mut store = ctx.open_store()?;
    let r = rt.block_on(async {
        match bedrock_usage_aws::connect(access).await {
            Err(f) => Ok(Err(f)),
            Ok(conf) => sources::iam_tags::refresh(&conf, &mut *store, ctx.clock.now_ms())
                .await
                .map(Ok),
        }
    })?;
    Ok(match r {
        Err(f) => Check::bad(
            Level::Warn,
            "IAM tags",
            f.message.clone(),
            bedrock_usage_aws::status::fix_for(&f, "IAM (iam:ListUserTags, iam:ListRoleTags)"),
        ),
        Ok(t) => match t.first_failure {
            Some(f) => Check::bad(
                Level::Warn,
                "IAM tags",
                format!(
                    "the tags of {} of {} users and roles could not be read: {}",
                    t.failed, t.entities, f.message
                ),
                bedrock_usage_aws::status::fix_for(&f, "IAM (iam:ListUserTags, iam:ListRoleTags)"),
            ),
            None => Check::ok(
                "IAM tags",
                format!(
                    "{} IAM users and roles behind the stored calls ({} read now, the rest within a day)",
                    t.entities, t.read
                ),
            ),
        },
    })
}

/// A positive amount of USD typed after `flag`, exact (never a float).
fn positive_usd(v: &str, flag: &str, what: &str) -> Result<NanoUsd> {
    match NanoUsd::parse_usd(v) {
        Ok(n) if n.0 > 0 => Ok(n),
        _ => invalid!("{flag}: {what} must be a positive number of USD (`{v}`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(
            parse_s3_url("s3://logs/bedrock").ok(),
            Some(("logs".to_string(), "bedrock/".to_string()))
        );
        assert_eq!(
            parse_s3_url("s3://logs").ok(),
            Some(("logs".to_string(), String::new()))
        );
        assert!(parse_s3_url("logs/bedrock").is_err());
        assert!(parse_s3_url("s3:///x").is_err());
    }

    #[test]
    fn amounts_are_exact() {
        assert_eq!(
            positive_usd("25.50", "--alarm", "x").ok(),
            Some(NanoUsd(25_500_000_000))
        );
        assert!(positive_usd("0", "--alarm", "x").is_err());
        assert!(positive_usd("-1", "--alarm", "x").is_err());
        assert!(positive_usd("lots", "--alarm", "x").is_err());
    }
}
