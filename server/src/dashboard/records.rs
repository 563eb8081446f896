//! A record's own page where the record kind has no richer one: a visit
//! (三查) with its photos, a household ledger (sensitive: every view
//! audited), and a photo itself.

use std::collections::HashMap;
use std::fmt::Write as _;

use gridsync_core::model::{RecordBody, RecordKind};

use super::guard::readable;
use super::html::{esc, names, out, time, village_link};
use super::{Ctx, Out, Req, WebError};
use crate::store::ServerStore;

fn mask_id(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 10 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 10))
}

/// `GET /web/visits/{id}`: one visit (三查) with its photos. A visit to a
/// key person is sensitive: read only by the roles that work the grid, and
/// every view (and every refusal) is audited before anything is shown.
pub fn visit(s: &dyn ServerStore, ctx: &Ctx, req: &Req) -> Result<Out, WebError> {
    let (v, r) = readable(s, ctx, req.param("id"), Some(RecordKind::Visit), "view_visit")?;
    let RecordBody::Visit(visit) = &r.body else { return Err(WebError::NotFound) };
    let names = names(s)?;
    let users: HashMap<String, String> = s.users()?.into_iter().map(|u| (u.id, u.display_name)).collect();
    let who = |id: &str| users.get(id).cloned().unwrap_or_else(|| id.to_owned());
    let body = format!(
        "<h2 id=\"title\">{}</h2><div class=\"card\"><p>{} · {} · 走访对象：{}</p><p>{}</p>\
         <p class=\"muted\">{} 于 {} 走访{}</p>{}</div>{}{}",
        esc(&v.title),
        village_link(&names, &v.grid),
        esc(visit.target.label_zh()),
        esc(&visit.subject),
        esc(if visit.findings.is_empty() { "（未填写走访情况）" } else { &visit.findings }),
        esc(&who(&r.author)),
        time(visit.visited_at),
        if visit.follow_up_needed { " · <span class=\"tag warn\">需回访</span>" } else { "" },
        if v.sensitive {
            "<p class=\"muted\">涉及重点人群，本次查看已记入审计日志。</p>"
        } else {
            ""
        },
        super::html::photos_card(&r.attachments, &who),
        super::html::provenance_link(&v.id),
    );
    Ok(out(ctx, &v.title, &body))
}

/// `GET /web/households/{id}`: a household ledger, sensitive: every view
/// (and every refusal) is audited before anything is shown.
pub fn household(s: &dyn ServerStore, ctx: &Ctx, req: &Req) -> Result<Out, WebError> {
    let (v, r) = readable(s, ctx, req.param("id"), Some(RecordKind::Household), "view_household")?;
    let RecordBody::Household(h) = &r.body else { return Err(WebError::NotFound) };
    let names = names(s)?;
    let mut body = format!(
        "<h2 id=\"title\">户籍台账：{}</h2><div class=\"card\"><p>{} · {}</p><p>住址：{}</p><p>十户联防：{}</p>\
         <p class=\"muted\">本次查看已记入审计日志。</p></div>",
        esc(&h.head_name),
        village_link(&names, &v.grid),
        esc(names.get(&v.grid).map(String::as_str).unwrap_or_default()),
        esc(&h.address),
        esc(if h.ten_household_group.is_empty() { "—" } else { &h.ten_household_group })
    );
    body.push_str("<div class=\"card\"><h3>家庭成员</h3><table id=\"members\"><tr><th>姓名</th><th>关系</th><th>人员类别</th><th>身份证号</th><th>监护人</th></tr>");
    for m in h.members.values() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&m.name),
            esc(&m.relation),
            esc(m.category.label_zh()),
            esc(&mask_id(&m.id_number)),
            esc(m.guardian.as_deref().unwrap_or("—"))
        );
    }
    body.push_str("</table></div>");
    for (title, assets) in [("农机具", &h.machinery), ("车辆", &h.vehicles), ("区域设施", &h.facilities)] {
        let _ = write!(body, "<div class=\"card\"><h3>{title}</h3><table><tr><th>名称</th><th>型号/牌照</th></tr>");
        for a in assets.values() {
            let _ = write!(body, "<tr><td>{}</td><td>{}</td></tr>", esc(&a.description), esc(&a.identifier));
        }
        body.push_str("</table></div>");
    }
    Ok(out(ctx, "户籍台账", &body))
}

/// `GET /web/photos/{hash}`: a photo for the signed-in user, if they may
/// read a record that holds it as its owner's ([`crate::photos::access`]);
/// a view through a sensitive record goes in the audit log.
pub fn photo(s: &dyn ServerStore, ctx: &Ctx, req: &Req) -> Result<Out, WebError> {
    use crate::photos::{Fetched, PhotoAccess};
    let hash = req.param("hash");
    if !gridsync_core::model::valid_hash(hash) {
        return Err(WebError::NotFound);
    }
    match crate::photos::fetch(s, ctx.blobs.as_ref(), &ctx.user, hash)? {
        Fetched::Photo(bytes, mime, sensitive, record) => {
            if sensitive {
                ctx.audit(s, "view_photo", &format!("{record}/{hash}"))?;
            }
            Ok(Out::Photo { bytes, mime, sensitive })
        }
        Fetched::Refused(PhotoAccess::Forbidden) => {
            Err(WebError::Forbidden("无权查看这张照片：它所属的记录不在您的查看范围内".into()))
        }
        Fetched::Refused(_) | Fetched::NotUploaded => Err(WebError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_masked() {
        assert_eq!(mask_id("62122519800101123X"), "621225********123X");
        assert_eq!(mask_id("123"), "***");
    }
}
