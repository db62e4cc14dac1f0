#!/usr/bin/env bash
# Takes LiteRT's C API library and its GPU accelerator (Dawn over Vulkan) out of the
# PyPI wheel ai-edge-litert 2.3.0 (Apache-2.0; cp311 manylinux_2_27, x86_64 and
# aarch64) with `pip download` (which runs nothing from the wheel), checks the pinned
# checksums and unpacks into third_party/litert:
#   libLiteRt.so                    model.engine: litert (the LiteRT C API, dlopen'ed)
#   libLiteRtWebGpuAccelerator.so   model.litert.accelerator: gpu (found beside libLiteRt.so)
# The aarch64 libraries need glibc 2.34 (JetPack 6, not 5). Nothing is fetched at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=third_party/litert
ver=2.3.0
py=${PYTHON:-python3}
declare -A plat=([amd64]=manylinux_2_27_x86_64 [arm64]=manylinux_2_27_aarch64)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
for arch in amd64 arm64; do
	"$py" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--python-version 3.11 --platform "${plat[$arch]}" -d "$work/$arch" "ai-edge-litert==$ver"
	whl=$(ls "$work/$arch"/*.whl)
	(cd "$work/$arch" && grep " $(basename "$whl")\$" "$OLDPWD/scripts/litert.sha256" | sha256sum -c --quiet -) ||
		{ echo "fetch-litert: $(basename "$whl") checksum mismatch (or not pinned in scripts/litert.sha256)" >&2; exit 1; }
	mkdir -p "$dest.tmp/linux_$arch"
	(cd "$work/$arch" && "$py" -m zipfile -e "$whl" x >/dev/null)
	cp "$work/$arch"/x/ai_edge_litert/libLiteRt.so "$work/$arch"/x/ai_edge_litert/libLiteRtWebGpuAccelerator.so "$dest.tmp/linux_$arch/"
done
cp "$work/amd64"/x/ai_edge_litert-$ver.dist-info/licenses/LICENSE "$dest.tmp/LICENSE"
(cd "$dest.tmp" && grep '  linux_' ../../scripts/litert.sha256 | sha256sum -c --quiet -) || { echo "fetch-litert: library checksum mismatch" >&2; exit 1; }
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "fetch-litert: ai-edge-litert $ver -> $dest ($(cd $dest && ls -d linux_*))"
