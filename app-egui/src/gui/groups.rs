//! The list of groups and the form that starts a new one.

use eframe::egui;

use super::action::Action;
use super::backend::Command;
use super::backend::GroupCard;
use super::widgets::{primary_button, quiet, submitted, text_line};

/// The "start a group" form.
#[derive(Default)]
pub(crate) struct NewGroupForm {
    pub(crate) name: String,
    pub(crate) display_name: String,
    /// The backend is creating it.
    pub(crate) busy: bool,
}

/// The groups screen: every group, then the form to start one.
#[must_use]
pub(crate) fn groups_screen(ui: &mut egui::Ui, groups: &[GroupCard], form: &mut NewGroupForm) -> Option<Action> {
    let mut action = None;
    ui.heading("Your groups");
    if groups.is_empty() {
        ui.label("You are not in a group yet. You can start one below.");
    }
    for group in groups {
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
        });
    }
    ui.add_space(16.0);
    action.or(new_group(ui, form))
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
