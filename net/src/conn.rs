//! What the node's tasks share (the vault, the feed of durable changes, the event feed),
//! and the framing of one QUIC stream.

use std::sync::Mutex;

use alongside_core::ids::MemberId;
use alongside_core::sync::FrameReader;
use alongside_core::vault::{Committed, Vault, VaultError};
use iroh::endpoint::{RecvStream, SendStream};
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};

use crate::node::{NetError, NodeEvent};

/// Most bytes read from the stream in one go.
const READ_CHUNK: usize = 64 * 1024;

/// Frames read ahead of the engine per connection (back-pressure beyond that)...
const READ_AHEAD: usize = 16;

/// ...and the bytes they may hold together, counted until the engine has handled each
/// frame. A frame larger than this takes the whole allowance, so with frames up to the
/// protocol's 64 MiB a connection holds at most the frame being handled, one frame read
/// after it, and nothing more (docs/RELIABILITY.md, "Bounded resources").
const READ_AHEAD_BYTES: usize = 16 * 1024 * 1024;

/// How many durable changes a slow connection may fall behind before it misses some
/// (it then repairs with a reconciliation round instead).
const FRESH_CAPACITY: usize = 1024;

/// Events kept for slow subscribers.
const EVENT_CAPACITY: usize = 256;

/// Everything a node's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The unlocked profile. Lock it only inside [`with_vault`] (a blocking task).
    /// (`None` once the node has shut down: the store is closed then, whatever tasks are
    /// still winding down, so the profile can be opened again at once.)
    pub(crate) vault: Mutex<Option<Vault>>,
    /// Every unit and membership change once it is durable, with the member it came from.
    pub(crate) fresh: broadcast::Sender<Fresh>,
    /// What the node tells its user interface.
    pub(crate) events: broadcast::Sender<NodeEvent>,
    /// When (Unix ms) something last became durable here: a sync mark that covers it
    /// is worth keeping (see `live.rs`).
    pub(crate) last_commit_ms: std::sync::atomic::AtomicI64,
}

impl Shared {
    pub(crate) fn new(vault: Vault) -> Shared {
        Shared {
            vault: Mutex::new(Some(vault)),
            fresh: broadcast::channel(FRESH_CAPACITY).0,
            events: broadcast::channel(EVENT_CAPACITY).0,
            last_commit_ms: std::sync::atomic::AtomicI64::new(0),
        }
    }

    /// Tells the user interface something happened (nobody listening is fine).
    pub(crate) fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }
}

/// A durable change and the member whose connection brought it (none if made here).
#[derive(Debug, Clone)]
pub(crate) struct Fresh {
    pub(crate) item: Committed,
    pub(crate) from: Option<MemberId>,
}

/// The vault shared by the node's connections.
pub(crate) type SharedVault = std::sync::Arc<Shared>;

/// Runs `f` on the vault in a blocking task (it may fsync); then passes on whatever became
/// durable, so connected members receive it at once.
pub(crate) async fn with_vault<T: Send + 'static>(
    shared: &SharedVault,
    f: impl FnOnce(&mut Vault) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, NetError> {
    with_vault_from(shared, None, f).await
}

/// [`with_vault`] for work on behalf of `from`'s connection (not echoed back to it).
pub(crate) async fn with_vault_from<T: Send + 'static>(
    shared: &SharedVault,
    from: Option<MemberId>,
    f: impl FnOnce(&mut Vault) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, NetError> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        // A panic never leaves the lock poisoned (it is caught below); should one have
        // slipped through anyway, what it left in memory is forgotten.
        let mut guard = shared.vault.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            if let Some(v) = guard.as_mut() {
                v.forget_loaded();
            }
            guard
        });
        let v = guard
            .as_mut()
            .ok_or_else(|| NetError::Internal("the node has shut down".into()))?;
        // A panic in one command must not disable the node: what it half-did in memory
        // is dropped (every group is read again from disk), nothing of it was persisted,
        // and the next command runs as usual.
        let result = match alongside_core::guard::catch(|| f(v)) {
            Ok(result) => result,
            Err(()) => {
                tracing::error!("a vault command panicked; every group is reloaded from disk");
                v.forget_loaded();
                Err(VaultError::Failed)
            }
        };
        let committed = v.take_committed();
        drop(guard);
        if !committed.is_empty() {
            shared
                .last_commit_ms
                .store(crate::node::now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        for item in committed {
            let _ = shared.fresh.send(Fresh { item, from });
        }
        result.map_err(NetError::from)
    })
    .await
    .map_err(|e| NetError::Internal(e.to_string()))?
}

/// A bidirectional stream carrying length-prefixed frames.
pub(crate) struct Framed {
    send: SendStream,
    recv: RecvStream,
    reader: FrameReader,
}

impl Framed {
    pub(crate) fn new(send: SendStream, recv: RecvStream) -> Framed {
        Framed {
            send,
            recv,
            reader: FrameReader::new(),
        }
    }

    pub(crate) async fn write_frames(&mut self, frames: &[Vec<u8>]) -> Result<(), NetError> {
        write_frames(&mut self.send, frames).await
    }

    /// Sets the largest frame accepted (see `FrameReader::set_limit`).
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.reader.set_limit(limit);
    }

    /// The next frame body, or `None` if the peer finished its side.
    pub(crate) async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        next_frame(&mut self.reader, &mut self.recv).await
    }

    /// Splits the stream: frames arrive on a bounded channel fed by a reader task (which
    /// ends when the peer finishes, at the first error, or when the receiver is dropped);
    /// the send half stays with the caller. The reader stays at most [`READ_AHEAD`]
    /// frames and [`READ_AHEAD_BYTES`] ahead of the frames not yet handled.
    pub(crate) fn into_split(self) -> (SendStream, Frames) {
        let (tx, rx) = mpsc::channel(READ_AHEAD);
        let (mut reader, mut recv) = (self.reader, self.recv);
        let allowance = Arc::new(Semaphore::new(READ_AHEAD_BYTES));
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = next_frame(&mut reader, &mut recv) => next,
                    () = tx.closed() => break,
                };
                match next {
                    Ok(Some(body)) => {
                        let want = body.len().min(READ_AHEAD_BYTES) as u32;
                        let permit = tokio::select! {
                            permit = allowance.clone().acquire_many_owned(want) => permit,
                            () = tx.closed() => break,
                        };
                        let Ok(permit) = permit else {
                            break;
                        };
                        if tx.send(Ok(Frame { body, _held: permit })).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        });
        (self.send, Frames { rx })
    }
}

/// Frames from the peer, as [`Framed::into_split`] reads them.
pub(crate) struct Frames {
    rx: mpsc::Receiver<Result<Frame, NetError>>,
}

impl Frames {
    /// The next frame, or `None` once the peer finished its side.
    pub(crate) async fn recv(&mut self) -> Option<Result<Frame, NetError>> {
        self.rx.recv().await
    }
}

/// One frame body, counted against its connection's read-ahead allowance until dropped:
/// keep it until the frame is handled.
pub(crate) struct Frame {
    pub(crate) body: Vec<u8>,
    _held: OwnedSemaphorePermit,
}

pub(crate) async fn write_frames(send: &mut SendStream, frames: &[Vec<u8>]) -> Result<(), NetError> {
    for f in frames {
        send.write_all(f)
            .await
            .map_err(|e| NetError::Connection(e.to_string()))?;
    }
    Ok(())
}

async fn next_frame(reader: &mut FrameReader, recv: &mut RecvStream) -> Result<Option<Vec<u8>>, NetError> {
    loop {
        if let Some(body) = reader.next_frame().map_err(|e| NetError::Protocol(e.to_string()))? {
            return Ok(Some(body));
        }
        // Cancel-safe: a chunk is either returned or left in the stream.
        match recv.read_chunk(READ_CHUNK).await {
            Ok(Some(chunk)) => reader.push(&chunk),
            Ok(None) => return Ok(None),
            Err(e) => return Err(NetError::Connection(e.to_string())),
        }
    }
}
