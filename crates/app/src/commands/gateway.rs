//! `gateway`: checks the flags over the `[gateway]` section, connects to AWS (credentials,
//! who Bedrock will see), opens the store's keys and recorder, and serves until a stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use bedrock_usage_core::config::AwsAccess;
use bedrock_usage_core::time::parse_duration_ms;

use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::gateway::keys::{KeyRing, REFRESH};
use crate::gateway::limits::{Limiter, REFRESH as LIMITS_REFRESH};
use crate::gateway::recorder::Recorder;
use crate::gateway::upstream::Upstream;
use crate::gateway::{router, server, Gateway, Principal};
use crate::invalid;

/// `gateway`: the flags as typed.
pub struct GatewayArgs<'a> {
    pub listen: Option<&'a str>,
    pub upstream: Option<&'a str>,
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
    pub assume_role_arn: Option<&'a str>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_listen: bool,
    pub drain_timeout: Option<&'a str>,
}

pub fn run(ctx: &Context, a: &GatewayArgs) -> Result<u8> {
    let g = &ctx.config.gateway;
    let listen_text = a.listen.or(g.listen.as_deref()).unwrap_or("127.0.0.1:8750");
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        Error::Invalid(format!(
            "--listen: `{listen_text}` is not an address and port (127.0.0.1:8750, 0.0.0.0:8750, [::1]:8750)"
        ))
    })?;
    let tls_cert = a
        .tls_cert
        .clone()
        .or_else(|| g.tls_cert.clone().map(PathBuf::from));
    let tls_key = a
        .tls_key
        .clone()
        .or_else(|| g.tls_key.clone().map(PathBuf::from));
    let tls = match (&tls_cert, &tls_key) {
        (Some(c), Some(k)) => Some(server::tls_acceptor(c, k).map_err(Error::Invalid)?),
        (None, None) => None,
        _ => invalid!("--tls-cert and --tls-key: give both or neither"),
    };
    if tls.is_none() && !server::is_loopback(&listen) && !(a.insecure_listen || g.insecure_listen) {
        invalid!(
            "--listen {listen}: plain HTTP beyond loopback would send every key in clear text; give --tls-cert and --tls-key, or --insecure-listen behind a TLS-terminating load balancer"
        );
    }
    let drain = match a.drain_timeout {
        Some(d) => match parse_duration_ms(d) {
            Some(ms) if ms > 0 => ms,
            _ => invalid!("--drain-timeout: `{d}` is not a duration (30s, 2m)"),
        },
        None => g.drain_timeout_ms,
    };
    let upstream_url = a.upstream.map(String::from).or_else(|| g.upstream.clone());
    if let Some(u) = &upstream_url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            invalid!("--upstream: `{u}` is not an http:// or https:// URL");
        }
    }
    let assume_role = a
        .assume_role_arn
        .map(String::from)
        .or_else(|| g.assume_role_arn.clone());
    if let Some(r) = &assume_role {
        if !(r.starts_with("arn:") && r.contains(":role/")) {
            invalid!("--assume-role-arn: `{r}` is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)");
        }
    }
    let access = AwsAccess {
        region: a.region.map(String::from).or_else(|| g.region.clone()),
        profile: a.profile.map(String::from).or_else(|| g.profile.clone()),
        role_arn: None,
        endpoint_url: None,
    };
    let db = ctx.db_path()?;
    let store = ctx.open_store()?;
    let keys = Arc::new(KeyRing::new(store.keys()?));
    drop(store);
    let (recorder, writer) = Recorder::start(db.clone(), ctx.config.metadata_keys.clone())?;
    let limits = Limiter::new(ctx.clone(), db.clone())?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result: Result<()> = rt.block_on(async {
        // The budgets' spend is read (with Redis: seeded) before the first call is admitted.
        limits.refresh_async().await?;
        let sdk = bedrock_usage_aws::connect(&access)
            .await
            .map_err(|f| Error::aws(&f, "cannot start the gateway: ", "the gateway's AWS credentials and region"))?;
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        // Who Bedrock will see: asked once; a gateway whose STS is out of reach still serves.
        let (account_id, caller_arn) = match tokio::time::timeout(
            Duration::from_secs(5),
            bedrock_usage_aws::setup::caller(&sdk),
        )
        .await
        {
            Ok(Ok(x)) => x,
            Ok(Err(f)) => {
                tracing::warn!(error = %f.message, "STS did not say who the gateway's credentials are; calls are recorded with principal `bedrock-usage-gateway`");
                (String::new(), "bedrock-usage-gateway".to_string())
            }
            Err(_) => {
                tracing::warn!("STS did not answer in 5s; calls are recorded with principal `bedrock-usage-gateway`");
                (String::new(), "bedrock-usage-gateway".to_string())
            }
        };
        let principal = match &assume_role {
            None => Principal::Fixed(caller_arn),
            Some(role) => {
                // arn:aws:iam::ACCT:role/PATH/NAME -> arn:aws:sts::ACCT:assumed-role/NAME/
                let partition = role.split(':').nth(1).unwrap_or("aws");
                let acct = role.split(':').nth(4).unwrap_or("");
                let name = role.rsplit('/').next().unwrap_or("");
                Principal::PerDeveloper(format!("arn:{partition}:sts::{acct}:assumed-role/{name}/"))
            }
        };
        let signer = bedrock_usage_aws::signer::Signer::new(&sdk, &region, assume_role.as_deref())
            .map_err(|f| Error::aws(&f, "cannot start the gateway: ", "the gateway's AWS credentials"))?;
        let upstream = Upstream::new(
            signer,
            upstream_url.as_deref(),
            Duration::from_millis(g.upstream_timeout_ms as u64),
        )
        .map_err(Error::Invalid)?;
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            Error::Invalid(format!("--listen {listen}: cannot listen there: {e}"))
        })?;
        let bound = listener.local_addr()?;
        let state = Arc::new(Gateway {
            keys: keys.clone(),
            upstream,
            recorder,
            principal,
            account_id,
            max_request_bytes: g.max_request_bytes as usize,
            open: AtomicU64::new(0),
            limits: limits.clone(),
        });
        eprintln!(
            "bedrock-usage gateway listening on {}://{bound} (upstream {}, region {region}, {} key(s)); Ctrl-C stops",
            if tls.is_some() { "https" } else { "http" },
            state.upstream.runtime_url(),
            keys.count()
        );
        tracing::info!(listen = %bound, upstream = state.upstream.runtime_url(), region = %region, "Gateway started");
        // Limits and budgets follow the config file and the store's spend within LIMITS_REFRESH.
        let refresh_limits = limits.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LIMITS_REFRESH).await;
                if let Err(e) = refresh_limits.refresh_async().await {
                    tracing::error!(error = %e, "Could not read the budgets' spend again; keeping the figures known");
                }
            }
        });
        // Keys made or revoked while the gateway runs take effect within REFRESH.
        let refresh_db = db.clone();
        let refresh_keys = keys.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let db = refresh_db.clone();
                let read = tokio::task::spawn_blocking(move || {
                    crate::store::open_read_only(&db).and_then(|s| s.keys())
                })
                .await;
                match read {
                    Ok(Ok(k)) => refresh_keys.replace(k),
                    Ok(Err(e)) => tracing::warn!(error = %e, "Could not read the keys again; keeping the ones known"),
                    Err(_) => {}
                }
            }
        });
        server::serve(
            listener,
            router(state),
            tls,
            server::stop_signal(),
            Duration::from_millis(drain as u64),
        )
        .await;
        Ok(())
    });
    // Every request is done (or cut); shut the runtime so the last recorder handles drop.
    rt.shutdown_timeout(Duration::from_secs(1));
    result?;
    let written = writer.finish();
    eprintln!("bedrock-usage gateway stopped; {written} call(s) recorded in this run");
    Ok(EXIT_OK)
}
