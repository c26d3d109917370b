# pgsidecar container image: a Rust builder stage, then a small non-root runtime.
#
#   docker build -t pgsidecar .
#   docker run --rm -e DATABASE_URL=postgres://app:secret@db:5432/app \
#     -e PGSIDECAR_LISTEN=0.0.0.0:6432 -e PGSIDECAR_ADMIN_LISTEN=0.0.0.0:9930 \
#     -p 6432:6432 -p 9930:9930 pgsidecar
#
# Configuration: /etc/pgsidecar/proxy.toml (the image ships deploy/proxy.toml there;
# mount your own over it), overridden by PGSIDECAR_* environment variables (one per
# command-line flag: PGSIDECAR_LISTEN, PGSIDECAR_ADMIN_LISTEN, PGSIDECAR_UPSTREAM or
# DATABASE_URL, PGSIDECAR_POOL_MODE, PGSIDECAR_POOL_SIZE, PGSIDECAR_LOG_FORMAT,
# PGSIDECAR_ADMIN_USERS). Both listeners stay on 127.0.0.1 unless told otherwise: as a
# sidecar the app reaches it over the pod's loopback; for anything else set the
# addresses to 0.0.0.0 explicitly.
# Checked by tests/it/deploy (paths, user, ports, entrypoint against the binary and
# the shipped configuration); see README "Containers and Kubernetes" for what was run.

FROM rust:1-bookworm AS build
# pg_query builds libpg_query with bindgen, which needs libclang.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context (see .dockerignore): the manifest names the test target, and
# sources may embed files from anywhere in the tree (migrations, assets).
COPY . .
# No debug info in the image: the release profile keeps some for benchmarks.
ENV CARGO_PROFILE_RELEASE_DEBUG=0
RUN cargo build --release --locked --bin pgsidecar \
    && strip target/release/pgsidecar \
    && install -D -m 0755 target/release/pgsidecar /out/pgsidecar

# glibc, libgcc_s and CA certificates, no shell; uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/pgsidecar /usr/local/bin/pgsidecar
COPY deploy/proxy.toml /etc/pgsidecar/proxy.toml
ENV PGSIDECAR_CONFIG=/etc/pgsidecar/proxy.toml
USER 65532:65532
# 6432: PostgreSQL clients (listen); 9930: /metrics, /api, /healthz, /readyz (admin_listen).
EXPOSE 6432 9930
# The binary checks its own admin_listen (no curl or shell in the image).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/pgsidecar", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/pgsidecar"]
