//! CronJob schedules exactly as upstream reads them: `robfig/cron/v3`'s `ParseStandard` and its
//! `Schedule.Next`, written out here because no crate has the same semantics (see the README's
//! CronJob section: `cron` wants six or seven fields with Sunday = 1, `saffron` is Quartz-like and
//! UTC-only, `croner` takes day-of-week 7 and runs a spring-forward slot after the gap and a
//! fall-back slot once, where robfig skips the one and runs the other twice). Time zones come from
//! `chrono-tz` (the IANA database compiled in, as kube-controller-manager embeds Go's).
//!
//! What robfig does, and so what this does:
//! - five fields `minute hour day-of-month month day-of-week`, each a comma list of `*`/`?`
//!   (the same), `N`, `N-M`, with an optional `/step` (`N/step` = `N-max/step`); months
//!   `jan`..`dec` and days `sun`..`sat` by name (any case); day-of-week 0-6 (7 is refused);
//! - the descriptors `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
//!   `@hourly` and `@every <Go duration>` (at least 1 s, whole seconds, counted from the last run);
//! - a `TZ=`/`CRON_TZ=` prefix naming the zone (what upstream's `formatSchedule` adds for
//!   `spec.timeZone`);
//! - day-of-month and day-of-week: when either field is `*`/`?` (without a step above 1) both must
//!   match, otherwise either may (Vixie cron's rule, with robfig's reading of `*/2` as not a star);
//! - `next` walks months, then days in wall-clock steps, then hours and minutes in real-time steps,
//!   so across a DST change a spring-forward slot is skipped and a fall-back hour runs twice, and
//!   it gives up (no next time) past five years.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};

const STAR: u64 = 1 << 63;

/// A zone a schedule runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// The controller's own zone (robfig's `time.Local`): a CronJob without `spec.timeZone`.
    Local,
    /// An IANA zone.
    Named(chrono_tz::Tz),
}

impl Zone {
    /// Loads an IANA zone by name (case-sensitive, as Go's `time.LoadLocation`); `UTC` included.
    pub fn load(name: &str) -> Option<Zone> {
        name.parse::<chrono_tz::Tz>().ok().map(Zone::Named)
    }

    /// The zone's offset from UTC at the instant `utc`, in seconds.
    fn offset_at(&self, utc: NaiveDateTime) -> i64 {
        match self {
            Zone::Local => i64::from(chrono::Local.offset_from_utc_datetime(&utc).fix().local_minus_utc()),
            Zone::Named(tz) => i64::from(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc()),
        }
    }

    /// The wall-clock time at `t`.
    pub fn local(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.naive_utc() + Duration::seconds(self.offset_at(t.naive_utc()))
    }

    /// Go's `time.Date` in this zone: a wall-clock time to an instant. A time that occurs twice or
    /// not at all resolves as Go resolves it (the offset in force at the wall time read as UTC,
    /// corrected once by the offset in force at the instant that gives).
    pub fn resolve(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let first = self.offset_at(wall);
        let guess = wall - Duration::seconds(first);
        let offset = self.offset_at(guess);
        (wall - Duration::seconds(offset)).and_utc()
    }
}

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// Five cron fields as bit sets (bit `n` = value `n`; [`STAR`] = the field was `*`/`?`).
    Spec {
        /// Minutes 0-59.
        minute: u64,
        /// Hours 0-23.
        hour: u64,
        /// Days of the month 1-31.
        dom: u64,
        /// Months 1-12.
        month: u64,
        /// Days of the week 0-6 (Sunday = 0).
        dow: u64,
        /// Where the fields are read.
        zone: Zone,
    },
    /// `@every D`: every `D` seconds after the previous time.
    Every(i64),
}

type Bounds = (u32, u32, &'static [&'static str]);
const MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DOWS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const MINUTE: Bounds = (0, 59, &[]);
const HOUR: Bounds = (0, 23, &[]);
const DOM: Bounds = (1, 31, &[]);
const MONTH: Bounds = (1, 12, MONTHS);
const DOW: Bounds = (0, 6, DOWS);

fn bits(min: u32, max: u32, step: u32) -> u64 {
    (min..=max).step_by(step as usize).fold(0, |b, v| b | 1 << v)
}

fn all((min, max, _): Bounds) -> u64 {
    bits(min, max, 1) | STAR
}

fn one(v: u32) -> u64 {
    1 << v
}

/// `cron.ParseStandard`: five fields or a descriptor, optionally after `TZ=zone ` or
/// `CRON_TZ=zone `. Without a prefix the schedule runs in `default_zone`. Errors are robfig's
/// messages (what kube-apiserver puts in its 422 and the controller in `InvalidSchedule`).
pub fn parse_standard(spec: &str, default_zone: Zone) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut zone = default_zone;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let Some(space) = spec.find(' ') else {
            // robfig slices up to a missing space and panics (recovered into this error).
            return Err(format!("invalid location descriptior: {spec}"));
        };
        let eq = spec.find('=').unwrap_or(0);
        let name = &spec[eq + 1..space];
        zone = Zone::load(name).ok_or_else(|| format!("provided bad location {name}: unknown time zone {name}"))?;
        spec = spec[space..].trim();
    }
    if spec.starts_with('@') {
        return descriptor(spec, zone);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}: [{}]", fields.len(), fields.join(" ")));
    }
    Ok(Schedule::Spec {
        minute: field(fields[0], MINUTE)?,
        hour: field(fields[1], HOUR)?,
        dom: field(fields[2], DOM)?,
        month: field(fields[3], MONTH)?,
        dow: field(fields[4], DOW)?,
        zone,
    })
}

fn descriptor(spec: &str, zone: Zone) -> Result<Schedule, String> {
    let (minute, hour) = (one(0), one(0));
    let (dom, month, dow) = match spec {
        "@yearly" | "@annually" => (one(1), one(1), all(DOW)),
        "@monthly" => (one(1), all(MONTH), all(DOW)),
        "@weekly" => (all(DOM), all(MONTH), one(0)),
        "@daily" | "@midnight" => (all(DOM), all(MONTH), all(DOW)),
        "@hourly" => {
            return Ok(Schedule::Spec {
                minute,
                hour: all(HOUR),
                dom: all(DOM),
                month: all(MONTH),
                dow: all(DOW),
                zone,
            });
        }
        _ => {
            let Some(d) = spec.strip_prefix("@every ") else { return Err(format!("unrecognized descriptor: {spec}")) };
            let secs = go_duration(d)
                .ok_or_else(|| format!("failed to parse duration {spec}: time: invalid duration {d:?}"))?;
            // `cron.Every`: at least one second, rounded down to whole seconds.
            return Ok(Schedule::Every((secs.floor() as i64).max(1)));
        }
    };
    Ok(Schedule::Spec { minute, hour, dom, month, dow, zone })
}

/// Go's `time.ParseDuration` with its optional sign, in seconds.
fn go_duration(d: &str) -> Option<f64> {
    if d.trim() != d {
        return None;
    }
    let (neg, body) = match d.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, d.strip_prefix('+').unwrap_or(d)),
    };
    let secs = crate::duration::parse_go_duration(body)?;
    Some(if neg { -secs } else { secs })
}

fn field(f: &str, b: Bounds) -> Result<u64, String> {
    // Go's `strings.FieldsFunc`: empty items are dropped (`1,,2` is `1,2`; `,` matches nothing).
    f.split(',').filter(|p| !p.is_empty()).try_fold(0, |acc, part| Ok(acc | range(part, b)?))
}

fn number(expr: &str, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(expr)) {
        let base = if names.len() == 12 { 1 } else { 0 };
        return Ok(i as u32 + base);
    }
    match expr.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("negative number ({n}) not allowed: {expr}")),
        Ok(n) => Ok(u32::try_from(n).unwrap_or(u32::MAX)),
        Err(_) => {
            let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
            let why = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            Err(format!("failed to parse int from {expr}: strconv.Atoi: parsing {expr:?}: {why}"))
        }
    }
}

fn range(expr: &str, (min, max, names): Bounds) -> Result<u64, String> {
    let parts: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = parts[0].split('-').collect();
    let single = low_high.len() == 1;
    let mut extra = 0;
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        extra = STAR;
        (min, max)
    } else {
        let s = number(low_high[0], names)?;
        let e = match low_high.len() {
            1 => s,
            2 => number(low_high[1], names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (s, e)
    };
    let step = match parts.len() {
        1 => 1,
        2 => {
            let step = number(parts[1], &[])?;
            // "N/step" means "N-max/step".
            if single {
                end = max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!("beginning of range ({start}) below minimum ({min}): {expr}"));
    }
    if end > max {
        return Err(format!("end of range ({end}) above maximum ({max}): {expr}"));
    }
    if start > end {
        return Err(format!("beginning of range ({start}) beyond end of range ({end}): {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

/// Go's `AddDate` on a wall-clock time: months then days added field-wise, overflow normalised
/// (January 31 + 1 month = March 2 or 3).
fn add_date(wall: NaiveDateTime, months: i32, days: i64) -> NaiveDateTime {
    let m0 = wall.month0() as i32 + months;
    let year = wall.year() + m0.div_euclid(12);
    let month = m0.rem_euclid(12) as u32 + 1;
    let first = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or(NaiveDate::MAX);
    let date = first + Duration::days(i64::from(wall.day()) - 1 + days);
    date.and_time(wall.time())
}

fn truncate(t: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    let ts = t.timestamp();
    DateTime::from_timestamp(ts - ts.rem_euclid(secs), 0).unwrap_or(t)
}

impl Schedule {
    /// robfig's `Next`: the first time strictly after `t` (whole seconds) the schedule fires, or
    /// `None` when there is none within five years (Go's zero time).
    pub fn next(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match *self {
            Schedule::Every(secs) => {
                let t = t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()));
                Some(t + Duration::seconds(secs))
            }
            Schedule::Spec { minute, hour, dom, month, dow, zone } => {
                next_spec([minute, hour, dom, month, dow], zone, t)
            }
        }
    }

    /// The zone the fields are read in (`None` for `@every`).
    pub fn zone(&self) -> Option<Zone> {
        match self {
            Schedule::Spec { zone, .. } => Some(*zone),
            Schedule::Every(_) => None,
        }
    }
}

fn day_matches(dom: u64, dow: u64, wall: NaiveDateTime) -> bool {
    let dom_match = one(wall.day()) & dom != 0;
    let dow_match = one(wall.weekday().num_days_from_sunday()) & dow != 0;
    if dom & STAR != 0 || dow & STAR != 0 { dom_match && dow_match } else { dom_match || dow_match }
}

fn next_spec([minute, hour, dom, month, dow]: [u64; 5], zone: Zone, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // The upcoming whole second.
    let mut t = t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos())) + Duration::seconds(1);
    let mut added = false;
    let year_limit = zone.local(t).year() + 5;
    'wrap: loop {
        let mut w = zone.local(t);
        if w.year() > year_limit {
            return None;
        }
        while one(w.month()) & month == 0 {
            if !added {
                added = true;
                t = zone.resolve(NaiveDate::from_ymd_opt(w.year(), w.month(), 1)?.and_hms_opt(0, 0, 0)?);
                w = zone.local(t);
            }
            t = zone.resolve(add_date(w, 1, 0));
            w = zone.local(t);
            if w.month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(dom, dow, w) {
            if !added {
                added = true;
                t = zone.resolve(w.date().and_hms_opt(0, 0, 0)?);
                w = zone.local(t);
            }
            t = zone.resolve(add_date(w, 0, 1));
            w = zone.local(t);
            // Midnight moved by a DST change: back to midnight.
            if w.hour() != 0 {
                let h = i64::from(w.hour());
                t += if h > 12 { Duration::hours(24 - h) } else { Duration::hours(-h) };
                w = zone.local(t);
            }
            if w.day() == 1 {
                continue 'wrap;
            }
        }
        while one(w.hour()) & hour == 0 {
            if !added {
                added = true;
                t = zone.resolve(w.date().and_hms_opt(w.hour(), 0, 0)?);
            }
            t += Duration::hours(1);
            w = zone.local(t);
            if w.hour() == 0 {
                continue 'wrap;
            }
        }
        while one(w.minute()) & minute == 0 {
            if !added {
                added = true;
                t = truncate(t, 60);
            }
            t += Duration::minutes(1);
            w = zone.local(t);
            if w.minute() == 0 {
                continue 'wrap;
            }
        }
        // Seconds: the standard parser fixes them at 0.
        while w.second() != 0 {
            if !added {
                added = true;
                t = truncate(t, 1);
            }
            t += Duration::seconds(1);
            w = zone.local(t);
            if w.second() == 0 {
                continue 'wrap;
            }
        }
        return Some(t);
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
