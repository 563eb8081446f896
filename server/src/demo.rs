//! A demo county shaped like Liangdang: 12 townships, 121 villages, 406
//! groups, with one grid manager per group, a village leader and a
//! supervisor per village, 28 township chiefs and county staff. Names are
//! generated (the township names are Liangdang's; villages and people are
//! made up).

use gridsync_core::grid::{GridPath, Role};

use crate::store::{Agency, GridNode, ServerStore, StoreError, User};

/// Township names.
pub const TOWNSHIPS: [&str; 12] = [
    "城关镇",
    "站儿巷镇",
    "西坡镇",
    "杨店镇",
    "显龙镇",
    "左家镇",
    "鱼池镇",
    "张家庄镇",
    "金洞镇",
    "云屏镇",
    "泰山镇",
    "兴化镇",
];

const SURNAMES: [&str; 20] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗",
];
const GIVEN: [&str; 24] = [
    "建国", "秀英", "志强", "桂兰", "文华", "海燕", "国平", "玉梅", "永红", "德明", "春花", "建军", "丽娟", "明亮",
    "淑珍", "卫东", "金凤", "红梅", "振华", "小龙", "晓燕", "军", "芳", "伟",
];
const VILLAGE_SUFFIX: [&str; 6] = ["家村", "家坪村", "家湾村", "家沟村", "家庄村", "家河村"];
const GROUP_NAMES: [&str; 4] = ["一组", "二组", "三组", "四组"];

/// A person's name from an index (deterministic).
pub fn person_name(i: usize) -> String {
    format!("{}{}", SURNAMES[i % SURNAMES.len()], GIVEN[(i / SURNAMES.len() + i * 7) % GIVEN.len()])
}

/// The demo county: its grid nodes and its users.
pub struct DemoCounty {
    /// Every node.
    pub nodes: Vec<GridNode>,
    /// Every user.
    pub users: Vec<User>,
    /// The agency of each agency account.
    pub agencies: Vec<(String, Agency)>,
}

/// Load the demo county's tree and people into `store` (users already
/// there are left as they are); returns how many users were added.
pub fn load(store: &dyn ServerStore) -> Result<usize, StoreError> {
    let county = demo_county();
    store.put_grid_nodes(&county.nodes)?;
    let mut added = 0;
    for u in &county.users {
        match store.add_user(u) {
            Ok(()) => added += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    for (id, agency) in &county.agencies {
        store.set_agency(id, Some(*agency))?;
    }
    Ok(added)
}

fn path(s: &str) -> GridPath {
    // Codes built below are always valid paths.
    GridPath::parse(s).unwrap_or_default()
}

/// Build the demo county.
pub fn demo_county() -> DemoCounty {
    let mut nodes = Vec::new();
    let mut users = Vec::new();
    let mut person = 0usize;
    let mut next_name = || {
        person += 1;
        person_name(person)
    };
    // 121 villages: one township gets 11, the others 10.
    // 406 groups: 43 villages get 4 groups, the other 78 get 3.
    let mut village_no = 0usize;
    // 28 chiefs: four townships get 3, the others 2.
    for (ti, tname) in TOWNSHIPS.iter().enumerate() {
        let t = format!("t{:02}", ti + 1);
        nodes.push(GridNode { path: path(&t), name: (*tname).to_owned() });
        let chiefs = if ti < 4 { 3 } else { 2 };
        for c in 0..chiefs {
            users.push(User {
                id: format!("tc-{t}-{}", c + 1),
                display_name: next_name(),
                role: Role::TownshipChief,
                grid: path(&t),
            });
        }
        let villages = if ti == 0 { 11 } else { 10 };
        for vi in 0..villages {
            let v = format!("{t}/v{:02}", vi + 1);
            let vname =
                format!("{}{}", SURNAMES[(ti * 3 + vi) % SURNAMES.len()], VILLAGE_SUFFIX[vi % VILLAGE_SUFFIX.len()]);
            nodes.push(GridNode { path: path(&v), name: vname });
            users.push(User {
                id: format!("vl-{}", v.replace('/', "-")),
                display_name: next_name(),
                role: Role::VillageLeader,
                grid: path(&v),
            });
            users.push(User {
                id: format!("sv-{}", v.replace('/', "-")),
                display_name: next_name(),
                role: Role::Supervisor,
                grid: path(&v),
            });
            let groups = if village_no < 43 { 4 } else { 3 };
            village_no += 1;
            for (gi, gname) in GROUP_NAMES.iter().enumerate().take(groups) {
                let g = format!("{v}/g{}", gi + 1);
                nodes.push(GridNode { path: path(&g), name: (*gname).to_owned() });
                users.push(User {
                    id: format!("gm-{}", g.replace('/', "-")),
                    display_name: next_name(),
                    role: Role::GridManager,
                    grid: path(&g),
                });
            }
        }
    }
    users.push(User {
        id: "county-admin".into(),
        display_name: "县综治中心".into(),
        role: Role::CountyStaff,
        grid: GridPath::county(),
    });
    let mut agencies = Vec::new();
    for (id, agency) in [
        ("police", Agency::Police),
        ("procuratorate", Agency::Procuratorate),
        ("court", Agency::Court),
        ("justice", Agency::Justice),
    ] {
        users.push(User {
            id: id.into(),
            display_name: agency.label_zh().into(),
            role: Role::AgencyStaff,
            grid: GridPath::county(),
        });
        agencies.push((id.to_owned(), agency));
    }
    DemoCounty { nodes, users, agencies }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_core::grid::GridLevel;

    #[test]
    fn shaped_like_liangdang() {
        let c = demo_county();
        let count = |l: GridLevel| c.nodes.iter().filter(|n| n.path.level() == l).count();
        assert_eq!((count(GridLevel::Township), count(GridLevel::Village), count(GridLevel::Group)), (12, 121, 406));
        let role = |r: Role| c.users.iter().filter(|u| u.role == r).count();
        assert_eq!(role(Role::GridManager), 406);
        assert_eq!(role(Role::VillageLeader), 121);
        assert_eq!(role(Role::Supervisor), 121);
        assert_eq!(role(Role::TownshipChief), 28);
        let ids: std::collections::HashSet<_> = c.users.iter().map(|u| &u.id).collect();
        assert_eq!(ids.len(), c.users.len());
    }
}
