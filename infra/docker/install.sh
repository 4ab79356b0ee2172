#!/usr/bin/env bash
# Install and start what the Compose lab needs, idempotently, one numbered step at a time:
# Docker Engine, Debian's docker-compose (v1), mmdebstrap (the local base image) and
# Compose v2 (`docker compose`), built once from its Go module and cached.
# Run as root: `make images` runs it first. Finished steps are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/../.."

TOTAL=4
source infra/steps.sh
CACHE=$(setting cache_dir)
DEBIAN_PACKAGES=(docker.io docker-compose mmdebstrap)
COMPOSE_VERSION=v2.40.3
COMPOSE_CACHED="$CACHE/compose-$COMPOSE_VERSION/docker-compose"
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
DOCKERD_LOG=/var/log/dockerd.log
DAEMON_DEADLINE=${REVIEWLAB_DOCKERD_DEADLINE:-60}

trap 'echo; echo "docker install failed at step $STEP/$TOTAL: $CURRENT"; echo "fix what the lines above say, then run \`bash infra/docker/install.sh\` again: finished steps are skipped quickly."' ERR

if [ "$(id -u)" -ne 0 ]; then echo "infra/docker/install.sh installs system packages and starts dockerd: run it as root"; exit 1; fi

step "Debian packages: ${DEBIAN_PACKAGES[*]}"
install_missing -- "${DEBIAN_PACKAGES[@]}"
done_step

step "Docker daemon (no systemd here: dockerd runs in the background, log $DOCKERD_LOG)"
if docker info >/dev/null 2>&1; then
  echo "      already answering"
else
  if pgrep -x dockerd >/dev/null; then
    echo "      dockerd is running but does not answer yet"
  else
    echo "      starting dockerd"
    setsid dockerd >"$DOCKERD_LOG" 2>&1 < /dev/null &
  fi
  deadline=$(( $(date +%s) + DAEMON_DEADLINE ))
  until docker info >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      trap - ERR
      echo "no Docker daemon answered within ${DAEMON_DEADLINE} s: read $DOCKERD_LOG, then start it as root with \`dockerd >$DOCKERD_LOG 2>&1 &\` and run this again"
      exit 1
    fi
    sleep 0.5
  done
fi
echo "      $(docker info --format 'Engine {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}')"
done_step

step "Compose $COMPOSE_VERSION (\`docker compose\`), built from its Go module (cached in $CACHE)"
if [ ! -x "$COMPOSE_CACHED" ]; then
  GO=$(command -v go || echo /usr/local/go/bin/go)
  [ -x "$GO" ] || { echo "      the Go toolchain is needed to build Compose v2: install Go 1.24 or newer"; false; }
  # `go install …/cmd@version` is refused (Compose's go.mod has exclude directives); building
  # it as its own main module from the module cache works.
  echo "      building with $GO (about 5 min on 2 cores; once per machine)"
  mkdir -p "$(dirname "$COMPOSE_CACHED")"
  SRC=$("$GO" mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
    | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['Dir'])")
  BUILD_LOG="$(dirname "$COMPOSE_CACHED")/build.log"
  (cd "$SRC" && "$GO" build -trimpath -o "$COMPOSE_CACHED.tmp" \
    -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" ./cmd) \
    >"$BUILD_LOG" 2>&1 || { tail -n 20 "$BUILD_LOG"; echo "      the build failed: full log in $BUILD_LOG"; false; }
  mv "$COMPOSE_CACHED.tmp" "$COMPOSE_CACHED"
else
  echo "      cached: $COMPOSE_CACHED"
fi
if ! cmp -s "$COMPOSE_CACHED" "$PLUGIN_DIR/docker-compose"; then
  install -D -m 755 "$COMPOSE_CACHED" "$PLUGIN_DIR/docker-compose"
  echo "      installed as $PLUGIN_DIR/docker-compose"
fi
done_step

step "checks"
echo "      $(docker compose version)"
echo "      $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose (v1) /')"
echo "      $(mmdebstrap --version)"
done_step
echo "docker ready. Next: \`make images\`."
