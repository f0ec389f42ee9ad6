#!/usr/bin/env bash
# Sets up a fresh machine for mbmssec: system packages (as root), a virtual
# environment in .venv, and the project installed editable with its extras.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
have_lib libsrtp2.so.1 || need_pkgs+=(libsrtp2-1)
have_cmd tshark || need_pkgs+=(tshark)
have_cmd chromium || need_pkgs+=(chromium)
have_cmd curl || need_pkgs+=(curl)
# PostgreSQL server binaries (initdb, postgres) for the fleet tests and benchmarks: on
# PATH, or where the Debian package puts them (not on PATH).
have_pg() {
  if have_cmd initdb && have_cmd postgres; then return 0; fi
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}
have_pg || need_pkgs+=(postgresql)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: need root to install: ${need_pkgs[*]}" >&2
    exit 2
  fi
  echo "bootstrap: installing system packages: ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.mbmssec-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi
