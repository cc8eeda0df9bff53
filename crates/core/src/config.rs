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
    pub aliases: HashMap<String, String>,
    pub developers: HashMap<String, (Option<String>, Option<String>)>,
    pub team_cost_centers: HashMap<String, String>,
    pub models: HashMap<String, String>,
    pub catalog_path: Option<String>,
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        Config::from_raw(raw).map_err(|problems| ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        })
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
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            metadata_keys,
            shared_principals: raw.attribution.shared_principals,
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
    fn defaults_read_developer_then_user() {
        let c =
            Config::parse("[attribution]\nmetadata_keys = [\"engineer\"]\n", "c.toml").expect("ok");
        assert_eq!(c.metadata_keys, ["engineer", "developer", "user"]);
    }
}
