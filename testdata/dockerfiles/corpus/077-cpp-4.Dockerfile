FROM ubuntu:24.04 AS toolchain
RUN apt-get update && apt-get install -y --no-install-recommends \
        clang-18 cmake ninja-build git ca-certificates \
    && rm -rf /var/lib/apt/lists/*

FROM toolchain AS build
WORKDIR /src
COPY CMakeLists.txt ./
COPY src/ src/
COPY include/ include/
RUN cmake -S . -B build -G Ninja \
      -DCMAKE_BUILD_TYPE=MinSizeRel \
      -DCMAKE_CXX_STANDARD=20 \
  && cmake --build build --target agent -j"$(nproc)"

FROM ubuntu:24.04
COPY --from=build /src/build/agent /usr/local/bin/agent
ENTRYPOINT ["/usr/local/bin/agent"]
