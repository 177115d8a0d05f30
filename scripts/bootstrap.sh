#!/usr/bin/env bash
# Sets kiln up on a fresh Debian/Ubuntu machine and builds a real example image, offline:
# installs what kiln needs, builds the `kiln` binary, builds testdata/examples/hello (a static
# busybox on an empty base, with RUN, CMD and EXPOSE) into kiln's local store, and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/packages.sh

install_packages "${KILN_RUN_PACKAGES[@]}"
ensure_rust

cargo build --release --locked -p kiln-cli
kiln=$PWD/target/release/kiln

ctx=$(mktemp -d /tmp/kiln-hello.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp -r testdata/examples/hello/. "$ctx/"
cp /bin/busybox "$ctx/busybox"

root=${KILN_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/kiln}
"$kiln" --root "$root" build -t kiln-hello:latest "$ctx"

image="docker.io/library/kiln-hello:latest"
echo
echo "The image is in kiln's store, an OCI image layout at $root, tagged $image."
echo "Run it with any OCI runtime, for example:"
echo "  umoci unpack --image $root:$image /tmp/kiln-hello-bundle"
echo "  (cd /tmp/kiln-hello-bundle && runc run kiln-hello)"
echo "or export it for docker:  $kiln --root $root build -t kiln-hello:latest -o type=docker,dest=hello.tar <context>; docker load -i hello.tar"
echo
echo "Running it now:"
bundle=$(mktemp -d /tmp/kiln-hello-bundle.XXXXXX)
trap 'rm -rf "$ctx" "$bundle"' EXIT
umoci unpack --image "$root:$image" "$bundle/b" >/dev/null
# umoci asks for a terminal; this demo runs without one.
jq '.process.terminal = false' "$bundle/b/config.json" >"$bundle/config.json" && mv "$bundle/config.json" "$bundle/b/config.json"
(cd "$bundle/b" && runc run "kiln-hello-$$" </dev/null)
