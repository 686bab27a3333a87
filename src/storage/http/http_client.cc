#include "storage/http/http_client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "common/text.h"

namespace tensorstream::http {

namespace {

constexpr const char* kUserAgent = "tensorstream/0.1";
// Error bodies are read into memory only to quote the server's message; cap them.
constexpr size_t kMaxErrorBodyBytes = 64 << 10;

// curl_global_init must run once before any handle exists; a function-local static is
// initialised exactly once even when many reader threads arrive together.
void EnsureCurlGlobalInit() {
  static const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)rc;  // a failure surfaces as curl_easy_init() returning null
}

// The process's shared DNS and TLS-session caches, used by every easy handle (libcurl
// locks them through the callbacks below). Connections are not in it: libcurl does not
// support sharing a connection cache between threads that transfer at the same time
// (CURLSHOPT_SHARE), and doing so crashed now and then; they live in pooled handles
// instead (HandlePool). Never destroyed: a handle may be cleaned up during exit.
class SharedCaches {
 public:
  static CURLSH* Get() {
    static SharedCaches* caches = new SharedCaches();
    return caches->share_;
  }

 private:
  SharedCaches() {
    EnsureCurlGlobalInit();
    share_ = curl_share_init();
    curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, &Lock);
    curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, &Unlock);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  static std::mutex& MutexFor(curl_lock_data data) {
    static std::mutex mutexes[CURL_LOCK_DATA_LAST];
    return mutexes[data];
  }
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void*) { MutexFor(data).lock(); }
  static void Unlock(CURL*, curl_lock_data data, void*) { MutexFor(data).unlock(); }

  CURLSH* share_ = nullptr;
};

// Idle easy handles of the process, each with its own cache of open connections. A request
// takes one and gives it back when done, so the readers of the next stream reuse the
// connections of the streams before it (taken last-in first-out: the handle a thread just
// used, with its warm connection, is the next one handed out). A handle is used by one
// thread at a time. Never destroyed, like SharedCaches.
class HandlePool {
 public:
  static HandlePool& Get() {
    static HandlePool* pool = new HandlePool();
    return *pool;
  }

  // An idle handle or a new one (null only when libcurl cannot make one). In a child made
  // by fork() the parent's handles are dropped unused: their connections are the parent's
  // sockets.
  CURL* Take() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (owner_ != getpid()) {
        idle_.clear();  // not cleaned up: that would close the parent's connections
        owner_ = getpid();
      }
      if (!idle_.empty()) {
        CURL* curl = idle_.back();
        idle_.pop_back();
        return curl;
      }
    }
    EnsureCurlGlobalInit();
    return curl_easy_init();
  }

  void Give(CURL* curl) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (owner_ == getpid() && idle_.size() < kMaxIdle) {
        idle_.push_back(curl);
        return;
      }
    }
    curl_easy_cleanup(curl);
  }

 private:
  // Each idle handle holds at most one open connection (PooledHandle), so the pool holds at
  // most this many sockets: enough for the default 16 readers several times over, few
  // against the usual descriptor limit of 1,024.
  static constexpr size_t kMaxIdle = 64;

  std::mutex mutex_;
  std::vector<CURL*> idle_;
  pid_t owner_ = getpid();
};

// A pooled handle for one attempt, reset (options cleared; open connections, DNS cache and
// TLS session IDs kept) and given back when it goes out of scope.
class PooledHandle {
 public:
  PooledHandle() : curl_(HandlePool::Get().Take()) {
    if (curl_ != nullptr) {
      curl_easy_reset(curl_);
      curl_easy_setopt(curl_, CURLOPT_SHARE, SharedCaches::Get());
      // One connection per handle: a handle's requests go to one server at a time.
      curl_easy_setopt(curl_, CURLOPT_MAXCONNECTS, 1L);
    }
  }
  ~PooledHandle() {
    if (curl_ != nullptr) HandlePool::Get().Give(curl_);
  }
  PooledHandle(const PooledHandle&) = delete;
  PooledHandle& operator=(const PooledHandle&) = delete;

  CURL* get() const { return curl_; }

 private:
  CURL* curl_;
};

// RAII for a curl_slist of request headers.
class HeaderList {
 public:
  HeaderList() = default;
  ~HeaderList() { curl_slist_free_all(list_); }
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;

  void Append(const std::string& line) { list_ = curl_slist_append(list_, line.c_str()); }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

// State of one attempt, shared with curl's callbacks.
struct Attempt {
  // Response line and headers; reset at each status line (1xx interim responses).
  long status = 0;
  std::vector<Header> headers;

  // Mode 1 (GetRange): the body goes to range_dst. `skip` bytes of a 200 response are
  // dropped first (a server that ignored Range sends the object from byte 0).
  bool ranged = false;
  char* range_dst = nullptr;
  uint64_t range_first = 0;      // object offset this attempt asked for
  uint64_t range_remaining = 0;  // bytes still wanted
  uint64_t range_written = 0;    // bytes written this attempt
  uint64_t skip = 0;
  bool body_started = false;
  bool got_all = false;  // we aborted on purpose: everything wanted has arrived
  std::string range_problem;

  // Mode 2 (Perform, and error bodies of mode 1): the body into a string, bounded.
  std::string body;
  uint64_t max_body = 0;
  bool body_too_large = false;

  const std::atomic<bool>* cancelled = nullptr;
};

bool IsSuccess(long status) { return status >= 200 && status < 300; }

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t n = size * count;
  std::string_view line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {
    // "HTTP/1.1 206 Partial Content": a new response (after 100 Continue, say).
    a->headers.clear();
    const size_t sp = line.find(' ');
    a->status = sp == std::string_view::npos ? 0 : std::strtol(line.data() + sp + 1, nullptr, 10);
    return n;
  }
  const size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    a->headers.push_back({AsciiLower(TrimWhitespace(line.substr(0, colon))),
                          std::string(TrimWhitespace(line.substr(colon + 1)))});
  }
  return n;
}

const std::string* FindIn(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (h.name == name) return &h.value;
  }
  return nullptr;
}

// Decides, at the first body byte of a ranged attempt, where the body goes.
void StartRangedBody(Attempt* a) {
  a->body_started = true;
  if (a->status == 206) {
    const std::string* cr = FindIn(a->headers, "content-range");
    uint64_t first = 0, last = 0;
    if (cr == nullptr || !ParseContentRange(*cr, &first, &last)) {
      a->range_problem = "206 response without a valid Content-Range";
    } else if (first != a->range_first) {
      a->range_problem = "server sent bytes from offset " + std::to_string(first) +
                         " when asked for offset " + std::to_string(a->range_first);
    } else if (last - first + 1 < a->range_remaining) {
      a->range_problem = "server sent bytes " + std::to_string(first) + "-" + std::to_string(last) +
                         " when asked for " + std::to_string(a->range_remaining) +
                         " bytes (did the object change or shrink?)";
    }
  } else if (a->status == 200) {
    a->skip = a->range_first;  // Range ignored: the body is the whole object
  }
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* a = static_cast<Attempt*>(user);
  const size_t n = size * count;
  if (a->ranged && IsSuccess(a->status)) {
    if (!a->body_started) StartRangedBody(a);
    if (!a->range_problem.empty()) return CURL_WRITEFUNC_ERROR;
    size_t pos = 0;
    if (a->skip > 0) {
      const uint64_t s = std::min<uint64_t>(a->skip, n);
      a->skip -= s;
      pos += static_cast<size_t>(s);
    }
    const uint64_t take = std::min<uint64_t>(n - pos, a->range_remaining);
    std::memcpy(a->range_dst + a->range_written, data + pos, static_cast<size_t>(take));
    a->range_written += take;
    a->range_remaining -= take;
    if (a->range_remaining == 0 && pos + take < n) {
      // More than asked for (a 200 of the whole object): stop the transfer here.
      a->got_all = true;
      return CURL_WRITEFUNC_ERROR;
    }
    return n;
  }
  const uint64_t limit = a->ranged ? kMaxErrorBodyBytes : a->max_body;
  if (a->body.size() + n > limit) {
    if (a->ranged) {  // an error body: keep its beginning, drop the rest
      a->body.append(data, static_cast<size_t>(limit - a->body.size()));
      return n;
    }
    a->body_too_large = true;
    return CURL_WRITEFUNC_ERROR;
  }
  a->body.append(data, n);
  return n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* a = static_cast<Attempt*>(user);
  // Called about once a second even while no data flows, so cancellation is noticed
  // within a second during a stalled transfer.
  return (a->cancelled != nullptr && a->cancelled->load(std::memory_order_relaxed)) ? 1 : 0;
}

bool IsRetryableCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
      return true;
    default:
      return false;
  }
}

// Whether `code` means a reply curl could not parse. A server that answers garbage (on a
// reused connection, typically) makes curl report CURLE_UNSUPPORTED_PROTOCOL ("Received
// HTTP/0.9"); for an http(s) URL that cannot be the URL's fault.
bool IsMalformedReply(CURLcode code, const std::string& url) {
  const bool http_url = url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
  return code == CURLE_WEIRD_SERVER_REPLY || code == CURLE_BAD_CONTENT_ENCODING ||
         (code == CURLE_UNSUPPORTED_PROTOCOL && http_url);
}

bool IsTlsCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

// The Status for an attempt that ended without a usable response (`malformed`: see
// IsMalformedReply).
Status CurlFailure(CURLcode code, const char* errbuf, const std::string& what, bool malformed) {
  std::string detail = curl_easy_strerror(code);
  // curl's own text may quote a URL (a proxy's, with user:password); keep none of it.
  if (errbuf[0] != '\0') detail += ": " + RedactUrlsIn(errbuf);
  if (code == CURLE_OPERATION_TIMEDOUT) detail = "timed out (" + detail + ")";
  if (IsTlsCurlCode(code)) {
    return Unavailable(what +
                       ": TLS failure (check AWS_CA_BUNDLE and the endpoint URL): " + detail);
  }
  if (malformed) return IoError(what + ": the reply is not valid HTTP: " + detail);
  if (code == CURLE_URL_MALFORMAT || code == CURLE_UNSUPPORTED_PROTOCOL) {
    return InvalidArgument(what + ": bad URL: " + detail);
  }
  if (code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_COULDNT_CONNECT) {
    return Unavailable(what + ": cannot reach the server (check the endpoint URL): " + detail);
  }
  return Unavailable(what + ": " + detail);
}

// Sleeps `ms`, waking early (false) when cancelled.
bool SleepUnlessCancelled(long ms, const std::atomic<bool>* cancelled) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cancelled == nullptr || !cancelled->load(std::memory_order_relaxed);
}

// What a failed attempt did, for the retry count (see HttpOptions::max_retries).
enum class Failure {
  kCounted,     // failed without progress
  kProgressed,  // delivered body bytes before failing
  kThrottled,   // 429 or 503: the server asked to slow down
};

Failure FailureOfStatus(long status) {
  return IsThrottlingHttpStatus(status) ? Failure::kThrottled : Failure::kCounted;
}

// Tracks a request's retries: the count, the pauses, and the time since its first failure.
class RetryBudget {
 public:
  explicit RetryBudget(const HttpOptions& options) : options_(options) {}

  // Whether another retry may start (called after an attempt failed).
  bool Allows(int attempt_no, Failure failure) {
    if (!failed_) {
      failed_ = true;
      first_failure_ = std::chrono::steady_clock::now();
    }
    if (attempt_no >= options_.max_attempts || elapsed_ms() >= options_.retry_budget_ms) {
      return false;
    }
    if (failure == Failure::kProgressed) pauses_ = 0;  // the server works: start over
    if (failure != Failure::kCounted) return true;
    return counted_++ < options_.max_retries;
  }
  // The pause before the next retry after an attempt without progress: longer each time
  // since the last attempt that made progress.
  long NextPause() {
    return BackoffMs(pauses_++, options_.backoff_base_ms, options_.backoff_max_ms, Jitter());
  }
  // " (gave up after N attempts in S s)" for the final error.
  std::string Suffix(int attempts) const {
    if (attempts <= 1) return "";
    char text[96];
    std::snprintf(text, sizeof text, " (gave up after %d attempts in %.1f s)", attempts,
                  static_cast<double>(elapsed_ms()) / 1000.0);
    return text;
  }

 private:
  static double Jitter();
  long elapsed_ms() const {
    if (!failed_) return 0;
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::steady_clock::now() - first_failure_)
                                 .count());
  }

  const HttpOptions& options_;
  int counted_ = 0;  // retries after failures of the kCounted kind
  int pauses_ = 0;
  // A flag and a time rather than an optional: GCC 12 at -O3 misreads the optional as
  // maybe uninitialized.
  bool failed_ = false;
  std::chrono::steady_clock::time_point first_failure_{};
};

double RetryBudget::Jitter() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

// Sets the options every attempt shares. The handle was reset by PooledHandle.
void SetCommonOptions(CURL* curl, const Request& req, const HttpOptions& options,
                      const HeaderList& headers, HeaderList& connect_to, Attempt* attempt,
                      char* errbuf) {
  curl_easy_setopt(curl, CURLOPT_URL, req.url.c_str());
  // The path goes out exactly as given (and as signed): no removal of "." and ".."
  // segments, which would fetch a different object than the one named.
  curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(curl, CURLOPT_USERAGENT, kUserAgent);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, options.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options.low_speed_bytes_per_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options.low_speed_time_s);
  if (options.request_timeout_ms > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, options.request_timeout_ms);
  }
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  // Larger receive buffer than libcurl's 16 KiB: fewer, bigger writes into the
  // destination; measured to cut system time by ~40% on multi-GB ranged GETs.
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
  // Redirects are not followed: S3 redirects (wrong region) need a new signature, and the
  // error body says where to go, which is more useful to report.
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options.ca_bundle.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options.ca_bundle.c_str());
  if (!options.connect_to.empty()) {
    for (const std::string& entry : options.connect_to) connect_to.Append(entry);
    curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect_to.get());
  }
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, attempt);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, attempt);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, attempt);

  if (req.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (req.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  }
}

// Builds the header list for one attempt. curl would add a form Content-Type and
// "Expect: 100-continue" to bodies we send; empty values suppress both.
void BuildHeaders(const Request& req, HeaderList* list) {
  bool has_content_type = false;
  for (const Header& h : req.headers) {
    list->Append(h.name + ": " + h.value);
    if (AsciiLower(h.name) == "content-type") has_content_type = true;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    if (!has_content_type) list->Append("Content-Type:");
    list->Append("Expect:");
  }
}

}  // namespace

const std::string* Response::FindHeader(std::string_view name) const {
  return FindIn(headers, name);
}

HttpOptions OptionsFromEnvironment(const Environment& env) {
  HttpOptions o;
  if (auto file = NonEmpty(env, "SSL_CERT_FILE")) {
    o.ca_bundle = *file;
  } else {
    // libcurl's compiled-in default path may not exist on this system (a wheel built on
    // one distribution runs on another): look where the common ones keep their bundle.
    for (const char* path :
         {"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
          "/etc/ssl/ca-bundle.pem", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
          "/etc/ssl/cert.pem"}) {
      if (::access(path, R_OK) == 0) {
        o.ca_bundle = path;
        break;
      }
    }
  }
  const auto positive = [&](const char* name, long* out) {
    int64_t value = 0;
    if (auto text = NonEmpty(env, name); text && ParseInt64(*text, &value) && value > 0) {
      *out = static_cast<long>(std::min<int64_t>(value, std::numeric_limits<long>::max()));
    }
  };
  positive("TENSORSTREAM_HTTP_RETRY_BUDGET_MS", &o.retry_budget_ms);
  positive("TENSORSTREAM_HTTP_STALL_SECONDS", &o.low_speed_time_s);
  if (auto entries = NonEmpty(env, "TENSORSTREAM_HTTP_CONNECT_TO")) {
    std::string_view s(*entries);
    while (!s.empty()) {
      const size_t comma = s.find(',');
      const std::string_view entry = s.substr(0, comma);
      if (!entry.empty()) o.connect_to.emplace_back(entry);
      if (comma == std::string_view::npos) break;
      s.remove_prefix(comma + 1);
    }
  }
  return o;
}

std::string OptionsKey(const Environment& env) {
  std::string key;
  for (const char* name : {"SSL_CERT_FILE", "TENSORSTREAM_HTTP_RETRY_BUDGET_MS",
                           "TENSORSTREAM_HTTP_STALL_SECONDS", "TENSORSTREAM_HTTP_CONNECT_TO"}) {
    key += env.Get(name).value_or("") + '\0';
  }
  return key;
}

StatusCode StatusCodeOfHttp(long status) {
  if (status == 404) return StatusCode::kNotFound;
  if (status == 401 || status == 403) return StatusCode::kPermissionDenied;
  if (status == 400 || status == 416 || (status >= 300 && status < 400)) {
    return StatusCode::kInvalidArgument;
  }
  if (IsRetryableHttpStatus(status)) return StatusCode::kUnavailable;
  return StatusCode::kIoError;
}

bool IsRetryableHttpStatus(long status) {
  return status == 408 || status == 429 || (status >= 500 && status <= 599 && status != 501);
}

bool IsThrottlingHttpStatus(long status) { return status == 429 || status == 503; }

long BackoffMs(int retry, long base_ms, long max_ms, double jitter) {
  long cap = base_ms;
  for (int i = 0; i < retry && cap < max_ms; ++i) cap *= 2;
  cap = std::min(cap, max_ms);
  return cap / 2 + static_cast<long>(static_cast<double>(cap - cap / 2) * jitter);
}

std::string RedactUrl(std::string_view url) {
  std::string_view s = url.substr(0, url.find_first_of("?#"));
  const size_t scheme_end = s.find("://");
  const size_t host_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const size_t path_start = s.find('/', host_start);
  const size_t at = s.substr(0, path_start).find('@', host_start);
  if (at == std::string_view::npos) return std::string(s);
  return std::string(s.substr(0, host_start)) + std::string(s.substr(at + 1));
}

bool ParseContentRange(std::string_view value, uint64_t* first, uint64_t* last) {
  constexpr std::string_view kUnit = "bytes ";
  if (value.substr(0, kUnit.size()) != kUnit) return false;
  value.remove_prefix(kUnit.size());
  const auto number = [&](uint64_t* out) {
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), *out);
    if (ec != std::errc() || end == value.data()) return false;
    value.remove_prefix(static_cast<size_t>(end - value.data()));
    return true;
  };
  if (!number(first) || value.empty() || value.front() != '-') return false;
  value.remove_prefix(1);
  if (!number(last) || *last < *first) return false;
  return value.empty() || value.front() == '/';
}

std::string RedactUrlsIn(std::string_view text) {
  std::string out;
  size_t at = 0;
  while (true) {
    const size_t scheme = text.find("://", at);
    if (scheme == std::string_view::npos) break;
    const size_t host = scheme + 3;
    const size_t end = text.find_first_of(" \t\r\n'\")>", host);
    const std::string_view authority = text.substr(host, text.substr(host, end - host).find('/'));
    const size_t user = authority.rfind('@');
    out.append(text.substr(at, host - at));
    at = host;
    if (user != std::string_view::npos) {
      out.append("***@");  // user information: never shown
      at = host + user + 1;
    }
  }
  out.append(text.substr(at));
  return out;
}

std::string UriEncode(std::string_view in, bool encode_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size() * 3);
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (c == '/' && !encode_slash)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UriDecode(std::string_view in, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '%' && i + 2 < in.size()) {
      const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && in[i] == '+' ? ' ' : in[i]);
  }
  return out;
}

Result<Response> Perform(const Request& request, const PrepareFn& prepare,
                         const HttpOptions& options, const std::atomic<bool>* cancelled,
                         uint64_t max_body_bytes) {
  const std::string what = request.method + " " + RedactUrl(request.url);
  RetryBudget budget(options);
  bool fresh_connection = false;
  for (int attempt_no = 1;; ++attempt_no) {
    if (cancelled != nullptr && cancelled->load()) return Cancelled(what + ": cancelled");
    Request req = request;
    if (prepare) TS_RETURN_IF_ERROR(prepare(req));
    const PooledHandle handle;
    CURL* curl = handle.get();
    if (curl == nullptr) return Internal(what + ": curl_easy_init failed");
    Attempt a;
    a.max_body = max_body_bytes;
    a.cancelled = cancelled;
    HeaderList headers, connect_to;
    BuildHeaders(req, &headers);
    char errbuf[CURL_ERROR_SIZE] = {0};
    SetCommonOptions(curl, req, options, headers, connect_to, &a, errbuf);
    if (fresh_connection) curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
    const CURLcode code = curl_easy_perform(curl);

    if (code == CURLE_OK) {
      Response response{a.status, std::move(a.headers), std::move(a.body), attempt_no};
      if (!IsRetryableHttpStatus(response.status) ||
          !budget.Allows(attempt_no, FailureOfStatus(response.status))) {
        return response;
      }
    } else if (code == CURLE_ABORTED_BY_CALLBACK) {
      return Cancelled(what + ": cancelled");
    } else if (a.body_too_large) {
      return IoError(what + ": response body larger than " + std::to_string(max_body_bytes) +
                     " bytes");
    } else {
      const bool malformed = IsMalformedReply(code, req.url);
      fresh_connection = malformed || fresh_connection;
      if (!(IsRetryableCurlCode(code) || malformed) ||
          !budget.Allows(attempt_no, Failure::kCounted)) {
        const Status failure = CurlFailure(code, errbuf, what, malformed);
        return Status(failure.code(), failure.message() + budget.Suffix(attempt_no));
      }
    }
    if (!SleepUnlessCancelled(budget.NextPause(), cancelled)) {
      return Cancelled(what + ": cancelled");
    }
  }
}

Status GetRange(const Request& request, uint64_t offset, uint64_t length, void* dst,
                const PrepareFn& prepare, const DescribeErrorFn& describe_error,
                const HttpOptions& options, const std::atomic<bool>& cancelled) {
  const std::string what = "GET " + RedactUrl(request.url) + " bytes " + std::to_string(offset) +
                           "-" + std::to_string(offset + length - 1);
  if (length == 0) return Status::Ok();
  auto* out = static_cast<char*>(dst);
  uint64_t done = 0;
  RetryBudget budget(options);
  bool fresh_connection = false;
  for (int attempt_no = 1;; ++attempt_no) {
    if (cancelled.load()) return Cancelled(what + ": cancelled");
    Request req = request;
    const uint64_t first = offset + done;  // done < length: never an inverted range
    const uint64_t last = offset + length - 1;
    req.headers.push_back({"Range", "bytes=" + std::to_string(first) + "-" + std::to_string(last)});
    if (prepare) TS_RETURN_IF_ERROR(prepare(req));
    const PooledHandle handle;
    CURL* curl = handle.get();
    if (curl == nullptr) return Internal(what + ": curl_easy_init failed");
    Attempt a;
    a.ranged = true;
    a.range_dst = out + done;
    a.range_first = first;
    a.range_remaining = length - done;
    a.cancelled = &cancelled;
    HeaderList headers, connect_to;
    BuildHeaders(req, &headers);
    char errbuf[CURL_ERROR_SIZE] = {0};
    SetCommonOptions(curl, req, options, headers, connect_to, &a, errbuf);
    if (fresh_connection) curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
    const CURLcode code = curl_easy_perform(curl);
    done += a.range_written;

    if (code == CURLE_ABORTED_BY_CALLBACK) return Cancelled(what + ": cancelled");
    if (!a.range_problem.empty()) return IoError(what + ": " + a.range_problem);
    // Every wanted byte arrived: a success, whatever happened to the rest of the transfer
    // (a server promising more than it sends, a connection cut after the last byte).
    if (IsSuccess(a.status) && done == length) return Status::Ok();

    if (code == CURLE_OK && !IsSuccess(a.status)) {
      Response response{a.status, std::move(a.headers), std::move(a.body), 1};
      if (!IsRetryableHttpStatus(response.status) ||
          !budget.Allows(attempt_no, FailureOfStatus(response.status))) {
        Status s = describe_error(response);
        return Status(s.code(), what + ": " + s.message() + budget.Suffix(attempt_no));
      }
    } else {
      // A network error, or a 2xx body that ended early: resume from the first missing byte.
      const bool malformed = IsMalformedReply(code, req.url);
      const Status failure =
          code == CURLE_OK ? IoError(what + ": response body ended after " + std::to_string(done) +
                                     " of " + std::to_string(length) + " bytes")
                           : CurlFailure(code, errbuf, what, malformed);
      fresh_connection = malformed || fresh_connection;
      const bool retryable = code == CURLE_OK || IsRetryableCurlCode(code) || malformed;
      const bool progressed = a.range_written > 0;
      if (!retryable ||
          !budget.Allows(attempt_no, progressed ? Failure::kProgressed : Failure::kCounted)) {
        return Status(failure.code(), failure.message() + "; " + std::to_string(done) + " of " +
                                          std::to_string(length) + " bytes received" +
                                          budget.Suffix(attempt_no));
      }
      if (progressed) continue;  // it made progress: resume at once
    }
    if (!SleepUnlessCancelled(budget.NextPause(), &cancelled)) {
      return Cancelled(what + ": cancelled");
    }
  }
}

}  // namespace tensorstream::http
