// Test helpers that write SafeTensors files, valid or deliberately corrupt, and fill
// tensors with reproducible pseudo-random bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tensorstream::testing {

struct TestTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;  // exactly the tensor's byte size
};

// Reproducible pseudo-random bytes (xorshift), different for every seed.
std::string RandomBytes(uint64_t size, uint64_t seed);

// Bytes of one element of `dtype` ("F32" → 4, "F4" → half a byte, rounded by caller).
uint64_t TensorBytes(const std::string& dtype, const std::vector<int64_t>& shape);

// A tensor of the given dtype/shape filled with RandomBytes(seed).
TestTensor MakeTensor(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                      uint64_t seed);

// A complete, valid SafeTensors file image: header (padded to 8 bytes) then data, in the
// order given. `metadata` is a JSON object text for "__metadata__", or empty for none.
std::string SafetensorsImage(const std::vector<TestTensor>& tensors,
                             const std::string& metadata = "");

// A file image from a raw header text and raw data bytes (for corrupt-file tests).
std::string RawImage(const std::string& header_json, const std::string& data);

// Writes `bytes` to `path`, creating parent directories; aborts the test on failure.
void WriteFile(const std::string& path, const std::string& bytes);

// A fresh empty directory under $TMPDIR ("tensorstream-TAG-XXXXXX"), unique per test and
// per process (ctest runs tests in parallel and in random order), removed with everything
// in it when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// TempDir(tag).path() for helpers that return paths into it: the directory is removed
// when the process exits.
std::string MakeTempDir(const std::string& tag);

// Writes a Llama-shaped model (embeddings, per-layer attention and MLP projections,
// norms, lm_head; BF16) of about `target_bytes` to `path` without holding it in memory.
// Returns the total tensor bytes written.
uint64_t WriteLlamaShapedModel(const std::string& path, uint64_t target_bytes);

}  // namespace tensorstream::testing
