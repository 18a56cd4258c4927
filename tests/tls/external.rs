//! SASL EXTERNAL over amqps: offered only with a verified client
//! certificate, logging in as the certificate's CN or whole subject, and
//! refused for a subject that is no user.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren::auth::hashing::hash_password;
use warren::auth::{PermissionDef, UserDef};
use warren_codec::protocol::{AMQPClass, connection};

use crate::certs::{ClientIdentity, Pki};
use crate::common::lapin::amqp_error;
use crate::common::{self, TestBroker, WAIT};
use crate::{
    amqps_uri, client_tls, connect, round_trip, server_files, tls_connector, try_connect,
    verify_peer,
};

/// Adds user `name` (password "pw", no tags) with all permissions on "/".
fn add_user(broker: &TestBroker, name: &str) {
    let auth = &broker.broker.auth;
    auth.put_user(UserDef {
        name: name.into(),
        password_hash: hash_password("pw"),
        hashing_algorithm: warren::auth::hashing::SHA256.into(),
        tags: Vec::new(),
        limits: Default::default(),
    })
    .expect("user");
    auth.set_permissions(PermissionDef {
        user: name.into(),
        vhost: "/".into(),
        configure: ".*".into(),
        write: ".*".into(),
        read: ".*".into(),
    })
    .expect("permissions");
}

/// The mechanisms the broker offers in connection.start to a raw TLS client
/// presenting `identity`.
async fn offered_mechanisms(
    broker: &TestBroker,
    pki: &Pki,
    identity: Option<&ClientIdentity>,
) -> String {
    let connector = tls_connector(pki, identity, Vec::new());
    let tcp = tokio::net::TcpStream::connect(broker.tls_addr.expect("amqps listener"))
        .await
        .expect("tcp");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(&warren_codec::frame::PROTOCOL_HEADER)
        .await
        .expect("header");
    let mut decoder = warren_codec::FrameDecoder::new(0);
    let mut buf = bytes::BytesMut::new();
    loop {
        use tokio_util::codec::Decoder;
        if let Some(frame) = decoder.decode(&mut buf).expect("a frame") {
            match frame {
                warren_codec::Frame::Method(
                    0,
                    AMQPClass::Connection(connection::AMQPMethod::Start(start)),
                ) => return start.mechanisms.to_string(),
                other => panic!("expected connection.start, got {other:?}"),
            }
        }
        let n = tokio::time::timeout(WAIT, tls.read_buf(&mut buf))
            .await
            .expect("connection.start in time")
            .expect("read");
        assert!(n > 0, "closed before connection.start");
    }
}

#[tokio::test]
async fn external_is_offered_only_with_a_verified_client_certificate() {
    let pki = Pki::new("Warren test CA");
    let plain_tls = common::start_tls(|c| server_files(&pki, c)).await;
    assert_eq!(
        offered_mechanisms(&plain_tls, &pki, None).await,
        "PLAIN AMQPLAIN"
    );
    let verifying = common::start_tls(|c| verify_peer(&pki, c, false)).await;
    assert_eq!(
        offered_mechanisms(&verifying, &pki, None).await,
        "PLAIN AMQPLAIN"
    );
    let identity = pki.client(Some("alice"));
    assert_eq!(
        offered_mechanisms(&verifying, &pki, Some(&identity)).await,
        "PLAIN AMQPLAIN EXTERNAL"
    );
    // Never on the plain port.
    let mut raw = common::raw::RawClient::connect(verifying.addr).await;
    raw.send_raw(&warren_codec::frame::PROTOCOL_HEADER).await;
    assert_eq!(
        raw.expect_start().await.mechanisms.to_string(),
        "PLAIN AMQPLAIN"
    );
}

#[tokio::test]
async fn external_logs_in_as_the_certificate_common_name() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| verify_peer(&pki, c, true)).await;
    add_user(&broker, "alice");
    let identity = pki.client(Some("alice"));
    // No user name or password in the URI: the certificate is the login.
    let uri = amqps_uri(&broker, None, "auth_mechanism=external");
    let conn = connect(&uri, client_tls(&pki.ca_pem, Some(&identity))).await;
    round_trip(&conn, "alice-q").await;
    let users = connected_users(&broker);
    assert_eq!(users, ["alice"]);
}

#[tokio::test]
async fn external_can_log_in_as_the_whole_subject_as_rabbitmq_does() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| {
        verify_peer(&pki, c, true);
        c.ssl_cert_login_from = "distinguished_name".into();
    })
    .await;
    // RabbitMQ's form: RFC 4514, the subject's RDNs last to first (the test
    // certificates' subjects are CN, then O).
    add_user(&broker, "O=Warren tests,CN=alice");
    add_user(&broker, "alice");
    let uri = amqps_uri(&broker, None, "auth_mechanism=external");
    let conn = connect(
        &uri,
        client_tls(&pki.ca_pem, Some(&pki.client(Some("alice")))),
    )
    .await;
    round_trip(&conn, "dn-q").await;
    let users = connected_users(&broker);
    assert_eq!(users, ["O=Warren tests,CN=alice"]);
    // A subject that is no user is refused, even when its CN is one.
    let bob = pki.client(Some("bob"));
    add_user(&broker, "bob");
    let refused = try_connect(&uri, client_tls(&pki.ca_pem, Some(&bob))).await;
    assert_eq!(amqp_error(&refused.expect_err("refused")).0, 403);
}

#[tokio::test]
async fn external_refuses_a_common_name_that_is_not_a_user() {
    let pki = Pki::new("Warren test CA");
    let broker = common::start_tls(|c| verify_peer(&pki, c, true)).await;
    let uri = amqps_uri(&broker, None, "auth_mechanism=external");
    for identity in [pki.client(Some("mallory")), pki.client(None)] {
        let refused = try_connect(&uri, client_tls(&pki.ca_pem, Some(&identity))).await;
        let error = refused.expect_err("login refused");
        assert_eq!(
            amqp_error(&error),
            (
                403,
                "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. \
                 For details see the broker logfile."
                    .to_owned()
            )
        );
    }
    // PLAIN still works for a client with a certificate.
    let identity = pki.client(Some("mallory"));
    let uri = amqps_uri(&broker, Some(("guest", "guest")), "");
    connect(&uri, client_tls(&pki.ca_pem, Some(&identity))).await;
}

/// The users of the broker's open connections.
fn connected_users(broker: &TestBroker) -> Vec<String> {
    broker
        .broker
        .connections
        .iter()
        .map(|c| c.user.clone())
        .collect()
}
