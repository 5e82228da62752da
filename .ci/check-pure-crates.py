#!/usr/bin/env python3
"""Fail if a pure crate (no I/O) depends, directly or transitively, on an I/O crate.

The pure crates hold the logic and take time and randomness as arguments; the I/O crates
move bytes. Reads `cargo metadata` and walks each pure crate's normal (non-dev, non-build)
dependency closure.
"""
import json, subprocess, sys

PURE = {"caucus-proto", "caucus-crypto", "caucus-model", "caucus-sync"}
FORBIDDEN_PREFIXES = ("tokio", "libp2p", "rusqlite", "libsqlite3-sys", "mio", "socket2",
                      "async-std", "async-io", "quinn", "hyper", "reqwest", "if-watch",
                      "hickory", "trust-dns", "smol", "caucus-store", "caucus-net",
                      "caucus-node", "caucus-cli")

meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--all-features"]))
names = {p["id"]: p["name"] for p in meta["packages"]}
graph = {}
for node in meta["resolve"]["nodes"]:
    deps = []
    for d in node["deps"]:
        if any(k["kind"] is None for k in d["dep_kinds"]):
            deps.append(d["pkg"])
    graph[node["id"]] = deps

failed = False
checked = 0
for pid, name in names.items():
    if name not in PURE or pid not in graph:
        continue
    checked += 1
    seen, stack, parent = set(), [pid], {}
    while stack:
        cur = stack.pop()
        for dep in graph.get(cur, []):
            if dep in seen:
                continue
            seen.add(dep)
            parent[dep] = cur
            stack.append(dep)
    for dep in seen:
        if names[dep].startswith(FORBIDDEN_PREFIXES):
            path, cur = [names[dep]], dep
            while cur in parent and parent[cur] != pid:
                cur = parent[cur]
                path.append(names[cur])
            print(f"pure crate {name} depends on {' <- '.join(path)} <- {name}")
            failed = True
if checked == 0:
    print("no pure crate found in the workspace")
    sys.exit(1)
if failed:
    sys.exit(1)
print(f"pure crates clean: {checked} checked, none depends on an I/O crate")
