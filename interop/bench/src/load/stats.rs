//! Latency percentiles and the figures of one run: the plain text table and
//! the JSON document (its escaping is warren-bench's).

use std::fmt::Write as _;

use crate::bench_report::{num, quote};
use crate::probe::ProbeStats;

/// Nearest-rank latency percentiles, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    /// Percentiles of latencies in nanoseconds (None without samples).
    pub fn of(mut ns: Vec<u64>) -> Option<Latency> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |p: f64| crate::bench_report::nearest_rank_us(&ns, p);
        Some(Latency {
            count: ns.len(),
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: ns[ns.len() - 1] as f64 / 1000.0,
        })
    }
}

/// How far behind its schedule a paced producer wrote its messages: counts of
/// messages by powers of two of microseconds late, so that a latency tail the
/// load generator caused itself (its thread not running on time) shows apart
/// from the broker's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Behind {
    /// `counts[i]`: messages written less than `2^i` µs late (and at least
    /// `2^(i-1)`; `counts[0]`: under 1 µs).
    pub counts: [u64; 32],
}

impl Behind {
    /// Counts `n` messages written `late_ns` after the first of them was due.
    pub fn record(&mut self, late_ns: u64, n: u64) {
        let us = late_ns / 1000;
        let bucket = (u64::BITS - us.leading_zeros()) as usize;
        self.counts[bucket.min(31)] += n;
    }

    /// Adds another producer's counts.
    pub fn merge(&mut self, other: &Behind) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
    }

    /// Messages counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The bucket's upper bound (µs) under which a share `p` of the messages were written.
    pub fn under_us(&self, p: f64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let want = (p * total as f64).ceil() as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return Some(1u64 << i);
            }
        }
        Some(1u64 << 31)
    }

    /// Messages written at least `us` (a power of two) late.
    pub fn at_least_us(&self, us: u64) -> u64 {
        let from = (u64::BITS - us.leading_zeros()) as usize;
        self.counts[from.min(32)..].iter().sum()
    }
}

/// CSV lines `scenario,due_ms,messages,p50_us,p99_us,max_us`, one per 10 ms of
/// schedule, from latencies (ns) in the order their messages were due,
/// `per_slot` of them per 10 ms.
pub fn timeline_csv(scenario: &str, ns: &[u64], per_slot: f64) -> String {
    let mut s = String::new();
    let mut start = 0usize;
    let mut slot = 0u64;
    while start < ns.len() {
        let end = (((slot + 1) as f64 * per_slot) as usize).clamp(start + 1, ns.len());
        let mut chunk = ns[start..end].to_vec();
        chunk.sort_unstable();
        let at = |p: f64| crate::bench_report::nearest_rank_us(&chunk, p);
        let _ = writeln!(
            s,
            "{scenario},{},{},{:.0},{:.0},{:.0}",
            slot * 10,
            chunk.len(),
            at(0.50),
            at(0.99),
            at(1.0)
        );
        start = end;
        slot += 1;
    }
    s
}

/// One scenario against one broker.
#[derive(Clone, Debug, Default)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// `ok`, `STALLED ...` or `FAILED ...`.
    pub status: String,
    /// Messages published (confirmed, with confirms).
    pub published: u64,
    /// Seconds until the last producer finished.
    pub pub_secs: f64,
    /// Deliveries received.
    pub delivered: u64,
    /// Deliveries expected.
    pub expected: u64,
    /// Seconds until the last delivery.
    pub del_secs: f64,
    /// Seconds measured (start of publishing to the end of the deliveries).
    pub wall_secs: f64,
    /// The broker's CPU and RSS over the measured part.
    pub broker: Option<ProbeStats>,
    /// This process's.
    pub client: Option<ProbeStats>,
    /// Sampled end-to-end latency.
    pub latency: Option<Latency>,
    /// Paced runs: how late the producers wrote against their schedule.
    pub behind: Option<Behind>,
    /// Anything else.
    pub notes: Vec<String>,
}

fn per(n: u64, secs: f64) -> f64 {
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

impl Row {
    /// Publishes per second.
    pub fn pub_rate(&self) -> f64 {
        per(self.published, self.pub_secs)
    }
    /// Deliveries per second.
    pub fn del_rate(&self) -> f64 {
        per(self.delivered, self.del_secs)
    }
    /// Broker CPU µs per delivery.
    pub fn broker_us(&self) -> Option<f64> {
        let b = self.broker.as_ref()?;
        (self.delivered > 0).then(|| b.cpu_secs * 1e6 / self.delivered as f64)
    }
    /// Deliveries per second of broker CPU.
    pub fn per_core_sec(&self) -> Option<f64> {
        let b = self.broker.as_ref()?;
        (b.cpu_secs > 0.0).then(|| self.delivered as f64 / b.cpu_secs)
    }
    /// Broker CPU as a share of one core over the measured part.
    pub fn broker_core(&self) -> Option<f64> {
        Some(self.broker.as_ref()?.cpu_secs / self.wall_secs.max(1e-9))
    }
    /// This client's CPU µs per delivery.
    pub fn client_us(&self) -> Option<f64> {
        let c = self.client.as_ref()?;
        (self.delivered > 0).then(|| c.cpu_secs * 1e6 / self.delivered as f64)
    }
    /// This client's CPU as a share of one core.
    pub fn client_core(&self) -> Option<f64> {
        Some(self.client.as_ref()?.cpu_secs / self.wall_secs.max(1e-9))
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |v| format!("{v:.digits$}"))
}

/// The plain text table, then each row's notes.
pub fn table(label: &str, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "broker: {label}");
    let _ = writeln!(
        s,
        "{:<26} {:>6} {:>9} {:>9} {:>8} {:>7} {:>10} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8}",
        "scenario",
        "status",
        "pub/s",
        "del/s",
        "brk µs/m",
        "brk %",
        "msg/brk-s",
        "cli µs/m",
        "cli %",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "RSS MiB"
    );
    for r in rows {
        let lat = |f: fn(&Latency) -> f64| opt(r.latency.as_ref().map(f), 0);
        let word = r.status.split_whitespace().next().unwrap_or("");
        let _ = writeln!(
            s,
            "{:<26} {:>6} {:>9.0} {:>9.0} {:>8} {:>7} {:>10} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8}",
            r.scenario,
            word,
            r.pub_rate(),
            r.del_rate(),
            opt(r.broker_us(), 2),
            opt(r.broker_core().map(|c| c * 100.0), 0),
            opt(r.per_core_sec(), 0),
            opt(r.client_us(), 2),
            opt(r.client_core().map(|c| c * 100.0), 0),
            lat(|l| l.p50),
            lat(|l| l.p99),
            lat(|l| l.p999),
            opt(r.broker.as_ref().map(|b| b.rss_peak_kib as f64 / 1024.0), 0),
        );
    }
    for r in rows {
        let _ = writeln!(s, "\n{}:", r.scenario);
        if r.status != "ok" {
            let _ = writeln!(s, "  {}", r.status);
        }
        let _ = writeln!(
            s,
            "  published {} in {:.2} s, delivered {} of {} expected in {:.2} s, measured {:.2} s",
            r.published, r.pub_secs, r.delivered, r.expected, r.del_secs, r.wall_secs
        );
        if let (Some(b), Some(c)) = (&r.broker, &r.client) {
            let _ = writeln!(
                s,
                "  broker CPU {:.2} s, RSS {:.0}/{:.0}/{:.0} MiB (start/peak/end); client CPU {:.2} s",
                b.cpu_secs,
                b.rss_start_kib as f64 / 1024.0,
                b.rss_peak_kib as f64 / 1024.0,
                b.rss_end_kib as f64 / 1024.0,
                c.cpu_secs
            );
        }
        if let Some(l) = &r.latency {
            let _ = writeln!(s, "  latency: {} samples, max {:.0} µs", l.count, l.max);
        }
        if let Some(b) = &r.behind {
            let total = b.total().max(1);
            let late = b.at_least_us(1024);
            let _ = writeln!(
                s,
                "  producers behind schedule: p99 < {} µs, p99.9 < {} µs; {} of {} messages ({:.3} %) written 1 ms or more late",
                b.under_us(0.99).unwrap_or(0),
                b.under_us(0.999).unwrap_or(0),
                late,
                b.total(),
                late as f64 * 100.0 / total as f64
            );
        }
        for n in &r.notes {
            let _ = writeln!(s, "  {n}");
        }
    }
    s
}

/// All rows as one JSON document.
pub fn json(label: &str, uri: &str, rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"broker\":{},\"uri\":{},\"scenarios\":[",
        quote(label),
        quote(uri)
    );
    let o = |x: Option<f64>| x.map_or("null".to_string(), num);
    for (i, r) in rows.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(
            s,
            "{{\"scenario\":{},\"status\":{},\"published\":{},\"publish_secs\":{},\
             \"publish_rate\":{},\"delivered\":{},\"expected\":{},\"deliver_secs\":{},\
             \"deliver_rate\":{},\"wall_secs\":{},\"broker_cpu_us_per_msg\":{},\
             \"broker_cpu_cores\":{},\"msgs_per_broker_core_sec\":{},\
             \"client_cpu_us_per_msg\":{},\"client_cpu_cores\":{},\"broker_rss_peak_kib\":{}",
            quote(&r.scenario),
            quote(&r.status),
            r.published,
            num(r.pub_secs),
            num(r.pub_rate()),
            r.delivered,
            r.expected,
            num(r.del_secs),
            num(r.del_rate()),
            num(r.wall_secs),
            o(r.broker_us()),
            o(r.broker_core()),
            o(r.per_core_sec()),
            o(r.client_us()),
            o(r.client_core()),
            r.broker
                .as_ref()
                .map_or("null".to_string(), |b| b.rss_peak_kib.to_string()),
        );
        match &r.latency {
            Some(l) => {
                let _ = write!(
                    s,
                    ",\"latency_us\":{{\"count\":{},\"p50\":{},\"p99\":{},\"p99_9\":{},\"max\":{}}}",
                    l.count,
                    num(l.p50),
                    num(l.p99),
                    num(l.p999),
                    num(l.max)
                );
            }
            None => s.push_str(",\"latency_us\":null"),
        }
        match &r.behind {
            Some(b) => {
                let _ = write!(
                    s,
                    ",\"behind_schedule_us\":{{\"p99_under\":{},\"p99_9_under\":{},\"messages\":{},\"at_least_1ms\":{}}}",
                    b.under_us(0.99).unwrap_or(0),
                    b.under_us(0.999).unwrap_or(0),
                    b.total(),
                    b.at_least_us(1024)
                );
            }
            None => s.push_str(",\"behind_schedule_us\":null"),
        }
        s.push_str(",\"notes\":[");
        for (j, n) in r.notes.iter().enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let l = Latency::of((1..=1000).map(|i| i * 1000).collect()).expect("samples");
        assert_eq!((l.p50, l.p99, l.p999, l.max), (500.0, 990.0, 999.0, 1000.0));
        let one = Latency::of(vec![7000]).expect("one");
        assert_eq!((one.p50, one.p999), (7.0, 7.0));
        assert!(Latency::of(Vec::new()).is_none());
    }

    #[test]
    fn timeline_slots_by_due_time() {
        // 250 messages per 10 ms: the second slot holds a 5 ms spike.
        let mut ns = vec![50_000u64; 500];
        ns[300] = 5_000_000;
        let csv = timeline_csv("latency", &ns, 250.0);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            ["latency,0,250,50,50,50", "latency,10,250,50,50,5000"]
        );
    }

    #[test]
    fn behind_schedule_buckets() {
        let mut b = Behind::default();
        b.record(500, 990); // under 1 µs
        b.record(3_000_000, 9); // 3 ms: under 4096 µs
        let mut other = Behind::default();
        other.record(20_000_000, 1); // 20 ms: under 32768 µs
        b.merge(&other);
        assert_eq!(b.total(), 1000);
        assert_eq!(b.under_us(0.99), Some(1));
        assert_eq!(b.under_us(0.995), Some(4096));
        assert_eq!(b.under_us(1.0), Some(32768));
        assert_eq!(b.at_least_us(1024), 10);
        assert_eq!(Behind::default().under_us(0.99), None);
        let r = Row {
            behind: Some(b),
            ..Default::default()
        };
        assert!(json("w", "u", &[r]).contains("\"at_least_1ms\":10"));
    }

    #[test]
    fn per_message_figures() {
        let r = Row {
            delivered: 2_000_000,
            wall_secs: 10.0,
            broker: Some(ProbeStats {
                cpu_secs: 4.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(r.broker_us(), Some(2.0));
        assert_eq!(r.per_core_sec(), Some(500_000.0));
        assert_eq!(r.broker_core(), Some(0.4));
        assert!(json("w", "u", &[r]).contains("\"broker_cpu_us_per_msg\":2.000"));
    }
}
