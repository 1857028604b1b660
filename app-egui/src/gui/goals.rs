//! The "Goals" tab of a group's home: every goal the member can read, its streak told with
//! compassion, the form for a new goal, and a quick daily check-in on the member's own.
//!
//! A setback is information, not a verdict: the days of progress a member built always
//! show, and a setback never shows as a counter back at zero.

use std::collections::BTreeSet;

use alongside_core::ids::MemberId;
use alongside_core::model::days_of;
use alongside_core::model::edits::{CheckInKind, HALT_TAGS, NewCheckIn};
use alongside_core::model::views::{CheckInView, GoalView, StreakView};
use eframe::egui;

use super::action::Action;
use super::backend::{Command, GroupPage};
use super::home::{GroupHome, HomeAction};
use super::home_backend::{HomeCommand, NewGoal};
use super::widgets::{primary_button, quiet, text_line};

/// The HALT words as the check-in shows them, in the order of [`HALT_TAGS`].
const HALT_LABELS: [&str; 4] = ["Hungry", "Angry", "Lonely", "Tired"];

/// Mood choices, 1 to 5.
const MOODS: [&str; 5] = ["1 · very low", "2 · low", "3 · okay", "4 · good", "5 · very good"];

/// The "new goal" form.
#[derive(Debug, Default)]
pub(crate) struct GoalForm {
    pub(crate) title: String,
    /// Optional, e.g. "90 days".
    pub(crate) target: String,
    /// Share with chosen members only (otherwise the whole group).
    pub(crate) only_chosen: bool,
    /// The chosen members (ids, hex).
    pub(crate) chosen: BTreeSet<String>,
    /// The backend is saving it.
    pub(crate) busy: bool,
}

impl GoalForm {
    /// The goal as the backend takes it, once it has a title and (when shared with chosen
    /// members only) at least one of them.
    pub(crate) fn to_goal(&self) -> Option<NewGoal> {
        let title = self.title.trim();
        let share_with: Vec<MemberId> = if self.only_chosen {
            self.chosen.iter().filter_map(|id| MemberId::from_hex(id)).collect()
        } else {
            Vec::new()
        };
        if title.is_empty() || (self.only_chosen && share_with.is_empty()) {
            return None;
        }
        let target = Some(self.target.trim()).filter(|t| !t.is_empty()).map(str::to_string);
        Some(NewGoal {
            title: title.to_string(),
            target,
            share_with,
        })
    }
}

/// A daily check-in being filled in.
#[derive(Debug)]
pub(crate) struct CheckInForm {
    /// The goal (item id, hex).
    pub(crate) goal: String,
    pub(crate) kind: CheckInKind,
    /// `YYYY-MM-DD`, today unless changed.
    pub(crate) date: String,
    pub(crate) mood: Option<i64>,
    /// Whether a craving level is given.
    pub(crate) with_craving: bool,
    pub(crate) craving: i64,
    /// Which of [`HALT_TAGS`] are ticked.
    pub(crate) halt: [bool; HALT_TAGS.len()],
    pub(crate) note: String,
    /// The backend is saving it.
    pub(crate) busy: bool,
}

impl CheckInForm {
    /// A check-in on `goal` for `today`: progress, nothing else filled in.
    pub(crate) fn new(goal: String, today: &str) -> CheckInForm {
        CheckInForm {
            goal,
            kind: CheckInKind::Progress,
            date: today.to_string(),
            mood: None,
            with_craving: false,
            craving: 0,
            halt: [false; HALT_TAGS.len()],
            note: String::new(),
            busy: false,
        }
    }

    /// The check-in as the core takes it.
    pub(crate) fn to_check_in(&self) -> NewCheckIn {
        NewCheckIn {
            date: self.date.trim().to_string(),
            kind: self.kind,
            mood: self.mood,
            craving: self.with_craving.then_some(self.craving),
            halt: HALT_TAGS
                .iter()
                .zip(self.halt)
                .filter(|(_, on)| *on)
                .map(|(tag, _)| tag.to_string())
                .collect(),
            note: self.note.trim().to_string(),
        }
    }

    /// Why the day cannot be used, if it cannot.
    fn date_problem(&self, today: &str) -> Option<&'static str> {
        match (days_of(self.date.trim()), days_of(today)) {
            (None, _) => Some("Write the day like 2026-11-29."),
            (Some(day), Some(today)) if day > today => Some("That day has not come yet."),
            _ => None,
        }
    }
}

/// "1 day", "3 days".
fn days(n: i64) -> String {
    if n == 1 { "1 day".into() } else { format!("{n} days") }
}

/// A streak in words. Days of progress always show; a setback is told next to them, never
/// as a run back at zero. `own` says "your" rather than "their".
pub(crate) fn streak_lines(streak: &StreakView, own: bool) -> Vec<String> {
    if streak.total_days == 0 && streak.setbacks == 0 {
        return vec!["No check-ins yet.".into()];
    }
    let mut lines = Vec::new();
    if streak.total_days > 0 {
        let mut parts = vec![format!("{} of progress in all", days(streak.total_days))];
        if streak.current_run > 0 {
            parts.push(format!("current run {}", days(streak.current_run)));
        }
        parts.push(format!("longest run {}", days(streak.longest_run)));
        lines.push(parts.join(" · "));
    }
    if let Some(since) = streak.days_since_setback {
        let when = match since {
            0 => "today".to_string(),
            1 => "yesterday".to_string(),
            n => format!("{n} days ago"),
        };
        let whose = if own { "your" } else { "their" };
        if streak.total_days > 0 {
            lines.push(format!(
                "Last setback {when} — {whose} {} still count.",
                days(streak.total_days)
            ));
        } else {
            lines.push(format!("Last setback {when}. Checking in honestly is a step too."));
        }
        if own && streak.current_run == 0 {
            lines.push("Your next day of progress starts a new run.".into());
        }
    }
    lines
}

/// What to tell a member right after a check-in is saved.
pub(crate) fn checked_in_message(streak: Option<&StreakView>, setback: bool) -> String {
    let total = streak.map_or(0, |s| s.total_days);
    match (setback, streak) {
        (true, Some(s)) if total > 0 => format!(
            "You logged a setback. Your {} still count — longest run {}. Be gentle with yourself today.",
            days(total),
            days(s.longest_run)
        ),
        (true, _) => "You logged a setback. Thank you for checking in honestly. Be gentle with yourself today.".into(),
        (false, _) => "Your check-in is saved on this device.".into(),
    }
}

/// Who sees `goal`, as its card says it.
fn audience_line(goal: &GoalView, me: &str) -> String {
    let Some(members) = &goal.audience else {
        return "Who sees it: Whole group".into();
    };
    let name = |id: &str, name: &str| if id == me { "you".to_string() } else { name.to_string() };
    let mut names = vec![name(&goal.author.id, &goal.author.name)];
    for person in members.iter().filter(|p| p.id != goal.author.id) {
        names.push(name(&person.id, &person.name));
    }
    format!("Who sees it: only {}", join_names(&names))
}

/// "Sam", "Sam and Alex", "Sam, Alex and Kim".
fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// One check-in as a short line.
fn check_in_line(c: &CheckInView) -> String {
    let mut parts = vec![
        c.date.clone(),
        if c.kind == "setback" { "Setback" } else { "Progress" }.to_string(),
    ];
    if let Some(mood) = c.mood {
        parts.push(format!("mood {mood} of 5"));
    }
    if let Some(craving) = c.craving {
        parts.push(format!("craving {craving} of 10"));
    }
    if !c.halt.is_empty() {
        parts.push(c.halt.join(", "));
    }
    if !c.note.is_empty() {
        parts.push(format!("\u{201c}{}\u{201d}", c.note));
    }
    parts.join(" · ")
}

/// The goals tab: the new goal form (or the button that opens it), then the member's own
/// goals, then the goals others shared.
#[must_use]
pub(crate) fn goals_tab(ui: &mut egui::Ui, home: &mut GroupHome) -> Option<Action> {
    let GroupHome {
        page,
        new_goal,
        check_in,
        ..
    } = home;
    let mut action = None;
    quiet(
        ui,
        "Goals you keep, and goals others chose to share with you. A setback never wipes out the days you built.",
    );
    match new_goal {
        Some(form) => action = goal_form(ui, page, form),
        None => {
            if primary_button(ui, true, "Add a goal") {
                action = Some(Action::Home(HomeAction::StartGoal));
            }
        }
    }
    ui.add_space(12.0);
    let (mine, others): (Vec<&GoalView>, Vec<&GoalView>) = page.goals.iter().partition(|g| g.author.id == page.me);
    if mine.is_empty() && others.is_empty() {
        ui.label("No goals yet. When you or others add one, it appears here.");
        return action;
    }
    if !mine.is_empty() {
        ui.label(egui::RichText::new("Your goals").strong().size(18.0));
    }
    for goal in mine {
        let clicked = goal_card(ui, page, goal, check_in);
        action = action.or(clicked);
    }
    if !others.is_empty() {
        ui.label(egui::RichText::new("Shared with you").strong().size(18.0));
    }
    for goal in others {
        let clicked = goal_card(ui, page, goal, check_in);
        action = action.or(clicked);
    }
    action
}

#[must_use]
fn goal_card(
    ui: &mut egui::Ui,
    page: &GroupPage,
    goal: &GoalView,
    check_in: &mut Option<CheckInForm>,
) -> Option<Action> {
    let own = goal.author.id == page.me;
    egui::Frame::group(ui.style())
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(egui::RichText::new(&goal.title).strong().size(17.0));
            let who = if own {
                "Your goal".to_string()
            } else {
                format!("{}'s goal", goal.author.name)
            };
            match &goal.target {
                Some(target) => quiet(ui, format!("{who} · target: {target}")),
                None => quiet(ui, who),
            };
            quiet(ui, audience_line(goal, &page.me));
            for line in streak_lines(&goal.streak, own) {
                ui.label(line);
            }
            if !goal.checkins.is_empty() {
                quiet(ui, "Latest check-ins:");
                for c in goal.checkins.iter().rev() {
                    quiet(ui, check_in_line(c));
                }
            }
            if !own {
                return None;
            }
            match check_in.as_mut().filter(|form| form.goal == goal.id) {
                Some(form) => check_in_form(ui, page, goal, form),
                None => ui
                    .button(format!("Check in on \u{201c}{}\u{201d}", goal.title))
                    .clicked()
                    .then(|| Action::Home(HomeAction::StartCheckIn(goal.id.clone()))),
            }
        })
        .inner
}

#[must_use]
fn goal_form(ui: &mut egui::Ui, page: &GroupPage, form: &mut GoalForm) -> Option<Action> {
    let mut action = None;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(egui::RichText::new("New goal").strong().size(18.0));
        let others: Vec<_> = page.members.iter().filter(|m| !m.me).collect();
        ui.add_enabled_ui(!form.busy, |ui| {
            text_line(ui, "What is your goal?", &mut form.title);
            text_line(ui, "Target (optional), for example \"90 days\"", &mut form.target);
            ui.label("Who sees this goal");
            ui.radio_value(&mut form.only_chosen, false, "The whole group");
            ui.radio_value(&mut form.only_chosen, true, "Only members I choose");
            if form.only_chosen {
                if others.is_empty() {
                    quiet(ui, "There is nobody else in this group yet.");
                }
                for member in &others {
                    let mut on = form.chosen.contains(&member.id);
                    if ui.checkbox(&mut on, member.name.as_str()).changed() {
                        if on {
                            form.chosen.insert(member.id.clone());
                        } else {
                            form.chosen.remove(&member.id);
                        }
                    }
                }
            }
        });
        let chosen: Vec<String> = others
            .iter()
            .filter(|m| form.chosen.contains(&m.id))
            .map(|m| m.name.clone())
            .collect();
        let audience = match (form.only_chosen, chosen.is_empty()) {
            (false, _) => format!("Everyone in {} will see this goal and its check-ins.", page.name),
            (true, true) => "Choose at least one member, or share it with the whole group.".into(),
            (true, false) => {
                let mut names = vec!["you".to_string()];
                names.extend(chosen);
                format!("Only {} will see this goal and its check-ins.", join_names(&names))
            }
        };
        ui.label(audience);
        let goal = form.to_goal().filter(|_| !form.busy);
        ui.horizontal(|ui| {
            if primary_button(ui, goal.is_some(), "Save goal")
                && let Some(goal) = goal
            {
                action = Some(Action::Send(Command::Home(HomeCommand::AddGoal {
                    group: page.id,
                    goal,
                })));
            }
            if ui
                .add_enabled(!form.busy, egui::Button::new("Cancel new goal"))
                .clicked()
            {
                action = Some(Action::Home(HomeAction::CancelGoal));
            }
        });
        if form.busy {
            quiet(ui, "Saving your goal…");
        } else if form.title.trim().is_empty() {
            quiet(ui, "A goal needs a few words before it can be saved.");
        }
    });
    action
}

#[must_use]
fn check_in_form(ui: &mut egui::Ui, page: &GroupPage, goal: &GoalView, form: &mut CheckInForm) -> Option<Action> {
    let mut action = None;
    ui.add_space(6.0);
    ui.label(egui::RichText::new("Today's check-in").strong());
    ui.add_enabled_ui(!form.busy, |ui| {
        ui.label("How did it go?");
        ui.horizontal(|ui| {
            ui.radio_value(&mut form.kind, CheckInKind::Progress, "Progress");
            ui.radio_value(&mut form.kind, CheckInKind::Setback, "Setback");
        });
        if form.kind == CheckInKind::Setback {
            quiet(
                ui,
                "A setback is information, not a verdict. The days you built still count.",
            );
        }
        text_line(ui, "Day (YYYY-MM-DD)", &mut form.date);
        quiet(ui, "Today is filled in. Change it to log a day you missed.");
        ui.label("Mood (optional)");
        ui.horizontal_wrapped(|ui| {
            ui.radio_value(&mut form.mood, None, "Rather not say");
            for (mood, label) in (1..).zip(MOODS) {
                ui.radio_value(&mut form.mood, Some(mood), label);
            }
        });
        ui.checkbox(&mut form.with_craving, "Note a craving level (optional)");
        if form.with_craving {
            ui.add(
                egui::Slider::new(&mut form.craving, 0..=10)
                    .text("Craving, 0 (none) to 10 (very strong)")
                    .show_value(false),
            );
            quiet(ui, format!("Craving: {} of 10", form.craving));
        }
        ui.label("Are you hungry, angry, lonely or tired? Tick any that fit.");
        ui.horizontal(|ui| {
            for (label, on) in HALT_LABELS.iter().zip(form.halt.iter_mut()) {
                ui.checkbox(on, *label);
            }
        });
        text_line(ui, "A short note (optional)", &mut form.note);
    });
    let problem = form.date_problem(&page.today);
    if let Some(problem) = problem {
        quiet(ui, problem);
    }
    let ready = problem.is_none() && !form.busy;
    ui.horizontal(|ui| {
        if primary_button(ui, ready, "Save check-in") {
            action = Some(Action::Send(Command::Home(HomeCommand::CheckIn {
                group: page.id,
                goal: goal.id.clone(),
                checkin: form.to_check_in(),
            })));
        }
        if ui
            .add_enabled(!form.busy, egui::Button::new("Cancel check-in"))
            .clicked()
        {
            action = Some(Action::Home(HomeAction::CancelCheckIn));
        }
    });
    if form.busy {
        quiet(ui, "Saving your check-in…");
    }
    action
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_setback_keeps_the_days_built_and_never_shows_a_zero() {
        let streak = StreakView {
            total_days: 12,
            current_run: 0,
            longest_run: 9,
            days_since_setback: Some(3),
            setbacks: 1,
        };
        let lines = streak_lines(&streak, true);
        assert_eq!(
            lines,
            [
                "12 days of progress in all · longest run 9 days",
                "Last setback 3 days ago — your 12 days still count.",
                "Your next day of progress starts a new run.",
            ]
        );
        assert!(lines.iter().all(|l| !l.contains(" 0 ")), "{lines:?}");
        let only_setback = StreakView {
            setbacks: 1,
            days_since_setback: Some(0),
            ..StreakView::default()
        };
        let lines = streak_lines(&only_setback, false);
        assert_eq!(lines, ["Last setback today. Checking in honestly is a step too."]);
    }

    #[test]
    fn a_running_streak_reads_in_full() {
        let streak = StreakView {
            total_days: 12,
            current_run: 3,
            longest_run: 9,
            days_since_setback: Some(3),
            setbacks: 1,
        };
        assert_eq!(
            streak_lines(&streak, false),
            [
                "12 days of progress in all · current run 3 days · longest run 9 days",
                "Last setback 3 days ago — their 12 days still count.",
            ]
        );
        assert_eq!(streak_lines(&StreakView::default(), true), ["No check-ins yet."]);
    }

    #[test]
    fn the_check_in_form_gives_the_core_what_was_chosen() {
        let mut form = CheckInForm::new("ab".into(), "2026-11-29");
        form.kind = CheckInKind::Setback;
        form.mood = Some(2);
        form.halt = [false, false, true, true];
        form.note = "  long day ".into();
        let c = form.to_check_in();
        assert_eq!(c.date, "2026-11-29");
        assert_eq!(c.craving, None, "no craving unless one is given");
        assert_eq!(c.halt, ["lonely", "tired"]);
        assert_eq!(c.note, "long day");
        assert!(c.validate().is_ok());
        form.date = "2026-11-30".into();
        assert_eq!(form.date_problem("2026-11-29"), Some("That day has not come yet."));
        form.date = "yesterday".into();
        assert!(form.date_problem("2026-11-29").is_some());
    }

    #[test]
    fn a_goal_for_chosen_members_needs_one_of_them() {
        let mut form = GoalForm {
            title: " Call my sponsor ".into(),
            only_chosen: true,
            ..GoalForm::default()
        };
        assert_eq!(form.to_goal(), None);
        form.only_chosen = false;
        let goal = form.to_goal().unwrap();
        assert_eq!(goal.title, "Call my sponsor");
        assert_eq!(goal.target, None);
        assert!(goal.share_with.is_empty());
    }
}
