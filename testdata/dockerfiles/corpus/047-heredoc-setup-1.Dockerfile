# syntax=docker/dockerfile:1.7
FROM debian:bookworm-slim
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends curl jq
rm -rf /var/lib/apt/lists/*
EOF
RUN <<-EOT bash
	useradd --create-home runner
	mkdir -p /opt/app
	chown runner: /opt/app
	EOT
COPY --chmod=755 <<'SCRIPT' /usr/local/bin/entrypoint
#!/bin/sh
set -e
echo "starting as $(id -un)"
exec "$@"
SCRIPT
COPY <<conf.ini <<env.sh /etc/app/
[server]
port = 8080
conf.ini
export APP_ENV=production
env.sh
USER runner
WORKDIR /opt/app
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["sleep", "infinity"]
