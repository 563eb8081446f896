//! The county tree: grid paths (township / village / group) and roles.
//!
//! A [`GridPath`] names one node of the county's three-level grid (三级网格).
//! It is written as up to three `/`-separated codes, `t01/v03/g2`; the empty
//! path is the whole county. Codes are short lowercase ASCII so that they are
//! safe in URLs, file names and SQL columns.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// Level of a node in the county tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GridLevel {
    /// The whole county (县).
    County,
    /// A township or work station (乡镇 / 工作站).
    Township,
    /// A village or community (行政村 / 社区).
    Village,
    /// A village group or urban block (村民小组 / 小区).
    Group,
}

impl GridLevel {
    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            GridLevel::County => "县",
            GridLevel::Township => "乡镇",
            GridLevel::Village => "村",
            GridLevel::Group => "组",
        }
    }
}

/// A node of the county tree: county, township, village or group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GridPath {
    segments: Vec<String>,
}

const MAX_SEGMENT: usize = 24;

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SEGMENT
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl GridPath {
    /// The whole county.
    pub fn county() -> Self {
        Self::default()
    }

    /// Parse `t01/v03/g2` (or `t01`, `t01/v03`, or `""` for the county).
    ///
    /// White space around the path and around each code (`" t01 / v03 "`,
    /// a full-width space from a Chinese keyboard too) is dropped: every
    /// door a path comes in by (the command line, the dashboard's forms, a
    /// tree file, a record) gets the same normalised path. An empty level
    /// (`t01//g2`, `t01/`) is refused, saying so.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::county());
        }
        let segments: Vec<String> = s.split('/').map(|seg| seg.trim().to_owned()).collect();
        if segments.len() > 3 {
            return Err(CoreError::invalid("grid", "too_deep", "网格路径最多三级（乡镇/村/组）"));
        }
        if segments.iter().any(String::is_empty) {
            return Err(CoreError::invalid(
                "grid",
                "empty_level",
                format!("网格路径“{s}”中有空的一级：各级编码之间只用一个“/”分隔，例如 t01/v03/g2"),
            ));
        }
        if let Some(bad) = segments.iter().find(|s| !valid_segment(s)) {
            return Err(CoreError::invalid(
                "grid",
                "bad_code",
                format!("网格编码“{bad}”无效：只能使用小写字母、数字和连字符，最长{MAX_SEGMENT}个字符"),
            ));
        }
        Ok(Self { segments })
    }

    /// Level of this node.
    pub fn level(&self) -> GridLevel {
        match self.segments.len() {
            0 => GridLevel::County,
            1 => GridLevel::Township,
            2 => GridLevel::Village,
            _ => GridLevel::Group,
        }
    }

    /// Township code, if this path is at or below a township.
    pub fn township(&self) -> Option<&str> {
        self.segments.first().map(String::as_str)
    }

    /// Village code, if this path is at or below a village.
    pub fn village(&self) -> Option<&str> {
        self.segments.get(1).map(String::as_str)
    }

    /// Group code, if this path is a group.
    pub fn group(&self) -> Option<&str> {
        self.segments.get(2).map(String::as_str)
    }

    /// The path truncated to `level` (the village of a group, say).
    pub fn ancestor(&self, level: GridLevel) -> GridPath {
        let n = match level {
            GridLevel::County => 0,
            GridLevel::Township => 1,
            GridLevel::Village => 2,
            GridLevel::Group => 3,
        };
        GridPath { segments: self.segments.iter().take(n).cloned().collect() }
    }

    /// Parent node (the county's parent is the county).
    pub fn parent(&self) -> GridPath {
        let mut p = self.clone();
        p.segments.pop();
        p
    }

    /// A child of this node with the given code.
    pub fn child(&self, code: &str) -> Result<GridPath, CoreError> {
        GridPath::parse(format!("{self}/{code}").trim_start_matches('/'))
    }

    /// Whether `other` is this node or below it.
    pub fn contains(&self, other: &GridPath) -> bool {
        other.segments.len() >= self.segments.len() && self.segments.iter().zip(&other.segments).all(|(a, b)| a == b)
    }
}

impl fmt::Display for GridPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segments.join("/"))
    }
}

impl FromStr for GridPath {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GridPath::parse(s)
    }
}

impl Serialize for GridPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for GridPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GridPath::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A person's role in the grid (domain brief, "three-level grid").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 网格管理员: a village group leader doing the daily rounds; grid is a group.
    GridManager,
    /// 网格长: village party secretary or director; grid is a village.
    VillageLeader,
    /// 网格督导员: township cadre or police officer checking a village; grid is a village.
    Supervisor,
    /// 网格总长: township party secretary or mayor; grid is a township.
    TownshipChief,
    /// 县综治中心 staff: the whole county.
    CountyStaff,
    /// Staff of a county agency that enters case counts (police, procuratorate, court).
    AgencyStaff,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::GridManager,
        Role::VillageLeader,
        Role::Supervisor,
        Role::TownshipChief,
        Role::CountyStaff,
        Role::AgencyStaff,
    ];

    /// Chinese label.
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::GridManager => "网格管理员",
            Role::VillageLeader => "网格长",
            Role::Supervisor => "网格督导员",
            Role::TownshipChief => "网格总长",
            Role::CountyStaff => "县综治中心",
            Role::AgencyStaff => "县直部门",
        }
    }

    /// Stable machine name (`grid_manager`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GridManager => "grid_manager",
            Role::VillageLeader => "village_leader",
            Role::Supervisor => "supervisor",
            Role::TownshipChief => "township_chief",
            Role::CountyStaff => "county_staff",
            Role::AgencyStaff => "agency_staff",
        }
    }

    /// The level of grid this role is assigned to.
    pub fn grid_level(self) -> GridLevel {
        match self {
            Role::GridManager => GridLevel::Group,
            Role::VillageLeader | Role::Supervisor => GridLevel::Village,
            Role::TownshipChief => GridLevel::Township,
            Role::CountyStaff | Role::AgencyStaff => GridLevel::County,
        }
    }

    /// Whether this role may read sensitive personal records (household
    /// members, key persons, people under guardianship) held in its grid.
    /// Only the people who work the grid on the ground do: the group's manager
    /// and the village's leader and supervisor (PIPL art. 28: minimum
    /// necessary). Townships and the county see aggregates only.
    pub fn reads_sensitive(self) -> bool {
        matches!(self, Role::GridManager | Role::VillageLeader | Role::Supervisor)
    }
}

impl FromStr for Role {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| CoreError::invalid("role", "unknown_role", format!("未知角色“{s}”")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_levels_and_containment() {
        let g = GridPath::parse("t01/v03/g2").unwrap();
        assert_eq!(g.level(), GridLevel::Group);
        assert_eq!(g.village(), Some("v03"));
        let v = g.ancestor(GridLevel::Village);
        assert_eq!(v.to_string(), "t01/v03");
        assert!(v.contains(&g));
        assert!(!g.contains(&v));
        assert!(GridPath::county().contains(&g));
        assert!(!GridPath::parse("t01/v04").unwrap().contains(&g));
        assert_eq!(v.child("g9").unwrap().to_string(), "t01/v03/g9");
        assert_eq!(GridPath::county().child("t02").unwrap().to_string(), "t02");
    }

    #[test]
    fn rejects_bad_paths_naming_the_field() {
        for bad in ["T01", "t01//g", "a/b/c/d", "t_1", "t01/村"] {
            match GridPath::parse(bad) {
                Err(CoreError::Invalid(errs)) => assert_eq!(errs[0].field, "grid", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn white_space_around_the_path_and_its_codes_is_dropped() {
        for given in [" t01/v03/g2 ", "t01 / v03 / g2", "\tt01/v03/g2\n", "\u{3000}t01/v03\u{3000}/g2"] {
            assert_eq!(GridPath::parse(given).unwrap().to_string(), "t01/v03/g2", "{given:?}");
        }
        assert_eq!(GridPath::parse("  ").unwrap(), GridPath::county());
        for empty in ["t01/", "/t01", "t01/ /g2"] {
            let Err(CoreError::Invalid(errs)) = GridPath::parse(empty) else { panic!("{empty:?} taken") };
            assert!(errs[0].message_zh.contains("空的一级"), "{empty:?}: {}", errs[0].message_zh);
        }
    }
}
