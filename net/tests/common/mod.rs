//! Helpers shared by the network tests.
#![allow(dead_code)] // each test file uses its own subset

use std::time::Duration;

use alongside_core::crypto::PassphraseKdf;
use alongside_core::model::edits::NewStory;
use alongside_core::vault::Vault;
use alongside_net::{NetConfig, Node};

/// A fixed clock for what the tests write: 2026-11-29T12:00:00Z.
pub(crate) const NOW: i64 = 1_795_953_600_000;
/// The longest any step may take.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// One hour from the real clock (tickets are checked against it).
pub(crate) fn in_an_hour() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000
}

/// The profile `label` under `dir` (created, or unlocked if it exists) with `config`.
pub(crate) async fn node_with(dir: &std::path::Path, label: &str, config: NetConfig) -> Node {
    let path = dir.join(label);
    let vault = if path.exists() {
        Vault::unlock(&path, b"pw").unwrap()
    } else {
        Vault::init(&path, label, b"pw", PassphraseKdf::TEST).unwrap()
    };
    Node::start(vault, config).await.unwrap()
}

/// [`node_with`] on loopback.
pub(crate) async fn node(dir: &std::path::Path, label: &str) -> Node {
    node_with(dir, label, NetConfig::loopback()).await
}

/// Runs `f` on `n`'s profile (through the node, as every caller must).
pub(crate) async fn on<T: Send + 'static>(n: &Node, f: impl FnOnce(&mut Vault) -> T + Send + 'static) -> T {
    n.with_vault(move |v| Ok(f(v))).await.unwrap()
}

/// Each of `joiners` joins `group` with a fresh ticket from `inviter`.
pub(crate) async fn join_all(inviter: &Node, group: alongside_core::ids::GroupId, joiners: &[(&Node, &str)]) {
    for (n, name) in joiners {
        let ticket = inviter.invite(group, in_an_hour()).await.unwrap();
        tokio::time::timeout(LIMIT, n.join(&ticket, name))
            .await
            .unwrap()
            .unwrap();
    }
}

/// A story titled `title`.
pub(crate) fn story(title: &str) -> NewStory {
    NewStory {
        title: title.into(),
        body: format!("{title}: in my own words."),
        ..Default::default()
    }
}

/// The titles of the stories `v` holds in `group`, sorted.
pub(crate) fn titles(v: &mut Vault, group: alongside_core::ids::GroupId) -> Vec<String> {
    let mut t: Vec<String> = v
        .session(&group)
        .unwrap()
        .stories()
        .into_iter()
        .map(|s| s.title)
        .collect();
    t.sort();
    t
}
