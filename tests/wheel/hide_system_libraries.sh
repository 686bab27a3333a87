#!/usr/bin/env bash
# Runs a command on a system where libcurl and OpenSSL cannot be found, as on a minimal
# container image. Meant to run inside a private mount namespace (bare_machine.sh starts
# it with `unshare --mount --map-root-user`), so nothing changes outside it:
#
#   hide_system_libraries.sh SCRATCH_DIR CA_CERT -- COMMAND...
#
# Each library folder of the dynamic loader is replaced by a folder of links to everything
# it held except libcurl*, libssl* and libcrypto*; the loader's cache still
# names those files, but they are gone, so loading them fails. /etc/ssl/certs is replaced
# by a folder whose only bundle, at Debian's path, is CA_CERT: a TLS connection then
# verifies only if the library finds that path by itself.
set -euo pipefail
shopt -s nullglob
scratch=${1:?usage: hide_system_libraries.sh SCRATCH_DIR CA_CERT -- COMMAND...}
ca_cert=${2:?usage: hide_system_libraries.sh SCRATCH_DIR CA_CERT -- COMMAND...}
shift 2
[[ ${1:-} == -- ]] && shift

hidden='^lib(curl|ssl|crypto)[-.0-9a-z]*\.(so|a)'
for dir in /usr/lib/x86_64-linux-gnu /usr/local/lib /usr/lib; do
  [[ -d $dir && ! -L $dir ]] || continue
  present=("$dir"/lib{curl,ssl,crypto}*)
  [[ ${#present[@]} -gt 0 ]] || continue
  # The folder stays reachable at $original; a folder of links to all but the hidden
  # entries, made before anything moves (the loader itself lives in these folders), then
  # takes its place.
  original=$scratch/original${dir//\//_}
  links=$scratch/links${dir//\//_}
  mkdir -p "$original" "$links"
  mount --bind "$dir" "$original"
  for entry in "$original"/* "$original"/.[!.]*; do
    name=${entry##*/}
    [[ $name =~ $hidden ]] && continue
    ln -s "$entry" "$links/$name"
  done
  mount --bind "$links" "$dir"
done

mkdir -p /etc/ssl/certs
mount -t tmpfs tmpfs /etc/ssl/certs
cp "$ca_cert" /etc/ssl/certs/ca-certificates.crt
exec "$@"
