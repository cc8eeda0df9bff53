//! bedrock-usage, the binary's library: thin layers of I/O around the pure core
//! (`bedrock-usage-core`). `main.rs` parses the arguments and calls [`run`], which builds the one
//! checked [`context::Context`] and hands it to a command.
//!
//! The layout follows the pipeline: `sources/` (where records come from, each owning its
//! checkpoints and cursors) -> `pipeline` (the one writer) -> `store/` (the seam and SQLite) ->
//! `commands/` (reports, queries, pricing, sync, ...) -> `output` (every format, one place);
//! `publish/` sends metrics out; `gateway/` is the Bedrock endpoint with keys that records every
//! call through the same writer. `serve/` is the JSON API and `/metrics`; `alerts/` delivers budget alerts.

pub mod alerts;
pub mod cli;
pub mod commands;
pub mod context;
pub mod error;
pub mod export;
pub mod gateway;
pub mod output;
pub mod pipeline;
pub mod private;
pub mod progress;
pub mod publish;
pub mod serve;
pub mod shutdown;
pub mod sources;
pub mod store;

use crate::cli::{
    Args, AwsCommand, Command, ConfigCommand, ExportCommand, PricingCommand, StoreCommand,
};
use crate::commands::{
    aws_setup, aws_status, budget, config, credentials, demo, gateway as gateway_cmd, ingest, keys,
    pricing, pricing_sources, query, report, serve as serve_cmd, store as store_cmd, sync,
};
use crate::context::Context;
use crate::error::{Result, EXIT_OK};

/// Runs the command the arguments name.
pub fn run(args: Args) -> Result<u8> {
    if let Command::Config {
        command: ConfigCommand::Check,
    } = &args.command
    {
        return config::check(args.config.as_deref());
    }
    let ctx = Context::build(&args)?;
    match &args.command {
        Command::Query {
            query,
            query_file,
            since,
            until,
            from,
            limit,
            max_record_mb,
            no_columns,
        } => {
            let text = match (query, query_file) {
                (Some(q), _) => q.clone(),
                (None, Some(p)) => {
                    std::fs::read_to_string(p).map_err(|source| error::Error::File {
                        what: "cannot read the query file",
                        path: p.clone(),
                        source,
                    })?
                }
                (None, None) => String::new(),
            };
            query::run(
                &ctx,
                &query::QueryArgs {
                    query: &text,
                    since: since.as_deref(),
                    until: until.as_deref(),
                    from,
                    limit: *limit,
                    max_record: max_record_mb.saturating_mul(1 << 20),
                    columns: !no_columns,
                },
            )
        }
        Command::Ingest {
            paths,
            strict,
            no_progress,
            max_record_mb,
        } => ingest::run(
            &ctx,
            paths,
            *strict,
            !*no_progress,
            max_record_mb.saturating_mul(1 << 20),
        ),
        Command::Report {
            by,
            since,
            until,
            tz,
            developer,
            team,
            model,
            top,
            send,
        } => report::run(
            &ctx,
            &report::ReportArgs {
                by,
                since: since.as_deref(),
                until: until.as_deref(),
                tz,
                developers: developer,
                teams: team,
                models: model,
                top: *top,
                send: send.as_deref(),
            },
        ),
        Command::Pricing { command, .. } => match command {
            PricingCommand::List { history } => pricing::list(&ctx, *history),
            PricingCommand::Show {
                model_id,
                date,
                region,
                input_tokens,
            } => pricing::show(
                &ctx,
                &pricing::ShowArgs {
                    model_id,
                    date: date.as_deref(),
                    region: region.as_deref(),
                    input_tokens: *input_tokens,
                },
            ),
            PricingCommand::Unpriced => pricing::unpriced(&ctx),
            PricingCommand::ImportAws {
                file,
                api,
                offer_url,
                output,
            } => pricing_sources::import(
                &ctx,
                file.as_deref(),
                *api,
                offer_url.as_deref(),
                output.as_deref(),
            ),
            PricingCommand::Diff { file } => pricing_sources::diff_file(&ctx, file),
            PricingCommand::Check { litellm, date } => {
                pricing_sources::check(&ctx, litellm, date.as_deref())
            }
        },
        Command::Config { .. } => Ok(EXIT_OK),
        Command::Export {
            command:
                ExportCommand::Parquet {
                    target,
                    since,
                    until,
                    athena_ddl,
                    table,
                    aws,
                },
        } => crate::commands::export::run(
            &ctx,
            &crate::commands::export::ExportArgs {
                target,
                aws,
                since: since.as_deref(),
                until: until.as_deref(),
                athena_ddl: *athena_ddl,
                table,
            },
        ),
        Command::Store { command } => match command {
            StoreCommand::Check { full } => store_cmd::check(&ctx, *full),
            StoreCommand::Backup { path } => store_cmd::backup(&ctx, path),
            StoreCommand::Columns { rebuild } => store_cmd::columns(&ctx, *rebuild),
        },
        Command::Serve {
            listen,
            sync,
            alerts,
            require_login,
            tls,
        } => serve_cmd::run(
            &ctx,
            &serve_cmd::ServeArgs {
                listen: listen.as_deref(),
                sync: *sync,
                alerts: *alerts,
                require_login: *require_login,
                tls_cert: tls.tls_cert.clone(),
                tls_key: tls.tls_key.clone(),
                insecure_listen: tls.insecure_listen,
            },
        ),
        Command::Gateway {
            listen,
            upstream,
            region,
            profile,
            assume_role_arn,
            tls,
            drain_timeout,
        } => gateway_cmd::run(
            &ctx,
            &gateway_cmd::GatewayArgs {
                listen: listen.as_deref(),
                upstream: upstream.as_deref(),
                region: region.as_deref(),
                profile: profile.as_deref(),
                assume_role_arn: assume_role_arn.as_deref(),
                tls_cert: tls.tls_cert.clone(),
                tls_key: tls.tls_key.clone(),
                insecure_listen: tls.insecure_listen,
                drain_timeout: drain_timeout.as_deref(),
            },
        ),
        Command::Keys { command } => keys::run(&ctx, command),
        Command::Me { gateway } => crate::commands::me::run(&ctx, gateway.as_deref()),
        Command::Alerts { command } => match command {
            cli::AlertsCommand::Check { dry_run } => alerts::check(&ctx, *dry_run),
            cli::AlertsCommand::Outbox => alerts::outbox(&ctx),
        },
        Command::Budget { command } => match command {
            cli::BudgetCommand::Status => budget::status(&ctx),
        },
        Command::Credentials {
            role_arn,
            developer,
            team,
            cost_center,
            duration,
            output,
            refresh,
            aws,
        } => credentials::run(
            &ctx,
            &credentials::CredentialsArgs {
                role_arn,
                developer,
                team: team.as_deref(),
                cost_center: cost_center.as_deref(),
                duration,
                output: *output,
                refresh: *refresh,
                aws,
            },
        ),
        Command::Sync {
            since,
            watch,
            interval,
            publish_metrics,
            log_group,
            s3,
            page_size,
            no_progress,
            aws,
        } => sync::run(
            &ctx,
            &sync::SyncArgs {
                since: since.as_deref(),
                watch: *watch,
                interval: interval.as_deref(),
                publish_metrics: *publish_metrics,
                log_groups: log_group,
                s3,
                page_size: *page_size,
                progress: !*no_progress,
                aws,
            },
        ),
        Command::Aws {
            command:
                AwsCommand::Setup {
                    dry_run,
                    log_group,
                    retention_days,
                    role_name,
                    s3,
                    dashboard,
                    alarm,
                    alarm_developer,
                    alarm_topic,
                    budget,
                    budget_email,
                    developer_role,
                    trusted_role,
                    aws: access,
                },
        } => aws_setup::run(
            &ctx,
            &aws_setup::SetupArgs {
                dry_run: *dry_run,
                log_group: log_group.as_deref(),
                retention_days: *retention_days,
                role_name,
                s3: s3.as_deref(),
                dashboard: dashboard.as_deref(),
                alarm: alarm.as_deref(),
                alarm_developers: alarm_developer,
                alarm_topic: alarm_topic.as_deref(),
                budget: budget.as_deref(),
                budget_email: budget_email.as_deref(),
                developer_role: developer_role.as_deref(),
                trusted_role: trusted_role.as_deref(),
                aws: access,
            },
        ),
        Command::Aws {
            command: AwsCommand::Status { aws: access },
        } => aws_status::run(&ctx, access),
        Command::Demo {
            seed,
            write,
            records,
            month,
            compress,
            body_kb,
        } => {
            let opts = sources::demo::DemoOptions::from_args(
                *seed,
                records.to_owned(),
                month,
                *compress,
                body_kb,
                write.is_some(),
            )?;
            match write {
                Some(dir) => sources::demo::write_corpus(dir, &opts).map(|_| EXIT_OK),
                None => demo::run(&ctx, &opts),
            }
        }
    }
}
