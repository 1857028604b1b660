//! The backend thread: the only place the desktop app touches the profile.
//!
//! It owns the unlocked [`Vault`] (and, later, the network node). The UI thread sends it a
//! [`Command`] and goes on drawing; the backend does the slow part (the passphrase KDF,
//! disk, crypto), then sends back an [`Event`] carrying plain view data and calls
//! [`egui::Context::request_repaint`] so the UI wakes up to show it.
//!
//! Both channels are unbounded: commands come only from a person's clicks, and each
//! command produces one event, so neither side can flood the other.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use alongside_core::crypto::PassphraseKdf;
use alongside_core::ids::GroupId;
use alongside_core::model::edits::NewStory;
use alongside_core::model::views::{AgreementView, GoalView, MemberView, StoryView};
use alongside_core::profile::ProfileError;
use alongside_core::vault::{Vault, VaultError};
use eframe::egui;
use zeroize::Zeroizing;

use super::home_backend::{self, HomeCommand, HomeSaved};
use crate::profile_setup::{self, SetupError};

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
    /// Close the profile: forget the unlocked vault.
    Lock,
    /// Found a group.
    CreateGroup {
        /// The group's name.
        name: String,
        /// This member's display name in it.
        display_name: String,
    },
    /// Load one group's home.
    OpenGroup(GroupId),
    /// Write a story in a group.
    AddStory {
        /// The group.
        group: GroupId,
        /// The story.
        story: NewStory,
    },
    /// Goals, check-ins and agreements on a group's home.
    Home(HomeCommand),
}

/// One group in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupCard {
    /// The group.
    pub(crate) id: GroupId,
    /// Its name.
    pub(crate) name: String,
    /// This member's display name in it.
    pub(crate) me: String,
    /// This member's role.
    pub(crate) role: String,
    /// How many members it has.
    pub(crate) members: usize,
}

/// What a group's home shows.
#[derive(Debug, Clone)]
pub(crate) struct GroupPage {
    /// The group.
    pub(crate) id: GroupId,
    /// Its name.
    pub(crate) name: String,
    /// Its stories, newest first.
    pub(crate) stories: Vec<StoryView>,
    /// Every goal this member can read, oldest first, each with only its latest
    /// check-ins (its streak counts them all).
    pub(crate) goals: Vec<GoalView>,
    /// The group's agreements, if a facilitator wrote some.
    pub(crate) agreement: Option<AgreementView>,
    /// Current members, longest-standing first.
    pub(crate) members: Vec<MemberView>,
    /// This member's id (hex).
    pub(crate) me: String,
    /// This member is a facilitator.
    pub(crate) facilitator: bool,
    /// Today's date, `YYYY-MM-DD`, as check-ins are dated.
    pub(crate) today: String,
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
    /// A group's home is ready to show.
    GroupOpened(GroupPage),
    /// A story was saved.
    StoryAdded(GroupPage),
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
}

/// Where the backend keeps the profile and how it protects new ones.
#[derive(Debug, Clone)]
pub(crate) struct BackendConfig {
    /// The data directory.
    pub(crate) dir: PathBuf,
    /// Passphrase protection for a new profile.
    pub(crate) kdf: PassphraseKdf,
}

/// The UI's side of the backend: send commands, receive events.
pub(crate) struct BackendHandle {
    commands: Option<Sender<Command>>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
}

impl BackendHandle {
    /// Starts the backend thread; it wakes `ctx` after every event it sends.
    pub(crate) fn spawn(config: BackendConfig, ctx: egui::Context) -> BackendHandle {
        let (command_tx, command_rx) = mpsc::channel();
        let (event_tx, event_rx) = mpsc::channel();
        let backend = Backend {
            config,
            vault: None,
            events: event_tx,
            ctx,
        };
        let thread = std::thread::Builder::new()
            .name("alongside-backend".into())
            .spawn(move || backend.run(command_rx))
            .expect("could not start the backend thread");
        BackendHandle {
            commands: Some(command_tx),
            events: event_rx,
            thread: Some(thread),
        }
    }

    /// Queues a command; never blocks.
    pub(crate) fn send(&self, command: Command) {
        if let Some(tx) = &self.commands {
            // The backend only stops when this handle is dropped, so this cannot fail
            // unless it panicked; then there is nobody left to tell.
            let _ = tx.send(command);
        }
    }

    /// The next event, if one is waiting.
    pub(crate) fn try_recv(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event (for tests; the UI never waits).
    pub(crate) fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }
}

impl Drop for BackendHandle {
    /// Closes the command channel and waits for the backend to finish the command it is on,
    /// so a change being written is complete before the app exits.
    fn drop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Backend {
    config: BackendConfig,
    vault: Option<Vault>,
    events: Sender<Event>,
    ctx: egui::Context,
}

impl Backend {
    fn run(mut self, commands: Receiver<Command>) {
        let profile_exists = alongside_core::profile::exists(&self.config.dir);
        self.emit(Event::Started { profile_exists });
        for command in commands {
            let event = self.handle(command);
            self.emit(event);
        }
    }

    fn emit(&self, event: Event) {
        // A closed channel means the window is gone; there is nobody to show it to.
        let _ = self.events.send(event);
        self.ctx.request_repaint();
    }

    fn handle(&mut self, command: Command) -> Event {
        match command {
            Command::CreateProfile { label, passphrase } => self.handle_create_profile(&label, &passphrase),
            Command::Unlock { passphrase } => self.handle_unlock(&passphrase),
            Command::Lock => {
                self.vault = None;
                Event::Locked
            }
            Command::CreateGroup { name, display_name } => self.handle_create_group(&name, &display_name),
            Command::OpenGroup(group) => match self.group_page(&group) {
                Ok(page) => Event::GroupOpened(page),
                Err(err) => failed("Could not open this group", &err),
            },
            Command::AddStory { group, story } => self.handle_add_story(&group, &story),
            Command::Home(command) => self.with_vault(|v| home_backend::handle(v, command, now_ms())),
        }
    }

    /// Runs `work` on the unlocked vault, or says the profile is locked.
    fn with_vault(&mut self, work: impl FnOnce(&mut Vault) -> Event) -> Event {
        match self.vault.as_mut() {
            Some(vault) => work(vault),
            None => locked(),
        }
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

    fn opened(&mut self, mut vault: Vault) -> Event {
        let weak_kdf = alongside_core::profile::read_header(vault.dir()).is_ok_and(|h| h.test_profile);
        let event = match (vault.label(), groups(&mut vault)) {
            (Ok(label), Ok(groups)) => Event::Unlocked {
                label,
                groups,
                weak_kdf,
            },
            (Err(err), _) | (_, Err(err)) => {
                return Event::UnlockFailed {
                    message: format!("Your profile opened, but reading it failed: {err:#}."),
                };
            }
        };
        self.vault = Some(vault);
        event
    }

    fn handle_create_group(&mut self, name: &str, display_name: &str) -> Event {
        let Some(vault) = self.vault.as_mut() else {
            return locked();
        };
        let result = vault
            .create_group(name.trim(), display_name.trim(), now_ms())
            .and_then(|_| groups(vault));
        match result {
            Ok(groups) => Event::GroupCreated {
                name: name.trim().to_string(),
                groups,
            },
            Err(err) => failed("Could not create the group", &err),
        }
    }

    fn handle_add_story(&mut self, group: &GroupId, story: &NewStory) -> Event {
        let Some(vault) = self.vault.as_mut() else {
            return locked();
        };
        if let Err(err) = vault.edit(group, |s| s.add_story(story, now_ms())) {
            return failed("Your story was not saved", &err);
        }
        match self.group_page(group) {
            Ok(page) => Event::StoryAdded(page),
            Err(err) => failed("Your story was saved, but the list could not be read", &err),
        }
    }

    fn group_page(&mut self, group: &GroupId) -> Result<GroupPage, VaultError> {
        let Some(vault) = self.vault.as_mut() else {
            return Err(VaultError::NoGroup(group.to_hex()));
        };
        home_backend::group_page(vault, group, now_ms())
    }
}

fn groups(vault: &mut Vault) -> Result<Vec<GroupCard>, VaultError> {
    let summaries = vault.groups()?;
    Ok(summaries
        .into_iter()
        .filter_map(|g| {
            Some(GroupCard {
                id: GroupId::from_hex(&g.id)?,
                name: g.name,
                me: g.me,
                role: g.role,
                members: g.members,
            })
        })
        .collect())
}

pub(super) fn failed(what: &str, err: &VaultError) -> Event {
    Event::Failed {
        message: format!("{what}: {err:#}. Nothing else was changed."),
    }
}

fn locked() -> Event {
    Event::Failed {
        message: "Your profile is locked. Unlock it first.".into(),
    }
}

/// Milliseconds since the Unix epoch, now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
