//! Household ledgers (四清 基础台账) for the demo county, shaped like a
//! village group's: tens of households a group, in 十户联防 groups of ten;
//! two to six members each, the head of household (户主) among them, with
//! their relation to the head and an 18-digit resident ID number whose birth
//! date fits the relation (spouses of an age, children 20 to 35 years
//! younger than their mother, parents 22 to 32 years older than the head)
//! and whose check character is right (GB 11643); categories as a county
//! holds them: mostly 常住人口, a few percent of tenant households of
//! 流动人口 from neighbouring counties, and in each township a handful of
//! 重点人员 and of 监护对象, each of those with a guardian from the household.
//!
//! Names and numbers are made up, but a ledger is sensitive personal
//! information whatever it holds: nothing here is logged, and the loader
//! ([`crate::demo_month`]) never logs a household's content either.

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate};
use gridsync_core::model::{Asset, Assets, Household, Member, Members, PersonCategory};
use rand::Rng;
use rand::rngs::StdRng;

/// The first six digits (region code) of an ID number issued in 两当县.
pub const LOCAL_REGION: &str = "621228";
/// Where tenant households come from: 徽县, 成县, 西和县 (Gansu) and 凤县
/// (Shaanxi), the neighbouring counties.
const OTHER_REGIONS: [&str; 4] = ["621227", "621221", "621225", "610330"];
/// Households of one 十户联防 group.
pub const JOINT_GROUP_SIZE: usize = 10;
/// Most members a demo household has.
pub const MAX_MEMBERS: usize = 6;

const SURNAMES: [&str; 32] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林",
    "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "董", "曹", "袁", "邓", "蒲",
];
/// Given names by sex and generation (born before 1975, or since).
const MALE_OLD: [&str; 16] = [
    "建国", "志强", "国平", "德明", "建军", "卫东", "振华", "永福", "世荣", "有才", "长生", "文斌", "宝山", "国庆",
    "天明", "学军",
];
const FEMALE_OLD: [&str; 16] = [
    "秀英", "桂兰", "玉梅", "春花", "淑珍", "金凤", "红梅", "秀兰", "翠花", "凤英", "玉兰", "桂芳", "巧云", "彩霞",
    "素琴", "爱琴",
];
const MALE_NEW: [&str; 16] = [
    "浩然", "子轩", "宇航", "俊杰", "鹏飞", "晓东", "伟", "磊", "强", "博文", "天宇", "志远", "家豪", "明轩", "涛",
    "晨阳",
];
const FEMALE_NEW: [&str; 16] = [
    "欣怡", "子涵", "雨萱", "丽娟", "晓燕", "海燕", "婷", "芳", "静", "佳怡", "梦瑶", "思雨", "雪", "丹丹", "玉洁",
    "诗琪",
];

/// One person before they become a ledger line.
struct Person {
    name: String,
    relation: &'static str,
    male: bool,
    birth: NaiveDate,
}

/// Makes the households of one county: keeps the ID numbers already given,
/// so no two people share one.
pub struct Ledgers {
    today: NaiveDate,
    ids: HashSet<String>,
}

/// The GB 11643 check character of an ID number's first 17 digits.
pub fn check_character(first17: &[u8; 17]) -> char {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const C: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17.iter().zip(W).map(|(d, w)| u32::from(d.wrapping_sub(b'0')) * w).sum();
    char::from(C[(sum % 11) as usize])
}

/// The birth date an ID number carries (digits 7 to 14).
pub fn birth_date(id_number: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(id_number.get(6..14)?, "%Y%m%d").ok()
}

/// Whether an ID number is a man's (an odd 17th digit).
pub fn is_male(id_number: &str) -> Option<bool> {
    let d = id_number.as_bytes().get(16)?;
    d.is_ascii_digit().then_some((d - b'0') % 2 == 1)
}

/// Whole years from `birth` to `day`.
pub fn age_on(birth: NaiveDate, day: NaiveDate) -> i32 {
    let mut years = day.year() - birth.year();
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

impl Ledgers {
    /// Households as of `today` (ages are counted to it).
    pub fn new(today: NaiveDate) -> Ledgers {
        Ledgers { today, ids: HashSet::new() }
    }

    /// A birth date of someone `age` (at least 1) whole years old today.
    fn born(&self, age: i32, rng: &mut StdRng) -> NaiveDate {
        let age = age.max(1);
        // Days up to the 28th exist in every month.
        let (month, day) = (rng.gen_range(1..=12), rng.gen_range(1..=28));
        // A birthday still ahead this year: born a year earlier.
        let ahead = (month, day) > (self.today.month(), self.today.day());
        let year = self.today.year() - age - i32::from(ahead);
        NaiveDate::from_ymd_opt(year, month, day).unwrap_or(self.today)
    }

    /// A fresh ID number: `region`, birth date, a sequence number whose
    /// parity says the sex, and the check character.
    fn id_number(&mut self, region: &str, birth: NaiveDate, male: bool, rng: &mut StdRng) -> String {
        loop {
            let seq = rng.gen_range(0..500) * 2 + u32::from(male);
            let seq = if seq == 0 { 2 } else { seq };
            let first = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
            let Ok(digits) = <[u8; 17]>::try_from(first.as_bytes()) else { continue };
            let id = format!("{first}{}", check_character(&digits));
            if self.ids.insert(id.clone()) {
                return id;
            }
        }
    }

    fn name(surname: &str, male: bool, birth: NaiveDate, rng: &mut StdRng) -> String {
        let list: &[&str] = match (male, birth.year() < 1975) {
            (true, true) => &MALE_OLD,
            (false, true) => &FEMALE_OLD,
            (true, false) => &MALE_NEW,
            (false, false) => &FEMALE_NEW,
        };
        format!("{surname}{}", list[rng.gen_range(0..list.len())])
    }

    fn surname(rng: &mut StdRng) -> &'static str {
        SURNAMES[rng.gen_range(0..SURNAMES.len())]
    }

    /// The household at number `no` (from 1) of the village group
    /// `group_name` (`一组`): its 十户联防 group is the `no`'s ten. A tenant
    /// household (租住) is 流动人口 with ID numbers from a neighbouring
    /// county. Every member is 常住人口 or 流动人口 here;
    /// [`mark_township`] picks the township's 重点人员 and 监护对象.
    pub fn household(&mut self, group_name: &str, no: usize, tenant: bool, rng: &mut StdRng) -> Household {
        let surname = Ledgers::surname(rng);
        let head_male = rng.gen_bool(if tenant { 0.9 } else { 0.82 });
        let head_age = if tenant { rng.gen_range(22..=50) } else { rng.gen_range(26..=78) };
        let head_birth = self.born(head_age, rng);
        let mut people = vec![Person {
            name: Ledgers::name(surname, head_male, head_birth, rng),
            relation: "户主",
            male: head_male,
            birth: head_birth,
        }];
        // The spouse: of an age with the head (a wife a little younger).
        let mut mother_age = if head_male { None } else { Some(head_age) };
        if head_age >= 22 && rng.gen_bool(0.85) {
            let gap = rng.gen_range(0..=6);
            let age = (if head_male { head_age - gap } else { head_age + gap }).max(20);
            let birth = self.born(age, rng);
            people.push(Person {
                name: Ledgers::name(Ledgers::surname(rng), !head_male, birth, rng),
                relation: "配偶",
                male: !head_male,
                birth,
            });
            if head_male {
                mother_age = Some(age);
            }
        }
        // Children, 21 to 35 years younger than their mother (or the head).
        let parent_age = mother_age.unwrap_or(head_age);
        let mut child_ages = Vec::new();
        for _ in 0..rng.gen_range(0..=3) {
            if parent_age < 22 || people.len() >= MAX_MEMBERS - 1 {
                break;
            }
            let age = parent_age - rng.gen_range(21..=(parent_age - 1).min(35));
            let male = rng.gen_bool(0.52);
            let birth = self.born(age, rng);
            people.push(Person {
                name: Ledgers::name(surname, male, birth, rng),
                relation: if male { "儿子" } else { "女儿" },
                male,
                birth,
            });
            child_ages.push(age);
        }
        // A grandchild left with the grandparents (留守儿童) while a grown
        // child works away.
        if let Some(&oldest) = child_ages.iter().max()
            && oldest >= 24
            && people.len() < MAX_MEMBERS
            && rng.gen_bool(0.4)
        {
            let age = (oldest - rng.gen_range(21..=(oldest - 1).min(30))).max(1);
            let male = rng.gen_bool(0.52);
            let birth = self.born(age, rng);
            people.push(Person {
                name: Ledgers::name(surname, male, birth, rng),
                relation: if male { "孙子" } else { "孙女" },
                male,
                birth,
            });
        }
        // The head's parents, for a younger head.
        if head_age <= 52 && !tenant && rng.gen_bool(0.45) {
            let father_age = head_age + rng.gen_range(24..=32);
            for (male, age) in [(true, father_age), (false, father_age - rng.gen_range(0..=5))] {
                if people.len() >= MAX_MEMBERS || age > 92 || (male && rng.gen_bool(0.3)) {
                    continue;
                }
                let birth = self.born(age, rng);
                let family = if male { surname } else { Ledgers::surname(rng) };
                people.push(Person {
                    name: Ledgers::name(family, male, birth, rng),
                    relation: if male { "父亲" } else { "母亲" },
                    male,
                    birth,
                });
            }
        }
        // Never a household of one: a head living alone has a child away
        // registered here, or a parent.
        if people.len() < 2 {
            let (age, relation_m, relation_f) = if head_age >= 40 {
                (head_age - rng.gen_range(21..=30), "儿子", "女儿")
            } else {
                (head_age + rng.gen_range(24..=30), "父亲", "母亲")
            };
            let male = rng.gen_bool(0.5);
            let birth = self.born(age, rng);
            let family = if relation_m == "儿子" || male { surname } else { Ledgers::surname(rng) };
            people.push(Person {
                name: Ledgers::name(family, male, birth, rng),
                relation: if male { relation_m } else { relation_f },
                male,
                birth,
            });
        }
        let (region, category) = if tenant {
            (OTHER_REGIONS[rng.gen_range(0..OTHER_REGIONS.len())], PersonCategory::Floating)
        } else {
            (LOCAL_REGION, PersonCategory::Resident)
        };
        let mut members = Members::new();
        for (i, p) in people.iter().enumerate() {
            let id_number = self.id_number(region, p.birth, p.male, rng);
            members.insert(
                format!("m{}", i + 1),
                Member { name: p.name.clone(), relation: p.relation.into(), category, id_number, guardian: None },
            );
        }
        let mut machinery = Assets::new();
        if !tenant && rng.gen_bool(0.45) {
            machinery.insert("a1".into(), Asset { description: "微耕机".into(), identifier: String::new() });
        }
        let mut vehicles = Assets::new();
        if rng.gen_bool(0.35) {
            let what = ["三轮摩托车", "摩托车", "小型轿车"][rng.gen_range(0..3)];
            vehicles.insert("v1".into(), Asset { description: what.into(), identifier: String::new() });
        }
        let mut facilities = Assets::new();
        if !tenant && rng.gen_bool(0.3) {
            facilities.insert("f1".into(), Asset { description: "水窖".into(), identifier: String::new() });
        }
        Household {
            head_name: people[0].name.clone(),
            address: format!("{group_name}{no}号"),
            ten_household_group: format!("{group_name}第{}联防组", (no.max(1) - 1) / JOINT_GROUP_SIZE + 1),
            members,
            machinery,
            vehicles,
            facilities,
            notes: if tenant { "租住本组村民房屋".into() } else { String::new() },
        }
    }
}

/// What [`mark_township`] marked.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    /// 重点人员.
    pub key_persons: usize,
    /// 监护对象.
    pub under_guardianship: usize,
}

/// Mark a township's 重点人员 (`key_persons` of them, adults of 18 to 60)
/// and 监护对象 (`under_guardianship`, adults with another adult of the
/// household named as guardian) among its resident `households`, on
/// `today`. Returns how many it found room for.
pub fn mark_township(
    households: &mut [&mut Household],
    key_persons: usize,
    under_guardianship: usize,
    today: NaiveDate,
    rng: &mut StdRng,
) -> Marked {
    let age = |m: &Member| birth_date(&m.id_number).map(|b| age_on(b, today));
    let mut marked = Marked::default();
    let mut tries = 0;
    while (marked.key_persons < key_persons || marked.under_guardianship < under_guardianship)
        && tries < 50 * (key_persons + under_guardianship)
        && !households.is_empty()
    {
        tries += 1;
        let h = &mut households[rng.gen_range(0..households.len())];
        let residents: Vec<String> = h
            .members
            .iter()
            .filter(|(_, m)| m.category == PersonCategory::Resident)
            .map(|(id, _)| id.clone())
            .collect();
        if residents.len() != h.members.len() {
            // A tenant household, or one marked already.
            continue;
        }
        let pick = &residents[rng.gen_range(0..residents.len())];
        let Some(a) = h.members.get(pick).and_then(age) else { continue };
        if marked.key_persons < key_persons && (18..=60).contains(&a) {
            if let Some(m) = h.members.get_mut(pick) {
                m.category = PersonCategory::KeyPerson;
                marked.key_persons += 1;
            }
        } else if marked.under_guardianship < under_guardianship && a >= 18 {
            let guardian = h
                .members
                .iter()
                .filter(|(id, m)| *id != pick && age(m).is_some_and(|g| (18..=75).contains(&g)))
                .map(|(_, m)| m.name.clone())
                .next();
            if let (Some(g), Some(m)) = (guardian, h.members.get_mut(pick)) {
                m.category = PersonCategory::UnderGuardianship;
                m.guardian = Some(g);
                marked.under_guardianship += 1;
            }
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_core::model::valid_id_number;
    use rand::SeedableRng;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 8).unwrap()
    }

    /// The check character agrees with the core's validation (GB 11643's
    /// own example number).
    #[test]
    fn the_check_character_is_gb_11643s() {
        assert_eq!(check_character(b"11010519491231002"), 'X');
        assert!(valid_id_number("11010519491231002X"));
    }

    /// Every member of thousands of households has a valid, unique ID
    /// number from the county (or a neighbouring one for tenants), whose
    /// birth date and sex fit the member's relation to the head.
    #[test]
    fn members_have_valid_id_numbers_that_fit_their_relations() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut ledgers = Ledgers::new(today());
        let mut seen = HashSet::new();
        for no in 1..=3000 {
            let tenant = no % 30 == 0;
            let h = ledgers.household("一组", no, tenant, &mut rng);
            assert!((2..=MAX_MEMBERS).contains(&h.members.len()), "{} members", h.members.len());
            let head = &h.members["m1"];
            assert_eq!((head.relation.as_str(), head.name.as_str()), ("户主", h.head_name.as_str()));
            let age = |m: &Member| age_on(birth_date(&m.id_number).unwrap(), today());
            let male = |m: &Member| is_male(&m.id_number).unwrap();
            for m in h.members.values() {
                assert!(valid_id_number(&m.id_number), "{}", m.id_number);
                assert!(seen.insert(m.id_number.clone()), "ID number given twice");
                assert_eq!(m.id_number.starts_with(LOCAL_REGION), !tenant);
                let a = age(m);
                assert!((1..=95).contains(&a), "age {a}");
                match m.relation.as_str() {
                    "配偶" => {
                        assert_ne!(male(m), male(head));
                        assert!((age(head) - a).abs() <= 6 && a >= 20);
                    }
                    "儿子" | "女儿" => {
                        assert_eq!(male(m), m.relation == "儿子");
                        assert!(age(head) - a >= 20, "a child {a}, the head {}", age(head));
                    }
                    "孙子" | "孙女" => assert!(age(head) - a >= 40),
                    "父亲" | "母亲" => {
                        assert_eq!(male(m), m.relation == "父亲");
                        assert!(a - age(head) >= 19);
                    }
                    "户主" => assert!(a >= 22),
                    other => panic!("relation {other}"),
                }
                let expected = if tenant { PersonCategory::Floating } else { PersonCategory::Resident };
                assert_eq!(m.category, expected);
            }
            assert_eq!(h.ten_household_group, format!("一组第{}联防组", (no - 1) / 10 + 1));
        }
    }

    /// A township's key persons are adults, and each person under
    /// guardianship has an adult of the household as guardian.
    #[test]
    fn a_township_gets_its_key_persons_and_guardians() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut ledgers = Ledgers::new(today());
        let mut hs: Vec<Household> =
            (1..=300).map(|no| ledgers.household("二组", no, no % 40 == 0, &mut rng)).collect();
        let mut refs: Vec<&mut Household> = hs.iter_mut().collect();
        let marked = mark_township(&mut refs, 4, 3, today(), &mut rng);
        assert_eq!(marked, Marked { key_persons: 4, under_guardianship: 3 });
        let all: Vec<&Member> = hs.iter().flat_map(|h| h.members.values()).collect();
        let of = |c: PersonCategory| all.iter().filter(|m| m.category == c).count();
        assert_eq!((of(PersonCategory::KeyPerson), of(PersonCategory::UnderGuardianship)), (4, 3));
        assert!(of(PersonCategory::Floating) > 0);
        for h in &hs {
            for m in h.members.values() {
                let age = age_on(birth_date(&m.id_number).unwrap(), today());
                match m.category {
                    PersonCategory::KeyPerson => assert!((18..=60).contains(&age)),
                    PersonCategory::UnderGuardianship => {
                        let g = m.guardian.as_deref().unwrap();
                        assert!(h.members.values().any(|o| o.name == g && o.id_number != m.id_number));
                    }
                    _ => assert!(m.guardian.is_none()),
                }
            }
        }
    }
}
