//! Which links may carry traffic: the fault hook of tests.
//!
//! Production uses [`AllowAll`]; the three-node tests share one [`CutLinks`] between nodes and
//! cut or heal links between chosen nodes while everything runs; process tests set
//! [`FAULTS_ENV`] and drive a [`FaultFile`] from outside (see [`from_env`]). The transport
//! asks the policy before every request it sends, so a cut fails the request at once (as a
//! refused connection would) instead of waiting for a timeout, and every message kind is cut
//! alike; a frame already on the wire when its link is cut (a request or a response) closes
//! the connection, as a broken TCP connection would, failing what was in flight on it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::types::NodeId;

/// What happens to a message from one node to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it.
    Pass,
    /// Fail it at once, as an unreachable peer.
    Drop,
    /// Deliver it after this delay.
    Delay(Duration),
}

/// The environment variable naming a [`FaultFile`] (tests only; unset in production).
pub const FAULTS_ENV: &str = "WARREN_TEST_LINK_FAULTS";

/// How often a [`FaultFile`] is read again, at most.
pub const FAULTS_REREAD: Duration = Duration::from_millis(150);

/// Decides the fate of each message sent on a link.
pub trait LinkPolicy: Send + Sync + 'static {
    /// The verdict for a message from `from` to `to`.
    fn verdict(&self, from: NodeId, to: NodeId) -> Verdict;
}

/// Every message passes (production).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl LinkPolicy for AllowAll {
    fn verdict(&self, _from: NodeId, _to: NodeId) -> Verdict {
        Verdict::Pass
    }
}

/// A set of cut links (both directions), for tests.
#[derive(Debug, Default)]
pub struct CutLinks {
    cut: Mutex<HashSet<(NodeId, NodeId)>>,
}

impl CutLinks {
    /// No link is cut.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts the link between `a` and `b` in both directions.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        let mut cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        cut.insert((a, b));
        cut.insert((b, a));
    }

    /// Cuts every link between `node` and `others`.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for &o in others {
            if o != node {
                self.cut(node, o);
            }
        }
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl LinkPolicy for CutLinks {
    fn verdict(&self, from: NodeId, to: NodeId) -> Verdict {
        let cut = self.cut.lock().unwrap_or_else(|p| p.into_inner());
        if cut.contains(&(from, to)) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }
}

/// The policy of a process: a [`FaultFile`] when [`FAULTS_ENV`] names one, else [`AllowAll`].
pub fn from_env() -> Arc<dyn LinkPolicy> {
    match std::env::var_os(FAULTS_ENV) {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            tracing::warn!(path = %path.display(),
                "test hook: cluster links obey the fault file ({FAULTS_ENV})");
            Arc::new(FaultFile::new(path))
        }
        _ => Arc::new(AllowAll),
    }
}

/// A fault file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault file line {line}: {why}")]
pub struct FaultsError {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong with it.
    pub why: String,
}

/// The cut links a fault file lists.
///
/// One fault per line, `#` starts a comment, node ids are the Raft ids (`id = ...` in
/// `<data_dir>/raft/node`):
/// - `isolate ID`: every link to and from node ID;
/// - `cut A B`: the link between A and B, both directions;
/// - `drop A B`: messages from A to B only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    isolated: HashSet<NodeId>,
    dropped: HashSet<(NodeId, NodeId)>,
}

impl Faults {
    /// Parses a fault file's text.
    pub fn parse(text: &str) -> Result<Self, FaultsError> {
        let mut faults = Self::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default();
            let words: Vec<&str> = line.split_whitespace().collect();
            let err = |why: String| FaultsError { line: n + 1, why };
            let ids = |words: &[&str]| -> Result<Vec<NodeId>, FaultsError> {
                words
                    .iter()
                    .map(|w| {
                        w.parse::<NodeId>()
                            .map_err(|_| err(format!("{w:?} is not a node id")))
                    })
                    .collect()
            };
            match words.as_slice() {
                [] => {}
                ["isolate", rest @ ..] if rest.len() == 1 => {
                    faults.isolated.extend(ids(rest)?);
                }
                ["cut", rest @ ..] if rest.len() == 2 => {
                    let v = ids(rest)?;
                    faults.dropped.insert((v[0], v[1]));
                    faults.dropped.insert((v[1], v[0]));
                }
                ["drop", rest @ ..] if rest.len() == 2 => {
                    let v = ids(rest)?;
                    faults.dropped.insert((v[0], v[1]));
                }
                _ => {
                    return Err(err(format!(
                        "{:?} is not `isolate ID`, `cut A B` or `drop A B`",
                        line.trim()
                    )));
                }
            }
        }
        Ok(faults)
    }

    /// No fault at all.
    pub fn is_empty(&self) -> bool {
        self.isolated.is_empty() && self.dropped.is_empty()
    }

    /// Whether messages from `from` to `to` are cut.
    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.dropped.contains(&(from, to))
    }
}

/// Cut links read from a file that a test harness rewrites (tests only).
///
/// The file is read again at most every [`FAULTS_REREAD`], by the first verdict after that
/// time: the hot path is an atomic load, plus a read lock when some fault is in force. A
/// missing file means no fault; a file that does not parse keeps the faults in force (and
/// is logged once), so a half-written file never heals a cut by accident.
#[derive(Debug)]
pub struct FaultFile {
    path: PathBuf,
    born: Instant,
    /// Milliseconds since `born` after which the file is read again.
    next_read: AtomicU64,
    /// Whether `faults` holds any fault (skips the lock when not).
    any: AtomicBool,
    faults: RwLock<Faults>,
    last_error: Mutex<Option<FaultsError>>,
}

impl FaultFile {
    /// Obeys the file at `path` (read at the first verdict).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            born: Instant::now(),
            next_read: AtomicU64::new(0),
            any: AtomicBool::new(false),
            faults: RwLock::new(Faults::default()),
            last_error: Mutex::new(None),
        }
    }

    /// Reads the file again if the last read is older than [`FAULTS_REREAD`].
    fn refresh(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = self.next_read.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now.saturating_add(u64::try_from(FAULTS_REREAD.as_millis()).unwrap_or(150));
        // One caller reads; the others keep the faults in force meanwhile.
        if self
            .next_read
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let parsed = match std::fs::read_to_string(&self.path) {
            Ok(text) => Faults::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Faults::default()),
            Err(e) => Err(FaultsError {
                line: 0,
                why: e.to_string(),
            }),
        };
        let mut last_error = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match parsed {
            Ok(faults) => {
                *last_error = None;
                let mut current = self.faults.write().unwrap_or_else(|p| p.into_inner());
                if *current != faults {
                    tracing::warn!(path = %self.path.display(), ?faults, "test hook: link faults changed");
                    self.any.store(!faults.is_empty(), Ordering::Release);
                    *current = faults;
                }
            }
            Err(e) => {
                if last_error.as_ref() != Some(&e) {
                    tracing::warn!(path = %self.path.display(), error = %e,
                        "test hook: fault file unreadable; faults in force kept");
                    *last_error = Some(e);
                }
            }
        }
    }
}

impl LinkPolicy for FaultFile {
    fn verdict(&self, from: NodeId, to: NodeId) -> Verdict {
        self.refresh();
        if !self.any.load(Ordering::Acquire) {
            return Verdict::Pass;
        }
        let faults = self.faults.read().unwrap_or_else(|p| p.into_inner());
        if faults.blocks(from, to) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lines_parse_and_block_what_they_say() {
        let f = Faults::parse("# chaos\nisolate 7\n\ncut 1 2  # both ways\ndrop 3 4\n")
            .expect("parses");
        assert!(f.blocks(7, 1) && f.blocks(1, 7), "isolated both ways");
        assert!(f.blocks(1, 2) && f.blocks(2, 1), "cut both ways");
        assert!(f.blocks(3, 4) && !f.blocks(4, 3), "drop one way");
        assert!(!f.blocks(1, 3) && !f.blocks(5, 6));
        assert!(Faults::parse("").expect("empty").is_empty());
        assert!(Faults::parse("  # nothing\n").expect("comment").is_empty());
    }

    #[test]
    fn bad_lines_are_errors_not_panics() {
        for bad in [
            "isolate",
            "isolate x",
            "cut 1",
            "cut 1 2 3",
            "partition 1",
            "drop -1 2",
        ] {
            let e = Faults::parse(&format!("isolate 1\n{bad}\n")).expect_err(bad);
            assert_eq!(e.line, 2, "{bad}");
        }
    }

    #[test]
    fn the_file_is_obeyed_reread_and_a_bad_one_keeps_the_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("faults");
        let policy = FaultFile::new(&path);
        assert_eq!(policy.verdict(1, 2), Verdict::Pass, "no file, no fault");

        std::fs::write(&path, "isolate 2\n").expect("write");
        std::thread::sleep(FAULTS_REREAD + Duration::from_millis(20));
        assert_eq!(policy.verdict(1, 2), Verdict::Drop);
        assert_eq!(policy.verdict(2, 3), Verdict::Drop);
        assert_eq!(policy.verdict(1, 3), Verdict::Pass);

        std::fs::write(&path, "isolate\n").expect("write");
        std::thread::sleep(FAULTS_REREAD + Duration::from_millis(20));
        assert_eq!(
            policy.verdict(2, 1),
            Verdict::Drop,
            "a bad file keeps the cut"
        );

        std::fs::write(&path, "").expect("write");
        std::thread::sleep(FAULTS_REREAD + Duration::from_millis(20));
        assert_eq!(policy.verdict(1, 2), Verdict::Pass, "healed");
    }
}
