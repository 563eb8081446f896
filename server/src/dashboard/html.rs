//! Page building: an escaping helper, the page frame with its inline CSS
//! (served from the binary, no CDN), and Chinese date formatting.

use std::collections::HashMap;
use std::fmt::Write as _;

use gridsync_core::grid::{GridLevel, GridPath};

use super::{Ctx, Out, WebError};
use crate::reports_files::{self, Cell};
use crate::store::ServerStore;

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Beijing time `YYYY-MM-DD HH:MM` of a ms timestamp.
pub fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| (d + chrono::Duration::hours(8)).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "—".into())
}

const CSS: &str = "
*{box-sizing:border-box}
body{margin:0;font-family:'Noto Sans CJK SC','WenQuanYi Micro Hei','Source Han Sans SC','Microsoft YaHei','PingFang SC',sans-serif;background:#f3f5f7;color:#1d2733;font-size:15px}
header{background:#b3261e;color:#fff;padding:10px 20px;display:flex;align-items:center;gap:18px;flex-wrap:wrap}
header h1{font-size:18px;margin:0 12px 0 0}
header a{color:#fff;text-decoration:none}
header .who{margin-left:auto;font-size:13px}
header form{display:inline;margin:0}
header button{background:transparent;border:1px solid #fff;color:#fff;border-radius:4px;padding:3px 10px;cursor:pointer}
main{max-width:1080px;margin:18px auto;padding:0 16px}
h2{font-size:20px;margin:8px 0 14px}
h3{font-size:16px;margin:18px 0 8px}
.card{background:#fff;border-radius:6px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:14px 18px;margin-bottom:16px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e7eb;padding:7px 9px;text-align:left;vertical-align:top}
th{background:#f0f2f4;font-weight:600}
th.n{text-align:right}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b3261e;font-weight:600}
.ok{color:#1b7f3b}
.tag{display:inline-block;padding:1px 8px;border-radius:10px;background:#eef1f4;font-size:13px}
.tag.warn{background:#fde7e5;color:#b3261e}
.muted{color:#66727f;font-size:13px}
.btn{display:inline-block;background:#b3261e;color:#fff;border:0;border-radius:4px;padding:7px 16px;font-size:15px;cursor:pointer;text-decoration:none}
.btn.alt{background:#37474f}
.login{max-width:380px;margin:70px auto}
.login label{display:block;margin:12px 0 4px}
.login input{width:100%;padding:8px;font-size:15px;border:1px solid #c5ccd3;border-radius:4px}
.msg{background:#fde7e5;color:#8c1d18;padding:8px 12px;border-radius:4px}
ol.timeline{list-style:none;padding:0;margin:0;border-left:3px solid #b3261e}
ol.timeline li{padding:6px 0 10px 14px;position:relative}
ol.timeline li.overruled{color:#8a949e;text-decoration:line-through}
ol.timeline li.overruled .tag{text-decoration:none}
ol.timeline li.conflict strong{color:#b3261e}
form.step{border-top:1px solid #e3e7eb;padding-top:8px;margin-top:8px}
form.step h4{margin:4px 0 6px;font-size:15px}
.card label{display:block;margin:6px 0}
.photos{display:flex;flex-wrap:wrap;gap:10px}.photo{margin:0}.photo img{border-radius:4px;max-height:160px;object-fit:cover}
.card input:not([type=hidden]),.card select,.card textarea{font:inherit;padding:5px 7px;border:1px solid #c5ccd3;border-radius:4px;max-width:100%}
.card textarea{width:100%}
.inline label{display:inline-block;margin-right:12px}
.pair{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:10px}
.choice{flex:1 1 300px;border:1px solid #e3e7eb;border-radius:6px;padding:8px 12px}
.code{font-family:monospace;font-size:26px;letter-spacing:2px}
ol.timeline li:before{content:'';position:absolute;left:-8px;top:11px;width:11px;height:11px;border-radius:50%;background:#b3261e}
";

/// Who is signed in, for the page header.
pub struct Header<'a> {
    /// Display name.
    pub name: &'a str,
    /// Role label.
    pub role: &'a str,
    /// CSRF token for the sign-out form.
    pub csrf: &'a str,
    /// Whether to show the county staff's links.
    pub county: bool,
}

/// A whole page: `title` and already-escaped `body`.
pub fn page(title: &str, header: Option<&Header<'_>>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 4096);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · 两当县网格化管理</title><style>{CSS}</style></head><body><header><h1>两当县网格化管理平台</h1>",
        esc(title)
    );
    if let Some(h) = header {
        out.push_str(
            "<a href=\"/web\">总览</a><a href=\"/web/hazards\" id=\"hazards-link\">隐患</a><a href=\"/web/map\" id=\"map-link\">地图</a><a href=\"/web/disputes\">矛盾纠纷</a><a href=\"/web/four-none\">四无创建</a><a href=\"/web/devices\">设备</a>",
        );
        if h.county {
            out.push_str("<a href=\"/web/users\">人员</a><a href=\"/web/audit\">审计日志</a>");
        }
        let _ = write!(
            out,
            "<span class=\"who\">{}（{}）</span><form method=\"post\" action=\"/signout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"signout\">退出登录</button></form>",
            esc(h.name),
            esc(h.role),
            esc(h.csrf)
        );
    }
    let _ = write!(out, "</header><main>{body}</main></body></html>");
    out
}

/// The link from a record's page to who made each of its changes.
pub fn provenance_link(id: &uuid::Uuid) -> String {
    format!("<p><a class=\"provenance\" href=\"/web/records/{id}/provenance\">修改记录与签名</a></p>")
}

/// A record's photos as a card: each photo's thumbnail (or the photo
/// itself when it has none) linking to the full size, with who took it and
/// when. The images are served by `/web/photos/{hash}`, which checks the
/// viewer's access again and audits views of sensitive records' photos.
pub fn photos_card(photos: &gridsync_core::model::Attachments, who: &dyn Fn(&str) -> String) -> String {
    let mut items = String::new();
    for (hash, a) in gridsync_core::model::photos_of(photos) {
        let thumb = gridsync_core::model::thumbnail_of(photos, hash);
        let _ = write!(
            items,
            "<figure class=\"photo\"><a href=\"/web/photos/{hash}\" id=\"photo-{}\" target=\"_blank\" rel=\"noopener\">\
             <img src=\"/web/photos/{}\" alt=\"现场照片\" loading=\"lazy\" width=\"160\"></a>\
             <figcaption class=\"muted\">{} · {}</figcaption></figure>",
            hash.get(..12).unwrap_or(hash),
            thumb.unwrap_or(hash),
            esc(&who(&a.by)),
            time(a.at),
        );
    }
    if items.is_empty() {
        return String::new();
    }
    format!("<div class=\"card\" id=\"photos\"><h3>现场照片</h3><div class=\"photos\">{items}</div></div>")
}

/// The tree's names by path.
pub fn names(s: &dyn ServerStore) -> Result<HashMap<GridPath, String>, WebError> {
    Ok(s.grid_nodes()?.into_iter().map(|n| (n.path, n.name)).collect())
}

/// A page for the signed-in user: `title` and already-escaped `body`
/// inside the frame with their header.
pub fn out(ctx: &Ctx, title: &str, body: &str) -> Out {
    Out::Html(page(title, Some(&ctx.header()), body))
}

/// The month before the one `now` falls in, `YYYY-MM` (Beijing time).
pub fn last_month(now: i64) -> String {
    use chrono::Datelike;
    let today = gridsync_core::model::beijing_day(now);
    let first = today.with_day(1).unwrap_or(today);
    (first - chrono::Days::new(1)).format("%Y-%m").to_string()
}

/// A link to the village page of the village holding `g`, by its name.
pub fn village_link(names: &HashMap<GridPath, String>, g: &GridPath) -> String {
    let v = g.ancestor(GridLevel::Village);
    let name = names.get(&v).cloned().unwrap_or_else(|| v.to_string());
    match (v.township(), v.village()) {
        (Some(t), Some(vv)) => format!("<a href=\"/web/t/{}/{}\">{}</a>", esc(t), esc(vv), esc(&name)),
        _ => esc(&name),
    }
}

/// Tables as HTML, each in a card with its title (`report-table-{i}`).
pub fn tables_html(tables: &[reports_files::Table]) -> String {
    let mut out = String::new();
    for (i, t) in tables.iter().enumerate() {
        let _ = write!(out, "<div class=\"card\"><h3>{}</h3><table id=\"report-table-{i}\"><tr>", esc(&t.title));
        for h in &t.headers {
            let _ = write!(out, "<th>{}</th>", esc(h));
        }
        out.push_str("</tr>");
        for row in &t.rows {
            out.push_str("<tr>");
            for c in row {
                match c {
                    Cell::Text(s) => {
                        let _ = write!(out, "<td>{}</td>", esc(s));
                    }
                    Cell::Int(n) => {
                        let _ = write!(out, "<td class=\"n\">{n}</td>");
                    }
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</table></div>");
    }
    out
}

/// Percent-encode a query value.
pub fn url_encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(esc("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(time(0), "1970-01-01 08:00");
        assert!(page("<t>", None, "").contains("&lt;t&gt;"));
    }

    #[test]
    fn last_month_is_the_month_before() {
        assert_eq!(last_month(1_700_000_000_000), "2023-10");
    }
}
