//! The unlocked profile: the API the app and the CLI use.
//!
//! A [`Vault`] owns the encrypted [`Store`] and the [`GroupSession`]s loaded from it. Every
//! command is one call to [`Vault::edit`]: it runs the session operation, then writes what
//! the operation produced — the new sealed units, the refreshed snapshots of changed
//! documents, the group's keys and membership operations — in one durable transaction.
//! If the operation or the write fails, the session is dropped and reloaded from disk on
//! next use, so a failed command leaves no trace in memory or on disk.

mod personal;
mod shown_last;

pub use personal::{MAX_CONTACT_TEXT, MAX_CONTACTS, SupportContact, SyncMark};
pub use shown_last::ShownLast;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use thiserror::Error;

use crate::audience::AudienceGrant;
use crate::content::resolve_prefix;
use crate::crypto::{BoxSecret, PassphraseKdf, SigningSecret, SymmetricKey};
use crate::group::{GroupError, GroupSession, MembershipSecrets};
use crate::ids::{DocId, GroupId, KeyId, MemberId};
use crate::invite::InviteRecord;
use crate::meeting::MeetingMode;
use crate::membership::{MembershipLog, SignedOp};
use crate::profile::{self, ProfileError, STORE_FILE};
use crate::replica::Replica;
use crate::store::{Batch, Key, Kind, Store, StoreError};
use crate::unit::{ChangeSignature, SealedUnit};
use crate::wire::{DecodeError, Reader, Writer};

const RECORD_VERSION: u8 = 1;
/// The group record's version: 2 added the count of undone changes, 3 names each audience
/// key by its grant's key id (a document may have several). Earlier records are still read.
const GROUP_RECORD_VERSION: u8 = 3;
/// Where a group's meeting-mode setting is kept (see [`MeetingMode`]).
const MEETING_MODE_KEY: &[u8] = b"meeting-mode";

/// A vault operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The profile header.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The group operation.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// No group matches.
    #[error("no group matches '{0}'")]
    NoGroup(String),
    /// More than one group matches.
    #[error("'{0}' matches more than one group; give more of its id")]
    AmbiguousGroup(String),
    /// A stored record is not in the expected format.
    #[error("a stored record is damaged ({0})")]
    Record(String),
    /// An invitation cannot be used.
    #[error(transparent)]
    Invite(#[from] InviteError),
    /// A peer broke the sync protocol.
    #[error(transparent)]
    Protocol(#[from] crate::sync::ProtocolError),
    /// What was asked for is not valid (the message says why, in plain words).
    #[error("{0}")]
    Invalid(String),
    /// The command failed unexpectedly (a bug); nothing of it was kept, and the group is
    /// read again from disk.
    #[error("something went wrong and nothing was changed; please try again")]
    Failed,
}

/// Why an invitation was refused.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InviteError {
    /// This device never issued it.
    #[error("that invitation is not known here")]
    Unknown,
    /// It was used already.
    #[error("that invitation was already used")]
    Used,
    /// It expired.
    #[error("that invitation has expired")]
    Expired,
    /// The inviter withdrew it.
    #[error("that invitation was withdrawn")]
    Revoked,
}

impl From<DecodeError> for VaultError {
    fn from(e: DecodeError) -> Self {
        VaultError::Record(e.to_string())
    }
}

/// An address-book entry: an endpoint id and where it was last reached.
pub type AddressEntry = ([u8; 32], Vec<SocketAddr>);

/// An address-book entry that leads to a current member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddress {
    /// The endpoint id.
    pub endpoint: [u8; 32],
    /// Where it was last seen, newest first.
    pub addrs: Vec<SocketAddr>,
    /// The member it leads to.
    pub member: MemberId,
    /// Whether it is that member's announced key (not one of an earlier epoch).
    pub announced: bool,
}

/// An address book record: endpoint, addresses, and the member it was last known as.
type BookEntry = ([u8; 32], Vec<SocketAddr>, Option<MemberId>);

/// A group as `group list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupSummary {
    /// Group id (hex).
    pub id: String,
    /// Group name.
    pub name: String,
    /// This member's display name in it.
    pub me: String,
    /// This member's role.
    pub role: String,
    /// Number of current members.
    pub members: usize,
    /// Whether what this device keeps of the group is damaged (then only `id` is known).
    pub damaged: bool,
}

impl GroupSummary {
    fn damaged(id: GroupId) -> GroupSummary {
        GroupSummary {
            id: id.to_hex(),
            name: String::new(),
            me: String::new(),
            role: String::new(),
            members: 0,
            damaged: true,
        }
    }
}

/// What [`Vault::repair_group`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repaired {
    /// Damaged records set aside.
    pub set_aside: usize,
    /// Documents rebuilt from the units this device had kept.
    pub rebuilt: usize,
}

/// An unlocked profile.
#[derive(Debug)]
pub struct Vault {
    dir: PathBuf,
    store: Store,
    sessions: BTreeMap<GroupId, GroupSession>,
    rng: StdRng,
    /// What became durable since the driver last asked (see [`Vault::take_committed`]).
    committed: Vec<Committed>,
    /// Per group, how many membership operations, grants and waiting units were last
    /// persisted (to tell whether an edit changed anything worth a write).
    membership_sizes: BTreeMap<GroupId, (usize, usize, usize)>,
}

/// Something that became durable in a group, for a running node to pass on to connected
/// members (units are pushed; a membership change makes it push operations and grants).
#[derive(Debug, Clone)]
pub enum Committed {
    /// A unit made here or accepted from a peer (shared: every connection may send it).
    Unit(GroupId, std::sync::Arc<SealedUnit>),
    /// The group's membership operations or audience grants grew.
    Membership(GroupId),
    /// A setting kept only on this device changed (e.g. meeting mode).
    LocalSettings(GroupId),
}

impl Vault {
    /// Creates a profile in `dir` with a local `label` (never shared).
    pub fn init(dir: &Path, label: &str, passphrase: &[u8], kdf: PassphraseKdf) -> Result<Vault, VaultError> {
        let mut rng = crate::store::os_rng();
        let data_key = profile::create(dir, &mut rng, passphrase, kdf)?;
        let store = Store::create(&dir.join(STORE_FILE), &data_key, child_rng(&mut rng))?;
        let mut vault = Vault {
            dir: dir.to_path_buf(),
            store,
            sessions: BTreeMap::new(),
            committed: Vec::new(),
            membership_sizes: BTreeMap::new(),
            rng,
        };
        let mut batch = Batch::new();
        batch.put(Kind::Meta, Key::global(b"label"), label.as_bytes().to_vec());
        vault.store.commit(batch)?;
        Ok(vault)
    }

    /// Unlocks the profile in `dir`. A wrong passphrase changes nothing on disk.
    pub fn unlock(dir: &Path, passphrase: &[u8]) -> Result<Vault, VaultError> {
        let data_key = profile::unlock(dir, passphrase)?;
        Self::open_with_key(dir, &data_key)
    }

    fn open_with_key(dir: &Path, data_key: &SymmetricKey) -> Result<Vault, VaultError> {
        let mut rng = crate::store::os_rng();
        let store = Store::open(&dir.join(STORE_FILE), data_key, child_rng(&mut rng))?;
        Ok(Vault {
            dir: dir.to_path_buf(),
            store,
            sessions: BTreeMap::new(),
            committed: Vec::new(),
            membership_sizes: BTreeMap::new(),
            rng,
        })
    }

    /// Changes the passphrase of the profile in `dir` (rewraps the data key).
    pub fn change_passphrase(dir: &Path, old: &[u8], new: &[u8]) -> Result<(), VaultError> {
        let mut rng = crate::store::os_rng();
        Ok(profile::change_passphrase(dir, &mut rng, old, new)?)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The local profile label.
    pub fn label(&self) -> Result<String, VaultError> {
        let raw = self.store.get(Kind::Meta, &Key::global(b"label"))?.unwrap_or_default();
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// Every group this profile is a member of. A group whose own record cannot be read at
    /// all (its keys are in it) is left out, with a warning in the log: nothing of it can be
    /// shown or repaired, and it must not keep the other groups from opening.
    pub fn group_ids(&self) -> Result<Vec<GroupId>, VaultError> {
        let mut out = Vec::new();
        for raw in self.store.all_each(Kind::Group)? {
            let id = raw.map_err(VaultError::from).and_then(|raw| {
                let mut r = Reader::new(&raw);
                r.u8()?;
                Ok(GroupId(r.array()?))
            });
            match id {
                Ok(id) => out.push(id),
                Err(e) => tracing::warn!(error = %e, "a group's record could not be read; it is left out"),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Summaries of every group. A group whose data on this device is damaged is listed as
    /// such (see [`Vault::repair_group`]) while the others open as usual.
    pub fn groups(&mut self) -> Result<Vec<GroupSummary>, VaultError> {
        let mut out = Vec::new();
        for id in self.group_ids()? {
            let s = match self.session(&id) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(group = %crate::ids::short_hex(&id.0), error = %e, "a group could not be read");
                    out.push(GroupSummary::damaged(id));
                    continue;
                }
            };
            let me = s.me();
            out.push(GroupSummary {
                damaged: false,
                id: id.to_hex(),
                name: s.name(),
                me: s.display_name(&me),
                role: s
                    .membership()
                    .members
                    .get(&me)
                    .map(|m| m.role.as_str())
                    .unwrap_or("former member")
                    .into(),
                members: s.membership().members.len(),
            });
        }
        out.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(out)
    }

    /// Finds a group by id prefix or exact name.
    pub fn resolve_group(&mut self, query: &str) -> Result<GroupId, VaultError> {
        let ids = self.group_ids()?;
        let mut by_name = Vec::new();
        for id in &ids {
            // (A damaged group has no name to match; its id still finds it.)
            if self
                .session(id)
                .is_ok_and(|s| s.name().eq_ignore_ascii_case(query.trim()))
            {
                by_name.push(*id);
            }
        }
        match by_name.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            _ => return Err(VaultError::AmbiguousGroup(query.into())),
        }
        resolve_prefix(query, ids.into_iter().map(|g| (g.to_hex(), g))).map_err(|e| match e {
            GroupError::Ambiguous(q) => VaultError::AmbiguousGroup(q),
            _ => VaultError::NoGroup(query.into()),
        })
    }

    /// Founds a group; returns its id once it is on disk.
    pub fn create_group(&mut self, name: &str, display_name: &str, now_ms: i64) -> Result<GroupId, VaultError> {
        let session = GroupSession::create(child_rng(&mut self.rng), name, display_name, now_ms)?;
        let id = session.id();
        self.sessions.insert(id, session);
        self.persist(&id)?;
        Ok(id)
    }

    /// Stores a session made elsewhere (a join) and keeps it loaded.
    pub fn adopt(&mut self, session: GroupSession) -> Result<GroupId, VaultError> {
        let id = session.id();
        self.sessions.insert(id, session);
        self.persist(&id)?;
        Ok(id)
    }

    /// A fresh seeded RNG for a new session (e.g. a join).
    pub fn session_rng(&mut self) -> StdRng {
        child_rng(&mut self.rng)
    }

    /// The session of `group`, loading it if needed.
    pub fn session(&mut self, group: &GroupId) -> Result<&GroupSession, VaultError> {
        self.ensure_loaded(group)?;
        Ok(&self.sessions[group])
    }

    /// Runs `f` on the session of `group` and makes everything it produced durable before
    /// returning. On any error nothing is kept.
    pub fn edit<T, E>(
        &mut self,
        group: &GroupId,
        f: impl FnOnce(&mut GroupSession) -> Result<T, E>,
    ) -> Result<T, VaultError>
    where
        VaultError: From<E>,
    {
        self.ensure_loaded(group)?;
        let session = self.sessions.get_mut(group).expect("loaded above");
        // A panic in the operation leaves the session half-changed: it is thrown away and
        // reloaded from disk on next use, and nothing of it was persisted.
        let value = match crate::guard::catch(|| f(session)) {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                // An ordinary refusal that changed nothing keeps the group loaded; one that
                // changed something before refusing is undone by reloading.
                if self.has_unsaved(group) {
                    self.sessions.remove(group);
                }
                return Err(e.into());
            }
            Err(()) => {
                self.sessions.remove(group);
                tracing::error!(group = %crate::ids::short_hex(&group.0), "a command failed unexpectedly; the group is reloaded from disk");
                return Err(VaultError::Failed);
            }
        };
        if let Err(e) = self.persist(group) {
            self.sessions.remove(group);
            return Err(e);
        }
        Ok(value)
    }

    /// Whether `group`'s loaded session holds anything not yet persisted.
    fn has_unsaved(&self, group: &GroupId) -> bool {
        self.sessions
            .get(group)
            .is_some_and(|s| s.has_unsaved() || self.membership_sizes.get(group) != Some(&Self::sizes(s)))
    }

    fn sizes(session: &GroupSession) -> (usize, usize, usize) {
        (session.ops().len(), session.grants().len(), session.pending_count())
    }

    /// Forgets every loaded group, so each is reloaded from disk on next use. For a driver
    /// that caught a panic while the vault was in use: whatever was half-done in memory is
    /// dropped, and nothing of it was persisted.
    pub fn forget_loaded(&mut self) {
        self.sessions.clear();
        self.membership_sizes.clear();
    }

    fn ensure_loaded(&mut self, group: &GroupId) -> Result<(), VaultError> {
        if !self.sessions.contains_key(group) {
            let session = self.load(group)?;
            self.membership_sizes.insert(*group, Self::sizes(&session));
            self.sessions.insert(*group, session);
        }
        Ok(())
    }

    fn persist(&mut self, group: &GroupId) -> Result<(), VaultError> {
        let session = self.sessions.get_mut(group).expect("persisting a loaded session");
        let units: Vec<SealedUnit> = session
            .take_outbox()
            .into_iter()
            .chain(session.take_accepted())
            .collect();
        let dirty = session.take_dirty();
        let record_changed = session.take_record_changed();
        let sizes = Self::sizes(session);
        let before = self.membership_sizes.get(group).copied();
        if units.is_empty() && dirty.is_empty() && !record_changed && before == Some(sizes) {
            // Nothing new (a sync frame that only talked): no write, no fsync.
            return Ok(());
        }
        let mut batch = Batch::new();
        batch.put(Kind::Group, Key::in_group(*group, b""), encode_record(session));
        for op in session.ops() {
            batch.put(Kind::Op, Key::in_group(*group, &op.hash().0), op.bytes().to_vec());
        }
        for grant in session.grants() {
            batch.put(
                Kind::Grant,
                Key::in_group(*group, &grant_key(&grant)),
                grant.bytes().to_vec(),
            );
        }
        for unit in &units {
            batch.append_unit(*group, unit.bytes().to_vec());
        }
        for doc in dirty {
            if let Some(replica) = session.replica(&doc) {
                batch.put(
                    Kind::Snapshot,
                    Key::in_group(*group, &doc.to_bytes()),
                    encode_snapshot(replica),
                );
            }
        }
        batch.clear(Kind::Pending, *group);
        for unit in session.pending_units() {
            batch.put(
                Kind::Pending,
                Key::in_group(*group, &unit.id().0),
                unit.bytes().to_vec(),
            );
        }
        self.store.commit(batch)?;
        // Durable now: only from here on may it be passed on. A new group counts as a
        // membership change (a running node starts serving it).
        self.membership_sizes.insert(*group, sizes);
        if before.map(|(o, g, _)| (o, g)) != Some((sizes.0, sizes.1)) {
            self.committed.push(Committed::Membership(*group));
        }
        self.committed.extend(
            units
                .into_iter()
                .map(|u| Committed::Unit(*group, std::sync::Arc::new(u))),
        );
        Ok(())
    }

    /// Takes what became durable since the last call, oldest first. A running node pushes
    /// it to connected members; a one-shot command may ignore it.
    pub fn take_committed(&mut self) -> Vec<Committed> {
        std::mem::take(&mut self.committed)
    }

    fn load(&mut self, group: &GroupId) -> Result<GroupSession, VaultError> {
        let record = self
            .store
            .get(Kind::Group, &Key::in_group(*group, b""))?
            .ok_or_else(|| VaultError::NoGroup(group.to_hex()))?;
        let rec = decode_record(&record)?;
        let ops: Vec<SignedOp> = self
            .store
            .scan_group(Kind::Op, group)?
            .iter()
            .map(|b| SignedOp::decode(b).map_err(|e| VaultError::Record(e.to_string())))
            .collect::<Result<_, _>>()?;
        let create = ops
            .iter()
            .find(|o| o.op().parents.is_empty())
            .cloned()
            .ok_or_else(|| VaultError::Record("the group has no create operation".into()))?;
        let log = MembershipLog::new(create).map_err(|e| VaultError::Record(e.to_string()))?;
        let mut session = GroupSession::from_parts(*group, rec.secrets, log, child_rng(&mut self.rng));
        session.restore_ops(&ops)?;
        session.epoch_keys.extend(rec.epoch_keys);
        session.undone = rec.undone;
        for raw in self.store.scan_group(Kind::Grant, group)? {
            let grant = AudienceGrant::decode(&raw).map_err(|e| VaultError::Record(e.to_string()))?;
            let key = rec
                .audience_keys
                .get(&(grant.doc, Some(grant.key_id())))
                .or_else(|| rec.audience_keys.get(&(grant.doc, None)))
                .cloned();
            session.hold_grant(grant, key);
        }
        for raw in self.store.scan_group(Kind::Snapshot, group)? {
            let (doc, replica) = decode_snapshot(*group, &raw)?;
            session.docs.insert(doc, replica);
        }
        session.refresh_places(true);
        for raw in self.store.scan_group(Kind::Pending, group)? {
            let unit = SealedUnit::decode(&raw).map_err(|e| VaultError::Record(e.to_string()))?;
            session.restore_pending(unit);
        }
        Ok(session)
    }

    /// Repairs what this device keeps of `group`: every record that cannot be read is set
    /// aside (membership operations, grants, documents, waiting units), documents set aside
    /// are rebuilt from the units this device kept, and whatever is still missing comes
    /// back from members at the next sync. The group's own record holds its keys: if that
    /// is damaged nothing can be done here, and the person must be invited again.
    pub fn repair_group(&mut self, group: &GroupId) -> Result<Repaired, VaultError> {
        self.sessions.remove(group);
        self.membership_sizes.remove(group);
        let record = self
            .store
            .get(Kind::Group, &Key::in_group(*group, b""))?
            .ok_or_else(|| VaultError::NoGroup(group.to_hex()))?;
        decode_record(&record)?;
        let mut set_aside = 0;
        let mut batch = Batch::new();
        for kind in [Kind::Op, Kind::Grant, Kind::Snapshot, Kind::Pending] {
            batch.clear(kind, *group);
            for raw in self.store.scan_group_each(kind, group)? {
                match raw
                    .map_err(VaultError::from)
                    .and_then(|raw| readable(kind, *group, &raw))
                {
                    Ok((key, raw)) => batch.put(kind, Key::in_group(*group, &key), raw),
                    Err(e) => {
                        tracing::warn!(error = %e, "a damaged record was set aside");
                        set_aside += 1;
                    }
                }
            }
        }
        self.store.commit(batch)?;
        // The documents left are known; rebuild the others from the units kept here.
        self.ensure_loaded(group)?;
        let held: std::collections::BTreeSet<DocId> = self.sessions[group].docs.keys().copied().collect();
        let units: Vec<Vec<u8>> = self
            .store
            .scan_group_each(Kind::Unit, group)?
            .into_iter()
            .filter_map(Result::ok)
            .map(|u| u.to_vec())
            .collect();
        let rebuilt = self.edit(group, |s| -> Result<usize, VaultError> {
            for unit in &units {
                let doc = SealedUnit::decode(unit).map(|u| u.header().doc);
                if doc.is_ok_and(|d| !held.contains(&d)) {
                    let _ = s.receive_unit(unit);
                }
            }
            Ok(s.docs.keys().filter(|d| !held.contains(d)).count())
        })?;
        Ok(Repaired { set_aside, rebuilt })
    }

    /// **Tests only**: overwrites the stored snapshot of `doc` in `group` with bytes that do
    /// not read, as a damaged disk would, to show that the damage stays where it is.
    #[doc(hidden)]
    pub fn spoil_snapshot_for_tests(&mut self, group: &GroupId, doc: &DocId) -> Result<(), VaultError> {
        let mut batch = Batch::new();
        batch.put(
            Kind::Snapshot,
            Key::in_group(*group, &doc.to_bytes()),
            vec![1, 0xff, 0xff],
        );
        self.store.commit(batch)?;
        self.sessions.remove(group);
        Ok(())
    }

    /// **Benchmarks only**: commits stop waiting for the disk (see `Store::set_durable`).
    pub fn set_durable_commits(&mut self, durable: bool) {
        self.store.set_durable(durable);
    }

    /// Meeting mode (local-network discovery) for `group` on this device at `now_ms`: on
    /// until a stated time, or off (never switched on, switched off, or its time is up).
    /// Kept sealed in the profile; never shared with the group.
    pub fn meeting_mode(&mut self, group: &GroupId, now_ms: i64) -> Result<MeetingMode, VaultError> {
        self.ensure_loaded(group)?;
        let raw = self.group_setting(group, MEETING_MODE_KEY)?;
        Ok(raw.map_or(MeetingMode::Off, |v| MeetingMode::decode(&v)).at(now_ms))
    }

    /// Switches meeting mode for `group` on this device: on for `on_for_ms` from `now_ms`
    /// (renewing it if it was on; at most [`crate::meeting::LONGEST_ON_FOR_MS`]), or off
    /// with `None`. Durable; a running node starts, moves or stops discovery at once, and
    /// stops it by itself when the time is up.
    pub fn set_meeting_mode(
        &mut self,
        group: &GroupId,
        now_ms: i64,
        on_for_ms: Option<i64>,
    ) -> Result<MeetingMode, VaultError> {
        self.ensure_loaded(group)?;
        let mode = match on_for_ms {
            None => MeetingMode::Off,
            Some(ms) if ms <= 0 || ms > crate::meeting::LONGEST_ON_FOR_MS => {
                return Err(VaultError::Invalid(
                    "Meeting mode can be switched on for up to 12 hours at a time.".into(),
                ));
            }
            Some(ms) => MeetingMode::OnUntil(now_ms.saturating_add(ms)),
        };
        self.set_group_setting(group, MEETING_MODE_KEY, mode.encode())?;
        self.committed.push(Committed::LocalSettings(*group));
        Ok(mode)
    }

    /// Records a new invitation to `group` and returns the invite key's secret half (for the
    /// ticket). Only facilitators may invite.
    pub fn create_invite(&mut self, group: &GroupId, expires_at_ms: i64) -> Result<[u8; 32], VaultError> {
        let session = self.session(group)?;
        if !session.membership().is_facilitator(&session.me()) {
            return Err(GroupError::NotAllowed("Only facilitators can invite new members.".into()).into());
        }
        let mut secret = [0u8; 32];
        self.rng.fill_bytes(&mut secret);
        let public = SigningSecret::from_seed(&secret).public();
        let record = InviteRecord {
            public,
            expires_at_ms,
            used: false,
            revoked: false,
        };
        let mut batch = Batch::new();
        batch.put(Kind::Invite, Key::in_group(*group, &public), record.encode());
        self.store.commit(batch)?;
        Ok(secret)
    }

    /// Marks the invitation with public key `public` used, durably, if it exists, is unused
    /// and has not expired at `now_ms`.
    pub fn redeem_invite(&mut self, group: &GroupId, public: &[u8; 32], now_ms: i64) -> Result<(), VaultError> {
        let key = Key::in_group(*group, public);
        let raw = self.store.get(Kind::Invite, &key)?.ok_or(InviteError::Unknown)?;
        let mut record = InviteRecord::decode(&raw)?;
        if record.used {
            return Err(InviteError::Used.into());
        }
        if record.revoked {
            return Err(InviteError::Revoked.into());
        }
        if record.expires_at_ms <= now_ms {
            return Err(InviteError::Expired.into());
        }
        record.used = true;
        let mut batch = Batch::new();
        batch.put(Kind::Invite, key, record.encode());
        self.store.commit(batch)?;
        Ok(())
    }

    /// Every invitation this device made to `group`, soonest to expire first.
    pub fn invitations(&self, group: &GroupId) -> Result<Vec<InviteRecord>, VaultError> {
        let mut out = self
            .store
            .scan_group(Kind::Invite, group)?
            .iter()
            .map(|raw| InviteRecord::decode(raw))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|r| (r.expires_at_ms, r.public));
        Ok(out)
    }

    /// Withdraws the invitations to `group` that can still be used at `now_ms`: the one
    /// whose short id starts with `id`, or every one if `id` is `None`. Returns how many
    /// were withdrawn; a ticket for one of them is refused from now on.
    pub fn revoke_invitations(&mut self, group: &GroupId, id: Option<&str>, now_ms: i64) -> Result<usize, VaultError> {
        let matching: Vec<InviteRecord> = self
            .invitations(group)?
            .into_iter()
            .filter(|r| id.is_none_or(|p| crate::ids::hex(&r.public).starts_with(&p.trim().to_ascii_lowercase())))
            .collect();
        if let Some(p) = id
            && matching.is_empty()
        {
            return Err(VaultError::Invalid(format!("No invitation's id starts with '{p}'.")));
        }
        let mut batch = Batch::new();
        let mut revoked = 0;
        for mut record in matching.into_iter().filter(|r| r.is_open(now_ms)) {
            record.revoked = true;
            batch.put(Kind::Invite, Key::in_group(*group, &record.public), record.encode());
            revoked += 1;
        }
        self.store.commit(batch)?;
        Ok(revoked)
    }

    /// Remembers that the endpoint `endpoint` of `group` was reachable at `addrs`, and
    /// (if it is a current member's announced key now) whose it is: after an epoch change
    /// the member's old endpoint still answers for a while, and this is how a device that
    /// has only heard of the new id still finds them.
    pub fn remember_address(
        &mut self,
        group: &GroupId,
        endpoint: &[u8; 32],
        addrs: &[SocketAddr],
    ) -> Result<(), VaultError> {
        self.remember_address_as(group, endpoint, addrs, None)
    }

    /// [`Vault::remember_address`] for an endpoint known to be `member`'s (the inviter
    /// behind a ticket): their key may already have changed with the epoch their add
    /// started, so the announcement alone would not tell.
    pub fn remember_address_of(
        &mut self,
        group: &GroupId,
        endpoint: &[u8; 32],
        addrs: &[SocketAddr],
        member: MemberId,
    ) -> Result<(), VaultError> {
        self.remember_address_as(group, endpoint, addrs, Some(member))
    }

    fn remember_address_as(
        &mut self,
        group: &GroupId,
        endpoint: &[u8; 32],
        addrs: &[SocketAddr],
        member: Option<MemberId>,
    ) -> Result<(), VaultError> {
        // Newest first, then what was known before; at most 16; no write if nothing changed.
        let (known, tag) = self
            .book(group)?
            .into_iter()
            .find(|(e, _, _)| e == endpoint)
            .map(|(_, a, t)| (a, t))
            .unwrap_or_default();
        let owner = self.session(group)?.member_for_endpoint(endpoint).or(member).or(tag);
        let mut merged: Vec<SocketAddr> = Vec::new();
        for a in addrs.iter().chain(&known) {
            if !merged.contains(a) && merged.len() < 16 {
                merged.push(*a);
            }
        }
        if merged == known && owner == tag {
            return Ok(());
        }
        let mut w = Writer::new();
        w.u8(RECORD_VERSION).bytes(endpoint).count(merged.len());
        for a in &merged {
            w.var_bytes(a.to_string().as_bytes());
        }
        if let Some(m) = owner {
            w.u8(1).bytes(&m.0);
        }
        let mut batch = Batch::new();
        batch.put(Kind::Address, Key::in_group(*group, endpoint), w.finish());
        self.store.commit(batch)?;
        Ok(())
    }

    /// The member behind `endpoint` in `group`: the current member whose announced key it
    /// is, or the current member it was last seen as (an endpoint of an earlier epoch).
    pub fn endpoint_member(&mut self, group: &GroupId, endpoint: &[u8; 32]) -> Result<Option<MemberId>, VaultError> {
        Ok(self
            .member_addresses(group)?
            .into_iter()
            .find(|a| a.endpoint == *endpoint)
            .map(|a| a.member)
            .or(self.session(group)?.member_for_endpoint(endpoint)))
    }

    /// Every address-book entry of `group` that leads to a current member (see
    /// [`Vault::endpoint_member`]), the book read and decrypted once.
    pub fn member_addresses(&mut self, group: &GroupId) -> Result<Vec<MemberAddress>, VaultError> {
        let book = self.book(group)?;
        let session = self.session(group)?;
        Ok(book
            .into_iter()
            .filter_map(|(endpoint, addrs, tag)| {
                let announced = session.member_for_endpoint(&endpoint);
                let member = announced.or(tag.filter(|m| session.membership().is_member(m)))?;
                Some(MemberAddress {
                    endpoint,
                    addrs,
                    member,
                    announced: announced.is_some(),
                })
            })
            .collect())
    }

    /// Remembers the iroh relay through which `endpoint` of `group` can be reached (from a
    /// ticket, or seen on a connection). No write if it is already known.
    pub fn remember_relay(&mut self, group: &GroupId, endpoint: &[u8; 32], url: &str) -> Result<(), VaultError> {
        if url.len() > crate::invite::MAX_RELAY_URL || self.relay_of(group, endpoint)?.as_deref() == Some(url) {
            return Ok(());
        }
        let mut batch = Batch::new();
        batch.put(
            Kind::Meta,
            Key::in_group(*group, &relay_key(endpoint)),
            url.as_bytes().to_vec(),
        );
        self.store.commit(batch)?;
        Ok(())
    }

    /// The relay `endpoint` of `group` was last reachable through, if any.
    pub fn relay_of(&self, group: &GroupId, endpoint: &[u8; 32]) -> Result<Option<String>, VaultError> {
        Ok(self
            .store
            .get(Kind::Meta, &Key::in_group(*group, &relay_key(endpoint)))?
            .and_then(|raw| String::from_utf8(raw.to_vec()).ok()))
    }

    /// The address book of `group`: every endpoint with the addresses it was last seen at.
    pub fn addresses(&self, group: &GroupId) -> Result<Vec<AddressEntry>, VaultError> {
        Ok(self.book(group)?.into_iter().map(|(e, a, _)| (e, a)).collect())
    }

    /// The address book with, per endpoint, the member it was last known as.
    fn book(&self, group: &GroupId) -> Result<Vec<BookEntry>, VaultError> {
        let mut out = Vec::new();
        for raw in self.store.scan_group(Kind::Address, group)? {
            let mut r = Reader::new(&raw);
            let version = r.u8()?;
            if version != RECORD_VERSION {
                return Err(DecodeError::Version(version).into());
            }
            let endpoint: [u8; 32] = r.array()?;
            let n = r.count(16, 4)?;
            let mut addrs = Vec::with_capacity(n);
            for _ in 0..n {
                let text = std::str::from_utf8(r.var_bytes(64)?).map_err(|_| DecodeError::Invalid("address"))?;
                addrs.push(text.parse().map_err(|_| DecodeError::Invalid("address"))?);
            }
            let owner = if r.remaining() > 0 {
                r.u8()?;
                Some(MemberId(r.array()?))
            } else {
                None
            };
            r.finish()?;
            out.push((endpoint, addrs, owner));
        }
        Ok(out)
    }

    /// Every sealed unit stored for `group`, in arrival order (for sync and tests).
    pub fn stored_units(&self, group: &GroupId) -> Result<Vec<Vec<u8>>, VaultError> {
        Ok(self
            .store
            .scan_group(Kind::Unit, group)?
            .into_iter()
            .map(|z| z.to_vec())
            .collect())
    }
}

fn child_rng(rng: &mut StdRng) -> StdRng {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    StdRng::from_seed(seed)
}

pub(crate) struct Record {
    secrets: MembershipSecrets,
    epoch_keys: BTreeMap<KeyId, SymmetricKey>,
    /// Audience keys by document and grant key id (`None`: a record from before version 3,
    /// when a document had one grant).
    audience_keys: BTreeMap<(DocId, Option<KeyId>), SymmetricKey>,
    undone: u32,
}

/// The store key of an endpoint's relay URL (in the profile's settings table).
fn relay_key(endpoint: &[u8; 32]) -> Vec<u8> {
    [b"relay:".as_slice(), endpoint].concat()
}

pub(crate) fn encode_record(s: &GroupSession) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(GROUP_RECORD_VERSION).bytes(&s.group.0);
    w.bytes(&*s.me.signing.seed())
        .bytes(s.me.boxed.seed())
        .bytes(&*s.me.transport.seed())
        .bytes(&s.me.actor_suffix);
    w.count(s.epoch_keys.len());
    for (id, key) in &s.epoch_keys {
        w.bytes(&id.0).bytes(key.expose());
    }
    let keyed: Vec<_> = s.audiences.values().flat_map(|a| a.keys()).collect();
    w.count(keyed.len());
    for (grant, key) in keyed {
        grant.doc.encode(&mut w);
        w.bytes(&grant.key_id().0).bytes(key.expose());
    }
    w.u32(s.undone);
    w.finish()
}

pub(crate) fn decode_record(bytes: &[u8]) -> Result<Record, VaultError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if !(1..=GROUP_RECORD_VERSION).contains(&version) {
        return Err(DecodeError::Version(version).into());
    }
    let _group: [u8; 32] = r.array()?;
    let secrets = MembershipSecrets {
        signing: SigningSecret::from_seed(&r.array()?),
        boxed: BoxSecret::from_seed(r.array()?),
        transport: SigningSecret::from_seed(&r.array()?),
        actor_suffix: r.array()?,
    };
    let mut epoch_keys = BTreeMap::new();
    for _ in 0..r.count(u16::MAX as usize, 64)? {
        epoch_keys.insert(KeyId(r.array()?), SymmetricKey::from_bytes(r.array()?));
    }
    let mut audience_keys = BTreeMap::new();
    for _ in 0..r.count(u16::MAX as usize, 65)? {
        let doc = DocId::decode(&mut r)?;
        // (Before version 3 a document had one grant, so its key needs no id.)
        let id = if version >= 3 { Some(KeyId(r.array()?)) } else { None };
        audience_keys.insert((doc, id), SymmetricKey::from_bytes(r.array()?));
    }
    let undone = if version == 1 { 0 } else { r.u32()? };
    r.finish()?;
    Ok(Record {
        secrets,
        epoch_keys,
        audience_keys,
        undone,
    })
}

/// The store key of a grant within its group: its document and key id (a document may
/// have several grants; one stored under its document alone, before, is read all the same).
fn grant_key(grant: &AudienceGrant) -> Vec<u8> {
    [&grant.doc.to_bytes()[..], &grant.key_id().0].concat()
}

/// Whether a stored record of `kind` in `group` reads; if so, its logical key (after the
/// group) and its bytes, to write back as they were.
fn readable(kind: Kind, group: GroupId, raw: &[u8]) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
    let key = match kind {
        Kind::Op => SignedOp::decode(raw)
            .map_err(|e| VaultError::Record(e.to_string()))?
            .hash()
            .0
            .to_vec(),
        Kind::Grant => grant_key(&AudienceGrant::decode(raw).map_err(|e| VaultError::Record(e.to_string()))?),
        Kind::Snapshot => decode_snapshot(group, raw)?.0.to_bytes().to_vec(),
        Kind::Pending => SealedUnit::decode(raw)
            .map_err(|e| VaultError::Record(e.to_string()))?
            .id()
            .0
            .to_vec(),
        _ => return Err(VaultError::Record("not a group item".into())),
    };
    Ok((key, raw.to_vec()))
}

/// A snapshot: document id, the saved document, and the author-head signatures.
pub(crate) fn encode_snapshot(replica: &Replica) -> Vec<u8> {
    let payload = replica.document_payload();
    let mut w = Writer::new();
    w.u8(RECORD_VERSION);
    replica.id().encode(&mut w);
    w.var_bytes(&payload.data).count(payload.signatures.len());
    for s in &payload.signatures {
        s.encode(&mut w);
    }
    w.finish()
}

pub(crate) fn decode_snapshot(group: GroupId, bytes: &[u8]) -> Result<(DocId, Replica), VaultError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != RECORD_VERSION {
        return Err(DecodeError::Version(version).into());
    }
    let doc = DocId::decode(&mut r)?;
    // (Whatever the store wrote, it reads back: a snapshot may be larger than one unit.)
    let saved = r.var_bytes(crate::store::MAX_RECORD_LEN)?;
    let n = r.count(crate::unit::MAX_SIGNATURES, crate::unit::CHANGE_SIGNATURE_LEN)?;
    let mut sigs = Vec::with_capacity(n);
    for _ in 0..n {
        sigs.push(ChangeSignature::decode(&mut r)?);
    }
    r.finish()?;
    let replica = Replica::from_trusted_save(group, doc, saved, sigs).map_err(|e| VaultError::Record(e.to_string()))?;
    Ok((doc, replica))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PassphraseKdf;

    /// A group record written before `undone` was added (version 1) still opens; a
    /// version 2 record cut before it does not.
    #[test]
    fn a_version_1_group_record_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", 1_795_953_600_000).unwrap();
        let mut record = encode_record(vault.session(&group).unwrap());
        assert_eq!(record[0], GROUP_RECORD_VERSION);
        record.truncate(record.len() - 4);
        assert!(
            decode_record(&record).is_err(),
            "version 2 must say how much was undone"
        );
        record[0] = 1;
        assert_eq!(decode_record(&record).unwrap().undone, 0);
    }

    /// An ordinary refusal keeps the group loaded; a panic in the middle of a command drops
    /// what it half did, and the group is read again from disk.
    #[test]
    fn a_refusal_keeps_the_group_loaded_and_a_panic_reloads_it_from_disk() {
        use crate::model::edits::NewStory;
        let story = |title: &str| NewStory {
            title: title.into(),
            body: "In my own words.".into(),
            ..Default::default()
        };
        let titles = |v: &mut Vault, g: &GroupId| -> Vec<String> {
            v.session(g).unwrap().stories().into_iter().map(|s| s.title).collect()
        };
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Circle", "Sam", 1_795_953_600_000).unwrap();
        vault
            .edit(&group, |s| s.add_story(&story("Kept"), 1_795_953_600_000))
            .unwrap();

        let refused = vault.edit(&group, |s| s.add_story(&story(""), 1_795_953_600_000));
        assert!(matches!(refused, Err(VaultError::Group(_))), "{refused:?}");
        assert!(
            vault.sessions.contains_key(&group),
            "a refusal that changed nothing keeps the group loaded"
        );

        let failed = vault.edit(&group, |s| -> Result<(), GroupError> {
            s.add_story(&story("Half"), 1_795_953_600_000)?;
            panic!("a bug in the middle of a command");
        });
        assert!(matches!(failed, Err(VaultError::Failed)), "{failed:?}");
        assert!(!vault.sessions.contains_key(&group), "a panic drops what was half done");
        assert_eq!(titles(&mut vault, &group), ["Kept"]);
    }

    /// One damaged document keeps only its own group from opening; that group is listed
    /// as damaged, the others open and are found by name, and a repair rebuilds the
    /// document from the units this device kept.
    #[test]
    fn damage_stays_in_its_group_and_a_repair_rebuilds_it_from_the_units_kept_here() {
        use crate::model::edits::NewStory;
        let now = 1_795_953_600_000;
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        let hurt = vault.create_group("Tuesday Circle", "Sam", now).unwrap();
        let fine = vault.create_group("Friday Circle", "Sam", now).unwrap();
        let story = NewStory {
            title: "Day one".into(),
            body: "In my own words.".into(),
            ..Default::default()
        };
        vault.edit(&hurt, |s| s.add_story(&story, now)).unwrap();
        let me = vault.session(&hurt).unwrap().me();
        vault.spoil_snapshot_for_tests(&hurt, &DocId::member_doc(&me)).unwrap();
        drop(vault);

        let mut vault = Vault::unlock(dir.path(), b"pass phrase").unwrap();
        let list = vault.groups().unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.iter().any(|g| g.id == hurt.to_hex() && g.damaged));
        assert!(list.iter().any(|g| g.name == "Friday Circle" && !g.damaged));
        assert_eq!(vault.resolve_group("Friday Circle").unwrap(), fine);
        assert!(vault.session(&hurt).is_err(), "the damaged group says so");
        vault.edit(&fine, |s| s.add_story(&story, now)).unwrap();

        let repaired = vault.repair_group(&hurt).unwrap();
        assert_eq!(repaired.set_aside, 1);
        assert_eq!(repaired.rebuilt, 1);
        let titles: Vec<String> = vault
            .session(&hurt)
            .unwrap()
            .stories()
            .into_iter()
            .map(|s| s.title)
            .collect();
        assert_eq!(titles, ["Day one"]);
        drop(vault);
        let mut vault = Vault::unlock(dir.path(), b"pass phrase").unwrap();
        assert!(vault.groups().unwrap().iter().all(|g| !g.damaged));
    }

    /// Meeting mode is kept with its end time, survives reopening the profile, can be
    /// renewed, and reads as off from its end on (time is given, never read from a clock).
    #[test]
    fn meeting_mode_switched_on_for_a_stated_time_is_off_after_it() {
        const NOW: i64 = 1_795_953_600_000;
        const HOUR: i64 = 3_600_000;
        let dir = tempfile::tempdir().unwrap();
        let mut vault = Vault::init(dir.path(), "laptop", b"pass phrase", PassphraseKdf::TEST).unwrap();
        let group = vault.create_group("Tuesday Circle", "Sam", NOW).unwrap();
        assert_eq!(vault.meeting_mode(&group, NOW).unwrap(), MeetingMode::Off);
        let on = vault.set_meeting_mode(&group, NOW, Some(3 * HOUR)).unwrap();
        assert_eq!(on, MeetingMode::OnUntil(NOW + 3 * HOUR));
        drop(vault);
        let mut vault = Vault::unlock(dir.path(), b"pass phrase").unwrap();
        assert_eq!(vault.meeting_mode(&group, NOW + 3 * HOUR - 1).unwrap(), on);
        assert_eq!(vault.meeting_mode(&group, NOW + 3 * HOUR).unwrap(), MeetingMode::Off);
        // Renewed an hour before the end: three more hours from then.
        vault.set_meeting_mode(&group, NOW + 2 * HOUR, Some(3 * HOUR)).unwrap();
        assert_eq!(
            vault.meeting_mode(&group, NOW + 4 * HOUR).unwrap(),
            MeetingMode::OnUntil(NOW + 5 * HOUR)
        );
        // Switched off, it is off; longer than 12 hours or no time at all is refused.
        vault.set_meeting_mode(&group, NOW, None).unwrap();
        assert_eq!(vault.meeting_mode(&group, NOW).unwrap(), MeetingMode::Off);
        assert!(vault.set_meeting_mode(&group, NOW, Some(13 * HOUR)).is_err());
        assert!(vault.set_meeting_mode(&group, NOW, Some(0)).is_err());
        assert_eq!(vault.meeting_mode(&group, NOW).unwrap(), MeetingMode::Off);
    }
}
