# syntax=docker/dockerfile:1
# check=error=true
ARG ALPINE_VERSION=3.20
FROM --platform=$BUILDPLATFORM tonistiigi/xx:1.4 AS xx

FROM --platform=$BUILDPLATFORM alpine:3.19 AS build
COPY --from=xx / /
ARG TARGETPLATFORM
RUN xx-apk add --no-cache gcc musl-dev
WORKDIR /src
RUN --mount=type=bind,target=. \
    --mount=type=cache,target=/root/.cache \
    xx-clang -o /out/tiny main.c && \
    xx-verify --static /out/tiny

FROM alpine:${ALPINE_VERSION}
ARG TARGETARCH
LABEL org.opencontainers.image.arch=$TARGETARCH supported="amd64,arm64,armv7"
COPY --from=build /out/tiny /usr/bin/tiny
ENTRYPOINT ["tiny"]
