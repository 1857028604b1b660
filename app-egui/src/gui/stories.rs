//! The "Stories" tab of a group's home: its stories, and the form to write one.
//!
//! A story with content warnings stays collapsed behind them ("This story mentions: …")
//! until the reader chooses to open it; nothing of it but the author's name is shown before.

use alongside_core::model::edits::NewStory;
use alongside_core::model::views::StoryView;
use eframe::egui;

use super::action::Action;
use super::backend::{Command, GroupPage};
use super::home::GroupHome;
use super::home_backend::HomeCommand;
use super::widgets::{message, primary_button, quiet, text_area, text_line};

/// Warnings offered as a list when writing; anything else can be typed.
pub(crate) const COMMON_WARNINGS: [&str; 6] = [
    "Substance use",
    "Cravings",
    "Self-harm",
    "Suicidal thoughts",
    "Abuse",
    "Grief and loss",
];

/// The story writer.
#[derive(Default)]
pub(crate) struct StoryForm {
    pub(crate) title: String,
    pub(crate) body: String,
    /// Which of [`COMMON_WARNINGS`] are ticked.
    pub(crate) common: [bool; COMMON_WARNINGS.len()],
    /// Other warnings, separated by commas.
    pub(crate) other: String,
    pub(crate) no_replies: bool,
    /// The backend is saving it.
    pub(crate) busy: bool,
}

impl StoryForm {
    /// The story as the core takes it: ticked warnings first, then typed ones, no repeats.
    pub(crate) fn to_story(&self) -> NewStory {
        let mut warnings: Vec<String> = Vec::new();
        let ticked = COMMON_WARNINGS
            .iter()
            .zip(self.common)
            .filter(|(_, on)| *on)
            .map(|(w, _)| w.to_string());
        let typed = self
            .other
            .split(',')
            .map(|w| w.trim().to_string())
            .filter(|w| !w.is_empty());
        for warning in ticked.chain(typed) {
            if !warnings.iter().any(|w| w.eq_ignore_ascii_case(&warning)) {
                warnings.push(warning);
            }
        }
        NewStory {
            title: self.title.trim().to_string(),
            body: self.body.trim().to_string(),
            warnings,
            no_replies: self.no_replies,
        }
    }
}

/// The stories tab: the writer or the button that opens it, then the stories.
#[must_use]
pub(crate) fn stories_tab(ui: &mut egui::Ui, home: &mut GroupHome) -> Option<Action> {
    let mut action = None;
    match &mut home.writer {
        Some(form) => action = action.or(story_writer(ui, &home.page.name, form)),
        None => {
            if primary_button(ui, true, "Write a story") {
                action = Some(Action::StartStory);
            }
        }
    }
    ui.add_space(16.0);
    let page = &home.page;
    let list = &page.stories;
    if list.total == 0 {
        ui.label("No stories yet. When someone shares one, it appears here.");
    }
    match list.resting {
        0 => {}
        1 => {
            quiet(
                ui,
                "You are taking a break: 1 story with content warnings waits until it ends.",
            );
        }
        n => {
            quiet(
                ui,
                format!("You are taking a break: {n} stories with content warnings wait until it ends."),
            );
        }
    }
    match list.muted {
        0 => {}
        1 => {
            quiet(ui, "1 story from a member you muted is not shown.");
        }
        n => {
            quiet(ui, format!("{n} stories from members you muted are not shown."));
        }
    }
    for story in &list.stories {
        let open = story.warnings.is_empty() || home.revealed.contains(&story.id);
        let clicked = egui::Frame::group(ui.style())
            .show(ui, |ui| {
                ui.set_width(ui.available_width());
                if open {
                    story_card(ui, story, page, &mut home.story_extras)
                } else {
                    collapsed_story(ui, story)
                }
            })
            .inner;
        action = action.or(clicked);
    }
    // A calm end instead of an endless feed: older stories come a page at a time, when
    // asked for (the backend reads and sends only the stories shown).
    if list.older > 0 {
        quiet(ui, format!("{} older stories are not shown.", list.older));
        if ui.button("Show older stories").clicked() {
            action = Some(Action::Send(Command::ShowOlderStories));
        }
    }
    action
}

#[must_use]
fn collapsed_story(ui: &mut egui::Ui, story: &StoryView) -> Option<Action> {
    ui.label(format!("{} shared a story.", story.author.name));
    ui.label(format!("This story mentions: {}.", story.warnings.join(", ")));
    quiet(ui, "It stays closed until you choose to open it.");
    // Several closed stories each get a name of their own for a screen reader.
    let name = format!(
        "Open {}'s story of {}",
        story.author.name,
        alongside_core::model::date_of(story.created_at_ms)
    );
    let button = ui
        .button("Open story")
        .on_hover_text("Shows the story; you can close it again");
    button.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &name));
    button.clicked().then(|| Action::RevealStory(story.id.clone()))
}

#[must_use]
/// Replies being written and a deletion waiting to be confirmed.
#[derive(Default)]
pub(crate) struct StoryExtras {
    /// Replies being written, by story id.
    pub(crate) replies: std::collections::BTreeMap<String, String>,
    /// The story (id) whose deletion is asked about.
    pub(crate) confirm_delete: Option<String>,
}

#[must_use]
fn story_card(ui: &mut egui::Ui, story: &StoryView, page: &GroupPage, extras: &mut StoryExtras) -> Option<Action> {
    ui.label(egui::RichText::new(&story.title).strong().size(18.0));
    quiet(
        ui,
        format!(
            "{} · {}",
            story.author.name,
            alongside_core::model::date_of(story.created_at_ms)
        ),
    );
    if !story.warnings.is_empty() {
        quiet(ui, format!("Mentions: {}", story.warnings.join(", ")));
    }
    ui.label(&story.body);
    if story.no_replies {
        quiet(ui, format!("{} asked for no replies.", story.author.name));
    }
    let mut action = support_and_replies(ui, story, page, extras);
    if story.author.id == page.me {
        action = action.or(delete_story(ui, story, page, &mut extras.confirm_delete));
    }
    if !story.warnings.is_empty() && ui.button("Close story").clicked() {
        action = Some(Action::ConcealStory(story.id.clone()));
    }
    action
}

/// Support sent so far, a way to send one's own, the replies, and a way to reply (unless
/// the author asked for none). Labels name the story, so each is distinct.
#[must_use]
fn support_and_replies(
    ui: &mut egui::Ui,
    story: &StoryView,
    page: &GroupPage,
    extras: &mut StoryExtras,
) -> Option<Action> {
    let mut action = None;
    let supporters: Vec<&str> = story.reactions.iter().map(|r| r.author.name.as_str()).collect();
    match supporters.len() {
        0 => {}
        1 => {
            quiet(ui, format!("{} sent support.", supporters[0]));
        }
        n => {
            quiet(ui, format!("{n} members sent support: {}.", supporters.join(", ")));
        }
    }
    let mine = story.author.id == page.me;
    let sent = story.reactions.iter().any(|r| r.author.id == page.me);
    if !mine && !sent && ui.button(format!("Send support for “{}”", story.title)).clicked() {
        action = Some(Action::Send(Command::Home(HomeCommand::React {
            group: page.id,
            story: story.id.clone(),
        })));
    }
    for reply in story.replies.iter().filter(|r| !page.muted.contains(&r.author.id)) {
        ui.label(format!("{}: {}", reply.author.name, reply.text));
    }
    if story.no_replies {
        return action;
    }
    let draft = extras.replies.entry(story.id.clone()).or_default();
    text_line(ui, &format!("Reply to “{}”", story.title), draft);
    let ready = !draft.trim().is_empty();
    if ui
        .add_enabled(ready, egui::Button::new(format!("Send reply to “{}”", story.title)))
        .clicked()
    {
        action = Some(Action::Send(Command::Home(HomeCommand::Reply {
            group: page.id,
            story: story.id.clone(),
            text: draft.trim().to_string(),
        })));
    }
    action
}

/// Deleting one's own story: what it can and cannot undo is said first.
#[must_use]
fn delete_story(
    ui: &mut egui::Ui,
    story: &StoryView,
    page: &GroupPage,
    confirm: &mut Option<String>,
) -> Option<Action> {
    if confirm.as_deref() != Some(story.id.as_str()) {
        if ui.button(format!("Delete “{}”…", story.title)).clicked() {
            *confirm = Some(story.id.clone());
        }
        return None;
    }
    message(
        ui,
        "Deleting takes the story out of what the group sees. It cannot take it back from \
         history: devices that already have it keep a copy in the group's history, and \
         anyone who read it may remember it.",
    );
    let mut action = None;
    ui.horizontal(|ui| {
        if ui.button("Delete it").clicked() {
            *confirm = None;
            action = Some(Action::Send(Command::Home(HomeCommand::DeleteStory {
                group: page.id,
                story: story.id.clone(),
            })));
        }
        if ui.button("Keep it").clicked() {
            *confirm = None;
        }
    });
    action
}

#[must_use]
fn story_writer(ui: &mut egui::Ui, group: &str, form: &mut StoryForm) -> Option<Action> {
    let mut action = None;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(egui::RichText::new("Write a story").strong().size(18.0));
        quiet(ui, format!("Shared with everyone in {group}."));
        ui.add_enabled_ui(!form.busy, |ui| {
            text_line(ui, "Title", &mut form.title);
            text_area(ui, "Your story", &mut form.body, 6);
            ui.label("Content warnings");
            quiet(
                ui,
                "If your story mentions something others may want to be ready for, choose it here. \
                 Readers see these words first and decide whether to open your story.",
            );
            ui.horizontal_wrapped(|ui| {
                for (warning, on) in COMMON_WARNINGS.iter().zip(form.common.iter_mut()) {
                    ui.checkbox(on, *warning);
                }
            });
            text_line(ui, "Other warnings (separate them with commas)", &mut form.other);
            ui.checkbox(&mut form.no_replies, "Ask for no replies");
        });
        let ready = !form.title.trim().is_empty() && !form.body.trim().is_empty() && !form.busy;
        ui.horizontal(|ui| {
            if primary_button(ui, ready, "Share story") {
                action = Some(Action::ShareStory(form.to_story()));
            }
            if ui.add_enabled(!form.busy, egui::Button::new("Cancel")).clicked() {
                action = Some(Action::CancelStory);
            }
        });
        if form.busy {
            quiet(ui, "Saving your story…");
        } else if !ready {
            quiet(ui, "A story needs a title and some words before it can be shared.");
        }
    });
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_come_from_the_list_and_the_typed_line_without_repeats() {
        let mut form = StoryForm {
            title: " A hard week ".into(),
            body: "words".into(),
            other: "court date,  cravings , ".into(),
            ..StoryForm::default()
        };
        form.common[1] = true; // Cravings
        form.common[5] = true; // Grief and loss
        let story = form.to_story();
        assert_eq!(story.title, "A hard week");
        assert_eq!(story.warnings, ["Cravings", "Grief and loss", "court date"]);
    }
}
