//! Shared by the fuzz targets: one in-process registry with a few stored objects, and the
//! invariant every write must keep: nothing acknowledged that cannot be read back.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use jobwright::apiserver::patch::PatchType;
use jobwright::apiserver::registry::{Registry, ResourceInfo};
use jobwright::apiserver::rest::{Api, WriteOptions};
use jobwright::apiserver::store::{Store, StoreConfig};
use jobwright::apiserver::validate::limits::{MAX_OBJECT_DEPTH, depth};
use serde_json::{Value, json};

/// The API with a ConfigMap `p`, a Job `p` and a Pod `p` in `default`.
pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let api = Api::new(Arc::new(Store::new(StoreConfig::default())), Registry::builtin());
        let o = WriteOptions::default();
        for (info, obj) in targets(&api) {
            api.create(&info, "default", obj, &o).expect("seed object");
        }
        api
    })
}

fn targets(api: &Api) -> Vec<(ResourceInfo, Value)> {
    vec![
        (api.info("", "configmaps"), json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "p", "labels": {"a": "b"}, "annotations": {"n": "v"}, "finalizers": ["x/y"]}, "data": {"k": "v"}})),
        (api.info("batch", "jobs"), json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "p"},
            "spec": {"suspend": true, "completions": 3, "completionMode": "Indexed", "template": {"metadata": {"labels": {"l": "v"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}}})),
        (api.info("", "pods"), json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}, {"name": "d", "image": "busybox"}], "tolerations": [{"key": "k"}]}})),
    ]
}

/// The resource the first byte selects.
pub fn pick(sel: u8) -> ResourceInfo {
    let api = api();
    match sel % 3 {
        0 => api.info("", "configmaps"),
        1 => api.info("batch", "jobs"),
        _ => api.info("", "pods"),
    }
}

/// What the server acknowledged must serialize, parse back with serde_json's limits, and stay
/// within the stored nesting bound.
pub fn readable(obj: &Value) {
    let d = depth(obj);
    assert!(d <= MAX_OBJECT_DEPTH, "acknowledged an object {d} levels deep");
    let bytes = serde_json::to_vec(obj).expect("serializes");
    let back: Value = serde_json::from_slice(&bytes).expect("acknowledged object does not parse back");
    assert_eq!(&back, obj);
}

/// Patch `p` (dry run) with `body` of `ptype`; an acknowledged result must be readable.
pub fn patch(data: &[u8], ptype: PatchType) {
    let Some((&sel, body)) = data.split_first() else { return };
    let info = pick(sel);
    let opts = WriteOptions {
        dry_run: true,
        field_manager: (ptype == PatchType::Apply).then(|| "fuzz".to_string()),
        force: sel & 0x80 != 0,
        ..WriteOptions::default()
    };
    let sub = (sel & 0x40 != 0).then_some("status");
    match api().patch(&info, "default", "p", sub, ptype, body, &opts) {
        Ok(out) => readable(&out.object),
        // Documented 500s, as upstream: strategic-merge directive errors, and an apply patch
        // whose kind has no schema ("failed to create typed patch object").
        Err(e) => assert!(
            (400..500).contains(&e.code)
                || e.code == 500 && ptype == PatchType::StrategicMerge
                || e.code == 500 && ptype == PatchType::Apply && e.message.starts_with("failed to create typed patch object"),
            "{} {}",
            e.code,
            e.message
        ),
    }
}
