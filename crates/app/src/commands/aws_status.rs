//! `aws status`: checks the AWS side (credentials, invocation logging, every source, IAM tags)
//! and the store (how far each source is synced, shared principals, alert channels that fail),
//! each failed check with what to do.

use std::collections::BTreeSet;

use bedrock_usage_aws::status::{ago, Check, Level};
use bedrock_usage_aws::Access;
use bedrock_usage_core::config::Source;
use bedrock_usage_core::time::format_utc;
use bedrock_usage_core::Attributor;

use crate::cli::AwsArgs;
use crate::context::Context;
use crate::error::{Result, EXIT_CHECK_FAILED, EXIT_OK};
use crate::output::{Cell, Format, Records};
use crate::sources::{self, remote};

pub fn run(ctx: &Context, aws: &AwsArgs) -> Result<u8> {
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
    // A damaged store (a torn copy) would give short totals with no error: flag it here.
    for c in store.check(false)?.into_iter().filter(|c| !c.ok) {
        out.push(Check::bad(
            Level::Fail,
            format!("store {}", c.name),
            c.detail,
            "run `bedrock-usage store check --full`, and restore a backup made with `bedrock-usage store backup` (a copy of the file is not a backup)",
        ));
    }
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
    for h in crate::alerts::channel_health(ctx, &*store)? {
        let sent = match h.last_sent_ms {
            Some(t) => format!("{} sent, the last {}", h.sent, ago(now, t)),
            None => "nothing sent yet".to_string(),
        };
        let name = format!("channel {}", h.name);
        out.push(match &h.last_error {
            Some(e) => Check::bad(
                Level::Fail,
                name,
                format!("{} message(s) not delivered: {e}; {sent}", h.waiting),
                "fix the channel (its URL, secret, SMTP server or topic and permissions); the next `alerts check` delivers what waits (`bedrock-usage alerts outbox` lists it)",
            ),
            None => Check::ok(name, sent),
        });
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
            "give each developer an AWS session of their own (`bedrock-usage credentials --role-arn ARN --developer NAME`, see docs/developers.md), or have each client send requestMetadata {\"developer\": NAME}",
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
