//! The writer of a link whose frames the test hook delays or loses ([`LinkPolicy::shape`]).
//!
//! Why the sender's writer, and why a lost frame is late rather than missing: TCP never loses
//! one frame of a connection and delivers the next. A lost segment is sent again after a
//! retransmission timeout and everything behind it waits, so a lossy network shows the
//! application late frames in their order; a network that loses everything one way shows a
//! connection that goes silent that way until the sender gives up on it (a TCP user timeout)
//! and it dies, failing what was in flight. Dropping frames inside a live link would show
//! Raft a network that cannot exist (a gap, then later frames) and test nothing real. So here
//! each frame from this node to the peer gets a due time (its delay, never before the frame
//! ahead of it: no reordering), and the frames due are written together unless the dice say
//! that write is lost: then the head is due again after a retransmission timeout, doubling
//! while it keeps being lost, and the rest wait behind it. Once the head has been lost for [`LOSS_TIMEOUT`], this end closes
//! the connection; no new one forms while the direction loses everything (the transport
//! refuses a handshake then, as a handshake needs both ways).
//!
//! The other direction is the peer's writer's business, so `loss A B` leaves B to A flowing
//! until A closes. A real TCP connection would carry at most a window of it (its ACKs are
//! lost), then stall too; letting it all through is the harsher case for Raft: a node heard
//! by a peer that it does not hear.
//!
//! [`LinkPolicy::shape`]: super::policy::LinkPolicy::shape

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Encoder;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::link::{LinkWrite, QUEUE_DEPTH, WRITE_BATCH, codec};
use super::policy::{LOSS_TIMEOUT, RETRANSMIT_FIRST, RETRANSMIT_MAX, Shape};
use crate::types::NodeId;

/// A frame waiting for its time.
struct Held {
    due: Instant,
    frame: Bytes,
}

/// Writes queued frames to `peer` as the link policy shapes them, until the link closes.
pub(crate) async fn write_loop(
    inner: Arc<Inner>,
    mut writer: LinkWrite,
    mut rx: mpsc::Receiver<Bytes>,
    closed: CancellationToken,
    peer: NodeId,
) {
    let node = inner.node_id;
    let mut codec = codec();
    let mut rng = Rng::seeded();
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let mut buf = BytesMut::new();
    let mut last_due = Instant::now();
    // Since when the head frame has been lost, and its next retransmission timeout.
    let mut lost_since: Option<Instant> = None;
    let mut rto = RETRANSMIT_FIRST;
    let mut open = true;
    loop {
        let wake = held.front().map(|h| h.due);
        tokio::select! {
            _ = closed.cancelled() => break,
            // Past QUEUE_DEPTH held frames, senders wait, as on a full TCP send buffer.
            n = rx.recv_many(&mut batch, WRITE_BATCH), if open && held.len() < QUEUE_DEPTH => {
                if n == 0 {
                    open = false;
                }
                let shape = inner.policy.shape(node, peer);
                let now = Instant::now();
                for frame in batch.drain(..) {
                    let due = (now + rng.delay(&shape)).max(last_due);
                    last_due = due;
                    held.push_back(Held { due, frame });
                }
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
        }
        if !open && held.is_empty() {
            break;
        }
        let now = Instant::now();
        let mut timed_out = false;
        buf.clear();
        // The dice are rolled per write (the due frames go out together, as a burst of
        // packets would), not per frame: a busy link writes far fewer times than it frames.
        if let Some(head) = held.front_mut()
            && head.due <= now
        {
            if rng.lost(&inner.policy.shape(node, peer)) {
                let since = *lost_since.get_or_insert(now);
                if now.duration_since(since) >= LOSS_TIMEOUT {
                    timed_out = true;
                } else {
                    // The frames behind wait for it: TCP delivers in order.
                    head.due = now + rto;
                    rto = (rto * 2).min(RETRANSMIT_MAX);
                }
            } else {
                lost_since = None;
                rto = RETRANSMIT_FIRST;
                while held.front().is_some_and(|h| h.due <= now) {
                    if let Some(h) = held.pop_front()
                        && let Err(e) = codec.encode(h.frame, &mut buf)
                    {
                        tracing::warn!(peer, error = %e, "frame not encodable; dropped");
                    }
                }
            }
        }
        if !buf.is_empty()
            && let Err(e) = async {
                writer.write_all(&buf).await?;
                writer.flush().await
            }
            .await
        {
            tracing::debug!(peer, error = %e, "cluster link write failed");
            break;
        }
        if timed_out {
            tracing::info!(
                node,
                peer,
                waiting = held.len(),
                "frames lost for {LOSS_TIMEOUT:?} (test hook); closing the link as a TCP timeout would"
            );
            break;
        }
    }
    closed.cancel();
}

/// A small xorshift64* generator: the dice of delays and losses (tests only, no need for
/// more).
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_err() {
            // Any seed will do; the clock's nanoseconds differ between links.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            seed = u64::from(nanos).to_le_bytes();
        }
        Self(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is nothing at these sizes).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// This frame's delay under `shape`.
    fn delay(&mut self, shape: &Shape) -> std::time::Duration {
        let spread = shape.delay_max.saturating_sub(shape.delay_min);
        if spread.is_zero() {
            return shape.delay_min;
        }
        let micros = u64::try_from(spread.as_micros()).unwrap_or(u64::MAX);
        shape.delay_min + std::time::Duration::from_micros(self.below(micros.saturating_add(1)))
    }

    /// Whether this send of a frame is lost under `shape`.
    fn lost(&mut self, shape: &Shape) -> bool {
        match shape.loss_ppm {
            0 => false,
            ppm if ppm >= Shape::ALL => true,
            ppm => self.below(u64::from(Shape::ALL)) < u64::from(ppm),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn delays_fall_in_their_range_and_losses_at_their_rate() {
        let mut rng = Rng(42);
        let shape = Shape {
            loss_ppm: 250_000,
            delay_min: Duration::from_millis(50),
            delay_max: Duration::from_millis(500),
        };
        let delays: Vec<Duration> = (0..1000).map(|_| rng.delay(&shape)).collect();
        assert!(
            delays
                .iter()
                .all(|d| (shape.delay_min..=shape.delay_max).contains(d))
        );
        assert!(
            delays.iter().any(|d| *d < Duration::from_millis(100)),
            "jittered"
        );
        assert!(
            delays.iter().any(|d| *d > Duration::from_millis(450)),
            "jittered"
        );
        let lost = (0..10_000).filter(|_| rng.lost(&shape)).count();
        assert!(
            (2_000..3_000).contains(&lost),
            "about a quarter lost: {lost}"
        );
        let all = Shape {
            loss_ppm: Shape::ALL,
            ..Shape::CLEAR
        };
        assert!((0..100).all(|_| rng.lost(&all)));
        assert!((0..100).all(|_| !rng.lost(&Shape::CLEAR)));
        assert_eq!(rng.delay(&Shape::CLEAR), Duration::ZERO);
    }
}
