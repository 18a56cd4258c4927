//! Secured cluster links: the shared secret proven in the handshake, and mutual TLS under
//! the cluster's CA. Each refusal here is a connection that would carry requests without it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use warren_raft::transport::wire::{Body, Frame, Hello, PROTOCOL_VERSION, Request, Response};
use warren_raft::transport::{Handler, HandlerFuture};
use warren_raft::{
    AllowAll, ClusterSecret, LinkSecurity, LinkTls, NodeId, Transport, TransportConfig,
    TransportError,
};

const WAIT: Duration = Duration::from_secs(5);

/// Answers Ping with Pong; nothing else is asked here.
struct Pong;

impl Handler for Pong {
    fn handle(&self, _from: NodeId, req: Request) -> HandlerFuture {
        Box::pin(async move {
            match req {
                Request::Ping => Response::Pong,
                _ => Response::App(Err("not in this test".into())),
            }
        })
    }
}

async fn transport(id: NodeId, security: LinkSecurity) -> Transport {
    Transport::bind(
        TransportConfig {
            node_id: id,
            cluster_name: "test".into(),
            bind: "127.0.0.1:0".parse().expect("addr"),
            connect_timeout: Duration::from_secs(1),
            policy: Arc::new(AllowAll),
            security,
        },
        Arc::new(Pong),
    )
    .await
    .expect("bind")
}

fn secret(text: &str) -> LinkSecurity {
    LinkSecurity {
        secret: ClusterSecret::new(text.as_bytes()),
        tls: None,
    }
}

/// A one-request connection from `from` to `to`.
async fn ping(from: &Transport, to: &Transport) -> Result<Response, TransportError> {
    from.call_addr(&to.local_addr().to_string(), Request::Ping, WAIT)
        .await
}

/// Asserts that a call was refused for the link's security (secret or TLS).
fn refused(result: Result<Response, TransportError>, what: &str) {
    match result {
        Err(e) if e.is_security() => {}
        other => panic!("{what}: expected a security refusal, got {other:?}"),
    }
}

/// Waits for the persistent link `a` (lower id) -> `b` and a Pong over it.
async fn linked(a: &Transport, b: &Transport) {
    a.add_peer(b.node_id(), b.local_addr().to_string());
    b.add_peer(a.node_id(), a.local_addr().to_string());
    let deadline = Instant::now() + WAIT;
    while !a.is_connected(b.node_id()) {
        assert!(Instant::now() < deadline, "no link within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pong = a.request(b.node_id(), Request::Ping, WAIT).await;
    assert!(matches!(pong, Ok(Response::Pong)), "{pong:?}");
}

#[tokio::test]
async fn nodes_with_the_same_secret_talk() {
    let a = transport(1, secret("the same secret")).await;
    let b = transport(2, secret("the same secret")).await;
    linked(&a, &b).await;
    assert!(matches!(ping(&b, &a).await, Ok(Response::Pong)));
    assert!(matches!(ping(&a, &b).await, Ok(Response::Pong)));
}

#[tokio::test]
async fn another_secret_is_refused_both_ways() {
    let a = transport(1, secret("one secret")).await;
    let b = transport(2, secret("another secret")).await;
    refused(ping(&a, &b).await, "a -> b");
    refused(ping(&b, &a).await, "b -> a");
    // And never a persistent link either (the dialer is the lower id).
    a.add_peer(2, b.local_addr().to_string());
    b.add_peer(1, a.local_addr().to_string());
    let err = a
        .request(2, Request::Ping, Duration::from_millis(300))
        .await;
    assert!(err.is_err(), "{err:?}");
    assert!(!a.is_connected(2) && !b.is_connected(1));
}

#[tokio::test]
async fn a_secret_on_one_side_only_is_refused_both_ways() {
    let with = transport(1, secret("s")).await;
    let without = transport(2, LinkSecurity::default()).await;
    refused(ping(&with, &without).await, "with -> without");
    refused(ping(&without, &with).await, "without -> with");
}

/// A raw connection that sends a Hello (and then what `then` holds) and returns what the
/// node answered: the frames' bodies until it closed, answered, or went quiet.
async fn raw(to: &Transport, proves: bool, then: Vec<Frame>) -> Vec<Body> {
    let hello = Frame {
        id: 0,
        body: Body::Hello(Hello {
            cluster_name: "test".into(),
            node_id: 9,
            addr: "127.0.0.1:1".into(),
            version: PROTOCOL_VERSION,
            transient: true,
            nonce: [7; 32],
            proves,
        }),
    };
    let frames = std::iter::once(hello)
        .chain(then)
        .map(|f| f.encode().expect("encode"))
        .collect();
    raw_bytes(to, frames).await
}

/// [`raw`] with the frames already encoded.
async fn raw_bytes(to: &Transport, frames: Vec<Vec<u8>>) -> Vec<Body> {
    let mut stream = TcpStream::connect(to.local_addr()).await.expect("connect");
    let mut buf = BytesMut::new();
    for bytes in frames {
        buf.put_u32(u32::try_from(bytes.len()).expect("small"));
        buf.put_slice(&bytes);
    }
    stream.write_all(&buf).await.expect("write");
    let mut frames = FramedRead::new(stream, LengthDelimitedCodec::new());
    let mut bodies = Vec::new();
    while let Ok(Some(Ok(bytes))) =
        tokio::time::timeout(Duration::from_secs(2), frames.next()).await
    {
        // A Hello of this version, or nothing to look at.
        let Ok(frame) = Frame::decode(&bytes) else {
            break;
        };
        let answered = matches!(frame.body, Body::Response(_));
        bodies.push(frame.body);
        if answered {
            break;
        }
    }
    bodies
}

/// Protocol 2's Hello (no nonce, no proof), as a node of the previous release sends it.
#[derive(serde::Serialize)]
struct V2Hello {
    cluster_name: String,
    node_id: NodeId,
    addr: String,
    version: u32,
    transient: bool,
}

#[derive(serde::Serialize)]
enum V2Body {
    Hello(V2Hello),
}

#[derive(serde::Serialize)]
struct V2Frame {
    id: u64,
    body: V2Body,
}

#[tokio::test]
async fn an_old_style_hello_gets_no_answer() {
    let old = postcard::to_allocvec(&V2Frame {
        id: 0,
        body: V2Body::Hello(V2Hello {
            cluster_name: "test".into(),
            node_id: 9,
            addr: "127.0.0.1:1".into(),
            version: 2,
            transient: true,
        }),
    })
    .expect("encode");
    assert_eq!(warren_raft::transport::wire::hello_version(&old), Some(2));
    let ping = ping_frame().encode().expect("encode");
    for security in [secret("s"), LinkSecurity::default()] {
        let node = transport(1, security).await;
        let answers = raw_bytes(&node, vec![old.clone(), ping.clone()]).await;
        assert!(
            !answers.iter().any(|b| matches!(b, Body::Response(_))),
            "{answers:?}"
        );
    }
}

fn ping_frame() -> Frame {
    Frame {
        id: 1,
        body: Body::Request(Request::Ping),
    }
}

#[tokio::test]
async fn a_hello_without_proof_gets_no_answer() {
    // Without a secret the raw client is served: what the secret closes.
    let open = transport(1, LinkSecurity::default()).await;
    let answers = raw(&open, false, vec![ping_frame()]).await;
    assert!(
        answers
            .iter()
            .any(|b| matches!(b, Body::Response(Response::Pong))),
        "{answers:?}"
    );

    let guarded = transport(1, secret("s")).await;
    // A Hello that claims no secret, then a request.
    let answers = raw(&guarded, false, vec![ping_frame()]).await;
    assert!(
        !answers.iter().any(|b| matches!(b, Body::Response(_))),
        "{answers:?}"
    );
    // A Hello that claims one, then a request instead of the proof.
    let answers = raw(&guarded, true, vec![ping_frame()]).await;
    assert!(
        !answers.iter().any(|b| matches!(b, Body::Response(_))),
        "{answers:?}"
    );
    // A wrong proof: the acceptor closes without proving anything back.
    let bogus = Frame {
        id: 0,
        body: Body::Proof([0; 32]),
    };
    let answers = raw(&guarded, true, vec![bogus, ping_frame()]).await;
    assert!(
        answers.iter().all(|b| matches!(b, Body::Hello(_))),
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_dialer_refuses_an_acceptor_with_a_wrong_proof() {
    let a = transport(1, secret("s")).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // A fake node that claims the secret and answers any proof with garbage.
    tokio::spawn(async move {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut buf = BytesMut::new();
        for body in [
            Body::Hello(Hello {
                cluster_name: "test".into(),
                node_id: 2,
                addr: addr.to_string(),
                version: PROTOCOL_VERSION,
                transient: false,
                nonce: [3; 32],
                proves: true,
            }),
            Body::Proof([5; 32]),
        ] {
            let bytes = Frame { id: 0, body }.encode().expect("encode");
            buf.put_u32(u32::try_from(bytes.len()).expect("small"));
            buf.put_slice(&bytes);
        }
        let _ = stream.write_all(&buf).await;
        // Keep reading until the dialer gives up.
        let mut frames = FramedRead::new(stream, LengthDelimitedCodec::new());
        while let Some(Ok(_)) = frames.next().await {}
    });
    refused(
        a.call_addr(&addr.to_string(), Request::Ping, WAIT).await,
        "fake acceptor",
    );
}

/// A CA that signs node certificates.
struct Ca {
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert").der().clone();
        Ca {
            cert,
            issuer: Issuer::new(params, key),
        }
    }

    /// A node certificate for both ends of a link; its name is no address (names are not
    /// checked, see transport/tls.rs).
    fn node(&self, name: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(vec![name.to_owned()]).expect("node params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("node key");
        let cert = params.signed_by(&key, &self.issuer).expect("node cert");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (vec![cert.der().clone()], key)
    }

    /// TLS for a node named `name` whose certificate `signer` signed and that trusts this CA.
    fn tls(&self, name: &str, signer: &Ca) -> LinkTls {
        let (certs, key) = signer.node(name);
        LinkTls::new(certs, key, vec![self.cert.clone()]).expect("TLS config")
    }
}

fn tls(tls: LinkTls, secret: Option<&str>) -> LinkSecurity {
    LinkSecurity {
        secret: secret.and_then(|s| ClusterSecret::new(s.as_bytes())),
        tls: Some(tls),
    }
}

#[tokio::test]
async fn tls_nodes_of_one_ca_talk_with_and_without_a_secret() {
    let ca = Ca::new("cluster CA");
    let a = transport(1, tls(ca.tls("node-a", &ca), None)).await;
    let b = transport(2, tls(ca.tls("node-b", &ca), None)).await;
    linked(&a, &b).await;
    assert!(matches!(ping(&b, &a).await, Ok(Response::Pong)));

    let c = transport(3, tls(ca.tls("node-c", &ca), Some("s"))).await;
    let d = transport(4, tls(ca.tls("node-d", &ca), Some("s"))).await;
    linked(&c, &d).await;
    assert!(matches!(ping(&d, &c).await, Ok(Response::Pong)));
    // TLS does not stand in for the secret.
    let e = transport(5, tls(ca.tls("node-e", &ca), Some("other"))).await;
    refused(ping(&e, &c).await, "TLS with another secret");
}

#[tokio::test]
async fn a_tls_node_refuses_a_plain_peer() {
    let ca = Ca::new("cluster CA");
    let guarded = transport(1, tls(ca.tls("node-a", &ca), None)).await;
    let plain = transport(2, LinkSecurity::default()).await;
    let result = ping(&plain, &guarded).await;
    assert!(result.is_err(), "plain -> TLS: {result:?}");
    refused(ping(&guarded, &plain).await, "TLS -> plain");
    // The raw Hello of a plain client is no TLS handshake.
    let answers = raw(&guarded, false, vec![ping_frame()]).await;
    assert!(answers.is_empty(), "{answers:?}");
}

#[tokio::test]
async fn a_certificate_of_another_ca_is_refused_both_ways() {
    let ca = Ca::new("cluster CA");
    let rogue_ca = Ca::new("another CA");
    let a = transport(1, tls(ca.tls("node-a", &ca), None)).await;
    // Trusts the cluster's CA, but its certificate is the other CA's.
    let rogue = transport(2, tls(ca.tls("node-r", &rogue_ca), None)).await;
    refused(ping(&rogue, &a).await, "rogue -> a");
    refused(ping(&a, &rogue).await, "a -> rogue");
    // A self-consistent node of the other CA is refused too.
    let other = transport(3, tls(rogue_ca.tls("node-o", &rogue_ca), None)).await;
    refused(ping(&other, &a).await, "other -> a");
    refused(ping(&a, &other).await, "a -> other");
}
