//! A producer: its own OS thread writing pre-encoded publishes in large
//! batches to a blocking socket, and a second thread on the same socket that
//! reads what the broker sends back (confirms, closes, flow control).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::shared::Shared;
use crate::stats::Behind;
use crate::wire::{CONNECTION_CLOSE, Scanner, Tally, Template};

/// What one producer does.
#[derive(Clone, Debug)]
pub struct PubSpec {
    /// One pre-encoded publish per routing key, cycled.
    pub templates: Vec<Template>,
    /// Deliveries each template's message should produce.
    pub weights: Vec<u64>,
    /// Publisher confirms outstanding at most (None: no confirms).
    pub window: Option<u64>,
    /// Messages per second (None: as fast as the socket takes them).
    pub rate: Option<f64>,
    /// How long to publish.
    pub duration: Duration,
    /// Bytes per write, about.
    pub batch_bytes: usize,
    /// Pause while the run's deliveries lag its publishes by more than this
    /// (0: never).
    pub max_backlog: u64,
}

/// What one producer did.
#[derive(Clone, Copy, Debug, Default)]
pub struct PubResult {
    /// Messages written.
    pub sent: u64,
    /// Paced: how late each batch was written against its schedule.
    pub behind: Behind,
    /// Of them, confirmed (equal to `sent` without confirms).
    pub confirmed: u64,
    /// When it finished (its last confirm), ns since the run's epoch.
    pub finished_ns: u64,
}

/// Starts a producer on `stream` (set up, channel 1 open, confirms selected
/// if `spec.window` is set).
pub fn spawn(
    stream: TcpStream,
    leftover: Vec<u8>,
    spec: PubSpec,
    shared: Arc<Shared>,
    name: String,
) -> std::io::Result<JoinHandle<PubResult>> {
    thread::Builder::new().name(name.clone()).spawn(move || {
        let confirmed = Arc::new(AtomicU64::new(0));
        let me = thread::current();
        let reader = match stream.try_clone() {
            Ok(s) => {
                let (shared, confirmed) = (shared.clone(), confirmed.clone());
                thread::Builder::new()
                    .name(format!("{name}-acks"))
                    .spawn(move || read_back(s, leftover, &shared, &confirmed, &me))
                    .ok()
            }
            Err(_) => None,
        };
        if reader.is_none() {
            shared.fail("cannot start a producer's reader thread");
        }
        let result = publish(stream, &spec, &shared, &confirmed);
        if let Some(r) = reader {
            let _ = r.join();
        }
        result
    })
}

fn publish(
    mut stream: TcpStream,
    spec: &PubSpec,
    shared: &Shared,
    confirmed: &AtomicU64,
) -> PubResult {
    let start = Instant::now();
    let start_ns = shared.now_ns();
    let deadline = start + spec.duration;
    let longest = spec
        .templates
        .iter()
        .map(|t| t.bytes.len())
        .max()
        .unwrap_or(1);
    let per_batch = (spec.batch_bytes / longest).max(1) as u64;
    let mut batch = Vec::with_capacity(per_batch as usize * longest);
    let (mut sent, mut key) = (0u64, 0usize);
    let mut out = PubResult::default();
    loop {
        if shared.stopped() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let mut n = per_batch;
        if let Some(rate) = spec.rate {
            let due = ((now - start).as_secs_f64() * rate) as u64 + 1;
            if due <= sent {
                let next = start + Duration::from_secs_f64(sent as f64 / rate);
                thread::sleep(next.min(deadline).saturating_duration_since(now));
                continue;
            }
            n = n.min(due - sent);
        }
        if let Some(window) = spec.window {
            let room = window.saturating_sub(sent - confirmed.load(Ordering::Acquire));
            if room == 0 {
                thread::park_timeout(Duration::from_millis(50));
                continue;
            }
            n = n.min(room);
        }
        if spec.max_backlog > 0 && shared.backlog() > spec.max_backlog {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        batch.clear();
        if let Some(rate) = spec.rate {
            // Lateness of the batch's first message: the consumer's latency
            // counts from that same due time.
            let due = start_ns + (sent as f64 * 1e9 / rate) as u64;
            out.behind.record(shared.now_ns().saturating_sub(due), n);
        }
        let mut weight = 0;
        for i in 0..n {
            let stamp = match spec.rate {
                // The time it was due, so that a late send counts as latency.
                Some(rate) => start_ns + ((sent + i) as f64 * 1e9 / rate) as u64,
                None => shared.now_ns(),
            };
            spec.templates[key].put(&mut batch, stamp);
            weight += spec.weights[key];
            key += 1;
            if key == spec.templates.len() {
                key = 0;
            }
        }
        shared.expected.fetch_add(weight, Ordering::Relaxed);
        if let Err(e) = stream.write_all(&batch) {
            shared.fail(&format!("publish: {e}"));
            break;
        }
        sent += n;
        if spec.window.is_none() {
            shared.published.fetch_add(n, Ordering::Relaxed);
        }
    }
    out.sent = sent;
    if spec.window.is_some() {
        while confirmed.load(Ordering::Acquire) < sent && !shared.stopped() {
            thread::park_timeout(Duration::from_millis(50));
        }
        out.confirmed = confirmed.load(Ordering::Acquire).min(sent);
    } else {
        out.confirmed = sent;
    }
    out.finished_ns = shared.now_ns();
    let _ = stream.write_all(&CONNECTION_CLOSE);
    out
}

/// The producer's reading side: counts confirms, wakes the writer when the
/// window opens, fails the run on a nack or a close, ends at close-ok.
fn read_back(
    mut stream: TcpStream,
    leftover: Vec<u8>,
    shared: &Shared,
    confirmed: &AtomicU64,
    writer: &thread::Thread,
) {
    if stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
    {
        shared.fail("cannot set a read timeout");
        return;
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut filled = leftover.len().min(buf.len());
    buf[..filled].copy_from_slice(&leftover[..filled]);
    let mut scanner = Scanner::new(false, 0);
    let mut tally = Tally::default();
    let mut stamps = Vec::new();
    loop {
        let before = tally.confirmed;
        match scanner.scan(&buf[..filled], &mut tally, &mut stamps) {
            Ok(used) => {
                buf.copy_within(used..filled, 0);
                filled -= used;
            }
            Err(e) => {
                shared.fail(&format!("producer: {e}"));
                break;
            }
        }
        if tally.confirmed > before {
            shared
                .published
                .fetch_add(tally.confirmed - before, Ordering::Relaxed);
            confirmed.store(tally.confirmed, Ordering::Release);
            writer.unpark();
        }
        if tally.nacks > 0 {
            shared.fail("producer: a publish was nacked");
            break;
        }
        if let Some(c) = &tally.closed {
            shared.fail(&format!("producer: {c}"));
            break;
        }
        if tally.close_ok || filled == buf.len() {
            break;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                if !shared.stopped() {
                    shared.fail("producer: the broker closed the connection");
                }
                break;
            }
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stopped() {
                    break;
                }
            }
            Err(e) => {
                shared.fail(&format!("producer: read: {e}"));
                break;
            }
        }
    }
    writer.unpark();
}
