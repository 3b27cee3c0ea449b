#!/usr/bin/env bash
# Install Debian's packages the simulations use when they are missing: Icarus Verilog
# (iverilog, vvp: required) and ccache (optional: Verilator's C++ compiles go through it, so
# that Verilator's runtime is compiled once, not in every build).
set -euo pipefail
need=()
if ! { command -v iverilog && command -v vvp; } >/dev/null 2>&1; then
  need+=(iverilog)
fi
command -v ccache >/dev/null 2>&1 || need+=(ccache)
[ ${#need[@]} -eq 0 ] && exit 0
required() { [[ " ${need[*]} " == *" iverilog "* ]]; }
cannot() {
  if required; then
    echo "error: Icarus Verilog is not installed and $1;" >&2
    echo "       install Icarus Verilog 11 (Debian: apt-get install iverilog)" >&2
    exit 1
  fi
  echo "note: ccache is not installed and $1; Verilator builds compile its runtime each time" >&2
  exit 0
}
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  cannot "this user cannot install packages"
fi
command -v apt-get >/dev/null 2>&1 || cannot "there is no apt-get here"
echo "installing Debian's ${need[*]}" >&2
$SUDO apt-get update -qq || true      # install says what failed
# one package at a time: an optional ccache that apt-get cannot find does not stop iverilog
for pkg in "${need[@]}"; do
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null; then
    [ "$pkg" = iverilog ] || need=(ccache)
    cannot "apt-get could not install $pkg"
  fi
done
command -v iverilog >/dev/null
