//! Exports in Automerge form are standard documents any Automerge implementation loads.

use alongside_core::model::edits::NewStory;
use alongside_tests::{NOW_MS, group, sync_all};
use automerge::{Automerge, ReadDoc};

#[test]
fn exported_documents_load_in_plain_automerge_with_the_same_content() {
    let mut g = group(11, &["Alice", "Bob"]);
    let story = NewStory {
        title: "Morning".into(),
        body: "The first quiet morning in years.".into(),
        warnings: vec![],
        no_replies: false,
    };
    g[1].add_story(&story, NOW_MS).unwrap();
    sync_all(&mut g);
    let docs = g[0].export_documents();
    assert_eq!(docs.len(), 3, "group document and two member documents");
    let mut found = false;
    for (_, label, bytes) in docs {
        let doc = Automerge::load(&bytes).expect("a standard Automerge document");
        let text = format!("{:?}", doc.hydrate(None));
        if label.starts_with("member-") && text.contains("The first quiet morning in years.") {
            found = true;
            assert!(doc.get(automerge::ROOT, "stories").unwrap().is_some());
        }
    }
    assert!(found, "Bob's story is in his exported member document");
}
