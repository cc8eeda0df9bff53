//! Gateway keys: `bu_<id>_<secret>`, where the id is public (listed, revoked by) and the secret
//! is 192 random bits. The store keeps the SHA-256 of the secret, never the secret; a presented
//! key is found by its id and its secret compared in constant time. A key is printed once, by
//! `keys create`, and never logged.
//!
//! The gateway keeps the keys in memory and reads them again every [`REFRESH`], so a key made
//! or revoked while it runs takes effect within that time.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::GatewayKey;

/// How often a running gateway reads the keys again.
pub const REFRESH: Duration = Duration::from_secs(1);

const PREFIX: &str = "bu_";

/// A new key: the whole key to hand out once, and what the store keeps.
pub fn generate(
    developer: &str,
    team: Option<String>,
    label: Option<String>,
    created_ms: i64,
    expires_ms: Option<i64>,
) -> Result<(String, GatewayKey), getrandom::Error> {
    let mut id = [0u8; 6];
    let mut secret = [0u8; 24];
    getrandom::fill(&mut id)?;
    getrandom::fill(&mut secret)?;
    let (id, secret) = (hex(&id), hex(&secret));
    let key = format!("{PREFIX}{id}_{secret}");
    Ok((
        key,
        GatewayKey {
            secret_sha256: sha256(secret.as_bytes()),
            id,
            developer: developer.to_string(),
            team,
            label,
            created_ms,
            expires_ms,
            revoked_ms: None,
        },
    ))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256(b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&Sha256::digest(b));
    out
}

/// A key's id and secret, if it has the shape of one.
fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// Who a valid key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub developer: String,
    pub team: Option<String>,
}

/// Why a key was refused (the message tells the developer what to do; it never echoes the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

impl Refusal {
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::Missing => "No bedrock-usage gateway key: set AWS_BEARER_TOKEN_BEDROCK to the key `bedrock-usage keys create --developer NAME` printed (it is sent as `Authorization: Bearer KEY`).",
            Refusal::Malformed => "This is not a bedrock-usage gateway key (they look like bu_<id>_<secret>): set AWS_BEARER_TOKEN_BEDROCK to the key `bedrock-usage keys create` printed.",
            Refusal::Unknown => "Unknown bedrock-usage gateway key: ask for a new one (`bedrock-usage keys create --developer NAME`) and set AWS_BEARER_TOKEN_BEDROCK to it.",
            Refusal::Revoked => "This bedrock-usage gateway key was revoked: ask for a new one (`bedrock-usage keys create --developer NAME`) and set AWS_BEARER_TOKEN_BEDROCK to it.",
            Refusal::Expired => "This bedrock-usage gateway key has expired: ask for a new one (`bedrock-usage keys create --developer NAME`) and set AWS_BEARER_TOKEN_BEDROCK to it.",
        }
    }

    /// A short name for the access log.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown",
            Refusal::Revoked => "revoked",
            Refusal::Expired => "expired",
        }
    }
}

/// The keys a running gateway knows, by id.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<String, GatewayKey>>,
}

impl KeyRing {
    pub fn new(keys: Vec<GatewayKey>) -> KeyRing {
        let ring = KeyRing::default();
        ring.replace(keys);
        ring
    }

    /// Replaces the known keys with `keys` (as read again from the store).
    pub fn replace(&self, keys: Vec<GatewayKey>) {
        let map = keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        if let Ok(mut w) = self.keys.write() {
            *w = map;
        }
    }

    pub fn count(&self) -> usize {
        self.keys.read().map(|k| k.len()).unwrap_or(0)
    }

    /// Checks an `Authorization` header's value at `now_ms`.
    pub fn check(&self, authorization: Option<&str>, now_ms: i64) -> Result<Caller, Refusal> {
        let value = authorization.ok_or(Refusal::Missing)?.trim();
        let key = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(if value.starts_with("AWS4-HMAC-SHA256") {
                Refusal::Missing
            } else {
                Refusal::Malformed
            })?
            .trim();
        let (id, secret) = split(key).ok_or(Refusal::Malformed)?;
        let keys = self.keys.read().map_err(|_| Refusal::Unknown)?;
        let stored = keys.get(id).ok_or(Refusal::Unknown)?;
        let presented = sha256(secret.as_bytes());
        if !bool::from(presented.ct_eq(&stored.secret_sha256)) {
            return Err(Refusal::Unknown);
        }
        if stored.revoked_ms.is_some_and(|r| r <= now_ms) {
            return Err(Refusal::Revoked);
        }
        if stored.expires_ms.is_some_and(|e| e <= now_ms) {
            return Err(Refusal::Expired);
        }
        Ok(Caller {
            key_id: stored.id.clone(),
            developer: stored.developer.clone(),
            team: stored.team.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_checked_by_its_hash_and_its_dates() {
        let (key, stored) = generate("alice", Some("ml".into()), None, 1_000, Some(5_000)).unwrap();
        assert!(
            key.starts_with("bu_") && key.len() == 3 + 12 + 1 + 48,
            "{key}"
        );
        assert!(!stored.secret_sha256.iter().all(|b| *b == 0));
        let ring = KeyRing::new(vec![stored.clone()]);
        let bearer = format!("Bearer {key}");
        let caller = ring.check(Some(&bearer), 2_000).unwrap();
        assert_eq!(caller.developer, "alice");
        assert_eq!(caller.team.as_deref(), Some("ml"));
        assert_eq!(ring.check(Some(&bearer), 5_000), Err(Refusal::Expired));
        assert_eq!(ring.check(None, 2_000), Err(Refusal::Missing));
        assert_eq!(
            ring.check(Some("Bearer nope"), 2_000),
            Err(Refusal::Malformed)
        );
        let wrong = format!("Bearer bu_{}_{}", stored.id, "0".repeat(48));
        assert_eq!(ring.check(Some(&wrong), 2_000), Err(Refusal::Unknown));
        let other = format!("Bearer bu_ffffffffffff_{}", "0".repeat(48));
        assert_eq!(ring.check(Some(&other), 2_000), Err(Refusal::Unknown));
        let revoked = GatewayKey {
            revoked_ms: Some(1_500),
            ..stored
        };
        ring.replace(vec![revoked]);
        assert_eq!(ring.check(Some(&bearer), 2_000), Err(Refusal::Revoked));
    }

    #[test]
    fn refusals_never_echo_the_key() {
        for r in [
            Refusal::Missing,
            Refusal::Malformed,
            Refusal::Unknown,
            Refusal::Revoked,
            Refusal::Expired,
        ] {
            assert!(r.message().contains("AWS_BEARER_TOKEN_BEDROCK"));
        }
    }
}
