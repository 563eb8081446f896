//! People and their phones, managed by the county centre: create a user,
//! set their role and grid, their agency, deactivate or reactivate them,
//! reset their password (which ends their sessions) and issue an
//! enrollment code, shown as text and as a QR code for the phone to scan.
//! Every action goes to the audit log. County staff only.

use std::collections::HashMap;
use std::fmt::Write as _;

use gridsync_core::grid::{GridLevel, GridPath, Role};

use super::html::{esc, names, out, time};
use super::{Ctx, Out, Req, WebError, edit, password};

use crate::accounts::{self, CODE_VALID_HOURS};
use crate::store::{Account, Agency, ServerStore, User};

/// Hours an enrollment code issued on the web stays valid (as the CLI's default).
/// Most users listed on one page.
const LIST_MAX: usize = 300;

fn county_only(ctx: &Ctx) -> Result<(), WebError> {
    if ctx.user.role != Role::CountyStaff {
        return Err(WebError::Forbidden("人员和设备由县综治中心管理".into()));
    }
    Ok(())
}

/// `城关镇 · 王家村 · 一组` for a path, from the tree's names.
pub fn grid_label(names: &HashMap<GridPath, String>, g: &GridPath) -> String {
    if g.level() == GridLevel::County {
        return "全县".into();
    }
    [GridLevel::Township, GridLevel::Village, GridLevel::Group]
        .into_iter()
        .filter(|l| *l <= g.level())
        .map(|l| {
            let a = g.ancestor(l);
            names.get(&a).cloned().unwrap_or_else(|| a.to_string())
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn role_options(selected: Option<Role>) -> String {
    let mut out = String::new();
    for r in Role::ALL {
        let sel = if Some(r) == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{}\"{sel}>{}</option>", r.as_str(), r.label_zh());
    }
    out
}

fn agency_options(selected: Option<Agency>) -> String {
    let mut out = String::from("<option value=\"\">（非县直部门）</option>");
    for a in Agency::ALL {
        let sel = if Some(a) == selected { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{}\"{sel}>{}</option>", a.as_str(), a.label_zh());
    }
    out
}

/// The role, grid and agency a form names, checked against the tree.
fn role_grid_agency(
    s: &dyn ServerStore,
    form: &HashMap<String, String>,
) -> Result<(Role, GridPath, Option<Agency>), WebError> {
    let role: Role = form.get("role").and_then(|r| r.parse().ok()).ok_or_else(|| WebError::Bad("请选择角色".into()))?;
    let grid = accounts::parse_grid(&edit::text(form, "grid", "网格", 64)?)?;
    let agency = match form.get("agency").map(String::as_str).unwrap_or_default() {
        "" => None,
        a => Some(Agency::parse(a).ok_or_else(|| WebError::Bad("未知的县直部门".into()))?),
    };
    let agency = accounts::check_assignment(s, role, &grid, agency)?;
    Ok((role, grid, agency))
}

/// `GET /web/users?q=`: every account (filtered), and the form for a new one.
pub fn list(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    county_only(ctx)?;
    let names = names(s)?;
    let q = r.query("q").filter(|q| q.chars().count() <= 64);
    let all = s.accounts()?;
    let matching: Vec<&Account> = all
        .iter()
        .filter(|a| {
            q.is_none_or(|q| {
                a.user.id.contains(q) || a.user.display_name.contains(q) || grid_label(&names, &a.user.grid).contains(q)
            })
        })
        .collect();
    let mut body = format!(
        "<h2>人员管理</h2><div class=\"card\"><h3>新建用户</h3><form method=\"post\" action=\"/web/users\" id=\"new-user\">{}\
         <div class=\"inline\"><label>账号 <input name=\"id\" id=\"new-id\" maxlength=\"64\" required></label>\
         <label>姓名 <input name=\"name\" id=\"new-name\" maxlength=\"50\" required></label>\
         <label>角色 <select name=\"role\" id=\"new-role\">{}</select></label>\
         <label>网格编码 <input name=\"grid\" id=\"new-grid\" placeholder=\"t01/v03/g2\" size=\"12\"></label>\
         <label>县直部门 <select name=\"agency\" id=\"new-agency\">{}</select></label></div>\
         <label>初始密码（可不填，之后再设置） <input type=\"password\" name=\"password\" id=\"new-password\" autocomplete=\"new-password\"></label>\
         <p class=\"muted\">网格管理员填写到组（t01/v03/g2），网格长和督导员到村（t01/v03），网格总长到乡镇（t01），县级账号留空。</p>\
         <p><button class=\"btn\" type=\"submit\" id=\"create-user\">新建用户</button></p></form></div>",
        ctx.csrf_field(),
        role_options(Some(Role::GridManager)),
        agency_options(None)
    );
    let _ = write!(
        body,
        "<div class=\"card\"><form method=\"get\" action=\"/web/users\" class=\"inline\"><label>查找 <input name=\"q\" value=\"{}\" placeholder=\"账号、姓名或网格名称\"></label> <button class=\"btn alt\" type=\"submit\">查找</button></form>\
         <p class=\"muted\">共{}人{}</p><table id=\"users\"><tr><th>账号</th><th>姓名</th><th>角色</th><th>网格</th><th>状态</th></tr>",
        esc(q.unwrap_or_default()),
        matching.len(),
        if matching.len() > LIST_MAX { format!("，只显示前{LIST_MAX}人，请查找") } else { String::new() }
    );
    for a in matching.iter().take(LIST_MAX) {
        let u = &a.user;
        let state = if a.deactivated_at.is_some() { "<span class=\"tag\">已停用</span>" } else { "正常" };
        let role = match a.agency {
            Some(ag) => format!("{}（{}）", u.role.label_zh(), ag.label_zh()),
            None => u.role.label_zh().to_owned(),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/web/users/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
            esc(&u.display_name),
            esc(&role),
            esc(&grid_label(&names, &u.grid)),
            id = esc(&u.id),
        );
    }
    body.push_str("</table></div>");
    Ok(out(ctx, "人员管理", &body))
}

/// `POST /web/users`: create a user (and set their first password).
pub fn create(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    county_only(ctx)?;
    let form = r.form();
    let id = edit::required(form, "id", "账号", 64)?;
    accounts::check_id(&id)?;
    let name = edit::required(form, "name", "姓名", 50)?;
    let (role, grid, agency) = role_grid_agency(s, form)?;
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    let hash = if password.is_empty() {
        None
    } else {
        password::check_new_for(password, &id).map_err(WebError::Bad)?;
        Some(password::hash(password).map_err(|e| WebError::Store(e.to_string()))?)
    };
    accounts::add_user(s, &User { id: id.clone(), display_name: name, role, grid }, agency)?;
    let now = ctx.now;
    ctx.audit(s, "create_user", &id)?;
    if let Some(h) = hash {
        s.set_web_password(&id, &h, now)?;
        ctx.audit(s, "reset_password", &id)?;
    }
    Ok(Out::Redirect(format!("/web/users/{id}")))
}

fn account_of(s: &dyn ServerStore, id: &str) -> Result<Account, WebError> {
    if id.is_empty() || id.len() > 64 {
        return Err(WebError::NotFound);
    }
    s.account(id)?.ok_or(WebError::NotFound)
}

/// `GET /web/users/{id}?done=`: a user's account, roles, devices and the
/// forms that change them.
pub fn page(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    let done = (r.query("done") == Some("password")).then_some(Done::PasswordReset);
    user_page(s, ctx, r.param("id"), None, done)
}

/// A user's page (and the answer to issuing a code, which shows the code
/// once, with its QR code).
fn user_page(
    s: &dyn ServerStore,
    ctx: &Ctx,
    id: &str,
    code: Option<(&str, &str)>,
    done: Option<Done>,
) -> Result<Out, WebError> {
    county_only(ctx)?;
    let a = account_of(s, id)?;
    let u = &a.user;
    let names = names(s)?;
    let now = ctx.now;
    let state = match a.deactivated_at {
        Some(t) => format!("<span class=\"tag warn\" id=\"state\">已停用</span> {}", time(t)),
        None => "<span class=\"tag\" id=\"state\">正常</span>".into(),
    };
    let has_password = s.web_password(&u.id)?.is_some();
    let mut body = format!(
        "<h2 id=\"title\">{}（{}）</h2><div class=\"card\"><p>角色：<span id=\"role\">{}</span>{} · 网格：<span id=\"grid\">{}</span> · 状态：{state}</p>\
         <p class=\"muted\">网页登录密码：{}</p></div>",
        esc(&u.display_name),
        esc(&u.id),
        esc(u.role.label_zh()),
        a.agency.map(|ag| format!("（{}）", ag.label_zh())).unwrap_or_default(),
        esc(&grid_label(&names, &u.grid)),
        if has_password { "已设置" } else { "未设置" },
    );
    if let Some(done) = done {
        let _ = write!(body, "<p class=\"card ok\" id=\"notice\">{}</p>", done.label_zh());
    }
    let c = ctx.csrf_field();
    if let Some((code, payload)) = code {
        let _ = write!(
            body,
            "<div class=\"card\" id=\"enrollment\"><h3>手机注册码</h3><p class=\"code\" id=\"enroll-code\">{}</p>\
             <div id=\"qr\">{}</div>\
             <p class=\"muted\">在手机应用中扫描二维码，或手动输入注册码和服务器地址（{}）。注册码只能使用一次，{CODE_VALID_HOURS}小时内有效，只显示这一次。</p></div>",
            esc(code),
            qr_svg(payload)?,
            esc(payload
                .split("server=")
                .nth(1)
                .and_then(|r| r.split('&').next())
                .map(url_decode)
                .as_deref()
                .unwrap_or_default()),
        );
    }
    if a.deactivated_at.is_none() {
        let _ = write!(
            body,
            "<div class=\"card\"><h3>手机注册</h3><form method=\"post\" action=\"/web/users/{id}/enroll\">{c}\
             <p><button class=\"btn\" type=\"submit\" id=\"issue-code\">生成注册码</button> <span class=\"muted\">生成一次性注册码，供该用户的手机注册。</span></p></form></div>",
            id = esc(&u.id)
        );
    }
    let _ = write!(
        body,
        "<div class=\"card\"><h3>修改角色和网格</h3><form method=\"post\" action=\"/web/users/{id}/update\">{c}\
         <div class=\"inline\"><label>姓名 <input name=\"name\" id=\"edit-name\" value=\"{}\" maxlength=\"50\"></label>\
         <label>角色 <select name=\"role\" id=\"edit-role\">{}</select></label>\
         <label>网格编码 <input name=\"grid\" id=\"edit-grid\" value=\"{}\" size=\"12\"></label>\
         <label>县直部门 <select name=\"agency\" id=\"edit-agency\">{}</select></label></div>\
         <p class=\"muted\">更改角色或网格后，该用户的手机将被停用并清除本机数据，需要重新注册；网页登录也需重新登录。</p>\
         <p><button class=\"btn\" type=\"submit\" id=\"save-user\">保存</button></p></form></div>",
        esc(&u.display_name),
        role_options(Some(u.role)),
        esc(&u.grid.to_string()),
        agency_options(a.agency),
        id = esc(&u.id)
    );
    let _ = write!(
        body,
        "<div class=\"card\"><h3>重置密码</h3><form method=\"post\" action=\"/web/users/{id}/password\">{c}\
         <label>新密码（至少10个字符，不能是常见密码） <input type=\"password\" name=\"password\" id=\"reset-password\" autocomplete=\"new-password\"></label>\
         <p><button class=\"btn\" type=\"submit\" id=\"do-reset\">重置密码</button> <span class=\"muted\">重置后该用户已登录的网页会话全部结束。</span></p></form></div>",
        id = esc(&u.id)
    );
    if u.id != ctx.user.id {
        let (label, active) =
            if a.deactivated_at.is_some() { ("重新启用账号", "1") } else { ("停用账号", "0") };
        let _ = write!(
            body,
            "<div class=\"card\"><h3>{label}</h3><form method=\"post\" action=\"/web/users/{id}/active\">{c}<input type=\"hidden\" name=\"active\" value=\"{active}\">\
             <p><button class=\"btn\" type=\"submit\" id=\"toggle-active\">{label}</button> <span class=\"muted\">{}</span></p></form></div>",
            if active == "0" {
                "停用后不能登录，手机被停用并清除数据，未使用的注册码作废。"
            } else {
                "重新启用后，手机需用新的注册码注册。"
            },
            id = esc(&u.id)
        );
    }
    // The user's phones.
    let devices: Vec<_> = s.devices()?.into_iter().filter(|d| d.user_id == u.id).collect();
    body.push_str("<div class=\"card\"><h3>手机</h3><table id=\"user-devices\"><tr><th>设备</th><th>注册时间</th><th>最近同步</th><th>状态</th></tr>");
    for d in &devices {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.name),
            time(d.created_at),
            d.last_sync_at.map(time).unwrap_or_else(|| "从未同步".into()),
            if d.revoked_at.is_some() { "已停用" } else { "正常" }
        );
    }
    body.push_str("</table></div>");
    let _ = now;
    Ok(out(ctx, "人员", &body))
}

/// `POST /web/users/{id}/update`: name, role, grid, agency.
pub fn update(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    county_only(ctx)?;
    let (a, form) = (account_of(s, r.param("id"))?, r.form());
    let name = edit::required(form, "name", "姓名", 50)?;
    let (role, grid, agency) = role_grid_agency(s, form)?;
    if a.user.id == ctx.user.id && role != Role::CountyStaff {
        return Err(WebError::Bad("不能更改自己的角色".into()));
    }
    let scope_changed = role != a.user.role || grid != a.user.grid;
    s.update_user(&User { id: a.user.id.clone(), display_name: name, role, grid }, ctx.now)?;
    if agency != a.agency {
        s.set_agency(&a.user.id, agency)?;
    }
    ctx.audit(s, if scope_changed { "change_role_or_grid" } else { "update_user" }, &a.user.id)?;
    Ok(Out::Redirect(format!("/web/users/{}", a.user.id)))
}

/// What the clerk just did on a user's page, said at its top after the
/// redirect (`?done=…`), so they see the step was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// The web password was reset.
    PasswordReset,
}

impl Done {
    fn label_zh(self) -> &'static str {
        match self {
            Done::PasswordReset => "网页登录密码已重置，该用户原有的登录已全部退出。",
        }
    }
}

/// `POST /web/users/{id}/password`: reset the web password; every session
/// of the user ends.
pub fn reset_password(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    county_only(ctx)?;
    let (a, form) = (account_of(s, r.param("id"))?, r.form());
    let pw = form.get("password").map(String::as_str).unwrap_or_default();
    password::check_new_for(pw, &a.user.id).map_err(WebError::Bad)?;
    let hash = password::hash(pw).map_err(|e| WebError::Store(e.to_string()))?;
    s.set_web_password(&a.user.id, &hash, ctx.now)?;
    ctx.audit(s, "reset_password", &a.user.id)?;
    if a.user.id == ctx.user.id {
        // The reset ended this session too.
        return Ok(Out::Redirect("/".into()));
    }
    Ok(Out::Redirect(format!("/web/users/{}?done=password", a.user.id)))
}

/// `POST /web/users/{id}/active`: deactivate (or reactivate) the account.
pub fn set_active(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    county_only(ctx)?;
    let (a, form) = (account_of(s, r.param("id"))?, r.form());
    if a.user.id == ctx.user.id {
        return Err(WebError::Bad("不能停用自己的账号".into()));
    }
    let active = form.get("active").map(String::as_str) == Some("1");
    s.set_active(&a.user.id, active, ctx.now)?;
    ctx.audit(s, if active { "reactivate_user" } else { "deactivate_user" }, &a.user.id)?;
    Ok(Out::Redirect(format!("/web/users/{}", a.user.id)))
}

/// `POST /web/users/{id}/enroll`: a one-time enrollment code, shown once
/// as text and as a QR code whose payload names this server (the address
/// the clerk reached it by: behind a proxy, the proxy's).
pub fn enroll(s: &dyn ServerStore, ctx: &Ctx, r: &Req) -> Result<Out, WebError> {
    county_only(ctx)?;
    let id = r.param("id");
    let a = account_of(s, id)?;
    if a.deactivated_at.is_some() {
        return Err(WebError::Bad("该账号已停用，请先重新启用".into()));
    }
    let code = accounts::issue_enrollment_code(s, &a.user.id, ctx.now, CODE_VALID_HOURS)?;
    ctx.audit(s, "issue_enrollment_code", &a.user.id)?;
    let payload = enrollment_payload(r.origin(), &code);
    user_page(s, ctx, id, Some((&code, &payload)), None)
}

/// What the QR code holds: `gridsync://enroll?server=<url>&code=<code>`,
/// the server's address and the code (percent-encoded).
pub fn enrollment_payload(server_url: &str, code: &str) -> String {
    format!("gridsync://enroll?server={}&code={}", super::html::url_encode(server_url), code)
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An inline SVG QR code of `payload` (markup in the page, not an image
/// the CSP would have to allow).
pub fn qr_svg(payload: &str) -> Result<String, WebError> {
    let code = qrcode::QrCode::new(payload.as_bytes()).map_err(|e| WebError::Store(format!("qr: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(220, 220).build();
    // Inline markup needs no XML declaration.
    Ok(match svg.find("<svg") {
        Some(i) => svg[i..].to_owned(),
        None => svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_names_the_server_and_the_code() {
        let p = enrollment_payload("http://10.0.0.5:8080", "ABCD-EFGH-JKLM");
        assert_eq!(p, "gridsync://enroll?server=http%3A%2F%2F10.0.0.5%3A8080&code=ABCD-EFGH-JKLM");
        assert_eq!(url_decode("http%3A%2F%2F10.0.0.5%3A8080"), "http://10.0.0.5:8080");
        let svg = qr_svg(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path"), "{svg}");
    }
}
