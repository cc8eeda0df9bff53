//! The call to Bedrock: the client's request with the gateway's headers, signed with SigV4
//! (`bedrock_usage_aws::signer`), sent over one pooled HTTP/1.1 or HTTP/2 client (rustls), the
//! response returned as soon as its head arrives, its body left streaming.
//!
//! Headers: hop-by-hop ones, the client's `Authorization` (the gateway key) and any
//! `x-amz-*` signing headers are dropped; everything else is passed on. `host`, `content-type`,
//! `accept` and `x-amzn-bedrock-*` are signed.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use bedrock_usage_aws::signer::Signer;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Where calls go and how they are signed.
pub struct Upstream {
    client: Client<Https, Full<Bytes>>,
    /// Runtime operations (`/model/...`), as `scheme://authority` with no trailing slash.
    runtime: String,
    /// Everything else (`/inference-profiles`, `/foundation-models`): Bedrock's control plane
    /// for the default endpoint, the same endpoint for a configured one.
    control: String,
    pub signer: Signer,
    timeout: Duration,
}

/// Why no response came back.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection (refused, unresolvable, TLS failed).
    Connect(String),
    /// No response head within the timeout.
    Timeout(Duration),
    /// The connection broke before a response head.
    Other(String),
    /// The gateway's own credentials or signature failed.
    Signing(String),
}

/// The default runtime endpoint of a region.
pub fn default_runtime(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

impl Upstream {
    pub fn new(
        signer: Signer,
        runtime: Option<&str>,
        timeout: Duration,
    ) -> Result<Upstream, String> {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let region = signer.region().to_string();
        let (runtime, control) = match runtime {
            Some(u) => {
                let u = u.trim_end_matches('/').to_string();
                (u.clone(), u)
            }
            None => (
                default_runtime(&region),
                format!("https://bedrock.{region}.amazonaws.com"),
            ),
        };
        runtime
            .parse::<Uri>()
            .map_err(|e| format!("the upstream `{runtime}` is not a URL: {e}"))?;
        let https = crate::publish::http::connector(true)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(https);
        Ok(Upstream {
            client,
            runtime,
            control,
            signer,
            timeout,
        })
    }

    /// The base URL runtime calls go to.
    pub fn runtime_url(&self) -> &str {
        &self.runtime
    }

    // The parts of one request, as the handlers hold them; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    /// Sends a request as `developer` (whose role session signs it, with `assume_role_arn`).
    pub async fn send(
        &self,
        developer: &str,
        method: &Method,
        path_and_query: &str,
        client_headers: &HeaderMap,
        extra: &[(HeaderName, HeaderValue)],
        body: Bytes,
        runtime: bool,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let base = if runtime {
            &self.runtime
        } else {
            &self.control
        };
        let uri_text = format!("{base}{path_and_query}");
        let uri: Uri = uri_text
            .parse()
            .map_err(|e| UpstreamError::Other(format!("bad upstream URI: {e}")))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .unwrap_or_default();
        let mut headers = HeaderMap::with_capacity(client_headers.len() + 6);
        for (name, value) in client_headers {
            if forwarded(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        let signed: Vec<(String, String)> = std::iter::once(("host".to_string(), host.clone()))
            .chain(
                headers
                    .iter()
                    .filter(|(n, _)| signed(n))
                    .filter_map(|(n, v)| {
                        v.to_str()
                            .ok()
                            .map(|v| (n.as_str().to_string(), v.to_string()))
                    }),
            )
            .collect();
        let creds = self
            .signer
            .credentials(developer)
            .await
            .map_err(|f| UpstreamError::Signing(f.to_string()))?;
        let pairs: Vec<(&str, &str)> = signed
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let add = self
            .signer
            .sign(
                &creds,
                method.as_str(),
                &uri_text,
                &pairs,
                &body,
                SystemTime::now(),
            )
            .map_err(|f| UpstreamError::Signing(f.to_string()))?;
        for (name, value) in add {
            let v = HeaderValue::from_str(&value)
                .map_err(|e| UpstreamError::Signing(format!("header {name}: {e}")))?;
            headers.insert(HeaderName::from_static(name), v);
        }
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| UpstreamError::Other(e.to_string()))?;
        *req.headers_mut() = headers;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Connect(chain(&e))),
            Ok(Err(e)) => Err(UpstreamError::Other(chain(&e))),
        }
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut c = e.source();
    while let Some(x) = c {
        s.push_str(": ");
        s.push_str(&x.to_string());
        c = x.source();
    }
    s
}

/// Whether a client's header goes upstream.
fn forwarded(name: &HeaderName) -> bool {
    let n = name.as_str();
    !matches!(
        n,
        "authorization"
            | "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
    ) && !n.starts_with("x-amz-")
}

/// Whether a header is part of the signature.
fn signed(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "content-type" || n == "accept" || n.starts_with("x-amzn-bedrock-")
}

/// Whether a response header goes back to the client (all but hop-by-hop ones).
pub fn returned(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}
