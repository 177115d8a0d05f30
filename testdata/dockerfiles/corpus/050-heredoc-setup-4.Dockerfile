# syntax=docker/dockerfile:1.7
FROM ubuntu:22.04
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends nodejs npm
rm -rf /var/lib/apt/lists/*
EOF
RUN <<-EOT bash
	useradd --create-home web
	mkdir -p /opt/app
	chown web: /opt/app
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
USER web
WORKDIR /opt/app
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["sleep", "infinity"]
