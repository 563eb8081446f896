//! Record lists a page at a time by a stable cursor, with counts.
//!
//! Lists are newest first (when the thing happened, then id). A page's
//! `next` names its last row, and the next page starts after it, so
//! records that arrive from a sync between two pages do not shift rows
//! from one page into the next as offsets would.

use super::*;
use crate::model::{RecordKind, RecordStatus};
use crate::store::ListFilter;

/// Largest page.
pub const MAX_PAGE: u32 = 1000;

/// What to list. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RecordQuery {
    /// Only this kind.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub kind: Option<RecordKind>,
    /// Only this status.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub status: Option<RecordStatus>,
    /// Only at or below this grid path.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub grid: Option<String>,
    /// Occurred at or after, ms.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub from_ms: Option<i64>,
    /// Occurred before, ms.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub until_ms: Option<i64>,
    /// Name or title search (household heads and members, titles).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub search: Option<String>,
    /// Include deleted records.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub include_deleted: bool,
    /// Page size (default 50, at most 1,000).
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub limit: Option<u32>,
    /// The previous page's `next`, for the page after it.
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub after: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RecordPage {
    /// The rows.
    pub items: Vec<RecordLine>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
    /// How many records match the query in all (every page together).
    pub total: u64,
}

/// A cursor as text: `<occurred_at>~<id>`.
fn encode_cursor(at: i64, id: Uuid) -> String {
    format!("{at}~{id}")
}

fn decode_cursor(s: &str) -> Result<(i64, Uuid), ApiError> {
    let bad = || ApiError::invalid("after", "bad_cursor", "分页位置无效，请从第一页重新加载");
    let (at, id) = s.split_once('~').ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, Uuid::parse_str(id).map_err(|_| bad())?))
}

impl RecordQuery {
    fn filter(&self) -> Result<ListFilter, ApiError> {
        Ok(ListFilter {
            kind: self.kind,
            status: self.status.map(|s| s.as_str().to_owned()),
            grid: self.grid.as_deref().map(|g| parse_grid("grid", g)).transpose()?,
            from: self.from_ms,
            until: self.until_ms,
            search: self.search.clone(),
            include_deleted: self.include_deleted,
            limit: None,
            offset: None,
            after: self.after.as_deref().map(decode_cursor).transpose()?,
        })
    }
}

impl Phone {
    /// One page of the records matching `q`, newest first.
    pub fn list_records(&self, q: &RecordQuery) -> Result<RecordPage, ApiError> {
        let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
        let mut filter = q.filter()?;
        let store = self.store();
        let total = store.count_matching(&filter)?;
        // One row more than asked says whether another page follows.
        filter.limit = Some(limit + 1);
        let mut rows = store.list(&filter)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(|r| encode_cursor(r.occurred_at, r.id)) } else { None };
        let items = rows.into_iter().map(|s| RecordLine::from_summary(s, &store)).collect::<Result<_, _>>()?;
        Ok(RecordPage { items, next, total })
    }

    /// How many records match `q` (its paging ignored).
    pub fn count_matching(&self, q: &RecordQuery) -> Result<u64, ApiError> {
        Ok(self.store().count_matching(&q.filter()?)?)
    }
}
