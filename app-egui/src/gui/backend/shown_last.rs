//! Showing at once, after an unlock, what was shown last: the list of groups and the
//! home of each group as this device last showed them.
//!
//! Loading a group's documents takes about a second per 20,000 changes (Automerge
//! rebuilds every change to check its hash), and the node loads them all before it can
//! start. So before it starts, the backend reads the cards and pages it stored
//! ([`Vault::shown_last`]: sealed under the profile's data key like everything else, on
//! this device only) and sends them with the unlock; the window shows them, marked as
//! still opening, until the real ones arrive a moment later.
//!
//! What is stored is exactly what the window showed, minus what only held at that moment
//! (who was connected, a sync under way). An empty record is no page: starting or ending
//! a break empties them all, since they were read with the break as it was. It is written when the group list is read,
//! and when a group's home is opened, changed by this member, closed or locked.

use std::collections::BTreeMap;

use alongside_core::ids::GroupId;
use alongside_core::vault::{ShownLast, Vault};
use serde::{Deserialize, Serialize};

use super::{Backend, GroupCard, GroupPage};

/// Bumped whenever a stored card or page would no longer read back the same.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Stored<T> {
    format: u32,
    value: T,
}

fn encode<T: Serialize>(value: T) -> Option<Vec<u8>> {
    serde_json::to_vec(&Stored { format: FORMAT, value }).ok()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    let stored: Stored<T> = serde_json::from_slice(bytes).ok()?;
    (stored.format == FORMAT).then_some(stored.value)
}

/// What can be shown before the node is up: a card for every group (or nothing, if any
/// group has none: a list missing a group would mislead), and the pages kept.
pub(super) fn read(vault: &Vault) -> Option<(Vec<GroupCard>, BTreeMap<GroupId, GroupPage>)> {
    let mut cards = Vec::new();
    let mut pages = BTreeMap::new();
    for group in vault.group_ids().ok()? {
        let card = vault.shown_last(&group, ShownLast::Card).ok()??;
        cards.push(decode::<GroupCard>(&card).filter(|c| c.id == group)?);
        let page = vault.shown_last(&group, ShownLast::Page).ok().flatten();
        if let Some(page) = page.as_deref().and_then(decode::<GroupPage>).filter(|p| p.id == group) {
            pages.insert(group, page);
        }
    }
    Some((cards, pages))
}

/// `card` without what held only at that moment.
fn card_at_rest(card: &GroupCard) -> GroupCard {
    GroupCard {
        reachable: 0,
        ..card.clone()
    }
}

/// `page` without what held only at that moment.
fn page_at_rest(page: &GroupPage) -> GroupPage {
    let mut page = page.clone();
    page.status.waiting = 0;
    page.status.syncing = false;
    for member in &mut page.status.members {
        member.reachable = false;
    }
    page
}

impl Backend {
    /// Keeps `cards` for the next unlock (best effort: a failure only costs that unlock
    /// its head start). The list is read again after most events; cards the same at rest
    /// as those last kept are not written again.
    pub(super) fn remember_cards(&mut self, cards: &[GroupCard]) {
        let at_rest: Vec<GroupCard> = cards.iter().map(card_at_rest).collect();
        if self.kept_cards.as_ref() == Some(&at_rest) {
            return;
        }
        let entries: Vec<_> = at_rest
            .iter()
            .filter_map(|c| Some((c.id, ShownLast::Card, encode(c)?)))
            .collect();
        if self.with_vault(move |v| v.set_shown_last(entries)).is_ok() {
            self.kept_cards = Some(at_rest);
        }
    }

    /// Forgets every kept page (they were read under settings that changed, such as a
    /// break) and has the open group's page read again.
    pub(super) fn forget_pages(&mut self) {
        let _ = self.with_vault(|v| {
            let entries = v
                .group_ids()?
                .into_iter()
                .map(|g| (g, ShownLast::Page, Vec::new()))
                .collect();
            v.set_shown_last(entries)
        });
        self.last_page = None;
        self.dirty.page = true;
    }

    /// Keeps `page` for the next unlock (best effort, as above).
    pub(super) fn remember_page(&self, page: &GroupPage) {
        let Some(bytes) = encode(page_at_rest(page)) else {
            return;
        };
        let group = page.id;
        let _ = self.with_vault(move |v| v.set_shown_last(vec![(group, ShownLast::Page, bytes)]));
    }
}

/// Serde for a [`GroupId`] as its hex text.
pub(crate) mod group_hex {
    use alongside_core::ids::GroupId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(id: &GroupId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<GroupId, D::Error> {
        let text = String::deserialize(d)?;
        GroupId::from_hex(&text).ok_or_else(|| serde::de::Error::custom("not a group id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gui::backend::NetState;
    use crate::gui::home_backend::{PageContext, group_page};
    use alongside_core::crypto::PassphraseKdf;
    use alongside_core::model::edits::NewStory;

    const NOW_MS: i64 = 1_795_953_600_000;

    fn sam_with_a_story(dir: &std::path::Path) -> (Vault, GroupId, GroupPage) {
        let mut vault = Vault::init(dir, "test", b"river stone lantern", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", NOW_MS).unwrap();
        let story = NewStory {
            title: "First light".into(),
            body: "The first morning I walked to the lake.".into(),
            warnings: vec!["grief".into()],
            no_replies: false,
        };
        vault.edit(&group, |s| s.add_story(&story, NOW_MS)).unwrap();
        let context = PageContext {
            net: NetState::default(),
            lan: false,
            stories: 30,
        };
        let page = group_page(&mut vault, &group, NOW_MS, &context).unwrap();
        (vault, group, page)
    }

    fn card(group: GroupId) -> GroupCard {
        GroupCard {
            id: group,
            name: "Tuesday Circle".into(),
            me: "Sam".into(),
            role: "facilitator".into(),
            members: 3,
            reachable: 2,
            new: 4,
            damaged: false,
        }
    }

    #[test]
    fn a_kept_page_reads_back_as_shown_without_the_moment() {
        let dir = tempfile::tempdir().unwrap();
        let (mut vault, group, mut page) = sam_with_a_story(dir.path());
        page.status.members[0].reachable = true;
        page.status.waiting = 2;
        let entries = vec![
            (group, ShownLast::Card, encode(card_at_rest(&card(group))).unwrap()),
            (group, ShownLast::Page, encode(page_at_rest(&page)).unwrap()),
        ];
        vault.set_shown_last(entries).unwrap();
        let (cards, pages) = read(&vault).expect("every group has a card");
        assert_eq!(
            cards,
            vec![GroupCard {
                reachable: 0,
                ..card(group)
            }]
        );
        let kept = &pages[&group];
        assert_eq!(kept.stories, page.stories, "the stories read back as shown");
        assert_eq!(kept.goals, page.goals);
        assert_eq!(kept.name, "Tuesday Circle");
        assert!(
            !kept.status.members[0].reachable,
            "nobody counts as connected before the node is up"
        );
        assert_eq!(kept.status.waiting, 0);
    }

    #[test]
    fn without_a_card_for_every_group_nothing_is_shown_early() {
        let dir = tempfile::tempdir().unwrap();
        let (mut vault, group, page) = sam_with_a_story(dir.path());
        assert!(read(&vault).is_none(), "no card kept yet");
        let other = vault.create_group("Thursday Circle", "Sam", NOW_MS).unwrap();
        vault
            .set_shown_last(vec![
                (group, ShownLast::Card, encode(card(group)).unwrap()),
                (group, ShownLast::Page, encode(page).unwrap()),
            ])
            .unwrap();
        assert!(
            read(&vault).is_none(),
            "Thursday Circle has no card: the list would miss it"
        );
        // A card in another format (or for another group) is not used either.
        let stale = serde_json::to_vec(&Stored {
            format: FORMAT + 1,
            value: card(other),
        })
        .unwrap();
        vault.set_shown_last(vec![(other, ShownLast::Card, stale)]).unwrap();
        assert!(read(&vault).is_none());
        vault
            .set_shown_last(vec![(other, ShownLast::Card, encode(card(group)).unwrap())])
            .unwrap();
        assert!(
            read(&vault).is_none(),
            "a card naming another group is not this group's"
        );
    }
}
