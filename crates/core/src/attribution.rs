//! Attribution: who made a call. Defaults (DESIGN.md): a request-metadata key (`developer`, then
//! `user`, after any configured keys), else the session name of an assumed role, else the IAM user
//! name, else the whole ARN, else `unknown`. Config aliases map any of these names to a developer,
//! and developers to a team and cost center.
//!
//! Rule kept here: a principal that carries several developers' traffic is never shown as a
//! person. Its calls without a metadata signal are attributed to `shared:ROLE/SESSION` and flagged.
//! A principal is shared when its calls carry two or more different developers in metadata, when
//! its session name is an EC2 instance id (an instance profile) that no alias claims, or when the
//! config lists it under `attribution.shared_principals`.

use std::collections::{HashMap, HashSet};

use crate::config::Config;

/// The identity facts of a call, as stored: the principal and the metadata signal, if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub principal: String,
    /// (metadata key, value) of the first configured key the call carried.
    pub signal: Option<(String, String)>,
}

/// A principal ARN taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal<'a> {
    User { name: &'a str },
    AssumedRole { role: &'a str, session: &'a str },
    Other(&'a str),
    Unknown,
}

pub fn parse_principal(arn: &str) -> Principal<'_> {
    if arn.trim().is_empty() {
        return Principal::Unknown;
    }
    let resource = match arn.splitn(6, ':').nth(5) {
        Some(r) if arn.starts_with("arn:") => r,
        _ => return Principal::Other(arn),
    };
    if let Some(rest) = resource.strip_prefix("assumed-role/") {
        if let Some((role, session)) = rest.split_once('/') {
            if !role.is_empty() && !session.is_empty() {
                return Principal::AssumedRole { role, session };
            }
        }
    } else if let Some(rest) = resource.strip_prefix("user/") {
        if let Some(name) = rest.rsplit('/').next().filter(|n| !n.is_empty()) {
            return Principal::User { name };
        }
    }
    Principal::Other(arn)
}

/// `i-0a1b2c3d` or `i-0a1b2c3d4e5f67890`: an EC2 instance id, as an instance profile's session.
pub fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|h| {
        (h.len() == 8 || h.len() == 17) && h.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// How a call was attributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Metadata,
    Session,
    User,
    Arn,
    Shared,
    Unknown,
}

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    pub developer: String,
    pub team: Option<String>,
    pub cost_center: Option<String>,
    pub via: Via,
}

impl Attribution {
    pub fn is_shared(&self) -> bool {
        self.via == Via::Shared
    }
}

/// Resolves identities to developers, teams and cost centers.
pub struct Attributor<'c> {
    config: &'c Config,
    shared: HashSet<String>,
    /// Why each shared principal is shared (for warnings).
    pub shared_reasons: HashMap<String, String>,
}

impl<'c> Attributor<'c> {
    /// Builds an attributor that knows which of `identities` (every identity in the data being
    /// reported) belong to shared principals.
    pub fn new<'a>(
        config: &'c Config,
        identities: impl IntoIterator<Item = &'a Identity>,
    ) -> Attributor<'c> {
        let mut devs_by_principal: HashMap<&str, HashSet<String>> = HashMap::new();
        let mut principals: HashSet<&str> = HashSet::new();
        for id in identities {
            principals.insert(&id.principal);
            if let Some((_, v)) = &id.signal {
                devs_by_principal
                    .entry(&id.principal)
                    .or_default()
                    .insert(resolve_alias(config, v).to_string());
            }
        }
        let mut shared_reasons = HashMap::new();
        for p in principals {
            let reason = if config
                .shared_principals
                .iter()
                .any(|pat| matches_pattern(pat, p))
            {
                Some("listed under `attribution.shared_principals`".to_string())
            } else if devs_by_principal.get(p).is_some_and(|d| d.len() >= 2) {
                let mut d: Vec<_> = devs_by_principal[p].iter().cloned().collect();
                d.sort();
                Some(format!(
                    "its calls name {} developers in request metadata ({})",
                    d.len(),
                    d.join(", ")
                ))
            } else if let Principal::AssumedRole { session, .. } = parse_principal(p) {
                (is_instance_id(session) && !config.aliases.contains_key(session) && !config.aliases.contains_key(p))
                    .then(|| format!("its session `{session}` is an EC2 instance id (an instance profile) that no alias claims"))
            } else {
                None
            };
            if let Some(r) = reason {
                shared_reasons.insert(p.to_string(), r);
            }
        }
        Attributor {
            config,
            shared: shared_reasons.keys().cloned().collect(),
            shared_reasons,
        }
    }

    pub fn is_shared(&self, principal: &str) -> bool {
        self.shared.contains(principal)
    }

    pub fn attribute(&self, id: &Identity) -> Attribution {
        let (developer, via) = self.developer(id);
        let (team, cost_center) = match self.config.developers.get(&developer) {
            Some((team, cc)) => {
                let cc = cc.clone().or_else(|| {
                    team.as_ref()
                        .and_then(|t| self.config.team_cost_centers.get(t).cloned())
                });
                (team.clone(), cc)
            }
            None => (None, None),
        };
        Attribution {
            developer,
            team,
            cost_center,
            via,
        }
    }

    fn developer(&self, id: &Identity) -> (String, Via) {
        if let Some((_, v)) = &id.signal {
            return (resolve_alias(self.config, v).to_string(), Via::Metadata);
        }
        if let Some(d) = self.config.aliases.get(&id.principal) {
            return (d.clone(), Via::Arn);
        }
        let shared = self.shared.contains(&id.principal);
        match parse_principal(&id.principal) {
            Principal::AssumedRole { role, session } => {
                if shared {
                    (format!("shared:{role}/{session}"), Via::Shared)
                } else {
                    (
                        resolve_alias(self.config, session).to_string(),
                        Via::Session,
                    )
                }
            }
            Principal::User { name } => (resolve_alias(self.config, name).to_string(), Via::User),
            Principal::Other(arn) if shared => (format!("shared:{arn}"), Via::Shared),
            Principal::Other(arn) => (resolve_alias(self.config, arn).to_string(), Via::Arn),
            Principal::Unknown => ("unknown".to_string(), Via::Unknown),
        }
    }
}

fn resolve_alias<'a>(config: &'a Config, name: &'a str) -> &'a str {
    config.aliases.get(name).map(String::as_str).unwrap_or(name)
}

fn matches_pattern(pattern: &str, principal: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => principal.starts_with(prefix),
        None => pattern == principal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(p: &str, dev: Option<&str>) -> Identity {
        Identity {
            principal: p.to_string(),
            signal: dev.map(|d| ("developer".to_string(), d.to_string())),
        }
    }

    const ROLE: &str =
        "arn:aws:sts::1:assumed-role/code-server-multi-dev-ec2-role/i-0a1b2c3d4e5f67890";

    #[test]
    fn defaults() {
        let c = Config::defaults();
        let ids = [
            id("arn:aws:iam::1:user/alice", None),
            id(
                "arn:aws:sts::1:assumed-role/AWSReservedSSO_Dev_x/bob@example.com",
                None,
            ),
            id(ROLE, Some("carol")),
            id(ROLE, None),
            id("", None),
            id("arn:aws:iam::1:root", None),
        ];
        let a = Attributor::new(&c, &ids);
        let devs: Vec<_> = ids.iter().map(|i| a.attribute(i).developer).collect();
        assert_eq!(
            devs,
            [
                "alice",
                "bob@example.com",
                "carol",
                "shared:code-server-multi-dev-ec2-role/i-0a1b2c3d4e5f67890",
                "unknown",
                "arn:aws:iam::1:root"
            ]
        );
        assert!(a.attribute(&ids[3]).is_shared());
    }

    #[test]
    fn aliases_teams_and_shared_rules() {
        let c = Config::parse(
            r#"
[attribution]
shared_principals = ["arn:aws:sts::1:assumed-role/ci/*"]
[aliases]
"bob@example.com" = "bob"
"i-0a1b2c3d4e5f67890" = "erin"
[developers.bob]
team = "payments"
[developers.erin]
team = "platform"
cost_center = "CC-9"
[teams.payments]
cost_center = "CC-1"
[teams.platform]
"#,
            "c",
        )
        .expect("config");
        let ids = [
            id(
                "arn:aws:sts::1:assumed-role/AWSReservedSSO_Dev_x/bob@example.com",
                None,
            ),
            id(ROLE, None),
            id("arn:aws:sts::1:assumed-role/ci/run-1", None),
            id("arn:aws:sts::1:assumed-role/box/s", Some("x")),
            id("arn:aws:sts::1:assumed-role/box/s", Some("y")),
            id("arn:aws:sts::1:assumed-role/box/s", None),
        ];
        let a = Attributor::new(&c, &ids);
        let bob = a.attribute(&ids[0]);
        assert_eq!(
            (
                bob.developer.as_str(),
                bob.team.as_deref(),
                bob.cost_center.as_deref()
            ),
            ("bob", Some("payments"), Some("CC-1"))
        );
        // An aliased instance id is a person, not a shared principal.
        let erin = a.attribute(&ids[1]);
        assert_eq!(
            (
                erin.developer.as_str(),
                erin.cost_center.as_deref(),
                erin.is_shared()
            ),
            ("erin", Some("CC-9"), false)
        );
        assert!(a.attribute(&ids[2]).is_shared());
        assert_eq!(a.attribute(&ids[3]).developer, "x");
        assert!(
            a.attribute(&ids[5]).is_shared(),
            "two developers in metadata make the principal shared"
        );
    }

    #[test]
    fn principals() {
        assert_eq!(
            parse_principal("arn:aws:iam::1:user/path/to/dave"),
            Principal::User { name: "dave" }
        );
        assert_eq!(
            parse_principal("arn:aws:sts::1:assumed-role/r/s"),
            Principal::AssumedRole {
                role: "r",
                session: "s"
            }
        );
        assert!(is_instance_id("i-0a1b2c3d") && !is_instance_id("i-xyz") && !is_instance_id("bob"));
    }
}
