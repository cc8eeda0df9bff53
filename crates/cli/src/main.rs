//! The `bedrock-usage` binary: parse arguments, run, map errors to exit codes.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = bedrock_usage::cli::Args::parse();
    match bedrock_usage::run(args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return std::process::ExitCode::SUCCESS;
            }
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(bedrock_usage::EXIT_ERROR)
        }
    }
}
