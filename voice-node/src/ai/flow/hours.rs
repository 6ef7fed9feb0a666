//! A tenant's business hours (`tenants.business_hours` in `tenants.timezone`) and whether a
//! moment falls inside them.
//!
//! The JSON is `{"mon": [["09:00","17:00"]], "sat": [], …}`: a missing or empty day is closed, an
//! empty object means always open (the schema's rule). Ranges are local wall-clock times in the
//! tenant's IANA zone, so a tenant in New York stays open 9–5 across daylight-saving changes.
//! `"24:00"` may end a range (open until midnight). Parsing is strict: a typo in the settings is
//! an error naming the day and value, not a silently closed business.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Why the stored hours could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// The time zone is not in the system's tz database.
    #[error("unknown time zone {0:?} (expected an IANA name like America/New_York)")]
    UnknownZone(String),
    /// A key that is not a weekday.
    #[error("business hours: {0:?} is not a day (expected mon, tue, wed, thu, fri, sat or sun)")]
    UnknownDay(String),
    /// A day whose value is not a list of `["HH:MM","HH:MM"]` pairs, or whose range is empty.
    #[error("business hours for {day}: {why}")]
    BadRange {
        /// The day key.
        day: String,
        /// What is wrong.
        why: String,
    },
    /// Not a JSON object.
    #[error("business hours must be a JSON object like {{\"mon\": [[\"09:00\",\"17:00\"]]}}")]
    NotAnObject,
}

/// One opening range of a day, local time; `end` of `None` means midnight at the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    /// Opens.
    start: Time,
    /// Closes (exclusive); `None` = 24:00.
    end: Option<Time>,
}

impl Range {
    fn contains(&self, t: Time) -> bool {
        t >= self.start && self.end.is_none_or(|end| t < end)
    }
}

/// Whether the business is open, and if not, when it opens next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Openness {
    /// Open now (or no hours configured).
    #[default]
    Open,
    /// Closed; `opens` is how to say the next opening ("tomorrow at 9 AM"), `None` when the week
    /// has no opening at all.
    Closed {
        /// Spoken next opening.
        opens: Option<String>,
    },
}

/// A tenant's weekly hours in its zone.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    /// The tenant's zone.
    zone: TimeZone,
    /// Monday first; empty days are closed.
    week: [Vec<Range>; 7],
    /// `{}`: no hours configured.
    always_open: bool,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day_index(weekday: Weekday) -> usize {
    usize::from(weekday.to_monday_zero_offset().unsigned_abs())
}

fn parse_time(day: &str, text: &str) -> Result<Option<Time>, HoursError> {
    let bad = |why: String| HoursError::BadRange {
        day: day.to_owned(),
        why,
    };
    if text == "24:00" {
        return Ok(None);
    }
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| bad(format!("{text:?} is not HH:MM")))?;
    let h: i8 = h
        .parse()
        .map_err(|_| bad(format!("{text:?} is not HH:MM")))?;
    let m: i8 = m
        .parse()
        .map_err(|_| bad(format!("{text:?} is not HH:MM")))?;
    Time::new(h, m, 0, 0)
        .map(Some)
        .map_err(|_| bad(format!("{text:?} is not a time of day")))
}

impl BusinessHours {
    /// Always open, in UTC (a tenant without hours).
    pub fn always_open() -> Self {
        BusinessHours {
            zone: TimeZone::UTC,
            week: Default::default(),
            always_open: true,
        }
    }

    /// Reads the stored JSON and zone name.
    pub fn parse(hours: &serde_json::Value, zone: &str) -> Result<Self, HoursError> {
        let zone_tz = TimeZone::get(zone).map_err(|_| HoursError::UnknownZone(zone.to_owned()))?;
        let object = hours.as_object().ok_or(HoursError::NotAnObject)?;
        let mut week: [Vec<Range>; 7] = Default::default();
        for (key, value) in object {
            let day = key.to_ascii_lowercase();
            let index = DAYS
                .iter()
                .position(|d| *d == day)
                .ok_or_else(|| HoursError::UnknownDay(key.clone()))?;
            let bad = |why: &str| HoursError::BadRange {
                day: key.clone(),
                why: why.to_owned(),
            };
            let ranges = value
                .as_array()
                .ok_or_else(|| bad("expected a list of [\"HH:MM\",\"HH:MM\"] pairs"))?;
            for range in ranges {
                let pair = range
                    .as_array()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| bad("each range is a pair [\"HH:MM\",\"HH:MM\"]"))?;
                let (Some(from), Some(to)) = (pair[0].as_str(), pair[1].as_str()) else {
                    return Err(bad("times are strings like \"09:00\""));
                };
                let start =
                    parse_time(key, from)?.ok_or_else(|| bad("a range cannot start at 24:00"))?;
                let end = parse_time(key, to)?;
                if end.is_some_and(|end| end <= start) {
                    return Err(bad(&format!("{from}–{to} ends before it starts")));
                }
                week[index].push(Range { start, end });
            }
        }
        Ok(BusinessHours {
            zone: zone_tz,
            week,
            always_open: object.is_empty(),
        })
    }

    /// Whether the business is open at `now`, and when it next opens if not.
    pub fn at(&self, now: Timestamp) -> Openness {
        if self.always_open {
            return Openness::Open;
        }
        let local = now.to_zoned(self.zone.clone());
        let today = day_index(local.weekday());
        let time = local.time();
        if self.week[today].iter().any(|r| r.contains(time)) {
            return Openness::Open;
        }
        // The next opening: later today, then the following six days, then today next week.
        for offset in 0..=7i64 {
            let day = (today + offset as usize) % 7;
            let mut starts: Vec<Time> = self.week[day]
                .iter()
                .map(|r| r.start)
                .filter(|s| offset > 0 || *s > time)
                .collect();
            starts.sort();
            if let Some(start) = starts.first() {
                let when = match offset {
                    0 => "today".to_owned(),
                    1 => "tomorrow".to_owned(),
                    _ => {
                        let date = local.date().saturating_add(offset.days());
                        format!("on {}", weekday_name(date.weekday()))
                    }
                };
                return Openness::Closed {
                    opens: Some(format!("{when} at {}", spoken_time(*start))),
                };
            }
        }
        Openness::Closed { opens: None }
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// "9 AM", "12:30 PM": how a receptionist says a time.
fn spoken_time(t: Time) -> String {
    let (h, m) = (t.hour(), t.minute());
    let suffix = if h < 12 { "AM" } else { "PM" };
    let h12 = match h % 12 {
        0 => 12,
        h => h,
    };
    if m == 0 {
        format!("{h12} {suffix}")
    } else {
        format!("{h12}:{m:02} {suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn empty_hours_are_always_open() {
        let hours = BusinessHours::parse(&json!({}), "UTC").unwrap();
        assert_eq!(hours.at(at("2026-11-22T03:00:00Z")), Openness::Open);
    }

    #[test]
    fn open_inside_a_range_in_the_tenants_zone() {
        let hours = BusinessHours::parse(&json!({"sat": [["09:00", "17:00"]]}), "America/New_York")
            .unwrap();
        // Saturday 2026-11-21 15:00 UTC = 10:00 in New York (EST, UTC-5).
        assert_eq!(hours.at(at("2026-11-21T15:00:00Z")), Openness::Open);
        // 13:00 UTC = 08:00 local: closed, opens at nine today.
        assert_eq!(
            hours.at(at("2026-11-21T13:00:00Z")),
            Openness::Closed {
                opens: Some("today at 9 AM".into())
            }
        );
    }

    #[test]
    fn closed_days_say_the_next_opening() {
        let hours = BusinessHours::parse(
            &json!({"mon": [["09:30", "17:00"]], "fri": [["09:00", "12:00"], ["13:00", "24:00"]]}),
            "UTC",
        )
        .unwrap();
        // Saturday: next opening is Monday.
        assert_eq!(
            hours.at(at("2026-11-21T10:00:00Z")),
            Openness::Closed {
                opens: Some("on Monday at 9:30 AM".into())
            }
        );
        // Sunday: Monday is tomorrow.
        assert_eq!(
            hours.at(at("2026-11-22T10:00:00Z")),
            Openness::Closed {
                opens: Some("tomorrow at 9:30 AM".into())
            }
        );
        // Friday lunch break, then open until midnight.
        assert_eq!(
            hours.at(at("2026-11-20T12:30:00Z")),
            Openness::Closed {
                opens: Some("today at 1 PM".into())
            }
        );
        assert_eq!(hours.at(at("2026-11-20T23:59:00Z")), Openness::Open);
    }

    #[test]
    fn bad_hours_name_the_problem() {
        assert_eq!(
            BusinessHours::parse(&json!({}), "Mars/Olympus").unwrap_err(),
            HoursError::UnknownZone("Mars/Olympus".into())
        );
        assert!(matches!(
            BusinessHours::parse(&json!({"funday": []}), "UTC"),
            Err(HoursError::UnknownDay(d)) if d == "funday"
        ));
        let err = BusinessHours::parse(&json!({"mon": [["17:00", "09:00"]]}), "UTC").unwrap_err();
        assert!(err.to_string().contains("ends before it starts"), "{err}");
        let err = BusinessHours::parse(&json!({"mon": [["9am", "5pm"]]}), "UTC").unwrap_err();
        assert!(err.to_string().contains("HH:MM"), "{err}");
    }
}
