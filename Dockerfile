# SPDX-License-Identifier: MIT
# corio: build the examples on Debian 12, ship them in a slim runtime image.
#   docker build -t corio .
#   docker run --rm -p 8080:8080 corio              # the hello server, on all interfaces
#   docker run --rm -p 7000:7000 corio echo         # any other example in /usr/local/bin
# docker stop waits 10 s by default; the image's drain (CORIO_DRAIN_TIMEOUT below)
# fits in it.  With a longer drain give docker more: docker run --stop-timeout 30 ...
# (deploy/README.md).  tests/test_dockerfile.py checks this file's rules.

# ---- builder -------------------------------------------------------------------
# Both stages on the same Debian release, so that the sonames the builder links
# (libssl3, libpq5, libhiredis0.14 ...) are the ones the runtime installs.  Tags,
# not digests: pin a digest (debian:12@sha256:...) for byte-for-byte rebuilds.
FROM debian:12 AS builder
# libpq-dev and libhiredis-dev: the PostgreSQL and Redis clients, for
# examples/techempower and examples/todo (libpq5 and libhiredis0.14 below).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libssl-dev node-llhttp libjansson-dev \
      libpq-dev libhiredis-dev \
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
 && strip --strip-unneeded /out/bin/* \
 && test -x /out/bin/hello

# ---- runtime -------------------------------------------------------------------
FROM debian:12-slim AS runtime
# The libraries the examples link (libc6 is in the base image); ca-certificates
# for https:// upstreams (examples/proxy, the HTTP client).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libssl3 libjansson4 libpq5 libhiredis0.14 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin corio
COPY --from=builder /out/bin/ /usr/local/bin/
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
# Every example the image runs listens on all interfaces (a flag still wins), and
# drains for at most 8 s on SIGTERM (the runner's default is 25 s), inside
# docker stop's default 10 s.
ENV CORIO_HOST=0.0.0.0 \
    CORIO_DRAIN_TIMEOUT=8s
STOPSIGNAL SIGTERM
EXPOSE 8080
# hello's /healthz (answered by its event loop, so a stuck loop fails it),
# asked with bash's /dev/tcp (the slim image has no curl).  For an example
# that does not mount it: docker run --health-cmd ... or --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -qx 'HTTP/1.1 200'"]
CMD ["/usr/local/bin/hello", "--host", "0.0.0.0", "--port", "8080"]
