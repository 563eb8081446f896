//! Build the preset deflate dictionary of protocol version 1
//! (`client-core/src/protocol/dict-v1.bin`) from typical sync bodies.
//!
//! Run once; the result is part of the wire format and must never change
//! for version 1 (a test pins its hash). A new dictionary needs a new
//! compression code or protocol version.

use automerge::ActorId;
use gridsync_core::doc::RecordDoc;
use gridsync_core::protocol::{DocChanges, SyncResponse};
use rand::SeedableRng;

fn main() -> anyhow::Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "client-core/src/protocol/dict-v1.bin".into());
    let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
    let mut corpus = Vec::new();
    for dev in 0..24i64 {
        let grid = gridsync_core::grid::GridPath::parse(&format!(
            "t{:02}/v{:02}/g{}",
            dev % 12 + 1,
            dev % 10 + 1,
            dev % 4 + 1
        ))?;
        let actor = ActorId::random();
        let mut docs = Vec::new();
        let user = format!("gm-{grid}").replace('/', "-");
        let mut recs = gridsync_tests::records::day_of_records(&grid, &user, dev, &mut rng);
        recs.push(gridsync_tests::records::dispute(&grid, &user, dev));
        for rec in recs {
            let mut d = RecordDoc::create(&rec, actor.clone())?;
            docs.push(DocChanges {
                doc: *rec.id.as_bytes(),
                changes: d.changes_since(&[]).iter().map(|c| c.raw_bytes().to_vec()).collect(),
            });
        }
        // Version 1's request layout (cursor, changes, page budget), which
        // the dictionary was built from; version 2 only adds signatures.
        corpus.extend(postcard::to_allocvec(&(vec![0u8; 16], &docs, 262_144u32))?);
        let resp = SyncResponse { changes: docs, next_cursor: vec![0; 16], ..Default::default() };
        corpus.extend(postcard::to_allocvec(&resp)?);
    }
    // Deflate looks back 32 KiB; the most useful material goes last.
    let dict = &corpus[corpus.len().saturating_sub(16 * 1024)..];
    std::fs::write(&out, dict)?;
    println!("wrote {} bytes to {out}", dict.len());
    Ok(())
}
