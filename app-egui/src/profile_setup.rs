//! Creating a new profile: the one path that `alongside init` and the desktop app share.

use std::path::{Path, PathBuf};

use alongside_core::crypto::PassphraseKdf;
use alongside_core::vault::{Vault, VaultError};

/// A profile could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The device label was empty.
    #[error("the profile label cannot be empty")]
    EmptyLabel,
    /// A profile is already there; it was left as it was.
    #[error("an Alongside profile already exists in {}", .0.display())]
    Exists(PathBuf),
    /// Creating the header or the store failed.
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The passphrase protection to use: strong, unless `ALONGSIDE_TEST_KDF=1` asks for the
/// weak parameters that only test profiles may use.
pub fn kdf_from_env() -> PassphraseKdf {
    if std::env::var("ALONGSIDE_TEST_KDF").is_ok_and(|v| v == "1") {
        PassphraseKdf::TEST
    } else {
        PassphraseKdf::STRONG
    }
}

/// Creates a profile in `dir` labelled `label` (kept on this device only) and returns it
/// unlocked. Refuses an empty label and never overwrites an existing profile.
///
/// This runs the passphrase KDF: call it off the UI thread.
pub fn create_profile(dir: &Path, label: &str, passphrase: &[u8], kdf: PassphraseKdf) -> Result<Vault, SetupError> {
    let label = label.trim();
    if label.is_empty() {
        return Err(SetupError::EmptyLabel);
    }
    if alongside_core::profile::exists(dir) {
        return Err(SetupError::Exists(dir.to_path_buf()));
    }
    Ok(Vault::init(dir, label, passphrase, kdf)?)
}
