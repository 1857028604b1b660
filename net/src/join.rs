//! The joiner's side of an invitation: prove the ticket, become a member, pull the group.

use alongside_core::group::{GroupSession, MembershipSecrets, TransportBinding};
use alongside_core::ids::GroupId;
use alongside_core::invite::Ticket;
use alongside_core::membership::{OpKind, SignedOp};
use alongside_core::sync::{Message, SyncStats};
use iroh::Endpoint;
use iroh::endpoint::Connection;

use crate::close_code;
use crate::conn::{Framed, SharedVault, with_vault};
use crate::live::{Mode, Peer, converse};
use crate::node::{NetConfig, NetError, bind_endpoint, close_dialer, dial, now_ms};

/// The joiner's side of an invitation: prove the ticket, become a member, pull the group.
pub(crate) async fn join(
    vault: &SharedVault,
    config: &NetConfig,
    ticket: &Ticket,
    display_name: &str,
) -> Result<(GroupId, SyncStats), NetError> {
    if ticket.expires_at_ms <= now_ms() {
        return Err(NetError::Refused("that invitation has expired"));
    }
    let group = ticket.group;
    let (secrets, rng) = with_vault(vault, |v| {
        let mut rng = v.session_rng();
        Ok((MembershipSecrets::generate(&mut rng), v.session_rng()))
    })
    .await?;
    if with_vault(vault, move |v| Ok(v.group_ids()?.contains(&group))).await? {
        return Err(NetError::Refused("this profile is already a member of that group"));
    }
    let endpoint = bind_endpoint(&secrets.transport.seed(), config, 0).await?;
    let result = join_on(&endpoint, vault, ticket, secrets, rng, display_name).await;
    endpoint.close().await;
    result
}

async fn join_on(
    endpoint: &Endpoint,
    vault: &SharedVault,
    ticket: &Ticket,
    secrets: MembershipSecrets,
    rng: rand::rngs::StdRng,
    display_name: &str,
) -> Result<(GroupId, SyncStats), NetError> {
    let group = ticket.group;
    let me_endpoint = *endpoint.id().as_bytes();
    let conn = dial(endpoint, ticket.inviter, &ticket.addrs, ticket.relay.as_deref()).await?;
    let (send, recv) = conn.open_bi().await.map_err(|e| NetError::Connection(e.to_string()))?;
    let mut framed = Framed::new(send, recv);
    let request = Message::JoinRequest {
        group,
        invite: ticket.invite_public(),
        proof: ticket.prove(&me_endpoint),
        keys: secrets.public_keys(&group),
        transport: TransportBinding::new(&group, &secrets.signing, &secrets.transport),
    };
    framed.write_frames(&[request.to_frame()]).await?;
    let ops = match framed.next_frame().await {
        Ok(Some(body)) => match Message::decode(&body) {
            Ok(Message::JoinAccepted { ops }) => ops,
            _ => return Err(NetError::Protocol("expected the answer to a join".into())),
        },
        _ => return Err(refusal(&conn).await),
    };
    let mut ops: Vec<SignedOp> = ops
        .iter()
        .map(|b| SignedOp::decode(b))
        .collect::<Result<_, _>>()
        .map_err(|e| NetError::Protocol(e.to_string()))?;
    ops.sort_by_key(|o| !o.op().parents.is_empty());
    let me = secrets.member();
    let inviter = ops
        .iter()
        .find(|o| matches!(&o.op().kind, OpKind::Add { keys, .. } if keys.member == me))
        .map(|o| o.op().author)
        .ok_or_else(|| NetError::Protocol("the answer does not add this member".into()))?;
    let mut session = GroupSession::join(rng, secrets, &ops).map_err(|e| NetError::Protocol(e.to_string()))?;
    let name = display_name.to_string();
    session.set_display_name(&name).map_err(|e| NetError::Vault(e.into()))?;
    session.announce_transport().map_err(|e| NetError::Vault(e.into()))?;
    with_vault(vault, move |v| v.adopt(session)).await?;
    let peer = Peer {
        group,
        member: inviter,
        initiator: true,
    };
    let result = converse(vault, peer, framed, Mode::Once).await;
    close_dialer(&conn, &result);
    let stats = result?;
    let (inviter_endpoint, addrs, relay) = (ticket.inviter, ticket.addrs.clone(), ticket.relay.clone());
    with_vault(vault, move |v| {
        v.remember_address_of(&group, &inviter_endpoint, &addrs, inviter)?;
        if let Some(url) = relay {
            v.remember_relay(&group, &inviter_endpoint, &url)?;
        }
        Ok(())
    })
    .await?;
    Ok((group, stats))
}

/// Why the inviter closed the connection, from its close code.
async fn refusal(conn: &Connection) -> NetError {
    let reason = conn.closed().await;
    let code = match &reason {
        iroh::endpoint::ConnectionError::ApplicationClosed(c) => u64::from(c.error_code),
        _ => return NetError::Connection(reason.to_string()),
    };
    match code {
        c if c == u64::from(close_code::INVITE_USED) => NetError::Refused("that invitation was already used"),
        c if c == u64::from(close_code::INVITE_EXPIRED) => NetError::Refused("that invitation has expired"),
        c if c == u64::from(close_code::INVITE_REVOKED) => {
            NetError::Refused("that invitation was withdrawn by the person who made it")
        }
        c if c == u64::from(close_code::INVITE_UNKNOWN) => {
            NetError::Refused("that invitation is not known to the inviter")
        }
        // (An invitation the inviter does not know is refused so too: see `accept.rs`.)
        c if c == u64::from(close_code::REFUSED) => NetError::Refused("the inviter did not accept that invitation"),
        _ => NetError::Connection(reason.to_string()),
    }
}
