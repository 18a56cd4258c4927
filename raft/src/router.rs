//! openraft's network for every group of a node, over the one shared [`Transport`].
//!
//! `openraft_multi::GroupNetworkAdapter` binds (target node, group) and calls this
//! [`GroupRouter`]; each call becomes one [`Request::Raft`] on the link to the target. Every
//! failure (cut link, no connection, timeout, the peer lacking the group) is reported as
//! `Unreachable`, so openraft backs off with [`Router::backoff`] instead of retrying hot.
//! The test fault hook, [`LinkPolicy`](crate::transport::policy::LinkPolicy), is applied by
//! the transport to every request, so it cuts Raft traffic and any later message kind alike.

use std::future::Future;
use std::io::Read;
use std::time::Duration;

use openraft::OptionalSend;
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft_multi::{GroupNetworkAdapter, GroupNetworkFactory, GroupRouter};

use crate::transport::wire::{RaftReply, RaftRpc, Request, Response};
use crate::transport::{Transport, TransportError};
use crate::types::{GroupId, NodeId, Snapshot, SnapshotData, Vote, Wr};

/// How long openraft waits between retries to an unreachable peer.
const RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// The largest chunk of a snapshot in one frame, so a snapshot of any size travels
/// between the other traffic of the link with bounded memory on both sides.
pub const SNAPSHOT_CHUNK: usize = 1 << 20;

/// How long the receiver may take to install a snapshot once its last chunk came (a deep
/// queue's bodies are decoded and paged to disk then).
const INSTALL_WITHIN: Duration = Duration::from_secs(120);

/// The shared router of a node: all groups, one transport.
#[derive(Clone)]
pub struct Router {
    transport: Transport,
}

/// Why a Raft RPC failed, before it becomes openraft's error.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The transport could not deliver it or get an answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The peer answered with an error (unknown group, Raft stopped, ...).
    #[error("node {node}: {message}")]
    Remote {
        /// The peer.
        node: NodeId,
        /// Its error text.
        message: String,
    },
    /// The peer answered with a reply of another kind.
    #[error("node {0} answered with an unexpected reply")]
    Mismatch(NodeId),
}

impl Router {
    /// A router over `transport`.
    pub fn new(transport: Transport) -> Self {
        Self { transport }
    }

    /// The transport under this router.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    async fn call(
        &self,
        target: NodeId,
        group: GroupId,
        rpc: RaftRpc,
        timeout: Duration,
    ) -> Result<RaftReply, RouteError> {
        let resp = self
            .transport
            .request(target, Request::Raft { group, rpc }, timeout)
            .await?;
        match resp {
            Response::Raft(Ok(reply)) => Ok(reply),
            Response::Raft(Err(message)) => Err(RouteError::Remote {
                node: target,
                message,
            }),
            _ => Err(RouteError::Mismatch(target)),
        }
    }
}

impl Router {
    /// Sends `snapshot`'s data in chunks of `chunk` bytes read from its file one at a
    /// time; each waits for the previous one's answer, the last for the install.
    async fn send_snapshot(
        &self,
        target: NodeId,
        group: GroupId,
        vote: Vote,
        snapshot: Snapshot,
        chunk: usize,
        ttl: Duration,
    ) -> Result<SnapshotResponse<Wr>, StreamingError<Wr>> {
        let total = snapshot.snapshot.len();
        let mut reader = snapshot.snapshot.reader();
        let mut offset = 0u64;
        loop {
            let n = usize::try_from(total - offset).map_or(chunk, |left| left.min(chunk));
            let mut data = vec![0u8; n];
            if let Err(e) = reader.read_exact(&mut data) {
                tracing::warn!(target, group, error = %e, "cannot read the snapshot to send");
                return Err(StreamingError::Unreachable(Unreachable::new(&e)));
            }
            let last = offset + n as u64 == total;
            let rpc = RaftRpc::Snapshot {
                vote,
                meta: snapshot.meta.clone(),
                offset,
                data: data.into(),
                last,
            };
            let timeout = if last { INSTALL_WITHIN.max(ttl) } else { ttl };
            let outcome = self.call(target, group, rpc, timeout).await;
            if last {
                return expect(target, outcome, |r| match r {
                    RaftReply::Snapshot(r) => Some(r),
                    _ => None,
                });
            }
            expect::<(), StreamingError<Wr>>(target, outcome, |r| match r {
                RaftReply::SnapshotChunk => Some(()),
                _ => None,
            })?;
            offset += n as u64;
        }
    }
}

/// Picks the expected reply out of a call's outcome; every failure becomes `Unreachable`.
fn expect<T, E>(
    target: NodeId,
    outcome: Result<RaftReply, RouteError>,
    pick: impl FnOnce(RaftReply) -> Option<T>,
) -> Result<T, E>
where
    E: From<Unreachable<Wr>>,
{
    let e = match outcome.map(pick) {
        Ok(Some(reply)) => return Ok(reply),
        Ok(None) => RouteError::Mismatch(target),
        Err(e) => e,
    };
    tracing::debug!(target, error = %e, "raft rpc failed");
    Err(E::from(Unreachable::new(&e)))
}

impl GroupRouter<Wr, GroupId> for Router {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &self,
        target: NodeId,
        group_id: GroupId,
        rpc: AppendEntriesRequest<Wr>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<Wr>, RPCError<Wr>> {
        let outcome = self
            .call(
                target,
                group_id,
                RaftRpc::AppendEntries(rpc),
                option.hard_ttl(),
            )
            .await;
        expect(target, outcome, |r| match r {
            RaftReply::AppendEntries(r) => Some(r),
            _ => None,
        })
    }

    async fn vote(
        &self,
        target: NodeId,
        group_id: GroupId,
        rpc: VoteRequest<Wr>,
        option: RPCOption,
    ) -> Result<VoteResponse<Wr>, RPCError<Wr>> {
        let outcome = self
            .call(target, group_id, RaftRpc::Vote(rpc), option.hard_ttl())
            .await;
        expect(target, outcome, |r| match r {
            RaftReply::Vote(r) => Some(r),
            _ => None,
        })
    }

    async fn pre_vote(
        &self,
        target: NodeId,
        group_id: GroupId,
        rpc: VoteRequest<Wr>,
        option: RPCOption,
    ) -> Result<VoteResponse<Wr>, RPCError<Wr>> {
        let outcome = self
            .call(target, group_id, RaftRpc::PreVote(rpc), option.hard_ttl())
            .await;
        expect(target, outcome, |r| match r {
            RaftReply::Vote(r) => Some(r),
            _ => None,
        })
    }

    async fn full_snapshot(
        &self,
        target: NodeId,
        group_id: GroupId,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<Wr>, StreamingError<Wr>> {
        let chunk = option
            .snapshot_chunk_size()
            .unwrap_or(SNAPSHOT_CHUNK)
            .clamp(1, SNAPSHOT_CHUNK);
        let send = self.send_snapshot(target, group_id, vote, snapshot, chunk, option.hard_ttl());
        tokio::select! {
            sent = send => sent,
            closed = cancel => Err(StreamingError::Closed(closed)),
        }
    }

    async fn transfer_leader(
        &self,
        target: NodeId,
        group_id: GroupId,
        req: TransferLeaderRequest<Wr>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<Wr>, RPCError<Wr>> {
        let outcome = self
            .call(
                target,
                group_id,
                RaftRpc::TransferLeader(req),
                option.hard_ttl(),
            )
            .await;
        expect(target, outcome, |r| match r {
            RaftReply::TransferLeader(r) => Some(r),
            _ => None,
        })
    }

    fn backoff(&self) -> Option<Backoff> {
        Some(Backoff::new(std::iter::repeat(RETRY_BACKOFF)))
    }
}

/// The per-group network factory openraft is given: the shared router plus the group id.
pub type NetworkFactory = GroupNetworkFactory<Router, GroupId>;

impl RaftNetworkFactory<Wr> for NetworkFactory {
    type Network = GroupNetworkAdapter<Wr, GroupId, Router>;

    async fn new_client(&mut self, target: NodeId, node: &openraft::BasicNode) -> Self::Network {
        // The membership carries each node's cluster address: learn it (dials if we are lower).
        self.factory.transport().add_peer(target, node.addr.clone());
        GroupNetworkAdapter::new(self.factory.clone(), target, self.group_id)
    }
}
