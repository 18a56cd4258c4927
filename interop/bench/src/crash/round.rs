//! One round of the crash test: its settings, its broker, and its verdict.

use std::path::PathBuf;
use std::time::Duration;

use crate::broker::{Broker, Launch, free_port};

/// Which crash a round stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// kill -9 while confirmed publishes are in flight.
    Publish,
    /// kill -9 while deliveries are unacked.
    Consume,
    /// kill -9 while confirmed messages wait in a delayed exchange.
    Delayed,
    /// kill -9 while rejected deliveries wait out their retry backoff.
    Retry,
    /// kill -9 while ids are published to a deduplicating exchange.
    Dedup,
    /// kill -9 while a stream is appended to, read back by offset.
    Stream,
}

impl Mode {
    /// Its name on the command line and in the output.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Publish => "publish",
            Mode::Consume => "consume",
            Mode::Delayed => "delayed",
            Mode::Retry => "retry",
            Mode::Dedup => "dedup",
            Mode::Stream => "stream",
        }
    }
}

/// Everything one round needs.
pub struct Round {
    /// Which crash.
    pub mode: Mode,
    /// Its seed (the run's seed plus the round's index).
    pub seed: u64,
    /// Messages published.
    pub messages: u64,
    /// Publisher confirms outstanding at most.
    pub window: usize,
    /// basic.qos prefetch of the consumer (consume and retry modes).
    pub prefetch: u16,
    /// The durable queue (or stream) it declares.
    pub queue: String,
    /// Its directory: `data/` for the broker, `broker.log`.
    pub dir: PathBuf,
    /// How to start the broker.
    pub launch: Launch,
    /// The broker's port, or None for a free one.
    pub port: Option<u16>,
    /// How long a broker start may take.
    pub start_timeout: Duration,
}

impl Round {
    /// Starts this round's broker on a fresh data directory.
    pub async fn start_broker(&self) -> anyhow::Result<Broker> {
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data)?;
        let port = match self.port {
            Some(p) => p,
            None => free_port()?,
        };
        let b = Broker::start(
            self.launch.clone(),
            port,
            data.clone(),
            self.dir.join("broker.log"),
            self.start_timeout,
        )
        .await?;
        say(format!(
            "broker pid {} on 127.0.0.1:{}, data in {}",
            b.pid().unwrap_or(0),
            b.port,
            data.display()
        ));
        Ok(b)
    }
}

/// Prints one indented line of a round's report.
pub fn say(line: impl AsRef<str>) {
    println!("   {}", line.as_ref());
}

/// Collects a round's failures (each one printed as it is found).
#[derive(Default)]
pub struct Verdict {
    /// One line per failed check.
    pub failures: Vec<String>,
}

impl Verdict {
    /// Records a failed check.
    pub fn fail(&mut self, what: impl Into<String>) {
        let what = what.into();
        say(format!("FAIL: {what}"));
        self.failures.push(what);
    }
}
