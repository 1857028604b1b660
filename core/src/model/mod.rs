//! The typed content model: what lives in each document and how it is read and edited.
//!
//! Only this module (and [`crate::replica`]) touch Automerge. Everything outside sees the
//! plain view structs in [`views`] and the edit inputs in [`edits`].
//!
//! Document schemas (keys of the root map):
//!
//! - **member / audience documents**: `name` (display name, member documents only),
//!   `stories`, `goals` (each with `checkins`), `reactions`, `replies`, `reach_outs`,
//!   `responses`, `acks` — maps from item id (hex) to item maps.
//! - **meeting documents**: `title`, `at`, `where`, `facilitator`, `agenda` (text),
//!   `notes` (text), `attendance` (member hex → bool), `actions` (item id → item).
//! - **the group document**: `name`, `agreement` (`text`, `version`, `at`), `settings`.
//!
//! The author of an item is never a field: it is the member whose actor created the item's
//! object, which validation has tied to that member's signature.

pub mod edits;
pub mod text_merge;
pub mod views;

use automerge::transaction::{Transactable, Transaction};
use automerge::{Automerge, ObjId, ObjType, ROOT, ReadDoc, ScalarValueRef, Value, ValueRef};

use crate::ids::{ItemId, MemberId};
use crate::replica::actor_member;

/// An edit's input was not acceptable.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EditError {
    /// A field is empty or out of range; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// The item to edit does not exist here.
    #[error("no such item: {0}")]
    NotFound(String),
    /// Automerge refused the edit (a bug, reported rather than hidden).
    #[error("the document refused the edit: {0}")]
    Document(String),
}

impl From<automerge::AutomergeError> for EditError {
    fn from(e: automerge::AutomergeError) -> Self {
        EditError::Document(e.to_string())
    }
}

/// Root keys of member and audience documents.
pub(crate) mod keys {
    pub(crate) const NAME: &str = "name";
    pub(crate) const STORIES: &str = "stories";
    pub(crate) const GOALS: &str = "goals";
    pub(crate) const CHECKINS: &str = "checkins";
    pub(crate) const REACTIONS: &str = "reactions";
    pub(crate) const REPLIES: &str = "replies";
    pub(crate) const REACH_OUTS: &str = "reach_outs";
    pub(crate) const RESPONSES: &str = "responses";
    pub(crate) const ACKS: &str = "acks";
    pub(crate) const AGREEMENT: &str = "agreement";
    pub(crate) const SETTINGS: &str = "settings";
    pub(crate) const ATTENDANCE: &str = "attendance";
    pub(crate) const ACTIONS: &str = "actions";
    pub(crate) const NOTES: &str = "notes";
    pub(crate) const AGENDA: &str = "agenda";
}

pub(crate) fn get_str(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<String> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => s.as_str().map(str::to_owned),
        (Value::Object(ObjType::Text), id) => doc.text(&id).ok(),
        _ => None,
    }
}

pub(crate) fn get_i64(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<i64> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => s.as_i64(),
        _ => None,
    }
}

pub(crate) fn get_bool(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<bool> {
    match doc.get(obj, key).ok()?? {
        (Value::Scalar(s), _) => s.as_bool(),
        _ => None,
    }
}

pub(crate) fn get_obj(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok()?? {
        (Value::Object(_), id) => Some(id),
        _ => None,
    }
}

pub(crate) fn get_str_list(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Vec<String> {
    let Some(list) = get_obj(doc, obj, key) else {
        return Vec::new();
    };
    doc.list_range(&list, ..)
        .filter_map(|item| match item.value {
            ValueRef::Scalar(ScalarValueRef::Str(s)) => Some(s.into_owned()),
            _ => None,
        })
        .collect()
}

/// Whether `key` of `obj` is a list holding at least one string (what
/// [`get_str_list`] would return non-empty), without copying the strings.
pub(crate) fn has_items(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> bool {
    get_obj(doc, obj, key).is_some_and(|list| {
        doc.list_range(&list, ..)
            .any(|item| matches!(item.value, ValueRef::Scalar(ScalarValueRef::Str(_))))
    })
}

/// The member whose actor created `obj` (the item's author).
pub(crate) fn creator(obj: &ObjId) -> Option<MemberId> {
    match obj {
        ObjId::Id(_, actor, _) => actor_member(actor),
        ObjId::Root => None,
    }
}

/// The items of the map at `root[key]`: (id, object), sorted by id for stable output.
pub(crate) fn items(doc: &Automerge, key: &str) -> Vec<(ItemId, ObjId)> {
    let Some(map) = get_obj(doc, &ROOT, key) else {
        return Vec::new();
    };
    items_of(doc, &map)
}

pub(crate) fn items_of(doc: &Automerge, map: &ObjId) -> Vec<(ItemId, ObjId)> {
    doc.map_range(map, ..)
        .filter_map(|item| {
            let id = ItemId::from_hex(&item.key)?;
            match item.value {
                ValueRef::Object(ObjType::Map) => Some((id, item.id())),
                _ => None,
            }
        })
        .collect()
}

/// The map at `parent[key]`, created if missing.
pub(crate) fn ensure_map(tx: &mut Transaction<'_>, parent: &ObjId, key: &str) -> Result<ObjId, EditError> {
    match tx.get(parent, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Ok(tx.put_object(parent, key, ObjType::Map)?),
    }
}

pub(crate) fn put_str_list(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    values: &[String],
) -> Result<(), EditError> {
    let list = tx.put_object(obj, key, ObjType::List)?;
    for (i, v) in values.iter().enumerate() {
        tx.insert(&list, i, v.as_str())?;
    }
    Ok(())
}

pub(crate) fn put_text(tx: &mut Transaction<'_>, obj: &ObjId, key: &str, value: &str) -> Result<ObjId, EditError> {
    let text = tx.put_object(obj, key, ObjType::Text)?;
    tx.splice_text(&text, 0, 0, value)?;
    Ok(text)
}

/// A new item map under `root[collection][id]`.
pub(crate) fn new_item(tx: &mut Transaction<'_>, collection: &str, id: ItemId) -> Result<ObjId, EditError> {
    let map = ensure_map(tx, &ROOT, collection)?;
    Ok(tx.put_object(&map, id.to_hex(), ObjType::Map)?)
}

/// The civil date (UTC) of a Unix-millisecond time, as `YYYY-MM-DD`.
pub fn date_of(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 for a `YYYY-MM-DD` date, if it is one.
pub fn days_of(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || date.len() != 10 {
        return None;
    }
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

// Howard Hinnant's civil-date algorithms (public domain), in proleptic Gregorian.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(1_795_000_000_000), "2026-11-18");
        assert_eq!(days_of("1970-01-02"), Some(1));
        assert_eq!(days_of("2026-02-30"), None);
        assert_eq!(days_of("2026-1-3"), None);
        for d in [-1000, 0, 59, 60, 20_000, 40_000] {
            assert_eq!(days_of(&date_of(d * 86_400_000)), Some(d));
        }
    }

    /// Story bodies and agreements were text objects before they became plain strings;
    /// documents written then must read the same.
    #[test]
    fn strings_read_from_either_form() {
        let mut doc = automerge::Automerge::new();
        let mut tx = doc.transaction();
        tx.put(ROOT, "plain", "one day at a time").unwrap();
        put_text(&mut tx, &ROOT, "text", "one day at a time").unwrap();
        tx.commit();
        assert_eq!(get_str(&doc, &ROOT, "plain").as_deref(), Some("one day at a time"));
        assert_eq!(get_str(&doc, &ROOT, "text").as_deref(), Some("one day at a time"));
    }
}
