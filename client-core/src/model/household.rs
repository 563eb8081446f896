//! 四清: a household's base ledger (sensitive personal information).

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::grid::GridPath;

use super::validate::*;
use super::*;

/// A person's category in the household ledger (人员类别).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
#[serde(rename_all = "snake_case")]
pub enum PersonCategory {
    /// 常住人口
    Resident,
    /// 流动人口
    Floating,
    /// 重点人员
    KeyPerson,
    /// 监护对象 (e.g. 易肇事肇祸精神病人), with a named guardian.
    UnderGuardianship,
}

impl PersonCategory {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            PersonCategory::Resident => "常住人口",
            PersonCategory::Floating => "流动人口",
            PersonCategory::KeyPerson => "重点人员",
            PersonCategory::UnderGuardianship => "监护对象",
        }
    }
}

/// One member of a household.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Name.
    pub name: String,
    /// Relation to the head of household (户主, 配偶, 子女...).
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub relation: String,
    /// Category.
    pub category: PersonCategory,
    /// Resident ID number (18 characters), if known.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub id_number: String,
    /// Guardian's name; required for people under guardianship.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub guardian: Option<String>,
}

/// A machine, vehicle or facility in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Asset {
    /// What it is (拖拉机, 三轮车, 水窖...).
    pub description: String,
    /// Plate, model or other identifier.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub identifier: String,
}

/// 四清: a household's base ledger (基础台账). Sensitive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
#[serde(deny_unknown_fields)]
pub struct Household {
    /// Name of the head of household.
    pub head_name: String,
    /// Address.
    pub address: String,
    /// Ten-household joint defence group (十户联防), if any.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub ten_household_group: String,
    /// Members keyed by member id.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub members: Members,
    /// Farm machinery (农机具) keyed by id.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub machinery: Assets,
    /// Vehicles keyed by id.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub vehicles: Assets,
    /// Facilities in the area (区域设施) keyed by id.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub facilities: Assets,
    /// Free notes.
    #[serde(default)]
    #[cfg_attr(feature = "uniffi", uniffi(default))]
    pub notes: String,
}

impl Household {
    /// Check this kind's fields (the record's grid is `grid`).
    pub(crate) fn check(&self, _grid: &GridPath, errs: &mut Vec<FieldError>) {
        let h = self;
        req(errs, "head_name", &h.head_name, "户主姓名", 50);
        req(errs, "address", &h.address, "住址", 200);
        check_long("ten_household_group", &h.ten_household_group, "十户联防组", 50, errs);
        check_long("notes", &h.notes, "备注", 4000, errs);
        // How many members and entries: counted on the step that adds one
        // (`limits::added_past_limits`), so a merge can freeze nothing.
        for (id, m) in &h.members {
            let f = |x: &str| format!("members[{}].{x}", clip(id, 64));
            check_key("members", id, errs);
            if m.name.trim().is_empty() {
                errs.push(FieldError::new(f("name"), "required", "请填写成员姓名"));
            }
            if m.name.chars().count() > 50 {
                errs.push(FieldError::new(f("name"), "too_long", "成员姓名不能超过50个字"));
            }
            check_long(&f("relation"), &m.relation, "与户主关系", 20, errs);
            if !m.id_number.is_empty() && !valid_id_number(&m.id_number) {
                errs.push(FieldError::new(
                    f("id_number"),
                    "bad_id_number",
                    format!("{}的身份证号码无效（应为18位且校验位正确）", clip(&m.name, 50)),
                ));
            }
            if let Some(g) = &m.guardian {
                check_long(&f("guardian"), g, "监护人姓名", 50, errs);
            }
            if m.category == PersonCategory::UnderGuardianship
                && m.guardian.as_deref().is_none_or(|g| g.trim().is_empty())
            {
                errs.push(FieldError::new(
                    f("guardian"),
                    "required",
                    format!("{}是监护对象，请填写监护人", clip(&m.name, 50)),
                ));
            }
        }
        for (field, map) in [("machinery", &h.machinery), ("vehicles", &h.vehicles), ("facilities", &h.facilities)] {
            for (id, a) in map {
                check_key(field, id, errs);
                let id = clip(id, 64);
                if a.description.trim().is_empty() {
                    errs.push(FieldError::new(format!("{field}[{id}].description"), "required", "请填写名称"));
                }
                check_long(&format!("{field}[{id}].description"), &a.description, "名称", 100, errs);
                check_long(&format!("{field}[{id}].identifier"), &a.identifier, "编号", 64, errs);
            }
        }
    }

    /// Fill this kind's index columns (`created_at` is the record's).
    pub(crate) fn index_into(&self, ix: &mut RecordIndex, _created_at: i64) {
        let h = self;
        ix.status = "active".into();
        ix.title = format!("{}户 {}", h.head_name, truncate_chars(&h.address, 40));
        let mut s = vec![h.head_name.clone(), h.address.clone()];
        s.extend(h.members.values().map(|m| m.name.clone()));
        ix.search_text = s.join(" ");
        ix.sensitive = true;
    }
}
