#!/usr/bin/env bash
# Registry push and pull of a 1 GiB image (one layer of random data) with kiln and with skopeo,
# each against its own fresh CNCF distribution registry on loopback, in the same run. kiln's layer
# is compressed once beforehand (an OCI layout export, which the store remembers) so that both
# tools upload the same gzip blob; skopeo pushes that layout. Prints one line per phase.
#
# Usage: benches/scenarios/registry.sh      (as root; needs docker-registry, skopeo, jq, bc)
# Environment: KILN (default $CARGO_TARGET_DIR/release/kiln, else target/release/kiln),
#              SIZE_MB (default 1024).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
source scripts/lib/registry.sh
trap registry_stop_all EXIT
K=${KILN:-${CARGO_TARGET_DIR:-$repo/target}/release/kiln}
W=$(mktemp -d /var/tmp/kiln-registry-bench.XXXXXX)
KILN_REGISTRY_DIRS+=("$W")
registry_start plain; RA=$REGISTRY_ADDR
registry_start plain; RB=$REGISTRY_ADDR
mkdir -p "$W/ctx"
head -c $(( ${SIZE_MB:-1024} * 1048576 )) /dev/urandom >"$W/ctx/big"
printf 'FROM scratch\nCOPY big /big\n' >"$W/ctx/Dockerfile"
export KILN_ROOT=$W/store DOCKER_CONFIG=$W/docker-config
t() {
    local s
    s=$(date +%s.%N)
    "$@" >/dev/null 2>"$W/err" || { cat "$W/err"; exit 1; }
    echo "$(date +%s.%N) - $s" | bc
}
echo "kiln build:             $(t "$K" build -t "$RA/bench/big:1" "$W/ctx") s"
echo "kiln export (gzip):     $(t "$K" build -t "$RA/bench/big:1" -o "type=oci,dest=$W/oci,tar=false" "$W/ctx") s"
echo "kiln push:              $(t "$K" push "$RA/bench/big:1") s"
for _ in 1 2 3; do echo "kiln push (all exist):  $(t "$K" push "$RA/bench/big:1") s"; done
tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$W/oci/index.json")
echo "skopeo push:            $(t skopeo copy -q --dest-tls-verify=false "oci:$W/oci:$tag" "docker://$RB/bench/big:1") s"
echo "skopeo push (all exist):$(t skopeo copy -q --dest-tls-verify=false "oci:$W/oci:$tag" "docker://$RB/bench/big:1") s"
echo "kiln pull:              $(KILN_ROOT=$W/fresh t "$K" pull "$RA/bench/big:1") s"
echo "skopeo pull:            $(t skopeo copy -q --src-tls-verify=false "docker://$RB/bench/big:1" "oci:$W/skopeo-oci:x") s"
echo "kiln pull (all exist):  $(KILN_ROOT=$W/fresh t "$K" pull "$RA/bench/big:1") s"
