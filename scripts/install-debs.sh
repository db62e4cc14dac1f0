#!/usr/bin/env bash
# Installs the Debian packages the release checks need, only those missing:
#   gcc-aarch64-linux-gnu, libc6-dev-arm64-cross  cgo for linux/arm64
#   qemu-user, libc6-arm64-cross, libstdc++6-arm64-cross   run the arm64 build here
#   systemd (systemd-analyze verify), dpkg (dpkg-deb)
#   gimp-data                    texture photographs for `python -m adtr textures` (training/adtr/textures.py)
#   python3-skimage              photographs the EfficientNet-Lite0 test classifies (training/tests/test_lite0.py)
#   gstreamer1.0-tools, -plugins-base, -plugins-good   the camera source's child (gst-launch-1.0,
#                                videotestsrc, videoconvert; v4l2src, rtspsrc, jpegdec) and gst-inspect-1.0
#   libaravis-0.8-0, aravis-tools  aravissrc (gige://) and arv-fake-gv-camera-0.8, a GigE Vision camera on loopback
#   python3-gi, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-ugly (x264enc), -plugins-bad (openh264dec)
#                                the test RTSP camera (capture/testdata/rtsp/serve.py) and its decoding
#   mosquitto                    the MQTT broker the mqtt tests start on a free loopback port
#   chromium                     the headless browser the operators' page test drives (web/)
#   mesa-vulkan-drivers 25.0.7 (bookworm-backports, with libdrm2 2.4.123)
#                                lavapipe, the Vulkan driver LiteRT's GPU accelerator runs on
#                                without a GPU (engine/litert); Debian 12's own 22.3.6 is refused
#                                by it ("No adapters found")
# From Debian 12 (bookworm), whose versions are fixed but for security and point
# updates; the versions checked here are in the README.
set -euo pipefail
pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libc6-arm64-cross libstdc++6-arm64-cross systemd dpkg gimp-data python3-skimage
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good libaravis-0.8-0 aravis-tools
	python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad mosquitto chromium)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
mesa=25.0.7-2~bpo12+1
need_mesa=0
[ "$(dpkg-query -W -f='${Status} ${Version}' mesa-vulkan-drivers 2>/dev/null)" = "install ok installed $mesa" ] || need_mesa=1
if [ ${#missing[@]} -eq 0 ] && [ $need_mesa = 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-debs.sh: need root to install: ${missing[*]}$([ $need_mesa = 1 ] && echo " mesa-vulkan-drivers=$mesa")" >&2
	exit 2
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
	echo "install-debs.sh: warning: checked on Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}" >&2
fi
export DEBIAN_FRONTEND=noninteractive
if [ $need_mesa = 1 ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
	src=/etc/apt/sources.list.d/adtrd-bookworm-backports.sources
	if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$src"
	fi
fi
apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing ${missing[*]}"
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ $need_mesa = 1 ]; then
	echo "installing mesa-vulkan-drivers $mesa (bookworm-backports)"
	apt-get install -y -qq --no-install-recommends -t bookworm-backports "mesa-vulkan-drivers=$mesa" "libdrm2=2.4.123-1~bpo12+1" >/dev/null
fi
