//! The "Agreements" tab of a group's home: the group's agreements, who agreed to the
//! current version, a way to agree, and (for facilitators) the editor.
//!
//! Each time a facilitator saves the agreements they become a new version, and everyone is
//! asked to agree again (that is how the core counts agreement: per version).

use alongside_core::model::date_of;
use alongside_core::model::views::AgreementView;
use eframe::egui;

use super::action::Action;
use super::backend::{Command, GroupPage};
use super::home::{GroupHome, HomeAction};
use super::home_backend::HomeCommand;
use super::widgets::{message, primary_button, quiet, text_area};

/// The agreements editor.
#[derive(Debug)]
pub(crate) struct AgreementForm {
    pub(crate) text: String,
    /// The backend is saving it.
    pub(crate) busy: bool,
}

impl AgreementForm {
    /// The editor, starting from `text` (the current agreements, or nothing).
    pub(crate) fn new(text: String) -> AgreementForm {
        AgreementForm { text, busy: false }
    }
}

/// The agreements tab.
#[must_use]
pub(crate) fn agreements_tab(ui: &mut egui::Ui, home: &mut GroupHome) -> Option<Action> {
    let GroupHome {
        page, agreement_editor, ..
    } = home;
    if let Some(form) = agreement_editor {
        return editor(ui, page, form);
    }
    match &page.agreement {
        Some(agreement) => current(ui, page, agreement),
        None => none_yet(ui, page),
    }
}

#[must_use]
fn none_yet(ui: &mut egui::Ui, page: &GroupPage) -> Option<Action> {
    ui.label("This group has no agreements yet.");
    quiet(
        ui,
        "Agreements are the few ground rules a group keeps together, such as keeping what is shared here \
         in the group, and listening without fixing.",
    );
    if page.facilitator {
        primary_button(ui, true, "Write agreements").then_some(Action::Home(HomeAction::EditAgreements))
    } else {
        quiet(ui, "A facilitator of the group can write them.");
        None
    }
}

#[must_use]
fn current(ui: &mut egui::Ui, page: &GroupPage, agreement: &AgreementView) -> Option<Action> {
    let mut action = None;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(&agreement.text);
    });
    let version: String = agreement.version.chars().take(8).collect();
    quiet(
        ui,
        format!("Version {version} · last changed {}", date_of(agreement.updated_at_ms)),
    );
    let names: Vec<&str> = agreement
        .acknowledged_by
        .iter()
        .map(|p| if p.id == page.me { "you" } else { p.name.as_str() })
        .collect();
    if names.is_empty() {
        quiet(ui, "Nobody has agreed to this version yet.");
    } else {
        quiet(ui, format!("Agreed to by: {}", names.join(", ")));
    }
    if page.agreed() {
        ui.label("You have agreed to these.");
    } else {
        message(
            ui,
            "Please read these agreements. When you are ready, agree to them: the group keeps them together.",
        );
        if primary_button(ui, true, "I agree to these") {
            action = Some(Action::Send(Command::Home(HomeCommand::Agree(page.id))));
        }
    }
    if page.facilitator && ui.button("Edit agreements").clicked() {
        action = Some(Action::Home(HomeAction::EditAgreements));
    }
    action
}

#[must_use]
fn editor(ui: &mut egui::Ui, page: &GroupPage, form: &mut AgreementForm) -> Option<Action> {
    let mut action = None;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.add_enabled_ui(!form.busy, |ui| {
            text_area(ui, "The group's agreements", &mut form.text, 8);
        });
        if page.agreement.is_some() {
            quiet(
                ui,
                "When you save, this becomes a new version, and every member, you too, is asked to agree to it again.",
            );
        } else {
            quiet(
                ui,
                "When you save, every member, you too, is asked to read and agree to them.",
            );
        }
        let ready = !form.text.trim().is_empty() && !form.busy;
        ui.horizontal(|ui| {
            if primary_button(ui, ready, "Save agreements") {
                action = Some(Action::Send(Command::Home(HomeCommand::SetAgreements {
                    group: page.id,
                    text: form.text.trim().to_string(),
                })));
            }
            if ui
                .add_enabled(!form.busy, egui::Button::new("Cancel editing"))
                .clicked()
            {
                action = Some(Action::Home(HomeAction::CancelAgreements));
            }
        });
        if form.busy {
            quiet(ui, "Saving the agreements…");
        }
    });
    action
}
