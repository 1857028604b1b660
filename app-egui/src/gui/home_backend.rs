//! The backend's work for a group's home: reading the page, adding goals, checking in,
//! and the group's agreements.
//!
//! Every function here takes the unlocked [`Vault`] as `&mut Vault` and returns the
//! [`Event`] to send back, so `Backend::handle` calls each in one line, whoever holds the
//! vault (today the backend itself; later a network node's `with_vault`).

use alongside_core::ids::{GroupId, MemberId};
use alongside_core::model::edits::{CheckInKind, NewCheckIn, NewMeeting};
use alongside_core::model::views::StoryQuery;
use alongside_core::vault::{Vault, VaultError};

use super::backend::{Event, GroupPage, NetState, OpenInvitation, failed, reach_out_cards};

/// How many of each goal's latest check-ins a page carries. The streak is computed from
/// all of them in the core; the screen lists only the last few.
pub(crate) const RECENT_CHECK_INS: usize = 3;

/// What a group's home asks the backend to do.
#[derive(Debug)]
pub(crate) enum HomeCommand {
    /// Add a goal.
    AddGoal {
        /// The group.
        group: GroupId,
        /// The goal.
        goal: NewGoal,
    },
    /// Check in on one of this member's goals.
    CheckIn {
        /// The group.
        group: GroupId,
        /// The goal's item id (hex).
        goal: String,
        /// The check-in.
        checkin: NewCheckIn,
    },
    /// Set the group's agreements (facilitators only).
    SetAgreements {
        /// The group.
        group: GroupId,
        /// The new text.
        text: String,
    },
    /// Agree to the group's current agreements.
    Agree(GroupId),
    /// The person read that some of their changes were undone (see `GroupPage::undone`).
    AcknowledgeUndone(GroupId),
    /// Send support to a story.
    React {
        /// The group.
        group: GroupId,
        /// The story's id.
        story: String,
    },
    /// Reply to a story.
    Reply {
        /// The group.
        group: GroupId,
        /// The story's id.
        story: String,
        /// The reply.
        text: String,
    },
    /// Delete one of this member's own stories.
    DeleteStory {
        /// The group.
        group: GroupId,
        /// The story's id.
        story: String,
    },
    /// Schedule a meeting.
    AddMeeting {
        /// The group.
        group: GroupId,
        /// The meeting.
        meeting: NewMeeting,
    },
    /// Bring a meeting's shared notes from `base` (what the editor last showed) to `text`.
    EditNotes {
        /// The group.
        group: GroupId,
        /// The meeting's id.
        meeting: String,
        /// The notes the editor started from.
        base: String,
        /// The notes as the person left them.
        text: String,
    },
    /// Mark someone present or not at a meeting.
    SetAttendance {
        /// The group.
        group: GroupId,
        /// The meeting's id.
        meeting: String,
        /// Who.
        member: MemberId,
        /// There or not.
        present: bool,
    },
    /// Add an action item to a meeting.
    AddAction {
        /// The group.
        group: GroupId,
        /// The meeting's id.
        meeting: String,
        /// What is to be done.
        text: String,
    },
    /// Mark an action item done or not.
    SetActionDone {
        /// The group.
        group: GroupId,
        /// The meeting's id.
        meeting: String,
        /// The action item's id.
        action: String,
        /// Done or not.
        done: bool,
    },
}

/// A new goal as the form gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewGoal {
    /// What the goal is.
    pub(crate) title: String,
    /// An optional target, e.g. "90 days".
    pub(crate) target: Option<String>,
    /// Who else sees it: empty for the whole group.
    pub(crate) share_with: Vec<MemberId>,
}

/// What was saved on a group's home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HomeSaved {
    /// A goal was added.
    Goal,
    /// A check-in was saved on goal `goal` (item id).
    CheckIn {
        /// The goal's item id (hex).
        goal: String,
        /// It was a setback.
        setback: bool,
    },
    /// The agreements were set.
    Agreements,
    /// This member agreed to the current agreements.
    Agreed,
    /// Support was sent to a story.
    Support,
    /// A reply to `story` was saved.
    Reply {
        /// The story's id.
        story: String,
    },
    /// One of this member's stories was deleted.
    StoryDeleted,
    /// A meeting was scheduled.
    Meeting,
    /// A meeting's notes were saved.
    Notes,
    /// A meeting's attendance or action items changed.
    MeetingDetail,
    /// The person acknowledged that some of their changes were undone.
    UndoneSeen,
}

impl HomeCommand {
    /// The group it is for.
    pub(crate) fn group(&self) -> GroupId {
        match self {
            HomeCommand::AddGoal { group, .. }
            | HomeCommand::CheckIn { group, .. }
            | HomeCommand::SetAgreements { group, .. }
            | HomeCommand::Agree(group)
            | HomeCommand::AcknowledgeUndone(group)
            | HomeCommand::React { group, .. }
            | HomeCommand::Reply { group, .. }
            | HomeCommand::DeleteStory { group, .. }
            | HomeCommand::AddMeeting { group, .. }
            | HomeCommand::EditNotes { group, .. }
            | HomeCommand::SetAttendance { group, .. }
            | HomeCommand::AddAction { group, .. }
            | HomeCommand::SetActionDone { group, .. } => *group,
        }
    }
}

/// What a page is read with besides the vault: what the node reported, whether local
/// discovery is allowed, and how many stories the reader asked to see.
#[derive(Clone)]
pub(crate) struct PageContext {
    /// Connections, rounds and waiting changes, as the node reported them.
    pub(crate) net: NetState,
    /// Whether this device allows local-network discovery.
    pub(crate) lan: bool,
    /// How many stories the list shows.
    pub(crate) stories: usize,
}

/// Carries out `command` on `vault` at `now_ms`; the page after it, or why it failed.
pub(crate) fn handle(vault: &mut Vault, command: HomeCommand, now_ms: i64, context: &PageContext) -> Event {
    let (group, result, saved, what) = match command {
        HomeCommand::AddGoal { group, goal } => {
            let result = vault.edit(&group, |s| {
                s.add_goal(&goal.title, goal.target.as_deref(), &goal.share_with, now_ms)
                    .map(|_| ())
            });
            (group, result, HomeSaved::Goal, "Your goal was not saved")
        }
        HomeCommand::CheckIn { group, goal, checkin } => {
            let setback = checkin.kind == CheckInKind::Setback;
            let result = vault.edit(&group, |s| s.check_in(&goal, &checkin, now_ms).map(|_| ()));
            (
                group,
                result,
                HomeSaved::CheckIn { goal, setback },
                "Your check-in was not saved",
            )
        }
        HomeCommand::SetAgreements { group, text } => {
            let result = vault.edit(&group, |s| s.set_agreement(text.trim(), now_ms));
            (group, result, HomeSaved::Agreements, "The agreements were not saved")
        }
        HomeCommand::Agree(group) => {
            let result = vault.edit(&group, |s| s.acknowledge_agreement(now_ms));
            (group, result, HomeSaved::Agreed, "Your agreement was not saved")
        }
        HomeCommand::AcknowledgeUndone(group) => {
            let result = vault.edit(&group, |s| {
                s.acknowledge_undone();
                Ok::<(), VaultError>(())
            });
            (group, result, HomeSaved::UndoneSeen, "This could not be saved")
        }
        HomeCommand::React { group, story } => {
            let result = vault.edit(&group, |s| s.react(&story, "support", now_ms).map(|_| ()));
            (group, result, HomeSaved::Support, "Your support was not sent")
        }
        HomeCommand::Reply { group, story, text } => {
            let result = vault.edit(&group, |s| s.reply(&story, text.trim(), now_ms).map(|_| ()));
            (group, result, HomeSaved::Reply { story }, "Your reply was not saved")
        }
        HomeCommand::DeleteStory { group, story } => {
            let result = vault.edit(&group, |s| s.delete_story(&story));
            (group, result, HomeSaved::StoryDeleted, "The story was not deleted")
        }
        HomeCommand::AddMeeting { group, meeting } => {
            let result = vault.edit(&group, |s| s.add_meeting(&meeting, now_ms).map(|_| ()));
            (group, result, HomeSaved::Meeting, "The meeting was not scheduled")
        }
        HomeCommand::EditNotes {
            group,
            meeting,
            base,
            text,
        } => {
            let result = vault.edit(&group, |s| s.edit_meeting_notes_from(&meeting, &base, &text));
            (group, result, HomeSaved::Notes, "Your notes were not saved")
        }
        HomeCommand::SetAttendance {
            group,
            meeting,
            member,
            present,
        } => {
            let result = vault.edit(&group, |s| s.set_attendance(&meeting, member, present));
            (group, result, HomeSaved::MeetingDetail, "Attendance was not saved")
        }
        HomeCommand::AddAction { group, meeting, text } => {
            let result = vault.edit(&group, |s| s.add_action_item(&meeting, text.trim(), None).map(|_| ()));
            (group, result, HomeSaved::MeetingDetail, "The action item was not saved")
        }
        HomeCommand::SetActionDone {
            group,
            meeting,
            action,
            done,
        } => {
            let result = vault.edit(&group, |s| s.set_action_done(&meeting, &action, done));
            (group, result, HomeSaved::MeetingDetail, "The action item was not saved")
        }
    };
    if let Err(err) = result {
        return failed(what, &err);
    }
    match group_page(vault, &group, now_ms, context) {
        Ok(page) => Event::HomeSaved { page, saved },
        Err(err) => failed("It was saved, but the page could not be read", &err),
    }
}

/// Everything a group's home shows, as of `now_ms`, with what `context` says (who is
/// connected and who has one's reach-outs, and how many stories to carry).
pub(crate) fn group_page(
    vault: &mut Vault,
    group: &GroupId,
    now_ms: i64,
    context: &PageContext,
) -> Result<GroupPage, VaultError> {
    let net = &context.net;
    let status = net.status(vault, *group, context.lan)?;
    // The member's own calendar day: a check-in at 9 pm belongs to today, and a break
    // ends when their day does (not when UTC's does).
    let today = local_day(now_ms);
    let on_break = vault.break_until()?.is_some_and(|until| until >= today);
    let muted = vault.muted(group)?;
    let session = vault.session(group)?;
    let reach_outs = reach_out_cards(session.reach_outs(), &status, |m| net.covered(*group, m));
    let members = session.members();
    let me = session.me().to_hex();
    let facilitator = members.iter().any(|m| m.me && m.role == "facilitator");
    let open_invitations = if facilitator {
        open_invitations(vault, group, now_ms)?
    } else {
        Vec::new()
    };
    let session = vault.session(group)?;
    let stories = session.story_page(&StoryQuery {
        limit: context.stories,
        rest_warned: on_break,
        muted: &muted,
    });
    Ok(GroupPage {
        id: *group,
        name: session.name(),
        stories,
        goals: session.goals_keeping(now_ms, RECENT_CHECK_INS),
        agreement: session.agreement(),
        meetings: session.meetings(),
        members,
        reach_outs,
        status,
        me,
        facilitator,
        on_break,
        muted: muted.iter().map(MemberId::to_hex).collect(),
        today,
        undone: session.undone_changes(),
        open_invitations,
    })
}

/// The invitations to `group` this device made that can still be used, soonest to expire
/// first.
fn open_invitations(vault: &Vault, group: &GroupId, now_ms: i64) -> Result<Vec<OpenInvitation>, VaultError> {
    use chrono::TimeZone as _;
    Ok(vault
        .invitations(group)?
        .into_iter()
        .filter(|r| r.is_open(now_ms))
        .map(|r| OpenInvitation {
            id: r.short_id(),
            until: chrono::Local
                .timestamp_millis_opt(r.expires_at_ms)
                .single()
                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                .unwrap_or_default(),
        })
        .collect())
}

/// The local calendar day (`YYYY-MM-DD`) at `now_ms` on this computer.
pub(crate) fn local_day(now_ms: i64) -> String {
    use chrono::TimeZone as _;
    chrono::Local.timestamp_millis_opt(now_ms).single().map_or_else(
        || alongside_core::model::date_of(now_ms),
        |t| t.format("%Y-%m-%d").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alongside_core::crypto::PassphraseKdf;

    const NOW_MS: i64 = 1_795_953_600_000; // 2026-11-29

    fn vault_with_group(dir: &std::path::Path) -> (Vault, GroupId) {
        let mut vault = Vault::init(dir, "test", b"river stone lantern", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", NOW_MS).unwrap();
        (vault, group)
    }

    fn context() -> PageContext {
        PageContext {
            net: NetState::default(),
            lan: false,
            stories: 30,
        }
    }

    fn check_in(day: &str, kind: CheckInKind) -> NewCheckIn {
        NewCheckIn {
            date: day.into(),
            kind,
            mood: None,
            craving: None,
            halt: Vec::new(),
            note: String::new(),
        }
    }

    #[test]
    fn a_page_carries_only_the_last_few_check_ins_but_the_whole_streak() {
        let dir = tempfile::tempdir().unwrap();
        let (mut vault, group) = vault_with_group(dir.path());
        let goal = NewGoal {
            title: "Walk every morning".into(),
            target: None,
            share_with: Vec::new(),
        };
        let event = handle(&mut vault, HomeCommand::AddGoal { group, goal }, NOW_MS, &context());
        let Event::HomeSaved { page, .. } = event else {
            panic!("the goal was not saved: {event:?}");
        };
        let goal_id = page.goals[0].id.clone();
        for day in ["2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28"] {
            let checkin = check_in(day, CheckInKind::Progress);
            let goal = goal_id.clone();
            let _ = handle(
                &mut vault,
                HomeCommand::CheckIn { group, goal, checkin },
                NOW_MS,
                &context(),
            );
        }
        let checkin = check_in("2026-11-29", CheckInKind::Setback);
        let event = handle(
            &mut vault,
            HomeCommand::CheckIn {
                group,
                goal: goal_id.clone(),
                checkin,
            },
            NOW_MS,
            &context(),
        );
        let Event::HomeSaved { page, saved } = event else {
            panic!("the check-in was not saved: {event:?}");
        };
        assert_eq!(
            saved,
            HomeSaved::CheckIn {
                goal: goal_id,
                setback: true
            }
        );
        let goal = &page.goals[0];
        assert_eq!(goal.checkins.len(), RECENT_CHECK_INS);
        assert_eq!(goal.checkins.last().unwrap().kind, "setback");
        assert_eq!(goal.streak.total_days, 5, "the streak counts every check-in");
        assert_eq!(goal.streak.longest_run, 5);
        assert!(page.facilitator, "the group's creator is its facilitator");
        assert_eq!(page.today, "2026-11-29");
    }

    #[test]
    fn agreements_need_agreeing_again_after_each_change() {
        let dir = tempfile::tempdir().unwrap();
        let (mut vault, group) = vault_with_group(dir.path());
        let set = |text: &str| HomeCommand::SetAgreements {
            group,
            text: text.into(),
        };
        let Event::HomeSaved { page, .. } = handle(&mut vault, set("We keep what is said here."), NOW_MS, &context())
        else {
            panic!("the agreements were not saved");
        };
        assert!(!page.agreed(), "setting agreements does not agree to them");
        let Event::HomeSaved { page, .. } = handle(&mut vault, HomeCommand::Agree(group), NOW_MS, &context()) else {
            panic!("agreeing was not saved");
        };
        assert!(page.agreed());
        let Event::HomeSaved { page, .. } = handle(&mut vault, set("We listen without fixing."), NOW_MS, &context())
        else {
            panic!("the change was not saved");
        };
        assert!(!page.agreed(), "a new version asks everyone again");
    }
}
