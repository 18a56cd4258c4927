//! The node file `<data_dir>/raft/node`: this node's id, name and cluster, made at first
//! start and kept (docs/cluster-design.md section 4).
//!
//! The id is a random non-zero `u64`; the name is for people. Starting with another name
//! than the one on file is refused (renaming a node is unsupported, as in RabbitMQ).

use std::io;
use std::path::Path;

/// What the node file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The node's Raft id.
    pub id: u64,
    /// The node's name (`warren@host`).
    pub name: String,
    /// The cluster's name.
    pub cluster: String,
}

impl Identity {
    fn encode(&self) -> String {
        format!(
            "id = {}\nname = {}\ncluster = {}\n",
            self.id, self.name, self.cluster
        )
    }

    fn decode(text: &str) -> Result<Self, String> {
        let mut id = None;
        let mut name = None;
        let mut cluster = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once(" = ")
                .ok_or_else(|| format!("line {line:?} is not `key = value`"))?;
            match key {
                "id" => {
                    id = Some(
                        value
                            .parse::<u64>()
                            .map_err(|_| format!("id {value:?} is not a number"))?,
                    )
                }
                "name" => name = Some(value.to_owned()),
                "cluster" => cluster = Some(value.to_owned()),
                _ => {}
            }
        }
        match (id, name, cluster) {
            (Some(id), Some(name), Some(cluster)) if id != 0 => Ok(Self { id, name, cluster }),
            _ => Err("id, name and cluster are all needed (id not 0)".into()),
        }
    }

    /// Reads the node file in `raft_dir`, or makes one for `name` with a fresh id; refuses a
    /// file of another name.
    pub fn load_or_create(raft_dir: &Path, name: &str, cluster: &str) -> io::Result<Self> {
        let path = raft_dir.join("node");
        let bad = |why: String| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {why}", path.display()),
            )
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let found = Self::decode(&text).map_err(bad)?;
                if found.name != name {
                    return Err(bad(format!(
                        "this data directory belongs to node {:?}, not {name:?} \
                         (renaming a node is unsupported)",
                        found.name
                    )));
                }
                Ok(found)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(raft_dir)?;
                let made = Self {
                    id: fastrand::u64(1..),
                    name: name.to_owned(),
                    cluster: cluster.to_owned(),
                };
                let tmp = raft_dir.join("node.tmp");
                std::fs::write(&tmp, made.encode())?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(raft_dir)?.sync_all()?;
                Ok(made)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = Identity::load_or_create(dir.path(), "warren@a", "warren").expect("made");
        assert_ne!(first.id, 0);
        let again = Identity::load_or_create(dir.path(), "warren@a", "warren").expect("read");
        assert_eq!(first, again);
        let renamed = Identity::load_or_create(dir.path(), "warren@b", "warren");
        assert!(renamed.is_err(), "another name is refused");
    }

    #[test]
    fn damaged_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("node"), "id = x\n").expect("write");
        assert!(Identity::load_or_create(dir.path(), "warren@a", "warren").is_err());
        std::fs::write(dir.path().join("node"), "garbage").expect("write");
        assert!(Identity::load_or_create(dir.path(), "warren@a", "warren").is_err());
    }
}
