//! Timestamps as findings carry them. GuardDuty and Security Hub send RFC 3339 (ISO 8601 with a
//! zone, e.g. `2025-02-25T20:40:06.721Z`). Findings that passed through other tools are often
//! re-written as `YYYY-MM-DD hh:mm:ss[.fraction]` without a zone (Panther normalises GuardDuty's
//! `createdAt` and `service.eventFirstSeen` so); both services only ever write UTC, so that form
//! is read as UTC. Anything else is a typed error naming the value.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer};

/// `text` as a UTC instant: RFC 3339, or a zone-less `YYYY-MM-DD hh:mm:ss[.f]` read as UTC.
pub fn parse(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| {
            format!("timestamp `{text}` is neither RFC 3339 nor `YYYY-MM-DD hh:mm:ss` (UTC)")
        })
}

/// For `#[serde(default, deserialize_with = "…")]` on an `Option<DateTime<Utc>>` field.
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_the_zone_less_form_read_as_utc() {
        let iso = parse("2025-02-25T20:40:06.721Z").unwrap();
        assert_eq!(parse("2025-02-25 20:40:06.721").unwrap(), iso);
        assert_eq!(parse("2025-02-25T21:40:06.721+01:00").unwrap(), iso);
        assert_eq!(
            parse("2025-02-25 20:40:06.000000000").unwrap(),
            parse("2025-02-25T20:40:06Z").unwrap()
        );
    }

    #[test]
    fn anything_else_names_the_value() {
        for bad in [
            "",
            "yesterday",
            "2025-02-25",
            "2025-02-30 20:40:06",
            "1740516006",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }
}
