FROM ubuntu:24.04
LABEL org.opencontainers.image.source="https://example.com/tools" \
      org.opencontainers.image.description="toolbox image"
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        vim \
        less \
        htop \
        strace \
    ; \
    rm -rf /var/lib/apt/lists/*
COPY --chown=1000:1000 dotfiles/ /etc/skel/
RUN groupadd -r ops && useradd -r -g ops -d /home/ops -m ops
USER ops
WORKDIR /home/ops
CMD ["bash"]
