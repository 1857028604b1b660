//! The encrypted store: one redb database per profile.
//!
//! Nothing readable is written. Every value is sealed with XChaCha20-Poly1305 under a
//! subkey of the profile's data key, bound (as associated data) to its table and key; every
//! key is a keyed BLAKE3 hash of the logical key, so not even group ids, document ids or
//! unit ids appear in the file. Sealed units are stored whole (their own headers thus
//! wrapped again). Writes are grouped into a [`Batch`] committed as one redb transaction
//! with immediate durability: a command reports success only after its batch is on disk,
//! and a crash loses at most the batch in flight.

use std::path::{Path, PathBuf};

use rand::Rng;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::crypto::SymmetricKey;
use crate::ids::GroupId;

type Table = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// Which table a record lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Profile-level settings (label, install facts) and settings this device keeps per
    /// group and never shares (meeting mode).
    Meta,
    /// One record per group membership: its secrets and keys.
    Group,
    /// Membership operations.
    Op,
    /// Audience grants.
    Grant,
    /// Sealed units, in arrival order per group.
    Unit,
    /// Which unit ids a group already stored.
    UnitSeen,
    /// Compacted document snapshots (a cache; units remain the record).
    Snapshot,
    /// Units waiting for their dependencies.
    Pending,
    /// Invitations this device issued (public half, expiry, used flag).
    Invite,
    /// Where members' endpoints were last reached.
    Address,
}

impl Kind {
    fn table(self) -> Table {
        TableDefinition::new(self.name())
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Meta => "meta",
            Kind::Group => "groups",
            Kind::Op => "ops",
            Kind::Grant => "grants",
            Kind::Unit => "units",
            Kind::UnitSeen => "unit_seen",
            Kind::Snapshot => "snapshots",
            Kind::Pending => "pending",
            Kind::Invite => "invites",
            Kind::Address => "addresses",
        }
    }

    const ALL: [Kind; 10] = [
        Kind::Meta,
        Kind::Group,
        Kind::Op,
        Kind::Grant,
        Kind::Unit,
        Kind::UnitSeen,
        Kind::Snapshot,
        Kind::Pending,
        Kind::Invite,
        Kind::Address,
    ];
}

/// A store failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process has this profile open.
    #[error("the profile is in use by another Alongside process")]
    InUse,
    /// The database file is damaged or is not an Alongside store.
    #[error("the data file is damaged or is not an Alongside store ({0})")]
    Damaged(String),
    /// A value could not be decrypted: damaged data or a mismatched key.
    #[error("a stored record could not be decrypted (the data file is damaged)")]
    Decrypt,
    /// Reading or writing the database failed.
    #[error("the data file could not be read or written: {0}")]
    Io(String),
    /// A record would be larger than the store reads back ([`MAX_RECORD_LEN`]): nothing
    /// of the batch was written.
    #[error("a record is too large to keep")]
    TooLarge,
}

/// One record as read: its bytes, or why it could not be opened.
pub type RecordRead = Result<Zeroizing<Vec<u8>>, StoreError>;

/// The largest record the store writes, and so the largest it ever needs to read back.
/// Budgets keep every legitimate record far below it (`SECURITY.md`, "Budgets"); a batch
/// holding a larger one is refused whole, so nothing is ever written that cannot be read.
pub const MAX_RECORD_LEN: usize = 256 * 1024 * 1024;

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::DatabaseAlreadyOpen => StoreError::InUse,
            redb::Error::Corrupted(m) => StoreError::Damaged(m),
            redb::Error::Io(io) => StoreError::Io(io.to_string()),
            other => StoreError::Damaged(other.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::from(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A logical key: up to three parts, hashed into the physical key.
#[derive(Debug, Clone)]
pub struct Key {
    group: Option<GroupId>,
    parts: Vec<u8>,
    seq: Option<u64>,
}

impl Key {
    /// A key outside any group.
    pub fn global(name: &[u8]) -> Key {
        Key {
            group: None,
            parts: name.to_vec(),
            seq: None,
        }
    }

    /// A key inside a group (`rest` may be empty for the group's own record).
    pub fn in_group(group: GroupId, rest: &[u8]) -> Key {
        Key {
            group: Some(group),
            parts: rest.to_vec(),
            seq: None,
        }
    }
}

/// Writes to commit together.
#[derive(Debug, Default)]
pub struct Batch {
    puts: Vec<(Kind, Key, Zeroizing<Vec<u8>>)>,
    appends: Vec<(GroupId, Vec<u8>)>,
    clears: Vec<(Kind, GroupId)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Stores `value` under `key` (replacing any previous value).
    pub fn put(&mut self, kind: Kind, key: Key, value: Vec<u8>) {
        self.puts.push((kind, key, Zeroizing::new(value)));
    }

    /// Appends a sealed unit to a group's log.
    pub fn append_unit(&mut self, group: GroupId, unit: Vec<u8>) {
        self.appends.push((group, unit));
    }

    /// Removes every record of `kind` in `group` (applied before this batch's puts).
    pub fn clear(&mut self, kind: Kind, group: GroupId) {
        self.clears.push((kind, group));
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.appends.is_empty() && self.clears.is_empty()
    }
}

/// The database handle: read-only until the first commit, so that commands which fail or
/// only read leave the file byte-for-byte as it was.
enum Db {
    Read(redb::ReadOnlyDatabase),
    Write(Database),
}

/// The encrypted database of one profile.
pub struct Store {
    db: Option<Db>,
    path: Option<PathBuf>,
    values: SymmetricKey,
    key_hash: Zeroizing<[u8; 32]>,
    rng: rand::rngs::StdRng,
    /// Whether commits wait for the disk (always, except in benchmarks of the in-memory path).
    durable: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store(<encrypted>)")
    }
}

/// Runs a redb call that may panic on a file damaged outside redb, turning the panic into
/// an error.
fn guarded<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    crate::guard::catch(f).unwrap_or_else(|()| Err(StoreError::Damaged("the file could not be read".into())))
}

fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    for kind in Kind::ALL {
        txn.open_table(kind.table())?;
    }
    txn.commit()?;
    Ok(())
}

impl Store {
    /// Creates a new store file at `path` (which must not exist).
    pub fn create(path: &Path, data_key: &SymmetricKey, rng: rand::rngs::StdRng) -> Result<Store, StoreError> {
        if path.exists() {
            return Err(StoreError::Damaged("a data file already exists there".into()));
        }
        let db = Database::builder().create(path)?;
        create_tables(&db)?;
        Ok(Self::wrap(Db::Write(db), Some(path.to_path_buf()), data_key, rng))
    }

    /// Opens an existing store file, read-only until something is committed. A file left
    /// by a crash is recovered (redb's repair) when it is opened.
    pub fn open(path: &Path, data_key: &SymmetricKey, rng: rand::rngs::StdRng) -> Result<Store, StoreError> {
        if !path.is_file() {
            return Err(StoreError::Damaged("the data file is missing".into()));
        }
        let db = guarded(|| match Database::builder().open_read_only(path) {
            Ok(db) => Ok(Db::Read(db)),
            // Not shut down cleanly (a crash): open for writing, which recovers it.
            Err(redb::DatabaseError::RepairAborted) => Ok(Db::Write(Database::builder().open(path)?)),
            Err(e) => Err(e.into()),
        })?;
        let store = Self::wrap(db, Some(path.to_path_buf()), data_key, rng);
        guarded(|| {
            let txn = store.read_txn()?;
            for kind in Kind::ALL {
                txn.open_table(kind.table())
                    .map_err(|_| StoreError::Damaged("a table is missing".into()))?;
            }
            Ok(())
        })?;
        Ok(store)
    }

    /// A store in memory (tests and simulations).
    pub fn in_memory(data_key: &SymmetricKey, rng: rand::rngs::StdRng) -> Result<Store, StoreError> {
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new())?;
        create_tables(&db)?;
        Ok(Self::wrap(Db::Write(db), None, data_key, rng))
    }

    fn wrap(db: Db, path: Option<PathBuf>, data_key: &SymmetricKey, rng: rand::rngs::StdRng) -> Store {
        Store {
            db: Some(db),
            path,
            values: data_key.derive("alongside store values v1"),
            key_hash: Zeroizing::new(*data_key.derive("alongside store keys v1").expose()),
            rng,
            durable: true,
        }
    }

    fn read_txn(&self) -> Result<redb::ReadTransaction, StoreError> {
        Ok(match self.db.as_ref().expect("store is open") {
            Db::Read(db) => db.begin_read()?,
            Db::Write(db) => db.begin_read()?,
        })
    }

    /// Reopens the file for writing on first use (releasing the read-only handle first).
    fn ensure_writable(&mut self) -> Result<(), StoreError> {
        if let Some(Db::Read(_)) = self.db {
            self.db = None;
            let path = self.path.clone().expect("only files are opened read-only");
            let db = guarded(|| Ok(Database::builder().open(&path)?));
            // If reopening failed, fall back to reading so the store stays usable.
            match db {
                Ok(db) => self.db = Some(Db::Write(db)),
                Err(e) => {
                    self.db = Database::builder().open_read_only(&path).ok().map(Db::Read);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn hash(&self, domain: &[u8], bytes: &[u8]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.key_hash);
        h.update(&(domain.len() as u32).to_le_bytes());
        h.update(domain);
        h.update(bytes);
        *h.finalize().as_bytes()
    }

    fn group_prefix(&self, group: &GroupId) -> [u8; 32] {
        self.hash(b"group", &group.0)
    }

    fn physical(&self, kind: Kind, key: &Key) -> Vec<u8> {
        match key.group {
            None => self.hash(kind.name().as_bytes(), &key.parts).to_vec(),
            Some(g) => {
                let mut k = self.group_prefix(&g).to_vec();
                if let Some(seq) = key.seq {
                    k.extend_from_slice(&seq.to_be_bytes());
                } else if !key.parts.is_empty() {
                    k.extend_from_slice(&self.hash(kind.name().as_bytes(), &key.parts));
                }
                k
            }
        }
    }

    fn aad(kind: Kind, physical: &[u8]) -> Vec<u8> {
        [kind.name().as_bytes(), b"\0", physical].concat()
    }

    fn open_value(&self, kind: Kind, physical: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        self.values
            .open(&Self::aad(kind, physical), sealed)
            .map_err(|_| StoreError::Decrypt)
    }

    /// Reads one record.
    pub fn get(&self, kind: Kind, key: &Key) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        let physical = self.physical(kind, key);
        guarded(|| {
            let txn = self.read_txn()?;
            let table = txn.open_table(kind.table())?;
            match table.get(physical.as_slice())? {
                None => Ok(None),
                Some(v) => Ok(Some(self.open_value(kind, &physical, v.value())?)),
            }
        })
    }

    /// Every record of `kind`, decrypted (for groups: every group record).
    pub fn all(&self, kind: Kind) -> Result<Vec<Zeroizing<Vec<u8>>>, StoreError> {
        self.all_each(kind)?.into_iter().collect()
    }

    /// Every record of `kind` in `group`, in key order (units: arrival order).
    pub fn scan_group(&self, kind: Kind, group: &GroupId) -> Result<Vec<Zeroizing<Vec<u8>>>, StoreError> {
        self.scan_group_each(kind, group)?.into_iter().collect()
    }

    /// [`Store::scan_group`], record by record: one that cannot be opened (damaged) is an
    /// error in its place, and the others are still read.
    pub fn scan_group_each(&self, kind: Kind, group: &GroupId) -> Result<Vec<RecordRead>, StoreError> {
        let prefix = self.group_prefix(group);
        guarded(|| {
            let txn = self.read_txn()?;
            let table = txn.open_table(kind.table())?;
            let mut out = Vec::new();
            for entry in table.range(prefix.as_slice()..)? {
                let (k, v) = entry?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                if k.value().len() > prefix.len() {
                    out.push(self.open_value(kind, k.value(), v.value()));
                }
            }
            Ok(out)
        })
    }

    /// [`Store::all`], record by record (see [`Store::scan_group_each`]).
    pub fn all_each(&self, kind: Kind) -> Result<Vec<RecordRead>, StoreError> {
        guarded(|| {
            let txn = self.read_txn()?;
            let table = txn.open_table(kind.table())?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (k, v) = entry?;
                out.push(self.open_value(kind, k.value(), v.value()));
            }
            Ok(out)
        })
    }

    /// Whether `group` already stored a unit with id bytes `unit_id`.
    pub fn has_unit(&self, group: &GroupId, unit_id: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self.get(Kind::UnitSeen, &Key::in_group(*group, unit_id))?.is_some())
    }

    /// Commits `batch` durably as one transaction.
    pub fn commit(&mut self, batch: Batch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let largest = batch
            .puts
            .iter()
            .map(|(_, _, v)| v.len())
            .chain(batch.appends.iter().map(|(_, u)| u.len()))
            .max()
            .unwrap_or(0);
        if largest > MAX_RECORD_LEN {
            return Err(StoreError::TooLarge);
        }
        self.ensure_writable()?;
        guarded(|| self.commit_inner(&batch))
    }

    /// **Benchmarks only.** With `false`, commits no longer wait for the disk: a crash may
    /// lose the latest ones. Measures the in-memory path of sync without fsync.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    fn commit_inner(&mut self, batch: &Batch) -> Result<(), StoreError> {
        let Some(Db::Write(db)) = &self.db else {
            unreachable!("ensure_writable opened the file for writing")
        };
        let mut txn = db.begin_write()?;
        if !self.durable {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| StoreError::Io(e.to_string()))?;
        }
        for (kind, group) in &batch.clears {
            let prefix = self.group_prefix(group);
            let mut table = txn.open_table(kind.table())?;
            table.retain_in(prefix.as_slice().., |k, _| {
                !(k.starts_with(&prefix) && k.len() > prefix.len())
            })?;
        }
        for (kind, key, value) in &batch.puts {
            let physical = self.physical(*kind, key);
            let sealed = self.values.seal(&mut self.rng, &Self::aad(*kind, &physical), value);
            txn.open_table(kind.table())?
                .insert(physical.as_slice(), sealed.as_slice())?;
        }
        for (group, unit) in &batch.appends {
            let prefix = self.group_prefix(group);
            let unit_id = blake3::hash(unit);
            let seen_key = self.physical(Kind::UnitSeen, &Key::in_group(*group, unit_id.as_bytes()));
            let mut seen = txn.open_table(Kind::UnitSeen.table())?;
            if seen.get(seen_key.as_slice())?.is_some() {
                continue;
            }
            let marker = self
                .values
                .seal(&mut self.rng, &Self::aad(Kind::UnitSeen, &seen_key), b"");
            seen.insert(seen_key.as_slice(), marker.as_slice())?;
            drop(seen);
            let mut units = txn.open_table(Kind::Unit.table())?;
            let next = {
                let mut end = prefix.to_vec();
                end.extend_from_slice(&u64::MAX.to_be_bytes());
                let last = units
                    .range(prefix.as_slice()..=end.as_slice())?
                    .next_back()
                    .transpose()?;
                match last {
                    Some((k, _)) if k.value().len() == prefix.len() + 8 => {
                        u64::from_be_bytes(k.value()[prefix.len()..].try_into().expect("8 bytes")) + 1
                    }
                    _ => 0,
                }
            };
            let physical = self.physical(
                Kind::Unit,
                &Key {
                    group: Some(*group),
                    parts: Vec::new(),
                    seq: Some(next),
                },
            );
            let sealed = self.values.seal(&mut self.rng, &Self::aad(Kind::Unit, &physical), unit);
            units.insert(physical.as_slice(), sealed.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }
}

/// A random source for stores and sessions, seeded from the operating system.
pub fn os_rng() -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    rand::rngs::StdRng::from_seed(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(3)
    }

    #[test]
    fn values_round_trip_and_units_keep_order() {
        let key = SymmetricKey::from_bytes([7; 32]);
        let mut store = Store::in_memory(&key, rng()).unwrap();
        let g = GroupId([1; 32]);
        let mut b = Batch::new();
        b.put(Kind::Group, Key::in_group(g, b""), b"record".to_vec());
        b.put(Kind::Op, Key::in_group(g, b"op1"), b"op one".to_vec());
        for i in 0..3u8 {
            b.append_unit(g, vec![i; 10]);
        }
        b.append_unit(g, vec![0; 10]); // duplicate: ignored
        store.commit(b).unwrap();
        assert_eq!(
            &**store.get(Kind::Group, &Key::in_group(g, b"")).unwrap().unwrap(),
            b"record"
        );
        let units = store.scan_group(Kind::Unit, &g).unwrap();
        assert_eq!(units.iter().map(|u| u[0]).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(store.has_unit(&g, blake3::hash(&[1; 10]).as_bytes()).unwrap());
        assert_eq!(store.scan_group(Kind::Op, &g).unwrap().len(), 1);
        assert_eq!(store.all(Kind::Group).unwrap().len(), 1);
        let mut b = Batch::new();
        b.clear(Kind::Op, g);
        store.commit(b).unwrap();
        assert!(store.scan_group(Kind::Op, &g).unwrap().is_empty());
        assert!(store.get(Kind::Group, &Key::in_group(g, b"")).unwrap().is_some());
    }
}
