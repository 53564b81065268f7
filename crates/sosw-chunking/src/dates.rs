//! The calendar chunker: `period` becomes `date_list`, with one task per date when
//! `isolate_days` is set. Dates are `YYYY-MM-DD` strings, as Python's `str(date)`.

use crate::{truthy, JobError, Object};
use chrono::{Datelike, Duration, NaiveDate};
use serde_json::Value;

/// Longest period accepted, in days (Python would try to build any list, and crash past year 1).
pub const MAX_PERIOD_DAYS: i64 = 36_600;

fn digits_after(s: &str, prefix: &str) -> Option<(i64, usize)> {
    let rest = s.strip_prefix(prefix)?;
    let n = rest.chars().take_while(char::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((rest[..n].parse().ok()?, prefix.len() + n))
}

/// The dates of a period, as Python sosw's period methods compute them for `today`.
/// Patterns match at the start of the value, as Python's `re.match`.
pub fn date_list(period: &str, today: NaiveDate) -> Result<Vec<String>, JobError> {
    let unsupported = || JobError::UnsupportedPeriod(period.to_string());
    let day = |d: i64| today - Duration::days(d);
    let fmt = |d: NaiveDate| d.format("%Y-%m-%d").to_string();
    let too_long = |n: i64| {
        if n > MAX_PERIOD_DAYS {
            Err(JobError::UnsupportedPeriod(format!(
                "{period} (longer than {MAX_PERIOD_DAYS} days)"
            )))
        } else {
            Ok(n)
        }
    };
    if let Some((n, end)) = digits_after(period, "last_") {
        if period[end..].starts_with("_days") {
            let n = too_long(n)?;
            return Ok((1..=n).rev().map(|x| fmt(day(x))).collect());
        }
    }
    let lead = period.chars().take_while(char::is_ascii_digit).count();
    if lead > 0 && period[lead..].starts_with("_days_back") {
        let n = too_long(period[..lead].parse().map_err(|_| unsupported())?)?;
        return Ok(vec![fmt(day(n))]);
    }
    if period.starts_with("yesterday") {
        return Ok(vec![fmt(day(1))]);
    }
    if period.starts_with("today") {
        return Ok(vec![fmt(today)]);
    }
    if let Some((n, end)) = digits_after(period, "previous_") {
        if period[end..].starts_with("_days") {
            let n = too_long(n)?;
            let end_date = day(n);
            return Ok((1..=n).rev().map(|x| fmt(end_date - Duration::days(x))).collect());
        }
    }
    if period.starts_with("last_week") {
        let end_date = day(i64::from(today.weekday().num_days_from_monday()) + 8);
        return Ok((0..7).map(|x| fmt(end_date + Duration::days(x))).collect());
    }
    Err(unsupported())
}

/// Python's `chunk_dates`: pops `period` and `isolate_days` and adds `date_list`.
pub fn chunk_dates(job: Object, today: NaiveDate) -> Result<Vec<Object>, JobError> {
    Ok(chunk_dates_iter(job, today)?.collect())
}

/// [`chunk_dates`], one job per date generated lazily (a long period does not copy the job once
/// per day up front).
pub fn chunk_dates_iter(
    mut job: Object,
    today: NaiveDate,
) -> Result<Box<dyn Iterator<Item = Object> + Send>, JobError> {
    let period = job.shift_remove("period");
    let isolate = job.shift_remove("isolate_days");
    let Some(period) = period.filter(truthy) else {
        return Ok(Box::new(std::iter::once(job)));
    };
    let Value::String(period) = period else {
        return Err(JobError::UnsupportedPeriod(period.to_string()));
    };
    let dates = date_list(&period, today)?;
    let with_dates = move |list: Vec<String>| {
        let mut task = job.clone();
        task.insert(
            "date_list".into(),
            Value::Array(list.into_iter().map(Value::String).collect()),
        );
        task
    };
    if isolate.as_ref().is_some_and(truthy) {
        if dates.is_empty() {
            return Err(JobError::UnsupportedPeriod(format!(
                "{period} (no dates to isolate)"
            )));
        }
        Ok(Box::new(dates.into_iter().map(move |d| with_dates(vec![d]))))
    } else {
        Ok(Box::new(std::iter::once(with_dates(dates))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn each_period_pattern() {
        let today = d("2019-04-30"); // a Tuesday
        assert_eq!(date_list("today", today).unwrap(), ["2019-04-30"]);
        assert_eq!(date_list("yesterday", today).unwrap(), ["2019-04-29"]);
        assert_eq!(
            date_list("last_3_days", today).unwrap(),
            ["2019-04-27", "2019-04-28", "2019-04-29"]
        );
        assert_eq!(date_list("2_days_back", today).unwrap(), ["2019-04-28"]);
        assert_eq!(
            date_list("previous_2_days", today).unwrap(),
            ["2019-04-26", "2019-04-27"]
        );
        assert_eq!(
            date_list("last_week", today).unwrap(),
            [
                "2019-04-21",
                "2019-04-22",
                "2019-04-23",
                "2019-04-24",
                "2019-04-25",
                "2019-04-26",
                "2019-04-27"
            ]
        );
        assert!(date_list("last_0_days", today).unwrap().is_empty());
    }

    #[test]
    fn patterns_match_at_the_start_like_re_match() {
        let today = d("2019-04-30");
        assert_eq!(date_list("todayish", today).unwrap(), ["2019-04-30"]);
        assert_eq!(date_list("last_2_days_please", today).unwrap().len(), 2);
    }

    #[test]
    fn unsupported_periods_are_rejected() {
        let today = d("2019-04-30");
        for p in ["tomorrow", "last_x_days", "days_back", "", "last_99999999_days"] {
            assert!(
                matches!(date_list(p, today), Err(JobError::UnsupportedPeriod(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn isolate_days_gives_one_task_per_date() {
        let job: Object =
            serde_json::from_str(r#"{"a": 1, "period": "last_2_days", "isolate_days": true}"#).unwrap();
        let tasks = chunk_dates(job, d("2019-04-30")).unwrap();
        assert_eq!(
            serde_json::to_string(&tasks).unwrap(),
            r#"[{"a":1,"date_list":["2019-04-28"]},{"a":1,"date_list":["2019-04-29"]}]"#
        );
    }

    #[test]
    fn without_isolation_one_task_holds_all_dates_and_flags_are_removed() {
        let job: Object = serde_json::from_str(r#"{"period": "last_2_days", "a": 1}"#).unwrap();
        let tasks = chunk_dates(job, d("2019-04-30")).unwrap();
        assert_eq!(
            serde_json::to_string(&tasks).unwrap(),
            r#"[{"a":1,"date_list":["2019-04-28","2019-04-29"]}]"#
        );
        let job: Object = serde_json::from_str(r#"{"isolate_days": true, "a": 1}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&chunk_dates(job, d("2019-04-30")).unwrap()).unwrap(),
            r#"[{"a":1}]"#
        );
    }
}
