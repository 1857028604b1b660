//! One sync conversation on one QUIC stream: framing, and the loop that feeds the engine.

use std::sync::{Arc, Mutex};

use alongside_core::ids::{GroupId, MemberId};
use alongside_core::sync::{FrameReader, PeerSync, SyncStats};
use alongside_core::vault::{Vault, VaultError};
use iroh::endpoint::{RecvStream, SendStream};

use crate::node::NetError;

/// The vault shared by the node's connections.
pub(crate) type SharedVault = Arc<Mutex<Vault>>;

/// Most bytes read from the stream in one go.
const READ_CHUNK: usize = 64 * 1024;

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
        for f in frames {
            self.send
                .write_all(f)
                .await
                .map_err(|e| NetError::Connection(e.to_string()))?;
        }
        Ok(())
    }

    /// The next frame body, or `None` if the peer finished its side.
    pub(crate) async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, NetError> {
        loop {
            if let Some(body) = self
                .reader
                .next_frame()
                .map_err(|e| NetError::Protocol(e.to_string()))?
            {
                return Ok(Some(body));
            }
            match self.recv.read_chunk(READ_CHUNK).await {
                Ok(Some(chunk)) => self.reader.push(&chunk),
                Ok(None) => return Ok(None),
                Err(e) => return Err(NetError::Connection(e.to_string())),
            }
        }
    }

    /// Finishes our side and reads the peer's to its end, so nothing in flight is lost.
    pub(crate) async fn finish(&mut self) -> Result<(), NetError> {
        let _ = self.send.finish();
        while self.next_frame().await?.is_some() {}
        Ok(())
    }
}

/// Runs `f` on the vault in a blocking task (it may fsync).
pub(crate) async fn with_vault<T: Send + 'static>(
    vault: &SharedVault,
    f: impl FnOnce(&mut Vault) -> Result<T, VaultError> + Send + 'static,
) -> Result<T, NetError> {
    let vault = vault.clone();
    tokio::task::spawn_blocking(move || {
        let mut v = vault
            .lock()
            .map_err(|_| NetError::Internal("the vault lock was poisoned".into()))?;
        f(&mut v).map_err(NetError::from)
    })
    .await
    .map_err(|e| NetError::Internal(e.to_string()))?
}

/// Syncs `group` with `peer` over `framed` until both sides have caught up.
pub(crate) async fn run_sync(
    vault: &SharedVault,
    group: GroupId,
    peer: MemberId,
    initiator: bool,
    framed: &mut Framed,
) -> Result<SyncStats, NetError> {
    let (mut sync, first) =
        with_vault(vault, move |v| Ok(PeerSync::start(v.session(&group)?, peer, initiator))).await?;
    framed.write_frames(&first.frames).await?;
    while !sync.is_caught_up() {
        let Some(body) = framed.next_frame().await? else {
            return Err(NetError::Connection("the peer ended the sync early".into()));
        };
        let (back, step) = with_vault(vault, move |v| {
            let step = v.edit(&group, |s| sync.handle_frame(s, &body));
            Ok((sync, step))
        })
        .await?;
        sync = back;
        let step = step?;
        framed.write_frames(&step.frames).await?;
    }
    Ok(sync.stats())
}
