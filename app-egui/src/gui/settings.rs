//! The settings screen: how the window looks and when it locks, the passphrase, taking a
//! break, connections across the internet, exports, and the crisis lines kept on this
//! device.

use std::path::PathBuf;

use alongside_core::vault::SupportContact;
use eframe::egui;
use zeroize::Zeroizing;

use super::action::Action;
use super::backend::{Command, ExportFormat, SettingsView};
use super::prefs::{LOCK_AFTER, TEXT_SIZES, Theme, UiPrefs};
use super::reach_out::{self, ReachOutForm};
use super::widgets::{message, passphrase_line, primary_button, quiet, text_line};

/// What the settings screen holds while it is open.
pub(crate) struct SettingsForm {
    /// What the backend last sent (`None` while loading).
    pub(crate) view: Option<SettingsView>,
    pub(crate) old_passphrase: Zeroizing<String>,
    pub(crate) new_passphrase: Zeroizing<String>,
    pub(crate) again: Zeroizing<String>,
    /// The break's last day as typed.
    pub(crate) break_until: String,
    /// Which group to export (index into the view's groups).
    pub(crate) export_group: usize,
    pub(crate) export_format: ExportFormat,
    pub(crate) export_folder: String,
    /// Adding a crisis line (shares the reach-out tab's editor).
    pub(crate) contacts: ReachOutForm,
    /// The connection choice picked but not saved yet (only "own relay" waits, for its
    /// address); `None` shows what is saved.
    pub(crate) relay_choice: Option<String>,
    /// The address of the group's own relay, as typed.
    pub(crate) relay_url: String,
}

impl Default for SettingsForm {
    fn default() -> SettingsForm {
        let folder = directories::UserDirs::new()
            .and_then(|d| d.document_dir().map(|p| p.to_path_buf()))
            .or_else(|| directories::UserDirs::new().map(|d| d.home_dir().to_path_buf()))
            .unwrap_or_default()
            .join("Alongside export");
        SettingsForm {
            view: None,
            old_passphrase: Zeroizing::default(),
            new_passphrase: Zeroizing::default(),
            again: Zeroizing::default(),
            break_until: String::new(),
            export_group: 0,
            export_format: ExportFormat::Markdown,
            export_folder: folder.to_string_lossy().into_owned(),
            contacts: ReachOutForm::default(),
            relay_choice: None,
            relay_url: String::new(),
        }
    }
}

impl SettingsForm {
    /// Takes in what the backend sent.
    pub(crate) fn show(&mut self, view: SettingsView) {
        if let Some(day) = &view.break_until {
            self.break_until = day.clone();
        }
        self.contacts.busy = false;
        if let Some(url) = view.relay.as_deref().filter(|r| r.starts_with("https://")) {
            self.relay_url = url.to_string();
        }
        self.relay_choice = None;
        self.view = Some(view);
    }
}

impl SettingsForm {
    /// Something sent from the screen failed: a connection choice that was not saved
    /// goes back to what is saved (a typed relay address stays, to be corrected).
    pub(crate) fn failed(&mut self) {
        if self.relay_choice.as_deref() != Some(OWN_RELAY) {
            self.relay_choice = None;
        }
    }
}

/// The screen. `prefs` change at once (the app applies and stores them).
#[must_use]
pub(crate) fn settings_screen(
    ui: &mut egui::Ui,
    form: &mut SettingsForm,
    prefs: &mut UiPrefs,
    contacts: &[SupportContact],
) -> Option<Action> {
    let mut action = None;
    if ui.button("Close settings").clicked() {
        action = Some(Action::CloseSettings);
    }
    ui.heading("Settings");
    appearance(ui, prefs);
    ui.add_space(12.0);
    let Some(view) = form.view.clone() else {
        quiet(ui, "Loading…");
        return action;
    };
    action = action
        .or(taking_a_break(ui, form, &view))
        .or(passphrase(ui, form))
        .or(connections(ui, &mut form.relay_choice, &mut form.relay_url, &view))
        .or(export(ui, form, &view));
    ui.add_space(12.0);
    action.or(reach_out::contacts_editor(ui, &mut form.contacts, contacts))
}

fn appearance(ui: &mut egui::Ui, prefs: &mut UiPrefs) {
    ui.label(egui::RichText::new("How Alongside looks").strong());
    ui.horizontal_wrapped(|ui| {
        ui.radio_value(&mut prefs.theme, Theme::System, "Like this computer");
        ui.radio_value(&mut prefs.theme, Theme::Light, "Light");
        ui.radio_value(&mut prefs.theme, Theme::Dark, "Dark");
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Text size");
        for (name, size) in TEXT_SIZES {
            ui.radio_value(&mut prefs.text_size, size, name);
        }
    });
    ui.label(egui::RichText::new("Locking").strong());
    quiet(
        ui,
        "Alongside locks itself when it has not been used for a while, so nobody else at this computer can read it.",
    );
    ui.horizontal_wrapped(|ui| {
        ui.label("Lock after");
        for (name, minutes) in LOCK_AFTER {
            ui.radio_value(&mut prefs.lock_after_minutes, minutes, name);
        }
    });
}

#[must_use]
fn taking_a_break(ui: &mut egui::Ui, form: &mut SettingsForm, view: &SettingsView) -> Option<Action> {
    ui.label(egui::RichText::new("Taking a break").strong());
    quiet(
        ui,
        "While you take a break, stories with content warnings are hidden and others' reach-outs do not call for you on the home screen. This stays on this device.",
    );
    match &view.break_until {
        Some(day) => {
            ui.label(format!("You are taking a break until {day}."));
            ui.button("End my break")
                .clicked()
                .then(|| Action::Send(Command::SetBreak(None)))
        }
        None => {
            text_line(ui, "Until (a date like 2026-12-15)", &mut form.break_until);
            let day = form.break_until.trim().to_string();
            let valid = alongside_core::model::days_of(&day).is_some();
            if !day.is_empty() && !valid {
                quiet(ui, "Write the date like 2026-12-15.");
            }
            ui.add_enabled(valid, egui::Button::new("Start my break"))
                .clicked()
                .then(|| Action::Send(Command::SetBreak(Some(day))))
        }
    }
}

#[must_use]
fn passphrase(ui: &mut egui::Ui, form: &mut SettingsForm) -> Option<Action> {
    ui.label(egui::RichText::new("Your passphrase").strong());
    passphrase_line(ui, "Current passphrase", &mut form.old_passphrase);
    passphrase_line(ui, "New passphrase", &mut form.new_passphrase);
    passphrase_line(ui, "New passphrase again", &mut form.again);
    if let Some(hint) = super::welcome::strength_hint(&form.new_passphrase) {
        quiet(ui, hint);
    }
    let matches = *form.new_passphrase == *form.again;
    if !form.again.is_empty() && !matches {
        quiet(ui, "The two new passphrases are not the same yet.");
    }
    let ready = !form.old_passphrase.is_empty()
        && form.new_passphrase.chars().count() >= super::welcome::MIN_PASSPHRASE_CHARS
        && matches;
    ui.add_enabled(ready, egui::Button::new("Change passphrase"))
        .clicked()
        .then(|| {
            let command = Command::ChangePassphrase {
                old: std::mem::take(&mut form.old_passphrase),
                new: std::mem::take(&mut form.new_passphrase),
            };
            form.again = Zeroizing::default();
            Action::Send(command)
        })
}

/// The radio value for a relay the group runs itself (what is saved is its address).
const OWN_RELAY: &str = "own";

#[must_use]
fn connections(
    ui: &mut egui::Ui,
    relay_choice: &mut Option<String>,
    relay_url: &mut String,
    view: &SettingsView,
) -> Option<Action> {
    ui.label(egui::RichText::new("Reaching members across the internet").strong());
    quiet(
        ui,
        "Relays pass encrypted traffic between members who cannot reach each other directly. They cannot read it. Without relays, members connect only when a direct path exists (for example on the same Wi-Fi).",
    );
    let saved = match view.relay.as_deref() {
        None | Some("default") => "default",
        Some("disabled") => "disabled",
        Some(_) => OWN_RELAY,
    };
    let mut choice = relay_choice.clone().unwrap_or_else(|| saved.to_string());
    let before = choice.clone();
    ui.horizontal_wrapped(|ui| {
        ui.radio_value(&mut choice, "default".to_string(), "Use relays");
        ui.radio_value(&mut choice, OWN_RELAY.to_string(), "Our group's own relay");
        ui.radio_value(&mut choice, "disabled".to_string(), "Direct connections only");
    });
    let mut action = None;
    if choice != before {
        *relay_choice = Some(choice.clone());
        if choice != OWN_RELAY {
            action = Some(Action::Send(Command::SetRelay(Some(choice.clone()))));
        }
    }
    if choice == OWN_RELAY {
        quiet(
            ui,
            "Only this relay is used, never a public one. Ask whoever runs it for its address.",
        );
        text_line(ui, "Relay address (https://…)", relay_url);
        let typed = relay_url.trim();
        if primary_button(
            ui,
            !typed.is_empty() && view.relay.as_deref() != Some(typed),
            "Use this relay",
        ) {
            action = Some(Action::Send(Command::SetOwnRelay(typed.to_string())));
        }
    }
    if view.relay_forced_off {
        quiet(
            ui,
            "Relays are switched off where Alongside was started, so no relay is used now, whatever is chosen here.",
        );
    }
    action
}

#[must_use]
fn export(ui: &mut egui::Ui, form: &mut SettingsForm, view: &SettingsView) -> Option<Action> {
    ui.label(egui::RichText::new("Export").strong());
    if view.groups.is_empty() {
        quiet(ui, "There is nothing to export before you are in a group.");
        return None;
    }
    ui.horizontal_wrapped(|ui| {
        ui.label("Group");
        for (i, g) in view.groups.iter().enumerate() {
            ui.radio_value(&mut form.export_group, i, &g.name);
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("As");
        ui.radio_value(
            &mut form.export_format,
            ExportFormat::Markdown,
            "Readable text (Markdown)",
        );
        ui.radio_value(&mut form.export_format, ExportFormat::Json, "Data (JSON)");
        ui.radio_value(&mut form.export_format, ExportFormat::Automerge, "Automerge files");
    });
    text_line(ui, "Into the folder", &mut form.export_folder);
    message(
        ui,
        "An export is not encrypted: anyone who opens it can read everything in it. Keep it somewhere safe.",
    );
    let group = view.groups.get(form.export_group)?.id;
    let ready = !form.export_folder.trim().is_empty();
    primary_button(ui, ready, "Export this group").then(|| {
        Action::Send(Command::Export {
            group,
            format: form.export_format,
            folder: PathBuf::from(form.export_folder.trim()),
        })
    })
}
