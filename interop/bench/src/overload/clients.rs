//! The overload run's clients, each on its own OS thread over a blocking
//! socket set up by warren-load's `Conn`: a paced publisher with confirms
//! whose bodies carry a message id, and a paced consumer that records every
//! id it is delivered (the check that no confirmed message was lost).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::wire::{CONNECTION_CLOSE, Scanner, Tally, Template};

/// Ids of producer `p` are `p << PRODUCER_SHIFT | n`, n from 1.
pub const PRODUCER_SHIFT: u32 = 40;

/// What the threads of a run share.
#[derive(Default)]
pub struct Run {
    /// Messages written by all producers.
    pub sent: AtomicU64,
    /// Of them, confirmed.
    pub confirmed: AtomicU64,
    /// Deliveries received (duplicates included).
    pub delivered: AtomicU64,
    /// Producers stop publishing.
    pub stop_publishing: AtomicBool,
    /// Consumers stop pacing (the drain).
    pub unpaced: AtomicBool,
    /// Consumers close.
    pub stop_consuming: AtomicBool,
    /// Consume rate while paced (messages/s over all consumers), as f64 bits.
    pub consume_rate_bits: AtomicU64,
    failure: Mutex<Option<String>>,
}

impl Run {
    /// Records the first failure.
    pub fn fail(&self, why: String) {
        let mut f = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        f.get_or_insert(why);
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Ids seen, one bit each, per producer.
#[derive(Default, Debug)]
pub struct Seen {
    bits: Vec<Vec<u64>>,
}

impl Seen {
    /// Marks `id` seen.
    pub fn insert(&mut self, id: u64) {
        let (p, n) = (
            (id >> PRODUCER_SHIFT) as usize,
            id & ((1 << PRODUCER_SHIFT) - 1),
        );
        if self.bits.len() <= p {
            self.bits.resize_with(p + 1, Vec::new);
        }
        let words = &mut self.bits[p];
        let w = (n / 64) as usize;
        if words.len() <= w {
            words.resize(w + 1 + w / 2, 0);
        }
        words[w] |= 1 << (n % 64);
    }

    /// Adds every id of `other`.
    pub fn merge(&mut self, other: &Seen) {
        for (p, words) in other.bits.iter().enumerate() {
            if self.bits.len() <= p {
                self.bits.resize_with(p + 1, Vec::new);
            }
            let mine = &mut self.bits[p];
            if mine.len() < words.len() {
                mine.resize(words.len(), 0);
            }
            for (m, w) in mine.iter_mut().zip(words) {
                *m |= w;
            }
        }
    }

    /// How many of producer `p`'s ids 1..=`upto` were not seen.
    pub fn missing(&self, p: usize, upto: u64) -> u64 {
        let words = self.bits.get(p).map_or(&[][..], Vec::as_slice);
        (1..=upto)
            .filter(|n| {
                words
                    .get((n / 64) as usize)
                    .is_none_or(|w| w & (1 << (n % 64)) == 0)
            })
            .count() as u64
    }
}

/// Publishes at `rate` msg/s (None: flat out) with at most `window`
/// unconfirmed, until `run.stop_publishing` or `limit` messages; returns how
/// many of its messages were confirmed (ids 1..=that, confirms in order).
#[allow(clippy::too_many_arguments)]
pub fn publish(
    stream: TcpStream,
    leftover: Vec<u8>,
    template: &Template,
    producer: u64,
    rate: Option<f64>,
    window: u64,
    limit: Option<u64>,
    run: &Run,
) -> u64 {
    let confirmed = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let reader = match stream.try_clone() {
        Ok(s) => s,
        Err(e) => {
            run.fail(format!("producer: {e}"));
            return 0;
        }
    };
    let me = thread::current();
    thread::scope(|scope| {
        let h = scope.spawn(|| read_confirms(reader, leftover, &confirmed, &done, run, &me));
        let out = write_publishes(
            stream, template, producer, rate, window, limit, run, &confirmed,
        );
        done.store(true, Ordering::Release);
        let _ = h.join();
        out
    })
}

#[allow(clippy::too_many_arguments)]
fn write_publishes(
    mut stream: TcpStream,
    template: &Template,
    producer: u64,
    rate: Option<f64>,
    window: u64,
    limit: Option<u64>,
    run: &Run,
    confirmed: &AtomicU64,
) -> u64 {
    let start = Instant::now();
    let per_batch = ((64 << 10) / template.bytes.len()).max(1) as u64;
    let mut batch = Vec::with_capacity(per_batch as usize * template.bytes.len());
    let mut sent = 0u64;
    let limit = limit.unwrap_or(u64::MAX);
    while !run.stop_publishing.load(Ordering::Acquire) && sent < limit {
        let mut n = per_batch.min(limit - sent);
        if let Some(rate) = rate {
            let due = ((start.elapsed().as_secs_f64()) * rate) as u64 + 1;
            if due <= sent {
                thread::sleep(Duration::from_millis(2));
                continue;
            }
            n = n.min(due - sent);
        }
        let room = window.saturating_sub(sent - confirmed.load(Ordering::Acquire));
        if room == 0 {
            thread::park_timeout(Duration::from_millis(20));
            continue;
        }
        n = n.min(room);
        batch.clear();
        for i in 1..=n {
            template.put(&mut batch, producer << PRODUCER_SHIFT | (sent + i));
        }
        if let Err(e) = stream.write_all(&batch) {
            run.fail(format!("publish: {e}"));
            break;
        }
        sent += n;
        run.sent.fetch_add(n, Ordering::Relaxed);
    }
    // The confirms of what was sent (a minute at most: the broker may be paging).
    let waited = Instant::now();
    while confirmed.load(Ordering::Acquire) < sent && waited.elapsed() < Duration::from_secs(60) {
        thread::park_timeout(Duration::from_millis(20));
    }
    let _ = stream.write_all(&CONNECTION_CLOSE);
    confirmed.load(Ordering::Acquire).min(sent)
}

fn read_confirms(
    mut stream: TcpStream,
    leftover: Vec<u8>,
    confirmed: &AtomicU64,
    done: &AtomicBool,
    run: &Run,
    writer: &thread::Thread,
) {
    if stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_err()
    {
        run.fail("producer: cannot set a read timeout".into());
        return;
    }
    let mut buf = vec![0u8; 64 << 10];
    let mut filled = leftover.len().min(buf.len());
    buf[..filled].copy_from_slice(&leftover[..filled]);
    let (mut scanner, mut tally, mut stamps) =
        (Scanner::new(false, 0), Tally::default(), Vec::new());
    loop {
        let before = tally.confirmed;
        match scanner.scan(&buf[..filled], &mut tally, &mut stamps) {
            Ok(used) => {
                buf.copy_within(used..filled, 0);
                filled -= used;
            }
            Err(e) => {
                run.fail(format!("producer: {e}"));
                break;
            }
        }
        if tally.confirmed > before {
            run.confirmed
                .fetch_add(tally.confirmed - before, Ordering::Relaxed);
            confirmed.store(tally.confirmed, Ordering::Release);
            writer.unpark();
        }
        if tally.nacks > 0 {
            run.fail("producer: a publish was nacked".into());
            break;
        }
        if let Some(c) = &tally.closed {
            run.fail(format!("producer: {c}"));
            break;
        }
        if tally.close_ok || filled == buf.len() {
            break;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if done.load(Ordering::Acquire) {
                    break;
                }
            }
            Err(e) => {
                run.fail(format!("producer: read: {e}"));
                break;
            }
        }
    }
    writer.unpark();
}

/// basic.ack on channel 1 with `multiple`.
fn ack_frame(tag: u64) -> [u8; 21] {
    let mut f = [
        1, 0, 1, 0, 0, 0, 13, 0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xCE,
    ];
    f[11..19].copy_from_slice(&tag.to_be_bytes());
    f
}

/// Consumes (manual acks, `ack_every`), paced at `run`'s consume rate over
/// `consumers` consumers until `run.unpaced`, until `run.stop_consuming`;
/// returns the ids it saw.
pub fn consume(
    stream: &mut TcpStream,
    leftover: &[u8],
    ack_every: u64,
    consumers: usize,
    run: &Run,
) -> Seen {
    let mut seen = Seen::default();
    if stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .is_err()
    {
        run.fail("consumer: cannot set a read timeout".into());
        return seen;
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut filled = leftover.len().min(buf.len());
    buf[..filled].copy_from_slice(&leftover[..filled]);
    let (mut scanner, mut tally, mut ids) = (Scanner::new(true, 1), Tally::default(), Vec::new());
    let mut acked = (0u64, 0u64);
    // Pacing: deliveries since `paced_from` against the rate.
    let (mut paced_from, mut paced_count) = (Instant::now(), 0u64);
    loop {
        let before = tally.delivers;
        match scanner.scan(&buf[..filled], &mut tally, &mut ids) {
            Ok(used) => {
                buf.copy_within(used..filled, 0);
                filled -= used;
            }
            Err(e) => {
                run.fail(format!("consumer: {e}"));
                break;
            }
        }
        for id in ids.drain(..) {
            seen.insert(id);
        }
        let got = tally.delivers - before;
        run.delivered.fetch_add(got, Ordering::Relaxed);
        paced_count += got;
        if let Some(c) = &tally.closed {
            run.fail(format!("consumer: {c}"));
            break;
        }
        // Paced: hold the deliveries (unacked, so the prefetch stops the
        // broker) until they are due at the consume rate.
        while !run.unpaced.load(Ordering::Acquire) && !run.stop_consuming.load(Ordering::Acquire) {
            let rate =
                f64::from_bits(run.consume_rate_bits.load(Ordering::Relaxed)) / consumers as f64;
            let due = Duration::from_secs_f64(paced_count as f64 / rate);
            match due.checked_sub(paced_from.elapsed()) {
                Some(wait) => thread::sleep(wait.min(Duration::from_millis(50))),
                None => break,
            }
        }
        if run.unpaced.load(Ordering::Acquire) && paced_count > 0 {
            (paced_from, paced_count) = (Instant::now(), 0);
        }
        if tally.delivers - acked.0 >= ack_every && tally.last_tag > acked.1 {
            if let Err(e) = stream.write_all(&ack_frame(tally.last_tag)) {
                run.fail(format!("consumer: ack: {e}"));
                break;
            }
            acked = (tally.delivers, tally.last_tag);
        }
        if run.stop_consuming.load(Ordering::Acquire) {
            if tally.last_tag > acked.1 {
                let _ = stream.write_all(&ack_frame(tally.last_tag));
            }
            let _ = stream.write_all(&CONNECTION_CLOSE);
            break;
        }
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                run.fail("consumer: the broker closed the connection".into());
                break;
            }
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Idle: ack what is held, so that a small tail is not stuck unacked.
                if tally.last_tag > acked.1 {
                    let _ = stream.write_all(&ack_frame(tally.last_tag));
                    acked = (tally.delivers, tally.last_tag);
                }
            }
            Err(e) => {
                run.fail(format!("consumer: read: {e}"));
                break;
            }
        }
    }
    seen
}
