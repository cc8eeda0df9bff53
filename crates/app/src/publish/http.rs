//! One HTTP(S) POST with a timeout, for the alert channels (Slack, webhooks). TLS through rustls
//! with the system's roots, as the gateway's upstream.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// HTTP or HTTPS (rustls, the system's roots), a 10-second connect timeout, no Nagle; HTTP/2
/// when `http2` (the gateway's upstream), else HTTP/1.1 only.
pub fn connector(http2: bool) -> Result<Https, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("cannot load the system's TLS roots: {e}"))?
        .https_or_http()
        .enable_http1();
    Ok(if http2 {
        b.enable_http2().wrap_connector(http)
    } else {
        b.wrap_connector(http)
    })
}

/// What went wrong with a request, in the words of its cause (the URL is never in it).
pub fn why(e: &hyper_util::client::legacy::Error) -> String {
    std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string())
}

#[derive(Clone)]
pub struct Poster {
    client: Client<Https, Full<Bytes>>,
}

impl Poster {
    pub fn new() -> Result<Poster, String> {
        Ok(Poster {
            client: Client::builder(TokioExecutor::new()).build(connector(false)?),
        })
    }

    /// POSTs `body` to `url`; Ok with the status when it is 2xx, else an error that says what
    /// happened (the URL itself is never in it: a webhook URL is a secret).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<u16, String> {
        let mut req = http::Request::post(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "the channel's URL is not a valid URL".to_string())?;
        let send = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("cannot connect: {}", why(&e)))?;
            let status = resp.status().as_u16();
            let text = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            if (200..300).contains(&status) {
                Ok(status)
            } else {
                let snippet: String = String::from_utf8_lossy(&text).chars().take(200).collect();
                Err(format!("answered HTTP {status}: {}", snippet.trim()))
            }
        };
        tokio::time::timeout(timeout, send)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs())))
    }
}

/// One GET from a command (no runtime of its own yet): the status and the whole body, or what
/// went wrong. HTTPS through rustls, plain HTTP for loopback servers and tests.
pub fn get_blocking(
    url: &str,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut req = http::Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|_| "not a valid URL".to_string())?;
        let send = async {
            let c: Client<_, Empty<Bytes>> =
                Client::builder(TokioExecutor::new()).build(connector(false)?);
            let resp = c
                .request(req)
                .await
                .map_err(|e| format!("cannot connect: {}", why(&e)))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, send)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", timeout.as_secs())))
    })
}
