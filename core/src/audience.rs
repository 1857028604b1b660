//! Audience grants: the key of an audience document, sealed to each chosen member.
//!
//! A goal shared with some supporters, or a reach-out to chosen members, lives in its own
//! audience document under its own key. The grant names the document, its owner and its
//! audience, carries that key sealed (HPKE) to each audience member, and is signed by the
//! owner. Its hash is the key id units of that document name. Members outside the audience
//! can see that a grant exists, but can open none of its seals.

use rand::CryptoRng;
use thiserror::Error;

use crate::crypto::{self, BoxSecret, SigningSecret, SymmetricKey};
use crate::ids::{DocId, DocKind, GroupId, KeyId, MemberId};
use crate::membership::KeySeal;
use crate::wire::{DecodeError, Reader, Writer};

/// Format version of audience grants.
pub const GRANT_VERSION: u8 = 1;
/// Largest audience.
pub const MAX_AUDIENCE: usize = 1024;
const GRANT_SIG_CONTEXT: &[u8] = b"alongside/audience-grant/v1";
const SEAL_INFO: &[u8] = b"alongside/audience-key/v1";

/// Why a grant was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum GrantError {
    /// Malformed bytes.
    #[error("malformed audience grant: {0}")]
    Decode(#[from] DecodeError),
    /// The owner's signature does not verify.
    #[error("the audience grant's signature is not valid")]
    Signature,
    /// The grant is not for an audience document, or its owner is not in its audience.
    #[error("the audience grant is inconsistent")]
    Inconsistent,
}

/// A signed audience grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceGrant {
    /// The group.
    pub group: GroupId,
    /// The audience document.
    pub doc: DocId,
    /// Who made it (and owns the goals or reach-outs in it).
    pub owner: MemberId,
    /// With the owner, determines the document id.
    pub salt: [u8; 32],
    /// When the owner says it was made (Unix ms).
    pub created_at_ms: i64,
    /// Everyone who may read and write it, owner included, sorted.
    pub members: Vec<MemberId>,
    /// The document key, sealed to each member.
    pub seals: Vec<KeySeal>,
    bytes: Vec<u8>,
}

impl AudienceGrant {
    /// Makes a grant of `key` for a new audience document, sealed to each of `members`
    /// (given with their X25519 keys); the owner is added if missing. The document id is
    /// derived from the owner and a fresh salt, so nobody else can claim it.
    pub fn create<R: CryptoRng>(
        rng: &mut R,
        group: GroupId,
        owner: &SigningSecret,
        owner_box: [u8; 32],
        members: &[(MemberId, [u8; 32])],
        key: &SymmetricKey,
        created_at_ms: i64,
    ) -> Result<AudienceGrant, crypto::CryptoError> {
        let mut salt = [0u8; 32];
        rng.fill_bytes(&mut salt);
        Self::make(rng, group, owner, owner_box, members, key, salt, created_at_ms)
    }

    /// Makes the grant that follows `previous` for the same document: a fresh `key`,
    /// sealed to `members` only (the audience as it is now; the owner is kept). Whoever
    /// was left out cannot open what is sealed under it. It is newer than `previous`.
    pub fn renew<R: CryptoRng>(
        rng: &mut R,
        previous: &AudienceGrant,
        owner: &SigningSecret,
        owner_box: [u8; 32],
        members: &[(MemberId, [u8; 32])],
        key: &SymmetricKey,
    ) -> Result<AudienceGrant, crypto::CryptoError> {
        let created_at_ms = previous.created_at_ms.saturating_add(1);
        Self::make(
            rng,
            previous.group,
            owner,
            owner_box,
            members,
            key,
            previous.salt,
            created_at_ms,
        )
    }

    /// Whether this grant replaces `other` for the same document (the later one does;
    /// equal times are ordered by key id, so every device picks the same).
    pub fn is_newer_than(&self, other: &AudienceGrant) -> bool {
        (self.created_at_ms, self.key_id()) > (other.created_at_ms, other.key_id())
    }

    #[allow(clippy::too_many_arguments)]
    fn make<R: CryptoRng>(
        rng: &mut R,
        group: GroupId,
        owner: &SigningSecret,
        owner_box: [u8; 32],
        members: &[(MemberId, [u8; 32])],
        key: &SymmetricKey,
        salt: [u8; 32],
        created_at_ms: i64,
    ) -> Result<AudienceGrant, crypto::CryptoError> {
        let owner_id = MemberId(owner.public());
        let doc = audience_doc(&owner_id, &salt);
        let mut all: Vec<(MemberId, [u8; 32])> = members.to_vec();
        if !all.iter().any(|(m, _)| *m == owner_id) {
            all.push((owner_id, owner_box));
        }
        all.sort_by_key(|(m, _)| *m);
        all.dedup_by_key(|(m, _)| *m);
        let mut seals = Vec::with_capacity(all.len());
        for (m, box_public) in &all {
            let aad = seal_aad(&group, &doc, m);
            seals.push(KeySeal {
                recipient: *m,
                sealed: crypto::seal_to(rng, box_public, SEAL_INFO, &aad, key.expose())?,
            });
        }
        let mut grant = AudienceGrant {
            group,
            doc,
            owner: owner_id,
            salt,
            created_at_ms,
            members: all.iter().map(|(m, _)| *m).collect(),
            seals,
            bytes: Vec::new(),
        };
        let body = grant.encode_body();
        let sig = owner.sign(&[GRANT_SIG_CONTEXT, &body].concat());
        grant.bytes = [body, sig.to_vec()].concat();
        Ok(grant)
    }

    fn encode_body(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(GRANT_VERSION).bytes(&self.group.0);
        self.doc.encode(&mut w);
        w.bytes(&self.owner.0)
            .bytes(&self.salt)
            .i64(self.created_at_ms)
            .count(self.seals.len());
        for s in &self.seals {
            w.bytes(&s.recipient.0).var_bytes(&s.sealed);
        }
        w.finish()
    }

    /// Decodes a grant and verifies the owner's signature.
    pub fn decode(bytes: &[u8]) -> Result<AudienceGrant, GrantError> {
        if bytes.len() < 64 {
            return Err(DecodeError::Truncated.into());
        }
        let (body, sig) = bytes.split_at(bytes.len() - 64);
        let mut r = Reader::new(body);
        let version = r.u8()?;
        if version != GRANT_VERSION {
            return Err(DecodeError::Version(version).into());
        }
        let group = GroupId(r.array()?);
        let doc = DocId::decode(&mut r)?;
        let owner = MemberId(r.array()?);
        let salt: [u8; 32] = r.array()?;
        let created_at_ms = r.i64()?;
        let n = r.count(MAX_AUDIENCE, 36)?;
        let mut seals = Vec::with_capacity(n);
        for _ in 0..n {
            seals.push(KeySeal {
                recipient: MemberId(r.array()?),
                sealed: r.var_bytes(256)?.to_vec(),
            });
        }
        r.finish()?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| DecodeError::Truncated)?;
        crypto::verify(&owner.0, &[GRANT_SIG_CONTEXT, body].concat(), &sig).map_err(|_| GrantError::Signature)?;
        let members: Vec<MemberId> = seals.iter().map(|s| s.recipient).collect();
        let sorted = members.windows(2).all(|w| w[0] < w[1]);
        if doc != audience_doc(&owner, &salt) || !members.contains(&owner) || !sorted {
            return Err(GrantError::Inconsistent);
        }
        Ok(AudienceGrant {
            group,
            doc,
            owner,
            salt,
            created_at_ms,
            members,
            seals,
            bytes: bytes.to_vec(),
        })
    }

    /// The key id: BLAKE3 of the grant's encoding.
    pub fn key_id(&self) -> KeyId {
        KeyId(*blake3::hash(&self.bytes).as_bytes())
    }

    /// The encoding.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Opens the document key, if `me` is in the audience.
    pub fn open(&self, me: &MemberId, secret: &BoxSecret) -> Option<SymmetricKey> {
        let seal = self.seals.iter().find(|s| s.recipient == *me)?;
        let raw = secret
            .open(SEAL_INFO, &seal_aad(&self.group, &self.doc, me), &seal.sealed)
            .ok()?;
        let bytes: [u8; 32] = raw.as_slice().try_into().ok()?;
        Some(SymmetricKey::from_bytes(bytes))
    }
}

/// The id of the audience document `owner` creates with `salt`.
pub fn audience_doc(owner: &MemberId, salt: &[u8; 32]) -> DocId {
    DocId {
        kind: DocKind::Audience,
        bytes: blake3::derive_key("alongside audience document v1", &[&owner.0[..], &salt[..]].concat()),
    }
}

fn seal_aad(group: &GroupId, doc: &DocId, member: &MemberId) -> Vec<u8> {
    [&group.0[..], &doc.to_bytes()[..], &member.0[..]].concat()
}
