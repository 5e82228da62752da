#!/usr/bin/env python3
"""Fail if the `caucus` binary reaches under the node.

Everything under src/ except the facade library (src/lib.rs, which re-exports every
layer for the examples and tests) is the binary: argument parsing and rendering on
`caucus-node`'s API. None of it may name caucus-store or caucus-net, directly or through
the facade.
"""
import pathlib, re, sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FACADE = ROOT / "src" / "lib.rs"
FORBIDDEN = re.compile(r"caucus_store|caucus_net|caucus::store|caucus::net")

failed = False
checked = 0
for path in sorted((ROOT / "src").rglob("*.rs")):
    if path == FACADE:
        continue
    checked += 1
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        m = FORBIDDEN.search(line)
        if m:
            print(f"{path.relative_to(ROOT)}:{n}: the binary names {m.group(0)}; "
                  "use caucus-node's API (views, netopts, relay::RelayNode)")
            failed = True
if checked == 0:
    print("no binary source found under src/")
    sys.exit(1)
if failed:
    sys.exit(1)
print(f"binary clean: {checked} files under src/ name neither caucus-store nor caucus-net")
