#!/usr/bin/env bash
# Builds a pgsidecar image without pulling anything, for machines with no registry:
# `buildah from scratch` plus a locally built binary, the shared libraries it links
# (ldd) and deploy/proxy.toml, with the Dockerfile's user, environment, entrypoint and
# ports. Then, if DATABASE_URL is set, runs that image's root filesystem with chroot as
# the image's user (where podman cannot run containers, e.g. hybrid cgroups) and checks
# `pgsidecar healthcheck` and /readyz against that database.
#
#   cargo build --release --bin pgsidecar
#   deploy/local-image.sh target/release/pgsidecar
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres deploy/local-image.sh target/release/pgsidecar
#
# Needs root and buildah (Debian package). The runtime differs from the Dockerfile's
# (no distroless base: only the libraries the binary links), so the size printed is a
# lower bound of the real image's.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:?usage: deploy/local-image.sh path/to/pgsidecar}
image=${IMAGE:-localhost/pgsidecar:local}
uid=65532
buildah=(buildah --storage-driver vfs)

stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip -o "$stripped" "$binary"
ctr=$("${buildah[@]}" from scratch)
"${buildah[@]}" copy "$ctr" "$stripped" /usr/local/bin/pgsidecar >/dev/null
for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
  "${buildah[@]}" copy "$ctr" "$(readlink -f "$lib")" "$lib" >/dev/null
done
"${buildah[@]}" copy "$ctr" deploy/proxy.toml /etc/pgsidecar/proxy.toml >/dev/null
"${buildah[@]}" config --user "$uid:$uid" --env PGSIDECAR_CONFIG=/etc/pgsidecar/proxy.toml \
  --entrypoint '["/usr/local/bin/pgsidecar"]' --port 6432 --port 9930 "$ctr"
"${buildah[@]}" commit -q "$ctr" "$image" >/dev/null
"${buildah[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
echo "binary (stripped): $(stat -c %s "$stripped") bytes"

if [ -n "${DATABASE_URL:-}" ]; then
  root=$("${buildah[@]}" mount "$ctr")
  env -i PGSIDECAR_CONFIG=/etc/pgsidecar/proxy.toml DATABASE_URL="$DATABASE_URL" \
    PGSIDECAR_LISTEN=127.0.0.1:16599 PGSIDECAR_ADMIN_LISTEN=127.0.0.1:19999 \
    "$(command -v chroot)" --userspec="$uid:$uid" "$root" /usr/local/bin/pgsidecar &
  pid=$!
  sleep 2
  env -i PGSIDECAR_CONFIG=/etc/pgsidecar/proxy.toml PGSIDECAR_ADMIN_LISTEN=127.0.0.1:19999 \
    "$(command -v chroot)" --userspec="$uid:$uid" "$root" /usr/local/bin/pgsidecar healthcheck
  echo "healthcheck: ok"
  curl -fsS http://127.0.0.1:19999/readyz && echo
  echo "listening on 127.0.0.1:16599 as uid $uid; stopping"
  kill -TERM "$pid"
  wait "$pid"
fi
"${buildah[@]}" rm "$ctr" >/dev/null
