// OAuth2 token requests, shared by the backends whose credentials are bearer tokens (GCS
// service accounts and refresh tokens, Azure service principals and managed identities).
#pragma once

#include <chrono>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "storage/http/http_client.h"

namespace tensorstream::http {

struct AccessToken {
  std::string value;
  std::chrono::steady_clock::time_point expires;
};

// "name=value&…", values percent-encoded.
std::string FormEncode(std::initializer_list<std::pair<const char*, std::string>> fields);

// Sends a token request to `url`: a POST of `form` (application/x-www-form-urlencoded), or a
// GET when `form` is empty, with `headers`. Reads {"access_token", "expires_in"} (seconds, a
// number or a string; one hour when absent). Errors name the endpoint and the server's
// error, never the request's secrets or the token: kPermissionDenied for 400/401/403,
// kUnavailable otherwise.
Result<AccessToken> ExchangeToken(const std::string& url, const std::string& form,
                                  std::vector<Header> headers, const HttpOptions& options);

}  // namespace tensorstream::http
