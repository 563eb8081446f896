//! Lists on the dashboard: records loaded from the database a page at a
//! time with their total, or whole when a set is small by nature (never
//! cut short silently), and the pager every list shows.

use std::fmt::Write as _;

use gridsync_core::grid::GridPath;
use gridsync_core::model::{Record, RecordKind};

use super::WebError;
use super::html::esc;
use crate::store::{RecordView, ServerStore, ViewQuery};

/// Rows on one page of a list.
pub const PAGE_ROWS: u32 = 100;

/// Most records a page reads whole for a set that is small by nature (a
/// village's meetings, a township's open escalations): beyond it the page
/// is refused with a message, never drawn from part of the records.
const MAX_WHOLE: u32 = 20_000;

/// Every live record of a kind under a node, parsed. A set larger than a
/// page can hold is an error, not a silently shorter list.
pub fn load(
    s: &dyn ServerStore,
    under: &GridPath,
    kind: RecordKind,
    sensitive: bool,
) -> Result<Vec<(RecordView, Record)>, WebError> {
    load_where(s, ViewQuery { under: Some(under.clone()), kind: Some(kind), sensitive, ..Default::default() })
}

/// Every live record `q` selects, parsed (see [`load`]).
pub fn load_where(s: &dyn ServerStore, q: ViewQuery) -> Result<Vec<(RecordView, Record)>, WebError> {
    let views = s.records(&ViewQuery { live: true, limit: Some(MAX_WHOLE + 1), offset: 0, ..q })?;
    if views.len() > MAX_WHOLE as usize {
        return Err(WebError::Bad(format!("该范围内记录超过{MAX_WHOLE}条，请缩小范围后查看")));
    }
    Ok(parsed_views(views))
}

/// Records as read, parsed; deleted ones left out.
pub fn parsed_views(views: Vec<RecordView>) -> Vec<(RecordView, Record)> {
    views.into_iter().filter(|v| !v.deleted).filter_map(|v| Record::from_json(&v.json).ok().map(|r| (v, r))).collect()
}

/// One page (1-based) of the live records `q` selects, parsed, and how many
/// there are in all, counted in the database.
pub fn load_page(s: &dyn ServerStore, q: ViewQuery, page: u32) -> Result<(Vec<(RecordView, Record)>, u64), WebError> {
    let q = ViewQuery { live: true, ..q };
    let total = s.count_records(&q)?;
    let offset = page.saturating_sub(1).saturating_mul(PAGE_ROWS);
    let views = s.records(&ViewQuery { limit: Some(PAGE_ROWS), offset, ..q })?;
    Ok((parsed_views(views), total))
}

/// The page number a list was asked for (`?page=`, 1-based).
pub fn page_number(q: Option<&str>) -> Result<u32, WebError> {
    match q.map(str::trim).filter(|p| !p.is_empty()) {
        None => Ok(1),
        Some(p) => {
            p.parse::<u32>().ok().filter(|p| (1..=100_000).contains(p)).ok_or_else(|| WebError::Bad("页码无效".into()))
        }
    }
}

/// "共 N 条" (the total in the element `id`) and links to the pages around
/// `page`, for a list at `base` (a path with its query, without `page`).
pub fn pager(id: &str, base: &str, page: u32, total: u64) -> String {
    let pages = total.div_ceil(u64::from(PAGE_ROWS)).max(1);
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut out = format!(
        "<p class=\"muted pager\" id=\"{id}-pager\">共 <span id=\"{id}\">{total}</span> 条 · 第 {page}/{pages} 页"
    );
    if page > 1 {
        let _ = write!(out, " · <a href=\"{}{sep}page={}\" rel=\"prev\">上一页</a>", esc(base), page - 1);
    }
    if u64::from(page) < pages {
        let _ = write!(out, " · <a href=\"{}{sep}page={}\" rel=\"next\">下一页</a>", esc(base), page + 1);
    }
    out.push_str("</p>");
    out
}

/// "共 N 条", and when the first page does not hold them all, a link to
/// the whole list.
pub fn shown_of(id: &str, shown: usize, total: u64, all: &str) -> String {
    let more = if (shown as u64) < total {
        format!("，这里显示最近的{shown}条 · <a href=\"{}\">查看全部</a>", esc(all))
    } else {
        String::new()
    };
    format!("<p class=\"muted\">共 <span id=\"{id}-total\">{total}</span> 条{more}</p>")
}
