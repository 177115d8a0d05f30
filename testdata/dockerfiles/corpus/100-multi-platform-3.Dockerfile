# syntax=docker/dockerfile:1
# check=error=true
ARG ALPINE_VERSION=3.20
FROM --platform=$BUILDPLATFORM tonistiigi/xx:1.4 AS xx

FROM --platform=$BUILDPLATFORM alpine:3.20 AS build
COPY --from=xx / /
ARG TARGETPLATFORM
RUN xx-apk add --no-cache clang compiler-rt
WORKDIR /src
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/root/.cache \
    xx-clang -o /out/blink main.c && \
    xx-verify --static /out/blink

FROM alpine:${ALPINE_VERSION}
ARG TARGETARCH
LABEL org.opencontainers.image.arch=$TARGETARCH supported="riscv64,arm64"
COPY --from=build /out/blink /usr/bin/blink
ENTRYPOINT ["blink"]
