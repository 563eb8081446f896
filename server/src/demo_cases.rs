//! The agencies' case counts for the demo county's four-none table (四无创建):
//! public-security cases (police), criminal cases (procuratorate) and
//! lawsuits (court) per village, for last year and this year so far, each
//! entered by the demo's agency account, checked and audited as the
//! agencies' own entries are ([`crate::reports::check_case_counts`]).
//!
//! Last year is shaped like the seed's 2021 figures: of 121 villages, 90
//! had no public-security case, 105 no criminal case and 100 no lawsuit.
//! This year, counted up to the day before the demo starts, has as many
//! villages with cases as the elapsed part of the year makes likely (give
//! or take a fifth), about half of them last year's.

use chrono::Datelike;
use gridsync_core::grid::{GridLevel, GridPath};
use gridsync_core::model::{beijing_day, beijing_midnight_ms};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::reports::{CaseCountInput, ReportError, check_case_counts};
use crate::store::{Agency, AuditEntry, CaseKind, ServerStore, StoreError, StoreResult};

const HOUR: i64 = 3_600_000;

/// Villages without a case of each kind in the seed's 2021, of 121.
pub const LAST_YEAR_WITHOUT: [(CaseKind, usize); 3] =
    [(CaseKind::PublicSecurity, 90), (CaseKind::Criminal, 105), (CaseKind::Lawsuit, 100)];

/// What was entered.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CasesLoaded {
    /// Counts entered (one per village, year and kind).
    pub counts: usize,
}

fn report_error(e: ReportError) -> StoreError {
    match e {
        ReportError::Store(e) => e,
        other => StoreError::Corrupt(format!("demo case counts refused: {other}")),
    }
}

/// Cases in a village that had some: mostly one, now and then a few.
fn cases(rng: &mut StdRng) -> i64 {
    match rng.gen_range(0..10) {
        0..=5 => 1,
        6..=8 => 2,
        _ => rng.gen_range(3..=5),
    }
}

/// Enter last year's and this year's counts for every village, as the
/// agencies would have at `now`: last year's in the first days of this
/// year, this year's so far yesterday morning.
pub fn load_case_counts(store: &dyn ServerStore, now: i64, rng: &mut StdRng) -> StoreResult<CasesLoaded> {
    let mut villages: Vec<GridPath> =
        store.grid_nodes()?.into_iter().filter(|n| n.path.level() == GridLevel::Village).map(|n| n.path).collect();
    villages.sort();
    let n = villages.len();
    let today = beijing_day(now);
    let year = today.year();
    let year_start = today.with_ordinal(1).map(beijing_midnight_ms).unwrap_or(now);
    let next_year = today.with_year(year + 1).and_then(|d| d.with_ordinal(1)).map(beijing_midnight_ms);
    let year_len = next_year.map_or(365 * 24 * HOUR, |e| e - year_start);
    // The counts this year reach to yesterday morning (never before the year began).
    let this_entered = (beijing_midnight_ms(today) - 15 * HOUR).max(year_start).min(now);
    let elapsed = (this_entered - year_start) as f64 / year_len as f64;
    // Last year's counts were entered in the year's first days.
    let last_entered = (year_start + 7 * 24 * HOUR + 10 * HOUR).min(now);
    let mut loaded = CasesLoaded::default();
    for (i, (kind, without)) in LAST_YEAR_WITHOUT.into_iter().enumerate() {
        let agency = match kind {
            CaseKind::PublicSecurity => Agency::Police,
            CaseKind::Criminal => Agency::Procuratorate,
            CaseKind::Lawsuit => Agency::Court,
        };
        let Some(user) = store.accounts()?.into_iter().find(|a| a.agency == Some(agency)).map(|a| a.user) else {
            continue;
        };
        let with_cases = n.saturating_sub(without * n / 121);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        let last: Vec<usize> = order[..with_cases].to_vec();
        // This year: as many as the part of the year gone makes likely,
        // about half of them villages that had cases last year.
        let expected = with_cases as f64 * elapsed * rng.gen_range(0.8..1.2);
        let this_n = (expected.round() as usize).min(n);
        let mut this: Vec<usize> = last.iter().copied().filter(|_| rng.gen_bool(0.5)).take(this_n).collect();
        for v in order[with_cases..].iter().chain(&last) {
            if this.len() >= this_n {
                break;
            }
            if !this.contains(v) {
                this.push(*v);
            }
        }
        for (yr, had, entered) in [(year - 1, &last, last_entered), (year, &this, this_entered)] {
            let inputs: Vec<(usize, CaseCountInput)> = villages
                .iter()
                .enumerate()
                .map(|(vi, v)| {
                    let count = if had.contains(&vi) { cases(rng) } else { 0 };
                    (vi + 1, CaseCountInput { village: v.to_string(), year: yr, kind: kind.as_str().into(), count })
                })
                .collect();
            // Each agency at its own minute of the morning.
            let at = (entered + i as i64 * 20 * 60_000).min(now);
            let counts = check_case_counts(store, &user, &inputs, at).map_err(report_error)?;
            store.put_case_counts(&counts)?;
            // Logged as the dashboard's entry form logs it.
            store.append_audit(&AuditEntry {
                seq: 0,
                at,
                user_id: user.id.clone(),
                action: "enter_case_counts".into(),
                target: format!("{} x{}", kind.as_str(), counts.len()),
                ip: "127.0.0.1".into(),
            })?;
            loaded.counts += counts.len();
        }
    }
    Ok(loaded)
}
