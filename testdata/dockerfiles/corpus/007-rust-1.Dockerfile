FROM rust:1.80 AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
RUN rustup target add x86_64-unknown-linux-musl
COPY --from=planner /app/recipe.json recipe.json
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    cargo chef cook --release --target x86_64-unknown-linux-musl --recipe-path recipe.json
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/app/target,id=target-server \
    cargo build --release --target x86_64-unknown-linux-musl --bin server && \
    cp target/x86_64-unknown-linux-musl/release/server /usr/local/bin/server

FROM alpine:3.20 AS runtime
RUN apk add --no-cache ca-certificates tini
COPY --from=builder /usr/local/bin/server /usr/local/bin/
ENV RUST_LOG=info
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/server", "--health"]
ENTRYPOINT ["tini", "--", "/usr/local/bin/server"]
