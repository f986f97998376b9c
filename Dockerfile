# SPDX-License-Identifier: MIT
# corio: build the examples on Debian 12, ship them in a slim runtime image.  Tag it
# with the version in include/corio/corio.h (deploy/kubernetes/deployment.yaml runs it):
#   docker build -t corio:0.2.0 .
#   docker run --rm -p 8080:8080 corio:0.2.0                       # hello, on all interfaces
#   docker run --rm -p 9000:9000 -e CORIO_PORT=9000 corio:0.2.0    # on another port
#   docker run --rm -p 7000:7000 -e CORIO_PORT=7000 corio:0.2.0 echo
#       # any other example in /usr/local/bin: it too listens on CORIO_PORT (8080 unless set)
#   docker run --rm -e CORIO_ADMIN=0.0.0.0:9180 -p 8080:8080 -p 127.0.0.1:9180:9180 corio:0.2.0
#       # with the admin listener: /healthz /readyz /metrics on a port of its own
#       # (include/corio/app.h), published on the host's loopback only
# The server's settings are environment variables (CORIO_HOST, CORIO_PORT ... below),
# not flags in the CMD: a flag wins over its variable, so docker run -e would be ignored.
# docker stop waits 10 s by default; the image's drain (CORIO_DRAIN_TIMEOUT below)
# fits in it.  With a longer drain give docker more: docker run --stop-timeout 30 ...
# (deploy/README.md).  tests/test_dockerfile.py checks this file's rules, and configures
# and builds the builder stage's COPY of the source tree (so a file the build reads but
# the COPY lines leave out fails it).

# ---- builder -------------------------------------------------------------------
# Both stages on the same Debian release, so that the sonames the builder links
# (libssl3, libpq5, libhiredis0.14 ...) are the ones the runtime installs.  Tags,
# not digests: pin a digest (debian:12@sha256:...) for byte-for-byte rebuilds.
FROM debian:12 AS builder
# libpq-dev and libhiredis-dev: the PostgreSQL and Redis clients, for
# examples/techempower and examples/todo (libpq5 and libhiredis0.14 below);
# zlib1g-dev: WebSocket with permessage-deflate, for examples/chat-ws (zlib1g).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libssl-dev node-llhttp libjansson-dev \
      libpq-dev libhiredis-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build needs (tests and benchmarks are off), so a local build/ never gets in:
# CMakeLists.txt reads include/corio/corio.h (the version), and with CORIO_INSTALL (on
# at top level) includes cmake/install.cmake, which configures cmake/*.in, and links
# libcorio.so with cmake/corio.map.
COPY CMakeLists.txt ./
COPY cmake/ cmake/
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
      libuv1 libssl3 libjansson4 libpq5 libhiredis0.14 zlib1g ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin corio
COPY --from=builder /out/bin/ /usr/local/bin/
# Numeric, so that Kubernetes' runAsNonRoot can tell it is not root.
USER 10001:10001
# Every example the image runs listens on all interfaces at port 8080 and drains
# for at most 8 s on SIGTERM (the runner's default is 25 s), inside docker stop's
# default 10 s.  Variables, so that docker run -e CORIO_PORT=... changes them: the
# CMD passes no flags, which would win over them.
ENV CORIO_HOST=0.0.0.0 \
    CORIO_PORT=8080 \
    CORIO_DRAIN_TIMEOUT=8s
STOPSIGNAL SIGTERM
EXPOSE 8080
# hello's /healthz (answered by its event loop, so a stuck loop fails it),
# asked with bash's /dev/tcp (the slim image has no curl) on the port the server
# has: CORIO_PORT, as docker run -e may have changed it.  For an example that
# does not mount it: docker run --health-cmd ... or --no-healthcheck.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CORIO_PORT:-8080} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -c 12 <&3 | grep -qx 'HTTP/1.1 200'"]
CMD ["/usr/local/bin/hello"]
