//! Plain view structs (what lists, the GUI and exports show) and how they are read.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ObjId, ROOT, ReadDoc};
use serde::{Deserialize, Serialize};

use super::{creator, get_bool, get_i64, get_obj, get_str, get_str_list, has_items, items, items_of, keys};
use crate::ids::{ItemId, MemberId};
use crate::replica::Replica;

/// Who a person is, as views show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Member id (hex).
    pub id: String,
    /// Display name in this group.
    pub name: String,
}

/// A reaction of support.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionView {
    /// Item id.
    pub id: String,
    /// Who reacted.
    pub author: Person,
    /// The reaction, e.g. "support".
    pub kind: String,
    /// When (Unix ms, as the author's device said).
    pub created_at_ms: i64,
}

/// A reply to a story or a response to a reach-out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyView {
    /// Item id.
    pub id: String,
    /// Who wrote it.
    pub author: Person,
    /// What they wrote.
    pub text: String,
    /// When (Unix ms).
    pub created_at_ms: i64,
}

/// A recovery story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoryView {
    /// Item id.
    pub id: String,
    /// Who shared it.
    pub author: Person,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// Content warnings; a story with any stays collapsed until opened.
    pub warnings: Vec<String>,
    /// The author asked for no replies.
    pub no_replies: bool,
    /// When (Unix ms).
    pub created_at_ms: i64,
    /// Reactions of support.
    pub reactions: Vec<ReactionView>,
    /// Replies (empty when the author chose none).
    pub replies: Vec<ReplyView>,
}

/// One daily check-in on a goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInView {
    /// Item id.
    pub id: String,
    /// The day it is for, `YYYY-MM-DD`.
    pub date: String,
    /// `"progress"` or `"setback"`.
    pub kind: String,
    /// Mood 1–5.
    pub mood: Option<i64>,
    /// Craving 0–10.
    pub craving: Option<i64>,
    /// HALT tags: hungry, angry, lonely, tired.
    pub halt: Vec<String>,
    /// A note.
    pub note: String,
    /// When it was written (Unix ms).
    pub created_at_ms: i64,
}

/// A streak that treats a setback with compassion: days still count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StreakView {
    /// Days with a progress check-in, all told. A setback never takes these away.
    pub total_days: i64,
    /// Consecutive progress days up to the latest check-in.
    pub current_run: i64,
    /// The longest run of consecutive progress days.
    pub longest_run: i64,
    /// Days since the last setback, if there was one.
    pub days_since_setback: Option<i64>,
    /// How many setbacks were logged.
    pub setbacks: i64,
}

/// An accountability goal with its check-ins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalView {
    /// Item id.
    pub id: String,
    /// Whose goal.
    pub author: Person,
    /// Title.
    pub title: String,
    /// Optional target, e.g. "90 days".
    pub target: Option<String>,
    /// Who may see it: `None` for the whole group, else these members.
    pub audience: Option<Vec<Person>>,
    /// When (Unix ms).
    pub created_at_ms: i64,
    /// Check-ins, oldest first.
    pub checkins: Vec<CheckInView>,
    /// The streak computed from them.
    pub streak: StreakView,
}

/// A request for support.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachOutView {
    /// Item id.
    pub id: String,
    /// Who reached out.
    pub author: Person,
    /// The message.
    pub message: String,
    /// Who it went to: `None` for the whole group.
    pub audience: Option<Vec<Person>>,
    /// Whether someone has responded.
    pub answered: bool,
    /// When (Unix ms).
    pub created_at_ms: i64,
    /// Responses.
    pub responses: Vec<ReplyView>,
}

/// Whether someone attended a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttendanceView {
    /// Who.
    pub member: Person,
    /// Present or not.
    pub present: bool,
}

/// An action item from a meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionView {
    /// Item id.
    pub id: String,
    /// What is to be done.
    pub text: String,
    /// Who took it on, if anyone.
    pub owner: Option<Person>,
    /// Done or not.
    pub done: bool,
    /// Who wrote it down.
    pub author: Person,
}

/// A meeting with its shared notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingView {
    /// Meeting id.
    pub id: String,
    /// Title.
    pub title: String,
    /// When, as RFC 3339.
    pub at: String,
    /// Where, or a link.
    #[serde(rename = "where")]
    pub place: Option<String>,
    /// Who facilitates.
    pub facilitator: Option<Person>,
    /// Agenda.
    pub agenda: String,
    /// Shared notes.
    pub notes: String,
    /// Attendance, by member id.
    pub attendance: Vec<AttendanceView>,
    /// Action items.
    pub actions: Vec<ActionView>,
    /// Who scheduled it.
    pub created_by: Person,
}

/// The group's agreements (norms) and who acknowledged the current version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementView {
    /// The text.
    pub text: String,
    /// Version id (changes whenever the text is set).
    pub version: String,
    /// When it was last set (Unix ms).
    pub updated_at_ms: i64,
    /// Members who acknowledged this version.
    pub acknowledged_by: Vec<Person>,
}

/// A member as `member list` shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    /// Member id (hex).
    pub id: String,
    /// Display name.
    pub name: String,
    /// `facilitator` or `member`.
    pub role: String,
    /// When they joined (Unix ms, as the adding device said).
    pub joined_at_ms: i64,
    /// The group's current epoch id (hex).
    pub epoch: String,
    /// Whether this is the member using this device.
    pub me: bool,
}

/// A document a view reads from: member documents (owner = the member) and audience
/// documents (owner = who made it, audience = who may read it).
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The replica.
    pub replica: &'a Replica,
    /// Whose items it holds (authorship of stories, goals and reach-outs).
    pub owner: MemberId,
    /// `None` for the whole group.
    pub audience: Option<&'a [MemberId]>,
}

/// What a page of stories asks for.
#[derive(Debug, Clone, Copy)]
pub struct StoryQuery<'q> {
    /// The most stories to return.
    pub limit: usize,
    /// The reader is taking a break: stories with content warnings rest.
    pub rest_warned: bool,
    /// Members this device muted: their stories are not shown.
    pub muted: &'q BTreeSet<MemberId>,
}

/// The newest stories a reader sees, and how many were kept out of the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoryPage {
    /// The stories shown, newest first.
    pub stories: Vec<StoryView>,
    /// Every story in the group that is not deleted.
    pub total: usize,
    /// Stories that would be shown but are older than the page.
    pub older: usize,
    /// Stories with content warnings resting during a break.
    pub resting: usize,
    /// Stories by muted members.
    pub muted: usize,
}

/// A story found while listing, read only as far as sorting needs.
struct StoryRef<'a> {
    source: Source<'a>,
    id: ItemId,
    obj: ObjId,
    at: i64,
}

/// Reads views across documents, resolving display names.
pub struct Reader<'a> {
    sources: Vec<Source<'a>>,
    names: &'a dyn Fn(&MemberId) -> String,
}

impl<'a> Reader<'a> {
    /// A reader over `sources`, naming people with `names`.
    pub fn new(sources: Vec<Source<'a>>, names: &'a dyn Fn(&MemberId) -> String) -> Self {
        Reader { sources, names }
    }

    /// A person by member id.
    pub fn person(&self, id: &MemberId) -> Person {
        Person {
            id: id.to_hex(),
            name: (self.names)(id),
        }
    }

    fn audience(&self, source: &Source<'_>) -> Option<Vec<Person>> {
        source.audience.map(|a| a.iter().map(|m| self.person(m)).collect())
    }

    /// Items in `collection` owned by each source's owner (creator must be the owner).
    fn owned(&self, collection: &str) -> Vec<(Source<'a>, ItemId, ObjId)> {
        let mut out = Vec::new();
        for s in &self.sources {
            for (id, obj) in items(s.replica.doc(), collection) {
                if creator(&obj) == Some(s.owner) {
                    out.push((*s, id, obj));
                }
            }
        }
        out
    }

    /// Replies-like items (`target`, `text`) by anyone allowed to write their document.
    fn replies_by_target(&self, collection: &str, wanted: impl Fn(&str) -> bool) -> BTreeMap<String, Vec<ReplyView>> {
        let mut out: BTreeMap<String, Vec<ReplyView>> = BTreeMap::new();
        for s in &self.sources {
            let doc = s.replica.doc();
            for (id, obj) in items(doc, collection) {
                let (Some(author), Some(target)) = (creator(&obj), get_str(doc, &obj, "target")) else {
                    continue;
                };
                if !wanted(&target) {
                    continue;
                }
                out.entry(target).or_default().push(ReplyView {
                    id: id.to_hex(),
                    author: self.person(&author),
                    text: get_str(doc, &obj, "text").unwrap_or_default(),
                    created_at_ms: get_i64(doc, &obj, "at").unwrap_or(0),
                });
            }
        }
        for list in out.values_mut() {
            list.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        }
        out
    }

    /// Every story not deleted, newest first, read only as far as sorting needs.
    fn story_refs(&self) -> Vec<StoryRef<'a>> {
        let mut out: Vec<StoryRef<'a>> = self
            .owned(keys::STORIES)
            .into_iter()
            .filter(|(s, _, obj)| !get_bool(s.replica.doc(), obj, "deleted").unwrap_or(false))
            .map(|(source, id, obj)| StoryRef {
                at: get_i64(source.replica.doc(), &obj, "at").unwrap_or(0),
                source,
                id,
                obj,
            })
            .collect();
        out.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
        out
    }

    /// Reactions of support by target item, keeping only targets `wanted` lets through.
    fn reactions_by_target(&self, wanted: impl Fn(&str) -> bool) -> BTreeMap<String, Vec<ReactionView>> {
        let mut reactions: BTreeMap<String, Vec<ReactionView>> = BTreeMap::new();
        for s in &self.sources {
            let doc = s.replica.doc();
            for (id, obj) in items(doc, keys::REACTIONS) {
                let (Some(author), Some(target)) = (creator(&obj), get_str(doc, &obj, "target")) else {
                    continue;
                };
                if !wanted(&target) {
                    continue;
                }
                reactions.entry(target).or_default().push(ReactionView {
                    id: id.to_hex(),
                    author: self.person(&author),
                    kind: get_str(doc, &obj, "kind").unwrap_or_else(|| "support".into()),
                    created_at_ms: get_i64(doc, &obj, "at").unwrap_or(0),
                });
            }
        }
        reactions
    }

    /// The full views of `refs`, in their order, with their reactions and replies.
    fn story_views(&self, refs: &[StoryRef<'_>], every: bool) -> Vec<StoryView> {
        // Only a page needs to know its stories' ids; the whole list takes every answer.
        let targets: Option<BTreeSet<String>> = (!every).then(|| refs.iter().map(|r| r.id.to_hex()).collect());
        let wanted = |t: &str| targets.as_ref().is_none_or(|ids| ids.contains(t));
        let mut reactions = self.reactions_by_target(wanted);
        let mut replies = self.replies_by_target(keys::REPLIES, wanted);
        refs.iter()
            .map(|r| {
                let doc = r.source.replica.doc();
                let hex = r.id.to_hex();
                let no_replies = get_bool(doc, &r.obj, "no_replies").unwrap_or(false);
                StoryView {
                    author: self.person(&r.source.owner),
                    title: get_str(doc, &r.obj, "title").unwrap_or_default(),
                    body: get_str(doc, &r.obj, "body").unwrap_or_default(),
                    warnings: get_str_list(doc, &r.obj, "warnings"),
                    no_replies,
                    created_at_ms: r.at,
                    reactions: reactions.remove(&hex).unwrap_or_default(),
                    replies: if no_replies {
                        Vec::new()
                    } else {
                        replies.remove(&hex).unwrap_or_default()
                    },
                    id: hex,
                }
            })
            .collect()
    }

    /// Every story, newest first.
    pub fn stories(&self) -> Vec<StoryView> {
        self.story_views(&self.story_refs(), true)
    }

    /// The newest stories `query` lets through, at most `query.limit`, with how many it
    /// kept out and why. Only the stories returned are read in full, so the cost of a page
    /// grows with the page, not with the group's history (beyond one sort of every story's
    /// time).
    pub fn story_page(&self, query: &StoryQuery<'_>) -> StoryPage {
        let refs = self.story_refs();
        let total = refs.len();
        let mut resting = 0;
        let mut muted = 0;
        let mut shown = Vec::new();
        for r in refs {
            let warned = query.rest_warned && has_items(r.source.replica.doc(), &r.obj, "warnings");
            let quiet = query.muted.contains(&r.source.owner);
            resting += usize::from(warned);
            muted += usize::from(quiet);
            if !warned && !quiet {
                shown.push(r);
            }
        }
        let older = shown.len().saturating_sub(query.limit);
        shown.truncate(query.limit);
        StoryPage {
            stories: self.story_views(&shown, false),
            total,
            older,
            resting,
            muted,
        }
    }

    /// When each story was shared and by whom, newest first (for counting what is new).
    pub fn story_times(&self) -> Vec<(MemberId, i64)> {
        self.story_refs().into_iter().map(|r| (r.source.owner, r.at)).collect()
    }

    /// Every goal this device can read, with check-ins and streaks as of `today_days`
    /// (days since 1970-01-01).
    pub fn goals(&self, today_days: i64) -> Vec<GoalView> {
        self.goals_keeping(today_days, usize::MAX)
    }

    /// Every goal, its streak counted over all its check-ins, carrying only the latest
    /// `recent` check-ins in full (the rest are read only as far as the streak needs).
    pub fn goals_keeping(&self, today_days: i64, recent: usize) -> Vec<GoalView> {
        let mut out: Vec<GoalView> = self
            .owned(keys::GOALS)
            .into_iter()
            .map(|(s, id, obj)| {
                let doc = s.replica.doc();
                let mut days: Vec<(String, i64, ItemId, bool, ObjId)> = get_obj(doc, &obj, keys::CHECKINS)
                    .map(|m| items_of(doc, &m))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(_, c)| creator(c) == Some(s.owner))
                    .map(|(cid, c)| {
                        let date = get_str(doc, &c, "date").unwrap_or_default();
                        let at = get_i64(doc, &c, "at").unwrap_or(0);
                        let setback = get_bool(doc, &c, "setback").unwrap_or(false);
                        (date, at, cid, setback, c)
                    })
                    .collect();
                days.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
                let streak = streak_of(
                    days.iter().map(|(date, _, _, setback, _)| (date.as_str(), *setback)),
                    today_days,
                );
                let older = days.len().saturating_sub(recent);
                let checkins = days
                    .drain(older..)
                    .map(|(date, at, cid, setback, c)| CheckInView {
                        id: cid.to_hex(),
                        date,
                        kind: if setback { "setback" } else { "progress" }.into(),
                        mood: get_i64(doc, &c, "mood"),
                        craving: get_i64(doc, &c, "craving"),
                        halt: get_str_list(doc, &c, "halt"),
                        note: get_str(doc, &c, "note").unwrap_or_default(),
                        created_at_ms: at,
                    })
                    .collect();
                GoalView {
                    id: id.to_hex(),
                    author: self.person(&s.owner),
                    title: get_str(doc, &obj, "title").unwrap_or_default(),
                    target: get_str(doc, &obj, "target"),
                    audience: self.audience(&s),
                    created_at_ms: get_i64(doc, &obj, "at").unwrap_or(0),
                    streak,
                    checkins,
                }
            })
            .collect();
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        out
    }

    /// Every reach-out this device can read, newest first.
    pub fn reach_outs(&self) -> Vec<ReachOutView> {
        let mut responses = self.replies_by_target(keys::RESPONSES, |_| true);
        let mut out: Vec<ReachOutView> = self
            .owned(keys::REACH_OUTS)
            .into_iter()
            .map(|(s, id, obj)| {
                let doc = s.replica.doc();
                let hex = id.to_hex();
                let responses = responses.remove(&hex).unwrap_or_default();
                ReachOutView {
                    author: self.person(&s.owner),
                    message: get_str(doc, &obj, "message").unwrap_or_default(),
                    audience: self.audience(&s),
                    answered: !responses.is_empty(),
                    created_at_ms: get_i64(doc, &obj, "at").unwrap_or(0),
                    responses,
                    id: hex,
                }
            })
            .collect();
        out.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        out
    }

    /// The agreement version ids each member acknowledged.
    pub fn acknowledgements(&self) -> BTreeMap<MemberId, BTreeSet<String>> {
        let mut out: BTreeMap<MemberId, BTreeSet<String>> = BTreeMap::new();
        for s in self.sources.iter().filter(|s| s.audience.is_none()) {
            let doc = s.replica.doc();
            if let Some(acks) = get_obj(doc, &ROOT, keys::ACKS) {
                out.entry(s.owner).or_default().extend(doc.keys(&acks));
            }
        }
        out
    }
}

/// Whether story `id` in `replica` asked for no replies (read without building its view).
pub fn story_refuses_replies(replica: &Replica, id: &ItemId) -> bool {
    let doc = replica.doc();
    get_obj(doc, &ROOT, keys::STORIES)
        .and_then(|stories| get_obj(doc, &stories, &id.to_hex()))
        .and_then(|story| get_bool(doc, &story, "no_replies"))
        .unwrap_or(false)
}

/// The display name a member document declares, if any.
pub fn display_name(replica: &Replica) -> Option<String> {
    get_str(replica.doc(), &ROOT, keys::NAME)
}

/// The transport key a member document announces (unverified: check the binding).
pub fn transport(replica: &Replica) -> Option<crate::group::TransportBinding> {
    let doc = replica.doc();
    let obj = get_obj(doc, &ROOT, "transport")?;
    Some(crate::group::TransportBinding {
        key: crate::ids::parse_hex::<32>(&get_str(doc, &obj, "key")?)?,
        signature: crate::ids::parse_hex::<64>(&get_str(doc, &obj, "sig")?)?,
        owner_signature: crate::ids::parse_hex::<64>(&get_str(doc, &obj, "owner_sig")?)?,
    })
}

/// A meeting document's shared notes as they are now.
pub fn meeting_notes(replica: &Replica) -> String {
    get_str(replica.doc(), &ROOT, keys::NOTES).unwrap_or_default()
}
/// The group's name from the group document.
pub fn group_name(replica: &Replica) -> Option<String> {
    get_str(replica.doc(), &ROOT, keys::NAME)
}

/// Whether the group keeps history from new members, if the group document says.
pub fn history_since_join(replica: &Replica) -> Option<bool> {
    let doc = replica.doc();
    get_obj(doc, &ROOT, keys::SETTINGS)
        .and_then(|s| get_str(doc, &s, "history"))
        .map(|h| h == "since-join")
}

/// Whether the member document `replica` acknowledges agreement `version`.
pub fn acknowledged(replica: &Replica, version: &str) -> bool {
    let doc = replica.doc();
    get_obj(doc, &ROOT, keys::ACKS).is_some_and(|acks| get_i64(doc, &acks, version).is_some())
}

/// The agreement in the group document, with acknowledgements resolved by `reader`.
pub fn agreement(group_doc: &Replica, reader: &Reader<'_>) -> Option<AgreementView> {
    let doc = group_doc.doc();
    let obj = get_obj(doc, &ROOT, keys::AGREEMENT)?;
    let version = get_str(doc, &obj, "version")?;
    let acks = reader.acknowledgements();
    let acknowledged_by = acks
        .iter()
        .filter(|(_, versions)| versions.contains(&version))
        .map(|(m, _)| reader.person(m))
        .collect();
    Some(AgreementView {
        text: get_str(doc, &obj, "text").unwrap_or_default(),
        version,
        updated_at_ms: get_i64(doc, &obj, "at").unwrap_or(0),
        acknowledged_by,
    })
}

/// One meeting document as a view.
pub fn meeting(replica: &Replica, id: String, reader: &Reader<'_>) -> MeetingView {
    let doc = replica.doc();
    let member = |hex: &str| MemberId::from_hex(hex).map(|m| reader.person(&m));
    let attendance = get_obj(doc, &ROOT, keys::ATTENDANCE)
        .map(|a| {
            doc.keys(&a)
                .filter_map(|k| {
                    Some(AttendanceView {
                        member: member(&k)?,
                        present: get_bool(doc, &a, &k).unwrap_or(false),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut actions: Vec<ActionView> = items(doc, keys::ACTIONS)
        .into_iter()
        .filter_map(|(aid, obj)| {
            Some(ActionView {
                id: aid.to_hex(),
                text: get_str(doc, &obj, "text").unwrap_or_default(),
                owner: get_str(doc, &obj, "owner").and_then(|o| member(&o)),
                done: get_bool(doc, &obj, "done").unwrap_or(false),
                author: reader.person(&creator(&obj)?),
            })
        })
        .collect();
    actions.sort_by(|a, b| a.id.cmp(&b.id));
    let created_by = get_str(doc, &ROOT, "created_by")
        .and_then(|c| member(&c))
        .unwrap_or_else(|| Person {
            id: String::new(),
            name: "someone".into(),
        });
    MeetingView {
        id,
        title: get_str(doc, &ROOT, "title").unwrap_or_default(),
        at: get_str(doc, &ROOT, "at").unwrap_or_default(),
        place: get_str(doc, &ROOT, "where"),
        facilitator: get_str(doc, &ROOT, "facilitator").and_then(|f| member(&f)),
        agenda: get_str(doc, &ROOT, keys::AGENDA).unwrap_or_default(),
        notes: get_str(doc, &ROOT, keys::NOTES).unwrap_or_default(),
        attendance,
        actions,
        created_by,
    }
}

/// Computes the compassionate streak from check-ins sorted by date.
pub fn streak(checkins: &[CheckInView], today_days: i64) -> StreakView {
    streak_of(
        checkins.iter().map(|c| (c.date.as_str(), c.kind == "setback")),
        today_days,
    )
}

/// The compassionate streak of check-ins given as (`YYYY-MM-DD`, was a setback).
fn streak_of<'d>(checkins: impl Iterator<Item = (&'d str, bool)>, today_days: i64) -> StreakView {
    let mut days: BTreeMap<i64, bool> = BTreeMap::new(); // day -> had a setback
    for (date, setback) in checkins {
        if let Some(d) = super::days_of(date) {
            let e = days.entry(d).or_insert(false);
            *e |= setback;
        }
    }
    let mut s = StreakView::default();
    let mut run = 0;
    let mut prev: Option<i64> = None;
    let mut last_setback: Option<i64> = None;
    for (&day, &setback) in &days {
        if setback {
            s.setbacks += 1;
            last_setback = Some(day);
            run = 0;
        } else {
            s.total_days += 1;
            run = if prev == Some(day - 1) && run > 0 { run + 1 } else { 1 };
            s.longest_run = s.longest_run.max(run);
        }
        prev = Some(day);
    }
    s.current_run = run;
    s.days_since_setback = last_setback.map(|d| (today_days - d).max(0));
    s
}
