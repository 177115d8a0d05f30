#!/usr/bin/env python3
"""The module graph of builder-core: which top-level module refers to which.

Reads every `crate::<module>` path in builder-core/src (use lines and inline paths; comments,
doc links and test code are left out), prints each module's imports (--edges), the strongly
connected components with more than one module (import circles), and the imports that run back up
the layers of docs/architecture.md. Exits 1 when there is a circle or more than three imports back
up.

    python3 scripts/modgraph.py [--edges]
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "builder-core", "src")
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` groups.
GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def module_of(rel):
    parts = rel.split(os.sep)
    head = parts[0]
    if head.endswith(".rs"):
        head = head[:-3]
    if head == "lib":
        return None
    return head


def is_test_file(rel):
    base = os.path.basename(rel)
    return base == "tests.rs" or base.endswith("_tests.rs") or rel.startswith("bin" + os.sep) \
        or base == "testing.rs" or base == "conformance.rs"


def strip(src):
    """Drops comments and `#[cfg(test)] mod ... { }` blocks."""
    out = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("//"):
            continue
        out.append(line.split("//")[0] if "//" in line and '"' not in line else line)
    text = "\n".join(out)
    # Remove #[cfg(test)] mod blocks by brace matching.
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([a-z]+\))?\s+)?mod\s+\w+\s*\{", text)
        if not m:
            break
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]
    return text


# The layers of docs/architecture.md, bottom first: a module may import its own layer and the
# ones below; an import of a higher layer "runs back up".
LAYERS = [
    ["image", "xattr", "programs", "rootless", "scratch", "secret", "ssh_keys", "changes", "chmod", "report", "stream"],
    ["fsroot", "content", "userdb"],
    ["layer", "snapshot", "exec", "import", "attest"],
    ["export", "registry", "context", "copy", "graph", "progress", "cache"],
    ["plan", "solver", "gc", "cache_transfer"],
    ["worker", "images", "container", "output", "info"],
    ["builder", "deliver", "error"],
]


def layer_of(module):
    for i, names in enumerate(LAYERS):
        if module in names:
            return i
    return None


def graph():
    edges = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, ROOT)
            mod = module_of(rel)
            if mod is None or is_test_file(rel):
                continue
            text = strip(open(path, encoding="utf-8").read())
            targets = set(PATH.findall(text))
            for g in GROUP.findall(text):
                for item in re.split(r",", g):
                    name = item.strip().split("::")[0].strip("{} \n")
                    if re.fullmatch(r"[a-z_][a-z0-9_]*", name or ""):
                        targets.add(name)
            for t in targets:
                if t != mod:
                    edges.setdefault(mod, {}).setdefault(t, set()).add(rel)
            edges.setdefault(mod, {})
    return edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--edges" in sys.argv:
        for m in sorted(edges):
            print(f"{m} -> {', '.join(sorted(edges[m]))}")
    circles = [c for c in sccs(edges) if len(c) > 1]
    for c in circles:
        print("circle:", " <-> ".join(c))
        for a in c:
            for b in c:
                if b in edges.get(a, {}):
                    print(f"  {a} -> {b}: {', '.join(sorted(edges[a][b]))}")
    back = []
    for a in sorted(edges):
        for b in sorted(edges[a]):
            la, lb = layer_of(a), layer_of(b)
            if la is None or lb is None:
                print(f"module without a layer: {a if la is None else b}")
                back.append((a, b))
            elif lb > la:
                back.append((a, b))
                print(f"back up: {a} (layer {la}) -> {b} (layer {lb}): {', '.join(sorted(edges[a][b]))}")
    print(
        f"{len(edges)} modules, {sum(len(v) for v in edges.values())} edges, "
        f"{len(circles)} circles, {len(back)} imports back up the layers"
    )
    sys.exit(1 if circles or len(back) > 3 else 0)


if __name__ == "__main__":
    main()
