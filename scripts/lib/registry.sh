# Starting and stopping throw-away CNCF distribution registries on loopback for tests.
# Sourced by scripts/test.sh; callable on its own for local work:
#   source scripts/lib/registry.sh; registry_start plain; echo "$REGISTRY_ADDR"; registry_stop_all

KILN_REGISTRY_PIDS=()
KILN_REGISTRY_DIRS=()

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# registry_start KIND [HTPASSWD_FILE]: starts a registry (KIND is "plain" or "basic") and sets
# REGISTRY_ADDR to host:port. Waits (bounded) until it answers.
registry_start() {
    local kind=$1 htpasswd=${2:-} dir port cfg auth=""
    dir=$(mktemp -d /tmp/kiln-registry.XXXXXX)
    port=$(free_port)
    cfg="$dir/config.yml"
    if [ "$kind" = basic ]; then
        auth=$(printf 'auth:\n  htpasswd:\n    realm: kiln-test\n    path: %s\n' "$htpasswd")
    fi
    local repo_root
    repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    KIND_AUTH="$auth" python3 - "$repo_root/.ci/registry.yml" "$cfg" "$dir/data" "127.0.0.1:$port" <<'PY'
import os, sys
src, dst, root, addr = sys.argv[1:5]
text = open(src).read().replace("__ROOT__", root).replace("__ADDR__", addr)
text = text.replace("__AUTH__", os.environ.get("KIND_AUTH", ""))
open(dst, "w").write(text)
PY
    /usr/bin/docker-registry serve "$cfg" >"$dir/log" 2>&1 &
    local pid=$!
    KILN_REGISTRY_PIDS+=("$pid")
    KILN_REGISTRY_DIRS+=("$dir")
    local i code
    for i in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
        if [ "$code" = 200 ] || [ "$code" = 401 ]; then
            REGISTRY_ADDR="127.0.0.1:$port"
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "registry exited early; its log:" >&2
            cat "$dir/log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "registry on 127.0.0.1:$port did not answer within 10 s; its log:" >&2
    cat "$dir/log" >&2
    return 1
}

registry_stop_all() {
    local pid dir
    for pid in "${KILN_REGISTRY_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for dir in "${KILN_REGISTRY_DIRS[@]}"; do
        rm -rf "$dir"
    done
    KILN_REGISTRY_PIDS=()
    KILN_REGISTRY_DIRS=()
}
