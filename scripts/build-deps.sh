#!/usr/bin/env bash
# What building Sluice needs beyond Rust: libclang, for the bindings of PostgreSQL's own parser
# (the pg_query crate runs bindgen on libpg_query). Installs it with apt-get when it is missing.
set -euo pipefail
if [ -n "${LIBCLANG_PATH:-}" ]; then
    exit 0
elif command -v dpkg >/dev/null 2>&1; then
    dpkg -s libclang-dev >/dev/null 2>&1 && exit 0
elif ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; then
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "installing libclang-dev (needed to build PostgreSQL's parser)" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
else
    echo "error: libclang is needed to build PostgreSQL's parser (pg_query); install clang/libclang" \
        "(macOS: xcode-select --install; Fedora: dnf install clang-devel) or set LIBCLANG_PATH" >&2
    exit 1
fi
