FROM ubuntu:20.04
LABEL org.opencontainers.image.source="https://example.com/tools" \
      org.opencontainers.image.description="toolbox image"
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        tzdata \
        locales \
    ; \
    rm -rf /var/lib/apt/lists/*
RUN locale-gen en_US.UTF-8
ENV LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8
RUN groupadd -r app && useradd -r -g app -d /home/app -m app
USER app
WORKDIR /home/app
CMD ["bash"]
