//! The content operations of a group session: what a member can add, and what they can see.
//!
//! Each operation is one signed change in the document DESIGN.md assigns it to: stories,
//! goals, reach-outs and reactions in the member's own document (or, when shared with chosen
//! members only, in a new audience document); replies and responses to an item in an
//! audience document in that same document, so answering never leaks it.

use crate::group::{GroupError, GroupSession};
use crate::ids::{DocId, DocKind, ItemId, MemberId};
use crate::model::edits::{self, NewCheckIn, NewMeeting, NewStory};
use crate::model::views::{
    self, AgreementView, GoalView, MeetingView, MemberView, ReachOutView, Reader, Source, StoryPage, StoryQuery,
    StoryView,
};
use crate::model::{keys, text_merge};

/// Finds the one candidate whose id starts with `prefix`.
pub fn resolve_prefix<'a, T>(prefix: &str, candidates: impl IntoIterator<Item = (String, T)>) -> Result<T, GroupError>
where
    T: 'a,
{
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.is_empty() {
        return Err(GroupError::NoMatch(prefix));
    }
    let mut found = None;
    for (id, value) in candidates {
        if id == prefix {
            return Ok(value);
        }
        if id.starts_with(&prefix) {
            if found.is_some() {
                return Err(GroupError::Ambiguous(prefix));
            }
            found = Some(value);
        }
    }
    found.ok_or(GroupError::NoMatch(prefix))
}

impl GroupSession {
    /// Display name of `member` (their own choice, from their member document).
    pub fn display_name(&self, member: &MemberId) -> String {
        self.newest_member_value(member, views::display_name)
            .unwrap_or_else(|| unnamed(member))
    }

    /// The group's name.
    pub fn name(&self) -> String {
        self.docs
            .get(&DocId::group_doc(&self.group))
            .and_then(views::group_name)
            .unwrap_or_else(|| "(unnamed group)".into())
    }

    fn with_reader<T>(&self, f: impl FnOnce(&Reader<'_>) -> T) -> T {
        // Every name once, the newest generation's winning.
        let known: std::collections::BTreeMap<MemberId, String> = self
            .owned
            .keys()
            .filter_map(|m| Some((*m, self.newest_member_value(m, views::display_name)?)))
            .collect();
        let names = |m: &MemberId| known.get(m).cloned().unwrap_or_else(|| unnamed(m));
        let mut sources = Vec::new();
        for (id, replica) in &self.docs {
            match id.kind {
                DocKind::Member => {
                    if let Some(owner) = self.doc_owner(id) {
                        sources.push(Source {
                            replica,
                            owner,
                            audience: None,
                        });
                    }
                }
                DocKind::Audience => {
                    if let Some(a) = self.audiences.get(id) {
                        sources.push(Source {
                            replica,
                            owner: a.grant.owner,
                            audience: Some(a.grant.members.as_slice()),
                        });
                    }
                }
                DocKind::Group | DocKind::Meeting => {}
            }
        }
        let reader = Reader::new(sources, &names);
        f(&reader)
    }

    /// Every story this member can read, newest first.
    pub fn stories(&self) -> Vec<StoryView> {
        self.with_reader(|r| r.stories())
    }

    /// The newest stories `query` lets through, with how many it kept out (see
    /// [`Reader::story_page`]).
    pub fn story_page(&self, query: &StoryQuery<'_>) -> StoryPage {
        self.with_reader(|r| r.story_page(query))
    }

    /// Who shared each story and when, newest first, without reading the stories.
    pub fn story_times(&self) -> Vec<(MemberId, i64)> {
        self.with_reader(|r| r.story_times())
    }

    /// Every goal this member can read, with streaks as of `now_ms`.
    pub fn goals(&self, now_ms: i64) -> Vec<GoalView> {
        self.goals_keeping(now_ms, usize::MAX)
    }

    /// Every goal with its whole streak as of `now_ms`, carrying only the latest `recent`
    /// check-ins of each.
    pub fn goals_keeping(&self, now_ms: i64, recent: usize) -> Vec<GoalView> {
        let today = now_ms.div_euclid(86_400_000);
        self.with_reader(|r| r.goals_keeping(today, recent))
    }

    /// Every reach-out this member can read, newest first.
    pub fn reach_outs(&self) -> Vec<ReachOutView> {
        self.with_reader(|r| r.reach_outs())
    }

    /// The group's agreement, if one was set.
    pub fn agreement(&self) -> Option<AgreementView> {
        let doc = self.docs.get(&DocId::group_doc(&self.group))?;
        self.with_reader(|r| views::agreement(doc, r))
    }

    /// Every meeting, soonest first. (Not a meeting document left empty when the changes
    /// of someone who departed were dropped: nothing of it stands.)
    pub fn meetings(&self) -> Vec<MeetingView> {
        let mut out: Vec<MeetingView> = self.with_reader(|r| {
            self.docs
                .iter()
                .filter(|(id, replica)| id.kind == DocKind::Meeting && !replica.index().is_empty())
                .map(|(id, replica)| views::meeting(replica, crate::ids::hex(&id.bytes[..16]), r))
                .collect()
        });
        out.sort_by(|a, b| (&a.at, &a.id).cmp(&(&b.at, &b.id)));
        out
    }

    /// Current members with names and roles, longest-standing first.
    pub fn members(&self) -> Vec<MemberView> {
        let state = self.log.state();
        let epoch = state.epoch.map(|e| e.to_hex()).unwrap_or_default();
        let mut list: Vec<_> = state.members.values().collect();
        list.sort_by_key(|m| m.seniority);
        list.into_iter()
            .map(|m| MemberView {
                id: m.id.to_hex(),
                name: self.display_name(&m.id),
                role: m.role.as_str().into(),
                joined_at_ms: m.joined_at_ms,
                epoch: epoch.clone(),
                me: m.id == self.me(),
            })
            .collect()
    }

    /// Finds a current member by id prefix or exact display name.
    pub fn find_member(&self, query: &str) -> Result<MemberId, GroupError> {
        let state = self.log.state();
        let by_name: Vec<MemberId> = state
            .members
            .keys()
            .filter(|m| self.display_name(m).eq_ignore_ascii_case(query.trim()))
            .copied()
            .collect();
        match by_name.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            _ => return Err(GroupError::Ambiguous(query.into())),
        }
        resolve_prefix(query, state.members.keys().map(|m| (m.to_hex(), *m)))
    }

    /// Shares a story in this member's document; returns its id.
    pub fn add_story(&mut self, story: &NewStory, now_ms: i64) -> Result<ItemId, GroupError> {
        story.validate()?;
        let id = self.new_item_id();
        self.edit_my_doc(|tx| edits::add_story(tx, id, story, now_ms))?;
        Ok(id)
    }

    /// The document holding item `id` of `collection`, and the item's full id.
    fn locate(&self, collection: &str, prefix: &str) -> Result<(DocId, ItemId), GroupError> {
        let mut candidates = Vec::new();
        for (doc_id, replica) in &self.docs {
            if !matches!(doc_id.kind, DocKind::Member | DocKind::Audience) {
                continue;
            }
            for (item, _) in crate::model::items(replica.doc(), collection) {
                candidates.push((item.to_hex(), (*doc_id, item)));
            }
        }
        resolve_prefix(prefix, candidates)
    }

    /// The document a reply to an item in `doc` goes to: the same audience document, or this
    /// member's own document.
    fn answer_doc(&self, doc: DocId) -> DocId {
        if doc.kind == DocKind::Audience {
            doc
        } else {
            self.my_doc()
        }
    }

    /// Reacts to a story with support; returns the reaction's id.
    pub fn react(&mut self, story: &str, kind: &str, now_ms: i64) -> Result<ItemId, GroupError> {
        let (doc, target) = self.locate(keys::STORIES, story)?;
        let id = self.new_item_id();
        let into = self.answer_doc(doc);
        self.edit_doc(into, |tx| {
            edits::add_targeted(tx, keys::REACTIONS, id, target, ("kind", kind), now_ms)
        })?;
        Ok(id)
    }

    /// Deletes one of this member's own stories from what the group sees. Automerge keeps
    /// every change in the document's history, so devices that already hold the story
    /// keep a copy of it there: the app says so before deleting.
    pub fn delete_story(&mut self, story: &str) -> Result<(), GroupError> {
        let (doc, target) = self.locate(keys::STORIES, story)?;
        let mine = doc.kind == DocKind::Member && self.places.get(&doc).and_then(|p| p.owner) == Some(self.me());
        if !mine {
            return Err(GroupError::NotAllowed("You can delete only your own stories.".into()));
        }
        self.edit_doc(doc, |tx| edits::delete_item(tx, keys::STORIES, target))
    }

    /// Replies to a story, unless its author asked for none; returns the reply's id.
    pub fn reply(&mut self, story: &str, text: &str, now_ms: i64) -> Result<ItemId, GroupError> {
        let (doc, target) = self.locate(keys::STORIES, story)?;
        if self
            .docs
            .get(&doc)
            .is_some_and(|r| views::story_refuses_replies(r, &target))
        {
            return Err(GroupError::NotAllowed(
                "The author asked for no replies to this story.".into(),
            ));
        }
        let id = self.new_item_id();
        let into = self.answer_doc(doc);
        self.edit_doc(into, |tx| {
            edits::add_targeted(tx, keys::REPLIES, id, target, ("text", text), now_ms)
        })?;
        Ok(id)
    }

    /// Adds a goal, for the whole group or (with `share_with`) only for chosen members.
    pub fn add_goal(
        &mut self,
        title: &str,
        target: Option<&str>,
        share_with: &[MemberId],
        now_ms: i64,
    ) -> Result<ItemId, GroupError> {
        let id = self.new_item_id();
        let doc = if share_with.is_empty() {
            self.my_doc()
        } else {
            self.new_audience(share_with, now_ms)?
        };
        self.edit_doc(doc, |tx| edits::add_goal(tx, id, title, target, now_ms))?;
        Ok(id)
    }

    /// Records a check-in on one of this member's goals; returns its id.
    pub fn check_in(&mut self, goal: &str, checkin: &NewCheckIn, now_ms: i64) -> Result<ItemId, GroupError> {
        checkin.validate()?;
        let (doc, goal_id) = self.locate(keys::GOALS, goal)?;
        let owner = self.doc_owner(&doc);
        if owner != Some(self.me()) {
            return Err(GroupError::NotAllowed(
                "You can only check in on your own goals.".into(),
            ));
        }
        let id = self.new_item_id();
        self.edit_doc(doc, |tx| edits::add_check_in(tx, goal_id, id, checkin, now_ms))?;
        Ok(id)
    }

    /// Reaches out for support to the group or (with `to`) chosen members; returns its id.
    pub fn reach_out(&mut self, message: &str, to: &[MemberId], now_ms: i64) -> Result<ItemId, GroupError> {
        let id = self.new_item_id();
        let doc = if to.is_empty() {
            self.my_doc()
        } else {
            self.new_audience(to, now_ms)?
        };
        self.edit_doc(doc, |tx| edits::add_reach_out(tx, id, message, now_ms))?;
        Ok(id)
    }

    /// Responds to a reach-out; returns the response's id.
    pub fn respond(&mut self, reach_out: &str, text: &str, now_ms: i64) -> Result<ItemId, GroupError> {
        let (doc, target) = self.locate(keys::REACH_OUTS, reach_out)?;
        let id = self.new_item_id();
        let into = self.answer_doc(doc);
        self.edit_doc(into, |tx| {
            edits::add_targeted(tx, keys::RESPONSES, id, target, ("text", text), now_ms)
        })?;
        Ok(id)
    }

    /// Sets the group's agreements (facilitators only); members are asked to acknowledge
    /// the new version.
    pub fn set_agreement(&mut self, text: &str, now_ms: i64) -> Result<(), GroupError> {
        let version = self.new_item_id();
        self.edit_group_doc(|tx| edits::set_agreement(tx, text, version, now_ms))
    }

    /// Acknowledges the current agreements.
    pub fn acknowledge_agreement(&mut self, now_ms: i64) -> Result<(), GroupError> {
        let version = self
            .agreement()
            .ok_or_else(|| GroupError::NotAllowed("This group has no agreements to acknowledge yet.".into()))?
            .version;
        self.edit_my_doc(|tx| edits::acknowledge(tx, &version, now_ms))
    }

    /// Chooses whether new members see history from before they joined.
    pub fn set_history_since_join(&mut self, since_join: bool) -> Result<(), GroupError> {
        self.edit_group_doc(|tx| edits::set_history(tx, since_join))
    }

    /// Schedules a meeting; returns its id.
    pub fn add_meeting(&mut self, meeting: &NewMeeting, now_ms: i64) -> Result<ItemId, GroupError> {
        meeting.validate()?;
        let id = self.new_item_id();
        let doc = DocId::meeting_doc(&id.0, self.later_generation().as_ref());
        let me = self.me();
        self.edit_doc(doc, |tx| edits::create_meeting(tx, meeting, &me, now_ms))?;
        Ok(id)
    }

    fn meeting_doc_by_prefix(&self, prefix: &str) -> Result<DocId, GroupError> {
        resolve_prefix(
            prefix,
            self.docs
                .keys()
                .filter(|d| d.kind == DocKind::Meeting)
                .map(|d| (crate::ids::hex(&d.bytes[..16]), *d)),
        )
    }

    /// Appends a paragraph to a meeting's shared notes.
    pub fn append_meeting_notes(&mut self, meeting: &str, text: &str) -> Result<(), GroupError> {
        let doc = self.meeting_doc_by_prefix(meeting)?;
        self.edit_doc(doc, |tx| edits::append_notes(tx, text))
    }

    /// Splices the shared notes: at character `pos`, deletes `delete` and inserts `insert`.
    pub fn splice_meeting_notes(
        &mut self,
        meeting: &str,
        pos: usize,
        delete: usize,
        insert: &str,
    ) -> Result<(), GroupError> {
        let doc = self.meeting_doc_by_prefix(meeting)?;
        self.edit_doc(doc, |tx| edits::splice_notes(tx, pos, delete, insert))
    }

    /// Applies several splices of the shared notes as one change (e.g. a burst of typing):
    /// each `(pos, delete, insert)` applies to the text as the previous one left it.
    pub fn edit_meeting_notes(&mut self, meeting: &str, splices: &[(usize, usize, &str)]) -> Result<(), GroupError> {
        let doc = self.meeting_doc_by_prefix(meeting)?;
        self.edit_doc(doc, |tx| {
            for (pos, delete, insert) in splices {
                edits::splice_notes(tx, *pos, *delete, insert)?;
            }
            Ok(())
        })
    }

    /// Brings a meeting's shared notes from `base` (the text an editor last showed) to
    /// `new` (what the person made of it). If others' typing arrived meanwhile, the edit
    /// moves past it ([`text_merge::rebase`]), so nobody's words are lost.
    pub fn edit_meeting_notes_from(&mut self, meeting: &str, base: &str, new: &str) -> Result<(), GroupError> {
        let Some(local) = text_merge::splice_between(base, new) else {
            return Ok(());
        };
        let doc = self.meeting_doc_by_prefix(meeting)?;
        let current = self.docs.get(&doc).map(views::meeting_notes).unwrap_or_default();
        let splices = text_merge::rebase(base, &current, &local);
        self.edit_doc(doc, |tx| {
            for s in &splices {
                edits::splice_notes(tx, s.pos, s.delete, &s.insert)?;
            }
            Ok(())
        })
    }

    /// Marks a member present or absent at a meeting.
    pub fn set_attendance(&mut self, meeting: &str, member: MemberId, present: bool) -> Result<(), GroupError> {
        let doc = self.meeting_doc_by_prefix(meeting)?;
        self.edit_doc(doc, |tx| edits::set_attendance(tx, &member, present))
    }

    /// Adds an action item to a meeting; returns its id.
    pub fn add_action_item(
        &mut self,
        meeting: &str,
        text: &str,
        owner: Option<MemberId>,
    ) -> Result<ItemId, GroupError> {
        let doc = self.meeting_doc_by_prefix(meeting)?;
        let id = self.new_item_id();
        self.edit_doc(doc, |tx| edits::add_action(tx, id, text, owner.as_ref()))?;
        Ok(id)
    }

    /// Marks an action item done (or not).
    pub fn set_action_done(&mut self, meeting: &str, action: &str, done: bool) -> Result<(), GroupError> {
        let doc = self.meeting_doc_by_prefix(meeting)?;
        let replica = self.docs.get(&doc).ok_or_else(|| GroupError::NoMatch(meeting.into()))?;
        let ids = crate::model::items(replica.doc(), keys::ACTIONS);
        let id = resolve_prefix(action, ids.into_iter().map(|(id, _)| (id.to_hex(), id)))?;
        self.edit_doc(doc, |tx| edits::set_action_done(tx, id, done))
    }

    /// Whether new members see history from before they joined.
    pub fn history_since_join(&self) -> bool {
        self.docs
            .get(&DocId::group_doc(&self.group))
            .and_then(views::history_since_join)
            .unwrap_or(false)
    }

    /// Each readable document as a standard Automerge file (for export), with a label.
    pub fn export_documents(&self) -> Vec<(DocId, String, Vec<u8>)> {
        self.docs
            .iter()
            .filter(|(id, _)| id.kind != DocKind::Audience || self.audiences.get(id).is_some_and(|a| a.key.is_some()))
            .map(|(id, r)| {
                let label = match id.kind {
                    DocKind::Group => "group".to_string(),
                    DocKind::Member => match self.place_of(id) {
                        Some(crate::generation::Place { owner: Some(o), rank }) if rank > 0 => {
                            format!("member-{}-gen{rank}", &o.to_hex()[..16])
                        }
                        _ => format!("member-{}", crate::ids::hex(&id.bytes[..8])),
                    },
                    DocKind::Meeting => format!("meeting-{}", crate::ids::hex(&id.bytes[..8])),
                    DocKind::Audience => format!("audience-{}", crate::ids::hex(&id.bytes[..8])),
                };
                (*id, label, r.save())
            })
            .collect()
    }
}

fn unnamed(member: &MemberId) -> String {
    format!("member {}", &member.to_hex()[..8])
}
