# syntax=docker/dockerfile:1.7
FROM debian:trixie
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends python3
rm -rf /var/lib/apt/lists/*
EOF
RUN <<-EOT bash
	useradd --create-home py
	mkdir -p /opt/app
	chown py: /opt/app
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
USER py
WORKDIR /opt/app
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["sleep", "infinity"]
