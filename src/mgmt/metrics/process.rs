//! What Warren measures of its process and host: memory, disk, file
//! descriptors, the resource alarms and uptime.

use super::Page;
use crate::broker::Broker;

/// Memory, disk, file descriptors and uptime: what Warren measures of its
/// process and host.
pub(super) fn process(page: &mut Page, broker: &Broker) {
    if let Some(rss) = crate::alarms::resident_memory() {
        page.gauge(
            "rabbitmq_process_resident_memory_bytes",
            "Memory used in bytes",
            rss as f64,
        );
    }
    let limit = broker.alarms.memory_limit();
    if limit != u64::MAX {
        page.gauge(
            "rabbitmq_resident_memory_limit_bytes",
            "Memory high watermark in bytes",
            limit as f64,
        );
    }
    if let Ok(free) = fs2::available_space(&broker.config.data_dir) {
        page.gauge(
            "rabbitmq_disk_space_available_bytes",
            "Disk space available in bytes",
            free as f64,
        );
    }
    if let Ok(limit) = broker.config.disk_free_limit_bytes() {
        page.gauge(
            "rabbitmq_disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
            limit as f64,
        );
    }
    let alarm = broker.alarms.current();
    page.gauge(
        "rabbitmq_alarms_memory_used_watermark",
        "Is 1 if VM memory watermark alarm is in effect",
        f64::from(u8::from(alarm.memory)),
    );
    page.gauge(
        "rabbitmq_alarms_free_disk_space_watermark",
        "Is 1 if free disk space watermark alarm is in effect",
        f64::from(u8::from(alarm.disk)),
    );
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        page.gauge(
            "rabbitmq_process_open_fds",
            "Open file descriptors",
            fds.count() as f64,
        );
    }
    if let Some(max) = max_fds() {
        page.gauge(
            "rabbitmq_process_max_fds",
            "Open file descriptors limit",
            max as f64,
        );
    }
    page.gauge(
        "rabbitmq_erlang_uptime_seconds",
        "Node uptime (Warren: seconds since the broker started)",
        f64::from(broker.clock.now()),
    );
}

/// The soft limit of open files (Linux); `None` elsewhere or unlimited.
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
