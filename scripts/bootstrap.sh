#!/usr/bin/env bash
# Sets kiln up on a fresh Debian/Ubuntu machine and builds a real example image, offline:
# installs what kiln needs, builds the `kiln` binary and puts it on PATH (/usr/local/bin), builds
# testdata/examples/hello (a static busybox on an empty base, with RUN, CMD and EXPOSE) into kiln's
# local store, and runs it with `kiln run`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/packages.sh

install_packages "${KILN_RUN_PACKAGES[@]}"
ensure_rust

cargo build --release --locked -p kiln-cli
install -m 0755 target/release/kiln /usr/local/bin/kiln
kiln=/usr/local/bin/kiln

ctx=$(mktemp -d /tmp/kiln-hello.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
cp -r testdata/examples/hello/. "$ctx/"
cp /bin/busybox "$ctx/busybox"

root=${KILN_ROOT:-${XDG_DATA_HOME:-$HOME/.local/share}/kiln}
"$kiln" --root "$root" build -t kiln-hello:latest "$ctx"

echo
echo "kiln is installed as $kiln; the image is in its store ($root), tagged kiln-hello:latest."
echo "Try the image with:"
echo "  kiln run --rm kiln-hello"
echo "Build your own with:  kiln build -t app:1 ."
echo
echo "Running it now:"
"$kiln" --root "$root" run --rm kiln-hello
