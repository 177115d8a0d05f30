FROM debian:bullseye-slim
LABEL org.opencontainers.image.source="https://example.com/tools" \
      org.opencontainers.image.description="toolbox image"
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        ca-certificates \
        gnupg \
        lsb-release \
    ; \
    rm -rf /var/lib/apt/lists/*
ARG EXTRA_PKGS=""
RUN if [ -n "$EXTRA_PKGS" ]; then apt-get update && apt-get install -y $EXTRA_PKGS; fi
RUN groupadd -r svc && useradd -r -g svc -d /home/svc -m svc
USER svc
WORKDIR /home/svc
CMD ["bash"]
