//! Resource alarms, as RabbitMQ raises them: when the broker's memory goes
//! above its limit or the data directory's disk has less free space than its
//! limit, connections that publish stop being read (TCP backpressure) and, if
//! they advertised the capability, hear connection.blocked; when the alarm
//! clears they hear connection.unblocked and are read again. Connections that
//! only consume keep going, so queues can drain.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

/// How often memory and disk are looked at.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Which alarms are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alarm {
    /// Memory is above the limit.
    pub memory: bool,
    /// Free disk space is below the limit.
    pub disk: bool,
}

impl Alarm {
    /// Whether publishers are blocked.
    pub fn any(&self) -> bool {
        self.memory || self.disk
    }

    /// The connection.blocked reason, RabbitMQ's words.
    pub fn reason(&self) -> &'static str {
        match (self.memory, self.disk) {
            (true, true) => "low on memory & disk",
            (false, true) => "low on disk",
            _ => "low on memory",
        }
    }
}

/// The broker's resource limits and the alarms they raise.
#[derive(Debug)]
pub struct Alarms {
    memory_limit: AtomicU64,
    paging_ratio: f64,
    disk_free_limit: u64,
    data_dir: PathBuf,
    state: watch::Sender<Alarm>,
}

impl Alarms {
    /// Alarms for these limits (bytes) on the disk holding `data_dir`; paging
    /// starts at `paging_ratio` of the memory limit.
    pub fn new(
        memory_limit: u64,
        paging_ratio: f64,
        disk_free_limit: u64,
        data_dir: PathBuf,
    ) -> Self {
        Alarms {
            memory_limit: AtomicU64::new(memory_limit),
            paging_ratio,
            disk_free_limit,
            data_dir,
            state: watch::Sender::new(Alarm::default()),
        }
    }

    /// The alarms now and as they change.
    pub fn subscribe(&self) -> watch::Receiver<Alarm> {
        self.state.subscribe()
    }

    /// The alarms now.
    pub fn current(&self) -> Alarm {
        *self.state.borrow()
    }

    /// The memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// Changes the memory limit (operators, tests); takes effect at the next check.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
    }

    /// Looks at memory and disk once and raises or clears the alarms; returns
    /// whether memory is past the paging ratio of the limit (where RabbitMQ
    /// starts paging messages out).
    pub fn check(&self) -> bool {
        let rss = resident_memory();
        let memory = rss.is_some_and(|rss| rss > self.memory_limit());
        let threshold = (self.memory_limit() as f64 * self.paging_ratio) as u64;
        let paging = rss.is_some_and(|rss| rss > threshold);
        let disk =
            fs2::available_space(&self.data_dir).is_ok_and(|free| free < self.disk_free_limit);
        let now = Alarm { memory, disk };
        self.state.send_if_modified(|alarm| {
            if *alarm == now {
                return false;
            }
            if now.any() {
                tracing::warn!(
                    memory,
                    disk,
                    limit = self.memory_limit(),
                    "resource alarm: publishers are blocked"
                );
            } else {
                tracing::info!("resource alarm cleared: publishers may go on");
            }
            *alarm = now;
            true
        });
        paging
    }

    /// Checks every [`CHECK_EVERY`] until dropped with its task, telling
    /// `paging` whether queues should page transient messages out.
    pub async fn run(&self, paging: impl Fn(bool)) {
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            paging(self.check());
        }
    }
}

/// The process's resident memory in bytes (Linux); `None` elsewhere.
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

/// The machine's memory in bytes (Linux); `None` elsewhere.
pub fn total_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&meminfo, "MemTotal:")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Parses a size as the config takes it: bytes (`1048576`), with a unit
/// (`512MiB`, `2GB`, `64k`), or a share of the machine's memory (`40%`,
/// `0.4`). `total` is what a share is of.
pub fn parse_size(text: &str, total: u64) -> Option<u64> {
    let t = text.trim();
    if let Some(percent) = t.strip_suffix('%') {
        let p: f64 = percent.trim().parse().ok()?;
        return (0.0..=100.0)
            .contains(&p)
            .then_some((total as f64 * p / 100.0) as u64);
    }
    if t.contains('.') {
        let share: f64 = t.parse().ok()?;
        return (0.0..=1.0)
            .contains(&share)
            .then_some((total as f64 * share) as u64);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "k" | "K" | "KiB" | "kiB" => 1 << 10,
        "kB" | "KB" => 1_000,
        "M" | "MiB" => 1 << 20,
        "MB" => 1_000_000,
        "G" | "GiB" => 1 << 30,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_rabbitmq_writes_them() {
        assert_eq!(parse_size("1048576", 0), Some(1 << 20));
        assert_eq!(parse_size("512MiB", 0), Some(512 << 20));
        assert_eq!(parse_size("2GB", 0), Some(2_000_000_000));
        assert_eq!(parse_size("40%", 1000), Some(400));
        assert_eq!(parse_size("0.4", 1000), Some(400));
        assert_eq!(parse_size("lots", 1000), None);
        assert_eq!(parse_size("150%", 1000), None);
    }

    #[test]
    fn this_process_has_resident_memory() {
        assert!(resident_memory().is_some_and(|rss| rss > 0));
        assert!(total_memory().is_some_and(|total| total > 0));
    }
}
