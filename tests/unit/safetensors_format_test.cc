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
  ExpectFormatError("", {"File is truncated or empty", "shorter than the 8-byte header size"});
  ExpectFormatError("abc", {"3 bytes"});
}

TEST(SafetensorsFormat, RejectsHeaderLengthBeyondFileOrLimit) {
  ExpectFormatError(std::string("\x10\x00\x00\x00\x00\x00\x00\x00{}", 10),
                    {"File is truncated or empty", "beyond the end"});
  ExpectFormatError(std::string("\x00\x00\x00\x10\x00\x00\x00\x00", 8) + std::string(64, ' '),
                    {"Header size", "exceeds limit of 104857600 bytes"});
  ExpectFormatError(std::string(8, '\xff'), {"Header size", "exceeds limit of 104857600 bytes"});
}

TEST(SafetensorsFormat, RejectsNonJsonAndNonUtf8) {
  ExpectFormatError(RawImage("{not json", ""), {"Corrupted File: Header is not valid JSON"});
  ExpectFormatError(RawImage("{\"a\xff\xfe\":{}}", ""), {"Header is not valid UTF-8", "byte 3"});
  ExpectFormatError(RawImage("[1,2]", ""), {"not a JSON object"});
}

TEST(SafetensorsFormat, RejectsBadEntries) {
  ExpectFormatError(OneTensor("5", ""), {"'t'", "not a JSON object"});
  ExpectFormatError(OneTensor(R"({"shape":[1],"data_offsets":[0,1]})", "x"), {"'t'", "dtype"});
  ExpectFormatError(OneTensor(R"({"dtype":"Q3","shape":[1],"data_offsets":[0,1]})", "x"),
                    {"Unsupported dtype 'Q3' in tensor 't'"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","data_offsets":[0,1]})", "x"), {"'t'", "shape"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[-1],"data_offsets":[0,1]})", "x"),
                    {"Tensor 't': 'shape' holds the negative number -1", "non-negative integer"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1.5],"data_offsets":[0,1]})", "x"),
                    {"Tensor 't': 'shape' holds the non-integer 1.5"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":4,"data_offsets":[0,1]})", "x"),
                    {"Tensor 't': 'shape' is not an array"});
  ExpectFormatError(OneTensor(R"({"dtype":["U8"],"shape":[1],"data_offsets":[0,1]})", "x"),
                    {"Tensor 't': 'dtype' holds an array or object"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1]})", "x"),
                    {"Corrupted Header: Tensor 't' missing data_offsets"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0]})", "x"),
                    {"'t'", "data_offsets"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":["0",1]})", "x"),
                    {"Tensor 't': 'data_offsets' holds the string \"0\""});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1.0]})", "x"),
                    {"Tensor 't': 'data_offsets' holds the non-integer 1.0"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[1,0]})", "x"),
                    {"Corrupted Offset: Tensor 't' start (1) > end (0)"});
  ExpectFormatError(OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})", "__metadata__"),
                    {"11 extra trailing bytes"});
}

TEST(SafetensorsFormat, RejectsOffsetsBeyondData) {
  ExpectFormatError(OneTensor(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})", "12345678"),
                    {"'t'", "is truncated", "declares 16 bytes", "holds 8"});
}

TEST(SafetensorsFormat, RejectsSizeMismatchAndOverflow) {
  ExpectFormatError(
      OneTensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", "12345678"),
      {"Corrupted Tensor 't': Shape claims 12 bytes ([3] x F32), but offsets reserve 8 bytes"});
  ExpectFormatError(
      OneTensor(R"({"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]})",
                "12345678"),
      {"Corrupted Tensor 't'", "Shape claims more than 2^64 bytes"});
  ExpectFormatError(
      OneTensor(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]})",
                "12345678"),
      {"'t'", "Shape claims more than 2^64 bytes"});
  ExpectFormatError(OneTensor(R"({"dtype":"F4","shape":[3],"data_offsets":[0,2]})", "12"),
                    {"'t'", "whole number of bytes"});
}

TEST(SafetensorsFormat, RejectsOverlapsAndGaps) {
  ExpectFormatError(RawImage(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                             "123456"),
                    {"Tensor 'a' overlaps with next tensor 'b' (ends at 4, next starts at 2)"});
  ExpectFormatError(
      RawImage(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
               R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
               "123456"),
      {"Gaps between tensors are not allowed. Tensor 'a' ends at 2, but next tensor starts at 4"});
}

TEST(SafetensorsFormat, RejectsDuplicateNames) {
  ExpectFormatError(RawImage(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                             R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                             "12"),
                    {"'a'", "appears twice"});
}

TEST(SafetensorsFormat, RejectsDeepNestingBeforeWalkingIt) {
  // Half a million levels: a recursive walk (or a document tree's destructor) would
  // overflow the stack; the parser stops at kMaxHeaderDepth.
  const size_t depth = 500000;
  const std::string deep = std::string(depth, '[') + std::string(depth, ']');
  ExpectFormatError(RawImage(R"({"__metadata__":{"k":)" + deep + "}}", ""),
                    {"nests deeper than 64 levels"});
  ExpectFormatError(
      OneTensor(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":)" + deep + "}", "x"),
      {"nests deeper than 64 levels"});
  ExpectFormatError(RawImage(deep, ""), {"Header is not a JSON object"});
}

TEST(SafetensorsFormat, ParsesExactlyTheDeclaredLength) {
  const std::string valid = R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})";
  // Trailing spaces are padding (writers align the data to 8 bytes); anything else after
  // the object, a NUL included, is not JSON.
  EXPECT_TRUE(ParseImage(RawImage(valid + "   ", "x")).ok());
  ExpectFormatError(RawImage(valid + std::string("\0garbage", 8), "x"),
                    {"Header is not valid JSON", "NUL byte at offset 53"});
  ExpectFormatError(RawImage(valid + "{}", "x"), {"Header is not valid JSON"});
  ExpectFormatError(RawImage("\xEF\xBB\xBF" + valid, "x"), {"byte order mark"});
}

TEST(SafetensorsFormat, NamesWithEscapedNulAreDistinctTensors) {
  auto header =
      ParseImage(RawImage(R"({"w\u0000one":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                          R"("w\u0000two":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                          "ab"));
  ASSERT_TRUE(header.ok()) << header.status().message();
  ASSERT_EQ(header->tensors.size(), 2u);
  EXPECT_EQ(header->tensors[0].name, std::string("w\0one", 5));
  EXPECT_EQ(header->tensors[1].name, std::string("w\0two", 5));
}

TEST(SafetensorsFormat, MessagesEscapeControlCharactersOfNames) {
  auto header = ParseImage(
      RawImage(R"({"evil\u001b[2J\nname":{"dtype":"Q","shape":[1],"data_offsets":[0,1]}})", "x"));
  ASSERT_FALSE(header.ok());
  const std::string& message = header.status().message();
  EXPECT_NE(message.find(R"('evil\x1b[2J\nname')"), std::string::npos) << message;
  EXPECT_EQ(message.find('\x1b'), std::string::npos);
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(SafetensorsFormat, MetadataIsReserialisedWhateverItHolds) {
  auto header = ParseImage(
      RawImage(R"({"__metadata__" : {"a" : [1, {"b" : null}], "c" : "\u00e9\"", "d":{}}, )"
               R"("t":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":{"ignored":[1]}}})",
               "x"));
  ASSERT_TRUE(header.ok()) << header.status().message();
  EXPECT_EQ(header->metadata_json, R"({"a":[1,{"b":null}],"c":"é\"","d":{}})");
  ExpectFormatError(RawImage(R"({"__metadata__":[1]})", ""), {"'__metadata__' that is not"});
  ExpectFormatError(RawImage(R"({"__metadata__":"x"})", ""), {"'__metadata__' that is not"});
}

TEST(SafetensorsFormat, ZeroSizeTensorSortsBeforeOneAtTheSameOffset) {
  auto header = ParseImage(RawImage(R"({"big":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                                    R"("empty":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})",
                                    "ab"));
  ASSERT_TRUE(header.ok()) << header.status().message();
  EXPECT_EQ(header->tensors[0].name, "empty");
  EXPECT_EQ(header->tensors[1].name, "big");
}

}  // namespace
}  // namespace tensorstream
