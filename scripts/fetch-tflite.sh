#!/usr/bin/env bash
# Takes the TFLite 2.9 C library (linux amd64 + arm64) and its headers out of the npm
# package tfjs-tflite-node@0.0.2 with `npm pack` (which runs no install script), checks
# the pinned checksums and unpacks into third_party/tflite. Nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=third_party/tflite
pkg=tfjs-tflite-node@0.0.2
tgz_sha=3be1632328a76a2475e5b6833253763c802c859433becb4d879ee1860e3b5284

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$pkg" >/dev/null)
tgz=$(ls "$work"/*.tgz)
echo "$tgz_sha  $tgz" | sha256sum -c --quiet - || { echo "fetch-tflite: $pkg checksum mismatch" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/cc_deps/linux_amd64 package/cc_deps/linux_arm64 package/cc_deps/include package/package.json
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
cp -r "$work"/package/cc_deps/linux_amd64 "$work"/package/cc_deps/linux_arm64 "$work"/package/cc_deps/include "$dest.tmp"/
cp "$work/package/package.json" "$dest.tmp/package.json"  # names the Apache-2.0 licence and version
(cd "$dest.tmp" && sha256sum -c --quiet ../../scripts/tflite.sha256) || { echo "fetch-tflite: library checksum mismatch" >&2; exit 1; }
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "fetch-tflite: $pkg -> $dest ($(cd $dest && ls -d linux_*))"
