//! One producer and one consumer driven by a single OS thread that waits in
//! `poll` on both sockets with the next batch's due time as its timeout
//! (`--one-thread`). With two threads, a paced run at high load keeps the
//! producer and the consumer runnable on the client's one core at once, and
//! each waits for the other's time slice: milliseconds that a latency
//! measurement would blame on the broker. Here there is one thread to wake,
//! and nothing else of the client's to wait for.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::consumer::{ConResult, ConSpec, ConState};
use crate::publisher::{ConfirmState, Next, Pacer, PubResult, PubSpec};
use crate::shared::Shared;
use crate::wire::{CONNECTION_CLOSE, Flow};

/// The longest wait in `poll`: the stop flag is looked at this often.
const IDLE: Duration = Duration::from_millis(20);

/// How long a backlogged producer waits before looking again.
const BACKLOG_WAIT: Duration = Duration::from_micros(200);

/// The least time between two paced writes of less than a whole batch: what
/// a sleeping thread's timer slack gives the two-thread producer. Writing
/// whatever fell due at every wake-up of the loop would make writes of a
/// message or two, a syscall and a broker wake-up each.
const MIN_GAP: Duration = Duration::from_micros(50);

/// One end of the pair: a socket set up for its role, and what it already
/// read past the setup.
pub struct End<S> {
    /// The connection.
    pub stream: TcpStream,
    /// Bytes read past the setup's last reply.
    pub leftover: Vec<u8>,
    /// What it does.
    pub spec: S,
}

/// Starts the pair's thread. `finished` is set once the producer has
/// published (and seen confirmed) everything it will.
pub fn spawn(
    producer: End<PubSpec>,
    consumer: End<ConSpec>,
    shared: Arc<Shared>,
    finished: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<(PubResult, ConResult)>> {
    thread::Builder::new()
        .name("pair".into())
        .spawn(move || run(producer, consumer, &shared, &finished))
}

/// Bytes waiting for a socket to take them.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    at: usize,
}

impl Outbox {
    fn is_empty(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// What to wait for on its socket: input, and room for what waits.
    fn interest(&self) -> PollFlags {
        if self.is_empty() {
            PollFlags::IN
        } else {
            PollFlags::IN | PollFlags::OUT
        }
    }

    /// Writes `more` after what is waiting, as much as the socket takes now.
    fn send(&mut self, stream: &mut TcpStream, more: &[u8]) -> std::io::Result<()> {
        if self.is_empty() {
            self.bytes.clear();
            self.at = 0;
            let n = write_some(stream, more)?;
            self.bytes.extend_from_slice(&more[n..]);
            return Ok(());
        }
        self.bytes.extend_from_slice(more);
        self.flush(stream)
    }

    /// Writes what is waiting, as much as the socket takes now.
    fn flush(&mut self, stream: &mut TcpStream) -> std::io::Result<()> {
        if !self.is_empty() {
            self.at += write_some(stream, &self.bytes[self.at..])?;
        }
        Ok(())
    }
}

/// Writes until the socket would block; the bytes it took.
fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match stream.write(&bytes[done..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// What one read of a readable socket gave.
enum Got {
    Bytes(usize),
    Empty,
    End(Option<std::io::Error>),
}

fn read_once(stream: &mut TcpStream, into: &mut [u8]) -> Got {
    match stream.read(into) {
        Ok(0) => Got::End(None),
        Ok(n) => Got::Bytes(n),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => Got::Empty,
        Err(e) => Got::End(Some(e)),
    }
}

/// The producer's side of the loop.
struct Producer {
    stream: TcpStream,
    pacer: Pacer,
    confirms: ConfirmState,
    out: Outbox,
    /// Its result, once it has published everything.
    result: Option<PubResult>,
    /// close-ok seen, or the socket is gone.
    done: bool,
    /// Paced: no write before this.
    not_before: Instant,
}

impl Producer {
    /// Writes what is due; returns when it must next be looked at without
    /// its socket waking the loop (None: only the socket or the idle wait).
    fn publish(&mut self, shared: &Shared, finished: &AtomicBool) -> Option<Instant> {
        while self.result.is_none() && self.out.is_empty() {
            let now = Instant::now();
            if now < self.not_before && !self.pacer.batch_due(now) {
                return Some(self.not_before);
            }
            match self.pacer.next(shared, self.confirms.confirmed()) {
                Next::Write => {
                    if let Err(e) = self.out.send(&mut self.stream, self.pacer.batch()) {
                        shared.fail(&format!("publish: {e}"));
                        self.done = true;
                        return None;
                    }
                    self.pacer.wrote(shared);
                    self.not_before = Instant::now() + MIN_GAP;
                }
                Next::Until(t) => return Some(t.max(self.not_before)),
                Next::Confirms => return None,
                Next::Backlog => return Some(Instant::now() + BACKLOG_WAIT),
                Next::Done => {
                    let confirmed = self.confirms.confirmed();
                    if self.pacer.confirms() && confirmed < self.pacer.sent() && !shared.stopped() {
                        return None;
                    }
                    self.result = Some(self.pacer.finish(shared, confirmed));
                    finished.store(true, Ordering::Release);
                    if let Err(e) = self.out.send(&mut self.stream, &CONNECTION_CLOSE) {
                        if !shared.stopped() {
                            shared.fail(&format!("producer: close: {e}"));
                        }
                        self.done = true;
                    }
                }
            }
        }
        None
    }

    /// Reads what the broker sent back until the socket is empty.
    fn read(&mut self, shared: &Shared) {
        while !self.done {
            let space = self.confirms.space();
            let room = space.len();
            match read_once(&mut self.stream, space) {
                Got::Bytes(n) => {
                    self.confirms.read(n);
                    if self.confirms.step(shared) == Flow::Done {
                        self.done = true;
                    }
                    // Short of the room: the socket is empty, no need to
                    // hear it say so (poll is level-triggered).
                    if n < room {
                        break;
                    }
                }
                Got::Empty => break,
                Got::End(e) => {
                    if !shared.stopped() {
                        let why = e.map_or("the broker closed the connection".into(), |e| {
                            format!("read: {e}")
                        });
                        shared.fail(&format!("producer: {why}"));
                    }
                    self.done = true;
                }
            }
        }
    }
}

/// The consumer's side of the loop.
struct Consumer {
    stream: TcpStream,
    state: ConState,
    out: Outbox,
    send: Vec<u8>,
    done: bool,
}

impl Consumer {
    /// Reads until the socket is empty, counting, acking, closing once the
    /// run stopped.
    fn read(&mut self, shared: &Shared) {
        loop {
            self.step(shared);
            if self.done {
                return;
            }
            let space = self.state.space();
            let room = space.len();
            match read_once(&mut self.stream, space) {
                Got::Bytes(n) => {
                    self.state.read(n);
                    if n < room {
                        self.step(shared);
                        return;
                    }
                }
                Got::Empty => return,
                Got::End(e) => {
                    self.state.ended(shared, e);
                    self.done = true;
                    return;
                }
            }
        }
    }

    fn step(&mut self, shared: &Shared) {
        let flow = self.state.step(shared, &mut self.send);
        if !self.send.is_empty() {
            let sent = self.out.send(&mut self.stream, &self.send);
            self.send.clear();
            if let Err(e) = sent {
                self.state.ended(shared, Some(e));
                self.done = true;
            }
        }
        if flow == Flow::Done {
            self.done = true;
        }
    }
}

fn run(
    producer: End<PubSpec>,
    consumer: End<ConSpec>,
    shared: &Shared,
    finished: &AtomicBool,
) -> (PubResult, ConResult) {
    let mut p = Producer {
        pacer: Pacer::new(producer.spec, shared),
        confirms: ConfirmState::new(&producer.leftover),
        stream: producer.stream,
        out: Outbox::default(),
        result: None,
        done: false,
        not_before: Instant::now(),
    };
    let mut c = Consumer {
        state: ConState::new(&consumer.leftover, consumer.spec),
        stream: consumer.stream,
        out: Outbox::default(),
        send: Vec::new(),
        done: false,
    };
    if p.stream.set_nonblocking(true).is_err() || c.stream.set_nonblocking(true).is_err() {
        shared.fail("cannot make the pair's sockets non-blocking");
    }
    // What setup left behind may already hold confirms or deliveries.
    if p.confirms.step(shared) == Flow::Done {
        p.done = true;
    }
    c.step(shared);
    while !(c.done && (p.done || shared.stopped())) {
        let wake = if p.done {
            None
        } else {
            p.publish(shared, finished)
        };
        if let Err(e) = p.out.flush(&mut p.stream) {
            shared.fail(&format!("publish: {e}"));
            p.done = true;
        }
        if let Err(e) = c.out.flush(&mut c.stream) {
            c.state.ended(shared, Some(e));
            c.done = true;
        }
        let mut wait = IDLE;
        if let Some(t) = wake {
            wait = wait.min(t.saturating_duration_since(Instant::now()));
        }
        let (mut pi, mut ci) = (None, None);
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2);
        if !p.done {
            pi = Some(fds.len());
            fds.push(PollFd::new(&p.stream, p.out.interest()));
        }
        if !c.done {
            ci = Some(fds.len());
            fds.push(PollFd::new(&c.stream, c.out.interest()));
        }
        let timeout = Timespec::try_from(wait).unwrap_or_default();
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                shared.fail(&format!("poll: {e}"));
                break;
            }
        }
        let ready = |i: Option<usize>| {
            i.and_then(|i| fds.get(i))
                .is_some_and(|f| !f.revents().is_empty())
        };
        let (p_ready, c_ready) = (ready(pi), ready(ci));
        drop(fds);
        if p_ready {
            p.read(shared);
        }
        if !c.done {
            // Also without input: the consumer closes once the run stopped.
            if c_ready {
                c.read(shared);
            } else {
                c.step(shared);
            }
        }
    }
    let confirmed = p.confirms.confirmed();
    let result = p
        .result
        .unwrap_or_else(|| p.pacer.finish(shared, confirmed));
    finished.store(true, Ordering::Release);
    (result, c.state.out)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::mpsc;

    use super::*;
    use crate::consumer::ack_frame;
    use crate::wire::Template;

    const CLOSE_OK: [u8; 12] = [1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 51, 0xCE];

    /// Complete frames at the start of `buf`: (type, payload range) each,
    /// and the bytes they take.
    fn frames(buf: &[u8]) -> (Vec<(u8, std::ops::Range<usize>)>, usize) {
        let (mut out, mut at) = (Vec::new(), 0);
        while let Some(h) = buf.get(at..at + 7) {
            let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as usize;
            if buf.len() < at + 8 + size {
                break;
            }
            out.push((h[0], at + 7..at + 7 + size));
            at += 8 + size;
        }
        (out, at)
    }

    /// basic.deliver on channel 1, consumer tag "c".
    fn deliver(tag: u64) -> Vec<u8> {
        let mut p = vec![0, 60, 0, 60, 1, b'c'];
        p.extend_from_slice(&tag.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0]);
        let mut f = vec![1, 0, 1];
        f.extend_from_slice(&(p.len() as u32).to_be_bytes());
        f.extend_from_slice(&p);
        f.push(0xCE);
        f
    }

    /// A broker in miniature: every basic.publish read from the producer
    /// becomes a basic.deliver (its header and body frames passed on) to the
    /// consumer, confirmed when `confirm`; connection.close gets close-ok.
    fn fake_broker(confirm: bool) -> (std::net::SocketAddr, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let broker = thread::spawn(move || {
            let (mut producer, _) = listener.accept().expect("producer");
            let (mut consumer, _) = listener.accept().expect("consumer");
            let mut to_consumer = consumer.try_clone().expect("clone");
            let closer = thread::spawn(move || {
                let mut buf = [0u8; 64];
                let mut seen = Vec::new();
                while let Ok(n) = consumer.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let (fs, _) = frames(&seen);
                    if fs
                        .iter()
                        .any(|(_, r)| seen[r.clone()].starts_with(&[0, 10, 0, 50]))
                    {
                        let _ = consumer.write_all(&CLOSE_OK);
                        break;
                    }
                }
            });
            let (mut buf, mut filled, mut tag) = (vec![0u8; 1 << 20], 0, 0u64);
            'read: while let Ok(n) = producer.read(&mut buf[filled..]) {
                if n == 0 {
                    break;
                }
                filled += n;
                let (fs, used) = frames(&buf[..filled]);
                let (mut deliveries, mut acks) = (Vec::new(), Vec::new());
                for (kind, r) in fs {
                    let p = &buf[r.clone()];
                    if kind == 1 && p.starts_with(&[0, 10, 0, 50]) {
                        let _ = producer.write_all(&CLOSE_OK);
                        break 'read;
                    }
                    if kind == 1 && p.starts_with(&[0, 60, 0, 40]) {
                        tag += 1;
                        deliveries.extend_from_slice(&deliver(tag));
                        if confirm {
                            acks.extend_from_slice(&ack_frame(tag));
                        }
                    } else {
                        deliveries.extend_from_slice(&buf[r.start - 7..r.end + 1]);
                    }
                }
                to_consumer.write_all(&deliveries).expect("deliver");
                producer.write_all(&acks).expect("confirm");
                buf.copy_within(used..filled, 0);
                filled -= used;
            }
            let _ = closer.join();
        });
        (addr, broker)
    }

    /// Runs the pair at `rate` for `secs` against the fake broker the way
    /// the supervisor does: stop once everything published is delivered.
    fn run_pair(confirm: bool, rate: f64, secs: f64) -> (PubResult, ConResult, Arc<Shared>) {
        let (addr, broker) = fake_broker(confirm);
        let producer = TcpStream::connect(addr).expect("connect producer");
        let consumer = TcpStream::connect(addr).expect("connect consumer");
        let template = Template::new("", "q", 64, false, 131_072).expect("template");
        let spec = PubSpec {
            templates: vec![template],
            weights: vec![1],
            window: confirm.then_some(16),
            rate: Some(rate),
            duration: Duration::from_secs_f64(secs),
            batch_bytes: 16 << 10,
            max_backlog: 0,
        };
        let shared = Arc::new(Shared::new(Instant::now()));
        let finished = Arc::new(AtomicBool::new(false));
        let pair = spawn(
            End {
                stream: producer,
                leftover: Vec::new(),
                spec,
            },
            End {
                stream: consumer,
                leftover: Vec::new(),
                spec: ConSpec {
                    ack_every: 0,
                    sample_every: 1,
                },
            },
            shared.clone(),
            finished.clone(),
        )
        .expect("spawn");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(finished.load(Ordering::Acquire)
            && shared.delivered.load(Ordering::Relaxed) >= shared.expected.load(Ordering::Relaxed))
        {
            assert!(Instant::now() < deadline, "the pair did not finish");
            assert_eq!(shared.failure(), None);
            thread::sleep(Duration::from_millis(5));
        }
        shared.stop();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(pair.join());
        });
        let (p, c) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the pair did not end after the stop")
            .expect("the pair panicked");
        broker.join().expect("fake broker");
        (p, c, shared)
    }

    #[test]
    fn paced_pair_delivers_every_message_and_closes() {
        let (p, c, shared) = run_pair(false, 4000.0, 0.5);
        assert_eq!(shared.failure(), None);
        // 4,000 msg/s for half a second: never more than 2,000 (the schedule),
        // fewer only if a loaded machine kept this thread off the CPU.
        assert!((64..=2001).contains(&p.confirmed), "{}", p.confirmed);
        assert_eq!(c.delivered, p.confirmed);
        assert_eq!(
            c.latencies.len() as u64,
            c.delivered,
            "every delivery sampled"
        );
        assert_eq!(p.behind.total(), p.confirmed);
    }

    #[test]
    fn confirms_open_the_window() {
        // A window of 16 and up to 1,000 messages: without the confirms read
        // back the producer would stop at 16.
        let (p, c, shared) = run_pair(true, 4000.0, 0.25);
        assert_eq!(shared.failure(), None);
        assert!((64..=1001).contains(&p.confirmed), "{}", p.confirmed);
        assert_eq!(shared.published.load(Ordering::Relaxed), p.confirmed);
        assert_eq!(c.delivered, p.confirmed);
    }
}
