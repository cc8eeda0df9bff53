//! One AWS session per developer: the `credentials` helper (as boto3 runs it, cached, refreshed,
//! never trusting a bad cache), `aws setup --developer-role`, developer-role sessions in reports,
//! and teams from IAM tags. Against moto (STS and IAM).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::aws_emulator::*;
use crate::util::*;

const REGION: &str = "us-west-1";

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// An AWS config file with a `source` profile (static keys: the instance role's stand-in) and a
/// `dev` profile whose credential_process is the helper.
fn aws_config(dir: &TempDir, helper_args: &str) -> PathBuf {
    let p = dir.path("aws-config");
    std::fs::write(
        &p,
        format!(
            "[profile source]\naws_access_key_id = testing\naws_secret_access_key = testing\nregion = {REGION}\n\n\
             [profile dev]\ncredential_process = {} credentials {helper_args}\nregion = {REGION}\n",
            env!("CARGO_BIN_EXE_bedrock-usage")
        ),
    )
    .expect("aws config");
    p
}

/// The helper, with no credentials in the environment: only the `source` profile.
fn helper(dir: &TempDir, endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut c = bin();
    c.env("AWS_CONFIG_FILE", aws_config(dir, ""))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BEDROCK_USAGE_CACHE_DIR", dir.path("cache"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .args(["credentials", "--profile", "source", "--region", REGION])
        .args(["--endpoint-url", endpoint])
        .args(args)
        .stdin(Stdio::null());
    c.output().expect("run")
}

fn cache_file(dir: &TempDir) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path("cache"))
        .expect("cache dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

#[test]
fn boto3_with_the_helper_as_credential_process_is_the_developer() {
    endpoint();
    let dir = TempDir::new("cred-boto3");
    let role = unique("BedrockDeveloper");
    let args = format!(
        "--profile source --endpoint-url {} --role-arn {} --developer alice",
        endpoint(),
        role_arn(&role)
    );
    let cfg = aws_config(&dir, &args);
    let script = format!(
        "import boto3\ns = boto3.Session(profile_name='dev')\nprint(s.client('sts', endpoint_url='{}').get_caller_identity()['Arn'])\n",
        endpoint()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .env("AWS_CONFIG_FILE", &cfg)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BEDROCK_USAGE_CACHE_DIR", dir.path("cache"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("python3 (boto3 comes with moto: pip install 'moto[server]')");
    assert!(
        out.status.success(),
        "boto3 failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out).trim(),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/alice")
    );
}

#[test]
fn credentials_are_cached_refreshed_and_a_bad_cache_is_never_trusted() {
    endpoint();
    let dir = TempDir::new("cred-cache");
    let proxy = FaultProxy::start(endpoint(), 0);
    let role = role_arn(&unique("BedrockDeveloper"));
    let args = [
        "--role-arn",
        role.as_str(),
        "--developer",
        "alice@example.com",
        "--team",
        "ml",
    ];
    let calls = || proxy.forwarded.load(Ordering::SeqCst);
    let run = || {
        let out = helper(&dir, &proxy.url, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("process JSON");
        assert_eq!(v["Version"], 1);
        v
    };
    let first = run();
    assert_eq!(calls(), 1, "one AssumeRole");
    let file = cache_file(&dir);
    #[cfg(unix)]
    {
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir.path("cache")), 0o700);
    }
    // Within the lifetime: from the cache, no request reaches STS.
    let second = run();
    assert_eq!(calls(), 1, "the second call must read the cache");
    assert_eq!(first, second);
    // Expired (or about to): refreshed.
    let mut cached: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    cached["Expiration"] = Value::String(bedrock_usage_core::time::format_utc(
        bedrock_usage::context::now_ms() + 60_000,
    ));
    std::fs::write(&file, cached.to_string()).expect("write");
    run();
    assert_eq!(calls(), 2, "a cache about to expire must be refreshed");
    // Readable by others: replaced, not trusted.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        run();
        assert_eq!(
            calls(),
            3,
            "a cache file others can read must not be trusted"
        );
        assert_eq!(mode(&cache_file(&dir)), 0o600);
    }
    // Garbage: replaced.
    std::fs::write(cache_file(&dir), "{not json").expect("write");
    run();
    assert_eq!(calls(), 4, "a garbled cache must be replaced");
    run();
    assert_eq!(calls(), 4);
    // The other outputs, from the same cache.
    let cc = helper(
        &dir,
        &proxy.url,
        &[&args[..], &["--output", "claude-code"]].concat(),
    );
    let v: Value = serde_json::from_slice(&cc.stdout).expect("claude-code JSON");
    assert!(v["Credentials"]["SessionToken"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let env = stdout(&helper(
        &dir,
        &proxy.url,
        &[&args[..], &["--output", "env"]].concat(),
    ));
    assert!(env.contains("export AWS_SESSION_TOKEN="), "{env}");
    assert_eq!(calls(), 4);
}

#[test]
fn helper_errors_say_what_to_do_and_exit_non_zero() {
    let dir = TempDir::new("cred-errors");
    let out = helper(
        &dir,
        endpoint(),
        &["--role-arn", "not-an-arn", "--developer", "alice"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--role-arn: `not-an-arn` is not a role ARN"));
    let out = helper(
        &dir,
        endpoint(),
        &["--role-arn", &role_arn("R"), "--developer", "x"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("too short for an STS session name"));
    // No source credentials at all.
    let mut c = bin();
    c.env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("BEDROCK_USAGE_CACHE_DIR", dir.path("cache2"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .args([
            "credentials",
            "--region",
            REGION,
            "--endpoint-url",
            endpoint(),
        ])
        .args(["--role-arn", &role_arn("R"), "--developer", "alice"]);
    let out = c.output().expect("run");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot get credentials") && err.contains("to fix:"),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout for the SDK to misread"
    );
}

fn iam_client() -> aws_sdk_iam::Client {
    aws_sdk_iam::Client::new(&sdk(REGION))
}

#[test]
fn setup_developer_role_twice_leaves_the_account_as_after_once() {
    endpoint();
    let name = unique("BedrockDeveloper");
    let trusted = role_arn("code-server-ec2-role");
    let dir = TempDir::new("cred-setup");
    let args = |dry: bool| {
        let mut a = vec![
            "--db".to_string(),
            s(&dir.db()).to_string(),
            "--format".into(),
            "json".into(),
            "aws".into(),
            "setup".into(),
            "--developer-role".into(),
            name.clone(),
            "--trusted-role".into(),
            trusted.clone(),
        ];
        if dry {
            a.push("--dry-run".into());
        }
        a
    };
    let run = |dry: bool| {
        let a = args(dry);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = run_aws_ok(&a, REGION);
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("json");
        rows.iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r["action"].as_str().unwrap_or(""),
                    r["resource"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
    };
    let planned = run(true);
    assert!(
        planned.iter().all(|a| a.starts_with("would create")),
        "{planned:?}"
    );
    let get = || {
        rt().block_on(iam_client().get_role().role_name(&name).send())
            .ok()
    };
    assert!(get().is_none(), "a dry run must change nothing");
    let first = run(false);
    assert!(first.iter().all(|a| a.starts_with("created")), "{first:?}");
    let role = get().expect("the role exists");
    let trust = role
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .unwrap_or("");
    let trust = bedrock_usage_aws::setup::percent_decode(trust);
    for action in ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"] {
        assert!(trust.contains(action), "{trust}");
    }
    assert!(trust.contains(&trusted), "{trust}");
    let policy = rt()
        .block_on(
            iam_client()
                .get_role_policy()
                .role_name(&name)
                .policy_name("bedrock-usage-invoke-models")
                .send(),
        )
        .expect("the inline policy");
    let doc = bedrock_usage_aws::setup::percent_decode(policy.policy_document());
    assert!(
        doc.contains("bedrock:InvokeModel") && !doc.contains("\"*\"]"),
        "{doc}"
    );
    let second = run(false);
    assert!(
        second.iter().all(|a| a.starts_with("unchanged")),
        "{second:?}"
    );
    // The table says what to put in each container.
    let a = args(false);
    let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
    a.retain(|x| *x != "--format" && *x != "json");
    let text = stdout(&run_aws_ok(&a, REGION));
    assert!(
        text.contains("credential_process = bedrock-usage credentials --role-arn"),
        "{text}"
    );
    assert!(text.contains("awsCredentialExport"), "{text}");
    assert!(
        text.contains(&format!("developer_roles = [\"{name}\"]")),
        "{text}"
    );
}

/// Sample records with their identity replaced (and no request metadata unless given).
fn records_as(principals: &[(&str, Option<&str>)]) -> Vec<Vec<u8>> {
    let samples = std::fs::read_to_string(data("invocations.jsonl")).expect("samples");
    let base: Value =
        serde_json::from_str(samples.lines().next().expect("a sample")).expect("json");
    principals
        .iter()
        .enumerate()
        .map(|(i, (arn, developer))| {
            let mut r = base.clone();
            r["identity"]["arn"] = Value::String(arn.to_string());
            r["requestId"] = Value::String(format!("cred-{i:04}-{}", std::process::id()));
            r["timestamp"] = Value::String(bedrock_usage_core::time::format_utc(
                bedrock_usage::context::now_ms() - 3_600_000 - i as i64 * 1000,
            ));
            match developer {
                Some(d) => r["requestMetadata"] = serde_json::json!({ "developer": d }),
                None => {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("requestMetadata");
                    }
                }
            }
            serde_json::to_vec(&r).expect("json")
        })
        .collect()
}

#[test]
fn developer_role_sessions_are_reported_as_their_developers() {
    let dir = TempDir::new("cred-report");
    let role = "arn:aws:sts::123456789012:assumed-role/BedrockDeveloper";
    let lines = records_as(&[
        (&format!("{role}/alice"), None),
        (&format!("{role}/alice"), None),
        // A claim in metadata does not move a personal session's calls to someone else.
        (&format!("{role}/alice"), Some("mallory")),
        (&format!("{role}/bob@example.com"), None),
        (&format!("{role}/bob@example.com"), Some("carol")),
    ]);
    let file = dir.path("logs.jsonl");
    let mut text = Vec::new();
    for l in &lines {
        text.extend_from_slice(l);
        text.push(b'\n');
    }
    std::fs::write(&file, text).expect("write");
    ingest(&dir.db(), &[&file]);
    let cfg = dir.path("bedrock-usage.toml");
    std::fs::write(&cfg, "[attribution]\ndeveloper_roles = [\"BedrockDev*\"]\n").expect("cfg");
    let rows = report_csv(&dir.db(), Some(&cfg), &["--by", "developer"]);
    let calls: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r["developer"].clone(), r["calls"].clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("alice".into(), "3".into()),
            ("bob@example.com".into(), "2".into())
        ]
    );
    let out = run_ok(&["--db", s(&dir.db()), "--config", s(&cfg), "report"]);
    assert!(
        !stderr(&out).contains("came from the shared principal"),
        "{}",
        stderr(&out)
    );
    // Without the setting, metadata from a session that names others makes it shared.
    let rows = report_csv(&dir.db(), None, &["--by", "developer"]);
    assert!(rows.iter().any(|r| r["developer"] == "mallory"), "{rows:?}");
}

#[test]
fn iam_tags_become_teams_and_the_config_still_wins() {
    let region = "sa-east-1";
    endpoint();
    let conf = sdk(region);
    let iam = aws_sdk_iam::Client::new(&conf);
    let user = unique("bob");
    let role = unique("ml-dev");
    rt().block_on(async {
        iam.create_user()
            .user_name(&user)
            .send()
            .await
            .expect("user");
        iam.tag_user()
            .user_name(&user)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("Team")
                    .value("payments")
                    .build()
                    .expect("tag"),
            )
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("CostCenter")
                    .value("CC-9")
                    .build()
                    .expect("tag"),
            )
            .send()
            .await
            .expect("tag user");
        iam.create_role()
            .role_name(&role)
            .assume_role_policy_document("{\"Version\":\"2012-10-17\",\"Statement\":[]}")
            .send()
            .await
            .expect("role");
        iam.tag_role()
            .role_name(&role)
            .tags(
                aws_sdk_iam::types::Tag::builder()
                    .key("Team")
                    .value("ml")
                    .build()
                    .expect("tag"),
            )
            .send()
            .await
            .expect("tag role");
    });
    let user_arn = format!("arn:aws:iam::{ACCOUNT}:user/{user}");
    let carol = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/carol");
    let dave = format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/dave");
    let lines = records_as(&[(&user_arn, None), (&carol, None), (&dave, None)]);
    let group = format!("/aws/bedrock/{}", unique("tags"));
    let ledger_like: Vec<_> = corpus(lines.len() as u64, 7).0;
    put_events_at(
        &conf,
        &group,
        &ledger_like,
        &lines,
        Some(bedrock_usage::context::now_ms() - 1000),
    );
    let dir = TempDir::new("cred-tags");
    let cfg = dir.path("bedrock-usage.toml");
    std::fs::write(
        &cfg,
        format!("[attribution]\niam_tags = true\n\n[developers.dave]\nteam = \"core\"\n\n[[sources.cloudwatch]]\nlog_group = \"{group}\"\n"),
    )
    .expect("cfg");
    let db = dir.db();
    run_aws_ok(
        &[
            "--db",
            s(&db),
            "--config",
            s(&cfg),
            "sync",
            "--no-progress",
            "--since",
            "1d",
        ],
        region,
    );
    let mut args = vec!["--db", s(&db), "--config", s(&cfg), "--format", "csv"];
    args.extend(["report", "--by", "developer,team,cost-center"]);
    let rows = parse_csv(&stdout(&run_ok(&args)));
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["developer"].clone(),
                r["team"].clone(),
                r["cost_center"].clone(),
            )
        })
        .collect();
    assert!(
        got.contains(&(user.clone(), "payments".into(), "CC-9".into())),
        "{got:?}"
    );
    assert!(
        got.contains(&("carol".into(), "ml".into(), String::new())),
        "{got:?}"
    );
    // The config speaks for dave: its team wins over the role's tag.
    assert!(
        got.contains(&("dave".into(), "core".into(), String::new())),
        "{got:?}"
    );
    // aws status reads them too, and says so.
    // (Other checks fail here: logging is not set up in this region.)
    let st = run_aws(
        &[
            "--db",
            s(&db),
            "--config",
            s(&cfg),
            "--format",
            "json",
            "aws",
            "status",
        ],
        region,
        endpoint(),
    );
    let checks: Vec<Value> = serde_json::from_slice(&st.stdout).expect("json");
    let tags = checks
        .iter()
        .find(|c| c["check"] == "IAM tags")
        .unwrap_or_else(|| panic!("no IAM tags check: {checks:?}"));
    assert_eq!(tags["status"], "ok", "{tags}");
}
