//! The accepting side: who may connect to a group's endpoint, invitations redeemed, and
//! the conversation with a member who dialed.

use std::net::SocketAddr;
use std::sync::Arc;

use alongside_core::group::Presented;
use alongside_core::ids::{GroupId, MemberId};
use alongside_core::invite::verify_proof;
use alongside_core::membership::Role;
use alongside_core::sync::Message;
use alongside_core::vault::{InviteError, VaultError};
use iroh::TransportAddr;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};
use tokio::sync::Semaphore;

use crate::close_code;

/// How long a connecting peer may take to open its stream and, if it is not a member, to
/// send its join request.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest first frame anyone may send (a join request is about 450 bytes, a
/// member's presentation about 200).
const FIRST_FRAME_LIMIT: usize = 4096;

/// Most connections one group endpoint lets open at once before they say who they are:
/// each may hold [`crate::node::CONNECTION_WINDOW`] of unread data, and a stranger can
/// open as many as it likes. Beyond this one is closed at once; a member's device or a
/// joiner gets through in milliseconds, so only a flood meets the limit.
const MAX_HANDSHAKING: usize = 64;
use crate::conn::{Framed, SharedVault, with_vault};
use crate::live::{Mode, Peer, converse, hear_out};
use crate::node::{Inner, NetError, now_ms};
use crate::presence::Call;

/// Accepts connections for one group.
#[derive(Clone)]
pub(crate) struct Handler {
    group: GroupId,
    inner: Arc<Inner>,
    vault: SharedVault,
    /// This endpoint's id (what a joiner's proof names).
    endpoint: [u8; 32],
    /// Our own member id in the group (fixed for a membership, so read once).
    me: MemberId,
    /// Connections that have not yet said who they are (see [`MAX_HANDSHAKING`]).
    handshaking: Arc<Semaphore>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl ProtocolHandler for Handler {
    async fn accept(&self, conn: Connection) -> Result<(), AcceptError> {
        let remote = *conn.remote_id().as_bytes();
        match self.serve(&conn, remote).await {
            Ok(()) => {
                conn.closed().await;
            }
            Err((code, reason)) => {
                tracing::debug!(group = %alongside_core::ids::short_hex(&self.group.0), code, reason, "connection refused or failed");
                conn.close(code.into(), reason.as_bytes());
            }
        }
        Ok(())
    }
}

impl Handler {
    /// Redeems the invitation and adds the joiner; answers with every operation.
    async fn admit(
        &self,
        framed: &mut Framed,
        invite: [u8; 32],
        keys: alongside_core::membership::MemberKeys,
    ) -> Result<MemberId, (u32, String)> {
        let group = self.group;
        let protocol = |e: NetError| (close_code::PROTOCOL, e.to_string());
        let now = now_ms();
        let member = keys.member;
        let ops = with_vault(&self.vault, move |v| {
            v.redeem_invite(&group, &invite, now)?;
            v.edit(&group, |s| s.add_member(keys, Role::Member, now))?;
            let mut ops = v.session(&group)?.ops();
            ops.sort_by_key(|o| !o.op().parents.is_empty());
            Ok(ops.iter().map(|o| o.bytes().to_vec()).collect::<Vec<_>>())
        })
        .await
        .map_err(|e| match e {
            NetError::Vault(VaultError::Invite(InviteError::Used)) => (close_code::INVITE_USED, e.to_string()),
            NetError::Vault(VaultError::Invite(InviteError::Expired)) => (close_code::INVITE_EXPIRED, e.to_string()),
            NetError::Vault(VaultError::Invite(InviteError::Unknown)) => (close_code::INVITE_UNKNOWN, e.to_string()),
            NetError::Vault(VaultError::Invite(InviteError::Revoked)) => (close_code::INVITE_REVOKED, e.to_string()),
            other => protocol(other),
        })?;
        framed
            .write_frames(&[Message::JoinAccepted { ops }.to_frame()])
            .await
            .map_err(protocol)?;
        Ok(member)
    }

    pub(crate) fn new(group: GroupId, inner: Arc<Inner>, endpoint: [u8; 32], me: MemberId) -> Handler {
        Handler {
            group,
            vault: inner.shared.clone(),
            inner,
            endpoint,
            me,
            handshaking: Arc::new(Semaphore::new(MAX_HANDSHAKING)),
        }
    }

    async fn serve(&self, conn: &Connection, remote: [u8; 32]) -> Result<(), (u32, String)> {
        let group = self.group;
        let protocol = |e: NetError| (close_code::PROTOCOL, e.to_string());
        let Ok(handshake) = self.handshaking.clone().try_acquire_owned() else {
            return Err((close_code::PROTOCOL, "too many connections opening at once".into()));
        };
        let (send, recv) = tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.accept_bi())
            .await
            .map_err(|_| (close_code::PROTOCOL, "no stream opened in time".to_string()))?
            .map_err(|e| (close_code::PROTOCOL, e.to_string()))?;
        let mut framed = Framed::new(send, recv);
        // The first frame says who is calling: a member presenting its transport binding,
        // or someone with an invitation. It is small and must come at once.
        framed.set_limit(FIRST_FRAME_LIMIT);
        let first = tokio::time::timeout(HANDSHAKE_TIMEOUT, framed.next_frame())
            .await
            .map_err(|_| (close_code::PROTOCOL, "nothing said in time".to_string()))?
            .map_err(protocol)?;
        framed.set_limit(usize::MAX);
        let (peer, member_dialed) = match first.and_then(|b| Message::decode(&b).ok()) {
            Some(Message::Present {
                group: g,
                member,
                transport,
            }) => {
                if g != group {
                    return Err((close_code::REFUSED, "not a member".into()));
                }
                let who = with_vault(&self.vault, move |v| {
                    Ok(v.session(&group)?.presented(&member, &transport, &remote))
                })
                .await
                .map_err(protocol)?;
                match who {
                    Presented::Member => {}
                    Presented::Departed => {
                        return match hear_out(&self.vault, group, member, framed).await {
                            NetError::Departed => Err((close_code::REFUSED, "no longer a member".into())),
                            e => Err(protocol(e)),
                        };
                    }
                    Presented::Stranger => return Err((close_code::REFUSED, "not a member".into())),
                }
                (member, true)
            }
            Some(Message::JoinRequest {
                group: g,
                invite,
                proof,
                keys,
                transport,
            }) => {
                let valid = g == group
                    && verify_proof(&invite, &group, &self.endpoint, &remote, &proof)
                    && keys.verify(&group)
                    && transport.key == remote
                    && transport.verify(&group, &keys.member);
                if !valid {
                    return Err((close_code::REFUSED, "invalid invitation proof".into()));
                }
                (self.admit(&mut framed, invite, keys).await?, false)
            }
            _ => return Err((close_code::REFUSED, "not a member".into())),
        };
        // A member's node reached us: remember where, so the supervisor can dial back
        // later. (Not a joiner's: it joins from a temporary endpoint.)
        // (A relay path is not remembered: it is most likely our own home relay, which the
        // member dialed through; its own relay comes from its ticket.)
        let seen: Vec<SocketAddr> = conn
            .paths()
            .iter()
            .filter_map(|p| match p.remote_addr() {
                TransportAddr::Ip(a) => Some(*a),
                _ => None,
            })
            .collect();
        if member_dialed && !seen.is_empty() {
            let _ = with_vault(&self.vault, move |v| v.remember_address(&group, &remote, &seen)).await;
        }
        // It said who it is: from here on it counts as that member's.
        drop(handshake);
        let _presence = self.inner.present(group, peer, self.me, Call::Accepted(conn.clone()));
        let mode = Mode::Live {
            anti_entropy: self.inner.config.anti_entropy,
        };
        let peer = Peer {
            group,
            member: peer,
            initiator: false,
        };
        match converse(&self.vault, peer, framed, mode).await {
            Ok(_) => Ok(()),
            Err(NetError::Departed) => Err((close_code::REFUSED, "no longer a member".into())),
            Err(e) => Err(protocol(e)),
        }
    }
}
