FROM debian:bookworm
LABEL org.opencontainers.image.source="https://example.com/tools" \
      org.opencontainers.image.description="toolbox image"
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        curl \
        git \
        jq \
        openssh-client \
    ; \
    rm -rf /var/lib/apt/lists/*

RUN groupadd -r dev && useradd -r -g dev -d /home/dev -m dev
USER dev
WORKDIR /home/dev
CMD ["bash"]
