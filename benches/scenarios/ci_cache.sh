#!/usr/bin/env bash
# The second CI run: S1 and S4 built in a fresh store (only the base image in it, as a runner
# that pulled it) that imports the cache the first run exported, once from a local cache
# directory (`--cache-to type=local`) and once from a registry (`type=registry`, a CNCF
# distribution registry on loopback). Checks that every step came from the cache (no RUN ran)
# and prints the median wall time of RUNS runs per phase, next to the cold build in the same
# fresh store.
#
# Usage: benches/scenarios/ci_cache.sh [SCENARIO...]   (default: s1 s4; as root; needs
#        docker-registry, python3, a static busybox)
# Environment: KILN (default $CARGO_TARGET_DIR/release/kiln, else target/release/kiln),
#              BENCH_DATA (default /var/tmp/kiln-bench), RUNS (default 5).
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
python3 "$here/gen.py" "$BENCH_DATA" base "${SCENARIOS[@]}" >/dev/null
W=$(mktemp -d /var/tmp/kiln-ci-cache.XXXXXX)
KILN_REGISTRY_DIRS+=("$W")
registry_start plain
seed=$W/seed
"$K" --root "$seed" build -q -t bench-base:1 "$BENCH_DATA/base" >/dev/null

# time_build LABEL STEPS ARGS...: RUNS builds, each in a fresh copy of the seed store; prints the
# median and checks the step summary of the last.
time_build() {
    local label=$1 want=$2 i s e times=()
    shift 2
    for i in $(seq 1 "$RUNS"); do
        rm -rf "$W/root" && cp -a "$seed" "$W/root"
        sync
        s=$(date +%s.%N)
        "$K" --root "$W/root" build "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
        e=$(date +%s.%N)
        times+=("$(echo "$e - $s" | bc)")
    done
    if [ -n "$want" ] && ! grep -q "$want" "$W/err"; then
        echo "$label: expected '$want':" >&2
        cat "$W/err" >&2
        exit 1
    fi
    printf '%-40s %s s\n' "$label" "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
}

for s in "${SCENARIOS[@]}"; do
    ctx=$BENCH_DATA/$s
    steps=$(grep -cE '^(RUN|COPY|ADD)' "$ctx/Dockerfile")
    local_cache=$W/cache-$s
    remote=$REGISTRY_ADDR/bench/cache-$s:c
    rm -rf "$W/root" && cp -a "$seed" "$W/root"
    "$K" --root "$W/root" build -q -t "bench-$s:1" \
        --cache-to "type=local,dest=$local_cache,mode=max" \
        --cache-to "type=registry,ref=$remote,mode=max" "$ctx" >/dev/null
    time_build "$s cold (no cache)" "" -t "bench-$s:1" "$ctx"
    time_build "$s second run, local cache" "$steps of $steps steps cached" \
        -t "bench-$s:1" --cache-from "type=local,src=$local_cache" "$ctx"
    time_build "$s second run, registry cache" "$steps of $steps steps cached" \
        -t "bench-$s:1" --cache-from "type=registry,ref=$remote" "$ctx"
done
