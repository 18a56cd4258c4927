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

use super::hashing;
use super::limits::{self, Limits, Scope, VHostLimitsDef};
use super::pattern::Compiled;
use super::{LoginError, parse_amqplain, parse_plain};
use crate::config::Config;

pub use super::definitions::{
    AuthDefinitions, KNOWN_TAGS, PermissionDef, RegistryError, UserDef, VHostDef, parse_tags,
    tags_from_list_or_string,
};

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
#[path = "registry_tests.rs"]
mod tests;
