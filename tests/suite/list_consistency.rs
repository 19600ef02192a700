//! List/watch consistency of the API server (issue 10): a paginated list is one snapshot at the
//! first page's resourceVersion, so a watch from the last page's resourceVersion (what kube-rs and
//! client-go do) misses nothing; an expired continue is upstream's 410 with a token for the rest;
//! list/watch query parameters are decoded and validated as kube-apiserver does.

use crate::common;

use std::collections::BTreeMap;

use common::*;
use futures::StreamExt;
use jobwright::apiserver::http::ServerConfig;
use jobwright::apiserver::store::StoreConfig;
use jobwright::apiserver::testkit::TestApiServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

/// More than two of kube-rs's 500-item pages.
const N: usize = 1_200;

fn name(i: usize) -> String {
    format!("cm-{i:04}")
}

async fn seed(cms: &Api<ConfigMap>) {
    for i in 0..N {
        create(cms, &cm(&name(i))).await;
    }
}

async fn set(cms: &Api<ConfigMap>, n: &str, v: &str) {
    cms.patch(n, &PatchParams::default(), &Patch::Merge(json!({"data": {"k": v}}))).await.expect("patch");
}

/// A GET through the client (auth, base URL), answered as JSON or as the API's Status error.
async fn get(s: &TestApiServer, path_and_query: &str) -> Result<Value, kube::core::Status> {
    let req = http::Request::get(path_and_query).body(vec![]).unwrap();
    // kube-rs retries a 504 with backoff by default; the 504 itself is under test here.
    let mut config = s.config_with_token(s.admin_token());
    config.default_retry = false;
    match kube::Client::try_from(config).unwrap().request::<Value>(req).await {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(st)) => Err(*st),
        Err(e) => panic!("GET {path_and_query}: {e}"),
    }
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

/// The writes made between pages: an update on page 1 (already returned), on page 3 (not yet), a
/// delete on page 2 and a create sorting into page 2.
async fn interleaved_writes(cms: &Api<ConfigMap>) {
    set(cms, &name(3), "updated-after-page-1").await;
    set(cms, &name(1_100), "updated-before-page-3").await;
    cms.delete(&name(600), &DeleteParams::default()).await.unwrap();
    create(cms, &cm("cm-0700a")).await;
}

#[tokio::test]
async fn every_page_of_a_paginated_list_is_served_at_the_first_pages_resource_version() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    seed(&cms).await;

    let mut pages = vec![get(&s, &format!("{CMS}?limit=500")).await.unwrap()];
    let first_rv = pages[0]["metadata"]["resourceVersion"].as_str().unwrap().to_string();
    interleaved_writes(&cms).await;
    while let Some(token) = pages.last().unwrap()["metadata"]["continue"].as_str() {
        let page = get(&s, &format!("{CMS}?limit=500&continue={token}")).await.unwrap();
        pages.push(page);
    }
    assert_eq!(pages.len(), 3);
    let mut items: BTreeMap<String, String> = BTreeMap::new();
    for p in &pages {
        assert_eq!(p["metadata"]["resourceVersion"], first_rv, "every page at the first page's version");
        for it in p["items"].as_array().unwrap() {
            items.insert(it["metadata"]["name"].as_str().unwrap().into(), it["data"]["k"].as_str().unwrap().into());
        }
    }
    assert_eq!(items.len(), N, "the snapshot has every item once, the deleted one too, not the new one");
    assert!(!items.contains_key("cm-0700a"));
    assert_eq!(items[&name(600)], "v");
    assert_eq!(items[&name(1_100)], "v", "page 3 shows the item as it was at the first page");
    assert_eq!(pages[0]["metadata"]["remainingItemCount"], json!(N - 500));

    // A watch from the list's resourceVersion brings every write made between the pages.
    let mut w = cms.watch(&kube::api::WatchParams::default().disable_bookmarks(), &first_rv).await.unwrap().boxed();
    let mut seen = vec![];
    while seen.len() < 4 {
        let ev = tokio::time::timeout(WAIT, w.next()).await.expect("watch event").unwrap().unwrap();
        seen.push(match ev {
            kube::api::WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            kube::api::WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap()),
            kube::api::WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(seen, ["MODIFIED cm-0003", "MODIFIED cm-1100", "DELETED cm-0600", "ADDED cm-0700a"]);
}

#[tokio::test]
async fn a_kube_rs_reflector_paging_through_concurrent_writes_ends_with_every_update() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    seed(&cms).await;
    let (reader, writer) = reflector::store();
    let mut stream = reflector::reflector(writer, watcher(cms.clone(), watcher::Config::default().page_size(500)))
        .applied_objects()
        .boxed();
    // kube-rs asks for the next page only once the consumer drained the buffered one: the first
    // object means page 1 was listed and page 2 was not yet.
    tokio::time::timeout(WAIT, stream.next()).await.expect("first page").unwrap().unwrap();
    interleaved_writes(&cms).await;
    let drive = tokio::spawn(async move { while stream.next().await.is_some() {} });
    let data = |n: &str| reader.get(&ObjectRef::new(n).within("default")).map(|c| c.data.clone().unwrap()["k"].clone());
    let done = tokio::time::timeout(WAIT, async {
        loop {
            if data(&name(3)).as_deref() == Some("updated-after-page-1")
                && data(&name(1_100)).as_deref() == Some("updated-before-page-3")
                && data(&name(600)).is_none()
                && data("cm-0700a").is_some()
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    drive.abort();
    assert!(
        done.is_ok(),
        "the reflector never saw every update: cm-0003={:?} cm-1100={:?} cm-0600={:?} cm-0700a={:?}",
        data(&name(3)),
        data(&name(1_100)),
        data(&name(600)),
        data("cm-0700a")
    );
    assert_eq!(reader.state().len(), N, "1,200 - 1 deleted + 1 created");
}

fn small_history() -> ServerConfig {
    ServerConfig { store: StoreConfig { history: 5, watcher_buffer: 1000, ..Default::default() }, ..Default::default() }
}

#[tokio::test]
async fn a_continue_past_the_history_is_410_with_a_token_for_the_inconsistent_rest() {
    let s = TestApiServer::start_with(small_history()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    for n in ["a", "b", "c", "d"] {
        create(&cms, &cm(n)).await;
    }
    let p1 = get(&s, &format!("{CMS}?limit=2")).await.unwrap();
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // Within the history, the continue is served at the first page's version.
    set(&cms, "c", "x").await;
    let p2 = get(&s, &format!("{CMS}?limit=2&continue={token}")).await.unwrap();
    assert_eq!(p2["metadata"]["resourceVersion"], p1["metadata"]["resourceVersion"]);
    assert_eq!(p2["items"][0]["data"]["k"], "v");
    // Past it: upstream's Status, with a token continuing at the latest version.
    for n in ["e", "f", "g", "h", "i"] {
        create(&cms, &cm(n)).await;
    }
    let st = get(&s, &format!("{CMS}?limit=2&continue={token}")).await.unwrap_err();
    assert_eq!((st.code, st.reason.as_str()), (410, "Expired"));
    assert_eq!(
        st.message,
        "The provided continue parameter is too old to display a consistent list result. You can start a new \
         list without the continue parameter, or use the continue token in this response to retrieve the \
         remainder of the results. Continuing with the provided token results in an inconsistent list - \
         objects that were created, modified, or deleted between the time the first chunk was returned and \
         now may show up in the list."
    );
    let rest = st.metadata.and_then(|m| m.continue_).expect("metadata.continue");
    let p2 = get(&s, &format!("{CMS}?limit=2&continue={rest}")).await.unwrap();
    let names: Vec<&str> =
        p2["items"].as_array().unwrap().iter().map(|i| i["metadata"]["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["c", "d"], "the rest after the first page, now");
    assert_eq!(p2["items"][0]["data"]["k"], "x", "at the latest version");
    let latest: u64 = p2["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(latest > p1["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap());
}

#[tokio::test]
async fn resource_version_match_exact_serves_that_version_or_410() {
    let s = TestApiServer::start_with(small_history()).await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let a = create(&cms, &cm("a")).await;
    let at = a.metadata.resource_version.unwrap();
    set(&cms, "a", "new").await;
    create(&cms, &cm("b")).await;
    let l = get(&s, &format!("{CMS}?resourceVersion={at}&resourceVersionMatch=Exact")).await.unwrap();
    assert_eq!(l["metadata"]["resourceVersion"], at.as_str());
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    assert_eq!(l["items"][0]["data"]["k"], "v");
    // NotOlderThan (and no match without a limit): the latest.
    let l = get(&s, &format!("{CMS}?resourceVersion={at}&resourceVersionMatch=NotOlderThan")).await.unwrap();
    assert_eq!(l["items"].as_array().unwrap().len(), 2);
    assert_eq!(l["items"][0]["data"]["k"], "new");
    // A future version is upstream's 504 "Too large resource version".
    let st = get(&s, &format!("{CMS}?resourceVersion=999999&resourceVersionMatch=NotOlderThan")).await.unwrap_err();
    assert_eq!((st.code, st.reason.as_str()), (504, "Timeout"));
    assert!(st.message.starts_with("Timeout: Too large resource version: 999999, current: "), "{}", st.message);
    for n in ["c", "d", "e", "f", "g"] {
        create(&cms, &cm(n)).await;
    }
    let st = get(&s, &format!("{CMS}?resourceVersion={at}&resourceVersionMatch=Exact")).await.unwrap_err();
    assert_eq!((st.code, st.reason.as_str()), (410, "Expired"));
    assert_eq!(st.message, "The resourceVersion for the provided list is too old.");
}

#[tokio::test]
async fn list_and_watch_parameters_are_decoded_and_validated_as_upstream() {
    let s = TestApiServer::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    create(&cms, &cm("a")).await;
    let cases: &[(&str, u16, &str)] = &[
        ("limit=x", 400, "strconv.ParseInt: parsing \"x\": invalid syntax"),
        ("watch=true&timeoutSeconds=soon", 400, "strconv.ParseInt: parsing \"soon\": invalid syntax"),
        (
            "resourceVersion=abc",
            400,
            "invalid resource version: resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (
            "resourceVersionMatch=Exact",
            422,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            422,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Newest",
            422,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
        ),
        (
            "watch=1&resourceVersion=1&resourceVersionMatch=NotOlderThan",
            422,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ),
        ("continue=abc", 400, "invalid continue token: continue key is not valid"),
    ];
    for (q, code, msg) in cases {
        let st = get(&s, &format!("{CMS}?{q}")).await.unwrap_err();
        assert_eq!((st.code, st.message.as_str()), (*code, *msg), "?{q}");
    }
    // Booleans as Go's parameter codec: anything but false/0 is true, so `watch=yes` is a watch
    // (it streams: read its first event only).
    let req = http::Request::get(format!("{CMS}?watch=yes&timeoutSeconds=1")).body(vec![]).unwrap();
    let mut events = s.client().request_events::<ConfigMap>(req).await.unwrap().boxed();
    let first = tokio::time::timeout(WAIT, events.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, kube::api::WatchEvent::Added(_)), "{first:?}");
    // `timeoutSeconds=0` is the server's default duration (upstream), not an immediate end: the
    // watch still delivers a change made after its initial events.
    let mut w =
        cms.watch(&kube::api::WatchParams::default().disable_bookmarks().timeout(0), "0").await.unwrap().boxed();
    let first = tokio::time::timeout(WAIT, w.next()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, kube::api::WatchEvent::Added(_)), "{first:?}");
    create(&cms, &cm("b")).await;
    let next = tokio::time::timeout(WAIT, w.next()).await.unwrap().expect("the watch is still open").unwrap();
    assert!(matches!(&next, kube::api::WatchEvent::Added(c) if c.metadata.name.as_deref() == Some("b")), "{next:?}");
    // `watch=false` is a list.
    let l = get(&s, &format!("{CMS}?watch=false")).await.unwrap();
    assert_eq!(l["kind"], "ConfigMapList");
}
