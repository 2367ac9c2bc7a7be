//! The `kpiwatch` command line. Parsing and exit codes live here; the work
//! is in the library.

use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use detectors::SetConfig;

/// Business-KPI anomaly detection: seasonal baselines, drop/spike/absence
/// alerts.
#[derive(Parser)]
#[command(name = "kpiwatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score one already-aggregated series (`timestamp,value` CSV) with the
    /// default detectors; prints `timestamp,value,anomaly_score`, causal.
    Score {
        /// Input CSV, or `-` for standard input.
        #[arg(long)]
        input: PathBuf,
        /// Optional TOML file with a `[detectors]` table.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file; prints file:line:column on error.
    Check {
        /// The TOML file.
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kpiwatch: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Score { input, config } => {
            let reader: Box<dyn Read> = if input.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(
                    std::fs::File::open(&input)
                        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", input.display()))?,
                )
            };
            let configure = Box::new(move |width: i64| match &config {
                Some(path) => Ok(kpiwatch::config::load_score_config(path, width)?),
                None => Ok(SetConfig::new(width)),
            });
            let stdout = std::io::stdout().lock();
            let summary = kpiwatch::score::score_csv(
                BufReader::with_capacity(1 << 16, reader),
                stdout,
                configure,
            )
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", input.display()))?;
            tracing::info!(
                rows = summary.rows,
                bucket_width = summary.bucket_width,
                "scored"
            );
            Ok(())
        }
        Command::Check { config } => {
            kpiwatch::config::load_score_config(&config, 60)?;
            println!("{}: ok", config.display());
            Ok(())
        }
    }
}
