//! `aws setup`: brings the account to what bedrock-usage needs (invocation logging and its
//! destinations, the dashboard, alarms, the budget, the developer role), idempotently; the steps
//! are the AWS layer's (`bedrock_usage_aws::setup`).

use bedrock_usage_aws::setup;
use bedrock_usage_core::config::{AwsAccess, Source};
use bedrock_usage_core::layout::parse_s3_url;
use bedrock_usage_core::NanoUsd;

use crate::cli::AwsArgs;
use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::invalid;
use crate::output::{Cell, Format, Records};
use crate::sources::remote;

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
pub fn run(ctx: &Context, a: &SetupArgs) -> Result<u8> {
    let mut base = AwsAccess::default();
    let mut log_group = a.log_group.map(str::to_string);
    let mut bucket = None;
    if let Some(u) = a.s3 {
        bucket = Some(parse_s3_url(u).map_err(Error::Invalid)?);
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
        .map_err(|f| Error::aws(&f, "aws setup stopped: ", "the resource"))?;
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
