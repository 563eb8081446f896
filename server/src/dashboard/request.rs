//! What a dashboard page is given: the signed-in user ([`Ctx`]) and the
//! request's parts ([`Req`]), both read before the page runs, so a page is
//! one plain function of the store, the user and the request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::blobs::BlobStore;
use crate::store::{AuditEntry, ServerStore, User, WebSession};

use super::WebError;
use super::html::{self, esc};
use super::map::TileSource;

/// The signed-in user and their session, and what the server lends a page.
pub struct Ctx {
    /// The user.
    pub user: User,
    /// Their session.
    pub session: WebSession,
    /// Client address, for the audit log.
    pub ip: String,
    /// Now, by the server's clock ([`crate::clock::Clock`]) when the request
    /// came: every page and figure of one request is taken at this instant.
    pub now: i64,
    /// Photo bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// The map's tile source (`--map-tiles`), if one is configured.
    pub tiles: Option<TileSource>,
}

impl Ctx {
    /// The signed-in user as the write rules see them.
    pub fn writer(&self) -> gridsync_core::rules::Writer {
        gridsync_core::rules::Writer {
            user_id: self.user.id.clone(),
            role: self.user.role,
            grid: self.user.grid.clone(),
        }
    }

    /// Append to the audit log as this user.
    pub fn audit(&self, store: &dyn ServerStore, action: &str, target: &str) -> Result<(), WebError> {
        store.append_audit(&AuditEntry {
            seq: 0,
            at: self.now,
            user_id: self.user.id.clone(),
            action: action.into(),
            target: target.into(),
            ip: self.ip.clone(),
        })?;
        Ok(())
    }

    /// Page header.
    pub fn header(&self) -> html::Header<'_> {
        html::Header {
            name: &self.user.display_name,
            role: self.user.role.label_zh(),
            csrf: &self.session.csrf,
            county: self.user.role == gridsync_core::grid::Role::CountyStaff,
        }
    }

    /// The hidden field every form of this session carries.
    pub fn csrf_field(&self) -> String {
        format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&self.session.csrf))
    }
}

/// A request's parts, as a page reads them.
#[derive(Debug, Default)]
pub struct Req {
    /// Path parameters by name (`{t}`, `{id}`).
    pub(super) params: HashMap<String, String>,
    /// The query string.
    pub(super) query: HashMap<String, String>,
    /// A POST form's fields (the last value of a repeated name).
    pub(super) form: HashMap<String, String>,
    /// A POST form's fields in order, repeated names kept.
    pub(super) pairs: Vec<(String, String)>,
    /// Files of a multipart form, by field name.
    pub(super) files: Vec<(String, Vec<u8>)>,
    /// `scheme://host` as the browser reached the server (behind a proxy,
    /// the proxy's).
    pub(super) origin: String,
}

impl Req {
    /// A path parameter (the route names it, so it is always there).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map_or("", String::as_str)
    }

    /// A query parameter, trimmed; `None` when absent or empty.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The whole query string as a map.
    pub fn query_map(&self) -> &HashMap<String, String> {
        &self.query
    }

    /// The POST form's fields.
    pub fn form(&self) -> &HashMap<String, String> {
        &self.form
    }

    /// The POST form's fields in order, repeated names kept (checkboxes).
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The bytes of an uploaded file field.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.iter().find(|(n, _)| n == name).map(|(_, b)| b.as_slice())
    }

    /// `scheme://host` of the server as the browser reached it.
    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// A dashboard page: a plain function of the store, the signed-in user and
/// the request, run on the blocking pool.
pub type Page = fn(&dyn ServerStore, &Ctx, &Req) -> Result<super::Out, WebError>;

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The field's name.
    pub name: String,
    /// Whether it is a file (its header names a `filename`).
    pub file: bool,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// The parts of a `multipart/form-data` body: enough for the upload form
/// (a CSRF field and one file), at most 16. `None` if it is not one.
pub fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 200)?;
    let delim = format!("--{boundary}").into_bytes();
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    };
    let mut parts = Vec::new();
    let mut at = find(body, &delim, 0)? + delim.len();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(parts);
        }
        let head_start = at + 2;
        let head_end = find(body, b"\r\n\r\n", head_start)?;
        let head = std::str::from_utf8(body.get(head_start..head_end)?).ok()?;
        let disposition = head.split("\r\n").find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"))?;
        let mut name = None;
        let mut file = false;
        for p in disposition.split(';').map(str::trim) {
            if let Some(n) = p.strip_prefix("name=") {
                name = Some(n.trim_matches('"').to_owned());
            }
            file |= p.starts_with("filename=");
        }
        let name = name?;
        let data_start = head_end + 4;
        let mut next_delim = b"\r\n".to_vec();
        next_delim.extend_from_slice(&delim);
        let data_end = find(body, &next_delim, data_start)?;
        parts.push(Part { name, file, bytes: body.get(data_start..data_end)?.to_vec() });
        at = data_end + next_delim.len();
        if parts.len() > 16 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_give_their_parts() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\nabc\r\n--XX\r\nContent-Disposition: form-data; name=\"csv\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\nvillage,year\r\nt01/v01,2026\r\n\r\n--XX--\r\n";
        let parts = multipart("multipart/form-data; boundary=XX", body).unwrap();
        assert_eq!(parts[0], Part { name: "csrf".into(), file: false, bytes: b"abc".to_vec() });
        assert_eq!((parts[1].name.as_str(), parts[1].file), ("csv", true));
        assert_eq!(parts[1].bytes, b"village,year\r\nt01/v01,2026\r\n".to_vec());
        assert!(multipart("text/plain", body).is_none());
        assert!(multipart("multipart/form-data; boundary=XX", b"--XX\r\nbroken").is_none());
        assert!(multipart("multipart/form-data; boundary=XX", b"").is_none());
    }
}

/// A URL-encoded form body as the dashboard reads it: at most
/// [`super::MAX_FORM_FIELDS`] fields (more is refused, in Chinese, before
/// any is decoded), then `serde_urlencoded`'s pairs in order.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, WebError> {
    if body.split(|&b| b == b'&').count() > super::MAX_FORM_FIELDS {
        return Err(WebError::TooLarge(format!("表单字段过多（上限{}项），请分次提交", super::MAX_FORM_FIELDS)));
    }
    serde_urlencoded::from_bytes(body).map_err(|_| WebError::Bad("表单格式错误".into()))
}

#[cfg(test)]
mod form_tests {
    use super::*;

    #[test]
    fn a_form_of_too_many_fields_is_refused_before_it_is_decoded() {
        let at_limit = vec!["a=1"; super::super::MAX_FORM_FIELDS].join("&");
        assert_eq!(form_pairs(at_limit.as_bytes()).unwrap().len(), super::super::MAX_FORM_FIELDS);
        let past = format!("{at_limit}&b=2");
        match form_pairs(past.as_bytes()) {
            Err(WebError::TooLarge(m)) => assert_eq!(m, "表单字段过多（上限2000项），请分次提交"),
            other => panic!("{other:?}"),
        }
    }
}
