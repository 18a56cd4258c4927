//! The transport alone: frames round-trip, requests get answers, a cut link fails at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::Vote;
use openraft::raft::VoteRequest;
use warren_raft::transport::wire::{Body, Frame, Hello, RaftRpc, Request, Response};
use warren_raft::transport::{Handler, HandlerFuture};
use warren_raft::{CutLinks, NodeId, Transport, TransportConfig, TransportError, Wr};

/// Answers Ping with Pong and every Raft RPC with an error naming the group.
struct Echo;

impl Handler for Echo {
    fn handle(&self, from: NodeId, req: Request) -> HandlerFuture {
        Box::pin(async move {
            match req {
                Request::Ping => Response::Pong,
                Request::Raft { group, .. } => {
                    Response::Raft(Err(format!("{from} asked group {group}")))
                }
                Request::Join { .. } | Request::Leave { .. } => {
                    Response::Join(warren_raft::JoinReply::Refused("echo".into()))
                }
                Request::App(payload) => Response::App(Ok(payload)),
                Request::Write { .. } => {
                    Response::Write(warren_raft::WriteReply::Failed("echo".into()))
                }
                Request::Manage { .. } => {
                    Response::Manage(warren_raft::ManageReply::Failed("echo".into()))
                }
            }
        })
    }
}

async fn transport(id: NodeId, links: Arc<CutLinks>) -> Transport {
    Transport::bind(
        TransportConfig {
            node_id: id,
            cluster_name: "test".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            connect_timeout: Duration::from_secs(1),
            policy: links,
            security: Default::default(),
        },
        Arc::new(Echo),
    )
    .await
    .expect("bind")
}

async fn connected(a: &Transport, b: NodeId) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !a.is_connected(b) {
        assert!(
            Instant::now() < deadline,
            "no link {} -> {b} within 10 s",
            a.node_id()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn frames_round_trip() {
    let vote = VoteRequest::<Wr>::new(Vote::new(3, 2), None);
    let frames = [
        Frame {
            id: 0,
            body: Body::Hello(Hello {
                cluster_name: "c".into(),
                node_id: 7,
                addr: "127.0.0.1:25672".into(),
                version: 1,
                transient: false,
                nonce: [9; 32],
                proves: true,
            }),
        },
        Frame {
            id: 42,
            body: Body::Request(Request::Raft {
                group: 9,
                rpc: RaftRpc::Vote(vote.clone()),
            }),
        },
        Frame {
            id: 43,
            body: Body::Response(Response::Raft(Err("nope".into()))),
        },
    ];
    for frame in frames {
        let bytes = frame.encode().expect("encode");
        let back = Frame::decode(&bytes).expect("decode");
        assert_eq!(format!("{frame:?}"), format!("{back:?}"));
    }
    assert!(
        Frame::decode(&[0xff, 0xff, 0xff]).is_err(),
        "garbage is an error, not a panic"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_both_ways_and_a_cut_link_fails_fast() {
    let links = Arc::new(CutLinks::new());
    let a = transport(1, links.clone()).await;
    let b = transport(2, links.clone()).await;
    // Only the lower id needs the address; the higher learns the link from the Hello.
    a.add_peer(2, b.local_addr().to_string());
    connected(&a, 2).await;
    connected(&b, 1).await;

    let t = Duration::from_secs(5);
    assert!(matches!(
        a.request(2, Request::Ping, t).await,
        Ok(Response::Pong)
    ));
    assert!(matches!(
        b.request(1, Request::Ping, t).await,
        Ok(Response::Pong)
    ));
    match b
        .request(
            1,
            Request::Raft {
                group: 5,
                rpc: RaftRpc::Vote(VoteRequest::new(Vote::new(1, 2), None)),
            },
            t,
        )
        .await
    {
        Ok(Response::Raft(Err(text))) => assert_eq!(text, "2 asked group 5"),
        other => panic!("unexpected {other:?}"),
    }

    // Many requests in flight at once share the link (and the writer's batches).
    let mut handles = Vec::new();
    for _ in 0..500 {
        let a = a.clone();
        handles.push(tokio::spawn(
            async move { a.request(2, Request::Ping, t).await },
        ));
    }
    for h in handles {
        assert!(matches!(h.await.expect("task"), Ok(Response::Pong)));
    }

    links.cut(1, 2);
    let started = Instant::now();
    assert!(matches!(
        a.request(2, Request::Ping, t).await,
        Err(TransportError::LinkCut { from: 1, to: 2 })
    ));
    assert!(matches!(
        b.request(1, Request::Ping, t).await,
        Err(TransportError::LinkCut { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a cut fails without waiting for the timeout"
    );
    links.heal();
    assert!(matches!(
        a.request(2, Request::Ping, t).await,
        Ok(Response::Pong)
    ));

    // An unknown peer fails at once too; a dropped connection is redialed.
    assert!(matches!(
        a.request(9, Request::Ping, t).await,
        Err(TransportError::NotConnected(9))
    ));
    b.shutdown();
    let c = transport(2, links.clone()).await;
    a.add_peer(2, c.local_addr().to_string());
    connected(&c, 1).await;
    // Requests may fail while `a` notices the old connection died; then they pass again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(a.request(2, Request::Ping, t).await, Ok(Response::Pong)) {
        assert!(
            Instant::now() < deadline,
            "no answer from the new node 2 within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a.shutdown();
    c.shutdown();
}

/// Records the application messages in the order it is handed them.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<u32>>);

impl Handler for Recorder {
    fn handle(&self, _from: NodeId, req: Request) -> HandlerFuture {
        if let Request::App(payload) = &req
            && let Ok(n) = <[u8; 4]>::try_from(payload.as_ref())
        {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(u32::from_be_bytes(n));
        }
        Box::pin(async move {
            // Answers out of order on purpose: the order is the handler's, not the answers'.
            tokio::task::yield_now().await;
            match req {
                Request::App(payload) => Response::App(Ok(payload)),
                _ => Response::Pong,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_messages_reach_the_handler_in_the_order_sent() {
    let links = Arc::new(CutLinks::new());
    let a = transport(1, links.clone()).await;
    let recorder = Arc::new(Recorder::default());
    let b = Transport::bind(
        TransportConfig {
            node_id: 2,
            cluster_name: "test".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            connect_timeout: Duration::from_secs(1),
            policy: links,
            security: Default::default(),
        },
        recorder.clone(),
    )
    .await
    .expect("bind");
    a.add_peer(2, b.local_addr().to_string());
    connected(&a, 2).await;
    let mut answers = Vec::new();
    for n in 0..500u32 {
        let payload = bytes::Bytes::copy_from_slice(&n.to_be_bytes());
        answers.push(
            a.send_request(2, Request::App(payload))
                .await
                .expect("sent"),
        );
    }
    for (n, answer) in answers.into_iter().enumerate() {
        match tokio::time::timeout(Duration::from_secs(5), answer).await {
            Ok(Ok(Response::App(Ok(payload)))) => {
                assert_eq!(payload.as_ref(), (n as u32).to_be_bytes())
            }
            other => panic!("answer {n}: {other:?}"),
        }
    }
    let seen = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(seen, (0..500).collect::<Vec<u32>>());
}

/// Answers application messages after a pause, so a cut can fall between request and reply.
struct Slow;

impl Handler for Slow {
    fn handle(&self, _from: NodeId, req: Request) -> HandlerFuture {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            match req {
                Request::App(payload) => Response::App(Ok(payload)),
                _ => Response::Pong,
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_does_not_cross_a_cut_made_after_its_request() {
    let links = Arc::new(CutLinks::new());
    let a = transport(1, links.clone()).await;
    let b = Transport::bind(
        TransportConfig {
            node_id: 2,
            cluster_name: "test".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            connect_timeout: Duration::from_secs(1),
            policy: links.clone(),
            security: Default::default(),
        },
        Arc::new(Slow),
    )
    .await
    .expect("bind");
    a.add_peer(2, b.local_addr().to_string());
    connected(&a, 2).await;
    connected(&b, 1).await;

    let answer = a
        .send_request(2, Request::App(bytes::Bytes::from_static(b"x")))
        .await
        .expect("sent before the cut");
    tokio::time::sleep(Duration::from_millis(100)).await;
    links.cut(1, 2);
    assert!(!a.is_connected(2), "a cut link is not reported connected");
    let started = Instant::now();
    match tokio::time::timeout(Duration::from_secs(5), answer).await {
        Ok(Err(_)) => {}
        other => panic!("the reply crossed the cut: {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the connection closes: the request fails, it does not hang"
    );

    links.heal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent = a
            .request(
                2,
                Request::App(bytes::Bytes::from_static(b"y")),
                Duration::from_secs(2),
            )
            .await;
        if matches!(sent, Ok(Response::App(Ok(_)))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no link after the heal: {sent:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown();
    b.shutdown();
}
