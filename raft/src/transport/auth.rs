//! The cluster secret (RabbitMQ's Erlang cookie): peers prove they know it without sending it.
//!
//! Each side puts a fresh random nonce in its [`Hello`](super::wire::Hello); once both Hellos
//! crossed, each sends a [`Body::Proof`](super::wire::Body::Proof):
//! HMAC-SHA256(secret, context || role || prover's nonce || verifier's nonce || prover id ||
//! verifier id). The context names the protocol version and the cluster; the role byte
//! differs for the dialer and the acceptor, so a proof can never be reflected back to the
//! node that made it. The dialer proves first and the acceptor answers only a valid proof,
//! so whoever can reach the cluster port learns nothing to guess the secret from offline.
//! Proofs are compared in constant time (`Mac::verify_slice`).
//!
//! What it does not do: the frames after the handshake are not authenticated, so an
//! attacker on the path can still hijack a proven connection; TLS ([`super::tls`]) closes
//! that.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::TransportError;
use super::wire::PROTOCOL_VERSION;
use crate::types::NodeId;

/// The size of a handshake nonce and of a proof (an HMAC-SHA256 tag).
pub const NONCE_LEN: usize = 32;

/// A handshake nonce.
pub type Nonce = [u8; NONCE_LEN];

/// A proof of the secret.
pub type Proof = [u8; NONCE_LEN];

/// The shared secret of a cluster's nodes; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Arc<[u8]>);

impl ClusterSecret {
    /// A secret from its bytes; `None` when empty.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (!bytes.is_empty()).then(|| Self(bytes.into()))
    }

    /// Its length in bytes (to warn about short ones).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: an empty secret cannot be built.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length; the error branch cannot happen for HMAC.
        Hmac::<Sha256>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterSecret(<{} bytes>)", self.0.len())
    }
}

/// Which end of a connection a node is; the proofs of the two ends differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The node that connected.
    Dialer,
    /// The node that accepted.
    Acceptor,
}

impl Side {
    fn tag(self) -> u8 {
        match self {
            Side::Dialer => b'D',
            Side::Acceptor => b'A',
        }
    }
}

/// Both ends of one handshake, as each proof binds them.
pub(crate) struct Exchange<'a> {
    /// The cluster's name.
    pub(crate) cluster: &'a str,
    /// The prover's side.
    pub(crate) side: Side,
    /// The prover's id and nonce.
    pub(crate) prover: (NodeId, &'a Nonce),
    /// The verifier's id and nonce.
    pub(crate) verifier: (NodeId, &'a Nonce),
}

impl Exchange<'_> {
    fn mac(&self, secret: &ClusterSecret) -> Hmac<Sha256> {
        let mut mac = secret.mac();
        mac.update(b"warren cluster link proof\0");
        mac.update(&PROTOCOL_VERSION.to_be_bytes());
        // Length-prefixed, so no two (cluster, rest) pairs share their bytes.
        mac.update(&(self.cluster.len() as u64).to_be_bytes());
        mac.update(self.cluster.as_bytes());
        mac.update(&[self.side.tag()]);
        mac.update(self.prover.1);
        mac.update(self.verifier.1);
        mac.update(&self.prover.0.to_be_bytes());
        mac.update(&self.verifier.0.to_be_bytes());
        mac
    }

    /// The prover's proof.
    pub(crate) fn prove(&self, secret: &ClusterSecret) -> Proof {
        self.mac(secret).finalize().into_bytes().into()
    }

    /// Whether `proof` is the prover's, compared in constant time.
    pub(crate) fn verify(&self, secret: &ClusterSecret, proof: &Proof) -> bool {
        self.mac(secret).verify_slice(proof).is_ok()
    }
}

/// A fresh random nonce from the operating system.
pub(crate) fn nonce() -> Result<Nonce, TransportError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce)
        .map_err(|e| TransportError::Auth(format!("no random nonce: {e}")))?;
    Ok(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_the_secret_the_side_the_nonces_and_the_ids() {
        let secret = ClusterSecret::new(*b"s3cret").expect("non-empty");
        let (a, b) = ([1u8; NONCE_LEN], [2u8; NONCE_LEN]);
        let ex = Exchange {
            cluster: "c",
            side: Side::Dialer,
            prover: (1, &a),
            verifier: (2, &b),
        };
        let proof = ex.prove(&secret);
        assert!(ex.verify(&secret, &proof));
        let other = ClusterSecret::new(*b"other").expect("non-empty");
        assert!(!ex.verify(&other, &proof));
        let reflected = Exchange {
            side: Side::Acceptor,
            ..ex
        };
        assert!(!reflected.verify(&secret, &proof));
        let swapped = Exchange {
            cluster: "c",
            side: Side::Dialer,
            prover: (1, &b),
            verifier: (2, &a),
        };
        assert!(!swapped.verify(&secret, &proof));
        let ids = Exchange {
            cluster: "c",
            side: Side::Dialer,
            prover: (3, &a),
            verifier: (2, &b),
        };
        assert!(!ids.verify(&secret, &proof));
        assert!(ClusterSecret::new(Vec::new()).is_none());
        assert_eq!(format!("{secret:?}"), "ClusterSecret(<6 bytes>)");
        assert_ne!(nonce().expect("nonce"), nonce().expect("nonce"));
    }
}
