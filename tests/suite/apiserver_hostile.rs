//! Hostile input against the API server: a bad-input corpus of ~600 requests (0 crashes, 0 hangs,
//! no 5xx beyond the documented ones, every 4xx a `Status` with a message, and everything
//! acknowledged readable back, also after a restart from `--data-dir`), plus the regressions of
//! issue 10's "one small request crashes or bricks the server".
//!
//! Requests go over raw TCP (HTTP/1.1, `Connection: close`) so paths, headers and bodies reach the
//! server exactly as written: no client normalizes `..`, encoded slashes or content types.

use std::time::Duration;

use jobwright::apiserver::conn::ConnLimits;
use jobwright::apiserver::http::{Server, ServerConfig};
use jobwright::apiserver::testkit::TestApiServer;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One answer, as read off the wire.
#[derive(Debug)]
struct Answer {
    code: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn addr(s: &TestApiServer) -> String {
    s.url().trim_start_matches("http://").to_string()
}

/// Send raw bytes, read the whole answer (the server closes: `Connection: close`). A hang is a
/// failure: no answer within 60 s panics.
async fn raw(addr: &str, bytes: &[u8]) -> Answer {
    let go = async {
        let mut sock = TcpStream::connect(addr).await.expect("connect");
        sock.write_all(bytes).await.expect("write");
        let mut out = Vec::new();
        let _ = sock.read_to_end(&mut out).await;
        out
    };
    let out = tokio::time::timeout(Duration::from_secs(60), go).await.expect("the server hung (no answer in 60 s)");
    parse_answer(&out)
}

fn parse_answer(out: &[u8]) -> Answer {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer (connection dropped: crash?): {:?}", String::from_utf8_lossy(out)));
    let headers = String::from_utf8_lossy(&out[..split]).to_string();
    let code: u16 = headers.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status code");
    let mut body = out[split + 4..].to_vec();
    if headers.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut plain = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let len = usize::from_str_radix(std::str::from_utf8(&rest[..eol]).unwrap_or("0").trim(), 16).unwrap_or(0);
            if len == 0 || rest.len() < eol + 2 + len {
                break;
            }
            plain.extend_from_slice(&rest[eol + 2..eol + 2 + len]);
            rest = &rest[(eol + 4 + len).min(rest.len())..];
        }
        body = plain;
    }
    Answer { code, headers, body }
}

async fn request(addr: &str, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Answer {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    raw(addr, &bytes).await
}

/// A 4xx/5xx answer must be a `Status` whose code is the HTTP code and whose message says what
/// was wrong; a 422 also names fields in `details.causes`.
fn check_status(what: &str, a: &Answer) {
    let st = a.json();
    assert_eq!(
        st["kind"],
        "Status",
        "{what}: {} without a Status body: {:?}",
        a.code,
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(st["code"], a.code, "{what}: Status code differs from the HTTP code");
    assert!(st["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: Status without a message: {st}");
    if a.code == 422 && st["message"] != "the server rejected our request due to an error in our request" {
        let causes = st["details"]["causes"].as_array().cloned().unwrap_or_default();
        assert!(!causes.is_empty(), "{what}: 422 without causes: {st}");
    }
}

fn nested(levels: usize) -> Value {
    let mut v = json!("leaf");
    for _ in 0..levels {
        v = json!({ "x": v });
    }
    v
}

// ---------------------------------------------------------------------------------------------
// The corpus

/// One corpus entry.
struct Req {
    what: String,
    method: &'static str,
    path: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

fn req(what: impl Into<String>, method: &'static str, path: impl Into<String>, ct: Option<&str>, body: Vec<u8>) -> Req {
    Req { what: what.into(), method, path: path.into(), content_type: ct.map(str::to_string), body }
}

const JSON: Option<&str> = Some("application/json");

/// Valid objects per resource collection: the corpus breaks them field by field.
fn bases() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "labels": {"a": "b"}, "annotations": {"n": "v"}}, "data": {"k": "v"}, "binaryData": {"b": "aGk="}}),
        ),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "job", "labels": {"a": "b"}},
            "spec": {"parallelism": 1, "completions": 2, "backoffLimit": 3, "completionMode": "Indexed", "activeDeadlineSeconds": 60,
                "ttlSecondsAfterFinished": 5, "suspend": true, "podFailurePolicy": {"rules": [{"action": "FailJob",
                    "onExitCodes": {"operator": "In", "values": [42]}}]},
                "template": {"metadata": {"labels": {"x": "y"}}, "spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"], "env": [{"name": "E", "value": "1"}],
                        "resources": {"limits": {"cpu": "1"}}}]}}}}),
        ),
        (
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod", "finalizers": ["x/y"]},
            "spec": {"restartPolicy": "Never", "nodeName": "n", "activeDeadlineSeconds": 5,
                "containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}], "args": ["a"]}]}}),
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "cj"}, "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid", "timeZone": "UTC",
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                    "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "lease"}, "spec": {"holderIdentity": "me", "leaseDurationSeconds": 10, "renewTime": "2024-01-01T00:00:00.000000Z"}}),
        ),
        ("/api/v1/namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nsx"}})),
    ]
}

/// Every leaf path of `v` (`/spec/template/...` pointers) and every container path.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if !at.is_empty() {
                out.push(at.clone());
            }
            for (k, c) in m {
                pointers(c, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(a) => {
            out.push(at.clone());
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => out.push(at),
    }
}

fn wrong_values() -> Vec<Value> {
    vec![
        json!(7),
        json!(-1),
        json!(1.5),
        json!("str"),
        json!(true),
        json!(null),
        json!([]),
        json!([1, "a"]),
        json!({}),
        json!({"a": {"b": 1}}),
        json!("x".repeat(70_000)),
        json!(9_223_372_036_854_775_807i64),
        json!("\u{0}\u{202e}é"),
    ]
}

/// POSTs of `base` with each field in turn set to every `every`-th wrong value (rotating).
fn wrong_field_values(path: &str, base: &Value, every: usize) -> Vec<Req> {
    let mut out = Vec::new();
    let mut ptrs = Vec::new();
    pointers(base, String::new(), &mut ptrs);
    for (i, p) in ptrs.iter().enumerate() {
        if p == "/apiVersion" || p == "/kind" {
            continue;
        }
        for (j, w) in wrong_values().into_iter().enumerate() {
            if (i + j) % every != 0 {
                continue;
            }
            let mut obj = base.clone();
            if let Some(slot) = obj.pointer_mut(p) {
                *slot = w.clone();
            }
            if p != "/metadata/name" && p != "/metadata" {
                obj["metadata"]["name"] = json!(format!("t{i}-{j}"));
            }
            out.push(req(
                format!("POST {path} with {p} = {}", short(&w)),
                "POST",
                path,
                JSON,
                serde_json::to_vec(&obj).unwrap(),
            ));
        }
    }
    out
}

/// How many items each list holds; each must be 200 and parse with serde_json's limits.
async fn list_lengths(a: &str, lists: &[&str]) -> Vec<usize> {
    let mut out = Vec::new();
    for l in lists {
        let r = request(a, "GET", l, None, b"").await;
        assert_eq!(r.code, 200, "{l}");
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{l} is not readable back: {e}"));
        out.push(v["items"].as_array().map(Vec::len).unwrap_or(0));
    }
    out
}

fn corpus() -> Vec<Req> {
    let mut out = Vec::new();
    // Wrong types and odd values per field.
    for (path, base) in bases() {
        // Every field gets a few of the wrong values (rotating), keeping the corpus ~600.
        out.extend(wrong_field_values(path, &base, 4));
        // Deep, wide and huge bodies.
        for (d, what) in [
            (60, "deep known-free"),
            (118, "deep just below the stored limit"),
            (125, "deep as issue 10"),
            (126, "deeper"),
            (140, "deeper than the parser"),
        ] {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!(format!("deep-{d}"));
            obj["unknownField"] = nested(d);
            let body = if d >= 128 {
                // serde_json cannot build it: write it by hand.
                let s = serde_json::to_string(&obj).unwrap();
                s.replacen(
                    "\"unknownField\":",
                    &format!("\"unknownField\":{}1{},\"u2\":", "[".repeat(d), "]".repeat(d)),
                    1,
                )
                .into_bytes()
            } else {
                serde_json::to_vec(&obj).unwrap()
            };
            out.push(req(format!("POST {path} {what} ({d}) unknown field"), "POST", path, JSON, body));
        }
        out.push(req(format!("POST {path} 100k labels"), "POST", path, JSON, {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!("wide");
            obj["metadata"]["labels"] = Value::Object((0..100_000).map(|i| (format!("k{i}"), json!("v"))).collect());
            serde_json::to_vec(&obj).unwrap()
        }));
        out.push(req(format!("POST {path} body over 3 MiB"), "POST", path, JSON, {
            let mut obj = base.clone();
            obj["metadata"]["annotations"] = json!({"big": "x".repeat(3 * 1024 * 1024 + 10)});
            serde_json::to_vec(&obj).unwrap()
        }));
        out.push(req(format!("POST {path} 1 MB annotation"), "POST", path, JSON, {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!("bigann");
            obj["metadata"]["annotations"] = json!({"big": "x".repeat(1024 * 1024)});
            serde_json::to_vec(&obj).unwrap()
        }));
        // Malformed bodies and content types.
        for (what, ct, body) in [
            ("empty body", JSON, b"".to_vec()),
            ("truncated JSON", JSON, b"{\"metadata\": {\"name\": \"a\"".to_vec()),
            ("JSON array", JSON, b"[1,2,3]".to_vec()),
            ("JSON string", JSON, b"\"x\"".to_vec()),
            ("JSON null", JSON, b"null".to_vec()),
            ("trailing garbage", JSON, b"{}garbage".to_vec()),
            ("invalid UTF-8", JSON, b"{\"metadata\":{\"name\":\"\xff\xfe\"}}".to_vec()),
            ("duplicate keys", JSON, b"{\"metadata\":{\"name\":\"a\",\"name\":\"b\"}}".to_vec()),
            ("huge number", JSON, b"{\"metadata\":{\"name\":\"n\"},\"x\":1e999999}".to_vec()),
            ("text/plain", Some("text/plain"), b"{}".to_vec()),
            ("application/xml", Some("application/xml"), b"<a/>".to_vec()),
            ("no content type", None, b"{}".to_vec()),
            ("charset param", Some("application/json; charset=latin1"), b"{}".to_vec()),
            ("garbage protobuf", Some("application/vnd.kubernetes.protobuf"), b"k8s\x00\xff\xff\xff\xff\x0f garbage".to_vec()),
            ("short protobuf", Some("application/vnd.kubernetes.protobuf"), b"k8s".to_vec()),
            ("YAML bomb", Some("application/yaml"), b"a: &a [\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e]\ng: [*f,*f,*f,*f,*f,*f,*f,*f]\n".to_vec()),
            ("deep YAML", Some("application/yaml"), format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes()),
            ("wrong kind", JSON, br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"w"}}"#.to_vec()),
            ("wrong apiVersion", JSON, br#"{"apiVersion":"v9","kind":"ConfigMap","metadata":{"name":"w"}}"#.to_vec()),
            ("namespace mismatch", JSON, br#"{"metadata":{"name":"w","namespace":"other"}}"#.to_vec()),
            ("no name", JSON, br#"{"metadata":{}}"#.to_vec()),
            ("bad generateName", JSON, br#"{"metadata":{"generateName":"UPPER_"}}"#.to_vec()),
        ] {
            out.push(req(format!("POST {path} {what}"), "POST", path, ct, body));
        }
        // Names.
        for name in [
            "a".repeat(254),
            "a".repeat(64),
            "UPPER".into(),
            "..".into(),
            ".".into(),
            "a/b".into(),
            "a%2Fb".into(),
            "é".into(),
            "-a".into(),
            "a_b".into(),
            " ".into(),
        ] {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!(name);
            out.push(req(
                format!("POST {path} name {name:.20}"),
                "POST",
                path,
                JSON,
                serde_json::to_vec(&obj).unwrap(),
            ));
        }
        // Query values.
        for q in [
            "dryRun=Maybe",
            "dryRun=All&dryRun=All",
            "fieldValidation=Foo",
            "fieldManager=",
            "fieldManager=%00",
            &format!("fieldManager={}", "m".repeat(200)),
            "pretty=notabool",
            "%zz=1",
            "a=%ff%fe",
        ] {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!("q");
            out.push(req(
                format!("POST {path}?{q}"),
                "POST",
                format!("{path}?{q}"),
                JSON,
                serde_json::to_vec(&obj).unwrap(),
            ));
        }
        for q in [
            "limit=-1",
            "limit=abc",
            "limit=99999999999999999999",
            "continue=garbage",
            "continue=eyJ9",
            "labelSelector=a%20notin%20()",
            "labelSelector=!!",
            "labelSelector=a%20in%20(b",
            "labelSelector=a=b=c",
            "labelSelector=(",
            "labelSelector=a,,b",
            "labelSelector=%ff",
            &format!("labelSelector={}", "a".repeat(70)),
            "labelSelector=a%3E1",
            "labelSelector=a%20gt%20x",
            "labelSelector=a!=",
            "fieldSelector=spec.bogus=1",
            "fieldSelector=metadata.name",
            "fieldSelector=metadata.name==a==b",
            "fieldSelector=%ff=1",
            "fieldSelector=metadata.name%3Da,",
            "fieldSelector=\\",
            "watch=yes&timeoutSeconds=1",
            "timeoutSeconds=-5&watch=1&resourceVersion=0",
            "resourceVersion=abc",
            "resourceVersionMatch=Bogus",
            "includeObject=Bogus",
            "sendInitialEvents=maybe",
        ] {
            out.push(req(format!("GET {path}?{q}"), "GET", format!("{path}?{q}"), None, vec![]));
        }
    }
    // Path tricks.
    for p in [
        "/api/v1/namespaces/default/configmaps/..",
        "/api/v1/namespaces/default/configmaps/%2e%2e",
        "/api/v1/namespaces/%2e%2e/configmaps",
        "/api/v1/namespaces/default/configmaps/a%2Fb",
        "/api/v1/namespaces/default/configmaps/a/b/c/d",
        "//api//v1//namespaces",
        "/api/v1/namespaces/default/configmaps/",
        "/api/v1/../v1/namespaces",
        "/api/v1/namespaces/default/../kube-system/configmaps",
        "/api/v1/namespaces/default/configmaps/%00",
        "/api/v2/pods",
        "/apis/nope/v1/things",
        "/apis/batch/v9/jobs",
        "/api",
        "/apis/batch/v1/namespaces/default/jobs/x/status/extra",
        "/api/v1/namespaces/default/pods/x/log?tailLines=abc",
        "/api/v1/namespaces/default/pods/x/log?container=%ff",
        "/api/v1/namespaces/default/pods/nope/log",
        "/api/v1/namespaces/default/pods/x/exec",
        "/api/v1/namespaces/default/pods/x/proxy",
        &format!("/api/v1/namespaces/default/configmaps/{}", "a".repeat(5000)),
        "/openapi/v3/apis/nope/v1",
        "/version/x",
        "/api/v1/namespaces/default/configmaps/x?watch=true&timeoutSeconds=1&resourceVersion=99999999",
    ] {
        for m in ["GET", "DELETE", "PUT", "PATCH", "POST"] {
            let ct = if m == "PATCH" { Some("application/merge-patch+json") } else { JSON };
            out.push(req(format!("{m} {p:.80}"), m, p, ct, b"{}".to_vec()));
        }
    }
    out
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 24 { format!("{}...({} bytes)", &s[..20], s.len()) } else { s }
}

/// Patches against an existing ConfigMap `p` and Job `pj`.
fn patch_corpus() -> Vec<Req> {
    let cm = "/api/v1/namespaces/default/configmaps/p";
    let job = "/apis/batch/v1/namespaces/default/jobs/pj";
    let mut out = Vec::new();
    let jp = Some("application/json-patch+json");
    let mp = Some("application/merge-patch+json");
    let smp = Some("application/strategic-merge-patch+json");
    let apply = Some("application/apply-patch+yaml");
    let deep = serde_json::to_string(&nested(120)).unwrap();
    let mut doubling = vec![
        json!({"op": "add", "path": "/data", "value": {}}),
        json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(3000)}}),
    ];
    for i in 0..23 {
        doubling.push(
            json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}),
        );
    }
    let mut depth_doubling = vec![json!({"op": "add", "path": "/zzz", "value": nested(110)})];
    for k in 0..5 {
        depth_doubling.push(json!({"op": "copy", "from": "/zzz", "path": format!("/zzz{}", "/x".repeat(110 << k))}));
    }
    let many_ops: Vec<Value> =
        (0..10_001).map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"})).collect();
    let ok_ops: Vec<Value> =
        (0..10_000).map(|_| json!({"op": "test", "path": "/kind", "value": "ConfigMap"})).collect();
    for (what, ct, body) in [
        ("json: copy-doubling annotations (memory)", jp, serde_json::to_vec(&doubling).unwrap()),
        ("json: copy-doubling depth (stack)", jp, serde_json::to_vec(&depth_doubling).unwrap()),
        ("json: 10,001 operations", jp, serde_json::to_vec(&many_ops).unwrap()),
        ("json: 10,000 operations", jp, serde_json::to_vec(&ok_ops).unwrap()),
        ("json: add deep value", jp, format!(r#"[{{"op":"add","path":"/data","value":{deep}}}]"#).into_bytes()),
        ("json: not an array", jp, b"{}".to_vec()),
        ("json: op not an object", jp, b"[1]".to_vec()),
        ("json: unknown op", jp, br#"[{"op":"frob","path":"/a"}]"#.to_vec()),
        ("json: bad pointer", jp, br#"[{"op":"add","path":"data","value":1}]"#.to_vec()),
        ("json: index past end", jp, br#"[{"op":"add","path":"/metadata/finalizers/5","value":"a"}]"#.to_vec()),
        ("json: -1 index", jp, br#"[{"op":"add","path":"/metadata/finalizers/-1","value":"a"}]"#.to_vec()),
        ("json: move into own child", jp, br#"[{"op":"move","from":"/metadata","path":"/metadata/x"}]"#.to_vec()),
        ("json: replace root with array", jp, br#"[{"op":"replace","path":"","value":[1]}]"#.to_vec()),
        ("json: remove root", jp, br#"[{"op":"remove","path":""}]"#.to_vec()),
        ("json: change uid", jp, br#"[{"op":"replace","path":"/metadata/uid","value":"other"}]"#.to_vec()),
        ("json: change name", jp, br#"[{"op":"replace","path":"/metadata/name","value":"other"}]"#.to_vec()),
        ("json: remove name", jp, br#"[{"op":"remove","path":"/metadata/name"}]"#.to_vec()),
        ("json: change namespace", jp, br#"[{"op":"replace","path":"/metadata/namespace","value":"kube-system"}]"#.to_vec()),
        ("json: wrong type labels", jp, br#"[{"op":"add","path":"/metadata/labels","value":"x"}]"#.to_vec()),
        ("json: test fails", jp, br#"[{"op":"test","path":"/kind","value":"Pod"}]"#.to_vec()),
        ("json: path ~2", jp, br#"[{"op":"add","path":"/data/a~2b","value":"1"}]"#.to_vec()),
        ("merge: deep", mp, format!(r#"{{"data":{deep}}}"#).into_bytes()),
        ("merge: too deep to parse", mp, format!("{}1{}", "[".repeat(200), "]".repeat(200)).into_bytes()),
        ("merge: array", mp, b"[1]".to_vec()),
        ("merge: scalar", mp, b"7".to_vec()),
        ("merge: garbage", mp, b"{{".to_vec()),
        ("merge: change uid", mp, br#"{"metadata":{"uid":"other"}}"#.to_vec()),
        ("merge: change name", mp, br#"{"metadata":{"name":"other"}}"#.to_vec()),
        ("merge: change namespace", mp, br#"{"metadata":{"namespace":"kube-system"}}"#.to_vec()),
        ("merge: wrong type data", mp, br#"{"data":[1,2]}"#.to_vec()),
        ("merge: null metadata", mp, br#"{"metadata":null}"#.to_vec()),
        ("merge: unknown deep", mp, format!(r#"{{"zzz":{}}}"#, serde_json::to_string(&nested(125)).unwrap()).into_bytes()),
        ("smp: $patch delete", smp, br#"{"$patch":"delete"}"#.to_vec()),
        ("smp: $patch bogus", smp, br#"{"data":{"$patch":"bogus"}}"#.to_vec()),
        ("smp: $retainKeys wrong type", smp, br#"{"data":{"$retainKeys":"x"}}"#.to_vec()),
        ("smp: $deleteFromPrimitiveList", smp, br#"{"$deleteFromPrimitiveList/finalizers":"x"}"#.to_vec()),
        ("smp: $setElementOrder wrong", smp, br#"{"metadata":{"$setElementOrder/finalizers":[{"a":1}]}}"#.to_vec()),
        ("smp: deep", smp, format!(r#"{{"data":{deep}}}"#).into_bytes()),
        ("smp: change name", smp, br#"{"metadata":{"name":"other"}}"#.to_vec()),
        ("apply: garbage", apply, b"{{{{".to_vec()),
        ("apply: no kind", apply, b"metadata: {name: p}".to_vec()),
        ("apply: wrong name", apply, b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}".to_vec()),
        ("apply: deep YAML", apply, format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: p}}\ndata: {}1{}", "[".repeat(100), "]".repeat(100)).into_bytes()),
        ("apply: YAML bomb", apply, b"a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n".to_vec()),
        ("bad patch content type", Some("application/json"), b"{}".to_vec()),
    ] {
        let q = if ct == apply { "?fieldManager=corpus" } else { "" };
        out.push(req(format!("PATCH cm {what}"), "PATCH", format!("{cm}{q}"), ct, body.clone()));
        out.push(req(format!("PATCH job {what}"), "PATCH", format!("{job}{q}"), ct, body));
    }
    for (what, body) in [
        ("parallelism string", br#"{"spec":{"parallelism":"x"}}"#.to_vec()),
        ("containers object", br#"{"spec":{"template":{"spec":{"containers":{"a":1}}}}}"#.to_vec()),
        (
            "containers $patch replace",
            br#"{"spec":{"template":{"spec":{"containers":[{"$patch":"replace"}]}}}}"#.to_vec(),
        ),
        ("containers without merge key", br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#.to_vec()),
        (
            "env $patch delete no key",
            br#"{"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"$patch":"delete"}]}]}}}}"#.to_vec(),
        ),
    ] {
        out.push(req(format!("PATCH job smp {what}"), "PATCH", job, smp, body));
    }
    for q in ["force=true", "fieldManager=%00", "fieldValidation=Bad"] {
        out.push(req(format!("PATCH cm merge ?{q}"), "PATCH", format!("{cm}?{q}"), mp, b"{}".to_vec()));
    }
    out
}

/// Whether a 5xx is one jobwright documents: strategic-merge directive errors are 500 upstream
/// too (README).
fn documented_5xx(r: &Req, a: &Answer) -> bool {
    a.code == 500 && r.content_type.as_deref() == Some("application/strategic-merge-patch+json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_corpus_never_crashes_hangs_or_acknowledges_the_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig { data_dir: Some(dir.path().to_path_buf()), ..ServerConfig::default() };
    let s = TestApiServer::start_with(config()).await;
    let a = addr(&s);
    let setup = [
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "p", "finalizers": ["a/b"]}, "data": {"k": "v"}}),
        ),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            json!({"metadata": {"name": "pj"}, "spec": {"suspend": true, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]}}}}),
        ),
    ];
    for (path, obj) in setup {
        let r = request(&a, "POST", path, JSON, &serde_json::to_vec(&obj).unwrap()).await;
        assert_eq!(r.code, 201, "{:?}", String::from_utf8_lossy(&r.body));
    }
    let mut all = corpus();
    all.extend(patch_corpus());
    assert!(all.len() >= 600, "the corpus has {} requests", all.len());
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    for r in &all {
        let ans = request(&a, r.method, &r.path, r.content_type.as_deref(), &r.body).await;
        *codes.entry(ans.code).or_default() += 1;
        assert!(
            ans.code < 500 || documented_5xx(r, &ans),
            "{}: {} {:?}",
            r.what,
            ans.code,
            String::from_utf8_lossy(&ans.body)
        );
        if ans.code >= 400 {
            check_status(&r.what, &ans);
        }
        if r.method != "GET" && ans.code < 300 {
            // Acknowledged: the answer itself is readable.
            assert!(!ans.json().is_null(), "{}: acknowledged without a readable object", r.what);
        }
    }
    println!("{} requests, answers by code: {codes:?}", all.len());
    // Still serving.
    let h = request(&a, "GET", "/healthz", None, b"").await;
    assert_eq!(h.code, 200);
    // Everything stored reads back through a JSON decoder with serde_json's (and kube-rs's) limit,
    // in a list (2 levels more than the object).
    let lists = [
        "/api/v1/configmaps",
        "/apis/batch/v1/jobs",
        "/api/v1/pods",
        "/apis/batch/v1/cronjobs",
        "/apis/coordination.k8s.io/v1/leases",
        "/api/v1/namespaces",
    ];
    let before = list_lengths(&a, &lists).await;
    // A restart from the data directory reads it all back.
    drop(s);
    assert!(Server::open(config()).is_ok(), "the server does not start again from its data directory");
    let s = TestApiServer::start_with(config()).await;
    let a = addr(&s);
    for (l, n) in lists.iter().zip(before) {
        let r = request(&a, "GET", l, None, b"").await;
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["items"].as_array().map(Vec::len).unwrap_or(0), n, "{l} after restart");
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions of issue 10

/// A 929-byte create with an unknown field nested 125 deep was stored with the field recorded in
/// managedFields, deeper than serde_json reads: the server then refused to start again.
#[tokio::test]
async fn unknown_field_nested_125_deep_is_pruned_before_managed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig { data_dir: Some(dir.path().to_path_buf()), ..ServerConfig::default() };
    let s = TestApiServer::start_with(config()).await;
    let a = addr(&s);
    for (path, obj) in [
        ("/api/v1/namespaces/default/configmaps", json!({"metadata": {"name": "deep"}, "zzz": nested(125)})),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            json!({"metadata": {"name": "deep"}, "spec": {"suspend": true, "zzz": nested(122),
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}}}}),
        ),
    ] {
        let r = request(&a, "POST", path, JSON, &serde_json::to_vec(&obj).unwrap()).await;
        assert_eq!(r.code, 201, "{:?}", String::from_utf8_lossy(&r.body));
        assert!(r.headers.contains("unknown field"), "a warning names the dropped field: {}", r.headers);
        let stored = r.json();
        assert!(stored.get("zzz").is_none() && stored["spec"].get("zzz").is_none());
        assert!(!stored["metadata"]["managedFields"].to_string().contains("zzz"), "dropped field recorded as owned");
    }
    drop(s);
    Server::open(config()).expect("the server starts again from its data directory");
}

/// A known field nested past the limit (a custom resource that preserves unknown fields) is
/// refused with a 422 naming the field and the limit, not stored.
#[tokio::test]
async fn objects_nested_past_the_limit_are_refused_naming_the_field() {
    let s = TestApiServer::start().await;
    let a = addr(&s);
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    let r = request(
        &a,
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        JSON,
        &serde_json::to_vec(&crd).unwrap(),
    )
    .await;
    assert_eq!(r.code, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let path = "/apis/example.com/v1/namespaces/default/things";
    let ok = json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "ok"}, "spec": nested(100)});
    assert_eq!(request(&a, "POST", path, JSON, &serde_json::to_vec(&ok).unwrap()).await.code, 201);
    let deep =
        json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "deep"}, "spec": nested(125)});
    let r = request(&a, "POST", path, JSON, &serde_json::to_vec(&deep).unwrap()).await;
    assert_eq!(r.code, 422, "{:?}", String::from_utf8_lossy(&r.body));
    check_status("deep custom resource", &r);
    let cause = &r.json()["details"]["causes"][0];
    assert!(cause["field"].as_str().unwrap().starts_with("spec.x.x"), "{cause}");
    assert!(cause["message"].as_str().unwrap().contains("at most 116 levels"), "{cause}");
    // A merge patch cannot get it there either.
    let patch = format!(r#"{{"spec":{}}}"#, serde_json::to_string(&nested(125)).unwrap());
    let r = request(&a, "PATCH", &format!("{path}/ok"), Some("application/merge-patch+json"), patch.as_bytes()).await;
    assert_eq!(r.code, 422, "{:?}", String::from_utf8_lossy(&r.body));
    let r = request(&a, "GET", &format!("{path}/deep"), None, b"").await;
    assert_eq!(r.code, 404);
}

async fn make_cm(a: &str, name: &str) {
    let body = json!({"metadata": {"name": name}, "data": {"k": "v"}});
    let r =
        request(a, "POST", "/api/v1/namespaces/default/configmaps", JSON, &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.code, 201);
}

/// An 8.6 KB JSON patch whose copies double a 120-deep value aborted the process (stack
/// overflow); a 3 KB one copying annotations into themselves exhausted memory.
#[tokio::test]
async fn json_patch_copies_are_bounded_in_depth_and_bytes() {
    let s = TestApiServer::start().await;
    let a = addr(&s);
    make_cm(&a, "c").await;
    let path = "/api/v1/namespaces/default/configmaps/c";
    // As in the issue: add a 110-deep value, then five copies of it onto its own leaf, each
    // doubling the depth.
    let mut ops = vec![json!({"op": "add", "path": "/zzz", "value": nested(110)})];
    for k in 0..5 {
        ops.push(json!({"op": "copy", "from": "/zzz", "path": format!("/zzz{}", "/x".repeat(110 << k))}));
    }
    let r = request(&a, "PATCH", path, Some("application/json-patch+json"), &serde_json::to_vec(&ops).unwrap()).await;
    assert_eq!(r.code, 422, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["details"]["causes"][0]["message"].as_str().unwrap().contains("at most 120 levels"),
        "{:?}",
        r.json()
    );

    let mut ops = vec![json!({"op": "add", "path": "/metadata/annotations", "value": {"a": "x".repeat(3000)}})];
    for i in 0..23 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations", "path": format!("/metadata/annotations/c{i}")}));
    }
    let r = request(&a, "PATCH", path, Some("application/json-patch+json"), &serde_json::to_vec(&ops).unwrap()).await;
    assert_eq!(r.code, 422, "{:?}", String::from_utf8_lossy(&r.body));
    let st = r.json();
    assert_eq!(st["message"], "the server rejected our request due to an error in our request");
    let why = st["details"]["causes"][0]["message"].as_str().unwrap();
    assert!(why.starts_with("Unable to complete the copy, the accumulated size increase of copy is "), "{why}");
    assert!(why.ends_with("exceeding the limit 3145728"), "{why}");
    // The object is untouched and the server alive.
    let r = request(&a, "GET", path, None, b"").await;
    assert_eq!(r.code, 200);
    assert!(r.json()["metadata"].get("annotations").is_none());
}

/// Patches that change metadata.uid, name or namespace were answered 200 and ignored.
#[tokio::test]
async fn patches_cannot_change_uid_name_or_namespace() {
    let s = TestApiServer::start().await;
    let a = addr(&s);
    make_cm(&a, "c").await;
    let path = "/api/v1/namespaces/default/configmaps/c";
    let mp = Some("application/merge-patch+json");
    let r = request(&a, "PATCH", path, mp, br#"{"metadata":{"uid":"0000"}}"#).await;
    assert_eq!(r.code, 422, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["message"],
        "ConfigMap \"c\" is invalid: metadata.uid: Invalid value: \"0000\": field is immutable"
    );
    assert_eq!(r.json()["details"]["causes"][0]["field"], "metadata.uid");
    let r = request(&a, "PATCH", path, mp, br#"{"metadata":{"name":"d"}}"#).await;
    assert_eq!(r.code, 400);
    assert_eq!(r.json()["message"], "the name of the object (d) does not match the name on the URL (c)");
    let r = request(&a, "PATCH", path, mp, br#"{"metadata":{"namespace":"kube-system"}}"#).await;
    assert_eq!(r.code, 400);
    assert_eq!(
        r.json()["message"],
        "the namespace of the object (kube-system) does not match the namespace on the request (default)"
    );
    // A PUT with another uid is the same 422.
    let cur = request(&a, "GET", path, None, b"").await.json();
    let mut put = cur.clone();
    put["metadata"]["uid"] = json!("0000");
    let r = request(&a, "PUT", path, JSON, &serde_json::to_vec(&put).unwrap()).await;
    assert_eq!(r.code, 422);
    // Giving the same uid, or none, is fine.
    let r =
        request(&a, "PATCH", path, mp, format!(r#"{{"metadata":{{"uid":{}}}}}"#, cur["metadata"]["uid"]).as_bytes())
            .await;
    assert_eq!(r.code, 200);
}

/// `a notin ()` is upstream's `a notin ("")` (its parser turns `()` into the empty string), so
/// it is accepted; broken selectors get upstream's messages.
#[tokio::test]
async fn selectors_parse_as_upstream() {
    let s = TestApiServer::start().await;
    let a = addr(&s);
    let get = |q: &str| format!("/api/v1/namespaces/default/configmaps?labelSelector={q}");
    assert_eq!(request(&a, "GET", &get("a%20notin%20()"), None, b"").await.code, 200);
    let r = request(&a, "GET", &get("a%20in%20(b"), None, b"").await;
    assert_eq!(r.code, 400);
    assert_eq!(r.json()["message"], "unable to parse requirement: found '', expected: ',' or ')'");
}

/// 414 and 431 came without a Status body.
#[tokio::test]
async fn uri_too_long_and_header_too_large_are_status_answers() {
    let s = TestApiServer::start().await;
    let a = addr(&s);
    let r =
        request(&a, "GET", &format!("/api/v1/namespaces/default/configmaps?x={}", "a".repeat(70_000)), None, b"").await;
    assert_eq!(r.code, 414);
    check_status("414", &r);
    let big = format!("GET /api HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(1_100_000));
    let r = raw(&a, big.as_bytes()).await;
    assert_eq!(r.code, 431);
    check_status("431", &r);
    assert!(r.json()["message"].as_str().unwrap().contains("1048576 bytes"));
    let r = raw(&a, b"GARBAGE\r\n\r\n").await;
    assert_eq!(r.code, 400);
    check_status("400", &r);
}

fn tight(limits: ConnLimits) -> ServerConfig {
    ServerConfig { limits, ..ServerConfig::default() }
}

/// A slowloris client (headers or body never finished) is cut off by the timeouts.
#[tokio::test]
async fn slow_headers_and_bodies_time_out() {
    let s = TestApiServer::start_with(tight(ConnLimits {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        ..ConnLimits::default()
    }))
    .await;
    let a = addr(&s);
    // Headers never finished: the server closes the connection.
    let mut sock = TcpStream::connect(&a).await.unwrap();
    sock.write_all(b"GET /api HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut buf)).await.expect("not closed");
    assert!(n.is_ok());
    // A body never finished: upstream's 504 Timeout.
    let mut sock = TcpStream::connect(&a).await.unwrap();
    sock.write_all(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut buf)).await.expect("not answered").unwrap();
    let r = parse_answer(&buf);
    assert_eq!(r.code, 504);
    assert_eq!(r.json()["reason"], "Timeout");
}

/// Idle connections up to the bound cannot lock a client out: the longest idle is closed.
#[tokio::test]
async fn idle_connections_at_the_bound_do_not_lock_clients_out() {
    let s = TestApiServer::start_with(tight(ConnLimits { max_connections: 16, ..ConnLimits::default() })).await;
    let a = addr(&s);
    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(TcpStream::connect(&a).await.unwrap());
    }
    let r = tokio::time::timeout(Duration::from_secs(30), request(&a, "GET", "/healthz", None, b""))
        .await
        .expect("locked out");
    assert_eq!(r.code, 200);
}

/// Past the in-flight bound a request gets upstream's 429 with `Retry-After: 1`.
#[tokio::test]
async fn requests_past_the_in_flight_bound_get_429() {
    let s =
        TestApiServer::start_with(tight(ConnLimits { max_mutating_requests_in_flight: 1, ..ConnLimits::default() }))
            .await;
    let a = addr(&s);
    // Hold the one mutating slot: a POST whose body is still coming.
    let mut slow = TcpStream::connect(&a).await.unwrap();
    slow.write_all(b"POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{").await.unwrap();
    // The held request is in flight once the server has its head: retry until it is.
    let mut got = None;
    for _ in 0..200 {
        let r =
            request(&a, "POST", "/api/v1/namespaces/default/configmaps", JSON, br#"{"metadata":{"name":"x"}}"#).await;
        if r.code == 429 {
            got = Some(r);
            break;
        }
        let del = request(&a, "DELETE", "/api/v1/namespaces/default/configmaps/x", JSON, b"").await;
        assert!(del.code == 200 || del.code == 429, "{}", del.code);
        tokio::task::yield_now().await;
    }
    let r = got.expect("no 429 while the only mutating slot was taken");
    check_status("429", &r);
    assert_eq!(r.json()["reason"], "TooManyRequests");
    assert!(r.headers.to_ascii_lowercase().contains("retry-after: 1"), "{}", r.headers);
    // Reads have their own bound.
    assert_eq!(request(&a, "GET", "/api/v1/namespaces/default/configmaps", None, b"").await.code, 200);
    drop(slow);
}

/// Upstream's request body limit (3 MiB) with its error.
#[tokio::test]
async fn request_body_over_3_mib_is_413_as_upstream() {
    let s = TestApiServer::start().await;
    let a = addr(&s);
    let body = json!({"metadata": {"name": "big", "annotations": {"a": "x".repeat(3 * 1024 * 1024)}}});
    let r =
        request(&a, "POST", "/api/v1/namespaces/default/configmaps", JSON, &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(r.code, 413);
    assert_eq!(r.json()["reason"], "RequestEntityTooLarge");
    assert_eq!(r.json()["message"], "Request entity too large: limit is 3145728");
}

// ---------------------------------------------------------------------------------------------
// The kinds and CustomResourceDefinitions added since the first corpus

/// Valid objects of the newer built-in kinds and of a custom resource with a rich schema.
fn newer_bases() -> Vec<(&'static str, Value)> {
    let pod_template = json!({"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "busybox",
        "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}});
    vec![
        (
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}, "spec": {"type": "NodePort",
                "selector": {"app": "w"}, "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080},
                    {"name": "m", "port": 9090, "targetPort": 9090}]}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep"}, "spec": {"replicas": 2,
                "selector": {"matchLabels": {"app": "w"}}, "strategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}, "revisionHistoryLimit": 3, "template": pod_template}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "sts"}, "spec": {"replicas": 1,
                "serviceName": "svc", "podManagementPolicy": "Parallel", "selector": {"matchLabels": {"app": "w"}},
                "template": pod_template}}),
        ),
        (
            "/apis/apps/v1/namespaces/default/daemonsets",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"}, "spec": {
                "selector": {"matchLabels": {"app": "w"}}, "updateStrategy": {"type": "OnDelete"}, "template": pod_template}}),
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "type": "Opaque",
                "data": {"k": "aGk="}, "stringData": {"s": "v"}}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "role"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]}),
        ),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role"},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}),
        ),
        (
            "/apis/authorization.k8s.io/v1/namespaces/default/localsubjectaccessreviews",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview", "spec": {"user": "u",
                "groups": ["g"], "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}}}),
        ),
        (
            "/api/v1/namespaces/default/events",
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev"}, "reason": "R", "message": "m", "type": "Normal",
                "count": 2, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:01Z"}),
        ),
        (
            "/apis/hostile.example.com/v1/namespaces/default/widgets",
            json!({"apiVersion": "hostile.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {
                "port": 8080, "mode": "A", "name": "abc", "tags": ["x", "y"], "items": [{"k": "a", "v": 1}],
                "limits": {"cpu": "1"}, "when": "2024-01-01T00:00:00Z", "ratio": 0.5}}),
        ),
    ]
}

/// The Widget CRD the custom resource base lives in: every kind of schema rule at once.
fn widget_crd() -> Value {
    crd_body(
        "hostile.example.com",
        "widgets",
        "Widget",
        json!({"type": "object", "properties": {"spec": {"type": "object",
        "required": ["mode"],
        "x-kubernetes-validations": [{"rule": "self.items.all(i, i.v >= 0)", "message": "values must not be negative"},
            {"rule": "size(self.name) <= 10", "fieldPath": ".name"}],
        "properties": {
            "port": {"x-kubernetes-int-or-string": true},
            "mode": {"type": "string", "enum": ["A", "B"], "default": "A"},
            "name": {"type": "string", "pattern": "^(a+)+[a-z]*$", "maxLength": 64},
            "tags": {"type": "array", "x-kubernetes-list-type": "set", "maxItems": 5, "items": {"type": "string"}},
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
                "items": {"type": "object", "required": ["k"], "properties": {"k": {"type": "string"}, "v": {"type": "integer", "minimum": 0}}}},
            "limits": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}},
            "when": {"type": "string", "format": "date-time"},
            "ratio": {"type": "number", "maximum": 1, "exclusiveMaximum": true},
        }}}}),
    )
}

fn crd_body(group: &str, plural: &str, kind: &str, schema: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced", "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": schema}}]}})
}

/// Hostile CRDs: each must be refused with a 422 naming the rule, or accepted and then survive
/// hostile custom resources.
fn hostile_crds() -> Vec<(String, Value, Vec<Value>)> {
    let mut deep = json!({"type": "string"});
    for _ in 0..45 {
        deep = json!({"type": "object", "properties": {"x": deep}});
    }
    let mut any = json!({"maximum": 1});
    for _ in 0..40 {
        any = json!({"anyOf": [any]});
    }
    let mut n = json!({"type": "integer"});
    n.as_object_mut().unwrap().extend(any.as_object().unwrap().clone());
    let spec =
        |props: Value| json!({"type": "object", "properties": {"spec": {"type": "object", "properties": props}}});
    let rule = |r: String, props: Value| json!({"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [{"rule": r}], "properties": props}}});
    let ints = json!({"type": "array", "items": {"type": "integer"}});
    let many: Vec<i64> = (0..300).collect();
    vec![
        ("ref".into(), spec(json!({"a": {"$ref": "#/definitions/a"}})), vec![]),
        ("definitions".into(), json!({"type": "object", "definitions": {"a": {"type": "object"}}}), vec![]),
        ("items array".into(), spec(json!({"a": {"type": "array", "items": [{"type": "string"}]}})), vec![]),
        ("type null".into(), spec(json!({"a": {"type": "null"}})), vec![]),
        (
            "conflicting types".into(),
            spec(
                json!({"a": {"type": "string", "properties": {"b": {"type": "integer"}}, "items": {"type": "string"}}}),
            ),
            vec![json!({"a": "s"}), json!({"a": {"b": 1}}), json!({"a": ["x"]})],
        ),
        ("no type".into(), spec(json!({"a": {"properties": {"b": {"type": "integer"}}}})), vec![]),
        ("lookahead pattern".into(), spec(json!({"a": {"type": "string", "pattern": "(?=a)a"}})), vec![]),
        ("huge pattern".into(), spec(json!({"a": {"type": "string", "pattern": "(a{1000}){1000}"}})), vec![]),
        (
            "ReDoS pattern".into(),
            spec(json!({"a": {"type": "string", "pattern": "^(a+)+$"}})),
            vec![json!({"a": format!("{}b", "a".repeat(100_000))})],
        ),
        ("deep schema".into(), json!({"type": "object", "properties": {"spec": deep}}), vec![nested(44), nested(60)]),
        ("nested anyOf".into(), spec(json!({"n": n})), vec![json!({"n": 5}), json!({"n": 0})]),
        (
            "huge enum".into(),
            spec(json!({"l": {"type": "array", "items": {"type": "string",
            "enum": (0..50_000).map(|i| format!("value-{i}")).collect::<Vec<_>>()}}})),
            vec![json!({"l": vec!["nope"; 100_000]}), json!({"l": ["value-7"]})],
        ),
        (
            "huge set".into(),
            spec(json!({"l": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "integer"}}})),
            vec![json!({"l": (0..200_000).collect::<Vec<_>>()}), json!({"l": vec![1; 200_000]})],
        ),
        (
            "huge list map".into(),
            spec(json!({"l": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["k"],
            "items": {"type": "object", "required": ["k"], "properties": {"k": {"type": "integer"}}}}})),
            vec![json!({"l": (0..100_000).map(|i| json!({"k": i % 50_000})).collect::<Vec<_>>()})],
        ),
        (
            "int-or-string".into(),
            spec(
                json!({"p": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[a-z]+$"}]}}),
            ),
            vec![
                json!({"p": 0}),
                json!({"p": "UP"}),
                json!({"p": 1.5}),
                json!({"p": true}),
                json!({"p": null}),
                json!({"p": 9_223_372_036_854_775_807i64}),
                json!({"p": 18_446_744_073_709_551_615u64}),
                json!({"p": -0.0}),
                json!({"p": "80"}),
            ],
        ),
        (
            "int-or-string with preserve".into(),
            spec(json!({"p": {"x-kubernetes-int-or-string": true, "x-kubernetes-preserve-unknown-fields": true}})),
            vec![],
        ),
        (
            "defaults".into(),
            spec(
                json!({"m": {"type": "object", "additionalProperties": {"type": "string", "default": "x".repeat(1000)}},
            "o": {"type": "object", "default": {"a": {}}, "properties": {"a": {"type": "object", "default": {"b": 1}, "properties": {"b": {"type": "integer", "default": 2}}}}}}),
            ),
            vec![json!({"m": {"a": null, "b": "y"}}), json!({})],
        ),
        (
            "defaults amplification".into(),
            spec(
                json!({"m": {"type": "object", "additionalProperties": {"type": "string", "default": "x".repeat(1 << 20)}}}),
            ),
            vec![
                json!({"m": (0..200_000).map(|i| (format!("k{i}"), Value::Null)).collect::<serde_json::Map<_, _>>()}),
                json!({"m": {"a": null}}),
            ],
        ),
        ("CEL too deep".into(), rule(format!("1{} > 0", "+1".repeat(20_000)), json!({})), vec![]),
        ("CEL unparsable".into(), rule("self.a ===".into(), json!({})), vec![]),
        ("CEL deep parentheses".into(), rule(format!("{}true{}", "(".repeat(500), ")".repeat(500)), json!({})), vec![]),
        (
            "CEL long chain".into(),
            rule(format!("self.n{} > 0", " + 1".repeat(200)), json!({"n": {"type": "integer"}})),
            vec![json!({"n": 1}), json!({"n": -1000}), json!({"n": 9_223_372_036_854_775_807i64})],
        ),
        (
            "CEL cubic".into(),
            rule("self.l.all(a, self.l.all(b, self.l.all(c, a + b + c >= 0)))".into(), json!({"l": ints})),
            vec![json!({"l": many}), json!({"l": [1, 2]})],
        ),
        (
            "CEL string building".into(),
            rule(
                "self.l.map(x, self.s + self.s + self.s).size() >= 0".into(),
                json!({"l": ints, "s": {"type": "string"}}),
            ),
            vec![json!({"l": (0..50_000).collect::<Vec<_>>(), "s": "x".repeat(500_000)})],
        ),
        (
            "CEL list literal blowup".into(),
            rule(
                format!(
                    "[{}].all(a, [{}].all(b, [{}].all(c, true)))",
                    vec!["1"; 1000].join(","),
                    vec!["1"; 1000].join(","),
                    vec!["1"; 1000].join(",")
                ),
                json!({}),
            ),
            vec![json!({})],
        ),
        (
            "CEL on huge list".into(),
            rule("self.l.all(x, x >= 0) && self.l.exists(x, x == 5) && size(self.l) > 0".into(), json!({"l": ints})),
            vec![json!({"l": (0..300_000).collect::<Vec<_>>()})],
        ),
        (
            "CEL overflow and division".into(),
            rule("self.n * self.n > 0 && 1 / (self.n - self.n) == 0".into(), json!({"n": {"type": "integer"}})),
            vec![json!({"n": 9_223_372_036_854_775_807i64}), json!({"n": 3})],
        ),
        (
            "CEL wrong result type".into(),
            rule("self.n".into(), json!({"n": {"type": "integer"}})),
            vec![json!({"n": 1})],
        ),
        (
            "CEL huge messageExpression".into(),
            json!({"type": "object", "properties": {"spec": {"type": "object",
            "x-kubernetes-validations": [{"rule": "false", "messageExpression": "self.l.map(a, self.l.map(b, self.l.map(c, 'x'))).size() > 0 ? 'a' : 'b'"}],
            "properties": {"l": ints}}}}),
            vec![json!({"l": many})],
        ),
        (
            "CEL bad reason and newline message".into(),
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "true", "reason": "Bogus", "message": "a\nb"}]}),
            vec![],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_kinds_and_hostile_crds_never_crash_hang_or_acknowledge_the_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let config = || ServerConfig { data_dir: Some(dir.path().to_path_buf()), ..ServerConfig::default() };
    let s = TestApiServer::start_with(config()).await;
    let a = addr(&s);
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let r = request(&a, "POST", crds, JSON, &serde_json::to_vec(&widget_crd()).unwrap()).await;
    assert_eq!(r.code, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let mut all = Vec::new();
    for (path, base) in newer_bases() {
        all.extend(wrong_field_values(path, &base, 3));
        // Names and labels at and past their limits.
        for (k, name) in ["a".repeat(63), "a".repeat(64), "a".repeat(253), "a".repeat(254), "a.b".into(), "A".into()]
            .into_iter()
            .enumerate()
        {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!(name);
            all.push(req(format!("POST {path} name #{k}"), "POST", path, JSON, serde_json::to_vec(&obj).unwrap()));
        }
        for (k, (key, val)) in [
            (format!("{}/{}", "p".repeat(253), "n".repeat(63)), "v".repeat(63)),
            (format!("{}/{}", "p".repeat(254), "n"), "v".into()),
            ("n".repeat(64), "v".into()),
            ("k".into(), "v".repeat(64)),
            ("k".into(), "-v".into()),
            ("/k".into(), "v".into()),
        ]
        .into_iter()
        .enumerate()
        {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!(format!("label-{k}"));
            obj["metadata"]["labels"] = json!({key: val});
            all.push(req(format!("POST {path} label #{k}"), "POST", path, JSON, serde_json::to_vec(&obj).unwrap()));
        }
        all.push(req(format!("POST {path} 300 KiB annotations"), "POST", path, JSON, {
            let mut obj = base.clone();
            obj["metadata"]["name"] = json!("bigann");
            obj["metadata"]["annotations"] = json!({"a": "x".repeat(300 * 1024)});
            serde_json::to_vec(&obj).unwrap()
        }));
    }
    // Services: duplicate ports, node ports and cluster IPs out of range, odd types.
    let svc = "/api/v1/namespaces/default/services";
    for (k, spec) in [
        json!({"ports": [{"port": 80}, {"port": 80}]}),
        json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
        json!({"ports": [{"name": "a", "port": 80}, {"port": 81}]}),
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 29999}]}),
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 65536}]}),
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": -1}]}),
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30001}, {"name": "b", "port": 81, "nodePort": 30001}]}),
        json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30002}]}),
        json!({"clusterIP": "10.97.0.1", "ports": [{"port": 80}]}),
        json!({"clusterIP": "10.96.255.255", "ports": [{"port": 80}]}),
        json!({"clusterIP": "10.96.0.0", "ports": [{"port": 80}]}),
        json!({"clusterIP": "not-an-ip", "ports": [{"port": 80}]}),
        json!({"clusterIP": "10.96.0.1", "ports": [{"port": 80}]}),
        json!({"clusterIP": "::1", "ports": [{"port": 80}]}),
        json!({"clusterIPs": ["10.96.1.1", "10.96.1.2"], "clusterIP": "10.96.1.1", "ports": [{"port": 80}]}),
        json!({"ports": [{"port": 0}]}),
        json!({"ports": [{"port": 65536}]}),
        json!({"ports": [{"port": 80, "targetPort": 0}]}),
        json!({"ports": [{"port": 80, "targetPort": "UPPER_name"}]}),
        json!({"ports": [{"port": 80, "protocol": "ICMP"}]}),
        json!({"ports": []}),
        json!({"type": "ExternalName"}),
        json!({"type": "ExternalName", "externalName": "-bad-"}),
        json!({"type": "LoadBalancer", "ports": [{"port": 80}], "loadBalancerSourceRanges": ["nope"]}),
        json!({"type": "Bogus", "ports": [{"port": 80}]}),
        json!({"ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}),
        json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
        json!({"ports": (0..300).map(|i| json!({"name": format!("p{i}"), "port": 1000 + i})).collect::<Vec<_>>()}),
    ]
    .into_iter()
    .enumerate()
    {
        let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{k}")}, "spec": spec});
        all.push(req(format!("POST services #{k} {}", short(&spec)), "POST", svc, JSON, serde_json::to_vec(&body).unwrap()));
    }
    // Hostile CRDs, and custom resources against the ones accepted.
    let mut accepted = 0;
    for (i, (what, schema, objects)) in hostile_crds().into_iter().enumerate() {
        let group = format!("g{i}.hostile.example.com");
        let body = crd_body(&group, "things", "Thing", schema);
        let ans = request(&a, "POST", crds, JSON, &serde_json::to_vec(&body).unwrap()).await;
        assert!(
            ans.code == 201 || ans.code == 422,
            "CRD {what}: {} {:.2000}",
            ans.code,
            String::from_utf8_lossy(&ans.body)
        );
        if ans.code == 422 {
            check_status(&format!("CRD {what}"), &ans);
            continue;
        }
        accepted += 1;
        for (j, spec) in objects.into_iter().enumerate() {
            let obj = json!({"apiVersion": format!("{group}/v1"), "kind": "Thing", "metadata": {"name": format!("t{j}")}, "spec": spec});
            let path = format!("/apis/{group}/v1/namespaces/default/things");
            all.push(req(format!("CR of {what} #{j}"), "POST", path, JSON, serde_json::to_vec(&obj).unwrap()));
        }
    }
    assert!(accepted >= 10, "only {accepted} hostile CRDs accepted");
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    for r in &all {
        eprintln!("{}", r.what);
        let ans = request(&a, r.method, &r.path, r.content_type.as_deref(), &r.body).await;
        *codes.entry(ans.code).or_default() += 1;
        assert!(ans.code < 500, "{}: {} {:.2000}", r.what, ans.code, String::from_utf8_lossy(&ans.body));
        if ans.code >= 400 {
            check_status(&r.what, &ans);
            assert!(ans.body.len() < 4 << 20, "{}: a {} byte error", r.what, ans.body.len());
        } else {
            assert!(!ans.json().is_null(), "{}: acknowledged without a readable object", r.what);
        }
    }
    println!("{} requests, answers by code: {codes:?}", all.len());
    assert_eq!(request(&a, "GET", "/healthz", None, b"").await.code, 200);
    let lists = [
        "/api/v1/services",
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/statefulsets",
        "/apis/apps/v1/daemonsets",
        "/api/v1/secrets",
        "/apis/rbac.authorization.k8s.io/v1/roles",
        "/apis/rbac.authorization.k8s.io/v1/rolebindings",
        "/api/v1/events",
        "/apis/hostile.example.com/v1/widgets",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    ];
    let before = list_lengths(&a, &lists).await;
    drop(s);
    let s = TestApiServer::start_with(config()).await;
    let a = addr(&s);
    for (l, n) in lists.iter().zip(before) {
        let r = request(&a, "GET", l, None, b"").await;
        assert_eq!(r.code, 200, "{l} after restart");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["items"].as_array().map(Vec::len).unwrap_or(0), n, "{l} after restart");
    }
}

/// A /29 service range has 5 addresses besides the `kubernetes` Service's: 12 concurrent creates
/// get 5 unique addresses and 7 upstream "range is full" errors; failed creates (a taken name, a
/// taken address) leak nothing, and deleting frees addresses for new Services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_service_range_is_exhausted_concurrently_without_duplicates_or_leaks() {
    use jobwright::apiserver::services::ServiceRanges;
    let config = ServerConfig {
        service_ranges: ServiceRanges::parse("10.96.0.0/29", "30000-30002").unwrap(),
        ..ServerConfig::default()
    };
    let s = TestApiServer::start_with(config).await;
    let a = addr(&s);
    let path = "/api/v1/namespaces/default/services";
    let body = |name: &str, spec: Value| {
        serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}))
            .unwrap()
    };
    let plain = json!({"ports": [{"port": 80}]});
    let answers = futures::future::join_all((0..12).map(|i| {
        let (a, b) = (a.clone(), body(&format!("s{i}"), plain.clone()));
        async move { request(&a, "POST", path, JSON, &b).await }
    }))
    .await;
    let mut ips = std::collections::BTreeSet::new();
    for ans in &answers {
        match ans.code {
            201 => assert!(
                ips.insert(ans.json()["spec"]["clusterIP"].as_str().unwrap().to_string()),
                "a duplicate address"
            ),
            500 => {
                check_status("range full", ans);
                assert_eq!(
                    ans.json()["message"],
                    "Internal error occurred: failed to allocate a serviceIP: range is full"
                );
            }
            c => panic!("{c} {:?}", String::from_utf8_lossy(&ans.body)),
        }
    }
    assert_eq!(ips.len(), 5, "{ips:?}");
    assert!(!ips.contains("10.96.0.1") && !ips.contains("10.96.0.0") && !ips.contains("10.96.0.7"), "{ips:?}");
    // Failed creates: a taken address, an address outside the range.
    let taken = ips.iter().next().unwrap().clone();
    let created: Vec<String> = answers
        .iter()
        .filter(|x| x.code == 201)
        .map(|x| x.json()["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    for (spec, msg) in [
        (
            json!({"clusterIP": taken, "ports": [{"port": 80}]}),
            format!("failed to allocate IP {taken}: provided IP is already allocated"),
        ),
        (
            json!({"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}),
            "failed to allocate IP 10.96.0.9: provided IP 10.96.0.9 is not in the valid range".into(),
        ),
    ] {
        let r = request(&a, "POST", path, JSON, &body("x", spec)).await;
        assert_eq!(r.code, 422, "{:?}", String::from_utf8_lossy(&r.body));
        check_status("taken address", &r);
        assert!(r.json()["details"]["causes"][0]["message"].as_str().unwrap().contains(&msg), "{}", r.json());
    }
    // Deleting frees two addresses; creates under a taken name (allocated, then refused by the
    // store) give theirs back, so two new Services still fit, and a third does not.
    let freed: Vec<String> = ips.iter().filter(|ip| **ip != taken).take(1).cloned().chain([taken.clone()]).collect();
    let mut deleted = vec![];
    for n in &created {
        let r = request(&a, "GET", &format!("{path}/{n}"), None, b"").await;
        if freed.iter().any(|ip| r.json()["spec"]["clusterIP"] == json!(ip)) {
            assert_eq!(request(&a, "DELETE", &format!("{path}/{n}"), None, b"").await.code, 200);
            deleted.push(n.clone());
        }
    }
    assert_eq!(deleted.len(), 2);
    let survivor = created.iter().find(|n| !deleted.contains(n)).unwrap().clone();
    for _ in 0..5 {
        let r = request(&a, "POST", path, JSON, &body(&survivor, plain.clone())).await;
        assert_eq!(r.code, 409, "{:?}", String::from_utf8_lossy(&r.body));
    }
    let r = request(&a, "POST", path, JSON, &body("named", json!({"clusterIP": taken, "ports": [{"port": 80}]}))).await;
    assert_eq!(r.code, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let r = request(&a, "POST", path, JSON, &body("again", plain.clone())).await;
    assert_eq!(r.code, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let r = request(&a, "POST", path, JSON, &body("full", plain.clone())).await;
    assert_eq!(r.code, 500);
    // Every stored Service has a distinct address.
    let list = request(&a, "GET", path, None, b"").await.json();
    let mut seen = std::collections::BTreeSet::new();
    for item in list["items"].as_array().unwrap() {
        if let Some(ip) = item["spec"]["clusterIP"].as_str().filter(|ip| *ip != "None") {
            assert!(seen.insert(ip.to_string()), "{ip} twice");
        }
    }
    assert_eq!(seen.len(), 6, "{seen:?}");
}
