# Shared by the lab's install scripts (infra/setup.sh, infra/docker/install.sh, images.sh):
# numbered steps with timings, settings from infra/install.toml, missing Debian packages.
# Source it from the repository root after setting TOTAL (the number of steps).

# A value of infra/install.toml, e.g. `setting venv`.
setting() { /usr/bin/python3 -c "import tomllib,sys; print(tomllib.load(open('infra/install.toml','rb'))[sys.argv[1]])" "$1"; }

STEP=0
step() { STEP=$((STEP + 1)); CURRENT="$1"; STARTED=$(date +%s%N); printf '[%d/%d] %s ...\n' "$STEP" "$TOTAL" "$1"; }
seconds() { local ms=$(( ($(date +%s%N) - $1) / 1000000 )); printf '%d.%03d s' $((ms / 1000)) $((ms % 1000)); }
done_step() { printf '      done in %s\n' "$(seconds "$STARTED")"; }

# install_missing [apt-get options...] -- PACKAGE...: install those not installed yet.
install_missing() {
  local options=() missing=() pkg
  while [ "$1" != "--" ]; do options+=("$1"); shift; done
  shift
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "      installing: ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${options[@]}" "${missing[@]}" >/dev/null
  else
    echo "      all present"
  fi
}
