//! Field checks shared by every kind: lengths, names, id sets, GPS points,
//! histories, and the PRC resident ID number.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::FieldError;
use crate::events::Event;

use super::GeoPoint;

/// At most `n` characters of `s`, for quoting hostile input in messages.
pub(crate) fn clip(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub(crate) fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

pub(crate) fn date_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| (d + chrono::Duration::hours(8)).format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// A required text: not empty after trimming, at most `max` characters.
pub(crate) fn req(errs: &mut Vec<FieldError>, field: &str, value: &str, label: &str, max: usize) {
    if value.trim().is_empty() {
        errs.push(FieldError::new(field, "required", format!("请填写{label}")));
    } else if value.chars().count() > max {
        errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}个字")));
    }
}

pub(crate) fn check_long(field: &str, value: &str, label: &str, max: usize, errs: &mut Vec<FieldError>) {
    if value.chars().count() > max {
        errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}个字")));
    }
}

pub(crate) fn check_people(field: &str, people: &[String], label: &str, max: usize, errs: &mut Vec<FieldError>) {
    if people.len() > max {
        errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}人")));
    }
    let blank_allowed = field == "parties";
    if people.iter().any(|p| p.chars().count() > 50 || (!blank_allowed && p.trim().is_empty())) {
        errs.push(FieldError::new(field, "bad_name", format!("{label}姓名不能为空，且不超过50个字")));
    }
}

/// A set of record ids (`{id: true}`): each a UUID, at most `max`.
pub(crate) fn check_id_set(
    field: &str,
    ids: &BTreeMap<String, bool>,
    label: &str,
    max: usize,
    errs: &mut Vec<FieldError>,
) {
    if ids.len() > max {
        errs.push(FieldError::new(field, "too_long", format!("{label}不能超过{max}个")));
    }
    if ids.keys().any(|id| Uuid::parse_str(id).is_err()) {
        errs.push(FieldError::new(field, "bad_uuid", format!("{label}编号格式错误")));
    }
}

/// A key of a keyed collection (member id, machine id): 1 to 64 characters.
pub(crate) fn check_key(field: &str, key: &str, errs: &mut Vec<FieldError>) {
    if key.is_empty() || key.chars().count() > 64 {
        errs.push(FieldError::new(field, "bad_key", "登记项编号不能为空，且不超过64个字符"));
    }
}

/// Named counts: at most 200, names of 1 to 64 characters, none negative.
pub(crate) fn check_figures(field: &str, figures: &BTreeMap<String, i64>, errs: &mut Vec<FieldError>) {
    if figures.len() > 200 {
        errs.push(FieldError::new(field, "too_long", "统计项不能超过200个"));
    }
    if figures.keys().any(|k| k.is_empty() || k.chars().count() > 64) {
        errs.push(FieldError::new(field, "bad_key", "统计项名称不能为空，且不超过64个字符"));
    }
    if figures.values().any(|n| *n < 0) {
        errs.push(FieldError::new(field, "negative", "统计数不能为负数"));
    }
}

pub(crate) fn check_point(field: &str, p: &GeoPoint, errs: &mut Vec<FieldError>) {
    if !(-90.0..=90.0).contains(&p.lat) || !(-180.0..=180.0).contains(&p.lon) {
        errs.push(FieldError::new(field, "out_of_range", "GPS坐标超出范围"));
    }
}

pub(crate) fn check_events<A: Serialize>(events: &[Event<A>], errs: &mut Vec<FieldError>) {
    let mut ids = BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        if !ids.insert(e.id.as_str()) {
            errs.push(FieldError::new(format!("events[{i}].id"), "duplicate", "事件编号重复"));
        }
        if Uuid::parse_str(&e.id).is_err() {
            errs.push(FieldError::new(format!("events[{i}].id"), "bad_uuid", "事件编号格式错误"));
        }
        if e.by.trim().is_empty() || e.by.chars().count() > 64 {
            errs.push(FieldError::new(format!("events[{i}].by"), "bad_user", "事件记录人不能为空，且不超过64个字符"));
        }
        if e.parents.len() > 16 {
            errs.push(FieldError::new(format!("events[{i}].parents"), "too_long", "前序事件不能超过16个"));
        }
        // Every text in an action (notes, plans, team names) is bounded.
        if let Ok(v) = serde_json::to_value(&e.action)
            && !texts_within(&v, 2000, 50)
        {
            errs.push(FieldError::new(
                format!("events[{i}].action"),
                "too_long",
                "事件内容过长（每项不超过2000字，名单不超过50人）",
            ));
        }
    }
    for (i, e) in events.iter().enumerate() {
        if e.parents.iter().any(|p| !ids.contains(p.as_str()) || p == &e.id) {
            errs.push(FieldError::new(format!("events[{i}].parents"), "unknown_parent", "事件引用了不存在的前序事件"));
        }
    }
    // How many: counted per author on the step that adds a note
    // (`limits::added_past_limits`), so a merge can freeze nothing.
}

/// Whether every string in `v` has at most `max_chars` characters and every
/// array at most `max_items` items.
pub(crate) fn texts_within(v: &Value, max_chars: usize, max_items: usize) -> bool {
    match v {
        Value::String(s) => s.chars().count() <= max_chars,
        Value::Array(a) => a.len() <= max_items && a.iter().all(|x| texts_within(x, max_chars, max_items)),
        Value::Object(m) => m.values().all(|x| texts_within(x, max_chars, max_items)),
        _ => true,
    }
}

/// Check a PRC resident ID number (GB 11643-1999): 17 digits and a check
/// character computed from them.
pub fn valid_id_number(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17].iter().zip(W).map(|(d, w)| u32::from(d - b'0') * w).sum();
    let expected = C[(sum % 11) as usize];
    b[17].to_ascii_uppercase() == expected
}
