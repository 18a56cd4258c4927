//! Users and permissions as a RabbitMQ client sees them: connection.open refused
//! (530) for a vhost the user has no permissions in, and every AMQP operation
//! checked for configure / write / read where RabbitMQ checks it, with its 403
//! reply text. The texts were checked against RabbitMQ 3.10.8 with a user whose
//! permissions are `^c` / `^w` / `^r`, as here.

#[path = "../common/mod.rs"]
mod common;

mod operations;

use common::TestBroker;
use common::lapin::{amqp_error, connect};
use lapin::{Connection, ConnectionProperties};
use warren::auth::hashing::hash_password;
use warren::auth::{PermissionDef, UserDef};

/// Creates user `name` with password `pw` and the given tags.
fn add_user(broker: &TestBroker, name: &str, tags: &[&str]) {
    broker
        .broker
        .auth
        .put_user(UserDef {
            name: name.into(),
            password_hash: hash_password("pw"),
            hashing_algorithm: warren::auth::hashing::SHA256.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            limits: Default::default(),
        })
        .expect("user");
}

/// Sets `user`'s permissions in `vhost`.
fn permit(broker: &TestBroker, vhost: &str, user: &str, perms: [&str; 3]) {
    broker
        .broker
        .auth
        .set_permissions(PermissionDef {
            user: user.into(),
            vhost: vhost.into(),
            configure: perms[0].into(),
            write: perms[1].into(),
            read: perms[2].into(),
        })
        .expect("permissions");
}

/// The URI for `user` (password `pw`) on `vhost` (already URL-encoded).
fn uri(broker: &TestBroker, user: &str, vhost: &str) -> String {
    format!("amqp://{user}:pw@{}/{vhost}", broker.addr)
}

/// The 530 the broker answers connection.open with.
async fn refused_open(uri: &str) -> (u16, String) {
    let err = Connection::connect(uri, ConnectionProperties::default())
        .await
        .expect_err("connection.open refused");
    amqp_error(&err)
}

#[tokio::test]
async fn user_without_permissions_in_the_vhost_is_refused_at_open() {
    let broker = common::start().await;
    add_user(&broker, "bob", &[]);
    assert_eq!(
        refused_open(&uri(&broker, "bob", "%2f")).await,
        (
            530,
            "NOT_ALLOWED - access to vhost '/' refused for user 'bob'".into()
        )
    );
    assert_eq!(
        refused_open(&uri(&broker, "bob", "nope")).await,
        (530, "NOT_ALLOWED - vhost nope not found".into())
    );
    // Permissions of any kind, even none matching, open the vhost.
    permit(&broker, "/", "bob", ["", "", ""]);
    let conn = connect(&uri(&broker, "bob", "%2f")).await;
    conn.close(200, "bye".into()).await.expect("close");
}

#[tokio::test]
async fn a_user_with_a_rabbitmq_hash_logs_in() {
    let broker = common::start().await;
    // `guest`'s hash as RabbitMQ 3.10.8 exports it.
    broker
        .broker
        .auth
        .put_user(UserDef {
            name: "imported".into(),
            password_hash: "xoOO5/d1qsLSX2KzSW9SfogWMDTj+9o3renoM4+0Q4zZQuzI".into(),
            hashing_algorithm: "rabbit_password_hashing_sha256".into(),
            tags: vec![],
            limits: Default::default(),
        })
        .expect("user");
    permit(&broker, "/", "imported", [".*", ".*", ".*"]);
    let conn = connect(&format!("amqp://imported:guest@{}/%2f", broker.addr)).await;
    conn.close(200, "bye".into()).await.expect("close");
    let err = Connection::connect(
        &format!("amqp://imported:wrong@{}/%2f", broker.addr),
        ConnectionProperties::default(),
    )
    .await
    .expect_err("wrong password");
    assert!(err.to_string().contains("ACCESS_REFUSED"), "{err}");
}
