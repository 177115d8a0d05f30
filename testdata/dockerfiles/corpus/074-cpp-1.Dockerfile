FROM ubuntu:24.04 AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends \
        g++ cmake ninja-build git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM toolchain AS build
WORKDIR /src
COPY CMakeLists.txt ./
COPY src/ src/
COPY include/ include/
RUN cmake -S . -B build -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_STANDARD=20 \
  && cmake --build build --target server -j"$(nproc)"

FROM ubuntu:24.04
COPY --from=build /src/build/server /usr/local/bin/server
ENTRYPOINT ["/usr/local/bin/server"]
