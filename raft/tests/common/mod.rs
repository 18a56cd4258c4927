//! What the multi-node tests share: polling with a cap, and the command they write.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use warren_raft::Command;

/// The cap of every wait: generous, so slow CI does not flake; polls end as soon as true.
pub const CAP: Duration = Duration::from_secs(10);

/// Polls `probe` every 25 ms until it returns `Some`, failing with `what` after [`CAP`].
pub async fn eventually<F, Fut, T>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + CAP;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {CAP:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The command the tests replicate.
pub fn noop() -> Command {
    Command {
        payload: Bytes::from_static(b"noop"),
    }
}
