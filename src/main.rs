//! The `watch-cluster` binary: parse the command line, hand over to the library, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    watch_cluster::install_crypto_provider();
    let cli = watch_cluster::cli::Cli::parse();
    match watch_cluster::cli::execute(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
