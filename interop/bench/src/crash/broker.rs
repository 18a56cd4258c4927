//! The broker under test as a child process: started on a loopback port with
//! a data directory, killed with SIGKILL at a chosen moment, restarted on the
//! same port and directory, and stopped. Each start runs in a process group
//! of its own, so that a broker started through a shell script (RabbitMQ) is
//! killed whole, and so that it never outlives this process: dropping a
//! [`Broker`] kills its group.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How to start the broker.
#[derive(Clone, Debug)]
pub enum Launch {
    /// A Warren binary: `BIN --bind 127.0.0.1 --port PORT --data-dir DIR`.
    Warren(PathBuf),
    /// A shell command (`sh -c`), with `{port}` and `{data}` replaced.
    Command(String),
}

impl Launch {
    fn command(&self, port: u16, data: &Path) -> Command {
        match self {
            Launch::Warren(bin) => {
                let mut c = Command::new(bin);
                c.arg("--bind")
                    .arg("127.0.0.1")
                    .arg("--port")
                    .arg(port.to_string())
                    .arg("--data-dir")
                    .arg(data)
                    .env("NO_COLOR", "1");
                c
            }
            Launch::Command(cmd) => {
                let cmd = cmd
                    .replace("{port}", &port.to_string())
                    .replace("{data}", &data.to_string_lossy());
                let mut c = Command::new("sh");
                c.arg("-c").arg(cmd);
                c
            }
        }
    }

    /// How the broker is described in the output.
    pub fn describe(&self) -> String {
        match self {
            Launch::Warren(bin) => bin.display().to_string(),
            Launch::Command(cmd) => format!("sh -c {cmd:?}"),
        }
    }
}

/// A loopback port nobody listens on right now (the usual broker ports
/// excluded).
pub fn free_port() -> anyhow::Result<u16> {
    const BUSY: [u16; 7] = [5672, 5673, 5674, 5675, 5682, 5690, 5691];
    for _ in 0..50 {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding a probe socket")?;
        let port = l.local_addr().context("probe socket address")?.port();
        if !BUSY.contains(&port) {
            return Ok(port);
        }
    }
    bail!("found no free loopback port")
}

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Sends `signal` to every process in group `pgid` (the broker and anything
/// it started). Errors are ignored: the group may be gone already.
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg("-s")
        .arg(signal)
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether any process of group `pgid` still exists.
fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .arg("-0")
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running broker.
pub struct Broker {
    launch: Launch,
    /// Its AMQP port on 127.0.0.1.
    pub port: u16,
    data: PathBuf,
    log: PathBuf,
    start_timeout: Duration,
    child: Option<Child>,
    starts: u32,
}

impl Broker {
    /// Starts the broker and waits until its port accepts connections.
    pub async fn start(
        launch: Launch,
        port: u16,
        data: PathBuf,
        log: PathBuf,
        start_timeout: Duration,
    ) -> anyhow::Result<Broker> {
        let mut b = Broker {
            launch,
            port,
            data,
            log,
            start_timeout,
            child: None,
            starts: 0,
        };
        b.spawn().await?;
        Ok(b)
    }

    /// The AMQP URI of the broker.
    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2F", self.port)
    }

    /// The pid (and process group) of the running broker.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        // Whatever answers on the port now is not the broker about to start.
        let free_by = Instant::now() + Duration::from_secs(10);
        while port_open(self.port) {
            if Instant::now() >= free_by {
                bail!("127.0.0.1:{} is taken by another process", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let _ = writeln!(
            log,
            "===== warren-crash: start #{} on port {} =====",
            self.starts, self.port
        );
        let err = log.try_clone().context("duplicating the log file")?;
        let child = self
            .launch
            .command(self.port, &self.data)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", self.launch.describe()))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(status) = self.try_wait()? {
                self.child = None;
                bail!(
                    "the broker exited at start ({}); last lines of {}:\n{}",
                    describe_status(status),
                    self.log.display(),
                    self.log_tail(15)
                );
            }
            if port_open(self.port) {
                return Ok(());
            }
            if started.elapsed() >= self.start_timeout {
                self.kill_now();
                bail!(
                    "the broker did not open 127.0.0.1:{} within {} s; last lines of {}:\n{}",
                    self.port,
                    self.start_timeout.as_secs(),
                    self.log.display(),
                    self.log_tail(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(c) => c.try_wait().context("waiting for the broker"),
            None => Ok(None),
        }
    }

    /// A switch that SIGKILLs this broker's process group once, from another
    /// thread, after a delay.
    pub fn kill_switch(&self) -> KillSwitch {
        KillSwitch {
            pgid: self.pid(),
            fired: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Waits for the broker to exit (after a kill) and reports how it ended.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let started = Instant::now();
        let Some(pid) = self.pid() else {
            bail!("no broker is running");
        };
        loop {
            if let Some(status) = self.try_wait()? {
                self.child = None;
                // The group may hold more (RabbitMQ's beam.smp under its
                // start script): kill it, and wait until it is gone, so that
                // the next start does not find the old broker on the port.
                signal_group(pid, "KILL");
                while group_alive(pid) && started.elapsed() < timeout + Duration::from_secs(10) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                return Ok(status);
            }
            if started.elapsed() >= timeout {
                bail!("the broker did not exit within {} s", timeout.as_secs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the broker again on the same port and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("restart while the broker still runs");
        }
        self.spawn().await
    }

    /// Stops the broker with SIGTERM (SIGKILL after 15 s).
    pub async fn stop(&mut self) {
        let Some(pid) = self.pid() else { return };
        signal_group(pid, "TERM");
        if self.wait_exit(Duration::from_secs(15)).await.is_err() {
            self.kill_now();
        }
    }

    fn kill_now(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(c.id(), "KILL");
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The last `n` lines of the broker's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|l| format!("      | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// How a process ended, in words.
pub fn describe_status(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (_, Some(9)) => "killed by SIGKILL".to_string(),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "ended".to_string(),
    }
}

/// Kills a broker's process group once, after a delay, from a plain thread
/// (so that the kill lands while the client is busy).
#[derive(Clone)]
pub struct KillSwitch {
    pgid: Option<u32>,
    fired: Arc<AtomicBool>,
}

impl KillSwitch {
    /// Fires the kill after `delay`; later calls do nothing.
    pub fn fire(&self, delay: Duration) {
        if self.fired.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(pgid) = self.pgid {
            // A failed spawn (no threads left) kills right here instead.
            let spawned = thread::Builder::new().name("kill-9".into()).spawn(move || {
                thread::sleep(delay);
                signal_group(pgid, "KILL");
            });
            if spawned.is_err() {
                signal_group(pgid, "KILL");
            }
        }
    }

    /// Whether the kill was fired.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}
