//! The `bedrock-usage` binary: parse arguments, start diagnostics, run, map the error to an exit
//! code (a closed pipe is a success; see `error::Error::exit_code`).

fn main() -> std::process::ExitCode {
    let args = bedrock_usage::cli::Args::from_command_line();
    init_tracing(args.log_level.as_deref());
    match bedrock_usage::run(args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            let code = e.exit_code();
            if code != bedrock_usage::error::EXIT_OK {
                eprintln!("error: {}", e.chain());
            }
            std::process::ExitCode::from(code)
        }
    }
}

/// Diagnostics on stderr through `tracing`, filtered by `--log-level` or `RUST_LOG` (quiet
/// unless asked: what users read on stderr comes from the commands themselves).
fn init_tracing(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l).ok(),
        None => EnvFilter::try_from_default_env().ok(),
    }
    .unwrap_or_else(|| EnvFilter::new("off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
