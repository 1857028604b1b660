//! Deterministic simulation, first tier: four members (two of them facilitators) drive the
//! sans-IO sync engine over in-memory links that a seeded schedule opens, cuts
//! mid-conversation (losing whatever was in flight) and partitions; some conversations
//! stay open across steps, their frames taking 1–3 steps to arrive, while everything else
//! goes on. Members write every kind of content (stories, reactions, replies, goals and
//! check-ins, reach-outs and responses, agreements, concurrent typing in one meeting's
//! notes), some of it for chosen members only; roles change; part way, a facilitator
//! removes someone, or both facilitators remove someone before hearing of the other's
//! removal. After every conversation each side settles as the node does (rotating the key
//! when the membership asks for it). Then the network heals and every seed must end with:
//!
//! - all current members holding identical membership, roles and content;
//! - every story a current member wrote present on every current member's device, and
//!   every item for chosen members on exactly its current audience's devices;
//! - each departed member holding nothing written by a member who already knew it was gone,
//!   and counted as a member by nobody who remains.
//!
//! `SIM_SEEDS=1000 cargo test --workspace --test simulation` runs more seeds; a failing
//! seed is named in the panic and `SIM_SEED=<n>` replays exactly that one.

use std::collections::BTreeSet;

use alongside_core::group::{GroupSession, MembershipSecrets, ReceiveError};
use alongside_core::ids::MemberId;
use alongside_core::membership::Role;
use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewMeeting, NewStory};
use alongside_core::replica::Rejection;
use alongside_core::unit::SealedUnit;
use alongside_tests::delayed::DelayedLink;
use alongside_tests::{Link, NOW_MS, group, ordered_ops};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Members at the start; a fifth may be added during the run.
const MEMBERS: usize = 4;
const STEPS: usize = 60;
const MINUTE: i64 = 60_000;

/// A story as the checks follow it: who wrote it, its title, and the departed members
/// its author already knew were gone when writing it.
struct Written {
    author: usize,
    title: String,
    knew_gone: BTreeSet<usize>,
}

struct World {
    members: Vec<GroupSession>,
    rng: StdRng,
    /// Links that cannot carry anything now (a partition), as (lower, higher) index pairs.
    blocked: BTreeSet<(usize, usize)>,
    /// Members removed or gone (left), once the schedule made them so.
    gone: BTreeSet<usize>,
    seed: u64,
    written: Vec<Written>,
    /// Eve, once Ana added her.
    eve: Option<usize>,
    goals: Vec<Option<String>>,
    meeting: String,
    now: i64,
    /// Units pushed on live connections and not delivered yet.
    in_flight: Vec<Push>,
    /// The step the schedule is at.
    step: usize,
    /// Live conversations open across steps (frames take 1–3 steps to arrive).
    live: Vec<DelayedLink>,
    /// Membership operations each member held at the end of the last step.
    seen_ops: Vec<usize>,
    /// Items sent to chosen members only (audience documents), as the checks follow them.
    private: Vec<Private>,
    /// What the live conversations did: frames delivered, and frames refused (which
    /// closes the conversation, as the transport does).
    live_frames: usize,
    live_refused: usize,
    roles_changed: usize,
}

/// A reach-out or goal for chosen members: its id, who wrote it, and who it went to
/// (the writer included).
struct Private {
    id: String,
    author: usize,
    audience: BTreeSet<usize>,
}

/// A unit pushed from one member to another while connected, due at a later step (so
/// pushes arrive late, out of order, twice or not at all).
struct Push {
    due: usize,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut members = group(seed, &["Ana", "Ben", "Cy", "Dee"]);
        let meeting = NewMeeting {
            title: "Tuesday".into(),
            at: "2026-12-01T19:00:00+00:00".into(),
            place: None,
            facilitator: None,
            agenda: String::new(),
        };
        let meeting = members[0].add_meeting(&meeting, NOW_MS).unwrap().to_hex();
        // A second facilitator, so removals can be concurrent.
        let ben = members[1].me();
        members[0].change_role(&ben, Role::Facilitator, NOW_MS).unwrap();
        let mut world = World {
            members,
            rng: StdRng::seed_from_u64(seed),
            blocked: BTreeSet::new(),
            gone: BTreeSet::new(),
            seed,
            written: Vec::new(),
            eve: None,
            goals: vec![None; MEMBERS],
            meeting,
            now: NOW_MS,
            in_flight: Vec::new(),
            step: 0,
            live: Vec::new(),
            seen_ops: Vec::new(),
            private: Vec::new(),
            live_frames: 0,
            live_refused: 0,
            roles_changed: 0,
        };
        for j in 1..MEMBERS {
            world.sync(0, j, None);
        }
        world.seen_ops = world.members.iter().map(|m| m.op_count()).collect();
        world
    }

    fn id(&self, i: usize) -> MemberId {
        self.members[i].me()
    }

    fn knows_member(&self, i: usize, j: usize) -> bool {
        self.members[i].membership().is_member(&self.id(j))
    }

    /// Whether `i` knows `j` is gone: removed, left, or named by an add that is void (not
    /// merely unheard of: an add `i` has not heard of yet is no departure).
    fn knows_gone(&self, i: usize, j: usize) -> bool {
        let state = self.members[i].membership();
        let id = self.id(j);
        !state.is_member(&id) && (state.departed.contains_key(&id) || state.voided.contains(&id))
    }

    /// One conversation between `i` and `j`, as the transport allows it. The one who still
    /// counts the other as a member dials; if the other counts the dialer as gone, it hears
    /// the dialer's membership operations and parts (as a node does at the handshake).
    /// With `cut_after`, the connection drops after that many frames and everything in
    /// flight is lost. A protocol error ends it.
    fn sync(&mut self, i: usize, j: usize, cut_after: Option<usize>) {
        if i == j || self.blocked.contains(&(i.min(j), i.max(j))) {
            return;
        }
        match (self.knows_member(i, j), self.knows_member(j, i)) {
            (true, true) => self.converse(i, j, cut_after, false),
            (true, false) => self.converse(i, j, cut_after, true),
            (false, true) => self.converse(j, i, cut_after, true),
            (false, false) => return,
        }
        // As the node does after a conversation: rotate if the membership asks for it.
        let now = self.now;
        for k in [i, j] {
            let seed = self.seed;
            self.members[k]
                .settle(now)
                .unwrap_or_else(|e| panic!("seed {seed}: member {k} could not settle: {e}"));
            self.feed(k, None);
        }
    }

    /// `i` dials `j`; with `parting`, `j` counts `i` as gone and only hears it out.
    fn converse(&mut self, i: usize, j: usize, cut_after: Option<usize>, parting: bool) {
        let (a, b) = pair(&mut self.members, i, j);
        let mut link = if parting {
            Link::open_parting(a, b)
        } else {
            Link::open(a, b)
        };
        let mut carried = 0;
        link.converse(a, b, |_, _| {
            carried += 1;
            cut_after.is_none_or(|n| carried <= n)
        });
        // (What each took in goes on to its live conversations with others, in `sync`.)
    }

    fn write(&mut self, i: usize) {
        self.now += MINUTE;
        let now = self.now;
        if !self.knows_member(i, i) {
            return; // this member knows it is no longer in the group: it writes nothing more
        }
        let knew_gone: BTreeSet<usize> = self.gone.iter().copied().filter(|&g| self.knows_gone(i, g)).collect();
        match self.rng.random_range(0..9) {
            0 => {
                let title = format!("story {} by {i}", self.written.len());
                let story = NewStory {
                    title: title.clone(),
                    body: "What helped today.".into(),
                    warnings: Vec::new(),
                    no_replies: self.rng.random_bool(0.2),
                };
                self.members[i].add_story(&story, now).unwrap();
                self.written.push(Written {
                    author: i,
                    title,
                    knew_gone,
                });
            }
            1 => {
                let stories = self.members[i].stories();
                if !stories.is_empty() {
                    let target = stories[self.rng.random_range(0..stories.len())].id.clone();
                    self.members[i].react(&target, "support", now).unwrap();
                }
            }
            2 => {
                let goal = match &self.goals[i] {
                    Some(goal) => goal.clone(),
                    None => {
                        // Three in ten are shared with chosen members only.
                        let chosen = if self.rng.random_bool(0.3) {
                            self.choose(i)
                        } else {
                            Vec::new()
                        };
                        let ids: Vec<MemberId> = chosen.iter().map(|&k| self.id(k)).collect();
                        let goal = self.members[i].add_goal("Walk", None, &ids, now).unwrap().to_hex();
                        self.keep_private(i, &goal, &chosen);
                        self.goals[i] = Some(goal.clone());
                        goal
                    }
                };
                let day = self.rng.random_range(1..28);
                let checkin = NewCheckIn {
                    date: format!("2026-11-{day:02}"),
                    kind: if self.rng.random_bool(0.2) {
                        CheckInKind::Setback
                    } else {
                        CheckInKind::Progress
                    },
                    mood: Some(3),
                    craving: None,
                    halt: Vec::new(),
                    note: String::new(),
                };
                self.members[i].check_in(&goal, &checkin, now).unwrap();
            }
            4 => {
                // A reply, unless the author asked for none (then it must be refused).
                let stories = self.members[i].stories();
                if !stories.is_empty() {
                    let story = &stories[self.rng.random_range(0..stories.len())];
                    let replied = self.members[i].reply(&story.id, "Thank you for this.", now);
                    assert_eq!(replied.is_ok(), !story.no_replies, "seed {}: {replied:?}", self.seed);
                }
            }
            5 => {
                // A reach-out, to the group or (half the time) to chosen members.
                let chosen = if self.rng.random_bool(0.5) {
                    self.choose(i)
                } else {
                    Vec::new()
                };
                let ids: Vec<MemberId> = chosen.iter().map(|&k| self.id(k)).collect();
                let id = self.members[i].reach_out("Hard evening.", &ids, now).unwrap().to_hex();
                self.keep_private(i, &id, &chosen);
            }
            6 => {
                // A response to a reach-out this member can read.
                let reach_outs = self.members[i].reach_outs();
                if !reach_outs.is_empty() {
                    let r = &reach_outs[self.rng.random_range(0..reach_outs.len())];
                    self.members[i].respond(&r.id, "I am here.", now).unwrap();
                }
            }
            7 => {
                // A facilitator (as far as this device knows) sets the agreements; anyone
                // else acknowledges them, if there are any.
                if self.members[i].membership().is_facilitator(&self.id(i)) {
                    let text = format!("Agreements, version {}", self.step);
                    self.members[i].set_agreement(&text, now).unwrap();
                } else if self.members[i].agreement().is_some() {
                    self.members[i].acknowledge_agreement(now).unwrap();
                }
            }
            8 => {
                // Meeting business: attendance, action items, or a new meeting.
                let meetings = self.members[i].meetings();
                if meetings.is_empty() {
                    return; // (someone just added has not received any yet)
                }
                let m = meetings[self.rng.random_range(0..meetings.len())].clone();
                let me = self.id(i);
                match self.rng.random_range(0..4) {
                    0 => self.members[i]
                        .set_attendance(&m.id, me, self.rng.random_bool(0.8))
                        .unwrap(),
                    1 => {
                        let text = format!("action {} by {i}", self.step);
                        self.members[i].add_action_item(&m.id, &text, Some(me)).unwrap();
                    }
                    2 if !m.actions.is_empty() => {
                        let a = &m.actions[self.rng.random_range(0..m.actions.len())];
                        self.members[i].set_action_done(&m.id, &a.id, !a.done).unwrap();
                    }
                    _ => {
                        let meeting = NewMeeting {
                            title: format!("meeting {} by {i}", self.step),
                            at: "2026-12-08T19:00:00+00:00".into(),
                            place: Some("the library".into()),
                            facilitator: None,
                            agenda: "Check-ins.".into(),
                        };
                        self.members[i].add_meeting(&meeting, now).unwrap();
                    }
                }
            }
            _ => {
                // (Someone just added has not received the meeting yet.)
                let meetings = self.members[i].meetings();
                let Some(base) = meetings.iter().find(|m| m.id == self.meeting).map(|m| m.notes.clone()) else {
                    return;
                };
                let at = self.rng.random_range(0..=base.chars().count());
                let mut typed: String = base.chars().take(at).collect();
                typed.push_str(&format!("[{i}]"));
                typed.extend(base.chars().skip(at));
                self.members[i]
                    .edit_meeting_notes_from(&self.meeting, &base, &typed)
                    .unwrap();
            }
        }
        self.push_from(i);
    }

    /// One to two members `i` counts as current, other than `i`, chosen at random.
    fn choose(&mut self, i: usize) -> Vec<usize> {
        let others: Vec<usize> = (0..self.members.len())
            .filter(|&k| k != i && self.knows_member(i, k))
            .collect();
        if others.is_empty() {
            return Vec::new();
        }
        let mut chosen = vec![others[self.rng.random_range(0..others.len())]];
        let second = others[self.rng.random_range(0..others.len())];
        if self.rng.random_bool(0.5) && !chosen.contains(&second) {
            chosen.push(second);
        }
        chosen
    }

    /// Follows item `id` written by `i` if it went to `chosen` members only.
    fn keep_private(&mut self, i: usize, id: &str, chosen: &[usize]) {
        if !chosen.is_empty() {
            let mut audience: BTreeSet<usize> = chosen.iter().copied().collect();
            audience.insert(i);
            self.private.push(Private {
                id: id.to_string(),
                author: i,
                audience,
            });
        }
    }

    /// What member `k` made or took in since last time goes out on its live
    /// conversations (not on `except`, where it came from), as a node's feed does.
    fn feed(&mut self, k: usize, except: Option<usize>) {
        let mut units = self.members[k].take_outbox();
        units.extend(self.members[k].take_accepted());
        self.push_live(k, &units, except);
    }

    fn push_live(&mut self, k: usize, units: &[SealedUnit], except: Option<usize>) {
        let now = self.step as u64;
        for (n, link) in self.live.iter_mut().enumerate() {
            if Some(n) == except || !link.involves(k) {
                continue;
            }
            for unit in units {
                let step = link.engine(k).push(&self.members[k], unit);
                link.send_step(k, step, now);
            }
        }
    }

    /// `i` dials `j` for a live conversation, if they could hold one and have none.
    fn open_live(&mut self, i: usize, j: usize) {
        if !self.linked(i, j) || self.live.iter().any(|l| l.involves(i) && l.other(i) == j) {
            return;
        }
        let latency = self.rng.random_range(1..=3);
        let link = DelayedLink::open(i, &self.members[i], j, &self.members[j], latency, self.step as u64);
        self.live.push(link);
    }

    /// Every live conversation delivers what has arrived by now, in order; the dialer
    /// starts a round every ten steps. A refused frame or a blocked link ends it.
    fn advance_live(&mut self) {
        let now = self.step as u64;
        let mut n = 0;
        while n < self.live.len() {
            let (a, b) = (self.live[n].dialer, self.live[n].acceptor);
            let mut open = !self.blocked.contains(&(a.min(b), a.max(b)));
            if open && now >= self.live[n].last_round + 10 {
                let link = &mut self.live[n];
                if let Some(step) = link.engine(a).begin_round(&self.members[a]) {
                    link.last_round = now;
                    link.send_step(a, step, now);
                }
            }
            while open {
                let Some((to, frame)) = self.live[n].next_due(now) else {
                    break;
                };
                match self.live[n].handle(to, &mut self.members[to], &frame, now) {
                    Ok(()) => {
                        self.live_frames += 1;
                        self.feed(to, Some(n));
                        open = !self.live[n].is_parted();
                    }
                    Err(_) => {
                        self.live_refused += 1;
                        open = false;
                    }
                }
            }
            if open {
                n += 1;
            } else {
                self.live.remove(n);
            }
        }
    }

    /// After a step, as a node does on a membership change: the member settles (rotating
    /// if asked), pushes the operations its live peers lack, and ends live conversations
    /// with anyone it no longer counts as a member (or all of them, if it is gone itself).
    fn membership_changes(&mut self) {
        let now_ms = self.now;
        let now = self.step as u64;
        let mut changed = true;
        while changed {
            changed = false;
            for k in 0..self.members.len() {
                if self.members[k].op_count() == self.seen_ops[k] {
                    continue;
                }
                changed = true;
                let seed = self.seed;
                self.members[k]
                    .settle(now_ms)
                    .unwrap_or_else(|e| panic!("seed {seed}: member {k} could not settle: {e}"));
                self.seen_ops[k] = self.members[k].op_count();
                self.feed(k, None);
                let mut n = 0;
                while n < self.live.len() {
                    let link = &self.live[n];
                    if !link.involves(k) {
                        n += 1;
                        continue;
                    }
                    let other = link.other(k);
                    if !self.knows_member(k, k) || !self.knows_member(k, other) {
                        self.live.remove(n);
                        continue;
                    }
                    let link = &mut self.live[n];
                    let step = link.engine(k).push_membership(&self.members[k]);
                    link.send_step(k, step, now);
                    n += 1;
                }
            }
        }
    }

    /// What `i` just wrote goes out on the live connections it has now (each member it
    /// counts as a member, who counts it too, over a link not cut, connected or not by
    /// chance): lost one time in ten, doubled one time in ten, delayed 0–4 steps.
    fn push_from(&mut self, i: usize) {
        let made = self.members[i].take_outbox();
        self.push_live(i, &made, None);
        let units: Vec<Vec<u8>> = made.into_iter().map(|u| u.bytes().to_vec()).collect();
        for j in 0..self.members.len() {
            if !self.linked(i, j) || !self.rng.random_bool(0.5) {
                continue;
            }
            for bytes in &units {
                if self.rng.random_bool(0.1) {
                    continue;
                }
                let copies = if self.rng.random_bool(0.1) { 2 } else { 1 };
                for _ in 0..copies {
                    let due = self.step + self.rng.random_range(0..5);
                    self.in_flight.push(Push {
                        due,
                        from: i,
                        to: j,
                        bytes: bytes.clone(),
                    });
                }
            }
        }
    }

    /// Whether `i` and `j` could hold a live connection now.
    fn linked(&self, i: usize, j: usize) -> bool {
        i != j && !self.blocked.contains(&(i.min(j), i.max(j))) && self.knows_member(i, j) && self.knows_member(j, i)
    }

    /// Delivers the pushes due, in a shuffled order, over links that still hold. An honest
    /// push may wait for its dependencies or be skipped, never refused as malformed.
    fn deliver_due(&mut self) {
        let (mut due, later): (Vec<Push>, Vec<Push>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|p| p.due <= self.step);
        self.in_flight = later;
        for k in (1..due.len()).rev() {
            due.swap(k, self.rng.random_range(0..=k));
        }
        for p in due {
            if !self.linked(p.from, p.to) {
                continue;
            }
            let got = self.members[p.to].receive_unit(&p.bytes);
            let seed = self.seed;
            assert!(
                matches!(
                    got,
                    Ok(_)
                        | Err(ReceiveError::NoKey
                            | ReceiveError::NotAMember
                            | ReceiveError::QueueFull
                            | ReceiveError::Rejected(Rejection::AfterRemoval | Rejection::NotAllowed))
                ),
                "seed {seed}: member {} refused a push from {}: {got:?}",
                p.to,
                p.from
            );
            self.feed(p.to, None);
        }
    }

    /// A random schedule of writing, pushes, conversations (some cut short), partitions,
    /// perhaps a member added, and one departure.
    fn run(&mut self) {
        let removal_step = self.rng.random_range(STEPS / 4..STEPS * 3 / 4);
        // (Before the departure: an add after it is void whenever its author was removed,
        // which the schedule does not track.)
        let add_step = self.rng.random_range(0..removal_step);
        let adding = self.rng.random_bool(0.5);
        for step in 0..STEPS {
            self.step = step;
            self.deliver_due();
            self.advance_live();
            if step == removal_step {
                self.depart();
            }
            if adding && step == add_step {
                self.add();
            }
            let n = self.members.len();
            let i = self.rng.random_range(0..n);
            let j = self.rng.random_range(0..n);
            match self.rng.random_range(0..13) {
                0..=4 => self.write(i),
                5 | 6 => {
                    let cut = self.rng.random_bool(0.3).then(|| self.rng.random_range(1..6));
                    self.sync(i, j, cut);
                }
                7 | 8 => self.open_live(i, j),
                9 if !self.live.is_empty() => {
                    // A live connection drops; what was in flight is lost.
                    let k = self.rng.random_range(0..self.live.len());
                    self.live.remove(k);
                }
                10 => self.change_role(),
                11 if i != j => {
                    self.blocked.insert((i.min(j), i.max(j)));
                }
                _ => self.blocked.clear(),
            }
            self.membership_changes();
        }
    }

    /// Ana, if she is a facilitator here, makes Cy or Dee a facilitator, or a member again.
    /// (Never Ben: the concurrent removals below need him a facilitator.)
    fn change_role(&mut self) {
        let who = self.rng.random_range(2..MEMBERS);
        let id = self.id(who);
        let ana = &self.members[0];
        if !ana.membership().is_facilitator(&self.id(0)) || !ana.membership().is_member(&id) {
            return;
        }
        let role = if ana.membership().is_facilitator(&id) {
            Role::Member
        } else {
            Role::Facilitator
        };
        self.now += MINUTE;
        self.members[0].change_role(&id, role, self.now).unwrap();
        self.roles_changed += 1;
        self.feed(0, None);
    }

    /// Ana, if she is still a facilitator here, adds Eve, who joins from Ana's operations
    /// (as from the join exchange) and takes part from then on.
    fn add(&mut self) {
        if !self.members[0].membership().is_facilitator(&self.id(0)) {
            return;
        }
        let secrets = MembershipSecrets::generate(&mut StdRng::seed_from_u64(self.seed ^ 0xe7e));
        let keys = secrets.public_keys(&self.members[0].id());
        self.members[0].add_member(keys, Role::Member, self.now).unwrap();
        let ops = ordered_ops(&self.members[0]);
        let mut eve = GroupSession::join(StdRng::seed_from_u64(self.seed ^ 0xe7f), secrets, &ops).unwrap();
        eve.set_display_name("Eve").unwrap();
        self.members.push(eve);
        self.goals.push(None);
        self.eve = Some(self.members.len() - 1);
        self.seen_ops.push(0);
        self.feed(0, None);
        self.push_from(self.members.len() - 1);
    }

    /// One departure, or two at once: Ana removes someone; or someone leaves; or Ana and
    /// Ben, both facilitators, each remove someone before hearing of the other's removal
    /// (perhaps each other: both take effect).
    fn depart(&mut self) {
        let now = self.now;
        // Without the known gaps: a removal or two concurrent ones; with them: a removal,
        // a leave, or two concurrent removals that may target each other.
        let kind = self.rng.random_range(0..3);
        let n = self.members.len();
        match kind {
            0 => {
                let r = self.rng.random_range(1..n);
                let id = self.id(r);
                self.members[0].remove_member(&id, now).unwrap();
                self.gone.insert(r);
            }
            1 => {
                // Ana removes `a` and Ben removes `b`, neither having heard of the other's.
                // By strong removal, a removal whose author is removed concurrently does
                // not take effect; two facilitators removing each other both go.
                let a = self.rng.random_range(1..n);
                let b = [0, 2, 3][self.rng.random_range(0..3)];
                // Ana's add of Eve, if Ben has not heard of it, is concurrent with his
                // removal of Ana: if he removes her, Eve was never added.
                if let Some(eve) = self.eve
                    && b == 0
                    && !self.knows_member(1, eve)
                {
                    self.gone.insert(eve);
                }
                for (remover, r) in [(0, a), (1, b)] {
                    let id = self.id(r);
                    self.members[remover].remove_member(&id, now).unwrap();
                }
                match (a, b) {
                    (1, 0) => self.gone.insert(0) | self.gone.insert(1),
                    (1, _) => self.gone.insert(1), // Ben's removal of `b` does not count
                    (_, 0) => self.gone.insert(0), // Ana's removal of `a` does not count
                    _ => self.gone.insert(a) | self.gone.insert(b),
                };
            }
            _ => {
                let l = self.rng.random_range(0..n);
                self.members[l].leave(now).unwrap();
                self.gone.insert(l);
            }
        }
        for k in 0..self.members.len() {
            self.feed(k, None);
        }
    }

    /// Partitions heal; everyone talks to everyone until nothing changes.
    fn heal(&mut self) {
        self.live.clear();
        self.blocked.clear();
        for _ in 0..6 {
            for i in 0..self.members.len() {
                for j in 0..self.members.len() {
                    self.sync(i, j, None);
                }
            }
        }
    }

    fn current(&self) -> Vec<usize> {
        (0..self.members.len()).filter(|i| !self.gone.contains(i)).collect()
    }

    fn check(&self, seed: u64) {
        let current = self.current();
        let view = |i: usize| {
            let s = &self.members[i];
            let mut ops: Vec<_> = s.ops().iter().map(|o| o.hash()).collect();
            ops.sort();
            let stories: Vec<_> = s
                .stories()
                .into_iter()
                .map(|st| (st.id, st.title, st.reactions.len(), st.replies.len()))
                .collect();
            // (Items for chosen members only are checked below: not everyone sees them.)
            let goals: Vec<_> = s
                .goals(NOW_MS)
                .into_iter()
                .filter(|g| g.audience.is_none())
                .map(|g| (g.id, g.checkins.len(), g.streak))
                .collect();
            let reach_outs: Vec<_> = s
                .reach_outs()
                .into_iter()
                .filter(|r| r.audience.is_none())
                .map(|r| (r.id, r.responses.len()))
                .collect();
            let agreement = s.agreement().map(|a| (a.text, a.version, a.acknowledged_by.len()));
            let roles: Vec<_> = s.members().into_iter().map(|m| (m.id, m.role)).collect();
            let shared = (reach_outs, agreement, roles);
            // Every meeting, with notes, attendance and action items.
            let meetings = format!("{:?}", s.meetings());
            (ops, stories, goals, meetings, shared)
        };
        let first = view(current[0]);
        for &i in &current[1..] {
            assert_eq!(
                view(i),
                first,
                "seed {seed}: members {} and {i} differ after healing",
                current[0]
            );
        }
        let titles: BTreeSet<String> = first.1.iter().map(|(_, t, _, _)| t.clone()).collect();
        for w in self.written.iter().filter(|w| !self.gone.contains(&w.author)) {
            assert!(titles.contains(&w.title), "seed {seed}: \"{}\" was lost", w.title);
        }
        self.check_private(seed, &current);
        for &g in &self.gone {
            let theirs: BTreeSet<String> = self.members[g].stories().into_iter().map(|s| s.title).collect();
            for w in self.written.iter().filter(|w| w.knew_gone.contains(&g)) {
                assert!(
                    !theirs.contains(&w.title),
                    "seed {seed}: member {g}, gone, holds \"{}\", written after its author knew",
                    w.title
                );
            }
            assert!(
                current.iter().all(|&i| !self.knows_member(i, g)),
                "seed {seed}: a current member still counts member {g}, gone, as a member"
            );
        }
    }
}

impl World {
    /// Item `id` for chosen members as member `k` sees it, if it can.
    fn private_view(&self, k: usize, id: &str) -> Option<String> {
        let s = &self.members[k];
        if let Some(r) = s.reach_outs().into_iter().find(|r| r.id == id) {
            return Some(format!("{} ({} responses)", r.message, r.responses.len()));
        }
        s.goals(NOW_MS)
            .into_iter()
            .find(|g| g.id == id)
            .map(|g| format!("{} ({} check-ins, {:?})", g.title, g.checkins.len(), g.streak))
    }

    /// Every item for chosen members: each current member of its audience holds it (unless
    /// its author departed) and sees the same; no current member outside it sees it.
    fn check_private(&self, seed: u64, current: &[usize]) {
        for p in &self.private {
            let mut seen: Option<String> = None;
            for &k in current {
                let view = self.private_view(k, &p.id);
                if !p.audience.contains(&k) {
                    assert!(
                        view.is_none(),
                        "seed {seed}: member {k} sees {}, not meant for it",
                        p.id
                    );
                    continue;
                }
                let Some(view) = view else {
                    assert!(
                        self.gone.contains(&p.author),
                        "seed {seed}: member {k} lost {} by {}, meant for it",
                        p.id,
                        p.author
                    );
                    continue;
                };
                if let Some(before) = &seen {
                    assert_eq!(
                        &view, before,
                        "seed {seed}: the audience of {} sees it differently",
                        p.id
                    );
                }
                seen = Some(view);
            }
        }
    }
}

fn pair(members: &mut [GroupSession], i: usize, j: usize) -> (&mut GroupSession, &mut GroupSession) {
    if i < j {
        let (low, high) = members.split_at_mut(j);
        (&mut low[i], &mut high[0])
    } else {
        let (low, high) = members.split_at_mut(i);
        (&mut high[0], &mut low[j])
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    (0..n).collect()
}

#[test]
fn every_seed_converges_loses_nothing_and_keeps_the_removed_member_out() {
    let (mut stories, mut after_removal, mut typed, mut added, mut voided) = (0, 0, 0, 0, 0);
    let (mut live_frames, mut live_refused, mut roles, mut private) = (0, 0, 0, 0);
    let seeds = seeds();
    for &seed in &seeds {
        let mut world = World::new(seed);
        world.run();
        world.heal();
        world.check(seed);
        stories += world.written.len();
        after_removal += world.written.iter().filter(|w| !w.knew_gone.is_empty()).count();
        typed += world.members[0]
            .meetings()
            .iter()
            .filter(|m| m.id == world.meeting)
            .map(|m| m.notes.matches('[').count())
            .sum::<usize>();
        added += usize::from(world.eve.is_some());
        voided += usize::from(world.eve.is_some_and(|e| world.gone.contains(&e)));
        live_frames += world.live_frames;
        live_refused += world.live_refused;
        roles += world.roles_changed;
        private += world.private.len();
    }
    println!("{live_frames} live frames, {live_refused} refused, {roles} role changes, {private} private items");
    // The schedules exercise what the checks are about (not only quiet runs; one seed
    // alone may well be quiet).
    assert!(
        seeds.len() < 20 || (stories > 0 && after_removal > 0 && typed > 0 && added > 0 && voided > 0),
        "{stories} stories, {after_removal} after a departure, {typed} typed, {added} added, {voided} void"
    );
}
