# corio: build the examples on Debian 12, ship them in a slim runtime image.
#   docker build -t corio .
#   docker run --rm -p 8080:8080 corio    # the hello server
#   docker run --rm corio <example> ...   # any other example in /usr/local/bin

# ---- builder -------------------------------------------------------------------
FROM debian:12 AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libssl-dev node-llhttp libjansson-dev valgrind \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build needs (tests and benchmarks are off), so a local build/ never gets in.
COPY CMakeLists.txt ./
COPY include/ include/
COPY framework/ framework/
COPY examples/ examples/
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release \
      -DCORIO_BUILD_TESTS=OFF -DCORIO_BUILD_BENCH=OFF -DCORIO_BUILD_EXAMPLES=ON \
 && cmake --build /build -j"$(nproc)" \
 && mkdir -p /out/bin \
 && find /build/examples -path '*/CMakeFiles' -prune -o -type f -perm -u+x -print \
      | xargs -r cp -t /out/bin \
 && test -x /out/bin/hello

# ---- runtime -------------------------------------------------------------------
FROM debian:12-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libssl3 libjansson4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin corio
COPY --from=builder /out/bin/ /usr/local/bin/
USER corio
EXPOSE 8080
CMD ["/usr/local/bin/hello", "--host", "0.0.0.0", "--port", "8080"]
