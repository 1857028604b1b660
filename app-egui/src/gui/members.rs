//! The members tab: who is in the group, whether this device reaches them, inviting
//! someone with a one-time ticket (text to copy, or a QR code to scan), a facilitator's
//! role changes and removals, and leaving. What removing and leaving mean is said before
//! either happens, and each asks once more.

use std::time::Duration;

use alongside_core::ids::{GroupId, MemberId};
use eframe::egui;

use super::action::Action;
use super::backend::{Command, InviteView, MemberStatus, OpenInvitation, now_ms};
use super::home::GroupHome;
use super::widgets::{message, primary_button, quiet, text_area, text_line};

/// How long an invitation may work, as offered.
const VALIDITY: [(&str, Duration); 3] = [
    ("1 hour", Duration::from_secs(3600)),
    ("1 day", Duration::from_secs(86_400)),
    ("7 days", Duration::from_secs(7 * 86_400)),
];

/// A step that asks once more before it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Removing the member with this id (hex) and name.
    Remove(String, String),
    /// Leaving the group.
    Leave,
}

/// Making an invitation.
pub(crate) struct InviteForm {
    /// Which of [`VALIDITY`] is chosen.
    pub(crate) validity: usize,
    /// The backend is making one.
    pub(crate) busy: bool,
    /// The last invitation made for this group.
    pub(crate) made: Option<InviteView>,
    /// A removal or leaving waiting to be confirmed.
    pub(crate) confirm: Option<Confirm>,
    /// A new display name for this member, being typed.
    pub(crate) my_name: String,
    /// Whether removing someone also withdraws the open invitations (they may have seen
    /// one): asked with the removal, yes unless unticked.
    pub(crate) withdraw_on_remove: bool,
}

impl Default for InviteForm {
    fn default() -> InviteForm {
        InviteForm {
            validity: 1,
            busy: false,
            made: None,
            confirm: None,
            my_name: String::new(),
            withdraw_on_remove: true,
        }
    }
}

/// The members, then inviting someone, then leaving.
#[must_use]
pub(crate) fn members_tab(ui: &mut egui::Ui, home: &mut GroupHome) -> Option<Action> {
    let now = now_ms();
    let group = home.page.id;
    let facilitator = home.page.facilitator;
    let mut action = None;
    for member in &home.page.status.members {
        let muted = home.page.muted.contains(&member.id);
        let asked = egui::Frame::group(ui.style())
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                member_row(ui, member, now);
                if member.me {
                    return my_name(ui, group, &mut home.invite.my_name);
                }
                let muting = mute_button(ui, group, member, muted);
                let removal = Removal {
                    group,
                    open_invitations: home.page.open_invitations.len(),
                    withdraw: &mut home.invite.withdraw_on_remove,
                };
                let managed = facilitator
                    .then(|| facilitator_controls(ui, removal, member, &mut home.invite.confirm))
                    .flatten();
                muting.or(managed)
            })
            .inner;
        action = action.or(asked);
    }
    ui.add_space(16.0);
    if facilitator {
        action = action.or(invite(ui, home));
    } else {
        quiet(ui, "Facilitators invite new members.");
    }
    ui.add_space(16.0);
    action.or(leave(ui, group, &home.page.name, &mut home.invite.confirm))
}

/// What a removal in a group needs to know besides who.
struct Removal<'a> {
    group: GroupId,
    /// Invitations to the group that can still be used.
    open_invitations: usize,
    /// Whether to withdraw them with the removal.
    withdraw: &'a mut bool,
}

/// Role and removal buttons for one member; removal asks once more, saying what it means
/// (and offering to withdraw open invitations the person may have seen).
#[must_use]
fn facilitator_controls(
    ui: &mut egui::Ui,
    removal: Removal<'_>,
    member: &MemberStatus,
    confirm: &mut Option<Confirm>,
) -> Option<Action> {
    let group = removal.group;
    let id = MemberId::from_hex(&member.id)?;
    let name = &member.name;
    let asking = *confirm == Some(Confirm::Remove(member.id.clone(), name.clone()));
    if asking {
        message(
            ui,
            &format!(
                "Removing {name} means they will not see anything written from now on, and the group's devices \
                 will refuse to sync with them. They keep what they already saw. This cannot be undone; \
                 to have them back, invite them again."
            ),
        );
        let open = removal.open_invitations;
        if open > 0 {
            let label = match open {
                1 => "Also withdraw the open invitation (they may have seen it)".to_string(),
                n => format!("Also withdraw the {n} open invitations (they may have seen one)"),
            };
            ui.checkbox(removal.withdraw, label);
        }
        let revoke_invitations = open > 0 && *removal.withdraw;
        let mut action = None;
        ui.horizontal(|ui| {
            if ui.button(format!("Remove {name}")).clicked() {
                *confirm = None;
                action = Some(Action::Send(Command::RemoveMember {
                    group,
                    member: id,
                    revoke_invitations,
                }));
            }
            if ui.button(format!("Keep {name}")).clicked() {
                *confirm = None;
            }
        });
        return action;
    }
    let mut action = None;
    ui.horizontal(|ui| {
        let to_facilitator = member.role != "facilitator";
        let role_label = if to_facilitator {
            format!("Make {name} a facilitator")
        } else {
            format!("Make {name} a member")
        };
        if ui
            .button(role_label)
            .on_hover_text("Facilitators can invite, remove members and change roles")
            .clicked()
        {
            action = Some(Action::Send(Command::SetRole {
                group,
                member: id,
                facilitator: to_facilitator,
            }));
        }
        if ui.button(format!("Remove {name}…")).clicked() {
            *confirm = Some(Confirm::Remove(member.id.clone(), name.clone()));
        }
    });
    action
}

/// Leaving: said plainly, asked once more.
#[must_use]
fn leave(ui: &mut egui::Ui, group: GroupId, group_name: &str, confirm: &mut Option<Confirm>) -> Option<Action> {
    if *confirm != Some(Confirm::Leave) {
        if ui.button("Leave this group…").clicked() {
            *confirm = Some(Confirm::Leave);
        }
        return None;
    }
    message(
        ui,
        &format!(
            "Leaving {group_name} means nothing new from the group reaches this device, and you no longer \
             write to it. What you already have stays here. Members will see that you left, and the group \
             changes its key so you cannot read what comes next. To come back, someone has to invite you again."
        ),
    );
    let mut action = None;
    ui.horizontal(|ui| {
        if ui.button(format!("Leave {group_name}")).clicked() {
            *confirm = None;
            action = Some(Action::Send(Command::Leave(group)));
        }
        if ui.button("Stay in the group").clicked() {
            *confirm = None;
        }
    });
    action
}

/// Changing one's own name in this group.
#[must_use]
fn my_name(ui: &mut egui::Ui, group: GroupId, name: &mut String) -> Option<Action> {
    let mut action = None;
    ui.horizontal(|ui| {
        text_line(ui, "Your name in this group", name);
    });
    if ui
        .add_enabled(!name.trim().is_empty(), egui::Button::new("Save my name"))
        .clicked()
    {
        action = Some(Action::Send(Command::SetDisplayName {
            group,
            name: std::mem::take(name).trim().to_string(),
        }));
    }
    action
}

/// Muting on this device only: the member is not told.
#[must_use]
fn mute_button(ui: &mut egui::Ui, group: GroupId, member: &MemberStatus, muted: bool) -> Option<Action> {
    let id = MemberId::from_hex(&member.id)?;
    let name = &member.name;
    if muted {
        quiet(
            ui,
            format!("Muted on this device: {name}'s stories and reach-outs are not shown here."),
        );
    }
    let label = if muted {
        format!("Unmute {name}")
    } else {
        format!("Mute {name}")
    };
    ui.button(label)
        .on_hover_text("Only on this device. They are not told.")
        .clicked()
        .then_some(Action::Send(Command::SetMuted {
            group,
            member: id,
            muted: !muted,
        }))
}

fn member_row(ui: &mut egui::Ui, member: &MemberStatus, now_ms: i64) {
    let name = if member.me {
        format!("{} (you)", member.name)
    } else {
        member.name.clone()
    };
    let role = if member.role == "facilitator" {
        "Facilitator"
    } else {
        "Member"
    };
    ui.label(egui::RichText::new(format!("{name} · {role}")).strong());
    if member.me {
        return;
    }
    let seen = match (member.reachable, member.last_sync_ms) {
        (true, _) => "Connected now".to_string(),
        (false, Some(at)) => format!("Last synced {}", ago(now_ms - at)),
        (false, None) => "Not synced with this device yet".to_string(),
    };
    quiet(ui, seen);
}

/// "just now", "5 minutes ago", "2 hours ago", "3 days ago".
fn ago(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    match minutes {
        0 => "just now".into(),
        1 => "1 minute ago".into(),
        m if m < 60 => format!("{m} minutes ago"),
        m if m < 120 => "1 hour ago".into(),
        m if m < 48 * 60 => format!("{} hours ago", m / 60),
        m => format!("{} days ago", m / (24 * 60)),
    }
}

#[must_use]
fn invite(ui: &mut egui::Ui, home: &mut GroupHome) -> Option<Action> {
    let mut action = None;
    ui.heading("Invite someone");
    quiet(
        ui,
        "An invitation is a ticket that works once. The person you invite pastes it into Alongside, or scans its code, while this device is online.",
    );
    let form = &mut home.invite;
    ui.horizontal(|ui| {
        ui.label("It works for");
        for (i, (label, _)) in VALIDITY.iter().enumerate() {
            ui.radio_value(&mut form.validity, i, *label);
        }
    });
    if primary_button(ui, !form.busy, "Create invitation") {
        action = Some(Action::Send(Command::Invite {
            group: home.page.id,
            valid_for: VALIDITY[form.validity.min(VALIDITY.len() - 1)].1,
        }));
    }
    if form.busy {
        quiet(ui, "Making the invitation…");
    }
    if let Some(made) = form.made.as_ref().filter(|m| m.group == home.page.id) {
        action = action.or(show_invitation(ui, made));
    }
    action.or(open_invitations(ui, home.page.id, &home.page.open_invitations))
}

/// The invitations that can still be used, each with a way to withdraw it.
#[must_use]
fn open_invitations(ui: &mut egui::Ui, group: GroupId, open: &[OpenInvitation]) -> Option<Action> {
    if open.is_empty() {
        return None;
    }
    ui.add_space(8.0);
    ui.label(egui::RichText::new("Invitations that still work").strong());
    let mut action = None;
    for invitation in open {
        ui.horizontal(|ui| {
            ui.label(format!("Ticket {} works until {}", invitation.id, invitation.until));
            if ui.button(format!("Withdraw ticket {}", invitation.id)).clicked() {
                action = Some(Action::Send(Command::RevokeInvitations {
                    group,
                    id: Some(invitation.id.clone()),
                }));
            }
        });
    }
    action
}

#[must_use]
fn show_invitation(ui: &mut egui::Ui, made: &InviteView) -> Option<Action> {
    let mut action = None;
    message(
        ui,
        "This ticket is like a key: whoever has it can join the group and read what the group keeps. \
         Give it only to the person you are inviting, in a private way.",
    );
    let valid = VALIDITY.iter().find(|(_, d)| *d == made.valid_for).map_or_else(
        || format!("{} minutes", made.valid_for.as_secs() / 60),
        |(l, _)| l.to_string(),
    );
    quiet(ui, format!("It works once, for the next {valid}."));
    let mut text = made.ticket.as_str();
    text_area(ui, "Invitation ticket", &mut text, 3);
    if ui.button("Copy ticket").clicked() {
        // (egui hands the copy to the system clipboard, which keeps it anyway.)
        action = Some(Action::Copy(made.ticket.to_string()));
    }
    if let Some((width, dark)) = &made.qr {
        qr_code(ui, *width, dark);
    }
    action
}

/// Paints the QR code, dark on light with a quiet border, whatever the theme.
fn qr_code(ui: &mut egui::Ui, width: usize, dark: &[bool]) {
    const MODULE: f32 = 4.0;
    let border = 4.0 * MODULE;
    let side = width as f32 * MODULE + 2.0 * border;
    let (rect, response) = ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "QR code of the invitation ticket"));
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 0.0, egui::Color32::WHITE);
    for (i, _) in dark.iter().enumerate().filter(|(_, d)| **d) {
        let (x, y) = ((i % width) as f32, (i / width) as f32);
        let min = rect.min + egui::vec2(border + x * MODULE, border + y * MODULE);
        painter.rect_filled(
            egui::Rect::from_min_size(min, egui::vec2(MODULE, MODULE)),
            0.0,
            egui::Color32::BLACK,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::ago;

    #[test]
    fn times_since_read_as_people_say_them() {
        assert_eq!(ago(5_000), "just now");
        assert_eq!(ago(60_000), "1 minute ago");
        assert_eq!(ago(30 * 60_000), "30 minutes ago");
        assert_eq!(ago(90 * 60_000), "1 hour ago");
        assert_eq!(ago(5 * 3_600_000), "5 hours ago");
        assert_eq!(ago(3 * 86_400_000), "3 days ago");
        assert_eq!(ago(-1), "just now");
    }
}
