//! Edit inputs and the transactions that apply them. Inputs are validated here, once,
//! before anything is written.

use automerge::transaction::{Transactable, Transaction};
use automerge::{ObjType, ROOT, ReadDoc, Value};

use super::{EditError, ensure_map, get_obj, keys, new_item, put_str_list, put_text};
use crate::ids::{ItemId, MemberId};

/// Longest title accepted, in bytes.
pub const MAX_TITLE: usize = 500;
/// Longest body or note accepted, in bytes.
pub const MAX_BODY: usize = 200_000;

fn check_text(what: &str, value: &str, max: usize, required: bool) -> Result<(), EditError> {
    if required && value.trim().is_empty() {
        return Err(EditError::Invalid(format!("The {what} cannot be empty.")));
    }
    if value.len() > max {
        return Err(EditError::Invalid(format!(
            "The {what} is too long (at most {max} bytes)."
        )));
    }
    Ok(())
}

/// A new story.
#[derive(Debug, Clone, Default)]
pub struct NewStory {
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Content warnings.
    pub warnings: Vec<String>,
    /// Ask for no replies.
    pub no_replies: bool,
}

impl NewStory {
    /// Checks the input.
    pub fn validate(&self) -> Result<(), EditError> {
        check_text("title", &self.title, MAX_TITLE, true)?;
        check_text("story", &self.body, MAX_BODY, true)?;
        for w in &self.warnings {
            check_text("content warning", w, MAX_TITLE, true)?;
        }
        Ok(())
    }
}

/// Whether a check-in reports progress or a setback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckInKind {
    /// Things went as hoped.
    Progress,
    /// A setback: information, not a verdict.
    Setback,
}

/// A daily check-in.
#[derive(Debug, Clone)]
pub struct NewCheckIn {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// Progress or setback.
    pub kind: CheckInKind,
    /// Mood 1–5.
    pub mood: Option<i64>,
    /// Craving 0–10.
    pub craving: Option<i64>,
    /// HALT tags, any of hungry, angry, lonely, tired.
    pub halt: Vec<String>,
    /// A note.
    pub note: String,
}

/// The HALT tags a check-in may carry.
pub const HALT_TAGS: [&str; 4] = ["hungry", "angry", "lonely", "tired"];

impl NewCheckIn {
    /// Checks ranges and tags.
    pub fn validate(&self) -> Result<(), EditError> {
        if super::days_of(&self.date).is_none() {
            return Err(EditError::Invalid(format!(
                "'{}' is not a date like 2026-11-29.",
                self.date
            )));
        }
        if self.mood.is_some_and(|m| !(1..=5).contains(&m)) {
            return Err(EditError::Invalid("Mood is a number from 1 to 5.".into()));
        }
        if self.craving.is_some_and(|c| !(0..=10).contains(&c)) {
            return Err(EditError::Invalid("Craving is a number from 0 to 10.".into()));
        }
        if let Some(bad) = self.halt.iter().find(|t| !HALT_TAGS.contains(&t.as_str())) {
            return Err(EditError::Invalid(format!(
                "'{bad}' is not a HALT tag (hungry, angry, lonely, tired)."
            )));
        }
        check_text("note", &self.note, MAX_BODY, false)
    }
}

/// A new meeting.
#[derive(Debug, Clone)]
pub struct NewMeeting {
    /// Title.
    pub title: String,
    /// When, RFC 3339.
    pub at: String,
    /// Where or a link.
    pub place: Option<String>,
    /// Who facilitates.
    pub facilitator: Option<MemberId>,
    /// Agenda.
    pub agenda: String,
}

impl NewMeeting {
    /// Checks the input.
    pub fn validate(&self) -> Result<(), EditError> {
        check_text("title", &self.title, MAX_TITLE, true)?;
        if !looks_like_rfc3339(&self.at) {
            return Err(EditError::Invalid(format!(
                "'{}' is not a time like 2026-12-01T19:00:00+01:00.",
                self.at
            )));
        }
        check_text("place", self.place.as_deref().unwrap_or(""), MAX_TITLE, false)?;
        check_text("agenda", &self.agenda, MAX_BODY, false)
    }
}

/// A light RFC 3339 check: `YYYY-MM-DDTHH:MM[:SS[.frac]](Z|±HH:MM)`.
pub fn looks_like_rfc3339(s: &str) -> bool {
    let Some((date, rest)) = s.split_once(['T', 't', ' ']) else {
        return false;
    };
    if super::days_of(date).is_none() || rest.len() < 6 {
        return false;
    }
    let (time, zone) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, "Z")
    } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        rest.split_at(rest.len() - 6)
    } else {
        return false;
    };
    let time_ok = {
        let mut parts = time.split(':');
        let h = parts.next().and_then(|h| h.parse::<u32>().ok());
        let m = parts.next().and_then(|m| m.parse::<u32>().ok());
        let s = parts
            .next()
            .map(|s| s.split('.').next().and_then(|s| s.parse::<u32>().ok()));
        matches!((h, m), (Some(h), Some(m)) if h < 24 && m < 60) && !matches!(s, Some(None) | Some(Some(60..)))
    };
    let zone_ok = zone == "Z" || {
        let z = &zone[1..];
        z.len() == 5 && z.as_bytes()[2] == b':' && z[..2].parse::<u32>().is_ok() && z[3..].parse::<u32>().is_ok()
    };
    time_ok && zone_ok
}

pub(crate) fn set_display_name(tx: &mut Transaction<'_>, name: &str) -> Result<(), EditError> {
    check_text("display name", name, 100, true)?;
    tx.put(ROOT, keys::NAME, name)?;
    Ok(())
}

pub(crate) fn set_transport(tx: &mut Transaction<'_>, b: &crate::group::TransportBinding) -> Result<(), EditError> {
    let obj = tx.put_object(ROOT, "transport", ObjType::Map)?;
    tx.put(&obj, "key", crate::ids::hex(&b.key))?;
    tx.put(&obj, "sig", crate::ids::hex(&b.signature))?;
    tx.put(&obj, "owner_sig", crate::ids::hex(&b.owner_signature))?;
    Ok(())
}

pub(crate) fn add_story(tx: &mut Transaction<'_>, id: ItemId, s: &NewStory, now_ms: i64) -> Result<(), EditError> {
    let obj = new_item(tx, keys::STORIES, id)?;
    tx.put(&obj, "title", s.title.as_str())?;
    // A plain string, not a text object: only its author writes it, whole, so it needs
    // no character-level merging, and one operation loads far faster than one per
    // character (docs/PERFORMANCE.md, "Where a first unlock goes").
    tx.put(&obj, "body", s.body.as_str())?;
    put_str_list(tx, &obj, "warnings", &s.warnings)?;
    tx.put(&obj, "no_replies", s.no_replies)?;
    tx.put(&obj, "at", now_ms)?;
    Ok(())
}

pub(crate) fn add_goal(
    tx: &mut Transaction<'_>,
    id: ItemId,
    title: &str,
    target: Option<&str>,
    now_ms: i64,
) -> Result<(), EditError> {
    check_text("title", title, MAX_TITLE, true)?;
    let obj = new_item(tx, keys::GOALS, id)?;
    tx.put(&obj, "title", title)?;
    if let Some(t) = target {
        check_text("target", t, MAX_TITLE, true)?;
        tx.put(&obj, "target", t)?;
    }
    tx.put(&obj, "at", now_ms)?;
    tx.put_object(&obj, keys::CHECKINS, ObjType::Map)?;
    Ok(())
}

pub(crate) fn add_check_in(
    tx: &mut Transaction<'_>,
    goal: ItemId,
    id: ItemId,
    c: &NewCheckIn,
    now_ms: i64,
) -> Result<(), EditError> {
    let goals = get_obj(tx, &ROOT, keys::GOALS).ok_or_else(|| EditError::NotFound(goal.to_hex()))?;
    let goal_obj = get_obj(tx, &goals, &goal.to_hex()).ok_or_else(|| EditError::NotFound(goal.to_hex()))?;
    let checkins = ensure_map(tx, &goal_obj, keys::CHECKINS)?;
    let obj = tx.put_object(&checkins, id.to_hex(), ObjType::Map)?;
    tx.put(&obj, "date", c.date.as_str())?;
    tx.put(&obj, "setback", c.kind == CheckInKind::Setback)?;
    if let Some(m) = c.mood {
        tx.put(&obj, "mood", m)?;
    }
    if let Some(cr) = c.craving {
        tx.put(&obj, "craving", cr)?;
    }
    put_str_list(tx, &obj, "halt", &c.halt)?;
    tx.put(&obj, "note", c.note.as_str())?;
    tx.put(&obj, "at", now_ms)?;
    Ok(())
}

/// Adds an item with `target` and a text field (replies, responses) or kind (reactions).
pub(crate) fn add_targeted(
    tx: &mut Transaction<'_>,
    collection: &str,
    id: ItemId,
    target: ItemId,
    field: (&str, &str),
    now_ms: i64,
) -> Result<(), EditError> {
    check_text(field.0, field.1, MAX_BODY, true)?;
    let obj = new_item(tx, collection, id)?;
    tx.put(&obj, "target", target.to_hex())?;
    tx.put(&obj, field.0, field.1)?;
    tx.put(&obj, "at", now_ms)?;
    Ok(())
}

pub(crate) fn add_reach_out(tx: &mut Transaction<'_>, id: ItemId, message: &str, now_ms: i64) -> Result<(), EditError> {
    check_text("message", message, MAX_BODY, true)?;
    let obj = new_item(tx, keys::REACH_OUTS, id)?;
    tx.put(&obj, "message", message)?;
    tx.put(&obj, "at", now_ms)?;
    Ok(())
}

pub(crate) fn acknowledge(tx: &mut Transaction<'_>, version: &str, now_ms: i64) -> Result<(), EditError> {
    let acks = ensure_map(tx, &ROOT, keys::ACKS)?;
    tx.put(&acks, version, now_ms)?;
    Ok(())
}

pub(crate) fn set_group_name(tx: &mut Transaction<'_>, name: &str) -> Result<(), EditError> {
    check_text("group name", name, MAX_TITLE, true)?;
    tx.put(ROOT, keys::NAME, name)?;
    Ok(())
}

pub(crate) fn set_agreement(
    tx: &mut Transaction<'_>,
    text: &str,
    version: ItemId,
    now_ms: i64,
) -> Result<(), EditError> {
    check_text("agreement", text, MAX_BODY, true)?;
    let obj = tx.put_object(ROOT, keys::AGREEMENT, ObjType::Map)?;
    tx.put(&obj, "text", text)?;
    tx.put(&obj, "version", version.to_hex())?;
    tx.put(&obj, "at", now_ms)?;
    Ok(())
}

pub(crate) fn set_history(tx: &mut Transaction<'_>, since_join: bool) -> Result<(), EditError> {
    let settings = ensure_map(tx, &ROOT, keys::SETTINGS)?;
    tx.put(&settings, "history", if since_join { "since-join" } else { "all" })?;
    Ok(())
}

pub(crate) fn create_meeting(
    tx: &mut Transaction<'_>,
    m: &NewMeeting,
    creator: &MemberId,
    now_ms: i64,
) -> Result<(), EditError> {
    tx.put(ROOT, "title", m.title.as_str())?;
    tx.put(ROOT, "at", m.at.as_str())?;
    if let Some(p) = &m.place {
        tx.put(ROOT, "where", p.as_str())?;
    }
    if let Some(f) = &m.facilitator {
        tx.put(ROOT, "facilitator", f.to_hex())?;
    }
    tx.put(ROOT, "created_by", creator.to_hex())?;
    tx.put(ROOT, "created_at", now_ms)?;
    put_text(tx, &ROOT, keys::AGENDA, &m.agenda)?;
    put_text(tx, &ROOT, keys::NOTES, "")?;
    tx.put_object(ROOT, keys::ATTENDANCE, ObjType::Map)?;
    tx.put_object(ROOT, keys::ACTIONS, ObjType::Map)?;
    Ok(())
}

/// Splices `insert` into the meeting notes at character `pos`, deleting `delete` first.
pub(crate) fn splice_notes(tx: &mut Transaction<'_>, pos: usize, delete: usize, insert: &str) -> Result<(), EditError> {
    let notes = match tx.get(ROOT, keys::NOTES)? {
        Some((Value::Object(ObjType::Text), id)) => id,
        _ => tx.put_object(ROOT, keys::NOTES, ObjType::Text)?,
    };
    let len = tx.length(&notes);
    if pos > len || pos + delete > len {
        return Err(EditError::Invalid("That position is outside the notes.".into()));
    }
    tx.splice_text(&notes, pos, delete as isize, insert)?;
    Ok(())
}

/// Appends a paragraph to the notes. Each paragraph ends with a newline, so paragraphs
/// appended concurrently on different devices stay on their own lines when they merge.
pub(crate) fn append_notes(tx: &mut Transaction<'_>, text: &str) -> Result<(), EditError> {
    check_text("note", text, MAX_BODY, true)?;
    let current = super::get_str(tx, &ROOT, keys::NOTES).unwrap_or_default();
    let pos = current.chars().count();
    let lead = if current.is_empty() || current.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let insert = format!("{lead}{}\n", text.trim_end_matches('\n'));
    splice_notes(tx, pos, 0, &insert)
}

pub(crate) fn set_attendance(tx: &mut Transaction<'_>, member: &MemberId, present: bool) -> Result<(), EditError> {
    let att = ensure_map(tx, &ROOT, keys::ATTENDANCE)?;
    tx.put(&att, member.to_hex(), present)?;
    Ok(())
}

pub(crate) fn add_action(
    tx: &mut Transaction<'_>,
    id: ItemId,
    text: &str,
    owner: Option<&MemberId>,
) -> Result<(), EditError> {
    check_text("action item", text, MAX_TITLE, true)?;
    let obj = new_item(tx, keys::ACTIONS, id)?;
    tx.put(&obj, "text", text)?;
    if let Some(o) = owner {
        tx.put(&obj, "owner", o.to_hex())?;
    }
    tx.put(&obj, "done", false)?;
    Ok(())
}

pub(crate) fn set_action_done(tx: &mut Transaction<'_>, id: ItemId, done: bool) -> Result<(), EditError> {
    let actions = get_obj(tx, &ROOT, keys::ACTIONS).ok_or_else(|| EditError::NotFound(id.to_hex()))?;
    let obj = get_obj(tx, &actions, &id.to_hex()).ok_or_else(|| EditError::NotFound(id.to_hex()))?;
    tx.put(&obj, "done", done)?;
    Ok(())
}

/// Deletes item `id` from `root[collection]`. (Automerge keeps it in the history.)
pub(crate) fn delete_item(tx: &mut Transaction<'_>, collection: &str, id: ItemId) -> Result<(), EditError> {
    let items = get_obj(tx, &ROOT, collection).ok_or_else(|| EditError::NotFound(id.to_hex()))?;
    if get_obj(tx, &items, &id.to_hex()).is_none() {
        return Err(EditError::NotFound(id.to_hex()));
    }
    tx.delete(&items, id.to_hex())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_check() {
        assert!(looks_like_rfc3339("2026-12-01T19:00:00+01:00"));
        assert!(looks_like_rfc3339("2026-12-01T19:00:00Z"));
        assert!(looks_like_rfc3339("2026-12-01T19:00Z"));
        assert!(looks_like_rfc3339("2026-12-01T19:00:00.5-05:00"));
        assert!(!looks_like_rfc3339("2026-12-01"));
        assert!(!looks_like_rfc3339("tomorrow"));
        assert!(!looks_like_rfc3339("2026-12-01T25:00:00Z"));
        assert!(!looks_like_rfc3339("2026-13-01T10:00:00Z"));
    }
}
