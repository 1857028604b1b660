//! A group's home: its name, a quiet line saying how this device stands with the other
//! members (who is connected, what waits to be sent, "sync now", meeting mode), others'
//! reach-outs still waiting for an answer, a row of tabs (stories, goals, reach out,
//! agreements, members), and the open tab.
//!
//! A member who has not agreed to the group's current agreements sees them first.
//! To add a tab: a `Tab` variant, its entry in [`Tab::ALL`], and its arm in [`group_home`]
//! (the compiler points at the arm).

use crate::meeting_words::until_words;
use std::collections::BTreeSet;

use alongside_core::vault::SupportContact;
use eframe::egui;

use super::action::Action;
use super::agreements::{self, AgreementForm};
use super::backend::{Command, GroupPage, GroupStatus};
use super::goals::{self, CheckInForm, GoalForm};
use super::home_backend::{HomeCommand, HomeSaved};
use super::meetings::{self, MeetingsForm};
use super::members::{self, InviteForm};
use super::reach_out::{self, ReachOutForm};
use super::stories::{self, StoryExtras, StoryForm};
use super::widgets::quiet;

/// The tabs of a group's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    /// The group's stories.
    Stories,
    /// Goals and check-ins.
    Goals,
    /// Meetings, with their shared notes.
    Meetings,
    /// Asking for support, and answering others.
    ReachOut,
    /// The group's agreements.
    Agreements,
    /// Members, their connection, and inviting someone.
    Members,
}

impl Tab {
    /// Every tab in the order of the row, with its label (also its accessible name).
    pub(crate) const ALL: [(Tab, &'static str); 6] = [
        (Tab::Stories, "Stories"),
        (Tab::Goals, "Goals"),
        (Tab::Meetings, "Meetings"),
        (Tab::ReachOut, "Reach out"),
        (Tab::Agreements, "Agreements"),
        (Tab::Members, "Members"),
    ];
}

/// One group's home as the UI holds it.
pub(crate) struct GroupHome {
    /// What the backend last sent.
    pub(crate) page: GroupPage,
    /// `page` is what this device showed last time, until the group finishes loading.
    pub(crate) shown_last: bool,
    /// The tab shown.
    pub(crate) tab: Tab,
    /// Stories with warnings that the reader chose to open (item ids).
    pub(crate) revealed: BTreeSet<String>,
    /// The story being written, if the writer is open.
    pub(crate) writer: Option<StoryForm>,
    /// The new goal being written, if that form is open.
    pub(crate) new_goal: Option<GoalForm>,
    /// The check-in being filled in, if one is open (one goal at a time).
    pub(crate) check_in: Option<CheckInForm>,
    /// The agreements being edited, if a facilitator opened the editor.
    pub(crate) agreement_editor: Option<AgreementForm>,
    /// Making an invitation, the last one made, and a removal or leaving to confirm.
    pub(crate) invite: InviteForm,
    /// Reaching out, answering, and the contacts on this device.
    pub(crate) reach: ReachOutForm,
    /// Scheduling, and the meeting opened with its notes.
    pub(crate) meetings: MeetingsForm,
    /// Replies being written and a deletion to confirm.
    pub(crate) story_extras: StoryExtras,
}

/// Changes to what a group's home shows, asked for by its panels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HomeAction {
    /// Show another tab.
    ShowTab(Tab),
    /// Open the new goal form.
    StartGoal,
    /// Close it without saving.
    CancelGoal,
    /// Open the check-in form for goal `id`.
    StartCheckIn(String),
    /// Close it without saving.
    CancelCheckIn,
    /// Open the agreements editor.
    EditAgreements,
    /// Close it without saving.
    CancelAgreements,
}

impl GroupHome {
    /// A home showing `page`: its agreements first if this member has not agreed to them
    /// yet, otherwise its stories, every story with warnings collapsed.
    pub(crate) fn new(page: GroupPage) -> GroupHome {
        let tab = if page.agreement_waiting() {
            Tab::Agreements
        } else {
            Tab::Stories
        };
        GroupHome {
            page,
            shown_last: false,
            tab,
            revealed: BTreeSet::new(),
            writer: None,
            new_goal: None,
            check_in: None,
            agreement_editor: None,
            invite: InviteForm::default(),
            reach: ReachOutForm::default(),
            meetings: MeetingsForm::default(),
            story_extras: StoryExtras::default(),
        }
    }

    /// Carries out a change of what is shown.
    pub(crate) fn apply(&mut self, action: HomeAction) {
        match action {
            HomeAction::ShowTab(tab) => self.tab = tab,
            HomeAction::StartGoal => self.new_goal = Some(GoalForm::default()),
            HomeAction::CancelGoal => self.new_goal = None,
            HomeAction::StartCheckIn(goal) => self.check_in = Some(CheckInForm::new(goal, &self.page.today)),
            HomeAction::CancelCheckIn => self.check_in = None,
            HomeAction::EditAgreements => {
                let text = self.page.agreement.as_ref().map(|a| a.text.clone()).unwrap_or_default();
                self.agreement_editor = Some(AgreementForm::new(text));
            }
            HomeAction::CancelAgreements => self.agreement_editor = None,
        }
    }

    /// Marks the form that sent `command` as waiting for the backend.
    pub(crate) fn waiting_for(&mut self, command: &HomeCommand) {
        match command {
            HomeCommand::AddGoal { .. } => self.new_goal.iter_mut().for_each(|f| f.busy = true),
            HomeCommand::CheckIn { .. } => self.check_in.iter_mut().for_each(|f| f.busy = true),
            HomeCommand::SetAgreements { .. } => self.agreement_editor.iter_mut().for_each(|f| f.busy = true),
            HomeCommand::AddMeeting { .. } => self.meetings.new.iter_mut().for_each(|f| f.busy = true),
            HomeCommand::EditNotes { text, .. } => self.meetings.notes.iter_mut().for_each(|e| e.sent(text)),
            HomeCommand::Agree(_)
            | HomeCommand::AcknowledgeUndone(_)
            | HomeCommand::React { .. }
            | HomeCommand::Reply { .. }
            | HomeCommand::DeleteStory { .. }
            | HomeCommand::SetAttendance { .. }
            | HomeCommand::AddAction { .. }
            | HomeCommand::SetActionDone { .. } => {}
        }
    }

    /// Shows `page` (others' changes arrived): open notes take in others' typing.
    pub(crate) fn show(&mut self, page: GroupPage) {
        self.page = page;
        self.meetings.refresh(&self.page);
    }

    /// Something this home sent failed: forms stop waiting, and notes that were being
    /// saved count as unsent again.
    pub(crate) fn failed(&mut self) {
        if let Some(editor) = self.meetings.notes.as_mut() {
            editor.save_failed();
        }
        self.stop_waiting();
    }

    /// Marks every form of this home as no longer waiting for the backend.
    pub(crate) fn stop_waiting(&mut self) {
        self.invite.busy = false;
        self.reach.busy = false;
        if let Some(form) = self.meetings.new.as_mut() {
            form.busy = false;
        }
        if let Some(editor) = self.meetings.notes.as_mut() {
            editor.saving = false;
        }
        if let Some(form) = self.writer.as_mut() {
            form.busy = false;
        }
        if let Some(form) = self.new_goal.as_mut() {
            form.busy = false;
        }
        if let Some(form) = self.check_in.as_mut() {
            form.busy = false;
        }
        if let Some(form) = self.agreement_editor.as_mut() {
            form.busy = false;
        }
    }

    /// Shows `page` after `saved`, closes the form that saved it, and returns what to tell
    /// the member, if anything (a save of notes or attendance goes by quietly).
    pub(crate) fn saved(&mut self, page: GroupPage, saved: &HomeSaved) -> Option<String> {
        self.stop_waiting();
        self.show(page);
        Some(match saved {
            HomeSaved::Meeting => {
                self.meetings.new = None;
                "The meeting is scheduled. Members see it once their devices sync with this one.".into()
            }
            HomeSaved::Notes | HomeSaved::MeetingDetail | HomeSaved::UndoneSeen => return None,
            HomeSaved::Support => "Your support is sent with the next sync.".into(),
            HomeSaved::Reply { story } => {
                self.story_extras.replies.remove(story);
                "Your reply is saved and goes out with the next sync.".into()
            }
            HomeSaved::StoryDeleted => {
                "The story is deleted from what the group sees. Devices that already had it keep a copy in the history."
                    .into()
            }
            HomeSaved::Goal => {
                self.new_goal = None;
                "Your goal is saved on this device. Whoever it is shared with will see it once their devices sync with this one."
                    .into()
            }
            HomeSaved::CheckIn { goal, setback } => {
                self.check_in = None;
                let goal = self.page.goals.iter().find(|g| &g.id == goal);
                goals::checked_in_message(goal.map(|g| &g.streak), *setback)
            }
            HomeSaved::Agreements => {
                self.agreement_editor = None;
                "The agreements are saved. Everyone, you too, is asked to read and agree to this version.".into()
            }
            HomeSaved::Agreed => "Thank you. Your agreement is saved on this device.".into(),
        })
    }
}

/// The group's home: a way back, the group's name, the connection line, reach-outs
/// waiting for an answer, the tab row and the open tab. `contacts` are the crisis lines
/// saved on this device.
#[must_use]
pub(crate) fn group_home(ui: &mut egui::Ui, home: &mut GroupHome, contacts: &[SupportContact]) -> Option<Action> {
    let mut action = None;
    if ui.button("Back to your groups").clicked() {
        action = Some(Action::ShowGroups);
    }
    ui.heading(&home.page.name);
    if home.shown_last {
        // Before the group's documents are loaded: say so instead of a connection line
        // that would not be true yet.
        quiet(ui, "Still opening: this is the group as you last saw it here.");
    } else {
        action = action.or(connection(ui, &home.page.status));
    }
    action = action.or(undone(ui, &home.page));
    action = action.or(waiting_for_answers(ui, home));
    ui.add_space(8.0);
    ui.horizontal(|ui| {
        for (tab, label) in Tab::ALL {
            if ui.selectable_label(home.tab == tab, label).clicked() {
                action = Some(Action::Home(HomeAction::ShowTab(tab)));
            }
        }
    });
    ui.separator();
    let shown = match home.tab {
        Tab::Stories => stories::stories_tab(ui, home),
        Tab::Goals => goals::goals_tab(ui, home),
        Tab::Meetings => meetings::meetings_tab(ui, &home.page, &mut home.meetings),
        Tab::ReachOut => reach_out::reach_out_tab(ui, &home.page, &mut home.reach, contacts),
        Tab::Agreements => agreements::agreements_tab(ui, home),
        Tab::Members => members::members_tab(ui, home),
    };
    action.or(shown)
}

/// Says, once, that some of this member's own changes were undone everywhere: they were
/// made while their role seemed to allow them, and it did not (MEMBERSHIP.md).
#[must_use]
fn undone(ui: &mut egui::Ui, page: &GroupPage) -> Option<Action> {
    if page.undone == 0 {
        return None;
    }
    let mut action = None;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.label(
            "Some of your changes to the group's name, agreements or settings were undone. When you made them, your facilitator role had already ended, or the change that gave it to you did not count, so no one's device kept them.",
        );
        quiet(
            ui,
            "Nothing else you wrote was touched. A facilitator can make these changes, or give you the role again.",
        );
        if ui.button("I understand").clicked() {
            action = Some(Action::Send(Command::Home(HomeCommand::AcknowledgeUndone(page.id))));
        }
    });
    action
}

/// Who is connected now, what waits to be sent, "sync now" and meeting mode — visible,
/// small and calm.
#[must_use]
fn connection(ui: &mut egui::Ui, status: &GroupStatus) -> Option<Action> {
    let mut action = None;
    let now = crate::gui::backend::now_ms();
    let meeting_until = status.meeting_until.filter(|until| *until > now);
    let reachable = status.reachable_names();
    if reachable.is_empty() {
        quiet(
            ui,
            "Offline: nobody in this group is reachable right now. What you write is saved here and shared when someone is.",
        );
    } else {
        quiet(ui, format!("Connected now: {}", reachable.join(", ")));
    }
    match status.waiting {
        0 => {}
        1 => {
            quiet(ui, "1 change waiting to be sent");
        }
        n => {
            quiet(ui, format!("{n} changes waiting to be sent"));
        }
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(!status.syncing, egui::Button::new("Sync now"))
            .on_hover_text("Reach every member this device knows, and exchange what is new")
            .clicked()
        {
            action = Some(Action::Send(Command::SyncNow(status.group)));
        }
        if status.syncing {
            quiet(ui, "Syncing…");
        }
        let mut on = meeting_until.is_some();
        if ui
            .checkbox(&mut on, "Meeting mode: find members on this Wi-Fi")
            .changed()
        {
            action = Some(Action::Send(Command::SetMeetingMode {
                group: status.group,
                on,
            }));
        }
    });
    if let Some(until) = meeting_until {
        // Shown as off the moment its time is up.
        let left = u64::try_from(until - now).unwrap_or(0);
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(left));
        let until = until_words(until, now);
        if status.lan_allowed {
            quiet(
                ui,
                format!(
                    "Meeting mode is on {until}, then it switches itself off. Looking for members on this network. Others on it cannot tell which group this is, or recognise this device at another meeting."
                ),
            );
        } else {
            quiet(
                ui,
                format!(
                    "Meeting mode is on {until}, then it switches itself off. Finding members nearby is switched off for this device as a whole, so it waits until that is allowed."
                ),
            );
        }
        if ui.button("Keep meeting mode on for 3 hours from now").clicked() {
            action = Some(Action::Send(Command::SetMeetingMode {
                group: status.group,
                on: true,
            }));
        }
    }
    action
}

/// Others' reach-outs that nobody has answered yet stay at the top of the home until
/// someone does.
#[must_use]
fn waiting_for_answers(ui: &mut egui::Ui, home: &GroupHome) -> Option<Action> {
    let waiting: Vec<&str> = home
        .page
        .reach_outs
        .iter()
        .filter(|c| !c.mine && !c.view.answered && !home.page.muted.contains(&c.view.author.id))
        .map(|c| c.view.author.name.as_str())
        .collect();
    // A break pauses reach-out alerts (the tab still lists them).
    if waiting.is_empty() || home.tab == Tab::ReachOut || home.page.on_break {
        return None;
    }
    egui::Frame::group(ui.style())
        .show(ui, |ui| {
            ui.label(format!(
                "{} reached out and no one has answered yet.",
                waiting.join(", ")
            ));
            ui.button("See reach-outs")
                .clicked()
                .then_some(Action::Home(HomeAction::ShowTab(Tab::ReachOut)))
        })
        .inner
}
