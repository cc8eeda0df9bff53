//! `aws setup`: brings the account to the state bedrock-usage needs, idempotently. Each step reads
//! what is there, compares it with what should be, and changes only what differs; with
//! `apply = false` nothing is changed and the steps say what would be.

use aws_config::SdkConfig;
use bedrock_usage_core::NanoUsd;
use serde_json::{json, Value};

use crate::{classify, logs, s3, Failure, Kind};

/// What the account should have.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Deliver to this CloudWatch Logs group (created with `retention_days`).
    pub log_group: Option<String>,
    pub retention_days: i32,
    /// The role Bedrock assumes to write to the log group.
    pub role_name: String,
    /// Deliver to this bucket (created if missing) under `prefix`.
    pub bucket: Option<String>,
    pub prefix: String,
    /// Publish a dashboard of this name.
    pub dashboard: Option<String>,
    /// Alarm when a day's cost (all developers) exceeds this many dollars...
    pub alarm_daily_usd: Option<NanoUsd>,
    /// ...and one alarm per developer named here, at the same threshold.
    pub alarm_developers: Vec<String>,
    /// SNS topic the alarms notify.
    pub alarm_topic: Option<String>,
    /// A monthly AWS Budget on Amazon Bedrock of this many dollars.
    pub budget_monthly_usd: Option<NanoUsd>,
    /// Who the budget emails at 80% actual and 100% forecast.
    pub budget_email: Option<String>,
    /// The role developers assume, one session each.
    pub developer_role: Option<DeveloperRole>,
}

/// The role of `bedrock-usage credentials`.
#[derive(Debug, Clone)]
pub struct DeveloperRole {
    pub name: String,
    /// The role ARN allowed to assume it (the instance or container role).
    pub trusted: String,
}

/// What `run` did, and the developer role's ARN if it set one up.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub steps: Vec<Step>,
    pub developer_role_arn: Option<String>,
    pub region: String,
}

pub const BUDGET_NAME: &str = "bedrock-usage-monthly";
pub const ALARM_PREFIX: &str = "BedrockUsage-DailyCost";

/// What one step did (or would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub resource: String,
    pub action: Action,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Unchanged,
    Create,
    Update,
}

impl Action {
    pub fn word(self, applied: bool) -> &'static str {
        match (self, applied) {
            (Action::Unchanged, _) => "unchanged",
            (Action::Create, true) => "created",
            (Action::Create, false) => "would create",
            (Action::Update, true) => "updated",
            (Action::Update, false) => "would update",
        }
    }
}

/// What to do to go from `current` (None: missing) to `want`.
fn compare<T: PartialEq>(current: Option<&T>, want: &T) -> Action {
    match current {
        None => Action::Create,
        Some(c) if c != want => Action::Update,
        Some(_) => Action::Unchanged,
    }
}

/// A read whose "not found" means "missing", not failure.
fn absent_ok<T>(r: Result<T, Failure>, what: &str) -> Result<Option<T>, Failure> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(f) if f.kind == Kind::NotFound => Ok(None),
        Err(f) => Err(f.context(&format!("reading {what}"))),
    }
}

struct Run<'a> {
    conf: &'a SdkConfig,
    apply: bool,
    steps: Vec<Step>,
    account: String,
    region: String,
}

impl Run<'_> {
    fn step(&mut self, resource: String, action: Action, detail: impl Into<String>) {
        self.steps.push(Step {
            resource,
            action,
            detail: detail.into(),
        });
    }
}

/// Runs (or, with `apply = false`, plans) the setup. Stops at the first failure, with the steps
/// done so far in the error's message.
pub async fn run(conf: &SdkConfig, spec: &Spec, apply: bool) -> Result<Outcome, Failure> {
    let account = caller_account(conf).await?;
    let region = conf.region().map(|r| r.to_string()).unwrap_or_default();
    let mut r = Run {
        conf,
        apply,
        steps: Vec::new(),
        account,
        region,
    };
    if spec.log_group.is_none() && spec.bucket.is_none() && spec.developer_role.is_none() {
        return Err(Failure::new(
            Kind::Invalid,
            "NoDestination",
            "nothing to deliver to: pass --log-group and/or --bucket, or add a source to the config",
        ));
    }
    let developer_role_arn = match &spec.developer_role {
        Some(d) => Some(developer_role(&mut r, d).await?),
        None => None,
    };
    if spec.log_group.is_none() && spec.bucket.is_none() {
        return Ok(Outcome {
            steps: r.steps,
            developer_role_arn,
            region: r.region,
        });
    }
    let mut role_arn = None;
    if let Some(group) = &spec.log_group {
        log_group(&mut r, group, spec.retention_days).await?;
        role_arn = Some(delivery_role(&mut r, &spec.role_name, group).await?);
    }
    if let Some(bucket) = &spec.bucket {
        bucket_policy(&mut r, bucket, &spec.prefix).await?;
    }
    logging(&mut r, spec, role_arn.as_deref()).await?;
    if let Some(name) = &spec.dashboard {
        dashboard(&mut r, name, spec.log_group.as_deref()).await?;
    }
    if let Some(usd) = spec.alarm_daily_usd {
        alarms(
            &mut r,
            usd,
            &spec.alarm_developers,
            spec.alarm_topic.as_deref(),
        )
        .await?;
    }
    if let Some(usd) = spec.budget_monthly_usd {
        budget(&mut r, usd, spec.budget_email.as_deref()).await?;
    }
    Ok(Outcome {
        steps: r.steps,
        developer_role_arn,
        region: r.region,
    })
}

/// The account these credentials belong to.
pub async fn caller_account(conf: &SdkConfig) -> Result<String, Failure> {
    Ok(caller(conf).await?.0)
}

/// The account and the ARN of the caller.
pub async fn caller(conf: &SdkConfig) -> Result<(String, String), Failure> {
    let out = aws_sdk_sts::Client::new(conf)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| classify(e).context("asking STS who these credentials are"))?;
    Ok((
        out.account().unwrap_or_default().to_string(),
        out.arn().unwrap_or_default().to_string(),
    ))
}

async fn log_group(r: &mut Run<'_>, group: &str, days: i32) -> Result<(), Failure> {
    let client = aws_sdk_cloudwatchlogs::Client::new(r.conf);
    let res = format!("log group {group}");
    match logs::describe_group(&client, group).await? {
        None => {
            if r.apply {
                logs::ensure_group(&client, group).await?;
                logs::set_retention(&client, group, days).await?;
            }
            r.step(res, Action::Create, format!("retention {days} days"));
        }
        Some(g) if g.retention_days != Some(days) => {
            if r.apply {
                logs::set_retention(&client, group, days).await?;
            }
            let was = g
                .retention_days
                .map_or("never expire".to_string(), |d| format!("{d} days"));
            r.step(
                res,
                Action::Update,
                format!("retention {was} -> {days} days"),
            );
        }
        Some(_) => r.step(res, Action::Unchanged, format!("retention {days} days")),
    }
    Ok(())
}

/// Decodes the URL-encoded policy documents IAM returns.
pub use bedrock_usage_core::layout::percent_decode;

/// Parses a policy document as IAM or S3 returns it (plain or URL-encoded JSON).
fn policy_value(doc: &str) -> Value {
    serde_json::from_str(doc)
        .or_else(|_| serde_json::from_str(&percent_decode(doc)))
        .unwrap_or(Value::Null)
}

fn trust_policy(account: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Service": "bedrock.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}}
        }]
    })
}

fn delivery_policy(account: &str, region: &str, group: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": format!("arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:aws/bedrock/modelinvocations")
        }]
    })
}

/// The role's inline policy for one region (one role may serve the log groups of several).
fn role_policy_name(region: &str) -> String {
    format!("bedrock-usage-invocation-logging-{region}")
}

/// A role and one inline policy of it, as they should be.
struct RoleSpec<'a> {
    name: &'a str,
    trust: Value,
    description: &'a str,
    /// How the trust reads in the plan.
    trusted_by: String,
    policy_name: String,
    policy: Value,
    /// How the policy reads in the plan.
    allows: String,
}

/// Creates or corrects a role's trust policy and one inline policy. Returns the role's ARN.
async fn ensure_role(r: &mut Run<'_>, want: &RoleSpec<'_>) -> Result<String, Failure> {
    let iam = aws_sdk_iam::Client::new(r.conf);
    let name = want.name;
    let res = format!("IAM role {name}");
    let arn_guess = format!("arn:aws:iam::{}:role/{name}", r.account);
    let existing = absent_ok(
        iam.get_role()
            .role_name(name)
            .send()
            .await
            .map_err(classify),
        &res,
    )?
    .and_then(|out| out.role().cloned());
    let arn = match existing {
        None => {
            if r.apply {
                iam.create_role()
                    .role_name(name)
                    .assume_role_policy_document(want.trust.to_string())
                    .description(want.description)
                    .send()
                    .await
                    .map_err(|e| classify(e).context(&format!("creating {res}")))?;
            }
            r.step(
                res.clone(),
                Action::Create,
                format!("trusted by {}", want.trusted_by),
            );
            arn_guess
        }
        Some(role) => {
            let current = policy_value(role.assume_role_policy_document().unwrap_or(""));
            if current != want.trust {
                if r.apply {
                    iam.update_assume_role_policy()
                        .role_name(name)
                        .policy_document(want.trust.to_string())
                        .send()
                        .await
                        .map_err(|e| classify(e).context(&format!("updating {res}")))?;
                }
                r.step(
                    res.clone(),
                    Action::Update,
                    format!("trust policy -> {}", want.trusted_by),
                );
            } else {
                r.step(
                    res.clone(),
                    Action::Unchanged,
                    format!("trusted by {}", want.trusted_by),
                );
            }
            role.arn().to_string()
        }
    };
    let policy_name = &want.policy_name;
    let res = format!("IAM role policy {name}/{policy_name}");
    let current = absent_ok(
        iam.get_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .send()
            .await
            .map_err(classify),
        &res,
    )?
    .map(|out| policy_value(out.policy_document()));
    let action = compare(current.as_ref(), &want.policy);
    if action != Action::Unchanged && r.apply {
        iam.put_role_policy()
            .role_name(name)
            .policy_name(policy_name)
            .policy_document(want.policy.to_string())
            .send()
            .await
            .map_err(|e| classify(e).context(&format!("writing {res}")))?;
    }
    r.step(res, action, want.allows.clone());
    Ok(arn)
}

async fn delivery_role(r: &mut Run<'_>, name: &str, group: &str) -> Result<String, Failure> {
    let want = RoleSpec {
        name,
        trust: trust_policy(&r.account),
        description:
            "Lets Amazon Bedrock deliver model invocation logs to CloudWatch Logs (bedrock-usage)",
        trusted_by: "bedrock.amazonaws.com for this account".into(),
        policy_name: role_policy_name(&r.region),
        policy: delivery_policy(&r.account, &r.region, group),
        allows: format!("logs:CreateLogStream, logs:PutLogEvents on {group}"),
    };
    ensure_role(r, &want).await
}

/// The actions a developer's session may call: Bedrock's model invocations, nothing else.
pub const DEVELOPER_ACTIONS: [&str; 2] = [
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
];

/// The inline policy of the developer role.
pub const DEVELOPER_POLICY_NAME: &str = "bedrock-usage-invoke-models";

/// The trust policy of the role developers assume: `trusted` (the instance or container role)
/// may assume it, tag the session and set its source identity.
fn developer_trust(trusted: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": trusted},
            "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]
        }]
    })
}

fn developer_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "InvokeModels",
            "Effect": "Allow",
            "Action": DEVELOPER_ACTIONS,
            "Resource": "*"
        }]
    })
}

async fn developer_role(r: &mut Run<'_>, d: &DeveloperRole) -> Result<String, Failure> {
    let want = RoleSpec {
        name: &d.name,
        trust: developer_trust(&d.trusted),
        description:
            "One session per developer for Claude on Amazon Bedrock (bedrock-usage credentials)",
        trusted_by: format!(
            "{} (sts:AssumeRole, sts:TagSession, sts:SetSourceIdentity)",
            d.trusted
        ),
        policy_name: DEVELOPER_POLICY_NAME.to_string(),
        policy: developer_policy(),
        allows: DEVELOPER_ACTIONS.join(", "),
    };
    ensure_role(r, &want).await
}

fn bucket_policy_doc(account: &str, region: &str, bucket: &str, prefix: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "AmazonBedrockLogsWrite",
            "Effect": "Allow",
            "Principal": {"Service": "bedrock.amazonaws.com"},
            "Action": ["s3:PutObject"],
            "Resource": [format!("arn:aws:s3:::{bucket}/{prefix}AWSLogs/{account}/BedrockModelInvocationLogs/*")],
            "Condition": {
                "StringEquals": {"aws:SourceAccount": account},
                "ArnLike": {"aws:SourceArn": format!("arn:aws:bedrock:{region}:{account}:*")}
            }
        }]
    })
}

async fn bucket_policy(r: &mut Run<'_>, bucket: &str, prefix: &str) -> Result<(), Failure> {
    let client = s3::client(r.conf);
    let res = format!("S3 bucket {bucket}");
    match s3::head_bucket(&client, bucket).await {
        Ok(()) => r.step(res, Action::Unchanged, "exists"),
        Err(f) if f.kind == Kind::NotFound => {
            if r.apply {
                let mut req = client.create_bucket().bucket(bucket);
                if r.region != "us-east-1" {
                    req = req.create_bucket_configuration(
                        aws_sdk_s3::types::CreateBucketConfiguration::builder()
                            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                                r.region.as_str(),
                            ))
                            .build(),
                    );
                }
                req.send()
                    .await
                    .map_err(|e| classify(e).context(&format!("creating {res}")))?;
            }
            r.step(res, Action::Create, format!("in {}", r.region));
        }
        Err(f) => return Err(f),
    }
    let want = bucket_policy_doc(&r.account, &r.region, bucket, prefix);
    let res = format!("S3 bucket policy {bucket}");
    let current = absent_ok(
        client
            .get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .map_err(classify),
        &res,
    )?
    .map(|out| policy_value(out.policy().unwrap_or("")));
    // Keep statements others put there; ours is replaced by its Sid.
    let mut doc = current
        .clone()
        .unwrap_or_else(|| json!({"Version": "2012-10-17", "Statement": []}));
    let ours = want["Statement"][0].clone();
    let stmts = doc["Statement"].as_array().cloned().unwrap_or_default();
    let mut merged: Vec<Value> = stmts
        .into_iter()
        .filter(|s| s["Sid"] != ours["Sid"])
        .collect();
    merged.push(ours);
    doc["Statement"] = Value::Array(merged);
    let action = compare(current.as_ref(), &doc);
    if action != Action::Unchanged && r.apply {
        client
            .put_bucket_policy()
            .bucket(bucket)
            .policy(doc.to_string())
            .send()
            .await
            .map_err(|e| classify(e).context(&format!("writing {res}")))?;
    }
    r.step(
        res,
        action,
        format!("bedrock.amazonaws.com may put objects under {prefix}AWSLogs/"),
    );
    Ok(())
}

/// Bedrock's model-invocation logging, as comparable values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Logging {
    pub log_group: Option<String>,
    pub role_arn: Option<String>,
    pub bucket: Option<String>,
    pub prefix: Option<String>,
    pub text: bool,
}

/// The current logging configuration (`None`: logging is off).
pub async fn get_logging(conf: &SdkConfig) -> Result<Option<Logging>, Failure> {
    let out = aws_sdk_bedrock::Client::new(conf)
        .get_model_invocation_logging_configuration()
        .send()
        .await
        .map_err(|e| classify(e).context("reading Bedrock's invocation-logging configuration"))?;
    // A configuration that delivers nowhere is logging that is off.
    let c = out
        .logging_config()
        .filter(|c| c.cloud_watch_config().is_some() || c.s3_config().is_some());
    Ok(c.map(|c| Logging {
        log_group: c
            .cloud_watch_config()
            .map(|w| w.log_group_name().to_string()),
        role_arn: c.cloud_watch_config().map(|w| w.role_arn().to_string()),
        bucket: c.s3_config().map(|s| s.bucket_name().to_string()),
        prefix: c
            .s3_config()
            .and_then(|s| s.key_prefix())
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        text: c.text_data_delivery_enabled().unwrap_or(false),
    }))
}

async fn logging(r: &mut Run<'_>, spec: &Spec, role_arn: Option<&str>) -> Result<(), Failure> {
    let want = Logging {
        log_group: spec.log_group.clone(),
        role_arn: spec.log_group.as_ref().and(role_arn.map(str::to_string)),
        bucket: spec.bucket.clone(),
        prefix: spec
            .bucket
            .as_ref()
            .and(Some(spec.prefix.clone()))
            .filter(|p| !p.is_empty()),
        text: true,
    };
    let current = get_logging(r.conf).await?;
    let action = compare(current.as_ref(), &want);
    if action != Action::Unchanged && r.apply {
        let bad = |e: aws_smithy_types::error::operation::BuildError| {
            Failure::new(Kind::Invalid, "BuildError", e.to_string())
        };
        let mut cfg = aws_sdk_bedrock::types::LoggingConfig::builder()
            .text_data_delivery_enabled(true)
            .image_data_delivery_enabled(false)
            .embedding_data_delivery_enabled(false);
        if let (Some(g), Some(role)) = (&want.log_group, &want.role_arn) {
            cfg = cfg.cloud_watch_config(
                aws_sdk_bedrock::types::CloudWatchConfig::builder()
                    .log_group_name(g)
                    .role_arn(role)
                    .build()
                    .map_err(bad)?,
            );
        }
        if let Some(b) = &want.bucket {
            cfg = cfg.s3_config(
                aws_sdk_bedrock::types::S3Config::builder()
                    .bucket_name(b)
                    .set_key_prefix(want.prefix.clone())
                    .build()
                    .map_err(bad)?,
            );
        }
        let config = cfg.build();
        let bedrock = aws_sdk_bedrock::Client::new(r.conf);
        // A role made (or changed) a moment ago may not be assumable yet: IAM changes take
        // seconds to reach Bedrock, which then refuses the configuration as invalid. Wait for it
        // (up to about a minute) rather than fail the first run.
        let role_is_new = r
            .steps
            .iter()
            .any(|s| s.resource.starts_with("IAM role") && s.action != Action::Unchanged);
        let mut attempt = 0;
        loop {
            match bedrock
                .put_model_invocation_logging_configuration()
                .logging_config(config.clone())
                .send()
                .await
                .map_err(classify)
            {
                Ok(_) => break,
                Err(f) if role_is_new && f.kind == Kind::Invalid && attempt < 12 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                }
                Err(f) => return Err(f.context("enabling Bedrock's invocation logging")),
            }
        }
    }
    let mut to = Vec::new();
    if let Some(g) = &want.log_group {
        to.push(format!("CloudWatch Logs {g}"));
    }
    if let Some(b) = &want.bucket {
        to.push(format!("s3://{b}/{}", want.prefix.as_deref().unwrap_or("")));
    }
    r.step(
        format!("Bedrock invocation logging ({})", r.region),
        action,
        format!("text delivered to {}", to.join(" and ")),
    );
    Ok(())
}

/// The dashboard: metric widgets from the `BedrockUsage` namespace and, with a log group, Logs
/// Insights widgets over the raw records (Bedrock's own field names, cache tokens included).
pub fn dashboard_body(region: &str, log_group: Option<&str>) -> Value {
    let ns = crate::metrics::NAMESPACE;
    let search = |metric: &str, dims: &str| json!([{ "expression": format!("SEARCH('{{{ns},{dims}}} MetricName=\"{metric}\"', 'Sum', 3600)"), "id": "e1", "label": "" }]);
    let metric_widget = |title: &str, metric: &str, dims: &str, x: i32, y: i32| {
        json!({
            "type": "metric", "x": x, "y": y, "width": 12, "height": 6,
            "properties": {
                "title": title, "region": region, "view": "timeSeries", "stacked": true,
                "period": 3600, "stat": "Sum", "metrics": search(metric, dims)
            }
        })
    };
    let mut widgets = vec![
        metric_widget("Cost (USD) by developer", "CostUSD", "Developer", 0, 0),
        metric_widget(
            "Cost (USD) by developer and model",
            "CostUSD",
            "Developer,Model",
            12,
            0,
        ),
        metric_widget(
            "Input tokens by developer",
            "InputTokens",
            "Developer",
            0,
            6,
        ),
        metric_widget(
            "Output tokens by developer",
            "OutputTokens",
            "Developer",
            12,
            6,
        ),
        metric_widget(
            "Cache read tokens by developer",
            "CacheReadTokens",
            "Developer",
            0,
            12,
        ),
        metric_widget(
            "Cache write tokens by developer",
            "CacheWriteTokens",
            "Developer",
            12,
            12,
        ),
    ];
    if let Some(g) = log_group {
        let q = |title: &str, query: &str, y: i32| {
            json!({
                "type": "log", "x": 0, "y": y, "width": 24, "height": 6,
                "properties": {
                    "title": title, "region": region, "view": "table",
                    "query": format!("SOURCE '{g}' | {query}")
                }
            })
        };
        widgets.push(q(
            "Tokens by caller and model (raw logs)",
            "stats count(*) as calls, sum(input.inputTokenCount) as input, sum(output.outputTokenCount) as output, sum(input.cacheReadInputTokenCount) as cache_read, sum(input.cacheWriteInputTokenCount) as cache_write by identity.arn, modelId | sort input desc",
            18,
        ));
        widgets.push(q(
            "Tokens by developer (request metadata)",
            "stats count(*) as calls, sum(input.inputTokenCount) as input, sum(output.outputTokenCount) as output, sum(input.cacheReadInputTokenCount) as cache_read, sum(input.cacheWriteInputTokenCount) as cache_write by requestMetadata.developer | sort input desc",
            24,
        ));
    }
    json!({ "widgets": widgets })
}

async fn dashboard(r: &mut Run<'_>, name: &str, group: Option<&str>) -> Result<(), Failure> {
    let cw = aws_sdk_cloudwatch::Client::new(r.conf);
    let want = dashboard_body(&r.region, group);
    let res = format!("CloudWatch dashboard {name}");
    let current = absent_ok(
        cw.get_dashboard()
            .dashboard_name(name)
            .send()
            .await
            .map_err(classify),
        &res,
    )?
    .and_then(|out| {
        out.dashboard_body()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
    });
    let action = compare(current.as_ref(), &want);
    if action != Action::Unchanged && r.apply {
        cw.put_dashboard()
            .dashboard_name(name)
            .dashboard_body(want.to_string())
            .send()
            .await
            .map_err(|e| classify(e).context(&format!("writing {res}")))?;
    }
    let n = want["widgets"].as_array().map_or(0, Vec::len);
    r.step(res, action, format!("{n} widgets"));
    Ok(())
}

async fn alarms(
    r: &mut Run<'_>,
    amount: NanoUsd,
    developers: &[String],
    topic: Option<&str>,
) -> Result<(), Failure> {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
    // CloudWatch takes a threshold as a double; the amount stays exact up to here.
    let threshold = amount.0 as f64 / 1e9;
    let usd = amount.to_display();
    let cw = aws_sdk_cloudwatch::Client::new(r.conf);
    let mut wanted: Vec<(String, Option<String>)> = vec![(ALARM_PREFIX.to_string(), None)];
    for d in developers {
        wanted.push((format!("{ALARM_PREFIX}-{d}"), Some(d.clone())));
    }
    let names: Vec<String> = wanted.iter().map(|w| w.0.clone()).collect();
    let out = cw
        .describe_alarms()
        .set_alarm_names(Some(names))
        .send()
        .await
        .map_err(|e| classify(e).context("reading the alarms"))?;
    for (name, dev) in wanted {
        let res = format!("CloudWatch alarm {name}");
        let dims: Vec<Dimension> = dev
            .iter()
            .map(|d| Dimension::builder().name("Developer").value(d).build())
            .collect();
        let current = out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name.as_str()));
        let same = current.is_some_and(|a| {
            a.threshold() == Some(threshold)
                && a.metric_name() == Some("CostUSD")
                && a.namespace() == Some(crate::metrics::NAMESPACE)
                && a.period() == Some(86_400)
                && a.dimensions() == dims.as_slice()
                && a.alarm_actions() == topic.map(|t| vec![t.to_string()]).unwrap_or_default()
        });
        let action = match (current, same) {
            (None, _) => Action::Create,
            (Some(_), false) => Action::Update,
            (Some(_), true) => Action::Unchanged,
        };
        if action != Action::Unchanged && r.apply {
            cw.put_metric_alarm()
                .alarm_name(&name)
                .alarm_description(match &dev {
                    Some(d) => format!(
                        "{d}'s Claude spend through Bedrock passed {usd} in a day (bedrock-usage)"
                    ),
                    None => format!(
                        "Claude spend through Bedrock passed {usd} in a day (bedrock-usage)"
                    ),
                })
                .namespace(crate::metrics::NAMESPACE)
                .metric_name("CostUSD")
                .set_dimensions(Some(dims))
                .statistic(Statistic::Sum)
                .period(86_400)
                .evaluation_periods(1)
                .threshold(threshold)
                .comparison_operator(ComparisonOperator::GreaterThanThreshold)
                .treat_missing_data("notBreaching")
                .set_alarm_actions(topic.map(|t| vec![t.to_string()]))
                .send()
                .await
                .map_err(|e| classify(e).context(&format!("writing {res}")))?;
        }
        let who = dev.as_deref().unwrap_or("all developers");
        r.step(res, action, format!("{who}: CostUSD over {usd} in a day"));
    }
    Ok(())
}

async fn budget(r: &mut Run<'_>, limit: NanoUsd, email: Option<&str>) -> Result<(), Failure> {
    use aws_sdk_budgets::types::{
        Budget, BudgetType, ComparisonOperator, Dimension, Expression, ExpressionDimensionValues,
        Notification, NotificationType, NotificationWithSubscribers, Spend, Subscriber,
        SubscriptionType, ThresholdType, TimeUnit,
    };
    let client = aws_sdk_budgets::Client::new(r.conf);
    let res = format!("AWS Budget {BUDGET_NAME}");
    let amount = cents(limit);
    let bad = |e: aws_smithy_types::error::operation::BuildError| {
        Failure::new(Kind::Invalid, "BuildError", e.to_string())
    };
    let want = Budget::builder()
        .budget_name(BUDGET_NAME)
        .budget_type(BudgetType::Cost)
        .time_unit(TimeUnit::Monthly)
        .budget_limit(
            Spend::builder()
                .amount(&amount)
                .unit("USD")
                .build()
                .map_err(bad)?,
        )
        .filter_expression(
            Expression::builder()
                .dimensions(
                    ExpressionDimensionValues::builder()
                        .key(Dimension::Service)
                        .values("Amazon Bedrock")
                        .build()
                        .map_err(bad)?,
                )
                .build(),
        )
        .build()
        .map_err(bad)?;
    let current = absent_ok(
        client
            .describe_budget()
            .account_id(&r.account)
            .budget_name(BUDGET_NAME)
            .send()
            .await
            .map_err(classify),
        &res,
    )?
    .and_then(|out| out.budget().cloned());
    let same_amount = |b: &Budget| {
        b.budget_limit()
            .and_then(|l| NanoUsd::parse_usd(l.amount()).ok())
            .is_some_and(|a| cents(a) == amount)
    };
    let action = match &current {
        None => Action::Create,
        Some(b) if !same_amount(b) => Action::Update,
        Some(_) => Action::Unchanged,
    };
    let notifications = |email: &str| -> Result<Vec<NotificationWithSubscribers>, Failure> {
        let sub = Subscriber::builder()
            .subscription_type(SubscriptionType::Email)
            .address(email)
            .build()
            .map_err(bad)?;
        [
            (NotificationType::Actual, 80.0),
            (NotificationType::Forecasted, 100.0),
        ]
        .into_iter()
        .map(|(kind, pct)| {
            NotificationWithSubscribers::builder()
                .notification(
                    Notification::builder()
                        .notification_type(kind)
                        .comparison_operator(ComparisonOperator::GreaterThan)
                        .threshold(pct)
                        .threshold_type(ThresholdType::Percentage)
                        .build()
                        .map_err(bad)?,
                )
                .subscribers(sub.clone())
                .build()
                .map_err(bad)
        })
        .collect()
    };
    if r.apply {
        match action {
            Action::Create => {
                client
                    .create_budget()
                    .account_id(&r.account)
                    .budget(want)
                    .set_notifications_with_subscribers(email.map(notifications).transpose()?)
                    .send()
                    .await
                    .map_err(|e| classify(e).context(&format!("creating {res}")))?;
            }
            Action::Update => {
                client
                    .update_budget()
                    .account_id(&r.account)
                    .new_budget(want)
                    .send()
                    .await
                    .map_err(|e| classify(e).context(&format!("updating {res}")))?;
            }
            Action::Unchanged => {}
        }
    }
    let to = email.map_or(String::new(), |e| {
        format!("; emails {e} at 80% actual, 100% forecast")
    });
    r.step(
        res,
        action,
        format!("${amount} a month on Amazon Bedrock{to}"),
    );
    Ok(())
}

/// `500.00`: an amount in dollars and cents, rounded half up (as AWS Budgets writes amounts).
fn cents(n: NanoUsd) -> String {
    let c = (n.0 + 5_000_000) / 10_000_000;
    format!("{}.{:02}", c / 100, c % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iam_documents_decode() {
        let enc = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(policy_value(enc), json!({"Version": "2012-10-17"}));
        assert_eq!(policy_value("{\"a\":1}"), json!({"a": 1}));
    }

    #[test]
    fn dashboard_uses_bedrock_field_names() {
        let body = dashboard_body("us-east-1", Some("/aws/bedrock/invocations")).to_string();
        for f in [
            "input.inputTokenCount",
            "output.outputTokenCount",
            "input.cacheReadInputTokenCount",
            "input.cacheWriteInputTokenCount",
            "identity.arn",
            "modelId",
            "CacheWriteTokens",
            "CostUSD",
        ] {
            assert!(body.contains(f), "{f} missing");
        }
    }
}
