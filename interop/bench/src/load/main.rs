//! `warren-load`: an AMQP 0-9-1 load generator cheap enough that the broker,
//! not the client, is the limit. It speaks the protocol itself over blocking
//! sockets (warren-codec for the handshake and setup), one OS thread per
//! producer and consumer: producers copy pre-encoded publishes into 128 KiB
//! writes, consumers read 256 KiB at a time and look only at frame headers.
//!
//! Layout:
//! - `conn`: the handshake and the synchronous setup methods;
//! - `wire`: the frame scanner and the pre-encoded publish (pure, tested);
//! - `publisher`, `consumer`: the two hot loops, each on its own thread;
//! - `paired`: `--one-thread`, a producer and a consumer in one polling thread;
//! - `shared`: counters, stop flag and first failure of a run;
//! - `scenario`: the scenarios and one measured run;
//! - `stats`: percentiles, the table and the JSON.
//!
//! Shared with warren-bench: `loopback` (the `--uri` check), `probe` (the `/proc` sampler), `topic` (the
//! topic-1000 bindings and keys) and the JSON escaping of its `report`.

#[allow(dead_code)]
#[path = "../report.rs"]
mod bench_report;
mod conn;
mod consumer;
#[path = "../loopback.rs"]
mod loopback;
mod paired;
#[allow(dead_code)]
#[path = "../probe.rs"]
mod probe;
mod publisher;
mod scenario;
mod shared;
mod stats;
#[path = "../topic.rs"]
mod topic;
mod wire;

use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Parser;

use crate::conn::Target;
use crate::scenario::{SPECS, Settings, Spec};

/// A load generator for AMQP 0-9-1 brokers whose client costs well under a
/// microsecond of CPU per message.
#[derive(Parser, Debug)]
#[command(name = "warren-load", version, about, long_about = None)]
struct Cli {
    /// Broker URI (amqp:// only); the host must be loopback.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    uri: String,
    /// Pid of the broker, for its CPU time and RSS.
    #[arg(long)]
    pid: Option<u32>,
    /// Name of the broker in the output.
    #[arg(long, default_value = "broker")]
    label: String,
    /// Scenario, comma-separated list, or `all`: 1p1c-transient,
    /// 1p1c-persistent-confirm, 4p4c-1k, fanout-10, topic-1000, latency,
    /// latency-persistent-confirm.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Seconds the producers publish.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Publisher confirms outstanding per producer, where confirms are used.
    #[arg(long, default_value_t = 256)]
    confirm_window: u64,
    /// basic.qos prefetch of manual-ack consumers (they ack, multiple, every
    /// prefetch/2 deliveries).
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// Total messages per second, spread over the producers: paces any
    /// scenario (the latency ones default to 1000).
    #[arg(long)]
    rate: Option<f64>,
    /// Body size in bytes (at least 8), instead of the scenario's.
    #[arg(long)]
    size: Option<usize>,
    /// KiB per producer write.
    #[arg(long, default_value_t = 128)]
    batch_kib: usize,
    /// Producers pause while the consumers are this many deliveries behind
    /// (0: never, the queues may grow without bound).
    #[arg(long, default_value_t = 100_000)]
    max_backlog: u64,
    /// Sample the latency of every Nth delivery (default 64; every one in
    /// the latency scenarios).
    #[arg(long)]
    sample_every: Option<u64>,
    /// Give a run up after this many seconds without progress.
    #[arg(long, default_value_t = 10)]
    stall_timeout: u64,
    /// Give a run up this many seconds after its publishing should have ended.
    #[arg(long, default_value_t = 120)]
    max_secs: u64,
    /// Seconds between scenarios.
    #[arg(long, default_value_t = 2)]
    pause: u64,
    /// JSON on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,
    /// The queues' `x-queue-type` (e.g. `quorum`; such queues are durable).
    #[arg(long)]
    queue_type: Option<String>,
    /// Paced runs with one consumer: append each 10 ms of the schedule's
    /// latency to this CSV file (scenario, due_ms, messages, p50_us, p99_us,
    /// max_us), to see whether a tail is steady or comes in bursts.
    #[arg(long)]
    timeline: Option<std::path::PathBuf>,
    /// Scenarios with one producer and one consumer (1p1c-*, latency*):
    /// drive both from one thread waiting in poll(2), so that on a busy
    /// client core the two never wait for each other's time slice.
    #[arg(long)]
    one_thread: bool,
}

/// host:port, user, password and vhost of a loopback `amqp://` URI.
fn target(uri: &str) -> anyhow::Result<Target> {
    let (u, host) = loopback::loopback_uri(uri, "warren-load")?;
    if !uri.starts_with("amqp://") {
        bail!("warren-load speaks plain amqp:// only");
    }
    let addr = match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]:{}", u.authority.port),
        _ => format!("{host}:{}", u.authority.port),
    };
    Ok(Target {
        addr,
        user: u.authority.userinfo.username,
        password: u.authority.userinfo.password,
        vhost: u.vhost,
    })
}

fn scenarios(arg: &str) -> anyhow::Result<Vec<&'static Spec>> {
    if arg == "all" {
        return Ok(SPECS.iter().collect());
    }
    arg.split(',')
        .map(|s| {
            SPECS.iter().find(|x| x.name == s.trim()).ok_or_else(|| {
                let names: Vec<&str> = SPECS.iter().map(|x| x.name).collect();
                anyhow!("unknown scenario {s:?}; known: all, {}", names.join(", "))
            })
        })
        .collect()
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("warren-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<bool> {
    let specs = scenarios(&cli.scenario)?;
    if cli.duration == 0 || cli.confirm_window == 0 || cli.batch_kib == 0 {
        bail!("--duration, --confirm-window and --batch-kib must be at least 1");
    }
    if cli.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        bail!("--rate must be positive");
    }
    let settings = Settings {
        target: target(&cli.uri)?,
        pid: cli.pid,
        duration: Duration::from_secs(cli.duration),
        window: cli.confirm_window,
        prefetch: cli.prefetch.max(1),
        rate: cli.rate,
        size: cli.size,
        batch_bytes: cli.batch_kib << 10,
        max_backlog: cli.max_backlog,
        sample_every: cli.sample_every,
        stall: Duration::from_secs(cli.stall_timeout.max(1)),
        max_run: Duration::from_secs(cli.max_secs.max(1)),
        queue_type: cli.queue_type.clone(),
        timeline: cli.timeline.clone(),
        one_thread: cli.one_thread,
    };
    let mut rows = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(cli.pause));
        }
        eprintln!("== {} ({})", spec.name, cli.label);
        let r = scenario::run(&settings, spec);
        eprintln!(
            "   {}: publish {:.0} msg/s, deliver {:.0} msg/s",
            r.status,
            r.pub_rate(),
            r.del_rate()
        );
        rows.push(r);
    }
    let table = stats::table(&cli.label, &rows);
    if cli.json {
        eprint!("\n{table}");
        print!("{}", stats::json(&cli.label, &cli.uri, &rows));
    } else {
        print!("\n{table}");
    }
    Ok(rows.iter().all(|r| r.status == "ok"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_amqp_only() {
        let t = target("amqp://guest:guest@127.0.0.1:5682/%2f").expect("loopback");
        assert_eq!(
            (t.addr.as_str(), t.user.as_str(), t.vhost.as_str()),
            ("127.0.0.1:5682", "guest", "/")
        );
        assert!(target("amqp://10.0.0.1:5672").is_err());
        assert!(target("amqps://127.0.0.1:5671").is_err());
    }

    #[test]
    fn scenario_lists() {
        assert_eq!(scenarios("all").map(|v| v.len()).ok(), Some(SPECS.len()));
        assert!(scenarios("latency, fanout-10").is_ok());
        assert!(scenarios("nope").is_err());
    }
}
