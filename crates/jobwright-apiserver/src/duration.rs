//! Durations written the way Kubernetes users write them: Go's `time.ParseDuration` syntax
//! (`1h30m`, `90s`, `1.5h`, `300ms`), shared by CronJob validation, the simulate executor's
//! annotations and the command line.

use std::time::Duration;

/// Go's `time.ParseDuration` syntax (`1h30m`, `90s`, `1.5h`), in seconds.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "0" {
        return Some(0.0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mul = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mul;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A non-negative duration in Go syntax, or a bare number of seconds (`"3"`, `"0.5"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let secs = match s.parse::<f64>() {
        Ok(secs) => secs,
        Err(_) => parse_go_duration(s)?,
    };
    (secs >= 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_syntax_and_bare_seconds() {
        assert_eq!(parse_go_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_go_duration("300ms"), Some(0.3));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("10x"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("-1"), None);
    }
}
