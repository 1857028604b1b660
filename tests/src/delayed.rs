//! A live connection in virtual time, for the simulation: two sync engines joined by an
//! ordered stream whose frames take `latency` ticks to arrive, so a conversation stays
//! open across many steps of a schedule while everything else (writing, membership
//! changes, other conversations) happens in between — the frames in flight meet a
//! changed world when they land. Unlike [`crate::Link`], nothing here runs to
//! completion: the caller delivers what is due at each tick.

use std::collections::VecDeque;

use alongside_core::group::GroupSession;
use alongside_core::sync::{PeerSync, ProtocolError, Step};

/// One open conversation between members `dialer` and `acceptor` (indices the caller
/// chooses), in virtual time.
pub struct DelayedLink {
    /// The member who dialed.
    pub dialer: usize,
    /// The member who accepted.
    pub acceptor: usize,
    a: PeerSync,
    b: PeerSync,
    /// Frames on their way to the acceptor, with the tick each arrives at.
    to_b: VecDeque<(u64, Vec<u8>)>,
    /// Frames on their way to the dialer.
    to_a: VecDeque<(u64, Vec<u8>)>,
    latency: u64,
    /// When the dialer last started a reconciliation round.
    pub last_round: u64,
    /// Frames delivered so far.
    pub delivered: usize,
}

impl DelayedLink {
    /// `dialer` (session `a`) dials `acceptor` (session `b`) at tick `now`; each frame
    /// takes `latency` ticks (at least one).
    pub fn open(
        dialer: usize,
        a: &GroupSession,
        acceptor: usize,
        b: &GroupSession,
        latency: u64,
        now: u64,
    ) -> DelayedLink {
        let (sync_a, first_a) = PeerSync::start(a, b.me(), true);
        let (sync_b, first_b) = PeerSync::start(b, a.me(), false);
        let mut link = DelayedLink {
            dialer,
            acceptor,
            a: sync_a,
            b: sync_b,
            to_b: VecDeque::new(),
            to_a: VecDeque::new(),
            latency: latency.max(1),
            last_round: now,
            delivered: 0,
        };
        link.send_from(dialer, first_a.frames, now);
        link.send_from(acceptor, first_b.frames, now);
        link
    }

    /// Whether member `k` is one end.
    pub fn involves(&self, k: usize) -> bool {
        self.dialer == k || self.acceptor == k
    }

    /// The other end from `k`.
    pub fn other(&self, k: usize) -> usize {
        if self.dialer == k { self.acceptor } else { self.dialer }
    }

    /// Member `k`'s engine.
    pub fn engine(&mut self, k: usize) -> &mut PeerSync {
        if self.dialer == k { &mut self.a } else { &mut self.b }
    }

    /// Puts `frames` from member `k` on the stream at tick `now`.
    pub fn send_from(&mut self, k: usize, frames: Vec<Vec<u8>>, now: u64) {
        let due = now + self.latency;
        let queue = if self.dialer == k {
            &mut self.to_b
        } else {
            &mut self.to_a
        };
        queue.extend(frames.into_iter().map(|f| (due, f)));
    }

    /// Sends what a step of member `k`'s engine produced.
    pub fn send_step(&mut self, k: usize, step: Step, now: u64) {
        self.send_from(k, step.frames, now);
    }

    /// The next frame that has arrived by tick `now`, and who receives it (the acceptor's
    /// first, then the dialer's, in each stream's order).
    pub fn next_due(&mut self, now: u64) -> Option<(usize, Vec<u8>)> {
        if self.to_b.front().is_some_and(|(due, _)| *due <= now) {
            return self.to_b.pop_front().map(|(_, f)| (self.acceptor, f));
        }
        if self.to_a.front().is_some_and(|(due, _)| *due <= now) {
            return self.to_a.pop_front().map(|(_, f)| (self.dialer, f));
        }
        None
    }

    /// Member `k` handles `frame` (a whole frame, length prefix included) with its
    /// session; its answer goes on the stream at tick `now`.
    pub fn handle(
        &mut self,
        k: usize,
        session: &mut GroupSession,
        frame: &[u8],
        now: u64,
    ) -> Result<(), ProtocolError> {
        self.delivered += 1;
        let step = self.engine(k).handle_frame(session, &frame[4..])?;
        self.send_step(k, step, now);
        Ok(())
    }

    /// Whether the acceptor, hearing out a departed dialer, is done with it.
    pub fn is_parted(&self) -> bool {
        self.b.is_parted()
    }
}
