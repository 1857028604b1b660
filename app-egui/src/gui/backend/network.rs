//! The backend's network side: starting and stopping the node, what it reports
//! (connections, rounds), and the slow network work the UI asks for — "sync now", joining
//! with a ticket, making an invitation — which runs as tasks that report back as
//! [`Input::Done`].
//!
//! Who is reachable and when each member last synced are what the node reported since the
//! profile was unlocked; nothing about them is stored.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::time::Duration;

use alongside_core::ids::{GroupId, MemberId};
use alongside_core::invite::Ticket;
use alongside_core::vault::{Vault, VaultError};
use alongside_net::{NetError, Node, NodeEvent, RelayChoice};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Backend, BackendError, Event, Input, failed, now_ms};

/// How long "sync now" keeps trying before it says nobody could be reached.
const SYNC_PATIENCE: Duration = Duration::from_secs(30);

/// A member as the group's home lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberStatus {
    /// Their member id (hex).
    pub(crate) id: String,
    /// Their display name.
    pub(crate) name: String,
    /// `facilitator` or `member`.
    pub(crate) role: String,
    /// The member using this device.
    pub(crate) me: bool,
    /// Connected to this device now.
    pub(crate) reachable: bool,
    /// When this device last finished a sync round with them (Unix ms), since unlock.
    pub(crate) last_sync_ms: Option<i64>,
}

/// How this device stands with a group's members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupStatus {
    /// The group.
    #[serde(with = "super::shown_last::group_hex")]
    pub(crate) group: GroupId,
    /// Every current member, this one first.
    pub(crate) members: Vec<MemberStatus>,
    /// Changes written here while nobody was connected, not yet synced since.
    pub(crate) waiting: usize,
    /// A "sync now" is under way.
    pub(crate) syncing: bool,
    /// Until when meeting mode is on for this group (Unix ms; `None`: off). Shown as on
    /// only while this time lies ahead; never restored from a kept page (the live status
    /// says).
    #[serde(skip)]
    pub(crate) meeting_until: Option<i64>,
    /// Whether this device allows local-network discovery at all.
    pub(crate) lan_allowed: bool,
}

impl GroupStatus {
    /// Names of the other members connected now.
    pub(crate) fn reachable_names(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|m| m.reachable && !m.me)
            .map(|m| m.name.as_str())
            .collect()
    }
}

/// A one-time invitation, ready to hand over.
#[derive(Debug, Clone)]
pub(crate) struct InviteView {
    /// The group.
    pub(crate) group: GroupId,
    /// The ticket text (it holds the invite key: wiped when the view goes).
    pub(crate) ticket: Zeroizing<String>,
    /// The ticket as a QR code: side length and dark modules, row by row.
    pub(crate) qr: Option<(usize, Vec<bool>)>,
    /// How long it works.
    pub(crate) valid_for: Duration,
}

/// Network work that ended.
pub(crate) enum Done {
    /// A sync of a whole group ended.
    Synced {
        group: GroupId,
        /// Asked for with "Sync now" (say how it went), or started by the backend itself.
        asked: bool,
        /// Members reached, or why none was (`None`: nobody answered in time).
        result: Option<Result<usize, NetError>>,
    },
    /// Joining ended.
    Joined(Result<GroupId, NetError>),
    /// An invitation was made.
    Invited {
        group: GroupId,
        valid_for: Duration,
        result: Result<Ticket, NetError>,
    },
    /// Meeting mode of a group reached the end it had when this was scheduled.
    MeetingModeEnded { group: GroupId, until: i64 },
}

/// What the node reported since the profile was unlocked.
#[derive(Default, Clone)]
pub(crate) struct NetState {
    connected: HashMap<GroupId, BTreeSet<MemberId>>,
    last_sync: HashMap<(GroupId, MemberId), i64>,
    /// Per member: everything durable here up to this time (Unix ms) is held by them.
    covered: HashMap<(GroupId, MemberId), i64>,
    waiting: HashMap<GroupId, usize>,
    syncing: BTreeSet<GroupId>,
}

impl NetState {
    /// How many other members of `group` are connected now.
    pub(crate) fn reachable(&self, group: &GroupId) -> usize {
        self.connected.get(group).map_or(0, BTreeSet::len)
    }

    /// Up to when (Unix ms) everything durable here is known to be held by `member` (hex
    /// id) of `group`: a completed round that started after it.
    pub(crate) fn covered(&self, group: GroupId, member: &str) -> Option<i64> {
        let member = MemberId::from_hex(member)?;
        self.covered.get(&(group, member)).copied()
    }
}

impl Backend {
    /// Something was written in `group`: if nobody is connected to take it at once, it
    /// waits for the next sync. The count is kept on the device, so it survives a
    /// restart (a failure to keep it costs only that).
    pub(super) fn wrote(&mut self, group: GroupId) {
        if self.net.reachable(&group) == 0 {
            let count = self.net.waiting.entry(group).or_default();
            *count += 1;
            let n = *count as u64;
            let _ = self.with_vault(move |v| v.set_waiting(&group, n));
        }
    }

    /// Someone took everything written in `group`: nothing waits any more.
    fn sent(&mut self, group: GroupId) {
        if self.net.waiting.remove(&group).is_some_and(|n| n > 0) {
            let _ = self.with_vault(move |v| v.set_waiting(&group, 0));
        }
    }

    /// Starts the node on `vault`, online with every member it knows an address for.
    pub(super) fn start_node(&mut self, vault: Vault) -> Result<(), String> {
        if self.runtime.is_none() {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("alongside-net")
                .enable_all()
                .build()
                .map_err(|e| format!("Could not start the network part of Alongside: {e}."))?;
            self.runtime = Some(runtime);
        }
        let Some(runtime) = &self.runtime else {
            return Err("Could not start the network part of Alongside.".into());
        };
        // What earlier runs learned of each member's last sync (delivery of reach-outs
        // included); a mark that cannot be read only means it is not shown.
        // A mark from the future (this computer's clock was ahead then) is not believed:
        // it would call reach-outs delivered that were never sent.
        let mut net = NetState::default();
        let latest = now_ms() + 60_000;
        for group in vault.group_ids().unwrap_or_default() {
            for (member, mark) in vault.sync_marks(&group).unwrap_or_default() {
                if mark.last_sync_ms <= latest && mark.covered_ms <= latest {
                    net.last_sync.insert((group, member), mark.last_sync_ms);
                    net.covered.insert((group, member), mark.covered_ms);
                }
            }
            let waiting = vault.waiting(&group).unwrap_or(0);
            if waiting > 0 {
                net.waiting
                    .insert(group, usize::try_from(waiting).unwrap_or(usize::MAX));
            }
        }
        // A relay choice saved on this device applies, unless relays were switched off
        // where Alongside was started (that switch always wins).
        let mut config = self.config.net.clone();
        if config.relay != RelayChoice::Disabled
            && let Ok(Some(choice)) = vault.relay_preference()
            && let Ok(choice) = choice.parse()
        {
            config.relay = choice;
        }
        let node = runtime
            .block_on(Node::start(vault, config))
            .map_err(|e| format!("Your profile opened, but its network could not start: {e:#}."))?;
        {
            // The node's supervisor is a task on this runtime.
            let _inside = runtime.enter();
            node.go_live();
        }
        let mut events = node.events();
        let inputs = self.inputs.clone();
        self.forwarder = Some(runtime.spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                let input = match events.recv().await {
                    Ok(event) => Input::Node(event),
                    Err(RecvError::Lagged(_)) => Input::NodeLagged,
                    Err(RecvError::Closed) => return,
                };
                if inputs.send(input).is_err() {
                    return;
                }
            }
        }));
        self.session += 1;
        self.node = Some(node);
        self.net = net;
        Ok(())
    }

    /// Shuts the node down (closing the store) and forgets everything it reported.
    pub(super) fn stop_node(&mut self) {
        if let Some(page) = self.last_page.take() {
            self.remember_page(&page);
        }
        if let Some(forwarder) = self.forwarder.take() {
            forwarder.abort();
        }
        if let (Some(runtime), Some(node)) = (&self.runtime, self.node.take()) {
            runtime.block_on(node.shutdown());
        }
        self.net = NetState::default();
        self.kept_cards = None;
        self.open = None;
    }

    /// Makes the node serve `group` (a group created or joined while running).
    pub(super) fn serve(&self, group: GroupId) -> Result<(), BackendError> {
        let (runtime, node) = self.running().ok_or(BackendError::Locked)?;
        Ok(runtime.block_on(node.serve_group(group))?)
    }

    /// Runs `work` on the node in a task; its result comes back as [`Input::Done`].
    fn spawn_work<F>(&self, work: impl FnOnce(Node) -> F)
    where
        F: Future<Output = Done> + Send + 'static,
    {
        let Some((runtime, node)) = self.running() else {
            return;
        };
        let future = work(node.clone());
        let (inputs, session) = (self.inputs.clone(), self.session);
        runtime.spawn(async move {
            let done = future.await;
            let _ = inputs.send(Input::Done(session, done));
        });
    }

    pub(super) fn handle_node_event(&mut self, event: NodeEvent) {
        let group = match &event {
            NodeEvent::Serving { group } => *group,
            NodeEvent::Connected { group, member } => {
                self.net.connected.entry(*group).or_default().insert(*member);
                *group
            }
            NodeEvent::Disconnected { group, member } => {
                if let Some(members) = self.net.connected.get_mut(group) {
                    members.remove(member);
                }
                *group
            }
            NodeEvent::Applied { group, .. } | NodeEvent::Membership { group } => {
                self.dirty.page |= self.open == Some(*group);
                *group
            }
            NodeEvent::CaughtUp {
                group,
                member,
                covers_from_ms,
                ..
            } => {
                self.net.last_sync.insert((*group, *member), now_ms());
                let covered = self.net.covered.entry((*group, *member)).or_insert(i64::MIN);
                *covered = (*covered).max(*covers_from_ms);
                let group = *group;
                self.sent(group);
                // The delivery of one's own reach-outs is on the page.
                self.dirty.page |= self.open == Some(group);
                group
            }
            _ => return,
        };
        self.dirty.status |= self.open == Some(group);
        // The list reads every group's items: rebuild it only while it is on screen
        // (leaving a group's home marks it stale anyway).
        self.dirty.groups |= self.open.is_none();
    }

    /// Has the backend look at `group`'s status again when its meeting mode ends at
    /// `until` (once per end time).
    pub(super) fn wake_when_meeting_ends(&self, group: GroupId, until: i64) {
        // (Without a node there is nothing to wake; the next status asks again.)
        if self.running().is_none() || self.meeting_ends.borrow().get(&group) == Some(&until) {
            return;
        }
        self.meeting_ends.borrow_mut().insert(group, until);
        let wait = Duration::from_millis(u64::try_from(until - now_ms()).unwrap_or(0));
        self.spawn_work(move |_| async move {
            tokio::time::sleep(wait).await;
            Done::MeetingModeEnded { group, until }
        });
    }

    pub(super) fn handle_done(&mut self, done: Done) -> Option<Event> {
        match done {
            Done::MeetingModeEnded { group, until } => {
                let mut ends = self.meeting_ends.borrow_mut();
                if ends.get(&group) == Some(&until) {
                    ends.remove(&group);
                }
                self.dirty.status |= self.open == Some(group);
                None
            }
            Done::Synced { group, asked, result } => {
                self.net.syncing.remove(&group);
                if matches!(result, Some(Ok(_))) {
                    self.sent(group);
                }
                self.dirty.status |= self.open == Some(group);
                if !asked {
                    return None;
                }
                let name = self.with_vault(move |v| Ok(v.session(&group)?.name())).ok()?;
                Some(Event::Synced {
                    group,
                    message: synced_message(&name, result),
                })
            }
            Done::Joined(Ok(group)) => {
                let name = self.with_vault(move |v| Ok(v.session(&group)?.name()));
                match name.and_then(|name| Ok((name, self.group_cards()?))) {
                    Ok((name, groups)) => Some(Event::Joined { name, groups }),
                    Err(err) => Some(failed("You joined, but the group could not be read", &err)),
                }
            }
            Done::Joined(Err(err)) => Some(Event::JoinFailed {
                message: join_failed_message(&err),
            }),
            Done::Invited {
                group,
                valid_for,
                result,
            } => Some(match result {
                Ok(ticket) => {
                    // (The page lists it among the invitations that still work.)
                    self.dirty.page |= self.open == Some(group);
                    Event::Invitation(invite_view(group, &ticket, valid_for))
                }
                Err(err) => failed("Could not make an invitation", &BackendError::Net(err)),
            }),
        }
    }

    pub(super) fn handle_join(&mut self, ticket: &str, display_name: &str) -> Option<Event> {
        let display_name = display_name.trim().to_string();
        if display_name.is_empty() {
            return Some(Event::JoinFailed {
                message: "Choose the name the group will know you by.".into(),
            });
        }
        let ticket = match Ticket::from_text(ticket) {
            Ok(ticket) => ticket,
            Err(_) => {
                return Some(Event::JoinFailed {
                    message: "That is not a whole invitation ticket. Copy all of it (it starts with \"alongside1\") and paste it again."
                        .into(),
                });
            }
        };
        if self.node.is_none() {
            return Some(Event::JoinFailed {
                message: "Your profile is locked. Unlock it first.".into(),
            });
        }
        self.spawn_work(move |node| async move { Done::Joined(node.join(&ticket, &display_name).await) });
        None
    }

    /// Syncs `group` with everyone reachable in a task; `asked`: a person asked for it
    /// and is told how it went.
    pub(super) fn handle_sync_now(&mut self, group: GroupId, asked: bool) {
        if self.node.is_none() || !self.net.syncing.insert(group) {
            return;
        }
        self.dirty.status |= self.open == Some(group);
        self.spawn_work(move |node| async move {
            let result = tokio::time::timeout(SYNC_PATIENCE, node.sync_all(group)).await.ok();
            Done::Synced { group, asked, result }
        });
    }

    /// Switches meeting mode on for the next three hours (again: three hours from now) or
    /// off.
    pub(super) fn handle_meeting_mode(&mut self, group: GroupId, on: bool) -> Event {
        let on_for = on.then_some(alongside_core::meeting::DEFAULT_ON_FOR_MS);
        match self
            .with_vault(move |v| v.set_meeting_mode(&group, now_ms(), on_for).map(|_| ()))
            .and_then(|()| self.group_status(group))
        {
            Ok(status) => Event::Status(status),
            Err(err) => failed("Could not change meeting mode", &err),
        }
    }

    pub(super) fn handle_invite(&mut self, group: GroupId, valid_for: Duration) -> Option<Event> {
        if self.node.is_none() {
            return Some(failed("Could not make an invitation", &BackendError::Locked));
        }
        let expires_at_ms = now_ms().saturating_add(i64::try_from(valid_for.as_millis()).unwrap_or(i64::MAX));
        self.spawn_work(move |node| async move {
            Done::Invited {
                group,
                valid_for,
                result: node.invite(group, expires_at_ms).await,
            }
        });
        None
    }

    /// Members of `group` with who is connected and when each last synced.
    pub(super) fn group_status(&self, group: GroupId) -> Result<GroupStatus, BackendError> {
        let (net, lan) = (self.net.clone(), self.config.net.lan);
        self.with_vault(move |v| net.status(v, group, lan))
    }
}

impl NetState {
    /// Members of `group` with who is connected and when each last synced; `lan`: whether
    /// this device allows local-network discovery at all.
    pub(crate) fn status(&self, vault: &mut Vault, group: GroupId, lan: bool) -> Result<GroupStatus, VaultError> {
        let members = vault.session(&group)?.members();
        let now = now_ms();
        let meeting_until = vault.meeting_mode(&group, now)?.on_until(now);
        let connected = self.connected.get(&group);
        let mut members: Vec<MemberStatus> = members
            .into_iter()
            .map(|m| {
                let id = MemberId::from_hex(&m.id);
                MemberStatus {
                    reachable: id.is_some_and(|id| connected.is_some_and(|c| c.contains(&id))),
                    last_sync_ms: id.and_then(|id| self.last_sync.get(&(group, id)).copied()),
                    id: m.id,
                    name: m.name,
                    role: m.role,
                    me: m.me,
                }
            })
            .collect();
        members.sort_by_key(|m| !m.me);
        Ok(GroupStatus {
            group,
            members,
            waiting: self.waiting.get(&group).copied().unwrap_or(0),
            syncing: self.syncing.contains(&group),
            meeting_until,
            lan_allowed: lan,
        })
    }
}

fn synced_message(group_name: &str, result: Option<Result<usize, NetError>>) -> String {
    match result {
        Some(Ok(1)) => format!("{group_name} is up to date with 1 member."),
        Some(Ok(n)) => format!("{group_name} is up to date with {n} members."),
        Some(Err(NetError::NotAMember)) => format!(
            "The members of {group_name} you reached no longer accept this device: you are not a member of this group any more."
        ),
        _ => format!(
            "Could not reach anyone in {group_name} right now. What you wrote is saved here and will be shared when someone is reachable."
        ),
    }
}

fn join_failed_message(err: &NetError) -> String {
    match err {
        NetError::Refused(why) => {
            format!("Could not join: {why}. Ask the person who invited you for a new ticket.")
        }
        NetError::Connection(_) | NetError::Bind(_) => "Could not reach the person who invited you. They need to have Alongside open; try again when they do. Nothing was changed.".into(),
        other => format!("Could not join: {other:#}. Nothing was changed."),
    }
}

fn invite_view(group: GroupId, ticket: &Ticket, valid_for: Duration) -> InviteView {
    let qr = qrcode::QrCode::new(ticket.to_qr_text().as_bytes()).ok().map(|code| {
        let dark = code.to_colors().into_iter().map(|c| c == qrcode::Color::Dark).collect();
        (code.width(), dark)
    });
    InviteView {
        group,
        ticket: ticket.to_text(),
        qr,
        valid_for,
    }
}
