//! Valid inputs to start each target from: what an honest phone, server or
//! clerk sends. A coverage-guided fuzzer mutates these; the replay test
//! runs them through their targets too (their round trips must hold).

use std::collections::BTreeMap;

use gridsync_core::doc::RecordDoc;
use gridsync_core::grid::GridPath;
use gridsync_core::model::{GeoPoint, Patrol, PatrolSlot, Record, RecordBody};
use gridsync_core::protocol::{
    self, Bundle, DocAck, DocChanges, DocRejection, RejectReason, Signature, SyncRequest, SyncResponse,
};

use crate::wire::{PUSHER_ACTOR, join_changes};

/// A patrol by the grid manager of `t01/v01/g1`, as his phone writes it:
/// its id and its first change (and a second, an edit).
fn patrol_changes() -> (uuid::Uuid, Vec<Vec<u8>>) {
    let grid = GridPath::parse("t01/v01/g1").expect("a group");
    let start = 1_764_000_000_000;
    let rec = Record::new(
        grid,
        "gm-t01-v01-g1",
        start,
        RecordBody::Patrol(Patrol {
            slot: PatrolSlot::Morning,
            started_at: start,
            ended_at: Some(start + 45 * 60_000),
            route: vec![GeoPoint { lat: 33.94, lon: 106.30 }, GeoPoint { lat: 33.95, lon: 106.31 }],
            findings: "巡查村道、河道及重点户，未发现异常。".into(),
            hazard_ids: BTreeMap::new(),
        }),
    );
    let mut doc = RecordDoc::create(&rec, automerge::ActorId::from(PUSHER_ACTOR.to_vec())).expect("creates");
    let mut edited = rec.clone();
    if let RecordBody::Patrol(p) = &mut edited.body {
        p.findings = "发现村道边坡有落石隐患，已上报。".into();
    }
    edited.updated_at += 60_000;
    doc.update(&edited).expect("updates");
    let changes = doc.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect();
    (rec.id, changes)
}

/// The seeds of target `name`.
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    let (id, changes) = patrol_changes();
    let docs = vec![
        DocChanges { doc: *id.as_bytes(), changes: changes.clone() },
        DocChanges { doc: [7; 16], changes: vec![b"change".to_vec()] },
    ];
    let bundle = Bundle {
        device_id: "3f0e7c52-8d1a-4c1e-9a57-2b4f5e6d7c8b".into(),
        user_id: "gm-t01-v01-g1".into(),
        created_at: 1_764_000_000_000,
        cursor: vec![0, 0, 0, 0, 0, 0, 0, 9],
        docs: docs.clone(),
        signature: Signature([5; 64]),
    };
    // Structured inputs (`wire::Built`, after a first byte of 1): two
    // records of two and one changes; and a record of exactly 64 changes
    // (the fuzz limit), for each compression.
    let built = |compression: u8, counts: &[u8]| {
        let mut b = vec![1, compression, 2, 0, 9, counts.len() as u8];
        for (i, n) in counts.iter().enumerate() {
            b.extend_from_slice(&[i as u8 + 1, *n]);
            for _ in 0..*n {
                b.extend_from_slice(&[2, 0xa, 0xb]);
            }
        }
        b.extend_from_slice(&[0, 0, 1, 0]);
        b
    };
    let structured: Vec<Vec<u8>> = (0..3).flat_map(|c| [built(c, &[2, 1]), built(c, &[64])]).collect();
    match name {
        "sync_request" => {
            let req = SyncRequest {
                cursor: vec![0, 0, 0, 1],
                docs,
                max_response_bytes: 65536,
                signature: Signature([1; 64]),
            };
            let mut raw = b"GS\x00\x02\x00".to_vec();
            raw.extend(postcard::to_allocvec(&req).expect("encodes"));
            let mut out = vec![
                protocol::encode(&req).expect("encodes"),
                raw,
                protocol::encode(&SyncRequest::default()).expect("encodes"),
            ];
            out.extend(structured);
            out
        }
        "bundle" | "relay_sealed" | "phone_bundle_import" => {
            // Also uncompressed (compression 0), as a hostile phone may send
            // it: the fuzzer reaches the body without going through deflate.
            let mut raw = b"GS\x00\x02\x00".to_vec();
            raw.extend(postcard::to_allocvec(&bundle).expect("encodes"));
            let only_patrol = Bundle { docs: docs[..1].to_vec(), ..bundle.clone() };
            let mut out = vec![bundle.encode().expect("encodes"), raw, only_patrol.encode().expect("encodes")];
            if name != "phone_bundle_import" {
                out.extend(structured);
            }
            out
        }
        "received_changes" => vec![join_changes(id, &changes), join_changes(id, &changes[..1])],
        "sync_response" => {
            let resp = SyncResponse {
                acked: vec![DocAck { doc: [1; 16], hashes: vec![[2; 32]] }, DocAck { doc: [3; 16], hashes: vec![] }],
                rejected: vec![DocRejection {
                    doc: [4; 16],
                    reason: RejectReason::Forbidden,
                    detail: "只有村级负责人可以设定处置方案".into(),
                    hashes: vec![[5; 32]],
                }],
                changes: docs,
                next_cursor: vec![0, 0, 0, 0, 0, 0, 1, 7],
                more: true,
            };
            let acks = SyncResponse { acked: resp.acked.clone(), next_cursor: vec![1], ..SyncResponse::default() };
            vec![protocol::encode(&resp).expect("encodes"), protocol::encode_response(&acks).expect("encodes")]
        }
        "automerge_sync_message" => {
            use automerge::sync::SyncDoc;
            let mut doc = automerge::AutoCommit::new();
            let _ = automerge::transaction::Transactable::put(&mut doc, automerge::ROOT, "kind", "hazard");
            doc.commit();
            let mut state = automerge::sync::State::new();
            let first = doc.sync().generate_sync_message(&mut state).map(|m| m.encode()).unwrap_or_default();
            vec![first]
        }
        "enroll_json" => vec![
            br#"{"code":"YGUM-GFU4-CN7V","device_name":"Redmi 12"}"#.to_vec(),
            format!(
                r#"{{"code":"q57f 7z87 wwgj","device_name":" 测试手机 ","actor":"{}","public_key":"{}"}}"#,
                "ab".repeat(16),
                gridsync_core::signing::DeviceKey::from_secret(&[3; 32]).public_hex()
            )
            .into_bytes(),
        ],
        "device_key_json" => vec![
            format!(r#"{{"public_key":"{}"}}"#, gridsync_core::signing::DeviceKey::from_secret(&[3; 32]).public_hex())
                .into_bytes(),
        ],
        "problem_report" => vec![
            format!(r#"{{"set_aside":[{{"doc":"{id}","reason":"automerge: missing dependency"}}]}}"#).into_bytes(),
            br#"{"set_aside":[]}"#.to_vec(),
        ],
        "photo_chunk" => {
            // The layout `forms::photo_chunk` reads: hash, query, content
            // length and photo, each after a 2-byte length; then chunks of
            // (offset: 2 bytes, length: 1 byte, honest: 1 byte, bytes).
            let photo = b"\xff\xd8\xff\xe0 a small jpeg".to_vec();
            let hash = gridsync_core::model::sha256_hex(&photo);
            let mut out = Vec::new();
            for field in [hash.as_bytes(), b"offset=0", b"16", &photo] {
                out.extend_from_slice(&(field.len() as u16).to_le_bytes());
                out.extend_from_slice(field);
            }
            out.extend_from_slice(&[0, 0, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&[8, 0, 20, 0]);
            out.extend_from_slice(&photo[8..]);
            out.extend_from_slice(&[30, 0, 4, 0, 9, 9, 9, 9]);
            vec![out]
        }
        "case_counts_csv" => vec![
            "\u{feff}village,year,kind,count\nt01/v01,2024,public_security,3\nt01/v02,2024,criminal,0\n".into(),
            "village,year,kind,count\n\nt01/v03 , 2023 , lawsuit , 12\n".to_string(),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect(),
        "web_multipart" => vec![
            b"--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nab12\r\n--XX\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"a.csv\"\r\n\r\nvillage,year\r\n\r\n--XX--\r\n".to_vec(),
        ],
        "web_form" => vec![
            "note=%E5%B7%B2%E8%B0%83%E8%A7%A3&level=village&csrf=ab12".as_bytes().to_vec(),
            b"keep=a&keep=b&x=".to_vec(),
        ],
        _ => vec![],
    }
}
