# syntax=docker/dockerfile:1
# check=error=true
ARG ALPINE_VERSION=3.20
FROM --platform=$BUILDPLATFORM tonistiigi/xx:1.4 AS xx

FROM --platform=$BUILDPLATFORM alpine:edge AS build
COPY --from=xx / /
ARG TARGETPLATFORM
RUN xx-apk add --no-cache clang lld
WORKDIR /src
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/root/.cache \
    xx-clang -o /out/probe main.c && \
    xx-verify --static /out/probe

FROM alpine:${ALPINE_VERSION}
ARG TARGETARCH
LABEL org.opencontainers.image.arch=$TARGETARCH supported="amd64,ppc64le,s390x"
COPY --from=build /out/probe /usr/bin/probe
ENTRYPOINT ["probe"]
