//! IAM tags of the users and roles seen in the logs (`attribution.iam_tags`): the team and cost
//! center a report shows where the config names none.

use std::collections::BTreeMap;

use aws_config::SdkConfig;

use crate::{classify, Failure, Kind};

/// The tags of an IAM user or role, by its ARN (`arn:aws:iam::ACCOUNT:user/NAME` or
/// `...:role/NAME`, as the core's `attribution::iam_entity` makes them). An entity that no longer
/// exists has no tags.
pub async fn tags(conf: &SdkConfig, entity: &str) -> Result<BTreeMap<String, String>, Failure> {
    let iam = aws_sdk_iam::Client::new(conf);
    let resource = entity.splitn(6, ':').nth(5).unwrap_or("");
    let mut out = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let page = if let Some(name) = resource.strip_prefix("user/") {
            iam.list_user_tags()
                .user_name(name)
                .set_marker(marker.clone())
                .send()
                .await
                .map(|o| {
                    (
                        o.tags().to_vec(),
                        o.is_truncated(),
                        o.marker().map(String::from),
                    )
                })
                .map_err(classify)
        } else if let Some(name) = resource.strip_prefix("role/") {
            iam.list_role_tags()
                .role_name(name)
                .set_marker(marker.clone())
                .send()
                .await
                .map(|o| {
                    (
                        o.tags().to_vec(),
                        o.is_truncated(),
                        o.marker().map(String::from),
                    )
                })
                .map_err(classify)
        } else {
            return Err(Failure::new(
                Kind::Invalid,
                "NotAnEntity",
                format!("`{entity}` is not an IAM user or role ARN"),
            ));
        };
        let (tags, truncated, next) = match page {
            Ok(p) => p,
            Err(f) if f.kind == Kind::NotFound => return Ok(out),
            Err(f) => return Err(f.context(&format!("reading the tags of {entity}"))),
        };
        for t in tags {
            out.insert(t.key().to_string(), t.value().to_string());
        }
        match (truncated, next) {
            (true, Some(m)) => marker = Some(m),
            _ => return Ok(out),
        }
    }
}
