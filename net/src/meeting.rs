//! Meeting mode: local-network discovery (mDNS) for one group, switched on by the member
//! on this device for a stated time, so a meeting room with Wi-Fi and no internet just
//! works — without letting anyone else in the room recognise the group or a person at the
//! next meeting.
//!
//! - **A meeting endpoint.** Each time meeting mode starts for a group (switched on, or the
//!   node starting with it on, and again every 12 hours however often it is renewed), the
//!   node binds a second endpoint under a fresh random key
//!   that is never written anywhere, and only that endpoint is announced and used in the
//!   room. Members recognise each other on it by presenting a transport binding to that
//!   key (the membership key signs it and it signs the membership key, as for the group
//!   endpoint); the side that was dialed presents itself back only after the dialer proved
//!   to be a current member. Nothing learned there enters the address book. The group's own
//!   endpoint, whose id is stable for an epoch, is never announced.
//! - **Names that change.** It announces itself and listens under the two service names
//!   of [`alongside_core::meeting::service_names`] (they change every quarter hour and
//!   with every epoch; only holders of the epoch key can compute them).
//! - **An end.** The setting says until when meeting mode is on
//!   ([`alongside_core::meeting::MeetingMode`]); a timer moves to the next names or stops
//!   everything at that time, and closes the meeting endpoint.
//!
//! The global switch (`NetConfig::lan == false`) keeps discovery off whatever the groups
//! say.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alongside_core::crypto::SigningSecret;
use alongside_core::group::{Presented, TransportBinding};
use alongside_core::ids::{GroupId, MemberId, short_hex};
use alongside_core::sync::Message;
use iroh::Endpoint;
use iroh::protocol::Router;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use n0_future::StreamExt;
use rand::Rng;
use tokio::task::JoinHandle;

use crate::accept::Handler;
use crate::conn::{Framed, with_vault};
use crate::live::{Mode, Peer, converse};
use crate::node::{Inner, NetError, bind_endpoint, close_dialer, dial, now_ms, refused_as_member};
use crate::presence::Call;
use crate::{ALPN, close_code};

/// The largest presentation a meeting endpoint answers with (about 200 bytes).
const PRESENT_LIMIT: usize = 4096;
/// How long the dialed side may take to present itself.
const PRESENT_TIMEOUT: Duration = Duration::from_secs(10);
/// First wait before meeting someone again after a conversation ended.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Longest wait between attempts to meet someone heard in the room.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often a dialer whose member is connected through the other side's call checks
/// whether that call still runs.
const CONNECTED_CHECK: Duration = Duration::from_secs(2);

/// Meeting mode running for one group.
struct Session {
    /// When it started (Unix ms): a session renewed again and again still gets a new key
    /// after [`alongside_core::meeting::LONGEST_ON_FOR_MS`].
    started: i64,
    /// When it ends (Unix ms).
    until: i64,
    /// The service names announced and listened under.
    names: [String; 2],
    /// The meeting endpoint (fresh key per session) and its accepting router.
    endpoint: Endpoint,
    router: Router,
    /// The meeting endpoint's key (to present it).
    secret: SigningSecret,
    /// The mDNS services' listeners (replaced when the names change).
    listeners: Vec<JoinHandle<()>>,
    /// Wakes [`apply`] at the next change of names or at the end.
    timer: Option<JoinHandle<()>>,
    /// One task per endpoint heard in the room, meeting it again and again.
    dialers: Arc<Mutex<HashMap<[u8; 32], JoinHandle<()>>>>,
}

impl Session {
    fn stop(self) {
        for task in self.listeners.into_iter().chain(self.timer) {
            task.abort();
        }
        if let Ok(mut dialers) = self.dialers.lock() {
            for (_, task) in dialers.drain() {
                task.abort();
            }
        }
        if let Ok(lookup) = self.endpoint.address_lookup() {
            lookup.clear();
        }
        let (router, endpoint) = (self.router, self.endpoint);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = router.shutdown().await;
                endpoint.close().await;
            });
        }
    }
}

/// The groups whose meeting mode is running on this node.
#[derive(Default)]
pub(crate) struct Lan {
    running: Mutex<HashMap<GroupId, Session>>,
    /// One [`apply`] at a time.
    applying: tokio::sync::Mutex<()>,
    /// Groups whose names are due to change or whose time is up: the supervisor applies
    /// them when woken.
    due: Mutex<Vec<GroupId>>,
}

impl Lan {
    /// Stops every group's discovery (the node is shutting down).
    pub(crate) fn stop_all(&self) {
        if let Ok(mut running) = self.running.lock() {
            for (_, s) in running.drain() {
                s.stop();
            }
        }
    }

    /// Stops `group`'s discovery (its endpoint is being replaced).
    pub(crate) fn stop(&self, group: &GroupId) {
        let session = self.running.lock().ok().and_then(|mut r| r.remove(group));
        if let Some(s) = session {
            s.stop();
        }
    }

    /// Whether meeting mode runs for `group`: until when, the service names and the
    /// meeting endpoint's id.
    pub(crate) fn status(&self, group: &GroupId) -> Option<(i64, [String; 2], [u8; 32])> {
        let running = self.running.lock().ok()?;
        let s = running.get(group)?;
        Some((s.until, s.names.clone(), *s.endpoint.id().as_bytes()))
    }

    /// The groups whose meeting mode is due to be applied again (see [`apply`]).
    pub(crate) fn take_due(&self) -> Vec<GroupId> {
        self.due.lock().map(|mut d| std::mem::take(&mut *d)).unwrap_or_default()
    }

    fn take(&self, group: &GroupId) -> Option<Session> {
        self.running.lock().ok()?.remove(group)
    }

    fn put(&self, group: GroupId, session: Session) {
        if let Ok(mut running) = self.running.lock() {
            running.insert(group, session);
        }
    }
}

/// Brings `group`'s meeting mode in line with its setting, the clock and the current
/// epoch: starts it, moves it to new names, or stops it (its time is up, or it was
/// switched off).
pub(crate) async fn apply(inner: &Arc<Inner>, group: GroupId) {
    let _one = inner.lan.applying.lock().await;
    if inner.served(&group).is_none() {
        inner.lan.stop(&group);
        return;
    }
    let now = now_ms();
    let wanted = if inner.config.lan {
        with_vault(&inner.shared, move |v| {
            let Some(until) = v.meeting_mode(&group, now)?.on_until(now) else {
                return Ok(None);
            };
            Ok(v.session(&group)?.lan_service_names(now).map(|names| (until, names)))
        })
        .await
        .unwrap_or(None)
    } else {
        None
    };
    let running = inner.lan.take(&group).and_then(|s| {
        // Renewed past the longest stretch: start again under a fresh key.
        if now.saturating_sub(s.started) >= alongside_core::meeting::LONGEST_ON_FOR_MS {
            s.stop();
            return None;
        }
        Some(s)
    });
    let Some((until, names)) = wanted else {
        if let Some(s) = running {
            s.stop();
            tracing::info!(group = %short_hex(&group.0), "meeting mode off");
        }
        return;
    };
    let mut session = match running {
        Some(s) => s,
        None => match start(inner, group).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not open the meeting endpoint");
                return;
            }
        },
    };
    if session.names != names || session.listeners.is_empty() {
        announce(inner, group, &mut session, names);
    }
    session.until = until;
    if let Some(timer) = session.timer.take() {
        timer.abort();
    }
    let wake_at = alongside_core::meeting::next_names_change_ms(now).min(until).min(
        session
            .started
            .saturating_add(alongside_core::meeting::LONGEST_ON_FOR_MS),
    );
    let wait = Duration::from_millis(u64::try_from(wake_at.saturating_sub(now)).unwrap_or(0));
    let timer_inner = inner.clone();
    session.timer = Some(tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        // The supervisor applies it (apply stops this timer).
        if let Ok(mut due) = timer_inner.lan.due.lock() {
            due.push(group);
        }
        timer_inner.wake.notify_one();
    }));
    inner.lan.put(group, session);
}

/// Opens a meeting endpoint under a fresh key for `group`.
async fn start(inner: &Arc<Inner>, group: GroupId) -> Result<Session, NetError> {
    // A key nobody can link to this device: fresh randomness from the system, kept only in
    // memory for as long as the session runs.
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    let secret = SigningSecret::from_seed(&fresh);
    fresh.fill(0);
    let seed = secret.seed();
    let me = with_vault(&inner.shared, move |v| Ok(v.session(&group)?.me())).await?;
    let endpoint = bind_endpoint(&seed, &inner.config, 0).await?;
    let id = *endpoint.id().as_bytes();
    let handler = Handler::for_meeting(group, inner.clone(), id, me, inner.gate(group), secret.clone());
    let router = Router::builder(endpoint.clone()).accept(ALPN, handler).spawn();
    tracing::info!(group = %short_hex(&group.0), endpoint = %endpoint.id(), "meeting mode on: a meeting endpoint opened");
    Ok(Session {
        started: now_ms(),
        until: 0,
        names: [String::new(), String::new()],
        endpoint,
        router,
        secret,
        listeners: Vec::new(),
        timer: None,
        dialers: Arc::default(),
    })
}

/// Announces the meeting endpoint under `names` (and listens under them), replacing what
/// it announced before.
fn announce(inner: &Arc<Inner>, group: GroupId, session: &mut Session, names: [String; 2]) {
    for task in session.listeners.drain(..) {
        task.abort();
    }
    let Ok(lookup) = session.endpoint.address_lookup() else {
        return;
    };
    lookup.clear();
    let me = *session.endpoint.id().as_bytes();
    for name in &names {
        let mdns = match MdnsAddressLookup::builder()
            .service_name(name.clone())
            .build(session.endpoint.id())
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "local-network discovery is not available here");
                continue;
            }
        };
        lookup.add(mdns.clone());
        let (inner, endpoint, secret, dialers) = (
            inner.clone(),
            session.endpoint.clone(),
            session.secret.clone(),
            session.dialers.clone(),
        );
        session.listeners.push(tokio::spawn(async move {
            let mut events = mdns.subscribe().await;
            // Keeps the service alive as long as the listener runs.
            let _mdns = mdns;
            while let Some(event) = events.next().await {
                let DiscoveryEvent::Discovered { endpoint_info, .. } = event else {
                    continue;
                };
                let peer = *endpoint_info.endpoint_id.as_bytes();
                let addrs: Vec<SocketAddr> = endpoint_info.ip_addrs().copied().collect();
                if peer == me || addrs.is_empty() {
                    continue;
                }
                if let Ok(mut dialers) = dialers.lock()
                    && dialers.get(&peer).is_none_or(|d| d.is_finished())
                {
                    let task = keep_meeting(inner.clone(), group, endpoint.clone(), secret.clone(), peer, addrs);
                    dialers.insert(peer, tokio::spawn(task));
                }
            }
        }));
    }
    tracing::debug!(group = %short_hex(&group.0), "meeting mode: announcing under new names");
    session.names = names;
}

/// Meets the device behind meeting endpoint `peer` and keeps meeting it while the session
/// lasts: after a conversation ends it tries again (sooner after one that worked), unless
/// that device refused us as a member or is not a member here.
async fn keep_meeting(
    inner: Arc<Inner>,
    group: GroupId,
    endpoint: Endpoint,
    secret: SigningSecret,
    peer: [u8; 32],
    addrs: Vec<SocketAddr>,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let (member, result) = meet(&inner, group, &endpoint, &secret, peer, &addrs).await;
        match result {
            Err(NetError::NotAMember | NetError::Refused(_)) => return,
            Ok(()) | Err(NetError::Crossed) => retry = FIRST_RETRY,
            Err(e) => {
                tracing::debug!(error = %e, "meeting conversation ended");
                retry = retry.saturating_mul(2).min(MAX_RETRY);
            }
        }
        tokio::time::sleep(retry).await;
        // Their call carries the conversation while it runs.
        while member.is_some_and(|m| inner.is_connected(group, m)) {
            tokio::time::sleep(CONNECTED_CHECK).await;
        }
    }
}

/// One conversation with the device behind meeting endpoint `peer`, dialed from this
/// session's meeting `endpoint`: we present ourselves bound to its key, it presents itself
/// back, and it must be a current member's genuine binding to `peer`. Returns the member
/// it turned out to be (if it said).
async fn meet(
    inner: &Arc<Inner>,
    group: GroupId,
    endpoint: &Endpoint,
    secret: &SigningSecret,
    peer: [u8; 32],
    addrs: &[SocketAddr],
) -> (Option<MemberId>, Result<(), NetError>) {
    let secret = secret.clone();
    let present = with_vault(&inner.shared, move |v| {
        let session = v.session(&group)?;
        Ok((
            session.me(),
            Message::Present {
                group,
                member: session.me(),
                transport: TransportBinding::new(&group, &session.secrets().signing, &secret),
            },
        ))
    })
    .await;
    let (me, present) = match present {
        Ok(p) => p,
        Err(e) => return (None, Err(e)),
    };
    let conn = match dial(endpoint, peer, addrs, None).await {
        Ok(c) => c,
        Err(e) => return (None, Err(e)),
    };
    let member = match presented_back(inner, group, &conn, peer, present).await {
        Ok(m) => m,
        Err(e) => {
            let e = refused_as_member(&conn, e);
            conn.close(close_code::REFUSED.into(), b"not a member");
            return (None, Err(e));
        }
    };
    let (framed, member) = member;
    let call = Call::Dialed {
        conn: conn.clone(),
        live: true,
    };
    let Some(presence) = inner.present(group, member, me, call) else {
        conn.close(close_code::CROSSED.into(), b"calls crossed: the other call is kept");
        return (Some(member), Err(NetError::Crossed));
    };
    let peer = Peer {
        group,
        member,
        initiator: true,
    };
    let mode = Mode::Live {
        anti_entropy: inner.config.anti_entropy,
    };
    let result = converse(&inner.shared, peer, framed, mode).await;
    let result = result.map_err(|e| match presence.gave_way() {
        true => NetError::Crossed,
        false => refused_as_member(&conn, e),
    });
    drop(presence);
    close_dialer(&conn, &result);
    if result.is_ok() {
        crate::supervisor::settle(inner, group).await;
    }
    (Some(member), result.map(|_| ()))
}

/// Presents ourselves on `conn` and reads the dialed side's presentation: it must be a
/// current member's genuine binding to `peer`, the key we dialed.
async fn presented_back(
    inner: &Arc<Inner>,
    group: GroupId,
    conn: &iroh::endpoint::Connection,
    peer: [u8; 32],
    present: Message,
) -> Result<(Framed, MemberId), NetError> {
    let (send, recv) = conn.open_bi().await.map_err(|e| NetError::Connection(e.to_string()))?;
    let mut framed = Framed::new(send, recv);
    framed.write_frames(&[present.to_frame()]).await?;
    framed.set_limit(PRESENT_LIMIT);
    let first = tokio::time::timeout(PRESENT_TIMEOUT, framed.next_frame())
        .await
        .map_err(|_| NetError::Connection("the other device did not say who it is".into()))??;
    framed.set_limit(usize::MAX);
    let Some(Message::Present {
        group: g,
        member,
        transport,
    }) = first.and_then(|b| Message::decode(&b).ok())
    else {
        return Err(NetError::Protocol("expected a presentation".into()));
    };
    let who = with_vault(&inner.shared, move |v| {
        Ok(v.session(&group)?.presented(&member, &transport, &peer))
    })
    .await?;
    if g != group || who != Presented::Member {
        return Err(NetError::Refused("that device is not a member of the group"));
    }
    Ok((framed, member))
}
