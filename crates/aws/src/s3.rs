//! S3: the invocation-log delivery layout, listed by date partition, and its objects.
//!
//! Bedrock delivers to `PREFIX/AWSLogs/ACCOUNT/BedrockModelInvocationLogs/REGION/YYYY/MM/DD/HH/`
//! gzip objects of JSON lines; large bodies go to `.../HH/data/` and one
//! `amazon-bedrock-logs-permission-check` object is written when logging is set up.

use aws_config::SdkConfig;
pub use aws_sdk_s3::Client;
use bedrock_usage_core::layout;

use crate::{classify, retry, Backoff, Failure};

/// An S3 client for `conf`; path-style addressing when the endpoint is overridden (emulators
/// and most S3-compatible stores do not resolve `BUCKET.host` names).
pub fn client(conf: &SdkConfig) -> Client {
    let mut b = aws_sdk_s3::config::Builder::from(conf);
    if conf.endpoint_url().is_some() {
        b = b.force_path_style(true);
    }
    Client::from_conf(b.build())
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: Option<i64>,
}

/// One page of `ListObjectsV2`.
#[derive(Debug, Default)]
pub struct Listing {
    pub objects: Vec<Object>,
    /// Common prefixes (with a delimiter).
    pub prefixes: Vec<String>,
    pub next: Option<String>,
}

/// One page of keys under `prefix`, after `start_after`, optionally grouped by `delimiter`.
pub async fn list_page(
    client: &Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<&str>,
    delimiter: Option<&str>,
    token: Option<&str>,
    max_keys: Option<i32>,
) -> Result<Listing, Failure> {
    let out = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_start_after(start_after.map(str::to_string))
        .set_delimiter(delimiter.map(str::to_string))
        .set_continuation_token(token.map(str::to_string))
        .set_max_keys(max_keys)
        .send()
        .await
        .map_err(|e| classify(e).context(&format!("listing s3://{bucket}/{prefix}")))?;
    Ok(Listing {
        objects: out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Object {
                    key: o.key()?.to_string(),
                    etag: o.e_tag().unwrap_or_default().trim_matches('"').to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    last_modified_ms: o.last_modified().and_then(|t| t.to_millis().ok()),
                })
            })
            .collect(),
        prefixes: out
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix().map(str::to_string))
            .collect(),
        next: out
            .next_continuation_token()
            .filter(|t| !t.is_empty() && out.is_truncated().unwrap_or(true))
            .map(str::to_string),
    })
}

/// Every page of common prefixes of `prefix` (delimiter `/`).
async fn sub_prefixes(
    client: &Client,
    bucket: &str,
    prefix: &str,
    backoff: &Backoff,
    retries: &mut u64,
) -> Result<Vec<String>, Failure> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = retry(
            backoff,
            || {
                list_page(
                    client,
                    bucket,
                    prefix,
                    None,
                    Some("/"),
                    token.as_deref(),
                    None,
                )
            },
            |_, _| *retries += 1,
        )
        .await?;
        out.extend(page.prefixes);
        match page.next {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// The prefixes under which date partitions (`YYYY/`) start (for Bedrock's layout,
/// `.../BedrockModelInvocationLogs/REGION/`): walks common prefixes down from `prefix`, at most
/// six levels and 200 listings. Empty if there are none.
pub async fn date_roots(
    client: &Client,
    bucket: &str,
    prefix: &str,
    backoff: &Backoff,
    retries: &mut u64,
) -> Result<Vec<String>, Failure> {
    let mut roots = Vec::new();
    let mut level = vec![prefix.to_string()];
    let mut listings = 0;
    for _ in 0..6 {
        let mut next = Vec::new();
        for p in &level {
            listings += 1;
            if listings > 200 {
                return Ok(roots);
            }
            for c in sub_prefixes(client, bucket, p, backoff, retries).await? {
                if layout::is_year_prefix(&c) {
                    if !roots.contains(p) {
                        roots.push(p.clone());
                    }
                } else {
                    next.push(c);
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(roots)
}

/// The newest invocation-log object under `prefix`: down the last year, month, day and hour
/// partition of each date root, then the latest object there (key, last modified).
pub async fn newest_object(
    client: &Client,
    bucket: &str,
    prefix: &str,
    backoff: &Backoff,
) -> Result<Option<(String, i64)>, Failure> {
    let mut retries = 0;
    let mut best: Option<(String, i64)> = None;
    for root in date_roots(client, bucket, prefix, backoff, &mut retries).await? {
        let mut p = root;
        for _ in 0..4 {
            let subs = sub_prefixes(client, bucket, &p, backoff, &mut retries).await?;
            match subs.into_iter().filter(|s| !s.ends_with("/data/")).max() {
                Some(s) => p = s,
                None => break,
            }
        }
        let page = retry(
            backoff,
            || list_page(client, bucket, &p, None, None, None, None),
            |_, _| retries += 1,
        )
        .await?;
        for o in page
            .objects
            .into_iter()
            .filter(|o| !layout::is_skipped_key(&o.key))
        {
            if let Some(t) = o.last_modified_ms {
                if best.as_ref().is_none_or(|b| t > b.1) {
                    best = Some((o.key, t));
                }
            }
        }
    }
    Ok(best)
}

/// The whole content of an object.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, Failure> {
    let what = || format!("reading s3://{bucket}/{key}");
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| classify(e).context(&what()))?;
    let body = out.body.collect().await.map_err(|e| {
        Failure::new(
            crate::Kind::Transient,
            "ReadBody",
            format!("{}: the connection broke mid-body: {e}", what()),
        )
    })?;
    Ok(body.into_bytes().to_vec())
}

/// Does the bucket exist and may we list it?
pub async fn head_bucket(client: &Client, bucket: &str) -> Result<(), Failure> {
    client
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| classify(e).context(&format!("checking bucket {bucket}")))?;
    Ok(())
}

/// Writes `body` to `s3://bucket/key` (one PUT; an object replaced whole or not at all).
pub async fn put(client: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), Failure> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(aws_sdk_s3::primitives::ByteStream::from(body))
        .send()
        .await
        .map_err(|e| classify(e).context(&format!("writing s3://{bucket}/{key}")))?;
    Ok(())
}

/// An object's content, or `None` when there is no such key.
pub async fn get_if_exists(
    client: &Client,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, Failure> {
    match get(client, bucket, key).await {
        Ok(b) => Ok(Some(b)),
        Err(f) if f.code == "NoSuchKey" || f.code == "NotFound" => Ok(None),
        Err(f) => Err(f),
    }
}
