//! `keys create | list | revoke`: the gateway's keys. A new key is printed once; the store keeps
//! a hash of its secret (see `gateway::keys`).

use bedrock_usage_core::time::{format_utc, parse_date, parse_duration_ms, parse_timestamp_ms};

use crate::cli::KeysCommand;
use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::gateway::keys;
use crate::invalid;
use crate::output::{emit, Cell, Format, Records};

pub fn run(ctx: &Context, cmd: &KeysCommand) -> Result<u8> {
    match cmd {
        KeysCommand::Create {
            developer,
            team,
            expires,
            label,
        } => create(
            ctx,
            developer,
            team.as_deref(),
            expires.as_deref(),
            label.as_deref(),
        ),
        KeysCommand::List => list(ctx),
        KeysCommand::Revoke { id } => revoke(ctx, id),
    }
}

fn create(
    ctx: &Context,
    developer: &str,
    team: Option<&str>,
    expires: Option<&str>,
    label: Option<&str>,
) -> Result<u8> {
    let developer = developer.trim();
    if developer.is_empty() {
        invalid!("--developer: empty");
    }
    let now = ctx.clock.now_ms();
    let expires_ms = match expires {
        None => None,
        Some(e) => {
            let e = e.trim();
            let at = parse_duration_ms(e)
                .filter(|d| *d > 0)
                .map(|d| now + d)
                .or_else(|| parse_date(e).map(|d| d * 86_400_000))
                .or_else(|| parse_timestamp_ms(e));
            match at {
                Some(at) if at > now => Some(at),
                Some(_) => invalid!("--expires: `{e}` is in the past"),
                None => invalid!(
                    "--expires: `{e}` is not a duration from now (90d, 12h) or a date (2027-03-01)"
                ),
            }
        }
    };
    // The config's team for the developer, unless one is given.
    let team = team.map(String::from).or_else(|| {
        ctx.config
            .developers
            .get(developer)
            .and_then(|(t, _)| t.clone())
    });
    let (key, stored) = keys::generate(developer, team, label.map(String::from), now, expires_ms)
        .map_err(|e| Error::Invalid(format!("no randomness for a key: {e}")))?;
    let mut store = ctx.open_store()?;
    store.add_key(&stored)?;
    match ctx.format {
        Format::Json => emit(
            &(serde_json::json!({
                "key": key,
                "id": stored.id,
                "developer": stored.developer,
                "team": stored.team,
                "label": stored.label,
                "expires": stored.expires_ms.map(format_utc),
            })
            .to_string()
                + "\n"),
        )?,
        _ => {
            emit(&format!("{key}\n"))?;
            eprintln!(
                "Key {} for {}{}{}. It is shown only now: give it to them as AWS_BEARER_TOKEN_BEDROCK.",
                stored.id,
                stored.developer,
                stored.team.as_deref().map(|t| format!(" (team {t})")).unwrap_or_default(),
                stored
                    .expires_ms
                    .map(|e| format!(", valid until {}", format_utc(e)))
                    .unwrap_or_default()
            );
        }
    }
    Ok(EXIT_OK)
}

fn list(ctx: &Context) -> Result<u8> {
    let store = ctx.open_store()?;
    let now = ctx.clock.now_ms();
    let opt = |v: &Option<String>| v.clone().map_or(Cell::Null, Cell::Text);
    let rows = store
        .keys()?
        .iter()
        .map(|k| {
            let state = if k.revoked_ms.is_some() {
                "revoked"
            } else if k.expires_ms.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            vec![
                Cell::text(&k.id),
                Cell::text(&k.developer),
                opt(&k.team),
                opt(&k.label),
                Cell::text(format_utc(k.created_ms)),
                k.expires_ms
                    .map_or(Cell::Null, |e| Cell::text(format_utc(e))),
                k.revoked_ms
                    .map_or(Cell::Null, |e| Cell::text(format_utc(e))),
                Cell::text(state),
            ]
        })
        .collect();
    Records {
        fields: [
            "id",
            "developer",
            "team",
            "label",
            "created",
            "expires",
            "revoked",
            "state",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
    .print(ctx.format)?;
    Ok(EXIT_OK)
}

fn revoke(ctx: &Context, id: &str) -> Result<u8> {
    // The whole key works too: its id is the part after `bu_`.
    let id = id
        .trim()
        .strip_prefix("bu_")
        .and_then(|r| r.split('_').next())
        .unwrap_or(id.trim());
    let mut store = ctx.open_store()?;
    if !store.revoke_key(id, ctx.clock.now_ms())? {
        invalid!("no key with id `{id}` (see `bedrock-usage keys list`)");
    }
    eprintln!("Revoked key {id}; a running gateway refuses it within a second.");
    Ok(EXIT_OK)
}
