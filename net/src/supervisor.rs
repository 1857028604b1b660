//! The supervisor of a live node: it keeps one conversation open with every member whose
//! address it knows, redials with exponential backoff when one fails, and starts serving
//! groups created or joined while the node runs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alongside_core::ids::GroupId;
use alongside_core::ids::MemberId;
use alongside_core::vault::{Committed, MemberAddress};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::conn::{Fresh, with_vault};
use crate::live::Mode;
use crate::node::{Inner, NetError};

/// First retry delay after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts to reach a member.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the address books are looked at even when nothing happened.
const IDLE_CHECK: Duration = Duration::from_secs(30);

/// A live connection that lasted this long counts as having worked.
const HEALTHY: Duration = Duration::from_secs(10);

type PeerKey = (GroupId, [u8; 32]);

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    next: Instant,
}

/// How long before a member that refused us is tried again: we left or were removed (they
/// know; nothing to tell them), or they have not heard of our joining yet.
const REFUSED_BACKOFF: Duration = Duration::from_secs(300);

impl Backoff {
    fn refused() -> Backoff {
        Backoff {
            failures: u32::MAX,
            next: Instant::now() + REFUSED_BACKOFF,
        }
    }

    fn after(outcome_ok: bool, previous: Option<Backoff>) -> Backoff {
        let failures = if outcome_ok {
            0
        } else {
            previous.map_or(1, |b| b.failures.saturating_add(1))
        };
        let delay = if failures == 0 {
            FIRST_BACKOFF
        } else {
            FIRST_BACKOFF.saturating_mul(1 << failures.min(10)).min(MAX_BACKOFF)
        };
        Backoff {
            failures,
            next: Instant::now() + delay,
        }
    }
}

/// The supervisor's loop; runs until the node aborts it.
pub(crate) async fn run(inner: Arc<Inner>) {
    let mut fresh = inner.shared.fresh.subscribe();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(PeerKey, Outcome)>();
    let mut backoff: HashMap<PeerKey, Backoff> = HashMap::new();
    let mut dialing: HashSet<PeerKey> = HashSet::new();
    let mut next = Instant::now();
    // Whether to look at the address books again (not for every unit that goes by).
    let mut look = true;
    loop {
        // Meeting mode's names are due to change, or its time is up.
        for group in inner.lan.take_due() {
            crate::meeting::apply(&inner, group).await;
        }
        if look {
            next = dial_due(&inner, &mut backoff, &mut dialing, &done_tx).await;
        }
        look = true;
        tokio::select! {
            biased;
            done = done_rx.recv() => {
                // Unbounded: at most one message per dial this loop started.
                if let Some((key, outcome)) = done {
                    dialing.remove(&key);
                    let previous = backoff.get(&key).copied();
                    let next = match outcome {
                        Outcome::Worked => Backoff::after(true, previous),
                        Outcome::Failed => Backoff::after(false, previous),
                        Outcome::Refused => Backoff::refused(),
                    };
                    backoff.insert(key, next);
                }
            }
            item = fresh.recv() => match item {
                Ok(Fresh { item: Committed::Membership(g), .. }) => {
                    // (Serves a group created or joined meanwhile, too.)
                    settle(&inner, g).await;
                    // A new epoch means a new meeting-mode service name.
                    crate::meeting::apply(&inner, g).await;
                }
                Ok(Fresh { item: Committed::LocalSettings(g), .. }) => crate::meeting::apply(&inner, g).await,
                Ok(Fresh { item: Committed::Unit(..), .. }) => look = false,
                Err(RecvError::Lagged(_)) => {
                    // Missed some: serve every group and settle every meeting mode again.
                    let groups = with_vault(&inner.shared, |v| v.group_ids()).await.unwrap_or_default();
                    for g in groups {
                        if inner.serve_group(g).await.is_ok() {
                            crate::meeting::apply(&inner, g).await;
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            },
            () = inner.wake.notified() => {}
            () = tokio::time::sleep_until(next) => {}
        }
    }
}

/// After a membership change: rotates the group's key if the membership asks for one
/// (someone left, or concurrent changes left no clean epoch), announces this epoch's
/// transport key, and moves the group to that key's endpoint if it changed.
pub(crate) async fn settle(inner: &Arc<Inner>, group: GroupId) {
    let now = crate::node::now_ms();
    if let Err(e) = with_vault(&inner.shared, move |v| v.edit(&group, |s| s.settle(now))).await {
        tracing::warn!(error = %e, "could not settle the group after a membership change");
    }
    if let Err(e) = inner.serve_group(group).await {
        tracing::warn!(error = %e, "could not serve the group");
    }
}

/// Starts a live conversation with every known member that has none and is due; returns
/// when to look again.
async fn dial_due(
    inner: &Arc<Inner>,
    backoff: &mut HashMap<PeerKey, Backoff>,
    dialing: &mut HashSet<PeerKey>,
    done: &mpsc::UnboundedSender<(PeerKey, Outcome)>,
) -> Instant {
    let now = Instant::now();
    let mut next = now + IDLE_CHECK;
    for group in inner.served_groups() {
        let me = inner.served(&group).map(|s| *s.endpoint.id().as_bytes());
        let book = with_vault(&inner.shared, move |v| {
            // Per member, its announced endpoint if the book has it, else one it was
            // seen at in an earlier epoch (which still answers for a while).
            let mut by_member: BTreeMap<MemberId, MemberAddress> = BTreeMap::new();
            for a in v.member_addresses(&group)? {
                if by_member
                    .get(&a.member)
                    .is_none_or(|best| a.announced && !best.announced)
                {
                    by_member.insert(a.member, a);
                }
            }
            Ok(by_member
                .into_values()
                .map(|a| (a.endpoint, a.addrs, a.member))
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
        for (endpoint, addrs, member) in book {
            let key = (group, endpoint);
            if Some(endpoint) == me || dialing.contains(&key) || inner.is_connected(group, member) {
                continue;
            }
            if let Some(b) = backoff.get(&key)
                && b.next > now
            {
                next = next.min(b.next);
                continue;
            }
            dialing.insert(key);
            spawn_dial(inner.clone(), key, addrs, done.clone());
        }
    }
    next
}

/// How a dial ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// It worked, or lived long enough to count as working.
    Worked,
    /// It failed; try again with backoff.
    Failed,
    /// The member does not accept us as a member (we left or were removed): they already
    /// know, so there is nothing to tell them; try again only much later.
    Refused,
}

fn spawn_dial(
    inner: Arc<Inner>,
    key: PeerKey,
    addrs: Vec<SocketAddr>,
    done: mpsc::UnboundedSender<(PeerKey, Outcome)>,
) {
    tokio::spawn(async move {
        let (group, endpoint) = key;
        let mode = Mode::Live {
            anti_entropy: inner.config.anti_entropy,
        };
        let started = Instant::now();
        let result = inner.converse_with(group, endpoint, &addrs, mode).await;
        if let Err(e) = &result {
            tracing::debug!(error = %e, "live connection ended");
        }
        // A connection that lived a while and then dropped (sleep, a network change) is
        // retried soon; one that keeps failing, ever more slowly.
        let outcome = match result {
            Err(NetError::NotAMember) => Outcome::Refused,
            // (Calls that crossed: the member's call carries the conversation.)
            Ok(_) | Err(NetError::Crossed) => Outcome::Worked,
            Err(_) if started.elapsed() > HEALTHY => Outcome::Worked,
            Err(_) => Outcome::Failed,
        };
        let _ = done.send((key, outcome));
    });
}
