//! The node: one iroh endpoint per group membership, an accept handler per endpoint, and
//! the dialing side of sync and of joining.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use alongside_core::group::{GroupSession, MembershipSecrets, TransportBinding};
use alongside_core::ids::GroupId;
use alongside_core::invite::{Ticket, verify_proof};
use alongside_core::membership::{OpKind, Role, SignedOp};
use alongside_core::sync::{Message, SyncStats};
use alongside_core::vault::{InviteError, Vault, VaultError};
use iroh::endpoint::{Connection, PortmapperConfig, presets};
use iroh::protocol::{AcceptError, ProtocolHandler, Router};
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayMode, SecretKey};
use thiserror::Error;

use crate::conn::{Framed, SharedVault, run_sync, with_vault};
use crate::{ALPN, close_code};

/// A network operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NetError {
    /// The local profile refused or failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The endpoint could not be set up.
    #[error("could not open a network endpoint: {0}")]
    Bind(String),
    /// Reaching or talking to the peer failed.
    #[error("the connection failed: {0}")]
    Connection(String),
    /// The peer broke the protocol.
    #[error("the other device broke the protocol: {0}")]
    Protocol(String),
    /// The other device refused us.
    #[error("the other device refused the connection ({0})")]
    Refused(&'static str),
    /// Something inside this node went wrong.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the node may reach. Relays, address lookup and port mapping are always off in
/// this version: a node reaches only the addresses it is given.
#[derive(Debug, Clone, Copy)]
pub struct NetConfig {
    /// The address endpoints bind to (port chosen by the system).
    pub bind_ip: IpAddr,
}

impl NetConfig {
    /// Loopback only: for tests and demos.
    pub fn loopback() -> NetConfig {
        NetConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

/// The outcome of one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// The engine's counters.
    pub stats: SyncStats,
}

struct Served {
    endpoint: Endpoint,
    router: Router,
}

/// The network side of an unlocked profile.
pub struct Node {
    vault: SharedVault,
    config: NetConfig,
    groups: Mutex<HashMap<GroupId, Arc<Served>>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

async fn bind_endpoint(seed: &[u8; 32], config: &NetConfig) -> Result<Endpoint, NetError> {
    Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .portmapper_config(PortmapperConfig::Disabled)
        .secret_key(SecretKey::from_bytes(seed))
        .alpns(vec![ALPN.to_vec()])
        .bind_addr(SocketAddr::new(config.bind_ip, 0))
        .map_err(|e| NetError::Bind(e.to_string()))?
        .bind()
        .await
        .map_err(|e| NetError::Bind(e.to_string()))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Node {
    /// Starts serving every group of `vault`.
    pub async fn start(vault: Vault, config: NetConfig) -> Result<Node, NetError> {
        let groups = vault.group_ids()?;
        let node = Node {
            vault: Arc::new(Mutex::new(vault)),
            config,
            groups: Mutex::new(HashMap::new()),
        };
        for g in groups {
            node.serve_group(g).await?;
        }
        Ok(node)
    }

    /// The shared vault (for local edits while the node runs).
    pub fn vault(&self) -> Arc<Mutex<Vault>> {
        self.vault.clone()
    }

    /// The shared vault, borrowed (lock it briefly: connections wait for it).
    pub fn vault_ref(&self) -> &Mutex<Vault> {
        &self.vault
    }

    fn served(&self, group: &GroupId) -> Option<Arc<Served>> {
        self.groups.lock().ok()?.get(group).cloned()
    }

    /// Binds the endpoint of `group` (its membership's transport key) and accepts on it.
    pub async fn serve_group(&self, group: GroupId) -> Result<(), NetError> {
        if self.served(&group).is_some() {
            return Ok(());
        }
        let seed = with_vault(&self.vault, move |v| Ok(*v.session(&group)?.secrets().transport.seed())).await?;
        let endpoint = bind_endpoint(&seed, &self.config).await?;
        let handler = Handler {
            group,
            vault: self.vault.clone(),
            me: *endpoint.id().as_bytes(),
        };
        let router = Router::builder(endpoint.clone()).accept(ALPN, handler).spawn();
        let served = Arc::new(Served { endpoint, router });
        self.groups
            .lock()
            .map_err(|_| NetError::Internal("node lock poisoned".into()))?
            .insert(group, served);
        Ok(())
    }

    /// Where `group`'s endpoint can be reached: its id and bound socket addresses.
    pub fn address(&self, group: &GroupId) -> Option<([u8; 32], Vec<SocketAddr>)> {
        let served = self.served(group)?;
        Some((*served.endpoint.id().as_bytes(), served.endpoint.bound_sockets()))
    }

    /// Issues an invitation to `group` valid until `expires_at_ms`, carrying this node's
    /// addresses.
    pub async fn invite(&self, group: GroupId, expires_at_ms: i64) -> Result<Ticket, NetError> {
        self.serve_group(group).await?;
        let (inviter, addrs) = self
            .address(&group)
            .ok_or(NetError::Internal("group not served".into()))?;
        let invite_secret = with_vault(&self.vault, move |v| v.create_invite(&group, expires_at_ms)).await?;
        Ok(Ticket {
            group,
            inviter,
            addrs,
            invite_secret,
            expires_at_ms,
        })
    }

    /// Syncs `group` once with the member whose endpoint is `peer` at `addrs`.
    pub async fn sync_with(
        &self,
        group: GroupId,
        peer: [u8; 32],
        addrs: &[SocketAddr],
    ) -> Result<SyncReport, NetError> {
        self.serve_group(group).await?;
        let served = self
            .served(&group)
            .ok_or(NetError::Internal("group not served".into()))?;
        let member = with_vault(&self.vault, move |v| Ok(v.session(&group)?.member_for_endpoint(&peer)))
            .await?
            .ok_or(NetError::Refused("that endpoint is not a member of the group"))?;
        let conn = dial(&served.endpoint, peer, addrs).await?;
        let (send, recv) = conn.open_bi().await.map_err(|e| NetError::Connection(e.to_string()))?;
        let mut framed = Framed::new(send, recv);
        let result = run_sync(&self.vault, group, member, true, &mut framed).await;
        finish_dialer(&conn, &mut framed, &result).await;
        let stats = result?;
        let addrs = addrs.to_vec();
        with_vault(&self.vault, move |v| v.remember_address(&group, &peer, &addrs)).await?;
        Ok(SyncReport { stats })
    }

    /// Joins the group of `ticket` as `display_name`, pulls its content, and serves it.
    pub async fn join(&self, ticket: &Ticket, display_name: &str) -> Result<GroupId, NetError> {
        let group = join(&self.vault, &self.config, ticket, display_name).await?;
        self.serve_group(group).await?;
        Ok(group)
    }

    /// Syncs `group` once with every endpoint in its address book (other than this one's).
    /// Returns how many peers were reached, and the last error if none was.
    pub async fn sync_all(&self, group: GroupId) -> Result<usize, NetError> {
        self.serve_group(group).await?;
        let me = self.address(&group).map(|(id, _)| id);
        let book = with_vault(&self.vault, move |v| v.addresses(&group)).await?;
        let mut reached = 0;
        let mut last_error = None;
        for (endpoint, addrs) in book.into_iter().filter(|(e, _)| Some(*e) != me) {
            match self.sync_with(group, endpoint, &addrs).await {
                Ok(_) => reached += 1,
                Err(e) => {
                    tracing::debug!(error = %e, "could not sync with a member");
                    last_error = Some(e);
                }
            }
        }
        match (reached, last_error) {
            (0, Some(e)) => Err(e),
            (0, None) => Err(NetError::Refused("no other member's address is known yet")),
            (n, _) => Ok(n),
        }
    }

    /// Closes every endpoint.
    pub async fn shutdown(self) {
        let served: Vec<Arc<Served>> = self
            .groups
            .lock()
            .map(|mut g| g.drain().map(|(_, s)| s).collect())
            .unwrap_or_default();
        for s in served {
            let _ = s.router.shutdown().await;
            s.endpoint.close().await;
        }
    }
}

async fn dial(endpoint: &Endpoint, peer: [u8; 32], addrs: &[SocketAddr]) -> Result<Connection, NetError> {
    let id = EndpointId::from_bytes(&peer).map_err(|_| NetError::Protocol("not an endpoint id".into()))?;
    let mut addr = EndpointAddr::new(id);
    for a in addrs {
        addr = addr.with_ip_addr(*a);
    }
    endpoint
        .connect(addr, ALPN)
        .await
        .map_err(|e| NetError::Connection(e.to_string()))
}

/// The dialer's polite ending: finish, drain, close with a code that says how it went.
async fn finish_dialer<T>(conn: &Connection, framed: &mut Framed, result: &Result<T, NetError>) {
    match result {
        Ok(_) => {
            let _ = framed.finish().await;
            conn.close(close_code::DONE.into(), b"done");
        }
        Err(NetError::Protocol(_)) | Err(NetError::Vault(VaultError::Protocol(_))) => {
            conn.close(close_code::PROTOCOL.into(), b"protocol error");
        }
        Err(_) => conn.close(close_code::PROTOCOL.into(), b"sync failed"),
    }
}

/// The joiner's side of an invitation: prove the ticket, become a member, pull the group.
pub async fn join(
    vault: &SharedVault,
    config: &NetConfig,
    ticket: &Ticket,
    display_name: &str,
) -> Result<GroupId, NetError> {
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
    let endpoint = bind_endpoint(&secrets.transport.seed(), config).await?;
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
) -> Result<GroupId, NetError> {
    let group = ticket.group;
    let me_endpoint = *endpoint.id().as_bytes();
    let conn = dial(endpoint, ticket.inviter, &ticket.addrs).await?;
    let (send, recv) = conn.open_bi().await.map_err(|e| NetError::Connection(e.to_string()))?;
    let mut framed = Framed::new(send, recv);
    let request = Message::JoinRequest {
        group,
        invite: ticket.invite_public(),
        proof: ticket.prove(&me_endpoint),
        keys: secrets.public_keys(&group),
        transport: TransportBinding::new(&group, &secrets.signing, me_endpoint),
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
    let result = run_sync(vault, group, inviter, true, &mut framed).await;
    finish_dialer(&conn, &mut framed, &result).await;
    result?;
    let (inviter_endpoint, addrs) = (ticket.inviter, ticket.addrs.clone());
    with_vault(vault, move |v| v.remember_address(&group, &inviter_endpoint, &addrs)).await?;
    Ok(group)
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
        c if c == u64::from(close_code::INVITE_UNKNOWN) => {
            NetError::Refused("that invitation is not known to the inviter")
        }
        c if c == u64::from(close_code::REFUSED) => NetError::Refused("the invitation proof was not accepted"),
        _ => NetError::Connection(reason.to_string()),
    }
}

/// Accepts connections for one group.
#[derive(Debug, Clone)]
struct Handler {
    group: GroupId,
    vault: SharedVault,
    me: [u8; 32],
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
    async fn serve(&self, conn: &Connection, remote: [u8; 32]) -> Result<(), (u32, String)> {
        let group = self.group;
        let protocol = |e: NetError| (close_code::PROTOCOL, e.to_string());
        let (send, recv) = conn
            .accept_bi()
            .await
            .map_err(|e| (close_code::PROTOCOL, e.to_string()))?;
        let mut framed = Framed::new(send, recv);
        let known = with_vault(&self.vault, move |v| {
            Ok(v.session(&group)?.member_for_endpoint(&remote))
        })
        .await
        .map_err(protocol)?;
        let peer = match known {
            Some(member) => member,
            None => {
                // Not a member: the only thing it may say is a valid join request.
                let first = framed.next_frame().await.map_err(protocol)?;
                let request = first.and_then(|b| Message::decode(&b).ok());
                let Some(Message::JoinRequest {
                    group: g,
                    invite,
                    proof,
                    keys,
                    transport,
                }) = request
                else {
                    return Err((close_code::REFUSED, "not a member".into()));
                };
                let valid = g == group
                    && verify_proof(&invite, &group, &self.me, &remote, &proof)
                    && keys.verify(&group)
                    && transport.key == remote
                    && transport.verify(&group, &keys.member);
                if !valid {
                    return Err((close_code::REFUSED, "invalid invitation proof".into()));
                }
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
                    NetError::Vault(VaultError::Invite(InviteError::Expired)) => {
                        (close_code::INVITE_EXPIRED, e.to_string())
                    }
                    NetError::Vault(VaultError::Invite(InviteError::Unknown)) => {
                        (close_code::INVITE_UNKNOWN, e.to_string())
                    }
                    other => protocol(other),
                })?;
                framed
                    .write_frames(&[Message::JoinAccepted { ops }.to_frame()])
                    .await
                    .map_err(protocol)?;
                member
            }
        };
        run_sync(&self.vault, group, peer, false, &mut framed)
            .await
            .map_err(protocol)?;
        framed.finish().await.map_err(protocol)?;
        Ok(())
    }
}
