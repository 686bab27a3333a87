// AWS Signature Version 4, as a pure function: the same request, credentials and time
// always give the same signature. The clock is an argument, so tests pin it and compare
// against AWS's published test suite and botocore's signer.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/http/http_client.h"

namespace tensorstream::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty unless temporary credentials
};

struct SigningRequest {
  std::string method;  // "GET"
  std::string host;    // the Host header exactly as sent ("b.s3.us-east-1.amazonaws.com",
                       // "127.0.0.1:8333"): a port only when the URL names one
  std::string path;    // NOT encoded ("/bucket/dir/a b.bin"); encoded here as S3 does:
                       // every byte but unreserved ones and '/', once, no normalisation
  std::vector<std::pair<std::string, std::string>> query;  // NOT encoded, any order
  std::vector<http::Header> headers;  // further headers to sign (x-amz-content-sha256,
                                      // range, …); duplicates are joined with ','
  std::string payload_hash;           // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::string region;                 // "us-east-1"
  std::string service;                // "s3"
};

struct Signature {
  std::string amz_date;           // "20150830T123600Z"
  std::string canonical_request;  // for tests and debugging; holds no secret
  std::string string_to_sign;
  std::string signed_headers;  // "host;x-amz-date"
  std::string signature;       // hex
  std::string authorization;   // the Authorization header value
  // Headers the request must carry besides the caller's: X-Amz-Date and, with a session
  // token, X-Amz-Security-Token (both are signed).
  std::vector<http::Header> extra_headers;
};

// Signs `request` at time `now` (seconds since the epoch, UTC).
Signature SignV4(const SigningRequest& request, const Credentials& credentials, std::time_t now);

// Hex SHA-256 of `data` ("e3b0c442…" for the empty string).
std::string Sha256Hex(std::string_view data);

// The canonical query string: pairs encoded (UriEncode with '/' encoded), sorted by
// name then value, joined with '&'. Also used to build request URLs, so that what is
// sent is byte for byte what was signed.
std::string CanonicalQueryString(std::vector<std::pair<std::string, std::string>> query);

// "20150830T123600Z" for `now`.
std::string AmzDate(std::time_t now);

}  // namespace tensorstream::s3
