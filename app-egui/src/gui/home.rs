//! A group's home: its name, a quiet line saying how this device stands with the other
//! members (who is connected, what waits to be sent, "sync now", meeting mode), and tabs
//! for what the group holds.

use std::collections::BTreeSet;

use alongside_core::vault::SupportContact;
use eframe::egui;

use super::action::Action;
use super::backend::{Command, GroupPage, GroupStatus};
use super::members::{self, InviteForm};
use super::reach_out::{self, ReachOutForm};
use super::stories::{self, StoryForm};
use super::widgets::quiet;

/// The parts of a group's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tab {
    /// Stories, and writing one.
    Stories,
    /// Asking for support, and answering others.
    ReachOut,
    /// Members, their connection, and inviting someone.
    Members,
}

impl Tab {
    /// Every tab, in the order shown.
    const ALL: [Tab; 3] = [Tab::Stories, Tab::ReachOut, Tab::Members];

    fn title(self) -> &'static str {
        match self {
            Tab::Stories => "Stories",
            Tab::ReachOut => "Reach out",
            Tab::Members => "Members",
        }
    }
}

/// One group's home as the UI holds it.
pub(crate) struct GroupHome {
    /// What the backend last sent.
    pub(crate) page: GroupPage,
    /// The tab shown.
    pub(crate) tab: Tab,
    /// Stories with warnings that the reader chose to open (item ids).
    pub(crate) revealed: BTreeSet<String>,
    /// The story being written, if the writer is open.
    pub(crate) writer: Option<StoryForm>,
    /// Making an invitation, and the last one made.
    pub(crate) invite: InviteForm,
    /// Reaching out, answering, and the contacts on this device.
    pub(crate) reach: ReachOutForm,
}

impl GroupHome {
    /// A home showing `page` on its first tab, every story with warnings collapsed.
    pub(crate) fn new(page: GroupPage) -> GroupHome {
        GroupHome {
            page,
            tab: Tab::Stories,
            revealed: BTreeSet::new(),
            writer: None,
            invite: InviteForm::default(),
            reach: ReachOutForm::default(),
        }
    }
}

/// The group's home: a way back, the name, the connection line, reach-outs waiting for
/// an answer, the tabs. `contacts` are the crisis lines saved on this device.
#[must_use]
pub(crate) fn group_home(ui: &mut egui::Ui, home: &mut GroupHome, contacts: &[SupportContact]) -> Option<Action> {
    let mut action = None;
    if ui.button("Back to your groups").clicked() {
        action = Some(Action::ShowGroups);
    }
    ui.heading(&home.page.name);
    action = action.or(connection(ui, &home.page.status));
    action = action.or(waiting_for_answers(ui, home));
    ui.add_space(8.0);
    ui.horizontal(|ui| {
        for tab in Tab::ALL {
            if ui.selectable_label(home.tab == tab, tab.title()).clicked() {
                action = Some(Action::ShowTab(tab));
            }
        }
    });
    ui.separator();
    let tab_action = match home.tab {
        Tab::Stories => stories::stories_tab(ui, home),
        Tab::ReachOut => reach_out::reach_out_tab(ui, &home.page, &mut home.reach, contacts),
        Tab::Members => members::members_tab(ui, home),
    };
    action.or(tab_action)
}

/// Who is connected now, what waits to be sent, "sync now" and meeting mode — visible,
/// small and calm.
#[must_use]
fn connection(ui: &mut egui::Ui, status: &GroupStatus) -> Option<Action> {
    let mut action = None;
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
        let mut on = status.meeting_mode;
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
    if status.meeting_mode {
        if status.lan_allowed {
            quiet(
                ui,
                "Looking for members on this network. Only members of this group can recognise what this device announces.",
            );
        } else {
            quiet(
                ui,
                "Finding members nearby is switched off for this device as a whole, so meeting mode waits until it is allowed.",
            );
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
        .filter(|c| !c.mine && !c.view.answered)
        .map(|c| c.view.author.name.as_str())
        .collect();
    if waiting.is_empty() || home.tab == Tab::ReachOut {
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
                .then_some(Action::ShowTab(Tab::ReachOut))
        })
        .inner
}
