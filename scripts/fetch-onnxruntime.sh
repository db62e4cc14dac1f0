#!/usr/bin/env bash
# Takes ONNX Runtime's CPU library (1.24.1, linux amd64 + arm64, MIT) out of the npm
# package onnxruntime-node@1.24.1 with `npm pack` (which runs no install script), checks
# the pinned checksums and unpacks into third_party/onnxruntime. It is the library of
# model.engine: onnxruntime on a PC; a Jetson uses JetPack's GPU build instead
# (model.onnxruntime.library). Nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=third_party/onnxruntime
pkg=onnxruntime-node@1.24.1
tgz_sha=57181cf6e6e711b155c5b942d591fd63ded0b5de5c4922d51fd994e7f6ac2772

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$pkg" >/dev/null)
tgz=$(ls "$work"/*.tgz)
echo "$tgz_sha  $tgz" | sha256sum -c --quiet - || { echo "fetch-onnxruntime: $pkg checksum mismatch" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 package/bin/napi-v6/linux/arm64/libonnxruntime.so.1 package/package.json
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp/linux_amd64" "$dest.tmp/linux_arm64"
cp "$work"/package/bin/napi-v6/linux/x64/libonnxruntime.so.1 "$dest.tmp/linux_amd64/"
cp "$work"/package/bin/napi-v6/linux/arm64/libonnxruntime.so.1 "$dest.tmp/linux_arm64/"
cp "$work/package/package.json" "$dest.tmp/package.json"  # names the MIT licence and version
(cd "$dest.tmp" && sha256sum -c --quiet ../../scripts/onnxruntime.sha256) || { echo "fetch-onnxruntime: library checksum mismatch" >&2; exit 1; }
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "fetch-onnxruntime: $pkg -> $dest ($(cd $dest && ls -d linux_*))"
