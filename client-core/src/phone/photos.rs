//! Photos on a record: attach offline, upload after the records, download
//! on demand.
//!
//! - [`Phone::attach_photo`] keeps the bytes in the encrypted store and adds
//!   a reference (hash, type, size, time, who, and the handling step it
//!   shows) to the record, in one transaction. A sensitive record's photo
//!   loses its location and camera metadata before it is hashed; another
//!   record's keeps it.
//! - [`Phone::upload_photos`] sends waiting photos in small chunks, only
//!   for records the server has acknowledged (records always go first:
//!   [`Phone::sync`] never waits for a photo), thumbnails first, resuming
//!   from the last byte the server confirmed after any drop. It first asks
//!   the server which of the user's photos it lacks and sends those again
//!   (a photo collected while its record was deleted comes back when the
//!   record is restored), and it never gives up a photo its record still
//!   references.
//! - [`Phone::fetch_photo`] returns a photo's bytes, downloading (and
//!   checking the hash of) one another user took.

use super::*;
use crate::model::sha256_hex;
use crate::model::{
    Attachment, MAX_PHOTO_BYTES, MAX_PHOTOS, MAX_THUMB_BYTES, PhotoType, Record, size_zh, strip_metadata, takes_photos,
};
use crate::store::NewBlob;
use crate::sync::SyncError;

/// Bytes in one upload request: four seconds on a 64 kbit/s link, so a
/// dropped connection loses little.
pub const PHOTO_CHUNK: usize = 32 * 1024;

/// One photo of a record, as an app lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PhotoView {
    /// SHA-256 of the bytes (the photo's name everywhere).
    pub hash: String,
    /// `image/jpeg`, `image/png` or `image/heic`.
    pub mime: String,
    /// Bytes.
    pub size: u64,
    /// Attached, ms since the epoch.
    pub at: i64,
    /// Who attached it (user id).
    pub by: String,
    /// Their name, once the directory has it.
    pub by_name: Option<String>,
    /// The handling step or dispute event it shows.
    pub event: Option<String>,
    /// Its thumbnail's hash, if it has one (show that in lists).
    pub thumbnail: Option<String>,
    /// The bytes are on this phone (else [`Phone::fetch_photo`] downloads them).
    pub on_phone: bool,
    /// This phone took it and has not finished sending it.
    pub uploading: bool,
}

/// Photos waiting to go to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PhotoBacklog {
    /// Photos and thumbnails not yet sent in full.
    pub photos: u64,
    /// Their bytes not yet confirmed by the server.
    pub bytes: u64,
}

/// What [`Phone::upload_photos`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PhotoUpload {
    /// Photos (and thumbnails) the server now holds in full.
    pub completed: u64,
    /// Bytes the server confirmed in this run.
    pub bytes_sent: u64,
    /// Requests made.
    pub requests: u64,
    /// Photos left (their records not yet on the server, or the run
    /// stopped at its byte budget).
    pub remaining: u64,
}

/// The photo bytes as they will be kept: checked, and stripped of
/// metadata where `strip` says so.
fn prepare(bytes: Vec<u8>, field: &str, max: i64, strip: bool) -> Result<(PhotoType, Vec<u8>), ApiError> {
    let Some(kind) = PhotoType::sniff(&bytes) else {
        return Err(ApiError::invalid(field, "bad_type", "照片只能是JPEG、PNG或HEIC格式"));
    };
    let what = if field == "thumbnail" { "缩略图" } else { "照片" };
    let bytes = if strip {
        strip_metadata(&bytes).ok_or_else(|| {
            ApiError::invalid(
                field,
                "cannot_strip",
                "这条记录涉及个人敏感信息，照片须去除位置信息后保存：请用JPEG或PNG格式（相机设置中关闭HEIC/高效格式）",
            )
        })?
    } else {
        bytes
    };
    if bytes.is_empty() {
        return Err(ApiError::invalid(field, "empty", format!("{what}是空的，请重新拍摄")));
    }
    if bytes.len() as i64 > max {
        return Err(ApiError::invalid(field, "too_large", format!("每张{what}不能超过{}", size_zh(max))));
    }
    Ok((kind, bytes))
}

impl Phone {
    /// Attach a photo (and its thumbnail, which the app makes) to record
    /// `id`, a hazard, visit or dispute; `event` names the handling step or
    /// dispute event it shows. Works offline; the photo goes to the server
    /// with [`Phone::upload_photos`] once the record has. Attaching the same
    /// bytes again changes nothing.
    pub fn attach_photo(
        &self,
        id: &str,
        photo: Vec<u8>,
        thumbnail: Option<Vec<u8>>,
        event: Option<String>,
    ) -> Result<RecordView, ApiError> {
        let id = parse_id(id)?;
        let view = {
            let mut store = self.store();
            let writer = store.writer()?.ok_or_else(not_enrolled)?;
            // A refusal never blocks the next step: its step is kept aside.
            store.repair(id, now_ms())?;
            let mut record: Record = store.get(id)?;
            if !takes_photos(record.kind()) {
                return Err(ApiError::invalid("id", "not_allowed", format!("{}不能附照片", record.kind().label_zh())));
            }
            if let Some(e) = &event
                && !record.event_ids().contains(e)
            {
                return Err(ApiError::invalid("event", "bad_event", "照片对应的处置步骤不存在"));
            }
            // Location stays only where the record is not sensitive.
            let sensitive = crate::rules::is_sensitive(&record);
            let (kind, photo) = prepare(photo, "photo", MAX_PHOTO_BYTES, sensitive)?;
            let thumb = thumbnail.map(|t| prepare(t, "thumbnail", MAX_THUMB_BYTES, true)).transpose()?;
            let hash = sha256_hex(&photo);
            if !record.attachments.contains_key(&hash) {
                let count = crate::model::photos_of(&record.attachments).count();
                if count >= MAX_PHOTOS {
                    return Err(ApiError::invalid("photo", "too_many", format!("每条记录最多附{MAX_PHOTOS}张照片")));
                }
                let now = now_ms();
                let entry = |mime: &str, size: usize, thumb_of: Option<String>| Attachment {
                    mime: mime.to_owned(),
                    size: size as i64,
                    at: now,
                    by: writer.user_id.clone(),
                    event: event.clone(),
                    thumb_of,
                };
                record.attachments.insert(hash.clone(), entry(kind.mime(), photo.len(), None));
                let mut blobs = vec![NewBlob { mime: kind.mime(), bytes: &photo }];
                if let Some((tkind, tbytes)) = &thumb {
                    let th = sha256_hex(tbytes);
                    if th != hash {
                        record.attachments.insert(th, entry(tkind.mime(), tbytes.len(), Some(hash.clone())));
                        blobs.push(NewBlob { mime: tkind.mime(), bytes: tbytes });
                    }
                }
                record.updated_at = now;
                store.update_attaching(&record, &blobs)?;
            }
            records::view(&store, store.get(id)?, Some(&writer))?
        };
        self.notify([id], ChangeSource::Local);
        Ok(view)
    }

    /// The bytes of a photo if they are on this phone.
    pub fn photo_bytes(&self, hash: &str) -> Result<Option<Vec<u8>>, ApiError> {
        Ok(self.store().blob(hash)?)
    }

    /// The bytes of photo `hash` of record `id`: from this phone, or
    /// downloaded from the server (checked against the hash, then kept).
    /// A photo the uploader has not finished sending is `Network` with a
    /// message saying so; one the user may not see is `NotAuthorized`.
    pub async fn fetch_photo(&self, id: &str, hash: &str) -> Result<Vec<u8>, ApiError> {
        let rid = parse_id(id)?;
        let (mime, enrollment) = {
            let store = self.store();
            if let Some(b) = store.blob(hash)? {
                return Ok(b);
            }
            let record = store.get(rid)?;
            let Some(a) = record.attachments.get(hash) else {
                return Err(ApiError::invalid("hash", "not_on_record", "这条记录没有这张照片"));
            };
            (a.mime.clone(), store.enrollment()?.ok_or_else(not_enrolled)?)
        };
        let bytes = self.http.download_photo(&enrollment, hash).await?;
        if sha256_hex(&bytes) != hash {
            return Err(ApiError::Network {
                detail: format!("downloaded photo {hash} does not match its hash"),
                message_zh: "下载的照片已损坏，请重试".into(),
            });
        }
        self.store().put_downloaded(rid, &mime, &bytes, now_ms())?;
        Ok(bytes)
    }

    /// Photos waiting to be sent, records synced or not.
    pub fn photo_backlog(&self) -> Result<PhotoBacklog, ApiError> {
        let (photos, bytes) = self.store().blob_backlog()?;
        Ok(PhotoBacklog { photos, bytes })
    }

    /// Send waiting photos whose records the server holds, thumbnails
    /// first, in [`PHOTO_CHUNK`] chunks, until all are sent or `max_bytes`
    /// went up in this run (0: no budget). A drop mid-photo loses at most
    /// the chunk in flight: the next run resumes from the last byte the
    /// server confirmed. Run it after [`Phone::sync`]; it never delays
    /// records, which go first.
    pub async fn upload_photos(&self, max_bytes: u64) -> Result<PhotoUpload, ApiError> {
        use std::sync::atomic::Ordering;
        let enrollment = self.store().enrollment()?.ok_or_else(not_enrolled)?;
        self.photo_cancel.store(false, Ordering::SeqCst);
        // Photos the server lacks that this phone holds go (again).
        match self.http.photos_wanted(&enrollment).await {
            Ok(w) => {
                let hashes: Vec<String> = w.wanted.into_iter().map(|p| p.hash).collect();
                self.store().requeue_blobs(&hashes)?;
            }
            Err(SyncError::Revoked) => {
                self.store().wipe()?;
                self.notify([], ChangeSource::Wipe);
                return Err(SyncError::Revoked.into());
            }
            Err(e) => return Err(e.into()),
        }
        let mut out = PhotoUpload::default();
        let pending = self.store().pending_blobs(100_000)?;
        'blobs: for p in pending {
            if max_bytes > 0 && out.bytes_sent >= max_bytes {
                break;
            }
            let Some(bytes) = self.store().blob(&p.hash)? else { continue };
            let mut at = p.sent.min(bytes.len() as u64);
            loop {
                if max_bytes > 0 && out.bytes_sent >= max_bytes {
                    break 'blobs;
                }
                if self.photo_cancel.swap(false, Ordering::SeqCst) {
                    return Err(ApiError::Cancelled {
                        message_zh: "照片上传已暂停，已传部分会保留，下次从断点继续".into(),
                    });
                }
                let end = (at as usize + PHOTO_CHUNK).min(bytes.len());
                out.requests += 1;
                let progress =
                    match self.http.upload_photo_chunk(&enrollment, &p.hash, at, &bytes[at as usize..end]).await {
                        Ok(progress) => progress,
                        // The server holds no live record naming this photo
                        // as this user's. While the record here still
                        // references it, it waits for the next run (the
                        // server may not have the record's latest state
                        // yet); once it does not (deleted, or repaired
                        // without it), this photo cannot go, and the rest
                        // can. A photo given up is sent again if the server
                        // later asks for it (`photos_wanted`).
                        Err(SyncError::Server { status: 403 | 404, .. }) => {
                            if !self.still_references(p.record_id, &p.hash)? {
                                self.store().blob_given_up(&p.hash)?;
                            }
                            continue 'blobs;
                        }
                        // The server discarded the bytes (their hash did not
                        // match): start this photo over once more next run.
                        Err(SyncError::Server { status: 422, .. }) => {
                            self.store().blob_sent(&p.hash, 0)?;
                            continue 'blobs;
                        }
                        Err(SyncError::Revoked) => {
                            self.store().wipe()?;
                            self.notify([], ChangeSource::Wipe);
                            return Err(SyncError::Revoked.into());
                        }
                        Err(e) => return Err(e.into()),
                    };
                let received = progress.received.min(bytes.len() as u64);
                out.bytes_sent += received.saturating_sub(at);
                self.store().blob_sent(&p.hash, if progress.complete { bytes.len() as u64 } else { received })?;
                if progress.complete {
                    out.completed += 1;
                    break;
                }
                at = received;
            }
        }
        out.remaining = self.store().blob_backlog()?.0;
        Ok(out)
    }

    /// Whether record `id` on this phone is live and still holds photo `hash`.
    fn still_references(&self, id: uuid::Uuid, hash: &str) -> Result<bool, ApiError> {
        match self.store().get(id) {
            Ok(r) => Ok(!r.deleted && r.attachments.contains_key(hash)),
            Err(crate::CoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

impl Phone {
    /// Stop the running [`Phone::upload_photos`] once its chunk in flight
    /// is answered (it then ends with `Cancelled`; every confirmed byte is
    /// kept and the next run resumes there). Nothing happens when none runs.
    pub fn cancel_photo_upload(&self) {
        self.photo_cancel.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The photos of `r` for a record view.
pub(super) fn views(store: &crate::store::Store, r: &Record) -> Result<Vec<PhotoView>, ApiError> {
    let mut out = Vec::new();
    for (hash, a) in crate::model::photos_of(&r.attachments) {
        let state = store.blob_state(hash)?;
        out.push(PhotoView {
            hash: hash.clone(),
            mime: a.mime.clone(),
            size: u64::try_from(a.size).unwrap_or(0),
            at: a.at,
            by_name: store.user_name(&a.by)?,
            by: a.by.clone(),
            event: a.event.clone(),
            thumbnail: crate::model::thumbnail_of(&r.attachments, hash).cloned(),
            on_phone: state.is_some_and(|s| s.on_phone),
            uploading: state.is_some_and(|s| s.upload),
        });
    }
    out.sort_by_key(|p| p.at);
    Ok(out)
}
