// HTTP over libcurl for the object-store backends: one request with retries, or one ranged
// GET written straight into the caller's buffer with resume from the last byte received.
// Nothing here knows about any one cloud: backends pass a `prepare` callback that signs or
// authorises each attempt (so a retry minutes later carries a fresh signature or token),
// and a `describe_error` that reads their error format. This is the one place for the
// retry loop (RetryBudget), the redirect policy (none are followed: a redirect is reported
// with where it points) and the settings taken from the environment (OptionsFromEnvironment).
//
// Connections are pooled per process: requests take curl handles from one pool and give
// them back, each handle keeping its open connections (and every handle shares one DNS and
// TLS-session cache), so a reader thread of a new stream reuses the connections of the
// streams before it instead of paying for new TCP/TLS handshakes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/environment.h"
#include "common/status.h"

namespace tensorstream::http {

struct Header {
  std::string name;  // as sent; responses' names are lower-cased
  std::string value;
};

// Timeouts and retry budget. FromEnvironment() is what backends use; tests build their own.
struct HttpOptions {
  long connect_timeout_ms = 10'000;
  // Abort an attempt whose transfer rate stays below low_speed_bytes_per_s for
  // low_speed_time_s seconds (a stalled server, or one that trickles), then retry it
  // (TENSORSTREAM_HTTP_STALL_SECONDS sets low_speed_time_s).
  long low_speed_bytes_per_s = 16 * 1024;
  long low_speed_time_s = 10;
  // Whole-attempt limit; 0 = none. RUNAI_STREAMER_S3_REQUEST_TIMEOUT_MS sets it.
  long request_timeout_ms = 0;
  // Retries after the first attempt of a request that failed transiently (5xx, 429, 408,
  // timeouts, connection errors, a malformed reply). Two kinds of failure do not use up
  // the count: an attempt of a ranged GET that delivered body bytes (it made progress and
  // resumes from there), and throttling (429, 503: the server asks to slow down, and a
  // storm of them is ridden out with growing pauses rather than given up on). But
  // max_attempts and retry_budget_ms bound every request: no retry starts once
  // retry_budget_ms have passed since the request's first failure
  // (TENSORSTREAM_HTTP_RETRY_BUDGET_MS sets it).
  int max_retries = 5;
  int max_attempts = 64;
  long retry_budget_ms = 60'000;
  long backoff_base_ms = 200;
  long backoff_max_ms = 5'000;
  // A CA bundle file; empty = libcurl's built-in default. TLS peers are always verified.
  std::string ca_bundle;
  // Entries for CURLOPT_CONNECT_TO ("HOST:PORT:CONNECT-HOST:CONNECT-PORT"): send requests
  // for one host to another address, keeping Host and TLS name. Tests use it to reach a
  // virtual-hosted bucket name on loopback.
  std::vector<std::string> connect_to;
};

// The defaults, with what the environment says for every backend:
//   * CA bundle: SSL_CERT_FILE, else the first of the usual bundle paths of Debian/Ubuntu,
//     Fedora/RHEL, openSUSE, Alpine and macOS that exists (backends may override it, e.g.
//     AWS_CA_BUNDLE for S3);
//   * TENSORSTREAM_HTTP_RETRY_BUDGET_MS: retry_budget_ms (how long a failing request
//     is retried), TENSORSTREAM_HTTP_STALL_SECONDS: low_speed_time_s (how long a
//     transfer may stall before it is retried); integers > 0, anything else keeps the
//     default;
//   * TENSORSTREAM_HTTP_CONNECT_TO: comma-separated CONNECT_TO entries (for tests);
//   * proxies: http_proxy, https_proxy, no_proxy (read by libcurl itself; credentials in
//     a proxy URL never reach a message).
HttpOptions OptionsFromEnvironment(const Environment& env);
// The variables OptionsFromEnvironment reads, as a string: part of a backend's key for
// reusing a client.
std::string OptionsKey(const Environment& env);

struct Request {
  std::string method = "GET";  // GET, HEAD, PUT, POST
  std::string url;             // absolute, already percent-encoded
  std::vector<Header> headers;
  std::string body;  // sent for PUT/POST
};

struct Response {
  long status = 0;
  std::vector<Header> headers;  // names lower-cased
  std::string body;
  int attempts = 1;  // how many attempts Perform made (retries of 5xx included)

  // The first header named `name` (lower-case), or nullptr.
  const std::string* FindHeader(std::string_view name) const;
};

// Called before every attempt with the request about to be sent (the Range header already
// set for that attempt); adds authentication. An error fails the request at once.
using PrepareFn = std::function<Status(Request&)>;

// Sends `request` with retries; returns the final response of any status: the caller
// decides what a 404 means. Fails only when no response was obtained (network errors
// past the budget, TLS failures, cancellation). Bodies over max_body_bytes fail.
Result<Response> Perform(const Request& request, const PrepareFn& prepare,
                         const HttpOptions& options, const std::atomic<bool>* cancelled,
                         uint64_t max_body_bytes = 64u << 20);

// GET of bytes [offset, offset + length) of request.url into dst (exactly `length` bytes,
// no intermediate copy). A transfer cut mid-body resumes with a Range starting at the
// first missing byte. Non-2xx responses fail through `describe_error`, which turns the
// final response into a Status (the backend knows its error format); transient statuses
// are retried first. Returns kCancelled within about a second of `cancelled` turning true.
using DescribeErrorFn = std::function<Status(const Response&)>;
Status GetRange(const Request& request, uint64_t offset, uint64_t length, void* dst,
                const PrepareFn& prepare, const DescribeErrorFn& describe_error,
                const HttpOptions& options, const std::atomic<bool>& cancelled);

// ---- Helpers shared with the backends (and unit-tested on their own) ----

// Parses a Content-Range value "bytes FIRST-LAST/TOTAL" (TOTAL may be "*"); false when it
// is not one, or LAST < FIRST.
bool ParseContentRange(std::string_view value, uint64_t* first, uint64_t* last);

// The Status code of a failed reply, as every object store means it: 404 kNotFound,
// 401/403 kPermissionDenied, 400, 416 and redirects kInvalidArgument, retryable statuses
// kUnavailable, anything else (412 included) kIoError.
StatusCode StatusCodeOfHttp(long status);

// True for statuses worth retrying: 408, 429, 500, 502, 503, 504 and other 5xx.
bool IsRetryableHttpStatus(long status);
// True for the statuses by which a server asks its clients to slow down: 429 and 503.
bool IsThrottlingHttpStatus(long status);

// The pause before retry number `retry` (0-based): base * 2^retry capped at max, then
// "full jitter" scaled by `jitter` in [0, 1) — spread over [cap/2, cap) so retries of
// many threads do not synchronise, yet never shrink to nothing.
long BackoffMs(int retry, long base_ms, long max_ms, double jitter);

// `url` without its query string and user info, safe to put in messages: presigned or
// signed URLs carry credentials in the query.
std::string RedactUrl(std::string_view url);

// `text` with the user information (user:password@) of every URL in it replaced by
// "***@": for text that may quote URLs, such as curl's error messages.
std::string RedactUrlsIn(std::string_view text);

// Percent-encodes every byte but the unreserved ones (A-Z a-z 0-9 - _ . ~), and '/' too
// unless encode_slash is false. RFC 3986 style, as SigV4 and S3 keys require.
std::string UriEncode(std::string_view in, bool encode_slash);

// Reverses percent-encoding ("%2F" → "/"). '+' becomes ' ' when plus_is_space (form
// encoding, which S3 uses for encoding-type=url listings), else stays. Malformed escapes
// are kept as is.
std::string UriDecode(std::string_view in, bool plus_is_space = false);

}  // namespace tensorstream::http
