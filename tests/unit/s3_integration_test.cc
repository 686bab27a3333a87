// S3Source and listing against a real S3 server (SeaweedFS) and a fault-injecting proxy on
// loopback. Skipped unless TENSORSTREAM_TEST_S3_ENDPOINT is set; tests/stores/run.sh
// starts the server and the proxy, uploads the fixtures (tests/stores/setup_fixtures.py) and
// runs these with:
//   TENSORSTREAM_TEST_S3_ENDPOINT        http://127.0.0.1:PORT
//   TENSORSTREAM_TEST_S3_BUCKET          the fixture bucket
//   TENSORSTREAM_TEST_S3_LOCAL_COPY      local copy of data/model.bin
//   TENSORSTREAM_TEST_S3_PROXY_ENDPOINT  the fault proxy (fault tests skip without it)
//   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY  valid credentials for the server
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "storage/listing.h"
#include "storage/source.h"

namespace tensorstream {
namespace {

using Clock = std::chrono::steady_clock;

std::string EnvOr(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

// Sets (or, with nullopt, unsets) environment variables for one scope and restores them.
// The tests run on one thread; S3 reads the environment when a source is opened.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, std::optional<std::string>>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name);
      saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
      if (value) {
        ::setenv(name, value->c_str(), 1);
      } else {
        ::unsetenv(name);
      }
    }
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

class S3Integration : public testing::Test {
 protected:
  void SetUp() override {
    endpoint_ = EnvOr("TENSORSTREAM_TEST_S3_ENDPOINT");
    if (endpoint_.empty()) GTEST_SKIP() << "TENSORSTREAM_TEST_S3_ENDPOINT not set";
    bucket_ = EnvOr("TENSORSTREAM_TEST_S3_BUCKET", "tsfixtures");
    proxy_ = EnvOr("TENSORSTREAM_TEST_S3_PROXY_ENDPOINT");
    key_id_ = EnvOr("AWS_ACCESS_KEY_ID");
    secret_ = EnvOr("AWS_SECRET_ACCESS_KEY");
    std::ifstream in(EnvOr("TENSORSTREAM_TEST_S3_LOCAL_COPY"), std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    expected_ = ss.str();
    ASSERT_GT(expected_.size(), 0u) << "TENSORSTREAM_TEST_S3_LOCAL_COPY unreadable";
  }

  std::string Uri(const std::string& key) const { return "s3://" + bucket_ + "/" + key; }

  // Options naming the server and the good credentials explicitly.
  StorageOptions Explicit(const std::string& endpoint) const {
    StorageOptions o;
    o.settings = {{"s3.endpoint", endpoint},
                  {"s3.access_key_id", key_id_},
                  {"s3.secret_access_key", secret_},
                  {"s3.region", "us-east-1"}};
    return o;
  }

  // Reads all of `source` in `chunk`-byte pieces.
  static Result<std::string> ReadAll(Source& source, uint64_t chunk) {
    std::string out(source.Size(), '\0');
    const std::atomic<bool> never{false};
    for (uint64_t off = 0; off < out.size(); off += chunk) {
      const uint64_t len = std::min<uint64_t>(chunk, out.size() - off);
      TS_RETURN_IF_ERROR(source.ReadAt(off, len, out.data() + off, never));
    }
    return out;
  }

  std::string endpoint_, bucket_, proxy_, key_id_, secret_, expected_;
};

TEST_F(S3Integration, RangedReadsAreByteExact) {
  // Wrong credentials in the environment: only the explicit ones can make this work.
  ScopedEnv env({{"AWS_ACCESS_KEY_ID", "WRONGKEY"}, {"AWS_SECRET_ACCESS_KEY", "wrong"}});
  auto source = OpenSource(Uri("data/model.bin"), Explicit(endpoint_));
  ASSERT_TRUE(source.ok()) << source.status().message();
  Source& s = **source;
  ASSERT_EQ(s.Size(), expected_.size());
  EXPECT_GE(s.PreferredChunkBytes(), 8u << 20);

  auto all = ReadAll(s, s.PreferredChunkBytes());
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_TRUE(*all == expected_);

  const std::atomic<bool> never{false};
  std::mt19937_64 rng(7);
  std::vector<std::pair<uint64_t, uint64_t>> ranges = {
      {0, 1}, {expected_.size() - 1, 1}, {expected_.size() - 4096, 4096}, {123, 0}};
  for (int i = 0; i < 40; ++i) {
    const uint64_t off = rng() % expected_.size();
    ranges.emplace_back(off, 1 + rng() % std::min<uint64_t>(3 << 20, expected_.size() - off));
  }
  for (const auto& [off, len] : ranges) {
    std::string buf(len, '\0');
    ASSERT_TRUE(s.ReadAt(off, len, buf.data(), never).ok()) << off << "+" << len;
    ASSERT_TRUE(buf == expected_.substr(off, len)) << "bytes differ at " << off << "+" << len;
  }

  // Concurrent readers on one source (ReadAt is thread-safe).
  std::string concurrent(expected_.size(), '\0');
  const uint64_t piece = 1 << 20;
  std::atomic<uint64_t> next{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (uint64_t off; (off = next.fetch_add(piece)) < concurrent.size();) {
        const uint64_t len = std::min<uint64_t>(piece, concurrent.size() - off);
        if (!s.ReadAt(off, len, concurrent.data() + off, never).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(concurrent == expected_);
}

TEST_F(S3Integration, EnvironmentCredentialsAndEndpoint) {
  ScopedEnv env({{"AWS_ENDPOINT_URL", endpoint_}});
  auto source = OpenSource(Uri("data/model.bin"), StorageOptions{});
  ASSERT_TRUE(source.ok()) << source.status().message();
  std::string buf(1000, '\0');
  ASSERT_TRUE((*source)->ReadAt(5000, 1000, buf.data(), std::atomic<bool>{false}).ok());
  EXPECT_TRUE(buf == expected_.substr(5000, 1000));
}

TEST_F(S3Integration, ExplicitCredentialsAreUsedEvenWhenTheEnvironmentHasGoodOnes) {
  StorageOptions o = Explicit(endpoint_);
  o.settings["s3.secret_access_key"] = "definitely-not-the-secret";
  auto source = OpenSource(Uri("data/model.bin"), o);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(S3Integration, WrongSecretIsAClear403) {
  StorageOptions o = Explicit(endpoint_);
  o.settings["s3.secret_access_key"] = "WRONG-SECRET-VALUE";
  auto source = OpenSource(Uri("data/model.bin"), o);
  ASSERT_FALSE(source.ok());
  const std::string& m = source.status().message();
  EXPECT_EQ(source.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(m.find(Uri("data/model.bin")), std::string::npos) << m;
  EXPECT_NE(m.find("HTTP 403"), std::string::npos) << m;
  EXPECT_NE(m.find("SignatureDoesNotMatch"), std::string::npos) << m;
  EXPECT_EQ(m.find("WRONG-SECRET-VALUE"), std::string::npos) << m;
  EXPECT_EQ(m.find(secret_), std::string::npos) << m;
}

TEST_F(S3Integration, UnknownAccessKeyIsA403) {
  StorageOptions o = Explicit(endpoint_);
  o.settings["s3.access_key_id"] = "NOSUCHKEYID";
  auto source = OpenSource(Uri("data/model.bin"), o);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kPermissionDenied) << source.status().message();
  EXPECT_NE(source.status().message().find("403"), std::string::npos);
}

TEST_F(S3Integration, MissingObjectIsNotFoundNamingTheUri) {
  auto source = OpenSource(Uri("data/no-such-object.bin"), Explicit(endpoint_));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kNotFound);
  EXPECT_NE(source.status().message().find(Uri("data/no-such-object.bin")), std::string::npos);
  EXPECT_NE(source.status().message().find("404"), std::string::npos);

  auto bucket = OpenSource("s3://no-such-bucket-xyz/k", Explicit(endpoint_));
  ASSERT_FALSE(bucket.ok());
  EXPECT_EQ(bucket.status().code(), StatusCode::kNotFound) << bucket.status().message();
}

TEST_F(S3Integration, UnreachableEndpointFailsWithinTheRetryBudget) {
  const auto start = Clock::now();
  auto source = OpenSource(Uri("data/model.bin"), Explicit("http://127.0.0.1:1"));
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(source.status().message().find("127.0.0.1:1"), std::string::npos);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(15));
}

TEST_F(S3Integration, KeysThatNeedEncoding) {
  const std::string key = "odd keys/\xC3\xBCn\xC3\xAF code+plus=&.bin";
  auto source = OpenSource(Uri(key), Explicit(endpoint_));
  ASSERT_TRUE(source.ok()) << source.status().message();
  auto all = ReadAll(**source, 1 << 20);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, "odd key contents");
  auto listed = ListUri(Uri("odd keys"), Explicit(endpoint_), false);
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].uri, Uri(key));
  EXPECT_EQ((*listed)[0].size, 16u);
}

TEST_F(S3Integration, ListingPaginatesPastOneThousandKeys) {
  auto all = ListUri(Uri("many"), Explicit(endpoint_), /*recursive=*/true);
  ASSERT_TRUE(all.ok()) << all.status().message();
  ASSERT_EQ(all->size(), 1101u);
  std::map<std::string, uint64_t> sizes;
  for (const ObjectInfo& o : *all) {
    EXPECT_FALSE(o.is_directory);
    EXPECT_EQ(o.uri, Uri("many/" + o.relative));
    sizes[o.relative] = o.size;
  }
  EXPECT_EQ(sizes.at("key-00042.txt"), std::string("object 42\n").size());
  EXPECT_EQ(sizes.at("key-01099.txt"), std::string("object 1099\n").size());
  EXPECT_EQ(sizes.at("sub/nested.txt"), 6u);

  auto top = ListUri(Uri("many/"), Explicit(endpoint_), /*recursive=*/false);
  ASSERT_TRUE(top.ok()) << top.status().message();
  ASSERT_EQ(top->size(), 1101u);
  int dirs = 0;
  for (const ObjectInfo& o : *top) {
    if (o.is_directory) {
      ++dirs;
      EXPECT_EQ(o.relative, "sub/");
    }
  }
  EXPECT_EQ(dirs, 1);

  auto missing = ListUri("s3://no-such-bucket-xyz/p", Explicit(endpoint_), true);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().message();
}

TEST_F(S3Integration, VirtualHostedAddressingOnLoopback) {
  // BUCKET.localhost resolves to loopback inside curl; the server knows the "localhost"
  // domain, so a request that reaches the right object proves virtual-hosted style works.
  const std::string port = endpoint_.substr(endpoint_.rfind(':') + 1);
  ScopedEnv env({{"RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "1"}});
  auto source = OpenSource(Uri("data/model.bin"), Explicit("http://localhost:" + port));
  ASSERT_TRUE(source.ok()) << source.status().message();
  std::string buf(4096, '\0');
  ASSERT_TRUE((*source)->ReadAt(777, 4096, buf.data(), std::atomic<bool>{false}).ok());
  EXPECT_TRUE(buf == expected_.substr(777, 4096));
  auto listed = ListUri(Uri("many"), Explicit("http://localhost:" + port), true);
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  EXPECT_EQ(listed->size(), 1101u);
}

TEST_F(S3Integration, UnsignedRequestsForPublicReads) {
  ScopedEnv env({{"RUNAI_STREAMER_S3_UNSIGNED", "1"},
                 {"AWS_ACCESS_KEY_ID", std::nullopt},
                 {"AWS_SECRET_ACCESS_KEY", std::nullopt},
                 {"AWS_ENDPOINT_URL", endpoint_}});
  auto source = OpenSource(Uri("data/model.bin"), StorageOptions{});
  ASSERT_TRUE(source.ok()) << source.status().message();
  std::string buf(100, '\0');
  ASSERT_TRUE((*source)->ReadAt(0, 100, buf.data(), std::atomic<bool>{false}).ok());
  EXPECT_TRUE(buf == expected_.substr(0, 100));
}

TEST_F(S3Integration, FaultProxyCutsErrorsAndStallsStillGiveExactBytes) {
  if (proxy_.empty()) GTEST_SKIP() << "TENSORSTREAM_TEST_S3_PROXY_ENDPOINT not set";
  // The stall of the proxy's plan is cut by this request timeout, then resumed.
  ScopedEnv env({{"RUNAI_STREAMER_S3_REQUEST_TIMEOUT_MS", "1500"}});
  const auto start = Clock::now();
  auto source = OpenSource(Uri("data/model.bin"), Explicit(proxy_));
  ASSERT_TRUE(source.ok()) << source.status().message();
  auto all = ReadAll(**source, 2 << 20);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_TRUE(*all == expected_);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(90));
}

TEST_F(S3Integration, FaultProxyPersistent503RunsOutTheBudget) {
  if (proxy_.empty()) GTEST_SKIP() << "TENSORSTREAM_TEST_S3_PROXY_ENDPOINT not set";
  // Throttling is retried until the time budget runs out (not after a count): shorten it.
  ScopedEnv env({{"TENSORSTREAM_HTTP_RETRY_BUDGET_MS", "3000"}});
  const auto start = Clock::now();
  auto source = OpenSource(Uri("data/always-503.bin"), Explicit(proxy_));
  ASSERT_FALSE(source.ok());
  const std::string& m = source.status().message();
  EXPECT_EQ(source.status().code(), StatusCode::kUnavailable) << m;
  EXPECT_NE(m.find("HTTP 503"), std::string::npos) << m;
  EXPECT_NE(m.find("attempts"), std::string::npos) << m;
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(20));
}

TEST_F(S3Integration, FaultProxyCancelDuringAStall) {
  if (proxy_.empty()) GTEST_SKIP() << "TENSORSTREAM_TEST_S3_PROXY_ENDPOINT not set";
  auto source = OpenSource(Uri("data/stall-forever.bin"), Explicit(proxy_));
  ASSERT_TRUE(source.ok()) << source.status().message();
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cancel = true;
  });
  std::string buf(1000, '\0');
  const auto start = Clock::now();
  const Status s = (*source)->ReadAt(0, 1000, buf.data(), cancel);
  const auto elapsed = Clock::now() - start;
  canceller.join();
  EXPECT_EQ(s.code(), StatusCode::kCancelled) << s.message();
  EXPECT_LT(elapsed, std::chrono::milliseconds(2000));
}

}  // namespace
}  // namespace tensorstream
