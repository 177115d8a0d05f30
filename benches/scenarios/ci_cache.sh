#!/usr/bin/env bash
# The second CI run: S1 and S4 built in a fresh store (only the base image in it, as a runner
# that pulled it) that imports the cache the first run exported, from a local cache directory
# (`--cache-to type=local`), from a registry (`type=registry`, a CNCF distribution registry on
# loopback) and from the pushed image itself (`type=inline`); next to it BuildKit (dockerd 20.10,
# when one answers) with the cache it has without buildx: inline (`BUILDKIT_INLINE_CACHE=1`,
# then `--cache-from IMAGE`). Checks that every step came from the cache (no RUN ran) and prints
# the median wall time of RUNS runs per phase, next to the cold build in the same fresh store.
# The phases are interleaved (run 1 of every phase, then run 2, ...) so that a change of load
# on a shared machine falls on all of them; the load average is printed with each scenario.
#
# A fresh store: kiln's is a copy of a seed store holding only the base image; BuildKit's is
# its build cache pruned and every image removed, then the base image pulled from the registry
# (pushed there once, so that its layers, and so its cache key, stay the same). The Docker
# daemon should be one of this script's own (its images and build cache are all removed):
#   dockerd --data-root DIR --exec-root DIR2 --host unix:///run/x.sock --bridge=none \
#     --iptables=false &  DOCKER_HOST=unix:///run/x.sock benches/scenarios/ci_cache.sh
#
# Usage: benches/scenarios/ci_cache.sh [SCENARIO...]   (default: s1 s4; as root; needs
#        docker-registry, python3, a static busybox)
# Environment: KILN (default $CARGO_TARGET_DIR/release/kiln, else target/release/kiln),
#              BENCH_DATA (default /var/tmp/kiln-bench), WORK (where the stores and caches
#              go, default /var/tmp; best the same file system as BENCH_DATA and the daemon's
#              data root, e.g. a loop ext4 of their own), RUNS (default 5),
#              BUILDKIT "auto" (default: when /usr/bin/docker's daemon answers) or "none",
#              DOCKER_HOST (the daemon to use), OUT (also write the table and the raw times
#              there).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
source scripts/lib/registry.sh
trap registry_stop_all EXIT
K=${KILN:-${CARGO_TARGET_DIR:-$repo/target}/release/kiln}
BENCH_DATA=${BENCH_DATA:-/var/tmp/kiln-bench}
RUNS=${RUNS:-5}
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(s1 s4)
[ -x "$K" ] || { echo "ci_cache.sh: no kiln binary at $K" >&2; exit 2; }
export BUSYBOX=${BUSYBOX:-$(command -v busybox)}
D=/usr/bin/docker
BK=0
if [ "${BUILDKIT:-auto}" = auto ] && [ -x "$D" ] && "$D" info >/dev/null 2>&1; then BK=1; fi
python3 "$here/gen.py" "$BENCH_DATA" base "${SCENARIOS[@]}" >/dev/null
W=$(mktemp -d "${WORK:-/var/tmp}/kiln-ci-cache.XXXXXX")
KILN_REGISTRY_DIRS+=("$W")
registry_start plain
R=$REGISTRY_ADDR
seed=$W/seed
"$K" --root "$seed" build -q -t bench-base:1 "$BENCH_DATA/base" >/dev/null

bk() { DOCKER_BUILDKIT=1 "$D" "$@"; }
if [ $BK = 1 ]; then
    bk build -q -t "$R/bench-base:1" "$BENCH_DATA/base" >/dev/null
    "$D" push -q "$R/bench-base:1" >/dev/null
fi

# The untimed resets, one per kind of store.
reset_kiln() { rm -rf "$W/root" && cp -a "$seed" "$W/root"; }
reset_buildkit() {
    local ids
    ids=$("$D" image ls -aq | sort -u)
    [ -z "$ids" ] || "$D" image rm -f $ids >/dev/null 2>&1 || true
    "$D" builder prune -af >/dev/null
    "$D" pull -q "$R/bench-base:1" >/dev/null
    "$D" tag "$R/bench-base:1" bench-base:1
}

# run_phase KIND WANT ARGS...: one timed build after a reset; appends the wall seconds to
# $W/times-$label and checks that WANT steps came from the cache (kiln: its step summary;
# BuildKit: its CACHED lines).
run_phase() {
    local label=$1 kind=$2 want=$3 s e
    shift 3
    "reset_$kind"
    sync
    s=$(date +%s.%N)
    if [ "$kind" = kiln ]; then
        "$K" --root "$W/root" build "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
    else
        bk build --progress=plain "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
    fi
    e=$(date +%s.%N)
    echo "$e - $s" | bc >>"$W/times-$label"
    if [ -n "$want" ]; then
        local ok=1
        if [ "$kind" = kiln ]; then
            grep -q "$want of $want steps cached" "$W/err" || ok=0
        else
            [ "$(grep -cE '^#[0-9]+ CACHED$' "$W/err")" -ge "$want" ] || ok=0
        fi
        if [ $ok = 0 ]; then
            echo "$label: expected all $want steps from the cache:" >&2
            cat "$W/err" >&2
            exit 1
        fi
    fi
}

median() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'; }
spread() { sort -n "$1" | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo, hi}'; }

header="| scenario | kiln cold | kiln, local cache | kiln, registry cache | kiln, inline cache |"
rule="| --- | ---: | ---: | ---: | ---: |"
if [ $BK = 1 ]; then
    header+=" BuildKit cold | BuildKit, inline cache |"
    rule+=" ---: | ---: |"
fi
table=("$header" "$rule")
raw=()
for s in "${SCENARIOS[@]}"; do
    ctx=$BENCH_DATA/$s
    steps=$(grep -cE '^(RUN|COPY|ADD)' "$ctx/Dockerfile")
    local_cache=$W/cache-$s
    remote=$R/bench/cache-$s:c
    # The first runs, which export the caches (untimed).
    reset_kiln
    "$K" --root "$W/root" build -q -t "bench-$s:1" \
        --cache-to "type=local,dest=$local_cache,mode=max" \
        --cache-to "type=registry,ref=$remote,mode=max" "$ctx" >/dev/null
    reset_kiln
    "$K" --root "$W/root" build -q -t "$R/bench/kiln-$s:inline" --cache-to type=inline \
        --push "$ctx" >/dev/null
    phases=(kiln-cold kiln-local kiln-registry kiln-inline)
    if [ $BK = 1 ]; then
        reset_buildkit
        bk build -q --build-arg BUILDKIT_INLINE_CACHE=1 -t "$R/bench/bk-$s:inline" "$ctx" >/dev/null
        "$D" push -q "$R/bench/bk-$s:inline" >/dev/null
        phases+=(bk-cold bk-inline)
    fi
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    for i in $(seq 1 "$RUNS"); do
        for p in "${phases[@]}"; do
            case $p in
                kiln-cold) run_phase "$s-$p" kiln "" -t "bench-$s:1" "$ctx" ;;
                kiln-local) run_phase "$s-$p" kiln "$steps" -t "bench-$s:1" \
                    --cache-from "type=local,src=$local_cache" "$ctx" ;;
                kiln-registry) run_phase "$s-$p" kiln "$steps" -t "bench-$s:1" \
                    --cache-from "type=registry,ref=$remote" "$ctx" ;;
                kiln-inline) run_phase "$s-$p" kiln "$steps" -t "bench-$s:1" \
                    --cache-from "$R/bench/kiln-$s:inline" "$ctx" ;;
                bk-cold) run_phase "$s-$p" buildkit "" -t "bench-$s:1" "$ctx" ;;
                bk-inline) run_phase "$s-$p" buildkit "$steps" -t "bench-$s:1" \
                    --cache-from "$R/bench/bk-$s:inline" "$ctx" ;;
            esac
        done
    done
    load_after=$(cut -d' ' -f1-3 /proc/loadavg)
    row="| ${s^^}"
    for p in "${phases[@]}"; do
        row+=" | $(median "$W/times-$s-$p") ($(spread "$W/times-$s-$p"))"
        raw+=("$s $p: $(tr '\n' ' ' <"$W/times-$s-$p")")
    done
    table+=("$row |")
    raw+=("$s load average (1, 5, 15 min) before: $load_before, after: $load_after")
done
{
    echo "Medians of $RUNS interleaved runs, wall seconds (min-max); $(date -u '+%F %H:%M UTC')"
    echo
    printf '%s\n' "${table[@]}"
    echo
    printf '%s\n' "${raw[@]}"
} | tee ${OUT:+"$OUT"}
