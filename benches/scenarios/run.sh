#!/usr/bin/env bash
# End-to-end scenario runner: builds each scenario with kiln (and buildah / BuildKit when they are
# installed) cold, as a no-op rebuild and (S5) after a one-file change; reports the median wall time
# (hyperfine), the peak RSS (/usr/bin/time's "Maximum resident set size") and the bytes written
# (its "%O": file system output the kernel charged to the process as it dirtied pages) of every
# phase as one markdown table, printed and written to benches/results/<date>.md.
#
# Usage: benches/scenarios/run.sh [SCENARIO...]      (default: s1 s5 s4 s3; also s2 s6, `unpack`:
#        first use of a ~700 MB Debian + toolchain base against `tar -x` of its layers, and
#        `parse`: benches/scenarios/parse.sh, kiln parse against parse-dockerfile, its table added)
# Environment:
#   BENCH_DATA  where contexts and builder state live (default /mnt/labfs/bench if mounted, else
#               /var/tmp/kiln-bench). Use a dedicated loop ext4: `../shared/peers/benchfs.sh up`.
#   KILN        the kiln binary (default $CARGO_TARGET_DIR/release/kiln, else target/release/kiln)
#   RUNS        runs per phase (default 3; the median is reported). Phases without a reset
#               step (no-op rebuilds, the find walk) warm up twice and run at least 10 times.
#   KILN_FLAGS  extra `kiln build` flags (e.g. `--network none`)
#   PEERS       "auto" (default: use buildah / docker when found) or "none"
#   ROOTLESS_USER  also time kiln run by this ordinary user (rootless mode; needs ranges in
#               /etc/subuid and /etc/subgid), as the tool "kiln-rootless"
#   ROOTLESS_DRIVER  the rootless runs' --storage-driver (default auto; overlay, fuse-overlayfs, copy)
#   OUT         the results file (default benches/results/$(date +%F).md)
#   GZIP_REF    "none" leaves out S2's GNU gzip reference (minutes)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [ -z "${BENCH_DATA:-}" ]; then
  if mountpoint -q /mnt/labfs; then BENCH_DATA=/mnt/labfs/bench; else BENCH_DATA=/var/tmp/kiln-bench; fi
fi
KILN=${KILN:-${CARGO_TARGET_DIR:-$repo/target}/release/kiln}
RUNS=${RUNS:-3}
PEERS=${PEERS:-auto}
OUT=${OUT:-$repo/benches/results/$(date +%F).md}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(s1 s5 s4 s3)

need() { command -v "$1" >/dev/null || { echo "run.sh: $1 is required ($2)" >&2; exit 2; }; }
need hyperfine "apt-get install hyperfine"
need python3 "for the context generator and the JSON summaries"
[ -x /usr/bin/time ] || { echo "run.sh: /usr/bin/time is required (apt-get install time)" >&2; exit 2; }
[ -x "$KILN" ] || { echo "run.sh: no kiln binary at $KILN (cargo build --release -p kiln-cli)" >&2; exit 2; }
BUSYBOX=${BUSYBOX:-$(command -v busybox || true)}
[ -n "$BUSYBOX" ] && file -L "$BUSYBOX" | grep -q "statically linked" ||
  { echo "run.sh: a static busybox is required (apt-get install busybox-static)" >&2; exit 2; }
export BUSYBOX

TOOLS=(kiln)
if [ "$PEERS" = auto ]; then
  command -v buildah >/dev/null && TOOLS+=(buildah)
  if [ -x /usr/bin/docker ] && /usr/bin/docker info >/dev/null 2>&1; then TOOLS+=(buildkit); fi
fi

[ -n "${ROOTLESS_USER:-}" ] && TOOLS+=(kiln-rootless)

mkdir -p "$BENCH_DATA" "$(dirname "$OUT")"
work="$BENCH_DATA/work"
rm -rf "$work"
mkdir -p "$work"
results="$work/results.tsv"
: >"$results"

gen=()
for s in "${SCENARIOS[@]}"; do
  case $s in
    s5) gen+=(s1) ;;
    s1 | s2 | s3 | s4 | s6) gen+=("$s") ;;
    parse | unpack) ;;
    *) echo "run.sh: unknown scenario $s" >&2; exit 2 ;;
  esac
done
echo "== generating contexts in $BENCH_DATA (once)"
python3 "$here/gen.py" "$BENCH_DATA" base "${gen[@]}"

ctx_of() { # scenario -> context dir
  case $1 in
    s5) echo "$work/s5" ;;
    *) echo "$BENCH_DATA/$1" ;;
  esac
}

# --- per-tool commands -------------------------------------------------------------------------
# reset_TOOL: an empty build cache with only the base image present (untimed).
# build_TOOL TAG CTX: one build.
kiln_root="$work/kiln"
kiln_seed="$work/kiln-seed"
setup_kiln() {
  rm -rf "$kiln_seed"
  "$KILN" --root "$kiln_seed" build -t bench-base:1 "$BENCH_DATA/base" >/dev/null 2>&1
}
reset_kiln() { echo "rm -rf '$kiln_root' && cp -a '$kiln_seed' '$kiln_root' && sync"; }
build_kiln() { echo "'$KILN' --root '$kiln_root' build ${KILN_FLAGS:-} -t $1 '$2'"; }

# Rootless: the same binary run by an ordinary user, with a store of its own.
kr_root="$work/kiln-rootless"
kr_seed="$work/kiln-rootless-seed"
as_user() {
  echo "setpriv --reuid=$ROOTLESS_USER --regid=$(id -g "$ROOTLESS_USER") --init-groups env HOME='$work/rootless-home' KILN_STORAGE_DRIVER=${ROOTLESS_DRIVER:-auto}"
}
setup_kiln-rootless() {
  rm -rf "$kr_seed" "$work/rootless-home"
  mkdir -p "$work/rootless-home"
  chown "$ROOTLESS_USER" "$work/rootless-home" "$work"
  $(as_user) "$KILN" --root "$kr_seed" build -t bench-base:1 "$BENCH_DATA/base" >/dev/null 2>&1
}
reset_kiln-rootless() { echo "rm -rf '$kr_root' && cp -a '$kr_seed' '$kr_root'"; }
build_kiln-rootless() { echo "$(as_user) '$KILN' --root '$kr_root' build ${KILN_FLAGS:-} -t $1 '$2'"; }

setup_buildah() { buildah bud -q -t bench-base:1 "$BENCH_DATA/base" >/dev/null; }
reset_buildah() {
  echo "buildah rmi -a -f >/dev/null 2>&1; buildah bud -q -t bench-base:1 '$BENCH_DATA/base' >/dev/null"
}
build_buildah() { echo "buildah bud --layers -q -t $1 '$2'"; }

docker=(/usr/bin/docker)
setup_buildkit() { DOCKER_BUILDKIT=1 "${docker[@]}" build -q -t bench-base:1 "$BENCH_DATA/base" >/dev/null; }
reset_buildkit() {
  echo "/usr/bin/docker image rm -f \$(/usr/bin/docker image ls -q | sort -u) >/dev/null 2>&1; /usr/bin/docker builder prune -af >/dev/null; DOCKER_BUILDKIT=1 /usr/bin/docker build -q -t bench-base:1 '$BENCH_DATA/base' >/dev/null"
}
build_buildkit() { echo "DOCKER_BUILDKIT=1 /usr/bin/docker build -q -t $1 '$2'"; }

# measure TOOL SCENARIO PHASE PREPARE COMMAND
measure() {
  local tool=$1 scen=$2 phase=$3 prep=$4 cmd=$5
  local json="$work/$tool-$scen-$phase.json" rss="$work/$tool-$scen-$phase.rss"
  : >"$rss"
  local args=(--export-json "$json" --style basic)
  if [ -n "$prep" ]; then
    args+=(--runs "$RUNS" --prepare "$prep")
  else
    # Phases with nothing to reset (no-op rebuilds, the find walk) take tens of milliseconds,
    # where three cold-ish runs are mostly noise: warm up twice and take at least ten.
    args+=(--warmup 2 --runs "$((RUNS > 10 ? RUNS : 10))")
  fi
  echo "== $tool $scen $phase"
  hyperfine "${args[@]}" "/usr/bin/time -f '%M %O' -a -o '$rss' sh -c \"$cmd\" " |
    grep -E "Time|Range" || true
  python3 - "$json" "$rss" "$tool" "$scen" "$phase" >>"$results" <<'EOF'
import json, statistics, sys
j, rss, tool, scen, phase = sys.argv[1:]
times = json.load(open(j))["results"][0]["times"]
runs = [l.split() for l in open(rss)]
runs = [(int(r[0]), int(r[1])) for r in runs if len(r) == 2 and r[0].isdigit() and r[1].isdigit()]
kb = max(r[0] for r in runs)
# %O counts 512-byte blocks; the median run's bytes written, in MB.
written = statistics.median(r[1] for r in runs) * 512 / 1e6
print(f"{scen}\t{phase}\t{tool}\t{statistics.median(times):.3f}\t{min(times):.3f}\t{max(times):.3f}\t{kb / 1024:.0f}\t{written:.0f}")
EOF
}

change_one_file() { # a new 8-byte stamp over the start of one file: content changes, size does not
  echo "date +%N | head -c 8 | dd of='$work/s5/src/pkg000/mod00/part00/file000.rs' conv=notrunc status=none"
}

for tool in "${TOOLS[@]}"; do
  echo "== setting up $tool (base image bench-base:1)"
  "setup_$tool"
done

# The physical limits on the same data, in the same run: what no builder can beat.
references() { # scenario context
  local s=$1 ctx=$2
  case $s in
    s1 | s6)
      measure reference "$s" "metadata walk (find)" "" "find '$ctx' -printf '%s %T@\n' >/dev/null"
      # Writing the same files to the same disk: what a cold COPY of the context is held to.
      measure reference "$s" "cp -a of the context" "rm -rf '$work/cp-ref'; sync" \
        "cp -a '$ctx' '$work/cp-ref'"
      rm -rf "$work/cp-ref"
      ;;
    s2)
      measure reference "$s" "cp + sha256sum of the 1 GiB file" "rm -f '$work/cp-ref'" \
        "cp '$ctx/random.bin' '$work/cp-ref' && sha256sum '$ctx/random.bin' >/dev/null; rm -f '$work/cp-ref'"
      # Both files written once and made durable: what S2's cold build is held to.
      measure reference "$s" "cp + sync of both files" "rm -rf '$work/cp-ref'; mkdir '$work/cp-ref'; sync" \
        "cp '$ctx/random.bin' '$ctx/app.log' '$work/cp-ref/' && sync"
      rm -rf "$work/cp-ref"
      # Twelve runs of minutes: GZIP_REF=none leaves it out.
      [ "${GZIP_REF:-}" = none ] ||
        measure reference "$s" "gzip -1 of the same bytes" "" \
          "cat '$ctx/random.bin' '$ctx/app.log' | gzip -1 >/dev/null"
      ;;
  esac
}

# S2's target is a ratio to `cp` + `sync` of the same bytes, and both sides swing with the state of
# the page cache and the disk (the reference alone takes 0.7-2.9 s on this VM, with 0.35-2.2 s of
# system time: how much memory has to be reclaimed for 1.3 GB of new pages): the two medians of
# separate hyperfine runs compare different moments. So kiln's cold build and the reference also
# run in alternation, each round a fresh store and an empty target, and the ratio is taken per
# round.
s2_interleaved() { # context build-command
  local ctx=$1 build=$2 rounds=$((RUNS > 5 ? RUNS : 5)) out="$work/s2-interleaved.tsv"
  echo "== kiln s2 cold alternating with cp + sync ($rounds rounds)"
  : >"$out"
  for _ in $(seq "$rounds"); do
    bash -c "$(reset_kiln)" >/dev/null 2>&1
    rm -rf "$work/cp-ref" && mkdir "$work/cp-ref" && sync
    /usr/bin/time -o "$work/s2-k.time" -f '%e' sh -c "$build" >/dev/null 2>&1
    sync
    /usr/bin/time -o "$work/s2-r.time" -f '%e' sh -c "cp '$ctx/random.bin' '$ctx/app.log' '$work/cp-ref/' && sync"
    printf '%s\t%s\n' "$(tail -1 "$work/s2-k.time")" "$(tail -1 "$work/s2-r.time")" >>"$out"
    rm -rf "$work/cp-ref"
  done
}

# The unpack scenario: a large base image (Debian bookworm minbase from scripts/lib/debian.sh, plus
# gcc, g++, make, python3, perl and git from apt: ~700 MB in two layers) saved once as an OCI
# archive in $BENCH_DATA/unpack. Each run starts from a store where it was loaded (layers in the
# store, no snapshot) and times its first use: `FROM` it and one `RUN true`. The reference untars
# the same layer blobs (gzip) with GNU tar, each into its own directory as kiln's overlay
# snapshots do.
unpack_scenario() {
  local u="$BENCH_DATA/unpack" seed="$work/unpack-seed"
  if [ ! -f "$u/base.oci.tar" ]; then
    # shellcheck source=../../scripts/lib/debian.sh
    . "$repo/scripts/lib/debian.sh"
    debian_base_start
    for _ in $(seq 600); do [ -f "$KILN_TEST_DEBIAN_DIR/ready" ] || [ -f "$KILN_TEST_DEBIAN_DIR/failed" ] && break; sleep 1; done
    [ -f "$KILN_TEST_DEBIAN_DIR/ready" ] || { echo "run.sh: no Debian base ($KILN_TEST_DEBIAN_DIR)" >&2; return 1; }
    rm -rf "$u" && mkdir -p "$u/min" "$u/tool"
    cp "$KILN_TEST_DEBIAN_DIR/rootfs.tar" "$u/min/"
    printf 'FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n' >"$u/min/Dockerfile"
    printf 'FROM bench-debian:1\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc g++ make libc6-dev python3 perl git && rm -rf /var/lib/apt/lists/*\n' >"$u/tool/Dockerfile"
    "$KILN" --root "$u/store" build -t bench-debian:1 "$u/min" >/dev/null 2>&1
    "$KILN" --root "$u/store" build --network host -t bench-toolchain:1 "$u/tool" >/dev/null 2>&1
    "$KILN" --root "$u/store" save --format oci -o "$u/base.oci.tar" bench-toolchain:1
    rm -rf "$u/store"
  fi
  mkdir -p "$u/use"
  printf 'FROM bench-toolchain:1\nRUN true\n' >"$u/use/Dockerfile"
  rm -rf "$seed"
  "$KILN" --root "$seed" load -i "$u/base.oci.tar" >/dev/null
  local layers=()
  # The layers as loaded (gzip, as the archive has them); GNU tar detects the compression.
  for d in $("$KILN" --root "$seed" inspect bench-toolchain:1 |
    python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["Manifest"]["layers"]))'); do
    layers+=("$seed/blobs/sha256/${d#sha256:}")
  done
  local untar="" i=0
  for l in "${layers[@]}"; do untar+="mkdir '$work/tar-ref/$i' && tar -xf '$l' -C '$work/tar-ref/$i' && "; i=$((i + 1)); done
  measure reference unpack "tar -x of the layers" "rm -rf '$work/tar-ref'; mkdir '$work/tar-ref'; sync" "${untar}true"
  rm -rf "$work/tar-ref"
  measure kiln unpack "first use (FROM + RUN true)" "rm -rf '$work/unpack-st' && cp -a '$seed' '$work/unpack-st' && sync" \
    "'$KILN' --root '$work/unpack-st' build -t bench-unpack:1 '$u/use'"
  rm -rf "$work/unpack-st"
}

for s in "${SCENARIOS[@]}"; do
  [ "$s" = parse ] && continue
  if [ "$s" = unpack ]; then unpack_scenario; continue; fi
  ctx=$(ctx_of "$s")
  if [ "$s" = s5 ]; then rm -rf "$ctx" && cp -a "$BENCH_DATA/s1" "$ctx"; fi
  references "$s" "$ctx"
  for tool in "${TOOLS[@]}"; do
    tag="bench-$s:1"
    build=$("build_$tool" "$tag" "$ctx")
    if [ "$s" = s5 ]; then
      # S5 is S1's cold and no-op; only the one-file change is its own.
      bash -c "$("reset_$tool") && $build" >/dev/null 2>&1
      measure "$tool" "$s" "one-file change" "$(change_one_file)" "$build"
      continue
    fi
    measure "$tool" "$s" cold "$("reset_$tool")" "$build"
    measure "$tool" "$s" "no-op" "" "$build"
    if [ "$s" = s2 ] && [ "$tool" = kiln ]; then
      s2_interleaved "$ctx" "$build"
      # An OCI archive export compresses every layer (gzip); the remembered results are
      # forgotten before each run so that each run compresses again.
      measure kiln s2 "export oci (gzip)" "rm -rf '$kiln_root/kiln/compressed' '$work/s2.tar'" \
        "'$KILN' --root '$kiln_root' save --format oci -o '$work/s2.tar' $tag"
    fi
    if [ "$s" = s3 ]; then
      one=$("build_$tool" bench-s3one:1 "$BENCH_DATA/s3one")
      measure "$tool" "s3 (one stage alone)" cold "$("reset_$tool")" "$one"
    fi
  done
done

# --- the table -------------------------------------------------------------------------------------
{
  echo "## kiln end-to-end scenarios, $(date +%F)"
  echo
  echo "Machine: $(nproc) cores, $(uname -r), data and builder state on $(findmnt -n -o FSTYPE -T "$BENCH_DATA") ($BENCH_DATA)."
  echo "kiln $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?'); tools: ${TOOLS[*]}; $RUNS runs per phase."
  [ "${#TOOLS[@]}" -eq 1 ] && echo "Peers: none found (buildah, /usr/bin/docker with a running dockerd)."
  echo
  python3 - "$results" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
kiln = {(r[0], r[1]): float(r[3]) for r in rows if r[2] == "kiln"}
print("| scenario | phase | tool | median s | min s | max s | peak RSS MB | written MB | kiln / tool |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for scen, phase, tool, med, lo, hi, rss, written in rows:
    k = kiln.get((scen, phase))
    ratio = f"{k / float(med):.2f}" if k is not None and tool != "kiln" and float(med) > 0 else ""
    print(f"| {scen[0].upper() + scen[1:]} | {phase} | {tool} | {med} | {lo} | {hi} | {rss} | {written} | {ratio} |")
EOF
  if [ -s "$work/s2-interleaved.tsv" ]; then
    echo
    python3 - "$work/s2-interleaved.tsv" <<'EOF'
import statistics, sys
rounds = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
ratios = sorted(k / r for k, r in rounds)
med = statistics.median
print(f"S2 cold alternating with `cp` + `sync`, {len(rounds)} rounds: kiln median "
      f"{med([k for k, _ in rounds]):.3f} s, reference median {med([r for _, r in rounds]):.3f} s; "
      f"kiln / reference per round: median {med(ratios):.2f}x "
      f"({', '.join(f'{x:.2f}' for x in ratios)}).")
EOF
  fi
  for s in "${SCENARIOS[@]}"; do
    if [ "$s" = parse ]; then
      echo
      echo "### Parser (benches/scenarios/parse.sh)"
      echo
      BENCH_DATA="$BENCH_DATA" KILN="$KILN" "$here/parse.sh"
    fi
  done
} >"$work/table.md"
cat "$work/table.md"
cp "$work/table.md" "$OUT"
echo
echo "written to $OUT"
