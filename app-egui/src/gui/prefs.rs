//! How the window looks and when it locks itself: the only things Alongside keeps in
//! eframe's storage. Nothing a member wrote ever goes there (egui's own memory, which can
//! hold widget state, is not persisted at all: `persist_egui_memory` is off).

use serde::{Deserialize, Serialize};

use eframe::egui;

/// The key under which the preferences are stored.
pub(crate) const STORAGE_KEY: &str = "alongside-ui";

/// Light, dark, or as the computer is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) enum Theme {
    /// Follow the computer's setting.
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

/// The window's preferences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct UiPrefs {
    /// Light or dark.
    pub(crate) theme: Theme,
    /// Body text size in points.
    pub(crate) text_size: f32,
    /// Lock after this many minutes without use; 0: never.
    pub(crate) lock_after_minutes: u32,
}

impl Default for UiPrefs {
    fn default() -> UiPrefs {
        UiPrefs {
            theme: Theme::System,
            text_size: 16.0,
            lock_after_minutes: 15,
        }
    }
}

/// Text sizes offered, with their names.
pub(crate) const TEXT_SIZES: [(&str, f32); 4] = [
    ("Smaller", 14.0),
    ("Standard", 16.0),
    ("Larger", 19.0),
    ("Largest", 22.0),
];

/// Idle times offered before locking, in minutes (0: never).
pub(crate) const LOCK_AFTER: [(&str, u32); 5] = [
    ("1 minute", 1),
    ("5 minutes", 5),
    ("15 minutes", 15),
    ("1 hour", 60),
    ("Never", 0),
];

impl UiPrefs {
    /// Applies the theme and text size to `ctx`, with calm, generous spacing.
    pub(crate) fn apply(&self, ctx: &egui::Context) {
        ctx.options_mut(|o| {
            o.theme_preference = match self.theme {
                Theme::System => egui::ThemePreference::System,
                Theme::Light => egui::ThemePreference::Light,
                Theme::Dark => egui::ThemePreference::Dark,
            };
        });
        let size = self.text_size.clamp(12.0, 28.0);
        ctx.all_styles_mut(|style| {
            style.spacing.item_spacing = egui::vec2(10.0, 10.0);
            style.spacing.button_padding = egui::vec2(12.0, 6.0);
            for (text_style, font) in style.text_styles.iter_mut() {
                font.size = match text_style {
                    egui::TextStyle::Body | egui::TextStyle::Button | egui::TextStyle::Monospace => size,
                    egui::TextStyle::Heading => size * 1.4,
                    egui::TextStyle::Small => size * 0.8,
                    egui::TextStyle::Name(_) => size,
                };
            }
        });
    }

    /// Whether the window should lock itself, `idle_seconds` after it was last used.
    pub(crate) fn should_lock(&self, idle_seconds: f64) -> bool {
        self.lock_after_minutes > 0 && idle_seconds >= f64::from(self.lock_after_minutes) * 60.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_locks_only_after_the_chosen_idle_time_and_never_when_told_so() {
        let prefs = UiPrefs::default();
        assert!(!prefs.should_lock(14.0 * 60.0));
        assert!(prefs.should_lock(15.0 * 60.0));
        let never = UiPrefs {
            lock_after_minutes: 0,
            ..UiPrefs::default()
        };
        assert!(!never.should_lock(1e9));
    }
}
