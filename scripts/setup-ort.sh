#!/usr/bin/env bash
# Fetch the ONNX Runtime shared library that `blindtuner extract` loads at run time.
#
# Downloads the PyPI wheel onnxruntime==1.31.1 (CPython 3.11, manylinux_2_28 x86_64, no
# dependencies) with `pip download --no-deps` and unpacks only its
# `onnxruntime/capi/libonnxruntime.so.1.31.1` into `.ort/` at the repository root (git-ignored).
# The extractor looks there by default; ORT_DYLIB_PATH or `--ort-lib` override it.
#
# Idempotent: does nothing when the library is already there. Needs python3 with pip
# (pip's `download` works without installing anything) and network access to PyPI.
#
# Usage: scripts/setup-ort.sh            # from anywhere inside the repository
#        ORT_VERSION=1.31.1 scripts/setup-ort.sh
set -euo pipefail

version="${ORT_VERSION:-1.31.1}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/.ort"
lib="libonnxruntime.so.$version"

if [[ -f "$dest/$lib" ]]; then
    echo "ONNX Runtime $version already at $dest/$lib"
    exit 0
fi

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) platform=manylinux_2_28_x86_64 ;;
    Linux-aarch64) platform=manylinux_2_28_aarch64 ;;
    *)
        echo "setup-ort.sh: no onnxruntime wheel is known for $(uname -s)-$(uname -m);" >&2
        echo "install ONNX Runtime $version yourself and set ORT_DYLIB_PATH" >&2
        exit 1
        ;;
esac

python="${PYTHON:-python3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "Downloading onnxruntime==$version ($platform) from PyPI ..."
"$python" -m pip download --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --platform "$platform" \
    --dest "$tmp" "onnxruntime==$version"

wheel="$(ls "$tmp"/onnxruntime-"$version"-*.whl)"
mkdir -p "$dest"
# A wheel is a zip file; python's zipfile needs no `unzip` binary.
"$python" - "$wheel" "$lib" "$dest" <<'PY'
import os, shutil, sys, zipfile
wheel, lib, dest = sys.argv[1:4]
member = "onnxruntime/capi/" + lib
with zipfile.ZipFile(wheel) as z, z.open(member) as src:
    tmp = os.path.join(dest, lib + ".part")
    with open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(tmp, os.path.join(dest, lib))
PY
ln -sf "$lib" "$dest/libonnxruntime.so"
echo "ONNX Runtime $version installed at $dest/$lib"
echo "(the extractor finds it there; or export ORT_DYLIB_PATH=$dest/$lib)"
