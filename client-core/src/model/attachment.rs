//! Photos attached to a record: the record holds references only (the
//! SHA-256 of the bytes, type, size, when and by whom, the handling step or
//! dispute event it belongs to); the bytes travel apart, after the records
//! (see `docs/sync-protocol.md`, "Photos").
//!
//! A thumbnail is an entry of its own (`thumb_of` names its photo), so every
//! blob a record references has a declared size and type the server checks
//! an upload against.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// The SHA-256 of `bytes` in lowercase hex: the name a photo goes by on
/// the phone, on the wire and in the server's blob store.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::signing::hex_of(&sha2::Sha256::digest(bytes))
}

/// A photo's largest size: a 12-megapixel phone JPEG is 3 to 5 MB.
pub const MAX_PHOTO_BYTES: i64 = 8 * 1024 * 1024;
/// A thumbnail's largest size.
pub const MAX_THUMB_BYTES: i64 = 64 * 1024;
/// Photos one record may hold, each with at most one thumbnail (so at
/// most 40 entries, 161.25 MiB declared). Judged on the step that adds a
/// photo, against the record as its writer saw it, never on the merged
/// record: photos added at once on several phones may together pass it,
/// and that record still takes every other step (see `docs/records.md`,
/// "Limits on the merged record: photos").
pub const MAX_PHOTOS: usize = 20;

/// Kinds that take photos: a hazard and its handling, a visit, a dispute
/// and its events.
pub fn takes_photos(kind: super::RecordKind) -> bool {
    use super::RecordKind as K;
    matches!(kind, K::Hazard | K::Visit | K::Dispute)
}

/// A record's photos by the SHA-256 of their bytes (lowercase hex): keyed,
/// so two people attaching at once both keep theirs.
pub type Attachments = BTreeMap<String, Attachment>;

/// The photos of a record (its thumbnails left out), by hash.
pub fn photos_of(a: &Attachments) -> impl Iterator<Item = (&String, &Attachment)> {
    a.iter().filter(|(_, x)| x.thumb_of.is_none())
}

/// The hash of photo `hash`'s thumbnail, if it has one.
pub fn thumbnail_of<'a>(a: &'a Attachments, hash: &str) -> Option<&'a String> {
    a.iter().find(|(_, t)| t.thumb_of.as_deref() == Some(hash)).map(|(h, _)| h)
}

/// One photo (or thumbnail) a record references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// `image/jpeg`, `image/png` or `image/heic`.
    pub mime: String,
    /// Bytes.
    pub size: i64,
    /// Attached, ms since the epoch.
    pub at: i64,
    /// User id of who attached it.
    pub by: String,
    /// The history event (hazard handling step, dispute event) it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// For a thumbnail: the hash of the photo it stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_of: Option<String>,
}

/// The photo types taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoType {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// HEIC (iPhones and recent Android cameras).
    Heic,
}

impl PhotoType {
    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            PhotoType::Jpeg => "image/jpeg",
            PhotoType::Png => "image/png",
            PhotoType::Heic => "image/heic",
        }
    }

    /// From a media type.
    pub fn from_mime(m: &str) -> Option<PhotoType> {
        [PhotoType::Jpeg, PhotoType::Png, PhotoType::Heic].into_iter().find(|t| t.mime() == m)
    }

    /// What the bytes are, by their signature (never by what a sender
    /// says they are).
    pub fn sniff(b: &[u8]) -> Option<PhotoType> {
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(PhotoType::Jpeg);
        }
        if b.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(PhotoType::Png);
        }
        // ISO BMFF: size(4) "ftyp" brand(4).
        if b.len() >= 12 && &b[4..8] == b"ftyp" && matches!(&b[8..12], b"heic" | b"heix" | b"mif1" | b"heim" | b"heis")
        {
            return Some(PhotoType::Heic);
        }
        None
    }
}

/// Whether `h` is a SHA-256 in lowercase hex.
pub fn valid_hash(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The photo bytes with location and other camera metadata removed: JPEG
/// APP1 (Exif, XMP) and APP13 (IPTC) segments, PNG `eXIf` and text chunks.
/// `None` when the bytes cannot be walked (not a well-formed JPEG or PNG)
/// or are HEIC, whose metadata this does not rewrite.
pub fn strip_metadata(b: &[u8]) -> Option<Vec<u8>> {
    match PhotoType::sniff(b)? {
        PhotoType::Jpeg => strip_jpeg(b),
        PhotoType::Png => strip_png(b),
        PhotoType::Heic => None,
    }
}

/// Whether the bytes carry metadata [`strip_metadata`] would remove (or
/// cannot be checked).
pub fn has_metadata(b: &[u8]) -> bool {
    strip_metadata(b).is_none_or(|s| s.len() != b.len())
}

fn strip_jpeg(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..2]);
    let mut i = 2;
    loop {
        // Markers may be padded with 0xFF fill bytes.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        if b.get(i) != Some(&0xFF) {
            return None;
        }
        let marker = *b.get(i + 1)?;
        match marker {
            // Start of scan: the rest is entropy-coded data and the end marker.
            0xDA => {
                out.extend_from_slice(&b[i..]);
                return Some(out);
            }
            0xD9 => {
                out.extend_from_slice(&b[i..i + 2]);
                return Some(out);
            }
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&b[i..i + 2]);
                i += 2;
            }
            _ => {
                let len = u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]) as usize;
                if len < 2 {
                    return None;
                }
                let end = i.checked_add(2 + len)?;
                if end > b.len() {
                    return None;
                }
                if marker != 0xE1 && marker != 0xED {
                    out.extend_from_slice(&b[i..end]);
                }
                i = end;
            }
        }
    }
}

fn strip_png(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..8]);
    let mut i = 8;
    while i < b.len() {
        let len = u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize;
        let end = i.checked_add(12)?.checked_add(len)?;
        if end > b.len() {
            return None;
        }
        let kind = &b[i + 4..i + 8];
        if !matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt") {
            out.extend_from_slice(&b[i..end]);
        }
        i = end;
        if kind == b"IEND" {
            return Some(out);
        }
    }
    None
}

/// Check a record's photo references: names, types, sizes, and that
/// thumbnails and events they name exist. How many a record holds is not
/// checked here but on the step that adds one ([`added_within_limits`]):
/// a merged record may hold more than any one phone added knowingly.
pub(crate) fn check(kind: super::RecordKind, photos: &Attachments, events: &[String], errs: &mut Vec<FieldError>) {
    if photos.is_empty() {
        return;
    }
    if !takes_photos(kind) {
        errs.push(FieldError::new("attachments", "not_allowed", format!("{}不能附照片", kind.label_zh())));
        return;
    }
    for (hash, a) in photos {
        let field = format!("attachments[{}]", super::validate::clip(hash, 64));
        if !valid_hash(hash) {
            errs.push(FieldError::new(&field, "bad_hash", "照片编号格式错误"));
        }
        if PhotoType::from_mime(&a.mime).is_none() {
            errs.push(FieldError::new(&field, "bad_type", "照片只能是JPEG、PNG或HEIC格式"));
        }
        let (max, what) =
            if a.thumb_of.is_some() { (MAX_THUMB_BYTES, "缩略图") } else { (MAX_PHOTO_BYTES, "照片") };
        if a.size <= 0 {
            errs.push(FieldError::new(&field, "bad_size", format!("{what}大小无效：应为1字节到{}", size_zh(max))));
        } else if a.size > max {
            errs.push(FieldError::new(&field, "too_large", format!("每张{what}不能超过{}", size_zh(max))));
        }
        if a.by.is_empty() || a.by.chars().count() > 64 {
            errs.push(FieldError::new(&field, "bad_author", "照片的拍摄人格式错误"));
        }
        if let Some(of) = &a.thumb_of
            && photos.get(of).is_none_or(|p| p.thumb_of.is_some())
        {
            errs.push(FieldError::new(&field, "bad_thumbnail", "缩略图对应的照片不存在"));
        }
        if let Some(e) = &a.event
            && !events.iter().any(|id| id == e)
        {
            errs.push(FieldError::new(&field, "bad_event", "照片对应的处置步骤不存在"));
        }
    }
}

/// The record limits a step that adds photos must keep, judged on the
/// record after the step as its writer saw it (`after`) with the entries
/// it had before (`before`): when the step adds a photo, the record holds
/// at most [`MAX_PHOTOS`]; each thumbnail it adds is its photo's only one.
/// A step that adds nothing passes, whatever the record holds (a merged
/// record over the limit still takes a resolution or a deletion).
pub fn added_within_limits(before: &Attachments, after: &Attachments) -> Result<(), FieldError> {
    let added = || after.iter().filter(|(h, _)| !before.contains_key(*h));
    if added().any(|(_, a)| a.thumb_of.is_none()) && photos_of(after).count() > MAX_PHOTOS {
        return Err(FieldError::new("attachments", "too_many", format!("每条记录最多附{MAX_PHOTOS}张照片")));
    }
    for (_, t) in added() {
        let Some(of) = &t.thumb_of else { continue };
        if after.values().filter(|x| x.thumb_of.as_ref() == Some(of)).count() > 1 {
            return Err(FieldError::new("attachments", "too_many", "每张照片只能有一张缩略图"));
        }
    }
    Ok(())
}

/// A size in words (`8MB`, `64KB`, `100字节`): never rounded down to nothing.
pub fn size_zh(n: i64) -> String {
    if n >= 1024 * 1024 && n % (1024 * 1024) == 0 {
        format!("{}MB", n / (1024 * 1024))
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{}KB", n / 1024)
    } else {
        format!("{n}字节")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_with_exif() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        // APP0 JFIF
        b.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x07, b'J', b'F', b'I', b'F', 0]);
        // APP1 Exif with a "GPS" payload
        let exif = b"Exif\0\0GPS 33.9N 106.3E";
        b.extend_from_slice(&[0xFF, 0xE1]);
        b.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        b.extend_from_slice(exif);
        // SOS and data
        b.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 1, 2, 3, 0xFF, 0xD9]);
        b
    }

    /// The size messages give the real limit: a photo too large is told
    /// 8MB (a thumbnail 64KB), a zero size is invalid, never "上限0KB".
    #[test]
    fn size_messages_give_the_real_limit() {
        let photo = |size: i64, thumb_of: Option<String>| Attachment {
            mime: "image/jpeg".into(),
            size,
            at: 0,
            by: "gm1".into(),
            event: None,
            thumb_of,
        };
        let big = "a".repeat(64);
        let messages = |a: Attachment, hash: &str| {
            let mut errs = Vec::new();
            let photos: Attachments = [(big.clone(), photo(1, None)), (hash.to_owned(), a)].into_iter().collect();
            check(super::super::RecordKind::Hazard, &photos, &[], &mut errs);
            errs.into_iter().map(|e| (e.reason, e.message_zh)).collect::<Vec<_>>()
        };
        let b = "b".repeat(64);
        assert_eq!(
            messages(photo(MAX_PHOTO_BYTES + 1, None), &b),
            [("too_large".to_owned(), "每张照片不能超过8MB".to_owned())]
        );
        assert_eq!(
            messages(photo(MAX_THUMB_BYTES + 1, Some(big.clone())), &b),
            [("too_large".to_owned(), "每张缩略图不能超过64KB".to_owned())]
        );
        assert_eq!(messages(photo(0, None), &b), [("bad_size".to_owned(), "照片大小无效：应为1字节到8MB".to_owned())]);
        assert_eq!(size_zh(0), "0字节");
        assert_eq!(size_zh(600), "600字节");
    }

    #[test]
    fn location_is_stripped_from_a_jpeg_and_nothing_else() {
        let b = jpeg_with_exif();
        assert!(has_metadata(&b));
        let s = strip_metadata(&b).unwrap();
        assert!(!s.windows(3).any(|w| w == b"GPS"));
        assert!(s.windows(4).any(|w| w == b"JFIF"));
        assert!(s.ends_with(&[0xFF, 0xDA, 0x00, 0x02, 1, 2, 3, 0xFF, 0xD9]));
        assert!(!has_metadata(&s));
    }

    #[test]
    fn truncated_or_unknown_bytes_are_not_walked() {
        let b = jpeg_with_exif();
        assert_eq!(strip_metadata(&b[..14]), None);
        assert_eq!(strip_metadata(b"GIF89a"), None);
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0";
        assert_eq!(PhotoType::sniff(heic), Some(PhotoType::Heic));
        assert!(has_metadata(heic));
    }

    #[test]
    fn png_text_and_exif_chunks_are_dropped() {
        let chunk = |kind: &[u8], data: &[u8]| {
            let mut c = (data.len() as u32).to_be_bytes().to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(data);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        };
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.extend(chunk(b"IHDR", &[0; 13]));
        b.extend(chunk(b"eXIf", b"GPS"));
        b.extend(chunk(b"iTXt", b"XML:com.adobe.xmp GPS"));
        b.extend(chunk(b"IDAT", &[9; 5]));
        b.extend(chunk(b"IEND", &[]));
        let s = strip_metadata(&b).unwrap();
        assert!(!s.windows(3).any(|w| w == b"GPS"));
        assert!(s.windows(4).any(|w| w == b"IDAT"));
        assert!(!has_metadata(&s));
    }
}
