#!/usr/bin/env python3
"""Sums a heaptrack folded-stack file (`heaptrack_print -F FILE --flamegraph-cost-type leaked`) into
the rows of the README's memory table, by frames of each allocation's stack (which task, which
reflector, the store's write...). Usage: heaptrack_breakdown.py FILE PODS [N_OTHER_STACKS].
The rules match the (inlined) frame names of one release build; after code changes, check what
lands in "other" (N_OTHER_STACKS prints its largest stacks) and the rule order (first match wins)."""
import sys, collections
rules = [
 ('the bench: its final list responses, after the memory figures (response bodies, hyper write buffers)', lambda s: 'list (http.rs)' in s or 'encode_and_end' in s),
 ('Job, TTL and CronJob controllers: the shared Job cache', lambda s: '(informer.rs)' in s),
 ('Job controller: pod cache (CachedPod, pod index)', lambda s: 'cached_pod.rs' in s or 'pod_index.rs' in s or ('(controller.rs)' in s and 'poll_next_unpin' in s)),
 ('Endpoints controllers: pod (and Service, Endpoints, slice) caches', lambda s: 'for_each.rs' in s and 'select.rs' in s and 'apply_watcher_event' in s),
 ('API server: stored objects (compressed blobs)', lambda s: 'pack (compress.rs)' in s),
 ('API server: uncompressed objects in the watch history', lambda s: 'json_bytes (store.rs)' in s),
 ('API server: index entries (Meta: labels, selectable fields, uid, owners)', lambda s: 'of (store.rs)' in s or 'selector.rs' in s),
 ('API server: uid and owner indexes', lambda s: 'index (store.rs)' in s),
 ('API server: object maps, history entries, Meta and watch event headers', lambda s: 'write (store.rs)' in s or 'restore (store.rs)' in s),
 ('API server: Event TTL queue', lambda s: 'event_ttl.rs' in s),
 ('API server: other (request handling, watch channels, zstd contexts)', lambda s: '(rest.rs)' in s or '(http.rs)' in s or 'zstd' in s),
 ('event recorders (correlator, spam filter)', lambda s: '(events.rs)' in s or '(recorder.rs)' in s),
 ('node simulator: per-pod log state and pod table', lambda s: '(logs.rs)' in s or 'on_pod (mod.rs)' in s),
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
