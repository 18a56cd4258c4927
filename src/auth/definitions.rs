//! The auth part of RabbitMQ's definitions JSON, as values: users (password
//! hash and tags), vhost records, permissions and vhost limits, and why a
//! change to them is refused. [`super::registry::Registry`] holds them live.

use serde::{Deserialize, Deserializer, Serialize};

use super::hashing::{self, HashError};
use super::limits::VHostLimitsDef;
use super::pattern::{BadPattern, Compiled};

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
    pub(super) fn compile(&self) -> Result<Compiled, BadPattern> {
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
