//! The sync wire protocol: sans-I/O message types shared by phone and server.
//!
//! One `POST /v1/sync` carries a [`SyncRequest`]: the device's
//! unacknowledged Automerge changes grouped by record, and its cursor into
//! the server's change feed. The [`SyncResponse`] carries acknowledgements by
//! change hash, per-record rejections with a machine-readable reason, the
//! changes in the device's scope since the cursor, the next cursor, and
//! whether more pages remain. Both are encoded by [`encode`]: a 5-byte
//! header (`GS`, protocol version, compression) and a postcard body,
//! deflate-compressed with a preset dictionary of typical sync bodies
//! (`dict-v1.bin`), which halves small messages. See `docs/protocol.md` and
//! `docs/decisions/001-wire-format.md`.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::signing::{DeviceKey, SIGNATURE_LEN, change_hash};
pub use crate::signing::{Manifest, Signature};

/// Protocol version this build speaks.
///
/// Version 2 signs every change a phone sends (`SyncRequest::signature`); a server
/// refuses unsigned changes, so version 1 is no longer spoken.
pub const PROTOCOL_VERSION: u16 = 2;
/// Versions this build accepts.
pub const SUPPORTED_VERSIONS: &[u16] = &[2];
/// HTTP content type of sync bodies.
pub const CONTENT_TYPE: &str = "application/x-gridsync";
/// Largest decoded message accepted (guards against compression bombs).
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;
/// Default byte budget of one response page.
pub const DEFAULT_PAGE_BYTES: u32 = 256 * 1024;
/// How long the server keeps an idle HTTP connection open for the next
/// request; clients drop an idle connection a second sooner.
pub const SERVER_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(5);

const MAGIC: &[u8; 2] = b"GS";
const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_DEFLATE: u8 = 1;
const COMPRESSION_DEFLATE_DICT_V1: u8 = 2;

/// Preset deflate dictionary of compression code 2: 16 KiB of typical sync
/// bodies (built once by `tests/examples/make_dictionary.rs`). Part of the
/// wire format: it never changes; a new one gets a new code.
pub const DICTIONARY_V1: &[u8] = include_bytes!("dict-v1.bin");

/// A record's id on the wire: 16 raw bytes.
pub type DocId = [u8; 16];
/// An Automerge change hash: 32 raw bytes.
pub type Hash = [u8; 32];

/// Changes of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocChanges {
    /// Record id.
    pub doc: DocId,
    /// Raw Automerge changes, in causal order.
    pub changes: Vec<Vec<u8>>,
}

/// The manifest of `docs`: every change by record, each by its hash
/// ([`crate::signing::change_hash`]), as a server rebuilds it to check a
/// request's signature.
pub fn manifest_of(docs: &[DocChanges]) -> Manifest {
    let mut m = Manifest::new();
    for d in docs {
        let hashes: Vec<Hash> = d.changes.iter().map(|c| change_hash(c)).collect();
        m.push(&uuid::Uuid::from_bytes(d.doc), &hashes);
    }
    m
}

/// Sign `docs` as `device` (hashing each change): what a phone sending
/// them outside its sync engine does.
pub fn sign_docs(key: &DeviceKey, device: &uuid::Uuid, docs: &[DocChanges]) -> Signature {
    key.sign_batch(device, &manifest_of(docs))
}

/// Phone → server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyncRequest {
    /// Position in the server's change feed; empty for "from the start".
    pub cursor: Vec<u8>,
    /// Unacknowledged local changes, grouped by record.
    pub docs: Vec<DocChanges>,
    /// Byte budget the phone wants for the response's changes (the server
    /// may lower it).
    pub max_response_bytes: u32,
    /// The device's signature of every change in `docs`
    /// ([`crate::signing`]).
    pub signature: Signature,
}

/// Stored changes of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocAck {
    /// Record id.
    pub doc: DocId,
    /// Hashes of the changes now durably stored on the server; empty means
    /// every change the request carried for this record.
    pub hashes: Vec<Hash>,
}

/// Why a record's changes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RejectReason {
    /// The record's grid is outside the device user's scope.
    OutOfScope,
    /// The merged record fails its kind's validation rules.
    Invalid,
    /// The change bytes could not be decoded.
    Malformed,
    /// The user's role may not make this change (e.g. escalate past their level).
    Forbidden,
    /// The changes depend on changes the server does not have; resend the
    /// record's whole history.
    MissingDependencies,
    /// The record would exceed the server's size limit.
    TooLarge,
    /// An immutable field (id, kind, grid, author) or an append-only history was altered.
    Immutable,
    /// A change's signature is not its device's, or the device has no key.
    BadSignature,
}

impl RejectReason {
    /// Stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::OutOfScope => "out_of_scope",
            RejectReason::Invalid => "invalid",
            RejectReason::Malformed => "malformed",
            RejectReason::Forbidden => "forbidden",
            RejectReason::MissingDependencies => "missing_dependencies",
            RejectReason::TooLarge => "too_large",
            RejectReason::Immutable => "immutable",
            RejectReason::BadSignature => "bad_signature",
        }
    }

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            RejectReason::OutOfScope => "该记录不在您的网格范围内",
            RejectReason::Invalid => "记录内容不符合填写要求",
            RejectReason::Malformed => "记录数据已损坏",
            RejectReason::Forbidden => "您的角色无权进行此操作",
            RejectReason::MissingDependencies => "服务器缺少该记录的早期修改，需要重新上传",
            RejectReason::TooLarge => "记录过大",
            RejectReason::Immutable => "记录的编号、类型、网格、记录人或历史不能修改",
            RejectReason::BadSignature => "修改的设备签名无效，服务器未收下",
        }
    }
}

/// A refused record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocRejection {
    /// Record id.
    pub doc: DocId,
    /// Machine-readable reason.
    pub reason: RejectReason,
    /// Detail for the user, in Chinese.
    pub detail: String,
    /// Hashes of the refused changes.
    pub hashes: Vec<Hash>,
}

/// Server → phone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyncResponse {
    /// Changes durably stored, by record.
    pub acked: Vec<DocAck>,
    /// Records refused, with reasons; the rest of the request was applied.
    pub rejected: Vec<DocRejection>,
    /// Changes in the device's scope after the request's cursor, in feed order.
    pub changes: Vec<DocChanges>,
    /// Cursor to send next time.
    pub next_cursor: Vec<u8>,
    /// Whether the feed has more for this device right now.
    pub more: bool,
}

/// Encode a message: header, then postcard deflated with the preset dictionary.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, CoreError> {
    let body = postcard::to_allocvec(msg).map_err(|e| CoreError::Protocol(e.to_string()))?;
    deflated(&body)
}

/// Encode a sync response. One that carries nothing but acknowledgements
/// and the cursor (an evening sync's answer: a record id per record the
/// phone sent) goes uncompressed: those bytes are random, deflate saves
/// about 7 of 130 of them, and setting up a stream with the dictionary
/// costs the server 28 µs a response. Any other goes as [`encode`] sends it.
pub fn encode_response(resp: &SyncResponse) -> Result<Vec<u8>, CoreError> {
    let body = postcard::to_allocvec(resp).map_err(|e| CoreError::Protocol(e.to_string()))?;
    if resp.changes.is_empty() && resp.rejected.is_empty() {
        let mut out = header(COMPRESSION_NONE, body.len());
        out.extend_from_slice(&body);
        return Ok(out);
    }
    deflated(&body)
}

/// The 5-byte header of a message compressed with `compression`, in a
/// buffer with room for `body` more bytes.
fn header(compression: u8, body: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.push(compression);
    out
}

fn deflated(body: &[u8]) -> Result<Vec<u8>, CoreError> {
    let mut out = header(COMPRESSION_DEFLATE_DICT_V1, body.len() + body.len() / 8 + 64);
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    c.set_dictionary(DICTIONARY_V1).map_err(|e| CoreError::Protocol(e.to_string()))?;
    let header = out.len();
    out.resize(header + body.len() + body.len() / 8 + 64, 0);
    let status = c
        .compress(body, &mut out[header..], flate2::FlushCompress::Finish)
        .map_err(|e| CoreError::Protocol(e.to_string()))?;
    if status != flate2::Status::StreamEnd {
        return Err(CoreError::Protocol("compression did not finish".into()));
    }
    out.truncate(header + c.total_out() as usize);
    Ok(out)
}

fn inflate(payload: &[u8], dictionary: Option<&[u8]>) -> Result<Vec<u8>, CoreError> {
    inflate_within(payload, dictionary, MAX_DECODED_BYTES, &mut |_| true).map_err(|e| match e {
        DecodeError::Malformed(m) => CoreError::Protocol(m),
        DecodeError::TooLarge { .. } => CoreError::Protocol("message too large when decompressed".into()),
        other => CoreError::Protocol(other.to_string()),
    })
}

/// Inflate at most `max` bytes, asking `grow` before the output buffer
/// grows to a new size (a memory budget can say no). The buffer never
/// grows ahead of what the stream actually produces.
fn inflate_within(
    payload: &[u8],
    dictionary: Option<&[u8]>,
    max: usize,
    grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<u8>, DecodeError> {
    let bad = |e: String| DecodeError::Malformed(format!("bad compression: {e}"));
    let mut d = flate2::Decompress::new(false);
    if let Some(dict) = dictionary {
        d.set_dictionary(dict).map_err(|e| bad(e.to_string()))?;
    }
    let first = (payload.len() * 4 + 1024).min(max + 1);
    if !grow(first) {
        return Err(DecodeError::Busy);
    }
    let mut out: Vec<u8> = Vec::with_capacity(first);
    loop {
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let rest = payload.get(d.total_in() as usize..).unwrap_or_default();
        let status = d.decompress_vec(rest, &mut out, flate2::FlushDecompress::None).map_err(|e| bad(e.to_string()))?;
        if out.len() > max {
            return Err(DecodeError::TooLarge { limit: max });
        }
        if status == flate2::Status::StreamEnd {
            return Ok(out);
        }
        if out.len() == out.capacity() {
            let more = out.capacity().clamp(1024, max + 1 - out.len());
            if !grow(out.capacity() + more) {
                return Err(DecodeError::Busy);
            }
            out.reserve(more);
        } else if d.total_in() == in_before && d.total_out() == out_before {
            return Err(bad("truncated stream".into()));
        }
    }
}

/// Why a message could not be decoded within its limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not a well-formed message (header, compression or body).
    #[error("malformed: {0}")]
    Malformed(String),
    /// The header names a version this build does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u16),
    /// The message inflates past the limit.
    #[error("message larger than {limit} bytes when decompressed")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// The message carries more changes than the limit.
    #[error("more than {limit} changes")]
    TooManyChanges {
        /// The limit.
        limit: usize,
    },
    /// The memory budget for messages in flight is spent: try again soon.
    #[error("memory budget for messages in flight is spent")]
    Busy,
}

/// What a server accepts in one sync request or bundle, checked while it
/// is decoded, before the memory or work each limit bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest body once inflated, bytes.
    pub max_inflated: usize,
    /// Most changes, over all records.
    pub max_changes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits { max_inflated: MAX_DECODED_BYTES, max_changes: 20_000 }
    }
}

impl DecodeLimits {
    /// What a phone takes in one bundle file (and writes in one: a bundle
    /// it exports past these is refused, so whatever one phone writes
    /// another phone and the server read). Half the server's inflated
    /// limit: a phone holds the inflated bytes and the decoded bundle at
    /// once, and a week of a grid's records is well under 1 MiB.
    pub const PHONE_BUNDLE: DecodeLimits = DecodeLimits { max_inflated: 16 * 1024 * 1024, max_changes: 20_000 };
}

/// Longest device or user id a bundle may name, bytes (a device id is a
/// UUID, 36; a user id is a short login name).
pub const MAX_BUNDLE_ID_BYTES: usize = 128;

/// Reads the postcard layout of [`SyncRequest`] and [`Bundle`] by hand, so
/// that no length prefix is trusted for an allocation: every count is
/// checked against its limit and against the bytes that remain before
/// anything is reserved.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn malformed(what: &str) -> DecodeError {
        DecodeError::Malformed(format!("malformed body: {what}"))
    }

    fn remaining(&self) -> usize {
        self.b.len() - self.pos
    }

    fn varint(&mut self, what: &str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let byte = *self.b.get(self.pos).ok_or_else(|| Self::malformed(what))?;
            self.pos += 1;
            // The tenth byte holds the top bit only; postcard refuses more.
            if i == 9 && byte > 1 {
                return Err(Self::malformed(what));
            }
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Self::malformed(what))
    }

    /// A postcard `u32`: at most 5 bytes, the last holding 4 bits, as
    /// postcard reads it (a longer form of a small number is refused).
    fn varint_u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let byte = *self.b.get(self.pos).ok_or_else(|| Self::malformed(what))?;
            self.pos += 1;
            if i == 4 && byte > 0x0f {
                return Err(Self::malformed(what));
            }
            v |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Self::malformed(what))
    }

    /// A length prefix: at least `min_item_bytes` bytes per counted item must remain.
    fn count(&mut self, what: &str, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.varint(what)?).map_err(|_| Self::malformed(what))?;
        if n.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(Self::malformed(what));
        }
        Ok(n)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| Self::malformed(what))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>, DecodeError> {
        let n = self.count(what, 1)?;
        Ok(self.take(n, what)?.to_vec())
    }

    /// A UTF-8 string of at most `max` bytes.
    fn string(&mut self, what: &str, max: usize) -> Result<String, DecodeError> {
        let n = self.count(what, 1)?;
        if n > max {
            return Err(Self::malformed(what));
        }
        let b = self.take(n, what)?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| Self::malformed(what))
    }

    /// A postcard `i64` (zigzag varint).
    fn i64(&mut self, what: &str) -> Result<i64, DecodeError> {
        let z = self.varint(what)?;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    /// The records and their changes, as a phone sends them: each record
    /// named once, each with at least one change, at most
    /// `limits.max_changes` changes in all.
    fn docs(&mut self, limits: &DecodeLimits) -> Result<Vec<DocChanges>, DecodeError> {
        // A record takes at least 18 bytes: its id, a change count and a
        // change. A phone names each record once, with the changes it sends
        // for it: a record without changes, or named again, is work no honest
        // phone asks for (thousands of empty records to look up and lock, or
        // one record merged over and over), so the whole body is refused.
        let n_docs = self.count("docs", 18)?;
        // Each record holds a change, so there are no more records than changes.
        let mut docs = Vec::with_capacity(n_docs.min(limits.max_changes));
        let mut named: HashSet<DocId> = HashSet::with_capacity(n_docs.min(limits.max_changes));
        let mut total = 0usize;
        for _ in 0..n_docs {
            let doc: DocId = self.take(16, "doc id")?.try_into().map_err(|_| Self::malformed("doc id"))?;
            if !named.insert(doc) {
                return Err(Self::malformed("a record named twice"));
            }
            let n = self.count("changes", 1)?;
            if n == 0 {
                return Err(Self::malformed("a record without changes"));
            }
            total = total.saturating_add(n);
            if total > limits.max_changes {
                return Err(DecodeError::TooManyChanges { limit: limits.max_changes });
            }
            let mut changes = Vec::with_capacity(n);
            for _ in 0..n {
                changes.push(self.bytes("change")?);
            }
            docs.push(DocChanges { doc, changes });
        }
        Ok(docs)
    }

    fn signature(&mut self) -> Result<Signature, DecodeError> {
        let s: [u8; SIGNATURE_LEN] =
            self.take(SIGNATURE_LEN, "signature")?.try_into().map_err(|_| Self::malformed("signature"))?;
        Ok(Signature(s))
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(Self::malformed("trailing bytes"));
        }
        Ok(())
    }
}

/// Check a message's header and inflate its body within `limits`, asking
/// `grow` before the inflate buffer grows.
fn open_envelope<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
    grow: &mut dyn FnMut(usize) -> bool,
) -> Result<std::borrow::Cow<'a, [u8]>, DecodeError> {
    if bytes.len() < 5 || &bytes[..2] != MAGIC {
        return Err(DecodeError::Malformed("not a Gridsync sync message".into()));
    }
    let version = u16::from_be_bytes([bytes[2], bytes[3]]);
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let payload = &bytes[5..];
    match bytes[4] {
        COMPRESSION_NONE => {
            if payload.len() > limits.max_inflated {
                return Err(DecodeError::TooLarge { limit: limits.max_inflated });
            }
            Ok(std::borrow::Cow::Borrowed(payload))
        }
        COMPRESSION_DEFLATE => Ok(inflate_within(payload, None, limits.max_inflated, grow)?.into()),
        COMPRESSION_DEFLATE_DICT_V1 => {
            Ok(inflate_within(payload, Some(DICTIONARY_V1), limits.max_inflated, grow)?.into())
        }
        c => Err(DecodeError::Malformed(format!("unknown compression {c}"))),
    }
}

/// Decode a sync request as the server must: the inflated size, the number
/// of changes and every length prefix are checked while decoding, before
/// the memory they would take is allocated, and `grow` is asked before the
/// inflate buffer grows (a server's budget for bodies in flight).
pub fn decode_sync_request(
    bytes: &[u8],
    limits: &DecodeLimits,
    grow: &mut dyn FnMut(usize) -> bool,
) -> Result<SyncRequest, DecodeError> {
    let body = open_envelope(bytes, limits, grow)?;
    let mut r = Reader { b: &body, pos: 0 };
    let cursor = r.bytes("cursor")?;
    let docs = r.docs(limits)?;
    let max_response_bytes = r.varint_u32("max_response_bytes")?;
    let signature = r.signature()?;
    r.end()?;
    Ok(SyncRequest { cursor, docs, max_response_bytes, signature })
}

/// Decode a bundle (a file, or a relay bundle once opened) under the same
/// limits as a sync request, with the same reader: the inflated size, the
/// number of changes, every length prefix, and each record named once with
/// at least one change, all checked while decoding; the device and user
/// ids are at most [`MAX_BUNDLE_ID_BYTES`].
pub fn decode_bundle(
    bytes: &[u8],
    limits: &DecodeLimits,
    grow: &mut dyn FnMut(usize) -> bool,
) -> Result<Bundle, DecodeError> {
    let body = open_envelope(bytes, limits, grow)?;
    let mut r = Reader { b: &body, pos: 0 };
    let device_id = r.string("device_id", MAX_BUNDLE_ID_BYTES)?;
    let user_id = r.string("user_id", MAX_BUNDLE_ID_BYTES)?;
    let created_at = r.i64("created_at")?;
    let cursor = r.bytes("cursor")?;
    let docs = r.docs(limits)?;
    let signature = r.signature()?;
    r.end()?;
    Ok(Bundle { device_id, user_id, created_at, cursor, docs, signature })
}

/// Decode a message, refusing unknown versions, bodies that inflate past
/// [`MAX_DECODED_BYTES`], and anything malformed, without panicking.
pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, CoreError> {
    if bytes.len() < 5 || &bytes[..2] != MAGIC {
        return Err(CoreError::Protocol("not a Gridsync sync message".into()));
    }
    let version = u16::from_be_bytes([bytes[2], bytes[3]]);
    if !SUPPORTED_VERSIONS.contains(&version) {
        return Err(CoreError::Protocol(format!(
            "unsupported protocol version {version}; supported: {SUPPORTED_VERSIONS:?}"
        )));
    }
    let payload = &bytes[5..];
    let body = match bytes[4] {
        COMPRESSION_NONE => payload.to_vec(),
        COMPRESSION_DEFLATE => inflate(payload, None)?,
        COMPRESSION_DEFLATE_DICT_V1 => inflate(payload, Some(DICTIONARY_V1))?,
        c => return Err(CoreError::Protocol(format!("unknown compression {c}"))),
    };
    if body.len() > MAX_DECODED_BYTES {
        return Err(CoreError::Protocol("message too large when decompressed".into()));
    }
    postcard::from_bytes(&body).map_err(|e| CoreError::Protocol(format!("malformed body: {e}")))
}

/// The protocol version a message claims, if it has a header.
pub fn version_of(bytes: &[u8]) -> Option<u16> {
    (bytes.len() >= 4 && &bytes[..2] == MAGIC).then(|| u16::from_be_bytes([bytes[2], bytes[3]]))
}

/// JSON body of an HTTP error from the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable reason code (`device_revoked`, `body_too_large`...).
    pub error: String,
    /// Message for the user, in Chinese.
    pub message_zh: String,
    /// The device must delete its local data (it was revoked).
    #[serde(default)]
    pub wipe: bool,
    /// Protocol versions the server speaks, when the version was refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_versions: Vec<u16>,
}

/// Answer to a photo chunk (`PUT /v1/photos/{hash}?offset=N`, JSON), and
/// the body of its `409 offset_mismatch` (with `error` and `message_zh`):
/// how many bytes of the photo the server holds, from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoProgress {
    /// Bytes the server holds durably.
    pub received: u64,
    /// The photo's size, as its record declares it.
    pub size: u64,
    /// All bytes arrived and their SHA-256 matched.
    pub complete: bool,
}

/// `GET /v1/photos/wanted` response (JSON): photos live records say the
/// user took and the server holds no upload of from them, so their phone
/// sends them (again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotosWanted {
    /// The photos, by hash.
    pub wanted: Vec<WantedPhoto>,
    /// More than these are wanted: ask again after sending them.
    pub more: bool,
}

/// One photo of [`PhotosWanted`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WantedPhoto {
    /// SHA-256 of the bytes, lowercase hex.
    pub hash: String,
    /// Size the record declares, bytes.
    pub size: u64,
}

/// Largest photo chunk the server takes in one request, bytes. Phones send
/// 32 KiB (four seconds on a 64 kbit/s link), so a drop costs little.
pub const MAX_PHOTO_CHUNK: usize = 512 * 1024;

/// `POST /v1/enroll` request (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollRequest {
    /// One-time code an administrator issued.
    pub code: String,
    /// A name for the device (e.g. the phone model).
    pub device_name: String,
    /// The device's Automerge actor id, hex: the only actor its changes
    /// may carry. Clients from before actors were registered omit it; the
    /// server then registers the actor of the device's first change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The device's Ed25519 public key, hex: the key every change it
    /// sends must be signed with. Clients from before signatures omit it
    /// and register one later (`POST /v1/device-key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// `POST /v1/device-key` request (JSON): register the public key of a
/// device enrolled before devices had keys. A device registers one key,
/// once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyRequest {
    /// Ed25519 public key, hex.
    pub public_key: String,
}

/// `POST /v1/sign-out` request (JSON): the device signs its own sign-out
/// ([`crate::signing::sign_out_message`]), so a token alone cannot sign a
/// phone out and have it wipe what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignOutRequest {
    /// The device signing out (its id, as enrollment gave it).
    pub device_id: String,
    /// The phone's time of signing, ms since the epoch.
    pub at: i64,
    /// Ed25519 signature of the sign-out message, hex (128 digits).
    pub signature: String,
}

/// `POST /v1/device-key` response (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeyResponse {
    /// The server's relay public key (X25519, hex): bundles for relay
    /// through another phone are sealed to it.
    pub server_key: String,
}

/// Largest relay bundle a phone makes or carries and a server takes,
/// bytes (a week of a grid's records is well under 1 MB; photos travel
/// separately).
pub const MAX_RELAY_BYTES: usize = 8 * 1024 * 1024;

/// `POST /v1/relay` response (JSON): what the server did with a sealed
/// bundle a phone carried for another device. It names no record content:
/// the carrier learns only counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RelayReport {
    /// Records the bundle held.
    pub records: u64,
    /// Changes now stored (new, or stored before).
    pub changes_stored: u64,
    /// Changes refused (by the signer's rights, or a bad signature).
    pub changes_refused: u64,
    /// Machine-readable reasons of the refusals, each once.
    pub reasons: Vec<String>,
}

/// `POST /v1/problems` request (JSON): records a phone received but could
/// not apply, set aside so the rest of the sync went on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemReport {
    /// The records set aside.
    pub set_aside: Vec<SetAsideReport>,
}

/// One record a phone set aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAsideReport {
    /// Record id (UUID).
    pub doc: String,
    /// Why it could not be applied (English, no record content).
    pub reason: String,
}

/// One entry of the directory: a grid node or a user, with the name an app
/// shows for its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// Grid path (`t01/v03`) or user id.
    pub id: String,
    /// Name (`张家村`, `王建国`).
    pub name: String,
    /// For users, the role's machine name; empty for grid nodes.
    #[serde(default)]
    pub role: String,
    /// For users, their grid path; empty for grid nodes.
    #[serde(default)]
    pub grid: String,
}

/// `GET /v1/directory` response (JSON): the names an app shows for ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Directory {
    /// Changes whenever an entry does (the response's ETag too).
    pub version: String,
    /// Grid nodes in the user's scope and above it.
    pub grids: Vec<DirectoryEntry>,
    /// Users whose grid is in the user's scope or above it.
    pub users: Vec<DirectoryEntry>,
}

/// `POST /v1/enroll` response (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    /// Device id.
    pub device_id: String,
    /// Bearer token for `/v1/sync`; shown once.
    pub token: String,
    /// The user the device acts for.
    pub user_id: String,
    /// User's display name.
    pub display_name: String,
    /// User's role (machine name).
    pub role: String,
    /// User's grid path.
    pub grid: String,
    /// The server's relay public key (X25519, hex).
    #[serde(default)]
    pub server_key: String,
}

/// A sync bundle file: what a phone with no network has not had
/// acknowledged, for another device or the township office to import.
/// The contents of a bundle file (encoded like a sync message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Device that wrote it (its enrolled id, or empty when not enrolled).
    pub device_id: String,
    /// User the device acts for.
    pub user_id: String,
    /// Written at, ms.
    pub created_at: i64,
    /// The device's cursor with its server when written.
    pub cursor: Vec<u8>,
    /// Unacknowledged changes by record.
    pub docs: Vec<DocChanges>,
    /// The device's signature of every change in `docs`.
    pub signature: Signature,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ImportReport {
    /// Records touched.
    pub records: u64,
    /// Changes read from the bundle.
    pub changes: u64,
}

impl Bundle {
    /// Encode for writing to a file.
    pub fn encode(&self) -> Result<Vec<u8>, CoreError> {
        encode(self)
    }

    /// Decode a file's bytes as a phone does, under
    /// [`DecodeLimits::PHONE_BUNDLE`] ([`decode_bundle`]), refusing garbage
    /// without panicking.
    pub fn decode(bytes: &[u8]) -> Result<Bundle, CoreError> {
        decode_bundle(bytes, &DecodeLimits::PHONE_BUNDLE, &mut |_| true).map_err(|e| CoreError::Protocol(e.to_string()))
    }

    /// How many changes the bundle carries, over all records.
    pub fn change_count(&self) -> usize {
        self.docs.iter().map(|d| d.changes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer of acknowledgements only goes uncompressed; one with
    /// changes from the feed or a refusal (text that compresses) goes
    /// deflated with the dictionary. Both decode to what was sent.
    #[test]
    fn ack_only_answers_go_uncompressed_and_the_rest_deflated() {
        let acks = SyncResponse {
            acked: (0..7u8).map(|i| DocAck { doc: [i; 16], hashes: vec![] }).collect(),
            next_cursor: vec![0, 0, 0, 0, 0, 0, 1, 7],
            ..SyncResponse::default()
        };
        let bytes = encode_response(&acks).unwrap();
        assert_eq!(bytes[4], COMPRESSION_NONE);
        assert_eq!(decode::<SyncResponse>(&bytes).unwrap(), acks);
        let mut with_feed = acks.clone();
        with_feed.changes.push(DocChanges { doc: [9; 16], changes: vec![b"change bytes".repeat(20)] });
        let mut refused = acks.clone();
        refused.rejected.push(DocRejection {
            doc: [1; 16],
            reason: RejectReason::Forbidden,
            detail: "只有村级负责人可以设定处置方案".into(),
            hashes: vec![],
        });
        for resp in [with_feed, refused] {
            let bytes = encode_response(&resp).unwrap();
            assert_eq!(bytes[4], COMPRESSION_DEFLATE_DICT_V1);
            assert_eq!(decode::<SyncResponse>(&bytes).unwrap(), resp);
        }
    }

    proptest::proptest! {
        /// The server's hand-written decoder reads exactly what the encoder
        /// writes, whatever the request holds.
        #[test]
        fn the_limited_decoder_reads_what_encode_writes(
            cursor in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            // As a phone sends them: each record once, with its changes.
            docs in proptest::collection::btree_map(
                proptest::prelude::any::<[u8; 16]>(),
                proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 1..5),
                0..6,
            ),
            max in proptest::prelude::any::<u32>(),
        ) {
            let req = SyncRequest {
                cursor,
                docs: docs.into_iter().map(|(doc, changes)| DocChanges { doc, changes }).collect(),
                max_response_bytes: max,
                signature: Signature([max as u8; 64]),
            };
            let bytes = encode(&req).unwrap();
            let got = decode_sync_request(&bytes, &DecodeLimits::default(), &mut |_| true).unwrap();
            proptest::prop_assert_eq!(got, req);
        }
    }

    proptest::proptest! {
        /// Bundles go through the same reader: it reads exactly what the
        /// encoder writes, and `Bundle::decode` (a phone's import) agrees.
        #[test]
        fn the_limited_decoder_reads_the_bundles_encode_writes(
            device_id in "[0-9a-f-]{0,36}",
            user_id in "\\PC{0,20}",
            created_at in proptest::prelude::any::<i64>(),
            cursor in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            docs in proptest::collection::btree_map(
                proptest::prelude::any::<[u8; 16]>(),
                proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 1..5),
                0..6,
            ),
            sig in proptest::prelude::any::<u8>(),
        ) {
            let bundle = Bundle {
                device_id,
                user_id,
                created_at,
                cursor,
                docs: docs.into_iter().map(|(doc, changes)| DocChanges { doc, changes }).collect(),
                signature: Signature([sig; 64]),
            };
            let bytes = bundle.encode().unwrap();
            let got = decode_bundle(&bytes, &DecodeLimits::default(), &mut |_| true).unwrap();
            proptest::prop_assert_eq!(&got, &bundle);
            proptest::prop_assert_eq!(Bundle::decode(&bytes).unwrap(), bundle);
        }
    }

    /// A bundle is refused as a sync request with the same fault is: a
    /// record named twice or without changes, more changes than the
    /// limit (counted before they are allocated: 20,001 empty changes are
    /// a few hundred bytes), more bytes than the inflated limit, a budget
    /// that says no; and ids longer than any device or user has.
    #[test]
    fn a_bundle_is_refused_as_a_sync_request_is() {
        let limits = DecodeLimits::default();
        let bundle = |docs: Vec<DocChanges>| Bundle {
            device_id: "3f0e7c52-8d1a-4c1e-9a57-2b4f5e6d7c8b".into(),
            user_id: "gm-t01-v01-g1".into(),
            created_at: 1_764_000_000_000,
            cursor: vec![0, 0, 0, 1],
            docs,
            signature: Signature([3; 64]),
        };
        let decode = |b: &Bundle| decode_bundle(&b.encode().unwrap(), &limits, &mut |_| true);
        let doc = |id: u8, n: usize| DocChanges { doc: [id; 16], changes: vec![vec![id; 40]; n] };
        assert_eq!(decode(&bundle(vec![doc(1, 2), doc(2, 1)])).unwrap(), bundle(vec![doc(1, 2), doc(2, 1)]));
        let malformed = |r: Result<Bundle, DecodeError>| match r {
            Err(DecodeError::Malformed(why)) => why,
            other => panic!("not refused as malformed: {other:?}"),
        };
        assert!(malformed(decode(&bundle(vec![doc(1, 1), doc(2, 1), doc(1, 1)]))).contains("named twice"));
        assert!(malformed(decode(&bundle(vec![doc(1, 1), doc(2, 0)]))).contains("without changes"));
        let many = bundle(vec![DocChanges { doc: [1; 16], changes: vec![vec![]; 20_001] }]);
        let bytes = many.encode().unwrap();
        assert!(bytes.len() < 1024, "{}", bytes.len());
        assert_eq!(decode_bundle(&bytes, &limits, &mut |_| true), Err(DecodeError::TooManyChanges { limit: 20_000 }));
        assert!(Bundle::decode(&bytes).unwrap_err().to_string().contains("more than 20000 changes"));
        let big = bundle(vec![DocChanges { doc: [1; 16], changes: vec![vec![0; 1024]; 40] }]);
        let small = DecodeLimits { max_inflated: 16 * 1024, max_changes: 20_000 };
        assert_eq!(
            decode_bundle(&big.encode().unwrap(), &small, &mut |_| true),
            Err(DecodeError::TooLarge { limit: 16 * 1024 })
        );
        assert_eq!(decode_bundle(&big.encode().unwrap(), &limits, &mut |_| false), Err(DecodeError::Busy));
        let mut long = bundle(vec![doc(1, 1)]);
        long.device_id = "x".repeat(MAX_BUNDLE_ID_BYTES + 1);
        assert!(malformed(decode(&long)).contains("device_id"));
        // A plain message that is not a bundle.
        let req = encode(&SyncRequest::default()).unwrap();
        assert!(matches!(decode_bundle(&req, &limits, &mut |_| true), Err(DecodeError::Malformed(_))));
    }

    /// 32 MiB of zero-length changes in a few KB: refused at the change
    /// limit while counting, and a length prefix larger than the body is
    /// refused before anything is reserved.
    #[test]
    fn counts_are_checked_before_they_are_allocated() {
        let many = SyncRequest {
            cursor: vec![],
            docs: vec![DocChanges { doc: [1; 16], changes: vec![vec![]; 20_001] }],
            max_response_bytes: 0,
            signature: Signature([0; 64]),
        };
        let bytes = encode(&many).unwrap();
        assert!(bytes.len() < 1024, "{}", bytes.len());
        let limits = DecodeLimits::default();
        assert_eq!(
            decode_sync_request(&bytes, &limits, &mut |_| true),
            Err(DecodeError::TooManyChanges { limit: 20_000 })
        );
        // A body claiming 2^60 records in a few bytes.
        let mut huge = b"GS\x00\x02\x00\x00".to_vec();
        huge.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10]);
        assert!(matches!(decode_sync_request(&huge, &limits, &mut |_| true), Err(DecodeError::Malformed(_))));
        // A budget that says no.
        let ok = encode(&SyncRequest::default()).unwrap();
        assert_eq!(decode_sync_request(&ok, &limits, &mut |_| false), Err(DecodeError::Busy));
    }

    /// The limited reader takes a number only in a form postcard takes: a
    /// `u32` written in six bytes (a zero padded with continuation bytes)
    /// or with bits past 32 is refused by both.
    #[test]
    fn the_limited_reader_reads_numbers_as_postcard_does() {
        let body = |max: &[u8]| {
            let mut b = vec![0u8, 0]; // no cursor, no records
            b.extend_from_slice(max);
            b.extend_from_slice(&[0; 64]);
            let mut m = b"GS\x00\x02\x00".to_vec();
            m.extend(b);
            m
        };
        let read =
            |m: &[u8]| decode_sync_request(m, &DecodeLimits::default(), &mut |_| true).map(|r| r.max_response_bytes);
        for (max, want) in
            [(&[0x00][..], Some(0)), (&[0x80, 0x00], Some(0)), (&[0xff, 0xff, 0xff, 0xff, 0x0f], Some(u32::MAX))]
        {
            assert_eq!(read(&body(max)).ok(), want, "{max:?}");
            assert_eq!(decode::<SyncRequest>(&body(max)).ok().map(|r| r.max_response_bytes), want, "{max:?}");
        }
        for max in [&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00][..], &[0xff, 0xff, 0xff, 0xff, 0x1f]] {
            assert!(read(&body(max)).is_err(), "{max:?}");
            assert!(decode::<SyncRequest>(&body(max)).is_err(), "{max:?}");
        }
    }

    /// A phone names each record once and sends at least one change for
    /// it; a body that names one twice or one without changes is refused
    /// whole, before any of it is looked up, and says which.
    #[test]
    fn a_record_named_twice_or_without_changes_is_refused() {
        let limits = DecodeLimits::default();
        let request = |docs: Vec<DocChanges>| {
            let bytes =
                encode(&SyncRequest { cursor: vec![], docs, max_response_bytes: 0, signature: Signature([0; 64]) })
                    .unwrap();
            decode_sync_request(&bytes, &limits, &mut |_| true)
        };
        let doc = |id: u8, n: usize| DocChanges { doc: [id; 16], changes: vec![vec![id; 40]; n] };
        let fine = request(vec![doc(1, 2), doc(2, 1)]).unwrap();
        assert_eq!(fine.docs, vec![doc(1, 2), doc(2, 1)]);
        let malformed = |r: Result<SyncRequest, DecodeError>| match r {
            Err(DecodeError::Malformed(why)) => why,
            other => panic!("not refused as malformed: {other:?}"),
        };
        assert!(malformed(request(vec![doc(1, 1), doc(2, 1), doc(1, 1)])).contains("named twice"));
        assert!(malformed(request(vec![doc(1, 1), doc(2, 0)])).contains("without changes"));
        // A hundred thousand empty records (1.7 MB): refused at their count,
        // which the bytes left cannot hold.
        let empty: Vec<DocChanges> = (0..100_000u32)
            .map(|i| {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.to_be_bytes());
                DocChanges { doc: id, changes: vec![] }
            })
            .collect();
        assert!(malformed(request(empty)).contains("docs"));
    }

    fn sample() -> SyncResponse {
        SyncResponse {
            acked: vec![DocAck { doc: [1; 16], hashes: vec![[2; 32]] }],
            rejected: vec![DocRejection {
                doc: [3; 16],
                reason: RejectReason::OutOfScope,
                detail: "不在范围内".into(),
                hashes: vec![[4; 32]],
            }],
            changes: vec![DocChanges { doc: [5; 16], changes: vec![vec![6, 7, 8]] }],
            next_cursor: vec![0, 0, 0, 9],
            more: true,
        }
    }

    /// The dictionary is part of the wire format: changing it breaks every
    /// phone in the field.
    #[test]
    fn dictionary_is_pinned() {
        use sha2_free_hash as h;
        assert_eq!(DICTIONARY_V1.len(), 16 * 1024);
        insta::assert_snapshot!(h::fnv1a64(DICTIONARY_V1));
    }

    mod sha2_free_hash {
        /// FNV-1a, enough to pin a file's bytes in a snapshot.
        pub fn fnv1a64(b: &[u8]) -> String {
            let mut h: u64 = 0xcbf29ce484222325;
            for x in b {
                h ^= u64::from(*x);
                h = h.wrapping_mul(0x100000001b3);
            }
            format!("{h:016x}")
        }
    }

    #[test]
    fn old_plain_deflate_bodies_still_decode() {
        use std::io::Write;
        let body = postcard::to_allocvec(&sample()).unwrap();
        let mut bytes = b"GS\x00\x02\x01".to_vec();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&body).unwrap();
        bytes.extend(enc.finish().unwrap());
        assert_eq!(decode::<SyncResponse>(&bytes).unwrap(), sample());
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(version_of(&bytes), Some(2));
        assert_eq!(decode::<SyncResponse>(&bytes).unwrap(), sample());
    }

    /// The body layout is pinned: a change here is a protocol change and
    /// needs a new version.
    #[test]
    fn body_layout_is_pinned() {
        let body = postcard::to_allocvec(&sample()).unwrap();
        insta::assert_snapshot!(hex_string(&body));
        let req = SyncRequest {
            cursor: vec![1],
            docs: vec![DocChanges { doc: [9; 16], changes: vec![vec![1, 2]] }],
            max_response_bytes: 65536,
            signature: Signature([0xee; 64]),
        };
        insta::assert_snapshot!(hex_string(&postcard::to_allocvec(&req).unwrap()));
    }

    fn hex_string(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        let good = encode(&sample()).unwrap();
        assert!(decode::<SyncResponse>(b"").is_err());
        assert!(decode::<SyncResponse>(b"XX\x00\x02\x01").is_err());
        let mut v1 = good.clone();
        v1[3] = 1;
        let err = decode::<SyncResponse>(&v1).unwrap_err().to_string();
        assert!(err.contains("unsupported protocol version 1"), "{err}");
        for cut in 0..good.len() {
            let _ = decode::<SyncResponse>(&good[..cut]);
        }
        let mut flipped = good.clone();
        for i in 5..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode::<SyncResponse>(&flipped);
            flipped[i] ^= 0xff;
        }
    }

    #[test]
    fn refuses_compression_bombs() {
        use std::io::Write;
        let zeros = vec![0u8; MAX_DECODED_BYTES + 10];
        let mut bytes = b"GS\x00\x02\x01".to_vec();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&zeros).unwrap();
        bytes.extend(enc.finish().unwrap());
        let err = decode::<SyncRequest>(&bytes).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }
}
