//! Which links may carry traffic, and how late: the fault hook of tests.
//!
//! Production uses [`AllowAll`]; the three-node tests share one [`CutLinks`] between nodes and
//! cut or heal links between chosen nodes while everything runs; process tests set
//! [`FAULTS_ENV`] and drive a [`FaultFile`] from outside (see [`from_env`]). The transport
//! asks the policy before every request it sends, so a cut fails the request at once (as a
//! refused connection would) instead of waiting for a timeout, and every message kind is cut
//! alike; a frame already on the wire when its link is cut (a request or a response) closes
//! the connection, as a broken TCP connection would, failing what was in flight on it.
//!
//! A policy may also shape a live link one way ([`LinkPolicy::shape`]): delay its frames
//! (fixed or jittered, per-link order kept, no reordering) or lose some or all of them. A
//! loss is shown to the transport as TCP shows it to an application, never as a missing
//! frame in the middle of a connection: a lost frame arrives late (a retransmission), the
//! frames behind it wait, and a direction that loses everything goes silent until the
//! sending end gives up on the connection ([`LOSS_TIMEOUT`], as a TCP user timeout would);
//! no new connection forms meanwhile, a handshake needing both ways. See
//! `transport/shaped.rs`. [`AllowAll`] shapes nothing and the transport then keeps its
//! plain writer, so production pays nothing for this.
//!
//! The fault file's lines (one per line, `#` starts a comment, ids are Raft ids, as in
//! `id = ...` of `<data_dir>/raft/node`):
//! - `isolate ID`: every link to and from node ID is cut (refused, closed at once);
//! - `cut A B`: the link between A and B is cut, both directions;
//! - `drop A B`: messages from A to B fail at once; a connection needs both ways, so the
//!   pair's connection is refused and closed too (an abrupt one-way cut);
//! - `loss A B`: one-way loss, everything from A to B is lost while B to A flows: A's
//!   frames wait (TCP retransmitting) and after [`LOSS_TIMEOUT`] A closes the connection;
//!   no new one forms until the line goes. `loss A B FRACTION` (`0.2` or `20%`) loses that
//!   fraction of A's writes, each lost one late by a retransmission timeout (200 ms,
//!   doubling while it keeps being lost, so a long run of losses closes the link too) and
//!   holding back the frames behind it;
//! - `delay A B MS` or `delay A B MIN-MAX`: every frame from A to B is held back MS
//!   milliseconds, or uniformly between MIN and MAX, never overtaking the one before it.
//!
//! `loss` and `delay` are one-way; write the line twice for both ways. A `loss` and a
//! `delay` of the same direction add up; a later line of the same kind replaces an earlier.

use std::collections::{HashMap, HashSet};
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

/// How long the frame at the head of a lossy direction may stay lost before the sending end
/// closes the connection (a TCP user timeout; Linux's default retries for minutes, clusters
/// that care set seconds).
pub const LOSS_TIMEOUT: Duration = Duration::from_secs(3);

/// The first retransmission timeout of a lost frame (Linux's minimum RTO); it doubles while
/// the frame keeps being lost, up to [`RETRANSMIT_MAX`].
pub const RETRANSMIT_FIRST: Duration = Duration::from_millis(200);

/// The longest wait between two sends of a lost frame (so a heal is seen within it).
pub const RETRANSMIT_MAX: Duration = Duration::from_secs(1);

/// The longest `delay` a fault file may ask for (a typo must not stall a test for hours).
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// How frames on a live connection from one node to another fare (tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// Millionths of the frames that are lost (each then late by a retransmission);
    /// [`Shape::ALL`] loses every one.
    pub loss_ppm: u32,
    /// The least delay of every frame.
    pub delay_min: Duration,
    /// The most delay of a frame (uniform between the two).
    pub delay_max: Duration,
}

impl Shape {
    /// Every frame lost: `loss_ppm` of a one-way loss.
    pub const ALL: u32 = 1_000_000;

    /// Nothing delayed or lost.
    pub const CLEAR: Shape = Shape {
        loss_ppm: 0,
        delay_min: Duration::ZERO,
        delay_max: Duration::ZERO,
    };

    /// Whether frames pass untouched.
    pub fn is_clear(&self) -> bool {
        *self == Self::CLEAR
    }

    /// Whether every frame is lost (the direction is silent).
    pub fn loses_all(&self) -> bool {
        self.loss_ppm >= Self::ALL
    }
}

/// Decides the fate of each message sent on a link.
pub trait LinkPolicy: Send + Sync + 'static {
    /// The verdict for a message from `from` to `to`.
    fn verdict(&self, from: NodeId, to: NodeId) -> Verdict;

    /// Whether this policy may ever shape a live link; when not, the transport writes its
    /// links without asking [`LinkPolicy::shape`] (the production path).
    fn shapes_links(&self) -> bool {
        false
    }

    /// How frames from `from` to `to` fare on a live connection right now.
    fn shape(&self, _from: NodeId, _to: NodeId) -> Shape {
        Shape::CLEAR
    }
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

/// The faults a fault file lists (its lines: see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    isolated: HashSet<NodeId>,
    dropped: HashSet<(NodeId, NodeId)>,
    shaped: HashMap<(NodeId, NodeId), Shape>,
}

/// What each kind of line looks like, for errors.
const LINE_FORMS: &str =
    "`isolate ID`, `cut A B`, `drop A B`, `loss A B [FRACTION]` or `delay A B MS[-MS]`";

impl Faults {
    /// Parses a fault file's text.
    pub fn parse(text: &str) -> Result<Self, FaultsError> {
        let mut faults = Self::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or_default();
            let words: Vec<&str> = line.split_whitespace().collect();
            let err = |why: String| FaultsError { line: n + 1, why };
            let id = |w: &str| -> Result<NodeId, FaultsError> {
                w.parse::<NodeId>()
                    .map_err(|_| err(format!("{w:?} is not a node id")))
            };
            match words.as_slice() {
                [] => {}
                ["isolate", a] => {
                    faults.isolated.insert(id(a)?);
                }
                ["cut", a, b] => {
                    let (a, b) = (id(a)?, id(b)?);
                    faults.dropped.insert((a, b));
                    faults.dropped.insert((b, a));
                }
                ["drop", a, b] => {
                    faults.dropped.insert((id(a)?, id(b)?));
                }
                ["loss", a, b, rest @ ..] if rest.len() <= 1 => {
                    let ppm = match rest.first() {
                        None => Shape::ALL,
                        Some(w) => fraction_ppm(w).ok_or_else(|| {
                            err(format!(
                                "{w:?} is not a fraction above 0, up to 1 (or 100%)"
                            ))
                        })?,
                    };
                    faults.shaped.entry((id(a)?, id(b)?)).or_default().loss_ppm = ppm;
                }
                ["delay", a, b, ms] => {
                    let (min, max) = delay_range(ms).ok_or_else(|| {
                        err(format!(
                            "{ms:?} is not MS or MIN-MAX milliseconds (MIN <= MAX <= {})",
                            MAX_DELAY.as_millis()
                        ))
                    })?;
                    let shape = faults.shaped.entry((id(a)?, id(b)?)).or_default();
                    shape.delay_min = min;
                    shape.delay_max = max;
                }
                _ => {
                    return Err(err(format!("{:?} is not {LINE_FORMS}", line.trim())));
                }
            }
        }
        Ok(faults)
    }

    /// No fault at all.
    pub fn is_empty(&self) -> bool {
        self.isolated.is_empty() && self.dropped.is_empty() && self.shaped.is_empty()
    }

    /// Whether messages from `from` to `to` are cut.
    pub fn blocks(&self, from: NodeId, to: NodeId) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.dropped.contains(&(from, to))
    }

    /// How frames from `from` to `to` fare on a live connection.
    pub fn shape(&self, from: NodeId, to: NodeId) -> Shape {
        self.shaped.get(&(from, to)).copied().unwrap_or_default()
    }
}

/// `0.25` or `25%` as millionths, for a fraction in (0, 1].
fn fraction_ppm(word: &str) -> Option<u32> {
    let (number, scale) = match word.strip_suffix('%') {
        Some(pct) => (pct, 100.0),
        None => (word, 1.0),
    };
    let f = number.parse::<f64>().ok()? / scale;
    // NaN fails both comparisons.
    if f > 0.0 && f <= 1.0 {
        // In (0, 1_000_000], so the cast neither wraps nor saturates.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let ppm = (f * f64::from(Shape::ALL)).round() as u32;
        Some(ppm.max(1))
    } else {
        None
    }
}

/// `MS` or `MIN-MAX` milliseconds, at most [`MAX_DELAY`].
fn delay_range(word: &str) -> Option<(Duration, Duration)> {
    let (min, max) = match word.split_once('-') {
        Some((min, max)) => (min.parse::<u64>().ok()?, max.parse::<u64>().ok()?),
        None => {
            let ms = word.parse::<u64>().ok()?;
            (ms, ms)
        }
    };
    let (min, max) = (Duration::from_millis(min), Duration::from_millis(max));
    (min <= max && max <= MAX_DELAY).then_some((min, max))
}

/// Faults read from a file that a test harness rewrites (tests only).
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

    fn shapes_links(&self) -> bool {
        true
    }

    fn shape(&self, from: NodeId, to: NodeId) -> Shape {
        self.refresh();
        if !self.any.load(Ordering::Acquire) {
            return Shape::CLEAR;
        }
        self.faults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .shape(from, to)
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
            "loss 1",
            "loss 1 2 0",
            "loss 1 2 1.5",
            "loss 1 2 150%",
            "loss 1 2 NaN",
            "loss 1 2 half",
            "loss 1 2 0.5 0.5",
            "delay 1 2",
            "delay 1 2 -5",
            "delay 1 2 500-50",
            "delay 1 2 60001",
            "delay 1 2 10ms",
        ] {
            let e = Faults::parse(&format!("isolate 1\n{bad}\n")).expect_err(bad);
            assert_eq!(e.line, 2, "{bad}");
        }
    }

    #[test]
    fn loss_and_delay_lines_shape_one_direction() {
        let f =
            Faults::parse("loss 1 2\nloss 3 1 0.25\nloss 3 2 5%\ndelay 2 3 50\ndelay 3 1 50-500\n")
                .expect("parses");
        assert!(!f.is_empty());
        assert!(f.shape(1, 2).loses_all(), "loss without a fraction: all");
        assert!(f.shape(2, 1).is_clear(), "the other way flows");
        assert!(!f.blocks(1, 2), "a loss is not a cut");
        assert_eq!(f.shape(3, 1).loss_ppm, 250_000);
        assert_eq!(f.shape(3, 2).loss_ppm, 50_000);
        assert!(!f.shape(3, 1).loses_all());
        assert_eq!(f.shape(2, 3).delay_min, Duration::from_millis(50));
        assert_eq!(f.shape(2, 3).delay_max, Duration::from_millis(50));
        assert_eq!(f.shape(2, 3).loss_ppm, 0);
        let both = f.shape(3, 1);
        assert_eq!(
            (both.delay_min, both.delay_max),
            (Duration::from_millis(50), Duration::from_millis(500)),
            "a loss and a delay of one direction add up"
        );
        assert!(f.shape(3, 2).delay_max.is_zero());
        assert_eq!(
            Faults::parse("loss 1 2 1\n")
                .expect("1")
                .shape(1, 2)
                .loss_ppm,
            Shape::ALL
        );
        assert!(
            Faults::parse("loss 1 2 0.0000001\n")
                .expect("tiny")
                .shape(1, 2)
                .loss_ppm
                > 0,
            "a tiny fraction still loses"
        );
    }

    #[test]
    fn the_old_lines_still_mean_what_they_meant() {
        // What tests/cluster/nodes.rs and interop/cluster/harness.sh write.
        let f = Faults::parse("isolate 5\n").expect("parses");
        assert!(f.blocks(5, 6) && f.blocks(6, 5));
        assert!(f.shape(5, 6).is_clear() && f.shape(6, 5).is_clear());
        assert!(AllowAll.shape(1, 2).is_clear() && !AllowAll.shapes_links());
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

        assert!(policy.shapes_links());
        std::fs::write(&path, "loss 1 2\ndelay 2 1 10-20\n").expect("write");
        std::thread::sleep(FAULTS_REREAD + Duration::from_millis(20));
        assert!(policy.shape(1, 2).loses_all());
        assert_eq!(policy.shape(2, 1).delay_max, Duration::from_millis(20));
        assert_eq!(policy.verdict(1, 2), Verdict::Pass, "a loss is no cut");

        std::fs::remove_file(&path).expect("remove");
        std::thread::sleep(FAULTS_REREAD + Duration::from_millis(20));
        assert!(policy.shape(1, 2).is_clear(), "no file, no fault");
    }
}
