# syntax=docker/dockerfile:1
# check=error=true
ARG ALPINE_VERSION=3.20
FROM --platform=$BUILDPLATFORM tonistiigi/xx:1.4 AS xx

FROM --platform=$BUILDPLATFORM alpine:3.20 AS build
COPY --from=xx / /
ARG TARGETPLATFORM
RUN xx-apk add --no-cache clang lld musl-dev
WORKDIR /src
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/root/.cache \
    xx-clang -o /out/hello main.c && \
    xx-verify --static /out/hello

FROM alpine:${ALPINE_VERSION}
ARG TARGETARCH
LABEL org.opencontainers.image.arch=$TARGETARCH supported="amd64,arm64"
COPY --from=build /out/hello /usr/bin/hello
ENTRYPOINT ["hello"]
