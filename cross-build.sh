#!/usr/bin/env bash
# Builds adtrd for linux/amd64 and linux/arm64 (cgo; arm64 with Debian's
# gcc-aarch64-linux-gnu) and a .deb for each, into dist/:
#   dist/<arch>/adtrd, dist/<arch>/lib*.so        the binary, its TFLite runtime and LiteRT
#                                                 (libLiteRt.so + its GPU accelerator; engine: litert)
#   dist/adtrd_<version>_<arch>.deb               binary, unit, /etc/adtrd config,
#                                                 /usr/lib/adtrd runtime, demo model
# The version comes from git (scripts/version.sh): <last tag or 0.1.0>+git<commits>.<hash>[.dirty].
# Needs `make deps` (the TFLite libraries) and `scripts/install-debs.sh` (the cross
# compiler, dpkg-deb); `make dist` runs all three.
set -euo pipefail
cd "$(dirname "$0")"

GO=${GO:-go}
ARCHES=${ARCHES:-"amd64 arm64"}
VERSION=$(scripts/version.sh)
echo "adtrd $VERSION"

rm -rf dist
for arch in $ARCHES; do
	case $arch in
	amd64) cc=gcc; deb_arch=amd64 ;;
	arm64) cc=aarch64-linux-gnu-gcc; deb_arch=arm64 ;;
	*) echo "cross-build.sh: unknown arch $arch" >&2; exit 2 ;;
	esac
	command -v "$cc" >/dev/null || { echo "cross-build.sh: $cc not found (scripts/install-debs.sh installs it)" >&2; exit 2; }
	out=dist/$arch
	mkdir -p "$out"
	CGO_ENABLED=1 GOOS=linux GOARCH=$arch CC=$cc "$GO" build -trimpath \
		-ldflags "-s -w -X main.version=$VERSION" -o "$out/adtrd" ./cmd/adtrd
	cp third_party/tflite/linux_$arch/libtensorflowlite_c.so third_party/tflite/linux_$arch/libexternal_delegate_obj.so "$out/"
	cp third_party/litert/linux_$arch/libLiteRt.so third_party/litert/linux_$arch/libLiteRtWebGpuAccelerator.so "$out/"

	root=dist/deb-$arch
	install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/adtrd" \
		"$root/usr/lib/adtrd" "$root/usr/share/adtrd/models/demo/frames/masks" "$root/usr/share/doc/adtrd" \
		"$root/usr/lib/sysusers.d" "$root/usr/lib/udev/rules.d"
	install -m 0755 "$out/adtrd" "$root/usr/bin/adtrd"
	install -m 0644 systemd/adtrd.service "$root/lib/systemd/system/adtrd.service"
	install -m 0644 packaging/adtrd.yaml "$root/etc/adtrd/adtrd.yaml"
	install -m 0644 "$out/libtensorflowlite_c.so" "$out/libexternal_delegate_obj.so" "$root/usr/lib/adtrd/"
	# LiteRT for engine: litert (arm64: glibc 2.34, JetPack 6); its GPU accelerator needs a
	# Vulkan driver (JetPack's NVIDIA driver, or Mesa), which it loads at run time.
	install -m 0644 "$out/libLiteRt.so" "$out/libLiteRtWebGpuAccelerator.so" "$root/usr/lib/adtrd/"
	install -m 0644 models/demo/adtr.tflite models/demo/adtr.tflite.json models/demo/adtr.onnx models/demo/adtr.onnx.json \
		models/demo/golden.json "$root/usr/share/adtrd/models/demo/"
	install -m 0644 models/demo/frames/*.png "$root/usr/share/adtrd/models/demo/frames/"
	install -m 0644 models/demo/frames/masks/*.png "$root/usr/share/adtrd/models/demo/frames/masks/"
	install -m 0644 README.md config/example.yaml "$root/usr/share/doc/adtrd/"
	install -m 0644 packaging/sysusers.conf "$root/usr/lib/sysusers.d/adtrd.conf"
	install -m 0644 packaging/60-adtrd-gpio.rules "$root/usr/lib/udev/rules.d/60-adtrd-gpio.rules"
	install -m 0755 packaging/postinst packaging/prerm packaging/postrm "$root/DEBIAN/"
	echo /etc/adtrd/adtrd.yaml >"$root/DEBIAN/conffiles"
	size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
	cat >"$root/DEBIAN/control" <<CONTROL
Package: adtrd
Version: $VERSION
Architecture: $deb_arch
Maintainer: adtrd team <adtrd@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.29), libstdc++6, systemd
Section: misc
Priority: optional
Description: line-side anomaly rejection daemon (ADTR on TFLite)
 Captures each part's frame, scores it with an int8 ADTR anomaly-detection graph
 on the TFLite 2.9 C runtime, and pulses a GPIO reject output at the part's time.
 Includes the runtime library (/usr/lib/adtrd), a systemd unit and a demo model.
CONTROL
	dpkg-deb --root-owner-group -Zxz --build "$root" "dist/adtrd_${VERSION}_${deb_arch}.deb" >/dev/null
	echo "dist/adtrd_${VERSION}_${deb_arch}.deb"
done
