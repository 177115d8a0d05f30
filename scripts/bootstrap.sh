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

"$kiln" build -t kiln-hello:latest "$ctx"
echo
echo "The image is in kiln's store ($("$kiln" info --root-dir 2>/dev/null || echo '$XDG_DATA_HOME/kiln')):"
"$kiln" images
echo
echo "Run it:"
echo "  $kiln run --rm kiln-hello:latest"
"$kiln" run --rm kiln-hello:latest
