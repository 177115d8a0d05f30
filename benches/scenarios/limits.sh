#!/usr/bin/env bash
# Physical limits on this machine for the scenario data: a metadata walk and `tar -c` of S1, and
# sha256sum / gzip -1 / zstd -3 throughput over a 256 MiB sample (random and text halves of S2's
# kind of data). Prints a markdown table. Usage: benches/scenarios/limits.sh   (BENCH_DATA as run.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BENCH_DATA:-}" ]; then
  if mountpoint -q /mnt/labfs; then BENCH_DATA=/mnt/labfs/bench; else BENCH_DATA=/var/tmp/kiln-bench; fi
fi
python3 "$here/gen.py" "$BENCH_DATA" base s1 >/dev/null
s1="$BENCH_DATA/s1"
work="$BENCH_DATA/limits"
mkdir -p "$work"
[ -f "$work/random.bin" ] || head -c $((128 << 20)) /dev/urandom >"$work/random.bin"
[ -f "$work/text.bin" ] || tar -c -C "$s1" . | head -c $((32 << 20)) >"$work/seed.txt"
[ -f "$work/text.bin" ] || { for _ in 1 2 3 4; do cat "$work/seed.txt"; done >"$work/text.bin"; }
# The tar stream of S1 repeated is only a stand-in for text; it stays honest for gzip/zstd
# because the repeats are 32 MiB apart, far beyond both compressors' windows at these levels.

med() { # median wall seconds of 5 runs of a shell command
  hyperfine --runs 5 --warmup 1 --export-json "$work/h.json" --style none "$1" >/dev/null
  python3 -c 'import json,statistics,sys; print(f"{statistics.median(json.load(open(sys.argv[1]))["results"][0]["times"]):.3f}")' "$work/h.json"
}
mbs() { python3 -c "import sys; print(f'{int(sys.argv[1]) / float(sys.argv[2]) / 1e6:.0f}')" "$1" "$2"; }

echo "| reference (same data, same day) | median s | MB/s |"
echo "| --- | ---: | ---: |"
t=$(med "find '$s1' -printf '%s %T@\n' > /dev/null"); echo "| find -printf metadata walk of S1 (10,000 files) | $t | |"
bytes=$(du -sb "$s1" | cut -f1)
t=$(med "tar -c -C '$s1' . > /dev/null"); echo "| tar -c of S1 > /dev/null | $t | $(mbs "$bytes" "$t") |"
t=$(med "tar -c -C '$s1' . | cat > /dev/null"); echo "| tar -c of S1, piped | $t | $(mbs "$bytes" "$t") |"
if [ -d "$BENCH_DATA/s6" ]; then
  t=$(med "find '$BENCH_DATA/s6' -printf '%s %T@\n' > /dev/null"); echo "| find metadata walk of S6 (100,000 files) | $t | |"
fi
t=$(med "cp -r '$s1' '$work/cp' && rm -rf '$work/cp'"); echo "| cp -r of S1 (+ rm -rf) | $t | |"
for f in random text; do
  n=$(stat -c %s "$work/$f.bin")
  t=$(med "sha256sum '$work/$f.bin' > /dev/null"); echo "| sha256sum, 128 MiB $f | $t | $(mbs "$n" "$t") |"
  t=$(med "gzip -1 -c '$work/$f.bin' > /dev/null"); echo "| gzip -1, 128 MiB $f | $t | $(mbs "$n" "$t") |"
  command -v pigz >/dev/null && { t=$(med "pigz -1 -c '$work/$f.bin' > /dev/null"); echo "| pigz -1 ($(nproc) threads), 128 MiB $f | $t | $(mbs "$n" "$t") |"; }
  command -v zstd >/dev/null && { t=$(med "zstd -3 -q -c '$work/$f.bin' > /dev/null"); echo "| zstd -3, 128 MiB $f | $t | $(mbs "$n" "$t") |"; }
done
