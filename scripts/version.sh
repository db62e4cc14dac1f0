#!/usr/bin/env bash
# Prints adtrd's version from git: <last tag or 0.1.0>+git<commits>.<hash>[.dirty];
# "dev" outside a git checkout. cross-build.sh and `make build` stamp it into the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo dev
	exit 0
fi
tag=$(git describe --tags --abbrev=0 2>/dev/null || echo 0.1.0)
version="${tag#v}+git$(git rev-list --count HEAD).$(git rev-parse --short=10 HEAD)"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then version="$version.dirty"; fi
echo "$version"
