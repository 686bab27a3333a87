// The libcurl layer against a scripted HTTP server on 127.0.0.1 inside the test process:
// ranged reads, resume after a connection cut mid-body, retries of 5xx with a bounded
// budget, fail-fast 404, stalls cut by the request timeout, cancellation, servers that
// ignore Range. No other process or network is involved.
#include "storage/http/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

namespace tensorstream::http {
namespace {

using Clock = std::chrono::steady_clock;

struct SeenRequest {
  std::string method;
  std::string path;
  std::string range;  // the Range header's value, "" when absent
};

// A one-port HTTP/1.1 server. Each request goes to `handler`, which writes the whole reply
// to the socket itself (so it can misbehave: cut, stall) and returns whether to keep the
// connection open.
class ScriptedServer {
 public:
  using Handler = std::function<bool(int fd, const SeenRequest& req, int index)>;

  explicit ScriptedServer(Handler handler) : handler_(std::move(handler)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
    }
    socklen_t len = sizeof(addr);
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
  }

  ~ScriptedServer() {
    stopping_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    acceptor_.join();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (std::thread& t : conn_threads_) t.join();
  }

  std::string url(const std::string& path = "/obj") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<SeenRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  size_t connections() {
    std::lock_guard<std::mutex> lock(mu_);
    return conn_threads_.size();
  }
  // For handlers that stall: true once the server is being torn down.
  bool stopping() const { return stopping_; }

 private:
  void AcceptLoop() {
    while (!stopping_) {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) return;
      std::lock_guard<std::mutex> lock(mu_);
      conn_fds_.push_back(fd);
      conn_threads_.emplace_back([this, fd] { Serve(fd); });
    }
  }

  void Serve(int fd) {
    std::string buffer;
    char chunk[4096];
    while (!stopping_) {
      size_t end;
      while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
        const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
        if (n <= 0) {
          ::close(fd);
          return;
        }
        buffer.append(chunk, static_cast<size_t>(n));
      }
      const std::string head = buffer.substr(0, end);
      buffer.erase(0, end + 4);
      SeenRequest req;
      const size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
      req.method = head.substr(0, sp1);
      req.path = head.substr(sp1 + 1, sp2 - sp1 - 1);
      const size_t r = head.find("\r\nRange: ");
      if (r != std::string::npos) {
        const size_t v = r + 9;
        req.range = head.substr(v, head.find("\r\n", v) - v);
      }
      int index;
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen_.push_back(req);
        index = static_cast<int>(seen_.size()) - 1;
      }
      if (!handler_(fd, req, index)) break;
    }
    ::close(fd);
  }

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> conn_fds_;
  std::vector<std::thread> conn_threads_;
  std::vector<SeenRequest> seen_;
};

void SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string TestObject(size_t size) {
  std::string s(size, '\0');
  uint32_t x = 12345;
  for (char& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

// Parses "bytes=A-B".
std::pair<uint64_t, uint64_t> ParseRange(const std::string& range) {
  unsigned long long a = 0, b = 0;
  std::sscanf(range.c_str(), "bytes=%llu-%llu", &a, &b);
  return {a, b};
}

// Sends a correct 206 for req.range; when cut_after is set, sends only that many body
// bytes (after the full Content-Length was promised) and drops the connection.
bool Send206(int fd, const SeenRequest& req, const std::string& object,
             std::optional<size_t> cut_after = std::nullopt) {
  const auto [a, b] = ParseRange(req.range);
  const std::string body = object.substr(a, b - a + 1);
  SendAll(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nContent-Range: bytes " + std::to_string(a) + "-" + std::to_string(b) + "/" +
                  std::to_string(object.size()) + "\r\n\r\n");
  if (cut_after) {
    SendAll(fd, std::string_view(body).substr(0, *cut_after));
    return false;
  }
  SendAll(fd, body);
  return true;
}

bool SendError(int fd, int status, const std::string& code, const std::string& message) {
  const std::string body = "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code><Message>" +
                           message + "</Message></Error>";
  SendAll(fd, "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/xml\r\n" +
                  "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  return true;
}

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
  o.max_retries = 3;
  const Status s = Get(server, 0, 10, &got, o);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("SlowDown"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("after 4 attempts"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(server.url()), std::string::npos) << s.message();
  EXPECT_EQ(server.requests().size(), 4u);
  EXPECT_EQ(server.connections(), 1u);  // one thread, one kept-alive connection
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
