//! The desktop app (egui): `alongside` with no command opens it.
//!
//! # How it is put together
//!
//! - [`backend`] runs on its own thread and owns the unlocked profile. Creating or unlocking
//!   a profile (the passphrase KDF), reading and writing all happen there.
//! - [`AlongsideApp`] holds only what the screen shows. Each frame it first drains the
//!   backend's events in one place ([`AlongsideApp::poll_backend`]), then draws the current
//!   screen. Panels (`welcome`, `groups`, and a group's `home` with its tabs `stories`,
//!   `goals` and `agreements`) draw from that state and return an `Action`;
//!   [`AlongsideApp::execute`] is the one place actions are carried out.
//! - The UI thread never waits: a slow command shows a calm "Unlocking…" or "Saving…" until
//!   its event arrives, and the backend calls `request_repaint()` after sending it.
//!
//! Locking drops the vault in the backend and every piece of content held by the UI.

mod action;
mod agreements;
mod backend;
mod goals;
mod groups;
mod home;
mod home_backend;
mod meetings;
mod members;
mod prefs;
mod reach_out;
mod settings;
mod stories;
mod welcome;
mod widgets;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use alongside_core::crypto::PassphraseKdf;
use alongside_core::ids::GroupId;
use alongside_core::vault::SupportContact;
use alongside_net::NetConfig;
use eframe::egui;
use zeroize::Zeroize as _;

use action::Action;
use backend::{BackendConfig, BackendHandle, Command, Event, GroupCard, GroupPage, SavedForm};
use groups::{JoinForm, NewGroupForm};
use home::GroupHome;
use prefs::UiPrefs;
use settings::SettingsForm;
use stories::StoryForm;
use welcome::{FirstRunForm, UnlockForm};

/// How the desktop app opens a profile.
#[derive(Debug, Clone)]
pub struct GuiConfig {
    /// The profile's data directory.
    pub data_dir: PathBuf,
    /// Passphrase protection for a profile created on first run
    /// ([`PassphraseKdf::STRONG`] for everyone; tests use [`PassphraseKdf::TEST`]).
    pub kdf: PassphraseKdf,
    /// What the network may reach (relays, local-network discovery, bind address).
    pub net: NetConfig,
}

/// The desktop window could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuiError {
    /// There is no graphical display to open a window on.
    #[error(
        "could not open a window: no graphical display was found. Run Alongside from a desktop session, or use its commands (see `alongside --help`)"
    )]
    NoDisplay,
    /// The windowing system or the graphics driver refused.
    #[error("could not open a window ({0}). Alongside's commands still work: see `alongside --help`")]
    Window(String),
}

/// Opens the desktop window and runs until it is closed.
pub fn run(config: GuiConfig) -> Result<(), GuiError> {
    if !display_available() {
        return Err(GuiError::NoDisplay);
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Alongside")
            .with_inner_size([760.0, 680.0])
            .with_min_inner_size([420.0, 360.0]),
        // Only the window's look and lock time are kept there (see `prefs`).
        persistence_path: Some(config.data_dir.join("window.ron")),
        ..Default::default()
    };
    eframe::run_native(
        "Alongside",
        options,
        Box::new(move |cc| Ok(Box::new(AlongsideApp::new(cc, config)))),
    )
    .map_err(|err| GuiError::Window(err.to_string()))
}

/// Whether a window could be shown at all (on Linux and the BSDs: an X11 or Wayland
/// display is set; elsewhere there always is one).
fn display_available() -> bool {
    if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd"
    )) {
        ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    } else {
        true
    }
}

/// Which screen is up.
enum Screen {
    /// Waiting for the backend to look at the data directory.
    Starting,
    /// No profile yet.
    FirstRun(FirstRunForm),
    /// A profile that is locked.
    Locked(UnlockForm),
    /// The profile is open.
    Open(Box<Session>),
    /// The backend stopped: nothing more can be done until Alongside is restarted.
    Stopped,
}

/// What the UI holds while the profile is open. Dropped whole on lock.
struct Session {
    /// The device label.
    label: String,
    groups: Vec<GroupCard>,
    new_group: NewGroupForm,
    join: JoinForm,
    /// Crisis lines and contacts saved on this device.
    contacts: Vec<SupportContact>,
    /// The group whose home is shown, if any.
    home: Option<GroupHome>,
    /// Waiting for a group's home to load.
    opening: bool,
    /// Group homes as this device last showed them, shown while their groups load.
    shown_last: BTreeMap<GroupId, GroupPage>,
    /// The last thing that happened, in a sentence.
    notice: Option<String>,
    /// Made with the weak test passphrase protection.
    weak_kdf: bool,
    /// The settings screen, if open.
    settings: Option<SettingsForm>,
}

/// The Alongside desktop app: screen state plus a handle to its backend thread.
pub struct AlongsideApp {
    backend: BackendHandle,
    screen: Screen,
    /// Events that [`AlongsideApp::wait_for_backend`] received before the next frame.
    held: VecDeque<Event>,
    /// How the window looks and when it locks (kept in eframe's storage).
    prefs: UiPrefs,
    /// The preferences as last applied to the context.
    applied: Option<UiPrefs>,
    /// When the person last did anything: the window's clock and the wall clock (seconds).
    last_active: (f64, f64),
    /// What the unlock screen says after the next lock (why it locked).
    lock_note: Option<String>,
}

impl AlongsideApp {
    /// Starts the backend for `config`, with the look and lock time saved in `cc`'s
    /// storage (if any), in a calm, readable style.
    pub fn new(cc: &eframe::CreationContext<'_>, config: GuiConfig) -> AlongsideApp {
        let ctx = &cc.egui_ctx;
        let prefs: UiPrefs = cc
            .storage
            .and_then(|s| eframe::get_value(s, prefs::STORAGE_KEY))
            .unwrap_or_default();
        let backend = BackendHandle::spawn(
            BackendConfig {
                dir: config.data_dir,
                kdf: config.kdf,
                net: config.net,
            },
            ctx.clone(),
        );
        AlongsideApp {
            backend,
            screen: Screen::Starting,
            held: VecDeque::new(),
            prefs,
            applied: None,
            last_active: (0.0, f64::MAX),
            lock_note: None,
        }
    }

    /// Blocks up to `timeout` until the backend reports something, which the next frame
    /// shows. For tests and scripts that drive the app; the UI itself never waits.
    /// Returns whether anything arrived.
    pub fn wait_for_backend(&mut self, timeout: Duration) -> bool {
        if !self.held.is_empty() {
            return true;
        }
        match self.backend.recv_timeout(timeout) {
            Some(event) => {
                self.held.push_back(event);
                true
            }
            None => false,
        }
    }

    /// Applies every event the backend has sent since the last frame.
    fn poll_backend(&mut self) {
        while let Some(event) = self.held.pop_front().or_else(|| self.backend.try_recv()) {
            self.apply(event);
        }
    }

    fn apply(&mut self, event: Event) {
        match (event, &mut self.screen) {
            (Event::Stopped, _) => {
                self.screen = Screen::Stopped;
            }
            (Event::Started { profile_exists }, Screen::Starting) => {
                self.screen = if profile_exists {
                    Screen::Locked(UnlockForm::default())
                } else {
                    Screen::FirstRun(FirstRunForm::default())
                };
            }
            (
                Event::Unlocked {
                    label,
                    groups,
                    weak_kdf,
                    contacts,
                    shown_last,
                },
                _,
            ) => {
                self.screen = Screen::Open(Box::new(Session {
                    label,
                    groups,
                    new_group: NewGroupForm::default(),
                    join: JoinForm::default(),
                    contacts,
                    settings: None,
                    home: None,
                    opening: false,
                    shown_last,
                    notice: None,
                    weak_kdf,
                }));
            }
            (Event::UnlockFailed { message }, Screen::FirstRun(form)) => {
                form.busy = false;
                form.error = Some(message);
            }
            // The network could not start after what was shown last was already on screen.
            (Event::UnlockFailed { message }, Screen::Open(_)) => {
                self.screen = Screen::Locked(UnlockForm {
                    error: Some(message),
                    ..UnlockForm::default()
                });
            }
            (Event::UnlockFailed { message }, Screen::Locked(form)) => {
                form.busy = false;
                // Wipe what was typed, not just its length.
                form.passphrase.zeroize();
                form.error = Some(message);
            }
            (Event::Locked, _) => {
                let note = self
                    .lock_note
                    .take()
                    .unwrap_or_else(|| "Alongside is locked. Enter your passphrase to open it again.".into());
                self.screen = Screen::Locked(UnlockForm {
                    note: Some(note),
                    ..UnlockForm::default()
                });
            }
            (Event::GroupCreated { name, groups }, Screen::Open(session)) => {
                session.groups = groups;
                session.new_group = NewGroupForm::default();
                session.notice = Some(format!("You started \"{name}\" and are its first facilitator."));
            }
            (Event::Joined { name, groups }, Screen::Open(session)) => {
                session.groups = groups;
                session.join.clear();
                session.notice = Some(format!("You joined {name}. Welcome."));
            }
            (Event::JoinFailed { message }, Screen::Open(session)) => {
                session.join.busy = false;
                session.join.error = Some(message);
            }
            (Event::Groups(groups), Screen::Open(session)) => session.groups = groups,
            (Event::GroupUpdated(page), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut().filter(|h| h.page.id == page.id) {
                    home.show(page);
                }
            }
            (Event::Status(status), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut().filter(|h| h.page.id == status.group) {
                    home.page.status = status;
                }
            }
            // Said where it was asked for (a group left since keeps its own line).
            (Event::Synced { group, message }, Screen::Open(session))
                if session.home.as_ref().is_none_or(|h| h.page.id == group) =>
            {
                session.notice = Some(message);
            }
            (Event::Saved { page, notice, form }, Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut().filter(|h| h.page.id == page.id) {
                    home.show(page);
                    home.reach.busy = false;
                    // Empty only the form whose writing was saved.
                    match form {
                        Some(SavedForm::ReachOut) => home.reach.message.clear(),
                        Some(SavedForm::Answer(id)) => {
                            home.reach.answers.remove(&id);
                        }
                        None => {}
                    }
                }
                session.notice = Some(notice);
            }
            (Event::Left { name, groups }, Screen::Open(session)) => {
                session.groups = groups;
                session.home = None;
                session.notice = Some(format!(
                    "You have left {name}. Members will see it when this device next reaches one of them. What you already had stays on this device."
                ));
            }
            (Event::Settings(view), Screen::Open(session)) => {
                if let Some(form) = session.settings.as_mut() {
                    form.show(view);
                }
            }
            (Event::SettingsSaved { view, notice }, Screen::Open(session)) => {
                if let Some(form) = session.settings.as_mut() {
                    form.show(view);
                }
                session.notice = Some(notice);
            }
            (Event::Notice(notice), Screen::Open(session)) => session.notice = Some(notice),
            (Event::Contacts(contacts), Screen::Open(session)) => {
                session.contacts = contacts;
                if let Some(form) = session.settings.as_mut() {
                    form.contacts.busy = false;
                    form.contacts.contact = SupportContact::default();
                }
                if let Some(home) = session.home.as_mut() {
                    home.reach.busy = false;
                    home.reach.contact = SupportContact::default();
                }
                session.notice = Some("Saved on this device only.".into());
            }
            (Event::Invitation(made), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut().filter(|h| h.page.id == made.group) {
                    home.invite.busy = false;
                    home.invite.made = Some(made);
                }
            }
            (Event::GroupOpened(page), Screen::Open(session)) if session.opening => {
                session.opening = false;
                match session.home.as_mut().filter(|h| h.page.id == page.id && h.shown_last) {
                    // What was shown last is already up, perhaps with a form begun: the
                    // page as it is now replaces it in place.
                    Some(home) => {
                        home.shown_last = false;
                        home.show(page);
                    }
                    None => {
                        session.notice = None;
                        session.home = Some(GroupHome::new(page));
                    }
                }
            }
            (Event::StoryAdded(page), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut().filter(|h| h.page.id == page.id) {
                    home.show(page);
                    home.writer = None;
                }
                session.notice = Some(
                    "Your story is saved on this device. Members will see it once their devices sync with this one."
                        .into(),
                );
            }
            (Event::HomeSaved { page, saved }, Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut().filter(|h| h.page.id == page.id)
                    && let Some(notice) = home.saved(page, &saved)
                {
                    session.notice = Some(notice);
                }
            }
            (Event::Failed { message }, Screen::Open(session)) => {
                session.new_group.busy = false;
                session.join.busy = false;
                session.opening = false;
                if let Some(home) = session.home.as_mut() {
                    home.failed();
                }
                if let Some(form) = session.settings.as_mut() {
                    form.failed();
                }
                session.notice = Some(message);
            }
            // Anything else answers a screen that is gone (e.g. the profile was locked since).
            _ => {}
        }
    }

    /// Carries out what a panel asked for: the one place that changes screens or sends
    /// commands to the backend.
    fn execute(&mut self, ctx: &egui::Context, action: Action) {
        // What the action changes shows in the next frame, not at the next input.
        ctx.request_repaint();
        match (action, &mut self.screen) {
            (Action::Send(command), _) => self.send(command),
            (Action::ShowGroups, Screen::Open(session)) => {
                session.home = None;
                // A page still on its way must not reopen the group after all.
                session.opening = false;
                session.notice = None;
                self.backend.send(Command::CloseGroup);
            }
            (Action::OpenSettings, Screen::Open(session)) => {
                session.settings = Some(SettingsForm::default());
                session.notice = None;
                self.backend.send(Command::OpenSettings);
            }
            (Action::CloseSettings, Screen::Open(session)) => {
                session.settings = None;
                session.notice = None;
            }
            (Action::Copy(text), Screen::Open(session)) => {
                ctx.copy_text(text);
                session.notice =
                    Some("The ticket is copied. Paste it only where the person you invite will get it.".into());
            }
            (Action::StartStory, Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.writer = Some(StoryForm::default());
                }
                session.notice = None;
            }
            (Action::CancelStory, Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.writer = None;
                }
            }
            (Action::ShareStory(story), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    if let Some(form) = home.writer.as_mut() {
                        form.busy = true;
                    }
                    session.notice = None;
                    self.backend.send(Command::AddStory {
                        group: home.page.id,
                        story,
                    });
                }
            }
            (Action::RevealStory(id), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.revealed.insert(id);
                }
            }
            (Action::ConcealStory(id), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.revealed.remove(&id);
                }
            }
            (Action::Home(change), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.apply(change);
                }
                session.notice = None;
            }
            // An action from a screen that has since changed.
            _ => {}
        }
    }

    /// Shows that `command` is under way on the screen that asked for it, then hands it
    /// to the backend. A command from a screen that has since changed is dropped.
    fn send(&mut self, command: Command) {
        match (&command, &mut self.screen) {
            (Command::CreateProfile { .. }, Screen::FirstRun(form)) => {
                form.busy = true;
                form.error = None;
            }
            (Command::Unlock { .. }, Screen::Locked(form)) => {
                form.busy = true;
                form.error = None;
                form.note = None;
            }
            (Command::Lock, Screen::Open(_)) => {
                // Forget the content at once; the backend drops the vault next.
                self.screen = Screen::Locked(UnlockForm {
                    busy: false,
                    note: Some("Locking…".into()),
                    ..UnlockForm::default()
                });
            }
            (Command::CreateGroup { .. }, Screen::Open(session)) => {
                session.new_group.busy = true;
                session.notice = None;
            }
            (Command::OpenGroup(group), Screen::Open(session)) => {
                session.opening = true;
                session.notice = None;
                if let Some(page) = session.shown_last.remove(group) {
                    let mut home = GroupHome::new(page);
                    home.shown_last = true;
                    session.home = Some(home);
                }
            }
            (Command::JoinGroup { .. }, Screen::Open(session)) => {
                session.join.busy = true;
                session.join.error = None;
                session.notice = None;
            }
            (Command::Invite { .. }, Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.invite.busy = true;
                }
            }
            (Command::ReachOut { .. } | Command::Respond { .. } | Command::SaveContacts(_), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.reach.busy = true;
                }
                session.notice = None;
            }
            (Command::ShowOlderStories, Screen::Open(session)) if session.home.is_some() => {}
            (
                Command::SyncNow(_)
                | Command::SetMuted { .. }
                | Command::SetDisplayName { .. }
                | Command::ChangePassphrase { .. }
                | Command::SetBreak(_)
                | Command::SetRelay(_)
                | Command::SetOwnRelay(_)
                | Command::Export { .. }
                | Command::SetMeetingMode { .. }
                | Command::RemoveMember { .. }
                | Command::SetRole { .. }
                | Command::Leave(_)
                | Command::RevokeInvitations { .. }
                | Command::RepairGroup(_),
                Screen::Open(session),
            ) => session.notice = None,
            (Command::Home(home_command), Screen::Open(session)) => {
                if let Some(home) = session.home.as_mut() {
                    home.waiting_for(home_command);
                }
                session.notice = None;
            }
            _ => return,
        }
        self.backend.send(command);
    }

    /// Draws the current screen; returns what the person asked for.
    #[must_use]
    fn show(&mut self, ui: &mut egui::Ui) -> Option<Action> {
        let mut action = None;
        egui::Panel::top("top_bar").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new("Alongside").strong());
                if let Screen::Open(session) = &self.screen {
                    widgets::quiet(ui, format!("· {}", session.label));
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui
                            .button("Lock")
                            .on_hover_text("Close your profile on this device until the passphrase is entered again")
                            .clicked()
                        {
                            action = Some(Action::Send(Command::Lock));
                        }
                        if ui.button("Settings").clicked() {
                            action = Some(Action::OpenSettings);
                        }
                    });
                }
            });
        });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().auto_shrink(false).show(ui, |ui| {
                ui.set_max_width(640.0);
                let screen_action = match &mut self.screen {
                    Screen::Starting => {
                        widgets::quiet(ui, "Opening…");
                        None
                    }
                    Screen::FirstRun(form) => welcome::first_run(ui, form),
                    Screen::Locked(form) => welcome::unlock(ui, form),
                    Screen::Open(session) => show_session(ui, session, &mut self.prefs),
                    Screen::Stopped => {
                        widgets::message(
                            ui,
                            "Something went wrong inside Alongside and it has to be restarted. \
                             Everything that was saved is safe; please close and open it again.",
                        );
                        None
                    }
                };
                action = action.take().or(screen_action);
            });
        });
        action
    }
}

#[must_use]
fn show_session(ui: &mut egui::Ui, session: &mut Session, prefs: &mut UiPrefs) -> Option<Action> {
    if session.weak_kdf {
        widgets::quiet(
            ui,
            "This is a test profile with weak passphrase protection. Do not keep real stories in it.",
        );
    }
    if let Some(notice) = &session.notice {
        widgets::message(ui, notice);
    }
    if session.opening {
        widgets::quiet(ui, "Opening the group…");
    }
    if let Some(form) = session.settings.as_mut() {
        return settings::settings_screen(ui, form, prefs, &session.contacts);
    }
    match session.home.as_mut() {
        Some(home) => home::group_home(ui, home, &session.contacts),
        None => groups::groups_screen(ui, &session.groups, &mut session.new_group, &mut session.join),
    }
}

impl AlongsideApp {
    /// Locks the window after the chosen time without use. Runs from `logic`, which eframe
    /// calls even while the window is hidden; idle time counts both the window's clock and
    /// the wall clock (which goes on while the computer sleeps), and is checked *before*
    /// the input that ends it, so coming back after too long finds the window locked.
    fn watch_idle(&mut self, ctx: &egui::Context) {
        let (now, active) = ctx.input(|i| (i.time, !i.events.is_empty()));
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let open = matches!(self.screen, Screen::Open(_));
        let idle = (now - self.last_active.0).max(wall - self.last_active.1);
        if open && self.prefs.should_lock(idle) {
            self.lock_note = Some(format!(
                "Alongside locked itself after {} without use. Enter your passphrase to open it again.",
                prefs::LOCK_AFTER
                    .iter()
                    .find(|(_, m)| *m == self.prefs.lock_after_minutes)
                    .map_or("a while", |(name, _)| name)
            ));
            self.send(Command::Lock);
            self.last_active = (now, wall);
            return;
        }
        if active || !open {
            self.last_active = (now, wall);
        }
        if open {
            ctx.request_repaint_after(Duration::from_secs(20));
        }
    }
}

impl eframe::App for AlongsideApp {
    /// Runs every frame, even while the window is hidden: what the backend sent, and the
    /// idle lock.
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.poll_backend();
        self.watch_idle(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if self.applied != Some(self.prefs) {
            self.prefs.apply(&ctx);
            self.applied = Some(self.prefs);
        }
        self.poll_backend();
        if let Some(action) = self.show(ui) {
            self.execute(&ctx, action);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, prefs::STORAGE_KEY, &self.prefs);
    }

    /// egui's memory can hold widget state (a text field's contents among it): never
    /// written to disk.
    fn persist_egui_memory(&self) -> bool {
        false
    }
}
