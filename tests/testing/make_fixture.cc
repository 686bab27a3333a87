// Writes test fixtures for the CLI test script:
//   tensorstream_make_fixture model PATH BYTES   a Llama-shaped BF16 model of ~BYTES
//   tensorstream_make_fixture dtypes PATH        one tensor of every dtype, zero-size too
//   tensorstream_make_fixture corrupt DIR        one file per corruption case
#include <cstdio>
#include <cstdlib>
#include <string>

#include "safetensors_writer.h"

using namespace tensorstream::testing;

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "model" && argc == 4) {
    WriteLlamaShapedModel(argv[2], std::strtoull(argv[3], nullptr, 10));
    return 0;
  }
  if (mode == "dtypes" && argc == 3) {
    std::vector<TestTensor> tensors;
    uint64_t seed = 1;
    for (const char* dtype : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL",
                              "C64", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4"}) {
      tensors.push_back(MakeTensor(std::string("t_") + dtype, dtype, {3, 4}, seed++));
    }
    tensors.push_back(MakeTensor("empty", "F32", {0, 7}, seed++));
    tensors.push_back(MakeTensor("scalar", "F32", {}, seed++));
    WriteFile(argv[2], SafetensorsImage(tensors, R"({"format":"pt"})"));
    return 0;
  }
  if (mode == "corrupt" && argc == 3) {
    const std::string dir = argv[2];
    const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    WriteFile(dir + "/empty.safetensors", "");
    WriteFile(dir + "/truncated.safetensors", RawImage(ok, "1234"));
    WriteFile(dir + "/not_json.safetensors", RawImage("{not json", "12345678"));
    WriteFile(dir + "/huge_header.safetensors", std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8));
    WriteFile(dir + "/bad_dtype.safetensors",
              RawImage(R"({"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", "12345678"));
    return 0;
  }
  std::fprintf(stderr, "usage: %s model PATH BYTES | dtypes PATH | corrupt DIR\n", argv[0]);
  return 2;
}
