//! `warren-bench`: a load generator for AMQP 0-9-1 brokers, built on lapin.
//!
//! It runs the same scenarios against Warren and RabbitMQ so their figures can
//! be set side by side: publish and delivery rates, end-to-end latency, and
//! the broker's CPU time and memory (sampled from `/proc/PID` every 100 ms).
//!
//! Layout:
//! - `scenarios`: the eight scenarios, their topology, setup and cleanup;
//! - `flow`: producers, consumers and the supervisor that ends every run;
//! - `topic`: the topic-1000 bindings and keys, and a topic matcher;
//! - `probe`: the `/proc` sampler;
//! - `report`: the human table and the JSON document.
//!
//! It only ever connects to the URI it is given, and refuses any host that is
//! not loopback. Every loop ends on its own: producers on `--duration` or
//! `--messages`, a run when all messages are delivered, or after
//! `--stall-timeout` seconds without progress, or after `--max-secs`.

mod flow;
mod loopback;
mod probe;
mod report;
mod scenarios;
mod topic;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use clap::Parser;

use crate::flow::Limits;
use crate::report::Status;
use crate::scenarios::{NAMES, Settings};

/// Load generator for AMQP 0-9-1 brokers (Warren, RabbitMQ).
#[derive(Parser, Debug)]
#[command(name = "warren-bench", version, about, long_about = None)]
struct Cli {
    /// Broker URI; the host must be loopback. `amqps://` connects over TLS.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// PEM file of the CA that signed the broker's certificate, for `amqps://`.
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// Scenario to run, a comma-separated list, or `all`. Scenarios:
    /// 1p1c-transient, 1p1c-persistent-confirm, 4p4c-1k, fanout-10,
    /// topic-1000, latency, backlog, backlog-persistent.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Seconds the producers publish in every scenario but backlog.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Messages the backlog scenarios publish before draining them.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Pid of the broker process, to report its CPU time and RSS.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print the results as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// Publisher confirms outstanding per producer, where confirms are used.
    #[arg(long, default_value_t = 256)]
    confirm_window: usize,
    /// basic.qos prefetch of manual-ack consumers.
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// basic.qos prefetch of the consumer draining backlog-persistent.
    #[arg(long, default_value_t = 1000)]
    drain_prefetch: u16,
    /// Messages per second in the latency scenario.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Give a run up after this many seconds with nothing published,
    /// confirmed or delivered.
    #[arg(long, default_value_t = 10)]
    stall_timeout: u64,
    /// Give a run up after this many seconds whatever happens.
    #[arg(long, default_value_t = 600)]
    max_secs: u64,
    /// Seconds to let the broker settle between scenarios.
    #[arg(long, default_value_t = 2)]
    pause: u64,
}

/// Refuses any URI whose host is not a loopback address or `localhost`.
fn check_loopback(uri: &str) -> anyhow::Result<()> {
    loopback::loopback_uri(uri, "warren-bench").map(|_| ())
}

fn scenarios(arg: &str) -> anyhow::Result<Vec<&'static str>> {
    if arg == "all" {
        return Ok(NAMES.to_vec());
    }
    arg.split(',')
        .map(|s| {
            NAMES
                .iter()
                .copied()
                .find(|n| *n == s.trim())
                .ok_or_else(|| anyhow!("unknown scenario {s:?}; known: all, {}", NAMES.join(", ")))
        })
        .collect()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("warren-bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen scenarios; true when all of them completed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    check_loopback(&cli.uri)?;
    if let Some(path) = &cli.cacert {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read --cacert {}: {e}", path.display()))?;
        flow::trust(pem);
    }
    let names = scenarios(&cli.scenario)?;
    if cli.duration == 0 || cli.messages == 0 || cli.confirm_window == 0 || cli.rate == 0 {
        bail!("--duration, --messages, --confirm-window and --rate must be at least 1");
    }
    let settings = Settings {
        uri: cli.uri.clone(),
        duration: Duration::from_secs(cli.duration),
        messages: cli.messages,
        broker_pid: cli.broker_pid,
        confirm_window: cli.confirm_window,
        prefetch: cli.prefetch.max(1),
        drain_prefetch: cli.drain_prefetch.max(1),
        rate: f64::from(cli.rate),
        limits: Limits {
            stall: Duration::from_secs(cli.stall_timeout.max(1)),
            hard_cap: Duration::from_secs(cli.max_secs.max(1)),
        },
        epoch: Instant::now(),
    };
    let mut outcomes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(cli.pause)).await;
        }
        eprintln!("== {name}");
        let o = scenarios::run(&settings, name).await;
        eprintln!(
            "   {}: publish {:.0} msg/s, deliver {:.0} msg/s",
            match &o.status {
                Status::Ok => "ok".to_string(),
                Status::Stalled(s) => format!("STALLED ({s})"),
                Status::Failed(s) => format!("FAILED ({s})"),
            },
            o.publish_rate(),
            o.consume_rate()
        );
        outcomes.push(o);
    }
    let table = report::table(&outcomes);
    if cli.json {
        eprint!("\n{table}");
        print!("{}", report::json(&cli.uri, &outcomes));
    } else {
        print!("\n{table}");
    }
    Ok(outcomes.iter().all(|o| matches!(o.status, Status::Ok)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts() {
        assert!(check_loopback("amqp://guest:guest@127.0.0.1:5672/%2f").is_ok());
        assert!(check_loopback("amqp://localhost:5682").is_ok());
        assert!(check_loopback("amqp://[::1]:5672").is_ok());
        assert!(check_loopback("amqp://10.0.0.1:5672").is_err());
        assert!(check_loopback("amqp://example.com:5672").is_err());
    }

    #[test]
    fn scenario_lists() {
        assert_eq!(scenarios("all").map(|v| v.len()).ok(), Some(8));
        assert_eq!(
            scenarios("latency, backlog").ok(),
            Some(vec!["latency", "backlog"])
        );
        assert!(scenarios("nope").is_err());
    }
}
