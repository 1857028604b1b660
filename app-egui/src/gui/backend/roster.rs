//! Membership from the window: removing a member, changing a role, leaving. Each is one
//! signed operation in core (a removal also rotates the key at once); the running node
//! pushes it to connected members and changes endpoints as the epoch changes.

use alongside_core::ids::{GroupId, MemberId};
use alongside_core::membership::Role;

use super::{Backend, Event, failed, now_ms};

impl Backend {
    pub(super) fn handle_remove(&mut self, group: GroupId, member: MemberId, revoke_invitations: bool) -> Event {
        let removed = self.with_vault(move |v| {
            let name = v.session(&group)?.display_name(&member);
            v.edit(&group, |s| s.remove_member(&member, now_ms()).map(|_| ()))?;
            let withdrawn = if revoke_invitations {
                v.revoke_invitations(&group, None, now_ms())?
            } else {
                0
            };
            Ok((name, withdrawn))
        });
        match removed {
            Ok((name, withdrawn)) => {
                let mut notice = format!(
                    "{name} is no longer a member. They cannot read anything written from now on, and the group's devices refuse to sync with them. They keep what they already saw."
                );
                match withdrawn {
                    0 => {}
                    1 => notice.push_str(" The open invitation was withdrawn too."),
                    n => notice.push_str(&format!(" The {n} open invitations were withdrawn too.")),
                }
                self.saved(group, &notice)
            }
            Err(err) => failed("Nobody was removed", &err),
        }
    }

    pub(super) fn handle_revoke(&mut self, group: GroupId, id: Option<String>) -> Event {
        match self.with_vault(move |v| v.revoke_invitations(&group, id.as_deref(), now_ms())) {
            Ok(0) => self.saved(group, "That invitation could no longer be used anyway."),
            Ok(_) => self.saved(group, "Withdrawn: that ticket no longer works."),
            Err(err) => failed("The invitation was not withdrawn", &err),
        }
    }

    pub(super) fn handle_set_role(&mut self, group: GroupId, member: MemberId, facilitator: bool) -> Event {
        let role = if facilitator { Role::Facilitator } else { Role::Member };
        let changed = self.with_vault(move |v| {
            let name = v.session(&group)?.display_name(&member);
            v.edit(&group, |s| s.change_role(&member, role, now_ms()).map(|_| ()))?;
            Ok(name)
        });
        match changed {
            Ok(name) if facilitator => self.saved(
                group,
                &format!("{name} is now a facilitator: they can invite, remove members and change roles."),
            ),
            Ok(name) => self.saved(group, &format!("{name} is now a member without a facilitator's role.")),
            Err(err) => failed("The role was not changed", &err),
        }
    }

    pub(super) fn handle_leave(&mut self, group: GroupId) -> Event {
        let left = self.with_vault(move |v| {
            let name = v.session(&group)?.name();
            v.edit(&group, |s| s.leave(now_ms()).map(|_| ()))?;
            Ok(name)
        });
        if self.open == Some(group) {
            self.open = None;
        }
        match left.and_then(|name| Ok((name, self.group_cards()?))) {
            Ok((name, groups)) => Event::Left { name, groups },
            Err(err) => failed("You are still in the group", &err),
        }
    }
}
