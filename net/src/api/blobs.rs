//! The handle's gossip, blob and record calls: each in a waiting form and, where the
//! application thread must never wait on the network, a form that returns at once.

use std::time::Duration;

use super::{Command, Done, NetError, NetHandle};
use crate::wire::{Envelope, Hash32, RecordKind, Topic, now_ms, sha256};

impl NetHandle {
    /// Sign `payload` with this node's hotkey and publish it. Returns the message id.
    pub fn publish(&self, topic: Topic, payload: Vec<u8>) -> Result<Hash32, NetError> {
        let bytes = self.sign_for(topic, payload)?;
        self.publish_raw(topic, bytes)
    }

    /// Publish envelope bytes as they are (a relayed, already-signed envelope). Peers
    /// validate them like any other message.
    pub fn publish_raw(&self, topic: Topic, bytes: Vec<u8>) -> Result<Hash32, NetError> {
        self.call(self.short_wait(), |reply| Command::Publish {
            topic,
            bytes,
            reply: Done::Wait(reply),
        })
    }

    /// [`NetHandle::publish`] without waiting for the net thread: returns the message id
    /// once the command is queued (`Busy` when the queue is full). A publication that then
    /// fails (no peer subscribed yet) is logged by the net thread.
    pub fn publish_detached(&self, topic: Topic, payload: Vec<u8>) -> Result<Hash32, NetError> {
        let bytes = self.sign_for(topic, payload)?;
        let id = sha256(&bytes);
        self.send(Command::Publish {
            topic,
            bytes,
            reply: Done::Detached,
        })?;
        Ok(id)
    }

    fn sign_for(&self, topic: Topic, payload: Vec<u8>) -> Result<Vec<u8>, NetError> {
        let limit = self.config.max_payload_bytes.of(topic);
        if payload.len() > limit {
            return Err(NetError::TooLarge {
                what: "payload",
                len: payload.len(),
                limit,
            });
        }
        Ok(Envelope::sign(&self.hotkey, topic, now_ms(), payload).encode())
    }

    /// Serve a blob by its sha256 and announce this node as a provider in the DHT. Returns
    /// the hash once the announcement is done (or failed for want of peers: it is still
    /// served to whoever asks).
    pub fn provide(&self, bytes: Vec<u8>) -> Result<Hash32, NetError> {
        self.call(self.config.fetch_timeout, |reply| Command::Provide {
            bytes,
            reply: Done::Wait(reply),
        })
    }

    /// [`NetHandle::provide`] without waiting for the DHT: the blob is served as soon as
    /// the net thread takes the command, and announced in the background. Returns its hash
    /// once queued (`TooLarge` over `max_blob_bytes`, `Busy` when the queue is full).
    pub fn provide_detached(&self, bytes: Vec<u8>) -> Result<Hash32, NetError> {
        if bytes.len() > self.config.max_blob_bytes {
            return Err(NetError::TooLarge {
                what: "blob",
                len: bytes.len(),
                limit: self.config.max_blob_bytes,
            });
        }
        let hash = sha256(&bytes);
        self.send(Command::Provide {
            bytes,
            reply: Done::Detached,
        })?;
        Ok(hash)
    }

    /// Fetch a blob by sha256 from its providers (or, failing those, any connected peer),
    /// verifying the hash of what arrives.
    pub fn fetch(&self, hash: Hash32) -> Result<Vec<u8>, NetError> {
        self.call(
            self.config.fetch_timeout + Duration::from_secs(1),
            |reply| Command::Fetch {
                hash,
                reply: Done::Wait(reply),
            },
        )
    }

    /// [`NetHandle::fetch`] without waiting: `then` gets the outcome — the verified bytes,
    /// or why not (`NotFound` when no peer had it, `Timeout` after `fetch_timeout`). It runs
    /// on the net thread, so it must be cheap and never block (send on an unbounded
    /// channel). `Err` here (`Busy`, `Stopped`): nothing started and `then` never runs.
    pub fn fetch_then(
        &self,
        hash: Hash32,
        then: impl FnOnce(Result<Vec<u8>, NetError>) + Send + 'static,
    ) -> Result<(), NetError> {
        self.send(Command::Fetch {
            hash,
            reply: Done::Then(Box::new(then)),
        })
    }

    /// Store a signed envelope in the DHT under `kind | sha256(bytes)`. Returns the hash.
    pub fn put_record(&self, kind: RecordKind, bytes: Vec<u8>) -> Result<Hash32, NetError> {
        self.call(
            self.config.fetch_timeout + Duration::from_secs(1),
            |reply| Command::PutRecord { kind, bytes, reply },
        )
    }

    /// Get a record from the DHT by kind and content hash, verified.
    pub fn get_record(&self, kind: RecordKind, hash: Hash32) -> Result<Vec<u8>, NetError> {
        self.call(
            self.config.fetch_timeout + Duration::from_secs(1),
            |reply| Command::GetRecord { kind, hash, reply },
        )
    }
}
