//! Reach-outs in the backend: writing one and getting it out at once, answering one, and
//! the delivery state a member sees for their own ("delivered to 2 of 5 members").
//!
//! A reach-out counts as delivered to a member once this device has completed a sync
//! round with them after writing it: a completed round means the other device holds
//! everything this one has (for what that member may read). Right after writing, the
//! backend syncs with everyone it can reach, so the answer comes within seconds rather
//! than at the next periodic round.

use alongside_core::ids::{GroupId, MemberId};
use alongside_core::model::views::ReachOutView;
use serde::{Deserialize, Serialize};

use super::{Backend, Event, GroupStatus, SavedForm, failed, now_ms};

/// Who a member's own reach-out has reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Delivery {
    /// Names of the members who have it.
    pub(crate) delivered: Vec<String>,
    /// Names of the members who do not have it yet.
    pub(crate) waiting: Vec<String>,
    /// Whether any member it is for is connected now.
    pub(crate) audience_reachable: bool,
}

/// A reach-out as the page shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReachOutCard {
    /// What core reads.
    pub(crate) view: ReachOutView,
    /// Written by the member using this device.
    pub(crate) mine: bool,
    /// For one's own: who has it and who not yet.
    pub(crate) delivery: Option<Delivery>,
}

/// Cards for `views`: one's own with their delivery, using `covered` (up to when, by
/// member hex id, what is durable here is known to be held by that member).
pub(crate) fn reach_out_cards(
    views: Vec<ReachOutView>,
    status: &GroupStatus,
    covered: impl Fn(&str) -> Option<i64>,
) -> Vec<ReachOutCard> {
    let me = status.members.iter().find(|m| m.me).map(|m| m.id.as_str());
    views
        .into_iter()
        .map(|view| {
            let mine = Some(view.author.id.as_str()) == me;
            let delivery = mine.then(|| {
                let audience: Vec<(&str, &str)> = match &view.audience {
                    Some(people) => people.iter().map(|p| (p.id.as_str(), p.name.as_str())).collect(),
                    None => status
                        .members
                        .iter()
                        .filter(|m| !m.me)
                        .map(|m| (m.id.as_str(), m.name.as_str()))
                        .collect(),
                };
                let audience: Vec<(&str, &str)> = audience.into_iter().filter(|(id, _)| Some(*id) != me).collect();
                let audience_reachable = audience
                    .iter()
                    .any(|(id, _)| status.members.iter().any(|m| m.id == *id && m.reachable));
                let (delivered, waiting): (Vec<_>, Vec<_>) = audience
                    .into_iter()
                    .partition(|(id, _)| covered(id).is_some_and(|at| at >= view.created_at_ms));
                Delivery {
                    delivered: delivered.into_iter().map(|(_, n)| n.to_string()).collect(),
                    waiting: waiting.into_iter().map(|(_, n)| n.to_string()).collect(),
                    audience_reachable,
                }
            });
            ReachOutCard { view, mine, delivery }
        })
        .collect()
}

impl Backend {
    pub(super) fn handle_reach_out(&mut self, group: GroupId, message: String, to: Vec<MemberId>) -> Event {
        let saved = self.with_vault(move |v| {
            v.edit(&group, |s| s.reach_out(message.trim(), &to, now_ms()))
                .map(|_| ())
        });
        if let Err(err) = saved {
            return failed("Your reach-out was not sent", &err);
        }
        self.wrote(group);
        // Get it out now, not at the next periodic round; delivery shows as rounds end.
        self.handle_sync_now(group, false);
        let notice = if self.net.reachable(&group) == 0 {
            "Your reach-out is saved. Nobody in the group is reachable right now; it goes out as soon as someone is."
        } else {
            "Your reach-out is on its way."
        };
        self.saved_from(group, notice, Some(SavedForm::ReachOut))
    }

    pub(super) fn handle_respond(&mut self, group: GroupId, reach_out: String, text: String) -> Event {
        let id = reach_out.clone();
        let saved = self.with_vault(move |v| {
            v.edit(&group, |s| s.respond(&reach_out, text.trim(), now_ms()))
                .map(|_| ())
        });
        if let Err(err) = saved {
            return failed("Your answer was not saved", &err);
        }
        self.wrote(group);
        self.saved_from(
            group,
            "Your answer is saved and goes out with the next sync.",
            Some(SavedForm::Answer(id)),
        )
    }
}

#[cfg(test)]
mod tests {
    use alongside_core::model::views::Person;

    use super::*;
    use crate::gui::backend::MemberStatus;

    fn member(id: &str, name: &str, me: bool, reachable: bool) -> MemberStatus {
        MemberStatus {
            id: id.into(),
            name: name.into(),
            role: "member".into(),
            me,
            reachable,
            last_sync_ms: None,
        }
    }

    fn person(id: &str, name: &str) -> Person {
        Person {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn delivery_counts_only_rounds_after_writing_and_reachability_only_within_the_audience() {
        let status = GroupStatus {
            group: GroupId([1; 32]),
            members: vec![
                member("aa", "Sam", true, false),
                member("bb", "Jo", false, false),
                member("cc", "Kim", false, true),
            ],
            waiting: 0,
            syncing: false,
            meeting_until: None,
            lan_allowed: false,
        };
        let to_jo = ReachOutView {
            id: "r1".into(),
            author: person("aa", "Sam"),
            message: "Rough night.".into(),
            audience: Some(vec![person("aa", "Sam"), person("bb", "Jo")]),
            answered: false,
            created_at_ms: 1_000,
            responses: Vec::new(),
        };
        let to_all = ReachOutView {
            id: "r2".into(),
            audience: None,
            ..to_jo.clone()
        };
        // Kim finished a round after the reach-outs were written, Jo only before.
        let synced = |id: &str| match id {
            "cc" => Some(2_000),
            "bb" => Some(500),
            _ => None,
        };
        let cards = reach_out_cards(vec![to_jo, to_all], &status, synced);
        let jo = cards[0].delivery.as_ref().unwrap();
        assert_eq!(jo.delivered, Vec::<String>::new());
        assert_eq!(jo.waiting, ["Jo"]);
        assert!(
            !jo.audience_reachable,
            "Kim being connected does not help a reach-out to Jo"
        );
        let all = cards[1].delivery.as_ref().unwrap();
        assert_eq!(all.delivered, ["Kim"]);
        assert_eq!(all.waiting, ["Jo"]);
        assert!(all.audience_reachable);
    }
}
