//! The reach-out tab: "I need support" to the whole group or chosen members, whether it
//! reached anyone, the member's own crisis lines at once when nobody could be reached,
//! reach-outs from others with a way to answer, and the crisis lines and contacts kept on
//! this device.

use std::collections::{BTreeMap, BTreeSet};

use alongside_core::ids::MemberId;
use alongside_core::vault::SupportContact;
use eframe::egui;

use super::action::Action;
use super::backend::{Command, Delivery, GroupPage, ReachOutCard};
use super::widgets::{message, primary_button, quiet, text_area, text_line};

/// What the reach-out tab holds while it is open.
#[derive(Default)]
pub(crate) struct ReachOutForm {
    /// The message being written.
    pub(crate) message: String,
    /// Send to chosen members only.
    pub(crate) choose: bool,
    /// The chosen members (hex ids).
    pub(crate) chosen: BTreeSet<String>,
    /// Answers being written, by reach-out id.
    pub(crate) answers: BTreeMap<String, String>,
    /// A contact being added.
    pub(crate) contact: SupportContact,
    /// The backend is saving something from this tab.
    pub(crate) busy: bool,
}

/// The tab. `contacts` are the crisis lines and contacts saved on this device.
#[must_use]
pub(crate) fn reach_out_tab(
    ui: &mut egui::Ui,
    page: &GroupPage,
    form: &mut ReachOutForm,
    contacts: &[SupportContact],
) -> Option<Action> {
    let mut action = ask(ui, page, form);
    for card in page.reach_outs.iter().filter(|c| c.mine) {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            own_reach_out(ui, card, &page.muted, contacts);
        });
    }
    for card in page
        .reach_outs
        .iter()
        .filter(|c| !c.mine && !page.muted.contains(&c.view.author.id))
    {
        let answered = egui::Frame::group(ui.style())
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                others_reach_out(ui, page, card, form)
            })
            .inner;
        action = action.or(answered);
    }
    ui.add_space(16.0);
    action.or(contacts_editor(ui, form, contacts))
}

#[must_use]
fn ask(ui: &mut egui::Ui, page: &GroupPage, form: &mut ReachOutForm) -> Option<Action> {
    ui.heading("I need support");
    let others: Vec<_> = page.status.members.iter().filter(|m| !m.me).collect();
    ui.add_enabled_ui(!form.busy, |ui| {
        text_area(ui, "What is going on, and what would help?", &mut form.message, 3);
        ui.checkbox(&mut form.choose, "Only to members I choose");
        if form.choose {
            ui.horizontal_wrapped(|ui| {
                for m in &others {
                    let mut on = form.chosen.contains(&m.id);
                    if ui.checkbox(&mut on, &m.name).changed() {
                        if on {
                            form.chosen.insert(m.id.clone());
                        } else {
                            form.chosen.remove(&m.id);
                        }
                    }
                }
            });
        }
    });
    let audience: Vec<&str> = if form.choose {
        others
            .iter()
            .filter(|m| form.chosen.contains(&m.id))
            .map(|m| m.name.as_str())
            .collect()
    } else {
        others.iter().map(|m| m.name.as_str()).collect()
    };
    let goes_to = match (form.choose, audience.is_empty()) {
        (true, true) => "Choose who it goes to.".to_string(),
        (false, true) => format!("Nobody else is in {} yet.", page.name),
        (true, false) => format!("Goes to: {}.", audience.join(", ")),
        (false, false) => format!("Goes to everyone in {}: {}.", page.name, audience.join(", ")),
    };
    quiet(ui, goes_to);
    let ready = !form.message.trim().is_empty() && !audience.is_empty() && !form.busy;
    let send = primary_button(ui, ready, "Send reach-out");
    if form.busy {
        quiet(ui, "Sending…");
    }
    send.then(|| {
        let to = if form.choose {
            form.chosen.iter().filter_map(|id| MemberId::from_hex(id)).collect()
        } else {
            Vec::new()
        };
        Action::Send(Command::ReachOut {
            group: page.id,
            message: form.message.trim().to_string(),
            to,
        })
    })
}

/// One's own reach-out: whether it reached anyone; the saved crisis lines at once when
/// it reached nobody and nobody is reachable.
fn own_reach_out(ui: &mut egui::Ui, card: &ReachOutCard, muted: &BTreeSet<String>, contacts: &[SupportContact]) {
    quiet(ui, "You reached out:");
    ui.label(&card.view.message);
    let Some(Delivery {
        delivered,
        waiting,
        audience_reachable,
    }) = &card.delivery
    else {
        return;
    };
    let total = delivered.len() + waiting.len();
    let members = if total == 1 { "member" } else { "members" };
    ui.label(egui::RichText::new(format!("Delivered to {} of {total} {members}", delivered.len())).strong());
    if !delivered.is_empty() {
        quiet(ui, format!("Has it: {}", delivered.join(", ")));
    }
    if !waiting.is_empty() {
        quiet(ui, format!("Not yet: {}", waiting.join(", ")));
    }
    for response in card.view.responses.iter().filter(|r| !muted.contains(&r.author.id)) {
        ui.label(format!("{}: {}", response.author.name, response.text));
    }
    // Nobody has it and nobody it is for can be reached: the member's own lines, at once.
    if delivered.is_empty() && !audience_reachable {
        crisis_lines(ui, contacts);
    }
}

fn crisis_lines(ui: &mut egui::Ui, contacts: &[SupportContact]) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(egui::RichText::new("Nobody in the group can be reached right now.").strong());
        if contacts.is_empty() {
            ui.label(
                "If you need someone now, call a local crisis line or someone you trust. \
                 You can save their numbers below so they are here next time.",
            );
        } else {
            ui.label("If you need someone now, these are the lines and people you saved:");
            for c in contacts {
                ui.label(egui::RichText::new(format!("{} — {}", c.name, c.reach)).strong());
            }
        }
    });
}

#[must_use]
fn others_reach_out(
    ui: &mut egui::Ui,
    page: &GroupPage,
    card: &ReachOutCard,
    form: &mut ReachOutForm,
) -> Option<Action> {
    let view = &card.view;
    ui.label(egui::RichText::new(format!("{} reached out", view.author.name)).strong());
    ui.label(&view.message);
    for response in view.responses.iter().filter(|r| !page.muted.contains(&r.author.id)) {
        quiet(ui, format!("{}: {}", response.author.name, response.text));
    }
    let answer = form.answers.entry(view.id.clone()).or_default();
    let label = format!("Your answer to {}", view.author.name);
    ui.add_enabled_ui(!form.busy, |ui| text_line(ui, &label, answer));
    let ready = !answer.trim().is_empty() && !form.busy;
    let send = ui
        .add_enabled(ready, egui::Button::new(format!("Answer {}", view.author.name)))
        .clicked();
    send.then(|| {
        Action::Send(Command::Respond {
            group: page.id,
            reach_out: view.id.clone(),
            text: answer.trim().to_string(),
        })
    })
}

#[must_use]
pub(crate) fn contacts_editor(
    ui: &mut egui::Ui,
    form: &mut ReachOutForm,
    contacts: &[SupportContact],
) -> Option<Action> {
    let mut action = None;
    ui.heading("Crisis lines and people to call");
    quiet(
        ui,
        "Kept on this device only, never shared with any group. They are shown when you reach out and nobody can be reached.",
    );
    for (i, c) in contacts.iter().enumerate() {
        ui.horizontal(|ui| {
            ui.label(format!("{} — {}", c.name, c.reach));
            if ui.button(format!("Remove {}", c.name)).clicked() {
                let mut rest = contacts.to_vec();
                rest.remove(i);
                action = Some(Action::Send(Command::SaveContacts(rest)));
            }
        });
    }
    ui.add_enabled_ui(!form.busy, |ui| {
        text_line(ui, "Name of the line or person", &mut form.contact.name);
        text_line(ui, "Number or how to reach them", &mut form.contact.reach);
    });
    let ready = form.contact.validate().is_ok() && !form.busy;
    if ui.add_enabled(ready, egui::Button::new("Save contact")).clicked() {
        let mut all = contacts.to_vec();
        all.push(form.contact.clone());
        action = Some(Action::Send(Command::SaveContacts(all)));
    }
    if contacts.is_empty() {
        message(
            ui,
            "You have not saved a crisis line yet. Adding one now means it is here when you need it.",
        );
    }
    action
}
