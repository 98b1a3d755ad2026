#!/usr/bin/env bash
# Builds without a module proxy: writes vendor/ (git-ignored) from the Go sources Debian packages
# under /usr/share/gocode, after which `go build -mod=vendor ./...` works offline. Go checks
# vendor/modules.txt against go.mod, so a Debian version other than go.mod's fails the build.
#   apt-get install golang-go golang-google-grpc-dev golang-google-protobuf-dev \
#     golang-github-golang-protobuf-1-5-dev
set -euo pipefail
cd "$(dirname "$0")"

# The version of an installed Debian package, without epoch or Debian revision (1.33.3-2 -> 1.33.3).
upstream_version() {
  local version
  version=$(dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null) || true
  if [[ $version != "ii  "* ]]; then
    echo "debian-vendor.sh: the Debian package $1 is not installed (apt-get install $1)" >&2
    exit 1
  fi
  version=${version#ii  }
  version=${version#*:}
  echo "${version%-*}"
}

# grpc-go's codec goes through github.com/golang/protobuf. Its 1.3 line, which Debian also
# offers to golang-google-grpc-dev, compiles but panics on the messages protoc-gen-go writes.
upstream_version golang-github-golang-protobuf-1-5-dev >/dev/null
grpc=$(upstream_version golang-google-grpc-dev)
protobuf=$(upstream_version golang-google-protobuf-dev)

rm -rf vendor && mkdir vendor
ln -s /usr/share/gocode/src/* vendor/
printf '# %s v%s\n## explicit\n' google.golang.org/grpc "$grpc" google.golang.org/protobuf "$protobuf" \
  > vendor/modules.txt
