//! Shared helpers for Alongside's multi-member, security and fault tests and benchmarks.
//!
//! Until the sync layer lands, "other devices" are [`GroupSession`]s in the same process:
//! units move between them as bytes, exactly as they would travel.

use alongside_core::group::{GroupSession, MembershipSecrets};
use alongside_core::membership::Role;
use alongside_core::sync::{Message, PeerSync, ProtocolError, Step, SyncStats};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub mod delayed;
pub mod impair;
pub mod netns;
pub mod trace;

/// A fixed clock for tests: 2026-11-29T12:00:00Z.
pub const NOW_MS: i64 = 1_795_953_600_000;

/// A seeded RNG.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// A group of `names.len()` members: the first creates it and adds the others as
/// members; everyone holds every membership operation and display-name unit.
pub fn group(seed: u64, names: &[&str]) -> Vec<GroupSession> {
    let mut creator = GroupSession::create(rng(seed), "Tuesday Circle", names[0], NOW_MS).expect("create group");
    let mut secrets = Vec::new();
    for (i, _) in names.iter().enumerate().skip(1) {
        let s = MembershipSecrets::generate(&mut rng(seed.wrapping_mul(1000).wrapping_add(i as u64)));
        creator
            .add_member(s.public_keys(&creator.id()), Role::Member, NOW_MS)
            .expect("add member");
        secrets.push(s);
    }
    let ops = ordered_ops(&creator);
    let mut members = vec![creator];
    for (i, s) in secrets.into_iter().enumerate() {
        let mut m = GroupSession::join(rng(seed.wrapping_mul(2000).wrapping_add(i as u64)), s, &ops).expect("join");
        m.set_display_name(names[i + 1]).expect("name");
        members.push(m);
    }
    let units: Vec<Vec<u8>> = members
        .iter_mut()
        .flat_map(|m| m.take_outbox())
        .map(|u| u.bytes().to_vec())
        .collect();
    deliver(&mut members, &units);
    members
}

/// A session's operations with the create operation first.
pub fn ordered_ops(s: &GroupSession) -> Vec<alongside_core::membership::SignedOp> {
    let mut ops = s.ops();
    ops.sort_by_key(|o| !o.op().parents.is_empty());
    ops
}

/// A story titled `title`, with a body that names it, no warnings, replies open.
pub fn story(title: &str) -> alongside_core::model::edits::NewStory {
    alongside_core::model::edits::NewStory {
        title: title.into(),
        body: format!("{title}: in my own words."),
        ..Default::default()
    }
}

/// The units `s` made since last asked, as bytes.
pub fn outbox(s: &mut GroupSession) -> Vec<Vec<u8>> {
    s.take_outbox().into_iter().map(|u| u.bytes().to_vec()).collect()
}

/// The titles of the stories `s` can read, sorted.
pub fn titles(s: &GroupSession) -> Vec<String> {
    let mut t: Vec<String> = s.stories().into_iter().map(|s| s.title).collect();
    t.sort();
    t
}

/// Ana and Ben facilitators, Cy and Dee members, everyone holding every operation.
pub fn circle(seed: u64) -> Vec<GroupSession> {
    let mut g = group(seed, &["Ana", "Ben", "Cy", "Dee"]);
    let ben = g[1].me();
    g[0].change_role(&ben, Role::Facilitator, NOW_MS)
        .expect("make Ben a facilitator");
    for to in 1..4 {
        tell_ops(&mut g, 0, to);
    }
    g
}

/// Hands `members[to]` every membership operation `members[from]` holds.
pub fn tell_ops(members: &mut [GroupSession], from: usize, to: usize) {
    let ops = ordered_ops(&members[from]);
    members[to]
        .receive_ops(&ops)
        .expect("operations an honest member holds");
}

/// Offers every unit to every member (a member's own units are duplicates to it).
pub fn deliver(members: &mut [GroupSession], units: &[Vec<u8>]) {
    for m in members.iter_mut() {
        for u in units {
            let _ = m.receive_unit(u);
        }
    }
}

/// Moves every member's outbox to every other member until nothing new happens.
pub fn sync_all(members: &mut [GroupSession]) {
    loop {
        let units: Vec<Vec<u8>> = members
            .iter_mut()
            .flat_map(|m| m.take_outbox())
            .map(|u| u.bytes().to_vec())
            .collect();
        if units.is_empty() {
            return;
        }
        deliver(members, &units);
    }
}

/// Two engines connected by an in-memory, lossless stream: `a` dialed `b`.
pub struct Link {
    /// `a`'s engine (the dialer).
    pub a: PeerSync,
    /// `b`'s engine (the acceptor).
    pub b: PeerSync,
    to_a: Vec<Vec<u8>>,
    to_b: Vec<Vec<u8>>,
    /// Every message `a` sent, decoded.
    pub sent_a: Vec<Message>,
    /// Every message `b` sent, decoded.
    pub sent_b: Vec<Message>,
}

impl Link {
    /// Opens a connection: both sides start (frames not yet delivered).
    pub fn open(a: &GroupSession, b: &GroupSession) -> Link {
        Link::connect(PeerSync::start(a, b.me(), true), PeerSync::start(b, a.me(), false))
    }

    /// Opens the connection a member who is gone as far as `b` knows makes when dialing
    /// `b`: `b` only hears `a`'s membership operations and parts
    /// ([`PeerSync::start_parting`]).
    pub fn open_parting(a: &GroupSession, b: &GroupSession) -> Link {
        Link::connect(PeerSync::start(a, b.me(), true), PeerSync::start_parting(b, a.me()))
    }

    fn connect((a, step_a): (PeerSync, Step), (b, step_b): (PeerSync, Step)) -> Link {
        Link {
            a,
            b,
            to_b: step_a.frames,
            to_a: step_b.frames,
            sent_a: Vec::new(),
            sent_b: Vec::new(),
        }
    }

    /// Queues frames `a` produced outside `pump` (a push, a new round).
    pub fn send_from_a(&mut self, frames: Vec<Vec<u8>>) {
        self.to_b.extend(frames);
    }

    /// Queues frames `b` produced outside `pump`.
    pub fn send_from_b(&mut self, frames: Vec<Vec<u8>>) {
        self.to_a.extend(frames);
    }

    /// Delivers frames both ways until neither side has anything to send.
    pub fn pump(&mut self, a: &mut GroupSession, b: &mut GroupSession) {
        let cut = self.pump_while(a, b, |_, _| true);
        assert!(!cut);
    }

    /// Delivers frames both ways, in order, while `keep(from_a, message)` allows the next
    /// one; at the first it refuses, the connection is cut: that frame and everything still
    /// in flight are lost. Returns whether it was cut.
    pub fn pump_while(
        &mut self,
        a: &mut GroupSession,
        b: &mut GroupSession,
        keep: impl FnMut(bool, &Message) -> bool,
    ) -> bool {
        match self.converse(a, b, keep) {
            Ending::Settled => false,
            Ending::Cut => true,
            Ending::Refused(e) => panic!("an honest frame was refused: {e}"),
        }
    }

    /// Like [`Link::pump_while`], but a frame the receiving engine refuses ends the
    /// connection (as the transport closes it) instead of failing the test; so does `b`
    /// parting from a departed `a`.
    pub fn converse(
        &mut self,
        a: &mut GroupSession,
        b: &mut GroupSession,
        mut keep: impl FnMut(bool, &Message) -> bool,
    ) -> Ending {
        let mut rounds = 0;
        while (!self.to_a.is_empty() || !self.to_b.is_empty()) && !self.b.is_parted() {
            rounds += 1;
            assert!(rounds < 1000, "sync does not settle");
            for frame in std::mem::take(&mut self.to_b) {
                let msg = Message::decode(&frame[4..]).expect("valid frame");
                if !keep(true, &msg) {
                    self.cut();
                    return Ending::Cut;
                }
                self.sent_a.push(msg);
                match self.b.handle_frame(b, &frame[4..]) {
                    Ok(step) => self.to_a.extend(step.frames),
                    Err(e) => return self.refused(e),
                }
            }
            for frame in std::mem::take(&mut self.to_a) {
                let msg = Message::decode(&frame[4..]).expect("valid frame");
                if !keep(false, &msg) {
                    self.cut();
                    return Ending::Cut;
                }
                self.sent_b.push(msg);
                match self.a.handle_frame(a, &frame[4..]) {
                    Ok(step) => self.to_b.extend(step.frames),
                    Err(e) => return self.refused(e),
                }
            }
        }
        Ending::Settled
    }

    fn refused(&mut self, e: ProtocolError) -> Ending {
        self.cut();
        Ending::Refused(e)
    }

    fn cut(&mut self) {
        self.to_a.clear();
        self.to_b.clear();
    }
}

/// How a [`Link::converse`] ended.
#[derive(Debug)]
pub enum Ending {
    /// Neither side had anything more to send (or `b` parted from a departed `a`).
    Settled,
    /// The connection was cut where the caller asked; what was in flight is lost.
    Cut,
    /// A side refused a frame and the connection closed.
    Refused(ProtocolError),
}

/// Runs the sync engine between `a` (dialer) and `b` until neither has anything to send,
/// passing frames as bytes. Returns both sides' stats and the messages each side sent.
pub fn sync_pair(a: &mut GroupSession, b: &mut GroupSession) -> (SyncStats, SyncStats, Vec<Message>, Vec<Message>) {
    let mut link = Link::open(a, b);
    link.pump(a, b);
    assert!(link.a.is_caught_up() && link.b.is_caught_up(), "both sides caught up");
    a.take_outbox();
    b.take_outbox();
    (link.a.stats(), link.b.stats(), link.sent_a, link.sent_b)
}
