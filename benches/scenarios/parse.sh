#!/usr/bin/env bash
# Parser, whole process: `kiln parse --json` and `kiln parse` against the `parse-dockerfile` crate's
# CLI (a hand-written Rust parser with a JSON output) on the same files, with hyperfine (median
# wall and user+system CPU) and /usr/bin/time (peak RSS). Prints a markdown table.
#
# Files (made in $BENCH_DATA/parse, deterministic):
#   corpus-5mb.Dockerfile  testdata/dockerfiles/corpus concatenated in name order until it holds
#                          5 MiB, each copy's stage names made unique (files with an `# escape=`
#                          directive are left out: in the middle of a concatenation it is a
#                          comment, and their backtick continuations would not be continuations)
#   env-300k.Dockerfile    FROM, then 300,000 lines `ENV VAR_<n>=value-<n>-<32 hex digits>`
#
# Usage: benches/scenarios/parse.sh
# Environment:
#   BENCH_DATA  as run.sh
#   KILN        the kiln binary (default target/release/kiln)
#   PARSE_DOCKERFILE  the parse-dockerfile binary. When unset, $BENCH_DATA/tools/bin/parse-dockerfile
#               is used, installed there first with `cargo install --locked parse-dockerfile@0.1.9
#               --root $BENCH_DATA/tools` (a bench-only tool, never a dependency of kiln). Set it to
#               `none` to skip the comparison.
#   KILN_BEFORE another kiln binary measured in the same run (e.g. a build of an older commit)
#   RUNS        hyperfine runs (default 10)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ -z "${BENCH_DATA:-}" ]; then
  if mountpoint -q /mnt/labfs; then BENCH_DATA=/mnt/labfs/bench; else BENCH_DATA=/var/tmp/kiln-bench; fi
fi
KILN=${KILN:-${CARGO_TARGET_DIR:-$repo/target}/release/kiln}
RUNS=${RUNS:-10}
[ -x "$KILN" ] || { echo "parse.sh: no kiln binary at $KILN (cargo build --release -p kiln-cli)" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "parse.sh: hyperfine is required" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "parse.sh: /usr/bin/time is required (apt-get install time)" >&2; exit 2; }

work="$BENCH_DATA/parse"
mkdir -p "$work"
python3 - "$repo/testdata/dockerfiles/corpus" "$work" <<'EOF'
import os, re, sys
corpus, out = sys.argv[1:]
files = []
for name in sorted(os.listdir(corpus)):
    text = open(os.path.join(corpus, name), encoding="utf-8").read()
    if not text.lower().startswith("# escape="):
        files.append(text if text.endswith("\n") else text + "\n")

def renamed(text, suffix):
    """The file with its stage names made unique (`AS build` -> `AS build-s12`), where they are
    declared and where FROM, --from= and from= name them: one file of many copies must not
    declare a stage name twice (parse-dockerfile refuses that; kiln warns)."""
    names = re.findall(r"(?im)^\s*FROM\s.*\sAS\s+([A-Za-z0-9_.-]+)\s*$", text)
    for n in sorted(set(names), key=len, reverse=True):
        word = re.compile(r"(?i)(?<![A-Za-z0-9_.-])" + re.escape(n) + r"(?![A-Za-z0-9_.:/-])")
        lines = []
        for line in text.split("\n"):
            if re.match(r"(?i)\s*FROM\s", line) or re.search(r"(?i)from=", line):
                line = word.sub(n + suffix, line)
            lines.append(line)
        text = "\n".join(lines)
    return text

parts, size, k = [], 0, 0
while size < 5 << 20:
    for i, text in enumerate(files):
        part = renamed(text, f"-s{k}x{i}")
        parts.append(part)
        size += len(part.encode())
        if size >= 5 << 20:
            break
    k += 1
open(os.path.join(out, "corpus-5mb.Dockerfile"), "w", encoding="utf-8").write("".join(parts))
with open(os.path.join(out, "env-300k.Dockerfile"), "w") as f:
    f.write("FROM scratch\n")
    for i in range(300_000):
        f.write(f"ENV VAR_{i}=value-{i}-{(i * 2654435761) % (1 << 128):032x}\n")
EOF

PD=${PARSE_DOCKERFILE:-}
if [ -z "$PD" ]; then
  PD="$BENCH_DATA/tools/bin/parse-dockerfile"
  if [ ! -x "$PD" ]; then
    echo "== installing parse-dockerfile 0.1.9 into $BENCH_DATA/tools (bench only)" >&2
    cargo install --locked --quiet parse-dockerfile@0.1.9 --root "$BENCH_DATA/tools" >&2 || PD=none
  fi
fi

rows="$work/rows.tsv"
: >"$rows"
measure() { # label file command
  local label=$1 file=$2 cmd=$3
  local bytes json="$work/h.json" rss="$work/rss"
  bytes=$(stat -c %s "$file")
  : >"$rss"
  hyperfine --warmup 2 --runs "$RUNS" --export-json "$json" --style none \
    "/usr/bin/time -f %M -a -o '$rss' sh -c \"$cmd >/dev/null 2>&1\"" >/dev/null
  python3 - "$json" "$rss" "$label" "$(basename "$file")" "$bytes" >>"$rows" <<'EOF'
import json, statistics, sys
j, rss, label, name, size = sys.argv[1:]
r = json.load(open(j))["results"][0]
wall = statistics.median(r["times"])
cpu = r["user"] + r["system"]
kb = max(int(l) for l in open(rss) if l.strip().isdigit())
print(f"{name}\t{label}\t{wall:.4f}\t{cpu:.4f}\t{int(size) / cpu / 1e6:.0f}\t{kb / 1024:.1f}\t{kb * 1024 / int(size):.1f}")
EOF
}

for f in "$work/corpus-5mb.Dockerfile" "$work/env-300k.Dockerfile"; do
  if [ -n "${KILN_BEFORE:-}" ]; then
    measure "kiln parse --json (before)" "$f" "'$KILN_BEFORE' parse --json '$f'"
    measure "kiln parse (before)" "$f" "'$KILN_BEFORE' parse '$f'"
  fi
  measure "kiln parse --json" "$f" "'$KILN' parse --json '$f'"
  measure "kiln parse" "$f" "'$KILN' parse '$f'"
  if [ "$PD" != none ] && [ -x "$PD" ]; then
    measure "parse-dockerfile 0.1.9" "$f" "'$PD' '$f'"
  fi
done

echo "| file | command | median wall s | mean CPU s (user+sys) | MB/s of CPU | peak RSS MB | RSS / input |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
while IFS=$'\t' read -r name label wall cpu mbs rssmb ratio; do
  echo "| $name | $label | $wall | $cpu | $mbs | $rssmb | ${ratio}x |"
done <"$rows"
