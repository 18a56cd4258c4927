//! The messages on a cluster link and their encoding.
//!
//! Each frame of the `LengthDelimitedCodec` stream is one postcard-encoded [`Frame`]: a
//! request id and a body. Postcard is positional, so these enums may only grow at the end
//! (a new variant last), and [`PROTOCOL_VERSION`] changes when a layout does.

use serde::{Deserialize, Serialize};

use super::auth::{Nonce, Proof};

use crate::types::{Command, GroupId, NodeId, Reply, SnapshotMeta, Vote, Wr};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};

/// The wire protocol version carried in [`Hello`]; peers with another version are refused.
/// 3: the Hello carries a nonce and whether its sender proves the cluster secret
/// ([`Body::Proof`]). 4: snapshots travel in chunks ([`RaftRpc::Snapshot`]).
pub const PROTOCOL_VERSION: u32 = 4;

/// The largest frame accepted (snapshots travel in chunks of at most 1 MiB).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// One frame on a link.
#[derive(Debug, Serialize, Deserialize)]
pub struct Frame {
    /// Matches a response to its request; 0 for [`Body::Hello`].
    pub id: u64,
    /// What the frame carries.
    pub body: Body,
}

/// The kinds of frame.
#[derive(Debug, Serialize, Deserialize)]
pub enum Body {
    /// The first frame each side sends.
    Hello(Hello),
    /// A request; the peer answers with a [`Body::Response`] of the same id.
    Request(Request),
    /// The answer to the request with the frame's id.
    Response(Response),
    /// Proof of the cluster secret, right after the Hellos (see `transport::auth`).
    Proof(Proof),
}

/// Identifies the sending node on a new link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Both sides must agree on it.
    pub cluster_name: String,
    /// The sender's node id.
    pub node_id: NodeId,
    /// The sender's cluster listen address (`host:port`), so the acceptor learns it.
    pub addr: String,
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u32,
    /// A one-request connection (join, leave) that is never the pair's link, so any id may
    /// dial it.
    pub transient: bool,
    /// A fresh random nonce, which the peer's proof of the cluster secret binds.
    pub nonce: Nonce,
    /// Whether the sender has a cluster secret and sends a [`Body::Proof`] next.
    pub proves: bool,
}

/// A request to a peer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// A Raft RPC for one group.
    Raft {
        /// The target group on the peer.
        group: GroupId,
        /// The RPC.
        rpc: RaftRpc,
    },
    /// A liveness probe, answered with [`Response::Pong`].
    Ping,
    /// A node asks to join the metadata group (answered with [`Response::Join`]).
    Join {
        /// The joining node's id.
        node_id: NodeId,
        /// Its cluster listen address.
        addr: String,
        /// The application's announcement, appended to group 0 once the node is a member.
        announce: Command,
    },
    /// A client write forwarded to the group's leader (answered with [`Response::Write`]).
    Write {
        /// The group to append to.
        group: GroupId,
        /// The application command.
        command: Command,
    },
    /// An application message for the node's application handler (answered with
    /// [`Response::App`]); requests on one link are handed to it in the order sent.
    App(bytes::Bytes),
    /// A change to a group, for its leader (answered with [`Response::Manage`]).
    Manage {
        /// The group.
        group: GroupId,
        /// The change.
        change: crate::manage::GroupChange,
    },
    /// A node asks to leave the metadata group (answered with [`Response::Leave`]).
    Leave {
        /// The leaving node's id.
        node_id: NodeId,
        /// The application's farewell, appended to group 0 before the node is removed.
        announce: Command,
    },
}

/// The answer to [`Request::Join`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReply {
    /// The leader added the node as a learner (promotion and announcement follow); these are
    /// the members to connect to, `(id, cluster addr)`.
    Accepted {
        /// Every member of group 0, the leader included.
        members: Vec<(NodeId, String)>,
    },
    /// This node is not the leader; ask that one (`None`: no leader known right now).
    Redirect {
        /// The leader's id and cluster address.
        leader: Option<(NodeId, String)>,
    },
    /// This node has no cluster yet; `label` is its name (the first by name bootstraps).
    NotInitialized {
        /// The node's label (the broker's node name).
        label: String,
    },
    /// Refused, with why.
    Refused(String),
}

/// The Raft RPCs openraft's network sends.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    /// Replication and heartbeats.
    AppendEntries(AppendEntriesRequest<Wr>),
    /// A vote request of a candidate.
    Vote(VoteRequest<Wr>),
    /// A pre-vote request (no term bump).
    PreVote(VoteRequest<Wr>),
    /// One chunk of a snapshot's data, sent in order, each answered before the next
    /// ([`RaftReply::SnapshotChunk`]); the last one's answer comes once it is installed.
    Snapshot {
        /// The leader's vote.
        vote: Vote,
        /// What the snapshot covers.
        meta: SnapshotMeta,
        /// Where the chunk starts in the data (0 starts a transfer).
        offset: u64,
        /// The chunk's bytes.
        data: bytes::Bytes,
        /// Whether this is the last chunk: the receiver installs the snapshot.
        last: bool,
    },
    /// Hand leadership to the receiver.
    TransferLeader(TransferLeaderRequest<Wr>),
}

/// A response from a peer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// The answer to a [`RaftRpc`], or why the peer could not handle it.
    Raft(Result<RaftReply, String>),
    /// The answer to [`Request::Ping`].
    Pong,
    /// The answer to [`Request::Join`].
    Join(JoinReply),
    /// The answer to [`Request::Leave`]: done, redirected, or why not.
    Leave(JoinReply),
    /// The answer to [`Request::Write`].
    Write(WriteReply),
    /// The answer to [`Request::App`], or why the node could not take it.
    App(Result<bytes::Bytes, String>),
    /// The answer to [`Request::Manage`].
    Manage(crate::manage::ManageReply),
}

/// The answer to a forwarded [`Request::Write`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteReply {
    /// Committed and applied on the leader at `index`, with its reply.
    Done {
        /// The entry's log index.
        index: u64,
        /// The state machine's reply on the leader.
        reply: Reply,
    },
    /// This node does not lead the group (`None`: no leader known).
    NotLeader(Option<NodeId>),
    /// Refused, with why.
    Failed(String),
}

/// The successful answers to each [`RaftRpc`].
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    /// To [`RaftRpc::AppendEntries`].
    AppendEntries(AppendEntriesResponse<Wr>),
    /// To [`RaftRpc::Vote`] and [`RaftRpc::PreVote`].
    Vote(VoteResponse<Wr>),
    /// To [`RaftRpc::Snapshot`].
    Snapshot(SnapshotResponse<Wr>),
    /// To [`RaftRpc::TransferLeader`].
    TransferLeader(TransferLeaderResponse<Wr>),
    /// To a [`RaftRpc::Snapshot`] chunk that is not the last: written, send the next.
    SnapshotChunk,
}

/// A frame that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[error("cluster frame codec: {0}")]
pub struct CodecError(#[from] postcard::Error);

/// The fields every version's Hello starts with (postcard is positional, and
/// `from_bytes` ignores what follows), to name the version of a peer whose Hello does not
/// decode as ours.
#[derive(Deserialize)]
struct HelloHead {
    _cluster_name: String,
    _node_id: NodeId,
    _addr: String,
    version: u32,
}

/// [`Body`] as far as its first variant, [`Body::Hello`].
#[derive(Deserialize)]
enum HeadBody {
    Hello(HelloHead),
}

/// [`Frame`] with a [`HeadBody`].
#[derive(Deserialize)]
struct HeadFrame {
    _id: u64,
    body: HeadBody,
}

/// The protocol version in a Hello frame of any version, if it is one.
pub fn hello_version(bytes: &[u8]) -> Option<u32> {
    let HeadFrame {
        body: HeadBody::Hello(head),
        ..
    } = postcard::from_bytes(bytes).ok()?;
    Some(head.version)
}

impl Frame {
    /// Encodes the frame with postcard.
    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        Ok(postcard::to_allocvec(self)?)
    }

    /// Decodes a frame received from a peer.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}
