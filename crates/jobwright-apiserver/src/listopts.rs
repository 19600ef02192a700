//! List and watch query parameters, decoded and validated as kube-apiserver does.
//!
//! kube-apiserver decodes the query into `metav1.ListOptions` with its parameter codec before any
//! handler logic, so a malformed integer (`limit`, `timeoutSeconds`) is a 400 BadRequest carrying
//! Go's `strconv` error, whatever the request; booleans (`watch`, `allowWatchBookmarks`) never
//! fail: only `false` (any case) and `0` are false, anything else, `yes` and the empty string
//! included, is true (`runtime.Convert_Slice_string_To_bool`). Then `ValidateListOptions` refuses
//! bad `resourceVersionMatch` combinations with a 422 on `ListOptions.meta.k8s.io`, and the storage
//! layer parses `resourceVersion` and the continue token (400 with `invalid resource version: …` /
//! `invalid continue token: …`).
//!
//! [`ListRequest::resolve`] turns the options into where a list is served from ([`ListFrom`]),
//! and [`list_at_error`] the store's refusals into upstream's 410/504 Statuses, including the
//! `metadata.continue` token of an expired continue.

use serde_json::{Value, json};

use super::errors::{FieldError, StatusError};
use super::registry::ResourceInfo;
use super::store::ListAtError;

/// The version prefix of continue tokens (`storage.continueToken.APIVersion`).
const TOKEN_VERSION: &str = "meta.k8s.io/v1";

/// Upstream's message for a list at an exact resourceVersion that was compacted.
pub const LIST_EXPIRED: &str = "The resourceVersion for the provided list is too old.";

/// Upstream's message for a continue token whose resourceVersion was compacted; the Status carries
/// a token (resourceVersion -1) that continues at the latest version.
pub const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// A Go boolean query parameter (`runtime.Convert_Slice_string_To_bool`).
pub fn go_bool(v: Option<&str>) -> bool {
    v.is_some_and(|s| !(s == "0" || s.eq_ignore_ascii_case("false")))
}

/// Go's `strconv.ParseInt(s, 10, 64)`, with its error text.
pub fn parse_int64(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"));
    }
    s.parse::<i64>().map_err(|_| format!("strconv.ParseInt: parsing {s:?}: value out of range"))
}

/// Go's `strconv.ParseUint(s, 10, 64)` (no sign allowed), with its error text.
pub fn parse_uint64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.ParseUint: parsing {s:?}: invalid syntax"));
    }
    s.parse::<u64>().map_err(|_| format!("strconv.ParseUint: parsing {s:?}: value out of range"))
}

/// A `resourceVersion` as upstream's `APIObjectVersioner.ParseResourceVersion` (`""` and `"0"`
/// are 0), a 400 `invalid resource version: …` otherwise.
pub fn parse_resource_version(s: &str) -> Result<u64, StatusError> {
    if s.is_empty() || s == "0" {
        return Ok(0);
    }
    parse_uint64(s).map_err(|e| {
        let fe = FieldError::invalid("resourceVersion", Value::String(s.to_string()), e);
        StatusError::bad_request(format!("invalid resource version: {fe}"))
    })
}

/// An integer query parameter, absent or decoded as the parameter codec does (400 with Go's
/// error text).
fn int_param(v: Option<&str>) -> Result<Option<i64>, StatusError> {
    v.map(|s| parse_int64(s).map_err(StatusError::bad_request)).transpose()
}

/// The list/watch options of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListRequest {
    /// `watch`.
    pub watch: bool,
    /// `resourceVersion`, as given (`None` when absent or empty).
    pub resource_version: Option<String>,
    /// `resourceVersionMatch` (`None` when absent or empty).
    pub resource_version_match: Option<String>,
    /// `limit` (0 or less: no limit).
    pub limit: i64,
    /// `continue` (`None` when absent or empty).
    pub continue_token: Option<String>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<i64>,
    /// `allowWatchBookmarks`.
    pub allow_watch_bookmarks: bool,
    /// `sendInitialEvents`, when given (upstream's `*bool`).
    pub send_initial_events: Option<bool>,
}

/// Where a list is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFrom {
    /// The resourceVersion to serve (`None`: the latest).
    pub at: Option<u64>,
    /// Served at the latest version, which must be at least this (`resourceVersion` with
    /// `NotOlderThan` or no match): a 504 "Too large resource version" otherwise.
    pub min: u64,
    /// Start after this `(namespace, name)` (from the continue token).
    pub start: Option<(String, String)>,
    /// Whether the request continues an earlier page (a compacted version is then the inconsistent
    /// continue 410, not the list one).
    pub continuing: bool,
}

fn empty_none(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.is_empty()).map(str::to_string)
}

fn list_options_info() -> ResourceInfo {
    ResourceInfo::new("meta.k8s.io", "v1", "listoptions", "ListOptions", false, &[], &[], &[])
}

impl ListRequest {
    /// Decode the parameters (`get` reads one query parameter).
    pub fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, StatusError> {
        Ok(Self {
            watch: go_bool(get("watch")),
            resource_version: empty_none(get("resourceVersion")),
            resource_version_match: empty_none(get("resourceVersionMatch")),
            limit: int_param(get("limit"))?.unwrap_or(0),
            continue_token: empty_none(get("continue")),
            timeout_seconds: int_param(get("timeoutSeconds"))?,
            allow_watch_bookmarks: go_bool(get("allowWatchBookmarks")),
            send_initial_events: get("sendInitialEvents").map(|v| go_bool(Some(v))),
        })
    }

    /// Upstream's `ValidateListOptions` for a list (`watch` false) or a watch: a 422 Invalid on
    /// `ListOptions.meta.k8s.io` naming `resourceVersionMatch` / `sendInitialEvents`.
    pub fn validate(&self, watch: bool) -> Result<(), StatusError> {
        let mut errs = vec![];
        let m = self.resource_version_match.as_deref();
        if watch {
            if self.send_initial_events.is_some() && m != Some("NotOlderThan") {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if let Some(m) = m {
                if self.send_initial_events.is_none() {
                    errs.push(FieldError::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                    ));
                }
                if m != "NotOlderThan" {
                    errs.push(FieldError::not_supported("resourceVersionMatch", json!(m), &["NotOlderThan"]));
                }
                if self.continue_token.is_some() {
                    errs.push(FieldError::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
            }
            if self.send_initial_events == Some(true) && !self.allow_watch_bookmarks {
                errs.push(FieldError::forbidden(
                    "allowWatchBookmarks",
                    "allowWatchBookmarks required when sendInitialEvents is enabled",
                ));
            }
        } else {
            if let Some(m) = m {
                if self.resource_version.is_none() {
                    errs.push(FieldError::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden unless resourceVersion is provided",
                    ));
                }
                if self.continue_token.is_some() {
                    errs.push(FieldError::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch is forbidden when continue is provided",
                    ));
                }
                if m != "Exact" && m != "NotOlderThan" {
                    errs.push(FieldError::not_supported(
                        "resourceVersionMatch",
                        json!(m),
                        &["Exact", "NotOlderThan", ""],
                    ));
                }
                if m == "Exact" && self.resource_version.as_deref() == Some("0") {
                    errs.push(FieldError::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
            }
            if self.send_initial_events.is_some() {
                errs.push(FieldError::forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(StatusError::invalid(&list_options_info(), "", &errs)) }
    }

    /// Where a (validated) list is served from, as etcd3's `GetList`: a continue token's
    /// resourceVersion (-1: the latest); `Exact`, or a `limit` with a non-zero `resourceVersion`
    /// and no match (the legacy case), at exactly that version; otherwise the latest, not older
    /// than `resourceVersion`.
    pub fn resolve(&self) -> Result<ListFrom, StatusError> {
        let rv = parse_resource_version(self.resource_version.as_deref().unwrap_or(""))?;
        if let Some(token) = &self.continue_token {
            let (token_rv, start) = decode_continue(token)?;
            if self.resource_version.as_deref().is_some_and(|v| v != "0") {
                return Err(StatusError::bad_request("specifying resource version is not allowed when using continue"));
            }
            let at = u64::try_from(token_rv).ok();
            return Ok(ListFrom { at, min: 0, start: Some(start), continuing: true });
        }
        let exact = match self.resource_version_match.as_deref() {
            Some("Exact") => true,
            None => self.limit > 0 && rv > 0,
            _ => false,
        };
        Ok(if exact {
            ListFrom { at: Some(rv), min: 0, start: None, continuing: false }
        } else {
            ListFrom { at: None, min: rv, start: None, continuing: false }
        })
    }
}

/// A continue token: `{"v":"meta.k8s.io/v1","rv":RV,"start":"NS\u0000NAME"}`, hex-encoded.
pub fn encode_continue(rv: i64, ns: &str, name: &str) -> String {
    let raw = json!({"v": TOKEN_VERSION, "rv": rv, "start": format!("{ns}\u{0}{name}")}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The resourceVersion (-1: latest) and start key of a continue token, with upstream's errors.
pub fn decode_continue(token: &str) -> Result<(i64, (String, String)), StatusError> {
    let invalid =
        |why: &str| StatusError::bad_request(format!("invalid continue token: continue key is not valid{why}"));
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(invalid(""));
    }
    let bytes: Result<Vec<u8>, _> =
        (0..token.len()).step_by(2).map(|i| u8::from_str_radix(&token[i..i + 2], 16)).collect();
    let v: Value = serde_json::from_slice(&bytes.map_err(|_| invalid(""))?).map_err(|_| invalid(""))?;
    if v["v"] != TOKEN_VERSION {
        return Err(invalid(&format!(
            ": server does not recognize this encoded version {}",
            v["v"].as_str().unwrap_or_default()
        )));
    }
    let rv = v["rv"].as_i64().unwrap_or(0);
    if rv == 0 {
        return Err(invalid(": incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    let start = v["start"].as_str().unwrap_or_default();
    if start.is_empty() {
        return Err(invalid(": encoded start key empty (version meta.k8s.io/v1)"));
    }
    let (ns, name) = start.split_once('\u{0}').ok_or_else(|| invalid(""))?;
    Ok((rv, (ns.to_string(), name.to_string())))
}

/// kube-apiserver's `Too large resource version` (504 Timeout, cause `ResourceVersionTooLarge`).
pub fn too_large(requested: u64, current: u64) -> StatusError {
    StatusError::new(504, "Timeout", format!("Timeout: Too large resource version: {requested}, current: {current}"))
        .with_details(json!({
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        }))
}

/// The Status for a list the store cannot serve at `from`.
pub fn list_at_error(e: ListAtError, from: &ListFrom) -> StatusError {
    match e {
        ListAtError::Future { current } => too_large(from.at.unwrap_or(from.min), current),
        ListAtError::Compacted { .. } if from.continuing => {
            let (ns, name) = from.start.clone().unwrap_or_default();
            StatusError::expired(INCONSISTENT_CONTINUE).with_list_continue(encode_continue(-1, &ns, &name))
        }
        ListAtError::Compacted { .. } => StatusError::expired(LIST_EXPIRED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn req(q: &[(&str, &str)]) -> Result<ListRequest, StatusError> {
        let m: HashMap<&str, &str> = q.iter().copied().collect();
        ListRequest::parse(|k| m.get(k).copied())
    }

    #[test]
    fn booleans_follow_the_parameter_codec() {
        for (v, want) in [("true", true), ("1", true), ("yes", true), ("", true), ("TRUE", true), ("false", false)] {
            assert_eq!(req(&[("watch", v)]).unwrap().watch, want, "watch={v}");
        }
        for v in ["0", "FALSE", "False"] {
            assert!(!req(&[("allowWatchBookmarks", v)]).unwrap().allow_watch_bookmarks, "{v}");
        }
        assert!(!req(&[]).unwrap().watch);
        assert_eq!(req(&[("sendInitialEvents", "false")]).unwrap().send_initial_events, Some(false));
    }

    #[test]
    fn integers_are_go_parse_int() {
        let cases: &[(&str, &str, Result<i64, &str>)] = &[
            ("limit", "500", Ok(500)),
            ("limit", "+5", Ok(5)),
            ("limit", "-1", Ok(-1)),
            ("limit", "abc", Err("strconv.ParseInt: parsing \"abc\": invalid syntax")),
            ("limit", "", Err("strconv.ParseInt: parsing \"\": invalid syntax")),
            ("limit", "1.5", Err("strconv.ParseInt: parsing \"1.5\": invalid syntax")),
            (
                "limit",
                "99999999999999999999",
                Err("strconv.ParseInt: parsing \"99999999999999999999\": value out of range"),
            ),
            ("timeoutSeconds", "x", Err("strconv.ParseInt: parsing \"x\": invalid syntax")),
            ("timeoutSeconds", "30", Ok(30)),
        ];
        for (k, v, want) in cases {
            let got = req(&[(k, v)]).map(|r| if *k == "limit" { r.limit } else { r.timeout_seconds.unwrap() });
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, *w, "{k}={v}"),
                (Err(e), Err(w)) => {
                    assert_eq!((e.code, e.reason, e.message.as_str()), (400, "BadRequest", *w), "{k}={v}")
                }
                (g, w) => panic!("{k}={v}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn resource_versions_are_go_parse_uint() {
        assert_eq!(parse_resource_version("").unwrap(), 0);
        assert_eq!(parse_resource_version("0").unwrap(), 0);
        assert_eq!(parse_resource_version("17").unwrap(), 17);
        for (v, why) in [
            ("abc", "invalid syntax"),
            ("+5", "invalid syntax"),
            ("-1", "invalid syntax"),
            ("99999999999999999999", "value out of range"),
        ] {
            let e = parse_resource_version(v).unwrap_err();
            assert_eq!(e.code, 400);
            assert_eq!(
                e.message,
                format!(
                    "invalid resource version: resourceVersion: Invalid value: {v:?}: strconv.ParseUint: parsing {v:?}: {why}"
                )
            );
        }
    }

    #[test]
    fn resource_version_match_rules_for_lists() {
        let prefix = "ListOptions.meta.k8s.io \"\" is invalid: ";
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[("resourceVersion", "5"), ("resourceVersionMatch", "Exact")], None),
            (&[("resourceVersion", "0"), ("resourceVersionMatch", "NotOlderThan")], None),
            (&[("resourceVersion", "5")], None),
            (
                &[("resourceVersionMatch", "Exact")],
                Some(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                ),
            ),
            (
                &[("resourceVersion", "0"), ("resourceVersionMatch", "Exact")],
                Some(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ),
            ),
            (
                &[("resourceVersion", "5"), ("resourceVersionMatch", "exact")],
                Some(
                    "resourceVersionMatch: Unsupported value: \"exact\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
                ),
            ),
            (
                &[("resourceVersion", "5"), ("resourceVersionMatch", "Exact"), ("continue", "x")],
                Some("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"),
            ),
            (
                &[("sendInitialEvents", "true")],
                Some("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"),
            ),
        ];
        for (q, want) in cases {
            let r = req(q).unwrap().validate(false);
            match (r, want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => {
                    assert_eq!((e.code, e.reason), (422, "Invalid"), "{q:?}");
                    assert_eq!(e.message, format!("{prefix}{w}"), "{q:?}");
                }
                (r, w) => panic!("{q:?}: got {r:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn resource_version_match_rules_for_watches() {
        let ok: &[&[(&str, &str)]] = &[
            &[("resourceVersion", "5")],
            &[("sendInitialEvents", "true"), ("allowWatchBookmarks", "true"), ("resourceVersionMatch", "NotOlderThan")],
        ];
        for q in ok {
            assert_eq!(req(q).unwrap().validate(true), Ok(()), "{q:?}");
        }
        let e =
            req(&[("resourceVersion", "5"), ("resourceVersionMatch", "Exact")]).unwrap().validate(true).unwrap_err();
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided, resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"]"
        );
        let e =
            req(&[("sendInitialEvents", "true"), ("allowWatchBookmarks", "true")]).unwrap().validate(true).unwrap_err();
        assert!(
            e.message.ends_with("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"),
            "{}",
            e.message
        );
    }

    #[test]
    fn where_a_list_is_served() {
        let from = |q: &[(&str, &str)]| req(q).unwrap().resolve();
        assert_eq!(from(&[]).unwrap(), ListFrom { at: None, min: 0, start: None, continuing: false });
        assert_eq!(from(&[("resourceVersion", "7")]).unwrap().min, 7);
        assert_eq!(from(&[("resourceVersion", "7"), ("resourceVersionMatch", "Exact")]).unwrap().at, Some(7));
        assert_eq!(from(&[("resourceVersion", "7"), ("limit", "2")]).unwrap().at, Some(7), "legacy: exact");
        assert_eq!(from(&[("resourceVersion", "0"), ("limit", "2")]).unwrap().at, None);
        assert_eq!(
            from(&[("resourceVersion", "7"), ("limit", "2"), ("resourceVersionMatch", "NotOlderThan")]).unwrap().at,
            None
        );
        let t = encode_continue(9, "ns", "b");
        let f = from(&[("continue", &t)]).unwrap();
        assert_eq!((f.at, f.start, f.continuing), (Some(9), Some(("ns".into(), "b".into())), true));
        assert_eq!(from(&[("continue", &encode_continue(-1, "ns", "b"))]).unwrap().at, None);
        assert_eq!(from(&[("continue", &t), ("resourceVersion", "0")]).unwrap().at, Some(9));
        let e = from(&[("continue", &t), ("resourceVersion", "3")]).unwrap_err();
        assert_eq!(e.message, "specifying resource version is not allowed when using continue");
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_continue(&encode_continue(7, "ns", "name")).unwrap(), (7, ("ns".into(), "name".into())));
        let bad = |t: &str| decode_continue(t).unwrap_err();
        assert_eq!(bad("zz").code, 400);
        assert_eq!(bad("zz").message, "invalid continue token: continue key is not valid");
        assert_eq!(
            bad(&encode_continue(0, "ns", "n")).message,
            "invalid continue token: continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
        );
    }

    #[test]
    fn an_expired_continue_carries_a_token_for_the_rest() {
        let from = ListFrom { at: Some(3), min: 0, start: Some(("ns".into(), "b".into())), continuing: true };
        let e = list_at_error(ListAtError::Compacted { compacted: 5 }, &from);
        let s = e.to_status();
        assert_eq!((s["code"].as_u64(), s["reason"].as_str()), (Some(410), Some("Expired")));
        assert_eq!(s["message"], INCONSISTENT_CONTINUE);
        let token = s["metadata"]["continue"].as_str().unwrap();
        assert_eq!(decode_continue(token).unwrap(), (-1, ("ns".into(), "b".into())));
        let exact = ListFrom { continuing: false, start: None, ..from };
        let e = list_at_error(ListAtError::Compacted { compacted: 5 }, &exact);
        assert_eq!((e.code, e.message.as_str()), (410, LIST_EXPIRED));
        assert!(e.to_status()["metadata"].get("continue").is_none());
        let e = list_at_error(ListAtError::Future { current: 4 }, &exact);
        assert_eq!((e.code, e.reason), (504, "Timeout"));
        assert_eq!(e.message, "Timeout: Too large resource version: 3, current: 4");
    }
}
