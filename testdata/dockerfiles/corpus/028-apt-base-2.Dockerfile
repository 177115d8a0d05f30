FROM ubuntu:22.04
LABEL org.opencontainers.image.source="https://example.com/tools" \
      org.opencontainers.image.description="toolbox image"
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential \
        python3 \
        python3-pip \
    ; \
    rm -rf /var/lib/apt/lists/*
ENV PATH=/home/builder/.local/bin:$PATH
RUN groupadd -r builder && useradd -r -g builder -d /home/builder -m builder
USER builder
WORKDIR /home/builder
CMD ["bash"]
