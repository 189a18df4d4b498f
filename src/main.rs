//! The `watch-cluster` binary: parse the command line, hand over to the library, map the outcome to an exit code.

use std::{process::ExitCode, time::Duration};

use clap::Parser;

/// How long tasks still running when the command has returned (a call to an API server that never
/// answers, a blocking lookup) may hold the exit: shutdown has already spent its own deadlines.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    watch_cluster::install_crypto_provider();
    let cli = watch_cluster::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(watch_cluster::cli::execute(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
