//! Automerge's bundle encoding is experimental in 0.12. Alongside stores and sends bundles,
//! so this test pins it: a bundle made today must decode tomorrow, and a deterministic
//! document must still encode to the same bytes. If an Automerge upgrade changes either,
//! this fails and the upgrade needs a format version bump (docs/FORMAT.md).

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT};

fn deterministic_doc() -> Automerge {
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::from(vec![7u8; 40]));
    let mut tx = doc.transaction();
    let notes = tx.put_object(ROOT, "notes", ObjType::Text).unwrap();
    tx.splice_text(&notes, 0, 0, "We opened with a moment of quiet.")
        .unwrap();
    tx.commit();
    let mut tx = doc.transaction();
    tx.put(ROOT, "title", "Weekly circle").unwrap();
    tx.splice_text(&notes, 3, 6, "began").unwrap();
    tx.commit();
    doc
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// BLAKE3 of the bundle of both changes, as encoded by automerge 0.12.0.
const BUNDLE_HASH: &str = "fe185140a133982e692a6c285236858c0527ce7abf0c837255aacaa851975be9";
/// BLAKE3 of the saved document, as encoded by automerge 0.12.0.
const SAVE_HASH: &str = "c4eb588c6ed306d47c3ecb4de4b64d2a85578c8f222d587a63c98ed7035eb88e";

#[test]
fn bundle_and_save_encodings_are_the_pinned_ones() {
    let doc = deterministic_doc();
    let hashes: Vec<_> = doc.get_changes_meta(&[]).into_iter().map(|m| m.hash).collect();
    let bundle = doc.bundle(hashes.clone()).unwrap();
    let bytes = bundle.bytes().to_vec();
    // Round trip: the bundle decodes to the same changes.
    let decoded = automerge::Bundle::try_from(bytes.as_slice())
        .unwrap()
        .to_changes()
        .unwrap();
    assert_eq!(decoded.iter().map(|c| c.hash()).collect::<Vec<_>>(), hashes);
    assert_eq!(
        hex(blake3::hash(&bytes).as_bytes()),
        BUNDLE_HASH,
        "bundle encoding changed"
    );
    assert_eq!(
        hex(blake3::hash(&doc.save()).as_bytes()),
        SAVE_HASH,
        "save encoding changed"
    );
}
