#include "storage/s3/sigv4.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "common/text.h"
#include "storage/http/crypto.h"

namespace tensorstream::s3 {

namespace {

using http::HmacSha256;

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[data[i] >> 4];
    out[2 * i + 1] = kHex[data[i] & 15];
  }
  return out;
}

// Header values are signed trimmed, with runs of spaces inside collapsed to one.
std::string CanonicalHeaderValue(std::string_view v) {
  std::string out;
  bool in_space = false;
  for (const char c : v) {
    if (c == ' ' || c == '\t') {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

std::string AmzDate(std::time_t now) {
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string CanonicalQueryString(std::vector<std::pair<std::string, std::string>> query) {
  for (auto& [name, value] : query) {
    name = http::UriEncode(name, true);
    value = http::UriEncode(value, true);
  }
  std::sort(query.begin(), query.end());
  std::string out;
  for (const auto& [name, value] : query) {
    if (!out.empty()) out.push_back('&');
    out += name + "=" + value;
  }
  return out;
}

Signature SignV4(const SigningRequest& request, const Credentials& credentials, std::time_t now) {
  Signature sig;
  sig.amz_date = AmzDate(now);
  const std::string date = sig.amz_date.substr(0, 8);

  sig.extra_headers.push_back({"X-Amz-Date", sig.amz_date});
  if (!credentials.session_token.empty()) {
    sig.extra_headers.push_back({"X-Amz-Security-Token", credentials.session_token});
  }

  // Canonical headers: lower-case names, sorted; values of repeated names joined by ','
  // in the order given.
  std::map<std::string, std::string> canonical;
  auto add = [&canonical](std::string_view name, std::string_view value) {
    std::string& slot = canonical[AsciiLower(name)];
    if (!slot.empty()) slot.push_back(',');
    slot += CanonicalHeaderValue(value);
  };
  add("host", request.host);
  for (const http::Header& h : request.headers) {
    if (AsciiLower(h.name) == "host") continue;  // always signed from request.host
    add(h.name, h.value);
  }
  for (const http::Header& h : sig.extra_headers) add(h.name, h.value);

  std::string canonical_headers;
  for (const auto& [name, value] : canonical) {
    canonical_headers += name + ":" + value + "\n";
    if (!sig.signed_headers.empty()) sig.signed_headers.push_back(';');
    sig.signed_headers += name;
  }

  sig.canonical_request = request.method + "\n" + http::UriEncode(request.path, false) + "\n" +
                          CanonicalQueryString(request.query) + "\n" + canonical_headers + "\n" +
                          sig.signed_headers + "\n" + request.payload_hash;

  const std::string scope = date + "/" + request.region + "/" + request.service + "/aws4_request";
  sig.string_to_sign =
      "AWS4-HMAC-SHA256\n" + sig.amz_date + "\n" + scope + "\n" + Sha256Hex(sig.canonical_request);

  const std::string k_date = HmacSha256("AWS4" + credentials.secret_access_key, date);
  const std::string k_region = HmacSha256(k_date, request.region);
  const std::string k_service = HmacSha256(k_region, request.service);
  const std::string k_signing = HmacSha256(k_service, "aws4_request");
  const std::string raw = HmacSha256(k_signing, sig.string_to_sign);
  sig.signature = Hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());

  sig.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
                      ", SignedHeaders=" + sig.signed_headers + ", Signature=" + sig.signature;
  return sig;
}

}  // namespace tensorstream::s3
