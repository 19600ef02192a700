//! A request's query string, parsed once, as Go's `url.ParseQuery` does, for every consumer.
//!
//! The authorizer ([`super::auth::request_attributes`]: `watch`, and the `metadata.name` a
//! `fieldSelector` names) and the handler (selectors, options, watch) read the same parsed
//! [`Query`], so they can never disagree about what was asked. Were they to decode separately, a
//! request could show the authorizer one thing and the handler another: a user limited to
//! `resourceNames: [app-config]` sends `fieldSelector=<invalid UTF-8>&fieldSelector=metadata.name=app-config`,
//! one decoder skips the first value and authorizes `app-config`, the other lists with the first.
//!
//! The rules are Go's, which kube-apiserver uses (`req.URL.Query()`, errors ignored):
//!
//! - pairs are separated by `&`; a pair containing `;` is dropped (Go 1.17+), as is an empty one;
//! - key and value are unescaped as `url.QueryUnescape`: `+` is a space, `%XX` a byte; a pair with a
//!   malformed escape (`%`, `%G1`) is dropped;
//! - every value of a repeated key is kept, and [`Query::get`] answers the first (`Values.Get`);
//! - Go keeps decoded bytes that are not UTF-8 as they are; here they become U+FFFD (Rust strings
//!   are UTF-8). Either way such a value names no object (names are validated UTF-8) and is no
//!   valid selector, so both sides see the same unmatchable value.

/// A parsed query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `url.QueryUnescape`: `None` for a malformed `%` escape.
fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

impl Query {
    /// Parse a raw query string (without the `?`); `None` is an empty query.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut pairs = vec![];
        for pair in raw.unwrap_or_default().split('&') {
            if pair.is_empty() || pair.contains(';') {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if let (Some(k), Some(v)) = (unescape(k), unescape(v)) {
                pairs.push((k, v));
            }
        }
        Self { pairs }
    }

    /// The query of `uri`.
    pub fn from_uri(uri: &http::Uri) -> Self {
        Self::parse(uri.query())
    }

    /// The first value of `key` (Go's `Values.Get`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Whether `key`'s first value is `true` or `1`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// Every pair, in order, repeated keys included.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_go_url_parse_query() {
        let q = Query::parse(Some("a=1&b=x+y%21&a=2&&c&d=%zz&e;f=1&g=%4"));
        assert_eq!(q.get("a"), Some("1"), "the first value wins");
        assert_eq!(q.get("b"), Some("x y!"));
        assert_eq!(q.get("c"), Some(""), "a key without = has an empty value");
        assert_eq!(q.get("d"), None, "a malformed escape drops the pair");
        assert_eq!(q.get("e"), None, "a pair with a semicolon is dropped");
        assert_eq!(q.get("g"), None, "a truncated escape drops the pair");
        assert_eq!(q.pairs().filter(|(k, _)| *k == "a").count(), 2);
        assert_eq!(Query::parse(None), Query::default());
        assert!(Query::parse(Some("watch=1")).flag("watch"));
        assert!(!Query::parse(Some("watch=yes")).flag("watch"));
    }

    #[test]
    fn invalid_utf8_is_kept_as_a_value_not_skipped() {
        // The first fieldSelector is not UTF-8 once decoded: it is still the first value.
        let q = Query::parse(Some("fieldSelector=metadata.name%3D%FF&fieldSelector=metadata.name%3Dapp-config"));
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=\u{FFFD}"));
        let q = Query::parse(Some("%FF=1&x=2"));
        assert_eq!(q.get("\u{FFFD}"), Some("1"));
        assert_eq!(q.get("x"), Some("2"));
    }
}
