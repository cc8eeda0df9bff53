//! `serve`: the JSON API and `/metrics` (crate::serve's router), on loopback by default; off
//! loopback only with access tokens, and with TLS unless --insecure-listen. `--sync` runs the
//! configured sources' `sync --watch` loop in the same process (it checks alerts after every
//! round); `--alerts` alone checks them every minute. Ctrl-C stops it gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::AwsArgs;
use crate::context::Context;
use crate::error::{Error, Result, EXIT_OK};
use crate::gateway::server;
use crate::invalid;
use crate::serve::{router, ServeState, TOKENS_ENV};

/// `serve`: the flags as typed.
pub struct ServeArgs<'a> {
    pub listen: Option<&'a str>,
    pub sync: bool,
    pub alerts: bool,
    pub require_login: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_listen: bool,
}

pub fn run(ctx: &Context, a: &ServeArgs) -> Result<u8> {
    let listen_text = a
        .listen
        .or(ctx.config.serve.listen.as_deref())
        .unwrap_or("127.0.0.1:8760");
    let listen: SocketAddr = listen_text.parse().map_err(|_| {
        Error::Invalid(format!(
            "--listen: `{listen_text}` is not an address and port (127.0.0.1:8760, 0.0.0.0:8760, [::1]:8760)"
        ))
    })?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(server::tls_acceptor(c, k).map_err(Error::Invalid)?),
        (None, None) => None,
        _ => invalid!("--tls-cert and --tls-key: give both or neither"),
    };
    let loopback = server::is_loopback(&listen);
    let open = loopback && !a.require_login;
    let state = ServeState::new(ctx.clone(), open)?;
    if !open {
        if state.token_hashes.is_empty() {
            if loopback {
                invalid!("--require-login: every request needs an access token; set {TOKENS_ENV} (comma-separated tokens) or `[serve] access_token_sha256` in the config");
            }
            invalid!("--listen {listen}: beyond loopback every request needs an access token; set {TOKENS_ENV} (comma-separated tokens) or `[serve] access_token_sha256` in the config");
        }
        if !loopback && tls.is_none() && !a.insecure_listen {
            invalid!("--listen {listen}: plain HTTP beyond loopback would send tokens in clear text; give --tls-cert and --tls-key, or --insecure-listen behind a TLS-terminating load balancer");
        }
    }
    if a.sync {
        let sync_ctx = ctx.clone();
        std::thread::spawn(move || {
            let aws = AwsArgs::default();
            let args = crate::commands::sync::SyncArgs {
                since: None,
                watch: true,
                interval: None,
                publish_metrics: false,
                log_groups: &[],
                s3: &[],
                page_size: None,
                progress: false,
                aws: &aws,
            };
            if let Err(e) = crate::commands::sync::run(&sync_ctx, &args) {
                tracing::error!(error = %e, "The sync loop stopped");
                eprintln!("error: the sync loop stopped: {e}");
            }
        });
    } else if a.alerts {
        let alert_ctx = ctx.clone();
        std::thread::spawn(move || loop {
            if let Err(e) = crate::alerts::check(&alert_ctx, false) {
                tracing::error!(error = %e, "alerts check failed");
            }
            if crate::shutdown::sleep(Duration::from_secs(60)) {
                break;
            }
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
            Error::Invalid(format!("--listen {listen}: cannot listen there: {e}"))
        })?;
        let bound = listener.local_addr()?;
        eprintln!(
            "bedrock-usage serve listening on {}://{bound} (API under /api/v1/, /metrics; {}); Ctrl-C stops",
            if tls.is_some() { "https" } else { "http" },
            if open { "loopback: no login" } else { "access tokens required: bearer, or log in at /login" }
        );
        tracing::info!(listen = %bound, "Server started");
        server::serve(
            listener,
            router(Arc::new(state)),
            tls,
            server::stop_signal(),
            Duration::from_secs(10),
        )
        .await;
        Ok::<(), Error>(())
    })?;
    Ok(EXIT_OK)
}
