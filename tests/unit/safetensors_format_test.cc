// Header parsing: every dtype, metadata, and every corruption named in SPEC.md §4, each
// error naming the file and (where there is one) the tensor.
#include <gtest/gtest.h>

#include "format/dtype.h"
#include "format/safetensors.h"
#include "safetensors_writer.h"
#include "storage/source.h"

namespace tensorstream {
namespace {

using testing::MakeTempDir;
using testing::MakeTensor;
using testing::RawImage;
using testing::SafetensorsImage;
using testing::WriteFile;

Result<SafetensorsHeader> ParseImage(const std::string& image) {
  static const std::string dir = MakeTempDir("format");
  const std::string path = dir + "/case.safetensors";
  WriteFile(path, image);
  auto source = OpenSource(path, StorageOptions{});
  if (!source.ok()) return source.status();
  return ReadSafetensorsHeader(**source);
}

// Expects a FormatError whose message mentions every string in `needles`.
void ExpectFormatError(const std::string& image, std::vector<std::string> needles) {
  auto header = ParseImage(image);
  ASSERT_FALSE(header.ok()) << "corrupt header accepted";
  EXPECT_EQ(header.status().code(), StatusCode::kFormatError) << header.status().message();
  needles.push_back("case.safetensors");
  for (const auto& needle : needles) {
    EXPECT_NE(header.status().message().find(needle), std::string::npos)
        << "'" << needle << "' missing from: " << header.status().message();
  }
}

std::string OneTensor(const std::string& entry, const std::string& data) {
  return RawImage(R"({"t":)" + entry + "}", data);
}

TEST(SafetensorsFormat, ParsesEveryDtypeAndMetadata) {
  std::vector<testing::TestTensor> tensors;
  uint64_t seed = 1;
  for (const char* dtype : {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL",
                            "C64", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4"}) {
    tensors.push_back(MakeTensor(std::string("t_") + dtype, dtype, {2, 6}, seed++));
  }
  tensors.push_back(MakeTensor("zero", "F32", {0, 3}, seed++));
  tensors.push_back(MakeTensor("scalar", "I64", {}, seed++));
  auto header = ParseImage(SafetensorsImage(tensors, R"({"format":"pt","x":"y"})"));
  ASSERT_TRUE(header.ok()) << header.status().message();
  ASSERT_EQ(header->tensors.size(), tensors.size());
  EXPECT_EQ(header->metadata_json, R"({"format":"pt","x":"y"})");
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(header->tensors[i].name, tensors[i].name);
    EXPECT_EQ(header->tensors[i].dtype, tensors[i].dtype);
    EXPECT_EQ(header->tensors[i].shape, tensors[i].shape);
    EXPECT_EQ(header->tensors[i].nbytes, tensors[i].bytes.size());
  }
  EXPECT_EQ(header->tensors[0].offset, header->data_offset);
  EXPECT_EQ(LookupDtype("F4")->bits, 4u);
  EXPECT_FALSE(LookupDtype("F7").has_value());
}

TEST(SafetensorsFormat, NoMetadataGivesEmptyObject) {
  auto header = ParseImage(SafetensorsImage({MakeTensor("a", "U8", {4}, 1)}));
  ASSERT_TRUE(header.ok()) << header.status().message();
  EXPECT_EQ(header->metadata_json, "{}");
}

TEST(SafetensorsFormat, EmptyHeaderObjectIsAValidEmptyFile) {
  auto header = ParseImage(RawImage("{}", ""));
  ASSERT_TRUE(header.ok()) << header.status().message();
  EXPECT_TRUE(header->tensors.empty());
}

TEST(SafetensorsFormat, RejectsEmptyAndShortFiles) {
  ExpectFormatError("", {"shorter than the 8-byte header length"});
  ExpectFormatError("abc", {"3 bytes"});
}

TEST(SafetensorsFormat, RejectsHeaderLengthBeyondFileOrLimit) {
  ExpectFormatError(std::string("\x10\x00\x00\x00\x00\x00\x00\x00{}", 10), {"beyond the end"});
  ExpectFormatError(std::string("\x00\x00\x00\x10\x00\x00\x00\x00", 8) + std::string(64, ' '),
                    {"exceeds the 100 MiB limit"});
  ExpectFormatError(std::string(8, '\xff'), {"exceeds the 100 MiB limit"});
}

TEST(SafetensorsFormat, RejectsNonJsonAndNonUtf8) {
  ExpectFormatError(RawImage("{not json", ""), {"not valid UTF-8 JSON"});
  ExpectFormatError(RawImage("{\"a\xff\xfe\":{}}", ""), {"not valid UTF-8 JSON"});
  ExpectFormatError(RawImage("[1,2]", ""), {"not a JSON object"});
}

TEST(SafetensorsFormat, RejectsBadEntries) {
  ExpectFormatError(OneTensor("5", ""), {"'t'", "not a JSON object"});
  ExpectFormatError(OneTensor(R"({"shape":[1],"data_offsets":[0,1]})", "x"), {"'t'", "dtype"});
  ExpectFormatError(OneTensor(R"({"dtype":"Q3","shape":[1],"data_offsets":[0,1]})", "x"),
                    {"'t'", "unknown dtype 'Q3'"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","data_offsets":[0,1]})", "x"), {"'t'", "shape"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[-1],"data_offsets":[0,1]})", "x"),
                    {"'t'", "non-negative integer"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1.5],"data_offsets":[0,1]})", "x"),
                    {"'t'", "non-negative integer"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1]})", "x"), {"'t'", "data_offsets"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0]})", "x"),
                    {"'t'", "data_offsets"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":["0",1]})", "x"),
                    {"'t'", "not non-negative integers"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1.0]})", "x"),
                    {"'t'", "not non-negative integers"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[1,0]})", "x"),
                    {"'t'", "end before they begin"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})", "__metadata__"),
                    {"bytes after the last tensor"});
}

TEST(SafetensorsFormat, RejectsOffsetsBeyondData) {
  ExpectFormatError(OneTensor(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})", "12345678"),
                    {"'t'", "beyond the data region"});
}

TEST(SafetensorsFormat, RejectsSizeMismatchAndOverflow) {
  ExpectFormatError(OneTensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", "12345678"),
                    {"'t'", "needs 12 bytes", "span 8"});
  ExpectFormatError(
      OneTensor(R"({"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]})",
                "12345678"),
      {"'t'", "overflows"});
  ExpectFormatError(
      OneTensor(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]})",
                "12345678"),
      {"'t'", "whole number of bytes"});
  ExpectFormatError(OneTensor(R"({"dtype":"F4","shape":[3],"data_offsets":[0,2]})", "12"),
                    {"'t'", "whole number of bytes"});
}

TEST(SafetensorsFormat, RejectsOverlapsAndGaps) {
  ExpectFormatError(RawImage(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                             "123456"),
                    {"'b'", "overlaps tensor 'a'"});
  ExpectFormatError(RawImage(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                             R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                             "123456"),
                    {"'b'", "gap of 2 bytes"});
}

TEST(SafetensorsFormat, RejectsDuplicateNames) {
  ExpectFormatError(RawImage(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                             "12"),
                    {"'a'", "appears twice"});
}

}  // namespace
}  // namespace tensorstream
