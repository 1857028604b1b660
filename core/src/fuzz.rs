//! Entry points for the fuzz targets (`fuzz/`) and for the tests that keep what they found
//! (`tests/tests/fuzz_regressions.rs`). Built only with the `fuzzing` feature.
//!
//! Each function takes untrusted bytes the way the product meets them — a byte stream from
//! a peer, a sealed unit, a decrypted payload, ticket text, a membership operation, a
//! record read back from the store — and returns `Ok` if they were accepted or a clean
//! error if not. A panic, a hang or an allocation out of proportion to the input is a bug.

use std::path::Path;
use std::sync::OnceLock;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::audience::AudienceGrant;
use crate::crypto::SymmetricKey;
use crate::group::{GroupSession, MembershipSecrets};
use crate::ids::{DocId, GroupId, MemberId};
use crate::invite::{InviteRecord, Ticket};
use crate::membership::{MembershipLog, Role, SignedOp};
use crate::model::edits::{CheckInKind, NewCheckIn, NewMeeting, NewStory};
use crate::replica::{Replica, WritePolicy};
use crate::sync::{FrameReader, Message};
use crate::unit::{Payload, SealedUnit};

/// Lets a panic inside [`crate::guard::catch`] unwind to it (Automerge 0.12 panics on
/// some hostile bytes, and the guard turns that into an error, as in the app), and hands
/// every other panic to the hook already installed: a fuzzer's, which reports a crash.
/// Fuzz targets call it once, at start.
pub fn contain_guarded_panics() {
    let outer = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !crate::guard::is_catching() {
            outer(info);
        }
    }));
}

/// The founder's session of the group every entry point judges against (the same group
/// each time: it is made from a fixed seed).
fn founder() -> GroupSession {
    GroupSession::create(StdRng::seed_from_u64(7), "Fuzz Circle", "Ana", 0).expect("a group made from a fixed seed")
}

/// That group as the entry points see it: made once.
struct Fixture {
    id: GroupId,
    /// Its log, holding only the create operation.
    log: MembershipLog,
    /// Its first epoch key.
    key: SymmetricKey,
}

fn group() -> &'static Fixture {
    static GROUP: OnceLock<Fixture> = OnceLock::new();
    GROUP.get_or_init(|| {
        let session = founder();
        let create = session
            .ops()
            .into_iter()
            .find(|o| o.op().parents.is_empty())
            .expect("the create operation");
        Fixture {
            id: session.id(),
            log: MembershipLog::new(create).expect("its own create operation"),
            key: session.epoch_key().expect("the first epoch key").1,
        }
    })
}

/// Lets every member write every document: the fuzzer reaches the checks after "who".
struct Anyone;

impl WritePolicy for Anyone {
    fn may_write(&self, _author: &MemberId) -> bool {
        true
    }
}

fn fail(e: impl std::fmt::Display) -> String {
    let said = e.to_string();
    assert!(!said.is_empty(), "every error says something");
    said
}

/// A byte stream from a peer: the first byte says where the stream (the rest) is cut in
/// two pieces as it arrives; it is split into frames, each decoded as a message. Returns
/// how many decoded.
pub fn frames(data: &[u8]) -> Result<usize, String> {
    let Some((cut, stream)) = data.split_first() else {
        return Err(fail("empty"));
    };
    let cut = usize::from(*cut).min(stream.len());
    let mut reader = FrameReader::new();
    let mut decoded = 0;
    for piece in [&stream[..cut], &stream[cut..]] {
        reader.push(piece);
        while let Some(body) = reader.next_frame().map_err(fail)? {
            let msg = Message::decode(&body).map_err(fail)?;
            // What decodes must encode to the same frame.
            let again = msg.to_frame();
            if again[4..] != body[..] {
                return Err(fail("a message decoded but did not encode back"));
            }
            decoded += 1;
        }
    }
    Ok(decoded)
}

/// A sealed unit as it arrives: decoded, then opened with the group's first epoch key.
pub fn sealed_unit(data: &[u8]) -> Result<(), String> {
    let unit = SealedUnit::decode(data).map_err(fail)?;
    unit.open(&group().key).map(|_| ()).map_err(fail)
}

/// A decrypted payload, after the document id its unit's header named: decoded, then
/// validated into an empty replica of that document; a saved document is also rebuilt as
/// the store rebuilds its own (which builds the change index with no signature checks in
/// the way).
pub fn payload(data: &[u8]) -> Result<(), String> {
    let mut r = crate::wire::Reader::new(data);
    let doc = DocId::decode(&mut r).map_err(fail)?;
    let rest = r.bytes(r.remaining()).map_err(fail)?;
    let payload = Payload::decode(rest).map_err(fail)?;
    let group = group().id;
    let mut replica = Replica::new(group, doc);
    let ingested = replica.ingest(&payload, &Anyone).map(|_| ()).map_err(fail);
    if payload.kind == crate::unit::PayloadKind::Document {
        Replica::from_trusted_save(group, doc, &payload.data, payload.signatures.clone()).map_err(fail)?;
    }
    ingested
}

/// Raw Automerge bytes as [`crate::payload_budget`] measures them before Automerge sees
/// them: the first byte picks the payload kind (document, change, bundle), the rest is
/// measured against a budget small enough for a fuzzer (1 MiB inflated, 100,000
/// operations). What the walker accepts is then parsed by Automerge (inside the guard),
/// which must never find more changes or operations than the walker counted: a panic
/// here is a walker that undercounts.
pub fn payload_budget(data: &[u8]) -> Result<(), String> {
    use crate::payload_budget::{Budget, MAX_VALUE_LEN, measure_within};
    use crate::unit::PayloadKind;
    let Some((which, bytes)) = data.split_first() else {
        return Err(fail("empty"));
    };
    if bytes.is_empty() {
        return Err(fail("an empty payload"));
    }
    let kind = [PayloadKind::Document, PayloadKind::Change, PayloadKind::Bundle][usize::from(*which % 3)];
    let budget = Budget {
        inflated: 1 << 20,
        ops: 100_000,
        value_len: MAX_VALUE_LEN,
    };
    let m = measure_within(kind, bytes, &budget).map_err(fail)?;
    if let Ok(Some((changes, ops))) = crate::guard::catch(|| automerge_counts(kind, bytes)) {
        assert!(
            changes <= m.changes,
            "Automerge found {changes} changes, the walker {m:?}"
        );
        assert!(
            ops.is_none_or(|o| o <= m.ops),
            "Automerge found {ops:?} operations, the walker {m:?}"
        );
    }
    Ok(())
}

/// The changes (and, but for a document, operations) Automerge finds in `bytes`, if it
/// parses them.
fn automerge_counts(kind: crate::unit::PayloadKind, bytes: &[u8]) -> Option<(u64, Option<u64>)> {
    use crate::unit::PayloadKind;
    let ops = |changes: &[automerge::Change]| Some(changes.iter().map(|c| c.len() as u64).sum());
    match kind {
        PayloadKind::Change => {
            let c = automerge::Change::from_bytes(bytes.to_vec()).ok()?;
            Some((1, Some(c.len() as u64)))
        }
        PayloadKind::Bundle => {
            let changes = automerge::Bundle::try_from(bytes).ok()?.to_changes().ok()?;
            Some((changes.len() as u64, ops(&changes)))
        }
        PayloadKind::Document => {
            let doc = automerge::Automerge::load(bytes).ok()?;
            Some((doc.get_changes_meta(&[]).len() as u64, None))
        }
    }
}

/// Ticket text as pasted or scanned (bytes that are not UTF-8 are refused first).
pub fn ticket(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(fail)?;
    let ticket = Ticket::from_text(text).map_err(fail)?;
    // What parses must print to text that parses to the same ticket.
    let again = Ticket::from_text(&ticket.to_text()).map_err(fail)?;
    if again.to_text() != ticket.to_text() {
        return Err(fail("a ticket parsed but did not print back"));
    }
    Ok(())
}

/// What a Membership message carries (the first byte picks which): a membership
/// operation, decoded and offered to the group's log; or an audience grant, decoded.
pub fn membership_op(data: &[u8]) -> Result<(), String> {
    let Some((which, bytes)) = data.split_first() else {
        return Err(fail("empty"));
    };
    if which % 2 == 1 {
        return AudienceGrant::decode(bytes).map(|_| ()).map_err(fail);
    }
    let op = SignedOp::decode(bytes).map_err(fail)?;
    let mut log = group().log.clone();
    log.insert(op).map(|_| ()).map_err(fail)
}

/// A record read back from the store (after its authenticated decryption, so only this
/// device's own writing reaches these decoders; they must still never panic). The first
/// byte picks the decoder: a group record, a document snapshot, an invitation record or
/// a profile header.
pub fn store_record(data: &[u8]) -> Result<(), String> {
    let Some((which, bytes)) = data.split_first() else {
        return Err(fail("empty"));
    };
    match which % 4 {
        0 => crate::vault::decode_record(bytes).map(|_| ()).map_err(fail),
        1 => crate::vault::decode_snapshot(group().id, bytes)
            .map(|_| ())
            .map_err(fail),
        2 => InviteRecord::decode(bytes).map(|_| ()).map_err(fail),
        _ => crate::profile::ProfileHeader::decode(bytes, Path::new("profile"))
            .map(|_| ())
            .map_err(fail),
    }
}

/// An entry point: untrusted bytes in; accepted, or a clean error.
pub type Entry = fn(&[u8]) -> Result<(), String>;

/// The fuzz targets, by name, with their entry points.
pub const TARGETS: [(&str, Entry); 7] = [
    ("frames", |d| frames(d).map(|_| ())),
    ("sealed_unit", sealed_unit),
    ("payload", payload),
    ("ticket", ticket),
    ("membership_op", membership_op),
    ("store_record", store_record),
    ("payload_budget", payload_budget),
];

/// Well-formed inputs for every target, made from a seeded group with a little of each
/// kind of content: where the fuzzer starts, and what the regression tests check each
/// entry point accepts. `(target, input)` pairs, deterministic.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(11);
    let mut ana = founder();
    let ben = MembershipSecrets::generate(&mut rng);
    ana.add_member(ben.public_keys(&ana.id()), Role::Member, 0)
        .expect("a first add");
    let story = NewStory {
        title: "A first week".into(),
        body: "What helped.".into(),
        warnings: vec!["grief".into()],
        no_replies: true,
    };
    ana.add_story(&story, 0).expect("a story");
    let goal = ana.add_goal("Walk", None, &[], 0).expect("a goal").to_hex();
    let checkin = NewCheckIn {
        date: "2026-11-29".into(),
        kind: CheckInKind::Setback,
        mood: Some(2),
        craving: Some(4),
        halt: vec!["tired".into()],
        note: "Called a friend.".into(),
    };
    ana.check_in(&goal, &checkin, 0).expect("a check-in");
    let meeting = NewMeeting {
        title: "Tuesday".into(),
        at: "2026-12-01T19:00:00Z".into(),
        place: Some("Room 2".into()),
        facilitator: None,
        agenda: "Check-ins".into(),
    };
    ana.add_meeting(&meeting, 0).expect("a meeting");
    let units = ana.take_outbox();
    let (_, key) = ana.epoch_key().expect("the group's key");

    let ben_id = ben.member();
    ana.add_goal("Sleep", None, &[ben_id], 0).expect("a goal for Ben alone");
    let units = [units, ana.take_outbox()].concat();
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for op in ana.ops() {
        out.push(("membership_op", [&[0], op.bytes()].concat()));
    }
    for grant in ana.grants_for(&ben_id) {
        out.push(("membership_op", [&[1], grant.bytes()].concat()));
    }
    let mut stream = vec![7u8];
    stream.extend(
        Message::Hello {
            group: ana.id(),
            ops: ana.op_hashes(),
        }
        .to_frame(),
    );
    for unit in &units {
        if unit.header().doc.kind == crate::ids::DocKind::Audience {
            continue; // sealed under the audience's own key; its payload comes below
        }
        out.push(("sealed_unit", unit.bytes().to_vec()));
        let payload = unit.open(&key).expect("our own unit opens");
        out.push(("payload", [doc_bytes(&unit.header().doc), payload.encode()].concat()));
        out.push(("payload_budget", budget_seed(&payload)));
        stream.extend(
            Message::Unit {
                bytes: unit.bytes().to_vec(),
            }
            .to_frame(),
        );
    }
    stream.extend(Message::CaughtUp.to_frame());
    out.push(("frames", stream));
    let ticket = Ticket {
        group: ana.id(),
        inviter: [4; 32],
        addrs: vec![
            "127.0.0.1:4433".parse().expect("an address"),
            "[::1]:4433".parse().expect("an address"),
        ],
        relay: None,
        invite_secret: [6; 32],
        expires_at_ms: 1_800_000_000_000,
    };
    out.push(("ticket", ticket.to_text().as_bytes().to_vec()));
    let record = |which: u8, bytes: Vec<u8>| ("store_record", [vec![which], bytes].concat());
    out.push(record(0, crate::vault::encode_record(&ana)));
    for entry in ana.digest_for(&ana.me()) {
        let replica = ana.replica(&entry.doc).expect("a held document");
        out.push((
            "payload",
            [doc_bytes(&entry.doc), replica.document_payload().encode()].concat(),
        ));
        out.push(("payload_budget", budget_seed(&replica.document_payload())));
        out.push(("payload_budget", budget_seed(&replica.bundle_payload(&[]))));
        out.push(record(1, crate::vault::encode_snapshot(replica)));
    }
    let invite = InviteRecord {
        public: [8; 32],
        expires_at_ms: 1_800_000_000_000,
        used: false,
        revoked: false,
    };
    out.push(record(2, invite.encode()));
    out.push(record(3, crate::profile::ProfileHeader::fuzz_seed()));
    out
}

/// A `payload_budget` input: the kind's selector byte, then the Automerge bytes.
fn budget_seed(payload: &Payload) -> Vec<u8> {
    let which = match payload.kind {
        crate::unit::PayloadKind::Document => 0,
        crate::unit::PayloadKind::Change => 1,
        crate::unit::PayloadKind::Bundle => 2,
    };
    [vec![which], payload.data.clone()].concat()
}

fn doc_bytes(doc: &DocId) -> Vec<u8> {
    let mut w = crate::wire::Writer::new();
    doc.encode(&mut w);
    w.finish()
}
