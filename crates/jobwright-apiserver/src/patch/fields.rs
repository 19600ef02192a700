//! Field sets and `metadata.managedFields`, as `sigs.k8s.io/structured-merge-diff` and
//! `k8s.io/apimachinery/pkg/util/managedfields` model them.
//!
//! A [`FieldSet`] is a tree keyed by path elements written the FieldsV1 way: `f:<field>` for a
//! struct or map field, `k:{"name":"c"}` for an item of an associative list (its key fields,
//! defaults filled in), `v:<json>` for an item of a set, `i:<n>` for an index. A node is a
//! *member* when the set owns the node itself; in FieldsV1 a member with children carries
//! `".": {}` and a member without children is `{}`.
//!
//! [`compare`] computes what a write added, modified and removed, which is what an `Update`
//! manager comes to own (and takes away from everyone else). [`to_field_set`] computes what an
//! applied configuration owns. Leaves are scalars, atomic lists and atomic maps, and empty
//! objects or lists. Map-typed fields (`labels`, `limits`) and list items are members when they
//! appear or disappear; struct fields and lists themselves never are, because upstream compares
//! against a typed object whose structs and lists always exist.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::schema::{ANY, Shape, Ssa};

/// A set of field paths (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// Whether the node itself is in the set (meaningless at the root).
    pub member: bool,
    /// Child nodes by path element (`f:name`, `k:{..}`, `v:..`, `i:n`).
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Add `path` as a member.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for pe in path {
            // Look up before inserting: most steps pass through nodes that already exist.
            if !node.children.contains_key(pe) {
                node.children.insert(pe.clone(), FieldSet::default());
            }
            node = node.children.get_mut(pe).expect("just inserted");
        }
        if !path.is_empty() {
            node.member = true;
        }
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[&str]) -> bool {
        let mut node = self;
        for pe in path {
            match node.children.get(*pe) {
                Some(n) => node = n,
                None => return false,
            }
        }
        !path.is_empty() && node.member
    }

    /// No member anywhere.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.member |= other.member;
        for (k, v) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(v),
                None => v.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    /// Members of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && !other.member, children: BTreeMap::new() };
        for (k, v) in &self.children {
            let d = match other.children.get(k) {
                Some(o) => v.difference(o),
                None => v.clone(),
            };
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    /// Whether some path is a member of both sets (the root's own mark included), without
    /// building the intersection.
    pub fn overlaps(&self, other: &FieldSet) -> bool {
        (self.member && other.member)
            || self.children.iter().any(|(k, v)| other.children.get(k).is_some_and(|o| v.overlaps(o)))
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet { member: self.member && other.member, children: BTreeMap::new() };
        for (k, v) in &self.children {
            if let Some(o) = other.children.get(k) {
                let i = v.intersection(o);
                if !i.is_empty() {
                    out.children.insert(k.clone(), i);
                }
            }
        }
        out
    }

    /// Every member path, in upstream's iteration order (a level's members before its children).
    pub fn members(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_members(&mut Vec::new(), &mut out);
        out
    }

    fn collect_members(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        for (k, v) in &self.children {
            if v.member {
                let mut p = prefix.clone();
                p.push(k.clone());
                out.push(p);
            }
        }
        for (k, v) in &self.children {
            prefix.push(k.clone());
            v.collect_members(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 JSON of this set.
    pub fn to_fields_v1(&self) -> Value {
        self.encode().0
    }

    /// [`FieldSet::to_fields_v1`] and whether the set is not [`FieldSet::is_empty`], in one walk
    /// (asking each child whether it is empty before encoding it walks every subtree once per
    /// level above it).
    fn encode(&self) -> (Value, bool) {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        let mut any = self.member;
        for (k, v) in &self.children {
            let (encoded, nonempty) = v.encode();
            if nonempty {
                m.insert(k.clone(), encoded);
                any = true;
            }
        }
        (Value::Object(m), any)
    }

    /// Parse FieldsV1 JSON; `None` when it is not an object tree.
    pub fn from_fields_v1(v: &Value) -> Option<FieldSet> {
        let mut out = FieldSet::default();
        for (k, child) in v.as_object()? {
            if k == "." {
                out.member = true;
                continue;
            }
            let mut node = FieldSet::from_fields_v1(child)?;
            if node.children.is_empty() {
                node.member = true;
            }
            out.children.insert(k.clone(), node);
        }
        Some(out)
    }

    /// Remove the subtree at `path` (the node and everything below it).
    pub fn remove_subtree(&mut self, path: &[&str]) {
        match path {
            [] => {}
            [last] => {
                self.children.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(c) = self.children.get_mut(*first) {
                    c.remove_subtree(rest);
                }
            }
        }
    }

    /// Keep only the subtree at `path` (used to scope a write to the status subresource).
    pub fn only_subtree(&self, pe: &str) -> FieldSet {
        let mut out = FieldSet::default();
        if let Some(c) = self.children.get(pe) {
            out.children.insert(pe.to_string(), c.clone());
        }
        out
    }
}

/// Upstream's printed form of a path: `.spec.containers[name="c"].image`, `.metadata.finalizers[="x"]`.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let fields = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                _ => k.to_string(),
            };
            s.push_str(&format!("[{fields}]"));
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        } else {
            s.push_str(pe);
        }
    }
    s
}

/// The `k:` path element of an associative list item, or `None` when a key field is missing
/// and has no default.
pub fn item_key(item: &Value, keys: &[(&str, Option<Value>)]) -> Option<String> {
    let m = item.as_object()?;
    let mut key = Map::new();
    for (name, default) in keys {
        let v = match (m.get(*name), default) {
            (Some(v), _) if !v.is_null() => v.clone(),
            (_, Some(d)) => d.clone(),
            _ => return None,
        };
        key.insert(name.to_string(), v);
    }
    Some(json_prefixed("k:", &Value::Object(key)))
}

/// `prefix` then `name`: a path element (`f:name`), as `format!("{prefix}{name}")` makes it,
/// without the formatting machinery (a create builds one per field of the object).
pub(crate) fn prefixed(prefix: &str, name: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + name.len());
    s.push_str(prefix);
    s.push_str(name);
    s
}

/// `prefix` then `v`'s compact JSON: `format!("{prefix}{v}")` (`Value`'s `Display` is its compact
/// JSON) without the formatting machinery.
fn json_prefixed(prefix: &str, v: &Value) -> String {
    let mut buf = Vec::with_capacity(prefix.len() + 32);
    buf.extend_from_slice(prefix.as_bytes());
    match serde_json::to_writer(&mut buf, v) {
        // serde_json writes UTF-8 only, and a `Value` always serializes.
        Ok(()) => String::from_utf8(buf).unwrap_or_else(|_| format!("{prefix}{v}")),
        Err(_) => format!("{prefix}{v}"),
    }
}

/// The child nodes of `v` for `shape`, or `None` when `v` is a leaf (scalar, atomic list or map,
/// or an associative list whose items cannot all be keyed uniquely).
pub fn children<'v, 's>(v: &'v Value, shape: &'s Shape) -> Option<Vec<(String, &'v Value, &'s Shape)>> {
    match v {
        Value::Object(m) if !shape.is_atomic_map() => {
            Some(m.iter().map(|(k, c)| (prefixed("f:", k), c, shape.field(k))).collect())
        }
        Value::Array(items) => {
            let list = shape.list();
            let keys = list.ssa.map_keys();
            let mut out = Vec::with_capacity(items.len());
            let mut seen = std::collections::HashSet::with_capacity(items.len());
            for item in items {
                let pe = match (&list.ssa, &keys) {
                    (_, Some(keys)) => item_key(item, keys)?,
                    (Ssa::Set, None) => json_prefixed("v:", item),
                    _ => return None,
                };
                if !seen.insert(pe.clone()) {
                    return None;
                }
                out.push((pe, item, &list.item));
            }
            Some(out)
        }
        _ => None,
    }
}

/// Whether a node gets a member mark of its own when it appears or disappears.
fn marks_node(pe: &str, shape: &Shape) -> bool {
    pe.starts_with("k:") || pe.starts_with("v:") || shape.is_map()
}

/// What a write changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Paths present only after the write.
    pub added: FieldSet,
    /// Leaves whose value changed.
    pub modified: FieldSet,
    /// Paths present only before the write.
    pub removed: FieldSet,
}

/// Compare two versions of an object.
pub fn compare(old: &Value, new: &Value, shape: &Shape) -> Comparison {
    let mut c = Comparison::default();
    compare_node(Some(old), Some(new), shape, &mut Vec::new(), &mut c);
    c
}

fn compare_node<'s>(
    old: Option<&Value>,
    new: Option<&Value>,
    shape: &'s Shape,
    path: &mut Vec<String>,
    c: &mut Comparison,
) {
    // Two objects (the common case): walked by key, the path element of a child built only for
    // a child that differs, instead of one per key on both sides.
    if let (Some(Value::Object(om)), Some(Value::Object(nm))) = (old, new)
        && !shape.is_atomic_map()
    {
        compare_maps(om, nm, shape, path, c);
        return;
    }
    let old_kids = old.map(|v| children(v, shape));
    let new_kids = new.map(|v| children(v, shape));
    let same_kind = match (old, new) {
        (Some(o), Some(n)) => o.is_object() == n.is_object(),
        _ => true,
    };
    let empty = |k: &Option<Option<Vec<_>>>| match k {
        None => true,
        Some(Some(v)) => v.is_empty(),
        Some(None) => false,
    };
    let containers = !matches!(old_kids, Some(None)) && !matches!(new_kids, Some(None));
    if containers && same_kind && !(empty(&old_kids) && empty(&new_kids)) {
        // Keyed lookups: a map or list of n children costs O(n log n), not O(n^2).
        let old_kids: BTreeMap<String, (&Value, &'s Shape)> =
            old_kids.flatten().unwrap_or_default().into_iter().map(|(k, v, s)| (k, (v, s))).collect();
        let new_kids: BTreeMap<String, (&Value, &'s Shape)> =
            new_kids.flatten().unwrap_or_default().into_iter().map(|(k, v, s)| (k, (v, s))).collect();
        let mut keys: Vec<&String> = old_kids.keys().chain(new_kids.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let o = old_kids.get(k);
            let n = new_kids.get(k);
            match (o, n) {
                // An unchanged subtree adds, modifies and removes nothing (both sides present, so
                // no node mark either): skip the walk.
                (Some((ov, _)), Some((nv, _))) if ov == nv => continue,
                // A subtree on one side only is added (removed) whole: built bottom-up and put in
                // place once, instead of inserted path by path from the root.
                (None, Some((nv, ns))) => {
                    graft(&mut c.added, path, k, one_sided(nv, ns, k));
                    continue;
                }
                (Some((ov, os)), None) => {
                    graft(&mut c.removed, path, k, one_sided(ov, os, k));
                    continue;
                }
                _ => {}
            }
            let child_shape = o.or(n).map(|(_, s)| *s).unwrap_or(&ANY);
            path.push(k.clone());
            compare_node(o.map(|(v, _)| *v), n.map(|(v, _)| *v), child_shape, path, c);
            path.pop();
        }
        if let Some(last) = path.last()
            && marks_node(last, shape)
        {
            if old.is_none() {
                c.added.insert(path);
            } else if new.is_none() {
                c.removed.insert(path);
            }
        }
        return;
    }
    if path.is_empty() {
        return;
    }
    match (old, new) {
        (None, Some(_)) => c.added.insert(path),
        (Some(_), None) => c.removed.insert(path),
        (Some(o), Some(n)) if o != n => c.modified.insert(path),
        _ => {}
    }
}

/// [`compare_node`] for two objects of a non-atomic map or struct `shape`: what its general
/// case records for them (both present, so no node mark of their own; two empty objects record
/// nothing).
fn compare_maps(
    om: &Map<String, Value>,
    nm: &Map<String, Value>,
    shape: &Shape,
    path: &mut Vec<String>,
    c: &mut Comparison,
) {
    for (k, ov) in om {
        match nm.get(k) {
            Some(nv) if ov == nv => {}
            Some(nv) => {
                path.push(prefixed("f:", k));
                compare_node(Some(ov), Some(nv), shape.field(k), path, c);
                path.pop();
            }
            None => {
                let pe = prefixed("f:", k);
                let sub = one_sided(ov, shape.field(k), &pe);
                graft(&mut c.removed, path, &pe, sub);
            }
        }
    }
    for (k, nv) in nm {
        if !om.contains_key(k) {
            let pe = prefixed("f:", k);
            let sub = one_sided(nv, shape.field(k), &pe);
            graft(&mut c.added, path, &pe, sub);
        }
    }
}

/// What [`compare_node`] records for a node present on one side only, at path element `pe`:
/// every leaf below it, and the node itself and each container below it that [`marks_node`].
fn one_sided(v: &Value, shape: &Shape, pe: &str) -> FieldSet {
    match children(v, shape) {
        Some(kids) if !kids.is_empty() => {
            let mut set = FieldSet { member: marks_node(pe, shape), children: BTreeMap::new() };
            for (kpe, child, child_shape) in kids {
                let sub = one_sided(child, child_shape, &kpe);
                set.children.insert(kpe, sub);
            }
            set
        }
        _ => FieldSet { member: true, children: BTreeMap::new() },
    }
}

/// [`one_sided`] encoded as FieldsV1 straight from `v`, without building the [`FieldSet`]:
/// what `one_sided(v, shape, pe).to_fields_v1()` is (a one-sided set is never empty: every leaf
/// is a member).
fn one_sided_v1(v: &Value, shape: &Shape, pe: &str) -> Value {
    let mut out = Map::new();
    match v {
        Value::Object(m) if !shape.is_atomic_map() && !m.is_empty() => {
            if marks_node(pe, shape) {
                out.insert(".".into(), Value::Object(Map::new()));
            }
            for (k, child) in m {
                let kpe = prefixed("f:", k);
                let sub = one_sided_v1(child, shape.field(k), &kpe);
                out.insert(kpe, sub);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            if let Some(kids) = children(v, shape) {
                if marks_node(pe, shape) {
                    out.insert(".".into(), Value::Object(Map::new()));
                }
                for (kpe, child, child_shape) in kids {
                    let sub = one_sided_v1(child, child_shape, &kpe);
                    out.insert(kpe, sub);
                }
            }
        }
        _ => {}
    }
    Value::Object(out)
}

/// The paths [`strip_meta`] unmarks under `f:metadata`.
const STRIPPED_META: [&str; 9] = [
    "f:name",
    "f:namespace",
    "f:creationTimestamp",
    "f:selfLink",
    "f:uid",
    "f:clusterName",
    "f:generation",
    "f:managedFields",
    "f:resourceVersion",
];

/// Unmark an encoded node (take its `"."` away); `false` when that leaves it empty (a leaf, which
/// [`prune_empty`] would then drop).
fn unmark_v1(node: &mut Value) -> bool {
    match node.as_object_mut() {
        Some(m) => {
            m.remove(".");
            !m.is_empty()
        }
        None => false,
    }
}

/// What a create of `obj` (no old object) owns, as FieldsV1: the FieldsV1 of
/// `compare({}, obj, shape).added` after [`strip_meta`] and `keep` (which top-level fields the
/// write may own: the subresource scope), built in one pass from the object. `None` when that
/// set is empty.
pub fn created_fields_v1(obj: &Map<String, Value>, shape: &Shape, keep: impl Fn(&str) -> bool) -> Option<Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        if !keep(k) {
            continue;
        }
        let pe = prefixed("f:", k);
        let mut node = one_sided_v1(v, shape.field(k), &pe);
        match k.as_str() {
            // The guard unmarks the node; it is dropped when that leaves it empty.
            "apiVersion" | "kind" if !unmark_v1(&mut node) => continue,
            "metadata" => {
                if let Some(m) = node.as_object_mut() {
                    for f in STRIPPED_META {
                        if let Some(c) = m.get_mut(f)
                            && !unmark_v1(c)
                        {
                            m.remove(f);
                        }
                    }
                }
                if !unmark_v1(&mut node) {
                    continue;
                }
            }
            _ => {}
        }
        out.insert(pe, node);
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// Put `sub` at `path` + `pe` in `set` (that node is new: each path is visited once).
fn graft(set: &mut FieldSet, path: &[String], pe: &str, sub: FieldSet) {
    let mut node = set;
    for p in path {
        if !node.children.contains_key(p) {
            node.children.insert(p.clone(), FieldSet::default());
        }
        node = node.children.get_mut(p).expect("just inserted");
    }
    node.children.insert(pe.to_string(), sub);
}

/// The fields an applied configuration sets: its leaves and list items.
pub fn to_field_set(config: &Value, shape: &Shape) -> FieldSet {
    let mut out = FieldSet::default();
    collect_set(config, shape, &mut Vec::new(), &mut out);
    out
}

fn collect_set(v: &Value, shape: &Shape, path: &mut Vec<String>, out: &mut FieldSet) {
    let is_item = path.last().is_some_and(|pe| pe.starts_with("k:") || pe.starts_with("v:"));
    match children(v, shape) {
        Some(kids) if !kids.is_empty() => {
            if is_item {
                out.insert(path);
            }
            for (pe, child, child_shape) in kids {
                path.push(pe);
                collect_set(child, child_shape, path, out);
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path);
            }
        }
    }
}

/// Paths upstream never tracks (`stripmeta.go`): identity and system metadata.
pub fn strip_meta(set: &mut FieldSet) {
    for p in [&["f:apiVersion"][..], &["f:kind"], &["f:metadata"]] {
        unmark(set, p);
    }
    for f in STRIPPED_META {
        unmark(set, &["f:metadata", f]);
    }
    prune_empty(set);
}

fn unmark(set: &mut FieldSet, path: &[&str]) {
    let mut node = set;
    for pe in path {
        match node.children.get_mut(*pe) {
            Some(n) => node = n,
            None => return,
        }
    }
    node.member = false;
}

fn prune_empty(set: &mut FieldSet) {
    set.children.retain(|_, c| {
        prune_empty(c);
        !c.is_empty()
    });
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedEntry {
    /// `manager`
    pub manager: String,
    /// `Apply` or `Update`
    pub operation: String,
    /// `apiVersion`
    pub api_version: String,
    /// `time`, RFC 3339 seconds
    pub time: Option<String>,
    /// `subresource`, empty for the main resource
    pub subresource: String,
    /// `fieldsV1`
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// Whether two entries belong to the same manager identity (upstream
    /// `BuildManagerIdentifier`: appliers are not told apart by version).
    pub fn same_identity(&self, manager: &str, operation: &str, api_version: &str, subresource: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == "Apply" || self.api_version == api_version)
    }

    /// Upstream's JSON manager identifier, used to order conflicts.
    pub fn identifier(&self) -> String {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        if self.operation != "Apply" {
            m.insert("apiVersion".into(), json!(self.api_version));
        }
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        // Field order as in `metav1.ManagedFieldsEntry`, not alphabetical.
        let order = ["manager", "operation", "apiVersion", "subresource"];
        let parts: Vec<String> =
            order.iter().filter_map(|k| m.get(*k).map(|v| format!("{}:{v}", Value::from(*k)))).collect();
        format!("{{{}}}", parts.join(","))
    }

    /// How upstream names the manager in conflict messages (`printManager`).
    pub fn printed(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

/// Decode `metadata.managedFields` of an object, skipping malformed entries.
pub fn decode_managed_fields(obj: &Value) -> Vec<ManagedEntry> {
    obj.pointer("/metadata/managedFields").map(decode_managed_list).unwrap_or_default()
}

/// [`decode_managed_fields`] of the list itself.
pub fn decode_managed_list(list: &Value) -> Vec<ManagedEntry> {
    let Some(list) = list.as_array() else {
        return Vec::new();
    };
    let mut out: Vec<ManagedEntry> = Vec::new();
    for e in list {
        let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let Some(fields) = e.get("fieldsV1").map_or(Some(FieldSet::default()), FieldSet::from_fields_v1) else {
            continue;
        };
        let entry = ManagedEntry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            time: e.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: s("subresource"),
            fields,
        };
        if entry.operation != "Apply" && entry.operation != "Update" {
            continue;
        }
        match out
            .iter_mut()
            .find(|x| x.same_identity(&entry.manager, &entry.operation, &entry.api_version, &entry.subresource))
        {
            Some(x) => x.fields = x.fields.union(&entry.fields),
            None => out.push(entry),
        }
    }
    out
}

/// Encode entries as `metadata.managedFields`, in upstream's order (operation, time, manager,
/// apiVersion, subresource), dropping entries that own nothing.
pub fn encode_managed_fields(entries: &[ManagedEntry]) -> Value {
    let mut entries: Vec<&ManagedEntry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    let secs = |e: &ManagedEntry| {
        e.time.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map_or(0, |t| t.timestamp())
    };
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then(secs(a).cmp(&secs(b)))
            .then(a.manager.cmp(&b.manager))
            .then(a.api_version.cmp(&b.api_version))
            .then(a.subresource.cmp(&b.subresource))
    });
    Value::Array(entries.into_iter().map(encode_entry).collect())
}

/// One entry of [`encode_managed_fields`].
pub fn encode_entry(e: &ManagedEntry) -> Value {
    encode_entry_with(e, &e.fields)
}

/// [`encode_entry`] of `e` with `fields` in place of its own.
pub fn encode_entry_with(e: &ManagedEntry, fields: &FieldSet) -> Value {
    encode_entry_v1(e, fields.to_fields_v1())
}

/// [`encode_entry`] of `e` with the FieldsV1 `fields_v1` in place of its own fields.
pub fn encode_entry_v1(e: &ManagedEntry, fields_v1: Value) -> Value {
    let mut m = Map::new();
    m.insert("manager".into(), json!(e.manager));
    m.insert("operation".into(), json!(e.operation));
    m.insert("apiVersion".into(), json!(e.api_version));
    if let Some(t) = &e.time {
        m.insert("time".into(), json!(t));
    }
    m.insert("fieldsType".into(), json!("FieldsV1"));
    m.insert("fieldsV1".into(), fields_v1);
    if !e.subresource.is_empty() {
        m.insert("subresource".into(), json!(e.subresource));
    }
    Value::Object(m)
}

/// Write entries into `obj.metadata.managedFields` (removing the field when none is left).
pub fn set_managed_fields(obj: &mut Value, entries: &[ManagedEntry]) {
    let encoded = encode_managed_fields(entries);
    let Some(root) = obj.as_object_mut() else { return };
    let meta = root.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else { return };
    if encoded.as_array().is_some_and(|a| a.is_empty()) {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), encoded);
    }
}

/// RFC 3339 with seconds, as `metav1.Time` serialises.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::schema::root_for;
    use crate::registry::Registry;

    fn p(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn pod_shape() -> &'static Shape {
        root_for(&Registry::builtin().get("", "v1", "pods").unwrap())
    }

    fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The path elements are the strings `format!` made: `f:` and any name, `k:`/`v:` and
        /// any value's compact JSON (`Value`'s `Display`).
        #[test]
        fn path_elements_are_the_formatted_ones(name in proptest::prelude::any::<String>(), v in arbitrary_json()) {
            proptest::prop_assert_eq!(prefixed("f:", &name), format!("f:{name}"));
            proptest::prop_assert_eq!(json_prefixed("k:", &v), format!("k:{v}"));
            proptest::prop_assert_eq!(json_prefixed("v:", &v), format!("v:{v}"));
        }
    }

    #[test]
    fn fields_v1_round_trips_with_member_marks() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                       "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}}}}});
        let set = FieldSet::from_fields_v1(&v).unwrap();
        assert!(set.contains(&["f:metadata", "f:labels"]));
        assert!(set.contains(&["f:metadata", "f:labels", "f:app"]));
        assert!(!set.contains(&["f:metadata"]));
        assert!(set.contains(&["f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:image"]));
        assert_eq!(set.to_fields_v1(), v);
        assert!(FieldSet::from_fields_v1(&json!({"f:a": 1})).is_none());
    }

    #[test]
    fn set_algebra() {
        let mut a = FieldSet::default();
        a.insert(&p(&["f:spec", "f:a"]));
        a.insert(&p(&["f:spec", "f:b"]));
        let mut b = FieldSet::default();
        b.insert(&p(&["f:spec", "f:b"]));
        b.insert(&p(&["f:spec", "f:c"]));
        assert_eq!(a.intersection(&b).members(), vec![p(&["f:spec", "f:b"])]);
        assert_eq!(a.difference(&b).members(), vec![p(&["f:spec", "f:a"])]);
        assert_eq!(a.union(&b).members().len(), 3);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn path_strings_match_upstream() {
        assert_eq!(path_string(&p(&["f:spec", "f:parallelism"])), ".spec.parallelism");
        assert_eq!(
            path_string(&p(&["f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:image"])),
            ".spec.containers[name=\"c\"].image"
        );
        assert_eq!(
            path_string(&p(&["f:ports", "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"])),
            ".ports[containerPort=80,protocol=\"TCP\"]"
        );
        assert_eq!(path_string(&p(&["f:metadata", "f:finalizers", "v:\"x\""])), ".metadata.finalizers[=\"x\"]");
        assert_eq!(path_string(&p(&["f:a", "i:3"])), ".a[3]");
    }

    #[test]
    fn item_keys_fill_defaults_and_sort_fields() {
        let keys = &[("containerPort", None), ("protocol", Some(json!("TCP")))];
        assert_eq!(
            item_key(&json!({"containerPort": 80}), keys).as_deref(),
            Some("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
        );
        assert_eq!(item_key(&json!({"protocol": "UDP"}), keys), None);
    }

    /// `compare` as first written (every change inserted path by path, no subtree skipped):
    /// the reference the current one must match.
    fn compare_ref(old: &Value, new: &Value, shape: &Shape) -> Comparison {
        fn node<'s>(
            old: Option<&Value>,
            new: Option<&Value>,
            shape: &'s Shape,
            path: &mut Vec<String>,
            c: &mut Comparison,
        ) {
            let old_kids = old.map(|v| children(v, shape));
            let new_kids = new.map(|v| children(v, shape));
            let same_kind = match (old, new) {
                (Some(o), Some(n)) => o.is_object() == n.is_object(),
                _ => true,
            };
            let empty = |k: &Option<Option<Vec<_>>>| match k {
                None => true,
                Some(Some(v)) => v.is_empty(),
                Some(None) => false,
            };
            let containers = !matches!(old_kids, Some(None)) && !matches!(new_kids, Some(None));
            if containers && same_kind && !(empty(&old_kids) && empty(&new_kids)) {
                let old_kids: BTreeMap<String, (&Value, &'s Shape)> =
                    old_kids.flatten().unwrap_or_default().into_iter().map(|(k, v, s)| (k, (v, s))).collect();
                let new_kids: BTreeMap<String, (&Value, &'s Shape)> =
                    new_kids.flatten().unwrap_or_default().into_iter().map(|(k, v, s)| (k, (v, s))).collect();
                let mut keys: Vec<&String> = old_kids.keys().chain(new_kids.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let o = old_kids.get(k);
                    let n = new_kids.get(k);
                    let child_shape = o.or(n).map(|(_, s)| *s).unwrap_or(&ANY);
                    path.push(k.clone());
                    node(o.map(|(v, _)| *v), n.map(|(v, _)| *v), child_shape, path, c);
                    path.pop();
                }
                if let Some(last) = path.last()
                    && marks_node(last, shape)
                {
                    if old.is_none() {
                        c.added.insert(path);
                    } else if new.is_none() {
                        c.removed.insert(path);
                    }
                }
                return;
            }
            if path.is_empty() {
                return;
            }
            match (old, new) {
                (None, Some(_)) => c.added.insert(path),
                (Some(_), None) => c.removed.insert(path),
                (Some(o), Some(n)) if o != n => c.modified.insert(path),
                _ => {}
            }
        }
        let mut c = Comparison::default();
        node(Some(old), Some(new), shape, &mut Vec::new(), &mut c);
        c
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        crate::patch::any_json_with_keys(&["name", "image", "containers", "labels", "type"])
    }

    /// The encoding before [`FieldSet::encode`] (each child asked whether it is empty first).
    fn to_fields_v1_ref(set: &FieldSet) -> Value {
        let mut m = Map::new();
        if set.member && !set.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, v) in &set.children {
            if !v.is_empty() {
                m.insert(k.clone(), to_fields_v1_ref(v));
            }
        }
        Value::Object(m)
    }

    /// Field sets of any shape, empty subtrees and unmarked nodes included.
    fn any_set() -> impl proptest::strategy::Strategy<Value = FieldSet> {
        use proptest::prelude::*;
        let leaf = any::<bool>().prop_map(|member| FieldSet { member, children: BTreeMap::new() });
        leaf.prop_recursive(5, 64, 4, |inner| {
            (any::<bool>(), prop::collection::btree_map("[fk]:[a-c]{1}", inner, 0..4))
                .prop_map(|(member, children)| FieldSet { member, children })
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, .. Default::default() })]
        /// The one-walk encoding writes what the per-child emptiness check wrote.
        #[test]
        fn fields_v1_encoding_matches_the_reference(set in any_set()) {
            proptest::prop_assert_eq!(set.to_fields_v1(), to_fields_v1_ref(&set));
            proptest::prop_assert_eq!(set.encode().1, !set.is_empty());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 1000, .. Default::default() })]
        /// Skipping equal subtrees and building one-sided subtrees whole record what the
        /// reference records, for objects of any shape against a real schema.
        #[test]
        fn compare_matches_the_reference(a in any_json(), b in any_json(), spec in any_json(), mix in 0u8..4) {
            let shape = pod_shape();
            let wrap = |v: &Value| json!({"metadata": {"labels": v.clone()}, "spec": {"containers": v.clone(), "x": spec.clone()}, "status": v.clone()});
            let (old, new) = match mix {
                0 => (a.clone(), b.clone()),
                1 => (wrap(&a), wrap(&b)),
                2 => (json!({}), wrap(&b)),
                _ => (wrap(&a), json!({"spec": {"x": spec.clone()}})),
            };
            proptest::prop_assert_eq!(compare(&old, &new, shape), compare_ref(&old, &new, shape));
            proptest::prop_assert_eq!(compare(&new, &old, shape), compare_ref(&new, &old, shape));
        }
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Never"}});
        let new = json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"containers": [{"name": "c", "image": "y"}, {"name": "d", "image": "z"}]}});
        let c = compare(&old, &new, pod_shape());
        assert_eq!(
            c.added.members(),
            vec![
                p(&["f:metadata", "f:labels", "f:c"]),
                p(&["f:spec", "f:containers", "k:{\"name\":\"d\"}"]),
                p(&["f:spec", "f:containers", "k:{\"name\":\"d\"}", "f:image"]),
                p(&["f:spec", "f:containers", "k:{\"name\":\"d\"}", "f:name"]),
            ]
        );
        assert_eq!(c.modified.members(), vec![p(&["f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:image"])]);
        assert_eq!(
            c.removed.members(),
            vec![p(&["f:spec", "f:restartPolicy"]), p(&["f:metadata", "f:labels", "f:b"])]
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn compare_marks_new_maps_and_treats_atomic_lists_as_leaves() {
        let old = json!({"spec": {"tolerations": [{"key": "a"}]}});
        let new = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"tolerations": [{"key": "b"}]}});
        let c = compare(&old, &new, pod_shape());
        assert!(c.added.contains(&["f:metadata", "f:labels"]));
        assert!(!c.added.contains(&["f:metadata"]));
        assert_eq!(c.modified.members(), vec![p(&["f:spec", "f:tolerations"])]);
    }

    #[test]
    fn applied_set_owns_leaves_and_list_items() {
        let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}, "finalizers": ["f"]},
                            "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}], "nodeSelector": {"a": "b"}}});
        let mut set = to_field_set(&config, pod_shape());
        strip_meta(&mut set);
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"f\"": {}}},
                "f:spec": {
                    "f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}},
                    "f:nodeSelector": {}
                }
            })
        );
    }

    #[test]
    fn managed_fields_encode_sorted_and_decode_back() {
        let e = |m: &str, op: &str, t: &str| ManagedEntry {
            manager: m.into(),
            operation: op.into(),
            api_version: "v1".into(),
            time: Some(t.into()),
            subresource: String::new(),
            fields: FieldSet::from_fields_v1(&json!({"f:spec": {"f:x": {}}})).unwrap(),
        };
        let entries = vec![
            e("b", "Update", "2024-01-01T00:00:02Z"),
            e("a", "Update", "2024-01-01T00:00:02Z"),
            e("z", "Apply", "2024-01-01T00:00:09Z"),
        ];
        let mut obj = json!({"metadata": {}});
        set_managed_fields(&mut obj, &entries);
        let managers: Vec<&str> = obj["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["manager"].as_str().unwrap())
            .collect();
        assert_eq!(managers, ["z", "a", "b"]);
        assert_eq!(obj["metadata"]["managedFields"][0]["fieldsType"], "FieldsV1");
        assert_eq!(decode_managed_fields(&obj).len(), 3);
        set_managed_fields(&mut obj, &[]);
        assert!(obj["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn printed_managers_match_upstream() {
        let mut e = ManagedEntry {
            manager: "kubectl-client-side-apply".into(),
            operation: "Update".into(),
            api_version: "batch/v1".into(),
            time: None,
            subresource: String::new(),
            fields: FieldSet::default(),
        };
        assert_eq!(e.printed(), "\"kubectl-client-side-apply\" using batch/v1");
        assert_eq!(
            e.identifier(),
            r#"{"manager":"kubectl-client-side-apply","operation":"Update","apiVersion":"batch/v1"}"#
        );
        e.subresource = "status".into();
        assert_eq!(e.printed(), "\"kubectl-client-side-apply\" with subresource \"status\" using batch/v1");
        e.operation = "Apply".into();
        e.subresource.clear();
        assert_eq!(e.printed(), "\"kubectl-client-side-apply\"");
    }
}
