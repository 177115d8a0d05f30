#!/usr/bin/env python3
"""Writes testdata/dockerfiles/corpus/NNN-name.Dockerfile: realistic Dockerfiles in the styles of
popular official images and common project setups, each template rendered with several variants.
Re-run after editing; the corpus test only requires that every file parses."""
import os, itertools

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def go(v):
    ver, base, cgo, name = v
    return f'''# syntax=docker/dockerfile:1
ARG GO_VERSION={ver}
FROM --platform=$BUILDPLATFORM golang:${{GO_VERSION}}-{base} AS build
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \\
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \\
    --mount=type=cache,target=/root/.cache/go-build \\
    CGO_ENABLED={cgo} GOOS=$TARGETOS GOARCH=$TARGETARCH \\
    go build -trimpath -ldflags="-s -w" -o /out/{name} ./cmd/{name}

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/{name} /usr/local/bin/{name}
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/{name}"]
'''

def rust(v):
    ver, bin_, musl, port = v
    target = "x86_64-unknown-linux-musl" if musl else "x86_64-unknown-linux-gnu"
    runtime = "alpine:3.20" if musl else "debian:bookworm-slim"
    extra = "RUN apk add --no-cache ca-certificates tini" if musl else \
        "RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini \\\n    && rm -rf /var/lib/apt/lists/*"
    return f'''FROM rust:{ver} AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
{"RUN rustup target add " + target if musl else "# native target"}
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \\
    cargo chef cook --release --target {target} --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \\
    --mount=type=cache,target=/app/target,id=target-{bin_} \\
    cargo build --release --target {target} --bin {bin_} && \\
    cp target/{target}/release/{bin_} /usr/local/bin/{bin_}

FROM {runtime} AS runtime
{extra}
COPY --from=builder /usr/local/bin/{bin_} /usr/local/bin/
ENV RUST_LOG=info
EXPOSE {port}
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \\
  CMD ["/usr/local/bin/{bin_}", "--health"]
ENTRYPOINT ["tini", "--", "/usr/local/bin/{bin_}"]
'''

def node(v):
    ver, pm, port, flavor = v
    install = {"npm": "npm ci", "yarn": "yarn install --frozen-lockfile", "pnpm": "corepack enable && pnpm install --frozen-lockfile"}[pm]
    lock = {"npm": "package-lock.json", "yarn": "yarn.lock", "pnpm": "pnpm-lock.yaml"}[pm]
    return f'''ARG NODE_VERSION={ver}
FROM node:${{NODE_VERSION}}-{flavor} AS deps
WORKDIR /usr/src/app
COPY package.json {lock} ./
RUN --mount=type=cache,target=/root/.npm \\
    {install}

FROM deps AS build
COPY . .
RUN npm run build

FROM node:${{NODE_VERSION}}-{flavor}
ENV NODE_ENV=production \\
    PORT={port}
WORKDIR /usr/src/app
COPY --from=deps --chown=node:node /usr/src/app/node_modules ./node_modules
COPY --from=build --chown=node:node /usr/src/app/dist ./dist
COPY --chown=node:node package.json ./
USER node
EXPOSE {port}
HEALTHCHECK CMD node -e "require('http').get('http://localhost:{port}/healthz', r => process.exit(r.statusCode === 200 ? 0 : 1))"
CMD ["node", "dist/server.js"]
'''

def python(v):
    ver, tool, app, port = v
    if tool == "pip":
        inst = "RUN --mount=type=cache,target=/root/.cache/pip \\\n    pip install --no-cache-dir -r requirements.txt"
        files = "requirements.txt"
    elif tool == "poetry":
        inst = "RUN pip install poetry==1.8.3 && \\\n    poetry config virtualenvs.create false && \\\n    poetry install --no-interaction --no-ansi --only main"
        files = "pyproject.toml poetry.lock"
    else:
        inst = "COPY --from=ghcr.io/astral-sh/uv:0.4 /uv /bin/uv\nRUN --mount=type=cache,target=/root/.cache/uv \\\n    uv sync --frozen --no-dev"
        files = "pyproject.toml uv.lock"
    return f'''FROM python:{ver}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=on
RUN apt-get update \\
 && apt-get install -y --no-install-recommends \\
      build-essential \\
      libpq-dev \\
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY {files} ./
{inst}
COPY . .
RUN useradd --create-home --uid 10001 appuser
USER appuser
EXPOSE {port}
CMD ["gunicorn", "--bind", "0.0.0.0:{port}", "--workers", "4", "{app}.wsgi:application"]
'''

def java(v):
    jdk, tool, art, port = v
    if tool == "maven":
        b = f'''FROM maven:3.9-eclipse-temurin-{jdk} AS build
WORKDIR /workspace
COPY pom.xml .
RUN --mount=type=cache,target=/root/.m2 mvn -B dependency:go-offline
COPY src ./src
RUN --mount=type=cache,target=/root/.m2 mvn -B -DskipTests package
'''
        jar = "/workspace/target/*.jar"
    else:
        b = f'''FROM gradle:8.8-jdk{jdk} AS build
WORKDIR /home/gradle/project
COPY --chown=gradle:gradle . .
RUN --mount=type=cache,target=/home/gradle/.gradle/caches,uid=1000,gid=1000 \\
    gradle --no-daemon bootJar
'''
        jar = "/home/gradle/project/build/libs/*.jar"
    return b + f'''
FROM eclipse-temurin:{jdk}-jre-jammy
RUN groupadd --system spring && useradd --system --gid spring spring
COPY --from=build {jar} /opt/app/{art}.jar
USER spring:spring
ENV JAVA_OPTS="-XX:MaxRAMPercentage=75.0 -XX:+UseContainerSupport"
EXPOSE {port}
ENTRYPOINT ["sh", "-c", "exec java $JAVA_OPTS -jar /opt/app/{art}.jar"]
'''

def apt_base(v):
    distro, pkgs, user, extra = v
    pk = " \\\n        ".join(pkgs)
    return f'''FROM {distro}
LABEL org.opencontainers.image.source="https://example.com/tools" \\
      org.opencontainers.image.description="toolbox image"
ARG DEBIAN_FRONTEND=noninteractive
RUN set -eux; \\
    apt-get update; \\
    apt-get install -y --no-install-recommends \\
        {pk} \\
    ; \\
    rm -rf /var/lib/apt/lists/*
{extra}
RUN groupadd -r {user} && useradd -r -g {user} -d /home/{user} -m {user}
USER {user}
WORKDIR /home/{user}
CMD ["bash"]
'''

def alpine_tool(v):
    ver, tool, pkgs, sig = v
    return f'''FROM alpine:{ver}
RUN apk add --no-cache \\
    {" ".join(pkgs)} \\
 && addgroup -S {tool} \\
 && adduser -S -G {tool} {tool}
COPY --chmod=0755 docker-entrypoint.sh /usr/local/bin/
VOLUME ["/var/lib/{tool}"]
WORKDIR /var/lib/{tool}
STOPSIGNAL {sig}
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["{tool}"]
'''

def db_official(v):
    name, ver, port, dir_ = v
    return f'''FROM debian:bookworm-slim

# explicitly set user/group IDs
RUN set -eux; \\
	groupadd -r {name} --gid=999; \\
	useradd -r -g {name} --uid=999 --home-dir=/var/lib/{name} --shell=/bin/bash {name}; \\
	mkdir -p /var/lib/{name}; \\
	chown -R {name}:{name} /var/lib/{name}

ENV GOSU_VERSION 1.17
RUN set -eux; \\
	savedAptMark="$(apt-mark showmanual)"; \\
	apt-get update; \\
	apt-get install -y --no-install-recommends ca-certificates wget; \\
	rm -rf /var/lib/apt/lists/*; \\
	dpkgArch="$(dpkg --print-architecture | awk -F- '{{ print $NF }}')"; \\
	wget -O /usr/local/bin/gosu "https://github.com/tianon/gosu/releases/download/$GOSU_VERSION/gosu-$dpkgArch"; \\
	chmod +x /usr/local/bin/gosu; \\
	gosu --version; \\
	gosu nobody true

ENV {name.upper()}_MAJOR {ver.split(".")[0]}
ENV {name.upper()}_VERSION {ver}
ENV PATH $PATH:/usr/lib/{name}/${{{name.upper()}_MAJOR}}/bin
ENV PGDATA {dir_}
RUN mkdir -p "$PGDATA" && chown -R {name}:{name} "$PGDATA" && chmod 1777 "$PGDATA"
VOLUME {dir_}

COPY docker-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["docker-entrypoint.sh"]

STOPSIGNAL SIGINT
EXPOSE {port}
CMD ["{name}"]
'''

def nginx_static(v):
    node_ver, nginx_ver, outdir, port = v
    return f'''FROM node:{node_ver}-alpine AS build
WORKDIR /app
COPY package*.json ./
RUN npm ci
COPY . .
RUN npm run build

FROM nginx:{nginx_ver}-alpine
COPY --from=build /app/{outdir} /usr/share/nginx/html
COPY <<EOF /etc/nginx/conf.d/default.conf
server {{
    listen {port};
    root /usr/share/nginx/html;
    location / {{
        try_files \\$uri \\$uri/ /index.html;
    }}
}}
EOF
EXPOSE {port}
HEALTHCHECK --interval=10s --timeout=2s CMD wget -qO- http://127.0.0.1:{port}/ || exit 1
CMD ["nginx", "-g", "daemon off;"]
'''

def heredoc_setup(v):
    base, shell, pkgs, user = v
    return f'''# syntax=docker/dockerfile:1.7
FROM {base}
SHELL ["/bin/{shell}", "-o", "pipefail", "-c"]
RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends {" ".join(pkgs)}
rm -rf /var/lib/apt/lists/*
EOF
RUN <<-EOT {shell}
	useradd --create-home {user}
	mkdir -p /opt/app
	chown {user}: /opt/app
	EOT
COPY --chmod=755 <<'SCRIPT' /usr/local/bin/entrypoint
#!/bin/sh
set -e
echo "starting as $(id -un)"
exec "$@"
SCRIPT
COPY <<conf.ini <<env.sh /etc/app/
[server]
port = 8080
conf.ini
export APP_ENV=production
env.sh
USER {user}
WORKDIR /opt/app
ENTRYPOINT ["/usr/local/bin/entrypoint"]
CMD ["sleep", "infinity"]
'''

def onbuild_base(v):
    lang, ver, cmd, dir_ = v
    return f'''FROM {lang}:{ver}
RUN mkdir -p {dir_}
WORKDIR {dir_}
ONBUILD ARG BUILD_ENV=production
ONBUILD COPY . {dir_}
ONBUILD RUN {cmd}
ONBUILD ENV APP_ENV=$BUILD_ENV
ONBUILD HEALTHCHECK --interval=1m CMD ["true"]
CMD ["sh", "-c", "echo override me"]
'''

def dotnet(v):
    ver, proj, port, chiseled = v
    rt = f"mcr.microsoft.com/dotnet/aspnet:{ver}" + ("-jammy-chiseled" if chiseled else "")
    return f'''FROM mcr.microsoft.com/dotnet/sdk:{ver} AS build
ARG BUILD_CONFIGURATION=Release
WORKDIR /src
COPY ["{proj}/{proj}.csproj", "{proj}/"]
RUN dotnet restore "{proj}/{proj}.csproj"
COPY . .
WORKDIR "/src/{proj}"
RUN dotnet publish "{proj}.csproj" -c $BUILD_CONFIGURATION -o /app/publish /p:UseAppHost=false

FROM {rt} AS final
WORKDIR /app
EXPOSE {port}
ENV ASPNETCORE_URLS=http://+:{port}
COPY --from=build /app/publish .
ENTRYPOINT ["dotnet", "{proj}.dll"]
'''

def windows(v):
    ver, tool, url, dest = v
    return f'''# escape=`
FROM mcr.microsoft.com/windows/servercore:{ver}
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop'; $ProgressPreference = 'SilentlyContinue';"]
ENV {tool.upper()}_HOME=C:\\{tool}
RUN Invoke-WebRequest -Uri {url} -OutFile C:\\{tool}.zip ; `
    Expand-Archive C:\\{tool}.zip -DestinationPath {dest} ; `
    Remove-Item C:\\{tool}.zip -Force
RUN setx /M PATH $('{dest}\\bin;' + $Env:PATH)
WORKDIR {dest}
COPY config\\ {dest}\\config\\
CMD ["{tool}.exe", "--version"]
'''

def ruby(v):
    ver, app, port, node = v
    nodeline = "RUN apt-get update -qq && apt-get install -y nodejs yarn && rm -rf /var/lib/apt/lists/*" if node else "# no asset pipeline"
    return f'''ARG RUBY_VERSION={ver}
FROM ruby:$RUBY_VERSION-slim AS base
WORKDIR /rails
ENV RAILS_ENV="production" \\
    BUNDLE_DEPLOYMENT="1" \\
    BUNDLE_PATH="/usr/local/bundle" \\
    BUNDLE_WITHOUT="development"

FROM base AS build
RUN apt-get update -qq && \\
    apt-get install --no-install-recommends -y build-essential git libpq-dev pkg-config && \\
    rm -rf /var/lib/apt/lists /var/cache/apt/archives
{nodeline}
COPY Gemfile Gemfile.lock ./
RUN bundle install && \\
    rm -rf ~/.bundle/ "${{BUNDLE_PATH}}"/ruby/*/cache "${{BUNDLE_PATH}}"/ruby/*/bundler/gems/*/.git
COPY . .
RUN SECRET_KEY_BASE_DUMMY=1 ./bin/rails assets:precompile

FROM base
COPY --from=build "${{BUNDLE_PATH}}" "${{BUNDLE_PATH}}"
COPY --from=build /rails /rails
RUN groupadd --system --gid 1000 rails && \\
    useradd rails --uid 1000 --gid 1000 --create-home --shell /bin/bash && \\
    chown -R rails:rails db log storage tmp
USER 1000:1000
ENTRYPOINT ["/rails/bin/docker-entrypoint"]
EXPOSE {port}
CMD ["./bin/rails", "server", "-b", "0.0.0.0", "-p", "{port}"]
'''

def php(v):
    ver, ext, composer, port = v
    return f'''FROM composer:{composer} AS vendor
WORKDIR /app
COPY composer.json composer.lock ./
RUN composer install --no-dev --no-scripts --prefer-dist --no-interaction

FROM php:{ver}-fpm-alpine
RUN apk add --no-cache --virtual .build-deps $PHPIZE_DEPS icu-dev libzip-dev \\
 && docker-php-ext-install -j"$(nproc)" {" ".join(ext)} \\
 && apk del .build-deps
COPY --from=vendor /app/vendor /var/www/html/vendor
COPY . /var/www/html
RUN chown -R www-data:www-data /var/www/html/storage
USER www-data
EXPOSE {port}
CMD ["php-fpm"]
'''

def cpp(v):
    compiler, std, build_type, target = v
    return f'''FROM ubuntu:24.04 AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends \\
        {compiler} cmake ninja-build git ca-certificates \\
    && rm -rf /var/lib/apt/lists/*

FROM toolchain AS build
WORKDIR /src
COPY CMakeLists.txt ./
COPY src/ src/
COPY include/ include/
RUN cmake -S . -B build -G Ninja \\
      -DCMAKE_BUILD_TYPE={build_type} \\
      -DCMAKE_CXX_STANDARD={std} \\
  && cmake --build build --target {target} -j"$(nproc)"

FROM ubuntu:24.04
COPY --from=build /src/build/{target} /usr/local/bin/{target}
ENTRYPOINT ["/usr/local/bin/{target}"]
'''

def elixir(v):
    ver, otp, app, port = v
    return f'''ARG ELIXIR_VERSION={ver}
ARG OTP_VERSION={otp}
ARG DEBIAN_VERSION=bookworm-20240612-slim
ARG BUILDER_IMAGE="hexpm/elixir:${{ELIXIR_VERSION}}-erlang-${{OTP_VERSION}}-debian-${{DEBIAN_VERSION}}"
ARG RUNNER_IMAGE="debian:${{DEBIAN_VERSION}}"

FROM ${{BUILDER_IMAGE}} AS builder
RUN apt-get update -y && apt-get install -y build-essential git \\
    && apt-get clean && rm -f /var/lib/apt/lists/*_*
WORKDIR /app
RUN mix local.hex --force && \\
    mix local.rebar --force
ENV MIX_ENV="prod"
COPY mix.exs mix.lock ./
RUN mix deps.get --only $MIX_ENV
RUN mkdir config
COPY config/config.exs config/${{MIX_ENV}}.exs config/
RUN mix deps.compile
COPY priv priv
COPY lib lib
RUN mix compile
RUN mix release

FROM ${{RUNNER_IMAGE}}
RUN apt-get update -y && \\
  apt-get install -y libstdc++6 openssl libncurses5 locales ca-certificates \\
  && apt-get clean && rm -f /var/lib/apt/lists/*_*
ENV LANG en_US.UTF-8
ENV LANGUAGE en_US:en
WORKDIR "/app"
RUN chown nobody /app
COPY --from=builder --chown=nobody:root /app/_build/prod/rel/{app} ./
USER nobody
EXPOSE {port}
CMD ["/app/bin/server"]
'''

def ml(v):
    cuda, torch, py, extra = v
    return f'''ARG CUDA_VERSION={cuda}
FROM nvidia/cuda:${{CUDA_VERSION}}-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive \\
    PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends \\
        python{py} python3-pip git curl \\
    && ln -sf /usr/bin/python{py} /usr/bin/python \\
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=cache,target=/root/.cache/pip \\
    pip install torch=={torch} {extra}
RUN --mount=type=secret,id=hf_token,env=HF_TOKEN \\
    python -c "print('warming caches')"
WORKDIR /workspace
COPY --link . /workspace
VOLUME ["/workspace/checkpoints"]
CMD ["python", "train.py"]
'''

def scratch_static(v):
    builder, bin_, ca, label = v
    return f'''FROM {builder} AS build
WORKDIR /build
COPY . .
RUN make static && strip {bin_}

FROM scratch
{"COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/" if ca else "# no certificates needed"}
COPY --from=build /build/{bin_} /{bin_}
LABEL {label}
USER 65534:65534
ENTRYPOINT ["/{bin_}"]
'''

def legacy(v):
    base, maint, pkg, port = v
    return f'''FROM {base}
MAINTAINER {maint}
ENV HOME /root
ENV LANG en_US.UTF-8
RUN apt-get update && apt-get install -y {pkg}
ADD . /opt/service
ADD http://example.com/config.tar.gz /tmp/
EXPOSE {port}
VOLUME /opt/service/data /var/log/service
CMD /opt/service/run.sh
'''

def bun_deno(v):
    rt, ver, entry, port = v
    if rt == "bun":
        return f'''FROM oven/bun:{ver} AS base
WORKDIR /usr/src/app

FROM base AS install
RUN mkdir -p /temp/prod
COPY package.json bun.lockb /temp/prod/
RUN cd /temp/prod && bun install --frozen-lockfile --production

FROM base AS release
COPY --from=install /temp/prod/node_modules node_modules
COPY . .
USER bun
EXPOSE {port}/tcp
ENTRYPOINT [ "bun", "run", "{entry}" ]
'''
    return f'''FROM denoland/deno:{ver}
EXPOSE {port}
WORKDIR /app
USER deno
COPY deps.ts .
RUN deno cache deps.ts
ADD . .
RUN deno cache {entry}
CMD ["run", "--allow-net", "--allow-env", "{entry}"]
'''

def multi_platform(v):
    base, tools, arches, name = v
    return f'''# syntax=docker/dockerfile:1
# check=error=true
ARG ALPINE_VERSION=3.20
FROM --platform=$BUILDPLATFORM tonistiigi/xx:1.4 AS xx

FROM --platform=$BUILDPLATFORM {base} AS build
COPY --from=xx / /
ARG TARGETPLATFORM
RUN xx-apk add --no-cache {" ".join(tools)}
WORKDIR /src
RUN --mount=type=bind,target=. \\
    --mount=type=cache,target=/root/.cache \\
    xx-clang -o /out/{name} main.c && \\
    xx-verify --static /out/{name}

FROM alpine:${{ALPINE_VERSION}}
ARG TARGETARCH
LABEL org.opencontainers.image.arch=$TARGETARCH supported="{arches}"
COPY --from=build /out/{name} /usr/bin/{name}
ENTRYPOINT ["{name}"]
'''

T = [
 ("go", go, [("1.22", "alpine", 0, "api"), ("1.21", "bookworm", 1, "worker"), ("1.23", "alpine3.20", 0, "gateway"), ("1.22.5", "bullseye", 0, "cli"), ("1.20", "alpine", 0, "exporter"), ("1.23.1", "bookworm", 1, "ingest")]),
 ("rust", rust, [("1.80", "server", True, 3000), ("1.79-slim", "indexer", False, 8000), ("1.81-bookworm", "proxy", False, 8443), ("1.78-alpine", "cli", True, 9000), ("1.80.1", "daemon", False, 7000)]),
 ("node", node, [("20", "npm", 3000, "alpine"), ("18", "yarn", 8080, "bookworm-slim"), ("22", "pnpm", 4000, "alpine"), ("20.15", "npm", 5000, "slim"), ("21", "yarn", 3001, "alpine3.19")]),
 ("python", python, [("3.12", "pip", "mysite", 8000), ("3.11", "poetry", "shop", 8080), ("3.13", "uv", "portal", 5000), ("3.10", "pip", "blog", 8001), ("3.12.4", "poetry", "api", 9000)]),
 ("java", java, [("21", "maven", "app", 8080), ("17", "gradle", "service", 8081), ("21", "gradle", "orders", 9090), ("11", "maven", "legacy", 8080), ("17", "maven", "billing", 8443)]),
 ("apt-base", apt_base, [("debian:bookworm", ["curl", "git", "jq", "openssh-client"], "dev", ""), ("ubuntu:22.04", ["build-essential", "python3", "python3-pip"], "builder", "ENV PATH=/home/builder/.local/bin:$PATH"), ("ubuntu:24.04", ["vim", "less", "htop", "strace"], "ops", "COPY --chown=1000:1000 dotfiles/ /etc/skel/"), ("debian:bullseye-slim", ["ca-certificates", "gnupg", "lsb-release"], "svc", "ARG EXTRA_PKGS=\"\"\nRUN if [ -n \"$EXTRA_PKGS\" ]; then apt-get update && apt-get install -y $EXTRA_PKGS; fi"), ("ubuntu:20.04", ["tzdata", "locales"], "app", "RUN locale-gen en_US.UTF-8\nENV LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8")]),
 ("alpine-tool", alpine_tool, [("3.20", "redis", ["redis", "su-exec", "tzdata"], "SIGTERM"), ("3.19", "haproxy", ["haproxy", "ca-certificates"], "SIGUSR1"), ("3.18", "memcached", ["memcached", "libevent"], "SIGTERM"), ("3.20", "squid", ["squid", "openssl"], "SIGINT"), ("edge", "mosquitto", ["mosquitto", "mosquitto-clients"], "SIGTERM")]),
 ("db-official", db_official, [("postgres", "16.3", 5432, "/var/lib/postgresql/data"), ("mariadb", "11.4.2", 3306, "/var/lib/mysql"), ("mongodb", "7.0.12", 27017, "/data/db"), ("cassandra", "4.1.5", 9042, "/var/lib/cassandra"), ("couchdb", "3.3.3", 5984, "/opt/couchdb/data")]),
 ("nginx-static", nginx_static, [("20", "1.27", "dist", 80), ("18", "1.25", "build", 8080), ("22", "1.26", "out", 3000), ("20", "stable", "public", 8081), ("21", "mainline", "dist/spa", 80)]),
 ("heredoc-setup", heredoc_setup, [("debian:bookworm-slim", "bash", ["curl", "jq"], "runner"), ("ubuntu:24.04", "bash", ["git", "make"], "ci"), ("debian:trixie", "bash", ["python3"], "py"), ("ubuntu:22.04", "bash", ["nodejs", "npm"], "web"), ("debian:bookworm", "bash", ["rsync", "openssh-client"], "sync")]),
 ("onbuild", onbuild_base, [("node", "20", "npm ci && npm run build", "/usr/src/app"), ("python", "3.12", "pip install -r requirements.txt", "/app"), ("ruby", "3.3", "bundle install", "/usr/src/app"), ("golang", "1.22", "go build -o /bin/app ./...", "/go/src/app"), ("maven", "3.9-eclipse-temurin-21", "mvn -B package", "/usr/src/app")]),
 ("dotnet", dotnet, [("8.0", "WebApi", 8080, False), ("8.0", "Worker", 5000, True), ("6.0", "Legacy.Api", 80, False), ("9.0", "Gateway", 8081, True), ("7.0", "Jobs", 5001, False)]),
 ("windows", windows, [("ltsc2022", "node", "https://nodejs.org/dist/v20.15.0/node-v20.15.0-win-x64.zip", "C:\\nodejs"), ("ltsc2019", "git", "https://example.com/git.zip", "C:\\git"), ("ltsc2022", "python", "https://example.com/python.zip", "C:\\python"), ("ltsc2022", "go", "https://go.dev/dl/go1.22.5.windows-amd64.zip", "C:\\go")]),
 ("ruby", ruby, [("3.3.4", "shop", 3000, True), ("3.2.4", "api", 8080, False), ("3.1", "admin", 3001, True), ("3.3", "billing", 4000, False)]),
 ("php", php, [("8.3", ["pdo_mysql", "intl", "zip"], "2", 9000), ("8.2", ["pdo_pgsql", "opcache"], "2.7", 9000), ("8.1", ["gd", "bcmath"], "2.6", 9001), ("8.3", ["sockets", "pcntl"], "latest", 9000)]),
 ("cpp", cpp, [("g++", "20", "Release", "server"), ("clang", "17", "RelWithDebInfo", "bench"), ("g++-13", "23", "Debug", "tool"), ("clang-18", "20", "MinSizeRel", "agent")]),
 ("elixir", elixir, [("1.17.2", "27.0.1", "app", 4000), ("1.16.3", "26.2.5", "chat", 4001), ("1.15.7", "26.1.2", "jobs", 4002), ("1.17.1", "27.0", "api", 8080)]),
 ("ml", ml, [("12.4.1", "2.4.0", "3.11", "transformers accelerate"), ("12.1.1", "2.3.1", "3.10", "lightning"), ("11.8.0", "2.1.2", "3.10", "diffusers safetensors"), ("12.2.2", "2.2.2", "3.11", "vllm")]),
 ("scratch", scratch_static, [("gcc:14", "hello", False, "org.opencontainers.image.title=hello"), ("alpine:3.20", "pinger", True, "maintainer=\"ops team\" tier=edge"), ("golang:1.22", "probe", True, "version=1.0.0"), ("rust:1.80-alpine", "relay", True, "com.example.component=\"relay service\"")]),
 ("legacy", legacy, [("ubuntu:14.04", "John Smith <john@example.com>", "python-pip", 5000), ("debian:jessie", "ops@example.com", "apache2", 80), ("centos:7", "Acme Corp", "httpd", 8080), ("ubuntu:16.04", "dev team", "supervisor", 9001)]),
 ("bun-deno", bun_deno, [("bun", "1.1", "index.ts", 3000), ("deno", "1.45.2", "main.ts", 8000), ("bun", "1.1.20-alpine", "server.ts", 8080), ("deno", "alpine-1.44.4", "app.ts", 8001)]),
 ("multi-platform", multi_platform, [("alpine:3.20", ["clang", "lld", "musl-dev"], "amd64,arm64", "hello"), ("alpine:3.19", ["gcc", "musl-dev"], "amd64,arm64,armv7", "tiny"), ("alpine:3.20", ["clang", "compiler-rt"], "riscv64,arm64", "blink"), ("alpine:edge", ["clang", "lld"], "amd64,ppc64le,s390x", "probe")]),
]

def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".Dockerfile"):
            os.remove(os.path.join(OUT, f))
    n = 0
    for name, fn, variants in T:
        for i, v in enumerate(variants):
            n += 1
            with open(os.path.join(OUT, f"{n:03d}-{name}-{i + 1}.Dockerfile"), "w", newline="\n") as f:
                f.write(fn(v))
    print(n, "files")

if __name__ == "__main__":
    main()
