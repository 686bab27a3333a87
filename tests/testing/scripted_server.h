// A scripted HTTP/1.1 server on 127.0.0.1 inside the test process, for tests of the HTTP
// layer and of the object-store backends against servers that misbehave on purpose
// (cut, stall, lie about sizes, answer garbage). No other process or network is involved.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "storage/http/http_client.h"

namespace tensorstream::testing {

struct SeenRequest {
  std::string method;
  std::string path;   // the request target exactly as sent (query included)
  std::string range;  // the Range header's value, "" when absent
  std::string head;   // the request line and headers, as received
  std::string body;   // Content-Length bytes after the headers

  // The value of header `name` (case-insensitive), or "".
  std::string Header(std::string_view name) const;
};

// Each request goes to `handler`, which writes the whole reply to the socket itself (so it
// can misbehave) and returns whether to keep the connection open. Handlers run on one
// thread per connection.
class ScriptedServer {
 public:
  using Handler = std::function<bool(int fd, const SeenRequest& req, int index)>;

  explicit ScriptedServer(Handler handler);
  ~ScriptedServer();
  ScriptedServer(const ScriptedServer&) = delete;
  ScriptedServer& operator=(const ScriptedServer&) = delete;

  std::string url(const std::string& path = "/obj") const;
  int port() const { return port_; }
  std::vector<SeenRequest> requests();
  size_t connections();
  // For handlers that stall: true once the server is being torn down.
  bool stopping() const { return stopping_; }

 private:
  void AcceptLoop();
  void Serve(int fd);

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

void SendAll(int fd, std::string_view data);

// HTTP options for tests against a scripted server: short backoff, one retry.
http::HttpOptions FastHttpOptions();

// `size` reproducible pseudo-random bytes.
std::string TestObject(size_t size);

// Parses "bytes=A-B".
std::pair<uint64_t, uint64_t> ParseRange(const std::string& range);

// Sends a correct 206 for req.range; when cut_after is set, sends only that many body
// bytes (after the full Content-Length was promised) and drops the connection.
bool Send206(int fd, const SeenRequest& req, const std::string& object,
             std::optional<size_t> cut_after = std::nullopt, const std::string& extra_headers = "");

// A complete reply with `body`; `extra_headers` are whole lines ("Name: value\r\n").
bool SendReply(int fd, int status, const std::string& content_type, const std::string& body,
               const std::string& extra_headers = "");

// An S3- or Azure-style XML error reply.
bool SendError(int fd, int status, const std::string& code, const std::string& message);

// The value of `name` in an application/x-www-form-urlencoded body, decoded; "" when absent.
std::string FormField(const std::string& body, const std::string& name);

}  // namespace tensorstream::testing
