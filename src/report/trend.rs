//! Each module's diff rate per UTC day, and whether it is falling, flat or
//! rising since the module's last version change (the first row of the
//! newest core/guest version seen in the window; the whole window when only
//! one version was seen).
//!
//! The direction is the comparison-weighted least-squares slope of the daily
//! rates since the change, over the days spanned: a change within a quarter
//! of the mean rate (plus 0.01 percentage points) is flat, so a steady rate
//! with daily noise does not read as a trend.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which way a module's diff rate goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Down by more than the noise.
    Falling,
    /// Within the noise.
    Flat,
    /// Up by more than the noise.
    Rising,
    /// Fewer than two days with comparisons since the change.
    Unknown,
}

impl Direction {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Falling => "falling",
            Direction::Flat => "flat",
            Direction::Rising => "rising",
            Direction::Unknown => "unknown",
        }
    }
}

/// One day of one module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// The day (`YYYY-MM-DD`, UTC).
    pub date: String,
    /// Comparisons.
    pub comparisons: u64,
    /// Mismatches.
    pub mismatches: u64,
    /// `mismatches / comparisons`.
    pub diff_rate: f64,
}

/// One module's trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Module.
    pub module: String,
    /// Every day of the window with comparisons.
    pub days: Vec<Day>,
    /// When the newest version seen started (µs), if more than one was seen.
    pub version_change_us: Option<i64>,
    /// Which way the rate goes since then.
    pub direction: Direction,
}

const DAY_US: i64 = 86_400_000_000;

/// The start of the `width`-long bucket `t` falls in (clamped at the ends of `i64`, never overflowing).
pub fn floor_to(t: i64, width: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(width.max(1)))
}

/// The day a timestamp falls on (its start, µs).
pub fn day_of(t_us: i64) -> i64 {
    floor_to(t_us, DAY_US)
}

/// The direction of daily `(day number, comparisons, mismatches)` (days without comparisons are no evidence).
pub fn direction(days: &[(f64, u64, u64)]) -> Direction {
    let days: Vec<(f64, f64, f64)> =
        days.iter().filter(|(_, n, _)| *n > 0).map(|&(x, n, m)| (x, m as f64 / n as f64, n as f64)).collect();
    if days.len() < 2 {
        return Direction::Unknown;
    }
    let w: f64 = days.iter().map(|d| d.2).sum();
    let mean_x = days.iter().map(|d| d.0 * d.2).sum::<f64>() / w;
    let mean_y = days.iter().map(|d| d.1 * d.2).sum::<f64>() / w;
    let sxx: f64 = days.iter().map(|d| d.2 * (d.0 - mean_x).powi(2)).sum();
    let sxy: f64 = days.iter().map(|d| d.2 * (d.0 - mean_x) * (d.1 - mean_y)).sum();
    let span = days[days.len() - 1].0 - days[0].0;
    let change = if sxx > 0.0 { sxy / sxx * span } else { 0.0 };
    if change.abs() <= 0.25 * mean_y + 1e-4 {
        Direction::Flat
    } else if change < 0.0 {
        Direction::Falling
    } else {
        Direction::Rising
    }
}

/// Trends from daily counts per module and the first row of each version per module.
pub fn trends(
    daily: BTreeMap<String, BTreeMap<i64, (u64, u64)>>,
    first_seen: &BTreeMap<(String, String, String), i64>,
) -> Vec<Trend> {
    daily
        .into_iter()
        .map(|(module, days)| {
            let starts: Vec<i64> = first_seen.iter().filter(|((m, ..), _)| *m == module).map(|(_, &t)| t).collect();
            let change = (starts.len() > 1).then(|| starts.iter().copied().max().unwrap_or(0));
            let from = change.map_or(i64::MIN, day_of);
            // Days since the change, numbered from the first (gaps keep their distance).
            let first = days.keys().copied().find(|&d| d >= from);
            let since: Vec<(f64, u64, u64)> = days
                .range(from..)
                .map(|(&d, &(n, m))| ((d as f64 - first.unwrap_or(d) as f64) / DAY_US as f64, n, m))
                .collect();
            let days = days
                .into_iter()
                .map(|(d, (n, m))| Day {
                    date: chrono::DateTime::from_timestamp_micros(d)
                        .map(|t| t.format("%Y-%m-%d").to_string())
                        .unwrap_or_default(),
                    comparisons: n,
                    mismatches: m,
                    diff_rate: m as f64 / n.max(1) as f64,
                })
                .collect();
            Trend { module, days, version_change_us: change, direction: direction(&since) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions_on_synthetic_days() {
        let days = |c: &[(u64, u64)]| c.iter().enumerate().map(|(i, &(n, m))| (i as f64, n, m)).collect::<Vec<_>>();
        // 5% falling to 1% over five days.
        assert_eq!(direction(&days(&[(1000, 50), (1000, 40), (1000, 30), (1000, 20), (1000, 10)])), Direction::Falling);
        assert_eq!(direction(&days(&[(1000, 1), (1000, 3), (1000, 9), (1000, 20)])), Direction::Rising);
        // A steady 2% with ±10% noise is flat; so is zero throughout.
        assert_eq!(direction(&days(&[(1000, 20), (1000, 22), (1000, 18), (1000, 21), (1000, 19)])), Direction::Flat);
        assert_eq!(direction(&days(&[(500, 0), (500, 0), (500, 0)])), Direction::Flat);
        // A day with no comparisons is no evidence; one day is not a trend.
        assert_eq!(direction(&days(&[(1000, 50), (0, 0)])), Direction::Unknown);
        // A loud day of ten comparisons does not outweigh days of thousands.
        assert_eq!(direction(&days(&[(5000, 10), (10, 9), (5000, 10)])), Direction::Flat);
        // Timestamps at the ends of i64 bucket without overflow.
        assert_eq!(day_of(i64::MIN), i64::MIN);
        assert_eq!(day_of(i64::MAX), i64::MAX - i64::MAX % DAY_US);
        assert_eq!(day_of(-1), -DAY_US);
    }

    #[test]
    fn the_trend_starts_at_the_newest_version() {
        let day = |d: i64| 1_764_979_200_000_000 + d * DAY_US; // 2025-12-06 and on
        // Rising under the old version, then a new version on day 3 falls.
        let counts = [(1000, 5), (1000, 20), (1000, 40), (1000, 30), (1000, 15), (1000, 5)];
        let daily = BTreeMap::from([(
            "compat".to_string(),
            counts.iter().enumerate().map(|(i, &c)| (day(i as i64), c)).collect::<BTreeMap<_, _>>(),
        )]);
        let one = BTreeMap::from([(("compat".into(), "0.1.0".into(), "aa".into()), day(0))]);
        let whole = trends(daily.clone(), &one);
        assert_eq!((whole[0].version_change_us, whole[0].direction), (None, Direction::Flat));
        assert_eq!(whole[0].days.len(), 6);
        assert_eq!(whole[0].days[0].date, "2025-12-06");
        let mut two = one.clone();
        two.insert(("compat".into(), "0.2.0".into(), "bb".into()), day(3) + 3_600_000_000);
        let since = trends(daily, &two);
        assert_eq!(since[0].version_change_us, Some(day(3) + 3_600_000_000));
        assert_eq!(since[0].direction, Direction::Falling);
    }
}
