//! Server-side apply and the `Update` bookkeeping of every other write.
//!
//! Apply follows `structured-merge-diff`'s `Updater.Apply`: the applied configuration is merged
//! into the live object (maps field by field, associative lists item by item by their keys, sets
//! as unions, everything else replaced); the fields whose value that changes and that another
//! manager owns are conflicts (409) unless `force=true`, which moves them to the applier; the
//! applier then owns exactly what it applied, and whatever it applied last time, no longer
//! applies and nobody else owns is removed from the object.
//!
//! An `Update` (any other write) owns what it added or modified, merged into the manager's
//! previous `Update` entry, and takes those fields away from every other manager; removed fields
//! leave every manager.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::fields::{
    Comparison, FieldSet, ManagedEntry, compare, created_fields_v1, decode_managed_fields, decode_managed_list,
    encode_entry, encode_entry_v1, encode_entry_with, encode_managed_fields, format_time, item_key, path_string,
    set_managed_fields, strip_meta, to_field_set,
};
use super::schema::{Shape, Ssa, shape_for};
use super::{MergeError, WriteContext};
use crate::errors::StatusError;
use crate::registry::ResourceInfo;

/// Upstream's manager name for a write: `?fieldManager=`, else the user agent up to its first
/// `/`, printable characters only, at most 128 bytes (`prefixFromUserAgent`).
pub fn manager_name(ctx: &WriteContext<'_>) -> String {
    if let Some(m) = ctx.field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let ua = ctx.user_agent.unwrap_or_default();
    let prefix = ua.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

/// Narrow a change set to what a write to `subresource` may own: the main resource of a kind
/// with a status subresource never owns `status`, a status write owns nothing but `status`.
fn scope(info: &ResourceInfo, subresource: &str, set: &mut FieldSet) {
    match subresource {
        "" if info.has_subresource("status") => set.remove_subtree(&["f:status"]),
        "status" => *set = set.only_subtree("f:status"),
        _ => {}
    }
}

fn scoped_comparison(info: &ResourceInfo, subresource: &str, old: &Value, new: &Value) -> Comparison {
    let mut c = compare(old, new, shape_for(info));
    for s in [&mut c.added, &mut c.modified, &mut c.removed] {
        strip_meta(s);
        scope(info, subresource, s);
    }
    c
}

/// Record a non-apply write in `new.metadata.managedFields` (operation `Update`).
pub fn record_update(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    ctx: &WriteContext<'_>,
    now: DateTime<Utc>,
) {
    if old.is_none() && record_create(info, new, ctx, now) {
        return;
    }
    let subresource = ctx.subresource.unwrap_or_default();
    let manager = manager_name(ctx);
    let api_version = info.api_version();
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    let c = scoped_comparison(info, subresource, old_v, new);
    // The comparison's sets are pruned (every node but the root holds a member), so a union with
    // an empty one is the other set itself: a create (everything added, nothing modified) keeps
    // its set instead of copying it.
    let Comparison { added, modified, removed } = c;
    let changed = if modified.children.is_empty() {
        added
    } else if added.children.is_empty() {
        modified
    } else {
        added.union(&modified)
    };
    // Upstream `decodeLiveOrNew`: on the main resource a client may reset managedFields (`[]` or
    // `[{}]`) or rewrite them; a request without any keeps the live ones.
    let sent = new.pointer("/metadata/managedFields").and_then(Value::as_array);
    let reset = sent.is_some_and(|a| a.is_empty() || (a.len() == 1 && a[0] == json!({})));
    let old_list = || old_v.pointer("/metadata/managedFields").map_or(Cow::Owned(Value::Null), Cow::Borrowed);
    let list: Cow<'_, Value> = if !subresource.is_empty() {
        old_list()
    } else if reset {
        Cow::Owned(Value::Null)
    } else if new.pointer("/metadata/managedFields").is_some_and(has_entries) {
        Cow::Owned(new.pointer_mut("/metadata/managedFields").map(Value::take).unwrap_or_default())
    } else {
        old_list()
    };
    let update = Update { changed: &changed, removed: &removed, manager, api_version, subresource, now };
    let encoded = match update.fast(&list) {
        Some(encoded) => encoded,
        None => encode_managed_fields(&update.slow(&list)),
    };
    let Some(meta) = new.as_object_mut().map(|root| root.entry("metadata").or_insert_with(|| json!({}))) else {
        return;
    };
    let Some(meta) = meta.as_object_mut() else { return };
    if encoded.as_array().is_some_and(|a| a.is_empty()) {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), encoded);
    }
}

/// [`record_update`] of a create (no old object), when the write keeps no entry of a list: the
/// object sends no `managedFields` entries (or resets them), so the list is this write's entry
/// alone, whose FieldsV1 is built in one pass from the object ([`created_fields_v1`]) instead of
/// through a [`Comparison`]'s sets. `false` (and `new` untouched) when that is not the case.
fn record_create(info: &ResourceInfo, new: &mut Value, ctx: &WriteContext<'_>, now: DateTime<Utc>) -> bool {
    let subresource = ctx.subresource.unwrap_or_default();
    let shape = shape_for(info);
    let Some(root) = new.as_object() else { return false };
    if shape.is_atomic_map() {
        return false;
    }
    if subresource.is_empty() {
        let sent = root.get("metadata").and_then(|m| m.get("managedFields"));
        let reset = sent.and_then(Value::as_array).is_some_and(|a| a.is_empty() || (a.len() == 1 && a[0] == json!({})));
        if !reset && sent.is_some_and(has_entries) {
            return false;
        }
    }
    // `scope`: the main resource of a kind with a status subresource never owns `status`, a
    // status write owns nothing but `status`.
    let status_sub = info.has_subresource("status");
    let keep = |k: &str| match subresource {
        "" => !(status_sub && k == "status"),
        "status" => k == "status",
        _ => true,
    };
    let entry = created_fields_v1(root, shape, keep).map(|fields| {
        let e = ManagedEntry {
            manager: manager_name(ctx),
            operation: "Update".into(),
            api_version: info.api_version(),
            time: Some(format_time(now)),
            subresource: subresource.to_string(),
            fields: FieldSet::default(),
        };
        encode_entry_v1(&e, fields)
    });
    let Some(meta) = new.as_object_mut().map(|root| root.entry("metadata").or_insert_with(|| json!({}))) else {
        return true;
    };
    let Some(meta) = meta.as_object_mut() else { return true };
    match entry {
        Some(e) => {
            meta.insert("managedFields".into(), Value::Array(vec![e]));
        }
        None => {
            meta.remove("managedFields");
        }
    }
    true
}

/// Whether a `managedFields` list holds an entry [`decode_managed_fields`] keeps (an `Apply` or
/// `Update` entry whose `fieldsV1`, if any, is an object tree), without decoding it.
fn has_entries(list: &Value) -> bool {
    fn tree(v: &Value) -> bool {
        v.as_object().is_some_and(|m| m.iter().all(|(k, c)| k == "." || tree(c)))
    }
    list.as_array().is_some_and(|a| {
        a.iter().any(|e| {
            matches!(e.get("operation").and_then(Value::as_str), Some("Apply" | "Update"))
                && e.get("fieldsV1").is_none_or(tree)
        })
    })
}

/// One `Update` write's bookkeeping: what it changed and removed, and who wrote it.
struct Update<'a> {
    changed: &'a FieldSet,
    removed: &'a FieldSet,
    manager: String,
    api_version: String,
    subresource: &'a str,
    now: DateTime<Utc>,
}

impl Update<'_> {
    /// The write applied to the entries of `list` (a `managedFields` value), decoded.
    fn slow(&self, list: &Value) -> Vec<ManagedEntry> {
        let mut entries = decode_managed_list(list);
        for e in entries.iter_mut() {
            // A set decoded from FieldsV1 has no empty subtrees, so taking away a set it does
            // not overlap leaves it as it is: only entries the write touches are rebuilt.
            if e.fields.overlaps(self.changed) {
                e.fields = e.fields.difference(self.changed);
            }
            if e.fields.overlaps(self.removed) {
                e.fields = e.fields.difference(self.removed);
            }
        }
        if !self.changed.is_empty() {
            let (manager, version, sub) = (&self.manager, &self.api_version, self.subresource);
            match entries.iter_mut().find(|e| e.same_identity(manager, "Update", version, sub)) {
                Some(e) => {
                    e.fields = e.fields.union(self.changed);
                    e.time = Some(format_time(self.now));
                }
                None => entries.push(ManagedEntry {
                    manager: manager.clone(),
                    operation: "Update".into(),
                    api_version: version.clone(),
                    time: Some(format_time(self.now)),
                    subresource: sub.to_string(),
                    fields: self.changed.clone(),
                }),
            }
        }
        cap_update_managers(&mut entries);
        entries
    }

    /// [`Update::slow`] then [`encode_managed_fields`], when `list` is in the form that encoding
    /// writes (each entry's fields canonical FieldsV1, every key present and of its type, no
    /// identity twice), without decoding the entries the write does not touch: those are encoded
    /// exactly as they already are. `None` when that is not shown, or when more than
    /// [`MAX_UPDATE_MANAGERS`] entries would need capping: then the slow way decides.
    fn fast(&self, list: &Value) -> Option<Value> {
        let items: &[Value] = match list {
            Value::Null => &[],
            Value::Array(a) => a,
            _ => return None,
        };
        let mut ids: Vec<RawId<'_>> = Vec::with_capacity(items.len());
        for item in items {
            let id = RawId::of(item)?;
            if ids.iter().any(|o| o.same_identity(&id)) {
                return None;
            }
            ids.push(id);
        }
        let mine = |id: &RawId<'_>| {
            id.operation == "Update"
                && id.manager == self.manager
                && id.api_version == self.api_version
                && id.subresource == self.subresource
        };
        let own = ids.iter().position(mine);
        let pushes = own.is_none() && !self.changed.is_empty();
        let updaters = ids.iter().filter(|id| id.operation == "Update").count() + usize::from(pushes);
        if updaters > MAX_UPDATE_MANAGERS {
            return None;
        }
        let mut out: Vec<ManagedEntry> = Vec::new();
        let mut raw: Vec<(Option<usize>, Value)> = Vec::with_capacity(items.len() + 1);
        for (i, (item, id)) in items.iter().zip(&ids).enumerate() {
            let fields = item.get("fieldsV1")?;
            let touched = (own == Some(i) && !self.changed.is_empty())
                || overlaps_raw(self.changed, fields, true)
                || overlaps_raw(self.removed, fields, true);
            if !touched {
                raw.push((None, item.clone()));
                continue;
            }
            let mut entry = id.decode(FieldSet::from_fields_v1(fields)?);
            if entry.fields.overlaps(self.changed) {
                entry.fields = entry.fields.difference(self.changed);
            }
            if entry.fields.overlaps(self.removed) {
                entry.fields = entry.fields.difference(self.removed);
            }
            if own == Some(i) && !self.changed.is_empty() {
                entry.fields = entry.fields.union(self.changed);
                entry.time = Some(format_time(self.now));
            }
            raw.push((Some(out.len()), Value::Null));
            out.push(entry);
        }
        // The new entry of this manager: its fields are `self.changed`, encoded from there rather
        // than copied into the entry (a create's set is the whole object's).
        let pushed = pushes.then(|| ManagedEntry {
            manager: self.manager.clone(),
            operation: "Update".into(),
            api_version: self.api_version.clone(),
            time: Some(format_time(self.now)),
            subresource: self.subresource.to_string(),
            fields: FieldSet::default(),
        });
        // The order and the dropping of empty entries of `encode_managed_fields`.
        let mut keyed: Vec<(SortKey, Value)> = Vec::with_capacity(raw.len() + 1);
        for (decoded, value) in raw {
            match decoded {
                None => keyed.push((SortKey::of_raw(&value), value)),
                Some(n) => {
                    let e = &out[n];
                    if !e.fields.is_empty() {
                        keyed.push((SortKey::of(e), encode_entry(e)));
                    }
                }
            }
        }
        if let Some(e) = &pushed {
            // `pushes` implies a non-empty `self.changed`.
            keyed.push((SortKey::of(e), encode_entry_with(e, self.changed)));
        }
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Value::Array(keyed.into_iter().map(|(_, v)| v).collect()))
    }
}

/// An entry's identity and time, read from its JSON; `None` unless the entry is exactly what
/// [`encode_managed_fields`] would write for it (so re-encoding it is the identity).
struct RawId<'a> {
    manager: &'a str,
    operation: &'a str,
    api_version: &'a str,
    time: Option<&'a str>,
    subresource: &'a str,
}

impl<'a> RawId<'a> {
    fn of(item: &'a Value) -> Option<Self> {
        let m = item.as_object()?;
        let s = |k: &str| m.get(k).and_then(Value::as_str);
        let known = ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1", "subresource"];
        if !m.keys().all(|k| known.contains(&k.as_str())) {
            return None;
        }
        let operation = s("operation").filter(|o| matches!(*o, "Apply" | "Update"))?;
        let time = match m.get("time") {
            None => None,
            Some(t) => Some(t.as_str()?),
        };
        let subresource = match m.get("subresource") {
            None => "",
            Some(v) => v.as_str().filter(|s| !s.is_empty())?,
        };
        let fields = m.get("fieldsV1")?;
        if s("fieldsType") != Some("FieldsV1") || !canonical_fields_v1(fields, true) {
            return None;
        }
        Some(Self { manager: s("manager")?, operation, api_version: s("apiVersion")?, time, subresource })
    }

    /// [`ManagedEntry::same_identity`].
    fn same_identity(&self, o: &RawId<'_>) -> bool {
        self.manager == o.manager
            && self.operation == o.operation
            && self.subresource == o.subresource
            && (self.operation == "Apply" || self.api_version == o.api_version)
    }

    fn decode(&self, fields: FieldSet) -> ManagedEntry {
        ManagedEntry {
            manager: self.manager.to_string(),
            operation: self.operation.to_string(),
            api_version: self.api_version.to_string(),
            time: self.time.map(str::to_string),
            subresource: self.subresource.to_string(),
            fields,
        }
    }
}

/// Whether `v` is FieldsV1 exactly as [`FieldSet::to_fields_v1`] writes the set it decodes to,
/// and not empty: objects all the way down, a `"."` (holding `{}`) only beside other children.
fn canonical_fields_v1(v: &Value, root: bool) -> bool {
    let Some(m) = v.as_object() else { return false };
    if root && m.is_empty() {
        return false;
    }
    let kids = m.len() - usize::from(m.contains_key("."));
    match m.get(".") {
        Some(dot) if kids == 0 || dot.as_object().is_none_or(|d| !d.is_empty()) => return false,
        _ => {}
    }
    m.iter().all(|(k, c)| k == "." || canonical_fields_v1(c, false))
}

/// [`FieldSet::overlaps`] against canonical FieldsV1 JSON, without decoding it.
fn overlaps_raw(set: &FieldSet, raw: &Value, root: bool) -> bool {
    let Some(m) = raw.as_object() else { return false };
    let member = m.contains_key(".") || (!root && m.is_empty());
    (set.member && member) || set.children.iter().any(|(k, c)| m.get(k).is_some_and(|r| overlaps_raw(c, r, false)))
}

/// The order of [`encode_managed_fields`]: operation, time (seconds), manager, apiVersion,
/// subresource.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct SortKey(String, i64, String, String, String);

impl SortKey {
    fn of(e: &ManagedEntry) -> Self {
        SortKey(
            e.operation.clone(),
            secs(e.time.as_deref()),
            e.manager.clone(),
            e.api_version.clone(),
            e.subresource.clone(),
        )
    }

    fn of_raw(v: &Value) -> Self {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        SortKey(
            s("operation"),
            secs(v.get("time").and_then(Value::as_str)),
            s("manager"),
            s("apiVersion"),
            s("subresource"),
        )
    }
}

fn secs(t: Option<&str>) -> i64 {
    t.and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map_or(0, |t| t.timestamp())
}

/// The reference implementation of [`record_update`] before the fast path (tests compare the two).
#[cfg(test)]
pub(crate) fn record_update_slow(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    ctx: &WriteContext<'_>,
    now: DateTime<Utc>,
) {
    let subresource = ctx.subresource.unwrap_or_default();
    let manager = manager_name(ctx);
    let api_version = info.api_version();
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    let sent = new.pointer("/metadata/managedFields").and_then(Value::as_array);
    let reset = sent.is_some_and(|a| a.is_empty() || (a.len() == 1 && a[0] == json!({})));
    let mut entries = if !subresource.is_empty() {
        decode_managed_fields(old_v)
    } else if reset {
        Vec::new()
    } else {
        let sent_entries = decode_managed_fields(new);
        if sent_entries.is_empty() { decode_managed_fields(old_v) } else { sent_entries }
    };
    let c = scoped_comparison(info, subresource, old_v, new);
    let changed = c.added.union(&c.modified);
    for e in entries.iter_mut() {
        e.fields = e.fields.difference(&changed).difference(&c.removed);
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.same_identity(&manager, "Update", &api_version, subresource)) {
            Some(e) => {
                e.fields = e.fields.union(&changed);
                e.time = Some(format_time(now));
            }
            None => entries.push(ManagedEntry {
                manager,
                operation: "Update".into(),
                api_version,
                time: Some(format_time(now)),
                subresource: subresource.to_string(),
                fields: changed,
            }),
        }
    }
    cap_update_managers(&mut entries);
    set_managed_fields(new, &entries);
}

/// Most `Update` entries kept per object (upstream `DefaultMaxUpdateManagers`).
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// Upstream `capUpdateManagers`: past [`MAX_UPDATE_MANAGERS`] `Update` entries, the oldest are
/// merged into an `ancient-changes` entry per API version.
fn cap_update_managers(entries: &mut Vec<ManagedEntry>) {
    let mut updaters: Vec<usize> = (0..entries.len()).filter(|i| entries[*i].operation == "Update").collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    let secs = |e: &ManagedEntry| {
        e.time.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).map_or(0, |t| t.timestamp())
    };
    updaters.sort_by(|a, b| {
        let (a, b) = (&entries[*a], &entries[*b]);
        secs(a).cmp(&secs(b)).then_with(|| a.identifier().cmp(&b.identifier()))
    });
    let mut first_by_version: Vec<(String, usize)> = Vec::new();
    let mut removed: Vec<usize> = Vec::new();
    let mut length = updaters.len();
    for &i in &updaters {
        if length <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        let Some(&(_, first)) = first_by_version.iter().find(|(v, _)| *v == version) else {
            first_by_version.push((version, i));
            continue;
        };
        let bucket = match (0..entries.len())
            .find(|b| !removed.contains(b) && entries[*b].same_identity(ANCIENT, "Update", &version, ""))
        {
            Some(b) => b,
            None => {
                // The first entry of this version becomes the bucket.
                entries[first].manager = ANCIENT.into();
                entries[first].subresource.clear();
                first
            }
        };
        if bucket == i {
            continue;
        }
        entries[bucket].fields = entries[bucket].fields.union(&entries[i].fields);
        entries[bucket].time = entries[i].time.clone();
        removed.push(i);
        length -= 1;
    }
    let mut idx = 0;
    entries.retain(|_| {
        let keep = !removed.contains(&idx);
        idx += 1;
        keep
    });
}

const ANCIENT: &str = "ancient-changes";

/// Parse an apply body: YAML (JSON is YAML). An empty body is an empty object.
fn parse_apply_body(body: &[u8]) -> Result<Map<String, Value>, StatusError> {
    let text = std::str::from_utf8(body).map_err(|e| StatusError::bad_request(format!("error decoding YAML: {e}")))?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let v: Value = serde_saphyr::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or_default();
        StatusError::bad_request(format!("error decoding YAML: {first}"))
    })?;
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(StatusError::bad_request(format!(
            "error decoding YAML: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            super::strategic::json_kind(&other)
        ))),
    }
}

/// Upstream's 500 for an applied object that does not fit the schema (e.g. a list item without
/// its key), message shape `failed to create typed patch object (GVK ns/name): path: problem`.
fn typed_patch_error(config: &Map<String, Value>, problem: String) -> StatusError {
    let s = |p: &str| config.get("metadata").and_then(|m| m.get(p)).and_then(Value::as_str).unwrap_or_default();
    let api_version = config.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or_default();
    MergeError::Other(format!(
        "failed to create typed patch object ({group}/{version}, Kind={kind} {}/{}): {problem}",
        s("namespace"),
        s("name")
    ))
    .into()
}

/// Check every associative list of the configuration can be keyed, as the typed conversion does.
fn validate_keys(v: &Value, shape: &Shape, path: &mut Vec<String>) -> Result<(), String> {
    match v {
        Value::Object(m) if !shape.is_atomic_map() => {
            for (k, c) in m {
                path.push(super::fields::prefixed("f:", k));
                validate_keys(c, shape.field(k), path)?;
                path.pop();
            }
        }
        Value::Array(items) => {
            let list = shape.list();
            if let Some(keys) = list.ssa.map_keys() {
                let mut seen: Vec<String> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let Some(pe) = item_key(item, &keys) else {
                        let missing = keys.iter().find(|(k, d)| d.is_none() && item.get(*k).is_none_or(Value::is_null));
                        let what = match (item.is_object(), missing) {
                            (true, Some((k, _))) => format!(
                                "associative list with keys has an element that omits key field {k:?} (and doesn't have default value)"
                            ),
                            _ => "expected map, got a different type".to_string(),
                        };
                        return Err(format!("{}: element {i}: {what}", path_string(path)));
                    };
                    if seen.contains(&pe) {
                        let key = path_string(std::slice::from_ref(&pe));
                        return Err(format!("{}: duplicate entries for key {key}", path_string(path)));
                    }
                    path.push(pe.clone());
                    validate_keys(item, &list.item, path)?;
                    path.pop();
                    seen.push(pe);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Merge an applied configuration into the live object.
pub fn merge_applied(live: &Value, config: &Value, shape: &Shape) -> Value {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) if !shape.is_atomic_map() => {
            let mut out = l.clone();
            for (k, cv) in c {
                let merged = match l.get(k) {
                    Some(lv) => merge_applied(lv, cv, shape.field(k)),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(c)) => {
            let list = shape.list();
            match &list.ssa {
                Ssa::Atomic => config.clone(),
                Ssa::Set => {
                    let mut out = l.clone();
                    for v in c {
                        if !out.contains(v) {
                            out.push(v.clone());
                        }
                    }
                    Value::Array(out)
                }
                Ssa::Map(_) | Ssa::Keys(_) => {
                    let keys = list.ssa.map_keys().unwrap_or_default();
                    let lk: Option<Vec<String>> = l.iter().map(|v| item_key(v, &keys)).collect();
                    let ck: Option<Vec<String>> = c.iter().map(|v| item_key(v, &keys)).collect();
                    let (Some(lk), Some(ck)) = (lk, ck) else {
                        return config.clone();
                    };
                    Value::Array(merge_keyed(l, &lk, c, &ck, &list.item))
                }
            }
        }
        _ => config.clone(),
    }
}

/// Merge two associative lists: live items keep their place, applied items are merged into
/// their live counterpart, new applied items come in applied order.
fn merge_keyed(l: &[Value], lk: &[String], c: &[Value], ck: &[String], item: &Shape) -> Vec<Value> {
    let mut out = Vec::with_capacity(l.len() + c.len());
    let mut emitted: Vec<&str> = Vec::new();
    let merged_item = |j: usize| match lk.iter().position(|k| *k == ck[j]) {
        Some(i) => merge_applied(&l[i], &c[j], item),
        None => c[j].clone(),
    };
    let (mut i, mut j) = (0, 0);
    while i < l.len() || j < c.len() {
        if i < l.len() && j < c.len() && lk[i] == ck[j] {
            out.push(merged_item(j));
            emitted.push(&ck[j]);
            i += 1;
            j += 1;
        } else if i < l.len() && !ck.contains(&lk[i]) {
            out.push(l[i].clone());
            i += 1;
        } else if i < l.len() && emitted.contains(&lk[i].as_str()) {
            i += 1;
        } else if j < c.len() {
            if !emitted.contains(&ck[j].as_str()) {
                out.push(merged_item(j));
                emitted.push(&ck[j]);
            }
            j += 1;
        } else {
            // A live item the configuration has, not emitted yet, with the configuration done:
            // cannot happen (every configuration item is emitted), but never loop.
            i += 1;
        }
    }
    out
}

/// Remove from `v` what `remove` names, unless someone (`keep`) still owns the node or anything
/// below it. Objects this empties are removed too.
fn prune(v: &mut Value, remove: &FieldSet, keep: Option<&FieldSet>, shape: &Shape) {
    let kids: Vec<(String, &Shape)> = match super::fields::children(v, shape) {
        Some(k) => k.into_iter().map(|(pe, _, s)| (pe, s)).collect(),
        None => return,
    };
    for (pe, rnode) in &remove.children {
        let Some(pos) = kids.iter().position(|(k, _)| k == pe) else { continue };
        let child_shape = kids[pos].1;
        let knode = keep.and_then(|k| k.children.get(pe));
        let owned = knode.is_some_and(|k| !k.is_empty());
        if rnode.member && !owned {
            remove_child(v, pe, pos);
            continue;
        }
        let Some(child) = child_mut(v, pe, pos) else { continue };
        let was_nonempty = child.as_object().is_some_and(|m| !m.is_empty());
        prune(child, rnode, knode, child_shape);
        if was_nonempty && child.as_object().is_some_and(Map::is_empty) && !owned {
            remove_child(v, pe, pos);
        }
    }
}

fn child_mut<'v>(v: &'v mut Value, pe: &str, pos: usize) -> Option<&'v mut Value> {
    match v {
        Value::Object(m) => m.get_mut(pe.strip_prefix("f:")?),
        Value::Array(a) => a.get_mut(pos),
        _ => None,
    }
}

fn remove_child(v: &mut Value, pe: &str, pos: usize) {
    match v {
        Value::Object(m) => {
            if let Some(f) = pe.strip_prefix("f:") {
                m.remove(f);
            }
        }
        Value::Array(a) => {
            // Mark for removal without shifting the positions computed for siblings.
            if let Some(slot) = a.get_mut(pos) {
                *slot = Value::String(REMOVED.into());
            }
        }
        _ => {}
    }
}

const REMOVED: &str = "\u{0}jobwright-pruned\u{0}";

fn sweep_removed(v: &mut Value) {
    match v {
        Value::Object(m) => m.values_mut().for_each(sweep_removed),
        Value::Array(a) => {
            a.retain(|x| x.as_str() != Some(REMOVED));
            a.iter_mut().for_each(sweep_removed);
        }
        _ => {}
    }
}

fn conflict_error(conflicts: &[(&ManagedEntry, Vec<String>)]) -> StatusError {
    let mut sorted: Vec<&(&ManagedEntry, Vec<String>)> = conflicts.iter().collect();
    sorted.sort_by_key(|(e, _)| e.identifier());
    let causes: Vec<Value> = sorted
        .iter()
        .map(|(e, p)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", e.printed()), "field": path_string(p)})
        })
        .collect();
    let message = if let [(e, p)] = sorted.as_slice() {
        format!("Apply failed with 1 conflict: conflict with {}: {}", e.printed(), path_string(p))
    } else {
        let mut lines = Vec::new();
        let mut last: Option<String> = None;
        for (e, p) in &sorted {
            if last.as_deref() != Some(&e.identifier()) {
                lines.push(format!("conflicts with {}:", e.printed()));
                last = Some(e.identifier());
            }
            lines.push(format!("- {}", path_string(p)));
        }
        format!("Apply failed with {} conflicts: {}", sorted.len(), lines.join("\n"))
    };
    StatusError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

/// Server-side apply of `body` by `ctx.field_manager` onto `current` (None: create).
pub fn server_side_apply(
    info: &ResourceInfo,
    current: Option<&Value>,
    body: &[u8],
    ctx: &WriteContext<'_>,
    now: DateTime<Utc>,
) -> Result<Value, StatusError> {
    let Some(manager) = ctx.field_manager.filter(|m| !m.is_empty()) else {
        return Err(super::field_manager_required());
    };
    let subresource = ctx.subresource.unwrap_or_default();
    let mut config = parse_apply_body(body)?;
    let expected = info.api_version();
    let got = config.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    if got != expected {
        return Err(StatusError::bad_request(format!(
            "Incorrect version specified in apply patch. Specified patch version: {got}, expected: {expected}"
        )));
    }
    if config.get("metadata").and_then(|m| m.get("managedFields")).is_some_and(|m| !m.is_null()) {
        return Err(StatusError::bad_request("metadata.managedFields must be nil"));
    }
    if config.get("kind").and_then(Value::as_str) != Some(info.kind.as_str()) {
        let kind = config.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let (group, version) = got.rsplit_once('/').unwrap_or(("", got));
        return Err(typed_patch_error(&config, format!("no corresponding type for {group}/{version}, Kind={kind}")));
    }
    let shape = shape_for(info);
    let mut config_v = Value::Object(std::mem::take(&mut config));
    strip_nulls(&mut config_v);
    if let Value::Object(m) = &config_v {
        config = m.clone();
    }
    validate_keys(&config_v, shape, &mut Vec::new()).map_err(|p| typed_patch_error(&config, p))?;
    // The part of the configuration this endpoint writes.
    if let Value::Object(m) = &mut config_v {
        match subresource {
            "" if info.has_subresource("status") => {
                m.remove("status");
            }
            "status" => m.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")),
            _ => {}
        }
    }

    let mut live = current.cloned().unwrap_or_else(|| json!({}));
    let mut entries = decode_managed_fields(&live);
    if let Some(meta) = live.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let merged = merge_applied(&live, &config_v, shape);
    let mut applied = to_field_set(&config_v, shape);
    strip_meta(&mut applied);
    scope(info, subresource, &mut applied);

    let me = |e: &ManagedEntry| e.same_identity(manager, "Apply", &expected, subresource);
    let last = entries.iter().find(|e| me(e)).map(|e| e.fields.clone()).unwrap_or_default();
    let c = scoped_comparison(info, subresource, &live, &merged);
    let changed = c.added.union(&c.modified);
    let conflicts: Vec<(&ManagedEntry, Vec<String>)> = entries
        .iter()
        .filter(|e| !me(e))
        .flat_map(|e| e.fields.intersection(&changed).members().into_iter().map(move |p| (e, p)))
        .collect();
    if !conflicts.is_empty() && !ctx.force {
        return Err(conflict_error(&conflicts));
    }
    for e in entries.iter_mut() {
        if !me(e) {
            e.fields = e.fields.difference(&changed);
        }
        e.fields = e.fields.difference(&c.removed);
    }
    let owned_by_others = entries.iter().filter(|e| !me(e)).fold(FieldSet::default(), |acc, e| acc.union(&e.fields));
    let owned = owned_by_others.union(&applied);
    let mut result = merged;
    prune(&mut result, &last.difference(&owned), Some(&owned), shape);
    sweep_removed(&mut result);

    let changed_object = result != live;
    match entries.iter_mut().find(|e| me(e)) {
        Some(e) => {
            e.fields = applied;
            e.api_version = expected.clone();
            if changed_object || e.time.is_none() {
                e.time = Some(format_time(now));
            }
        }
        None => entries.push(ManagedEntry {
            manager: manager.to_string(),
            operation: "Apply".into(),
            api_version: expected.clone(),
            time: Some(format_time(now)),
            subresource: subresource.to_string(),
            fields: applied,
        }),
    }
    set_managed_fields(&mut result, &entries);
    Ok(result)
}

#[cfg(test)]
mod tests;
