//! The profile header: the one small file that turns a passphrase into the data key.
//!
//! `profile` in the data directory holds a magic string, a version, the Argon2id
//! parameters, a salt, and the random data key wrapped (XChaCha20-Poly1305) under the key
//! derived from the passphrase, with everything before it as associated data. Nothing else
//! is in it. Changing the passphrase rewraps the same data key and replaces the file
//! atomically (write, fsync, rename, fsync the directory), so a crash leaves the old or the
//! new header, never neither. A wrong passphrase is detected before any other file is
//! opened, so it changes nothing.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::CryptoRng;
use thiserror::Error;

use crate::crypto::{PassphraseKdf, SymmetricKey};
use crate::wire::{Reader, Writer};

/// The profile header's file name in the data directory.
pub const PROFILE_FILE: &str = "profile";
/// The store's file name in the data directory.
pub const STORE_FILE: &str = "store.redb";
const MAGIC: &[u8; 16] = b"ALONGSIDE-PROFIL";
const VERSION: u8 = 1;
const WRAPPED_LEN: usize = 24 + 32 + 16;
const HEADER_LEN: usize = 16 + 1 + 12 + 1 + 16;

/// A profile could not be created, opened or changed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// No profile in that directory.
    #[error("there is no Alongside profile in {0}; create one with `alongside init`")]
    Missing(PathBuf),
    /// A profile already exists there.
    #[error("an Alongside profile already exists in {0}")]
    Exists(PathBuf),
    /// The passphrase does not unlock the profile.
    #[error("that passphrase does not unlock this profile")]
    WrongPassphrase,
    /// The passphrase is empty.
    #[error("the passphrase cannot be empty")]
    EmptyPassphrase,
    /// The header is damaged or belongs to something else.
    #[error("{0} is not an Alongside profile or is damaged; it was left untouched")]
    Foreign(PathBuf),
    /// A newer format than this build understands.
    #[error("this profile was written by a newer version of Alongside (format {0})")]
    Version(u8),
    /// Reading or writing failed.
    #[error("could not access {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ProfileError + '_ {
    move |source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The decoded header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileHeader {
    /// Argon2id parameters.
    pub kdf: PassphraseKdf,
    /// Whether this is a test profile with weak parameters.
    pub test_profile: bool,
    salt: [u8; 16],
    wrapped: Vec<u8>,
}

impl ProfileHeader {
    /// A well-formed header with test parameters, as bytes (a seed for the fuzzer).
    #[cfg(feature = "fuzzing")]
    pub(crate) fn fuzz_seed() -> Vec<u8> {
        ProfileHeader {
            kdf: PassphraseKdf::TEST,
            test_profile: true,
            salt: [3; 16],
            wrapped: vec![5; WRAPPED_LEN],
        }
        .encode()
    }

    fn prefix(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(MAGIC).u8(VERSION);
        w.u32(self.kdf.memory_kib)
            .u32(self.kdf.iterations)
            .u32(self.kdf.parallelism);
        w.u8(u8::from(self.test_profile)).bytes(&self.salt);
        w.finish()
    }

    fn encode(&self) -> Vec<u8> {
        [self.prefix(), self.wrapped.clone()].concat()
    }

    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<ProfileHeader, ProfileError> {
        let foreign = || ProfileError::Foreign(path.to_path_buf());
        let mut r = Reader::new(bytes);
        if r.bytes(16).map_err(|_| foreign())? != MAGIC {
            return Err(foreign());
        }
        let version = r.u8().map_err(|_| foreign())?;
        if version != VERSION {
            return Err(ProfileError::Version(version));
        }
        let mut read = || -> Result<ProfileHeader, crate::wire::DecodeError> {
            let kdf = PassphraseKdf {
                memory_kib: r.u32()?,
                iterations: r.u32()?,
                parallelism: r.u32()?,
            };
            let test_profile = match r.u8()? {
                0 => false,
                1 => true,
                tag => {
                    return Err(crate::wire::DecodeError::UnknownTag {
                        what: "profile flag",
                        tag,
                    });
                }
            };
            let salt = r.array()?;
            let wrapped = r.bytes(WRAPPED_LEN)?.to_vec();
            Ok(ProfileHeader {
                kdf,
                test_profile,
                salt,
                wrapped,
            })
        };
        let header = read().map_err(|_| foreign())?;
        r.finish().map_err(|_| foreign())?;
        Ok(header)
    }

    fn wrap<R: CryptoRng>(
        rng: &mut R,
        kdf: PassphraseKdf,
        test_profile: bool,
        passphrase: &[u8],
        data_key: &SymmetricKey,
    ) -> Result<ProfileHeader, ProfileError> {
        if passphrase.is_empty() {
            return Err(ProfileError::EmptyPassphrase);
        }
        let mut salt = [0u8; 16];
        rng.fill_bytes(&mut salt);
        let mut header = ProfileHeader {
            kdf,
            test_profile,
            salt,
            wrapped: Vec::new(),
        };
        let wrapping = kdf
            .derive(passphrase, &salt)
            .map_err(|_| ProfileError::WrongPassphrase)?;
        header.wrapped = wrapping.seal(rng, &header.prefix(), data_key.expose());
        debug_assert_eq!(header.encode().len(), HEADER_LEN + WRAPPED_LEN);
        Ok(header)
    }

    fn unwrap_key(&self, passphrase: &[u8]) -> Result<SymmetricKey, ProfileError> {
        let wrapping = self
            .kdf
            .derive(passphrase, &self.salt)
            .map_err(|_| ProfileError::WrongPassphrase)?;
        let raw = wrapping
            .open(&self.prefix(), &self.wrapped)
            .map_err(|_| ProfileError::WrongPassphrase)?;
        let bytes: [u8; 32] = raw.as_slice().try_into().map_err(|_| ProfileError::WrongPassphrase)?;
        Ok(SymmetricKey::from_bytes(bytes))
    }
}

/// Whether `dir` holds a profile.
pub fn exists(dir: &Path) -> bool {
    dir.join(PROFILE_FILE).exists()
}

/// Creates the header for a new profile and returns its fresh data key.
pub fn create<R: CryptoRng>(
    dir: &Path,
    rng: &mut R,
    passphrase: &[u8],
    kdf: PassphraseKdf,
) -> Result<SymmetricKey, ProfileError> {
    if exists(dir) || dir.join(STORE_FILE).exists() {
        return Err(ProfileError::Exists(dir.to_path_buf()));
    }
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    restrict_dir(dir)?;
    let data_key = SymmetricKey::generate(rng);
    let header = ProfileHeader::wrap(rng, kdf, !kdf.is_strong(), passphrase, &data_key)?;
    write_atomically(dir, &header.encode())?;
    Ok(data_key)
}

/// Reads the header in `dir`.
pub fn read_header(dir: &Path) -> Result<ProfileHeader, ProfileError> {
    let path = dir.join(PROFILE_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ProfileError::Missing(dir.to_path_buf())),
        Err(e) => return Err(io_err(&path)(e)),
    };
    ProfileHeader::decode(&bytes, &path)
}

/// Unlocks the profile in `dir`: the data key, or an error that changed nothing.
pub fn unlock(dir: &Path, passphrase: &[u8]) -> Result<SymmetricKey, ProfileError> {
    read_header(dir)?.unwrap_key(passphrase)
}

/// Rewraps the data key under `new` (same KDF parameters) and replaces the header.
pub fn change_passphrase<R: CryptoRng>(dir: &Path, rng: &mut R, old: &[u8], new: &[u8]) -> Result<(), ProfileError> {
    let header = read_header(dir)?;
    let data_key = header.unwrap_key(old)?;
    let fresh = ProfileHeader::wrap(rng, header.kdf, header.test_profile, new, &data_key)?;
    write_atomically(dir, &fresh.encode())
}

fn write_atomically(dir: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    let tmp = dir.join(format!("{PROFILE_FILE}.new"));
    let path = dir.join(PROFILE_FILE);
    {
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    if let Ok(d) = fs::File::open(dir) {
        d.sync_all().map_err(io_err(dir))?;
    }
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(dir: &Path) -> Result<(), ProfileError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

#[cfg(not(unix))]
fn restrict_dir(_dir: &Path) -> Result<(), ProfileError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn create_unlock_change_and_refuse() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let dir = std::env::temp_dir().join(format!("alongside-profile-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let key = create(&dir, &mut rng, b"first words", PassphraseKdf::TEST).unwrap();
        assert!(read_header(&dir).unwrap().test_profile);
        assert_eq!(unlock(&dir, b"first words").unwrap(), key);
        assert!(matches!(unlock(&dir, b"nope"), Err(ProfileError::WrongPassphrase)));
        assert!(matches!(
            create(&dir, &mut rng, b"x", PassphraseKdf::TEST),
            Err(ProfileError::Exists(_))
        ));
        change_passphrase(&dir, &mut rng, b"first words", b"second words").unwrap();
        assert_eq!(unlock(&dir, b"second words").unwrap(), key);
        assert!(matches!(
            unlock(&dir, b"first words"),
            Err(ProfileError::WrongPassphrase)
        ));
        fs::write(dir.join(PROFILE_FILE), b"something else entirely").unwrap();
        assert!(matches!(unlock(&dir, b"second words"), Err(ProfileError::Foreign(_))));
        fs::remove_dir_all(&dir).unwrap();
    }
}
