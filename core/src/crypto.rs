//! Cryptographic building blocks, each behind a small typed API.
//!
//! - [`SymmetricKey`]: a 32-byte XChaCha20-Poly1305 key (epoch keys, audience keys, the
//!   profile's data key). Zeroized on drop, redacted in `Debug`, compared in constant time.
//! - [`SigningSecret`]: an Ed25519 signing key (membership keys, invite keys).
//! - [`BoxSecret`]: an X25519 key for HPKE (RFC 9180, DHKEM(X25519, HKDF-SHA256),
//!   HKDF-SHA256, ChaCha20-Poly1305) to which keys are sealed for one member.
//! - [`PassphraseKdf`]: Argon2id parameters recorded in the profile header.
//!
//! Randomness is always passed in (`R: CryptoRng`), so tests are reproducible.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use rand::CryptoRng;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// Length of an XChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 24;
/// Length of a Poly1305 tag.
pub const TAG_LEN: usize = 16;

/// A cryptographic check failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// Authenticated decryption failed: wrong key, or the bytes were changed.
    #[error("the data could not be decrypted (wrong key or damaged data)")]
    Decrypt,
    /// A signature did not verify.
    #[error("a signature is not valid")]
    BadSignature,
    /// Bytes that should be a public key are not one.
    #[error("a public key is not valid")]
    BadPublicKey,
    /// HPKE sealing or opening failed.
    #[error("a sealed key could not be opened")]
    SealedKey,
    /// The passphrase key derivation rejected its parameters.
    #[error("the key derivation parameters are not valid")]
    KdfParams,
}

/// A 32-byte symmetric key.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct SymmetricKey([u8; 32]);

impl SymmetricKey {
    /// Draws a fresh key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        SymmetricKey(k)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SymmetricKey(bytes)
    }

    /// The raw key bytes (for sealing the key to someone; never log them).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    /// Derives an independent subkey for `purpose` (BLAKE3 key derivation).
    pub fn derive(&self, purpose: &str) -> SymmetricKey {
        SymmetricKey(blake3::derive_key(purpose, &self.0))
    }

    /// Encrypts `plaintext` with a fresh random nonce; returns `nonce ‖ ciphertext ‖ tag`.
    pub fn seal<R: CryptoRng + ?Sized>(&self, rng: &mut R, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(self.seal_with_nonce(&nonce, aad, plaintext));
        out
    }

    /// Opens what [`SymmetricKey::seal`] produced.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Decrypt)?;
        self.open_with_nonce(&nonce, aad, ct)
    }

    /// Encrypts with an explicit nonce; returns `ciphertext ‖ tag`.
    pub fn seal_with_nonce(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        self.cipher()
            .encrypt(&XNonce::from(*nonce), Payload { msg: plaintext, aad })
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail")
    }

    /// Decrypts `ciphertext ‖ tag` under an explicit nonce.
    pub fn open_with_nonce(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        self.cipher()
            .decrypt(&XNonce::from(*nonce), Payload { msg: ciphertext, aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Decrypt)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

impl PartialEq for SymmetricKey {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}
impl Eq for SymmetricKey {}

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(<redacted>)")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the compiler from short-circuiting the loop.
    std::hint::black_box(diff) == 0
}

/// An Ed25519 signing key.
#[derive(Clone)]
pub struct SigningSecret(SigningKey);

impl SigningSecret {
    /// Draws a fresh key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        SigningSecret(SigningKey::from_bytes(&seed))
    }

    /// Rebuilds a key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        SigningSecret(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed (to store it encrypted; never log it).
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public half.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningSecret(public {})", crate::ids::short_hex(&self.public()))
    }
}

/// Verifies an Ed25519 signature strictly (no malleable or small-order keys).
pub fn verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Result<(), CryptoError> {
    let key = VerifyingKey::from_bytes(public).map_err(|_| CryptoError::BadPublicKey)?;
    key.verify_strict(message, &Signature::from_bytes(signature))
        .map_err(|_| CryptoError::BadSignature)
}

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::ChaCha20Poly1305;

/// Length of an HPKE encapsulated key for X25519.
pub const ENCAPPED_LEN: usize = 32;

/// An X25519 secret for HPKE, kept as the 32-byte seed it is derived from.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct BoxSecret([u8; 32]);

impl BoxSecret {
    /// Draws a fresh key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        BoxSecret(seed)
    }

    /// Rebuilds a key from its seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        BoxSecret(seed)
    }

    /// The seed (to store it encrypted; never log it).
    pub fn seed(&self) -> &[u8; 32] {
        &self.0
    }

    /// The public key others seal to.
    pub fn public(&self) -> [u8; 32] {
        let (_, pk) = Kem::derive_keypair(&self.0);
        pk.to_bytes().into()
    }

    /// Opens a key sealed to this secret by [`seal_to`].
    pub fn open(&self, info: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < ENCAPPED_LEN {
            return Err(CryptoError::SealedKey);
        }
        let (sk, _) = Kem::derive_keypair(&self.0);
        let (enc, ct) = sealed.split_at(ENCAPPED_LEN);
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| CryptoError::SealedKey)?;
        hpke::single_shot_open::<HpkeAead, Kdf, Kem>(&OpModeR::Base, &sk, &enc, info, ct, aad)
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::SealedKey)
    }
}

impl std::fmt::Debug for BoxSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxSecret(<redacted>)")
    }
}

/// Seals `plaintext` to the X25519 public key `recipient`; returns `encapped ‖ ciphertext`.
pub fn seal_to<R: CryptoRng>(
    rng: &mut R,
    recipient: &[u8; 32],
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient).map_err(|_| CryptoError::BadPublicKey)?;
    let (enc, ct) =
        hpke::single_shot_seal_with_rng::<HpkeAead, Kdf, Kem>(&OpModeS::Base, &pk, info, plaintext, aad, rng)
            .map_err(|_| CryptoError::SealedKey)?;
    let mut out = enc.to_bytes().to_vec();
    out.extend(ct);
    Ok(out)
}

/// Argon2id parameters for turning a passphrase into a wrapping key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassphraseKdf {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl PassphraseKdf {
    /// The parameters every real profile uses: 64 MiB, three passes, one lane.
    pub const STRONG: PassphraseKdf = PassphraseKdf {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Deliberately weak parameters, only for test profiles (`ALONGSIDE_TEST_KDF=1`).
    pub const TEST: PassphraseKdf = PassphraseKdf {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    /// Whether these are at least as strong as [`PassphraseKdf::STRONG`].
    pub fn is_strong(&self) -> bool {
        self.memory_kib >= Self::STRONG.memory_kib && self.iterations >= Self::STRONG.iterations
    }

    /// Derives a 32-byte key from `passphrase` and `salt`.
    pub fn derive(&self, passphrase: &[u8], salt: &[u8; 16]) -> Result<SymmetricKey, CryptoError> {
        // Refuse absurd parameters from a damaged header before allocating for them.
        if self.memory_kib > 4 * 1024 * 1024 || self.iterations > 64 || self.parallelism > 16 {
            return Err(CryptoError::KdfParams);
        }
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|_| CryptoError::KdfParams)?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(passphrase, salt, &mut out)
            .map_err(|_| CryptoError::KdfParams)?;
        let key = SymmetricKey::from_bytes(out);
        out.zeroize();
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn symmetric_round_trip_and_tamper() {
        let mut rng = rng();
        let key = SymmetricKey::generate(&mut rng);
        let sealed = key.seal(&mut rng, b"aad", b"secret words");
        assert_eq!(&**key.open(b"aad", &sealed).unwrap(), b"secret words");
        assert_eq!(key.open(b"other", &sealed), Err(CryptoError::Decrypt));
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert_eq!(key.open(b"aad", &bad), Err(CryptoError::Decrypt));
        assert_eq!(key.open(b"aad", &sealed[..10]), Err(CryptoError::Decrypt));
    }

    #[test]
    fn hpke_round_trip_only_for_the_recipient() {
        let mut rng = rng();
        let alice = BoxSecret::generate(&mut rng);
        let eve = BoxSecret::generate(&mut rng);
        let sealed = seal_to(&mut rng, &alice.public(), b"info", b"aad", b"epoch key").unwrap();
        assert_eq!(&**alice.open(b"info", b"aad", &sealed).unwrap(), b"epoch key");
        assert!(eve.open(b"info", b"aad", &sealed).is_err());
        assert!(alice.open(b"info", b"other", &sealed).is_err());
    }

    #[test]
    fn signatures_verify_strictly() {
        let mut rng = rng();
        let key = SigningSecret::generate(&mut rng);
        let sig = key.sign(b"message");
        assert!(verify(&key.public(), b"message", &sig).is_ok());
        assert_eq!(verify(&key.public(), b"messagf", &sig), Err(CryptoError::BadSignature));
        assert!(format!("{key:?}").starts_with("SigningSecret(public "));
    }

    #[test]
    fn kdf_is_deterministic_per_salt() {
        let a = PassphraseKdf::TEST.derive(b"pw", &[1; 16]).unwrap();
        let b = PassphraseKdf::TEST.derive(b"pw", &[1; 16]).unwrap();
        let c = PassphraseKdf::TEST.derive(b"pw", &[2; 16]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!PassphraseKdf::TEST.is_strong());
        assert_eq!(format!("{a:?}"), "SymmetricKey(<redacted>)");
    }
}
