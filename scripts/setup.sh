#!/usr/bin/env bash
# One-time, idempotent set-up: Debian libraries, .venv, torch (CPU) first, then
# the project in editable mode with its [dev] and [all] extras.  A second run only checks
# (dpkg + a stamp of pyproject.toml) and spends well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.setup-stamp
TORCH_VERSION=2.13.0

# Dr.Jit (Sionna RT on CPU) needs LLVM >= 16; Open3D's offscreen renderer needs
# the GL/Vulkan (lavapipe) stack; Chromium drives the browser test of the HTML maps.
DEBIAN_PACKAGES=(libllvm19 libusb-1.0-0 libgl1 libegl1 libgomp1 libvulkan1 mesa-vulkan-drivers
                 chromium)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# deepmimo (the package `twin export deepmimo`'s test loads the export with) pins
# numpy<2.3, the project a newer numpy: it gets its own environment, made once.
DEEPMIMO_VERSION=4.0.5
DEEPMIMO_VENV=.venv-deepmimo
if [ "$(cat "$DEEPMIMO_VENV/.setup-stamp" 2>/dev/null)" != "deepmimo==$DEEPMIMO_VERSION" ]; then
  echo "setup: creating $DEEPMIMO_VENV (deepmimo==$DEEPMIMO_VERSION, for the DeepMIMO export test)"
  [ -x "$DEEPMIMO_VENV/bin/python" ] || "$PYTHON" -m venv "$DEEPMIMO_VENV"
  "$DEEPMIMO_VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "deepmimo==$DEEPMIMO_VERSION" 2> >(grep -v "^WARNING: Location .* is ignored" >&2)
  echo "deepmimo==$DEEPMIMO_VERSION" > "$DEEPMIMO_VENV/.setup-stamp"
fi

want="$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/twin" ]; then
  exit 0
fi

echo "setup: creating $VENV and installing the project (first run takes a few minutes)"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# pip's exit status is kept; only its noise about absent local index folders is dropped.
pip_install() {
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" \
    2> >(grep -v "^WARNING: Location .* is ignored" >&2)
}
pip_install --upgrade pip
# torch first, pinned: the CPU wheel on disk; an unpinned torch pulls GBs of CUDA.
pip_install "torch==$TORCH_VERSION"
# Every optional extra too ([all]: ray, osm): the README's commands install everything.
pip_install -e ".[dev,all]"
echo "$want" > "$STAMP"
echo "setup: done"
