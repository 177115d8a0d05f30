//! Synthetic Dockerfiles for parser benchmarks.

use std::fmt::Write;

/// Blocks cycled through to build a synthetic Dockerfile: a mix of the shapes real files have
/// (long continued RUN chains, flags, heredocs, JSON forms, ENV/LABEL pairs, comments).
const BLOCKS: &[&str] = &[
    "FROM --platform=$BUILDPLATFORM golang:1.22-alpine AS build{n}\n",
    "ARG TARGETOS TARGETARCH VERSION=1.{n}.0\n",
    "# install build dependencies for step {n}\n",
    "RUN apt-get update \\\n    && apt-get install -y --no-install-recommends \\\n        ca-certificates \\\n        curl \\\n        git \\\n        build-essential \\\n    && rm -rf /var/lib/apt/lists/*\n",
    "RUN --mount=type=cache,target=/root/.cache/go-build,id=gobuild{n} \\\n    --mount=type=bind,source=go.sum,target=go.sum \\\n    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags=\"-s -w -X main.version=${VERSION}\" -o /out/app{n} ./cmd/app\n",
    "COPY --from=build{n} --chown=1000:1000 --chmod=0755 /out/app{n} /usr/local/bin/app{n}\n",
    "ENV APP_HOME=/srv/app{n} PATH=/srv/app{n}/bin:$PATH LANG=C.UTF-8\n",
    "LABEL org.opencontainers.image.title=\"app {n}\" org.opencontainers.image.version=\"1.{n}.0\"\n",
    "RUN <<EOF\nset -eux\necho building {n}\nmake -j\"$(nproc)\" all\nEOF\n",
    "HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD [\"/usr/local/bin/app{n}\", \"health\"]\n",
    "WORKDIR /srv/app{n}\n",
    "EXPOSE 80{d}/tcp 90{d}/udp\n",
    "USER 1000:1000\n",
    "CMD [\"/usr/local/bin/app{n}\", \"--port\", \"80{d}\"]\n",
    "\n",
];

/// A synthetic Dockerfile of at least `bytes` bytes.
pub fn synthetic(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes + 1024);
    out.push_str("# syntax=docker/dockerfile:1\nARG BASE=alpine:3.20\n");
    let mut n = 0usize;
    while out.len() < bytes {
        for block in BLOCKS {
            let text = block
                .replace("{n}", &n.to_string())
                .replace("{d}", &(n % 10).to_string());
            let _ = write!(out, "{text}");
        }
        n += 1;
    }
    out
}
