//! One sync conversation with one member over one QUIC stream: the first reconciliation
//! round, then (in live mode) pushes of every durable change and periodic anti-entropy
//! rounds, until the peer finishes, the connection fails or the node stops.
//!
//! The loop is `select! { biased; ... }` over three sources: frames from the peer (read by a
//! separate task, so no read is ever cancelled half-way), the node's feed of durable
//! changes, and the anti-entropy timer (dialer only). Frames to send go to a writer task
//! (see [`Outbox`]), so the loop never stops reading while a write waits for the peer. Each arm hands the engine to a
//! blocking task that locks the vault, so what a frame changed is durable before anything
//! is sent on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alongside_core::ids::{GroupId, MemberId, short_hex};
use alongside_core::sync::{Event, Message, PeerSync, Step, SyncStats};
use alongside_core::vault::{Committed, Vault, VaultError};
use iroh::endpoint::SendStream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use crate::conn::{Framed, Fresh, SharedVault, with_vault, with_vault_from, write_frames};
use crate::node::{NetError, NodeEvent};

/// How a conversation ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// After the first round (a one-shot `sync`, a `join`).
    Once,
    /// When the peer finishes or the connection fails; meanwhile pushes flow, and the
    /// dialer starts a reconciliation round every `anti_entropy`.
    Live {
        /// Time between anti-entropy rounds.
        anti_entropy: Duration,
    },
}

/// Who is on the other end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) group: GroupId,
    pub(crate) member: MemberId,
    /// Whether this side dialed (and so leads reconciliation).
    pub(crate) initiator: bool,
}

/// Runs a conversation on `framed` and returns its counters. The send side is finished
/// and the peer's side read to its end before this returns `Ok`.
pub(crate) async fn converse(
    shared: &SharedVault,
    peer: Peer,
    framed: Framed,
    mode: Mode,
) -> Result<SyncStats, NetError> {
    let Peer {
        group,
        member,
        initiator,
    } = peer;
    tracing::debug!(
        group = %short_hex(&group.0),
        member = %short_hex(&member.0),
        dialer = initiator,
        "conversation started"
    );
    // Subscribe before the first round starts, so nothing made meanwhile is missed.
    let mut fresh = shared.fresh.subscribe();
    // A round that completes started after the previous one completed (rounds do not
    // overlap), so everything durable here before this moment is in the next round.
    let mut round_floor = crate::node::now_ms();
    // The floor and time of the last sync mark kept for this member (see `mark_due`).
    let mut marked: Option<(i64, i64)> = None;
    let (send, mut frames) = framed.into_split();
    let mut out = Outbox::spawn(send);
    let (mut sync, first) = with_vault(shared, move |v| {
        Ok(PeerSync::start(v.session(&group)?, member, initiator))
    })
    .await?;
    out.send(first.frames)?;
    let live = matches!(mode, Mode::Live { .. });
    let period = match mode {
        Mode::Live { anti_entropy } => anti_entropy,
        Mode::Once => Duration::from_secs(3600),
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if !live && sync.is_caught_up() {
            break;
        }
        let step = tokio::select! {
            biased;
            // The writer stopped before we asked it to: the stream failed.
            written = &mut out.writer => {
                written.map_err(|e| NetError::Internal(e.to_string()))??;
                return Err(NetError::Connection("the stream closed".into()));
            }
            frame = frames.recv() => match frame {
                Some(Ok(frame)) => {
                    let (step, parting, kept);
                    let floor = round_floor;
                    let mark_due = mark_due(shared, marked);
                    // (The frame counts against the read-ahead until it is handled.)
                    (sync, (step, parting, kept)) = drive(shared, Some(member), sync, move |sync, v| {
                        let step = v.edit(&group, |s| sync.handle_frame(s, &frame.body))?;
                        let kept = (mark_due && step.events.iter().any(|e| matches!(e, Event::CaughtUp)))
                            .then(crate::node::now_ms);
                        if let Some(at) = kept {
                            // Kept so "last synced" and delivery survive a restart; a
                            // failure here costs only that.
                            if let Err(e) = v.record_sync(&group, &member, at, floor) {
                                tracing::debug!(error = %e, "could not keep the sync mark");
                            }
                        }
                        let parting = farewell(sync, v, group, member, &step)?;
                        Ok((step, parting, kept))
                    })
                    .await?;
                    if let Some(at) = kept {
                        marked = Some((floor, at));
                    }
                    report(shared, peer, &sync, &step, &mut round_floor);
                    if let Some(parting) = parting {
                        return part(out, parting).await;
                    }
                    step
                }
                Some(Err(e)) => return Err(e),
                None if sync.is_caught_up() => break,
                None => return Err(NetError::Connection("the peer ended the sync early".into())),
            },
            // While the peer is slow to read what we already queued, leave new changes in
            // the feed; if it overflows, the next round repairs what was skipped.
            item = fresh.recv(), if live && !out.is_backed_up() => match item {
                Ok(f) if f.from == Some(member) => continue,
                Ok(Fresh { item: Committed::Unit(g, unit), .. }) if g == group => {
                    let step;
                    (sync, step) = drive(shared, None, sync, move |sync, v| Ok(sync.push(v.session(&group)?, &unit))).await?;
                    step
                }
                Ok(Fresh { item: Committed::Membership(g), .. }) if g == group => {
                    let (step, parting);
                    (sync, (step, parting)) = drive(shared, None, sync, move |sync, v| push_membership(sync, v, group, member)).await?;
                    if let Some(parting) = parting {
                        return part(out, parting).await;
                    }
                    step
                }
                Ok(_) => continue,
                // Fell behind the feed: some pushes were missed. Push any operations the peer
                // lacks, and (dialer) reconcile now; the acceptor's lost units come with the
                // dialer's next round.
                Err(RecvError::Lagged(_)) => {
                    let (mut step, parting);
                    (sync, (step, parting)) = drive(shared, None, sync, move |sync, v| push_membership(sync, v, group, member)).await?;
                    if let Some(parting) = parting {
                        return part(out, parting).await;
                    }
                    let round;
                    (sync, round) = begin_round(shared, group, sync).await?;
                    step.frames.extend(round.frames);
                    step
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick(), if live && initiator => {
                let step;
                (sync, step) = begin_round(shared, group, sync).await?;
                step
            }
        };
        out.send(step.frames)?;
    }
    // Finish our side (after everything queued is written), then read theirs to its end so
    // nothing in flight is lost.
    drop(out.tx);
    out.writer.await.map_err(|e| NetError::Internal(e.to_string()))??;
    while let Some(frame) = frames.recv().await {
        frame?;
    }
    Ok(sync.stats())
}

/// Pushes the operations `member` lacks; and if they are no longer a member, what may
/// still go to them (see [`farewell`]).
fn push_membership(
    sync: &mut PeerSync,
    v: &mut Vault,
    group: GroupId,
    member: MemberId,
) -> Result<(Step, Option<Step>), VaultError> {
    let step = sync.push_membership(v.session(&group)?);
    let parting = farewell(sync, v, group, member, &step)?;
    Ok((step, parting))
}

/// `None` while `member` is a member here. Otherwise the last thing they get: the
/// membership frames of `answer` (which may carry their own removal) and any operations
/// they still lack — never content.
fn farewell(
    sync: &mut PeerSync,
    v: &mut Vault,
    group: GroupId,
    member: MemberId,
    answer: &Step,
) -> Result<Option<Step>, VaultError> {
    let session = v.session(&group)?;
    if session.membership().is_member(&member) {
        return Ok(None);
    }
    let mut last = sync.push_membership(session);
    let told = answer
        .frames
        .iter()
        .filter(|f| Message::is_membership_frame(f))
        .cloned();
    last.frames.splice(0..0, told);
    Ok(Some(last))
}

/// Ends a conversation with someone who just left or was removed: `step` (only ever the
/// membership operations that tell them so) goes out first, then the conversation stops
/// with [`NetError::Departed`] (the connection closes as refused).
async fn part(out: Outbox, step: Step) -> Result<SyncStats, NetError> {
    out.send(step.frames)?;
    drop(out.tx);
    let _ = out.writer.await;
    Err(NetError::Departed)
}

/// How long a departed member who dialed us may take to say which operations it holds.
const HEAR_OUT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most frames a departed member may send while heard out: a parting needs two (their
/// hello and their membership operations); anything else they send is ignored, so more
/// than a few is not a member who does not know yet, but a flood.
const HEAR_OUT_FRAMES: usize = 4;

/// The last conversation with someone who left or was removed here but dialed us, not
/// knowing yet: their membership operations are heard (one of them may remove someone at
/// the same moment: strong removal needs every such operation to arrive somewhere), they
/// are told the operations they lack (which say they are gone), and the connection closes
/// as refused. They are never sent a grant or content ([`PeerSync::start_parting`]).
/// It lasts at most [`HEAR_OUT_TIMEOUT`] (then the last frames linger for the peer) and
/// reads at most [`HEAR_OUT_FRAMES`]; how many run at once is the gate's
/// (`gate.rs`, [`crate::gate::MAX_HEARINGS_PER_MEMBER`]).
pub(crate) async fn hear_out(shared: &SharedVault, group: GroupId, member: MemberId, framed: Framed) -> NetError {
    let (send, mut frames) = framed.into_split();
    let out = Outbox::spawn(send);
    let heard = async {
        let (mut sync, first) =
            with_vault(shared, move |v| Ok(PeerSync::start_parting(v.session(&group)?, member))).await?;
        out.send(first.frames)?;
        let mut heard = 0;
        while !sync.is_parted() {
            let Some(frame) = frames.recv().await else {
                break;
            };
            let frame = frame?;
            heard += 1;
            if heard > HEAR_OUT_FRAMES {
                return Err(NetError::Protocol("a departed member sent too many frames".into()));
            }
            let step;
            (sync, step) = drive(shared, Some(member), sync, move |sync, v| {
                v.edit(&group, |s| sync.handle_frame(s, &frame.body))
            })
            .await?;
            if step.events.iter().any(|e| matches!(e, Event::Membership { .. })) {
                shared.emit(NodeEvent::Membership { group });
            }
            out.send(step.frames)?;
        }
        Ok::<(), NetError>(())
    };
    match tokio::time::timeout(HEAR_OUT_TIMEOUT, heard).await {
        Ok(Ok(())) => match part(out, Step::default()).await {
            Ok(_) => NetError::Departed,
            Err(e) => e,
        },
        Ok(Err(e)) => e,
        Err(_) => NetError::Protocol("a departed member said nothing in time".into()),
    }
}

/// How long the end of a conversation waits for the peer to acknowledge our last frames.
const LINGER: Duration = Duration::from_secs(5);

/// Above this many queued bytes, no new pushes are taken (the peer reads slowly).
const OUT_SOFT_LIMIT: usize = 8 * 1024 * 1024;
/// Above this many, the peer is not reading at all: the connection is closed.
const OUT_HARD_LIMIT: usize = 96 * 1024 * 1024;

/// The send side, written by its own task so the conversation keeps reading while a
/// write waits for the peer: two peers writing to each other can never block each other.
/// The queue is unbounded in items but counted in bytes: what goes in is our own answers
/// and pushes, and a peer that lets more than [`OUT_HARD_LIMIT`] pile up is cut off.
struct Outbox {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
    writer: tokio::task::JoinHandle<Result<(), NetError>>,
}

impl Outbox {
    fn spawn(mut send: SendStream) -> Outbox {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                write_frames(&mut send, std::slice::from_ref(&frame)).await?;
                counter.fetch_sub(frame.len(), Ordering::SeqCst);
            }
            let _ = send.finish();
            // Until the peer has acknowledged everything (or a while): a close right after
            // this (a member who was just removed) must not drop the last frames.
            let _ = tokio::time::timeout(LINGER, send.stopped()).await;
            Ok(())
        });
        Outbox { tx, queued, writer }
    }

    fn send(&self, frames: Vec<Vec<u8>>) -> Result<(), NetError> {
        for frame in frames {
            let queued = self.queued.fetch_add(frame.len(), Ordering::SeqCst) + frame.len();
            if queued > OUT_HARD_LIMIT {
                return Err(NetError::Protocol("the peer stopped reading".into()));
            }
            self.tx
                .send(frame)
                .map_err(|_| NetError::Connection("the stream closed".into()))?;
        }
        Ok(())
    }

    fn is_backed_up(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > OUT_SOFT_LIMIT
    }
}

/// Runs `f` on the engine and the vault in a blocking task (see [`with_vault_from`]).
async fn drive<T: Send + 'static>(
    shared: &SharedVault,
    from: Option<MemberId>,
    mut sync: PeerSync,
    f: impl FnOnce(&mut PeerSync, &mut Vault) -> Result<T, VaultError> + Send + 'static,
) -> Result<(PeerSync, T), NetError> {
    with_vault_from(shared, from, move |v| {
        let t = f(&mut sync, v)?;
        Ok((sync, t))
    })
    .await
}

/// Starts an anti-entropy round if this side leads and the last one is complete.
async fn begin_round(shared: &SharedVault, group: GroupId, sync: PeerSync) -> Result<(PeerSync, Step), NetError> {
    drive(shared, None, sync, move |sync, v| {
        Ok(sync.begin_round(v.session(&group)?).unwrap_or_default())
    })
    .await
}

/// How long a kept "last synced" time may lag while nothing new needs covering.
const MARK_REFRESH_MS: i64 = 5 * 60 * 1000;

/// Whether the next completed round should be kept as a sync mark: the first of this
/// conversation; or something became durable here since the floor of the last one kept
/// (the new round may cover it: delivery); or the kept time is getting old. Otherwise a
/// round every 20 s on every connection would cost a disk write each, for nothing new.
fn mark_due(shared: &SharedVault, marked: Option<(i64, i64)>) -> bool {
    match marked {
        None => true,
        Some((floor, at)) => {
            shared.last_commit_ms.load(Ordering::Relaxed) >= floor || crate::node::now_ms() - at >= MARK_REFRESH_MS
        }
    }
}

fn report(shared: &SharedVault, peer: Peer, sync: &PeerSync, step: &Step, round_floor: &mut i64) {
    for event in &step.events {
        match event {
            Event::Applied { doc, changes } => shared.emit(NodeEvent::Applied {
                group: peer.group,
                from: peer.member,
                doc: *doc,
                changes: *changes,
            }),
            Event::Membership { .. } => shared.emit(NodeEvent::Membership { group: peer.group }),
            Event::CaughtUp => {
                let stats = sync.stats();
                tracing::debug!(
                    group = %short_hex(&peer.group.0),
                    member = %short_hex(&peer.member.0),
                    rounds = sync.rounds_completed(),
                    bytes_sent = stats.bytes_sent,
                    bytes_received = stats.bytes_received,
                    "caught up"
                );
                shared.emit(NodeEvent::CaughtUp {
                    group: peer.group,
                    member: peer.member,
                    rounds: sync.rounds_completed(),
                    covers_from_ms: *round_floor,
                });
                *round_floor = crate::node::now_ms();
            }
        }
    }
}
