//! The openraft settings of each kind of group (docs/cluster-design.md section 2).
//!
//! The metadata group is small and latency matters (a declare waits for it): short
//! heartbeats. Quorum queue groups are many: slower heartbeats and elections so a thousand
//! of them on a 2-core box do not flood it, and snapshots only when the queue asks.
//!
//! Neither restores a leader's leadership at restart (openraft's default does, in the same
//! term): the leader sends entries before its own WAL has fsynced them, so a leader killed
//! before that fsync would come back with a shorter log and append different entries under
//! log ids its followers already hold, which they never overwrite (found by the fault test:
//! replicas applying different entries at the same index, and a confirmed publish only the
//! restarted leader had). A restarted node must win an election in a new term.

use std::sync::Arc;

use openraft::{Config, ConfigError, SnapshotPolicy};

/// The kinds of Raft group a node hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    /// Group 0: definitions and nodes.
    Metadata,
    /// One quorum queue.
    Queue,
}

impl GroupKind {
    /// The validated openraft config for this kind in cluster `cluster_name`.
    pub fn config(self, cluster_name: &str) -> Result<Arc<Config>, ConfigError> {
        let config = match self {
            GroupKind::Metadata => Config {
                cluster_name: cluster_name.to_string(),
                heartbeat_interval: 150,
                election_timeout_min: 1000,
                election_timeout_max: 2000,
                snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
                max_in_snapshot_log_to_keep: 1000,
                enable_pre_vote: Some(true),
                enable_leader_restore: Some(false),
                ..Default::default()
            },
            GroupKind::Queue => Config {
                cluster_name: cluster_name.to_string(),
                heartbeat_interval: 500,
                election_timeout_min: 2500,
                election_timeout_max: 5000,
                snapshot_policy: SnapshotPolicy::Never,
                max_payload_entries: 512,
                max_in_snapshot_log_to_keep: 0,
                purge_batch_size: 256,
                enable_pre_vote: Some(true),
                enable_leader_restore: Some(false),
                ..Default::default()
            },
        };
        Ok(Arc::new(config.validate()?))
    }
}

#[cfg(test)]
mod tests {
    use super::GroupKind;

    #[test]
    fn both_kinds_validate() {
        assert!(GroupKind::Metadata.config("warren").is_ok());
        assert!(GroupKind::Queue.config("warren").is_ok());
    }

    #[test]
    fn no_kind_restores_a_leader_without_an_election() {
        for kind in [GroupKind::Metadata, GroupKind::Queue] {
            let config = kind.config("warren").expect("valid");
            assert_eq!(config.enable_leader_restore, Some(false), "{kind:?}");
        }
    }
}
