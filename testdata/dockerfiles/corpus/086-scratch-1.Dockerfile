FROM gcc:14 AS build
WORKDIR /build
COPY . .
RUN make static && strip hello

FROM scratch
# no certificates needed
COPY --from=build /build/hello /hello
LABEL org.opencontainers.image.title=hello
USER 65534:65534
ENTRYPOINT ["/hello"]
