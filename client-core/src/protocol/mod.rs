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

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// Versions this build accepts.
pub const SUPPORTED_VERSIONS: &[u16] = &[1];
/// HTTP content type of sync bodies.
pub const CONTENT_TYPE: &str = "application/x-gridsync";
/// Largest decoded message accepted (guards against compression bombs).
pub const MAX_DECODED_BYTES: usize = 32 * 1024 * 1024;
/// Default byte budget of one response page.
pub const DEFAULT_PAGE_BYTES: u32 = 256 * 1024;

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
    let mut out = Vec::with_capacity(body.len() / 2 + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    out.push(COMPRESSION_DEFLATE_DICT_V1);
    let mut c = flate2::Compress::new(flate2::Compression::best(), false);
    c.set_dictionary(DICTIONARY_V1).map_err(|e| CoreError::Protocol(e.to_string()))?;
    let header = out.len();
    out.resize(header + body.len() + body.len() / 8 + 64, 0);
    let status = c
        .compress(&body, &mut out[header..], flate2::FlushCompress::Finish)
        .map_err(|e| CoreError::Protocol(e.to_string()))?;
    if status != flate2::Status::StreamEnd {
        return Err(CoreError::Protocol("compression did not finish".into()));
    }
    out.truncate(header + c.total_out() as usize);
    Ok(out)
}

fn inflate(payload: &[u8], dictionary: Option<&[u8]>) -> Result<Vec<u8>, CoreError> {
    let bad = |e: String| CoreError::Protocol(format!("bad compression: {e}"));
    let mut d = flate2::Decompress::new(false);
    if let Some(dict) = dictionary {
        d.set_dictionary(dict).map_err(|e| bad(e.to_string()))?;
    }
    let mut out: Vec<u8> = Vec::with_capacity((payload.len() * 4 + 1024).min(MAX_DECODED_BYTES + 1));
    loop {
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let rest = payload.get(d.total_in() as usize..).unwrap_or_default();
        let status = d.decompress_vec(rest, &mut out, flate2::FlushDecompress::None).map_err(|e| bad(e.to_string()))?;
        if out.len() > MAX_DECODED_BYTES {
            return Err(CoreError::Protocol("message too large when decompressed".into()));
        }
        if status == flate2::Status::StreamEnd {
            return Ok(out);
        }
        if out.len() == out.capacity() {
            out.reserve(out.capacity().clamp(1024, MAX_DECODED_BYTES + 1 - out.len()));
        } else if d.total_in() == in_before && d.total_out() == out_before {
            return Err(bad("truncated stream".into()));
        }
    }
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
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

    /// Decode a file's bytes (refusing garbage without panicking).
    pub fn decode(bytes: &[u8]) -> Result<Bundle, CoreError> {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut bytes = b"GS\x00\x01\x01".to_vec();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&body).unwrap();
        bytes.extend(enc.finish().unwrap());
        assert_eq!(decode::<SyncResponse>(&bytes).unwrap(), sample());
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(version_of(&bytes), Some(1));
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
        assert!(decode::<SyncResponse>(b"XX\x00\x01\x01").is_err());
        let mut v2 = good.clone();
        v2[3] = 2;
        let err = decode::<SyncResponse>(&v2).unwrap_err().to_string();
        assert!(err.contains("unsupported protocol version 2"), "{err}");
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
        let mut bytes = b"GS\x00\x01\x01".to_vec();
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&zeros).unwrap();
        bytes.extend(enc.finish().unwrap());
        let err = decode::<SyncRequest>(&bytes).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }
}
