//! CloudWatch Logs: pages of invocation-log events, and what a log group holds.

pub use aws_sdk_cloudwatchlogs::Client;

use crate::{classify, Failure};

/// Which streams of a log group to read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StreamFilter {
    /// Exactly these streams (empty: not this way).
    pub names: Vec<String>,
    /// Streams whose names start with this.
    pub prefix: Option<String>,
}

/// One log event: its timestamp (epoch ms) and message (one invocation record).
#[derive(Debug, Clone)]
pub struct Event {
    pub timestamp_ms: i64,
    pub message: String,
}

/// One page of `FilterLogEvents`.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<Event>,
    pub next_token: Option<String>,
}

/// One page of events of `group` with timestamps in `[start_ms, end_ms)`.
pub async fn filter_page(
    client: &Client,
    group: &str,
    streams: &StreamFilter,
    start_ms: i64,
    end_ms: i64,
    token: Option<&str>,
    limit: Option<i32>,
) -> Result<Page, Failure> {
    let mut req = client
        .filter_log_events()
        .log_group_name(group)
        .start_time(start_ms)
        // FilterLogEvents' end time is inclusive.
        .end_time(end_ms - 1)
        .set_next_token(token.map(str::to_string))
        .set_limit(limit);
    if !streams.names.is_empty() {
        req = req.set_log_stream_names(Some(streams.names.clone()));
    } else if let Some(p) = &streams.prefix {
        req = req.log_stream_name_prefix(p);
    }
    let out = req
        .send()
        .await
        .map_err(|e| classify(e).context(&format!("reading log group {group}")))?;
    let events = out
        .events()
        .iter()
        .filter_map(|e| {
            Some(Event {
                timestamp_ms: e.timestamp()?,
                message: e.message()?.to_string(),
            })
        })
        .collect();
    // Some implementations hand back the same token at the end; treat that as the end.
    let next_token = out
        .next_token()
        .filter(|t| !t.is_empty() && Some(*t) != token)
        .map(str::to_string);
    Ok(Page { events, next_token })
}

/// What `DescribeLogGroups` says of one group.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    pub name: String,
    pub arn: Option<String>,
    pub creation_ms: Option<i64>,
    pub retention_days: Option<i32>,
}

/// The log group named exactly `name`, if it exists.
pub async fn describe_group(client: &Client, name: &str) -> Result<Option<GroupInfo>, Failure> {
    let mut token = None;
    loop {
        let out = client
            .describe_log_groups()
            .log_group_name_prefix(name)
            .set_next_token(token)
            .send()
            .await
            .map_err(|e| classify(e).context(&format!("describing log group {name}")))?;
        for g in out.log_groups() {
            if g.log_group_name() == Some(name) {
                return Ok(Some(GroupInfo {
                    name: name.to_string(),
                    arn: g.arn().map(str::to_string),
                    creation_ms: g.creation_time(),
                    retention_days: g.retention_in_days(),
                }));
            }
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
}

/// The newest event time over the group's streams (by `DescribeLogStreams`, newest first).
pub async fn newest_event_ms(client: &Client, group: &str) -> Result<Option<i64>, Failure> {
    let out = client
        .describe_log_streams()
        .log_group_name(group)
        .order_by(aws_sdk_cloudwatchlogs::types::OrderBy::LastEventTime)
        .descending(true)
        .limit(5)
        .send()
        .await
        .map_err(|e| classify(e).context(&format!("listing the streams of {group}")))?;
    Ok(out
        .log_streams()
        .iter()
        .filter_map(|s| s.last_event_timestamp())
        .max())
}

/// Creates `group` if it does not exist; true if it was created.
pub async fn ensure_group(client: &Client, group: &str) -> Result<bool, Failure> {
    match client.create_log_group().log_group_name(group).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let f = classify(e);
            if f.code == "ResourceAlreadyExistsException" {
                Ok(false)
            } else {
                Err(f.context(&format!("creating log group {group}")))
            }
        }
    }
}

/// Sets the retention of `group` to `days`.
pub async fn set_retention(client: &Client, group: &str, days: i32) -> Result<(), Failure> {
    client
        .put_retention_policy()
        .log_group_name(group)
        .retention_in_days(days)
        .send()
        .await
        .map_err(|e| classify(e).context(&format!("setting the retention of {group}")))?;
    Ok(())
}
