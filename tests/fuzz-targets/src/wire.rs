//! Targets of the binary protocol: what a phone posts to `/v1/sync` and
//! `/v1/relay`, the changes the server judges, and what a phone reads
//! (a sync answer, a bundle file, an Automerge sync message).

use std::collections::HashSet;
use std::sync::OnceLock;

use gridsync_core::CoreError;
use gridsync_core::protocol::{
    self, Bundle, DecodeError, DecodeLimits, DocChanges, MAX_BUNDLE_ID_BYTES, MAX_DECODED_BYTES, SyncRequest,
    SyncResponse, decode_bundle, decode_sync_request,
};
use gridsync_core::signing::{ServerKey, seal_to_server};
use gridsync_server::bundles::{RelayError, open_sealed};

use crate::alloc::peak_during;

/// The limits the protocol targets decode under: the server's code paths,
/// with caps a fuzzer reaches in seconds (64 KiB inflated, 64 changes)
/// where the defaults (32 MiB, 20,000) would take inputs it never builds.
pub const FUZZ_LIMITS: DecodeLimits = DecodeLimits { max_inflated: 64 * 1024, max_changes: 64 };

/// Whether `data` has a header this build speaks, and its compression.
fn compression(data: &[u8]) -> Option<u8> {
    (data.len() >= 5 && &data[..2] == b"GS" && protocol::version_of(data) == Some(protocol::PROTOCOL_VERSION))
        .then(|| data[4])
}

/// Memory a limited decode of `n` bytes may take: the inflate buffer (at
/// most the limit, twice while it moves), zlib's state, the body's bytes
/// copied once into the changes, and a few pointers per change and record.
fn decode_bound(n: usize, limits: &DecodeLimits) -> usize {
    2 * (limits.max_inflated + 1) + 2 * n + 160 * limits.max_changes + 256 * 1024
}

/// What every decoded request and bundle holds: each record once, each
/// with a change, no more changes than the limit.
fn check_docs(docs: &[DocChanges], limits: &DecodeLimits) {
    let total: usize = docs.iter().map(|d| d.changes.len()).sum();
    assert!(total <= limits.max_changes, "{total} changes read, the limit is {}", limits.max_changes);
    let mut seen = HashSet::new();
    for d in docs {
        assert!(!d.changes.is_empty(), "a record without changes was read");
        assert!(seen.insert(d.doc), "a record named twice was read");
    }
}

/// A request or bundle built from the fuzzer's bytes (structure-aware
/// fuzzing): up to 8 records with one-byte ids (so names repeat), 0 to 255
/// changes each (so records are empty and counts pass the limit), sent
/// with any of the three compressions. What the decoder must answer is
/// known: the first record named twice, without changes, or past the
/// change limit is refused, as the decoder reads them in order; else it
/// reads back exactly what was built.
struct Built {
    compression: u8,
    cursor: Vec<u8>,
    docs: Vec<DocChanges>,
    number: u32,
}

impl Built {
    fn from(data: &[u8]) -> Built {
        let mut it = data.iter().copied();
        let mut next = || it.next().unwrap_or(0);
        let compression = next() % 3;
        let cursor = (0..next() % 9).map(|_| next()).collect();
        let mut docs = Vec::new();
        for _ in 0..next() % 8 {
            let id = next();
            let n = next();
            let changes = (0..n).map(|_| (0..next() % 4).map(|_| next()).collect()).collect();
            docs.push(DocChanges { doc: [id; 16], changes });
        }
        let number = u32::from_le_bytes([next(), next(), next(), next()]);
        Built { compression, cursor, docs, number }
    }

    /// What the limited reader must answer for these records: the first
    /// fault met reading them in order, if any.
    fn fault(&self, limits: &DecodeLimits) -> Option<DecodeError> {
        let mut seen = HashSet::new();
        let mut total = 0usize;
        for d in &self.docs {
            if !seen.insert(d.doc) {
                return Some(DecodeError::Malformed("malformed body: a record named twice".into()));
            }
            if d.changes.is_empty() {
                return Some(DecodeError::Malformed("malformed body: a record without changes".into()));
            }
            total += d.changes.len();
            if total > limits.max_changes {
                return Some(DecodeError::TooManyChanges { limit: limits.max_changes });
            }
        }
        None
    }

    /// The message: the header, then `body` with the chosen compression.
    fn envelope(&self, body: &[u8]) -> Vec<u8> {
        let mut out = b"GS".to_vec();
        out.extend_from_slice(&protocol::PROTOCOL_VERSION.to_be_bytes());
        out.push(self.compression);
        match self.compression {
            0 => out.extend_from_slice(body),
            c => {
                let mut z = flate2::Compress::new(flate2::Compression::default(), false);
                if c == 2 {
                    z.set_dictionary(protocol::DICTIONARY_V1).expect("a dictionary");
                }
                let mut buf = Vec::with_capacity(body.len() + 1024);
                z.compress_vec(body, &mut buf, flate2::FlushCompress::Finish).expect("deflates");
                out.extend(buf);
            }
        }
        out
    }

    fn request(&self) -> SyncRequest {
        SyncRequest {
            cursor: self.cursor.clone(),
            docs: self.docs.clone(),
            max_response_bytes: self.number,
            signature: protocol::Signature([self.number as u8; 64]),
        }
    }

    fn bundle(&self) -> Bundle {
        Bundle {
            device_id: "3f0e7c52-8d1a-4c1e-9a57-2b4f5e6d7c8b".into(),
            user_id: "gm-t01-v01-g1".into(),
            created_at: i64::from(self.number) - (1 << 31),
            cursor: self.cursor.clone(),
            docs: self.docs.clone(),
            signature: protocol::Signature([self.number as u8; 64]),
        }
    }
}

/// Check a decoder's answer for a [`Built`] input against what it must be.
fn check_built<T: PartialEq + std::fmt::Debug>(
    built: &Built,
    expected: T,
    got: Result<T, DecodeError>,
    limits: &DecodeLimits,
) {
    match (built.fault(limits), got) {
        (None, Ok(v)) => assert_eq!(v, expected, "read otherwise than built"),
        (None, Err(e)) => panic!("refused what an honest phone sends: {e}"),
        (Some(f), Err(e)) => assert_eq!(e, f, "refused for another reason"),
        (Some(f), Ok(_)) => panic!("took what must be refused: {f}"),
    }
}

/// `POST /v1/sync`'s decoder (`protocol::decode_sync_request`): the
/// envelope, deflate with and without the dictionary, the postcard body.
/// What it reads is what postcard reads from the same bytes, within the
/// limits, and reads back after encoding; its inflate buffer is asked of
/// the budget before it grows, and its memory is bounded by the input and
/// the caps.
pub fn sync_request(data: &[u8]) {
    let limits = FUZZ_LIMITS;
    if let Some((&1, rest)) = data.split_first() {
        let built = Built::from(rest);
        let bytes = built.envelope(&postcard::to_allocvec(&built.request()).expect("encodes"));
        let got = decode_sync_request(&bytes, &limits, &mut |_| true);
        check_built(&built, built.request(), got, &limits);
        return raw_sync_request(&bytes);
    }
    raw_sync_request(data)
}

/// [`sync_request`] on the bytes as they came.
fn raw_sync_request(data: &[u8]) {
    let limits = FUZZ_LIMITS;
    let mut asked = 0usize;
    let (got, peak) = peak_during(|| {
        decode_sync_request(data, &limits, &mut |n| {
            asked = asked.max(n);
            true
        })
    });
    assert!(asked <= limits.max_inflated + 1, "the inflate buffer asked for {asked} bytes");
    assert!(peak <= decode_bound(data.len(), &limits), "{peak} bytes held decoding {} bytes", data.len());
    let without_budget = decode_sync_request(data, &limits, &mut |_| false);
    if matches!(compression(data), Some(1 | 2)) {
        assert_eq!(without_budget, Err(DecodeError::Busy), "inflated without asking the budget");
    }
    let Ok(req) = got else { return };
    check_docs(&req.docs, &limits);
    let generic: SyncRequest =
        protocol::decode(data).unwrap_or_else(|e| panic!("read by the limited reader, refused by postcard: {e}"));
    assert_eq!(generic, req, "the limited reader and postcard disagree");
    let again = decode_sync_request(&protocol::encode(&req).expect("encodes"), &limits, &mut |_| true);
    assert_eq!(again.as_ref(), Ok(&req), "does not read back after encoding");
}

/// A bundle (`protocol::decode_bundle`, the reader `sync_request` uses):
/// the same properties, ids within [`MAX_BUNDLE_ID_BYTES`], and a phone's
/// `Bundle::decode` agreeing.
pub fn bundle(data: &[u8]) {
    let limits = FUZZ_LIMITS;
    if let Some((&1, rest)) = data.split_first() {
        let built = Built::from(rest);
        let bytes = built.envelope(&postcard::to_allocvec(&built.bundle()).expect("encodes"));
        check_built(&built, built.bundle(), decode_bundle(&bytes, &limits, &mut |_| true), &limits);
        return raw_bundle(&bytes);
    }
    raw_bundle(data)
}

/// [`bundle`] on the bytes as they came.
fn raw_bundle(data: &[u8]) {
    let limits = FUZZ_LIMITS;
    let mut asked = 0usize;
    let (got, peak) = peak_during(|| {
        decode_bundle(data, &limits, &mut |n| {
            asked = asked.max(n);
            true
        })
    });
    assert!(asked <= limits.max_inflated + 1, "the inflate buffer asked for {asked} bytes");
    assert!(peak <= decode_bound(data.len(), &limits), "{peak} bytes held decoding {} bytes", data.len());
    if matches!(compression(data), Some(1 | 2)) {
        assert_eq!(decode_bundle(data, &limits, &mut |_| false), Err(DecodeError::Busy));
    }
    let Ok(b) = got else { return };
    check_docs(&b.docs, &limits);
    assert!(b.device_id.len() <= MAX_BUNDLE_ID_BYTES && b.user_id.len() <= MAX_BUNDLE_ID_BYTES);
    let generic: Bundle =
        protocol::decode(data).unwrap_or_else(|e| panic!("read by the limited reader, refused by postcard: {e}"));
    assert_eq!(generic, b, "the limited reader and postcard disagree");
    assert_eq!(Bundle::decode(data).as_ref().ok(), Some(&b), "a phone reads it otherwise");
    let again = decode_bundle(&b.encode().expect("encodes"), &limits, &mut |_| true);
    assert_eq!(again.as_ref(), Ok(&b), "does not read back after encoding");
}

fn relay_key() -> &'static ServerKey {
    static KEY: OnceLock<ServerKey> = OnceLock::new();
    KEY.get_or_init(|| ServerKey::from_secret(&[7; 32]).expect("a key"))
}

/// `POST /v1/relay` after opening (`bundles::open_sealed`): the bytes
/// are sealed to the server's key, opened and decoded as a bundle is. The
/// plaintext's memory is asked of the budget before it is made, a spent
/// budget refuses before opening, the answer is the bundle decoder's, and
/// one byte changed on the way is unreadable, never decoded.
pub fn relay_sealed(data: &[u8]) {
    if let Some((&1, rest)) = data.split_first() {
        let built = Built::from(rest);
        let bytes = built.envelope(&postcard::to_allocvec(&built.bundle()).expect("encodes"));
        let sealed = seal_to_server(&relay_key().public(), &bytes).expect("seals");
        let got = match open_sealed(relay_key(), &sealed, &FUZZ_LIMITS, &mut |_| true) {
            Ok(b) => Ok(b),
            Err(RelayError::Decode(e)) => Err(e),
            Err(e) => panic!("a bundle sealed to this server was not opened: {e}"),
        };
        check_built(&built, built.bundle(), got, &FUZZ_LIMITS);
        return raw_relay_sealed(&bytes);
    }
    raw_relay_sealed(data)
}

/// [`relay_sealed`] on the plaintext as it came.
fn raw_relay_sealed(data: &[u8]) {
    let key = relay_key();
    let sealed = seal_to_server(&key.public(), data).expect("seals");
    let mut asks = Vec::new();
    let opened = open_sealed(key, &sealed, &FUZZ_LIMITS, &mut |n| {
        asks.push(n);
        true
    });
    assert!(asks.first().is_some_and(|&n| n >= data.len()), "the plaintext was not held first: {asks:?}");
    let direct = decode_bundle(data, &FUZZ_LIMITS, &mut |_| true);
    match (opened, direct) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(RelayError::Decode(a)), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("relay and the bundle decoder disagree: {a:?} / {b:?}"),
    }
    let at = data.iter().fold(0usize, |h, &b| h.wrapping_mul(31).wrapping_add(usize::from(b))) % sealed.len();
    let mut changed = sealed.clone();
    changed[at] ^= 0x01;
    assert!(
        matches!(open_sealed(key, &changed, &FUZZ_LIMITS, &mut |_| true), Err(RelayError::Unreadable)),
        "byte {at} changed on the way was not refused"
    );
    assert!(matches!(
        open_sealed(key, &sealed, &FUZZ_LIMITS, &mut |_| false),
        Err(RelayError::Decode(DecodeError::Busy))
    ));
}

/// Split a target's input into a record id and change byte strings: 16
/// bytes of id, then changes each prefixed by a 2-byte big-endian length.
pub fn split_changes(data: &[u8]) -> Option<(uuid::Uuid, Vec<Vec<u8>>)> {
    let id = uuid::Uuid::from_bytes(data.get(..16)?.try_into().ok()?);
    let mut rest = &data[16..];
    let mut changes = Vec::new();
    while rest.len() >= 2 && changes.len() < 64 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let end = (2 + n).min(rest.len());
        changes.push(rest[2..end].to_vec());
        rest = &rest[end..];
    }
    Some((id, changes))
}

/// The inverse of [`split_changes`], for seeds.
pub fn join_changes(id: uuid::Uuid, changes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = id.as_bytes().to_vec();
    for c in changes {
        out.extend_from_slice(&u16::try_from(c.len()).unwrap_or(u16::MAX).to_be_bytes());
        out.extend_from_slice(c);
    }
    out
}

/// The grid manager whose phone the received changes claim to come from,
/// and his device's actor (the seeds' changes carry it).
pub fn pusher() -> gridsync_server::merge::Pusher {
    use gridsync_core::grid::{GridPath, Role};
    gridsync_server::merge::Pusher {
        user: gridsync_server::store::User {
            id: "gm-t01-v01-g1".into(),
            display_name: "王建国".into(),
            role: Role::GridManager,
            grid: GridPath::parse("t01/v01/g1").expect("a group"),
        },
        device_id: "fuzz-device".into(),
        actor: gridsync_server::merge::PusherActor::Device(PUSHER_ACTOR.to_vec()),
    }
}

/// The actor of [`pusher`]'s device.
pub const PUSHER_ACTOR: [u8; 16] = [0xab; 16];

/// The changes a phone sends for a new record, judged and merged by the
/// server (`merge::merge_doc` over `judge`, Automerge behind
/// `doc::guarded`): every change is accounted for once (stored, known or
/// refused, never two of these), what is stored is a change that was sent,
/// and a merged record's JSON reads.
pub fn received_changes(data: &[u8]) {
    let Some((doc_id, changes)) = split_changes(data) else { return };
    let incoming = gridsync_server::store::IncomingDoc { doc_id, changes: changes.clone(), batch: None };
    let (decision, outcome) = gridsync_server::merge::merge_doc(&pusher(), None, &incoming, 1_764_000_000_000);
    let sent: HashSet<[u8; 32]> = changes.iter().map(|c| gridsync_core::signing::change_hash(c)).collect();
    let acked: HashSet<[u8; 32]> = outcome.acked.iter().copied().collect();
    for h in &acked {
        assert!(sent.contains(h), "acknowledged a change that was not sent");
    }
    for r in &outcome.rejections {
        for h in &r.hashes {
            assert!(!acked.contains(h), "a change both stored and refused");
        }
    }
    assert_eq!(outcome.new + outcome.known, outcome.acked.len());
    if let gridsync_server::store::DocDecision::Accept(merged) = decision {
        serde_json::from_str::<serde_json::Value>(&merged.json).expect("the merged record's JSON reads");
        assert_eq!(merged.new_changes.len(), outcome.new);
        for (h, bytes) in &merged.new_changes {
            assert!(changes.contains(bytes) && sent.contains(h), "stored bytes that were not sent");
        }
    }
}

/// Inflate a message's body as the oracle for [`sync_response`]'s bounds.
fn body_of(data: &[u8]) -> Option<Vec<u8>> {
    let dict = match compression(data)? {
        0 => return Some(data[5..].to_vec()),
        1 => None,
        2 => Some(protocol::DICTIONARY_V1),
        _ => return None,
    };
    let mut d = flate2::Decompress::new(false);
    if let Some(dict) = dict {
        d.set_dictionary(dict).ok()?;
    }
    let mut out = Vec::with_capacity(MAX_DECODED_BYTES + 1);
    d.decompress_vec(&data[5..], &mut out, flate2::FlushDecompress::Finish).ok()?;
    Some(out)
}

/// A sync answer as the phone reads it (`protocol::decode::<SyncResponse>`):
/// no more items than the inflated body has bytes, memory within a fixed
/// multiple of that body (and the body within 32 MiB), and the answer
/// reads back after either of the server's encodings.
pub fn sync_response(data: &[u8]) {
    let (got, peak) = peak_during(|| protocol::decode::<SyncResponse>(data));
    let Ok(resp) = got else { return };
    let body = body_of(data).expect("the oracle inflates what the decoder inflated");
    assert!(body.len() <= MAX_DECODED_BYTES);
    let items = resp.acked.len()
        + resp.acked.iter().map(|a| a.hashes.len()).sum::<usize>()
        + resp.rejected.len()
        + resp.rejected.iter().map(|r| r.hashes.len()).sum::<usize>()
        + resp.changes.len()
        + resp.changes.iter().map(|d| d.changes.len()).sum::<usize>();
    assert!(items <= body.len(), "{items} items from {} bytes", body.len());
    let bound = 72 * body.len() + 4 * (data.len() * 4 + 1024) + 256 * 1024;
    assert!(peak <= bound, "{peak} bytes held for a body of {} bytes", body.len());
    for bytes in [protocol::encode(&resp), protocol::encode_response(&resp)] {
        let again: SyncResponse = protocol::decode(&bytes.expect("encodes")).expect("reads back");
        assert_eq!(again, resp);
    }
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Option<gridsync_core::store::Store>> = const { std::cell::RefCell::new(None) };
}

/// A bundle file a phone imports (`Store::import_bundle_bytes`, what
/// `Phone::import_bundle` runs): refused as the bundle reader refuses it,
/// with a reason the app can show; read, it is applied whole or not at all
/// (changes that Automerge cannot take leave the store as it was), and the
/// report counts what the bundle held.
pub fn phone_bundle_import(data: &[u8]) {
    use gridsync_core::store::Store;
    let decoded = decode_bundle(data, &DecodeLimits::PHONE_BUNDLE, &mut |_| true);
    let Ok(b) = decoded else {
        // Refused before any record is touched: a scratch store will do.
        let r = SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let store = s.get_or_insert_with(|| Store::open_in_memory().expect("opens"));
            store.import_bundle_bytes(data).map(|_| ())
        });
        match r {
            Err(CoreError::Invalid(errs)) => {
                let e = &errs[0];
                assert_eq!(e.field, "bundle");
                assert!(["malformed", "too_many_changes", "too_large"].contains(&e.reason.as_str()), "{}", e.reason);
                assert!(!e.message_zh.is_empty());
            }
            other => panic!("a bundle the reader refuses was answered {other:?}"),
        }
        return;
    };
    let mut store = Store::open_in_memory().expect("opens");
    match store.import_bundle_bytes(data) {
        Ok((report, touched)) => {
            assert_eq!(report.records as usize, b.docs.len());
            assert_eq!(report.changes as usize, b.docs.iter().map(|d| d.changes.len()).sum::<usize>());
            assert_eq!(touched.len(), b.docs.len());
            assert!(store.count().expect("counts") as usize <= b.docs.len());
        }
        Err(_) => assert_eq!(store.count().expect("counts"), 0, "a refused import left records behind"),
    }
}

fn sync_doc() -> automerge::AutoCommit {
    use automerge::transaction::Transactable;
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    let saved = DOC.get_or_init(|| {
        let mut d = automerge::AutoCommit::new();
        let _ = d.put(automerge::ROOT, "kind", "patrol");
        d.commit();
        let _ = d.put(automerge::ROOT, "findings", "未发现异常");
        d.commit();
        d.save()
    });
    automerge::AutoCommit::load(saved).expect("loads")
}

/// Receive `msg` into a document with two changes and answer it.
fn receive_and_answer(msg: automerge::sync::Message) -> Result<(), CoreError> {
    use automerge::sync::SyncDoc;
    let mut doc = sync_doc();
    let mut state = automerge::sync::State::new();
    doc.sync().receive_sync_message(&mut state, msg).map_err(|e| CoreError::Document(e.to_string()))?;
    let _ = doc.sync().generate_sync_message(&mut state);
    Ok(())
}

/// An Automerge sync message a peer sends (for repair or device-to-device
/// transfer). Read through `doc::guarded`, a panic in Automerge (a Bloom
/// filter of zero bits divides by zero) is an error, not a crash; read
/// through `doc::decode_sync_message`, a message is refused before it can
/// panic or allocate per probe, so received and answered unguarded it
/// never panics, within memory bounded by its size.
pub fn automerge_sync_message(data: &[u8]) {
    use gridsync_core::doc::{MAX_SYNC_BLOOM_PROBES, bloom_params, decode_sync_message, guarded};
    let raw = guarded(|| automerge::sync::Message::decode(data).map_err(|e| CoreError::Document(e.to_string())));
    if let Ok(msg) = raw {
        // Automerge allocates a vector per probe count before any check: a
        // count in the billions is not a panic the guard can catch, and is
        // what `decode_sync_message` exists to refuse.
        let sane = msg.have.iter().all(|h| bloom_params(&h.bloom).is_none_or(|p| p.2 <= MAX_SYNC_BLOOM_PROBES));
        if sane {
            let _ = guarded(|| receive_and_answer(msg));
        }
    }
    let Ok(msg) = decode_sync_message(data) else { return };
    let (answered, peak) = peak_during(|| std::panic::catch_unwind(|| receive_and_answer(msg)));
    assert!(answered.is_ok(), "a message decode_sync_message took made Automerge panic");
    assert!(peak <= 64 * data.len() + 1024 * 1024, "{peak} bytes held for a message of {} bytes", data.len());
}
