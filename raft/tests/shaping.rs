//! The transport under a shaping link policy (the fault file's `delay` and `loss` lines):
//! frames are late but in order, a one-way loss silences one direction while the other
//! flows, then closes the link, and a loss healed in time only makes frames late.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use warren_raft::transport::policy::{LOSS_TIMEOUT, Shape};
use warren_raft::transport::wire::{Request, Response};
use warren_raft::transport::{Handler, HandlerFuture};
use warren_raft::{
    Faults, LinkPolicy, NodeId, Transport, TransportConfig, TransportError, Verdict,
};

/// Fault lines set by the test, obeyed at once (no file to reread).
#[derive(Default)]
struct Lines(Mutex<Faults>);

impl Lines {
    fn set(&self, text: &str) {
        *self.0.lock().expect("lines") = Faults::parse(text).expect("fault lines");
    }
}

impl LinkPolicy for Lines {
    fn verdict(&self, from: NodeId, to: NodeId) -> Verdict {
        if self.0.lock().expect("lines").blocks(from, to) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }

    fn shapes_links(&self) -> bool {
        true
    }

    fn shape(&self, from: NodeId, to: NodeId) -> Shape {
        self.0.lock().expect("lines").shape(from, to)
    }
}

/// The App payloads a node received, in arrival order.
#[derive(Default)]
struct Recorder(Mutex<Vec<Bytes>>);

/// Answers App requests with their payload, recording it (when the frame is handed over,
/// so in the order frames came).
struct Recording(Arc<Recorder>);

impl Handler for Recording {
    fn handle(&self, _from: NodeId, req: Request) -> HandlerFuture {
        let answer = match req {
            Request::App(payload) => {
                self.0.0.lock().expect("seen").push(payload.clone());
                Response::App(Ok(payload))
            }
            _ => Response::Pong,
        };
        Box::pin(async move { answer })
    }
}

async fn transport(id: NodeId, lines: Arc<Lines>) -> (Transport, Arc<Recorder>) {
    let seen = Arc::new(Recorder::default());
    let t = Transport::bind(
        TransportConfig {
            node_id: id,
            cluster_name: "test".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            connect_timeout: Duration::from_secs(1),
            policy: lines,
            security: Default::default(),
        },
        Arc::new(Recording(seen.clone())),
    )
    .await
    .expect("bind");
    (t, seen)
}

/// Polls `cond` every 10 ms until it holds, or fails after `within`.
async fn until(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pair() -> (Arc<Lines>, Transport, Transport, Arc<Recorder>) {
    let lines = Arc::new(Lines::default());
    let (a, _) = transport(1, lines.clone()).await;
    let (b, seen_by_b) = transport(2, lines.clone()).await;
    a.add_peer(2, b.local_addr().to_string());
    until(Duration::from_secs(10), "linked", || {
        a.is_connected(2) && b.is_connected(1)
    })
    .await;
    (lines, a, b, seen_by_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_frames_are_late_and_keep_their_order() {
    let (lines, a, _b, seen) = pair().await;
    let t = Duration::from_secs(10);

    lines.set("delay 1 2 150\n");
    let started = Instant::now();
    let answer = a
        .request(2, Request::App(Bytes::from_static(b"x")), t)
        .await;
    assert!(matches!(answer, Ok(Response::App(Ok(_)))), "{answer:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the request waited its delay: {:?}",
        started.elapsed()
    );

    // Jittered both ways: 300 requests put on the link one after another reach the peer
    // in that order (TCP's), whatever each one's delay.
    lines.set("delay 1 2 0-40\ndelay 2 1 0-40\n");
    seen.0.lock().expect("seen").clear();
    let mut answers = Vec::new();
    for i in 0u32..300 {
        let payload = Bytes::from(i.to_be_bytes().to_vec());
        answers.push(
            a.send_request(2, Request::App(payload))
                .await
                .expect("sent"),
        );
    }
    for answer in answers {
        let got = tokio::time::timeout(t, answer).await;
        assert!(matches!(got, Ok(Ok(Response::App(Ok(_))))), "{got:?}");
    }
    let order: Vec<u32> = seen
        .0
        .lock()
        .expect("seen")
        .iter()
        .map(|b| u32::from_be_bytes(b[..4].try_into().expect("4 bytes")))
        .collect();
    assert_eq!(order, (0..300).collect::<Vec<_>>(), "arrival order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_way_loss_silences_one_direction_then_closes_the_link() {
    let (lines, a, b, seen_by_b) = pair().await;
    let short = Duration::from_millis(800);

    // Node 2 hears node 1 but is not heard: 1's request reaches 2 (and takes effect
    // there), its answer never comes back.
    lines.set("loss 2 1\n");
    let started = Instant::now();
    let answer = a
        .request(2, Request::App(Bytes::from_static(b"one")), short)
        .await;
    assert!(
        matches!(answer, Err(TransportError::Timeout(2, _))),
        "{answer:?}"
    );
    assert_eq!(
        seen_by_b.0.lock().expect("seen").as_slice(),
        [Bytes::from_static(b"one")],
        "the flowing direction delivered"
    );
    let answer = b.request(1, Request::Ping, short).await;
    assert!(
        matches!(answer, Err(TransportError::Timeout(1, _))),
        "{answer:?}"
    );

    // Node 2 gives up on the connection as a TCP timeout would, and none forms again
    // while the loss lasts.
    until(LOSS_TIMEOUT + Duration::from_secs(3), "link closed", || {
        !a.is_connected(2) && !b.is_connected(1)
    })
    .await;
    assert!(
        started.elapsed() >= LOSS_TIMEOUT,
        "closed only after the loss timeout: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!a.is_connected(2), "no handshake through a one-way loss");

    lines.set("");
    until(Duration::from_secs(10), "linked again", || {
        a.is_connected(2) && b.is_connected(1)
    })
    .await;
    assert!(matches!(
        b.request(1, Request::Ping, Duration::from_secs(5)).await,
        Ok(Response::Pong)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loss_healed_in_time_only_makes_frames_late() {
    let (lines, a, b, _) = pair().await;
    lines.set("loss 1 2\n");
    let asked = tokio::spawn({
        let a = a.clone();
        async move {
            let started = Instant::now();
            let answer = a.request(2, Request::Ping, Duration::from_secs(10)).await;
            (answer, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    lines.set("");
    let (answer, took) = asked.await.expect("task");
    assert!(matches!(answer, Ok(Response::Pong)), "{answer:?}");
    assert!(
        took >= Duration::from_millis(700),
        "answered only once retransmitted: {took:?}"
    );
    assert!(a.is_connected(2) && b.is_connected(1), "the link stayed up");

    // A quarter of the frames lost: everything still arrives, late.
    lines.set("loss 1 2 25%\n");
    for _ in 0..20 {
        assert!(matches!(
            a.request(2, Request::Ping, Duration::from_secs(10)).await,
            Ok(Response::Pong)
        ));
    }
    assert!(a.is_connected(2), "a partial loss keeps the link");
}
