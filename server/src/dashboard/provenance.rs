//! The provenance page of a record (`/web/records/{id}/provenance`): every
//! change, the device and person that signed it, and whether the signature
//! verifies; and its export (`.../provenance.json`) for a court or an
//! inspection, verifiable without this server (`docs/provenance.md`).

use std::collections::HashMap;

use gridsync_core::model::RecordKind;

use super::guard::readable_even_deleted;
use super::html::{esc, out, time};
use super::{Ctx, Out, Req, WebError};
use crate::provenance::{Verification, export, record_provenance};
use crate::store::{RecordView, ServerStore};

/// Where a record's own page is, by kind.
fn record_link(v: &RecordView) -> Option<String> {
    let base = match v.kind {
        RecordKind::Hazard => "/web/hazards",
        RecordKind::Dispute => "/web/disputes",
        RecordKind::Visit => "/web/visits",
        RecordKind::Household => "/web/households",
        _ => return None,
    };
    Some(format!("{base}/{}", v.id))
}

/// `GET /web/records/{id}/provenance`.
pub fn page(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (v, _) = readable_even_deleted(s, ctx, r.param("id"), "view_provenance")?;
    let id = v.id;
    let rows = record_provenance(s, id)?;
    let users: HashMap<String, String> = s.users()?.into_iter().map(|u| (u.id, u.display_name)).collect();
    let who = |id: &str| users.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let valid = rows.iter().filter(|r| r.verification == Verification::Valid).count();
    let mut table = String::from(
        "<table id=\"provenance\"><tr><th>序号</th><th>时间（手机时钟）</th><th>人员</th><th>设备</th>\
         <th>内容</th><th>签名</th></tr>",
    );
    for (i, r) in rows.iter().enumerate() {
        let device = match (&r.device_name, r.device_revoked_at) {
            (Some(n), Some(at)) => format!("{}<br><span class=\"muted\">已于{}停用</span>", esc(n), time(at)),
            (Some(n), None) => esc(n),
            (None, _) if r.device_id.starts_with("web:") => "网页".into(),
            (None, _) => "未知设备".into(),
        };
        let what = if i == 0 {
            "新建记录".to_owned()
        } else if r.events.is_empty() {
            "修改内容".to_owned()
        } else {
            format!("新增处理步骤 {} 条", r.events.len())
        };
        let class = match r.verification {
            Verification::Valid => "tag ok",
            Verification::Invalid => "tag warn",
            _ => "tag",
        };
        table.push_str(&format!(
            "<tr class=\"change\" data-hash=\"{}\" data-verification=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td><span class=\"{class}\">{}</span><br><code title=\"修改编号\">{}</code></td></tr>",
            esc(&r.hash),
            serde_json::to_value(r.verification).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            i + 1,
            time(r.time),
            esc(&who(&r.user_id)),
            device,
            what,
            r.verification.label_zh(),
            esc(&r.hash[..16]),
        ));
    }
    table.push_str("</table>");
    let back = record_link(&v).map(|l| format!("<p><a href=\"{l}\">返回记录</a></p>")).unwrap_or_default();
    let body = format!(
        "<h2 id=\"title\">修改记录与签名：{}</h2><div class=\"card\"><p>共 {} 次修改，其中 {} 次设备签名有效。\
         每次修改都由做出修改的手机用其密钥签名；签名覆盖记录编号、设备编号和修改内容的哈希，\
         改动任何一个字节都会使签名失效。</p>\
         <p><a id=\"export\" href=\"/web/records/{}/provenance.json\">导出（供司法或检查核验）</a></p></div>\
         <div class=\"card\">{table}</div>{back}",
        esc(&v.title),
        rows.len(),
        valid,
        v.id,
    );
    Ok(out(ctx, &format!("修改记录与签名：{}", v.title), &body))
}

/// `GET /web/records/{id}/provenance.json`: the export file.
pub fn download(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let (v, _) = readable_even_deleted(s, ctx, r.param("id"), "export_provenance")?;
    let id = v.id;
    // An export leaves the server: it is audited whatever the record.
    if !v.sensitive {
        ctx.audit(s, "export_provenance", &id.to_string())?;
    }
    let doc = export(s, id, ctx.now)?.ok_or(WebError::NotFound)?;
    let bytes = serde_json::to_vec_pretty(&doc).map_err(|e| WebError::Store(e.to_string()))?;
    Ok(Out::File { bytes, ctype: "application/json", name: format!("provenance-{id}.json") })
}
