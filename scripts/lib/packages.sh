# Installs the Debian packages kiln and its tests use, when any is missing. Always refreshes the
# package lists first, as a fresh machine has none.

# Packages kiln needs to build: libseccomp (the RUN sandbox's system-call filter) and pkg-config
# to find it.
KILN_BUILD_PACKAGES=(libseccomp-dev pkg-config)
# Packages the tests need: a static busybox for offline base images, a real registry, a real OCI
# runtime, OCI tooling to check our output, jq for scripts, htpasswd for the auth registry,
# losetup (util-linux) for the host-device tests, slirp4netns (RUN's default network) and iproute2
# for the network tests' own namespaces, qemu-user-static and binfmt-support for RUN steps of other
# platforms, podman for `build --load` and to run kiln in a container, python3-venv for the SPDX
# validator (see ensure_spdx_tools), uidmap (newuidmap, newgidmap) for rootless mode,
# fuse-overlayfs for rootless snapshots on kernels without overlayfs in user namespaces.
KILN_TEST_PACKAGES=("${KILN_BUILD_PACKAGES[@]}" uidmap fuse-overlayfs slirp4netns iproute2 git debootstrap busybox-static docker-registry runc umoci skopeo jq apache2-utils curl python3 python3-venv ca-certificates util-linux qemu-user-static binfmt-support podman)
# Packages kiln itself needs at run time for the example build.
KILN_RUN_PACKAGES=("${KILN_BUILD_PACKAGES[@]}" uidmap slirp4netns busybox-static runc umoci jq curl ca-certificates)

# apt_update: refreshes the package lists, up to three times. A mirror that is being synced
# answers some index files with the wrong size for a while ("Mirror sync in progress?"); if every
# attempt fails, what could be fetched is kept and the install that follows says whether a
# package is really missing.
apt_update() {
    local attempt
    for attempt in 1 2 3; do
        apt-get update -qq && return 0
        echo "apt-get update failed (attempt $attempt of 3)" >&2
        [ "$attempt" -lt 3 ] && sleep $((attempt * 15))
    done
    echo "warning: going on with the package lists apt-get could fetch" >&2
}

install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ "$(id -u)" -ne 0 ]; then
        if [ ${#missing[@]} -gt 0 ]; then
            echo "missing packages: ${missing[*]} (run as root to install them)" >&2
            return 1
        fi
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt_update
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            echo "cargo not found: install a Rust toolchain (rustup) first" >&2
            return 1
        fi
    fi
}

# ensure_spdx_tools: the `spdx-tools` Python package (the SPDX project's validator) in a venv,
# for the SBOM tests; exports KILN_TEST_SPDX_VALIDATOR.
ensure_spdx_tools() {
    local venv=${KILN_SPDX_VENV:-/var/tmp/kiln-spdx-venv}
    if [ ! -x "$venv/bin/pyspdxtools" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q spdx-tools
    fi
    export KILN_TEST_SPDX_VALIDATOR="$venv/bin/pyspdxtools"
}
