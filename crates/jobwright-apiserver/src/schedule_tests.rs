//! Schedules → next times, each expected value worked out by hand from robfig/cron v3's rules
//! (parser.go `getRange`/`parseDescriptor`, spec.go `Next`/`dayMatches`), including the cases of
//! robfig's own `TestNext` rewritten for the five-field standard parser.

use chrono::{DateTime, Utc};

use super::*;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).with_timezone(&Utc)
}

fn zone(name: &str) -> Zone {
    Zone::load(name).unwrap()
}

/// (schedule, zone, from, expected next or "" for none).
const NEXT: &[(&str, &str, &str, &str)] = &[
    // Simple cases and wrap-arounds (robfig's TestNext).
    ("*/15 * * * *", "UTC", "2012-07-09T14:45:00Z", "2012-07-09T15:00:00Z"),
    ("*/15 * * * *", "UTC", "2012-07-09T14:59:00Z", "2012-07-09T15:00:00Z"),
    ("*/15 * * * *", "UTC", "2012-07-09T14:59:59.900Z", "2012-07-09T15:00:00Z"),
    ("0/15 * * * *", "UTC", "2012-07-09T15:00:00Z", "2012-07-09T15:15:00Z"),
    ("20-35/15 * * * *", "UTC", "2012-07-09T15:45:00Z", "2012-07-09T16:20:00Z"),
    ("*/15 * * * *", "UTC", "2012-07-09T23:46:00Z", "2012-07-10T00:00:00Z"),
    ("20-35/15 * * * *", "UTC", "2012-07-09T23:45:00Z", "2012-07-10T00:20:00Z"),
    ("20-35/15 1/2 * * *", "UTC", "2012-07-09T23:35:51Z", "2012-07-10T01:20:00Z"),
    ("20-35/15 10-12 * * *", "UTC", "2012-07-09T23:35:51Z", "2012-07-10T10:20:00Z"),
    ("20-35/15 1/2 */2 * *", "UTC", "2012-07-09T23:35:51Z", "2012-07-11T01:20:00Z"),
    ("20-35/15 * 9-20 Jul *", "UTC", "2012-07-09T23:35:51Z", "2012-07-10T00:20:00Z"),
    ("0 0 9 Apr-Oct ?", "UTC", "2012-07-09T23:35:00Z", "2012-08-09T00:00:00Z"),
    ("* * * * *", "UTC", "2012-12-31T23:59:45Z", "2013-01-01T00:00:00Z"),
    ("0 0 29 Feb ?", "UTC", "2012-07-09T23:35:00Z", "2016-02-29T00:00:00Z"),
    // Day-of-month and day-of-week: both restricted = either matches (Vixie cron).
    ("0 0 1,15 * Sun", "UTC", "2012-07-14T12:00:00Z", "2012-07-15T00:00:00Z"),
    ("0 0 1,15 * Sun", "UTC", "2012-06-14T01:00:00Z", "2012-06-15T00:00:00Z"),
    ("0 0 1,15 * Sun", "UTC", "2012-07-16T00:00:00Z", "2012-07-22T00:00:00Z"),
    ("0 0 1,15 * Sun", "UTC", "2012-07-29T00:00:00Z", "2012-08-01T00:00:00Z"),
    // ... one a star (or `?`) = both must match.
    ("0 0 * Feb Mon", "UTC", "2012-07-09T23:35:00Z", "2013-02-04T00:00:00Z"),
    ("0 0 ? * Mon", "UTC", "2012-07-15T00:00:00Z", "2012-07-16T00:00:00Z"),
    ("0 0 1,15 * *", "UTC", "2012-07-09T00:00:00Z", "2012-07-15T00:00:00Z"),
    ("0 0 1,15 * ?", "UTC", "2012-07-09T00:00:00Z", "2012-07-15T00:00:00Z"),
    ("0 0 * * 1-5", "UTC", "2012-07-13T12:00:00Z", "2012-07-16T00:00:00Z"),
    // robfig v3: a star with a step above 1 is no longer a star (Vixie would still call it one).
    ("0 0 */5 Apr,Aug,Oct Mon", "UTC", "2012-07-09T23:35:00Z", "2012-08-01T00:00:00Z"),
    ("0 0 */10 * Sun", "UTC", "2012-07-14T12:00:00Z", "2012-07-15T00:00:00Z"),
    ("0 0 * Feb Mon/2", "UTC", "2012-07-09T23:35:00Z", "2013-02-01T00:00:00Z"),
    ("0 0 */1 * Sun", "UTC", "2012-07-09T00:00:00Z", "2012-07-15T00:00:00Z"),
    // Names, any case; `?` anywhere; `*-5` is `*`; empty list items dropped.
    ("0 12 * JAN,jul SaT", "UTC", "2012-07-01T00:00:00Z", "2012-07-07T12:00:00Z"),
    ("? ? ? ? ?", "UTC", "2012-07-01T00:00:30Z", "2012-07-01T00:01:00Z"),
    ("*-5 0 * * *", "UTC", "2012-07-01T00:10:00Z", "2012-07-01T00:11:00Z"),
    ("5,,10 * * * *", "UTC", "2012-07-01T00:06:00Z", "2012-07-01T00:10:00Z"),
    ("*/90 * * * *", "UTC", "2012-07-01T00:06:00Z", "2012-07-01T01:00:00Z"),
    // Descriptors.
    ("@yearly", "UTC", "2012-07-09T00:00:00Z", "2013-01-01T00:00:00Z"),
    ("@annually", "UTC", "2012-12-31T23:59:59Z", "2013-01-01T00:00:00Z"),
    ("@monthly", "UTC", "2012-07-09T00:00:00Z", "2012-08-01T00:00:00Z"),
    ("@weekly", "UTC", "2012-07-09T00:00:00Z", "2012-07-15T00:00:00Z"),
    ("@daily", "UTC", "2012-07-09T00:00:00Z", "2012-07-10T00:00:00Z"),
    ("@midnight", "UTC", "2012-07-09T23:59:59Z", "2012-07-10T00:00:00Z"),
    ("@hourly", "UTC", "2012-07-09T14:00:00Z", "2012-07-09T15:00:00Z"),
    // `@every`: from the given time, its fraction of a second dropped; below 1 s is 1 s.
    ("@every 1h30m", "UTC", "2012-07-09T14:10:20.5Z", "2012-07-09T15:40:20Z"),
    ("@every 90s", "UTC", "2012-07-09T14:10:20Z", "2012-07-09T14:11:50Z"),
    ("@every 1.5s", "UTC", "2012-07-09T14:10:20Z", "2012-07-09T14:10:21Z"),
    ("@every 100ms", "UTC", "2012-07-09T14:10:20Z", "2012-07-09T14:10:21Z"),
    // Unsatisfiable: none within five years.
    ("0 0 30 Feb ?", "UTC", "2012-07-09T23:35:00Z", ""),
    ("0 0 31 Apr ?", "UTC", "2012-07-09T23:35:00Z", ""),
    ("0 0 , * *", "UTC", "2012-07-09T23:35:00Z", ""),
    // A zone: the fields are its wall clock.
    ("0 9 * * *", "Asia/Tokyo", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
    ("TZ=Asia/Tokyo 0 9 * * *", "UTC", "2023-12-31T23:00:00Z", "2024-01-01T00:00:00Z"),
    ("CRON_TZ=Europe/Berlin @daily", "UTC", "2024-06-30T12:00:00Z", "2024-06-30T22:00:00Z"),
    // DST, America/New_York: spring forward 2024-03-10 02:00 EST -> 03:00 EDT (07:00Z).
    // A slot inside the gap is skipped (next day), as robfig walks hours in real time.
    ("30 2 * * *", "America/New_York", "2024-03-09T08:00:00Z", "2024-03-11T06:30:00Z"),
    ("0 2 * * *", "America/New_York", "2024-03-10T05:00:00Z", "2024-03-11T06:00:00Z"),
    ("*/30 * * * *", "America/New_York", "2024-03-10T06:45:00Z", "2024-03-10T07:00:00Z"),
    ("0 3 * * *", "America/New_York", "2024-03-10T06:00:00Z", "2024-03-10T07:00:00Z"),
    // Fall back 2024-11-03 02:00 EDT -> 01:00 EST (06:00Z): the 01:xx hour runs twice.
    ("30 1 * * *", "America/New_York", "2024-11-03T05:00:00Z", "2024-11-03T05:30:00Z"),
    ("30 1 * * *", "America/New_York", "2024-11-03T05:30:00Z", "2024-11-03T06:30:00Z"),
    ("30 1 * * *", "America/New_York", "2024-11-03T06:30:00Z", "2024-11-04T06:30:00Z"),
    ("0 * * * *", "America/New_York", "2024-11-03T05:30:00Z", "2024-11-03T06:00:00Z"),
    ("30 2 * * *", "America/New_York", "2024-11-03T04:00:00Z", "2024-11-03T07:30:00Z"),
    // A DST change at midnight (America/Sao_Paulo, 2018-11-04 00:00 -03 -> 01:00 -02): the day
    // walk corrects 23:00 forward to the next day's 01:00 and then back to its midnight...
    ("0 0 5 * *", "America/Sao_Paulo", "2018-11-03T15:00:00Z", "2018-11-05T02:00:00Z"),
    // ... and a daily-at-midnight walks hours past the missing midnight to the next one.
    ("0 0 * * *", "America/Sao_Paulo", "2018-11-03T15:00:00Z", "2018-11-05T02:00:00Z"),
];

#[test]
fn next_times_follow_robfig() {
    let mut failures = vec![];
    for (spec, tz, from, want) in NEXT {
        let sched = parse_standard(spec, zone(tz)).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let got = sched.next(utc(from));
        let want = (!want.is_empty()).then(|| utc(want));
        if got != want {
            failures.push(format!("{spec} in {tz} after {from}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn parse_errors_are_robfigs() {
    let cases = [
        ("", "empty spec string"),
        ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
        ("* * * * * *", "expected exactly 5 fields, found 6: [* * * * * *]"),
        ("* * * * 7", "end of range (7) above maximum (6): 7"),
        ("60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* 24 * * *", "end of range (24) above maximum (23): 24"),
        ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("* * * 13 *", "end of range (13) above maximum (12): 13"),
        ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
        ("*/0 * * * *", "step of range should be a positive number: */0"),
        ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * *", "too many slashes: */2/3"),
        ("x * * * *", "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"),
        ("-1 * * * *", "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"),
        ("* * * * sun-8", "end of range (8) above maximum (6): sun-8"),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@hourly ", "unrecognized descriptor: @hourly "),
        ("@every 5x", "failed to parse duration @every 5x: time: invalid duration \"5x\""),
        ("TZ=Mars/Olympus * * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
    ];
    for (spec, want) in cases {
        assert_eq!(parse_standard(spec, Zone::Named(chrono_tz::UTC)).err().as_deref(), Some(want), "{spec:?}");
    }
}

#[test]
fn names_and_steps_set_the_same_bits_as_numbers() {
    let z = Zone::Named(chrono_tz::UTC);
    assert_eq!(parse_standard("0 0 * jan-mar mon-fri", z), parse_standard("0 0 * 1-3 1-5", z));
    assert_eq!(parse_standard("5/15 * * * *", z), parse_standard("5,20,35,50 * * * *", z));
    assert_eq!(parse_standard("@daily", z), parse_standard("0 0 * * *", z));
    assert_eq!(parse_standard("@weekly", z), parse_standard("0 0 * * 0", z));
    assert_eq!(parse_standard("@every 1h", z), Ok(Schedule::Every(3600)));
    assert_eq!(parse_standard("@every 0s", z), Ok(Schedule::Every(1)), "cron.Every: at least a second");
    assert_eq!(parse_standard("@every -5s", z), Ok(Schedule::Every(1)));
}

#[test]
fn go_time_date_resolves_gaps_and_overlaps_as_go() {
    let ny = zone("America/New_York");
    let wall = |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    // 02:30 does not exist on 2024-03-10: Go gives 01:30 EST (the EDT reading, corrected).
    assert_eq!(ny.resolve(wall("2024-03-10 02:30")), utc("2024-03-10T06:30:00Z"));
    // 01:30 exists twice on 2024-11-03: Go picks the first (EDT).
    assert_eq!(ny.resolve(wall("2024-11-03 01:30")), utc("2024-11-03T05:30:00Z"));
    assert_eq!(ny.resolve(wall("2024-07-01 12:00")), utc("2024-07-01T16:00:00Z"));
}
