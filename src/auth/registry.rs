//! The internal user database: users (password hash and tags), vhost records and
//! each user's permissions in each vhost, kept as one value that exports to and
//! imports from the `users` / `vhosts` / `permissions` parts of RabbitMQ's
//! definitions JSON, so that storage can persist it as one blob.
//!
//! Every change goes through [`Registry::changed`]: it bumps the generation that
//! channels' permission caches compare against, and is the place where a
//! persistence layer hooks in.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Deserializer, Serialize};

use super::hashing::{self, HashError};
use super::limits::{self, Limits, Scope, VHostLimitsDef};
use super::pattern::{BadPattern, Compiled};
use super::{LoginError, parse_amqplain, parse_plain};
use crate::config::Config;

/// The tags RabbitMQ knows, in the management UI's order.
pub const KNOWN_TAGS: [&str; 5] = [
    "administrator",
    "monitoring",
    "policymaker",
    "management",
    "impersonator",
];

/// A user as RabbitMQ's definitions describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDef {
    /// User name.
    pub name: String,
    /// `base64(salt ++ hash(salt ++ password))`; empty for a user without a password.
    #[serde(default)]
    pub password_hash: String,
    /// Which hash function made `password_hash`.
    #[serde(default = "default_algorithm")]
    pub hashing_algorithm: String,
    /// Tags: an array, or a comma-separated string in older exports.
    #[serde(default, deserialize_with = "tags_from_list_or_string")]
    pub tags: Vec<String>,
    /// Per-user limits (`max-connections`, `max-channels`), see `auth::limits`.
    #[serde(default)]
    pub limits: serde_json::Map<String, serde_json::Value>,
}

fn default_algorithm() -> String {
    hashing::SHA256.to_owned()
}

/// RabbitMQ accepts tags as `"a,b"` or `["a","b"]`.
pub fn tags_from_list_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Option::<Tags>::deserialize(d)? {
        None => Vec::new(),
        Some(Tags::List(list)) => list,
        Some(Tags::Text(text)) => parse_tags(&text),
    })
}

/// `"administrator, management"` → `["administrator", "management"]`.
pub fn parse_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A vhost as the definitions describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VHostDef {
    /// Its name.
    pub name: String,
    /// Free text shown by the management UI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Free-form tags.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "tags_from_list_or_string"
    )]
    pub tags: Vec<String>,
}

/// One user's permissions in one vhost: three regular expressions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDef {
    /// The user.
    pub user: String,
    /// The vhost.
    pub vhost: String,
    /// Resources the user may create, delete and redeclare.
    pub configure: String,
    /// Resources the user may publish to or bind to.
    pub write: String,
    /// Resources the user may consume from, get from, purge or bind from.
    pub read: String,
}

/// The auth part of RabbitMQ's definitions JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthDefinitions {
    /// Users.
    #[serde(default)]
    pub users: Vec<UserDef>,
    /// Vhosts.
    #[serde(default)]
    pub vhosts: Vec<VHostDef>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    /// Vhost limits (RabbitMQ's `vhost-limits` parameters in definitions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vhost_limits: Vec<VHostLimitsDef>,
}

impl From<BadPattern> for RegistryError {
    fn from(bad: BadPattern) -> Self {
        RegistryError::BadPattern {
            pattern: bad.pattern,
            reason: bad.reason,
        }
    }
}

impl PermissionDef {
    /// Its three patterns, compiled.
    fn compile(&self) -> Result<Compiled, BadPattern> {
        Compiled::new(&self.configure, &self.write, &self.read)
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The hash or its algorithm.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// A permission pattern that does not compile.
    #[error("invalid regular expression '{pattern}': {reason}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What the regex engine said.
        reason: String,
    },
    /// Permissions for a user or vhost that does not exist.
    #[error("vhost_or_user_not_found")]
    VHostOrUserNotFound,
    /// A limit with an unknown name or a value that is not an integer
    /// (RabbitMQ's validation text).
    #[error("{0}")]
    BadLimit(String),
}

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<String, UserDef>,
    vhosts: BTreeMap<String, VHostDef>,
    /// By (vhost, user), compiled once when set.
    permissions: BTreeMap<(String, String), (PermissionDef, Arc<Compiled>)>,
    /// Vhost limits by vhost (never an empty map).
    vhost_limits: BTreeMap<String, Limits>,
}

/// Called with the whole auth state after every change (persistence).
pub type ChangeHook = Box<dyn Fn(&AuthDefinitions) + Send + Sync>;

/// Users, vhost records and permissions.
pub struct Registry {
    state: RwLock<State>,
    /// Persists every change (set once, at start).
    on_change: std::sync::OnceLock<ChangeHook>,
    /// Held while a change's snapshot is taken and handed to the hook.
    persisting: parking_lot::Mutex<()>,
    /// Bumped on every change; see `UserAccess`.
    generation: AtomicU64,
    /// Users that may only connect from loopback.
    loopback_users: Vec<String>,
    /// This process's own password for any existing user, accepted from
    /// loopback only: how the broker's shovels connect to the broker itself
    /// (RabbitMQ's direct connection) without knowing the user's password.
    internal_secret: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("state", &self.state)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// What a fresh broker has: the default user (tag administrator) with full
    /// permissions on the default vhost, as RabbitMQ's first boot creates them.
    pub fn from_config(config: &Config) -> Arc<Self> {
        let registry = Registry {
            state: RwLock::default(),
            on_change: std::sync::OnceLock::new(),
            persisting: parking_lot::Mutex::new(()),
            generation: AtomicU64::new(0),
            loopback_users: config.loopback_users.clone(),
            internal_secret: format!("{}{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()),
        };
        {
            let mut st = registry.state.write();
            st.users.insert(
                config.default_user.clone(),
                UserDef {
                    name: config.default_user.clone(),
                    password_hash: hashing::hash_password(&config.default_pass),
                    hashing_algorithm: hashing::SHA256.to_owned(),
                    tags: vec!["administrator".into()],
                    limits: Default::default(),
                },
            );
            st.vhosts.insert(
                config.default_vhost.clone(),
                VHostDef {
                    name: config.default_vhost.clone(),
                    description: "Default virtual host".into(),
                    tags: Vec::new(),
                },
            );
            let all = PermissionDef {
                user: config.default_user.clone(),
                vhost: config.default_vhost.clone(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            };
            if let Ok(compiled) = Compiled::new(&all.configure, &all.write, &all.read) {
                st.permissions.insert(
                    (all.vhost.clone(), all.user.clone()),
                    (all, Arc::new(compiled)),
                );
            }
        }
        Arc::new(registry)
    }

    /// The hook every change passes through: invalidates channels' permission
    /// caches. Persistence of users, vhosts and permissions belongs here too
    /// (save [`Registry::export`]).
    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(hook) = self.on_change.get() {
            // Snapshot and save in one step: two changes racing could
            // otherwise save their snapshots out of order, the older last.
            let _in_order = self.persisting.lock();
            hook(&self.export());
        }
    }

    /// Sets what is called with the whole state after every change.
    pub fn on_change(&self, hook: ChangeHook) {
        let _ = self.on_change.set(hook);
    }

    /// Replaces everything with `defs` (recovery at start: what was stored wins
    /// over the configured defaults, as RabbitMQ creates them on first boot only).
    pub fn restore(&self, defs: &AuthDefinitions) -> Result<(), RegistryError> {
        let before = std::mem::take(&mut *self.state.write());
        self.import(defs)
            .inspect_err(|_| *self.state.write() = before)
    }

    /// Changes so far; a cache made at an older generation is stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The password the broker's own clients (shovels) log in with over
    /// loopback, as any existing user; never stored, new at every start.
    pub fn internal_secret(&self) -> &str {
        &self.internal_secret
    }

    /// Checks a SASL start-ok response from `peer`; returns the user name.
    pub fn login(
        &self,
        mechanism: &str,
        response: &[u8],
        peer: IpAddr,
    ) -> Result<String, LoginError> {
        let (user, pass) = match mechanism {
            "PLAIN" => parse_plain(response),
            "AMQPLAIN" => parse_amqplain(response),
            other => return Err(LoginError::UnknownMechanism(other.to_owned())),
        }
        .ok_or_else(|| LoginError::BadResponse {
            mechanism: mechanism.to_owned(),
        })?;
        let internal = is_loopback(peer)
            && same_secret(&pass, &self.internal_secret)
            && self.state.read().users.contains_key(&user);
        if !internal {
            self.check_password(&user, &pass)
                .ok_or_else(|| LoginError::Refused {
                    mechanism: mechanism.to_owned(),
                })?;
        }
        if self.loopback_users.contains(&user) && !is_loopback(peer) {
            return Err(LoginError::LoopbackOnly { user });
        }
        Ok(user)
    }

    /// The EXTERNAL mechanism: `name` is what the verified client
    /// certificate names (its subject CN or whole subject, per
    /// `ssl_cert_login_from`; `None`: it has none). The user must exist; no
    /// password is checked. The loopback rule applies as for PLAIN.
    pub fn login_external(&self, name: Option<&str>, peer: IpAddr) -> Result<String, LoginError> {
        let refused = || LoginError::Refused {
            mechanism: super::EXTERNAL.to_owned(),
        };
        let Some(user) = name else {
            tracing::warn!("EXTERNAL login: the client certificate names no user");
            return Err(refused());
        };
        if !self.state.read().users.contains_key(user) {
            tracing::warn!(user, "EXTERNAL login: user '{user}' - invalid credentials");
            return Err(refused());
        }
        if self.loopback_users.iter().any(|u| u == user) && !is_loopback(peer) {
            return Err(LoginError::LoopbackOnly {
                user: user.to_owned(),
            });
        }
        Ok(user.to_owned())
    }

    /// The user, if `password` is theirs (HTTP basic auth uses this too).
    pub fn check_password(&self, user: &str, password: &str) -> Option<UserDef> {
        let st = self.state.read();
        let found = st.users.get(user)?;
        hashing::verify(&found.hashing_algorithm, &found.password_hash, password)
            .then(|| found.clone())
    }

    /// Whether `user` has any permissions in `vhost` (RabbitMQ's vhost access).
    pub fn has_vhost_access(&self, user: &str, vhost: &str) -> bool {
        self.state
            .read()
            .permissions
            .contains_key(&(vhost.to_owned(), user.to_owned()))
    }

    /// The compiled permissions of `user` in `vhost`.
    pub(super) fn compiled(&self, vhost: &str, user: &str) -> Option<Arc<Compiled>> {
        self.state
            .read()
            .permissions
            .get(&(vhost.to_owned(), user.to_owned()))
            .map(|(_, c)| c.clone())
    }

    /// Every user, by name.
    pub fn users(&self) -> Vec<UserDef> {
        self.state.read().users.values().cloned().collect()
    }

    /// One user.
    pub fn user(&self, name: &str) -> Option<UserDef> {
        self.state.read().users.get(name).cloned()
    }

    /// Creates or replaces a user; returns whether it is new.
    pub fn put_user(&self, user: UserDef) -> Result<bool, RegistryError> {
        hashing::check_algorithm(&user.hashing_algorithm)?;
        hashing::check_hash(&user.password_hash)?;
        let created = self
            .state
            .write()
            .users
            .insert(user.name.clone(), user)
            .is_none();
        self.changed();
        Ok(created)
    }

    /// Deletes a user and their permissions; returns whether it existed.
    pub fn delete_user(&self, name: &str) -> bool {
        let existed = {
            let mut st = self.state.write();
            st.permissions.retain(|(_, user), _| user != name);
            st.users.remove(name).is_some()
        };
        self.changed();
        existed
    }

    /// Every vhost record, by name.
    pub fn vhosts(&self) -> Vec<VHostDef> {
        self.state.read().vhosts.values().cloned().collect()
    }

    /// One vhost record.
    pub fn vhost(&self, name: &str) -> Option<VHostDef> {
        self.state.read().vhosts.get(name).cloned()
    }

    /// Creates or updates a vhost record; returns whether it is new. The live
    /// vhost is created by [`crate::broker::Broker::add_vhost`], which calls this.
    pub fn put_vhost(&self, vhost: VHostDef) -> bool {
        let created = self
            .state
            .write()
            .vhosts
            .insert(vhost.name.clone(), vhost)
            .is_none();
        self.changed();
        created
    }

    /// Deletes a vhost record and the permissions in it.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let existed = {
            let mut st = self.state.write();
            st.permissions.retain(|(vhost, _), _| vhost != name);
            st.vhost_limits.remove(name);
            st.vhosts.remove(name).is_some()
        };
        self.changed();
        existed
    }

    /// Every permission entry, by vhost then user.
    pub fn permissions(&self) -> Vec<PermissionDef> {
        self.state
            .read()
            .permissions
            .values()
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// One user's permissions in one vhost.
    pub fn permission(&self, vhost: &str, user: &str) -> Option<PermissionDef> {
        self.state
            .read()
            .permissions
            .get(&(vhost.to_owned(), user.to_owned()))
            .map(|(p, _)| p.clone())
    }

    /// Sets a user's permissions in a vhost; returns whether the entry is new.
    pub fn set_permissions(&self, def: PermissionDef) -> Result<bool, RegistryError> {
        let compiled = Arc::new(def.compile()?);
        let created = {
            let mut st = self.state.write();
            if !st.users.contains_key(&def.user) || !st.vhosts.contains_key(&def.vhost) {
                return Err(RegistryError::VHostOrUserNotFound);
            }
            st.permissions
                .insert((def.vhost.clone(), def.user.clone()), (def, compiled))
                .is_none()
        };
        self.changed();
        Ok(created)
    }

    /// Removes a user's permissions in a vhost; returns whether there were any.
    pub fn clear_permissions(&self, vhost: &str, user: &str) -> bool {
        let existed = self
            .state
            .write()
            .permissions
            .remove(&(vhost.to_owned(), user.to_owned()))
            .is_some();
        self.changed();
        existed
    }

    /// Users, vhost records and permissions in RabbitMQ's definitions shape.
    pub fn export(&self) -> AuthDefinitions {
        AuthDefinitions {
            users: self.users(),
            vhosts: self.vhosts(),
            permissions: self.permissions(),
            vhost_limits: self.vhost_limits(),
        }
    }

    /// Every vhost's limits (vhosts without limits left out), by vhost.
    pub fn vhost_limits(&self) -> Vec<VHostLimitsDef> {
        self.state
            .read()
            .vhost_limits
            .iter()
            .map(|(vhost, value)| VHostLimitsDef {
                vhost: vhost.clone(),
                value: value.clone(),
            })
            .collect()
    }

    /// The limit `name` of `vhost` in force (none if unset or negative).
    pub fn vhost_limit(&self, vhost: &str, name: &str) -> Option<u64> {
        let st = self.state.read();
        limits::in_force(st.vhost_limits.get(vhost)?.get(name).copied())
    }

    /// The limit `name` of `user` in force (none if unset or negative).
    pub fn user_limit(&self, user: &str, name: &str) -> Option<u64> {
        let st = self.state.read();
        let value = st.users.get(user)?.limits.get(name)?.as_i64();
        limits::in_force(value)
    }

    /// Sets a vhost limit (validated as RabbitMQ does); a negative value is
    /// kept and listed, and means no limit (as in RabbitMQ).
    pub fn set_vhost_limit(
        &self,
        vhost: &str,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        let value = limits::validate(Scope::VHost, name, value)?;
        {
            let mut st = self.state.write();
            if !st.vhosts.contains_key(vhost) {
                return Err(RegistryError::VHostOrUserNotFound);
            }
            st.vhost_limits
                .entry(vhost.to_owned())
                .or_default()
                .insert(name.to_owned(), value);
        }
        self.changed();
        Ok(())
    }

    /// Removes a vhost limit; returns whether it was set.
    pub fn clear_vhost_limit(&self, vhost: &str, name: &str) -> bool {
        let existed = {
            let mut st = self.state.write();
            let existed = st
                .vhost_limits
                .get_mut(vhost)
                .is_some_and(|l| l.remove(name).is_some());
            if st.vhost_limits.get(vhost).is_some_and(|l| l.is_empty()) {
                st.vhost_limits.remove(vhost);
            }
            existed
        };
        self.changed();
        existed
    }

    /// Sets a user limit (validated as RabbitMQ does); a negative value is
    /// kept and means no limit.
    pub fn set_user_limit(
        &self,
        user: &str,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        let value = limits::validate(Scope::User, name, value)?;
        {
            let mut st = self.state.write();
            let found = st
                .users
                .get_mut(user)
                .ok_or(RegistryError::VHostOrUserNotFound)?;
            found.limits.insert(name.to_owned(), value.into());
        }
        self.changed();
        Ok(())
    }

    /// Removes a user limit; returns whether it was set.
    pub fn clear_user_limit(&self, user: &str, name: &str) -> bool {
        let existed = self
            .state
            .write()
            .users
            .get_mut(user)
            .is_some_and(|u| u.limits.remove(name).is_some());
        self.changed();
        existed
    }

    /// Adds or replaces what `defs` names (RabbitMQ's import merges the same
    /// way: nothing that is not named is removed). Everything is checked before
    /// anything changes. Vhost records only: the caller creates live vhosts.
    pub fn import(&self, defs: &AuthDefinitions) -> Result<(), RegistryError> {
        let mut compiled = Vec::with_capacity(defs.permissions.len());
        for user in &defs.users {
            hashing::check_algorithm(&user.hashing_algorithm)?;
            hashing::check_hash(&user.password_hash)?;
        }
        for p in &defs.permissions {
            compiled.push(Arc::new(p.compile()?));
        }
        for l in &defs.vhost_limits {
            for (name, value) in &l.value {
                limits::validate(Scope::VHost, name, &(*value).into())?;
            }
        }
        for user in &defs.users {
            for (name, value) in &user.limits {
                limits::validate(Scope::User, name, value)?;
            }
        }
        {
            let mut st = self.state.write();
            for user in &defs.users {
                st.users.insert(user.name.clone(), user.clone());
            }
            for vhost in &defs.vhosts {
                st.vhosts.insert(vhost.name.clone(), vhost.clone());
            }
            for l in &defs.vhost_limits {
                if st.vhosts.contains_key(&l.vhost) {
                    if l.value.is_empty() {
                        st.vhost_limits.remove(&l.vhost);
                    } else {
                        st.vhost_limits.insert(l.vhost.clone(), l.value.clone());
                    }
                }
            }
            for (p, c) in defs.permissions.iter().zip(compiled) {
                if st.users.contains_key(&p.user) && st.vhosts.contains_key(&p.vhost) {
                    st.permissions
                        .insert((p.vhost.clone(), p.user.clone()), (p.clone(), c));
                }
            }
        }
        self.changed();
        Ok(())
    }
}

/// Compares a password with the internal secret in time that does not
/// depend on where they differ.
fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn is_loopback(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
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
}
