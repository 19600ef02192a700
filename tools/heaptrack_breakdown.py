#!/usr/bin/env python3
"""Sums a heaptrack folded-stack file (`heaptrack_print -F FILE --flamegraph-cost-type leaked`) into
the rows of the README's memory table, by frames of each allocation's stack (which task, which
reflector, the store's write...). Usage: heaptrack_breakdown.py FILE PODS [N_OTHER_STACKS].
The rules match the (inlined) frame names of one release build; after code changes, check what
lands in "other" (N_OTHER_STACKS prints its largest stacks) and the rule order (first match wins)."""
import sys, collections
rules = [
 ('TTL controller: Job cache', lambda s: '(ttl.rs)' in s and 'async_stream.rs' in s),
 ('CronJob controller: Job (and CronJob) cache', lambda s: 'filter_map.rs' in s and 'async_stream.rs' in s),
 ('Job controller: Job cache', lambda s: 'join.rs' in s and 'async_stream.rs' in s),
 ('Endpoints controller: pod (and Service, Endpoints, slice) caches', lambda s: 'for_each.rs' in s and 'select.rs' in s and 'async_stream.rs' in s),
 ('Job controller: pod cache (trimmed k8s-openapi Pods)', lambda s: '(controller.rs)' in s and 'async_stream.rs' in s),
 ('API server: stored JSON (objects + old versions the watch history holds)', lambda s: 'json_bytes (store.rs)' in s),
 ('API server: index entries (Meta: labels, fields, uid, owners)', lambda s: 'of (store.rs)' in s or 'selector.rs' in s),
 ('API server: store maps, watch history events, uid/owner indexes', lambda s: 'write (store.rs)' in s or 'index (store.rs)' in s),
 ('API server: other (request handling, watch channels)', lambda s: '(rest.rs)' in s or '(http.rs)' in s),
 ('API server: Event TTL index', lambda s: 'event_ttl.rs' in s),
 ('node simulator: per-pod log state', lambda s: 'logs.rs' in s),
 ('event recorders (correlator, spam filter)', lambda s: '(events.rs)' in s or '(recorder.rs)' in s),
 ('HTTP connections (hyper, buffers)', lambda s: 'hyper' in s or 'http1' in s or '(conn.rs)' in s or '(io.rs)' in s),
]
agg = collections.Counter(); other = collections.Counter(); total = 0
for line in open(sys.argv[1], errors='replace'):
    stack, _, n = line.rstrip('\n').rpartition(' ')
    try: n = int(n)
    except ValueError: continue
    total += n
    for name, f in rules:
        if f(stack):
            agg[name] += n; break
    else:
        fr = stack.split(';'); other[' > '.join(fr[-6:])[:250]] += n; agg['other'] += n
pods = float(sys.argv[2])
print(f'total {total/1048576:.1f} MiB = {total/1024/pods:.1f} KiB per pod ({pods:.0f} pods)')
for k, n in agg.most_common(): print(f'| {k} | {n/1048576:.1f} MiB | {n/1024/pods:.1f} KiB |')
if len(sys.argv) > 3:
    for k, n in other.most_common(int(sys.argv[3])): print(f'{n/1048576:7.1f} {k}')
