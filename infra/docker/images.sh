#!/usr/bin/env bash
# Build every image of the Compose lab, one numbered step at a time: `make images`.
# The Dockerfiles build anywhere on their own; where no image registry answers (as on the
# lab's machines), this script first supplies what they would fetch: a local Debian base
# (mmdebstrap), a wheelhouse filled by the host's pip, the host's MinIO build and the model.
# Images are tagged reviewlab/<name>:dev. A failed build names the image and the step.
set -euo pipefail
cd "$(dirname "$0")/../.."

source infra/steps.sh
VENV=$(setting venv)
CACHE=$(setting cache_dir)
MINIO_VERSION=$(setting minio_version)
CHARTS_VERSION=$(setting charts_version)
ZIPKIN_VERSION=$(setting zipkin_version)
TAG=${REVIEWLAB_IMAGE_TAG:-dev}
REGISTRY_BASE=debian:bookworm-slim
LOCAL_BASE=reviewlab/debian:bookworm
STAGE=build/docker
LOGS=$STAGE/logs
PYPROJECTS=(services/common/pyproject.toml services/web/pyproject.toml
  services/worker/pyproject.toml services/console/pyproject.toml infra/lab/pyproject.toml)
# One Dockerfile, one target per image; the context is the repository root.
DOCKERFILE=infra/docker/Dockerfile
IMAGES=(app postgres nginx dns etcd redis minio metrics tracing)

TOTAL=$((3 + ${#IMAGES[@]}))
BUILD_STARTED=$(date +%s%N)
trap 'echo; echo "make images failed at step $STEP/$TOTAL: $CURRENT"; echo "fix what the lines above say, then run \`make images\` again: finished work is cached."' ERR

if ! docker info >/dev/null 2>&1; then
  echo "no Docker daemon answers: run \`bash infra/docker/install.sh\` as root (installs Docker and starts dockerd), then \`make images\` again"
  exit 1
fi
mkdir -p "$LOGS"

step "base image"
if [ -n "${BASE:-}" ]; then
  echo "      BASE=$BASE (from the environment)"
elif docker image inspect "$REGISTRY_BASE" >/dev/null 2>&1 || docker pull -q "$REGISTRY_BASE" >/dev/null 2>&1; then
  BASE=$REGISTRY_BASE
  echo "      $BASE (a registry answers: the Dockerfiles fetch wheels and MinIO themselves)"
else
  BASE=$LOCAL_BASE
  if docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "      no registry answers; $BASE exists"
  else
    echo "      no registry answers: building $BASE with mmdebstrap from this machine's Debian sources"
    sources=/etc/apt/sources.list.d/debian.sources
    [ -f "$sources" ] || sources=/etc/apt/sources.list
    # Like the registry's slim image: no docs or man pages (the Dockerfiles drop .debs).
    mmdebstrap --quiet --variant=minbase \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      bookworm - "$sources" \
      | docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE-partial" >/dev/null \
      || { docker rmi "$BASE-partial" >/dev/null 2>&1; echo "      mmdebstrap failed: no base image was kept"; false; }
    docker tag "$BASE-partial" "$BASE" && docker rmi "$BASE-partial" >/dev/null
  fi
fi
done_step

step "wheelhouse $STAGE/wheels (the host's pip, the native venv's versions)"
if [ "$BASE" = "$REGISTRY_BASE" ] && [ ! -x "$VENV/bin/pip" ]; then
  echo "      skipped: the image's venv stage installs from the package index"
else
  [ -x "$VENV/bin/pip" ] || { echo "      $VENV/bin/pip is missing: run \`make setup\` first (it makes the native venv whose pip fills the wheelhouse)"; false; }
  requirements=$( /usr/bin/python3 infra/docker/requirements.py "${PYPROJECTS[@]}"; echo wheel )
  # The native venv's exact versions, transitive ones included, constrain the wheelhouse.
  constraints=$("$VENV/bin/pip" freeze --all --exclude-editable --disable-pip-version-check)
  want=$(printf '%s\n%s\n' "$requirements" "$constraints" | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$STAGE/wheels/.filled" 2>/dev/null)" = "$want" ]; then
    echo "      up to date ($(find "$STAGE/wheels" -name '*.whl' | wc -l) wheels)"
  else
    rm -rf "$STAGE/wheels" && mkdir -p "$STAGE/wheels"
    if ! "$VENV/bin/pip" wheel -q --disable-pip-version-check -w "$STAGE/wheels" \
        -c <(echo "$constraints") -r <(echo "$requirements") >"$LOGS/wheelhouse.log" 2>&1; then
      tail -n 5 "$LOGS/wheelhouse.log"
      echo "      pip could not fill the wheelhouse (log: $LOGS/wheelhouse.log); if a pin changed, run \`make setup\` so the native venv has it"
      false
    fi
    echo "$want" > "$STAGE/wheels/.filled"
    echo "      $(find "$STAGE/wheels" -name '*.whl' | wc -l) wheels, $(du -sh "$STAGE/wheels" | cut -f1)"
  fi
fi
done_step

step "MinIO $MINIO_VERSION, the portrait model and the console's charts, staged from $CACHE"
GO_IMAGE=()
minio_built="$CACHE/minio-$MINIO_VERSION/minio"
mkdir -p "$STAGE/minio"
find "$STAGE/minio" -name 'minio-*' ! -name "minio-$MINIO_VERSION" -delete
if [ -x "$minio_built" ]; then
  ln -f "$minio_built" "$STAGE/minio/minio-$MINIO_VERSION" 2>/dev/null \
    || cp "$minio_built" "$STAGE/minio/minio-$MINIO_VERSION"
  GO_IMAGE=(--build-arg "GO_IMAGE=$BASE")
  echo "      MinIO: $minio_built"
elif [ "$BASE" = "$LOCAL_BASE" ]; then
  echo "      $minio_built is missing and no registry answers for the Go image: run \`make setup\` first (it builds MinIO once)"; false
else
  echo "      MinIO: built by the image's Go stage"
fi
model="$CACHE/models/selfie_segmentation.tflite"
mkdir -p "$STAGE/model"
if [ -f "$model" ]; then
  cp "$model" "$STAGE/model/"
  echo "      model: $model (the image checks its sha256)"
elif [ "$BASE" = "$LOCAL_BASE" ]; then
  echo "      $model is missing: run \`make setup\` first (it fetches the model once)"; false
else
  rm -f "$STAGE/model/selfie_segmentation.tflite"
  echo "      model: fetched by the image's model stage"
fi
charts="$CACHE/uplot-$CHARTS_VERSION"
mkdir -p "$STAGE/charts"
if [ -f "$charts/uPlot.iife.min.js" ]; then
  cp "$charts/uPlot.iife.min.js" "$charts/uPlot.min.css" "$charts/LICENSE" "$STAGE/charts/"
  echo "      charts: $charts"
elif [ "$BASE" = "$LOCAL_BASE" ]; then
  echo "      $charts is missing: run \`make setup\` first (it vendors the console's charts once)"; false
else
  rm -f "$STAGE/charts/"*
  echo "      charts: fetched by the image's charts stage"
fi
zipkin="$CACHE/zipkin-$ZIPKIN_VERSION/zipkin-server-exec.jar"
mkdir -p "$STAGE/zipkin"
if [ -s "$zipkin" ]; then
  ln -f "$zipkin" "$STAGE/zipkin/zipkin-server-exec.jar" 2>/dev/null \
    || cp "$zipkin" "$STAGE/zipkin/zipkin-server-exec.jar"
  echo "      Zipkin: $zipkin"
else
  rm -f "$STAGE/zipkin/zipkin-server-exec.jar"
  echo "      Zipkin: fetched by the image's zipkin stage (Maven)"
fi
done_step

for name in "${IMAGES[@]}"; do
  image="reviewlab/$name:$TAG"
  step "image $image (target $name)"
  args=(-f "$DOCKERFILE" --target "$name" -t "$image" --build-arg "BASE=$BASE")
  [ "$name" != minio ] || args+=(--build-arg "MINIO_VERSION=$MINIO_VERSION" "${GO_IMAGE[@]}")
  [ "$name" != app ] || args+=(--build-arg "CHARTS_VERSION=$CHARTS_VERSION")
  [ "$name" != tracing ] || args+=(--build-arg "ZIPKIN_VERSION=$ZIPKIN_VERSION")
  log="$LOGS/$name.log"
  if ! BUILDKIT_PROGRESS=plain docker build "${args[@]}" . >"$log" 2>&1; then
    trap - ERR
    # The classic builder prints "Step N/M : INSTRUCTION"; BuildKit prints "> [stage N/M] ...".
    failed=$(grep -E '^Step [0-9]+/[0-9]+ : |^ > \[' "$log" | tail -n 1 | cut -c1-160)
    tail -n 8 "$log" | sed 's/^/      | /'
    echo "image $image failed at ${failed:-its first step} (full log: $log)"
    exit 1
  fi
  echo "      $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
  done_step
done
echo "all ${#IMAGES[@]} images built in $(seconds "$BUILD_STARTED"): $(printf "reviewlab/%s:$TAG " "${IMAGES[@]}")"
