#!/usr/bin/env bash
# The shared library exports the C API and nothing else: every defined dynamic symbol of
# libtensorstream.so must be tensorstream_* (src/capi/exports.map).
#   tests/c_api/exports_test.sh path/to/libtensorstream.so
set -euo pipefail
lib=${1:?usage: exports_test.sh LIBRARY}
symbols=$(nm -D --defined-only "$lib" | awk '{print $NF}')
api=$(grep -c '^tensorstream_' <<< "$symbols" || true)
others=$(grep -v '^tensorstream_' <<< "$symbols" || true)
if [[ -n $others ]]; then
  echo "exports_test: $lib exports $(wc -l <<< "$others") symbols outside the C API:" >&2
  head -20 <<< "$others" >&2
  exit 1
fi
# The header's functions are all there (a version script that hid them would pass above).
declared=$(grep -oE '^TENSORSTREAM_API [^(]*\btensorstream_[a-z0-9_]+\(' \
             "$(dirname "$0")/../../include/tensorstream/tensorstream.h" |
           grep -oE 'tensorstream_[a-z0-9_]+' | sort -u)
missing=$(comm -23 <(echo "$declared") <(sort -u <<< "$symbols"))
if [[ -n $missing ]]; then
  echo "exports_test: declared in the header but not exported:" $missing >&2
  exit 1
fi
echo "exports_test: $api symbols, all tensorstream_*; every declared function exported"
