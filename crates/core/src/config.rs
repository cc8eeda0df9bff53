//! The configuration file: one strict TOML file (unknown keys are errors). Loading is two stages:
//! [`RawConfig`] is what the file says; [`Config::from_raw`] checks it as a whole and reports
//! every problem at once, each naming the field in backticks with the bad value.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

/// What the file says.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// How callers are told apart.
    #[serde(default)]
    pub attribution: RawAttribution,
    /// A name another attribution signal resolves to -> the developer it is. Keys may be a full
    /// principal ARN, an assumed-role session name, an IAM user name, an instance or container id,
    /// or a request-metadata value.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Developer -> team and cost center.
    #[serde(default)]
    pub developers: BTreeMap<String, RawDeveloper>,
    /// Team -> default cost center of its developers.
    #[serde(default)]
    pub teams: BTreeMap<String, RawTeam>,
    /// Application-inference-profile ARN (or any model id) -> the model id it stands for.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    #[serde(default)]
    pub pricing: RawPricing,
    /// Where `sync` reads invocation logs from.
    #[serde(default)]
    pub sources: RawSources,
    #[serde(default)]
    pub sync: RawSync,
    /// `bedrock-usage gateway`.
    #[serde(default)]
    pub gateway: RawGateway,
    /// Settings every budget shares (the time zone of its periods).
    #[serde(default)]
    pub alerts: crate::budget::RawAlerts,
    /// Where alerts go.
    #[serde(default)]
    pub channels: Vec<crate::budget::RawChannel>,
    #[serde(default)]
    pub budgets: Vec<crate::budget::RawBudget>,
    #[serde(default)]
    pub digests: Vec<crate::budget::RawDigest>,
    /// `bedrock-usage serve`.
    #[serde(default)]
    pub serve: RawServe,
    /// Rate limits at the gateway.
    #[serde(default)]
    pub limits: Vec<crate::limits::RawLimit>,
}

/// The `[serve]` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServe {
    /// The address people open the dashboard at (`https://usage.example.com`): alerts link to it.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where `serve` listens (the flag wins; default 127.0.0.1:8760).
    #[serde(default)]
    pub listen: Option<String>,
    /// SHA-256 (hex) of each operator access token (never the token itself); more tokens in
    /// the environment variable `BEDROCK_USAGE_SERVE_TOKENS`.
    #[serde(default)]
    pub access_token_sha256: Vec<String>,
    /// The most (developer, model) series `/metrics` shows (the rest folded into `other`).
    #[serde(default)]
    pub metrics_max_series: Option<usize>,
    /// How long an API answer may be served again while the store has not changed (0: never).
    #[serde(default)]
    pub cache_seconds: Option<u64>,
}

/// A URL path segment: every byte but RFC 3986's unreserved ones as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The checked `[serve]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeSettings {
    /// Without a trailing slash.
    pub public_url: Option<String>,
    pub listen: Option<String>,
    /// Lower-case hex, 64 digits each.
    pub access_token_sha256: Vec<String>,
    pub metrics_max_series: usize,
    /// Seconds an API answer is kept while the store is unchanged (0: not kept).
    pub cache_seconds: u64,
}

impl Default for ServeSettings {
    fn default() -> ServeSettings {
        ServeSettings {
            public_url: None,
            listen: None,
            access_token_sha256: Vec::new(),
            metrics_max_series: 1000,
            cache_seconds: 5,
        }
    }
}

impl ServeSettings {
    /// The dashboard's page of a developer, or its front page.
    pub fn link(&self, developer: Option<&str>) -> Option<String> {
        let base = self.public_url.as_deref()?;
        Some(match developer {
            Some(d) => format!("{base}/developers/{}", percent_encode(d)),
            None => format!("{base}/"),
        })
    }
}

/// The `[gateway]` section: every field is also a flag of `bedrock-usage gateway` (the flag wins).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGateway {
    /// Address to listen on (default `127.0.0.1:8750`).
    #[serde(default)]
    pub listen: Option<String>,
    /// The Bedrock runtime endpoint (default `https://bedrock-runtime.REGION.amazonaws.com`).
    #[serde(default)]
    pub upstream: Option<String>,
    /// The region calls are signed for and recorded in (default: the AWS chain's).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    /// Sign each developer's calls with a session of this role named after them.
    #[serde(default)]
    pub assume_role_arn: Option<String>,
    /// PEM certificate chain and private key: serve HTTPS.
    #[serde(default)]
    pub tls_cert: Option<String>,
    #[serde(default)]
    pub tls_key: Option<String>,
    /// Allow plain HTTP on an address other than loopback.
    #[serde(default)]
    pub insecure_listen: bool,
    /// Largest request body accepted, in MiB (default 32).
    #[serde(default)]
    pub max_request_mb: Option<u64>,
    /// How long to wait for Bedrock's response headers (default `10m`).
    #[serde(default)]
    pub upstream_timeout: Option<String>,
    /// How long a stop waits for open streams to finish (default `30s`).
    #[serde(default)]
    pub drain_timeout: Option<String>,
    /// The output bound a hard budget reserves for a call whose body names none (default
    /// 64000).
    #[serde(default)]
    pub default_max_tokens: Option<i64>,
    /// `redis://HOST:PORT[/DB]`: limits and budget counts shared by every replica.
    #[serde(default)]
    pub redis_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSources {
    #[serde(default)]
    pub cloudwatch: Vec<RawCloudWatchSource>,
    #[serde(default)]
    pub s3: Vec<RawS3Source>,
}

/// A CloudWatch Logs group Bedrock delivers to. (The four access fields are written out here and
/// in [`RawS3Source`]: serde cannot `flatten` a shared struct into one that denies unknown
/// fields; both are checked by one `check_access`.)
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCloudWatchSource {
    pub log_group: String,
    /// Read only these streams...
    #[serde(default)]
    pub log_streams: Vec<String>,
    /// ...or only streams whose names start with this.
    #[serde(default)]
    pub log_stream_prefix: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

/// An S3 bucket (and key prefix) Bedrock delivers to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3Source {
    pub bucket: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// How far back each CloudWatch sync reads again for late records (default `15m`).
    #[serde(default)]
    pub overlap: Option<String>,
    /// How long `sync --watch` waits between rounds (default `60s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Publish per-developer CloudWatch metrics on every sync.
    #[serde(default)]
    pub publish_metrics: bool,
    /// Where the metrics go: region (default: the first source's, else the chain's).
    #[serde(default)]
    pub metrics_region: Option<String>,
}

/// How to reach AWS for one source (unset: the standard chain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AwsAccess {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// A role to assume (with the chain's credentials) before calling.
    pub role_arn: Option<String>,
    /// Another endpoint for every service (a local emulator, a VPC endpoint).
    pub endpoint_url: Option<String>,
}

impl AwsAccess {
    /// `self`, with the fields `over` sets replacing ours (command-line flags over the file).
    pub fn overridden_by(&self, over: &AwsAccess) -> AwsAccess {
        AwsAccess {
            profile: over.profile.clone().or_else(|| self.profile.clone()),
            region: over.region.clone().or_else(|| self.region.clone()),
            role_arn: over.role_arn.clone().or_else(|| self.role_arn.clone()),
            endpoint_url: over
                .endpoint_url
                .clone()
                .or_else(|| self.endpoint_url.clone()),
        }
    }
}

/// A place `sync` reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    CloudWatch {
        log_group: String,
        log_streams: Vec<String>,
        log_stream_prefix: Option<String>,
        access: AwsAccess,
    },
    S3 {
        bucket: String,
        /// Empty, or ending in `/`.
        prefix: String,
        access: AwsAccess,
    },
}

impl Source {
    pub fn access(&self) -> &AwsAccess {
        match self {
            Source::CloudWatch { access, .. } | Source::S3 { access, .. } => access,
        }
    }

    /// How the source is shown to people.
    pub fn label(&self) -> String {
        match self {
            Source::CloudWatch {
                log_group,
                log_streams,
                log_stream_prefix,
                ..
            } => {
                let mut l = format!("cloudwatch {log_group}");
                if !log_streams.is_empty() {
                    l.push_str(&format!(" [{}]", log_streams.join(",")));
                } else if let Some(p) = log_stream_prefix {
                    l.push_str(&format!(" [{p}*]"));
                }
                l
            }
            Source::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Settings of `sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    pub overlap_ms: i64,
    pub interval_ms: i64,
    pub publish_metrics: bool,
    pub metrics_region: Option<String>,
}

impl Default for SyncSettings {
    fn default() -> SyncSettings {
        SyncSettings {
            overlap_ms: 15 * 60_000,
            interval_ms: 60_000,
            publish_metrics: false,
            metrics_region: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttribution {
    /// Extra request-metadata keys that name a developer, read before the defaults
    /// (`developer`, then `user`).
    #[serde(default)]
    pub metadata_keys: Vec<String>,
    /// Principals known to carry several developers' traffic: full ARNs, or ARN prefixes ending
    /// in `*`.
    #[serde(default)]
    pub shared_principals: Vec<String>,
    /// Roles developers assume one session each (`bedrock-usage credentials`): role names, or
    /// names ending in `*`. A session of such a role is the person it is named after: never
    /// shared, and its session name wins over request metadata.
    #[serde(default)]
    pub developer_roles: Vec<String>,
    /// Read the tags of the IAM users and roles seen in the logs (`sync`, `aws status`) and use
    /// them for the team and cost center where the config names none.
    #[serde(default)]
    pub iam_tags: bool,
    /// Tag keys that name a team, first found wins (default `Team`, `team`).
    #[serde(default)]
    pub team_tags: Option<Vec<String>>,
    /// Tag keys that name a cost center, first found wins (default `CostCenter`, `cost-center`,
    /// `Project`).
    #[serde(default)]
    pub cost_center_tags: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeveloper {
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub cost_center: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeam {
    #[serde(default)]
    pub cost_center: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPricing {
    /// A price catalog file whose entries replace or add to the embedded ones (path relative to
    /// the config file).
    #[serde(default)]
    pub catalog: Option<String>,
}

pub const DEFAULT_METADATA_KEYS: [&str; 2] = ["developer", "user"];

/// A checked configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Metadata keys to read, in order: the configured ones, then the defaults.
    pub metadata_keys: Vec<String>,
    pub shared_principals: Vec<String>,
    /// Role names (or prefixes ending in `*`) whose sessions are one developer each.
    pub developer_roles: Vec<String>,
    /// Whether `sync` and `aws status` read IAM tags.
    pub iam_tags: bool,
    pub team_tags: Vec<String>,
    pub cost_center_tags: Vec<String>,
    pub aliases: HashMap<String, String>,
    pub developers: HashMap<String, (Option<String>, Option<String>)>,
    pub team_cost_centers: HashMap<String, String>,
    pub models: HashMap<String, String>,
    pub catalog_path: Option<String>,
    pub sources: Vec<Source>,
    pub sync: SyncSettings,
    pub gateway: GatewaySettings,
    pub alerts: crate::budget::AlertSettings,
    pub channels: Vec<crate::budget::Channel>,
    pub budgets: Vec<crate::budget::Budget>,
    pub digests: Vec<crate::budget::Digest>,
    pub serve: ServeSettings,
    pub limits: Vec<crate::limits::Limit>,
}

/// The checked `[gateway]` section (flags override it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewaySettings {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub region: Option<String>,
    pub profile: Option<String>,
    pub assume_role_arn: Option<String>,
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    pub insecure_listen: bool,
    pub max_request_bytes: u64,
    pub upstream_timeout_ms: i64,
    pub drain_timeout_ms: i64,
    pub default_max_tokens: u64,
    pub redis_url: Option<String>,
}

impl Default for GatewaySettings {
    fn default() -> GatewaySettings {
        GatewaySettings {
            listen: None,
            upstream: None,
            region: None,
            profile: None,
            assume_role_arn: None,
            tls_cert: None,
            tls_key: None,
            insecure_listen: false,
            max_request_bytes: 32 * 1024 * 1024,
            upstream_timeout_ms: 600_000,
            drain_timeout_ms: 30_000,
            default_max_tokens: 64_000,
            redis_url: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

impl Config {
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let (raw, mut problems) = Config::read(text, origin)?;
        match Config::from_raw(raw) {
            Ok(c) if problems.is_empty() => Ok(c),
            Ok(_) => Err(ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            }),
            Err(more) => {
                problems.extend(more);
                Err(ConfigError::Invalid {
                    origin: origin.to_string(),
                    problems,
                })
            }
        }
    }

    /// What the file says, section by section: a section with a wrong type or an unknown key is
    /// a problem (with its place), and the other sections are still read, so that every problem
    /// is reported at once. Only TOML that does not parse at all stops here.
    pub fn read(text: &str, origin: &str) -> Result<(RawConfig, Vec<String>), ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        // A strict read first: when it fails, its message has the line and column of the first
        // problem, which the section-by-section read below cannot give.
        let strict = toml::from_str::<RawConfig>(text)
            .err()
            .map(|e| e.to_string().trim().to_string());
        let mut raw = RawConfig::default();
        let mut problems = Vec::new();
        fn section<T: serde::de::DeserializeOwned>(
            name: &str,
            v: toml::Value,
            slot: &mut T,
            problems: &mut Vec<String>,
        ) {
            match v.try_into::<T>() {
                Ok(x) => *slot = x,
                Err(e) => problems.push(format!(
                    "`[{name}]`: {}",
                    e.to_string().trim().replace('\n', " ")
                )),
            }
        }
        for (k, v) in table {
            match k.as_str() {
                "attribution" => section(&k, v, &mut raw.attribution, &mut problems),
                "aliases" => section(&k, v, &mut raw.aliases, &mut problems),
                "developers" => section(&k, v, &mut raw.developers, &mut problems),
                "teams" => section(&k, v, &mut raw.teams, &mut problems),
                "models" => section(&k, v, &mut raw.models, &mut problems),
                "pricing" => section(&k, v, &mut raw.pricing, &mut problems),
                "sources" => section(&k, v, &mut raw.sources, &mut problems),
                "sync" => section(&k, v, &mut raw.sync, &mut problems),
                "gateway" => section(&k, v, &mut raw.gateway, &mut problems),
                "alerts" => section(&k, v, &mut raw.alerts, &mut problems),
                "channels" => section(&k, v, &mut raw.channels, &mut problems),
                "budgets" => section(&k, v, &mut raw.budgets, &mut problems),
                "digests" => section(&k, v, &mut raw.digests, &mut problems),
                "serve" => section(&k, v, &mut raw.serve, &mut problems),
                "limits" => section(&k, v, &mut raw.limits, &mut problems),
                other => problems.push(format!(
                    "`{other}`: unknown section (known: attribution, aliases, developers, teams, models, pricing, sources, sync, gateway, alerts, channels, budgets, digests, serve, limits)"
                )),
            }
        }
        if let Some(first) = strict {
            // The strict message replaces the section's own report of the same problem.
            problems.retain(|p| {
                let inner = p.split_once(": ").map_or(p.as_str(), |(_, m)| m);
                let head: String = inner.chars().take(40).collect();
                !first.contains(&head)
            });
            problems.insert(0, first.replace('\n', "\n    "));
        }
        Ok((raw, problems))
    }

    pub fn from_raw(raw: RawConfig) -> Result<Config, Vec<String>> {
        let mut problems = Vec::new();
        let mut metadata_keys = Vec::new();
        for k in raw
            .attribution
            .metadata_keys
            .iter()
            .map(String::as_str)
            .chain(DEFAULT_METADATA_KEYS)
        {
            if k.trim().is_empty() {
                problems.push("`attribution.metadata_keys`: an empty key".to_string());
            } else if !metadata_keys.iter().any(|x| x == k) {
                metadata_keys.push(k.to_string());
            }
        }
        for p in &raw.attribution.shared_principals {
            let body = p.strip_suffix('*').unwrap_or(p);
            if body.is_empty() || body.contains('*') {
                problems.push(format!("`attribution.shared_principals`: `{p}` must be an ARN, or an ARN prefix ending in a single `*`"));
            }
        }
        for r in &raw.attribution.developer_roles {
            let body = r.strip_suffix('*').unwrap_or(r);
            if body.is_empty() || body.contains(['*', '/', ':']) {
                problems.push(format!("`attribution.developer_roles`: `{r}` must be a role name, or a name prefix ending in a single `*`"));
            }
        }
        for (field, keys) in [
            ("team_tags", &raw.attribution.team_tags),
            ("cost_center_tags", &raw.attribution.cost_center_tags),
        ] {
            if keys
                .as_ref()
                .is_some_and(|k| k.iter().any(|k| k.trim().is_empty()))
            {
                problems.push(format!("`attribution.{field}`: an empty tag key"));
            }
        }
        for (k, v) in &raw.aliases {
            if k.trim().is_empty() {
                problems.push("`aliases`: an empty name".to_string());
            }
            if v.trim().is_empty() {
                problems.push(format!("`aliases.\"{k}\"`: the developer is empty"));
            } else if raw.aliases.contains_key(v) && v != k {
                problems.push(format!("`aliases.\"{k}\"` = `{v}`, which is itself an alias (of `{}`): aliases do not chain", raw.aliases[v]));
            }
        }
        for (d, dev) in &raw.developers {
            if let Some(t) = &dev.team {
                if !raw.teams.is_empty() && !raw.teams.contains_key(t) {
                    problems.push(format!(
                        "`developers.{d}.team` = `{t}`: no such team under [teams] (known: {})",
                        raw.teams.keys().cloned().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            if raw.aliases.contains_key(d) {
                problems.push(format!("`developers.{d}`: `{d}` is also an alias (of `{}`), so it can never be attributed", raw.aliases[d]));
            }
        }
        for (k, v) in &raw.models {
            if v.trim().is_empty() {
                problems.push(format!("`models.\"{k}\"`: the model id is empty"));
            }
            if v.contains("application-inference-profile/") {
                problems.push(format!("`models.\"{k}\"` = `{v}`: map to a model id or system profile, not to another application profile"));
            }
        }
        if let Some(c) = &raw.pricing.catalog {
            if c.trim().is_empty() {
                problems.push("`pricing.catalog`: an empty path".to_string());
            }
        }
        let sources = check_sources(&raw.sources, &mut problems);
        let mut sync = SyncSettings::default();
        for (field, value, slot) in [
            ("overlap", &raw.sync.overlap, &mut sync.overlap_ms),
            ("interval", &raw.sync.interval, &mut sync.interval_ms),
        ] {
            if let Some(v) = value {
                match crate::time::parse_duration_ms(v) {
                    Some(ms) if ms > 0 => *slot = ms,
                    _ => problems.push(format!(
                        "`sync.{field}` = `{v}`: not a duration (90s, 15m, 1h)"
                    )),
                }
            }
        }
        sync.publish_metrics = raw.sync.publish_metrics;
        sync.metrics_region = raw.sync.metrics_region;
        let gateway = check_gateway(raw.gateway, &mut problems);
        let (alerts, channels, budgets) =
            crate::budget::check(raw.alerts, raw.channels, raw.budgets, &mut problems);
        let digests = crate::budget::check_digests(raw.digests, &channels, &mut problems);
        for (i, d) in digests.iter().enumerate() {
            for k in &d.by {
                if crate::report::GroupKey::parse(k).is_none() {
                    problems.push(format!(
                        "`digests[{i}] ({}).by`: unknown key `{k}` (the keys of `report --by`)",
                        d.name
                    ));
                }
            }
        }
        let mut serve = ServeSettings::default();
        if let Some(u) = &raw.serve.public_url {
            if u.starts_with("https://") || u.starts_with("http://") {
                serve.public_url = Some(u.trim_end_matches('/').to_string());
            } else {
                problems.push(format!(
                    "`serve.public_url` = `{u}`: not an http:// or https:// URL"
                ));
            }
        }
        serve.listen = raw.serve.listen.clone();
        for (i, h) in raw.serve.access_token_sha256.iter().enumerate() {
            let t = h.trim().to_ascii_lowercase();
            if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                serve.access_token_sha256.push(t);
            } else {
                problems.push(format!("`serve.access_token_sha256[{i}]`: not a SHA-256 in hex (64 digits; `printf %s TOKEN | sha256sum`)"));
            }
        }
        match raw.serve.metrics_max_series {
            Some(0) => problems.push("`serve.metrics_max_series` = 0: give at least 1".into()),
            Some(n) => serve.metrics_max_series = n,
            None => {}
        }
        if let Some(n) = raw.serve.cache_seconds {
            if n > 3600 {
                problems.push(format!(
                    "`serve.cache_seconds` = {n}: at most 3600 (an hour); 0 turns the cache off"
                ));
            } else {
                serve.cache_seconds = n;
            }
        }
        let limits = crate::limits::check_limits(raw.limits, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            serve,
            limits,
            sources,
            sync,
            gateway,
            alerts,
            channels,
            budgets,
            digests,
            metadata_keys,
            shared_principals: raw.attribution.shared_principals,
            developer_roles: raw.attribution.developer_roles,
            iam_tags: raw.attribution.iam_tags,
            team_tags: raw
                .attribution
                .team_tags
                .unwrap_or_else(|| vec!["Team".into(), "team".into()]),
            cost_center_tags: raw.attribution.cost_center_tags.unwrap_or_else(|| {
                vec!["CostCenter".into(), "cost-center".into(), "Project".into()]
            }),
            aliases: raw.aliases.into_iter().collect(),
            developers: raw
                .developers
                .into_iter()
                .map(|(k, v)| (k, (v.team, v.cost_center)))
                .collect(),
            team_cost_centers: raw
                .teams
                .into_iter()
                .filter_map(|(k, v)| v.cost_center.map(|c| (k, c)))
                .collect(),
            models: raw.models.into_iter().collect(),
            catalog_path: raw.pricing.catalog,
        })
    }

    /// The configuration with no file: defaults only.
    pub fn defaults() -> Config {
        match Config::from_raw(RawConfig::default()) {
            Ok(c) => c,
            Err(p) => unreachable!("defaults are valid: {p:?}"),
        }
    }
}

fn check_gateway(raw: RawGateway, problems: &mut Vec<String>) -> GatewaySettings {
    let mut g = GatewaySettings::default();
    if let Some(l) = &raw.listen {
        if l.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "`gateway.listen` = `{l}`: not an address and port (127.0.0.1:8750, [::1]:8750)"
            ));
        }
    }
    if let Some(u) = &raw.upstream {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            problems.push(format!(
                "`gateway.upstream` = `{u}`: not an http:// or https:// URL"
            ));
        }
    }
    if let Some(r) = &raw.assume_role_arn {
        if !r.starts_with("arn:") || !r.contains(":role/") {
            problems.push(format!(
                "`gateway.assume_role_arn` = `{r}`: not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            ));
        }
    }
    if raw.tls_cert.is_some() != raw.tls_key.is_some() {
        problems.push("`gateway.tls_cert` and `gateway.tls_key`: give both or neither".to_string());
    }
    match raw.max_request_mb {
        Some(0) => problems.push("`gateway.max_request_mb` = `0`: must be at least 1".into()),
        Some(mb) => g.max_request_bytes = mb.saturating_mul(1024 * 1024),
        None => {}
    }
    for (field, value, slot) in [
        (
            "upstream_timeout",
            &raw.upstream_timeout,
            &mut g.upstream_timeout_ms,
        ),
        ("drain_timeout", &raw.drain_timeout, &mut g.drain_timeout_ms),
    ] {
        if let Some(v) = value {
            match crate::time::parse_duration_ms(v) {
                Some(ms) if ms > 0 => *slot = ms,
                _ => problems.push(format!(
                    "`gateway.{field}` = `{v}`: not a duration (30s, 10m)"
                )),
            }
        }
    }
    g.listen = raw.listen;
    g.upstream = raw.upstream;
    g.region = raw.region;
    g.profile = raw.profile;
    g.assume_role_arn = raw.assume_role_arn;
    g.tls_cert = raw.tls_cert;
    g.tls_key = raw.tls_key;
    g.insecure_listen = raw.insecure_listen;
    match &raw.redis_url {
        Some(u) if u.starts_with("redis://") => g.redis_url = Some(u.clone()),
        Some(u) => problems.push(format!(
            "`gateway.redis_url` = `{u}`: use redis://HOST:PORT (rediss:// is not supported yet: reach Redis over a private network or a local TLS tunnel)"
        )),
        None => {}
    }
    match raw.default_max_tokens {
        None => {}
        Some(n) if (1..=10_000_000).contains(&n) => g.default_max_tokens = n as u64,
        Some(n) => problems.push(format!(
            "`gateway.default_max_tokens` = {n}: a whole number of tokens from 1 to 10000000"
        )),
    }
    g
}

fn check_access(
    place: &str,
    region: &Option<String>,
    profile: &Option<String>,
    role_arn: &Option<String>,
    endpoint_url: &Option<String>,
    problems: &mut Vec<String>,
) -> AwsAccess {
    if let Some(r) = role_arn {
        if !r.starts_with("arn:") || !r.contains(":role/") {
            problems.push(format!(
                "`{place}.role_arn` = `{r}`: not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
            ));
        }
    }
    if let Some(u) = endpoint_url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            problems.push(format!(
                "`{place}.endpoint_url` = `{u}`: must start with http:// or https://"
            ));
        }
    }
    if let Some(r) = region {
        if r.trim().is_empty() || r.contains(char::is_whitespace) {
            problems.push(format!("`{place}.region` = `{r}`: not a region name"));
        }
    }
    AwsAccess {
        region: region.clone(),
        profile: profile.clone(),
        role_arn: role_arn.clone(),
        endpoint_url: endpoint_url.clone(),
    }
}

fn check_sources(raw: &RawSources, problems: &mut Vec<String>) -> Vec<Source> {
    let mut out = Vec::new();
    for (i, c) in raw.cloudwatch.iter().enumerate() {
        let place = format!("sources.cloudwatch[{i}]");
        if c.log_group.trim().is_empty() {
            problems.push(format!("`{place}.log_group`: empty"));
        }
        if !c.log_streams.is_empty() && c.log_stream_prefix.is_some() {
            problems.push(format!(
                "`{place}`: set `log_streams` or `log_stream_prefix`, not both (CloudWatch takes one)"
            ));
        }
        let access = check_access(
            &place,
            &c.region,
            &c.profile,
            &c.role_arn,
            &c.endpoint_url,
            problems,
        );
        out.push(Source::CloudWatch {
            log_group: c.log_group.clone(),
            log_streams: c.log_streams.clone(),
            log_stream_prefix: c.log_stream_prefix.clone(),
            access,
        });
    }
    for (i, s) in raw.s3.iter().enumerate() {
        let place = format!("sources.s3[{i}]");
        let bucket = s.bucket.trim_start_matches("s3://").trim_end_matches('/');
        if bucket.is_empty() || bucket.contains('/') {
            problems.push(format!(
                "`{place}.bucket` = `{}`: a bucket name only; put the key prefix in `prefix`",
                s.bucket
            ));
        }
        let mut prefix = s
            .prefix
            .clone()
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        let access = check_access(
            &place,
            &s.region,
            &s.profile,
            &s.role_arn,
            &s.endpoint_url,
            problems,
        );
        out.push(Source::S3 {
            bucket: bucket.to_string(),
            prefix,
            access,
        });
    }
    for (i, a) in out.iter().enumerate() {
        if out[..i].iter().any(|b| b == a) {
            problems.push(format!("`sources`: {} is listed twice", a.label()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_at_once() {
        let text = r#"
[attribution]
metadata_keys = ["", "dev"]
shared_principals = ["arn:*:x*"]
[aliases]
"bob@example.com" = "bob"
"b" = "bob@example.com"
[developers.alice]
team = "nope"
[teams.platform]
cost_center = "CC-1"
[models]
"arn:x" = ""
"#;
        let err = Config::parse(text, "c.toml")
            .expect_err("invalid")
            .to_string();
        for needle in [
            "metadata_keys",
            "shared_principals",
            "aliases.\"b\"",
            "developers.alice.team",
            "models.\"arn:x\"",
        ] {
            assert!(err.contains(needle), "{needle} missing in {err}");
        }
        assert!(err.contains("5 problem(s)"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_place() {
        let err = Config::parse("[attribution]\nmetadata_key = [\"x\"]\n", "c.toml")
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("metadata_key") && err.contains("c.toml"),
            "{err}"
        );
    }

    #[test]
    fn sources_are_checked_and_normalized() {
        let text = r#"
[[sources.cloudwatch]]
log_group = "/aws/bedrock/invocations"
region = "us-east-1"
role_arn = "arn:aws:iam::123456789012:role/reader"
[[sources.s3]]
bucket = "s3://logs-bucket/"
prefix = "bedrock"
[sync]
overlap = "5m"
publish_metrics = true
"#;
        let c = Config::parse(text, "c.toml").expect("ok");
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[1].label(), "s3://logs-bucket/bedrock/");
        assert_eq!(c.sync.overlap_ms, 300_000);
        assert_eq!(c.sync.interval_ms, 60_000);
        assert!(c.sync.publish_metrics);
        let bad = r#"
[[sources.cloudwatch]]
log_group = ""
log_streams = ["a"]
log_stream_prefix = "b"
role_arn = "reader"
endpoint_url = "localhost:5000"
[[sources.s3]]
bucket = "b/logs"
[sync]
interval = "soon"
"#;
        let err = Config::parse(bad, "c.toml").expect_err("bad").to_string();
        for needle in [
            "sources.cloudwatch[0].log_group",
            "not both",
            "sources.cloudwatch[0].role_arn",
            "sources.cloudwatch[0].endpoint_url",
            "sources.s3[0].bucket",
            "sync.interval",
        ] {
            assert!(err.contains(needle), "{needle} missing in {err}");
        }
    }

    #[test]
    fn defaults_read_developer_then_user() {
        let c =
            Config::parse("[attribution]\nmetadata_keys = [\"engineer\"]\n", "c.toml").expect("ok");
        assert_eq!(c.metadata_keys, ["engineer", "developer", "user"]);
    }
}
