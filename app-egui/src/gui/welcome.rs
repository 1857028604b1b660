//! The screens before the profile is open: first run (choose a passphrase) and unlock.

use eframe::egui;
use zeroize::Zeroizing;

use super::action::Action;
use super::backend::Command;
use super::widgets::{message, passphrase_line, primary_button, quiet, submitted, text_line};

/// The shortest passphrase the first-run screen accepts.
pub(crate) const MIN_PASSPHRASE_CHARS: usize = 8;

/// What the first-run screen holds while someone fills it in.
#[derive(Default)]
pub(crate) struct FirstRunForm {
    pub(crate) passphrase: Zeroizing<String>,
    pub(crate) again: Zeroizing<String>,
    pub(crate) label: String,
    /// The backend is creating the profile.
    pub(crate) busy: bool,
    /// Why the last try did not work.
    pub(crate) error: Option<String>,
}

/// What the unlock screen holds.
#[derive(Default)]
pub(crate) struct UnlockForm {
    pub(crate) passphrase: Zeroizing<String>,
    /// The backend is checking the passphrase.
    pub(crate) busy: bool,
    /// Why the last try did not work.
    pub(crate) error: Option<String>,
    /// A calm note, e.g. after locking.
    pub(crate) note: Option<String>,
}

/// A plain hint about how hard a passphrase is to guess (`None` while it is empty).
pub(crate) fn strength_hint(passphrase: &str) -> Option<&'static str> {
    let chars = passphrase.chars().count();
    let words = passphrase.split_whitespace().count();
    match chars {
        0 => None,
        n if n < MIN_PASSPHRASE_CHARS => {
            Some("Too short yet: use at least 8 characters. A few words together work well.")
        }
        n if n < 12 => Some("Fair. Another word or two would make it much harder to guess."),
        n if n >= 16 || words >= 3 => Some("Strong. Keep it somewhere safe that only you can reach."),
        _ => Some("Good. A longer passphrase is stronger still."),
    }
}

/// The first-run screen.
#[must_use]
pub(crate) fn first_run(ui: &mut egui::Ui, form: &mut FirstRunForm) -> Option<Action> {
    ui.heading("Welcome to Alongside");
    ui.label(
        "Alongside keeps your group's stories, goals and meeting notes on your own devices, encrypted. \
         There is no account and no server.",
    );
    ui.add_space(8.0);
    ui.label("Choose a passphrase. You will type it each time you open Alongside on this device.");
    message(
        ui,
        "If you lose this passphrase, nobody can recover what is stored here: not your group, and not us. \
         Write it down and keep it somewhere safe.",
    );
    ui.add_space(8.0);

    let enabled = !form.busy;
    ui.add_enabled_ui(enabled, |ui| {
        passphrase_line(ui, "Passphrase", &mut form.passphrase);
        if let Some(hint) = strength_hint(&form.passphrase) {
            quiet(ui, hint);
        }
        passphrase_line(ui, "Type the passphrase again", &mut form.again);
        if !form.again.is_empty() && *form.again != *form.passphrase {
            quiet(ui, "The two passphrases are not the same yet.");
        }
        text_line(ui, "A name for this device", &mut form.label);
        quiet(
            ui,
            "Only you see this name, for example \"my laptop\". It is never shared.",
        );
    });
    ui.add_space(8.0);

    let ready = form.passphrase.chars().count() >= MIN_PASSPHRASE_CHARS
        && *form.again == *form.passphrase
        && !form.label.trim().is_empty();
    let clicked = primary_button(ui, ready && !form.busy, "Create my profile");
    if form.busy {
        quiet(ui, "Setting up your profile… this takes a few seconds.");
    } else if !ready {
        quiet(ui, "Fill in all three fields to continue.");
    }
    if let Some(error) = &form.error {
        message(ui, error);
    }
    (clicked && ready).then(|| {
        Action::Send(Command::CreateProfile {
            label: form.label.trim().to_string(),
            passphrase: form.passphrase.clone(),
        })
    })
}

/// The unlock screen.
#[must_use]
pub(crate) fn unlock(ui: &mut egui::Ui, form: &mut UnlockForm) -> Option<Action> {
    ui.heading("Welcome back");
    if let Some(note) = &form.note {
        ui.label(note.as_str());
    }
    ui.add_space(8.0);
    let field = ui
        .add_enabled_ui(!form.busy, |ui| passphrase_line(ui, "Passphrase", &mut form.passphrase))
        .inner;
    let ready = !form.passphrase.is_empty() && !form.busy;
    let clicked = primary_button(ui, ready, "Unlock");
    if form.busy {
        quiet(ui, "Unlocking…");
    }
    if let Some(error) = &form.error {
        message(ui, error);
    }
    ((clicked || submitted(ui, &field)) && ready).then(|| {
        Action::Send(Command::Unlock {
            passphrase: form.passphrase.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_grows_with_the_passphrase() {
        assert_eq!(strength_hint(""), None);
        assert!(strength_hint("abc").unwrap().starts_with("Too short"));
        assert!(strength_hint("abcdefghi").unwrap().starts_with("Fair"));
        assert!(strength_hint("abcdefghijklm").unwrap().starts_with("Good"));
        assert!(strength_hint("river stone lantern").unwrap().starts_with("Strong"));
    }
}
