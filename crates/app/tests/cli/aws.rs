//! `sync`, `aws setup`, `aws status` and the metrics, with real AWS SDK calls against moto.
//! Each test has its own region or names, so they can share one emulator.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::aws_emulator::*;
use crate::util::*;

fn write_config(dir: &TempDir, text: &str) -> PathBuf {
    let p = dir.path("bedrock-usage.toml");
    std::fs::write(&p, text).expect("config");
    p
}

fn jsonl(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// A store made the trusted way: `ingest` of the same records from a file.
fn reference_store(dir: &TempDir, lines: &[Vec<u8>]) -> PathBuf {
    let file = dir.path("all.jsonl");
    std::fs::write(&file, jsonl(lines)).expect("write");
    let db = dir.path("files.db");
    ingest(&db, &[&file]);
    db
}

fn json_rows(out: &std::process::Output) -> Vec<Value> {
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
        .as_array()
        .cloned()
        .expect("an array")
}

fn sync_args<'a>(db: &'a Path, cfg: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "--db",
        s(db),
        "--config",
        s(cfg),
        "--format",
        "json",
        "sync",
        "--no-progress",
        "--since",
        "5d",
    ];
    a.extend_from_slice(extra);
    a
}

/// A corpus of `n` records split over a CloudWatch group (`cw`) and an S3 bucket under
/// `prefix` (`s3`, `per_object` records an object), a store of all of them ingested from a file,
/// and a config naming both sources.
struct TwoSources {
    dir: TempDir,
    files_db: PathBuf,
    cfg: PathBuf,
    objects: usize,
}

#[allow(clippy::too_many_arguments)]
fn two_sources(
    name: &str,
    region: &str,
    n: u64,
    seed: u64,
    cw: std::ops::Range<usize>,
    s3: std::ops::Range<usize>,
    per_object: usize,
    prefix: &str,
) -> TwoSources {
    let conf = sdk(region);
    let (ledger, lines) = corpus(n, seed);
    let group = format!("/aws/bedrock/{}", unique(name));
    let bucket = unique(name);
    put_events(&conf, &group, &ledger[cw.clone()], &lines[cw]);
    let objects = put_objects(
        &conf,
        &bucket,
        prefix,
        region,
        &ledger[s3.clone()],
        &lines[s3],
        per_object,
    );
    let dir = TempDir::new(name);
    let files_db = reference_store(&dir, &lines);
    let cfg = write_config(
        &dir,
        &format!(
            "[[sources.cloudwatch]]\nlog_group = \"{group}\"\nregion = \"{region}\"\n\n[[sources.s3]]\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\n"
        ),
    );
    TwoSources {
        dir,
        files_db,
        cfg,
        objects,
    }
}

#[test]
fn sync_from_cloudwatch_and_s3_equals_ingest_from_files() {
    let region = "us-east-1";
    // CloudWatch holds the first 800 records, S3 the last 800: 400 are in both.
    let TwoSources {
        dir,
        files_db,
        cfg,
        objects,
    } = two_sources("both", region, 1200, 7, 0..800, 400..1200, 19, "logs/");
    // The CloudWatch source is read through an assumed role (STS AssumeRole, then the calls).
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text.replacen(
        "region = ",
        "role_arn = \"arn:aws:iam::123456789012:role/bedrock-usage-reader\"\nregion = ",
        1,
    );
    std::fs::write(&cfg, text).expect("config");
    let db = dir.db();
    let out = run_aws_ok(&sync_args(&db, &cfg, &["--page-size", "7"]), region);
    let rows = json_rows(&out);
    assert_eq!(rows.len(), 2, "{}", stdout(&out));
    assert_eq!(rows[0]["records"], 800);
    assert!(
        rows[0]["pages_or_objects"].as_u64().unwrap_or(0) >= 800 / 7,
        "several pages of events: {}",
        rows[0]
    );
    assert_eq!(rows[1]["pages_or_objects"].as_u64(), Some(objects as u64));
    assert_eq!(
        rows[0]["new"].as_u64().unwrap_or(0) + rows[1]["new"].as_u64().unwrap_or(0),
        1200
    );
    assert_eq!(
        rows[1]["bad"], 0,
        "the offload under data/ and the permission check are skipped"
    );
    assert_eq!(dump(&db), dump(&files_db));
    assert_eq!(
        report_csv(&db, None, &["--by", "developer,model"]),
        report_csv(&files_db, None, &["--by", "developer,model"])
    );
    // Again: nothing new; S3 objects already read are not fetched again.
    let again = json_rows(&run_aws_ok(
        &sync_args(&db, &cfg, &["--page-size", "7"]),
        region,
    ));
    assert_eq!(again[0]["new"], 0);
    assert_eq!(again[1]["new"], 0);
    assert_eq!(again[1]["pages_or_objects"], 0, "{}", again[1]);
    assert_eq!(dump(&db), dump(&files_db));
}

#[test]
fn kill_during_sync_then_sync_again_gives_exact_totals() {
    let region = "us-west-2";
    let TwoSources {
        dir, files_db, cfg, ..
    } = two_sources("kill", region, 1500, 11, 0..1500, 0..1500, 10, "");
    let db = dir.db();
    let args = sync_args(&db, &cfg, &["--page-size", "10"]);
    let seed = std::process::id() as u64;
    let mut killed_mid_way = 0;
    for trial in 0..4u64 {
        let mut c = bin();
        aws_env(&mut c, region, endpoint());
        let mut child = c
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let wait = 150 + (seed.wrapping_mul(2654435761).wrapping_add(trial * 7919)) % 1200;
        std::thread::sleep(Duration::from_millis(wait));
        if child.try_wait().expect("wait").is_none() {
            killed_mid_way += 1;
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    assert!(killed_mid_way > 0, "every sync ended before its kill");
    run_aws_ok(&args, region);
    assert_eq!(
        dump(&db),
        dump(&files_db),
        "killed mid-way {killed_mid_way} times"
    );
}

#[test]
fn throttling_500s_and_dropped_connections_are_retried() {
    let region = "eu-central-1";
    let TwoSources {
        dir, files_db, cfg, ..
    } = two_sources("faults", region, 600, 23, 0..400, 200..600, 20, "");
    let proxy = FaultProxy::start(endpoint(), 250);
    let db = dir.db();
    let out = run_aws(
        &sync_args(&db, &cfg, &["--page-size", "25"]),
        region,
        &proxy.url,
    );
    assert!(
        out.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    let faults = proxy.faults.load(std::sync::atomic::Ordering::SeqCst);
    assert!(faults >= 5, "the proxy injected only {faults} faults");
    assert!(proxy.forwarded.load(std::sync::atomic::Ordering::SeqCst) > faults);
    assert_eq!(dump(&db), dump(&files_db), "{faults} faults injected");
}

/// An SDK error as its code alone (request ids differ from call to call).
fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: E) -> String {
    e.code().unwrap_or("error").to_string()
}

#[test]
fn a_failing_source_is_reported_and_the_others_go_on() {
    let region = "eu-north-1";
    let conf = sdk(region);
    let (ledger, lines) = corpus(200, 53);
    let group = format!("/aws/bedrock/{}", unique("oneok"));
    put_events(&conf, &group, &ledger, &lines);
    let dir = TempDir::new("one-fails");
    let files_db = reference_store(&dir, &lines);
    let cfg = write_config(
        &dir,
        &format!(
            "[[sources.s3]]\nbucket = \"{}\"\n\n[[sources.cloudwatch]]\nlog_group = \"{group}\"\n",
            unique("missing")
        ),
    );
    let db = dir.db();
    let out = run_aws(&sync_args(&db, &cfg, &[]), region, endpoint());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let rows = json_rows(&out);
    let row = |kind: &str| -> &Value {
        rows.iter()
            .find(|r| r["source"].as_str().is_some_and(|x| x.starts_with(kind)))
            .unwrap_or_else(|| panic!("no {kind} row in {rows:#?}"))
    };
    let failed = row("s3")["status"].as_str().unwrap_or("");
    assert!(
        failed.starts_with("FAILED") && failed.contains("bucket") && failed.contains("to fix"),
        "{failed}"
    );
    assert_eq!(row("cloudwatch")["status"], "ok");
    assert_eq!(dump(&db), dump(&files_db));
}

/// What `aws setup` manages, read back through the SDK.
fn account_snapshot(region: &str, group: &str, bucket: &str, role: &str) -> String {
    let conf = sdk(region);
    let r = rt();
    r.block_on(async {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&conf);
        let groups = logs
            .describe_log_groups()
            .log_group_name_prefix(group)
            .send()
            .await
            .map_err(code)
            .map(|o| {
                o.log_groups()
                    .iter()
                    .map(|g| format!("{:?} {:?}", g.log_group_name(), g.retention_in_days()))
                    .collect::<Vec<_>>()
            });
        let iam = aws_sdk_iam::Client::new(&conf);
        let role_doc = iam
            .get_role()
            .role_name(role)
            .send()
            .await
            .map_err(code)
            .map(|o| o.role().and_then(|r| r.assume_role_policy_document().map(str::to_string)));
        let role_policy = iam
            .get_role_policy()
            .role_name(role)
            .policy_name(format!("bedrock-usage-invocation-logging-{region}"))
            .send()
            .await
            .map_err(code)
            .map(|o| o.policy_document().to_string());
        let bucket_policy = s3_client(&conf)
            .get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .map_err(code)
            .map(|o| o.policy().map(str::to_string));
        let logging = aws_sdk_bedrock::Client::new(&conf)
            .get_model_invocation_logging_configuration()
            .send()
            .await
            .map_err(code)
            .map(|o| format!("{:?}", o.logging_config()));
        let cw = aws_sdk_cloudwatch::Client::new(&conf);
        let dashboard = cw
            .get_dashboard()
            .dashboard_name("BedrockUsage")
            .send()
            .await
            .map_err(code)
            .map(|o| o.dashboard_body().map(str::to_string));
        let alarms = cw.describe_alarms().send().await.map_err(code).map(|o| {
            o.metric_alarms()
                .iter()
                .map(|a| format!("{:?} {:?} {:?}", a.alarm_name(), a.threshold(), a.dimensions()))
                .collect::<Vec<_>>()
        });
        let budget = aws_sdk_budgets::Client::new(&conf)
            .describe_budget()
            .account_id(ACCOUNT)
            .budget_name("bedrock-usage-monthly")
            .send()
            .await
            .map_err(code)
            .map(|o| format!("{:?}", o.budget().and_then(|b| b.budget_limit())));
        format!(
            "groups {groups:?}\nrole {role_doc:?}\nrole policy {role_policy:?}\nbucket policy {bucket_policy:?}\nlogging {logging:?}\ndashboard {dashboard:?}\nalarms {alarms:?}\nbudget {budget:?}\n"
        )
    })
}

fn actions(out: &std::process::Output) -> Vec<String> {
    json_rows(out)
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r["action"].as_str().unwrap_or(""),
                r["resource"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn setup_twice_leaves_the_account_as_after_once() {
    let region = "eu-west-3";
    let group = format!("/aws/bedrock/{}", unique("setup"));
    let bucket = unique("setup");
    let s3_url = format!("s3://{bucket}/bedrock/");
    // IAM is global: a role of this test's own.
    let role = unique("BedrockUsageSetup");
    reset_region(region);
    reset_budget();
    let args = [
        "--format",
        "json",
        "aws",
        "setup",
        "--role-name",
        &role,
        "--log-group",
        &group,
        "--s3",
        &s3_url,
        "--retention-days",
        "14",
        "--dashboard",
        "--alarm",
        "50",
        "--alarm-developer",
        "alice",
        "--budget",
        "1000",
        "--budget-email",
        "finance@example.com",
    ];
    let before = account_snapshot(region, &group, &bucket, &role);
    let mut dry: Vec<&str> = args.to_vec();
    dry.push("--dry-run");
    let plan = actions(&run_aws_ok(&dry, region));
    assert!(
        plan.iter().all(|a| a.starts_with("would create")),
        "{plan:#?}"
    );
    assert_eq!(
        account_snapshot(region, &group, &bucket, &role),
        before,
        "--dry-run changed the account"
    );
    let first = actions(&run_aws_ok(&args, region));
    assert!(first.iter().all(|a| a.starts_with("created")), "{first:#?}");
    assert_eq!(first.len(), plan.len());
    let once = account_snapshot(region, &group, &bucket, &role);
    assert_ne!(once, before);
    assert!(once.contains("Some(14)"), "{once}");
    assert!(once.contains("input.cacheReadInputTokenCount"), "{once}");
    let second = actions(&run_aws_ok(&args, region));
    assert!(
        second.iter().all(|a| a.starts_with("unchanged")),
        "{second:#?}"
    );
    assert_eq!(account_snapshot(region, &group, &bucket, &role), once);
    // A changed retention is corrected, nothing else.
    let mut changed: Vec<&str> = args.to_vec();
    changed[11] = "30";
    let third = actions(&run_aws_ok(&changed, region));
    let updated: Vec<&String> = third
        .iter()
        .filter(|a| !a.starts_with("unchanged"))
        .collect();
    assert_eq!(updated.len(), 1, "{third:#?}");
    assert!(updated[0].starts_with("updated: log group"), "{third:#?}");
}

fn status(db: &Path, cfg: &Path, region: &str) -> (i32, Vec<Value>) {
    let out = run_aws(
        &[
            "--db",
            s(db),
            "--config",
            s(cfg),
            "--format",
            "json",
            "aws",
            "status",
        ],
        region,
        endpoint(),
    );
    (out.status.code().unwrap_or(-1), json_rows(&out))
}

fn check<'a>(rows: &'a [Value], name_starts: &str) -> &'a Value {
    rows.iter()
        .find(|r| {
            r["check"]
                .as_str()
                .is_some_and(|n| n.starts_with(name_starts))
        })
        .unwrap_or_else(|| panic!("no check {name_starts} in {rows:#?}"))
}

#[test]
fn status_says_what_is_broken_and_how_to_fix_it() {
    let region = "ap-south-1";
    let group = format!("/aws/bedrock/{}", unique("status"));
    let bucket = unique("status");
    let dir = TempDir::new("status");
    let cfg = write_config(
        &dir,
        &format!(
            "[[sources.cloudwatch]]\nlog_group = \"{group}\"\n\n[[sources.s3]]\nbucket = \"{bucket}\"\n"
        ),
    );
    let db = dir.db();
    reset_region(region);
    let role = unique("BedrockUsageStatus");
    // Nothing set up: logging off, group and bucket missing, no store.
    let (code, rows) = status(&db, &cfg, region);
    assert_eq!(code, 1, "{rows:#?}");
    assert_eq!(check(&rows, "credentials")["status"], "ok");
    let logging = check(&rows, "invocation logging");
    assert_eq!(logging["status"], "FAIL");
    assert!(
        logging["to_fix"]
            .as_str()
            .unwrap_or("")
            .contains("aws setup"),
        "{logging}"
    );
    let cw = check(&rows, "source cloudwatch");
    assert_eq!(cw["status"], "FAIL");
    assert!(
        cw["detail"]
            .as_str()
            .unwrap_or("")
            .contains("no such log group"),
        "{cw}"
    );
    assert_eq!(check(&rows, "source s3")["status"], "FAIL");
    assert_eq!(check(&rows, "store")["status"], "warn");

    // Set up, but no records yet: the sources exist and are empty.
    run_aws_ok(
        &["--config", s(&cfg), "aws", "setup", "--role-name", &role],
        region,
    );
    let (code, rows) = status(&db, &cfg, region);
    assert_eq!(
        check(&rows, "invocation logging")["status"],
        "ok",
        "{rows:#?}"
    );
    assert_eq!(
        check(&rows, "source cloudwatch")["status"],
        "warn",
        "{rows:#?}"
    );
    assert_eq!(code, 0, "{rows:#?}");

    // Records arrive and are synced; the shared instance role of the demo team shows.
    let conf = sdk(region);
    let (ledger, lines) = corpus(400, 5);
    put_events(&conf, &group, &ledger, &lines);
    put_objects(&conf, &bucket, "", region, &ledger[..60], &lines[..60], 20);
    run_aws_ok(
        &[
            "--db",
            s(&db),
            "--config",
            s(&cfg),
            "sync",
            "--no-progress",
            "--since",
            "5d",
        ],
        region,
    );
    let (code, rows) = status(&db, &cfg, region);
    assert_eq!(code, 0, "{rows:#?}");
    assert_eq!(
        check(&rows, "source cloudwatch")["status"],
        "ok",
        "{rows:#?}"
    );
    let s3 = check(&rows, "source s3");
    assert!(
        s3["detail"]
            .as_str()
            .unwrap_or("")
            .contains("newest object"),
        "{s3}"
    );
    assert_eq!(check(&rows, "store")["status"], "ok", "{rows:#?}");
    let shared = check(&rows, "shared principals");
    assert_eq!(shared["status"], "warn", "{shared}");
    assert!(
        shared["detail"]
            .as_str()
            .unwrap_or("")
            .contains("cannot be told apart"),
        "{shared}"
    );
    assert!(rows.iter().any(|r| r["check"]
        .as_str()
        .is_some_and(|c| c.starts_with("last sync cloudwatch"))));

    // Logging delivers to a group no source reads: a warning that names the fix.
    let other = TempDir::new("status-other");
    let cfg2 = write_config(
        &other,
        "[[sources.s3]]\nbucket = \"no-such-bucket-for-status\"\n",
    );
    let (_, rows) = status(&db, &cfg2, region);
    let m = check(&rows, "sources match logging");
    assert!(m["to_fix"].as_str().unwrap_or("").contains(&group), "{m}");
}

/// Sum of `metric` over every (developer, model) pair the store knows.
fn metric_total(region: &str, db: &Path, metric: &str) -> f64 {
    let conf = sdk(region);
    let cw = aws_sdk_cloudwatch::Client::new(&conf);
    let pairs = report_csv(db, None, &["--by", "developer,model"]);
    let now = std::time::SystemTime::now();
    rt().block_on(async {
        let mut total = 0.0;
        for p in pairs {
            use aws_sdk_cloudwatch::types::Dimension;
            let out = cw
                .get_metric_statistics()
                .namespace("BedrockUsage")
                .metric_name(metric)
                .dimensions(
                    Dimension::builder()
                        .name("Developer")
                        .value(&p["developer"])
                        .build(),
                )
                .dimensions(
                    Dimension::builder()
                        .name("Model")
                        .value(&p["model"])
                        .build(),
                )
                .start_time((now - Duration::from_secs(6 * 86_400)).into())
                .end_time((now + Duration::from_secs(3600)).into())
                .period(86_400)
                .statistics(aws_sdk_cloudwatch::types::Statistic::Sum)
                .send()
                .await
                .expect("get_metric_statistics");
            total += out.datapoints().iter().filter_map(|d| d.sum()).sum::<f64>();
        }
        total
    })
}

#[test]
fn metrics_are_published_once_across_restarts() {
    let region = "us-west-1";
    let conf = sdk(region);
    let (ledger, lines) = corpus(300, 31);
    let group = format!("/aws/bedrock/{}", unique("metrics"));
    put_events(&conf, &group, &ledger[..200], &lines[..200]);
    let dir = TempDir::new("metrics");
    let cfg = write_config(
        &dir,
        &format!(
            "[[sources.cloudwatch]]\nlog_group = \"{group}\"\n[sync]\npublish_metrics = true\n"
        ),
    );
    let db = dir.db();
    // The developer and model pairs of the whole corpus (from a store of it), and what the
    // emulator already holds for them (a long-running one may hold earlier runs' data points).
    let all_db = reference_store(&dir, &lines);
    let before = |m: &str| metric_total(region, &all_db, m);
    let (inv0, tok0, cost0) = (
        before("Invocations"),
        before("InputTokens"),
        before("CostUSD"),
    );
    let total = |m: &str| metric_total(region, &all_db, m);
    run_aws_ok(&sync_args(&db, &cfg, &[]), region);
    assert_eq!(total("Invocations") - inv0, 200.0);
    // A second sync reads the overlap again but publishes nothing twice.
    run_aws_ok(&sync_args(&db, &cfg, &[]), region);
    assert_eq!(total("Invocations") - inv0, 200.0);
    // New calls (stamped now, as Bedrock delivers them).
    let now = bedrock_usage::context::now_ms();
    put_events_at(
        &conf,
        &group,
        &ledger[200..],
        &lines[200..],
        Some(now - 1000),
    );
    run_aws_ok(&sync_args(&db, &cfg, &[]), region);
    assert_eq!(total("Invocations") - inv0, 300.0);
    let tokens: u64 = ledger.iter().map(|e| e.input).sum();
    assert_eq!(total("InputTokens") - tok0, tokens as f64);
    let cost: f64 = report_csv(&db, None, &["--by", "developer"])
        .iter()
        .filter_map(|r| r["cost_usd"].parse::<f64>().ok())
        .sum();
    let published = total("CostUSD") - cost0;
    assert!(
        (published - cost).abs() < 0.01,
        "CostUSD {published} vs report {cost}"
    );
}

#[test]
fn watch_syncs_until_sigterm_then_stops_cleanly() {
    let region = "ca-central-1";
    let conf = sdk(region);
    let (ledger, lines) = corpus(150, 41);
    let group = format!("/aws/bedrock/{}", unique("watch"));
    put_events(&conf, &group, &ledger[..100], &lines[..100]);
    let dir = TempDir::new("watch");
    let cfg = write_config(
        &dir,
        &format!("[[sources.cloudwatch]]\nlog_group = \"{group}\"\n"),
    );
    let db = dir.db();
    let mut c = bin();
    aws_env(&mut c, region, endpoint());
    let child = c
        .args([
            "--db",
            s(&db),
            "--config",
            s(&cfg),
            "sync",
            "--watch",
            "--interval",
            "1s",
            "--since",
            "5d",
            "--no-progress",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let count = |db: &Path| -> u64 {
        bedrock_usage::store::open(db)
            .and_then(|s| s.invocation_count())
            .unwrap_or(0)
    };
    let until = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while count(&db) < n {
            assert!(Instant::now() < deadline, "watch did not reach {n} records");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    until(100);
    // New calls arrive while it watches.
    let now = bedrock_usage::context::now_ms();
    put_events_at(
        &conf,
        &group,
        &ledger[100..],
        &lines[100..],
        Some(now - 1000),
    );
    until(150);
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "stderr:\n{}", stderr(&out));
    assert!(stderr(&out).contains("stopped after"), "{}", stderr(&out));
    assert!(stdout(&out).contains(&group), "{}", stdout(&out));
    assert_eq!(count(&db), 150);
}

#[test]
fn a_sync_stopped_mid_window_keeps_its_progress() {
    let region = "eu-north-1";
    let conf = sdk(region);
    let (ledger, lines) = corpus(1200, 23);
    let group = format!("/aws/bedrock/{}", unique("pages"));
    put_events(&conf, &group, &ledger, &lines);
    let dir = TempDir::new("pages");
    let cfg = write_config(
        &dir,
        &format!("[[sources.cloudwatch]]\nlog_group = \"{group}\"\n"),
    );
    let db = dir.db();
    let args = sync_args(&db, &cfg, &["--page-size", "20"]);
    // The whole window, read once: 60 pages of 20.
    let pages_all = {
        let other = TempDir::new("pages-all");
        let db2 = other.db();
        let out = run_aws_ok(&sync_args(&db2, &cfg, &["--page-size", "20"]), region);
        json_rows(&out)[0]["pages_or_objects"]
            .as_u64()
            .expect("pages")
    };
    assert!(pages_all >= 60, "{pages_all}");
    // A sync killed once some pages are stored, but not all.
    let count = |db: &Path| {
        bedrock_usage::store::open_read_only(db)
            .and_then(|s| s.invocation_count())
            .unwrap_or(0)
    };
    let mut c = bin();
    aws_env(&mut c, region, endpoint());
    let mut child = c
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    while (if db.exists() { count(&db) } else { 0 }) < 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let stored = count(&db);
    assert!(
        stored > 0 && stored < 1200,
        "the kill did not land mid-way ({stored} stored)"
    );
    // The next sync goes on from the page it stopped at.
    let out = run_aws_ok(&args, region);
    let pages_after = json_rows(&out)[0]["pages_or_objects"]
        .as_u64()
        .expect("pages");
    assert!(
        pages_after < pages_all,
        "read {pages_after} pages again of {pages_all}"
    );
    assert_eq!(count(&db), 1200);
}
