//! CPU time and memory of a process, sampled from `/proc` every 100 ms by a
//! plain thread (so that a busy tokio runtime cannot delay the samples).

use std::fs;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Clock ticks per second of `utime`/`stime` in `/proc/PID/stat`. This is the
/// kernel's USER_HZ, which is 100 on every architecture Linux ships userspace
/// for (x86, arm, riscv, ...).
const TICKS_PER_SEC: f64 = 100.0;
const INTERVAL: Duration = Duration::from_millis(100);

/// What a probe saw between its start and its finish.
#[derive(Clone, Debug, Default)]
pub struct ProbeStats {
    /// The pid that was sampled.
    pub pid: u32,
    /// utime + stime used between start and finish, in seconds.
    pub cpu_secs: f64,
    /// VmRSS at start, in KiB.
    pub rss_start_kib: u64,
    /// Largest VmRSS seen by any sample, in KiB.
    pub rss_peak_kib: u64,
    /// VmRSS at finish, in KiB.
    pub rss_end_kib: u64,
    /// VmHWM at finish (the process's peak RSS over its whole life), in KiB.
    pub hwm_kib: u64,
    /// How many samples were taken.
    pub samples: u64,
    /// Set when the process could no longer be read (it exited or crashed).
    pub lost: Option<String>,
}

#[derive(Clone, Copy)]
struct Sample {
    ticks: u64,
    rss_kib: u64,
    hwm_kib: u64,
}

fn sample(pid: u32) -> io::Result<Sample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: the
    // fields we want are counted from the last ')'. After it come field 3
    // (state) onwards, so utime (field 14) is at index 11 and stime at 12.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/PID/stat"))
    };
    let ticks = field(11)? + field(12)?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        ticks,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

struct State {
    first: Sample,
    last: Sample,
    peak_kib: u64,
    samples: u64,
    lost: Option<String>,
}

impl State {
    fn record(&mut self, s: io::Result<Sample>) {
        match s {
            Ok(s) => {
                self.last = s;
                self.peak_kib = self.peak_kib.max(s.rss_kib);
                self.samples += 1;
            }
            Err(e) => {
                if self.lost.is_none() {
                    self.lost = Some(e.to_string());
                }
            }
        }
    }
}

/// A running sampler of one process.
pub struct Probe {
    pid: u32,
    stop: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    thread: Option<JoinHandle<()>>,
}

impl Probe {
    /// Takes a first sample now (failing if the process cannot be read) and
    /// keeps sampling every 100 ms until [`Probe::finish`].
    pub fn start(pid: u32) -> io::Result<Probe> {
        let first = sample(pid)?;
        let state = Arc::new(Mutex::new(State {
            first,
            last: first,
            peak_kib: first.rss_kib,
            samples: 1,
            lost: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            thread::Builder::new()
                .name(format!("probe-{pid}"))
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        thread::sleep(INTERVAL);
                        let s = sample(pid);
                        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                        st.record(s);
                        if st.lost.is_some() {
                            return;
                        }
                    }
                })?
        };
        Ok(Probe {
            pid,
            stop,
            state,
            thread: Some(thread),
        })
    }

    /// The most recent VmRSS sample, in KiB.
    pub fn rss_now_kib(&self) -> u64 {
        let s = sample(self.pid);
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.record(s);
        st.last.rss_kib
    }

    /// Stops the sampler, takes a last sample and returns what it saw.
    pub fn finish(mut self) -> ProbeStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.lost.is_none() {
            st.record(sample(self.pid));
        }
        ProbeStats {
            pid: self.pid,
            cpu_secs: st.last.ticks.saturating_sub(st.first.ticks) as f64 / TICKS_PER_SEC,
            rss_start_kib: st.first.rss_kib,
            rss_peak_kib: st.peak_kib,
            rss_end_kib: st.last.rss_kib,
            hwm_kib: st.last.hwm_kib,
            samples: st.samples,
            lost: st.lost.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let p = Probe::start(std::process::id()).expect("own /proc entry");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let s = p.finish();
        assert!(s.rss_peak_kib > 0 && s.hwm_kib >= s.rss_end_kib);
        assert!(s.lost.is_none());
    }
}
