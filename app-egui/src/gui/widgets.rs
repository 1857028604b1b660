//! Small building blocks shared by the panels, so every input gets a visible label that is
//! also its accessible name.

use eframe::egui;

/// A visible label above a text field, tied to the field as its accessible name.
pub(crate) fn labelled_field(ui: &mut egui::Ui, label: &str, field: egui::TextEdit<'_>) -> egui::Response {
    let label = ui.label(label);
    ui.add(field).labelled_by(label.id)
}

/// A one-line text field under `label`.
pub(crate) fn text_line(ui: &mut egui::Ui, label: &str, text: &mut String) -> egui::Response {
    labelled_field(ui, label, egui::TextEdit::singleline(text).desired_width(f32::INFINITY))
}

/// A text area of `rows` lines under `label`, as wide as the panel. It takes any text
/// buffer: a `String` to edit, or a `&str` to show for copying.
pub(crate) fn text_area(
    ui: &mut egui::Ui,
    label: &str,
    text: &mut dyn egui::TextBuffer,
    rows: usize,
) -> egui::Response {
    labelled_field(
        ui,
        label,
        egui::TextEdit::multiline(text)
            .desired_rows(rows)
            .desired_width(f32::INFINITY),
    )
}

/// A passphrase field under `label`: what is typed is not shown.
pub(crate) fn passphrase_line(ui: &mut egui::Ui, label: &str, text: &mut String) -> egui::Response {
    labelled_field(
        ui,
        label,
        egui::TextEdit::singleline(text)
            .password(true)
            .desired_width(f32::INFINITY),
    )
}

/// Whether Enter was pressed while `field` had the focus (it loses focus on Enter).
pub(crate) fn submitted(ui: &egui::Ui, field: &egui::Response) -> bool {
    field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
}

/// A quiet line of secondary text.
pub(crate) fn quiet(ui: &mut egui::Ui, text: impl Into<String>) -> egui::Response {
    ui.label(egui::RichText::new(text.into()).weak())
}

/// A message that needs attention, without alarm colours.
pub(crate) fn message(ui: &mut egui::Ui, text: &str) -> egui::Response {
    egui::Frame::group(ui.style()).show(ui, |ui| ui.label(text)).inner
}

/// The one primary button of a screen; disabled (and saying why elsewhere) when not ready.
pub(crate) fn primary_button(ui: &mut egui::Ui, enabled: bool, text: &str) -> bool {
    ui.add_enabled(enabled, egui::Button::new(egui::RichText::new(text).strong()))
        .clicked()
}
