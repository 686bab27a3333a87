// ListUri on local directories (the S3 side runs in s3_integration_test.cc against a server)
// and its dispatch by scheme.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "safetensors_writer.h"
#include "storage/listing.h"

namespace tensorstream {
namespace {

namespace fs = std::filesystem;

class LocalListing : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(temp_.path());
    fs::create_directories(dir_ / "sub" / "deeper");
    Write("a.safetensors", 10);
    Write("b.json", 3);
    Write("sub/c.safetensors", 7);
    Write("sub/deeper/d.bin", 1);
    // A Hugging Face cache snapshot links files to blobs: links to files count as files.
    fs::create_symlink(dir_ / "a.safetensors", dir_ / "link.safetensors");
    fs::create_symlink(dir_ / "missing", dir_ / "dangling");
  }
  void Write(const std::string& rel, size_t n) { std::ofstream(dir_ / rel) << std::string(n, 'x'); }
  tensorstream::testing::TempDir temp_{"listing"};
  fs::path dir_;
};

TEST_F(LocalListing, NonRecursiveListsFilesAndSubdirectories) {
  auto r = ListUri(dir_.string(), {}, false);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> rel;
  for (const ObjectInfo& o : *r) rel.push_back(o.relative + (o.is_directory ? "(dir)" : ""));
  EXPECT_EQ(rel,
            (std::vector<std::string>{"a.safetensors", "b.json", "link.safetensors", "sub/(dir)"}));
  EXPECT_EQ((*r)[0].uri, (dir_ / "a.safetensors").string());
  EXPECT_EQ((*r)[0].size, 10u);
  EXPECT_EQ((*r)[2].size, 10u);  // through the link
}

TEST_F(LocalListing, RecursiveListsFilesOnlyWithRelativePaths) {
  auto r = ListUri("file://" + dir_.string() + "/", {}, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  std::vector<std::string> rel;
  for (const ObjectInfo& o : *r) rel.push_back(o.relative);
  EXPECT_EQ(rel, (std::vector<std::string>{"a.safetensors", "b.json", "link.safetensors",
                                           "sub/c.safetensors", "sub/deeper/d.bin"}));
  EXPECT_EQ((*r)[3].uri, "file://" + dir_.string() + "/sub/c.safetensors");
}

TEST_F(LocalListing, Errors) {
  auto missing = ListUri((dir_ / "nope").string(), {}, false);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  EXPECT_EQ(ListUri((dir_ / "b.json").string(), {}, false).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ListUri("xyz://bucket/x", {}, false).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ListUri("", {}, false).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tensorstream
