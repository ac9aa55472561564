# Shared by scripts/run and scripts/test: a project virtualenv with the pinned dependencies.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ensure_venv() {
  local extras="${1:-}"
  local target="."
  [ -n "$extras" ] && target=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  # Reinstall only when pyproject.toml changed since the last install. One stamp per set of
  # extras: scripts/run installs the base dependencies, and scripts/test later adds dev's to
  # the same venv.
  local stamp=".venv/.installed-${extras:-base}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing dependencies${extras:+ (with $extras)} (first run takes a minute or two)…"
    # Errors only (no progress bars, no index warnings). Python 3.11's own pip installs an
    # editable project, so it isn't upgraded first (a download and a page of output).
    .venv/bin/python -m pip install --quiet --quiet --disable-pip-version-check --no-input \
      -e "$target"
    touch "$stamp"
  fi
  export PATH="$PWD/.venv/bin:$PATH"
}

# Debian packages, installed with apt-get when missing (as root, or through sudo).
ensure_debian_packages() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
