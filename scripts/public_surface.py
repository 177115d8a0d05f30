#!/usr/bin/env python3
"""Counts the public surface of kiln-builder-core from rustdoc's JSON output.

    python3 scripts/public_surface.py            # builds the JSON (nightly rustdoc), then counts
    python3 scripts/public_surface.py --json F   # counts an existing kiln_builder_core.json

The JSON is what `cargo +nightly rustdoc -p kiln-builder-core --lib -- -Z unstable-options
--output-format json` writes (default features, so the `testing` module is not in it; items
marked `#[doc(hidden)]` are left out by rustdoc). Counted: every item of the crate an embedder
can use: modules, types, traits, free functions, constants, statics, public fields, enum
variants, and methods and associated items of inherent impls. Not counted: trait impls and
their methods (Debug, Display, From ...), and `pub use` lines themselves (the item they name is
counted once, where it is defined). The second figure, "named paths", is the number of items
with a public path (rustdoc's `paths` table): modules, types, traits, functions, constants,
variants.
"""

import argparse
import collections
import json
import os
import subprocess
import sys

COUNTED = {
    "module", "struct", "enum", "union", "trait", "trait_alias", "function", "constant",
    "static", "type_alias", "macro", "struct_field", "variant", "assoc_const", "assoc_type",
}


def build(workspace: str) -> str:
    target = os.path.join(workspace, "target", "pubjson")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    subprocess.run(
        ["cargo", "+nightly", "rustdoc", "-p", "kiln-builder-core", "--lib", "--",
         "-Z", "unstable-options", "--output-format", "json"],
        cwd=workspace, env=env, check=True)
    return os.path.join(target, "doc", "kiln_builder_core.json")


def count(path: str) -> tuple[collections.Counter, int]:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    index = doc["index"]
    in_trait_impls = set()
    for item in index.values():
        impl = item["inner"].get("impl")
        if impl is not None and impl.get("trait") is not None:
            in_trait_impls.update(str(i) for i in impl["items"])
    kinds = collections.Counter()
    for key, item in index.items():
        if item["crate_id"] != 0 or key in in_trait_impls:
            continue
        kind = next(iter(item["inner"]))
        if kind in COUNTED:
            kinds[kind] += 1
    named = sum(1 for p in doc["paths"].values() if p["crate_id"] == 0)
    return kinds, named


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="an existing kiln_builder_core.json")
    args = ap.parse_args()
    workspace = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = args.json or build(workspace)
    kinds, named = count(path)
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"{kind:14} {n}")
    print(f"{'items':14} {sum(kinds.values())}")
    print(f"{'named paths':14} {named}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
