//! Sealed units: what travels between devices and what is stored.
//!
//! A unit is `header ‖ ciphertext ‖ sender signature`. The header names the group, the
//! document, the key it is encrypted under and the sender; the ciphertext is a
//! [`Payload`] under XChaCha20-Poly1305 with the header as associated data; the sender signs
//! everything before the signature. The unit id is the BLAKE3 hash of the whole encoding,
//! so it never changes as the unit is forwarded or stored. A keeper can check the sender's
//! signature without any content key. Byte layout: `docs/FORMAT.md`.

use rand::CryptoRng;
use thiserror::Error;

use crate::crypto::{self, CryptoError, NONCE_LEN, SigningSecret, SymmetricKey};
use crate::ids::{ChangeHash, DocId, GroupId, KeyId, MemberId, UnitId};
use crate::wire::{DecodeError, Reader, Writer};

/// Format version of sealed units.
pub const UNIT_VERSION: u8 = 1;
/// Largest sealed unit accepted (encoded, all included).
pub const MAX_UNIT_LEN: usize = 64 * 1024 * 1024;
/// Most author signatures one payload may carry.
pub const MAX_SIGNATURES: usize = 4096;
const HEADER_LEN: usize = 1 + 32 + DocId::LEN + 32 + 32 + NONCE_LEN;
const UNIT_SIG_CONTEXT: &[u8] = b"alongside/unit/v1";
const CHANGE_SIG_CONTEXT: &[u8] = b"alongside/change/v1";

/// Why a unit was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UnitError {
    /// The bytes are not a well-formed unit or payload.
    #[error("malformed unit: {0}")]
    Decode(#[from] DecodeError),
    /// The sender's signature does not verify.
    #[error("the unit's sender signature is not valid")]
    SenderSignature,
    /// Decryption failed (wrong key or changed bytes).
    #[error("the unit could not be decrypted")]
    Decrypt,
}

/// The readable header of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitHeader {
    /// The group.
    pub group: GroupId,
    /// The document the payload belongs to.
    pub doc: DocId,
    /// The epoch or audience key the payload is encrypted under.
    pub key_id: KeyId,
    /// The member who sealed (and signed) the unit.
    pub sender: MemberId,
    /// The AEAD nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl UnitHeader {
    fn encode(&self, w: &mut Writer) {
        w.u8(UNIT_VERSION).bytes(&self.group.0);
        self.doc.encode(w);
        w.bytes(&self.key_id.0).bytes(&self.sender.0).bytes(&self.nonce);
    }

    fn decode(r: &mut Reader<'_>) -> Result<UnitHeader, DecodeError> {
        let version = r.u8()?;
        if version != UNIT_VERSION {
            return Err(DecodeError::Version(version));
        }
        Ok(UnitHeader {
            group: GroupId(r.array()?),
            doc: DocId::decode(r)?,
            key_id: KeyId(r.array()?),
            sender: MemberId(r.array()?),
            nonce: r.array()?,
        })
    }
}

/// An author's signature over one change hash, bound to group, document and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSignature {
    /// The author's membership key.
    pub author: MemberId,
    /// The signed change.
    pub hash: ChangeHash,
    /// The epoch (or audience key) the author wrote under.
    pub key_id: KeyId,
    /// Ed25519 signature.
    pub signature: [u8; 64],
}

/// Encoded length of a [`ChangeSignature`].
pub const CHANGE_SIGNATURE_LEN: usize = 32 + 32 + 32 + 64;

impl ChangeSignature {
    fn message(group: &GroupId, doc: &DocId, hash: &ChangeHash, key_id: &KeyId) -> Vec<u8> {
        [CHANGE_SIG_CONTEXT, &group.0, &doc.to_bytes(), &hash.0, &key_id.0].concat()
    }

    /// Signs `hash` as its author.
    pub fn sign(key: &SigningSecret, group: &GroupId, doc: &DocId, hash: ChangeHash, key_id: KeyId) -> Self {
        ChangeSignature {
            author: MemberId(key.public()),
            hash,
            key_id,
            signature: key.sign(&Self::message(group, doc, &hash, &key_id)),
        }
    }

    /// Whether the signature is valid for this group and document.
    pub fn verify(&self, group: &GroupId, doc: &DocId) -> bool {
        crypto::verify(
            &self.author.0,
            &Self::message(group, doc, &self.hash, &self.key_id),
            &self.signature,
        )
        .is_ok()
    }

    /// Appends the fixed-size encoding.
    pub fn encode(&self, w: &mut Writer) {
        w.bytes(&self.author.0)
            .bytes(&self.hash.0)
            .bytes(&self.key_id.0)
            .bytes(&self.signature);
    }

    /// Reads the fixed-size encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ChangeSignature {
            author: MemberId(r.array()?),
            hash: ChangeHash(r.array()?),
            key_id: KeyId(r.array()?),
            signature: r.array()?,
        })
    }
}

/// The form of the changes a payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// One Automerge change in its own encoding (a live edit).
    Change = 1,
    /// A whole saved Automerge document (for a peer that has nothing).
    Document = 2,
    /// An Automerge bundle of changes (a catch-up).
    Bundle = 3,
}

/// The decrypted content of a unit. Its bytes are wiped when it is dropped and kept out
/// of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Payload {
    /// The form of `data`.
    pub kind: PayloadKind,
    /// Automerge bytes.
    pub data: Vec<u8>,
    /// Author signatures: at least one per author-head of the changes in `data`.
    pub signatures: Vec<ChangeSignature>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data);
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("kind", &self.kind)
            .field("bytes", &self.data.len())
            .field("signatures", &self.signatures.len())
            .finish()
    }
}

impl Payload {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(self.kind as u8).var_bytes(&self.data).count(self.signatures.len());
        for s in &self.signatures {
            s.encode(&mut w);
        }
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
        let mut r = Reader::new(bytes);
        let kind = match r.u8()? {
            1 => PayloadKind::Change,
            2 => PayloadKind::Document,
            3 => PayloadKind::Bundle,
            tag => return Err(DecodeError::UnknownTag { what: "payload", tag }),
        };
        let data = r.var_bytes(MAX_UNIT_LEN)?.to_vec();
        let n = r.count(MAX_SIGNATURES, CHANGE_SIGNATURE_LEN)?;
        let mut signatures = Vec::with_capacity(n);
        for _ in 0..n {
            signatures.push(ChangeSignature::decode(&mut r)?);
        }
        r.finish()?;
        Ok(Payload { kind, data, signatures })
    }
}

/// A sealed unit, decoded and with its sender signature checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedUnit {
    header: UnitHeader,
    bytes: Vec<u8>,
    id: UnitId,
}

impl SealedUnit {
    /// Encrypts `payload` under `key` and signs the unit as `sender`.
    #[allow(clippy::too_many_arguments)]
    pub fn seal<R: CryptoRng>(
        rng: &mut R,
        group: GroupId,
        doc: DocId,
        key_id: KeyId,
        key: &SymmetricKey,
        sender: &SigningSecret,
        payload: &Payload,
    ) -> SealedUnit {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let header = UnitHeader {
            group,
            doc,
            key_id,
            sender: MemberId(sender.public()),
            nonce,
        };
        let mut w = Writer::new();
        header.encode(&mut w);
        let header_bytes = w.finish();
        let plaintext = zeroize::Zeroizing::new(payload.encode());
        let ciphertext = key.seal_with_nonce(&nonce, &header_bytes, &plaintext);
        let mut w = Writer::new();
        w.bytes(&header_bytes).var_bytes(&ciphertext);
        let mut bytes = w.finish();
        let signature = sender.sign(&[UNIT_SIG_CONTEXT, &bytes].concat());
        bytes.extend_from_slice(&signature);
        let id = UnitId(*blake3::hash(&bytes).as_bytes());
        SealedUnit { header, bytes, id }
    }

    /// Decodes a unit and checks the sender's signature. Needs no content key.
    pub fn decode(bytes: &[u8]) -> Result<SealedUnit, UnitError> {
        if bytes.len() > MAX_UNIT_LEN {
            return Err(DecodeError::TooLong {
                len: bytes.len() as u64,
                max: MAX_UNIT_LEN as u64,
            }
            .into());
        }
        if bytes.len() < HEADER_LEN + 4 + 64 {
            return Err(DecodeError::Truncated.into());
        }
        let (signed, sig) = bytes.split_at(bytes.len() - 64);
        let mut r = Reader::new(signed);
        let header = UnitHeader::decode(&mut r)?;
        r.var_bytes(MAX_UNIT_LEN)?;
        r.finish()?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| DecodeError::Truncated)?;
        crypto::verify(&header.sender.0, &[UNIT_SIG_CONTEXT, signed].concat(), &sig)
            .map_err(|_| UnitError::SenderSignature)?;
        Ok(SealedUnit {
            header,
            bytes: bytes.to_vec(),
            id: UnitId(*blake3::hash(bytes).as_bytes()),
        })
    }

    /// The header.
    pub fn header(&self) -> &UnitHeader {
        &self.header
    }

    /// The unit id.
    pub fn id(&self) -> UnitId {
        self.id
    }

    /// The complete encoding.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Decrypts the payload with the key named in the header.
    pub fn open(&self, key: &SymmetricKey) -> Result<Payload, UnitError> {
        let (aad, rest) = self.bytes.split_at(HEADER_LEN);
        let mut r = Reader::new(&rest[..rest.len() - 64]);
        let ciphertext = r.var_bytes(MAX_UNIT_LEN)?;
        let plaintext = key
            .open_with_nonce(&self.header.nonce, aad, ciphertext)
            .map_err(|_: CryptoError| UnitError::Decrypt)?;
        Ok(Payload::decode(&plaintext)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sample() -> (SealedUnit, SymmetricKey) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let key = SymmetricKey::generate(&mut rng);
        let sender = SigningSecret::generate(&mut rng);
        let group = GroupId([1; 32]);
        let doc = DocId::group_doc(&group);
        let sig = ChangeSignature::sign(&sender, &group, &doc, ChangeHash([5; 32]), KeyId([3; 32]));
        let payload = Payload {
            kind: PayloadKind::Change,
            data: b"change bytes".to_vec(),
            signatures: vec![sig],
        };
        let unit = SealedUnit::seal(&mut rng, group, doc, KeyId([3; 32]), &key, &sender, &payload);
        (unit, key)
    }

    #[test]
    fn seal_decode_open_round_trip() {
        let (unit, key) = sample();
        let again = SealedUnit::decode(unit.bytes()).unwrap();
        assert_eq!(again, unit);
        let payload = again.open(&key).unwrap();
        assert_eq!(payload.data, b"change bytes");
        assert!(payload.signatures[0].verify(&unit.header().group, &unit.header().doc));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let (unit, key) = sample();
        for i in 0..unit.bytes().len() {
            let mut bad = unit.bytes().to_vec();
            bad[i] ^= 0x40;
            let refused = match SealedUnit::decode(&bad) {
                Err(_) => true,
                Ok(u) => u.open(&key).is_err(),
            };
            assert!(refused, "byte {i} flipped was accepted");
        }
    }
}
