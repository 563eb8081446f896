//! One suite both blob backends pass: `blob_conformance!(make: expr)` with
//! `expr` an `Option<Box<dyn BlobStore>>` over fresh, empty storage.

use super::*;

/// A blob of `n` bytes that is not all one value, and its name.
pub fn blob(n: usize) -> (Vec<u8>, String) {
    let b: Vec<u8> = (0..n).map(|i| (i * 7 + i / 251) as u8).collect();
    let h = sha256_hex(&b);
    (b, h)
}

macro_rules! blob_conformance {
    ($(#[$meta:meta])* make: $make:expr) => {
        use $crate::blobs::conformance::blob;
        use $crate::blobs::*;

        fn make() -> Box<dyn BlobStore> {
            let m: Option<Box<dyn BlobStore>> = $make;
            m.expect("this backend's tests need GRIDSYNC_TEST_POSTGRES_URL (see README)")
        }

        #[test]
        $(#[$meta])*
        fn chunks_in_order_make_the_blob_and_only_then_it_reads() {
            let s = make();
            let (b, h) = blob(10_000);
            assert_eq!(s.progress(&h, "gm1").unwrap(), None);
            let p = s.append(&h, "gm1", 10_000, 0, &b[..4096]).unwrap();
            assert_eq!(p, Progress { received: 4096, complete: false });
            assert_eq!(s.progress(&h, "gm1").unwrap(), Some(p));
            assert_eq!(s.get(&h).unwrap(), None, "an unfinished blob is not read");
            assert_eq!(s.complete(&h).unwrap(), None);
            s.append(&h, "gm1", 10_000, 4096, &b[4096..8192]).unwrap();
            let p = s.append(&h, "gm1", 10_000, 8192, &b[8192..]).unwrap();
            assert_eq!(p, Progress { received: 10_000, complete: true });
            assert_eq!(s.get(&h).unwrap().as_deref(), Some(&b[..]));
            assert_eq!(s.complete(&h).unwrap(), Some(10_000));
            assert_eq!(s.progress(&h, "gm1").unwrap(), None, "the upload became the blob");
        }

        #[test]
        $(#[$meta])*
        fn a_resent_or_overlapping_chunk_is_harmless_and_a_gap_is_refused() {
            let s = make();
            let (b, h) = blob(9000);
            s.append(&h, "gm1", 9000, 0, &b[..3000]).unwrap();
            // The answer to the first chunk was lost: the phone sends it again.
            assert_eq!(s.append(&h, "gm1", 9000, 0, &b[..3000]).unwrap().received, 3000);
            // An overlapping chunk adds only what is new.
            assert_eq!(s.append(&h, "gm1", 9000, 2000, &b[2000..5000]).unwrap().received, 5000);
            match s.append(&h, "gm1", 9000, 7000, &b[7000..]) {
                Err(BlobError::Gap { offset: 7000, received: 5000 }) => {}
                other => panic!("expected a gap, got {other:?}"),
            }
            assert!(matches!(s.append(&h, "gm1", 9000, 5000, &[0; 4001]), Err(BlobError::PastEnd { .. })));
            s.append(&h, "gm1", 9000, 5000, &b[5000..]).unwrap();
            assert_eq!(s.get(&h).unwrap().unwrap(), b, "every byte once, in order");
            // Sending the bytes again is a new upload; the blob stays as it is.
            assert_eq!(s.append(&h, "gm1", 9000, 0, &b[..10]).unwrap(), Progress { received: 10, complete: false });
            assert_eq!(s.get(&h).unwrap().unwrap(), b);
        }

        #[test]
        $(#[$meta])*
        fn bytes_that_do_not_match_their_name_are_discarded() {
            let s = make();
            let (mut b, h) = blob(5000);
            b[4999] ^= 1;
            s.append(&h, "gm1", 5000, 0, &b[..4000]).unwrap();
            assert!(matches!(s.append(&h, "gm1", 5000, 4000, &b[4000..]), Err(BlobError::HashMismatch(_))));
            assert_eq!(s.get(&h).unwrap(), None);
            assert_eq!(s.progress(&h, "gm1").unwrap(), None, "the upload starts over");
            b[4999] ^= 1;
            assert!(s.append(&h, "gm1", 5000, 0, &b).unwrap().complete);
        }

        /// A colleague who names the photographer's photo with a larger
        /// size and keeps sending bytes fills an upload of his own: the
        /// photographer's goes on beside it and makes the blob; the
        /// colleague's never can.
        #[test]
        $(#[$meta])*
        fn each_uploader_has_an_upload_of_their_own() {
            let s = make();
            let (b, h) = blob(6000);
            s.append(&h, "vl1", 60_000, 0, &[7; 5000]).unwrap();
            assert_eq!(s.append(&h, "gm1", 6000, 0, &b[..3000]).unwrap().received, 3000);
            s.append(&h, "vl1", 60_000, 5000, &[7; 5000]).unwrap();
            assert_eq!(s.progress(&h, "vl1").unwrap().map(|p| p.received), Some(10_000));
            assert_eq!(s.append(&h, "gm1", 6000, 3000, &b[3000..]).unwrap(), Progress { received: 6000, complete: true });
            assert_eq!(s.get(&h).unwrap().unwrap(), b);
            // A second uploader of the same bytes is checked, then dropped.
            assert!(s.append(&h, "gm2", 6000, 0, &b).unwrap().complete);
            assert_eq!(s.progress(&h, "gm2").unwrap(), None);
            let mut forged = b.clone();
            forged[0] ^= 1;
            assert!(matches!(s.append(&h, "gm3", 6000, 0, &forged), Err(BlobError::HashMismatch(_))));
            assert_eq!(s.get(&h).unwrap().unwrap(), b, "a forged upload leaves the blob alone");
            let listed = s.list().unwrap();
            let mine: Vec<(bool, Option<&str>, u64)> =
                listed.iter().map(|i| (i.complete, i.upload.as_deref(), i.received)).collect();
            let vl1 = upload_key("vl1");
            assert_eq!(mine, [(true, None, 6000), (false, Some(vl1.as_str()), 10_000)]);
            assert!(s.delete_upload(&h, &vl1).unwrap());
            assert!(!s.delete_upload(&h, &vl1).unwrap());
            assert_eq!(s.list().unwrap().len(), 1);
        }

        #[test]
        $(#[$meta])*
        fn list_and_delete_see_complete_blobs_and_uploads() {
            let s = make();
            let (a, ha) = blob(100);
            let (b, hb) = blob(200);
            s.append(&ha, "gm1", 100, 0, &a).unwrap();
            s.append(&hb, "gm1", 200, 0, &b[..50]).unwrap();
            s.append(&ha, "gm2", 100, 0, &a[..10]).unwrap();
            let l = s.list().unwrap();
            assert_eq!(l.len(), 3);
            let la = l.iter().find(|i| i.hash == ha && i.complete).unwrap();
            assert!(la.upload.is_none() && la.received == 100 && la.written_at > 0);
            let lb = l.iter().find(|i| i.hash == hb).unwrap();
            assert!(!lb.complete && lb.upload.as_deref() == Some(upload_key("gm1").as_str()));
            assert!(s.delete(&ha).unwrap(), "the blob and its uploads");
            assert!(s.delete(&hb).unwrap());
            assert!(!s.delete(&ha).unwrap());
            assert!(s.list().unwrap().is_empty());
            assert_eq!(s.get(&ha).unwrap(), None);
        }

        #[test]
        $(#[$meta])*
        fn two_writers_of_one_upload_keep_it_whole() {
            let s: std::sync::Arc<dyn BlobStore> = std::sync::Arc::from(make());
            let (b, h) = blob(64 * 1024);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (s, b, h) = (s.clone(), b.clone(), h.clone());
                    std::thread::spawn(move || {
                        let mut at = 0u64;
                        while at < b.len() as u64 {
                            let end = (at as usize + 4096).min(b.len());
                            match s.append(&h, "gm1", b.len() as u64, at, &b[at as usize..end]) {
                                Ok(p) if p.complete => return,
                                Ok(p) => at = p.received,
                                Err(BlobError::Gap { received, .. }) => at = received,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert_eq!(s.get(&h).unwrap().unwrap(), b);
        }
    };
}

pub(crate) use blob_conformance;

mod disk_tests {
    super::blob_conformance!(make: {
        let dir = tempfile::tempdir().unwrap().keep();
        Some(Box::new(disk::DiskBlobStore::new(dir.join("blobs"))))
    });

    #[test]
    fn a_crash_mid_upload_keeps_every_acknowledged_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (b, h) = blob(3000);
        disk::DiskBlobStore::new(dir.path()).append(&h, "gm1", 3000, 0, &b[..1000]).unwrap();
        // A new process over the same directory resumes where the last stopped.
        let again = disk::DiskBlobStore::new(dir.path());
        assert_eq!(again.progress(&h, "gm1").unwrap(), Some(Progress { received: 1000, complete: false }));
        assert!(again.append(&h, "gm1", 3000, 1000, &b[1000..]).unwrap().complete);
    }

    /// A part file from before uploads were kept apart is listed as an
    /// upload with an empty key, and removed by that key.
    #[test]
    fn a_shared_part_file_of_an_older_server_is_an_upload_to_collect() {
        let dir = tempfile::tempdir().unwrap();
        let (_, h) = blob(3000);
        std::fs::create_dir_all(dir.path().join(&h[..2])).unwrap();
        std::fs::write(dir.path().join(&h[..2]).join(format!("{h}.part")), [1u8; 700]).unwrap();
        let s = disk::DiskBlobStore::new(dir.path());
        let l = s.list().unwrap();
        assert_eq!(l.iter().map(|i| (i.upload.as_deref(), i.received)).collect::<Vec<_>>(), [(Some(""), 700)]);
        assert!(s.delete_upload(&h, "").unwrap());
        assert!(s.list().unwrap().is_empty());
    }
}

mod postgres_tests {
    super::blob_conformance!(#[ignore = "needs PostgreSQL: set GRIDSYNC_TEST_POSTGRES_URL and run with --include-ignored"] make: {
        crate::store::postgres::test_database_url().map(|url| {
            use crate::store::prelude::*;
            crate::store::postgres::PostgresServerStore::connect(&url).unwrap().migrate().unwrap();
            Box::new(postgres::PgBlobStore::new(std::sync::Arc::new(crate::pg_pool::ClientPool::new(&url, None)))) as Box<dyn BlobStore>
        })
    });
}
