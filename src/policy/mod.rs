//! Policies and operator policies, RabbitMQ's model: per vhost, a name, a
//! regular expression matched against queue and exchange names, what they
//! apply to, a priority and a definition. The policy of highest priority that
//! matches applies, and so does the operator policy of highest priority; the
//! two combine key by key (`definition::merge`, the lower limit wins).
//!
//! [`Policies`] is the broker's store of both kinds, persisted through an
//! `on_change` hook like the user registry; [`VHostPolicies`] is one vhost's
//! snapshot, which the vhost matches its queues and exchanges against
//! ([`Applied`]). How a queue's own `x-` arguments and the policy resolve is
//! the queue's business (`queue::args`).

pub mod definition;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use definition::{Definition, PolicyKind, QueuePolicy};

/// What a policy applies to (`apply-to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyTo {
    /// Queues of every type.
    Queues,
    /// Classic queues only.
    ClassicQueues,
    /// Quorum queues only.
    QuorumQueues,
    /// Streams only.
    Streams,
    /// Exchanges only.
    Exchanges,
    /// Queues and exchanges.
    #[default]
    All,
}

impl ApplyTo {
    fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(Value::String(text.to_owned())).ok()
    }

    fn applies(self, target: Target<'_>) -> bool {
        match (self, target) {
            (ApplyTo::All, _) => true,
            (ApplyTo::Exchanges, Target::Exchange(_)) => true,
            (ApplyTo::Queues, Target::Queue { .. }) => true,
            (ApplyTo::ClassicQueues, Target::Queue { queue_type, .. }) => queue_type == "classic",
            (ApplyTo::QuorumQueues, Target::Queue { queue_type, .. }) => queue_type == "quorum",
            (ApplyTo::Streams, Target::Queue { queue_type, .. }) => queue_type == "stream",
            _ => false,
        }
    }
}

/// What a policy is matched against.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// A queue, by name and declared type (`classic`, `quorum`, `stream`).
    Queue {
        /// The queue's name.
        name: &'a str,
        /// Its declared `x-queue-type`.
        queue_type: &'a str,
    },
    /// An exchange, by name.
    Exchange(&'a str),
}

impl Target<'_> {
    fn name(&self) -> &str {
        match self {
            Target::Queue { name, .. } | Target::Exchange(name) => name,
        }
    }
}

/// A policy as set, stored and exported (RabbitMQ's JSON shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyDef {
    /// The vhost it belongs to.
    pub vhost: String,
    /// Its name, unique in the vhost (per kind).
    pub name: String,
    /// A regular expression matched (unanchored) against names.
    pub pattern: String,
    /// What it applies to.
    #[serde(rename = "apply-to", default)]
    pub apply_to: ApplyTo,
    /// Its keys and values.
    pub definition: Definition,
    /// Higher wins among matching policies.
    #[serde(default)]
    pub priority: i64,
}

/// A refused policy, worded as RabbitMQ's API words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A required key of the body is missing.
    #[error("[{{key_missing,{0}}}]")]
    Missing(&'static str),
    /// A value is not acceptable.
    #[error("Validation failed\n\n{0}\n")]
    Invalid(String),
}

impl PolicyDef {
    /// A policy from an API body or a definitions entry (`pattern`,
    /// `definition`, optional `apply-to` and `priority`), checked as RabbitMQ
    /// checks it.
    pub fn parse(
        kind: PolicyKind,
        vhost: &str,
        name: &str,
        body: &Value,
    ) -> Result<PolicyDef, PolicyError> {
        let pattern = match body.get("pattern") {
            Some(Value::String(p)) => p.clone(),
            Some(other) => {
                return Err(PolicyError::Invalid(format!(
                    "pattern should be a string, actually was {other}"
                )));
            }
            None => return Err(PolicyError::Missing("pattern")),
        };
        let definition = match body.get("definition") {
            Some(Value::Object(d)) => d.clone(),
            Some(_) => {
                return Err(PolicyError::Invalid(
                    "definition must be a JSON object".into(),
                ));
            }
            None => return Err(PolicyError::Missing("definition")),
        };
        Regex::new(&pattern).map_err(|e| {
            PolicyError::Invalid(format!(
                "pattern should be regular expression but is invalid: {e}"
            ))
        })?;
        let apply_to = match body.get("apply-to") {
            None | Some(Value::Null) => ApplyTo::All,
            Some(v) => v.as_str().and_then(ApplyTo::parse).ok_or_else(|| {
                PolicyError::Invalid(format!(
                    "apply-to '{}' unrecognised; should be 'queues', 'classic_queues', 'quorum_queues', 'streams', 'exchanges' or 'all'",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                ))
            })?,
        };
        let priority = match body.get("priority") {
            None | Some(Value::Null) => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                PolicyError::Invalid(format!(
                    "priority should be a number, actually was {}",
                    match v {
                        Value::String(s) => format!("<<\"{s}\">>"),
                        other => other.to_string(),
                    }
                ))
            })?,
        };
        definition::validate(kind, &definition).map_err(PolicyError::Invalid)?;
        Ok(PolicyDef {
            vhost: vhost.to_owned(),
            name: name.to_owned(),
            pattern,
            apply_to,
            definition,
            priority,
        })
    }
}

/// A policy with its pattern compiled.
#[derive(Debug)]
struct Policy {
    def: PolicyDef,
    regex: Regex,
}

impl Policy {
    fn compile(def: PolicyDef) -> Option<Self> {
        let regex = Regex::new(&def.pattern).ok()?;
        Some(Policy { def, regex })
    }

    fn matches(&self, target: Target<'_>) -> bool {
        self.def.apply_to.applies(target) && self.regex.is_match(target.name())
    }
}

/// What applies to one queue or exchange: the names of the policy and the
/// operator policy in force, and their merged definition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// The matching policy of highest priority.
    pub policy: Option<String>,
    /// The matching operator policy of highest priority.
    pub operator_policy: Option<String>,
    /// Their merged definition (`effective_policy_definition`).
    pub definition: Definition,
}

impl Applied {
    /// The queue keys of the merged definition.
    pub fn queue(&self) -> QueuePolicy {
        QueuePolicy::from_definition(&self.definition)
    }

    /// The exchange key `alternate-exchange`.
    pub fn alternate_exchange(&self) -> Option<&str> {
        self.definition
            .get("alternate-exchange")
            .and_then(Value::as_str)
    }
}

/// One vhost's policies, each kind by descending priority (then name).
#[derive(Debug, Default)]
pub struct VHostPolicies {
    policies: Vec<Arc<Policy>>,
    operator_policies: Vec<Arc<Policy>>,
}

impl VHostPolicies {
    /// What applies to `target`.
    pub fn applied(&self, target: Target<'_>) -> Applied {
        let first = |list: &[Arc<Policy>]| list.iter().find(|p| p.matches(target)).cloned();
        let policy = first(&self.policies);
        let operator = first(&self.operator_policies);
        Applied {
            definition: definition::merge(
                policy.as_ref().map(|p| &p.def.definition),
                operator.as_ref().map(|p| &p.def.definition),
            ),
            policy: policy.map(|p| p.def.name.clone()),
            operator_policy: operator.map(|p| p.def.name.clone()),
        }
    }
}

/// Policies as stored and exported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredPolicies {
    /// Regular policies.
    #[serde(default)]
    pub policies: Vec<PolicyDef>,
    /// Operator policies.
    #[serde(default)]
    pub operator_policies: Vec<PolicyDef>,
}

type Key = (PolicyKind, String, String);
type ChangeHook = Box<dyn Fn(&StoredPolicies) + Send + Sync>;

/// The broker's policies of both kinds, across vhosts.
#[derive(Default)]
pub struct Policies {
    state: RwLock<BTreeMap<Key, Arc<Policy>>>,
    on_change: Mutex<Option<ChangeHook>>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("count", &self.state.read().len())
            .finish()
    }
}

impl Policies {
    /// Called with every policy after each change (to persist them).
    pub fn on_change(&self, hook: ChangeHook) {
        *self.on_change.lock() = Some(hook);
    }

    fn changed(&self) {
        if let Some(hook) = self.on_change.lock().as_ref() {
            hook(&self.export());
        }
    }

    /// Sets a policy (already parsed); returns whether it is new.
    pub fn put(&self, kind: PolicyKind, def: PolicyDef) -> Result<bool, PolicyError> {
        let key = (kind, def.vhost.clone(), def.name.clone());
        let policy = Policy::compile(def)
            .ok_or_else(|| PolicyError::Invalid("pattern should be regular expression".into()))?;
        let new = self.state.write().insert(key, Arc::new(policy)).is_none();
        self.changed();
        Ok(new)
    }

    /// Removes a policy; returns whether it existed.
    pub fn delete(&self, kind: PolicyKind, vhost: &str, name: &str) -> bool {
        let removed = self
            .state
            .write()
            .remove(&(kind, vhost.to_owned(), name.to_owned()))
            .is_some();
        if removed {
            self.changed();
        }
        removed
    }

    /// Removes every policy of a deleted vhost.
    pub fn delete_vhost(&self, vhost: &str) {
        let before = self.state.read().len();
        self.state.write().retain(|(_, v, _), _| v != vhost);
        if self.state.read().len() != before {
            self.changed();
        }
    }

    /// One policy.
    pub fn get(&self, kind: PolicyKind, vhost: &str, name: &str) -> Option<PolicyDef> {
        self.state
            .read()
            .get(&(kind, vhost.to_owned(), name.to_owned()))
            .map(|p| p.def.clone())
    }

    /// Policies of one kind, of one vhost or all, by vhost then name.
    pub fn list(&self, kind: PolicyKind, vhost: Option<&str>) -> Vec<PolicyDef> {
        self.state
            .read()
            .iter()
            .filter(|((k, v, _), _)| *k == kind && vhost.is_none_or(|only| v == only))
            .map(|(_, p)| p.def.clone())
            .collect()
    }

    /// One vhost's snapshot for matching.
    pub fn for_vhost(&self, vhost: &str) -> VHostPolicies {
        let state = self.state.read();
        let sorted = |kind: PolicyKind| {
            let mut list: Vec<Arc<Policy>> = state
                .iter()
                .filter(|((k, v, _), _)| *k == kind && v == vhost)
                .map(|(_, p)| p.clone())
                .collect();
            // Stable: equal priorities stay in name order.
            list.sort_by_key(|p| std::cmp::Reverse(p.def.priority));
            list
        };
        VHostPolicies {
            policies: sorted(PolicyKind::Policy),
            operator_policies: sorted(PolicyKind::Operator),
        }
    }

    /// Every policy, for the store and definitions export.
    pub fn export(&self) -> StoredPolicies {
        StoredPolicies {
            policies: self.list(PolicyKind::Policy, None),
            operator_policies: self.list(PolicyKind::Operator, None),
        }
    }

    /// Loads stored policies (at start), without calling the change hook.
    /// A stored policy whose pattern no longer compiles is skipped, logged.
    pub fn restore(&self, stored: &StoredPolicies) {
        let mut state = self.state.write();
        for (kind, list) in [
            (PolicyKind::Policy, &stored.policies),
            (PolicyKind::Operator, &stored.operator_policies),
        ] {
            for def in list {
                let key = (kind, def.vhost.clone(), def.name.clone());
                match Policy::compile(def.clone()) {
                    Some(p) => {
                        state.insert(key, Arc::new(p));
                    }
                    None => {
                        tracing::error!(policy = %def.name, vhost = %def.vhost, "stored policy has an invalid pattern; skipped")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(policies: &Policies, kind: PolicyKind, name: &str, body: Value) {
        let def = PolicyDef::parse(kind, "/", name, &body).expect("valid policy");
        policies.put(kind, def).expect("stored");
    }

    fn queue(name: &str) -> Target<'_> {
        Target::Queue {
            name,
            queue_type: "classic",
        }
    }

    #[test]
    fn the_highest_priority_match_applies_with_the_operator_policy() {
        let policies = Policies::default();
        put(
            &policies,
            PolicyKind::Policy,
            "low",
            json!({"pattern": "^q", "definition": {"message-ttl": 5}, "priority": 1}),
        );
        put(
            &policies,
            PolicyKind::Policy,
            "high",
            json!({"pattern": "^q\\.", "definition": {"max-length": 10}, "priority": 2}),
        );
        put(
            &policies,
            PolicyKind::Policy,
            "x",
            json!({"pattern": ".*", "definition": {"alternate-exchange": "ae"}, "apply-to": "exchanges", "priority": 9}),
        );
        put(
            &policies,
            PolicyKind::Operator,
            "cap",
            json!({"pattern": "", "definition": {"max-length": 3}, "apply-to": "queues"}),
        );
        let vhost = policies.for_vhost("/");
        let applied = vhost.applied(queue("q.1"));
        assert_eq!(applied.policy.as_deref(), Some("high"));
        assert_eq!(applied.operator_policy.as_deref(), Some("cap"));
        assert_eq!(applied.queue().max_length, Some(3));
        assert_eq!(vhost.applied(queue("q1")).policy.as_deref(), Some("low"));
        assert_eq!(vhost.applied(queue("other")).policy, None);
        let x = vhost.applied(Target::Exchange("e"));
        assert_eq!(x.alternate_exchange(), Some("ae"));
        assert_eq!(x.operator_policy, None);
        assert_eq!(
            policies.for_vhost("other").applied(queue("q.1")),
            Applied::default()
        );
    }

    #[test]
    fn apply_to_picks_queue_types() {
        let policies = Policies::default();
        put(
            &policies,
            PolicyKind::Policy,
            "quorum",
            json!({"pattern": "", "definition": {"delivery-limit": 3}, "apply-to": "quorum_queues"}),
        );
        let vhost = policies.for_vhost("/");
        assert_eq!(vhost.applied(queue("q")).policy, None);
        let quorum = Target::Queue {
            name: "q",
            queue_type: "quorum",
        };
        assert_eq!(vhost.applied(quorum).policy.as_deref(), Some("quorum"));
    }

    #[test]
    fn bodies_are_checked_as_rabbitmq_checks_them() {
        let parse = |body: Value| {
            PolicyDef::parse(PolicyKind::Policy, "/", "p", &body)
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(parse(json!({"definition": {}})), "[{key_missing,pattern}]");
        assert_eq!(parse(json!({"pattern": "x"})), "[{key_missing,definition}]");
        assert!(
            parse(json!({"pattern": "(", "definition": {"message-ttl": 1}})).starts_with(
                "Validation failed\n\npattern should be regular expression but is invalid"
            )
        );
        assert_eq!(
            parse(json!({"pattern": "x", "definition": {"message-ttl": 1}, "priority": "5"})),
            "Validation failed\n\npriority should be a number, actually was <<\"5\">>\n"
        );
        assert!(
            parse(json!({"pattern": "x", "definition": {"message-ttl": 1}, "apply-to": "bogus"}))
                .contains("apply-to 'bogus' unrecognised")
        );
    }

    #[test]
    fn changes_reach_the_hook_and_restore_round_trips() {
        let policies = Arc::new(Policies::default());
        let seen = Arc::new(Mutex::new(StoredPolicies::default()));
        {
            let seen = seen.clone();
            policies.on_change(Box::new(move |all| *seen.lock() = all.clone()));
        }
        put(
            &policies,
            PolicyKind::Operator,
            "cap",
            json!({"pattern": "", "definition": {"max-length": 3}}),
        );
        assert_eq!(seen.lock().operator_policies.len(), 1);
        let restored = Policies::default();
        restored.restore(&seen.lock());
        assert_eq!(restored.export(), policies.export());
        assert!(policies.delete(PolicyKind::Operator, "/", "cap"));
        assert!(seen.lock().operator_policies.is_empty());
    }
}
