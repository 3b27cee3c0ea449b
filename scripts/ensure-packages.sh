#!/usr/bin/env bash
# Install Icarus Verilog from Debian's packages when it is missing.
set -euo pipefail
if command -v iverilog >/dev/null 2>&1 && command -v vvp >/dev/null 2>&1; then
  exit 0
fi
echo "Icarus Verilog is missing: installing Debian's iverilog package" >&2
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "error: Icarus Verilog is not installed and this user cannot install packages;" >&2
  echo "       ask an administrator for 'apt-get install iverilog'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here; install Icarus Verilog 11 (iverilog, vvp) by other means" >&2
  exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq iverilog >/dev/null
command -v iverilog >/dev/null
