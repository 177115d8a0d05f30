#!/usr/bin/env python3
"""Generates the build contexts of kiln's end-to-end benchmark scenarios.

Usage: gen.py DATA_DIR SCENARIO...   (scenarios: base s1 s2 s3 s4 s6)

Every context is deterministic (fixed seeds) and is only generated once: a context directory
that already has its `.done` marker is left alone. S5 reuses S1's context (the runner copies it).
"""

import os
import random
import shutil
import subprocess
import sys
import time

BUSYBOX = os.environ.get("BUSYBOX", "/bin/busybox")
BASE_TAG = "bench-base:1"

WORDS = (
    "import export const function return async await class struct impl trait let mut "
    "match enum pub use mod self where type value error result option some none true "
    "false string vector buffer index count length offset layer digest cache build"
).split()


def text_block(rng, size):
    """Source-code-like text of exactly `size` bytes."""
    out = []
    n = 0
    while n < size:
        line = "    " * rng.randint(0, 3) + " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
        line += f" {rng.getrandbits(32):08x};\n"
        out.append(line)
        n += len(line)
    return "".join(out)[:size].encode()


def done(ctx):
    return os.path.exists(os.path.join(ctx, ".done"))


def fresh(ctx):
    if os.path.exists(ctx):
        shutil.rmtree(ctx)
    os.makedirs(ctx)


def finish(ctx, dockerfile):
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    # The marker must not be part of the context the builders see.
    with open(os.path.join(ctx, ".dockerignore"), "w") as f:
        f.write(".done\n")
    open(os.path.join(ctx, ".done"), "w").close()


def gen_tree(ctx, rng, files, per_dir, min_size, max_size, fanout):
    """`files` text files of min..max bytes under nested folders, `per_dir` files per leaf folder."""
    total = 0
    leaves = (files + per_dir - 1) // per_dir
    for leaf in range(leaves):
        # Three levels: a/b/c with `fanout` children per level.
        a, rest = divmod(leaf, fanout * fanout)
        b, c = divmod(rest, fanout)
        d = os.path.join(ctx, "src", f"pkg{a:03d}", f"mod{b:02d}", f"part{c:02d}")
        os.makedirs(d, exist_ok=True)
        for i in range(min(per_dir, files - leaf * per_dir)):
            size = rng.randint(min_size, max_size)
            with open(os.path.join(d, f"file{i:03d}.rs"), "wb") as f:
                f.write(text_block(rng, size))
            total += size
    return total


def gen_base(data):
    ctx = os.path.join(data, "base")
    if done(ctx):
        return
    fresh(ctx)
    shutil.copy(BUSYBOX, os.path.join(ctx, "busybox"))
    finish(
        ctx,
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'CMD ["/bin/sh"]\n',
    )


def gen_s1(data):
    ctx = os.path.join(data, "s1")
    if done(ctx):
        return
    fresh(ctx)
    rng = random.Random(1)
    total = gen_tree(ctx, rng, 10_000, 50, 2048, 4096, 10)
    finish(
        ctx,
        f"FROM {BASE_TAG}\n"
        "COPY . /app\n"
        "RUN ls /app/src > /app-listing\n"
        'CMD ["/bin/sh"]\n',
    )
    print(f"s1: 10000 files, {total / 1e6:.1f} MB")


def gen_s2(data):
    ctx = os.path.join(data, "s2")
    if done(ctx):
        return
    fresh(ctx)
    with open(os.path.join(ctx, "random.bin"), "wb") as f:
        for _ in range(1024):
            f.write(os.urandom(1 << 20))
    rng = random.Random(2)
    levels = ["INFO", "DEBUG", "WARN", "ERROR"]
    with open(os.path.join(ctx, "app.log"), "wb") as f:
        written = 0
        t = 1_700_000_000
        target = 256 << 20
        while written < target:
            chunk = []
            for _ in range(4096):
                t += rng.randint(0, 3)
                chunk.append(
                    f"{t} {rng.choice(levels)} worker-{rng.randint(0, 31)} "
                    f"request id={rng.getrandbits(48):012x} path=/api/v1/{rng.choice(WORDS)}/"
                    f"{rng.randint(0, 99999)} status={rng.choice((200, 200, 200, 404, 500))} "
                    f"took={rng.randint(1, 999)}ms\n"
                )
            b = "".join(chunk).encode()[: target - written]
            f.write(b)
            written += len(b)
    finish(
        ctx,
        f"FROM {BASE_TAG}\n"
        "COPY random.bin /data/random.bin\n"
        "COPY app.log /data/app.log\n"
        'CMD ["/bin/sh"]\n',
    )


def calibrate_loop(seconds):
    """Iterations of a busybox sh counting loop that take about `seconds` of CPU here."""
    n = 200_000
    t0 = time.monotonic()
    subprocess.run(
        [BUSYBOX, "sh", "-c", f"i=0; while [ $i -lt {n} ]; do i=$((i+1)); done"], check=True
    )
    dt = time.monotonic() - t0
    return int(n * seconds / dt)


def gen_s3(data):
    ctx = os.path.join(data, "s3")
    if done(ctx):
        return
    fresh(ctx)
    n = calibrate_loop(2.0)
    burn = f"i=0; while [ $i -lt {n} ]; do i=$((i+1)); done"
    stages = []
    for s in ("a", "b", "c"):
        stages.append(f"FROM {BASE_TAG} AS {s}\nRUN {burn}; echo {s} > /out-{s}\n")
    final = (
        f"FROM {BASE_TAG}\n"
        "COPY --from=a /out-a /out/a\n"
        "COPY --from=b /out-b /out/b\n"
        "COPY --from=c /out-c /out/c\n"
        'CMD ["/bin/cat", "/out/a", "/out/b", "/out/c"]\n'
    )
    finish(ctx, "\n".join(stages) + "\n" + final)
    # One stage alone: the reference the S3 target is relative to.
    one = os.path.join(data, "s3one")
    fresh(one)
    finish(one, f"FROM {BASE_TAG}\nRUN {burn}; echo a > /out-a\n")
    print(f"s3: {n} loop iterations per stage (~2 s)")


def gen_s4(data):
    ctx = os.path.join(data, "s4")
    if done(ctx):
        return
    fresh(ctx)
    lines = [f"FROM {BASE_TAG}"]
    lines += [f"RUN echo step {i} > /step-{i:02d}" for i in range(50)]
    lines.append('CMD ["/bin/sh"]')
    finish(ctx, "\n".join(lines) + "\n")


def gen_s6(data):
    ctx = os.path.join(data, "s6")
    if done(ctx):
        return
    fresh(ctx)
    rng = random.Random(6)
    total = gen_tree(ctx, rng, 100_000, 40, 200, 2048, 25)
    finish(
        ctx,
        f"FROM {BASE_TAG}\n"
        "COPY . /app\n"
        "RUN ls /app/src > /app-listing\n"
        'CMD ["/bin/sh"]\n',
    )
    print(f"s6: 100000 files, {total / 1e6:.1f} MB")


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    data = sys.argv[1]
    os.makedirs(data, exist_ok=True)
    gens = {"base": gen_base, "s1": gen_s1, "s2": gen_s2, "s3": gen_s3, "s4": gen_s4, "s6": gen_s6}
    for s in sys.argv[2:]:
        if s not in gens:
            print(f"unknown scenario {s}", file=sys.stderr)
            sys.exit(2)
        gens[s](data)


if __name__ == "__main__":
    main()
