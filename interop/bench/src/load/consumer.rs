//! A consumer: reads its socket in large chunks, counting basic.deliver
//! frames with the scanner (nothing else is decoded), sampling the send time
//! of every Kth delivery and, in manual-ack mode, acking with `multiple` once
//! per read after at least `ack_every` deliveries. [`ConState`] is that
//! bookkeeping; [`spawn`] runs it on its own OS thread over a blocking
//! socket, `paired` beside a producer in one thread.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::shared::Shared;
use crate::wire::{CONNECTION_CLOSE, Flow, Inbox, Scanner};

/// Bytes per read.
const READ_CHUNK: usize = 256 << 10;

/// How long a polite close may wait for close-ok.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How one consumer reads.
#[derive(Clone, Copy, Debug)]
pub struct ConSpec {
    /// Ack (multiple) once this many deliveries are unacked; 0: no-ack consume.
    pub ack_every: u64,
    /// Sample the latency of every this-many-th delivery (0: none).
    pub sample_every: u64,
}

/// What one consumer saw.
#[derive(Clone, Debug, Default)]
pub struct ConResult {
    /// Deliveries received.
    pub delivered: u64,
    /// Sampled latencies, ns.
    pub latencies: Vec<u64>,
    /// Acks sent.
    pub acks: u64,
}

/// One consumer's read buffer and counts, whoever drives its socket.
pub struct ConState {
    spec: ConSpec,
    inbox: Inbox,
    /// (deliveries, tag) at the last ack.
    acked: (u64, u64),
    closing: Option<Instant>,
    /// What it saw so far.
    pub out: ConResult,
}

impl ConState {
    /// A consumer whose socket already delivered `leftover`.
    pub fn new(leftover: &[u8], spec: ConSpec) -> ConState {
        let scanner = Scanner::new(spec.ack_every > 0, spec.sample_every);
        ConState {
            spec,
            inbox: Inbox::new(leftover, READ_CHUNK, scanner),
            acked: (0, 0),
            closing: None,
            out: ConResult::default(),
        }
    }

    /// Where the next read goes.
    pub fn space(&mut self) -> &mut [u8] {
        self.inbox.space()
    }

    /// Accounts `n` bytes read into [`ConState::space`].
    pub fn read(&mut self, n: usize) {
        self.inbox.read(n);
    }

    /// Scans what was read, counts and samples the deliveries, and appends
    /// to `send` what the broker must be told: an ack, and connection.close
    /// once the run stopped.
    pub fn step(&mut self, shared: &Shared, send: &mut Vec<u8>) -> Flow {
        let before = self.inbox.tally.delivers;
        if let Err(e) = self.inbox.scan() {
            shared.fail(&format!("consumer: {e}"));
            return Flow::Done;
        }
        let tally = &self.inbox.tally;
        if tally.delivers > before && self.closing.is_none() {
            let now = shared.now_ns();
            self.out.delivered += tally.delivers - before;
            shared
                .delivered
                .fetch_add(tally.delivers - before, Ordering::Relaxed);
            shared.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
            for s in self.inbox.stamps.drain(..) {
                self.out.latencies.push(now.saturating_sub(s));
            }
        }
        self.inbox.stamps.clear();
        if self.spec.ack_every > 0
            && self.closing.is_none()
            && tally.delivers - self.acked.0 >= self.spec.ack_every
            && tally.last_tag > self.acked.1
        {
            send.extend_from_slice(&ack_frame(tally.last_tag));
            self.acked = (tally.delivers, tally.last_tag);
            self.out.acks += 1;
        }
        if let Some(c) = &tally.closed {
            shared.fail(&format!("consumer: {c}"));
            return Flow::Done;
        }
        if tally.close_ok || self.inbox.full() {
            return Flow::Done;
        }
        if self.closing.is_none() && shared.stopped() {
            // A polite close; what still arrives before close-ok is not counted.
            // Ack what was counted first, so that the queue is left empty.
            if self.spec.ack_every > 0 && tally.last_tag > self.acked.1 {
                send.extend_from_slice(&ack_frame(tally.last_tag));
                self.acked = (tally.delivers, tally.last_tag);
                self.out.acks += 1;
            }
            send.extend_from_slice(&CONNECTION_CLOSE);
            self.closing = Some(Instant::now());
        }
        if self.closing.is_some_and(|t| t.elapsed() > CLOSE_WAIT) {
            return Flow::Done;
        }
        Flow::More
    }

    /// The socket ended (read 0) or failed: a failure unless it was closing.
    pub fn ended(&self, shared: &Shared, error: Option<std::io::Error>) {
        if self.closing.is_none() {
            match error {
                None => shared.fail("consumer: the broker closed the connection"),
                Some(e) => shared.fail(&format!("consumer: {e}")),
            }
        }
    }
}

/// Starts a consumer on `stream` (basic.consume already answered).
pub fn spawn(
    stream: TcpStream,
    leftover: Vec<u8>,
    spec: ConSpec,
    shared: Arc<Shared>,
    name: String,
) -> std::io::Result<JoinHandle<ConResult>> {
    thread::Builder::new()
        .name(name)
        .spawn(move || consume(stream, &leftover, spec, &shared))
}

/// basic.ack on channel 1 with `multiple`, tag patched in at [11..19].
pub(crate) fn ack_frame(tag: u64) -> [u8; 21] {
    let mut f = [
        1, 0, 1, 0, 0, 0, 13, 0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xCE,
    ];
    f[11..19].copy_from_slice(&tag.to_be_bytes());
    f
}

fn consume(mut stream: TcpStream, leftover: &[u8], spec: ConSpec, shared: &Shared) -> ConResult {
    let mut state = ConState::new(leftover, spec);
    if stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
    {
        shared.fail("consumer: cannot set a read timeout");
        return state.out;
    }
    let mut send = Vec::new();
    loop {
        let flow = state.step(shared, &mut send);
        if !send.is_empty() {
            if let Err(e) = stream.write_all(&send) {
                state.ended(shared, Some(e));
                break;
            }
            send.clear();
        }
        if flow == Flow::Done {
            break;
        }
        match stream.read(state.space()) {
            Ok(0) => {
                state.ended(shared, None);
                break;
            }
            Ok(n) => state.read(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                state.ended(shared, Some(e));
                break;
            }
        }
    }
    state.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Tally;

    #[test]
    fn ack_frame_is_basic_ack_multiple() {
        let mut s = Scanner::new(false, 0);
        let mut t = Tally::default();
        let f = ack_frame(0x0102_0304_0506_0708);
        let used = s.scan(&f, &mut t, &mut Vec::new()).expect("scan");
        assert_eq!(used, f.len());
        assert_eq!(t.confirmed, 0x0102_0304_0506_0708);
        assert_eq!(f[19], 1, "multiple");
    }
}
