//! The node: one iroh endpoint per group membership, an accept handler per endpoint, the
//! dialing side of sync, and (once [`Node::go_live`] is called) a supervisor that keeps a
//! live connection to every member it knows an address for.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alongside_core::crypto::SigningSecret;
use alongside_core::group::TransportBinding;
use alongside_core::ids::{DocId, GroupId, MemberId};
use alongside_core::invite::Ticket;
use alongside_core::sync::{Message, SyncStats};
use alongside_core::vault::{Vault, VaultError};
use iroh::endpoint::{Connection, PortmapperConfig, QuicTransportConfig, presets};
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, EndpointId, RelayMode, SecretKey};
use thiserror::Error;
use tokio::sync::{Notify, broadcast};

use crate::accept::Handler;
use crate::conn::{Framed, Shared, SharedVault, with_vault};
use crate::gate::Gate;
use crate::live::{Mode, Peer, converse};
use crate::presence::{Call, Conversation, admit};
use crate::{ALPN, close_code, supervisor};

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
    /// The other device no longer counts this device's member as a member of the group.
    #[error("the other device does not accept this device as a member of the group")]
    NotAMember,
    /// The peer left the group or was removed while connected; the conversation ended.
    #[error("the other device's member is no longer in the group")]
    Departed,
    /// The member's device called this one at the same moment, and that call is kept
    /// (one live conversation per pair of devices); nothing went wrong.
    #[error("the other device called at the same moment; its call is used")]
    Crossed,
    /// The network settings are not usable.
    #[error("{0}")]
    Config(String),
    /// Something inside this node went wrong.
    #[error("internal error: {0}")]
    Internal(String),
}

/// What the node may reach and how often it reconciles. Address lookup and port mapping
/// are always off; relays only if [`NetConfig::relay`] says so.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The address endpoints bind to (port chosen by the system).
    pub bind_ip: IpAddr,
    /// Which relays endpoints use.
    pub relay: RelayChoice,
    /// Root certificates (DER) to trust for a self-hosted relay with its own certificate
    /// authority. Empty: the usual web roots.
    pub relay_roots: Vec<Vec<u8>>,
    /// Whether local-network discovery may run at all (a group's meeting mode switches
    /// it on for that group; `false` is the global kill switch).
    pub lan: bool,
    /// Time between anti-entropy rounds on a live connection.
    pub anti_entropy: Duration,
    /// After an epoch change moves a group to a new endpoint key, how long the previous
    /// endpoint still answers (no longer on the local network), so members who know only
    /// the old id reach this device and learn the new one. It refuses anyone who is not a
    /// current member, like every endpoint. Zero: closed at once.
    pub endpoint_grace: Duration,
}

/// Which iroh relays a node uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayChoice {
    /// None: the node reaches only the addresses it is given.
    Disabled,
    /// iroh's public relays.
    Default,
    /// A relay the group runs itself.
    Custom(iroh::RelayUrl),
}

impl std::str::FromStr for RelayChoice {
    type Err = NetError;

    fn from_str(text: &str) -> Result<RelayChoice, NetError> {
        match text {
            "disabled" | "off" | "none" => Ok(RelayChoice::Disabled),
            "default" => Ok(RelayChoice::Default),
            url if url.starts_with("https://") || url.starts_with("http://") => url
                .parse()
                .map(RelayChoice::Custom)
                .map_err(|_| NetError::Config(format!("'{url}' is not a relay URL"))),
            other => Err(NetError::Config(format!(
                "'{other}' is not a relay mode: use disabled, default, or a relay's https:// URL"
            ))),
        }
    }
}

impl NetConfig {
    /// Loopback only, relays off: for tests and demos.
    pub fn loopback() -> NetConfig {
        NetConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            relay: RelayChoice::Disabled,
            relay_roots: Vec::new(),
            lan: false,
            anti_entropy: Duration::from_secs(20),
            endpoint_grace: Duration::from_secs(3600),
        }
    }
}

/// The outcome of one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// The engine's counters.
    pub stats: SyncStats,
}

/// What a running node tells its user interface.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node started serving a group (at start, or one created or joined later).
    Serving {
        /// The group.
        group: GroupId,
    },
    /// A member is connected now (first connection to them).
    Connected {
        /// The group.
        group: GroupId,
        /// The member.
        member: MemberId,
    },
    /// The last connection to a member ended.
    Disconnected {
        /// The group.
        group: GroupId,
        /// The member.
        member: MemberId,
    },
    /// Changes from a member were applied (durably).
    Applied {
        /// The group.
        group: GroupId,
        /// Whose connection brought them.
        from: MemberId,
        /// The document changed.
        doc: DocId,
        /// How many changes.
        changes: usize,
    },
    /// New membership operations from a member were applied (someone joined, left, was
    /// removed or changed role, or the key rotated).
    Membership {
        /// The group.
        group: GroupId,
    },
    /// A reconciliation round with a member completed.
    CaughtUp {
        /// The group.
        group: GroupId,
        /// The member.
        member: MemberId,
        /// Rounds completed on this connection so far.
        rounds: u64,
        /// Everything that was durable on this device at this time (Unix ms) or earlier
        /// is now held by the member (the round started after it).
        covers_from_ms: i64,
    },
}

/// Meeting mode running for a group (see [`Node::meeting`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeetingStatus {
    /// When it stops by itself (Unix ms) unless renewed.
    pub until_ms: i64,
    /// The two mDNS service names announced and listened under now.
    pub services: [String; 2],
    /// The id of the meeting endpoint announced in the room (a fresh key per session).
    pub endpoint: [u8; 32],
}

/// How long a dial may take before the address counts as unreachable.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Served {
    pub(crate) endpoint: Endpoint,
    router: Router,
    /// The endpoint's secret key seed (to present it when dialing).
    seed: [u8; 32],
}

/// Most endpoints of earlier epochs one group keeps answering at a time.
const MAX_RETIRED: usize = 2;

/// What the node's tasks share.
pub(crate) struct Inner {
    pub(crate) shared: SharedVault,
    pub(crate) config: NetConfig,
    groups: Mutex<HashMap<GroupId, Arc<Served>>>,
    /// Endpoints of earlier epochs still answering during their grace period, by group.
    retired: Mutex<Vec<(GroupId, Arc<Served>)>>,
    /// Open conversations per member, oldest first.
    connected: Mutex<HashMap<(GroupId, MemberId), Vec<Conversation>>>,
    /// Numbers conversations (to find one's slot again).
    next_conversation: std::sync::atomic::AtomicU64,
    /// Wakes the supervisor (an address learned, a connection ended).
    pub(crate) wake: Notify,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Held while a group's endpoint is being bound.
    serving: tokio::sync::Mutex<()>,
    /// Meeting mode (local-network discovery) per group.
    pub(crate) lan: crate::meeting::Lan,
    /// Set by shutdown: no endpoint is bound after it.
    closing: std::sync::atomic::AtomicBool,
    /// Who may connect to each group's endpoints (`gate.rs`), kept across epochs.
    gates: Arc<Mutex<HashMap<GroupId, Arc<Gate>>>>,
    /// Keeps the gates' known endpoint ids up to date (`gate::keep_known`).
    keeping_known: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The network side of an unlocked profile. Clones are handles to the same node (for
/// tasks that run a sync or a join while the owner goes on); shutting one down shuts the
/// node down.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Flow-control credit a peer gets on a connection (its one stream included): what it can
/// make this node buffer below the protocol before it must wait for us to read.
pub(crate) const CONNECTION_WINDOW: u32 = 1024 * 1024;

/// QUIC limits of every endpoint: one bidirectional stream at a time per connection (a
/// conversation uses exactly one; a join too), no unidirectional streams and no
/// datagrams (we use neither), and [`CONNECTION_WINDOW`] of credit per connection. QUIC's
/// defaults would let any peer that completes a handshake — a stranger, for the seconds
/// before it must present itself — open 200 streams of 1.25 MB each that we never read,
/// all buffered here (`RELIABILITY.md`, "Bounded resources").
fn transport_limits() -> QuicTransportConfig {
    QuicTransportConfig::builder()
        .max_concurrent_bidi_streams(1u32.into())
        .max_concurrent_uni_streams(0u32.into())
        .stream_receive_window(CONNECTION_WINDOW.into())
        .receive_window(CONNECTION_WINDOW.into())
        .datagram_receive_buffer_size(None)
        .build()
}

/// Binds an endpoint with key `seed` on `port` (0: any), with the relays `config` allows.
pub(crate) async fn bind_endpoint(seed: &[u8; 32], config: &NetConfig, port: u16) -> Result<Endpoint, NetError> {
    let relay = match &config.relay {
        RelayChoice::Disabled => RelayMode::Disabled,
        RelayChoice::Default => RelayMode::Default,
        RelayChoice::Custom(url) => RelayMode::custom([url.clone()]),
    };
    let mut builder = Endpoint::builder(presets::Minimal);
    if config.relay != RelayChoice::Disabled && !config.relay_roots.is_empty() {
        let roots = config
            .relay_roots
            .iter()
            .map(|der| rustls_pki_types::CertificateDer::from(der.clone()));
        builder = builder.ca_tls_config(iroh::tls::CaTlsConfig::custom_roots(roots));
    }
    let builder = builder
        .transport_config(transport_limits())
        .relay_mode(relay)
        .clear_address_lookup()
        .portmapper_config(PortmapperConfig::Disabled)
        .secret_key(SecretKey::from_bytes(seed))
        .alpns(vec![ALPN.to_vec()]);
    bind_only(builder, SocketAddr::new(config.bind_ip, port))?
        .bind()
        .await
        .map_err(|e| NetError::Bind(e.to_string()))
}

/// Asks `builder` to bind exactly `addr`. iroh's builder comes with a socket on `0.0.0.0`
/// and one on `[::]`, and `bind_addr` replaces only the one of its own family: bound to
/// `127.0.0.1`, an endpoint would still listen on every IPv6 address. So a specific
/// address clears both first. An unspecified one (`0.0.0.0` or `::`, "every interface")
/// keeps the other family's socket too, as asked.
fn bind_only(builder: iroh::endpoint::Builder, addr: SocketAddr) -> Result<iroh::endpoint::Builder, NetError> {
    let builder = match addr.ip().is_unspecified() {
        true => builder,
        false => builder.clear_ip_transports(),
    };
    builder.bind_addr(addr).map_err(|e| NetError::Bind(e.to_string()))
}

/// Whether `addr` can be dialed by someone else: not an unspecified address (`0.0.0.0`,
/// `[::]`: "every interface" to a listener, this very machine to a dialer) nor port 0.
fn is_dialable(addr: &SocketAddr) -> bool {
    !addr.ip().is_unspecified() && addr.port() != 0
}

/// A bare endpoint on loopback with `seed` as its key and everything outside off (no
/// relay, no address lookup, no port mapping), serving no protocol. Tests use it to play a
/// foreign or misbehaving peer by hand; it is not part of the node's API.
#[doc(hidden)]
pub async fn loopback_endpoint(seed: &[u8; 32]) -> Result<Endpoint, NetError> {
    let builder = Endpoint::builder(presets::Minimal)
        .relay_mode(RelayMode::Disabled)
        .clear_address_lookup()
        .portmapper_config(PortmapperConfig::Disabled)
        .secret_key(SecretKey::from_bytes(seed));
    bind_only(builder, SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0)))?
        .bind()
        .await
        .map_err(|e| NetError::Bind(e.to_string()))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Counts a member as connected while it lives.
pub(crate) struct Presence {
    inner: Arc<Inner>,
    key: (GroupId, MemberId),
    id: u64,
    gave_way: Arc<AtomicBool>,
}

impl Presence {
    /// Whether this conversation was closed because the member's call crossed ours.
    pub(crate) fn gave_way(&self) -> bool {
        self.gave_way.load(Ordering::SeqCst)
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        let gone = self.inner.connected.lock().is_ok_and(|mut c| {
            let Some(list) = c.get_mut(&self.key) else {
                return false;
            };
            list.retain(|conversation| conversation.id != self.id);
            let gone = list.is_empty();
            if gone {
                c.remove(&self.key);
            }
            gone
        });
        if gone {
            self.inner.shared.emit(NodeEvent::Disconnected {
                group: self.key.0,
                member: self.key.1,
            });
        }
        self.inner.wake.notify_one();
    }
}

impl Inner {
    pub(crate) fn served(&self, group: &GroupId) -> Option<Arc<Served>> {
        self.groups.lock().ok()?.get(group).cloned()
    }

    pub(crate) fn served_groups(&self) -> Vec<GroupId> {
        self.groups
            .lock()
            .map(|g| g.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Marks `member` connected until the returned guard drops, after the rules of
    /// [`admit`]: the member's oldest dialed-in connection beyond the cap is closed, and
    /// where calls crossed, ours gives way if `me` is the larger id (`None`: this call is
    /// not to be started).
    pub(crate) fn present(
        self: &Arc<Self>,
        group: GroupId,
        member: MemberId,
        me: MemberId,
        call: Call,
    ) -> Option<Presence> {
        let yields = me > member;
        let id = self
            .next_conversation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let gave_way = Arc::new(AtomicBool::new(false));
        let (first, closing) = self.connected.lock().ok().and_then(|mut c| {
            let list = c.entry((group, member)).or_default();
            let closing = admit(list, id, call, yields, &gave_way)?;
            Some((list.len() == 1, closing))
        })?;
        for (conn, code, reason) in closing {
            conn.close(code.into(), reason);
        }
        if first {
            self.shared.emit(NodeEvent::Connected { group, member });
        }
        Some(Presence {
            inner: self.clone(),
            key: (group, member),
            id,
            gave_way,
        })
    }

    /// The gate of `group`'s endpoints (created on first use; kept across epochs, so an
    /// endpoint that is retired shares it with the new one).
    pub(crate) fn gate(&self, group: GroupId) -> Arc<Gate> {
        match self.gates.lock() {
            Ok(mut gates) => gates.entry(group).or_default().clone(),
            Err(_) => Arc::new(Gate::default()),
        }
    }

    pub(crate) fn is_connected(&self, group: GroupId, member: MemberId) -> bool {
        self.connected.lock().is_ok_and(|c| c.contains_key(&(group, member)))
    }

    /// Binds the endpoint of `group` (its membership's transport key) and accepts on it.
    pub(crate) async fn serve_group(self: &Arc<Self>, group: GroupId) -> Result<(), NetError> {
        // One at a time, so a group is never bound twice (its address must be one).
        let _serving = self.serving.lock().await;
        if self.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(NetError::Internal("the node is shutting down".into()));
        }
        let (seed, member) = with_vault(&self.shared, move |v| {
            let session = v.session(&group)?;
            Ok((*session.transport_secret().seed(), session.me()))
        })
        .await?;
        let me = *SecretKey::from_bytes(&seed).public().as_bytes();
        if let Some(current) = self.served(&group) {
            if *current.endpoint.id().as_bytes() == me {
                return Ok(());
            }
            // A new epoch, a new endpoint key.
            self.retire(group, current).await;
        }
        // Keep the port this group's endpoint had last time, so members who only know that
        // address still find it after a restart; any free port if it is taken.
        let last_port = with_vault(&self.shared, move |v| {
            Ok(v.addresses(&group)?
                .into_iter()
                .find(|(e, _)| *e == me)
                .and_then(|(_, a)| a.first().map(|a| a.port())))
        })
        .await?;
        let endpoint = match last_port {
            Some(port) => match bind_endpoint(&seed, &self.config, port).await {
                Ok(ep) => ep,
                Err(_) => bind_endpoint(&seed, &self.config, 0).await?,
            },
            None => bind_endpoint(&seed, &self.config, 0).await?,
        };
        let bound: Vec<SocketAddr> = endpoint
            .bound_sockets()
            .into_iter()
            .filter(|a| a.is_ipv4() == self.config.bind_ip.is_ipv4())
            .collect();
        with_vault(&self.shared, move |v| v.remember_address(&group, &me, &bound)).await?;
        let gate = self.gate(group);
        crate::gate::refresh(&self.shared, &gate, group).await;
        let handler = Handler::new(group, self.clone(), *endpoint.id().as_bytes(), member, gate);
        let router = Router::builder(endpoint.clone()).accept(ALPN, handler).spawn();
        let served = Arc::new(Served { endpoint, router, seed });
        self.groups
            .lock()
            .map_err(|_| NetError::Internal("node lock poisoned".into()))?
            .insert(group, served);
        self.shared.emit(NodeEvent::Serving { group });
        crate::meeting::apply(self, group).await;
        self.wake.notify_one();
        Ok(())
    }

    /// Takes the group's endpoint of the previous epoch out of service: it stops
    /// advertising itself on the local network at once, keeps its connections and answers
    /// for [`NetConfig::endpoint_grace`] (refusing anyone who is not a current member),
    /// then closes.
    async fn retire(self: &Arc<Self>, group: GroupId, old: Arc<Served>) {
        self.lan.stop(&group);
        if let Ok(lookup) = old.endpoint.address_lookup() {
            lookup.clear();
        }
        if let Ok(mut groups) = self.groups.lock() {
            groups.remove(&group);
        }
        // At most two earlier endpoints per group answer at a time (a member rotating
        // again and again must not pile up sockets): the oldest closes now.
        let evicted: Vec<Arc<Served>> = match self.retired.lock() {
            Ok(mut list) => {
                list.push((group, old.clone()));
                let of_group = list.iter().filter(|(g, _)| *g == group).count();
                let mut extra = of_group.saturating_sub(MAX_RETIRED);
                let mut out = Vec::new();
                list.retain(|(g, s)| {
                    if *g == group && extra > 0 {
                        extra -= 1;
                        out.push(s.clone());
                        false
                    } else {
                        true
                    }
                });
                out
            }
            Err(_) => Vec::new(),
        };
        for s in evicted {
            let _ = s.router.shutdown().await;
            s.endpoint.close().await;
        }
        let inner = self.clone();
        let grace = self.config.endpoint_grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Ok(mut list) = inner.retired.lock() {
                list.retain(|(_, r)| !Arc::ptr_eq(r, &old));
            }
            let _ = old.router.shutdown().await;
            old.endpoint.close().await;
        });
    }

    /// Dials the member behind `peer` and runs a conversation with it in `mode`.
    pub(crate) async fn converse_with(
        self: &Arc<Self>,
        group: GroupId,
        peer: [u8; 32],
        addrs: &[SocketAddr],
        mode: Mode,
    ) -> Result<SyncReport, NetError> {
        self.serve_group(group).await?;
        let served = self
            .served(&group)
            .ok_or(NetError::Internal("group not served".into()))?;
        let seed = served.seed;
        let (me, member, relay, present) = with_vault(&self.shared, move |v| {
            let session = v.session(&group)?;
            let me = session.me();
            // Who we are, bound to the endpoint key we dial from.
            let present = Message::Present {
                group,
                member: session.me(),
                transport: TransportBinding::new(&group, &session.secrets().signing, &SigningSecret::from_seed(&seed)),
            };
            Ok((
                me,
                v.endpoint_member(&group, &peer)?,
                v.relay_of(&group, &peer)?,
                present,
            ))
        })
        .await?;
        let member = member.ok_or(NetError::Refused("that endpoint is not a member of the group"))?;
        let conn = dial(&served.endpoint, peer, addrs, relay.as_deref()).await?;
        let (send, recv) = conn.open_bi().await.map_err(|e| NetError::Connection(e.to_string()))?;
        let mut framed = Framed::new(send, recv);
        framed.write_frames(&[present.to_frame()]).await?;
        let call = Call::Dialed {
            conn: conn.clone(),
            live: matches!(mode, Mode::Live { .. }),
        };
        let Some(presence) = self.present(group, member, me, call) else {
            conn.close(close_code::CROSSED.into(), b"calls crossed: the other call is kept");
            return Err(NetError::Crossed);
        };
        let result = converse(
            &self.shared,
            Peer {
                group,
                member,
                initiator: true,
            },
            framed,
            mode,
        )
        .await;
        // (Read how the peer closed before closing ourselves.)
        let result = result.map_err(|e| match presence.gave_way() {
            true => NetError::Crossed,
            false => refused_as_member(&conn, e),
        });
        drop(presence);
        // A member who was gone there is heard out and told so, and the stream ends
        // before the refusal arrives: what this device now knows says why it ended.
        let result = match result {
            Err(e) if !matches!(e, NetError::NotAMember) => {
                let gone = with_vault(&self.shared, move |v| {
                    let s = v.session(&group)?;
                    Ok(!s.membership().is_member(&s.me()))
                })
                .await
                .unwrap_or(false);
                Err(if gone { NetError::NotAMember } else { e })
            }
            other => other,
        };
        close_dialer(&conn, &result);
        let stats = result?;
        crate::supervisor::settle(self, group).await;
        let addrs = addrs.to_vec();
        with_vault(&self.shared, move |v| v.remember_address(&group, &peer, &addrs)).await?;
        self.wake.notify_one();
        Ok(SyncReport { stats })
    }
}

impl Node {
    /// Starts serving every group of `vault`.
    pub async fn start(vault: Vault, config: NetConfig) -> Result<Node, NetError> {
        let groups = vault.group_ids()?;
        let node = Node {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared::new(vault)),
                config,
                groups: Mutex::new(HashMap::new()),
                retired: Mutex::new(Vec::new()),
                connected: Mutex::new(HashMap::new()),
                next_conversation: std::sync::atomic::AtomicU64::new(0),
                wake: Notify::new(),
                supervisor: Mutex::new(None),
                serving: tokio::sync::Mutex::new(()),
                lan: crate::meeting::Lan::default(),
                closing: std::sync::atomic::AtomicBool::new(false),
                gates: Arc::new(Mutex::new(HashMap::new())),
                keeping_known: Mutex::new(None),
            }),
        };
        let inner = &node.inner;
        let keeping = tokio::spawn(crate::gate::keep_known(
            Arc::downgrade(&inner.shared),
            inner.gates.clone(),
            inner.shared.fresh.subscribe(),
        ));
        if let Ok(mut slot) = inner.keeping_known.lock() {
            *slot = Some(keeping);
        }
        for g in groups {
            // One group that cannot be read (damaged on this device) must not keep the
            // others from being served; the person is told where the group is listed.
            match node.serve_group(g).await {
                Ok(()) => {}
                Err(NetError::Vault(e)) => {
                    tracing::warn!(group = %alongside_core::ids::short_hex(&g.0), error = %e, "a group could not be read, so it is not served");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(node)
    }

    /// Keeps a live connection to every member in the address books, redialing with
    /// backoff after errors, and serves groups created or joined while running.
    pub fn go_live(&self) {
        if let Ok(mut slot) = self.inner.supervisor.lock()
            && slot.is_none()
        {
            *slot = Some(tokio::spawn(supervisor::run(self.inner.clone())));
        }
    }

    /// Subscribes to what the node does (connections, applied changes, rounds).
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.inner.shared.events.subscribe()
    }

    /// Runs `f` on the profile in a blocking task; whatever it made durable is pushed to
    /// connected members at once.
    pub async fn with_vault<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vault) -> Result<T, VaultError> + Send + 'static,
    ) -> Result<T, NetError> {
        with_vault(&self.inner.shared, f).await
    }

    /// Binds the endpoint of `group` (its membership's transport key) and accepts on it.
    pub async fn serve_group(&self, group: GroupId) -> Result<(), NetError> {
        self.inner.serve_group(group).await
    }

    /// Where `group`'s endpoint can be reached: its id and socket addresses (the bound
    /// address, or each interface's address when bound to all of them). Never an
    /// unspecified address such as `[::]:port`, which no one else can dial.
    pub fn address(&self, group: &GroupId) -> Option<([u8; 32], Vec<SocketAddr>)> {
        let served = self.inner.served(group)?;
        let bound = served.endpoint.bound_sockets();
        let mut addrs = if self.inner.config.bind_ip.is_unspecified() {
            let mut direct: Vec<SocketAddr> = served.endpoint.addr().ip_addrs().copied().collect();
            direct.sort_by_key(|a| (a.is_ipv6(), a.ip().is_loopback()));
            if direct.is_empty() { bound } else { direct }
        } else {
            bound
        };
        addrs.retain(is_dialable);
        Some((*served.endpoint.id().as_bytes(), addrs))
    }

    /// The local sockets `group`'s endpoint listens on (what `ss -lun` would show for it).
    pub fn bound_sockets(&self, group: &GroupId) -> Vec<SocketAddr> {
        self.inner
            .served(group)
            .map(|s| s.endpoint.bound_sockets())
            .unwrap_or_default()
    }

    /// The relay `group`'s endpoint is reachable through, if relays are on. Waits up to
    /// five seconds for the endpoint to choose and reach its relay (iroh measures the relays
    /// first, about three seconds; with no internet it never reaches one, and then there is
    /// none to give).
    pub async fn relay_url(&self, group: &GroupId) -> Option<String> {
        if self.inner.config.relay == RelayChoice::Disabled {
            return None;
        }
        let served = self.inner.served(group)?;
        let _ = tokio::time::timeout(Duration::from_secs(5), served.endpoint.online()).await;
        served.endpoint.addr().relay_urls().next().map(|u| u.to_string())
    }

    /// Meeting mode as it runs for `group` now, if it does.
    pub fn meeting(&self, group: &GroupId) -> Option<MeetingStatus> {
        let (until_ms, services, endpoint) = self.inner.lan.status(group)?;
        Some(MeetingStatus {
            until_ms,
            services,
            endpoint,
        })
    }

    /// Members of `group` with an open connection now.
    pub fn connected(&self, group: &GroupId) -> Vec<MemberId> {
        let mut out: Vec<MemberId> = self
            .inner
            .connected
            .lock()
            .map(|c| c.keys().filter(|(g, _)| g == group).map(|(_, m)| *m).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Issues an invitation to `group` valid until `expires_at_ms`, carrying this node's
    /// addresses.
    pub async fn invite(&self, group: GroupId, expires_at_ms: i64) -> Result<Ticket, NetError> {
        self.serve_group(group).await?;
        let (inviter, addrs) = self
            .address(&group)
            .ok_or(NetError::Internal("group not served".into()))?;
        let relay = self.relay_url(&group).await;
        let invite_secret = self.with_vault(move |v| v.create_invite(&group, expires_at_ms)).await?;
        Ok(Ticket {
            group,
            inviter,
            addrs,
            relay,
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
        self.inner.converse_with(group, peer, addrs, Mode::Once).await
    }

    /// Joins the group of `ticket` as `display_name`, pulls its content, and serves it.
    pub async fn join(&self, ticket: &Ticket, display_name: &str) -> Result<GroupId, NetError> {
        Ok(self.join_measured(ticket, display_name).await?.0)
    }

    /// [`Node::join`], also returning the counters of the first sync (for benchmarks).
    pub async fn join_measured(&self, ticket: &Ticket, display_name: &str) -> Result<(GroupId, SyncReport), NetError> {
        let (group, stats) = crate::join::join(&self.inner.shared, &self.inner.config, ticket, display_name).await?;
        self.serve_group(group).await?;
        // The inviter's address is in the book now: a live node connects at once.
        self.inner.wake.notify_one();
        Ok((group, SyncReport { stats }))
    }

    /// Syncs `group` once with every endpoint in its address book (other than this one's).
    /// Returns how many peers were reached, and the last error if none was.
    pub async fn sync_all(&self, group: GroupId) -> Result<usize, NetError> {
        self.serve_group(group).await?;
        let me = self.address(&group).map(|(id, _)| id);
        let mut book = self.with_vault(move |v| v.member_addresses(&group)).await?;
        // Announced keys first; then, once per member, an endpoint of an earlier epoch.
        book.sort_by_key(|a| !a.announced);
        let mut reached = 0;
        let mut last_error = None;
        let mut done: Vec<MemberId> = Vec::new();
        for a in book.into_iter().filter(|a| Some(a.endpoint) != me) {
            if done.contains(&a.member) {
                continue;
            }
            match self.sync_with(group, a.endpoint, &a.addrs).await {
                Ok(_) => {
                    reached += 1;
                    done.push(a.member);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not sync with a member");
                    // Being refused as a non-member says more than any other failure.
                    if !matches!(last_error, Some(NetError::NotAMember)) {
                        last_error = Some(e);
                    }
                }
            }
        }
        match (reached, last_error) {
            (0, Some(e)) => Err(e),
            (0, None) => Err(NetError::Refused("no other member's address is known yet")),
            (n, _) => Ok(n),
        }
    }

    /// Stops the supervisor and closes every endpoint (live connections end with them).
    pub async fn shutdown(self) {
        self.inner.closing.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wait for any bind in progress, so nothing is bound after the drain below.
        drop(self.inner.serving.lock().await);
        if let Some(task) = self.inner.supervisor.lock().ok().and_then(|mut s| s.take()) {
            task.abort();
        }
        if let Some(task) = self.inner.keeping_known.lock().ok().and_then(|mut s| s.take()) {
            task.abort();
        }
        self.inner.lan.stop_all();
        let served: Vec<Arc<Served>> = self
            .inner
            .groups
            .lock()
            .map(|mut g| g.drain().map(|(_, s)| s).collect())
            .unwrap_or_default();
        let retired: Vec<Arc<Served>> = self
            .inner
            .retired
            .lock()
            .map(|mut r| r.drain(..).map(|(_, s)| s).collect())
            .unwrap_or_default();
        for s in served.into_iter().chain(retired) {
            let _ = s.router.shutdown().await;
            s.endpoint.close().await;
        }
        // Close the store now: tasks still winding down (a conversation waiting for its
        // last acknowledgement, a retired endpoint's timer) must not keep it open.
        if let Ok(mut vault) = self.inner.shared.vault.lock() {
            vault.take();
        }
    }
}

/// Dials endpoint `peer` at its direct `addrs` and, if known, through `relay`.
pub(crate) async fn dial(
    endpoint: &Endpoint,
    peer: [u8; 32],
    addrs: &[SocketAddr],
    relay: Option<&str>,
) -> Result<Connection, NetError> {
    let id = EndpointId::from_bytes(&peer).map_err(|_| NetError::Protocol("not an endpoint id".into()))?;
    let mut addr = EndpointAddr::new(id);
    for a in addrs {
        addr = addr.with_ip_addr(*a);
    }
    if let Some(url) = relay.and_then(|r| r.parse::<iroh::RelayUrl>().ok()) {
        addr = addr.with_relay_url(url);
    }
    match tokio::time::timeout(DIAL_TIMEOUT, endpoint.connect(addr, ALPN)).await {
        Ok(connected) => connected.map_err(|e| NetError::Connection(e.to_string())),
        Err(_) => Err(NetError::Connection("nobody answered at that address".into())),
    }
}

/// A conversation that failed because the other device closed it as refused means this
/// device's member is not (or no longer) a member there.
pub(crate) fn refused_as_member(conn: &Connection, error: NetError) -> NetError {
    match conn.close_reason() {
        Some(iroh::endpoint::ConnectionError::ApplicationClosed(c))
            if u64::from(c.error_code) == u64::from(close_code::REFUSED) =>
        {
            NetError::NotAMember
        }
        _ => error,
    }
}

/// The dialer's ending: a close code that says how it went (the conversation already
/// finished its stream politely if it went well).
pub(crate) fn close_dialer<T>(conn: &Connection, result: &Result<T, NetError>) {
    match result {
        Ok(_) => conn.close(close_code::DONE.into(), b"done"),
        Err(NetError::Protocol(_)) | Err(NetError::Vault(VaultError::Protocol(_))) => {
            conn.close(close_code::PROTOCOL.into(), b"protocol error");
        }
        Err(NetError::Departed) => conn.close(close_code::REFUSED.into(), b"not a member"),
        Err(NetError::Crossed) => conn.close(close_code::CROSSED.into(), b"calls crossed"),
        Err(_) => conn.close(close_code::PROTOCOL.into(), b"sync failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_and_port_zero_are_never_handed_out() {
        for (addr, dialable) in [
            ("127.0.0.1:7000", true),
            ("[::1]:7000", true),
            ("192.168.1.20:7000", true),
            ("0.0.0.0:7000", false),
            ("[::]:7000", false),
            ("127.0.0.1:0", false),
        ] {
            assert_eq!(is_dialable(&addr.parse().unwrap()), dialable, "{addr}");
        }
    }
}
