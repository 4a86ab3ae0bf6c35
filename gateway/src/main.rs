//! `gateway serve --config FILE`: runs a gateway node.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "gateway",
    about = "Telephony gateway: carrier SIP trunks to managers' browsers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Configuration file (see deploy/gateway.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration file and exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn load(path: &std::path::Path) -> anyhow::Result<gateway::config::Config> {
    let mut config = gateway::config::Config::load(path)?;
    if let Ok(url) = std::env::var("GATEWAY_DATABASE_URL") {
        config.database_url = url;
    }
    Ok(config)
}

fn main() -> std::process::ExitCode {
    // One line naming the problem (e.g. the config field), not a backtrace.
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    // Logs on stderr, coloured only for a terminal (journald and files get plain text).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => {
            load(&config)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Serve { config } => {
            let config = load(&config).with_context(|| "invalid configuration")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let server = gateway::server::start(config, Default::default()).await?;
                // Ctrl-C from a terminal, SIGTERM from systemd or a container runtime.
                let mut terminate =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .context("installing the SIGTERM handler")?;
                tokio::select! {
                    r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
                    _ = terminate.recv() => {}
                }
                tracing::info!("shutting down");
                server.shutdown();
                Ok(())
            })
        }
    }
}
