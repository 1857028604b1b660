//! Meeting mode: local-network discovery (mDNS) for one group, switched on by the member
//! on this device, so a meeting room with Wi-Fi and no internet just works.
//!
//! The service name comes from the current epoch key (`GroupSession::lan_service_name`), so
//! it tells nobody outside the group which group it is, and it changes with the epoch. A
//! node advertises its group endpoint under that name and listens for others; an endpoint
//! it discovers that is the transport key of a current member goes into the address book,
//! and the supervisor dials it. Anything else it hears is ignored. The global switch
//! (`NetConfig::lan == false`) keeps discovery off whatever the groups say.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use alongside_core::ids::GroupId;
use iroh_mdns_address_lookup::{DiscoveryEvent, MdnsAddressLookup};
use n0_future::StreamExt;

use crate::conn::with_vault;
use crate::node::Inner;

/// Discovery running for one group.
struct Running {
    service: String,
    listener: tokio::task::JoinHandle<()>,
}

/// The groups whose meeting mode is running on this node.
#[derive(Default)]
pub(crate) struct Lan {
    running: Mutex<HashMap<GroupId, Running>>,
}

impl Lan {
    /// Stops every group's discovery (the node is shutting down).
    pub(crate) fn stop_all(&self) {
        if let Ok(mut running) = self.running.lock() {
            for (_, r) in running.drain() {
                r.listener.abort();
            }
        }
    }

    /// Stops `group`'s discovery (its endpoint is being replaced).
    pub(crate) fn stop(&self, group: &GroupId) {
        if let Ok(mut running) = self.running.lock()
            && let Some(r) = running.remove(group)
        {
            r.listener.abort();
        }
    }

    /// Whether discovery runs for `group`, and under which service name.
    pub(crate) fn service(&self, group: &GroupId) -> Option<String> {
        self.running.lock().ok()?.get(group).map(|r| r.service.clone())
    }
}

/// Brings `group`'s discovery in line with its setting and current epoch: starts it,
/// stops it, or restarts it under a new service name.
pub(crate) async fn apply(inner: &Arc<Inner>, group: GroupId) {
    let Some(served) = inner.served(&group) else {
        return;
    };
    let wanted = if inner.config.lan {
        with_vault(&inner.shared, move |v| {
            Ok(if v.meeting_mode(&group)? {
                v.session(&group)?.lan_service_name()
            } else {
                None
            })
        })
        .await
        .unwrap_or(None)
    } else {
        None
    };
    if inner.lan.service(&group) == wanted {
        return;
    }
    // Stop whatever runs (our endpoints have no other lookup service than this one).
    if let Ok(mut running) = inner.lan.running.lock()
        && let Some(old) = running.remove(&group)
    {
        old.listener.abort();
    }
    if let Ok(lookup) = served.endpoint.address_lookup() {
        lookup.clear();
    }
    let Some(service) = wanted else {
        tracing::info!(group = %alongside_core::ids::short_hex(&group.0), "meeting mode off");
        return;
    };
    let mdns = match MdnsAddressLookup::builder()
        .service_name(service.clone())
        .build(served.endpoint.id())
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "local-network discovery is not available here");
            return;
        }
    };
    let Ok(lookup) = served.endpoint.address_lookup() else {
        return;
    };
    lookup.add(mdns.clone());
    let mut events = mdns.subscribe().await;
    let me = *served.endpoint.id().as_bytes();
    let listener_inner = inner.clone();
    let listener = tokio::spawn(async move {
        // Keeps the service alive as long as the listener runs.
        let _mdns = mdns;
        while let Some(event) = events.next().await {
            if let DiscoveryEvent::Discovered { endpoint_info, .. } = event {
                let endpoint = *endpoint_info.endpoint_id.as_bytes();
                let addrs: Vec<SocketAddr> = endpoint_info.ip_addrs().copied().collect();
                if endpoint != me && !addrs.is_empty() {
                    discovered(&listener_inner, group, endpoint, addrs).await;
                }
            }
        }
    });
    tracing::info!(group = %alongside_core::ids::short_hex(&group.0), "meeting mode on");
    if let Ok(mut running) = inner.lan.running.lock()
        && let Some(raced) = running.insert(group, Running { service, listener })
    {
        // Another call started one meanwhile: only one may advertise.
        raced.listener.abort();
    }
}

/// An endpoint announced itself under the group's service name: if it is a current
/// member's transport key, remember where it is and let the supervisor dial it.
async fn discovered(inner: &Arc<Inner>, group: GroupId, endpoint: [u8; 32], addrs: Vec<SocketAddr>) {
    let known = with_vault(&inner.shared, move |v| {
        if v.session(&group)?.member_for_endpoint(&endpoint).is_none() {
            return Ok(false);
        }
        v.remember_address(&group, &endpoint, &addrs)?;
        Ok(true)
    })
    .await
    .unwrap_or(false);
    if known {
        if let Ok(mut found) = inner.discovered.lock() {
            found.push((group, endpoint));
        }
        inner.wake.notify_one();
    }
}
