//! Tests of the user registry: import/export, limits, bad definitions, the
//! internal secret.

use super::*;

#[test]
fn imports_a_rabbitmq_export_and_exports_the_same_shape() {
    let json = r#"{
        "users": [{"name":"bob","password_hash":"xoOO5/d1qsLSX2KzSW9SfogWMDTj+9o3renoM4+0Q4zZQuzI",
                   "hashing_algorithm":"rabbit_password_hashing_sha256","tags":"management,monitoring","limits":{}}],
        "vhosts": [{"name":"v"}],
        "permissions": [{"user":"bob","vhost":"v","configure":"","write":".*","read":"^r"}]
    }"#;
    let defs: AuthDefinitions = serde_json::from_str(json).expect("parse");
    let registry = Registry::from_config(&Config::default());
    registry.import(&defs).expect("import");
    let bob = registry
        .check_password("bob", "guest")
        .expect("bob logs in");
    assert_eq!(bob.tags, ["management", "monitoring"]);
    assert!(registry.has_vhost_access("bob", "v"));
    assert!(!registry.has_vhost_access("bob", "/"));
    let out = serde_json::to_value(registry.export()).expect("json");
    assert_eq!(out["users"][0]["name"], "bob");
    assert_eq!(out["users"][0]["tags"][1], "monitoring");
    assert_eq!(out["vhosts"][1], serde_json::json!({"name": "v"}));
    assert_eq!(out["permissions"][1]["configure"], "");
}

#[test]
fn limits_are_set_cleared_exported_and_go_with_their_vhost_or_user() {
    use serde_json::json;
    let registry = Registry::from_config(&Config::default());
    registry.put_vhost(VHostDef {
        name: "v".into(),
        description: String::new(),
        tags: Vec::new(),
    });
    registry
        .set_vhost_limit("v", limits::MAX_QUEUES, &json!(0))
        .expect("set");
    registry
        .set_user_limit("guest", limits::MAX_CHANNELS, &json!(4))
        .expect("set");
    assert_eq!(registry.vhost_limit("v", limits::MAX_QUEUES), Some(0));
    assert_eq!(registry.user_limit("guest", limits::MAX_CHANNELS), Some(4));
    assert_eq!(
        registry.set_vhost_limit("nope", limits::MAX_QUEUES, &json!(1)),
        Err(RegistryError::VHostOrUserNotFound)
    );
    let exported = registry.export();
    let copy = Registry::from_config(&Config::default());
    copy.restore(&exported).expect("restore");
    assert_eq!(copy.vhost_limit("v", limits::MAX_QUEUES), Some(0));
    assert_eq!(copy.user_limit("guest", limits::MAX_CHANNELS), Some(4));

    registry
        .set_user_limit("guest", limits::MAX_CHANNELS, &json!(-1))
        .expect("negative");
    assert_eq!(registry.user_limit("guest", limits::MAX_CHANNELS), None);
    assert_eq!(
        registry.user("guest").expect("guest").limits["max-channels"],
        -1
    );
    assert!(registry.clear_vhost_limit("v", limits::MAX_QUEUES));
    assert!(registry.vhost_limits().is_empty());
    copy.delete_vhost("v");
    assert!(copy.export().vhost_limits.is_empty());
}

#[test]
fn bad_definitions_change_nothing() {
    let registry = Registry::from_config(&Config::default());
    let defs = AuthDefinitions {
        permissions: vec![PermissionDef {
            user: "guest".into(),
            vhost: "/".into(),
            configure: "(".into(),
            write: "".into(),
            read: "".into(),
        }],
        ..Default::default()
    };
    assert!(matches!(
        registry.import(&defs),
        Err(RegistryError::BadPattern { .. })
    ));
    assert_eq!(
        registry
            .permission("/", "guest")
            .map(|p| p.configure)
            .as_deref(),
        Some(".*")
    );
}

#[test]
fn the_internal_secret_logs_in_existing_users_from_loopback_only() {
    let registry = Registry::from_config(&Config::default());
    let secret = registry.internal_secret().to_owned();
    let plain = |user: &str| format!("\0{user}\0{secret}").into_bytes();
    let loopback: IpAddr = [127, 0, 0, 1].into();
    let remote: IpAddr = [192, 0, 2, 1].into();
    assert_eq!(
        registry
            .login("PLAIN", &plain("guest"), loopback)
            .ok()
            .as_deref(),
        Some("guest")
    );
    assert!(registry.login("PLAIN", &plain("guest"), remote).is_err());
    assert!(registry.login("PLAIN", &plain("nobody"), loopback).is_err());
    // Never a password for HTTP basic auth.
    assert!(registry.check_password("guest", &secret).is_none());
    assert_ne!(
        Registry::from_config(&Config::default()).internal_secret(),
        secret
    );
}
