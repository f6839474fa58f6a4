#!/usr/bin/env bash
# Debian packages the test suite and the viewers need. Idempotent: installs only what is missing.
#   xvfb + xcb libs : napari/vispy need a real GL context (Mesa llvmpipe on a virtual X screen);
#                     Qt's offscreen platform has no OpenGL.
#   chromium        : the browser tests drive Debian's Chromium through Playwright
#                     (never `playwright install`, which downloads a browser of its own).
set -euo pipefail
PKGS=(xvfb xauth libgl1 libegl1 libgl1-mesa-dri libxkbcommon0 libxkbcommon-x11-0 libdbus-1-3
      libfontconfig1 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-randr0
      libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 chromium)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "Need root (or sudo) to install: ${missing[*]}" >&2; exit 1; fi
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
