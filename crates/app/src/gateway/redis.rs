//! Limits shared by every gateway replica: the same decisions as the core's `Ledger`, kept in
//! Redis and made by Lua scripts (each runs atomically on the server, so two replicas cannot
//! both take the last place in a window or the last dollar of a budget).
//!
//! Layout, under `bu:` + the check's key:
//! - requests per minute: a sorted set of admitted call ids scored by admission time (exact);
//! - tokens per minute: a hash of 1-second buckets (the window slides by the second);
//! - concurrency: a sorted set of call ids scored by when their hold lapses (a replica that
//!   dies cannot hold places for ever);
//! - a hard budget: a hash (`spent`, `reserved`), and the open reservations (`:res` id -> cost,
//!   `:lease` id -> lapse time). `spent` is seeded from the store by the first replica that
//!   sees the period (HSETNX), then grows by what each replica settles.
//!
//! A single Redis (or a primary and its replicas) is expected, not Redis Cluster: the scripts
//! name keys they compute. Money crosses into Lua as strings (HINCRBY adds them exactly);
//! comparisons in Lua are doubles, exact to 2^53 nano-dollars (about $9 million).

use std::time::Duration;

use bedrock_usage_core::limits::{Check, Refused, WINDOW_MS};
use bedrock_usage_core::NanoUsd;
use redis::aio::ConnectionManager;

/// How long one call to Redis may take before it counts as unavailable.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// How long a hold lasts when its replica never settles it.
pub const LEASE_MS: i64 = 3_600_000;

const ADMIT: &str = r#"
local now, id, cost, lease = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local checks = cjson.decode(ARGV[5])
local W = 60000
for i, c in ipairs(checks) do
  local k = "bu:" .. c.key
  if c.kind == "rpm" then
    redis.call("ZREMRANGEBYSCORE", k, "-inf", now - W)
    local n = redis.call("ZCARD", k)
    if n >= c.n then
      local first = redis.call("ZRANGE", k, n - c.n, n - c.n, "WITHSCORES")
      return {"rate", i, tonumber(first[2]) + W - now}
    end
  elseif c.kind == "tpm" then
    local h = redis.call("HGETALL", k)
    local secs, sum = {}, 0
    for j = 1, #h, 2 do
      local s, v = tonumber(h[j]), tonumber(h[j + 1])
      if (s + 1) * 1000 <= now - W then
        redis.call("HDEL", k, h[j])
      else
        sum = sum + v
        table.insert(secs, {s, v})
      end
    end
    if sum >= c.n then
      table.sort(secs, function(a, b) return a[1] < b[1] end)
      for _, e in ipairs(secs) do
        sum = sum - e[2]
        if sum < c.n then return {"rate", i, (e[1] + 1) * 1000 + W - now} end
      end
      return {"rate", i, W}
    end
  elseif c.kind == "conc" then
    redis.call("ZREMRANGEBYSCORE", k, "-inf", now)
    if redis.call("ZCARD", k) >= c.n then return {"conc", i, 0} end
  elseif c.kind == "budget" then
    local dead = redis.call("ZRANGEBYSCORE", k .. ":lease", "-inf", now)
    for _, d in ipairs(dead) do
      local v = redis.call("HGET", k .. ":res", d)
      if v then redis.call("HINCRBY", k, "reserved", "-" .. v) end
      redis.call("HDEL", k .. ":res", d)
      redis.call("ZREM", k .. ":lease", d)
    end
    local spent = tonumber(redis.call("HGET", k, "spent") or "0")
    local reserved = tonumber(redis.call("HGET", k, "reserved") or "0")
    if spent + reserved + cost > c.n then return {"budget", i, spent, reserved} end
  end
end
for _, c in ipairs(checks) do
  local k = "bu:" .. c.key
  if c.kind == "rpm" then
    redis.call("ZADD", k, now, id)
    redis.call("PEXPIRE", k, 2 * W)
  elseif c.kind == "conc" then
    redis.call("ZADD", k, lease, id)
    redis.call("PEXPIRE", k, lease - now + W)
  elseif c.kind == "budget" then
    redis.call("HINCRBY", k, "reserved", ARGV[3])
    redis.call("HSET", k .. ":res", id, ARGV[3])
    redis.call("ZADD", k .. ":lease", lease, id)
    redis.call("PEXPIRE", k, c.ttl)
    redis.call("PEXPIRE", k .. ":res", c.ttl)
    redis.call("PEXPIRE", k .. ":lease", c.ttl)
  end
end
return {"ok"}
"#;

/// Ends a call: ARGV now, id, admitted at, tokens, actual cost (or -1: released), checks.
const END: &str = r#"
local now, id, at, tokens, actual = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local checks = cjson.decode(ARGV[6])
for _, c in ipairs(checks) do
  local k = "bu:" .. c.key
  if c.kind == "tpm" and actual >= 0 and tokens > 0 then
    local s = math.floor(at / 1000)
    if (s + 1) * 1000 <= now - 60000 then s = math.floor(now / 1000) end
    redis.call("HINCRBY", k, tostring(s), ARGV[4])
    redis.call("PEXPIRE", k, 120000)
  elseif c.kind == "conc" then
    redis.call("ZREM", k, id)
  elseif c.kind == "budget" then
    local v = redis.call("HGET", k .. ":res", id)
    if v then
      redis.call("HINCRBY", k, "reserved", "-" .. v)
      redis.call("HDEL", k .. ":res", id)
      redis.call("ZREM", k .. ":lease", id)
    end
    if actual > 0 then redis.call("HINCRBY", k, "spent", ARGV[5]) end
  end
end
return 1
"#;

/// Seeds budget counts the store knows (key, spend, ttl ms) where Redis has none yet.
const SEED: &str = r#"
for j = 1, #ARGV, 3 do
  local k = "bu:" .. ARGV[j]
  redis.call("HSETNX", k, "spent", ARGV[j + 1])
  redis.call("PEXPIRE", k, tonumber(ARGV[j + 2]))
end
return 1
"#;

/// Reads where counts stand (for `/me`): for each key, the window sum or the budget's hash.
const READ: &str = r#"
local now = tonumber(ARGV[1])
local checks = cjson.decode(ARGV[2])
local out = {}
for _, c in ipairs(checks) do
  local k = "bu:" .. c.key
  if c.kind == "rpm" then
    table.insert(out, redis.call("ZCOUNT", k, now - 60000 + 1, "+inf"))
    table.insert(out, 0)
  elseif c.kind == "tpm" then
    local h = redis.call("HGETALL", k)
    local sum = 0
    for j = 1, #h, 2 do
      if (tonumber(h[j]) + 1) * 1000 > now - 60000 then sum = sum + tonumber(h[j + 1]) end
    end
    table.insert(out, sum)
    table.insert(out, 0)
  elseif c.kind == "conc" then
    table.insert(out, redis.call("ZCOUNT", k, now + 1, "+inf"))
    table.insert(out, 0)
  else
    table.insert(out, tonumber(redis.call("HGET", k, "spent") or "0"))
    table.insert(out, tonumber(redis.call("HGET", k, "reserved") or "0"))
  end
end
return out
"#;

/// The Redis side of the limits of one gateway process.
pub struct Shared {
    client: redis::Client,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    admit: redis::Script,
    end: redis::Script,
    seed: redis::Script,
    read: redis::Script,
}

/// Redis did not answer (or answered an error): the caller decides by `on_unavailable`.
#[derive(Debug, Clone)]
pub struct Unavailable(pub String);

fn wire(checks: &[Check], now: i64) -> String {
    let v: Vec<serde_json::Value> = checks
        .iter()
        .map(|c| match c {
            Check::Requests {
                key, per_minute, ..
            } => serde_json::json!({"kind": "rpm", "key": key, "n": per_minute}),
            Check::Tokens {
                key, per_minute, ..
            } => serde_json::json!({"kind": "tpm", "key": key, "n": per_minute}),
            Check::Concurrent { key, max, .. } => {
                serde_json::json!({"kind": "conc", "key": key, "n": max})
            }
            Check::Budget {
                key,
                amount,
                resets_ms,
                ..
            } => serde_json::json!({
                "kind": "budget", "key": key, "n": amount.0,
                // Kept a week past the period's end, then gone.
                "ttl": (resets_ms - now).max(0) + 7 * 86_400_000,
            }),
        })
        .collect();
    serde_json::Value::Array(v).to_string()
}

impl Shared {
    pub fn new(url: &str) -> Result<Shared, String> {
        // The URL may hold a password: never in a message.
        let client =
            redis::Client::open(url).map_err(|e| format!("not a Redis URL ({})", e.category()))?;
        Ok(Shared {
            client,
            conn: tokio::sync::Mutex::new(None),
            admit: redis::Script::new(ADMIT),
            end: redis::Script::new(END),
            seed: redis::Script::new(SEED),
            read: redis::Script::new(READ),
        })
    }

    /// The connection (made on first use and again after a failure).
    async fn conn(&self) -> Result<ConnectionManager, Unavailable> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let made = tokio::time::timeout(TIMEOUT, self.client.get_connection_manager())
            .await
            .map_err(|_| Unavailable("no connection within 500 ms".into()))?
            .map_err(|e| Unavailable(e.to_string()))?;
        *slot = Some(made.clone());
        Ok(made)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        inv: redis::ScriptInvocation<'_>,
    ) -> Result<T, Unavailable> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(TIMEOUT, inv.invoke_async::<T>(&mut c)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Unavailable(e.to_string())),
            Err(_) => Err(Unavailable("no answer within 500 ms".into())),
        }
    }

    /// Admits the call against every check, all or nothing, in one script.
    pub async fn admit(
        &self,
        checks: &[Check],
        cost: NanoUsd,
        id: &str,
        now: i64,
    ) -> Result<Result<(), Refused>, Unavailable> {
        let mut inv = self.admit.prepare_invoke();
        inv.arg(now)
            .arg(id)
            .arg(cost.0)
            .arg(now + LEASE_MS)
            .arg(wire(checks, now));
        let got: Vec<redis::Value> = self.run(inv).await?;
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            redis::Value::SimpleString(s) => s.clone(),
            _ => String::new(),
        };
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        };
        let verdict = got.first().map(text).unwrap_or_default();
        if verdict == "ok" {
            return Ok(Ok(()));
        }
        let i = (int(got.get(1)) - 1).max(0) as usize;
        let c = checks
            .get(i)
            .ok_or_else(|| Unavailable("a script answer out of range".into()))?;
        Ok(Err(match (verdict.as_str(), c) {
            (
                "rate",
                Check::Requests {
                    limit, per_minute, ..
                },
            ) => Refused::Rate {
                limit: limit.clone(),
                what: "requests",
                per_minute: *per_minute,
                retry_after_ms: int(got.get(2)).max(1),
            },
            (
                "rate",
                Check::Tokens {
                    limit, per_minute, ..
                },
            ) => Refused::Rate {
                limit: limit.clone(),
                what: "tokens",
                per_minute: *per_minute,
                retry_after_ms: int(got.get(2)).max(1),
            },
            ("conc", Check::Concurrent { limit, max, .. }) => Refused::Concurrent {
                limit: limit.clone(),
                max: *max,
            },
            (
                "budget",
                Check::Budget {
                    budget,
                    amount,
                    resets_ms,
                    period,
                    ..
                },
            ) => Refused::Budget {
                budget: budget.clone(),
                period: period.clone(),
                spent: NanoUsd(int(got.get(2))),
                reserved: NanoUsd(int(got.get(3))),
                amount: *amount,
                estimate: cost,
                resets_ms: *resets_ms,
            },
            _ => {
                return Err(Unavailable(format!(
                    "an unexpected script answer `{verdict}`"
                )))
            }
        }))
    }

    /// Ends a call: `actual` settles it (with its tokens), `None` releases it.
    pub async fn end(
        &self,
        checks: &[Check],
        id: &str,
        at_ms: i64,
        tokens: u64,
        actual: Option<NanoUsd>,
        now: i64,
    ) -> Result<(), Unavailable> {
        let mut inv = self.end.prepare_invoke();
        inv.arg(now)
            .arg(id)
            .arg(at_ms)
            .arg(tokens)
            .arg(actual.map_or(-1, |a| a.0))
            .arg(wire(checks, now));
        self.run::<i64>(inv).await.map(drop)
    }

    /// Seeds budget counts Redis has none of with the store's spend.
    pub async fn seed(&self, spend: &[(String, NanoUsd, i64)]) -> Result<(), Unavailable> {
        if spend.is_empty() {
            return Ok(());
        }
        let mut inv = self.seed.prepare_invoke();
        for (k, s, ttl) in spend {
            inv.arg(k).arg(s.0).arg(*ttl);
        }
        self.run::<i64>(inv).await.map(drop)
    }

    /// For each check: (count or spent, reserved).
    pub async fn read(&self, checks: &[Check], now: i64) -> Result<Vec<(i64, i64)>, Unavailable> {
        let mut inv = self.read.prepare_invoke();
        inv.arg(now).arg(wire(checks, now));
        let v: Vec<i64> = self.run(inv).await?;
        Ok(v.chunks(2)
            .map(|c| (c[0], c.get(1).copied().unwrap_or(0)))
            .collect())
    }
}

/// Whether `WINDOW_MS` is the windows' length here too (the scripts spell it out).
const _: () = assert!(WINDOW_MS == 60_000);
