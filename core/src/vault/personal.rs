//! What a member keeps on this device only and never shares with any group: the crisis
//! lines and people they can call when they need support now, "taking a break", the
//! members they muted, when they last looked at each group, when it last synced with each
//! member, and how this device may connect (relays or not).
//!
//! Stored like everything else in the profile: sealed under the profile's data key, so a
//! copied disk shows nothing (a saved crisis line says as much about a person as a story).

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{GroupId, MemberId};
use crate::store::{Batch, Key, Kind};
use crate::wire::{Reader, Writer};

use super::{Vault, VaultError};

/// Most contacts a profile keeps.
pub const MAX_CONTACTS: usize = 20;
/// Longest name or number of a contact, in bytes.
pub const MAX_CONTACT_TEXT: usize = 200;

const CONTACTS_KEY: &[u8] = b"support-contacts";
const CONTACTS_VERSION: u8 = 1;
const BREAK_KEY: &[u8] = b"break-until";
const RELAY_KEY: &[u8] = b"relay-mode";
const MUTED_KEY: &[u8] = b"muted";
const SEEN_KEY: &[u8] = b"seen-at";
const SYNC_KEY: &[u8] = b"sync-marks";
const WAITING_KEY: &[u8] = b"waiting";
const SYNC_VERSION: u8 = 1;
/// Most members one group keeps sync marks for.
const MAX_MARKED: usize = 4096;
/// Most members one group can have muted on this device.
const MAX_MUTED: usize = 1000;

/// What this device knows of its last completed sync round with one member, kept so that
/// "last synced" and the delivery of reach-outs survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncMark {
    /// When the last round with them completed (Unix ms, this device's clock).
    pub last_sync_ms: i64,
    /// Everything that was durable on this device at this time (Unix ms) or earlier is
    /// held by them.
    pub covered_ms: i64,
}

/// A crisis line or a person to call, kept on this device only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SupportContact {
    /// Who it is: "Crisis line", "Jo (sponsor)".
    pub name: String,
    /// How to reach them: a number, an address, a link.
    pub reach: String,
}

impl SupportContact {
    /// Checks that it has a name and a way to reach it, within the limits.
    pub fn validate(&self) -> Result<(), VaultError> {
        let (name, reach) = (self.name.trim(), self.reach.trim());
        if name.is_empty() || reach.is_empty() {
            return Err(VaultError::Invalid(
                "a contact needs a name and a way to reach them".into(),
            ));
        }
        if name.len() > MAX_CONTACT_TEXT || reach.len() > MAX_CONTACT_TEXT {
            return Err(VaultError::Invalid(format!(
                "a contact's name and number must each fit in {MAX_CONTACT_TEXT} characters"
            )));
        }
        Ok(())
    }
}

impl Vault {
    /// The crisis lines and contacts saved on this device, in the order they were saved.
    pub fn support_contacts(&self) -> Result<Vec<SupportContact>, VaultError> {
        let Some(raw) = self.store.get(Kind::Meta, &Key::global(CONTACTS_KEY))? else {
            return Ok(Vec::new());
        };
        let mut r = Reader::new(&raw);
        if r.u8()? != CONTACTS_VERSION {
            return Err(VaultError::Record("support contacts of an unknown version".into()));
        }
        let n = r.count(MAX_CONTACTS, 8)?;
        let mut contacts = Vec::with_capacity(n);
        for _ in 0..n {
            contacts.push(SupportContact {
                name: r.string(MAX_CONTACT_TEXT)?,
                reach: r.string(MAX_CONTACT_TEXT)?,
            });
        }
        r.finish()?;
        Ok(contacts)
    }

    /// Replaces the saved crisis lines and contacts (trimmed). Nothing is written unless
    /// every one is valid.
    pub fn set_support_contacts(&mut self, contacts: &[SupportContact]) -> Result<(), VaultError> {
        if contacts.len() > MAX_CONTACTS {
            return Err(VaultError::Invalid(format!(
                "at most {MAX_CONTACTS} contacts can be saved"
            )));
        }
        let mut w = Writer::new();
        w.u8(CONTACTS_VERSION).count(contacts.len());
        for c in contacts {
            c.validate()?;
            w.var_bytes(c.name.trim().as_bytes())
                .var_bytes(c.reach.trim().as_bytes());
        }
        let mut batch = Batch::new();
        batch.put(Kind::Meta, Key::global(CONTACTS_KEY), w.finish());
        self.store.commit(batch)?;
        Ok(())
    }
}

impl Vault {
    /// The day (`YYYY-MM-DD`) until which the member is taking a break, if they are.
    pub fn break_until(&self) -> Result<Option<String>, VaultError> {
        self.meta_text(BREAK_KEY)
    }

    /// Starts a break until `day` (`YYYY-MM-DD`), or ends it (`None`).
    pub fn set_break_until(&mut self, day: Option<&str>) -> Result<(), VaultError> {
        if let Some(day) = day
            && crate::model::days_of(day).is_none()
        {
            return Err(VaultError::Invalid(format!("'{day}' is not a date like 2026-12-15")));
        }
        self.set_meta_text(BREAK_KEY, day)
    }

    /// How this device wants to reach members across the internet: `disabled`,
    /// `default`, or a relay's URL; `None` until chosen. Applied when the node starts.
    pub fn relay_preference(&self) -> Result<Option<String>, VaultError> {
        self.meta_text(RELAY_KEY)
    }

    /// Records how this device reaches members across the internet (see
    /// [`Vault::relay_preference`]); `None` goes back to the default.
    pub fn set_relay_preference(&mut self, mode: Option<&str>) -> Result<(), VaultError> {
        if let Some(mode) = mode
            && !(matches!(mode, "disabled" | "default") || mode.starts_with("https://"))
        {
            return Err(VaultError::Invalid(
                "a relay setting is disabled, default, or a relay's https:// address".into(),
            ));
        }
        self.set_meta_text(RELAY_KEY, mode)
    }

    /// Members of `group` muted on this device (their stories and reach-outs are not
    /// shown here; they are not told).
    pub fn muted(&mut self, group: &GroupId) -> Result<BTreeSet<MemberId>, VaultError> {
        self.ensure_loaded(group)?;
        let Some(raw) = self.group_setting(group, MUTED_KEY)? else {
            return Ok(BTreeSet::new());
        };
        let mut r = Reader::new(&raw);
        let n = r.count(MAX_MUTED, 32)?;
        let mut out = BTreeSet::new();
        for _ in 0..n {
            out.insert(MemberId(r.array()?));
        }
        r.finish()?;
        Ok(out)
    }

    /// Mutes or unmutes `member` of `group` on this device.
    pub fn set_muted(&mut self, group: &GroupId, member: &MemberId, muted: bool) -> Result<(), VaultError> {
        let mut all = self.muted(group)?;
        if muted {
            all.insert(*member);
        } else {
            all.remove(member);
        }
        if all.len() > MAX_MUTED {
            return Err(VaultError::Invalid(format!("at most {MAX_MUTED} members can be muted")));
        }
        let mut w = Writer::new();
        w.count(all.len());
        for m in &all {
            w.bytes(&m.0);
        }
        self.set_group_setting(group, MUTED_KEY, w.finish())
    }

    /// When this member last looked at `group` on this device (Unix ms), if ever: what
    /// came after it counts as new.
    pub fn seen_at(&mut self, group: &GroupId) -> Result<Option<i64>, VaultError> {
        self.ensure_loaded(group)?;
        let Some(raw) = self.group_setting(group, SEEN_KEY)? else {
            return Ok(None);
        };
        let mut r = Reader::new(&raw);
        let at = r.i64()?;
        r.finish()?;
        Ok(Some(at))
    }

    /// Records that this member looked at `group` at `now_ms`.
    pub fn set_seen_at(&mut self, group: &GroupId, now_ms: i64) -> Result<(), VaultError> {
        self.ensure_loaded(group)?;
        let mut w = Writer::new();
        w.i64(now_ms);
        self.set_group_setting(group, SEEN_KEY, w.finish())
    }

    /// What this device knows of its last sync round with each member of `group` (see
    /// [`SyncMark`]). Reads only the marks, not the group's documents.
    pub fn sync_marks(&self, group: &GroupId) -> Result<BTreeMap<MemberId, SyncMark>, VaultError> {
        let Some(raw) = self.group_setting(group, SYNC_KEY)? else {
            return Ok(BTreeMap::new());
        };
        let mut r = Reader::new(&raw);
        let version = r.u8()?;
        if version != SYNC_VERSION {
            return Err(crate::wire::DecodeError::Version(version).into());
        }
        let mut out = BTreeMap::new();
        for _ in 0..r.count(MAX_MARKED, 48)? {
            let member = MemberId(r.array()?);
            let mark = SyncMark {
                last_sync_ms: r.i64()?,
                covered_ms: r.i64()?,
            };
            out.insert(member, mark);
        }
        r.finish()?;
        Ok(out)
    }

    /// Records that a sync round with `member` of `group` completed at `at_ms`, covering
    /// everything durable here up to `covers_from_ms`. Marks only move forward.
    pub fn record_sync(
        &mut self,
        group: &GroupId,
        member: &MemberId,
        at_ms: i64,
        covers_from_ms: i64,
    ) -> Result<(), VaultError> {
        let mut marks = self.sync_marks(group)?;
        if marks.len() >= MAX_MARKED && !marks.contains_key(member) {
            return Ok(());
        }
        let mark = marks.entry(*member).or_insert(SyncMark {
            last_sync_ms: i64::MIN,
            covered_ms: i64::MIN,
        });
        mark.last_sync_ms = mark.last_sync_ms.max(at_ms);
        mark.covered_ms = mark.covered_ms.max(covers_from_ms);
        let mut w = Writer::new();
        w.u8(SYNC_VERSION).count(marks.len());
        for (m, mark) in &marks {
            w.bytes(&m.0).i64(mark.last_sync_ms).i64(mark.covered_ms);
        }
        self.set_group_setting(group, SYNC_KEY, w.finish())
    }

    /// How many changes the window counted as written in `group` while nobody was
    /// reachable, not yet taken by anyone (0 if none). Reads only that count.
    pub fn waiting(&self, group: &GroupId) -> Result<u64, VaultError> {
        let Some(raw) = self.group_setting(group, WAITING_KEY)? else {
            return Ok(0);
        };
        let mut r = Reader::new(&raw);
        let n = r.u64()?;
        r.finish()?;
        Ok(n)
    }

    /// Keeps the count of changes waiting to be sent in `group` (see [`Vault::waiting`]).
    pub fn set_waiting(&mut self, group: &GroupId, n: u64) -> Result<(), VaultError> {
        let mut w = Writer::new();
        w.u64(n);
        self.set_group_setting(group, WAITING_KEY, w.finish())
    }

    /// The raw value this device keeps for `group` under `key` (sealed; never shared).
    pub(super) fn group_setting(
        &self,
        group: &GroupId,
        key: &[u8],
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, VaultError> {
        Ok(self.store.get(Kind::Meta, &Key::in_group(*group, key))?)
    }

    /// Keeps `value` for `group` under `key` on this device (durable).
    pub(super) fn set_group_setting(&mut self, group: &GroupId, key: &[u8], value: Vec<u8>) -> Result<(), VaultError> {
        let mut batch = Batch::new();
        batch.put(Kind::Meta, Key::in_group(*group, key), value);
        self.store.commit(batch)?;
        Ok(())
    }

    fn meta_text(&self, key: &[u8]) -> Result<Option<String>, VaultError> {
        let Some(raw) = self.store.get(Kind::Meta, &Key::global(key))? else {
            return Ok(None);
        };
        let text = String::from_utf8(raw.to_vec()).map_err(|_| VaultError::Record("a setting is not text".into()))?;
        Ok(Some(text).filter(|t| !t.is_empty()))
    }

    fn set_meta_text(&mut self, key: &[u8], text: Option<&str>) -> Result<(), VaultError> {
        let mut batch = Batch::new();
        batch.put(
            Kind::Meta,
            Key::global(key),
            text.unwrap_or_default().as_bytes().to_vec(),
        );
        self.store.commit(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PassphraseKdf;

    fn contact(name: &str, reach: &str) -> SupportContact {
        SupportContact {
            name: name.into(),
            reach: reach.into(),
        }
    }

    #[test]
    fn contacts_are_kept_sealed_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        assert_eq!(vault.support_contacts().unwrap(), Vec::new());
        let saved = vec![
            contact("Lifeline of the county", "0800 111 222"),
            contact(" Jo (sponsor) ", " +44 7700 900123 "),
        ];
        vault.set_support_contacts(&saved).unwrap();
        drop(vault);
        let vault = Vault::unlock(dir.path(), b"pass phrase").unwrap();
        assert_eq!(
            vault.support_contacts().unwrap(),
            vec![
                contact("Lifeline of the county", "0800 111 222"),
                contact("Jo (sponsor)", "+44 7700 900123"),
            ]
        );
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(12).any(|w| w == b"Lifeline of "),
                "a saved contact is not readable on disk"
            );
        }
    }

    #[test]
    fn an_incomplete_contact_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        vault.set_support_contacts(&[contact("Crisis line", "988")]).unwrap();
        let err = vault
            .set_support_contacts(&[contact("Crisis line", "988"), contact("Jo", "  ")])
            .unwrap_err();
        assert_eq!(err.to_string(), "a contact needs a name and a way to reach them");
        let too_many = vec![contact("a", "1"); MAX_CONTACTS + 1];
        assert!(vault.set_support_contacts(&too_many).is_err());
        assert_eq!(vault.support_contacts().unwrap(), vec![contact("Crisis line", "988")]);
    }

    #[test]
    fn sync_marks_only_move_forward_and_are_kept_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", 1_795_953_600_000).unwrap();
        let (alex, jo) = (MemberId([9; 32]), MemberId([7; 32]));
        assert!(vault.sync_marks(&group).unwrap().is_empty());
        vault.record_sync(&group, &alex, 2_000, 1_500).unwrap();
        vault.record_sync(&group, &jo, 2_100, 900).unwrap();
        // A round reported late (it started earlier) takes nothing back.
        vault.record_sync(&group, &alex, 1_800, 1_000).unwrap();
        drop(vault);
        let vault = Vault::unlock(dir.path(), b"pass phrase").unwrap();
        let marks = vault.sync_marks(&group).unwrap();
        assert_eq!(
            marks[&alex],
            SyncMark {
                last_sync_ms: 2_000,
                covered_ms: 1_500
            }
        );
        assert_eq!(marks[&jo].covered_ms, 900);
        assert_eq!(marks.len(), 2);
    }

    #[test]
    fn the_waiting_count_is_kept_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", 1_795_953_600_000).unwrap();
        assert_eq!(vault.waiting(&group).unwrap(), 0);
        vault.set_waiting(&group, 3).unwrap();
        drop(vault);
        let mut vault = Vault::unlock(dir.path(), b"pass phrase").unwrap();
        assert_eq!(vault.waiting(&group).unwrap(), 3);
        vault.set_waiting(&group, 0).unwrap();
        assert_eq!(vault.waiting(&group).unwrap(), 0);
    }

    #[test]
    fn a_break_mutes_and_the_relay_choice_are_kept_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", 1_795_953_600_000).unwrap();
        assert_eq!(vault.break_until().unwrap(), None);
        vault.set_break_until(Some("2026-12-15")).unwrap();
        assert!(vault.set_break_until(Some("next week")).is_err());
        assert_eq!(vault.relay_preference().unwrap(), None);
        vault.set_relay_preference(Some("disabled")).unwrap();
        assert!(vault.set_relay_preference(Some("anything")).is_err());
        let alex = MemberId([9; 32]);
        vault.set_muted(&group, &alex, true).unwrap();
        assert_eq!(vault.seen_at(&group).unwrap(), None);
        vault.set_seen_at(&group, 1_795_953_700_000).unwrap();
        drop(vault);

        let mut vault = Vault::unlock(dir.path(), b"pass phrase").unwrap();
        assert_eq!(vault.break_until().unwrap().as_deref(), Some("2026-12-15"));
        assert_eq!(vault.relay_preference().unwrap().as_deref(), Some("disabled"));
        assert_eq!(vault.muted(&group).unwrap(), BTreeSet::from([alex]));
        assert_eq!(vault.seen_at(&group).unwrap(), Some(1_795_953_700_000));
        vault.set_break_until(None).unwrap();
        vault.set_muted(&group, &alex, false).unwrap();
        assert_eq!(vault.break_until().unwrap(), None);
        assert!(vault.muted(&group).unwrap().is_empty());
    }
}
