//! A producer: pre-encoded publishes written in large batches, paced to a
//! schedule or flat out, with the confirms the broker sends back counted.
//! [`Pacer`] decides what to write and when, [`ConfirmState`] reads what comes
//! back; [`spawn`] runs them on two OS threads over one blocking socket,
//! `paired` beside a consumer in one thread.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::shared::Shared;
use crate::stats::Behind;
use crate::wire::{CONNECTION_CLOSE, Flow, Inbox, Scanner, Template};

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
    /// Paced: how late each batch was written against its schedule.
    pub behind: Behind,
    /// Of them, confirmed (equal to `sent` without confirms).
    pub confirmed: u64,
    /// When it finished (its last confirm), ns since the run's epoch.
    pub finished_ns: u64,
}

/// What a producer should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Write [`Pacer::batch`], then call [`Pacer::wrote`].
    Write,
    /// Nothing is due before this instant.
    Until(Instant),
    /// The confirm window is full.
    Confirms,
    /// The consumers are too far behind.
    Backlog,
    /// Publishing is over (its time is up or the run stopped).
    Done,
}

/// A producer's schedule: which messages to write next, stamped with the
/// time they were due (paced) or written (flat out).
pub struct Pacer {
    spec: PubSpec,
    start: Instant,
    start_ns: u64,
    deadline: Instant,
    per_batch: u64,
    batch: Vec<u8>,
    /// Messages in `batch`, not yet written.
    pending: u64,
    sent: u64,
    key: usize,
    behind: Behind,
}

impl Pacer {
    /// A schedule starting now.
    pub fn new(spec: PubSpec, shared: &Shared) -> Pacer {
        let longest = spec
            .templates
            .iter()
            .map(|t| t.bytes.len())
            .max()
            .unwrap_or(1);
        let per_batch = (spec.batch_bytes / longest).max(1) as u64;
        let start = Instant::now();
        Pacer {
            batch: Vec::with_capacity(per_batch as usize * longest),
            start,
            start_ns: shared.now_ns(),
            deadline: start + spec.duration,
            per_batch,
            pending: 0,
            sent: 0,
            key: 0,
            behind: Behind::default(),
            spec,
        }
    }

    /// Messages written so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Paced: whether a whole batch is due (a producer that is behind
    /// should not wait to write).
    pub fn batch_due(&self, now: Instant) -> bool {
        self.spec.rate.is_none_or(|rate| {
            let due = ((now - self.start).as_secs_f64() * rate) as u64 + 1;
            due.saturating_sub(self.sent) >= self.per_batch
        })
    }

    /// Whether the producer waits for confirms.
    pub fn confirms(&self) -> bool {
        self.spec.window.is_some()
    }

    /// What to do now, `confirmed` messages having been confirmed; on
    /// [`Next::Write`] the batch is ready.
    pub fn next(&mut self, shared: &Shared, confirmed: u64) -> Next {
        if shared.stopped() {
            return Next::Done;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Next::Done;
        }
        let spec = &self.spec;
        let sent = self.sent;
        let mut n = self.per_batch;
        if let Some(rate) = spec.rate {
            let due = ((now - self.start).as_secs_f64() * rate) as u64 + 1;
            if due <= sent {
                let next = self.start + Duration::from_secs_f64(sent as f64 / rate);
                return Next::Until(next.min(self.deadline));
            }
            n = n.min(due - sent);
        }
        if let Some(window) = spec.window {
            let room = window.saturating_sub(sent - confirmed);
            if room == 0 {
                return Next::Confirms;
            }
            n = n.min(room);
        }
        if spec.max_backlog > 0 && shared.backlog() > spec.max_backlog {
            return Next::Backlog;
        }
        self.batch.clear();
        if let Some(rate) = spec.rate {
            // Lateness of the batch's first message: the consumer's latency
            // counts from that same due time.
            let due = self.start_ns + (sent as f64 * 1e9 / rate) as u64;
            self.behind.record(shared.now_ns().saturating_sub(due), n);
        }
        let mut weight = 0;
        for i in 0..n {
            let stamp = match spec.rate {
                // The time it was due, so that a late send counts as latency.
                Some(rate) => self.start_ns + ((sent + i) as f64 * 1e9 / rate) as u64,
                None => shared.now_ns(),
            };
            spec.templates[self.key].put(&mut self.batch, stamp);
            weight += spec.weights[self.key];
            self.key += 1;
            if self.key == spec.templates.len() {
                self.key = 0;
            }
        }
        shared.expected.fetch_add(weight, Ordering::Relaxed);
        self.pending = n;
        Next::Write
    }

    /// The batch [`Pacer::next`] made.
    pub fn batch(&self) -> &[u8] {
        &self.batch
    }

    /// The batch was written.
    pub fn wrote(&mut self, shared: &Shared) {
        self.sent += self.pending;
        if self.spec.window.is_none() {
            shared.published.fetch_add(self.pending, Ordering::Relaxed);
        }
        self.pending = 0;
    }

    /// The producer's result, `confirmed` of its messages confirmed.
    pub fn finish(&self, shared: &Shared, confirmed: u64) -> PubResult {
        PubResult {
            behind: self.behind,
            confirmed: if self.confirms() {
                confirmed.min(self.sent)
            } else {
                self.sent
            },
            finished_ns: shared.now_ns(),
        }
    }
}

/// A producer's reading side: counts confirms, fails the run on a nack or
/// a close, ends at close-ok.
pub struct ConfirmState {
    inbox: Inbox,
}

impl ConfirmState {
    /// A reader whose socket already delivered `leftover`.
    pub fn new(leftover: &[u8]) -> ConfirmState {
        ConfirmState {
            inbox: Inbox::new(leftover, 64 << 10, Scanner::new(false, 0)),
        }
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        self.inbox.space()
    }

    /// Accounts `n` bytes read into [`ConfirmState::space`].
    pub fn read(&mut self, n: usize) {
        self.inbox.read(n);
    }

    /// Publishes confirmed so far.
    pub fn confirmed(&self) -> u64 {
        self.inbox.tally.confirmed
    }

    /// Scans what was read; counts new confirms into `shared.published`.
    pub fn step(&mut self, shared: &Shared) -> Flow {
        let before = self.inbox.tally.confirmed;
        if let Err(e) = self.inbox.scan() {
            shared.fail(&format!("producer: {e}"));
            return Flow::Done;
        }
        let tally = &self.inbox.tally;
        if tally.confirmed > before {
            shared
                .published
                .fetch_add(tally.confirmed - before, Ordering::Relaxed);
        }
        if tally.nacks > 0 {
            shared.fail("producer: a publish was nacked");
            return Flow::Done;
        }
        if let Some(c) = &tally.closed {
            shared.fail(&format!("producer: {c}"));
            return Flow::Done;
        }
        if tally.close_ok || self.inbox.full() {
            return Flow::Done;
        }
        Flow::More
    }
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
                    .spawn(move || read_back(s, &leftover, &shared, &confirmed, &me))
                    .ok()
            }
            Err(_) => None,
        };
        if reader.is_none() {
            shared.fail("cannot start a producer's reader thread");
        }
        let result = publish(stream, spec, &shared, &confirmed);
        if let Some(r) = reader {
            let _ = r.join();
        }
        result
    })
}

fn publish(
    mut stream: TcpStream,
    spec: PubSpec,
    shared: &Shared,
    confirmed: &AtomicU64,
) -> PubResult {
    let mut pacer = Pacer::new(spec, shared);
    loop {
        match pacer.next(shared, confirmed.load(Ordering::Acquire)) {
            Next::Write => {
                if let Err(e) = stream.write_all(pacer.batch()) {
                    shared.fail(&format!("publish: {e}"));
                    break;
                }
                pacer.wrote(shared);
            }
            Next::Until(t) => thread::sleep(t.saturating_duration_since(Instant::now())),
            Next::Confirms => thread::park_timeout(Duration::from_millis(50)),
            Next::Backlog => thread::sleep(Duration::from_micros(200)),
            Next::Done => break,
        }
    }
    if pacer.confirms() {
        while confirmed.load(Ordering::Acquire) < pacer.sent() && !shared.stopped() {
            thread::park_timeout(Duration::from_millis(50));
        }
    }
    let out = pacer.finish(shared, confirmed.load(Ordering::Acquire));
    let _ = stream.write_all(&CONNECTION_CLOSE);
    out
}

/// The producer's reading thread: publishes the confirm count and wakes the
/// writer when the window opens.
fn read_back(
    mut stream: TcpStream,
    leftover: &[u8],
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
    let mut state = ConfirmState::new(leftover);
    loop {
        let before = state.confirmed();
        let back = state.step(shared);
        if state.confirmed() > before {
            confirmed.store(state.confirmed(), Ordering::Release);
            writer.unpark();
        }
        if back == Flow::Done {
            break;
        }
        match stream.read(state.space()) {
            Ok(0) => {
                if !shared.stopped() {
                    shared.fail("producer: the broker closed the connection");
                }
                break;
            }
            Ok(n) => state.read(n),
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
