//! The backend thread: the only place the desktop app touches the profile and the network.
//!
//! Once the profile is unlocked the backend runs its [`Node`] (the vault lives inside it,
//! so what the app writes is pushed to connected members at once) on a tokio runtime it
//! owns. The UI thread sends it a [`Command`] and goes on drawing; the backend does the slow
//! part (the passphrase KDF, disk, crypto), then sends back an [`Event`] carrying plain view
//! data and calls [`egui::Context::request_repaint`] so the UI wakes up to show it.
//!
//! Everything the backend reacts to arrives on one channel as an [`Input`]: commands from
//! the UI, events of the running node (forwarded by a small task), and the results of
//! network work it started (a sync, a join, an invitation) — those run as tasks so a slow
//! peer never holds up the next command. After each batch of inputs it sends what changed:
//! the open group's page, its network status, the list of groups.
//!
//! Both channels are unbounded: commands come from a person's clicks; node events come
//! from a broadcast channel that is itself bounded (a lagging reader gets one "missed some"
//! input, which refreshes everything).

mod network;
mod reach;
mod roster;
mod settings;
mod shown_last;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use alongside_core::crypto::PassphraseKdf;
use alongside_core::ids::{GroupId, MemberId};
use alongside_core::model::edits::NewStory;
use alongside_core::model::views::{AgreementView, GoalView, MeetingView, MemberView, StoryPage};
use alongside_core::profile::ProfileError;
use alongside_core::vault::{SupportContact, Vault, VaultError};
use alongside_net::{NetConfig, NetError, Node};
use eframe::egui;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::home_backend::{self, HomeCommand, HomeSaved, PageContext};
use crate::profile_setup::{self, SetupError};

pub(crate) use network::NetState;

/// Stories a group's list shows at first, and adds each time the member asks for older ones.
pub(crate) const STORIES_PER_PAGE: usize = 30;
pub(crate) use network::{GroupStatus, InviteView, MemberStatus};
pub(crate) use reach::{Delivery, ReachOutCard, reach_out_cards};
pub(crate) use settings::{ExportFormat, SettingsView};

/// What the UI asks the backend to do.
pub(crate) enum Command {
    /// Create a new profile and open it.
    CreateProfile {
        /// The device label (kept on this device only).
        label: String,
        /// The chosen passphrase.
        passphrase: Zeroizing<String>,
    },
    /// Open the existing profile.
    Unlock {
        /// The passphrase typed in.
        passphrase: Zeroizing<String>,
    },
    /// Close the profile: stop the network and forget the unlocked vault.
    Lock,
    /// Found a group.
    CreateGroup {
        /// The group's name.
        name: String,
        /// This member's display name in it.
        display_name: String,
    },
    /// Join a group with an invitation ticket.
    JoinGroup {
        /// The ticket as pasted.
        ticket: Zeroizing<String>,
        /// This member's display name in it.
        display_name: String,
    },
    /// Load one group's home (and keep it up to date while it is open).
    OpenGroup(GroupId),
    /// Repair a group whose data on this device is damaged.
    RepairGroup(GroupId),
    /// The group's home was left: stop sending its updates.
    CloseGroup,
    /// Show another page of older stories in the open group.
    ShowOlderStories,
    /// Write a story in a group.
    AddStory {
        /// The group.
        group: GroupId,
        /// The story.
        story: NewStory,
    },
    /// Goals, check-ins and agreements on a group's home.
    Home(HomeCommand),
    /// Ask for support: a reach-out to the whole group (`to` empty) or chosen members.
    ReachOut {
        /// The group.
        group: GroupId,
        /// What the member wrote.
        message: String,
        /// Who it goes to; empty for the whole group.
        to: Vec<MemberId>,
    },
    /// Answer a reach-out.
    Respond {
        /// The group.
        group: GroupId,
        /// The reach-out's item id.
        reach_out: String,
        /// The answer.
        text: String,
    },
    /// Remove a member (facilitators).
    RemoveMember {
        /// The group.
        group: GroupId,
        /// Who.
        member: MemberId,
        /// Also withdraw every invitation that can still be used.
        revoke_invitations: bool,
    },
    /// Withdraw an invitation (by its short id), or every open one (`None`).
    RevokeInvitations {
        /// The group.
        group: GroupId,
        /// Which one.
        id: Option<String>,
    },
    /// Make a member a facilitator, or a facilitator a member (facilitators).
    SetRole {
        /// The group.
        group: GroupId,
        /// Who.
        member: MemberId,
        /// Facilitator (or member).
        facilitator: bool,
    },
    /// Leave a group.
    Leave(GroupId),
    /// Load what the settings screen shows.
    OpenSettings,
    /// Change the passphrase.
    ChangePassphrase {
        /// The current one.
        old: Zeroizing<String>,
        /// The new one.
        new: Zeroizing<String>,
    },
    /// Take a break until a day (`YYYY-MM-DD`), or end it.
    SetBreak(Option<String>),
    /// How this device reaches members across the internet (`disabled`, `default`).
    SetRelay(Option<String>),
    /// Reach members through the group's own relay, at this address (as typed).
    SetOwnRelay(String),
    /// Mute or unmute a member on this device.
    SetMuted {
        /// The group.
        group: GroupId,
        /// Who.
        member: MemberId,
        /// Muted or not.
        muted: bool,
    },
    /// Change this member's display name in a group.
    SetDisplayName {
        /// The group.
        group: GroupId,
        /// The new name.
        name: String,
    },
    /// Export what this member can read of a group.
    Export {
        /// The group.
        group: GroupId,
        /// As what.
        format: ExportFormat,
        /// Into which folder.
        folder: PathBuf,
    },
    /// Replace the crisis lines and contacts kept on this device.
    SaveContacts(Vec<SupportContact>),
    /// Sync a group with every member that can be reached, now.
    SyncNow(GroupId),
    /// Switch meeting mode (finding members on the local network) for a group.
    SetMeetingMode {
        /// The group.
        group: GroupId,
        /// On for the next three hours (renewing it if it is on), or off.
        on: bool,
    },
    /// Make a one-time invitation to a group.
    Invite {
        /// The group.
        group: GroupId,
        /// How long the ticket works.
        valid_for: Duration,
    },
}

/// One group in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupCard {
    /// The group.
    #[serde(with = "shown_last::group_hex")]
    pub(crate) id: GroupId,
    /// Its name.
    pub(crate) name: String,
    /// This member's display name in it.
    pub(crate) me: String,
    /// This member's role.
    pub(crate) role: String,
    /// How many members it has.
    pub(crate) members: usize,
    /// How many of the others are connected now.
    pub(crate) reachable: usize,
    /// Stories and reach-outs by others since this member last opened the group here.
    pub(crate) new: usize,
    /// What this device keeps of the group is damaged (only `id` is known).
    #[serde(default)]
    pub(crate) damaged: bool,
}

/// What a group's home shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupPage {
    /// The group.
    #[serde(with = "shown_last::group_hex")]
    pub(crate) id: GroupId,
    /// Its name.
    pub(crate) name: String,
    /// Its newest stories (as many as the list asked for, without those resting during
    /// a break or by muted members), and how many were kept out.
    pub(crate) stories: StoryPage,
    /// Every goal this member can read, oldest first, each with only its latest
    /// check-ins (its streak counts them all).
    pub(crate) goals: Vec<GoalView>,
    /// The group's agreements, if a facilitator wrote some.
    pub(crate) agreement: Option<AgreementView>,
    /// Its meetings, soonest first.
    pub(crate) meetings: Vec<MeetingView>,
    /// Current members, longest-standing first.
    pub(crate) members: Vec<MemberView>,
    /// Reach-outs this member can read, newest first, with delivery for their own.
    pub(crate) reach_outs: Vec<ReachOutCard>,
    /// Members and how this device is connected to them.
    pub(crate) status: GroupStatus,
    /// This member's id (hex).
    pub(crate) me: String,
    /// This member is a facilitator.
    pub(crate) facilitator: bool,
    /// Today's date, `YYYY-MM-DD`, as check-ins are dated.
    pub(crate) today: String,
    /// The member is taking a break: stories with warnings and reach-out alerts wait.
    pub(crate) on_break: bool,
    /// Members muted on this device (hex ids): their stories and reach-outs are not shown.
    pub(crate) muted: std::collections::BTreeSet<String>,
    /// How many of this member's own changes to the group's name, agreements or settings
    /// every device undid (their role no longer allowed them), not yet acknowledged.
    #[serde(default)]
    pub(crate) undone: u32,
    /// The invitations this device made to the group that can still be used (for a
    /// facilitator to see and withdraw).
    #[serde(default)]
    pub(crate) open_invitations: Vec<OpenInvitation>,
}

/// An invitation that can still be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OpenInvitation {
    /// Its short id.
    pub(crate) id: String,
    /// Until when it works, as this computer's local date and time.
    pub(crate) until: String,
}

impl GroupPage {
    /// Whether this member agreed to the current agreements (`false` when there are none).
    pub(crate) fn agreed(&self) -> bool {
        self.agreement
            .as_ref()
            .is_some_and(|a| a.acknowledged_by.iter().any(|p| p.id == self.me))
    }

    /// Whether there are agreements this member has not agreed to yet.
    pub(crate) fn agreement_waiting(&self) -> bool {
        self.agreement.is_some() && !self.agreed()
    }
}

/// A form on screen whose writing was saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SavedForm {
    /// The reach-out being written.
    ReachOut,
    /// The answer to this reach-out (its id).
    Answer(String),
}

/// What the backend reports back.
#[derive(Debug)]
pub(crate) enum Event {
    /// The backend looked at the data directory.
    Started {
        /// Whether a profile is already there (otherwise this is the first run).
        profile_exists: bool,
    },
    /// The profile is open, after creating or unlocking it.
    Unlocked {
        /// The device label.
        label: String,
        /// Its groups.
        groups: Vec<GroupCard>,
        /// The profile uses the weak test passphrase protection.
        weak_kdf: bool,
        /// The crisis lines and contacts saved on this device.
        contacts: Vec<SupportContact>,
        /// Group homes as this device last showed them, to show while the groups load
        /// (the real pages follow; `groups` then are the last shown too, and the real
        /// ones follow as [`Event::Groups`]).
        shown_last: BTreeMap<GroupId, GroupPage>,
    },
    /// The profile could not be created or opened; nothing changed.
    UnlockFailed {
        /// What happened and what to do, in plain words.
        message: String,
    },
    /// The profile is closed again.
    Locked,
    /// A group was created.
    GroupCreated {
        /// Its name.
        name: String,
        /// The groups, including the new one.
        groups: Vec<GroupCard>,
    },
    /// This device joined a group.
    Joined {
        /// Its name.
        name: String,
        /// The groups, including the new one.
        groups: Vec<GroupCard>,
    },
    /// Joining did not work; nothing changed.
    JoinFailed {
        /// What happened and what to do, in plain words.
        message: String,
    },
    /// This member left a group.
    Left {
        /// Its name.
        name: String,
        /// The groups now.
        groups: Vec<GroupCard>,
    },
    /// The groups changed (joined, members connected or left).
    Groups(Vec<GroupCard>),
    /// A group's home is ready to show.
    GroupOpened(GroupPage),
    /// The open group's content changed (members' changes arrived).
    GroupUpdated(GroupPage),
    /// The open group's network status changed.
    Status(GroupStatus),
    /// A story was saved.
    StoryAdded(GroupPage),
    /// Something was saved in a group (a reach-out, an answer, a membership change).
    Saved {
        /// The group's page, with it.
        page: GroupPage,
        /// What happened, in a sentence.
        notice: String,
        /// The form whose writing was saved (and may be emptied), if any.
        form: Option<SavedForm>,
    },
    /// The crisis lines and contacts on this device, as saved.
    Contacts(Vec<SupportContact>),
    /// What the settings screen shows.
    Settings(SettingsView),
    /// A setting was saved.
    SettingsSaved {
        /// The settings now.
        view: SettingsView,
        /// What happened, in a sentence.
        notice: String,
    },
    /// Something worked; say so in a sentence.
    Notice(String),
    /// A sync asked for with "Sync now" ended.
    Synced {
        /// The group.
        group: GroupId,
        /// How it went, in plain words.
        message: String,
    },
    /// An invitation is ready to hand over.
    Invitation(InviteView),
    /// A goal, check-in or agreement was saved; the page as it is now.
    HomeSaved {
        /// The group's page.
        page: GroupPage,
        /// What was saved.
        saved: HomeSaved,
    },
    /// A command failed; nothing was changed.
    Failed {
        /// What happened and what to do, in plain words.
        message: String,
    },
    /// The backend thread stopped unexpectedly (a bug); nothing more can be done here.
    Stopped,
}

/// Where the backend keeps the profile, how it protects new ones, and what the network
/// may reach.
#[derive(Debug, Clone)]
pub(crate) struct BackendConfig {
    /// The data directory.
    pub(crate) dir: PathBuf,
    /// Passphrase protection for a new profile.
    pub(crate) kdf: PassphraseKdf,
    /// The node's network settings.
    pub(crate) net: NetConfig,
}

/// Everything the backend reacts to, on one channel.
pub(crate) enum Input {
    /// The UI asked for something.
    Command(Command),
    /// The running node reported something.
    Node(alongside_net::NodeEvent),
    /// The node reported more than the forwarder could keep up with: refresh everything.
    NodeLagged,
    /// Network work the backend started has ended (tagged with the session that started
    /// it, so a result from before a lock is dropped).
    Done(u64, network::Done),
    /// The window is closing.
    Quit,
}

/// The UI's side of the backend: send commands, receive events.
pub(crate) struct BackendHandle {
    inputs: Sender<Input>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    /// The backend thread ended while the window is open.
    gone: bool,
}

impl BackendHandle {
    /// Starts the backend thread; it wakes `ctx` after every event it sends.
    pub(crate) fn spawn(config: BackendConfig, ctx: egui::Context) -> BackendHandle {
        let (input_tx, input_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let inputs = input_tx.clone();
        let thread = std::thread::Builder::new()
            .name("alongside-backend".into())
            .spawn(move || {
                let backend = Backend {
                    config,
                    runtime: None,
                    node: None,
                    forwarder: None,
                    session: 0,
                    inputs,
                    events: event_tx,
                    ctx,
                    net: network::NetState::default(),
                    open: None,
                    story_limit: STORIES_PER_PAGE,
                    last_page: None,
                    kept_cards: None,
                    meeting_ends: Default::default(),
                    dirty: Dirty::default(),
                };
                backend.run(input_rx);
            })
            .expect("could not start the backend thread");
        BackendHandle {
            inputs: input_tx,
            events: event_rx,
            thread: Some(thread),
            gone: false,
        }
    }

    /// Queues a command; never blocks.
    pub(crate) fn send(&self, command: Command) {
        // The backend only stops when this handle is dropped, so this cannot fail unless
        // it panicked; then there is nobody left to tell.
        let _ = self.inputs.send(Input::Command(command));
    }

    /// The next event, if one is waiting. If the backend thread has died (a bug), says so
    /// once as [`Event::Stopped`].
    pub(crate) fn try_recv(&mut self) -> Option<Event> {
        match self.events.try_recv() {
            Ok(event) => Some(event),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) if !self.gone => {
                self.gone = true;
                Some(Event::Stopped)
            }
            Err(mpsc::TryRecvError::Disconnected) => None,
        }
    }

    /// Waits up to `timeout` for the next event (for tests; the UI never waits).
    pub(crate) fn recv_timeout(&mut self, timeout: Duration) -> Option<Event> {
        match self.events.recv_timeout(timeout) {
            Ok(event) => Some(event),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => self.try_recv(),
        }
    }
}

impl Drop for BackendHandle {
    /// Asks the backend to stop and waits for it to finish the command it is on and shut
    /// the node down, so a change being written is complete before the app exits.
    fn drop(&mut self) {
        let _ = self.inputs.send(Input::Quit);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What changed in a batch of inputs and must be sent to the UI after it.
#[derive(Default)]
struct Dirty {
    /// The open group's content.
    page: bool,
    /// The open group's network status.
    status: bool,
    /// The list of groups.
    groups: bool,
}

struct Backend {
    config: BackendConfig,
    /// The runtime the node runs on (made at the first unlock).
    runtime: Option<tokio::runtime::Runtime>,
    /// The running node, while the profile is open. The vault lives inside it.
    node: Option<Node>,
    /// The task that forwards the node's events into `inputs`.
    forwarder: Option<tokio::task::JoinHandle<()>>,
    /// Counts unlocks, so results of work started before a lock are recognised.
    session: u64,
    /// A sender into the backend's own input channel (for the forwarder and tasks).
    inputs: Sender<Input>,
    events: Sender<Event>,
    ctx: egui::Context,
    /// Connections, rounds and waiting changes, per group.
    net: network::NetState,
    /// The group whose home is shown.
    open: Option<GroupId>,
    /// How many of its stories the list shows (a page more each time the member asks).
    story_limit: usize,
    /// The open group's page as last sent, kept for the next unlock when it closes.
    last_page: Option<GroupPage>,
    /// The group cards last kept for the next unlock (as stored), since unlock.
    kept_cards: Option<Vec<GroupCard>>,
    /// Per group, the end of meeting mode a timer waits for (so the window shows it off
    /// the moment it ends).
    meeting_ends: std::cell::RefCell<std::collections::HashMap<GroupId, i64>>,
    dirty: Dirty,
}

impl Backend {
    fn run(mut self, inputs: Receiver<Input>) {
        let profile_exists = alongside_core::profile::exists(&self.config.dir);
        self.emit(Event::Started { profile_exists });
        while let Ok(first) = inputs.recv() {
            // Take everything waiting, so a burst of node events costs one refresh.
            let batch: Vec<Input> = std::iter::once(first).chain(inputs.try_iter()).collect();
            for input in batch {
                match input {
                    Input::Quit => {
                        self.stop_node();
                        return;
                    }
                    Input::Command(command) => {
                        if let Some(event) = self.handle(command) {
                            self.note_shown(&event);
                            self.emit(event);
                        }
                    }
                    Input::Node(event) => self.handle_node_event(event),
                    Input::NodeLagged => {
                        self.dirty = Dirty {
                            page: true,
                            status: true,
                            groups: true,
                        }
                    }
                    Input::Done(session, done) if session == self.session && self.node.is_some() => {
                        if let Some(event) = self.handle_done(done) {
                            self.note_shown(&event);
                            self.emit(event);
                        }
                    }
                    Input::Done(..) => {}
                }
            }
            self.flush();
        }
        self.stop_node();
    }

    fn emit(&self, event: Event) {
        let status = match &event {
            Event::Status(status) => Some(status),
            Event::GroupOpened(page)
            | Event::StoryAdded(page)
            | Event::GroupUpdated(page)
            | Event::Saved { page, .. }
            | Event::HomeSaved { page, .. } => Some(&page.status),
            _ => None,
        };
        if let Some((group, until)) = status.and_then(|s| Some((s.group, s.meeting_until?))) {
            self.wake_when_meeting_ends(group, until);
        }
        // A closed channel means the window is gone; there is nobody to show it to.
        let _ = self.events.send(event);
        self.ctx.request_repaint();
    }

    fn handle(&mut self, command: Command) -> Option<Event> {
        Some(match command {
            Command::CreateProfile { label, passphrase } => self.handle_create_profile(&label, &passphrase),
            Command::Unlock { passphrase } => self.handle_unlock(&passphrase),
            Command::Lock => {
                self.stop_node();
                Event::Locked
            }
            Command::CreateGroup { name, display_name } => self.handle_create_group(&name, &display_name),
            Command::OpenGroup(group) => {
                self.open = Some(group);
                self.story_limit = STORIES_PER_PAGE;
                // Opening the group is looking at it: nothing in it counts as new after.
                let _ = self.with_vault(move |v| v.set_seen_at(&group, now_ms()));
                self.dirty.groups = true;
                match self.group_page(group) {
                    Ok(page) => Event::GroupOpened(page),
                    Err(err) => failed("Could not open this group", &err),
                }
            }
            Command::ShowOlderStories => {
                self.story_limit += STORIES_PER_PAGE;
                self.dirty.page = true;
                return None;
            }
            Command::CloseGroup => {
                if let Some(page) = self.last_page.take() {
                    self.remember_page(&page);
                }
                if let Some(group) = self.open.take() {
                    let _ = self.with_vault(move |v| v.set_seen_at(&group, now_ms()));
                    self.dirty.groups = true;
                }
                return None;
            }
            Command::AddStory { group, story } => self.handle_add_story(group, story),
            Command::RepairGroup(group) => self.handle_repair(group),
            Command::JoinGroup { ticket, display_name } => return self.handle_join(&ticket, &display_name),
            Command::ReachOut { group, message, to } => self.handle_reach_out(group, message, to),
            Command::Respond { group, reach_out, text } => self.handle_respond(group, reach_out, text),
            Command::RemoveMember {
                group,
                member,
                revoke_invitations,
            } => self.handle_remove(group, member, revoke_invitations),
            Command::RevokeInvitations { group, id } => self.handle_revoke(group, id),
            Command::SetRole {
                group,
                member,
                facilitator,
            } => self.handle_set_role(group, member, facilitator),
            Command::Leave(group) => self.handle_leave(group),
            Command::OpenSettings => match self.settings_view() {
                Ok(view) => Event::Settings(view),
                Err(err) => failed("The settings could not be read", &err),
            },
            Command::ChangePassphrase { old, new } => self.handle_change_passphrase(&old, &new),
            Command::SetBreak(until) => {
                // Pages kept from before would show what the break now rests.
                self.forget_pages();
                let notice = match &until {
                    Some(day) => format!(
                        "You are taking a break until {day}. Stories with content warnings are hidden and reach-outs do not call for you on the home screen until then."
                    ),
                    None => "Your break is over. Welcome back.".to_string(),
                };
                self.save_setting("Your break was not saved", &notice, move |v| {
                    v.set_break_until(until.as_deref())
                })
            }
            Command::SetOwnRelay(url)
                if !(url.starts_with("https://")
                    && matches!(url.parse(), Ok(alongside_net::RelayChoice::Custom(_)))) =>
            {
                Event::Failed {
                    message: format!(
                        "'{url}' is not a relay address (one looks like https://relay.example.org), so nothing was changed."
                    ),
                }
            }
            Command::SetOwnRelay(url) => self.save_setting(
                "The connection setting was not saved",
                "Saved. It takes effect the next time you unlock Alongside.",
                move |v| v.set_relay_preference(Some(&url)),
            ),
            Command::SetRelay(mode) => self.save_setting(
                "The connection setting was not saved",
                "Saved. It takes effect the next time you unlock Alongside.",
                move |v| v.set_relay_preference(mode.as_deref()),
            ),
            Command::SetMuted { group, member, muted } => self.handle_set_muted(group, member, muted),
            Command::SetDisplayName { group, name } => self.handle_set_display_name(group, name),
            Command::Export { group, format, folder } => self.handle_export(group, format, folder),
            Command::SaveContacts(contacts) => {
                match self.with_vault(move |v| {
                    v.set_support_contacts(&contacts)?;
                    v.support_contacts()
                }) {
                    Ok(contacts) => Event::Contacts(contacts),
                    Err(err) => failed("Your contacts were not saved", &err),
                }
            }
            Command::Home(command) => self.handle_home(command),
            Command::SyncNow(group) => {
                self.handle_sync_now(group, true);
                return None;
            }
            Command::SetMeetingMode { group, on } => self.handle_meeting_mode(group, on),
            Command::Invite { group, valid_for } => return self.handle_invite(group, valid_for),
        })
    }

    fn handle_create_profile(&mut self, label: &str, passphrase: &str) -> Event {
        let dir = &self.config.dir;
        match profile_setup::create_profile(dir, label, passphrase.as_bytes(), self.config.kdf) {
            Ok(vault) => self.opened(vault),
            Err(SetupError::EmptyLabel) => Event::UnlockFailed {
                message: "Give this device a name, such as \"my laptop\".".into(),
            },
            Err(err) => Event::UnlockFailed {
                message: format!("Could not create your profile: {err:#}. Nothing was changed."),
            },
        }
    }

    fn handle_unlock(&mut self, passphrase: &str) -> Event {
        match Vault::unlock(&self.config.dir, passphrase.as_bytes()) {
            Ok(vault) => self.opened(vault),
            Err(VaultError::Profile(ProfileError::WrongPassphrase | ProfileError::EmptyPassphrase)) => {
                Event::UnlockFailed {
                    message: "That passphrase did not open your profile. Check it and try again.".into(),
                }
            }
            Err(err) => Event::UnlockFailed {
                message: format!("Could not open your profile: {err:#}."),
            },
        }
    }

    /// Starts the node on the unlocked `vault` and reports the profile open: at once
    /// with what was shown last, if every group has it, and then as it is now.
    fn opened(&mut self, vault: Vault) -> Event {
        let weak_kdf = alongside_core::profile::read_header(vault.dir()).is_ok_and(|h| h.test_profile);
        let read = vault.label().and_then(|label| Ok((label, vault.support_contacts()?)));
        let (label, contacts) = match read {
            Ok(read) => read,
            Err(err) => {
                return Event::UnlockFailed {
                    message: format!("Your profile opened, but reading it failed: {err:#}."),
                };
            }
        };
        let early = shown_last::read(&vault).map(|(groups, pages)| {
            self.emit(Event::Unlocked {
                label: label.clone(),
                groups,
                weak_kdf,
                contacts: contacts.clone(),
                shown_last: pages,
            });
        });
        if let Err(message) = self.start_node(vault) {
            return Event::UnlockFailed { message };
        }
        match self.group_cards() {
            Ok(groups) => {
                self.remember_cards(&groups);
                if early.is_some() {
                    Event::Groups(groups)
                } else {
                    Event::Unlocked {
                        label,
                        groups,
                        weak_kdf,
                        contacts,
                        shown_last: BTreeMap::new(),
                    }
                }
            }
            Err(err) => {
                self.stop_node();
                Event::UnlockFailed {
                    message: format!("Your profile opened, but reading it failed: {err:#}."),
                }
            }
        }
    }

    /// Keeps the open group's page as last sent, and stores it for the next unlock when
    /// this member opened or changed it (a page updated by sync is stored on closing).
    fn note_shown(&mut self, event: &Event) {
        let (page, store) = match event {
            Event::GroupOpened(page) | Event::StoryAdded(page) => (page, true),
            Event::Saved { page, .. } | Event::HomeSaved { page, .. } => (page, true),
            Event::GroupUpdated(page) => (page, false),
            _ => return,
        };
        if self.open != Some(page.id) {
            return;
        }
        if store {
            self.remember_page(page);
        }
        self.last_page = Some(page.clone());
    }

    fn handle_create_group(&mut self, name: &str, display_name: &str) -> Event {
        let (name, display_name) = (name.trim().to_string(), display_name.trim().to_string());
        let created = self.with_vault({
            let name = name.clone();
            move |v| v.create_group(&name, &display_name, now_ms())
        });
        match created.and_then(|group| {
            self.serve(group)?;
            self.group_cards()
        }) {
            Ok(groups) => Event::GroupCreated { name, groups },
            Err(err) => failed("Could not create the group", &err),
        }
    }

    fn handle_add_story(&mut self, group: GroupId, story: NewStory) -> Event {
        if let Err(err) = self.with_vault(move |v| v.edit(&group, |s| s.add_story(&story, now_ms())).map(|_| ())) {
            return failed("Your story was not saved", &err);
        }
        self.wrote(group);
        match self.group_page(group) {
            Ok(page) => Event::StoryAdded(page),
            Err(err) => failed("Your story was saved, but the list could not be read", &err),
        }
    }

    /// Runs `f` on the vault inside the node (in a blocking task); whatever it made
    /// durable is pushed to connected members at once.
    fn with_vault<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vault) -> Result<T, VaultError> + Send + 'static,
    ) -> Result<T, BackendError> {
        let (runtime, node) = self.running().ok_or(BackendError::Locked)?;
        Ok(runtime.block_on(node.with_vault(f))?)
    }

    /// The runtime and the node, while the profile is open.
    fn running(&self) -> Option<(&tokio::runtime::Runtime, &Node)> {
        Some((self.runtime.as_ref()?, self.node.as_ref()?))
    }

    /// Everything the home of `group` shows, read in one go from the vault together
    /// with a copy of what the node reported.
    fn group_page(&self, group: GroupId) -> Result<GroupPage, BackendError> {
        let context = self.page_context();
        self.with_vault(move |v| home_backend::group_page(v, &group, now_ms(), &context))
    }

    /// What a page is read with besides the vault.
    fn page_context(&self) -> PageContext {
        PageContext {
            net: self.net.clone(),
            lan: self.config.net.lan,
            stories: self.story_limit,
        }
    }

    /// Goals, check-ins and agreements: saved, then the page as it is now.
    fn handle_home(&mut self, command: HomeCommand) -> Event {
        let group = command.group();
        let context = self.page_context();
        let event = self.with_vault(move |v| Ok(home_backend::handle(v, command, now_ms(), &context)));
        match event {
            Ok(event @ Event::HomeSaved { .. }) => {
                self.wrote(group);
                event
            }
            Ok(event) => event,
            Err(err) => failed("It was not saved", &err),
        }
    }

    fn group_cards(&self) -> Result<Vec<GroupCard>, BackendError> {
        let summaries = self.with_vault(|v| {
            let mut out = Vec::new();
            for g in v.groups()? {
                let Some(id) = GroupId::from_hex(&g.id) else { continue };
                let new = if g.damaged { 0 } else { new_since_seen(v, &id)? };
                out.push((id, g, new));
            }
            Ok(out)
        })?;
        Ok(summaries
            .into_iter()
            .map(|(id, g, new)| GroupCard {
                id,
                reachable: self.net.reachable(&id),
                name: g.name,
                me: g.me,
                role: g.role,
                members: g.members,
                new,
                damaged: g.damaged,
            })
            .collect())
    }

    /// Repairs a damaged group and says what came of it.
    fn handle_repair(&mut self, group: GroupId) -> Event {
        let repaired = self.with_vault(move |v| {
            let repaired = v.repair_group(&group)?;
            Ok((repaired, v.session(&group)?.name()))
        });
        self.dirty.groups = true;
        match repaired {
            Ok((r, name)) => Event::Notice(match r.rebuilt {
                0 => format!(
                    "{name} is open again. What was damaged was set aside; it comes back from the members the next time this device reaches them."
                ),
                _ => format!(
                    "{name} is open again. What was damaged was rebuilt from this device's own copies; anything still missing comes back from the members."
                ),
            }),
            Err(err) => failed("The group could not be repaired", &err),
        }
    }

    /// The page of `group` after something was saved there, with `notice`.
    pub(super) fn saved(&mut self, group: GroupId, notice: &str) -> Event {
        self.saved_from(group, notice, None)
    }

    /// [`Backend::saved`], saying which form's writing it was (to empty that form only).
    pub(super) fn saved_from(&mut self, group: GroupId, notice: &str, form: Option<SavedForm>) -> Event {
        match self.group_page(group) {
            Ok(page) => Event::Saved {
                page,
                notice: notice.to_string(),
                form,
            },
            Err(err) => failed("It was saved, but the page could not be read", &err),
        }
    }

    /// Sends whatever a batch of inputs changed.
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        if let Some(group) = self.open.filter(|_| self.node.is_some()) {
            if dirty.page {
                if let Ok(page) = self.group_page(group) {
                    self.last_page = Some(page.clone());
                    self.emit(Event::GroupUpdated(page));
                }
            } else if dirty.status
                && let Ok(status) = self.group_status(group)
            {
                self.emit(Event::Status(status));
            }
        }
        if dirty.groups
            && self.node.is_some()
            && let Ok(groups) = self.group_cards()
        {
            self.remember_cards(&groups);
            self.emit(Event::Groups(groups));
        }
    }
}

/// Stories and reach-outs by others in `group` since this member last opened it here
/// (everything by others, if never).
fn new_since_seen(v: &mut Vault, group: &GroupId) -> Result<usize, VaultError> {
    let seen = v.seen_at(group)?.unwrap_or(i64::MIN);
    let session = v.session(group)?;
    let me = session.me();
    let stories = session
        .story_times()
        .into_iter()
        .take_while(|(_, at)| *at > seen)
        .filter(|(author, _)| *author != me)
        .count();
    let me = me.to_hex();
    let reach_outs = session
        .reach_outs()
        .iter()
        .filter(|r| r.author.id != me && r.created_at_ms > seen)
        .count();
    Ok(stories + reach_outs)
}

/// Why the backend could not do something.
#[derive(Debug, thiserror::Error)]
enum BackendError {
    /// The profile is locked.
    #[error("your profile is locked; unlock it first")]
    Locked,
    /// The vault or the network refused.
    #[error(transparent)]
    Net(#[from] NetError),
}

pub(super) fn failed(what: &str, err: &impl std::fmt::Display) -> Event {
    Event::Failed {
        message: format!("{what}: {err:#}. Nothing else was changed."),
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
