#!/usr/bin/env python3
"""Generate crates/jobwright-apiserver/src/proto_schema.rs from upstream's Go API types.

Kubernetes' Go types carry, on one line per field, both the protobuf tag (field number, wire
type, repeated) and the JSON tag (name, omitempty, inline); the Go type says whether the field
is a pointer. That is everything needed to turn a protobuf message into the JSON Go would write
for it and back, so the table is generated from those files rather than from the .proto files
(which lose pointer-ness, omitempty and inlining).

Usage: tools/gen_proto_schema.py SRC > crates/jobwright-apiserver/src/proto_schema.rs
SRC holds k8s.io/api (api/), k8s.io/apimachinery (apimachinery/) and
k8s.io/apiextensions-apiserver (apiext/), all at the same release (v0.33.x here), e.g.:
  git -C kubernetes/api archive v0.33.9 core/v1 batch/v1 ... | tar -x -C SRC/api
(each directory of PACKAGES below; authorization/v1 serves `kubectl auth can-i`).
"""

import os
import re
import sys

SRC = sys.argv[1]
RELEASE = sys.argv[2] if len(sys.argv) > 2 else "v0.33.9"

# (directory under SRC, Go import path, apiVersion of its kinds or None for meta/v1)
PACKAGES = [
    ("api/core/v1", "k8s.io/api/core/v1", "v1"),
    ("api/batch/v1", "k8s.io/api/batch/v1", "batch/v1"),
    ("api/apps/v1", "k8s.io/api/apps/v1", "apps/v1"),
    ("api/policy/v1", "k8s.io/api/policy/v1", "policy/v1"),
    ("api/rbac/v1", "k8s.io/api/rbac/v1", "rbac.authorization.k8s.io/v1"),
    ("api/coordination/v1", "k8s.io/api/coordination/v1", "coordination.k8s.io/v1"),
    ("api/events/v1", "k8s.io/api/events/v1", "events.k8s.io/v1"),
    ("api/autoscaling/v1", "k8s.io/api/autoscaling/v1", "autoscaling/v1"),
    ("api/authentication/v1", "k8s.io/api/authentication/v1", "authentication.k8s.io/v1"),
    ("api/authorization/v1", "k8s.io/api/authorization/v1", "authorization.k8s.io/v1"),
    ("api/discovery/v1", "k8s.io/api/discovery/v1", "discovery.k8s.io/v1"),
    ("apimachinery/pkg/apis/meta/v1", "k8s.io/apimachinery/pkg/apis/meta/v1", None),
    ("apiext/pkg/apis/apiextensions/v1", "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1",
     "apiextensions.k8s.io/v1"),
]

# Types with their own protobuf and JSON forms (custom Marshal/MarshalJSON in Go).
SPECIAL = {
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Time"): "Time",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "MicroTime"): "MicroTime",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "FieldsV1"): "FieldsV1",
    ("k8s.io/apimachinery/pkg/api/resource", "Quantity"): "Quantity",
    ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString"): "IntOrString",
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension"): "RawExtension",
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSON"): "Json",
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrArray"): "JspOrArray",
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrBool"): "JspOrBool",
    ("k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1", "JSONSchemaPropsOrStringArray"): "JspOrStringArray",
}
# Named types from packages not parsed here.
FOREIGN_SCALARS = {
    ("k8s.io/apimachinery/pkg/types", "UID"): "string",
    ("k8s.io/apimachinery/pkg/types", "NodeName"): "string",
}
# meta/v1 kinds served under every group version.
META_KINDS = {"Status", "DeleteOptions", "WatchEvent", "List", "Table", "PartialObjectMetadata",
              "PartialObjectMetadataList", "CreateOptions", "UpdateOptions", "PatchOptions",
              "GetOptions", "ListOptions"}

SCALARS = {"string": "Str", "bool": "Bool", "int32": "I32", "int64": "I64", "int": "I64",
           "uint32": "U32", "uint64": "U64", "float64": "F64", "byte": None}


class Pkg:
    def __init__(self, d, path, gv):
        self.dir, self.path, self.gv = d, path, gv
        self.structs = {}  # name -> list of (name, type, tag, imports)
        self.named = {}    # name -> (underlying type, imports)
        self.kinds = []
        for fn in sorted(os.listdir(os.path.join(SRC, d))):
            if not fn.endswith(".go") or fn.endswith("_test.go") or fn.startswith("zz_") \
                    or fn.startswith("generated") or "fuzz" in fn:
                continue
            self.parse(open(os.path.join(SRC, d, fn)).read())

    def parse(self, text):
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        imports = {}
        for m in re.finditer(r'^\s*(\w+)?\s*"(k8s\.io/[^"]+)"\s*$', text, re.M):
            alias = m.group(1) or m.group(2).rsplit("/", 1)[1]
            imports[alias] = m.group(2)
        lines = text.split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            m = re.match(r"^type (\w+) struct ?\{\}\s*$", line)
            if m:
                self.structs[m.group(1)] = []
                i += 1
                continue
            m = re.match(r"^type (\w+) struct \{\s*$", line)
            if m:
                name, fields = m.group(1), []
                i += 1
                depth = 1
                while i < len(lines):
                    l = lines[i].strip()
                    if l.endswith("{"):
                        depth += 1
                    if l.startswith("}"):
                        depth -= 1
                        if depth == 0:
                            break
                    if depth == 1 and l and not l.startswith("//"):
                        fm = re.match(r"^(?:(\w+)\s+)?([^\s`]+)\s*(?:`(.*)`)?\s*(//.*)?$", l)
                        if not fm:
                            raise SystemExit(f"{self.path}.{name}: cannot parse {l!r}")
                        fields.append((fm.group(1), fm.group(2), fm.group(3) or "", imports))
                    i += 1
                self.structs[name] = fields
            else:
                m = re.match(r"^type (\w+) (?:= )?(\S[^{/]*?)\s*(//.*)?$", line)
                if m and not m.group(2).startswith("func") and not m.group(2).startswith("interface"):
                    self.named[m.group(1)] = (m.group(2), imports)
            i += 1


PKGS = {p[1]: Pkg(*p) for p in PACKAGES}


def tag(tags, key):
    m = re.search(key + r':"([^"]*)"', tags)
    return m.group(1) if m else None


MESSAGES = {}  # (pkg, name) -> index
ORDER = []     # list of (pkg, name)
BODIES = {}    # index -> rust fields


def msg_index(pkg, name):
    key = (pkg, name)
    if key not in MESSAGES:
        MESSAGES[key] = len(ORDER)
        ORDER.append(key)
        BODIES[MESSAGES[key]] = None
        BODIES[MESSAGES[key]] = build(pkg, name)
    return MESSAGES[key]


def resolve(pkg, texpr, imports):
    """A Go type expression -> ('scalar', Ty) | ('msg', pkg, name) | ('special', Ty) |
    ('slice', elem) | ('map', value) | ('bytes',) | ('ptr', inner)."""
    if texpr.startswith("*"):
        return ("ptr", resolve(pkg, texpr[1:], imports))
    if texpr == "[]byte":
        return ("bytes",)
    if texpr.startswith("[]"):
        return ("slice", resolve(pkg, texpr[2:], imports))
    if texpr.startswith("map["):
        k, v = texpr[4:].split("]", 1)
        kr = resolve(pkg, k, imports)
        if kr != ("scalar", "Str"):
            raise SystemExit(f"map key {k} in {pkg}")
        return ("map", resolve(pkg, v, imports))
    if "." in texpr:
        alias, name = texpr.split(".", 1)
        target = imports.get(alias)
        if target is None:
            raise SystemExit(f"unknown import {alias} in {pkg}")
    else:
        if texpr in SCALARS:
            if SCALARS[texpr] is None:
                raise SystemExit(f"bare {texpr}")
            return ("scalar", SCALARS[texpr])
        target, name = pkg, texpr
    if (target, name) in SPECIAL:
        return ("special", SPECIAL[(target, name)])
    if (target, name) in FOREIGN_SCALARS:
        return ("scalar", SCALARS[FOREIGN_SCALARS[(target, name)]])
    p = PKGS.get(target)
    if p is None:
        raise SystemExit(f"type {texpr} from unparsed package {target}")
    if name in p.structs:
        return ("msg", target, name)
    if name in p.named:
        under, imps = p.named[name]
        r = resolve(target, under, imps)
        if r[0] in ("slice", "map", "bytes"):
            return ("named", name, r)
        return r
    raise SystemExit(f"unknown type {name} in {target}")


def ty_of(pkg, r):
    """Rust Ty for a single value."""
    if r[0] == "scalar":
        return f"Ty::{r[1]}"
    if r[0] == "special":
        return f"Ty::{r[1]}"
    if r[0] == "bytes":
        return "Ty::Bytes"
    if r[0] == "msg":
        return f"Ty::Msg({msg_index(r[1], r[2])})"
    raise SystemExit(f"not a single value: {r}")


def build(pkg, name):
    p = PKGS[pkg]
    out = []
    for fname, ftype, tags, imports in p.structs[name]:
        pb = tag(tags, "protobuf")
        if pb is None or pb == "-":
            continue
        js = tag(tags, "json") or ""
        parts = pb.split(",")
        wire, num, rule = parts[0], int(parts[1]), parts[2]
        jparts = js.split(",")
        jname = jparts[0]
        omitempty = "omitempty" in jparts[1:]
        inline = "inline" in jparts[1:]
        if jname == "-":
            jname = ""
        if not jname and not inline:
            jname = fname or ftype.split(".")[-1]
        r = resolve(pkg, ftype, imports)
        pointer = False
        if r[0] == "ptr":
            pointer, r = True, r[1]
        if r[0] == "named":
            _, nname, inner = r
            if rule == "opt" and inner[0] == "slice":
                # go-to-protobuf wraps a named slice in a message with `repeated items = 1`.
                card = f"Card::Wrapped({ty_of(pkg, inner[1])})"
                out.append((num, jname, card, omitempty, wire))
                continue
            r = inner
        if inline:
            if r[0] != "msg" or pointer:
                raise SystemExit(f"inline {ftype} in {name}")
            card = "Card::Inline"
            ty = ty_of(pkg, r)
        elif r[0] == "slice":
            elem = r[1]
            if elem[0] == "named":
                raise SystemExit(f"slice of named slice in {name}.{fname}")
            card, ty = "Card::Repeated", ty_of(pkg, elem)
        elif r[0] == "map":
            v = r[1]
            if v[0] == "named" and v[2][0] == "slice":
                # A map value cannot be repeated: go-to-protobuf wraps the slice as for Wrapped.
                card, ty = "Card::MapWrapped", ty_of(pkg, v[2][1])
            elif v[0] == "named":
                raise SystemExit(f"map of named type {v} in {name}.{fname}")
            else:
                card, ty = "Card::Map", ty_of(pkg, v)
        else:
            card = "Card::Pointer" if pointer else "Card::Value"
            ty = ty_of(pkg, r)
        # (The tag's opt/rep is not trusted otherwise: PodStatus.qosClass is a string tagged `rep`.)
        out.append((num, jname, f"{card}, ty: {ty}" if not card.startswith("Card::Wrapped") else card,
                    omitempty, wire))
    return out


def main():
    kinds = []
    for path, p in PKGS.items():
        for name, fields in p.structs.items():
            inline_typemeta = any(f[0] is None and f[1] in ("metav1.TypeMeta", "TypeMeta")
                                  for f in fields)
            if not inline_typemeta:
                continue
            if p.gv is None and name not in META_KINDS:
                continue
            if name in ("Table", "List", "PartialObjectMetadata", "PartialObjectMetadataList"):
                continue
            kinds.append((p.gv or "*", name, msg_index(path, name)))
    # WatchEvent has no TypeMeta but is what a watch stream's frames hold.
    kinds.append(("*", "WatchEvent", msg_index("k8s.io/apimachinery/pkg/apis/meta/v1", "WatchEvent")))
    w = sys.stdout.write
    w("// @generated by tools/gen_proto_schema.py from the Go types of k8s.io/api,\n")
    w(f"// k8s.io/apimachinery and k8s.io/apiextensions-apiserver {RELEASE}. Do not edit.\n")
    w("//\n// One entry per protobuf message: its fields with number, JSON name, cardinality,\n")
    w("// type and Go's `omitempty`.\n\n")
    w("use super::proto::{Card, Field, Msg, Ty};\n\n")
    w("#[rustfmt::skip]\npub(super) static MESSAGES: &[Msg] = &[\n")
    for i, (pkg, name) in enumerate(ORDER):
        short = pkg.replace("k8s.io/", "")
        w(f"    // {i}\n    Msg {{ name: \"{short}.{name}\", fields: &[\n")
        for num, jname, card, omit, wire in sorted(BODIES[i], key=lambda f: f[0]):
            if card.startswith("Card::Wrapped"):
                inner = card[len("Card::Wrapped("):-1]
                card = f"Card::Wrapped, ty: {inner}"
            w(f"        Field {{ num: {num}, json: \"{jname}\", card: {card}, omitempty: {str(omit).lower()} }},\n")
        w("    ] },\n")
    w("];\n\n")
    w("/// `(apiVersion, kind, message)`; `*` for meta/v1 kinds served in every group version.\n")
    w("#[rustfmt::skip]\npub(super) static KINDS: &[(&str, &str, u16)] = &[\n")
    for gv, kind, idx in sorted(kinds):
        w(f"    (\"{gv}\", \"{kind}\", {idx}),\n")
    w("];\n")


main()
