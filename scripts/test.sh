#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this):
#   1. build + unit tests + C API test (plain C) + CLI tests          (build/)
#   2. Python tests (pytest) against the installed package, and the drop-in compared with
#      the real runai-model-streamer 0.17.1 (tests/dropin, in its own venv sharing torch)
#   3. the same C++ suites under AddressSanitizer + UBSan               (build-asan/)
#   4. the pipeline tests under ThreadSanitizer                         (build-tsan/)
#   5. the fuzzers (header parser, read planner, S3 replies), each for a bounded time over
#      its kept corpus                                                   (build-fuzz/)
#   6. the storage conformance suite, run once per store against real servers on loopback
#      (local disk, S3 on SeaweedFS, GCS on fake-gcs-server, Azure on Azurite), and the S3
#      integration tests
#   7. the self-contained wheel (scripts/build_wheel.sh) installed and used on a bare
#      machine, where a mount namespace hides libcurl and OpenSSL, and the sdist built
#      from source in a fresh environment                                 (tests/wheel)
# Set TS_TEST_ONLY to a space-separated subset (e.g. "unit python") to run fewer stages.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
stages=${TS_TEST_ONLY:-"unit python asan tsan fuzz stores wheel"}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
want() { [[ " $stages " == *" $1 "* ]]; }
# The C++ suites run twice, each time in a random order and in parallel, so that a test
# that depends on order or shares a path with another fails here, not on the next machine.
run_ctest() {
  local pass
  for pass in 1 2; do
    ctest --test-dir "$1" --output-on-failure --schedule-random -j "$JOBS"
  done
}

# Tests talk to loopback only: no credential lookup may reach the EC2 metadata address.
export AWS_EC2_METADATA_DISABLED=true

ensure_debian_packages
if want python || want stores || want wheel; then ensure_venv; fi
if want python; then ensure_reference_venv; fi

if want unit; then
  log "build + unit, C API and CLI tests"
  build_tree "$REPO_ROOT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
  run_ctest "$REPO_ROOT/build"
fi

if want python; then
  [ -x "$REPO_ROOT/build/tests/tensorstream_tests" ] || build_tree "$REPO_ROOT/build"
  install_python_package
  log "Python tests, and the drop-in against runai-model-streamer 0.17.1"
  # The device path's Python tests run on a stand-in CUDA runtime built with the unit tests.
  (cd "$REPO_ROOT" && TENSORSTREAM_REFERENCE_PYTHON=$TS_REFERENCE_PY \
     TENSORSTREAM_FAKE_CUDART=$REPO_ROOT/build/tests/libtensorstream_fake_cudart.so \
     "$TS_PY" -m pytest -q tests/python tests/dropin)
fi

if want asan; then
  log "AddressSanitizer + UndefinedBehaviorSanitizer"
  build_tree "$REPO_ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DTENSORSTREAM_SANITIZE=address,undefined
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_ctest "$REPO_ROOT/build-asan"
fi

if want tsan; then
  log "ThreadSanitizer (pipeline and C API)"
  build_tree "$REPO_ROOT/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTENSORSTREAM_SANITIZE=thread \
    -DTENSORSTREAM_BUILD_CLI=OFF
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    "$REPO_ROOT/build-tsan/tests/tensorstream_tests" --gtest_filter='Streamer.*:HostMemory.*:Plan.*:DeviceStream.*:PinnedCache.*:Download*:CApiThreads.*'
fi

if want fuzz; then
  log "fuzzing the header parser, the read planner and S3 replies for ${FUZZ_SECONDS}s each"
  CC=clang-14 CXX=clang++-14 build_tree "$REPO_ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTENSORSTREAM_FUZZ=ON -DTENSORSTREAM_BUILD_TESTS=OFF -DTENSORSTREAM_BUILD_CLI=OFF \
    -DTENSORSTREAM_SANITIZE=address,undefined
  for target in safetensors_header plan s3_response; do
    # New inputs go to a scratch corpus; the kept corpus in the repo is only read.
    scratch=$(mktemp -d)
    args=(-max_total_time="$FUZZ_SECONDS" -max_len=65536 -timeout=10 -rss_limit_mb=2048
          -print_final_stats=1)
    [ -f "$REPO_ROOT/fuzz/$target.dict" ] && args+=(-dict="$REPO_ROOT/fuzz/$target.dict")
    "$REPO_ROOT/build-fuzz/fuzz/${target}_fuzzer" "${args[@]}" "$scratch" \
      "$REPO_ROOT/fuzz/corpus/$target" 2>&1 | tail -4
    rm -rf "$scratch"
  done
fi

if want stores; then
  log "storage conformance suite (SeaweedFS, fake-gcs-server, Azurite on loopback; installed once into $TS_CACHE)"
  [ -x "$REPO_ROOT/build/tests/tensorstream_tests" ] || build_tree "$REPO_ROOT/build"
  want python || install_python_package  # the front tests import the installed package
  TENSORSTREAM_PYTHON=$TS_PY bash "$REPO_ROOT/tests/stores/run.sh" "$REPO_ROOT/build/tests/tensorstream_tests"
fi

if want wheel; then
  log "the self-contained wheel on a bare machine (no libcurl, no OpenSSL), and the sdist"
  bash "$REPO_ROOT/scripts/build_wheel.sh"
  TENSORSTREAM_PYTHON=$TS_PY bash "$REPO_ROOT/tests/wheel/bare_machine.sh" \
    "$REPO_ROOT"/dist/tensorstream-*-manylinux_*.whl
  TENSORSTREAM_PYTHON=$TS_PY bash "$REPO_ROOT/tests/wheel/sdist_build.sh" \
    "$REPO_ROOT"/dist/tensorstream-*.tar.gz
fi

log "all requested test stages passed: $stages"
