//! The county's administration pages: the devices of the people in the
//! user's scope (with revocation for county staff) and the audit log.

use std::collections::HashMap;
use std::fmt::Write as _;

use gridsync_core::grid::Role;

use super::guard::visible;
use super::html::{esc, names, out, time, url_encode};
use super::{Ctx, Out, Req, WebError};
use crate::store::{AuditQuery, ServerStore};

/// `GET /web/devices`: devices of the people in the user's scope.
pub fn devices(s: &dyn ServerStore, ctx: &Ctx, _: &Req) -> Result<Out, WebError> {
    let scope = visible(&ctx.user, &ctx.user.scope())?;
    let users: HashMap<String, crate::store::User> =
        s.users()?.into_iter().filter(|u| scope.contains(&u.grid)).map(|u| (u.id.clone(), u)).collect();
    let names = names(s)?;
    let now = ctx.now;
    let admin = ctx.user.role == Role::CountyStaff;
    let mut body = String::from(
        "<h2>设备同步情况</h2><div class=\"card\"><table id=\"devices\"><tr><th>设备</th><th>使用人</th><th>网格</th><th>最近同步</th><th>状态</th>",
    );
    if admin {
        body.push_str("<th></th>");
    }
    body.push_str("</tr>");
    for d in s.devices()?.into_iter().filter(|d| users.contains_key(&d.user_id)) {
        let u = &users[&d.user_id];
        // Stale only after a first sync and then silence past the same
        // threshold as the sync-health report: a phone enrolled this
        // morning that has not synced yet is new, not stale.
        let days = i64::from(crate::reports::DEFAULT_SYNC_DAYS);
        let stale = d.last_sync_at.is_some_and(|t| now - t >= days * 86_400_000);
        let last = d.last_sync_at.map(time).unwrap_or_else(|| "尚未同步".into());
        let state = if d.revoked_at.is_some() {
            "<span class=\"tag\">已停用</span>".to_owned()
        } else if stale {
            format!("<span class=\"tag warn\">超过{days}天未同步</span>")
        } else if d.last_sync_at.is_none() {
            "<span class=\"tag\">已注册，尚未同步</span>".to_owned()
        } else {
            "<span class=\"tag\">正常</span>".to_owned()
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}（{}）</td><td>{}</td><td>{}</td><td>{state}</td>",
            esc(&d.name),
            esc(&u.display_name),
            esc(u.role.label_zh()),
            esc(&super::people::grid_label(&names, &u.grid)),
            esc(&last)
        );
        if admin {
            if d.revoked_at.is_none() {
                let _ = write!(
                    body,
                    "<td><form method=\"post\" action=\"/web/devices/{}/revoke\">{}\
                     <button class=\"btn\" type=\"submit\">停用</button></form></td>",
                    esc(&d.id),
                    ctx.csrf_field()
                );
            } else {
                body.push_str("<td></td>");
            }
        }
        body.push_str("</tr>");
    }
    body.push_str("</table></div>");
    Ok(out(ctx, "设备", &body))
}

/// `POST /web/devices/{id}/revoke`: county staff only.
pub fn revoke_device(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let id = r.param("id");
    if ctx.user.role != Role::CountyStaff {
        return Err(WebError::Forbidden("只有县综治中心管理员可以停用设备".into()));
    }
    if id.is_empty() || id.len() > 128 {
        return Err(WebError::NotFound);
    }
    if !s.revoke_device(id, ctx.now)? {
        return Err(WebError::NotFound);
    }
    ctx.audit(s, "revoke_device", id)?;
    Ok(Out::Redirect("/web/devices".into()))
}

pub(super) fn action_zh(a: &str) -> &str {
    match a {
        "sign_in" => "登录",
        "sign_in_failed" => "登录失败",
        "sign_in_locked" => "登录被锁定",
        "sign_out" => "退出登录",
        "view_household" => "查看户籍台账",
        "view_household_refused" => "查看户籍台账被拒绝",
        "list_households" => "查看户籍台账列表",
        "download_report" => "下载月度报告",
        "submit_report" => "提交月度报告",
        "revoke_device" => "停用设备",
        "sign_in_deactivated" => "已停用账号尝试登录",
        "create_user" => "新建用户",
        "update_user" => "修改用户",
        "change_role_or_grid" => "更改角色或网格",
        "reset_password" => "重置密码",
        "deactivate_user" => "停用账号",
        "reactivate_user" => "重新启用账号",
        "issue_enrollment_code" => "生成注册码",
        "save_report_draft" => "保存月度报告草稿",
        "return_report" => "退回月度报告",
        "enter_case_counts" => "录入案件数",
        other => other,
    }
}

/// Audit lines on one page.
const AUDIT_PAGE: u32 = 100;

/// `GET /web/audit?user=&action=&target=&from=YYYY-MM-DD&until=YYYY-MM-DD&before=SEQ`:
/// county staff only; newest first, a page at a time, filtered.
pub fn audit(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let q = r.query_map();
    if ctx.user.role != Role::CountyStaff {
        return Err(WebError::Forbidden("审计日志仅供县综治中心管理员查看".into()));
    }
    let field = |k: &str| q.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty() && v.chars().count() <= 128);
    let day = |k: &str| -> Result<Option<i64>, WebError> {
        match field(k) {
            None => Ok(None),
            Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map(|d| Some(gridsync_core::model::beijing_midnight_ms(d)))
                .map_err(|_| WebError::Bad(format!("日期“{}”格式应为YYYY-MM-DD", esc(&d)))),
        }
    };
    let until = day("until")?.map(|t| t + 86_400_000);
    let before_seq = match field("before") {
        None => None,
        Some(b) => Some(b.parse::<i64>().map_err(|_| WebError::Bad("翻页位置无效".into()))?),
    };
    let query = AuditQuery {
        user: field("user"),
        action: field("action"),
        target: field("target"),
        from: day("from")?,
        until,
        before_seq,
        limit: AUDIT_PAGE,
    };
    let lines = s.audit_log(&query)?;
    let value = |k: &str| esc(&field(k).unwrap_or_default());
    let mut body = String::from("<h2>审计日志</h2><div class=\"card\">");
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/web/audit\" id=\"audit-filter\">\
         <label>账号 <input name=\"user\" value=\"{}\"></label> \
         <label>操作 <input name=\"action\" value=\"{}\" placeholder=\"sign_in_failed\"></label> \
         <label>对象 <input name=\"target\" value=\"{}\"></label> \
         <label>从 <input name=\"from\" value=\"{}\" placeholder=\"2026-12-01\"></label> \
         <label>到 <input name=\"until\" value=\"{}\" placeholder=\"2026-12-31\"></label> \
         <button class=\"btn\" type=\"submit\">筛选</button></form>\
         <p class=\"muted\">只增不改；每页{AUDIT_PAGE}条，最新的在前。</p>\
         <table id=\"audit\"><tr><th>时间</th><th>账号</th><th>操作</th><th>对象</th><th>来源IP</th></tr>",
        value("user"),
        value("action"),
        value("target"),
        value("from"),
        value("until"),
    );
    for e in &lines {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td data-action=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
            time(e.at),
            esc(&e.user_id),
            esc(&e.action),
            esc(action_zh(&e.action)),
            esc(&e.target),
            esc(&e.ip)
        );
    }
    body.push_str("</table>");
    if lines.len() == AUDIT_PAGE as usize
        && let Some(last) = lines.last()
    {
        let mut next: Vec<String> = ["user", "action", "target", "from", "until"]
            .iter()
            .filter_map(|k| field(k).map(|v| format!("{k}={}", url_encode(&v))))
            .collect();
        next.push(format!("before={}", last.seq));
        let _ = write!(body, "<p><a id=\"older\" href=\"/web/audit?{}\">更早的记录</a></p>", esc(&next.join("&")));
    }
    body.push_str("</div>");
    Ok(out(ctx, "审计日志", &body))
}
