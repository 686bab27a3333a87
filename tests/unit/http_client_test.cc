// The libcurl layer against a scripted HTTP server on 127.0.0.1 inside the test process:
// ranged reads, resume after a connection cut mid-body, retries of 5xx with a bounded
// budget, fail-fast 404, stalls cut by the request timeout, cancellation, servers that
// ignore Range. No other process or network is involved.
#include "storage/http/http_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "scripted_server.h"

namespace tensorstream::http {
namespace {

using Clock = std::chrono::steady_clock;
using testing::ParseRange;
using testing::ScriptedServer;
using testing::SeenRequest;
using testing::Send206;
using testing::SendAll;
using testing::SendError;
using testing::TestObject;

HttpOptions FastOptions() {
  HttpOptions o;
  o.backoff_base_ms = 10;
  o.backoff_max_ms = 40;
  o.connect_timeout_ms = 2000;
  return o;
}

Status DescribeForTest(const Response& r) {
  return Status(r.status == 404 ? StatusCode::kNotFound : StatusCode::kUnavailable,
                "HTTP " + std::to_string(r.status) + " " + r.body);
}

Status Get(const ScriptedServer& server, uint64_t offset, uint64_t length, std::string* out,
           const HttpOptions& options = FastOptions(), const std::atomic<bool>* cancel = nullptr) {
  static const std::atomic<bool> kNever{false};
  out->assign(length, '\0');
  Request req;
  req.url = server.url();
  return GetRange(req, offset, length, out->data(), nullptr, &DescribeForTest, options,
                  cancel ? *cancel : kNever);
}

TEST(HttpClient, RangedGetIsByteExactAndReusesTheConnection) {
  const std::string object = TestObject(1 << 20);
  ScriptedServer server(
      [&](int fd, const SeenRequest& req, int) { return Send206(fd, req, object); });
  std::string got;
  for (const auto& [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 1}, {17, 70000}, {(1 << 20) - 5, 5}, {0, 1 << 20}}) {
    ASSERT_TRUE(Get(server, off, len, &got).ok());
    EXPECT_EQ(got, object.substr(off, len));
  }
  EXPECT_EQ(server.requests().size(), 4u);
  EXPECT_EQ(server.connections(), 1u);  // one thread, one kept-alive connection
}

TEST(HttpClient, ConcurrentThreadsAndLaterThreadsShareThePooledConnections) {
  const std::string object = TestObject(1 << 20);
  ScriptedServer server(
      [&](int fd, const SeenRequest& req, int) { return Send206(fd, req, object); });
  constexpr int kThreads = 8;
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < kThreads; ++t) {
    readers.emplace_back([&, t] {
      std::string got;
      for (int i = 0; i < 25; ++i) {
        const uint64_t offset = static_cast<uint64_t>(t * 4099 + i * 257);
        if (!Get(server, offset, 65536, &got).ok() || got != object.substr(offset, 65536)) {
          ++failures;
        }
      }
    });
  }
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(failures.load(), 0);
  const size_t opened = server.connections();
  EXPECT_LE(opened, static_cast<size_t>(kThreads));  // at most one per request in flight
  // A thread started after the others exited reuses one of their connections.
  std::thread later([&] {
    std::string got;
    EXPECT_TRUE(Get(server, 0, 100, &got).ok());
  });
  later.join();
  EXPECT_EQ(server.connections(), opened);
}

TEST(HttpClient, ResumesFromTheLastByteAfterACutMidBody) {
  const std::string object = TestObject(300000);
  ScriptedServer server([&](int fd, const SeenRequest& req, int index) {
    // The first two attempts die after 100,000 and 50,000 bytes.
    if (index == 0) return Send206(fd, req, object, 100000);
    if (index == 1) return Send206(fd, req, object, 50000);
    return Send206(fd, req, object);
  });
  std::string got;
  const Status s = Get(server, 1000, 250000, &got);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(got, object.substr(1000, 250000));
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].range, "bytes=1000-250999");
  EXPECT_EQ(seen[1].range, "bytes=101000-250999");
  EXPECT_EQ(seen[2].range, "bytes=151000-250999");
}

TEST(HttpClient, Retries503ThenSucceeds) {
  const std::string object = TestObject(5000);
  ScriptedServer server([&](int fd, const SeenRequest& req, int index) {
    if (index < 2) return SendError(fd, 503, "SlowDown", "Reduce your request rate.");
    return Send206(fd, req, object);
  });
  std::string got;
  ASSERT_TRUE(Get(server, 0, 5000, &got).ok());
  EXPECT_EQ(got, object);
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpClient, Persistent503FailsAfterTheBudgetWithTheServersMessage) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    return SendError(fd, 503, "SlowDown", "Reduce your request rate.");
  });
  std::string got;
  HttpOptions o = FastOptions();
  o.max_retries = 3;  // throttling does not use up the count: the attempts do
  o.max_attempts = 9;
  const Status s = Get(server, 0, 10, &got, o);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("SlowDown"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("after 9 attempts"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(server.url()), std::string::npos) << s.message();
  EXPECT_EQ(server.requests().size(), 9u);
  EXPECT_EQ(server.connections(), 1u);  // one thread, one kept-alive connection
}

TEST(HttpClient, AThrottlingStormIsRiddenOutUntilTheTimeBudget) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    return SendError(fd, 429, "TooManyRequests", "Slow down.");
  });
  std::string got;
  HttpOptions o = FastOptions();
  o.max_retries = 1;
  o.retry_budget_ms = 300;
  const auto start = std::chrono::steady_clock::now();
  const Status s = Get(server, 0, 10, &got, o);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  EXPECT_GT(server.requests().size(), 2u);  // more than max_retries allows for other errors
}

TEST(HttpClient, A500IsRetriedOnlyMaxRetriesTimes) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    return SendError(fd, 500, "InternalError", "We encountered an internal error.");
  });
  std::string got;
  HttpOptions o = FastOptions();
  o.max_retries = 2;
  const Status s = Get(server, 0, 10, &got, o);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.message();
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(HttpClient, TheRetryBudgetComesFromTheEnvironment) {
  using Vars = std::map<std::string, std::string>;
  EXPECT_EQ(OptionsFromEnvironment(MapEnvironment(Vars{{"TENSORSTREAM_HTTP_RETRY_BUDGET_MS", "2500"}}))
                .retry_budget_ms,
            2500);
  EXPECT_EQ(OptionsFromEnvironment(MapEnvironment(Vars{{"TENSORSTREAM_HTTP_RETRY_BUDGET_MS", "-1"}}))
                .retry_budget_ms,
            HttpOptions{}.retry_budget_ms);
  EXPECT_EQ(OptionsFromEnvironment(MapEnvironment(Vars{{"TENSORSTREAM_HTTP_STALL_SECONDS", "3"}}))
                .low_speed_time_s,
            3);
  EXPECT_NE(OptionsKey(MapEnvironment(Vars{{"TENSORSTREAM_HTTP_RETRY_BUDGET_MS", "1"}})),
            OptionsKey(MapEnvironment(Vars{{"TENSORSTREAM_HTTP_RETRY_BUDGET_MS", "2"}})));
}

TEST(HttpClient, NotFoundFailsFast) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    return SendError(fd, 404, "NoSuchKey", "The specified key does not exist.");
  });
  std::string got;
  const Status s = Get(server, 0, 10, &got);
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("NoSuchKey"), std::string::npos);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(HttpClient, ServerIgnoringRangeStillYieldsTheRightBytes) {
  const std::string object = TestObject(100000);
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(object.size()) + "\r\n\r\n" +
                    object);
    return true;
  });
  std::string got;
  ASSERT_TRUE(Get(server, 4321, 5000, &got).ok());
  EXPECT_EQ(got, object.substr(4321, 5000));
}

TEST(HttpClient, WrongContentRangeIsAnErrorNotWrongBytes) {
  const std::string object = TestObject(1000);
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    SendAll(fd,
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes "
            "0-9/1000\r\n\r\n" +
                object.substr(0, 10));
    return true;
  });
  std::string got;
  const Status s = Get(server, 100, 10, &got);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
}

TEST(HttpClient, StallIsCutByTheTimeoutAndRetried) {
  const std::string object = TestObject(20000);
  ScriptedServer server([&](int fd, const SeenRequest& req, int index) {
    if (index == 0) {  // headers and a little body, then silence
      const auto [a, b] = ParseRange(req.range);
      SendAll(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: " + std::to_string(b - a + 1) +
                      "\r\nContent-Range: bytes " + std::to_string(a) + "-" + std::to_string(b) +
                      "/20000\r\n\r\n" + object.substr(a, 100));
      for (int i = 0; i < 100 && !server.stopping(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      return false;
    }
    return Send206(fd, req, object);
  });
  HttpOptions o = FastOptions();
  o.request_timeout_ms = 500;
  std::string got;
  const auto start = Clock::now();
  const Status s = Get(server, 0, 20000, &got, o);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(got, object);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(server.requests()[1].range, "bytes=100-19999");
}

TEST(HttpClient, CancelDuringAStallReturnsWithinASecond) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    SendAll(fd,
            "HTTP/1.1 206 Partial Content\r\nContent-Length: 1000\r\nContent-Range: bytes "
            "0-999/1000\r\n\r\n");
    for (int i = 0; i < 200 && !server.stopping(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  });
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel = true;
  });
  std::string got;
  const auto start = Clock::now();
  const Status s = Get(server, 0, 1000, &got, FastOptions(), &cancel);
  const auto elapsed = Clock::now() - start;
  canceller.join();
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
  EXPECT_LT(elapsed, std::chrono::milliseconds(1800));
}

TEST(HttpClient, ConnectionRefusedIsUnavailableAfterRetries) {
  int port;
  {  // a port nobody listens on any more
    ScriptedServer server([](int, const SeenRequest&, int) { return false; });
    port = std::stoi(server.url().substr(17, 5));
  }
  Request req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/x?X-Amz-Signature=secret";
  HttpOptions o = FastOptions();
  o.max_retries = 2;
  auto r = Perform(req, nullptr, o, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("after 3 attempts"), std::string::npos);
  EXPECT_EQ(r.status().message().find("secret"), std::string::npos) << r.status().message();
}

TEST(HttpClient, PerformReturnsStatusHeadersAndBody) {
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    if (req.method == "HEAD") {
      SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 12345\r\nX-Thing: v\r\n\r\n");
    } else {
      SendAll(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\n\r\nnope!");
    }
    return true;
  });
  Request head;
  head.method = "HEAD";
  head.url = server.url();
  auto r = Perform(head, nullptr, FastOptions(), nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  ASSERT_NE(r->FindHeader("content-length"), nullptr);
  EXPECT_EQ(*r->FindHeader("content-length"), "12345");
  EXPECT_EQ(*r->FindHeader("x-thing"), "v");
  Request get;
  get.url = server.url();
  r = Perform(get, nullptr, FastOptions(), nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, "nope!");
}

TEST(HttpClient, PrepareRunsBeforeEveryAttempt) {
  const std::string object = TestObject(1000);
  std::vector<std::string> ranges_seen_by_prepare;
  ScriptedServer server([&](int fd, const SeenRequest& req, int index) {
    if (index == 0) return Send206(fd, req, object, 10);
    return Send206(fd, req, object);
  });
  std::string got(1000, '\0');
  Request req;
  req.url = server.url();
  const std::atomic<bool> never{false};
  const Status s = GetRange(
      req, 0, 1000, got.data(),
      [&](Request& r) {
        for (const Header& h : r.headers) {
          if (h.name == "Range") ranges_seen_by_prepare.push_back(h.value);
        }
        return Status::Ok();
      },
      &DescribeForTest, FastOptions(), never);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(ranges_seen_by_prepare, (std::vector<std::string>{"bytes=0-999", "bytes=10-999"}));
}

TEST(HttpClient, ABodyThatEndsInAnErrorAfterEveryWantedByteSucceeds) {
  // The server promises more than it sends (Content-Length 20, 10 bytes) and cuts: every
  // byte asked for arrived, so this is a success, never a retry with an inverted range.
  const std::string object = TestObject(10);
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    const auto [a, b] = ParseRange(req.range);
    SendAll(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: 20\r\nContent-Range: bytes " +
                    std::to_string(a) + "-" + std::to_string(b) + "/10\r\n\r\n" +
                    object.substr(a, b - a + 1));
    return false;
  });
  std::string got;
  const auto start = Clock::now();
  ASSERT_TRUE(Get(server, 0, 10, &got).ok());
  EXPECT_EQ(got, object);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  for (const SeenRequest& r : server.requests()) {
    const auto [a, b] = ParseRange(r.range);
    EXPECT_LE(a, b) << "inverted range sent: " << r.range;
  }
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(HttpClient, RetriesAreBoundedInTimeNotOnlyInAttempts) {
  // Each attempt delivers a few bytes and stalls: progress resets the retry count, so only
  // a bound in time stops this.
  const std::string object = TestObject(1 << 20);
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    const auto [a, b] = ParseRange(req.range);
    SendAll(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: " + std::to_string(b - a + 1) +
                    "\r\nContent-Range: bytes " + std::to_string(a) + "-" + std::to_string(b) +
                    "/" + std::to_string(object.size()) + "\r\n\r\n" + object.substr(a, 100));
    return false;  // cut after 100 bytes
  });
  HttpOptions o = FastOptions();
  o.retry_budget_ms = 1500;
  std::string got;
  const auto start = Clock::now();
  const Status s = Get(server, 0, object.size(), &got, o);
  EXPECT_FALSE(s.ok());
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
  EXPECT_NE(s.message().find("gave up after"), std::string::npos) << s.message();
}

TEST(HttpClient, AMalformedReplyOnAReusedConnectionIsRetriedOnAFreshOne) {
  const std::string object = TestObject(100);
  ScriptedServer server([&](int fd, const SeenRequest& req, int index) {
    if (index == 1) {  // the second request, on the kept-alive connection: garbage
      SendAll(fd, "XTTP/9.9 ??? garbage\r\n\r\n");
      return false;
    }
    return Send206(fd, req, object);
  });
  std::string got;
  ASSERT_TRUE(Get(server, 0, 50, &got).ok());
  const Status s = Get(server, 50, 50, &got);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(got, object.substr(50));
  EXPECT_GE(server.connections(), 2u);
}

TEST(HttpClient, CredentialsInTheUrlOrAProxyNeverReachAMessage) {
  int port;
  {
    ScriptedServer gone([](int, const SeenRequest&, int) { return false; });
    port = gone.port();
  }
  HttpOptions o = FastOptions();
  o.max_retries = 1;
  Request req;
  req.url = "http://user:hunter2-secret@127.0.0.1:" + std::to_string(port) + "/bucket/key";
  auto r = Perform(req, nullptr, o, nullptr);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("hunter2"), std::string::npos) << r.status().message();
  std::string got;
  const std::atomic<bool> never{false};
  got.resize(10);
  const Status s = GetRange(req, 0, 10, got.data(), nullptr, &DescribeForTest, o, never);
  EXPECT_EQ(s.message().find("hunter2"), std::string::npos) << s.message();
  // A proxy with credentials (curl reads http_proxy itself).
  ::setenv("http_proxy",
           ("http://proxyuser:proxy-secret@127.0.0.1:" + std::to_string(port)).c_str(), 1);
  req.url = "http://example.invalid/bucket/key";
  r = Perform(req, nullptr, o, nullptr);
  ::unsetenv("http_proxy");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("proxy-secret"), std::string::npos) << r.status().message();
}

TEST(HttpHelpers, BackoffGrowsIsCappedAndJittered) {
  EXPECT_EQ(BackoffMs(0, 100, 1000, 0.0), 50);
  EXPECT_EQ(BackoffMs(0, 100, 1000, 0.999), 99);
  EXPECT_EQ(BackoffMs(3, 100, 1000, 0.0), 400);
  EXPECT_EQ(BackoffMs(10, 100, 1000, 0.0), 500);
  EXPECT_LE(BackoffMs(30, 100, 1000, 0.999), 1000);
}

TEST(HttpHelpers, RetryableStatuses) {
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L}) EXPECT_TRUE(IsRetryableHttpStatus(s)) << s;
  for (long s : {200L, 206L, 400L, 401L, 403L, 404L, 416L, 501L}) {
    EXPECT_FALSE(IsRetryableHttpStatus(s)) << s;
  }
}

TEST(HttpHelpers, RedactAndEncode) {
  EXPECT_EQ(RedactUrl("https://user:pw@host:9/a/b?X-Amz-Signature=s#f"), "https://host:9/a/b");
  EXPECT_EQ(RedactUrl("http://h/k@x"), "http://h/k@x");
  EXPECT_EQ(UriEncode("a b/c~d+e", false), "a%20b/c~d%2Be");
  EXPECT_EQ(UriEncode("a/b", true), "a%2Fb");
  EXPECT_EQ(UriDecode("a%20b%2Fc%zz%4"), "a b/c%zz%4");
  EXPECT_EQ(UriDecode("a+b%2B", false), "a+b+");
  EXPECT_EQ(UriDecode("a+b%2B", true), "a b+");
}

}  // namespace
}  // namespace tensorstream::http
