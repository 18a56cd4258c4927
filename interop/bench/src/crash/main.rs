//! `warren-crash`: the crash test. It starts the broker on a fresh data
//! directory, kills it with SIGKILL while it holds confirmed or unacked
//! messages, restarts it on the same directory and checks what survived
//! (interop/crash/README.md):
//!
//! - `publish` mode: persistent messages pipelined with confirms into a
//!   durable queue, the kill mid-stream. Every confirmed message must come
//!   back, once, in publish order; unconfirmed ones may or may not.
//! - `consume` mode: N confirmed messages consumed with manual acks and a
//!   prefetch, some held unacked, the kill mid-stream. Nothing unacked may be
//!   lost; delivered-but-unacked ones must come back flagged redelivered.
//! - `delayed` mode: confirmed messages waiting in a delayed exchange; every
//!   one must arrive after the restart.
//! - `retry` mode: first deliveries rejected into a queue with delayed
//!   retries; the retries waiting at the kill must come back after the
//!   restart, with their delivery count, not before their due time.
//! - `dedup` mode: ids published to a deduplicating exchange; after the
//!   restart every id is published again, and every confirmed id must be in
//!   the queue exactly once.
//! - `stream` mode: a durable stream appended to with confirms, crashed and
//!   read back from `first` three times: every confirmed message once, dense
//!   offsets, and no offset read before a crash changed by it.
//!
//! Every round prints what it did and found; the last line is
//! `crash: N passed, M failed` (summed by scripts/test.sh). Exit code 0 when
//! every round passed, 1 when one failed, 2 on a usage error.
//!
//! Layout: `broker` (the child process), `amqp` (publishing with confirms,
//! reading back), `round` (a round's settings and verdict), and one file per
//! mode.

mod amqp;
mod broker;
mod consume;
mod dedup;
mod delayed;
mod publish;
mod retry;
mod round;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use crate::broker::Launch;
use crate::round::{Mode, Round};

/// The crash test: kill -9 the broker with confirmed and unacked messages in
/// flight, restart it, check that nothing was lost.
#[derive(Parser, Debug)]
#[command(name = "warren-crash", version, about, long_about = None, args_override_self = true)]
struct Cli {
    /// Which crash to stage each round: publish, consume, delayed, retry,
    /// dedup, stream, both (publish then consume) or all (the six).
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
    /// Rounds per mode.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seed of the first round (round i uses seed + i); default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Messages published per round.
    #[arg(long, default_value_t = 2000)]
    messages: u64,
    /// Publisher confirms outstanding at most.
    #[arg(long, default_value_t = 1000)]
    confirm_window: usize,
    /// basic.qos prefetch of the consumer in consume and retry modes.
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// The Warren binary, started as `BIN --bind 127.0.0.1 --port PORT
    /// --data-dir DIR`. Default: $WARREN_BIN, else target/release/warren.
    #[arg(long)]
    warren_bin: Option<PathBuf>,
    /// Start the broker with this shell command instead; `{port}` and
    /// `{data}` are replaced by the port and the round's data directory. The
    /// command's whole process group is killed.
    #[arg(long)]
    broker_cmd: Option<String>,
    /// The broker's port (default: a free port per round). A broker whose
    /// command line fixes other ports (RabbitMQ) needs this.
    #[arg(long)]
    port: Option<u16>,
    /// Seconds a broker start may take.
    #[arg(long, default_value_t = 30)]
    start_timeout: u64,
    /// Directory for the rounds' data and broker logs (default: a new
    /// directory under $TMPDIR). Deleted at the end when every round passed
    /// and --keep is not given; kept, and named, otherwise.
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory even when every round passed.
    #[arg(long)]
    keep: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Publish,
    Consume,
    Delayed,
    Retry,
    Dedup,
    Stream,
    /// publish and consume (the modes any AMQP broker can run)
    Both,
    /// publish, consume, delayed, retry, dedup and stream
    All,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = run(cli);
    let outcome = tokio::select! {
        r = run => r,
        _ = interrupted() => {
            // Dropping `run` killed the broker of the round under way.
            eprintln!("warren-crash: interrupted");
            return ExitCode::from(130);
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("warren-crash: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// Runs every round; true when all passed.
async fn run(cli: Cli) -> anyhow::Result<bool> {
    if cli.messages < 10 || cli.rounds == 0 || cli.confirm_window == 0 || cli.prefetch < 2 {
        bail!("--messages must be at least 10, --rounds and --confirm-window 1, --prefetch 2");
    }
    let launch = match (&cli.broker_cmd, &cli.warren_bin) {
        (Some(cmd), _) => Launch::Command(cmd.clone()),
        (None, Some(bin)) => Launch::Warren(bin.clone()),
        (None, None) => Launch::Warren(
            std::env::var_os("WARREN_BIN")
                .map_or_else(|| PathBuf::from("target/release/warren"), PathBuf::from),
        ),
    };
    if let Launch::Warren(bin) = &launch
        && !bin.is_file()
    {
        bail!(
            "no broker binary at {} (build it with `cargo build --release --bin warren`, or \
             pass --warren-bin / WARREN_BIN)",
            bin.display()
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seed = cli.seed.unwrap_or(now);
    let work = match &cli.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("warren-crash.{}.{now}", std::process::id())),
    };
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let modes: &[Mode] = match cli.mode {
        ModeArg::Publish => &[Mode::Publish],
        ModeArg::Consume => &[Mode::Consume],
        ModeArg::Delayed => &[Mode::Delayed],
        ModeArg::Retry => &[Mode::Retry],
        ModeArg::Dedup => &[Mode::Dedup],
        ModeArg::Stream => &[Mode::Stream],
        ModeArg::Both => &[Mode::Publish, Mode::Consume],
        ModeArg::All => &[
            Mode::Publish,
            Mode::Consume,
            Mode::Delayed,
            Mode::Retry,
            Mode::Dedup,
            Mode::Stream,
        ],
    };
    println!(
        "crash test: broker {}, {} round(s) x {}, {} messages, seed {seed}, work dir {}",
        launch.describe(),
        cli.rounds,
        modes.iter().map(|m| m.name()).collect::<Vec<_>>().join("+"),
        cli.messages,
        work.display()
    );
    let (mut passed, mut failed) = (0u32, 0u32);
    for i in 0..cli.rounds {
        let round_seed = seed.wrapping_add(u64::from(i));
        for mode in modes {
            let name = format!("round-{}-{}", i + 1, mode.name());
            println!(
                "== round {}/{} {} (seed {round_seed}; replay: --mode {} --seed {round_seed} \
                 --rounds 1 --messages {})",
                i + 1,
                cli.rounds,
                mode.name(),
                mode.name(),
                cli.messages
            );
            let r = Round {
                mode: *mode,
                seed: round_seed,
                messages: cli.messages,
                window: cli.confirm_window,
                prefetch: cli.prefetch,
                queue: format!("warren-crash.{}.{seed}.{name}", std::process::id()),
                dir: work.join(&name),
                launch: launch.clone(),
                port: cli.port,
                start_timeout: Duration::from_secs(cli.start_timeout.max(1)),
            };
            let started = std::time::Instant::now();
            let verdict = match r.mode {
                Mode::Publish => publish::run(&r).await,
                Mode::Consume => consume::run(&r).await,
                Mode::Delayed => delayed::run(&r).await,
                Mode::Retry => retry::run(&r).await,
                Mode::Dedup => dedup::run(&r).await,
                Mode::Stream => stream::run(&r).await,
            };
            let secs = started.elapsed().as_secs_f64();
            match verdict {
                Ok(v) if v.failures.is_empty() => {
                    passed += 1;
                    println!("   PASS ({secs:.1} s)");
                }
                Ok(v) => {
                    failed += 1;
                    println!(
                        "   FAILED: {} check(s) ({secs:.1} s); broker log: {}",
                        v.failures.len(),
                        r.dir.join("broker.log").display()
                    );
                }
                Err(e) => {
                    failed += 1;
                    println!(
                        "   FAILED: the round could not run: {e:#} ({secs:.1} s); broker log: {}",
                        r.dir.join("broker.log").display()
                    );
                }
            }
        }
    }
    if failed == 0 && !cli.keep {
        let _ = std::fs::remove_dir_all(&work);
    } else {
        println!("data and broker logs kept in {}", work.display());
    }
    println!("crash: {passed} passed, {failed} failed");
    Ok(failed == 0)
}
