# Foreign-platform support for the tests: qemu-user-static registered with binfmt_misc, and static
# busybox binaries of other architectures (Debian's busybox-static for arm64 and armhf), unpacked
# once into a cache directory. Sourced by scripts/test.sh after packages.sh.

# Makes sure binfmt_misc is mounted and qemu-user-static's registrations are enabled (root only).
emulation_setup() {
    [ "$(id -u)" -eq 0 ] || return 0
    if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    fi
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] && command -v update-binfmts >/dev/null; then
        update-binfmts --enable >/dev/null 2>&1 || true
    fi
}

# Unpacks busybox-static for each Debian architecture into $1 as busybox-<GOARCH> (the names
# TARGETARCH gives: amd64, arm64, arm), and exports KILN_TEST_BUSYBOX_DIR. Downloads only what
# the cache lacks.
foreign_busybox() {
    local cache="$1" deb_arch go_arch need=()
    mkdir -p "$cache"
    for pair in amd64:amd64 arm64:arm64 armhf:arm; do
        deb_arch=${pair%%:*}
        go_arch=${pair##*:}
        [ -x "$cache/busybox-$go_arch" ] || need+=("$pair")
    done
    if [ ${#need[@]} -gt 0 ]; then
        local work
        work=$(mktemp -d /tmp/kiln-busybox.XXXXXX)
        # apt downloads as its own user.
        chmod 0777 "$work"
        for pair in "${need[@]}"; do
            deb_arch=${pair%%:*}
            go_arch=${pair##*:}
            if ! dpkg --print-foreign-architectures | grep -qx "$deb_arch" \
                && [ "$deb_arch" != "$(dpkg --print-architecture)" ]; then
                dpkg --add-architecture "$deb_arch"
                apt_update
            fi
            (cd "$work" && apt-get download -qq "busybox-static:$deb_arch" >/dev/null)
            dpkg-deb -x "$work"/busybox-static_*_"$deb_arch".deb "$work/$deb_arch"
            install -m 0755 "$work/$deb_arch/bin/busybox" "$cache/busybox-$go_arch"
        done
        rm -rf "$work"
    fi
    export KILN_TEST_BUSYBOX_DIR="$cache"
}
