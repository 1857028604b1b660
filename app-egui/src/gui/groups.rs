//! The list of groups, the form that starts a new one, and joining one with a ticket.

use eframe::egui;
use zeroize::{Zeroize as _, Zeroizing};

use super::action::Action;
use super::backend::Command;
use super::backend::GroupCard;
use super::widgets::{message, primary_button, quiet, submitted, text_line};

/// The "start a group" form.
#[derive(Default)]
pub(crate) struct NewGroupForm {
    pub(crate) name: String,
    pub(crate) display_name: String,
    /// The backend is creating it.
    pub(crate) busy: bool,
}

/// The "join a group" form.
#[derive(Default)]
pub(crate) struct JoinForm {
    /// The pasted ticket (wiped once used).
    pub(crate) ticket: String,
    pub(crate) display_name: String,
    /// The backend is joining.
    pub(crate) busy: bool,
    /// Why the last try did not work.
    pub(crate) error: Option<String>,
}

impl JoinForm {
    /// Empties the form (the ticket is wiped as the old form drops).
    pub(crate) fn clear(&mut self) {
        *self = JoinForm::default();
    }
}

impl Drop for JoinForm {
    /// A ticket is a key: wipe it, not just its length, when the form goes (on joining,
    /// on lock, on closing the window).
    fn drop(&mut self) {
        self.ticket.zeroize();
    }
}

/// The groups screen: every group, then the forms to start or join one.
#[must_use]
pub(crate) fn groups_screen(
    ui: &mut egui::Ui,
    groups: &[GroupCard],
    form: &mut NewGroupForm,
    join: &mut JoinForm,
) -> Option<Action> {
    let mut action = None;
    ui.heading("Your groups");
    if groups.is_empty() {
        ui.label("You are not in a group yet. You can start one below.");
    }
    for group in groups {
        if group.damaged {
            action = damaged_card(ui, group).or(action);
            continue;
        }
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            if ui.button(egui::RichText::new(&group.name).strong()).clicked() {
                action = Some(Action::Send(Command::OpenGroup(group.id)));
            }
            let members = match group.members {
                1 => "1 member".to_string(),
                n => format!("{n} members"),
            };
            quiet(ui, format!("{members} · you are {} ({})", group.me, group.role));
            match group.new {
                0 => {}
                1 => {
                    ui.label("1 new story or reach-out since you last looked");
                }
                n => {
                    ui.label(format!("{n} new stories or reach-outs since you last looked"));
                }
            }
            quiet(
                ui,
                match group.reachable {
                    0 => "Offline: nobody reachable right now".to_string(),
                    1 => "1 member connected now".to_string(),
                    n => format!("{n} members connected now"),
                },
            );
        });
    }
    ui.add_space(16.0);
    let started = new_group(ui, form);
    ui.add_space(16.0);
    action.or(started).or(join_group(ui, join))
}

/// A group this device could not read: said plainly, with the way to mend it.
#[must_use]
fn damaged_card(ui: &mut egui::Ui, group: &GroupCard) -> Option<Action> {
    let mut action = None;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(egui::RichText::new("A group this device could not read").strong());
        ui.label(
            "Part of what this device keeps for this group is damaged. Your other groups are fine. \
             Repairing sets the damaged part aside and rebuilds it from this device's own copies; \
             anything still missing comes back from the members.",
        );
        if ui.button("Repair this group").clicked() {
            action = Some(Action::Send(Command::RepairGroup(group.id)));
        }
    });
    action
}

#[must_use]
fn join_group(ui: &mut egui::Ui, form: &mut JoinForm) -> Option<Action> {
    ui.heading("Join a group");
    quiet(
        ui,
        "Paste the invitation ticket someone gave you. A ticket is like a key to the group's history: \
         use one only if it came from someone you trust, and do not pass it on.",
    );
    let (ticket, display) = ui
        .add_enabled_ui(!form.busy, |ui| {
            let ticket = text_line(ui, "Invitation ticket", &mut form.ticket);
            let display = text_line(ui, "Your name in the group you join", &mut form.display_name);
            (ticket, display)
        })
        .inner;
    if let Some(error) = &form.error {
        message(ui, error);
    }
    let ready = !form.ticket.trim().is_empty() && !form.display_name.trim().is_empty() && !form.busy;
    let clicked = primary_button(ui, ready, "Join group");
    if form.busy {
        quiet(ui, "Reaching the person who invited you…");
    }
    let entered = submitted(ui, &ticket) || submitted(ui, &display);
    ((clicked || entered) && ready).then(|| {
        Action::Send(Command::JoinGroup {
            ticket: Zeroizing::new(form.ticket.trim().to_string()),
            display_name: form.display_name.trim().to_string(),
        })
    })
}

#[must_use]
fn new_group(ui: &mut egui::Ui, form: &mut NewGroupForm) -> Option<Action> {
    ui.heading("Start a group");
    quiet(
        ui,
        "You will be its first facilitator. Nobody else sees it until you invite them.",
    );
    let (name, display) = ui
        .add_enabled_ui(!form.busy, |ui| {
            let name = text_line(ui, "Group name", &mut form.name);
            let display = text_line(ui, "Your name in this group", &mut form.display_name);
            (name, display)
        })
        .inner;
    quiet(
        ui,
        "Members of the group will see this name. A first name or a nickname is enough.",
    );
    let ready = !form.name.trim().is_empty() && !form.display_name.trim().is_empty() && !form.busy;
    let clicked = primary_button(ui, ready, "Create group");
    if form.busy {
        quiet(ui, "Creating the group…");
    }
    let entered = submitted(ui, &name) || submitted(ui, &display);
    ((clicked || entered) && ready).then(|| {
        Action::Send(Command::CreateGroup {
            name: form.name.trim().to_string(),
            display_name: form.display_name.trim().to_string(),
        })
    })
}
