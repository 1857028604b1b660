//! Who may take a group's endpoint's time before saying who they are, and how many
//! departed members are heard out at once.
//!
//! iroh has authenticated a connection's endpoint id before the accept handler runs, so
//! the gate can sort callers at once, before reading a byte:
//!
//! - endpoint ids this device knows as current members' (announced transport keys, and
//!   earlier keys the address book still ties to a current member) never wait behind
//!   strangers: each may have [`MAX_OPENING_PER_KNOWN`] connections opening at once, and
//!   [`MEMBER_PRESENT_TIME`] to present itself;
//! - everyone else is a stranger (a joiner with a ticket is one too): at most
//!   [`MAX_OPENING_PER_STRANGER`] connections opening at once per endpoint id,
//!   [`MAX_STRANGERS`] in total, and [`STRANGER_PRESENT_TIME`] to open a stream and send
//!   the first frame.
//!
//! Without the split, strangers who each hold a slot for as long as they may (and then
//! reconnect) kept every slot taken and locked genuine members out. The known set is kept
//! here, so the check costs a hash lookup and no vault access: [`refresh`] recomputes it
//! after membership changes and after a member document changes (where transport keys
//! are announced), and a connection that presents itself as a current member teaches it
//! its key at once ([`Gate::learn`]).
//!
//! A departed member who presents a genuine binding is heard out before the refusal
//! (`live::hear_out`). Their endpoint keys are theirs to make (a binding names any key
//! they sign), so the endpoint limits above do not hold them: hear-outs are capped per
//! member ([`MAX_HEARINGS_PER_MEMBER`]) and per group ([`MAX_HEARINGS`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alongside_core::ids::{DocKind, GroupId, MemberId};
use alongside_core::model::views;
use alongside_core::vault::{Committed, Vault, VaultError};
use thiserror::Error;
use tokio::sync::broadcast::error::RecvError;

use crate::conn::{Fresh, SharedVault, with_vault};

/// Most connections from strangers (endpoint ids not known as a member's) that may be
/// opening at once, per group: each may hold its 1 MiB of QUIC credit
/// ([`crate::node::CONNECTION_WINDOW`]) until it presents itself or its time runs out.
pub(crate) const MAX_STRANGERS: usize = 64;

/// Most connections one stranger endpoint id may have opening at once.
pub(crate) const MAX_OPENING_PER_STRANGER: usize = 2;

/// Most connections one known endpoint id may have opening at once: more than the four
/// conversations a member may hold (`presence.rs`), so a device that lost its network and
/// redials is never turned away here (a fifth conversation closes its oldest instead).
pub(crate) const MAX_OPENING_PER_KNOWN: usize = 8;

/// How long a stranger may take to open its stream and send its first frame (a join
/// request is sent right after the handshake: milliseconds, a relay's round trip at worst).
pub(crate) const STRANGER_PRESENT_TIME: Duration = Duration::from_secs(3);

/// How long a known endpoint may take to open its stream and present itself.
pub(crate) const MEMBER_PRESENT_TIME: Duration = Duration::from_secs(10);

/// Most hear-outs of one departed member at once; a newer connection of theirs is
/// refused meanwhile (the one being heard carries every operation they hold).
pub(crate) const MAX_HEARINGS_PER_MEMBER: usize = 1;

/// Most hear-outs at once per group, whoever they are for.
pub(crate) const MAX_HEARINGS: usize = 2;

/// Why the gate turned a connection away before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub(crate) enum Turned {
    /// The strangers' pool of the group is full.
    #[error("too many connections opening at once")]
    Crowded,
    /// This endpoint id already has its share of connections opening.
    #[error("too many connections from this endpoint")]
    EndpointBusy,
    /// This departed member is already being heard out (or too many others are).
    #[error("no longer a member")]
    HearingBusy,
}

/// The gate of one group: shared by its current endpoint and the retired ones still
/// answering during their grace period.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    known: Mutex<Known>,
    opening: Mutex<Opening>,
    hearings: Mutex<HashMap<MemberId, usize>>,
}

/// Endpoint ids known as current members'.
#[derive(Debug, Default)]
struct Known {
    /// From the vault (announcements and the address book), replaced at each refresh.
    stored: HashSet<[u8; 32]>,
    /// Learned from connections that presented as a current member, kept while that
    /// member stays one.
    learned: HashMap<[u8; 32], MemberId>,
}

/// Connections opening now.
#[derive(Debug, Default)]
struct Opening {
    per_endpoint: HashMap<[u8; 32], usize>,
    strangers: usize,
}

/// A connection's place in the gate while it opens; given back when dropped.
#[derive(Debug)]
pub(crate) struct Opened {
    gate: Arc<Gate>,
    endpoint: [u8; 32],
    stranger: bool,
}

impl Opened {
    /// How long this connection may take to open its stream and send its first frame.
    pub(crate) fn present_time(&self) -> Duration {
        match self.stranger {
            true => STRANGER_PRESENT_TIME,
            false => MEMBER_PRESENT_TIME,
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        let Ok(mut o) = self.gate.opening.lock() else {
            return;
        };
        if let Some(n) = o.per_endpoint.get_mut(&self.endpoint) {
            *n -= 1;
            if *n == 0 {
                o.per_endpoint.remove(&self.endpoint);
            }
        }
        if self.stranger {
            o.strangers -= 1;
        }
    }
}

/// A departed member's hear-out in progress; ends when dropped.
#[derive(Debug)]
pub(crate) struct Hearing {
    gate: Arc<Gate>,
    member: MemberId,
}

impl Drop for Hearing {
    fn drop(&mut self) {
        if let Ok(mut h) = self.gate.hearings.lock()
            && let Some(n) = h.get_mut(&self.member)
        {
            *n -= 1;
            if *n == 0 {
                h.remove(&self.member);
            }
        }
    }
}

impl Gate {
    /// Whether `endpoint` is known as a current member's.
    pub(crate) fn is_known(&self, endpoint: &[u8; 32]) -> bool {
        self.known
            .lock()
            .is_ok_and(|k| k.stored.contains(endpoint) || k.learned.contains_key(endpoint))
    }

    /// Lets a connection from `endpoint` start opening, or says why not.
    pub(crate) fn open(self: &Arc<Self>, endpoint: [u8; 32]) -> Result<Opened, Turned> {
        let stranger = !self.is_known(&endpoint);
        let mut o = self.opening.lock().map_err(|_| Turned::Crowded)?;
        let mine = o.per_endpoint.get(&endpoint).copied().unwrap_or(0);
        let share = match stranger {
            true => MAX_OPENING_PER_STRANGER,
            false => MAX_OPENING_PER_KNOWN,
        };
        if mine >= share {
            return Err(Turned::EndpointBusy);
        }
        if stranger && o.strangers >= MAX_STRANGERS {
            return Err(Turned::Crowded);
        }
        *o.per_endpoint.entry(endpoint).or_default() += 1;
        if stranger {
            o.strangers += 1;
        }
        Ok(Opened {
            gate: self.clone(),
            endpoint,
            stranger,
        })
    }

    /// Remembers that `endpoint` presented itself as current member `member`.
    pub(crate) fn learn(&self, endpoint: [u8; 32], member: MemberId) {
        if let Ok(mut k) = self.known.lock() {
            k.learned.insert(endpoint, member);
        }
    }

    /// Replaces what the vault says is known; forgets learned keys of members who are no
    /// longer members.
    fn replace(&self, stored: HashSet<[u8; 32]>, is_member: impl Fn(&MemberId) -> bool) {
        if let Ok(mut k) = self.known.lock() {
            k.stored = stored;
            k.learned.retain(|_, m| is_member(m));
        }
    }

    /// Starts hearing out departed `member`, unless they (or too many others) are being
    /// heard already.
    pub(crate) fn hear(self: &Arc<Self>, member: MemberId) -> Result<Hearing, Turned> {
        let mut h = self.hearings.lock().map_err(|_| Turned::HearingBusy)?;
        let total: usize = h.values().sum();
        let theirs = h.get(&member).copied().unwrap_or(0);
        if theirs >= MAX_HEARINGS_PER_MEMBER || total >= MAX_HEARINGS {
            return Err(Turned::HearingBusy);
        }
        *h.entry(member).or_default() += 1;
        Ok(Hearing {
            gate: self.clone(),
            member,
        })
    }
}

/// The endpoint ids of `group` this device knows as current members': every current
/// member's announced transport key (in each of their member documents, so keys of earlier
/// generations too) and every address-book entry tied to a current member (endpoints of
/// earlier epochs that still answer). Returns them with the current members.
fn known_endpoints(v: &mut Vault, group: &GroupId) -> Result<(HashSet<[u8; 32]>, HashSet<MemberId>), VaultError> {
    let mut known: HashSet<[u8; 32]> = v.member_addresses(group)?.into_iter().map(|a| a.endpoint).collect();
    let session = v.session(group)?;
    let state = session.membership();
    for replica in session.replicas() {
        let id = replica.id();
        let Some(owner) = id.owner().filter(|m| id.kind == DocKind::Member && state.is_member(m)) else {
            continue;
        };
        if let Some(binding) = views::transport(replica).filter(|b| b.verify(group, &owner)) {
            known.insert(binding.key);
        }
    }
    Ok((known, state.members.keys().copied().collect()))
}

/// Recomputes `gate`'s known endpoint ids of `group` from the vault.
pub(crate) async fn refresh(shared: &SharedVault, gate: &Gate, group: GroupId) {
    match with_vault(shared, move |v| known_endpoints(v, &group)).await {
        Ok((known, members)) => gate.replace(known, |m| members.contains(m)),
        Err(e) => tracing::debug!(error = %e, "could not refresh the known endpoints"),
    }
}

/// Whether `item` may change which endpoint ids are known in its group: a membership
/// change, or a unit of a member document (where transport keys are announced).
fn touches_known(item: &Committed) -> Option<GroupId> {
    match item {
        Committed::Membership(g) => Some(*g),
        Committed::Unit(g, unit) if unit.header().doc.kind == DocKind::Member => Some(*g),
        _ => None,
    }
}

/// Keeps every served group's gate up to date with the vault: after each durable change
/// that may matter, the groups it touched are refreshed once (changes that arrive
/// meanwhile are taken together). Runs until the feed closes (it holds the vault only
/// weakly, so it never keeps the feed open itself) or the node aborts it.
pub(crate) async fn keep_known(
    shared: std::sync::Weak<crate::conn::Shared>,
    gates: Arc<Mutex<HashMap<GroupId, Arc<Gate>>>>,
    mut fresh: tokio::sync::broadcast::Receiver<Fresh>,
) {
    loop {
        let mut dirty: HashSet<GroupId> = HashSet::new();
        let mut lagged = false;
        match fresh.recv().await {
            Ok(f) => dirty.extend(touches_known(&f.item)),
            Err(RecvError::Lagged(_)) => lagged = true,
            Err(RecvError::Closed) => return,
        }
        loop {
            match fresh.try_recv() {
                Ok(f) => dirty.extend(touches_known(&f.item)),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                Err(_) => break,
            }
        }
        let todo: Vec<(GroupId, Arc<Gate>)> = gates
            .lock()
            .map(|g| {
                g.iter()
                    .filter(|(id, _)| lagged || dirty.contains(*id))
                    .map(|(id, gate)| (*id, gate.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let Some(strong) = shared.upgrade() else {
            return;
        };
        for (group, gate) in todo {
            refresh(&strong, &gate, group).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate_knowing(known: &[[u8; 32]]) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        gate.replace(known.iter().copied().collect(), |_| true);
        gate
    }

    #[test]
    fn strangers_fill_only_their_own_pool_and_a_known_endpoint_still_opens() {
        let member = [1u8; 32];
        let gate = gate_knowing(&[member]);
        let held: Vec<Opened> = (0..MAX_STRANGERS / MAX_OPENING_PER_STRANGER)
            .flat_map(|i| {
                let stranger = [i as u8 + 100; 32];
                (0..MAX_OPENING_PER_STRANGER).map(move |_| stranger)
            })
            .map(|e| gate.open(e).unwrap())
            .collect();
        assert_eq!(held.len(), MAX_STRANGERS);
        assert_eq!(gate.open([7; 32]).unwrap_err(), Turned::Crowded);
        let opened = gate.open(member).expect("a member is not a stranger");
        assert_eq!(opened.present_time(), MEMBER_PRESENT_TIME);
        drop(held);
        assert_eq!(gate.open([7; 32]).unwrap().present_time(), STRANGER_PRESENT_TIME);
    }

    #[test]
    fn one_endpoint_gets_only_its_share_and_gets_it_back_when_a_connection_ends() {
        let gate = gate_knowing(&[[1; 32]]);
        let first: Vec<Opened> = (0..MAX_OPENING_PER_STRANGER)
            .map(|_| gate.open([9; 32]).unwrap())
            .collect();
        assert_eq!(gate.open([9; 32]).unwrap_err(), Turned::EndpointBusy);
        let known: Vec<Opened> = (0..MAX_OPENING_PER_KNOWN)
            .map(|_| gate.open([1; 32]).unwrap())
            .collect();
        assert_eq!(gate.open([1; 32]).unwrap_err(), Turned::EndpointBusy);
        drop(first);
        drop(known);
        assert!(gate.open([9; 32]).is_ok());
    }

    #[test]
    fn a_learned_key_is_forgotten_when_its_member_leaves() {
        let gate = gate_knowing(&[]);
        let bob = MemberId([2; 32]);
        gate.learn([5; 32], bob);
        assert!(gate.is_known(&[5; 32]));
        gate.replace(HashSet::new(), |m| *m != bob);
        assert!(!gate.is_known(&[5; 32]));
    }

    #[test]
    fn hear_outs_are_capped_per_departed_member_and_per_group() {
        let gate = gate_knowing(&[]);
        let carol = MemberId([3; 32]);
        let first = gate.hear(carol).unwrap();
        assert_eq!(gate.hear(carol).unwrap_err(), Turned::HearingBusy);
        let others: Vec<Hearing> = (1..MAX_HEARINGS)
            .map(|i| gate.hear(MemberId([i as u8 + 10; 32])).unwrap())
            .collect();
        assert_eq!(gate.hear(MemberId([99; 32])).unwrap_err(), Turned::HearingBusy);
        drop(first);
        assert!(gate.hear(carol).is_ok());
        drop(others);
    }
}
