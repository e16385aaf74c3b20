//! The `ember-serve` binary: parse flags, set up logging, and serve (or probe, for container
//! health checks, or report its version and platform).

use std::process::ExitCode;

use clap::Parser;
use ember_serve::config::{Cli, Command};
use ember_serve::telemetry::traces;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Healthcheck { url, timeout }) => {
            return match ember_serve::healthcheck::probe(&url, timeout) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("healthcheck: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::Version) => {
            print!("{}", ember_serve::version::report());
            return ExitCode::SUCCESS;
        }
        None => {}
    }
    let args = cli.serve;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ember-serve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The OTLP exporter runs on the runtime: set up inside it.
    let traces = {
        let _inside = runtime.enter();
        args.otlp_endpoint
            .as_deref()
            .map(traces::export)
            .transpose()
    };
    let (export, tracer) = match traces {
        Ok(traces) => traces.unzip(),
        Err(e) => {
            eprintln!("ember-serve: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = ember_serve::telemetry::logging::init(args.log_format, &args.log_level, tracer)
    {
        eprintln!("ember-serve: {e}");
        return ExitCode::from(2);
    }
    let result = runtime.block_on(ember_serve::app::run(args));
    // Sends the spans still buffered, on the runtime, before it stops.
    if let Some(export) = export {
        export.shutdown();
    }
    // Abandoned requests' tasks are dropped, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ember-serve: {e}");
            ExitCode::FAILURE
        }
    }
}
