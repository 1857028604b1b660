//! The accepting side: who may connect to a group's endpoint, invitations redeemed, and
//! the conversation with a member who dialed.

use std::net::SocketAddr;
use std::sync::Arc;

use alongside_core::crypto::SigningSecret;
use alongside_core::group::{Presented, TransportBinding};
use alongside_core::ids::{GroupId, MemberId};
use alongside_core::invite::verify_proof;
use alongside_core::membership::{MemberKeys, Role};
use alongside_core::sync::Message;
use alongside_core::vault::{InviteError, VaultError};
use iroh::TransportAddr;
use iroh::endpoint::Connection;
use iroh::protocol::{AcceptError, ProtocolHandler};

use crate::close_code;
use crate::conn::{Framed, SharedVault, with_vault};
use crate::gate::Gate;
use crate::live::{Mode, Peer, converse, hear_out};
use crate::node::{Inner, NetError, now_ms};
use crate::presence::Call;

/// The largest first frame anyone may send (a join request is about 450 bytes, a
/// member's presentation about 200).
const FIRST_FRAME_LIMIT: usize = 4096;

/// The refusal of anyone who presents no genuine binding of a current or departed member:
/// the same code and words whatever group id they named, so an outsider cannot learn
/// which group an endpoint serves.
const NOT_A_MEMBER: (u32, &str) = (close_code::REFUSED, "not a member");

/// The refusal of a join request that is not backed by an invitation this device issued
/// (a wrong group id, a proof that does not hold, or an invite key made up by the caller):
/// one answer for all, for the same reason.
const NOT_INVITED: (u32, &str) = (close_code::REFUSED, "invalid invitation");

/// A refusal or failure: the close code and the reason sent with it.
type Refusal = (u32, String);

fn refusal((code, reason): (u32, &str)) -> Refusal {
    (code, reason.to_string())
}

fn protocol(e: NetError) -> Refusal {
    (close_code::PROTOCOL, e.to_string())
}

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
    /// Who may open a connection, and who is being heard out (shared by the group's
    /// endpoints).
    gate: Arc<Gate>,
    /// For a meeting endpoint (see `crate::meeting`): its key, to present ourselves back
    /// to a member who presented first. A meeting endpoint takes no joins and remembers
    /// no addresses.
    meeting: Option<SigningSecret>,
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

/// Waits for the caller's stream and its first frame (`None`: it finished at once).
async fn first_frame(conn: &Connection) -> Result<(Framed, Option<Vec<u8>>), Refusal> {
    let (send, recv) = conn
        .accept_bi()
        .await
        .map_err(|e| (close_code::PROTOCOL, e.to_string()))?;
    let mut framed = Framed::new(send, recv);
    // It is small and must come at once.
    framed.set_limit(FIRST_FRAME_LIMIT);
    let first = framed.next_frame().await.map_err(protocol)?;
    framed.set_limit(usize::MAX);
    Ok((framed, first))
}

impl Handler {
    pub(crate) fn new(group: GroupId, inner: Arc<Inner>, endpoint: [u8; 32], me: MemberId, gate: Arc<Gate>) -> Handler {
        Handler {
            group,
            vault: inner.shared.clone(),
            inner,
            endpoint,
            me,
            gate,
            meeting: None,
        }
    }

    /// Accepts for `group` on a meeting endpoint whose key is `secret` (behind the same
    /// gate as the group's endpoints).
    pub(crate) fn for_meeting(
        group: GroupId,
        inner: Arc<Inner>,
        endpoint: [u8; 32],
        me: MemberId,
        gate: Arc<Gate>,
        secret: SigningSecret,
    ) -> Handler {
        Handler {
            meeting: Some(secret),
            ..Handler::new(group, inner, endpoint, me, gate)
        }
    }

    async fn serve(&self, conn: &Connection, remote: [u8; 32]) -> Result<(), Refusal> {
        let group = self.group;
        // The gate sorts callers by their authenticated endpoint id before reading a byte.
        let opened = self
            .gate
            .open(remote)
            .map_err(|turned| (close_code::PROTOCOL, turned.to_string()))?;
        // The first frame says who is calling: a member presenting its transport binding,
        // or someone with an invitation.
        let (mut framed, first) = tokio::time::timeout(opened.present_time(), first_frame(conn))
            .await
            .map_err(|_| (close_code::PROTOCOL, "nothing said in time".to_string()))??;
        // It said something: what it said decides now, without waiting for it again.
        drop(opened);
        let (peer, framed, member_dialed) = match first.and_then(|b| Message::decode(&b).ok()) {
            Some(Message::Present {
                group: g,
                member,
                transport,
            }) if g == group => {
                let (member, framed) = self.presented(remote, member, transport, framed).await?;
                (member, framed, true)
            }
            Some(Message::JoinRequest {
                group: g,
                invite,
                proof,
                keys,
                transport,
            }) if self.meeting.is_none() => {
                let valid = g == group
                    && verify_proof(&invite, &group, &self.endpoint, &remote, &proof)
                    && keys.verify(&group)
                    && transport.key == remote
                    && transport.verify(&group, &keys.member);
                if !valid {
                    return Err(refusal(NOT_INVITED));
                }
                (self.admit(&mut framed, invite, keys).await?, framed, false)
            }
            _ => return Err(refusal(NOT_A_MEMBER)),
        };
        let mut framed = framed;
        if let Some(secret) = self.meeting.clone() {
            // A meeting endpoint: say who we are now that they did (and remember nothing).
            let back = with_vault(&self.vault, move |v| {
                let s = v.session(&group)?;
                Ok(Message::Present {
                    group,
                    member: s.me(),
                    transport: TransportBinding::new(&group, &s.secrets().signing, &secret),
                })
            })
            .await
            .map_err(protocol)?;
            framed.write_frames(&[back.to_frame()]).await.map_err(protocol)?;
        } else if member_dialed {
            self.remember_paths(conn, remote).await;
        }
        self.converse(conn, peer, framed).await
    }

    /// Who presented `transport` as `member` from `remote`: a current member (returned
    /// with the stream, and the key remembered as known); a departed member (heard out,
    /// then refused); or nobody (refused).
    async fn presented(
        &self,
        remote: [u8; 32],
        member: MemberId,
        transport: TransportBinding,
        framed: Framed,
    ) -> Result<(MemberId, Framed), Refusal> {
        let group = self.group;
        let who = with_vault(&self.vault, move |v| {
            Ok(v.session(&group)?.presented(&member, &transport, &remote))
        })
        .await
        .map_err(protocol)?;
        match who {
            Presented::Member => {
                self.gate.learn(remote, member);
                Ok((member, framed))
            }
            Presented::Departed => {
                let gone = (close_code::REFUSED, "no longer a member".to_string());
                // One hear-out per departed member at a time: a newer call is refused.
                let Ok(_hearing) = self.gate.hear(member) else {
                    return Err(gone);
                };
                match hear_out(&self.vault, group, member, framed).await {
                    NetError::Departed => Err(gone),
                    e => Err(protocol(e)),
                }
            }
            Presented::Stranger => Err(refusal(NOT_A_MEMBER)),
        }
    }

    /// Redeems the invitation and adds the joiner; answers with every operation.
    async fn admit(&self, framed: &mut Framed, invite: [u8; 32], keys: MemberKeys) -> Result<MemberId, Refusal> {
        let group = self.group;
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
            // (Only the holder of an invitation this device issued hears these.)
            NetError::Vault(VaultError::Invite(InviteError::Used)) => (close_code::INVITE_USED, e.to_string()),
            NetError::Vault(VaultError::Invite(InviteError::Expired)) => (close_code::INVITE_EXPIRED, e.to_string()),
            NetError::Vault(VaultError::Invite(InviteError::Revoked)) => (close_code::INVITE_REVOKED, e.to_string()),
            // A made-up invite key passes the proof: answered like a wrong group id.
            NetError::Vault(VaultError::Invite(InviteError::Unknown)) => refusal(NOT_INVITED),
            other => protocol(other),
        })?;
        framed
            .write_frames(&[Message::JoinAccepted { ops }.to_frame()])
            .await
            .map_err(protocol)?;
        Ok(member)
    }

    /// A member's node reached us: remember where, so the supervisor can dial back later.
    /// (Not a joiner's: it joins from a temporary endpoint. A relay path is not
    /// remembered: it is most likely our own home relay, which the member dialed through;
    /// its own relay comes from its ticket.)
    async fn remember_paths(&self, conn: &Connection, remote: [u8; 32]) {
        let group = self.group;
        let seen: Vec<SocketAddr> = conn
            .paths()
            .iter()
            .filter_map(|p| match p.remote_addr() {
                TransportAddr::Ip(a) => Some(*a),
                _ => None,
            })
            .collect();
        if !seen.is_empty() {
            let _ = with_vault(&self.vault, move |v| v.remember_address(&group, &remote, &seen)).await;
        }
    }

    /// The conversation with `peer`, counted as that member's.
    async fn converse(&self, conn: &Connection, peer: MemberId, framed: Framed) -> Result<(), Refusal> {
        let group = self.group;
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
