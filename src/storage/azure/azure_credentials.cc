#include "storage/azure/azure_credentials.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <vector>

#include "common/text.h"
#include "storage/http/crypto.h"
#include "storage/http/oauth.h"

namespace tensorstream::azure {

namespace {

using Kind = CredentialSource::Kind;

constexpr const char* kDefaultAuthorityHost = "https://login.microsoftonline.com";
constexpr const char* kDefaultMetadataHost = "http://169.254.169.254";
constexpr const char* kStorageScope = "https://storage.azure.com/.default";
constexpr const char* kStorageResource = "https://storage.azure.com/";
// A token is refreshed this long before it expires, so no request carries a stale one.
constexpr auto kRefreshMargin = std::chrono::minutes(5);

std::string WithoutTrailingSlashes(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

// The value of the header `name` (any case) in `request`, or "".
std::string HeaderValue(const http::Request& request, std::string_view name) {
  for (const http::Header& header : request.headers) {
    if (AsciiLower(header.name) == name) return header.value;
  }
  return "";
}

// The path of an absolute URL ("/" when it has none) and its query (without '?').
std::pair<std::string, std::string> PathAndQuery(const std::string& url) {
  const size_t scheme = url.find("://");
  const size_t path_start = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path_start == std::string::npos) {
    const size_t q = url.find('?');
    return {"/", q == std::string::npos ? "" : url.substr(q + 1)};
  }
  const size_t q = url.find('?', path_start);
  if (q == std::string::npos) return {url.substr(path_start), ""};
  return {url.substr(path_start, q - path_start), url.substr(q + 1)};
}

}  // namespace

Result<ConnectionString> ParseConnectionString(std::string_view text) {
  ConnectionString out;
  bool development = false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view part = TrimWhitespace(text.substr(start, end - start));
    start = end + 1;
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return InvalidArgument(
          "the Azure storage connection string has a part that is not Key=Value");
    }
    const std::string key = AsciiLower(TrimWhitespace(part.substr(0, eq)));
    const std::string value(TrimWhitespace(part.substr(eq + 1)));
    if (key == "accountname") {
      out.account_name = value;
    } else if (key == "accountkey") {
      out.account_key = value;
    } else if (key == "sharedaccesssignature") {
      out.sas_token = value.empty() || value[0] != '?' ? value : value.substr(1);
    } else if (key == "blobendpoint") {
      out.blob_endpoint = WithoutTrailingSlashes(value);
    } else if (key == "defaultendpointsprotocol") {
      out.protocol = AsciiLower(value);
    } else if (key == "endpointsuffix") {
      out.endpoint_suffix = value;
    } else if (key == "usedevelopmentstorage") {
      development = AsciiLower(value) == "true";
    }
    // Other keys (QueueEndpoint, TableEndpoint…) are for other services.
  }
  if (development) {
    // Azurite's well-known development account (published in Azure's documentation).
    if (out.account_name.empty()) out.account_name = "devstoreaccount1";
    if (out.account_key.empty() && out.sas_token.empty()) {
      out.account_key =
          "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
          "KBHBeksoGMGw==";
    }
    if (out.blob_endpoint.empty()) out.blob_endpoint = "http://127.0.0.1:10000/" + out.account_name;
  }
  if (out.account_key.empty() == false && out.account_name.empty()) {
    return InvalidArgument(
        "the Azure storage connection string has an AccountKey but no AccountName");
  }
  if (out.account_name.empty() && out.blob_endpoint.empty()) {
    return InvalidArgument(
        "the Azure storage connection string names neither AccountName nor BlobEndpoint");
  }
  return out;
}

std::string SharedKeyStringToSign(const http::Request& request, std::string_view account) {
  std::string content_length = HeaderValue(request, "content-length");
  if (content_length.empty() && !request.body.empty()) {
    content_length = std::to_string(request.body.size());
  }
  if (content_length == "0") content_length.clear();
  std::string out = request.method + "\n";
  out += HeaderValue(request, "content-encoding") + "\n";
  out += HeaderValue(request, "content-language") + "\n";
  out += content_length + "\n";
  out += HeaderValue(request, "content-md5") + "\n";
  out += HeaderValue(request, "content-type") + "\n";
  out += HeaderValue(request, "date") + "\n";
  out += HeaderValue(request, "if-modified-since") + "\n";
  out += HeaderValue(request, "if-match") + "\n";
  out += HeaderValue(request, "if-none-match") + "\n";
  out += HeaderValue(request, "if-unmodified-since") + "\n";
  out += HeaderValue(request, "range") + "\n";

  std::map<std::string, std::string> ms_headers;
  for (const http::Header& header : request.headers) {
    const std::string name = AsciiLower(TrimWhitespace(header.name));
    if (name.rfind("x-ms-", 0) == 0) ms_headers[name] = std::string(TrimWhitespace(header.value));
  }
  for (const auto& [name, value] : ms_headers) out += name + ":" + value + "\n";

  const auto [path, query] = PathAndQuery(request.url);
  out += "/" + std::string(account) + path;
  std::map<std::string, std::vector<std::string>> parameters;
  size_t start = 0;
  while (start < query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const std::string pair = query.substr(start, end - start);
    start = end + 1;
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string name = AsciiLower(http::UriDecode(pair.substr(0, eq)));
    parameters[name].push_back(eq == std::string::npos ? "" : http::UriDecode(pair.substr(eq + 1)));
  }
  for (auto& [name, values] : parameters) {
    std::sort(values.begin(), values.end());
    std::string joined;
    for (const std::string& value : values) joined += (joined.empty() ? "" : ",") + value;
    out += "\n" + name + ":" + joined;
  }
  return out;
}

Result<std::string> SharedKeyAuthorization(const http::Request& request, std::string_view account,
                                           std::string_view key_base64) {
  const std::optional<std::string> key = http::Base64Decode(key_base64);
  if (!key || key->empty()) {
    return InvalidArgument("the Azure storage account key is not base64");
  }
  const std::string signature =
      http::Base64Encode(http::HmacSha256(*key, SharedKeyStringToSign(request, account)));
  return "SharedKey " + std::string(account) + ":" + signature;
}

std::string HttpDate(std::time_t when) {
  std::tm tm{};
  gmtime_r(&when, &tm);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buffer;
}

CredentialSource FindCredentialSource(const ConnectionString* connection,
                                      const std::string& sas_setting,
                                      const std::string& key_setting, bool anonymous,
                                      const std::string& account, const Environment& env) {
  CredentialSource source;
  source.account = account;
  if (anonymous) {
    source.origin = "the azure.anonymous setting";
    return source;
  }
  if (connection != nullptr && !connection->account_key.empty()) {
    return {Kind::kSharedKey,
            account,
            connection->account_key,
            "",
            "",
            "",
            "the connection string's AccountKey"};
  }
  if (connection != nullptr && !connection->sas_token.empty()) {
    return {Kind::kSas,
            account,
            connection->sas_token,
            "",
            "",
            "",
            "the connection string's SharedAccessSignature"};
  }
  const auto first = [&](const std::string& setting, const char* setting_name,
                         const char* variable) -> std::pair<std::string, std::string> {
    if (!setting.empty()) return {setting, setting_name};
    if (auto value = NonEmpty(env, variable)) return {*value, variable};
    return {"", ""};
  };
  if (auto [sas, origin] =
          first(sas_setting, "the azure.sas_token setting", "AZURE_STORAGE_SAS_TOKEN");
      !sas.empty()) {
    if (sas[0] == '?') sas.erase(0, 1);
    return {Kind::kSas, account, sas, "", "", "", origin};
  }
  if (auto [key, origin] =
          first(key_setting, "the azure.account_key setting", "AZURE_STORAGE_ACCOUNT_KEY");
      !key.empty()) {
    return {Kind::kSharedKey, account, key, "", "", "", origin};
  }
  const auto client_id = NonEmpty(env, "AZURE_CLIENT_ID");
  const auto tenant_id = NonEmpty(env, "AZURE_TENANT_ID");
  const auto client_secret = NonEmpty(env, "AZURE_CLIENT_SECRET");
  if (client_id && tenant_id && client_secret) {
    const std::string authority = WithoutTrailingSlashes(
        NonEmpty(env, "AZURE_AUTHORITY_HOST").value_or(kDefaultAuthorityHost));
    return {Kind::kClientSecret,
            account,
            *client_secret,
            *tenant_id,
            *client_id,
            authority + "/" + http::UriEncode(*tenant_id, true) + "/oauth2/v2.0/token",
            "the service principal of AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET"};
  }
  const std::string metadata = WithoutTrailingSlashes(
      NonEmpty(env, "AZURE_POD_IDENTITY_AUTHORITY_HOST").value_or(kDefaultMetadataHost));
  std::string endpoint = metadata +
                         "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" +
                         http::UriEncode(kStorageResource, true);
  if (client_id) endpoint += "&client_id=" + http::UriEncode(*client_id, true);
  return {Kind::kManagedIdentity,
          account,
          "",
          "",
          client_id.value_or(""),
          endpoint,
          "a managed identity (no key, SAS, connection string or service principal was set)"};
}

namespace {

// The HTTP options for the token endpoint: the metadata endpoint answers within
// milliseconds on Azure and is a black hole anywhere else, so it is not waited for long
// nor retried for a minute.
http::HttpOptions TokenHttpOptions(const CredentialSource& source, http::HttpOptions http) {
  if (source.kind == Kind::kManagedIdentity) {
    http.connect_timeout_ms = 1'000;
    http.request_timeout_ms = 5'000;
    http.max_retries = 1;
  }
  return http;
}

}  // namespace

Credentials::Credentials(CredentialSource source, http::HttpOptions http)
    : source_(std::move(source)), http_(TokenHttpOptions(source_, std::move(http))) {}

Result<std::string> Credentials::FetchToken(std::chrono::seconds* lifetime) const {
  // A service principal POSTs its secret; the metadata endpoint is a GET with its header.
  const Result<http::AccessToken> token =
      source_.kind == Kind::kClientSecret
          ? http::ExchangeToken(source_.token_endpoint,
                                http::FormEncode({{"grant_type", "client_credentials"},
                                                  {"client_id", source_.client_id},
                                                  {"client_secret", source_.secret},
                                                  {"scope", kStorageScope}}),
                                {}, http_)
          : http::ExchangeToken(source_.token_endpoint, "", {{"Metadata", "true"}}, http_);
  if (!token.ok()) {
    return Status(token.status().code(),
                  "Azure credentials from " + source_.origin + ": " + token.status().message());
  }
  *lifetime = std::chrono::duration_cast<std::chrono::seconds>(token->expires -
                                                               std::chrono::steady_clock::now());
  return token->value;
}

Result<std::string> Credentials::BearerToken() const {
  std::lock_guard lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  if (!token_.empty() && now + kRefreshMargin < expires_) return token_;
  std::chrono::seconds lifetime{0};
  TS_ASSIGN_OR_RETURN(token_, FetchToken(&lifetime));
  expires_ = now + lifetime;
  return token_;
}

Status Credentials::Authorize(http::Request& request) const {
  request.headers.push_back({"x-ms-date", HttpDate(std::time(nullptr))});
  request.headers.push_back({"x-ms-version", kServiceVersion});
  switch (source_.kind) {
    case Kind::kAnonymous:
      return Status::Ok();
    case Kind::kSas:
      request.url += (request.url.find('?') == std::string::npos ? "?" : "&") + source_.secret;
      return Status::Ok();
    case Kind::kSharedKey: {
      auto header = SharedKeyAuthorization(request, source_.account, source_.secret);
      if (!header.ok()) {
        return InvalidArgument(header.status().message() + " (from " + source_.origin + ")");
      }
      request.headers.push_back({"Authorization", *header});
      return Status::Ok();
    }
    case Kind::kClientSecret:
    case Kind::kManagedIdentity: {
      TS_ASSIGN_OR_RETURN(const std::string token, BearerToken());
      request.headers.push_back({"Authorization", "Bearer " + token});
      return Status::Ok();
    }
  }
  return Status::Ok();
}

}  // namespace tensorstream::azure
