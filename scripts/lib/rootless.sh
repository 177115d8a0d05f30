# The unprivileged account the rootless tests run kiln as: subordinate id ranges in /etc/subuid and
# /etc/subgid (as useradd gives new users on Debian), and /dev/net/tun and /dev/fuse usable by every
# user, as on ordinary distributions (slirp4netns needs the first for RUN's network, fuse-overlayfs
# the second).

KILN_ROOTLESS_USER="${KILN_ROOTLESS_USER:-kiln-rootless}"

rootless_user_setup() {
    local user="$KILN_ROOTLESS_USER" f start
    if ! id "$user" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash "$user"
    fi
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        if ! grep -q "^$user:" "$f"; then
            # After the highest range in use, so that no two users share ids.
            start=$(awk -F: 'BEGIN { m = 100000 } { e = $2 + $3; if (e > m) m = e } END { print m }' "$f")
            echo "$user:$start:65536" >>"$f"
        fi
    done
    if [ ! -e /dev/net/tun ]; then
        mkdir -p /dev/net
        mknod /dev/net/tun c 10 200
    fi
    chmod 0666 /dev/net/tun
    if [ ! -e /dev/fuse ]; then
        mknod /dev/fuse c 10 229
    fi
    chmod 0666 /dev/fuse
    export KILN_TEST_ROOTLESS_USER="$user"
}
