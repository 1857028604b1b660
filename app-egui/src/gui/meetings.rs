//! The "Meetings" tab: scheduling (when, where or a link, who facilitates, agenda), and
//! one meeting opened with its attendance, action items and shared notes.
//!
//! The notes editor keeps what it last showed (`base`) beside what the person typed
//! (`text`). Whenever they differ and no save is under way, it sends both; the core moves
//! the edit past whatever others typed meanwhile. Others' typing replaces the text only
//! while the person has nothing unsent, so their own words never jump back.

use alongside_core::ids::MemberId;
use alongside_core::model::edits::NewMeeting;
use alongside_core::model::text_merge;
use alongside_core::model::views::MeetingView;
use chrono::TimeZone as _;
use eframe::egui;

use super::action::Action;
use super::backend::{Command, GroupPage};
use super::home_backend::HomeCommand;
use super::widgets::{primary_button, quiet, text_area, text_line};

/// What the meetings tab holds.
#[derive(Default)]
pub(crate) struct MeetingsForm {
    /// The scheduling form, if open.
    pub(crate) new: Option<NewMeetingForm>,
    /// The meeting opened (its id).
    pub(crate) open: Option<String>,
    /// The open meeting's notes.
    pub(crate) notes: Option<NotesEditor>,
    /// A new action item being written.
    pub(crate) action_text: String,
}

/// The scheduling form.
#[derive(Default)]
pub(crate) struct NewMeetingForm {
    pub(crate) title: String,
    /// Local date and time, `YYYY-MM-DD HH:MM`.
    pub(crate) when: String,
    pub(crate) place: String,
    /// Who facilitates (member id, hex), if chosen.
    pub(crate) facilitator: Option<String>,
    pub(crate) agenda: String,
    /// The backend is saving it.
    pub(crate) busy: bool,
}

/// The open meeting's shared notes as the editor holds them.
pub(crate) struct NotesEditor {
    /// The meeting.
    pub(crate) meeting: String,
    /// What the person sees and types in.
    pub(crate) text: String,
    /// The notes as last saved or received: what `text` was made from.
    pub(crate) base: String,
    /// A save is under way.
    pub(crate) saving: bool,
    /// What `base` was before the save under way (restored if it fails).
    pub(crate) before_save: Option<String>,
}

impl NotesEditor {
    fn new(meeting: &MeetingView) -> NotesEditor {
        NotesEditor {
            meeting: meeting.id.clone(),
            text: meeting.notes.clone(),
            base: meeting.notes.clone(),
            saving: false,
            before_save: None,
        }
    }

    /// Takes in the notes as they are now on this device (after a save or others'
    /// typing). With nothing typed here unsent, they are shown as they are; otherwise the
    /// unsent typing is moved onto them, so the base stays close to the shared text and
    /// each save carries only the person's own edit.
    pub(crate) fn received(&mut self, notes: &str) {
        if self.text != self.base
            && notes != self.base
            && let Some(local) = text_merge::splice_between(&self.base, &self.text)
        {
            self.text = text_merge::apply(notes, &text_merge::rebase(&self.base, notes, &local));
        } else if self.text == self.base {
            self.text = notes.to_string();
        }
        self.base = notes.to_string();
    }

    /// The save under way failed: what it carried counts as unsent again.
    pub(crate) fn save_failed(&mut self) {
        self.saving = false;
        if let Some(base) = self.before_save.take() {
            self.base = base;
        }
    }

    /// The save to send now, if the person typed something and no save is under way.
    fn due(&self, group: alongside_core::ids::GroupId) -> Option<Command> {
        (!self.saving && self.text != self.base).then(|| {
            Command::Home(HomeCommand::EditNotes {
                group,
                meeting: self.meeting.clone(),
                base: self.base.clone(),
                text: self.text.clone(),
            })
        })
    }

    /// A save was sent: what it sends is the new base.
    pub(crate) fn sent(&mut self, text: &str) {
        self.saving = true;
        self.before_save = Some(std::mem::replace(&mut self.base, text.to_string()));
    }
}

impl MeetingsForm {
    /// Brings the open meeting's notes up to date with `page`.
    pub(crate) fn refresh(&mut self, page: &GroupPage) {
        if let Some(editor) = self.notes.as_mut()
            && let Some(m) = page.meetings.iter().find(|m| m.id == editor.meeting)
        {
            editor.received(&m.notes);
        }
    }
}

/// `YYYY-MM-DD HH:MM` in this device's time zone, as RFC 3339 with its offset.
pub(crate) fn local_to_rfc3339(when: &str) -> Option<String> {
    let naive = chrono::NaiveDateTime::parse_from_str(when.trim(), "%Y-%m-%d %H:%M").ok()?;
    let local = chrono::Local.from_local_datetime(&naive).earliest()?;
    Some(local.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
}

/// An RFC 3339 time as people read it here: "Tue 1 Dec 2026, 19:00".
pub(crate) fn readable_time(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at).map_or_else(
        |_| at.to_string(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%a %-d %b %Y, %H:%M")
                .to_string()
        },
    )
}

/// The tab: the list and the scheduling form, or one meeting opened.
#[must_use]
pub(crate) fn meetings_tab(ui: &mut egui::Ui, page: &GroupPage, form: &mut MeetingsForm) -> Option<Action> {
    if let Some(open) = form.open.clone()
        && let Some(meeting) = page.meetings.iter().find(|m| m.id == open)
    {
        return opened(ui, page, meeting, form);
    }
    let mut action = None;
    match form.new.as_mut() {
        Some(new) => {
            let (scheduled, cancelled) = schedule(ui, page, new);
            action = scheduled;
            if cancelled {
                form.new = None;
            }
        }
        None => {
            if primary_button(ui, true, "Schedule a meeting") {
                form.new = Some(NewMeetingForm::default());
            }
        }
    }
    if page.meetings.is_empty() {
        ui.label("No meetings yet. When someone schedules one, it appears here.");
    }
    for meeting in &page.meetings {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(egui::RichText::new(&meeting.title).strong());
            quiet(ui, readable_time(&meeting.at));
            if let Some(place) = &meeting.place {
                quiet(ui, format!("Where: {place}"));
            }
            if let Some(f) = &meeting.facilitator {
                quiet(ui, format!("Facilitated by {}", f.name));
            }
            if ui.button(format!("Open {}", meeting.title)).clicked() {
                form.open = Some(meeting.id.clone());
                form.notes = Some(NotesEditor::new(meeting));
            }
        });
    }
    action
}

/// The scheduling form; returns the command to send, and whether it was cancelled.
fn schedule(ui: &mut egui::Ui, page: &GroupPage, form: &mut NewMeetingForm) -> (Option<Action>, bool) {
    let (mut action, mut cancelled) = (None, false);
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(egui::RichText::new("Schedule a meeting").strong());
        ui.add_enabled_ui(!form.busy, |ui| {
            text_line(ui, "Meeting title", &mut form.title);
            text_line(ui, "When (date and time, like 2026-12-01 19:00)", &mut form.when);
            text_line(ui, "Where, or a link", &mut form.place);
            ui.label("Who facilitates");
            ui.horizontal_wrapped(|ui| {
                ui.radio_value(&mut form.facilitator, None, "Not decided yet");
                for m in &page.members {
                    ui.radio_value(&mut form.facilitator, Some(m.id.clone()), &m.name);
                }
            });
            text_area(ui, "Agenda", &mut form.agenda, 3);
        });
        let at = local_to_rfc3339(&form.when);
        if !form.when.trim().is_empty() && at.is_none() {
            quiet(ui, "Write the time like 2026-12-01 19:00 (this device's time).");
        }
        quiet(
            ui,
            format!("Everyone in {} sees the meeting and can write in its notes.", page.name),
        );
        let ready = !form.title.trim().is_empty() && at.is_some() && !form.busy;
        ui.horizontal(|ui| {
            if primary_button(ui, ready, "Save meeting")
                && let Some(at) = at
            {
                action = Some(Action::Send(Command::Home(HomeCommand::AddMeeting {
                    group: page.id,
                    meeting: NewMeeting {
                        title: form.title.trim().to_string(),
                        at,
                        place: Some(form.place.trim().to_string()).filter(|p| !p.is_empty()),
                        facilitator: form.facilitator.as_deref().and_then(MemberId::from_hex),
                        agenda: form.agenda.trim().to_string(),
                    },
                })));
            }
            if ui.add_enabled(!form.busy, egui::Button::new("Cancel")).clicked() {
                cancelled = true;
            }
        });
    });
    (action, cancelled)
}

/// One meeting: its details, attendance, action items and the shared notes.
#[must_use]
fn opened(ui: &mut egui::Ui, page: &GroupPage, meeting: &MeetingView, form: &mut MeetingsForm) -> Option<Action> {
    let mut action = None;
    if ui.button("Back to meetings").clicked() {
        form.open = None;
        form.notes = None;
        return None;
    }
    ui.label(egui::RichText::new(&meeting.title).strong().size(18.0));
    quiet(ui, readable_time(&meeting.at));
    if let Some(place) = &meeting.place {
        quiet(ui, format!("Where: {place}"));
    }
    if let Some(f) = &meeting.facilitator {
        quiet(ui, format!("Facilitated by {}", f.name));
    }
    if !meeting.agenda.is_empty() {
        ui.label(egui::RichText::new("Agenda").strong());
        ui.label(&meeting.agenda);
    }

    ui.label(egui::RichText::new("Who is here").strong());
    ui.horizontal_wrapped(|ui| {
        for m in &page.members {
            let mut present = meeting.attendance.iter().any(|a| a.member.id == m.id && a.present);
            if ui.checkbox(&mut present, format!("{} is here", m.name)).changed()
                && let Some(member) = MemberId::from_hex(&m.id)
            {
                action = Some(Action::Send(Command::Home(HomeCommand::SetAttendance {
                    group: page.id,
                    meeting: meeting.id.clone(),
                    member,
                    present,
                })));
            }
        }
    });

    ui.label(egui::RichText::new("Action items").strong());
    for item in &meeting.actions {
        let mut done = item.done;
        if ui.checkbox(&mut done, &item.text).changed() {
            action = Some(Action::Send(Command::Home(HomeCommand::SetActionDone {
                group: page.id,
                meeting: meeting.id.clone(),
                action: item.id.clone(),
                done,
            })));
        }
    }
    ui.horizontal(|ui| {
        text_line(ui, "New action item", &mut form.action_text);
    });
    if ui
        .add_enabled(
            !form.action_text.trim().is_empty(),
            egui::Button::new("Add action item"),
        )
        .clicked()
    {
        action = Some(Action::Send(Command::Home(HomeCommand::AddAction {
            group: page.id,
            meeting: meeting.id.clone(),
            text: std::mem::take(&mut form.action_text),
        })));
    }

    ui.label(egui::RichText::new("Shared notes").strong());
    quiet(
        ui,
        "Everyone in the meeting can write here; others' typing appears as it syncs.",
    );
    if let Some(editor) = form.notes.as_mut() {
        text_area(ui, "Meeting notes", &mut editor.text, 10);
        if editor.saving || editor.text != editor.base {
            quiet(ui, "Saving…");
        }
        action = action.or(editor.due(page.id).map(Action::Send));
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_time_becomes_rfc3339_with_this_devices_offset_and_reads_back() {
        let at = local_to_rfc3339("2026-12-01 19:00").expect("a valid time");
        assert!(alongside_core::model::edits::looks_like_rfc3339(&at), "{at}");
        assert_eq!(readable_time(&at), "Tue 1 Dec 2026, 19:00");
        assert_eq!(local_to_rfc3339("next tuesday"), None);
        assert_eq!(local_to_rfc3339("2026-13-01 19:00"), None);
    }

    #[test]
    fn others_typing_shows_only_while_nothing_typed_here_is_unsent() {
        let meeting = MeetingView {
            id: "m1".into(),
            title: "Tuesday".into(),
            at: "2026-12-01T19:00:00Z".into(),
            place: None,
            facilitator: None,
            agenda: String::new(),
            notes: "a".into(),
            attendance: Vec::new(),
            actions: Vec::new(),
            created_by: alongside_core::model::views::Person {
                id: "00".into(),
                name: "Sam".into(),
            },
        };
        let mut editor = NotesEditor::new(&meeting);
        editor.received("ab");
        assert_eq!(editor.text, "ab", "nothing typed here: others' words show at once");
        editor.text.insert(0, 'X');
        editor.received("abc");
        assert_eq!(editor.text, "Xabc", "unsent typing stays, moved onto others' text");
        let group = alongside_core::ids::GroupId([7; 32]);
        let Some(Command::Home(HomeCommand::EditNotes { base, text, .. })) = editor.due(group) else {
            panic!("the typing is due to be saved");
        };
        assert_eq!(
            (base.as_str(), text.as_str()),
            ("abc", "Xabc"),
            "a save carries only this edit"
        );
        editor.sent(&text);
        assert!(editor.due(group).is_none(), "one save at a time");
        editor.save_failed();
        assert!(
            editor.due(group).is_some(),
            "after a failed save the typing is unsent again"
        );
        editor.sent(&text);
        editor.saving = false;
        editor.received("Xabcd");
        assert_eq!(editor.text, "Xabcd", "after the save, the merged notes show");
    }
}
