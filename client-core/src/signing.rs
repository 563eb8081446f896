//! Device signatures and relay sealing.
//!
//! Every device holds an Ed25519 key pair made at enrollment; the server
//! keeps its public key. Every change the device sends is signed: one
//! signature per sync request (or bundle) covers the device and a
//! [`Manifest`] naming every change it carries, by record:
//!
//! ```text
//! message  = "gridsync-batch-v1" || device id (16 bytes) || manifest
//! manifest = for each record: record id (16) || change count (u32, big-endian) || change hashes (32 each)
//! ```
//!
//! The ids are the raw bytes of their UUIDs; a change hash is Automerge's
//! (SHA-256 of the change chunk, see `docs/protocol.md`). So a change
//! cannot be passed off as another device's, moved to another record, or
//! altered by one byte without the signature failing, and anyone holding
//! the device's public key, the manifest and the change can check it
//! without a Gridsync server (`docs/provenance.md`). One signature per
//! request rather than per change keeps the wire cost at 64 bytes a sync:
//! an evening sync of 7 records and a month's backlog of 250 changes cost
//! the same.
//!
//! A bundle another phone carries to the server (relay) is sealed to the
//! server's public key with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305): the
//! carrier holds bytes it cannot read or alter unnoticed.
//!
//! Crates: `ed25519-dalek` (the dalek project's, BSD-3-Clause, the most
//! used Ed25519 in Rust, constant-time, audited with curve25519-dalek) and
//! `hpke` (MIT/Apache-2.0, RFC 9180 with its test vectors, on the same
//! curve25519-dalek): one curve implementation is compiled for both.

use ed25519_dalek::Signer as _;
use hpke::{Deserializable, Kem as _, Serializable};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::CoreError;

/// Domain separation prefix of a signature's message.
pub const BATCH_DOMAIN: &[u8] = b"gridsync-batch-v1";
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;

/// An Ed25519 signature: 64 raw bytes on the wire (no length prefix).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Default for Signature {
    fn default() -> Self {
        Signature([0; SIGNATURE_LEN])
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", hex_of(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(SIGNATURE_LEN)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Signature;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Signature, A::Error> {
                let mut out = [0u8; SIGNATURE_LEN];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq.next_element()?.ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature(out))
            }
        }
        d.deserialize_tuple(SIGNATURE_LEN, V)
    }
}

/// The hash a change goes by in a manifest: its Automerge change hash, or
/// for bytes that are no change, the SHA-256 of the bytes (such a change is
/// refused as malformed anyway; its hash only keeps the manifest whole).
///
/// An uncompressed change chunk is hashed straight from its header, as
/// Automerge defines the hash, without parsing its columns: the server
/// rebuilds every request's manifest before judging it, and the judge
/// parses each change anyway.
pub fn change_hash(bytes: &[u8]) -> [u8; 32] {
    if let Some(h) = chunk_hash(bytes) {
        return h;
    }
    match crate::doc::parse_change(bytes) {
        Ok(c) => c.hash().0,
        Err(_) => {
            use sha2::Digest;
            sha2::Sha256::digest(bytes).into()
        }
    }
}

/// Automerge's hash of a change chunk that is exactly one uncompressed
/// change with a valid checksum: SHA-256 over the chunk type, the data
/// length (minimal ULEB128) and the data. `None` for anything else.
fn chunk_hash(bytes: &[u8]) -> Option<[u8; 32]> {
    use sha2::Digest;
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    const CHANGE: u8 = 1;
    let (magic, rest) = bytes.split_first_chunk::<4>()?;
    let (checksum, rest) = rest.split_first_chunk::<4>()?;
    let (&kind, mut rest) = rest.split_first()?;
    if *magic != MAGIC || kind != CHANGE {
        return None;
    }
    let mut len: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = rest.split_first()?;
        rest = tail;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        if shift >= 63 {
            return None;
        }
    }
    if u64::try_from(rest.len()).ok()? != len {
        return None;
    }
    let mut header = vec![kind];
    let mut n = len;
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            header.push(b);
            break;
        }
        header.push(b | 0x80);
    }
    let hash: [u8; 32] = sha2::Sha256::new().chain_update(&header).chain_update(rest).finalize().into();
    (hash[..4] == checksum[..]).then_some(hash)
}

/// What one signature covers: every change of a request or bundle, by
/// record, in the order they are sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest(Vec<u8>);

impl Manifest {
    /// An empty manifest.
    pub fn new() -> Manifest {
        Manifest::default()
    }

    /// Add record `doc` with the hashes of its changes.
    pub fn push(&mut self, doc: &Uuid, hashes: &[[u8; 32]]) {
        self.0.extend_from_slice(doc.as_bytes());
        self.0.extend_from_slice(&u32::try_from(hashes.len()).unwrap_or(u32::MAX).to_be_bytes());
        for h in hashes {
            self.0.extend_from_slice(h);
        }
    }

    /// The manifest's bytes (what is stored beside the changes).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// A stored manifest; `None` if its bytes are not one.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Manifest> {
        let m = Manifest(bytes);
        m.entries().map(|_| m)
    }

    /// Each record and its change hashes; `None` if the bytes are cut short.
    pub fn entries(&self) -> Option<Vec<(Uuid, Vec<[u8; 32]>)>> {
        let mut out = Vec::new();
        let mut rest = &self.0[..];
        while !rest.is_empty() {
            let doc = Uuid::from_bytes(rest.get(..16)?.try_into().ok()?);
            let n = u32::from_be_bytes(rest.get(16..20)?.try_into().ok()?) as usize;
            rest = &rest[20..];
            let len = n.checked_mul(32).filter(|&l| l <= rest.len())?;
            out.push((doc, rest[..len].chunks_exact(32).filter_map(|h| h.try_into().ok()).collect()));
            rest = &rest[len..];
        }
        Some(out)
    }

    /// Whether it names change `hash` of record `doc`.
    pub fn names(&self, doc: &Uuid, hash: &[u8; 32]) -> bool {
        self.entries().is_some_and(|e| e.iter().any(|(d, hs)| d == doc && hs.contains(hash)))
    }
}

/// The message a signature covers.
pub fn batch_message(device: &Uuid, manifest: &Manifest) -> Vec<u8> {
    let mut m = Vec::with_capacity(BATCH_DOMAIN.len() + 16 + manifest.0.len());
    m.extend_from_slice(BATCH_DOMAIN);
    m.extend_from_slice(device.as_bytes());
    m.extend_from_slice(&manifest.0);
    m
}

/// A device's signing key. Its secret never leaves the phone's encrypted
/// store (an app may keep it in the platform keystore instead).
pub struct DeviceKey {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceKey(public {})", self.public_hex())
    }
}

impl DeviceKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<DeviceKey, CoreError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CoreError::Protocol(format!("no random source: {e}")))?;
        Ok(DeviceKey::from_secret(&seed))
    }

    /// The key with this 32-byte secret (as [`DeviceKey::secret`] gave it).
    pub fn from_secret(secret: &[u8; 32]) -> DeviceKey {
        DeviceKey { key: ed25519_dalek::SigningKey::from_bytes(secret) }
    }

    /// The secret, for the store that keeps it.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// The public key's 32 bytes.
    pub fn public(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.key.verifying_key().to_bytes()
    }

    /// The public key in hex, as enrollment sends it.
    pub fn public_hex(&self) -> String {
        hex_of(&self.public())
    }

    /// Sign device `device`'s sign-out at `at_ms` ([`sign_out_message`]).
    pub fn sign_sign_out(&self, device: &Uuid, at_ms: i64) -> Signature {
        Signature(self.key.sign(&sign_out_message(device, at_ms)).to_bytes())
    }

    /// Sign the changes `manifest` names as device `device`.
    pub fn sign_batch(&self, device: &Uuid, manifest: &Manifest) -> Signature {
        Signature(self.key.sign(&batch_message(device, manifest)).to_bytes())
    }
}

/// Whether `sig` is device `device`'s signature (public key `public`) of
/// the changes `manifest` names. Strict verification: no malleable or
/// small-order forms are accepted.
pub fn verify_batch(public: &[u8], device: &Uuid, manifest: &Manifest, sig: &Signature) -> bool {
    verify_message(public, &batch_message(device, manifest), sig)
}

/// Domain separation prefix of a sign-out's signed message.
pub const SIGN_OUT_DOMAIN: &[u8] = b"gridsync-sign-out-v1";

/// The message a sign-out signature covers: the domain, the device id (16
/// bytes) and the phone's time of signing (ms since the epoch, i64
/// big-endian). The device is named so a sign-out cannot be posted for
/// another device; the time, so a captured one is refused once it is
/// older than the server's window (and a used one names a revoked device).
pub fn sign_out_message(device: &Uuid, at_ms: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGN_OUT_DOMAIN.len() + 16 + 8);
    m.extend_from_slice(SIGN_OUT_DOMAIN);
    m.extend_from_slice(device.as_bytes());
    m.extend_from_slice(&at_ms.to_be_bytes());
    m
}

/// Whether `sig` is device `device`'s (public key `public`) signature of a
/// sign-out at `at_ms`. Strict verification, as [`verify_batch`].
pub fn verify_sign_out(public: &[u8], device: &Uuid, at_ms: i64, sig: &Signature) -> bool {
    verify_message(public, &sign_out_message(device, at_ms), sig)
}

fn verify_message(public: &[u8], message: &[u8], sig: &Signature) -> bool {
    let Ok(bytes) = <[u8; PUBLIC_KEY_LEN]>::try_from(public) else { return false };
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&bytes) else { return false };
    let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
    key.verify_strict(message, &sig).is_ok()
}

/// Whether `bytes` is a usable Ed25519 public key (a point on the curve,
/// not of small order).
pub fn valid_public_key(bytes: &[u8]) -> bool {
    <[u8; PUBLIC_KEY_LEN]>::try_from(bytes)
        .ok()
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
        .is_some_and(|k| !k.is_weak())
}

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;

/// Magic and version of a sealed relay bundle.
pub const SEALED_MAGIC: &[u8; 4] = b"GSR1";
const SEAL_INFO: &[u8] = b"gridsync relay bundle v1";
const ENCAPPED_LEN: usize = 32;
/// Bytes a sealed bundle adds to its plaintext: the magic, the
/// encapsulated key and the AEAD tag.
pub const SEAL_OVERHEAD: usize = 4 + ENCAPPED_LEN + 16;
/// Length of the server's relay public key.
pub const SERVER_KEY_LEN: usize = 32;

/// The server's relay key pair: phones seal bundles to its public half.
pub struct ServerKey {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: <Kem as hpke::Kem>::PublicKey,
}

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerKey(public {})", hex_of(&self.public()))
    }
}

impl ServerKey {
    /// A new key pair.
    pub fn generate() -> Result<ServerKey, CoreError> {
        let mut ikm = [0u8; 32];
        getrandom::fill(&mut ikm).map_err(|e| CoreError::Protocol(format!("no random source: {e}")))?;
        let (secret, public) = Kem::derive_keypair(&ikm);
        Ok(ServerKey { secret, public })
    }

    /// The key pair with this secret (as [`ServerKey::secret`] gave it).
    pub fn from_secret(bytes: &[u8]) -> Result<ServerKey, CoreError> {
        let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map_err(|e| CoreError::Protocol(format!("bad server key: {e}")))?;
        let public = Kem::sk_to_pk(&secret);
        Ok(ServerKey { secret, public })
    }

    /// The secret's bytes, for the server's database.
    pub fn secret(&self) -> Vec<u8> {
        self.secret.to_bytes().to_vec()
    }

    /// The public key's bytes, for phones.
    pub fn public(&self) -> Vec<u8> {
        self.public.to_bytes().to_vec()
    }

    /// Open a sealed bundle: `None` if it was not sealed to this key or a
    /// byte of it changed. The plaintext is exactly [`SEAL_OVERHEAD`]
    /// bytes shorter than `sealed`, so a caller can hold its memory before
    /// opening.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < 4 + ENCAPPED_LEN || &sealed[..4] != SEALED_MAGIC {
            return None;
        }
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[4..4 + ENCAPPED_LEN]).ok()?;
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &hpke::OpModeR::Base,
            &self.secret,
            &encapped,
            SEAL_INFO,
            &sealed[4 + ENCAPPED_LEN..],
            SEALED_MAGIC,
        )
        .ok()
    }
}

/// Seal `plain` to the server's relay public key `server_public`.
pub fn seal_to_server(server_public: &[u8], plain: &[u8]) -> Result<Vec<u8>, CoreError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(server_public)
        .map_err(|_| CoreError::Protocol("the server's relay key is not a valid key".into()))?;
    let (encapped, ciphertext) =
        hpke::single_shot_seal::<Aead, Kdf, Kem>(&hpke::OpModeS::Base, &pk, SEAL_INFO, plain, SEALED_MAGIC)
            .map_err(|e| CoreError::Protocol(format!("cannot seal: {e}")))?;
    let mut out = Vec::with_capacity(4 + ENCAPPED_LEN + ciphertext.len());
    out.extend_from_slice(SEALED_MAGIC);
    out.extend_from_slice(&encapped.to_bytes());
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Whether `bytes` looks like a sealed relay bundle (what a carrier can
/// check without reading it).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.len() > 4 + ENCAPPED_LEN + 16 && &bytes[..4] == SEALED_MAGIC
}

/// Lower-case hex.
pub fn hex_of(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 0xf)] as char);
    }
    s
}

/// Bytes of lower- or upper-case hex; `None` if it is not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(doc: u8, hashes: &[[u8; 32]]) -> Manifest {
        let mut m = Manifest::new();
        m.push(&Uuid::from_bytes([doc; 16]), hashes);
        m
    }

    #[test]
    fn a_sign_out_signature_names_its_device_and_time_and_is_no_batch_signature() {
        let key = DeviceKey::from_secret(&[7; 32]);
        let dev = Uuid::from_bytes([2; 16]);
        let sig = key.sign_sign_out(&dev, 1_000);
        assert!(verify_sign_out(&key.public(), &dev, 1_000, &sig));
        assert!(!verify_sign_out(&key.public(), &dev, 1_001, &sig), "another time");
        assert!(!verify_sign_out(&key.public(), &Uuid::from_bytes([9; 16]), 1_000, &sig), "another device");
        assert!(!verify_sign_out(&DeviceKey::from_secret(&[8; 32]).public(), &dev, 1_000, &sig), "another key");
        // A batch signature over an empty manifest is not a sign-out.
        let batch = key.sign_batch(&dev, &Manifest::new());
        assert!(!verify_sign_out(&key.public(), &dev, 0, &batch));
    }

    #[test]
    fn a_signature_covers_the_device_and_every_record_and_change() {
        let key = DeviceKey::from_secret(&[7; 32]);
        let dev = Uuid::from_bytes([2; 16]);
        let m = manifest(1, &[[3; 32], [4; 32]]);
        let sig = key.sign_batch(&dev, &m);
        assert!(verify_batch(&key.public(), &dev, &m, &sig));
        assert!(!verify_batch(&key.public(), &dev, &manifest(9, &[[3; 32], [4; 32]]), &sig), "another record");
        assert!(!verify_batch(&key.public(), &Uuid::from_bytes([9; 16]), &m, &sig), "another device");
        assert!(!verify_batch(&key.public(), &dev, &manifest(1, &[[3; 32], [5; 32]]), &sig), "another change");
        assert!(!verify_batch(&key.public(), &dev, &manifest(1, &[[3; 32]]), &sig), "a change left out");
        let other = DeviceKey::from_secret(&[8; 32]);
        assert!(!verify_batch(&other.public(), &dev, &m, &sig), "another key");
        let mut flipped = sig;
        flipped.0[10] ^= 1;
        assert!(!verify_batch(&key.public(), &dev, &m, &flipped));
        assert!(!verify_batch(&[0; 5], &dev, &m, &sig), "a key of the wrong length is no key");
        assert!(m.names(&Uuid::from_bytes([1; 16]), &[4; 32]));
        assert!(!m.names(&Uuid::from_bytes([1; 16]), &[5; 32]));
        assert_eq!(Manifest::from_bytes(m.bytes().to_vec()), Some(m.clone()));
        assert_eq!(Manifest::from_bytes(m.bytes()[..30].to_vec()), None, "cut short");
    }

    /// The header hash is Automerge's own, for small and large changes
    /// (one- and multi-byte lengths); anything else goes the slow way, and
    /// bytes that are no change are hashed whole.
    #[test]
    fn a_change_is_hashed_from_its_header_as_automerge_does() {
        use automerge::transaction::Transactable;
        for size in [1usize, 100, 300, 20_000] {
            let mut doc = automerge::AutoCommit::new();
            doc.put(automerge::ROOT, "note", "巡".repeat(size)).unwrap();
            let mut change = doc.get_last_local_change().unwrap().clone();
            let raw = change.raw_bytes().to_vec();
            assert_eq!(chunk_hash(&raw), Some(change.hash().0), "{size}");
            assert_eq!(change_hash(&raw), change.hash().0);
            let compressed = change.bytes().to_vec();
            assert_eq!(change_hash(&compressed), change.hash().0, "compressed ({size})");
            let mut longer = raw.clone();
            longer.push(0);
            assert_eq!(chunk_hash(&longer), None, "a byte past the chunk");
            let mut flipped = raw.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert_eq!(chunk_hash(&flipped), None, "checksum no longer matches");
            use sha2::Digest;
            let whole: [u8; 32] = sha2::Sha256::digest(&flipped).into();
            assert_eq!(change_hash(&flipped), whole);
        }
    }

    /// The message is part of the wire format: a verifier outside Gridsync
    /// rebuilds it from this description.
    #[test]
    fn the_signed_message_is_pinned() {
        let m = batch_message(&Uuid::from_bytes([0xbb; 16]), &manifest(0xaa, &[[0xcc; 32]]));
        assert_eq!(&m[..17], b"gridsync-batch-v1");
        insta::assert_snapshot!(hex_of(&m));
        // RFC 8032 Ed25519 is deterministic: the same key and message give
        // the same signature, which pins the algorithm too.
        insta::assert_snapshot!(hex_of(
            &DeviceKey::from_secret(&[1; 32])
                .sign_batch(&Uuid::from_bytes([0xbb; 16]), &manifest(0xaa, &[[0xcc; 32]]))
                .0
        ));
    }

    #[test]
    fn signatures_are_64_raw_bytes_in_postcard() {
        let sig = Signature([5; 64]);
        let bytes = postcard::to_allocvec(&sig).unwrap();
        assert_eq!(bytes, vec![5; 64]);
        assert_eq!(postcard::from_bytes::<Signature>(&bytes).unwrap(), sig);
        assert!(postcard::from_bytes::<Signature>(&bytes[..63]).is_err());
    }

    #[test]
    fn only_the_server_opens_a_sealed_bundle_and_a_changed_byte_is_refused() {
        let server = ServerKey::generate().unwrap();
        let sealed = seal_to_server(&server.public(), b"household ledger").unwrap();
        assert!(is_sealed(&sealed));
        assert!(!sealed.windows(9).any(|w| w == b"household"), "the carrier sees no plain text");
        assert_eq!(server.open(&sealed).as_deref(), Some(&b"household ledger"[..]));
        let again = ServerKey::from_secret(&server.secret()).unwrap();
        assert_eq!(again.public(), server.public());
        assert_eq!(again.open(&sealed).as_deref(), Some(&b"household ledger"[..]));
        let other = ServerKey::generate().unwrap();
        assert_eq!(other.open(&sealed), None, "another server's key opens nothing");
        for i in [0, 5, 40, sealed.len() - 1] {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(server.open(&t), None, "byte {i} changed");
        }
        assert_eq!(server.open(&sealed[..20]), None);
        assert!(seal_to_server(&[1, 2, 3], b"x").is_err());
    }

    /// What a server holds of its memory budget before opening a bundle is
    /// the plaintext's size: the sealed size less the overhead, whatever
    /// the plaintext.
    #[test]
    fn the_opened_plaintext_is_the_sealed_size_less_the_overhead() {
        let server = ServerKey::generate().unwrap();
        for n in [0usize, 1, 1000, 70_000] {
            let sealed = seal_to_server(&server.public(), &vec![7u8; n]).unwrap();
            assert_eq!(sealed.len(), n + SEAL_OVERHEAD);
            assert_eq!(server.open(&sealed).map(|p| p.len()), Some(n));
        }
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex_of(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(from_hex("00AB10"), Some(vec![0, 0xab, 0x10]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
        assert!(valid_public_key(&DeviceKey::from_secret(&[3; 32]).public()));
        assert!(!valid_public_key(&[0; 32]), "the identity point is a weak key");
        assert!(!valid_public_key(&[1; 31]));
    }
}
