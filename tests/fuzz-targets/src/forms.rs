//! Targets of the text doors: the enrollment, device-key and problem-report
//! JSON, a photo chunk's request line, headers and upload, the agencies'
//! case-count CSV and the dashboard's form bodies.

use gridsync_core::protocol::{EnrollRequest, MAX_PHOTO_CHUNK, ProblemReport, SetAsideReport};
use gridsync_core::signing::{hex_of, valid_public_key};
use gridsync_server::api::{
    BodyRefused, MAX_PROBLEM_REASON_CHARS, MAX_PROBLEM_RECORDS, content_length, parse_device_key, parse_enroll,
    parse_problem_report,
};
use gridsync_server::blobs::{BlobError, new_part};
use gridsync_server::photos::{ChunkRefused, chunk_limit, offset_of, parse_chunk_request};
use gridsync_server::reports::{ReportError, parse_case_counts_csv};

use crate::alloc::peak_during;

/// Memory a JSON body of `n` bytes may take to read into its struct.
fn json_bound(n: usize) -> usize {
    16 * n + 64 * 1024
}

/// A refusal is a 4xx with a code and a Chinese message.
fn check_refusal(r: &BodyRefused, codes: &[&str]) {
    assert!(r.status.is_client_error(), "{}", r.status);
    assert!(codes.contains(&r.code), "unexpected code {}", r.code);
    assert!(r.message_zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)), "{}", r.message_zh);
}

/// `POST /v1/enroll` (`api::parse_enroll`, open to anyone): what it takes
/// is a normalised 12-character code, a trimmed name of 1 to 100
/// characters, an actor of 1 to 32 bytes and a usable key, and it reads
/// back the same when sent again; what it refuses gets a 4xx with a code.
pub fn enroll_json(data: &[u8]) {
    let (got, peak) = peak_during(|| parse_enroll(data));
    assert!(peak <= json_bound(data.len()), "{peak} bytes held for {} bytes", data.len());
    let input = match got {
        Ok(i) => i,
        Err(r) => {
            let codes =
                ["malformed_body", "invalid_device_name", "invalid_code", "invalid_actor", "invalid_public_key"];
            return check_refusal(&r, &codes);
        }
    };
    assert_eq!(input.code.len(), 12);
    assert!(input.code.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{}", input.code);
    assert_eq!(input.name.trim(), input.name);
    assert!((1..=100).contains(&input.name.chars().count()));
    assert!(!input.name.chars().any(char::is_control), "{:?}", input.name);
    assert!(input.actor.as_ref().is_none_or(|a| (1..=32).contains(&a.len())));
    assert!(input.public_key.as_ref().is_none_or(|k| valid_public_key(k)));
    let again = EnrollRequest {
        code: input.code.clone(),
        device_name: input.name.clone(),
        actor: input.actor.as_deref().map(hex_of),
        public_key: input.public_key.as_deref().map(hex_of),
    };
    let body = serde_json::to_vec(&again).expect("encodes");
    assert_eq!(parse_enroll(&body), Ok(input), "does not read back");
}

/// `POST /v1/device-key` (`api::parse_device_key`): a key taken is 32
/// bytes of a usable Ed25519 key, and reads back from its hex.
pub fn device_key_json(data: &[u8]) {
    let (got, peak) = peak_during(|| parse_device_key(data));
    assert!(peak <= json_bound(data.len()), "{peak} bytes held for {} bytes", data.len());
    match got {
        Ok(k) => {
            assert!(k.len() == 32 && valid_public_key(&k));
            let body = serde_json::json!({ "public_key": hex_of(&k) }).to_string();
            assert_eq!(parse_device_key(body.as_bytes()), Ok(k));
        }
        Err(r) => check_refusal(&r, &["malformed_body", "invalid_public_key"]),
    }
}

/// `POST /v1/problems` (`api::parse_problem_report`): at most
/// [`MAX_PROBLEM_RECORDS`] records, reasons cut to
/// [`MAX_PROBLEM_REASON_CHARS`], and what is taken reads back.
pub fn problem_report(data: &[u8]) {
    let (got, peak) = peak_during(|| parse_problem_report(data));
    assert!(peak <= json_bound(data.len()), "{peak} bytes held for {} bytes", data.len());
    let set_aside = match got {
        Ok(v) => v,
        Err(r) => return check_refusal(&r, &["malformed_body", "too_many_records", "bad_record_id"]),
    };
    assert!(set_aside.len() <= MAX_PROBLEM_RECORDS);
    assert!(set_aside.iter().all(|(_, r)| r.chars().count() <= MAX_PROBLEM_REASON_CHARS));
    let again = ProblemReport {
        set_aside: set_aside
            .iter()
            .map(|(doc, reason)| SetAsideReport { doc: doc.to_string(), reason: reason.clone() })
            .collect(),
    };
    let body = serde_json::to_vec(&again).expect("encodes");
    assert_eq!(parse_problem_report(&body), Ok(set_aside), "does not read back");
}

/// A photo upload read from the fuzzer's bytes: hash, query, content
/// length and photo, each after a 2-byte little-endian length; then chunks
/// of (offset: 2 bytes, length: 1 byte, honest: 1 byte, bytes).
struct Upload {
    hash: String,
    query: String,
    content_length: Vec<u8>,
    photo: Vec<u8>,
    chunks: Vec<(u16, Vec<u8>, bool)>,
}

impl Upload {
    fn read(mut data: &[u8]) -> Upload {
        let mut field = || {
            let n = usize::from(u16::from_le_bytes([
                data.first().copied().unwrap_or(0),
                data.get(1).copied().unwrap_or(0),
            ]));
            let rest = data.get(2..).unwrap_or_default();
            let (f, r) = rest.split_at(n.min(rest.len()));
            data = r;
            f.to_vec()
        };
        let hash = String::from_utf8_lossy(&field()).into_owned();
        let query = String::from_utf8_lossy(&field()).into_owned();
        let content_length = field();
        let photo = field();
        let mut chunks = Vec::new();
        while data.len() >= 4 {
            let offset = u16::from_le_bytes([data[0], data[1]]);
            let (n, honest) = (usize::from(data[2]), data[3] & 1 == 1);
            let rest = &data[4..];
            let (bytes, r) = rest.split_at(n.min(rest.len()));
            chunks.push((offset, bytes.to_vec(), honest));
            data = r;
        }
        Upload { hash, query, content_length, photo, chunks }
    }
}

/// `PUT /v1/photos/{hash}?offset=N`: the hash and offset taken are a
/// SHA-256 in lower-case hex and the first `offset=` (which reads back);
/// a `Content-Length` taken is decimal digits; a chunk may carry at most
/// [`MAX_PHOTO_CHUNK`] and never more than the photo has left; and an
/// upload of chunks in any order, some repeated or past the end, holds
/// exactly the bytes sent in order, never more than the photo's size, and
/// says where to resume when a chunk starts past what it holds.
pub fn photo_chunk(data: &[u8]) {
    let u = Upload::read(data);
    let hex64 = u.hash.len() == 64 && u.hash.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match parse_chunk_request(&u.hash, &u.query) {
        Ok(offset) => {
            assert!(hex64, "took the hash {:?}", u.hash);
            assert_eq!(offset_of(&format!("offset={offset}&x=1")), Some(offset));
        }
        Err(ChunkRefused::BadHash) => assert!(!hex64, "refused the hash {:?}", u.hash),
        Err(ChunkRefused::NoOffset) => assert!(hex64 && offset_of(&u.query).is_none()),
        Err(ChunkRefused::PastSize) => panic!("the request line has no size"),
    }
    if let Some(n) = content_length(&u.content_length) {
        let text = String::from_utf8_lossy(&u.content_length);
        let digits = text.trim();
        assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()), "took Content-Length {text:?}");
        assert_eq!(content_length(n.to_string().as_bytes()), Some(n));
    }

    let size = u.photo.len() as u64;
    let mut held: Vec<u8> = Vec::new();
    for (offset, bytes, honest) in u.chunks.iter().take(32) {
        let offset = u64::from(*offset);
        match chunk_limit(size, offset) {
            Ok(limit) => assert!(limit <= MAX_PHOTO_CHUNK && limit as u64 <= size - offset),
            Err(e) => assert!(offset > size && e == ChunkRefused::PastSize),
        }
        // An honest chunk is the photo's own bytes at its offset.
        let chunk: Vec<u8> = if *honest {
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(u.photo.len());
            u.photo[start..(start + bytes.len()).min(u.photo.len())].to_vec()
        } else {
            bytes.clone()
        };
        let received = held.len() as u64;
        let end = offset + chunk.len() as u64;
        match new_part(size, received, offset, &chunk) {
            Ok(fresh) => {
                assert!(end <= size && offset <= received);
                let skip = usize::try_from(received - offset).unwrap_or(usize::MAX).min(chunk.len());
                assert_eq!(fresh, &chunk[skip..]);
                held.extend_from_slice(fresh);
            }
            Err(BlobError::PastEnd { .. }) => assert!(end > size),
            Err(BlobError::Gap { received: r, .. }) => assert!(end <= size && offset > received && r == received),
            Err(e) => panic!("{e}"),
        }
        assert!(held.len() as u64 <= size, "holds more than the photo's size");
    }
}

/// The agencies' case counts (`reports::parse_case_counts_csv`): rows
/// taken number no more than the lines, in order, each from a line of four
/// cells, and read back the same when written again; a refusal names its
/// fault in Chinese.
pub fn case_counts_csv(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (got, peak) = peak_during(|| parse_case_counts_csv(&text));
    assert!(peak <= 8 * text.len() + 64 * 1024, "{peak} bytes held for {} bytes", text.len());
    let rows = match got {
        Ok(rows) => rows,
        Err(ReportError::BadInput { code, message_zh }) => {
            assert!(["empty", "bad_header", "bad_row"].contains(&code), "{code}");
            assert!(message_zh.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)));
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert!(rows.len() < text.lines().count().max(1));
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0), "rows out of order");
    let mut again = String::from("village,year,kind,count\n");
    for (_, r) in &rows {
        assert!(!r.village.contains(',') && r.village.trim() == r.village);
        again.push_str(&format!("{},{},{},{}\n", r.village, r.year, r.kind, r.count));
    }
    let back = parse_case_counts_csv(&again).expect("reads back");
    let inputs = |v: &[(usize, gridsync_server::reports::CaseCountInput)]| {
        v.iter().map(|(_, r)| (r.village.clone(), r.year, r.kind.clone(), r.count)).collect::<Vec<_>>()
    };
    assert_eq!(inputs(&back), inputs(&rows));
}

/// A dashboard form body as the dashboard reads it
/// (`dashboard::request::form_pairs`: at most `MAX_FORM_FIELDS` fields,
/// then `serde_urlencoded`): memory within a constant per field, no more
/// pairs than `&`-separated parts, a map holding each key's last value,
/// and the pairs read back after encoding. (Found by this target: without
/// the field limit, 2,508 bytes of one-byte fields held 149,490 bytes.)
pub fn web_form(data: &[u8]) {
    use std::collections::HashMap;
    let (pairs, peak) = peak_during(|| gridsync_server::dashboard::request::form_pairs(data));
    let fields = gridsync_server::dashboard::MAX_FORM_FIELDS;
    assert!(peak <= 8 * data.len() + 256 * fields + 64 * 1024, "{peak} bytes held for {} bytes", data.len());
    let Ok(pairs) = pairs else { return };
    assert!(pairs.len() <= data.split(|&b| b == b'&').count().min(fields));
    let map: HashMap<String, String> = serde_urlencoded::from_bytes(data).expect("a map reads what pairs read");
    for (k, v) in &map {
        assert_eq!(pairs.iter().rev().find(|(pk, _)| pk == k).map(|(_, pv)| pv), Some(v));
    }
    let again = serde_urlencoded::to_string(&pairs).expect("encodes");
    let back: Vec<(String, String)> = serde_urlencoded::from_str(&again).expect("reads back");
    assert_eq!(back, pairs);
}

/// The dashboard's upload (`dashboard::request::multipart`, behind a
/// signed-in session, before the CSRF check): at most 16 parts, each part
/// a slice of the body (so no more bytes than were sent), its name from
/// the part's header; a well-formed body reads back the parts it was
/// built of.
pub fn web_multipart(data: &[u8]) {
    use gridsync_server::dashboard::request::{Part, multipart};
    let ctype = "multipart/form-data; boundary=XX";
    let (parts, peak) = peak_during(|| multipart(ctype, data));
    assert!(peak <= 2 * data.len() + 64 * 1024, "{peak} bytes held for {} bytes", data.len());
    if let Some(parts) = &parts {
        assert!(parts.len() <= 17);
        assert!(parts.iter().map(|p| p.bytes.len()).sum::<usize>() <= data.len());
    }
    // Built of the fuzzer's bytes as parts: read back as they were.
    let fields: Vec<&[u8]> = data.split(|&b| b == 0).take(8).collect();
    let mut body = Vec::new();
    let mut want = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if f.windows(4).any(|w| w == b"\r\n--") {
            return;
        }
        let (name, file) = (format!("f{i}"), i % 2 == 1);
        body.extend_from_slice(b"--XX\r\nContent-Disposition: form-data; name=\"");
        body.extend_from_slice(name.as_bytes());
        body.extend_from_slice(if file { b"\"; filename=\"a.csv\"\r\n\r\n" } else { b"\"\r\n\r\n" });
        body.extend_from_slice(f);
        body.extend_from_slice(b"\r\n");
        want.push(Part { name, file, bytes: f.to_vec() });
    }
    body.extend_from_slice(b"--XX--\r\n");
    assert_eq!(multipart(ctype, &body), Some(want), "a well-formed upload reads back its parts");
}
