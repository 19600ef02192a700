//! Protobuf responses: which requests get them, and turning the handler's JSON answer into them.
//!
//! The handlers answer in JSON; when a request for a built-in type prefers
//! `application/vnd.kubernetes.protobuf` (alone, first, or by `q`, as client-go sends
//! `application/vnd.kubernetes.protobuf, */*`), the answer is re-encoded on its way out: single
//! objects, lists and `Status` errors as one envelope, watch streams frame by frame
//! (length-prefixed `WatchEvent`s). Custom resources have no protobuf form: upstream answers them
//! in JSON when JSON is acceptable too, and 406 when only protobuf is. Tables and
//! PartialObjectMetadata (`;as=...` ranges) stay as the handlers render them.

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, header};
use serde_json::Value;

use super::errors::StatusError;
use super::proto;

/// The encoding a request's `Accept` prefers for a plain object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preferred {
    /// JSON (or no preference).
    Json,
    /// Protobuf first; JSON acceptable too.
    Protobuf,
    /// Protobuf and nothing the server can send otherwise.
    OnlyProtobuf,
}

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptRange<'a> {
    /// The media type, lowercased (`application/json`, `*/*`...).
    pub media: String,
    /// `as=`, `g=`, `v=`: a transform asked for (`Table`, `PartialObjectMetadata`...).
    pub as_: Option<&'a str>,
    g: Option<&'a str>,
    v: Option<&'a str>,
}

impl AcceptRange<'_> {
    /// Whether the range asks for no transform or for one the server has (`meta.k8s.io/v1`
    /// Table or PartialObjectMetadata[List]); a range asking for another is one no serializer
    /// accepts.
    pub fn known_transform(&self) -> bool {
        self.as_.is_none_or(|a| {
            matches!(a, "Table" | "PartialObjectMetadata" | "PartialObjectMetadataList")
                && self.g == Some("meta.k8s.io")
                && self.v == Some("v1")
        })
    }
}

/// The ranges of a request's `Accept` in the order upstream's negotiation tries them: only the
/// first `Accept` header (Go's `Header.Get`), ranges sorted by goautoneg's rule (descending `q`,
/// then concrete types before `*`, concrete subtypes before `*`, then the client's order). A `q`
/// that does not parse counts as 0, and a range of `q=0` is still tried, last (upstream's
/// negotiation does not look at `q` beyond the order).
pub fn accept_ranges(headers: &HeaderMap) -> Vec<AcceptRange<'_>> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mut ranges: Vec<(f32, usize, AcceptRange<'_>)> = Vec::new();
    for (i, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        let mut r = AcceptRange { media, as_: None, g: None, v: None };
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "q" => q = val.trim().parse().ok().filter(|q: &f32| q.is_finite()).unwrap_or(0.0),
                    "as" => r.as_ = Some(val.trim()),
                    "g" => r.g = Some(val.trim()),
                    "v" => r.v = Some(val.trim()),
                    _ => {}
                }
            }
        }
        ranges.push((q, i, r));
    }
    let wild = |r: &AcceptRange<'_>| {
        let (t, sub) = r.media.split_once('/').unwrap_or((r.media.as_str(), ""));
        (t == "*", sub == "*")
    };
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(wild(&a.2).cmp(&wild(&b.2))).then(a.1.cmp(&b.1)));
    ranges.into_iter().map(|(_, _, r)| r).collect()
}

/// Read `Accept` as Go's negotiation does ([`accept_ranges`]); ranges with `as=` (tables,
/// partial metadata) are not a plain object's encoding, and ranges with a transform nobody
/// serves are skipped.
pub fn preferred(headers: &HeaderMap) -> Preferred {
    // Only a range naming the protobuf media type prefers anything but JSON: without one (what
    // kube-rs, kubectl's JSON requests and the in-process clients send), skip the parsing.
    let names_protobuf = |v: &HeaderValue| v.as_bytes().windows(8).any(|w| w.eq_ignore_ascii_case(b"protobuf"));
    if !headers.get(header::ACCEPT).is_some_and(names_protobuf) {
        return Preferred::Json;
    }
    let ranges: Vec<(String, bool)> = accept_ranges(headers)
        .into_iter()
        .filter(AcceptRange::known_transform)
        .map(|r| (r.media, r.as_.is_some()))
        .collect();
    let json_ok = |m: &str| matches!(m, "application/json" | "application/*" | "*/*" | "application/yaml");
    for (media, has_as) in &ranges {
        if media == proto::MEDIA_TYPE && !has_as {
            let json_later = ranges.iter().any(|(m, _)| json_ok(m));
            return if json_later { Preferred::Protobuf } else { Preferred::OnlyProtobuf };
        }
        if json_ok(media) || (media == proto::MEDIA_TYPE && *has_as) {
            return Preferred::Json;
        }
    }
    Preferred::Json
}

fn protobuf_response(mut r: Response, body: Vec<u8>, media: &'static str) -> Response {
    *r.body_mut() = Body::from(body);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
    r.headers_mut().remove(header::CONTENT_LENGTH);
    r
}

/// The 406 upstream sends a protobuf-only request for a type without protobuf.
pub fn not_acceptable() -> StatusError {
    StatusError::new(
        406,
        "NotAcceptable",
        "only the following media types are accepted: application/json, application/yaml",
    )
}

/// Marks a JSON answer whose objects are transformed (`as=Table`, `as=PartialObjectMetadata`)
/// though its `Content-Type` is plain `application/json` (a watch's, as upstream's): it stays JSON.
#[derive(Debug, Clone, Copy)]
pub struct Transformed;

/// Re-encode a handler's JSON answer for a built-in resource as protobuf. Answers that are not
/// plain JSON (tables, text, protobuf already) pass through unchanged.
pub async fn to_protobuf(r: Response, watch: bool) -> Response {
    let ct = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct != "application/json" || r.extensions().get::<Transformed>().is_some() {
        return r;
    }
    if watch && r.status().is_success() {
        let (mut parts, body) = r.into_parts();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(proto::WATCH_MEDIA_TYPE));
        return Response::from_parts(parts, watch_frames(body));
    }
    let (parts, body) = r.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let r = Response::from_parts(parts, Body::empty());
    let encoded = serde_json::from_slice::<Value>(&bytes).map_err(|e| e.to_string()).and_then(|v| {
        if proto::supports(v["apiVersion"].as_str().unwrap_or(""), v["kind"].as_str().unwrap_or("")) {
            proto::encode(&v).map_err(|e| e.message)
        } else {
            Err(String::new())
        }
    });
    match encoded {
        Ok(b) => protobuf_response(r, b, proto::MEDIA_TYPE),
        // A kind without protobuf (a Table, PartialObjectMetadata) stays JSON.
        Err(why) => {
            if !why.is_empty() {
                tracing::warn!(error = %why, "cannot encode an answer as protobuf; sending JSON");
            }
            let mut r = r;
            *r.body_mut() = Body::from(bytes);
            r
        }
    }
}

/// A newline-delimited JSON watch stream as length-prefixed protobuf `WatchEvent` frames.
fn watch_frames(body: Body) -> Body {
    let mut buf = BytesMut::new();
    let frames = body.into_data_stream().map(move |chunk| -> Result<Bytes, axum::Error> {
        buf.extend_from_slice(&chunk?);
        let mut out = Vec::new();
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line = buf.split_to(i + 1);
            let frame = serde_json::from_slice::<Value>(&line[..i]).map_err(|e| e.to_string()).and_then(|ev| {
                proto::watch_frame(ev["type"].as_str().unwrap_or(""), &ev["object"]).map_err(|e| e.message)
            });
            match frame {
                Ok(f) => out.extend(f),
                Err(why) => tracing::warn!(error = %why, "cannot encode a watch event as protobuf; dropped"),
            }
        }
        Ok(Bytes::from(out))
    });
    Body::from_stream(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pref(accept: &str) -> Preferred {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(accept).unwrap());
        preferred(&h)
    }

    #[test]
    fn accept_headers_as_clients_send_them() {
        assert_eq!(pref("application/vnd.kubernetes.protobuf, */*"), Preferred::Protobuf);
        assert_eq!(pref("application/vnd.kubernetes.protobuf,application/json"), Preferred::Protobuf);
        assert_eq!(pref("application/vnd.kubernetes.protobuf"), Preferred::OnlyProtobuf);
        assert_eq!(pref("application/json, application/vnd.kubernetes.protobuf"), Preferred::Json);
        assert_eq!(pref("application/json;q=0.5, application/vnd.kubernetes.protobuf"), Preferred::Protobuf);
        assert_eq!(pref("application/vnd.kubernetes.protobuf;q=0.1, application/json"), Preferred::Json);
        assert_eq!(pref(""), Preferred::Json);
        assert_eq!(pref("application/json"), Preferred::Json);
        // Media types are case-insensitive.
        assert_eq!(pref("Application/VND.Kubernetes.PROTOBUF"), Preferred::OnlyProtobuf);
        // Only the first Accept header counts (Go's `Header.Get`).
        let mut h = HeaderMap::new();
        h.append(header::ACCEPT, HeaderValue::from_static("application/json;q=0.5"));
        h.append(header::ACCEPT, HeaderValue::from_static("application/vnd.kubernetes.protobuf"));
        assert_eq!(preferred(&h), Preferred::Json);
        assert_eq!(preferred(&HeaderMap::new()), Preferred::Json);
        // A transform nobody serves is skipped, as the shape skips it: the next range decides.
        assert_eq!(
            pref("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/vnd.kubernetes.protobuf"),
            Preferred::OnlyProtobuf
        );
        assert_eq!(
            pref("application/json;as=Table;v=v1;g=meta.k8s.io, application/vnd.kubernetes.protobuf"),
            Preferred::Json
        );
        // A `q` that does not parse is 0; `q=0` ranges are still tried, last.
        assert_eq!(pref("application/json;q=nan, application/vnd.kubernetes.protobuf"), Preferred::Protobuf);
        assert_eq!(pref("application/vnd.kubernetes.protobuf;q=0, application/json;q=0.1"), Preferred::Json);
        // At equal `q`, a concrete type before `*/*`.
        assert_eq!(pref("*/*, application/vnd.kubernetes.protobuf"), Preferred::Protobuf);
        // client-go's metadata client: partial metadata first, which stays JSON.
        assert_eq!(
            pref(
                "application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"
            ),
            Preferred::Json
        );
        // kubectl get: tables first.
        assert_eq!(
            pref(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Preferred::Json
        );
    }
}
