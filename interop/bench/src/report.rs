//! What a scenario reports, and the two ways of printing it: a human table and
//! JSON (written by hand: a handful of numbers needs no serializer).

use std::fmt::Write as _;

use crate::probe::ProbeStats;

/// Latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// The nearest-rank `p` percentile (0..1) of sorted, non-empty nanosecond samples, in µs.
pub fn nearest_rank_us(sorted_ns: &[u64], p: f64) -> f64 {
    let rank = ((p * sorted_ns.len() as f64).ceil() as usize).clamp(1, sorted_ns.len());
    sorted_ns[rank - 1] as f64 / 1000.0
}

impl Percentiles {
    /// Nearest-rank percentiles of latencies given in nanoseconds.
    pub fn of(mut ns: Vec<u64>) -> Option<Percentiles> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |p: f64| nearest_rank_us(&ns, p);
        Some(Percentiles {
            count: ns.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: ns[ns.len() - 1] as f64 / 1000.0,
        })
    }
}

/// How a scenario ended.
#[derive(Clone, Debug)]
pub enum Status {
    /// Completed: every message published was delivered.
    Ok,
    /// No progress for the stall timeout (or the hard cap passed).
    Stalled(String),
    /// A client error: connection/channel closed, nack, setup refused.
    Failed(String),
}

impl Status {
    fn word(&self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Stalled(_) => "STALLED",
            Status::Failed(_) => "FAILED",
        }
    }

    fn detail(&self) -> Option<&str> {
        match self {
            Status::Ok => None,
            Status::Stalled(s) | Status::Failed(s) => Some(s),
        }
    }
}

/// One scenario's figures.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Scenario name.
    pub scenario: String,
    /// How it ended.
    pub status: Status,
    /// Messages published (confirmed, where confirms were on).
    pub published: u64,
    /// Seconds the producers ran (until their last confirm).
    pub pub_secs: f64,
    /// Deliveries received.
    pub delivered: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Seconds from the consumers' start until their last delivery.
    pub con_secs: f64,
    /// End-to-end latency, where measured.
    pub latency: Option<Percentiles>,
    /// The broker process, if its pid was given.
    pub broker: Option<ProbeStats>,
    /// This process.
    pub client: Option<ProbeStats>,
    /// Wall-clock seconds of the measured part.
    pub wall_secs: f64,
    /// Anything else worth saying (backlog depth, lag, redeliveries, ...).
    pub notes: Vec<String>,
}

impl Outcome {
    /// Messages published per second.
    pub fn publish_rate(&self) -> f64 {
        rate(self.published, self.pub_secs)
    }

    /// Deliveries received per second.
    pub fn consume_rate(&self) -> f64 {
        rate(self.delivered, self.con_secs)
    }
}

fn rate(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The human table, then the notes of each scenario.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<24} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>13} {:>17} {:>9}",
        "scenario",
        "status",
        "pub msg/s",
        "del msg/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "broker CPU s",
        "broker RSS MiB",
        "bench CPU"
    );
    let _ = writeln!(
        s,
        "{:<24} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>13} {:>17} {:>9}",
        "", "", "", "", "", "", "", "", "(% of 1 core)", "start/peak/end", "s"
    );
    for o in outcomes {
        let lat = |f: fn(&Percentiles) -> f64| {
            o.latency
                .as_ref()
                .map_or("-".to_string(), |p| format!("{:.3}", f(p) / 1000.0))
        };
        let (cpu, rss) = match &o.broker {
            Some(b) => (
                format!(
                    "{:.2} ({:.0}%)",
                    b.cpu_secs,
                    100.0 * b.cpu_secs / o.wall_secs.max(1e-9)
                ),
                format!(
                    "{:.0}/{:.0}/{:.0}",
                    mib(b.rss_start_kib),
                    mib(b.rss_peak_kib),
                    mib(b.rss_end_kib)
                ),
            ),
            None => ("-".to_string(), "-".to_string()),
        };
        let client = o
            .client
            .as_ref()
            .map_or("-".to_string(), |c| format!("{:.2}", c.cpu_secs));
        let _ = writeln!(
            s,
            "{:<24} {:>7} {:>10.0} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>13} {:>17} {:>9}",
            o.scenario,
            o.status.word(),
            o.publish_rate(),
            o.consume_rate(),
            lat(|p| p.p50),
            lat(|p| p.p95),
            lat(|p| p.p99),
            lat(|p| p.max),
            cpu,
            rss,
            client
        );
    }
    for o in outcomes {
        let mut lines = Vec::new();
        if let Some(d) = o.status.detail() {
            lines.push(format!("{}: {d}", o.status.word()));
        }
        lines.push(format!(
            "published {} in {:.2} s, delivered {} of {} expected in {:.2} s, measured {:.2} s",
            o.published, o.pub_secs, o.delivered, o.expected, o.con_secs, o.wall_secs
        ));
        if let Some(b) = &o.broker {
            let mut l = format!(
                "broker pid {}: VmHWM {:.0} MiB (peak over its life), {} samples",
                b.pid,
                mib(b.hwm_kib),
                b.samples
            );
            if let Some(lost) = &b.lost {
                let _ = write!(l, "; LOST the broker process: {lost}");
            }
            lines.push(l);
        }
        lines.extend(o.notes.iter().cloned());
        let _ = writeln!(s, "\n{}:", o.scenario);
        for l in lines {
            let _ = writeln!(s, "  {l}");
        }
    }
    s
}

/// All outcomes as one JSON document.
pub fn json(uri: &str, outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let _ = write!(s, "{{\"uri\":{},\"scenarios\":[", quote(uri));
    for (i, o) in outcomes.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"scenario\":{},\"status\":{},\"detail\":{},\"published\":{},\"publish_secs\":{},\
             \"publish_rate\":{},\"delivered\":{},\"expected\":{},\"consume_secs\":{},\
             \"consume_rate\":{},\"wall_secs\":{}",
            quote(&o.scenario),
            quote(o.status.word()),
            o.status.detail().map_or("null".to_string(), quote),
            o.published,
            num(o.pub_secs),
            num(o.publish_rate()),
            o.delivered,
            o.expected,
            num(o.con_secs),
            num(o.consume_rate()),
            num(o.wall_secs)
        );
        match &o.latency {
            Some(p) => {
                let _ = write!(
                    s,
                    ",\"latency_us\":{{\"count\":{},\"p50\":{},\"p95\":{},\"p99\":{},\"max\":{}}}",
                    p.count,
                    num(p.p50),
                    num(p.p95),
                    num(p.p99),
                    num(p.max)
                );
            }
            None => s.push_str(",\"latency_us\":null"),
        }
        for (key, probe) in [("broker", &o.broker), ("bench", &o.client)] {
            match probe {
                Some(b) => {
                    let _ = write!(
                        s,
                        ",\"{key}\":{{\"pid\":{},\"cpu_secs\":{},\"rss_start_kib\":{},\
                         \"rss_peak_kib\":{},\"rss_end_kib\":{},\"vm_hwm_kib\":{},\"samples\":{},\
                         \"lost\":{}}}",
                        b.pid,
                        num(b.cpu_secs),
                        b.rss_start_kib,
                        b.rss_peak_kib,
                        b.rss_end_kib,
                        b.hwm_kib,
                        b.samples,
                        b.lost.as_deref().map_or("null".to_string(), quote)
                    );
                }
                None => {
                    let _ = write!(s, ",\"{key}\":null");
                }
            }
        }
        s.push_str(",\"notes\":[");
        for (j, n) in o.notes.iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            s.push_str(&quote(n));
        }
        s.push_str("]}");
    }
    s.push_str("]}\n");
    s
}

/// A JSON number with three decimals, or null.
pub fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".to_string()
    }
}

/// A JSON string.
pub fn quote(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=100).map(|i| i * 1000).collect()).expect("samples");
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert!(Percentiles::of(Vec::new()).is_none());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
