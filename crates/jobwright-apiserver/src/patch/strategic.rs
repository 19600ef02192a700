//! Strategic merge patch, as `k8s.io/apimachinery/pkg/util/strategicpatch` applies it on the
//! server (`MergeParallelList` and `IgnoreUnmatchedNulls` both on).
//!
//! Maps merge key by key and `null` deletes a key. Lists follow the [`Smp`] strategy of their
//! field: replaced by default, merged by key for lists of maps, merged as a set for lists of
//! primitives. Directives:
//!
//! - `$patch: replace` in a map replaces the map; `$patch: delete` deletes it; in a merged list
//!   an item `{"$patch": "replace"}` replaces the list and `{"<key>": v, "$patch": "delete"}`
//!   deletes the item with that key (`$patch: merge` is rejected, as upstream does).
//! - `$retainKeys: [..]` drops every key of the live map not listed (kubectl uses it for union
//!   fields such as a Deployment's `strategy` or a volume's source).
//! - `$setElementOrder/<list>: [..]` fixes the order of a merged list.
//! - `$deleteFromPrimitiveList/<list>: [..]` removes values from a set of primitives.
//!
//! Item order follows upstream exactly, including its quirk that items a patch adds to a merged
//! list without `$setElementOrder` land in front of the live items.

use serde_json::{Map, Value};

use super::MergeError;
use super::schema::{ListShape, Shape, Smp};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";

const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_SET_ORDER: &str = "invalid patch format of setElementOrder list";
const NO_LIST_OF_LISTS: &str = "lists of lists are not supported";

/// Apply a strategic merge patch to `original`; the result carries no directive keys.
pub fn strategic_merge(original: &Value, patch: Value, shape: &Shape) -> Result<Value, MergeError> {
    let original = match original {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let patch = match patch {
        Value::Object(m) => m,
        // `null` decodes into a nil Go map: nothing to merge.
        Value::Null => return Ok(Value::Object(original)),
        other => {
            return Err(MergeError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                json_kind(&other)
            )));
        }
    };
    let mut merged = Value::Object(merge_map(original, patch, shape)?);
    strip_directives(&mut merged);
    Ok(merged)
}

/// The Go json name of a value's kind, for `cannot unmarshal X` messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `%v` rendering of a decoded JSON value (`map[a:1 b:[x y]]`), used in upstream messages.
pub(crate) fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_fmt).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            format!("map[{}]", m.iter().map(|(k, v)| format!("{k}:{}", go_fmt(v))).collect::<Vec<_>>().join(" "))
        }
    }
}

/// Go's `reflect.TypeOf` name of a decoded JSON value.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "%!s(<nil>)",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn bad_arg_type(expected: &str, actual: &Value) -> MergeError {
    MergeError::Other(format!("expected a {expected}, but received a {}", go_type(actual)))
}

fn no_merge_key(m: &Map<String, Value>, key: &str) -> MergeError {
    MergeError::Other(format!("map: {} does not contain declared merge key: {key}", go_fmt(&Value::Object(m.clone()))))
}

fn bad_patch_type(t: &Value, m: &Map<String, Value>) -> MergeError {
    MergeError::Other(format!("unknown patch type: {} in map: {}", go_fmt(t), go_fmt(&Value::Object(m.clone()))))
}

/// Remove directive keys left in the result (upstream drops them when decoding into the typed
/// object: they are unknown fields).
pub(crate) fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| {
                !(k == DIRECTIVE
                    || k == RETAIN_KEYS
                    || k.starts_with(SET_ORDER_PREFIX)
                    || k.starts_with(DELETE_PRIMITIVE_PREFIX))
            });
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Drop `null` values from a patch value that is taken as a whole (upstream
/// `discardNullValuesFromPatch`).
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Upstream `removeDirectives`, for patch values taken as a whole: a map carrying `$patch` is
/// dropped (`None`), as are list items carrying it.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => {
            Some(Value::Object(m.into_iter().filter_map(|(k, v)| remove_directives(v).map(|v| (k, v))).collect()))
        }
        Value::Array(a) => Some(Value::Array(a.into_iter().filter_map(remove_directives).collect())),
        other => Some(other),
    }
}

/// `extractKey`: the list name after `<prefix>/`.
fn extract_key<'k>(k: &'k str, prefix: &str, err: &'static str) -> Result<&'k str, MergeError> {
    match k.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ => Err(MergeError::BadRequest(err.into())),
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    shape: &Shape,
) -> Result<Map<String, Value>, MergeError> {
    if let Some(d) = patch.get(DIRECTIVE) {
        return match d.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(d, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, shape)?;

    // Go iterates the patch in random order; we take plain keys first, then deletion lists, so
    // that `{"x": [..], "$deleteFromPrimitiveList/x": [..]}` adds before it deletes.
    let (deletions, plain): (Vec<_>, Vec<_>) =
        patch.into_iter().partition(|(k, _)| k.starts_with(DELETE_PRIMITIVE_PREFIX));
    for (k, patch_v) in plain.into_iter().chain(deletions) {
        let (is_delete_list, key) = if k.starts_with(DELETE_PRIMITIVE_PREFIX) {
            (true, extract_key(&k, DELETE_PRIMITIVE_PREFIX, BAD_PRIMITIVE_LIST)?.to_string())
        } else {
            (false, k)
        };
        if patch_v.is_null() {
            original.remove(&key);
            continue;
        }
        let field = shape.field(&key);
        let Some(orig_v) = original.get_mut(&key) else {
            if !is_delete_list {
                let mut v = patch_v;
                discard_nulls(&mut v);
                if let Some(v) = remove_directives(v) {
                    original.insert(key, v);
                }
            }
            continue;
        };
        match (orig_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => {
                let o = std::mem::take(o);
                original.insert(key, Value::Object(merge_map(o, p, field)?));
            }
            (Value::Array(o), Value::Array(p)) => {
                let o = std::mem::take(o);
                let merged = merge_slice_handler(o, p, field.list(), is_delete_list)?;
                original.insert(key, Value::Array(merged));
            }
            (orig_v, mut patch_v) => {
                let same_kind = std::mem::discriminant(orig_v) == std::mem::discriminant(&patch_v);
                if same_kind || !is_delete_list {
                    if !same_kind {
                        discard_nulls(&mut patch_v);
                    }
                    match remove_directives(patch_v) {
                        Some(v) => *orig_v = v,
                        None => {
                            original.remove(&key);
                        }
                    }
                }
            }
        }
    }
    Ok(original)
}

fn apply_retain_keys(original: &mut Map<String, Value>, patch: &mut Map<String, Value>) -> Result<(), MergeError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(MergeError::BadRequest(BAD_RETAIN_KEYS.into()));
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null() || k.starts_with(DELETE_PRIMITIVE_PREFIX) || k.starts_with(SET_ORDER_PREFIX) {
            continue;
        }
        if !listed(k) {
            return Err(MergeError::BadRequest(BAD_RETAIN_KEYS.into()));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// The kind of the items of one or more lists (upstream `sliceElementType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    Map,
    Scalar(std::mem::Discriminant<Value>),
}

fn slice_element_type(lists: &[&[Value]]) -> Result<ItemKind, MergeError> {
    let mut prev: Option<std::mem::Discriminant<Value>> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let d = std::mem::discriminant(v);
        match prev {
            None if v.is_array() => return Err(MergeError::Unprocessable(NO_LIST_OF_LISTS.into())),
            None => prev = Some(d),
            Some(p) if p != d => {
                let all = lists.iter().map(|l| go_fmt(&Value::Array(l.to_vec()))).collect::<Vec<_>>().join(" ");
                return Err(MergeError::Other(format!("list element types are not identical: [{all}]")));
            }
            Some(_) => {}
        }
    }
    match prev {
        None => Err(MergeError::Other("no elements in any of the given slices".into())),
        Some(d) if d == std::mem::discriminant(&Value::Object(Map::new())) => Ok(ItemKind::Map),
        Some(d) => Ok(ItemKind::Scalar(d)),
    }
}

fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    list: &ListShape,
    is_delete_list: bool,
) -> Result<Vec<Value>, MergeError> {
    match list.smp {
        Smp::Replace => Ok(patch),
        Smp::Merge(key) => merge_slice(original, patch, Some(key), &list.item, is_delete_list),
        Smp::MergeScalars => merge_slice(original, patch, None, &list.item, is_delete_list),
    }
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&str>,
    item: &Shape,
    is_delete_list: bool,
) -> Result<Vec<Value>, MergeError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_type(&[&original, &patch])?;
    let (server_order, patch, merged) = match kind {
        ItemKind::Scalar(_) => {
            if is_delete_list {
                return Ok(original.into_iter().filter(|v| !patch.contains(v)).collect());
            }
            let mut merged = original.clone();
            for v in &patch {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            (original, patch, merged)
        }
        ItemKind::Map => {
            let Some(key) = merge_key else {
                return Err(MergeError::Other("cannot merge lists without merge key for type struct".into()));
            };
            let (original, patch) = merge_slice_with_special_elements(original, patch, key)?;
            let merged = merge_slice_without_special_elements(original.clone(), patch.clone(), key, item)?;
            (original, patch, merged)
        }
    };
    let (patch_items, server_only) = partition(merged, &patch, merge_key, kind)?;
    normalize_element_order(patch_items, server_only, &patch, &server_order, merge_key, kind)
}

fn as_map(v: &Value) -> Result<&Map<String, Value>, MergeError> {
    v.as_object().ok_or_else(|| bad_arg_type("map[string]interface {}", v))
}

fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), MergeError> {
    let mut plain = Vec::new();
    let mut replace = false;
    for v in patch {
        let m = as_map(&v)?;
        match m.get(DIRECTIVE) {
            None => plain.push(v),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let Some(kv) = m.get(key) else {
                        return Err(no_merge_key(m, key));
                    };
                    for o in &original {
                        as_map(o)?;
                    }
                    original.retain(|o| o.get(key) != Some(kv));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(MergeError::Other("merging lists cannot yet be specified in the patch".into()));
                }
                _ => return Err(bad_patch_type(d, m)),
            },
        }
    }
    Ok(if replace { (plain, Vec::new()) } else { (original, plain) })
}

fn find_by_key(list: &[Value], key: &str, value: &Value) -> Result<Option<usize>, MergeError> {
    for (i, v) in list.iter().enumerate() {
        let Some(m) = v.as_object() else {
            return Err(MergeError::Other(format!("value for key {i} is not a map.")));
        };
        if m.get(key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
    item: &Shape,
) -> Result<Vec<Value>, MergeError> {
    for v in patch {
        let Value::Object(p) = v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        let Some(kv) = p.get(key).cloned() else {
            return Err(no_merge_key(&p, key));
        };
        match find_by_key(&original, key, &kv)? {
            Some(i) => {
                let o = match std::mem::take(&mut original[i]) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                original[i] = Value::Object(merge_map(o, p, item)?);
            }
            None => original.push(Value::Object(p)),
        }
    }
    Ok(original)
}

/// The identity of an item for ordering: its merge key value, or itself for primitives.
fn identity<'v>(v: &'v Value, merge_key: Option<&str>, kind: ItemKind) -> Option<&'v Value> {
    match (kind, merge_key) {
        (ItemKind::Map, Some(k)) => v.get(k),
        (ItemKind::Map, None) => None,
        _ => Some(v),
    }
}

fn index_of(list: &[Value], v: &Value, merge_key: Option<&str>, kind: ItemKind) -> Option<usize> {
    let want = identity(v, merge_key, kind);
    list.iter().position(|x| identity(x, merge_key, kind) == want)
}

/// Split `merged` into items present in `by` and the others, keeping order.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
    kind: ItemKind,
) -> Result<(Vec<Value>, Vec<Value>), MergeError> {
    let mut in_by = Vec::new();
    let mut others = Vec::new();
    for v in merged {
        let found = match (kind, merge_key) {
            (ItemKind::Map, Some(k)) => {
                let m = as_map(&v)?;
                let Some(kv) = m.get(k) else {
                    return Err(no_merge_key(m, k));
                };
                find_by_key(by, k, kv)?.is_some()
            }
            _ => by.contains(&v),
        };
        if found { in_by.push(v) } else { others.push(v) }
    }
    Ok((in_by, others))
}

fn is_delete_item(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

/// Sort `items` by their position in `order`, deletion items last (upstream `normalizeSliceOrder`).
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    kind: ItemKind,
) -> Result<Vec<Value>, MergeError> {
    let (mut items, to_delete): (Vec<_>, Vec<_>) = if kind == ItemKind::Map {
        if let Some(k) = merge_key {
            for v in items.iter().chain(order) {
                let m = as_map(v)?;
                if !m.contains_key(k) {
                    return Err(no_merge_key(m, k));
                }
            }
        }
        items.into_iter().partition(|v| !is_delete_item(v))
    } else {
        (items, Vec::new())
    };
    items.sort_by_key(|v| index_of(order, v, merge_key, kind).unwrap_or(usize::MAX));
    items.extend(to_delete);
    Ok(items)
}

/// Upstream `normalizeElementOrder` + `mergeSortedSlice`: patch items in patch order, server-only
/// items in server order, interleaved by their positions in the live list.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: ItemKind,
) -> Result<Vec<Value>, MergeError> {
    let right = normalize_slice_order(patch_items, patch_order, merge_key, kind)?;
    let left = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (Some(l), Some(r)) => {
                let li = index_of(server_order, l, merge_key, kind);
                let ri = index_of(server_order, r, merge_key, kind);
                match (li, ri) {
                    (Some(li), Some(ri)) if li < ri => out.extend(left.next()),
                    _ => out.extend(right.next()),
                }
            }
        }
    }
    Ok(out)
}

/// `validatePatchWithSetOrderList`: the patch list must follow the `$setElementOrder` order.
fn validate_set_order(patch_list: &[Value], set_order: &[Value], merge_key: Option<&str>) -> Result<(), MergeError> {
    if set_order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = if merge_key.is_some() {
        let mut keep = Vec::new();
        for v in patch_list {
            as_map(v)?;
            if !is_delete_item(v) {
                keep.push(v);
            }
        }
        keep
    } else {
        patch_list.iter().collect()
    };
    let (mut pi, mut si) = (0, 0);
    while pi < non_delete.len() && si < set_order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        let equal = match merge_key {
            None => non_delete[pi] == &set_order[si],
            Some(k) => {
                let l = as_map(non_delete[pi])?;
                let r = as_map(&set_order[si])?;
                let lv = l.get(k).ok_or_else(|| no_merge_key(l, k))?;
                let rv = r.get(k).ok_or_else(|| no_merge_key(r, k))?;
                lv == rv
            }
        };
        if equal {
            pi += 1;
        }
        si += 1;
    }
    if pi < non_delete.len() && si >= set_order.len() {
        return Err(MergeError::Other(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ORDER_PREFIX} list:\n{}\n",
            go_fmt(&Value::Array(patch_list.to_vec())),
            go_fmt(&Value::Array(set_order.to_vec()))
        )));
    }
    Ok(())
}

/// Upstream `mergePatchIntoOriginal`: merge every list that has a `$setElementOrder` directive
/// and put it in the requested order.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    shape: &Shape,
) -> Result<(), MergeError> {
    let keys: Vec<String> = patch.keys().filter(|k| k.starts_with(SET_ORDER_PREFIX)).cloned().collect();
    for dk in keys {
        let Some(order) = patch.remove(&dk) else { continue };
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let list_key = extract_key(&dk, SET_ORDER_PREFIX, BAD_SET_ORDER)?.to_string();
        let original_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let patch_list = match patch.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(other) => return Err(bad_arg_type("[]interface {}", other)),
        };
        let list = shape.field(&list_key).list();
        let merge_key = match list.smp {
            Smp::Merge(k) => Some(k),
            _ => None,
        };
        validate_set_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;
        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => p.clone(),
            (Some(o), Some(p)) => merge_slice_handler(o.clone(), p.clone(), list, false)?,
            (None, None) => continue,
        };
        let o = original_list.unwrap_or_default();
        let p = patch_list.unwrap_or_default();
        let kind = slice_element_type(&[&o, &p])?;
        let (patch_items, server_only) = partition(merged, &order, merge_key, kind)?;
        let both = normalize_element_order(patch_items, server_only, &order, &o, merge_key, kind)?;
        original.insert(list_key.clone(), Value::Array(both));
        patch.remove(&list_key);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
