//! What the app last showed of each group, kept so the next unlock can show it before the
//! group's documents are loaded (loading a document with 20,000 changes takes about a
//! second; reading this takes a millisecond).
//!
//! The bytes are the app's own (core does not read them); they are sealed under the
//! profile's data key like every other record, never shared, and only ever replaced by
//! what the app showed later. The app must treat them as possibly stale.

use crate::ids::GroupId;
use crate::store::{Batch, Key, Kind};

use super::{Vault, VaultError};

/// Which of a group's last-shown records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShownLast {
    /// The group's line in the list of groups.
    Card,
    /// The group's home page as last shown.
    Page,
}

impl ShownLast {
    fn key(self) -> &'static [u8] {
        match self {
            ShownLast::Card => b"shown-last-card",
            ShownLast::Page => b"shown-last-page",
        }
    }
}

impl Vault {
    /// What the app last stored as shown for `group` in `slot`, without loading the
    /// group's documents.
    pub fn shown_last(&self, group: &GroupId, slot: ShownLast) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(self
            .store
            .get(Kind::Meta, &Key::in_group(*group, slot.key()))?
            .map(|v| v.to_vec()))
    }

    /// Replaces what was shown last for each entry, all in one durable write.
    pub fn set_shown_last(&mut self, entries: Vec<(GroupId, ShownLast, Vec<u8>)>) -> Result<(), VaultError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::new();
        for (group, slot, bytes) in entries {
            batch.put(Kind::Meta, Key::in_group(group, slot.key()), bytes);
        }
        self.store.commit(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PassphraseKdf;

    #[test]
    fn what_was_shown_last_is_kept_per_group_and_slot_across_unlocks() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "test", b"river stone lantern", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", 1_795_000_000_000).unwrap();
        assert_eq!(vault.shown_last(&group, ShownLast::Page).unwrap(), None);
        vault
            .set_shown_last(vec![
                (group, ShownLast::Card, b"card one".to_vec()),
                (group, ShownLast::Page, b"page one".to_vec()),
            ])
            .unwrap();
        vault
            .set_shown_last(vec![(group, ShownLast::Card, b"card two".to_vec())])
            .unwrap();
        drop(vault);
        let vault = Vault::unlock(dir.path(), b"river stone lantern").unwrap();
        assert_eq!(
            vault.shown_last(&group, ShownLast::Card).unwrap().as_deref(),
            Some(&b"card two"[..])
        );
        assert_eq!(
            vault.shown_last(&group, ShownLast::Page).unwrap().as_deref(),
            Some(&b"page one"[..])
        );
    }
}
