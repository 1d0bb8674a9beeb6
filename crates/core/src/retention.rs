//! Retention periods: ISO 8601 durations (`P2Y`, `P18M`, `P1Y6M`, `P90D`, `P2W`) read by
//! `jiff` and counted back from a time on the UTC calendar, so that "two years" ends on the same
//! calendar day two years later (leap days and month lengths included).

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

use crate::error::{Code, Error, Result};

/// A retention period, checked: an ISO 8601 duration of at least one day and at most 100 years,
/// without fractions or a negative sign.
pub fn period(text: &str) -> Result<Span> {
    let bad = || {
        Error::new(
            Code::ValidationFailed,
            "`retention.period` is an ISO 8601 duration from one day to 100 years, such as P2Y, P18M or P90D",
        )
    };
    if text.len() > 64 || !text.starts_with(['P', 'p']) {
        return Err(bad());
    }
    let span: Span = text.parse().map_err(|_| bad())?;
    if span.is_negative() || span.is_zero() {
        return Err(bad());
    }
    // Measured from a fixed date so that the bounds do not depend on when it is checked.
    let base = Timestamp::UNIX_EPOCH
        .checked_add(jiff::SignedDuration::from_hours(24 * 365 * 130))
        .map_err(|_| bad())?
        .to_zoned(TimeZone::UTC);
    let end = base.checked_add(span).map_err(|_| bad())?;
    let length = end.timestamp().duration_since(base.timestamp());
    if length < jiff::SignedDuration::from_hours(24)
        || length > jiff::SignedDuration::from_hours(24 * 366 * 100)
    {
        return Err(bad());
    }
    Ok(span)
}

/// The time `period` before `now` (ms since the epoch), on the UTC calendar: records created
/// (or updated) before it are past their retention.
pub fn cutoff(period_text: &str, now: i64) -> Result<i64> {
    let span = period(period_text)?;
    let at = Timestamp::from_millisecond(now)
        .map_err(|_| Error::internal())?
        .to_zoned(TimeZone::UTC)
        .checked_sub(span)
        .map_err(|_| Error::internal())?;
    Ok(at.timestamp().as_millisecond())
}

/// `months` calendar months after `at` (ms since the epoch), on the UTC calendar: a deadline of
/// "one month" from 31 January is the last day of February.
pub fn add_months(at: i64, months: i64) -> Result<i64> {
    let z = Timestamp::from_millisecond(at)
        .map_err(|_| Error::internal())?
        .to_zoned(TimeZone::UTC)
        .checked_add(Span::new().months(months))
        .map_err(|_| Error::internal())?;
    Ok(z.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn periods_are_calendar_durations() {
        // 2028-03-01 minus one year is 2027-03-01; minus two years 2026-03-01.
        let mar_1_2028 = 1_835_481_600_000;
        assert_eq!(cutoff("P1Y", mar_1_2028).unwrap(), mar_1_2028 - 366 * DAY);
        assert_eq!(cutoff("P2Y", mar_1_2028).unwrap(), mar_1_2028 - 731 * DAY);
        assert_eq!(cutoff("P90D", mar_1_2028).unwrap(), mar_1_2028 - 90 * DAY);
        assert_eq!(cutoff("P2W", mar_1_2028).unwrap(), mar_1_2028 - 14 * DAY);
        assert_eq!(cutoff("p1d", mar_1_2028).unwrap(), mar_1_2028 - DAY);
        for ok in ["P2Y", "P18M", "P1Y6M", "P90D", "P1D", "P100Y", "PT24H"] {
            assert!(period(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "2Y",
            "P",
            "P0D",
            "PT1H",
            "P101Y",
            "-P1Y",
            "P1.5Y",
            "P1Y ",
            "forever",
            "P99999999Y",
        ] {
            assert!(period(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_text_is_a_period_or_a_clear_error(text in "\\PC{0,20}", now in 0i64..4_102_444_800_000) {
            if let Ok(c) = cutoff(&text, now) {
                prop_assert!(c < now);
            }
        }
    }
}
