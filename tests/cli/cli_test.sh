#!/usr/bin/env bash
# Drives the tensorstream CLI end to end: exit codes, one-line errors naming the file,
# --verify, --json, memory limits, ls and pull on local directories (the S3 side is in
# tests/stores/). Usage: cli_test.sh CLI MAKE_FIXTURE (works in a fresh temporary directory)
set -u
cli=$1 fixture=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/tensorstream-cli-XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); }
fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }

# expect_ok NAME CMD...: the command exits 0.
expect_ok() {
  local name=$1; shift
  if "$@" >"$work/out" 2>"$work/err"; then pass; else fail "$name (exit $?): $(cat "$work/err")"; fi
}
# expect_error NAME NEEDLE CMD...: exit 1, exactly one stderr line, containing NEEDLE.
expect_error() {
  local name=$1 needle=$2; shift 2
  timeout 20 "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ $rc -ne 1 ]; then fail "$name: exit $rc, expected 1; stderr: $(cat "$work/err")"; return; fi
  if [ "$(wc -l <"$work/err")" -ne 1 ]; then fail "$name: stderr is not one line: $(cat "$work/err")"; return; fi
  if ! grep -qF -- "$needle" "$work/err"; then fail "$name: '$needle' missing from: $(cat "$work/err")"; return; fi
  pass
}

"$fixture" model "$work/model.safetensors" 40000000 || { echo "fixture failed"; exit 1; }
"$fixture" dtypes "$work/dtypes.safetensors"
"$fixture" corrupt "$work/corrupt"

expect_ok "inspect table" "$cli" inspect "$work/model.safetensors"
grep -q "model.embed_tokens.weight" "$work/out" && grep -qE "^[0-9]+ tensors, [0-9]+ bytes" "$work/out" \
  && pass || fail "inspect table content"

expect_ok "inspect json" "$cli" inspect --json "$work/dtypes.safetensors"
python3 - "$work/out" <<'PY' && pass || fail "inspect json content"
import json, sys
d = json.load(open(sys.argv[1]))
names = {t["name"]: t for t in d["tensors"]}
assert d["tensor_count"] == 20 and d["metadata"] == {"format": "pt"}
assert names["t_BF16"]["shape"] == [3, 4] and names["t_BF16"]["bytes"] == 24
assert names["t_F4"]["bytes"] == 6 and names["empty"]["bytes"] == 0 and names["scalar"]["shape"] == []
assert d["total_bytes"] == sum(t["bytes"] for t in d["tensors"])
PY

for args in "" "--concurrency 1" "--concurrency 8 --memory-limit 0" "--direct --chunk-bytes 65536"; do
  # shellcheck disable=SC2086
  expect_ok "stream --verify $args" "$cli" stream --verify $args "$work/model.safetensors" "$work/dtypes.safetensors"
  grep -q "verified: all bytes match" "$work/out" && pass || fail "stream --verify $args: $(cat "$work/out")"
done

expect_ok "stream json" "$cli" stream --json --memory-limit 0 "$work/model.safetensors"
python3 - "$work/out" "$work/model.safetensors" <<'PY' && pass || fail "stream json content"
import json, os, sys
d = json.load(open(sys.argv[1]))
assert d["tensors"] > 10 and d["bytes"] > 0 and d["gb_per_s"] > 0
assert d["peak_reserved_bytes"] <= os.path.getsize(sys.argv[2])
PY

expect_error "missing file" "/no/such/file.safetensors" "$cli" stream /no/such/file.safetensors
expect_error "empty file" "empty.safetensors" "$cli" stream "$work/corrupt/empty.safetensors"
expect_error "truncated" "truncated.safetensors" "$cli" stream "$work/corrupt/truncated.safetensors"
expect_error "truncated names tensor" "'a'" "$cli" inspect "$work/corrupt/truncated.safetensors"
expect_error "not json" "Header is not valid JSON" "$cli" inspect "$work/corrupt/not_json.safetensors"
expect_error "huge header" "exceeds limit of 104857600 bytes" "$cli" stream "$work/corrupt/huge_header.safetensors"
expect_error "bad dtype" "Unsupported dtype 'Q7' in tensor 'a'" "$cli" stream "$work/corrupt/bad_dtype.safetensors"
expect_error "directory" "is a directory" "$cli" stream "$work/corrupt"
expect_error "memory limit too small" "Memory limit supplied: 1000 cannot be smaller than" "$cli" stream --memory-limit 1000 "$work/model.safetensors"

"$cli" stream --concurrency 0 "$work/model.safetensors" >/dev/null 2>"$work/err"
rc=$?
[ $rc -eq 2 ] && grep -q -- "--concurrency" "$work/err" && pass \
  || fail "bad --concurrency not rejected by the parser (exit $rc)"
RUNAI_STREAMER_CONCURRENCY=abc "$cli" stream "$work/model.safetensors" >"$work/out" 2>"$work/err"
[ $? -eq 1 ] && grep -q "RUNAI_STREAMER_CONCURRENCY='abc'" "$work/err" && pass || fail "bad env var: $(cat "$work/err")"

# Without a GPU (CI), a CUDA device is refused before any read, with the reason.
if ! command -v nvidia-smi >/dev/null 2>&1; then
  expect_error "no cuda" "CUDA" "$cli" stream --device cuda:0 "$work/model.safetensors"
fi
expect_error "bad device" "invalid device 'tpu'" "$cli" stream --device tpu "$work/model.safetensors"

# ls and pull on a local tree.
tree=$work/tree
mkdir -p "$tree/sub/deeper" "$tree/empty_dir"
cp "$work/model.safetensors" "$tree/a.safetensors"
cp "$work/dtypes.safetensors" "$tree/sub/b.safetensors"
echo '{"k": 1}' > "$tree/config.json"
echo notes > "$tree/sub/deeper/notes.txt"
: > "$tree/sub/zero.bin"

expect_ok "ls table" "$cli" ls "$tree"
grep -qE "^ +[0-9]+  a.safetensors$" "$work/out" && grep -qE "^ +DIR  sub/$" "$work/out" \
  && grep -q "^2 files, [0-9]* bytes (.*), 2 directories$" "$work/out" && ! grep -q "b.safetensors" "$work/out" \
  && pass || fail "ls table content: $(cat "$work/out")"

expect_ok "ls recursive json" "$cli" ls --recursive --json "$tree"
python3 - "$work/out" "$tree" <<'PY' && pass || fail "ls json content"
import json, os, sys
d, tree = json.load(open(sys.argv[1])), sys.argv[2]
paths = [e["path"] for e in d["entries"]]
assert paths == ["a.safetensors", "config.json", "sub/b.safetensors", "sub/deeper/notes.txt",
                 "sub/zero.bin"], paths
for e in d["entries"]:
    assert e["bytes"] == os.path.getsize(os.path.join(tree, e["path"])) and not e["is_directory"]
assert d["file_count"] == 5 and d["directory_count"] == 0
assert d["total_bytes"] == sum(e["bytes"] for e in d["entries"])
PY

# --include/--exclude are fnmatch globs on the relative path ('*' matches '/' too); every
# pulled file is byte-identical, nothing else is written.
expect_ok "pull filtered" "$cli" pull --include '*.safetensors' --include 'sub/*' --exclude '*.txt' \
  "$tree" "$work/pulled"
got=$(cd "$work/pulled" && find . -type f | sort | tr '\n' ' ')
[ "$got" = "./a.safetensors ./sub/b.safetensors ./sub/zero.bin " ] && pass || fail "pull filtered set: $got"
cmp -s "$tree/a.safetensors" "$work/pulled/a.safetensors" && cmp -s "$tree/sub/b.safetensors" \
  "$work/pulled/sub/b.safetensors" && pass || fail "pulled bytes differ"
grep -qE "^pulled 3 files, [0-9]+ bytes .* GB/s$" "$work/out" && pass || fail "pull summary: $(cat "$work/out")"

expect_ok "pull json" "$cli" pull --json --concurrency 2 --chunk-bytes 65536 "file://$tree" "$work/pulled_all"
python3 - "$work/out" "$tree" <<'PY' && pass || fail "pull json content"
import json, os, sys
d, tree = json.load(open(sys.argv[1])), sys.argv[2]
assert d["files"] == 5 and len(d["paths"]) == 5 and "sub/deeper/notes.txt" in d["paths"]
assert d["bytes"] == sum(os.path.getsize(os.path.join(tree, p)) for p in d["paths"])
assert d["seconds"] >= 0 and d["gb_per_s"] >= 0
PY
cmp -s "$tree/sub/deeper/notes.txt" "$work/pulled_all/sub/deeper/notes.txt" && pass || fail "nested pull bytes"

expect_error "ls missing" "$tree/nope" "$cli" ls "$tree/nope"
expect_error "ls a file" "not a directory" "$cli" ls "$tree/config.json"
expect_error "pull missing" "$tree/nope" "$cli" pull "$tree/nope" "$work/pulled_none"
[ ! -e "$work/pulled_none" ] && pass || fail "pull of a missing source created its destination"
expect_error "ls unknown scheme" "listing is not supported" "$cli" ls xyz://bucket/model
# A name that is not a plain relative path (a backslash) is refused, not written.
odd=$work/odd_tree
mkdir -p "$odd" && echo x > "$odd/a\b.bin"
expect_error "pull refuses backslash" "refusing to write" "$cli" pull "$odd" "$work/pulled_odd"
[ -z "$(find "$work/pulled_odd" -type f 2>/dev/null)" ] && pass || fail "refused file was written"
touch "$work/blocker"
expect_error "pull into a file" "$work/blocker" "$cli" pull "$tree" "$work/blocker"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
