# A Debian base for the tests that build real Dockerfiles (apt-get install and friends): a
# minimal bookworm root filesystem from Debian's mirror (debootstrap over plain HTTP), as a tar.
# It is made in the background while the tests compile; the tests wait for it (bounded) through
# the files named below. Kept between runs in $KILN_TEST_CACHE when that survives.
#   source scripts/lib/debian.sh; debian_base_start; echo "$KILN_TEST_DEBIAN_DIR"

KILN_DEBIAN_SUITE=${KILN_DEBIAN_SUITE:-bookworm}
KILN_DEBIAN_MIRROR=${KILN_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# debian_base_start: sets KILN_TEST_DEBIAN_DIR; there, rootfs.tar appears with a `ready` file,
# or a `failed` file with the log.
debian_base_start() {
    local cache=${KILN_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln-tests}
    export KILN_TEST_DEBIAN_DIR="$cache/debian-$KILN_DEBIAN_SUITE"
    mkdir -p "$KILN_TEST_DEBIAN_DIR"
    if [ -f "$KILN_TEST_DEBIAN_DIR/ready" ] && [ -f "$KILN_TEST_DEBIAN_DIR/rootfs.tar" ]; then
        return 0
    fi
    rm -f "$KILN_TEST_DEBIAN_DIR/failed" "$KILN_TEST_DEBIAN_DIR/ready"
    (
        set -e
        work=$(mktemp -d "$KILN_TEST_DEBIAN_DIR/work.XXXXXX")
        trap 'rm -rf "$work"' EXIT
        debootstrap --variant=minbase "$KILN_DEBIAN_SUITE" "$work/rootfs" "$KILN_DEBIAN_MIRROR" \
            >"$KILN_TEST_DEBIAN_DIR/log" 2>&1
        rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*_Packages
        tar --numeric-owner -C "$work/rootfs" -cf "$work/rootfs.tar" .
        mv "$work/rootfs.tar" "$KILN_TEST_DEBIAN_DIR/rootfs.tar"
        touch "$KILN_TEST_DEBIAN_DIR/ready"
    ) >/dev/null 2>&1 || touch "$KILN_TEST_DEBIAN_DIR/failed" &
}
