FROM alpine:3.20 AS build
WORKDIR /build
COPY . .
RUN make static && strip pinger

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /build/pinger /pinger
LABEL maintainer="ops team" tier=edge
USER 65534:65534
ENTRYPOINT ["/pinger"]
