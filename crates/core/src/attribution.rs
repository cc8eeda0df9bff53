//! Attribution: who made a call. Defaults (DESIGN.md): a request-metadata key (`developer`, then
//! `user`, after any configured keys), else the session name of an assumed role, else the IAM user
//! name, else the whole ARN, else `unknown`. Config aliases map any of these names to a developer,
//! and developers to a team and cost center.
//!
//! Rule kept here: a principal that carries several developers' traffic is never shown as a
//! person. Its calls without a metadata signal are attributed to `shared:ROLE/SESSION` and flagged.
//! A principal is shared when its calls carry two or more different developers in metadata, when
//! its session name is an EC2 instance id (an instance profile) that no alias claims, or when the
//! config lists it under `attribution.shared_principals`. A session of a role listed under
//! `attribution.developer_roles` (one session per developer, `bedrock-usage credentials`) is
//! never shared: its session name is the person, and wins over request metadata.
//!
//! Teams and cost centers come from the config; where it names none, from the tags of the IAM
//! user or role behind the call (`attribution.iam_tags`, read by `sync`).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::config::Config;

/// The identity facts of a call, as stored: the principal and the metadata signal, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

/// The IAM user or role behind a principal: `arn:aws:iam::ACCOUNT:user/NAME` or
/// `arn:aws:iam::ACCOUNT:role/NAME` (without a path: the key IAM tags are filed under).
pub fn iam_entity(principal: &str) -> Option<String> {
    let mut parts = principal.splitn(6, ':');
    let (arn, partition, service, _region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || account.is_empty() {
        return None;
    }
    match (service, parse_principal(principal)) {
        ("iam", Principal::User { name }) => {
            Some(format!("arn:{partition}:iam::{account}:user/{name}"))
        }
        ("sts", Principal::AssumedRole { role, .. }) => {
            Some(format!("arn:{partition}:iam::{account}:role/{role}"))
        }
        _ => None,
    }
}

/// Tags of IAM users and roles, by [`iam_entity`].
pub type IamTags = HashMap<String, BTreeMap<String, String>>;

/// A name made valid for STS (`RoleSessionName`, `SourceIdentity`: 2 to 64 of `A-Za-z0-9_+=,.@-`):
/// every other character becomes `-`, so an e-mail address stays as it is. `None` when fewer than
/// two characters are left.
pub fn sts_name(name: &str) -> Option<String> {
    let s: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    (s.len() >= 2).then_some(s)
}

/// A value made valid for an STS session tag (up to 256 of letters, digits, spaces and
/// `_.:/=+-@`): every other character becomes `-`.
pub fn tag_value(value: &str) -> String {
    value
        .trim()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(256)
        .collect()
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
    /// A developer named in request metadata that was not believed: the call came from a
    /// personal principal (an IAM user, an SSO session, a developer-role session) that is
    /// someone else.
    pub claimed: Option<String>,
}

impl Attribution {
    pub fn is_shared(&self) -> bool {
        self.via == Via::Shared
    }
}

/// Resolves identities to developers, teams and cost centers.
pub struct Attributor<'c> {
    config: &'c Config,
    tags: Option<&'c IamTags>,
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
            let reason = if is_developer_role(config, p) {
                None
            } else if config
                .shared_principals
                .iter()
                .any(|pat| matches_pattern(pat, p))
            {
                Some("listed under `attribution.shared_principals`".to_string())
            } else if personal(config, p).is_none()
                && devs_by_principal.get(p).is_some_and(|d| d.len() >= 2)
            {
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
            tags: None,
            shared: shared_reasons.keys().cloned().collect(),
            shared_reasons,
        }
    }

    /// Uses the tags of IAM users and roles for teams and cost centers the config does not name.
    pub fn with_iam_tags(mut self, tags: &'c IamTags) -> Attributor<'c> {
        self.tags = Some(tags);
        self
    }

    /// The first of `keys` the principal's IAM user or role is tagged with.
    fn tag(&self, principal: &str, keys: &[String]) -> Option<String> {
        let tags = self.tags?.get(&iam_entity(principal)?)?;
        keys.iter().find_map(|k| tags.get(k).cloned())
    }

    pub fn is_shared(&self, principal: &str) -> bool {
        self.shared.contains(principal)
    }

    /// The developer a name stands for: its alias (matched case-insensitively), or itself.
    pub fn resolve_alias<'a>(&'a self, name: &'a str) -> &'a str {
        if let Some(d) = self.config.aliases.get(name) {
            return d;
        }
        self.config
            .aliases
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, d)| d.as_str())
            .unwrap_or(name)
    }

    pub fn attribute(&self, id: &Identity) -> Attribution {
        let (developer, via) = self.developer(id);
        let claimed = id
            .signal
            .as_ref()
            .map(|(_, v)| resolve_alias(self.config, v))
            .filter(|c| *c != developer)
            .map(str::to_string);
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
        // Where the config names nothing, the IAM tags of the user or role behind the call.
        let team = team.or_else(|| self.tag(&id.principal, &self.config.team_tags));
        let cost_center = cost_center
            .or_else(|| {
                team.as_ref()
                    .and_then(|t| self.config.team_cost_centers.get(t).cloned())
            })
            .or_else(|| self.tag(&id.principal, &self.config.cost_center_tags));
        Attribution {
            developer,
            team,
            cost_center,
            via,
            claimed,
        }
    }

    fn developer(&self, id: &Identity) -> (String, Via) {
        // A personal principal is its person, whatever its metadata claims: metadata is
        // believed only from principals that carry several people's calls.
        if let Some((name, via)) = personal(self.config, &id.principal) {
            if let Some(d) = self.config.aliases.get(&id.principal) {
                return (d.clone(), Via::Arn);
            }
            return (resolve_alias(self.config, name).to_string(), via);
        }
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

/// The person a personal principal is, and how it names them: an IAM user (its name), an IAM
/// Identity Center session (`AWSReservedSSO_*` roles: the user's name or e-mail), or a session of
/// a developer role. `None` for any other principal (a role many may assume).
fn personal<'a>(config: &Config, principal: &'a str) -> Option<(&'a str, Via)> {
    match parse_principal(principal) {
        Principal::User { name } => Some((name, Via::User)),
        Principal::AssumedRole { role, session }
            if role.starts_with("AWSReservedSSO_") || is_developer_role(config, principal) =>
        {
            Some((session, Via::Session))
        }
        _ => None,
    }
}

/// Whether `principal` is a session of a role under `attribution.developer_roles`.
fn is_developer_role(config: &Config, principal: &str) -> bool {
    let Principal::AssumedRole { role, .. } = parse_principal(principal) else {
        return false;
    };
    config
        .developer_roles
        .iter()
        .any(|pat| match pat.strip_suffix('*') {
            Some(prefix) => role.starts_with(prefix),
            None => role == pat,
        })
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

    #[test]
    fn sessions_of_developer_roles_are_people() {
        let cfg =
            Config::parse("[attribution]\ndeveloper_roles = [\"BedrockDev*\"]\n", "t").unwrap();
        let ids = [
            id("arn:aws:sts::1:assumed-role/BedrockDeveloper/alice", None),
            // Metadata naming others does not make a developer session shared, nor rename it.
            id(
                "arn:aws:sts::1:assumed-role/BedrockDeveloper/alice",
                Some("bob"),
            ),
            id(
                "arn:aws:sts::1:assumed-role/BedrockDeveloper/alice",
                Some("carol"),
            ),
            id(
                "arn:aws:sts::1:assumed-role/BedrockDeveloper/i-0a1b2c3d",
                None,
            ),
        ];
        let a = Attributor::new(&cfg, ids.iter());
        for i in &ids[..3] {
            let got = a.attribute(i);
            assert_eq!((got.developer.as_str(), got.via), ("alice", Via::Session));
        }
        assert!(!a.attribute(&ids[3]).is_shared());
        // Without the setting, the same traffic is shared.
        let plain = Config::defaults();
        let a = Attributor::new(&plain, ids.iter());
        assert!(a.attribute(&ids[0]).is_shared());
    }

    #[test]
    fn iam_tags_fill_what_the_config_leaves() {
        let cfg = Config::parse(
            "[developers.alice]\nteam = \"core\"\n[teams.core]\ncost_center = \"CC-1\"\n",
            "t",
        )
        .unwrap();
        let mut tags = IamTags::new();
        tags.insert(
            "arn:aws:iam::1:user/bob".into(),
            [
                ("Team".to_string(), "payments".to_string()),
                ("CostCenter".into(), "CC-9".into()),
            ]
            .into(),
        );
        tags.insert(
            "arn:aws:iam::1:role/dev".into(),
            [("Team".to_string(), "ml".to_string())].into(),
        );
        tags.insert(
            "arn:aws:iam::1:user/alice".into(),
            [("Team".to_string(), "ignored".to_string())].into(),
        );
        let ids = [
            id("arn:aws:iam::1:user/bob", None),
            id("arn:aws:sts::1:assumed-role/dev/carol", None),
            id("arn:aws:iam::1:user/alice", None),
        ];
        let a = Attributor::new(&cfg, ids.iter()).with_iam_tags(&tags);
        let got: Vec<_> = ids
            .iter()
            .map(|i| {
                let x = a.attribute(i);
                (x.developer, x.team, x.cost_center)
            })
            .collect();
        assert_eq!(
            got[0],
            ("bob".into(), Some("payments".into()), Some("CC-9".into()))
        );
        assert_eq!(got[1], ("carol".into(), Some("ml".into()), None));
        // The config wins where it speaks.
        assert_eq!(
            got[2],
            ("alice".into(), Some("core".into()), Some("CC-1".into()))
        );
    }

    #[test]
    fn names_valid_for_sts() {
        assert_eq!(
            sts_name("alice@example.com").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(sts_name("Zoë O'Neil").as_deref(), Some("Zo--O-Neil"));
        assert_eq!(sts_name("x"), None);
        assert_eq!(sts_name(&"a".repeat(80)).map(|s| s.len()), Some(64));
        assert_eq!(tag_value("Team #1 (ml)"), "Team -1 -ml-");
        assert_eq!(
            iam_entity("arn:aws:sts::123:assumed-role/Dev/alice").as_deref(),
            Some("arn:aws:iam::123:role/Dev")
        );
        assert_eq!(
            iam_entity("arn:aws-us-gov:iam::123:user/path/bob").as_deref(),
            Some("arn:aws-us-gov:iam::123:user/bob")
        );
        assert_eq!(iam_entity("not-an-arn"), None);
    }

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
