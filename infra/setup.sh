#!/usr/bin/env bash
# Install everything the native lab needs, idempotently, one numbered step at a time.
# Run as root: `make setup`. A step that fails says so and how to retry; the rest is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

TOTAL=9
source infra/steps.sh
VENV=$(setting venv)
CACHE=$(setting cache_dir)
RUN_USER=$(setting run_user)
MINIO_VERSION=$(setting minio_version)
CHARTS_VERSION=$(setting charts_version)
ZIPKIN_VERSION=$(setting zipkin_version)
# The portrait model ships inside this exact wheel; its sha256 is checked after extraction.
MEDIAPIPE_WHEEL_VERSION=0.10.14
MODEL_MEMBER=mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite
MODEL_SHA256=9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c
DEBIAN_PACKAGES=(postgresql-15 nginx libnginx-mod-stream libnginx-mod-http-cache-purge
  redis-server bind9 bind9-utils etcd-server wrk python3-venv dnsutils procps acl iptables
  chromium  # headless Chromium: the tests check that /docs renders in a real browser
  openjdk-17-jre-headless maven  # the trace store (Zipkin's jar) and what fetches it
  libnginx-mod-http-js  # the vIP mints a W3C traceparent for a request that has none
  keepalived  # VRRP: the floating vIP of a load-balancer pair (docs/loadbalancer.md)
  prometheus prometheus-nginx-exporter prometheus-redis-exporter prometheus-bind-exporter)  # the console's metrics

trap 'echo; echo "setup failed at step $STEP/$TOTAL: $CURRENT"; echo "fix what the lines above say, then run \`make setup\` again: finished steps are skipped quickly."' ERR

if [ "$(id -u)" -ne 0 ]; then echo "make setup installs system packages: run it as root"; exit 1; fi

step "Debian packages: ${DEBIAN_PACKAGES[*]}"
install_missing --no-install-recommends -- "${DEBIAN_PACKAGES[@]}"
# Debian's own service instances are left alone: they listen on 127.0.0.1 or default ports,
# the lab's nodes on their own 127.0.0.x addresses. (Their init scripts match processes by
# executable, so stopping them here would also kill a running lab's bind9 and etcd.)
done_step

step "lab user '$RUN_USER' (runs every node; Postgres refuses root)"
id "$RUN_USER" >/dev/null 2>&1 || useradd --system --create-home --home-dir "/var/lib/$RUN_USER-home" --shell /usr/sbin/nologin "$RUN_USER"
if ! runuser -u "$RUN_USER" -- test -r "$REPO/infra/topology.toml"; then
  # The nodes run the checkout's code as $RUN_USER: grant that user (only) traverse and read.
  echo "      granting $RUN_USER read access to $REPO (ACLs on the checkout and its parents)"
  dir="$REPO"
  while [ "$dir" != "/" ]; do dir=$(dirname "$dir"); setfacl -m "u:$RUN_USER:x" "$dir"; done
  setfacl -R -m "u:$RUN_USER:rX" "$REPO"
  setfacl -R -d -m "u:$RUN_USER:rX" "$REPO"
fi
runuser -u "$RUN_USER" -- test -r "$REPO/infra/topology.toml" || {
  echo "      $RUN_USER still cannot read $REPO: move the checkout somewhere world-readable"; false; }
done_step

step "Python environment $VENV (from /usr/bin/python3, readable by $RUN_USER)"
[ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
# Reinstall only when a dependency list or the checkout's location changed.
STAMP="$VENV/.reviewlab-installed"
WANT=$( (echo "$REPO"; cat pyproject.toml services/*/pyproject.toml infra/lab/pyproject.toml) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ]; then
  echo "      up to date ($STAMP)"
else
  "$VENV/bin/pip" install -q --disable-pip-version-check wheel
  "$VENV/bin/pip" install -q --disable-pip-version-check \
    -e services/common -e services/web -e services/worker -e services/console -e infra/lab \
    -e ".[dev]"
  echo "$WANT" > "$STAMP"
fi
done_step

step "MinIO $MINIO_VERSION built from source (cached in $CACHE)"
MINIO_DIR="$CACHE/minio-$MINIO_VERSION"
if [ -x "$MINIO_DIR/minio" ]; then
  echo "      cached: $MINIO_DIR/minio"
else
  GO=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$GO" ] || { echo "      the Go toolchain is needed to build MinIO from source: install Go 1.24 or newer"; false; }
  echo "      $GO install github.com/minio/minio@$MINIO_VERSION (several minutes on a cold machine)"
  mkdir -p "$MINIO_DIR.tmp"
  GOBIN="$MINIO_DIR.tmp" GOFLAGS=-trimpath "$GO" install "github.com/minio/minio@$MINIO_VERSION"
  mv "$MINIO_DIR.tmp" "$MINIO_DIR"
fi
chmod 755 "$CACHE" "$MINIO_DIR"
done_step

step "Zipkin server $ZIPKIN_VERSION, the trace store (exec jar, cached in $CACHE)"
ZIPKIN_DIR="$CACHE/zipkin-$ZIPKIN_VERSION"
if [ -s "$ZIPKIN_DIR/zipkin-server-exec.jar" ]; then
  echo "      cached: $ZIPKIN_DIR/zipkin-server-exec.jar"
else
  # Maven's own client fetches the artifact (about 135 MB); the jar carries Zipkin's UI.
  # With the version stripped the file is zipkin-server-exec.jar.
  rm -rf "$ZIPKIN_DIR.tmp" && mkdir -p "$ZIPKIN_DIR.tmp"
  mvn -q -B dependency:copy -Dartifact="io.zipkin:zipkin-server:$ZIPKIN_VERSION:jar:exec" \
    -DoutputDirectory="$ZIPKIN_DIR.tmp" -Dmdep.stripVersion=true
  rm -rf "$ZIPKIN_DIR" && mv "$ZIPKIN_DIR.tmp" "$ZIPKIN_DIR"
fi
chmod 755 "$ZIPKIN_DIR" && chmod 644 "$ZIPKIN_DIR/zipkin-server-exec.jar"
done_step

step "portrait segmentation model (mediapipe==$MEDIAPIPE_WHEEL_VERSION wheel, sha256 checked)"
MODEL="$CACHE/models/selfie_segmentation.tflite"
if [ -f "$MODEL" ] && echo "$MODEL_SHA256  $MODEL" | sha256sum --check --status; then
  echo "      cached: $MODEL"
else
  mkdir -p "$CACHE/models/wheel"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_17_x86_64 \
    "mediapipe==$MEDIAPIPE_WHEEL_VERSION" -d "$CACHE/models/wheel"
  "$VENV/bin/python" - "$CACHE/models/wheel" "$MODEL_MEMBER" "$MODEL" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("mediapipe-*.whl"))
pathlib.Path(sys.argv[3]).write_bytes(zipfile.ZipFile(wheel).read(sys.argv[2]))
PY
  if ! echo "$MODEL_SHA256  $MODEL" | sha256sum --check --status; then
    echo "      $MODEL does not have sha256 $MODEL_SHA256"; rm -f "$MODEL"; false
  fi
fi
chmod -R a+rX "$CACHE/models"
done_step

step "the console's charts: uPlot $CHARTS_VERSION from the npm registry (cached in $CACHE)"
CHARTS_DIR="$CACHE/uplot-$CHARTS_VERSION"
if [ -f "$CHARTS_DIR/uPlot.iife.min.js" ] && [ -f "$CHARTS_DIR/uPlot.min.css" ]; then
  echo "      cached: $CHARTS_DIR"
else
  command -v npm >/dev/null || install_missing --no-install-recommends -- npm
  packed=$(mktemp -d)
  (cd "$packed" && npm pack --silent "uplot@$CHARTS_VERSION" >/dev/null)
  tar -xzf "$packed"/uplot-*.tgz -C "$packed"
  mkdir -p "$CHARTS_DIR.tmp"
  cp "$packed/package/dist/uPlot.iife.min.js" "$packed/package/dist/uPlot.min.css" \
    "$packed/package/LICENSE" "$CHARTS_DIR.tmp/"
  rm -rf "$packed" "$CHARTS_DIR" && mv "$CHARTS_DIR.tmp" "$CHARTS_DIR"
fi
chmod -R a+rX "$CHARTS_DIR"
done_step

step "lab secrets (generated once, never committed)"
"$VENV/bin/reviewlab" init
done_step

step "checks"
"$VENV/bin/python" -c "import ai_edge_litert.interpreter, fastapi, patroni, psycopg" && echo "      Python packages import"
runuser -u "$RUN_USER" -- "$VENV/bin/python" -c "import reviewlab_web, reviewlab_worker, reviewlab_console" && echo "      $RUN_USER can import the lab's packages"
done_step
echo "setup complete. Next: \`make up\` (or \`make demo\`)."
