//! A consumer: its own OS thread reading its socket in large chunks, counting
//! basic.deliver frames with the scanner (nothing else is decoded), sampling
//! the send time of every Kth delivery and, in manual-ack mode, acking with
//! `multiple` once per read after at least `ack_every` deliveries.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::shared::Shared;
use crate::wire::{CONNECTION_CLOSE, Scanner, Tally};

/// Bytes per read.
const READ_CHUNK: usize = 256 << 10;

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
fn ack_frame(tag: u64) -> [u8; 21] {
    let mut f = [
        1, 0, 1, 0, 0, 0, 13, 0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xCE,
    ];
    f[11..19].copy_from_slice(&tag.to_be_bytes());
    f
}

fn consume(mut stream: TcpStream, leftover: &[u8], spec: ConSpec, shared: &Shared) -> ConResult {
    let mut out = ConResult::default();
    if stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
    {
        shared.fail("consumer: cannot set a read timeout");
        return out;
    }
    let mut buf = vec![0u8; READ_CHUNK];
    let mut filled = leftover.len().min(buf.len());
    buf[..filled].copy_from_slice(&leftover[..filled]);
    let mut scanner = Scanner::new(spec.ack_every > 0, spec.sample_every);
    let mut tally = Tally::default();
    let mut stamps = Vec::new();
    let mut acked = (0u64, 0u64); // (deliveries, tag) at the last ack
    let mut closing: Option<Instant> = None;
    loop {
        let before = tally.delivers;
        match scanner.scan(&buf[..filled], &mut tally, &mut stamps) {
            Ok(used) => {
                buf.copy_within(used..filled, 0);
                filled -= used;
            }
            Err(e) => {
                shared.fail(&format!("consumer: {e}"));
                break;
            }
        }
        if tally.delivers > before && closing.is_none() {
            let now = shared.now_ns();
            out.delivered += tally.delivers - before;
            shared
                .delivered
                .fetch_add(tally.delivers - before, Ordering::Relaxed);
            shared.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
            for s in stamps.drain(..) {
                out.latencies.push(now.saturating_sub(s));
            }
        }
        stamps.clear();
        if spec.ack_every > 0
            && closing.is_none()
            && tally.delivers - acked.0 >= spec.ack_every
            && tally.last_tag > acked.1
        {
            if let Err(e) = stream.write_all(&ack_frame(tally.last_tag)) {
                shared.fail(&format!("consumer: ack: {e}"));
                break;
            }
            acked = (tally.delivers, tally.last_tag);
            out.acks += 1;
        }
        if let Some(c) = &tally.closed {
            shared.fail(&format!("consumer: {c}"));
            break;
        }
        if tally.close_ok || filled == buf.len() {
            break;
        }
        if closing.is_none() && shared.stopped() {
            // A polite close; what still arrives before close-ok is not counted.
            // Ack what was counted first, so that the queue is left empty.
            if spec.ack_every > 0
                && tally.last_tag > acked.1
                && stream.write_all(&ack_frame(tally.last_tag)).is_ok()
            {
                acked = (tally.delivers, tally.last_tag);
                out.acks += 1;
            }
            if stream.write_all(&CONNECTION_CLOSE).is_err() {
                break;
            }
            closing = Some(Instant::now());
        }
        if closing.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            break;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                if closing.is_none() {
                    shared.fail("consumer: the broker closed the connection");
                }
                break;
            }
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => {
                if closing.is_none() {
                    shared.fail(&format!("consumer: read: {e}"));
                }
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
