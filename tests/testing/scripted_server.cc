#include "scripted_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace tensorstream::testing {

std::string SeenRequest::Header(std::string_view name) const {
  size_t at = head.find("\r\n");
  while (at != std::string::npos) {
    const size_t start = at + 2;
    const size_t end = head.find("\r\n", start);
    const std::string line = head.substr(start, end == std::string::npos ? end : end - start);
    const size_t colon = line.find(':');
    if (colon == name.size() && ::strncasecmp(line.data(), name.data(), name.size()) == 0) {
      size_t value = colon + 1;
      while (value < line.size() && line[value] == ' ') ++value;
      return line.substr(value);
    }
    at = end;
  }
  return "";
}

ScriptedServer::ScriptedServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;  // a free port
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    std::fprintf(stderr, "ScriptedServer: cannot listen on loopback\n");
    std::abort();
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

ScriptedServer::~ScriptedServer() {
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

std::string ScriptedServer::url(const std::string& path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<SeenRequest> ScriptedServer::requests() {
  std::lock_guard<std::mutex> lock(mu_);
  return seen_;
}

size_t ScriptedServer::connections() {
  std::lock_guard<std::mutex> lock(mu_);
  return conn_threads_.size();
}

void ScriptedServer::AcceptLoop() {
  while (!stopping_) {
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    conn_fds_.push_back(fd);
    conn_threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void ScriptedServer::Serve(int fd) {
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
    SeenRequest req;
    req.head = buffer.substr(0, end);
    buffer.erase(0, end + 4);
    const size_t sp1 = req.head.find(' '), sp2 = req.head.find(' ', sp1 + 1);
    req.method = req.head.substr(0, sp1);
    req.path = req.head.substr(sp1 + 1, sp2 - sp1 - 1);
    req.range = req.Header("Range");
    const size_t length = std::strtoul(req.Header("Content-Length").c_str(), nullptr, 10);
    while (buffer.size() < length) {
      const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) {
        ::close(fd);
        return;
      }
      buffer.append(chunk, static_cast<size_t>(n));
    }
    req.body = buffer.substr(0, length);
    buffer.erase(0, length);
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

std::pair<uint64_t, uint64_t> ParseRange(const std::string& range) {
  unsigned long long a = 0, b = 0;
  std::sscanf(range.c_str(), "bytes=%llu-%llu", &a, &b);
  return {a, b};
}

bool Send206(int fd, const SeenRequest& req, const std::string& object,
             std::optional<size_t> cut_after, const std::string& extra_headers) {
  const auto [a, b] = ParseRange(req.range);
  const std::string body = object.substr(a, b - a + 1);
  SendAll(fd, "HTTP/1.1 206 Partial Content\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nContent-Range: bytes " + std::to_string(a) + "-" + std::to_string(b) + "/" +
                  std::to_string(object.size()) + "\r\n" + extra_headers + "\r\n");
  if (cut_after) {
    SendAll(fd, std::string_view(body).substr(0, *cut_after));
    return false;
  }
  SendAll(fd, body);
  return true;
}

http::HttpOptions FastHttpOptions() {
  http::HttpOptions o;
  o.backoff_base_ms = 5;
  o.backoff_max_ms = 20;
  o.max_retries = 1;
  return o;
}

bool SendReply(int fd, int status, const std::string& content_type, const std::string& body,
               const std::string& extra_headers) {
  SendAll(fd, "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: " + content_type +
                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" + extra_headers +
                  "\r\n" + body);
  return true;
}

bool SendError(int fd, int status, const std::string& code, const std::string& message) {
  return SendReply(fd, status, "application/xml",
                   "<?xml version=\"1.0\"?><Error><Code>" + code + "</Code><Message>" + message +
                       "</Message></Error>");
}

std::string FormField(const std::string& body, const std::string& name) {
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = std::min(body.find('&', at), body.size());
    const std::string pair = body.substr(at, end - at);
    if (pair.rfind(name + "=", 0) == 0) {
      std::string value;
      for (size_t i = name.size() + 1; i < pair.size(); ++i) {
        if (pair[i] == '%' && i + 2 < pair.size()) {
          value.push_back(
              static_cast<char>(std::strtol(pair.substr(i + 1, 2).c_str(), nullptr, 16)));
          i += 2;
        } else {
          value.push_back(pair[i] == '+' ? ' ' : pair[i]);
        }
      }
      return value;
    }
    at = end + 1;
  }
  return "";
}

}  // namespace tensorstream::testing
