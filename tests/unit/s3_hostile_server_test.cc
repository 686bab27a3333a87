// The S3 backend against a scripted server that lies: sizes it cannot deliver, an object
// replaced mid-stream, a listing that never ends, keys with "." and ".." segments. Each
// must end in an error naming the URL (or the exact object), never in wrong bytes, a hang
// or memory that explodes.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include "pipeline/download.h"
#include "pipeline/options.h"
#include "safetensors_writer.h"
#include "scripted_server.h"
#include "storage/listing.h"
#include "storage/s3/s3_list.h"
#include "storage/source.h"

namespace tensorstream {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ScriptedServer;
using testing::SeenRequest;
using testing::SendAll;

StorageOptions Storage(const ScriptedServer& server) {
  StorageOptions o;
  o.settings = {{"s3.endpoint", server.url("")},
                {"s3.access_key_id", "AKIDEXAMPLE"},
                {"s3.secret_access_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
                {"s3.region", "us-east-1"}};
  return o;
}

bool SendHead(int fd, const std::string& length, const std::string& etag = "\"v1\"") {
  SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + length + "\r\nETag: " + etag +
                  "\r\nContent-Type: application/octet-stream\r\n\r\n");
  return true;
}

TEST(S3HostileServer, ASizeTheServerCannotDeliverFailsFastInBoundedMemory) {
  const std::string object = testing::TestObject(1000);
  for (const std::string lie : {"1125899906842624", "18446744073709551615"}) {  // 2^50, 2^64-1
    ScriptedServer server([&](int fd, const SeenRequest& req, int) {
      if (req.method == "HEAD") return SendHead(fd, lie);
      // A real server sends what it has: the 1,000 bytes, whatever was asked.
      const auto [a, b] = testing::ParseRange(req.range);
      if (a >= object.size()) return testing::SendError(fd, 416, "InvalidRange", "no such bytes");
      const uint64_t last = std::min<uint64_t>(b, object.size() - 1);
      SendAll(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: " +
                      std::to_string(last - a + 1) + "\r\nContent-Range: bytes " +
                      std::to_string(a) + "-" + std::to_string(last) + "/" +
                      std::to_string(object.size()) + "\r\n\r\n" + object.substr(a, last - a + 1));
      return true;
    });
    testing::TempDir dir("lying-size");
    StreamOptions options;
    options.storage = Storage(server);
    const auto start = Clock::now();
    const auto written = Download("s3://bucket/model.bin", dir.path(), "model.bin", options, {});
    ASSERT_FALSE(written.ok()) << lie;
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(30)) << lie;
    EXPECT_NE(written.status().message().find("s3://bucket/model.bin"), std::string::npos)
        << written.status().message();
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a partial file was left behind";
  }
}

TEST(S3HostileServer, AnObjectReplacedDuringTheStreamIsAnErrorNotNewBytes) {
  const std::string v1 = testing::TestObject(4096);
  std::atomic<bool> replaced{false};
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    const std::string current_etag = replaced ? "\"v2\"" : "\"v1\"";
    if (req.method == "HEAD") return SendHead(fd, std::to_string(v1.size()), current_etag);
    const std::string if_match = req.Header("If-Match");
    if (!if_match.empty() && if_match != current_etag) {
      return testing::SendError(fd, 412, "PreconditionFailed",
                                "At least one of the pre-conditions you specified did not hold");
    }
    return testing::Send206(fd, req, v1, std::nullopt, "ETag: " + current_etag + "\r\n");
  });
  auto source = OpenSource("s3://bucket/w.bin", Storage(server));
  ASSERT_TRUE(source.ok()) << source.status().message();
  const std::atomic<bool> never{false};
  std::string buffer(100, '\0');
  ASSERT_TRUE((*source)->ReadAt(0, 100, buffer.data(), never).ok());
  EXPECT_EQ(buffer, v1.substr(0, 100));
  replaced = true;  // same size, another version
  const Status s = (*source)->ReadAt(100, 100, buffer.data(), never);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("s3://bucket/w.bin"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("replaced or modified"), std::string::npos) << s.message();
  for (const SeenRequest& r : server.requests()) {
    if (r.method == "GET") {
      EXPECT_EQ(r.Header("If-Match"), "\"v1\"");
    }
  }
}

TEST(S3HostileServer, KeysWithDotSegmentsAreSentExactlyAsNamed) {
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    if (req.method == "HEAD") return SendHead(fd, "3");
    return testing::Send206(fd, req, "abc");
  });
  for (const std::string key : {"a/./b.bin", "a/../b.bin", "../../other-bucket/x", "a/./../."}) {
    auto source = OpenSource("s3://bucket/" + key, Storage(server));
    ASSERT_TRUE(source.ok()) << key << ": " << source.status().message();
    const std::atomic<bool> never{false};
    std::string buffer(3, '\0');
    ASSERT_TRUE((*source)->ReadAt(0, 3, buffer.data(), never).ok());
  }
  std::vector<std::string> paths;
  for (const SeenRequest& r : server.requests()) paths.push_back(r.path);
  EXPECT_EQ(paths, (std::vector<std::string>{
                       "/bucket/a/./b.bin", "/bucket/a/./b.bin", "/bucket/a/../b.bin",
                       "/bucket/a/../b.bin", "/bucket/../../other-bucket/x",
                       "/bucket/../../other-bucket/x", "/bucket/a/./../.", "/bucket/a/./../."}));
}

TEST(S3HostileServer, AListingThatNeverEndsIsBounded) {
  ScriptedServer server([&](int fd, const SeenRequest&, int index) {
    const std::string body =
        "<?xml version=\"1.0\"?><ListBucketResult><IsTruncated>true</IsTruncated>"
        "<Contents><Key>k" +
        std::to_string(index) + "</Key><Size>1</Size></Contents><NextContinuationToken>t" +
        std::to_string(index) + "</NextContinuationToken></ListBucketResult>";
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                    body);
    return true;
  });
  ListLimits limits;
  limits.max_pages = 50;
  auto listing = s3::ListObjects("s3://bucket/model", Storage(server), true, limits);
  ASSERT_FALSE(listing.ok());
  EXPECT_NE(listing.status().message().find("did not end after 50 pages"), std::string::npos)
      << listing.status().message();
  limits.max_pages = 1'000'000;
  limits.max_time = std::chrono::seconds(1);
  const auto start = Clock::now();
  listing = s3::ListObjects("s3://bucket/model", Storage(server), true, limits);
  ASSERT_FALSE(listing.ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

}  // namespace
}  // namespace tensorstream
