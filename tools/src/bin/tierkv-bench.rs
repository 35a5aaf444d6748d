//! `tierkv-bench`: YCSB-style load generator for any Redis-protocol server.
//!
//! Exit status: 0 when every operation succeeded and every read matched, 1 on a failed run or
//! when errors or mismatches were seen, 2 on bad options.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tierkv_tools::bench::config::BenchConfig;
use tierkv_tools::bench::plot;
use tierkv_tools::bench::runner::{self, BenchError};

fn main() -> ExitCode {
    let config = BenchConfig::parse();
    match run(&config) {
        Ok(clean) => {
            if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            eprintln!("tierkv-bench: {error:#}");
            if matches!(
                error.downcast_ref::<BenchError>(),
                Some(BenchError::Config(_))
            ) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(config: &BenchConfig) -> anyhow::Result<bool> {
    let outcome = runner::run(config)?;
    let report = &outcome.report;
    let json_to_stdout = config.json.as_deref() == Some("-");
    if !json_to_stdout {
        print!("{}", report.to_text());
    }
    if let Some(path) = &config.json {
        let json = serde_json::to_string_pretty(report).context("serialising the report")?;
        if json_to_stdout {
            println!("{json}");
        } else {
            std::fs::write(path, json).with_context(|| format!("writing {path}"))?;
        }
    }
    if let Some(path) = &config.csv {
        std::fs::write(path, report.to_csv()).with_context(|| format!("writing {path}"))?;
    }
    if let Some(dir) = &config.plot_dir {
        let paths = plot::write_charts(Path::new(dir), report, &outcome.spectra)?;
        for path in paths {
            eprintln!("wrote {}", path.display());
        }
    }
    std::io::stdout().flush().context("flushing stdout")?;
    Ok(report.failed() == 0 && report.mismatched() == 0)
}
