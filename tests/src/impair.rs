//! A seeded UDP impairment proxy between network namespaces: the hostile network of
//! `netns-hostile`.
//!
//! The kernel here has no netem and no packet filter, so links are impaired in user space.
//! Each node runs in a [`Netns`](crate::netns::Netns) of its own that has nothing but a
//! loopback interface; the proxy is the one process with sockets in several of them.
//! [`Proxy::forward`] makes `127.0.0.1:port` inside one namespace lead to
//! `127.0.0.1:port` inside another, so an address a node learned on this machine's
//! loopback (from a ticket) now leads through the proxy, and no other path exists: iroh
//! cannot find a direct one around it.
//!
//! Every datagram that arrives is lost with probability [`Impairment::loss`], else held
//! for [`Impairment::delay`] ± [`Impairment::jitter`] (uniform), so datagrams sent close
//! together overtake each other. A link that is cut ([`Proxy::cut`]) drops everything in
//! both directions, including what was already held, until [`Proxy::heal`]. All chance
//! comes from one RNG seeded at [`Proxy::start`]; which datagram meets which draw depends
//! on timing, so a run is seeded, not replayable. What each direction carried is counted
//! ([`Proxy::carried`]), so a test can show the traffic went through the proxy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use crate::netns::udp_socket_in;

/// What a link does to each datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Impairment {
    /// The chance that a datagram is lost (0.0–1.0).
    pub loss: f64,
    /// How long a datagram is held on average.
    pub delay: Duration,
    /// How far the hold varies either side of `delay` (uniformly).
    pub jitter: Duration,
}

impl Impairment {
    /// A perfect link.
    pub const NONE: Impairment = Impairment {
        loss: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
    };
}

/// What one direction of a link did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    /// Datagrams delivered.
    pub packets: u64,
    /// Bytes delivered (UDP payload).
    pub bytes: u64,
    /// Datagrams dropped: lost by chance or on a cut link.
    pub dropped: u64,
}

/// The proxy; its tasks stop when it drops.
#[derive(Debug)]
pub struct Proxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The namespaces by index.
    places: Vec<String>,
    runtime: Handle,
    state: Mutex<State>,
    tasks: Mutex<Vec<AbortHandle>>,
}

#[derive(Debug)]
struct State {
    rng: StdRng,
    impairment: Impairment,
    /// Cut links, as (lower index, higher index).
    cut: BTreeSet<(usize, usize)>,
    /// Per direction (from, to).
    carried: BTreeMap<(usize, usize), Carried>,
}

impl State {
    fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut.contains(&(from.min(to), from.max(to)))
    }
}

impl Proxy {
    /// A proxy between the namespaces named in `places` (referred to by index from then
    /// on), its chance drawn from `seed`, its tasks run on `runtime`.
    pub fn start(runtime: Handle, seed: u64, impairment: Impairment, places: &[&str]) -> Proxy {
        Proxy {
            inner: Arc::new(Inner {
                places: places.iter().map(|p| p.to_string()).collect(),
                runtime,
                state: Mutex::new(State {
                    rng: StdRng::seed_from_u64(seed),
                    impairment,
                    cut: BTreeSet::new(),
                    carried: BTreeMap::new(),
                }),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Makes `127.0.0.1:port` inside each namespace of `from` lead, through the proxy, to
    /// `127.0.0.1:port` inside namespace `to`. Each sender gets a socket of its own in
    /// `to`, so the node there sees one address per peer and its replies find their way
    /// back.
    pub fn forward(&self, to: usize, port: u16, from: &[usize]) -> Result<()> {
        let target = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        for &f in from {
            let std_socket = udp_socket_in(&self.inner.places[f], target)?;
            let _runtime = self.inner.runtime.enter();
            let front = Arc::new(UdpSocket::from_std(std_socket).context("could not register the socket")?);
            let inner = self.inner.clone();
            let task = self
                .inner
                .runtime
                .spawn(async move { inner.front(f, to, front, target).await });
            self.inner.track(task.abort_handle());
        }
        Ok(())
    }

    /// Cuts the link between `a` and `b`: nothing crosses it either way, not even what
    /// the proxy already holds.
    pub fn cut(&self, a: usize, b: usize) {
        self.inner.lock().cut.insert((a.min(b), a.max(b)));
    }

    /// Heals the link between `a` and `b`.
    pub fn heal(&self, a: usize, b: usize) {
        self.inner.lock().cut.remove(&(a.min(b), a.max(b)));
    }

    /// What the direction `from` → `to` carried so far.
    pub fn carried(&self, from: usize, to: usize) -> Carried {
        self.inner.lock().carried.get(&(from, to)).copied().unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for task in self
            .inner
            .tasks
            .lock()
            .map(|mut t| std::mem::take(&mut *t))
            .unwrap_or_default()
        {
            task.abort();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn track(&self, task: AbortHandle) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Receives what senders in namespace `from` send to `target`'s port there, and
    /// passes it on from the sender's own socket in namespace `to`.
    async fn front(self: Arc<Self>, from: usize, to: usize, front: Arc<UdpSocket>, target: SocketAddr) {
        let mut sessions: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, sender)) = front.recv_from(&mut buf).await {
            let back = match sessions.get(&sender) {
                Some(back) => back.clone(),
                None => match self.session(from, to, front.clone(), sender) {
                    Ok(back) => {
                        sessions.insert(sender, back.clone());
                        back
                    }
                    Err(e) => {
                        eprintln!("impairment proxy: {e:#}");
                        continue;
                    }
                },
            };
            self.carry(from, to, back, target, buf[..n].to_vec());
        }
    }

    /// A socket in namespace `to` for `sender` (in `from`); what comes back to it from
    /// the node there returns to `sender` through `front`.
    fn session(
        self: &Arc<Self>,
        from: usize,
        to: usize,
        front: Arc<UdpSocket>,
        sender: SocketAddr,
    ) -> Result<Arc<UdpSocket>> {
        let std_socket = udp_socket_in(&self.places[to], SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        let _runtime = self.runtime.enter();
        let back = Arc::new(UdpSocket::from_std(std_socket)?);
        let inner = self.clone();
        let socket = back.clone();
        let task = self.runtime.spawn(async move {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, _)) = socket.recv_from(&mut buf).await {
                inner.carry(to, from, front.clone(), sender, buf[..n].to_vec());
            }
        });
        self.track(task.abort_handle());
        Ok(back)
    }

    /// Loses `packet` by chance or on a cut link, or sends it through `socket` to `dest`
    /// after the link's delay.
    fn carry(self: &Arc<Self>, from: usize, to: usize, socket: Arc<UdpSocket>, dest: SocketAddr, packet: Vec<u8>) {
        let hold = {
            let mut state = self.lock();
            let imp = state.impairment;
            let lost = state.is_cut(from, to) || (imp.loss > 0.0 && state.rng.random_bool(imp.loss));
            if lost {
                state.carried.entry((from, to)).or_default().dropped += 1;
                return;
            }
            let spread = imp.jitter.as_micros() as u64;
            let offset = if spread == 0 {
                0
            } else {
                state.rng.random_range(0..=2 * spread)
            };
            (imp.delay + Duration::from_micros(offset)).saturating_sub(imp.jitter)
        };
        let inner = self.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(hold).await;
            {
                let mut state = inner.lock();
                let cut = state.is_cut(from, to);
                let c = state.carried.entry((from, to)).or_default();
                if cut {
                    c.dropped += 1;
                    return;
                }
                c.packets += 1;
                c.bytes += packet.len() as u64;
            }
            let _ = socket.send_to(&packet, dest).await;
        });
    }
}
