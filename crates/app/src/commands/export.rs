//! `export parquet DIR`: one Parquet file per UTC day (`DIR/dt=YYYY-MM-DD/calls.parquet`),
//! incremental: a manifest (`DIR/_bedrock_usage_export.json`) keeps each day's fingerprint (its
//! calls and tokens from the daily rollups, the schema, the config and the catalog), and a day
//! whose fingerprint is unchanged is not written again. Each file is written beside its place and
//! renamed into it, and the manifest after it, so a killed export leaves whole files only and the
//! next run redoes what it had not recorded. `--athena-ddl` prints the table for Athena instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bedrock_usage_core::money::group_thousands;
use bedrock_usage_core::rollup::Grain;
use bedrock_usage_core::time::{format_date, parse_date, MS_PER_DAY};
use bedrock_usage_core::{Attributor, PriceCatalog};
use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::export::parquet::{self as pq, Pricer, HIVE_COLUMNS, SCHEMA};
use crate::invalid;
use crate::output::{Cell, Format, Records};
use crate::store::FactReader;

pub const MANIFEST: &str = "_bedrock_usage_export.json";

pub struct ExportArgs<'a> {
    pub target: &'a str,
    pub aws: &'a crate::cli::AwsArgs,
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub athena_ddl: bool,
    pub table: &'a str,
}

pub fn run(ctx: &Context, a: &ExportArgs) -> Result<u8> {
    if a.athena_ddl {
        crate::output::emit(&athena_ddl(a.target, a.table)?)?;
        return Ok(EXIT_OK);
    }
    let sink = Sink::open(ctx, a)?;
    let store = ctx.existing_store()?;
    let Some((first, last)) = store.time_range()? else {
        eprintln!("the store holds no calls: nothing to export");
        return Ok(EXIT_OK);
    };
    let day_arg = |flag: &str, v: Option<&str>| -> Result<Option<i64>> {
        v.map(|s| {
            parse_date(s).ok_or_else(|| {
                Error::Invalid(format!(
                    "{flag}: `{s}` is not a date (2026-11-01); partitions are whole UTC days"
                ))
            })
        })
        .transpose()
    };
    let from = day_arg("--since", a.since)?.unwrap_or(first.div_euclid(MS_PER_DAY));
    let to = day_arg("--until", a.until)?.unwrap_or(last.div_euclid(MS_PER_DAY));
    if from > to {
        invalid!("--since must not be after --until");
    }
    let settings = settings_hash(ctx)?;
    let mut manifest = sink.read_manifest()?;
    let identities = store.identities()?;
    let tags = store.iam_tags()?.tags;
    let attributor = Attributor::new(&ctx.config, &identities).with_iam_tags(&tags);
    let mut pricer = Pricer::new(&ctx.config, &ctx.catalog, attributor);
    let mut rows = Vec::new();
    let (mut written_days, mut calls_written) = (0u64, 0u64);
    for day in from..=to {
        let (calls, print) = fingerprint(&*store, day, &settings)?;
        let name = format_date(day);
        let rel = format!("dt={name}/calls.parquet");
        if calls == 0 {
            // No calls that day: no partition (one written before the calls went is left).
            continue;
        }
        if manifest.get(&name) == Some(&print) && sink.has(&rel) {
            rows.push((name, calls, "unchanged"));
            continue;
        }
        let tmp = sink.staging(&rel)?;
        let file = std::fs::File::create(&tmp).map_err(|source| Error::File {
            what: "cannot write",
            path: tmp.clone(),
            source,
        })?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let n = pq::write_day(&*store, &mut pricer, day, &mut out)?;
        let file = out.into_inner().map_err(|e| Error::Io(e.into_error()))?;
        file.sync_all()?;
        if n != calls {
            let _ = std::fs::remove_file(&tmp);
            invalid!("day {name}: the rollups count {calls} calls but {n} were read (run `bedrock-usage store check`)");
        }
        sink.place(&tmp, &rel)?;
        manifest.insert(name.clone(), print);
        sink.write_manifest(&manifest)?;
        written_days += 1;
        calls_written += n;
        rows.push((name, calls, "written"));
        if matches!(ctx.format, Format::Table) {
            eprintln!("{rel}: {} calls", group_thousands(n));
        }
    }
    match ctx.format {
        Format::Table | Format::Markdown => {
            eprintln!(
                "{} day{} written ({} calls), {} unchanged, into {}",
                written_days,
                if written_days == 1 { "" } else { "s" },
                group_thousands(calls_written),
                rows.len() as u64 - written_days,
                a.target
            );
        }
        format => Records {
            fields: vec!["dt".into(), "calls".into(), "state".into()],
            rows: rows
                .into_iter()
                .map(|(d, c, s)| vec![Cell::text(d), Cell::int(c), Cell::text(s)])
                .collect(),
        }
        .print(format)?,
    }
    Ok(EXIT_OK)
}

/// A day's calls and its fingerprint: what the daily rollups hold for it, with the settings.
fn fingerprint(store: &dyn FactReader, day: i64, settings: &str) -> Result<(u64, String)> {
    let facts = store.facts(
        Some(day * MS_PER_DAY),
        Some((day + 1) * MS_PER_DAY),
        Grain::Day,
    )?;
    let mut sums = [0u64; 7];
    for r in &facts.rows {
        let t = &r.tokens;
        for (s, v) in sums.iter_mut().zip([
            r.calls,
            r.errors,
            t.input,
            t.output,
            t.cache_read,
            t.cache_write_5m,
            t.cache_write_1h,
        ]) {
            *s += v;
        }
    }
    let mut h = Sha256::new();
    h.update(settings.as_bytes());
    for s in sums {
        h.update(s.to_le_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((sums[0], hex))
}

/// What else decides a file's content: the version and schema, the config, the catalog.
fn settings_hash(ctx: &Context) -> Result<String> {
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(SCHEMA.as_bytes());
    h.update(PriceCatalog::embedded_text().as_bytes());
    if let Some(p) = &ctx.config_path {
        h.update(std::fs::read(p)?);
        if let Some(c) = &ctx.config.catalog_path {
            let base = p.parent().unwrap_or(Path::new("."));
            h.update(std::fs::read(base.join(c)).unwrap_or_default());
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Where the export goes: a directory, or a bucket and prefix (each file staged in a temporary
/// directory, then one PUT; the manifest is put after each file).
enum Sink {
    Dir(PathBuf),
    S3 {
        rt: tokio::runtime::Runtime,
        client: bedrock_usage_aws::s3::Client,
        bucket: String,
        prefix: String,
        staging: PathBuf,
    },
}

impl Sink {
    fn open(ctx: &Context, a: &ExportArgs) -> Result<Sink> {
        if let Some(rest) = a.target.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                invalid!(
                    "export parquet: `{}` names no bucket (s3://BUCKET/PREFIX)",
                    a.target
                );
            }
            let prefix = prefix.trim_matches('/');
            let base = ctx
                .config
                .sources
                .first()
                .map(|s| s.access().clone())
                .unwrap_or_default();
            let access = base.overridden_by(&a.aws.access());
            let rt = crate::sources::remote::runtime()?;
            let conf = rt
                .block_on(bedrock_usage_aws::connect(&access))
                .map_err(|f| Error::aws(&f, "export parquet: ", "the bucket"))?;
            let staging =
                std::env::temp_dir().join(format!("bedrock-usage-export-{}", std::process::id()));
            std::fs::create_dir_all(&staging)?;
            return Ok(Sink::S3 {
                rt,
                client: bedrock_usage_aws::s3::client(&conf),
                bucket: bucket.to_string(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
                staging,
            });
        }
        let dir = PathBuf::from(a.target);
        std::fs::create_dir_all(&dir).map_err(|source| Error::File {
            what: "cannot create the export directory",
            path: dir.clone(),
            source,
        })?;
        Ok(Sink::Dir(dir))
    }

    fn read_manifest(&self) -> Result<BTreeMap<String, String>> {
        let (bytes, name) = match self {
            Sink::Dir(dir) => {
                let p = dir.join(MANIFEST);
                match std::fs::read(&p) {
                    Ok(b) => (Some(b), p.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, String::new()),
                    Err(source) => {
                        return Err(Error::File {
                            what: "cannot read the export manifest",
                            path: p,
                            source,
                        })
                    }
                }
            }
            Sink::S3 {
                rt,
                client,
                bucket,
                prefix,
                ..
            } => {
                let key = format!("{prefix}{MANIFEST}");
                let b = rt
                    .block_on(bedrock_usage_aws::s3::get_if_exists(client, bucket, &key))
                    .map_err(|f| Error::aws(&f, "export parquet: ", "the bucket"))?;
                (b, format!("s3://{bucket}/{key}"))
            }
        };
        let Some(b) = bytes else {
            return Ok(BTreeMap::new());
        };
        let v: serde_json::Value = serde_json::from_slice(&b).map_err(|e| {
            Error::Invalid(format!(
                "{name}: not an export manifest ({e}); remove it to export every day again"
            ))
        })?;
        Ok(v["days"]
            .as_object()
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Whether the file the manifest speaks of is there (in S3, the manifest is believed).
    fn has(&self, rel: &str) -> bool {
        match self {
            Sink::Dir(dir) => dir.join(rel).exists(),
            Sink::S3 { .. } => true,
        }
    }

    /// Where to write `rel` before it is placed.
    fn staging(&self, rel: &str) -> Result<PathBuf> {
        let p = match self {
            Sink::Dir(dir) => dir.join(format!("{rel}.partial")),
            Sink::S3 { staging, .. } => staging.join(rel),
        };
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(p)
    }

    /// Moves a staged file into its place: a rename, or one PUT.
    fn place(&self, tmp: &Path, rel: &str) -> Result<()> {
        match self {
            Sink::Dir(dir) => std::fs::rename(tmp, dir.join(rel))?,
            Sink::S3 {
                rt,
                client,
                bucket,
                prefix,
                ..
            } => {
                let body = std::fs::read(tmp)?;
                let _ = std::fs::remove_file(tmp);
                rt.block_on(bedrock_usage_aws::s3::put(
                    client,
                    bucket,
                    &format!("{prefix}{rel}"),
                    body,
                ))
                .map_err(|f| Error::aws(&f, "export parquet: ", "the bucket"))?;
            }
        }
        Ok(())
    }

    fn write_manifest(&self, days: &BTreeMap<String, String>) -> Result<()> {
        let body = serde_json::json!({
            "written_by": format!("bedrock-usage {}", env!("CARGO_PKG_VERSION")),
            "days": days,
        });
        let text = serde_json::to_string_pretty(&body)? + "\n";
        let tmp = self.staging(&format!("{MANIFEST}.new"))?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        self.place(&tmp, MANIFEST)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Sink::S3 { staging, .. } = self {
            let _ = std::fs::remove_dir_all(staging);
        }
    }
}

/// `CREATE EXTERNAL TABLE` for Athena over an export at `location` (`s3://BUCKET/PREFIX`),
/// with partition projection on `dt` (no `MSCK REPAIR` or crawler needed).
pub fn athena_ddl(location: &str, table: &str) -> Result<String> {
    if !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        invalid!("--table: `{table}` is not a table name (letters, digits, _)");
    }
    if !location.starts_with("s3://") || location.contains(['\'', '\\']) {
        invalid!("--athena-ddl: the table's location must be where Athena reads the export, s3://BUCKET/PREFIX (copy the directory there first)");
    }
    let loc = location.trim_end_matches('/');
    let cols: Vec<String> = HIVE_COLUMNS
        .iter()
        .map(|(n, t)| format!("  `{n}` {t}"))
        .collect();
    Ok(format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n{}\n)\nPARTITIONED BY (`dt` string)\nSTORED AS PARQUET\nLOCATION '{loc}/'\nTBLPROPERTIES (\n  'projection.enabled' = 'true',\n  'projection.dt.type' = 'date',\n  'projection.dt.format' = 'yyyy-MM-dd',\n  'projection.dt.range' = '2023-01-01,NOW',\n  'projection.dt.interval' = '1',\n  'projection.dt.interval.unit' = 'DAYS',\n  'storage.location.template' = '{loc}/dt=${{dt}}/'\n);\n",
        cols.join(",\n")
    ))
}
