#include "safetensors_writer.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "format/dtype.h"

namespace tensorstream::testing {

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "test fixture error: %s\n", what.c_str());
  std::abort();
}

void FillRandom(char* out, uint64_t size, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  uint64_t i = 0;
  for (; i + 8 <= size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out + i, &x, 8);
  }
  for (; i < size; ++i) out[i] = static_cast<char>(x >> (8 * (i % 8)));
}

std::string PaddedHeader(std::string header) {
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');
  return header;
}

std::string LengthPrefix(uint64_t n) {
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return prefix;
}

}  // namespace

std::string RandomBytes(uint64_t size, uint64_t seed) {
  std::string bytes(size, '\0');
  FillRandom(bytes.data(), size, seed);
  return bytes;
}

uint64_t TensorBytes(const std::string& dtype, const std::vector<int64_t>& shape) {
  const auto info = LookupDtype(dtype);
  if (!info) Die("unknown dtype " + dtype);
  uint64_t elements = 1;
  for (int64_t d : shape) elements *= static_cast<uint64_t>(d);
  return elements * info->bits / 8;
}

TestTensor MakeTensor(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                      uint64_t seed) {
  TestTensor t{name, dtype, std::move(shape), ""};
  t.bytes = RandomBytes(TensorBytes(dtype, t.shape), seed);
  return t;
}

std::string SafetensorsImage(const std::vector<TestTensor>& tensors, const std::string& metadata) {
  // A sorted json object: key order carries no meaning in a header (offsets do), and
  // ordered_json's linear lookups would make 100,000-tensor images quadratic.
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = nlohmann::json::parse(metadata);
  uint64_t offset = 0;
  std::string data;
  for (const TestTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
    data += t.bytes;
  }
  return RawImage(header.dump(), data);
}

std::string RawImage(const std::string& header_json, const std::string& data) {
  const std::string header = PaddedHeader(header_json);
  return LengthPrefix(header.size()) + header + data;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Die("cannot write " + path);
}

TempDir::TempDir(const std::string& tag) {
  const char* base = std::getenv("TMPDIR");
  path_ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/tensorstream-" + tag +
          "-XXXXXX";
  if (::mkdtemp(path_.data()) == nullptr) Die("mkdtemp " + path_);
}

TempDir::~TempDir() {
  std::error_code ignored;  // best effort: a test may have made part of it unreadable
  std::filesystem::remove_all(path_, ignored);
}

std::string MakeTempDir(const std::string& tag) {
  // Destroyed (so removed) at exit, like any function-local static.
  static std::vector<std::unique_ptr<TempDir>> until_exit;
  until_exit.push_back(std::make_unique<TempDir>(tag));
  return until_exit.back()->path();
}

uint64_t WriteLlamaShapedModel(const std::string& path, uint64_t target_bytes) {
  // Llama-like proportions: hidden h, MLP 2.6875 h, grouped KV heads (h/4), vocab 32000.
  // Pick h from the target size: bytes ≈ 2 × (2·32000·h + L·(2.5·h² + 3·2.6875·h²)).
  const int64_t vocab = 32000;
  int64_t hidden = 512;
  int64_t layers = 4;
  const auto model_bytes = [&](int64_t h, int64_t l) {
    const int64_t inter = h * 43 / 16;
    return 2 * (2 * vocab * h + l * (2 * h * h + 2 * h * (h / 4) + 3 * h * inter + 2 * h) + h);
  };
  while (model_bytes(hidden * 2, layers * 2) <= static_cast<int64_t>(target_bytes)) {
    hidden *= 2;
    layers *= 2;
  }
  while (model_bytes(hidden, layers + 1) <= static_cast<int64_t>(target_bytes)) ++layers;
  const int64_t inter = hidden * 43 / 16;

  struct Spec {
    std::string name;
    std::vector<int64_t> shape;
  };
  std::vector<Spec> specs;
  specs.push_back({"model.embed_tokens.weight", {vocab, hidden}});
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    specs.push_back({p + "input_layernorm.weight", {hidden}});
    specs.push_back({p + "self_attn.q_proj.weight", {hidden, hidden}});
    specs.push_back({p + "self_attn.k_proj.weight", {hidden / 4, hidden}});
    specs.push_back({p + "self_attn.v_proj.weight", {hidden / 4, hidden}});
    specs.push_back({p + "self_attn.o_proj.weight", {hidden, hidden}});
    specs.push_back({p + "post_attention_layernorm.weight", {hidden}});
    specs.push_back({p + "mlp.gate_proj.weight", {inter, hidden}});
    specs.push_back({p + "mlp.up_proj.weight", {inter, hidden}});
    specs.push_back({p + "mlp.down_proj.weight", {hidden, inter}});
  }
  specs.push_back({"model.norm.weight", {hidden}});
  specs.push_back({"lm_head.weight", {vocab, hidden}});

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header["__metadata__"] = {{"format", "pt"}, {"generator", "tensorstream"}};
  uint64_t offset = 0;
  for (const Spec& s : specs) {
    const uint64_t bytes = TensorBytes("BF16", s.shape);
    header[s.name] = {
        {"dtype", "BF16"}, {"shape", s.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  const std::string head = PaddedHeader(header.dump());
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << LengthPrefix(head.size()) << head;
  std::string block(8u << 20, '\0');
  uint64_t seed = 1;
  for (uint64_t left = offset; left > 0;) {
    const uint64_t n = std::min<uint64_t>(left, block.size());
    FillRandom(block.data(), n, seed++);
    out.write(block.data(), static_cast<std::streamsize>(n));
    left -= n;
  }
  if (!out) Die("cannot write " + path);
  return offset;
}

}  // namespace tensorstream::testing
