FROM golang:1.22 AS build
WORKDIR /build
COPY . .
RUN make static && strip probe

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /build/probe /probe
LABEL version=1.0.0
USER 65534:65534
ENTRYPOINT ["/probe"]
