//! Relays: a member whose direct addresses lead nowhere is still reached through the relay
//! named in the ticket. The relay is an iroh relay server on loopback with a self-signed
//! certificate that only these nodes trust; nothing leaves the machine.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;

use alongside_net::{NetConfig, RelayChoice};
use common::{LIMIT, NOW, in_an_hour, node_with};
use iroh_relay::server::{AllowAll, CertConfig, RelayConfig, Server, ServerConfig, TlsConfig};

/// A relay on loopback: the server, its URL, and the certificate to trust.
async fn loopback_relay() -> (Server, String, Vec<u8>) {
    let (certs, server_config) = iroh_relay::server::testing::self_signed_tls_certs_and_config();
    let mut relay = RelayConfig::new((Ipv4Addr::LOCALHOST, 0));
    relay.tls = Some(TlsConfig::new(
        (Ipv4Addr::LOCALHOST, 0),
        CertConfig::Manual { server_config },
    ));
    relay.access = Arc::new(AllowAll);
    let mut config = ServerConfig::default();
    config.relay = Some(relay);
    let server = Server::spawn(config).await.unwrap();
    let url = format!("https://{}", server.https_addr().unwrap());
    (server, url, certs[0].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_direct_addresses_lead_nowhere_is_reached_through_the_relay() {
    let (_server, url, cert) = loopback_relay().await;
    let config = NetConfig {
        relay: RelayChoice::Custom(url.parse().unwrap()),
        relay_roots: vec![cert],
        ..NetConfig::loopback()
    };
    let root = tempfile::tempdir().unwrap();
    let alice = node_with(root.path(), "alice", config.clone()).await;
    let bob = node_with(root.path(), "bob", config).await;
    let group = alice
        .with_vault(|v| v.create_group("Tuesday Circle", "Alice", NOW))
        .await
        .unwrap();
    let mut ticket = alice.invite(group, in_an_hour()).await.unwrap();
    let relay = ticket.relay.clone().expect("the ticket names Alice's relay");
    assert!(relay.starts_with(&url), "{relay} is not {url}");
    // Only the relay can carry this join: the direct address is a closed port.
    ticket.addrs = vec!["127.0.0.1:9".parse().unwrap()];
    let joined = tokio::time::timeout(LIMIT, bob.join(&ticket, "Bob"))
        .await
        .expect("joined in time")
        .unwrap();
    assert_eq!(joined, group);
    let name = bob.with_vault(move |v| Ok(v.session(&group)?.name())).await.unwrap();
    assert_eq!(name, "Tuesday Circle");
    // Bob remembers the relay for later syncs.
    let alice_endpoint = ticket.inviter;
    let remembered = bob
        .with_vault(move |v| v.relay_of(&group, &alice_endpoint))
        .await
        .unwrap();
    assert_eq!(remembered, Some(relay));
    alice.shutdown().await;
    bob.shutdown().await;
}
