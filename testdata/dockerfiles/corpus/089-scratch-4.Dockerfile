FROM rust:1.80-alpine AS build
WORKDIR /build
COPY . .
RUN make static && strip relay

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /build/relay /relay
LABEL com.example.component="relay service"
USER 65534:65534
ENTRYPOINT ["/relay"]
