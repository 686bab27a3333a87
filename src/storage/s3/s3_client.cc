#include "storage/s3/s3_client.h"

#include <cctype>
#include <ctime>
#include <map>
#include <mutex>

#include "common/text.h"
#include "storage/client_cache.h"
#include "storage/http/xml.h"

namespace tensorstream::s3 {

namespace {

constexpr std::string_view kS3Scheme = "s3://";
// SHA-256 of the empty body: what GET and HEAD sign.
constexpr const char* kEmptyPayloadHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string ReasonPhrase(long status) {
  switch (status) {
    case 301:
      return "Moved Permanently";
    case 307:
      return "Temporary Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

}  // namespace

Result<S3Location> ParseS3Uri(const std::string& uri) {
  if (uri.rfind(kS3Scheme, 0) != 0) return InvalidArgument(uri + ": not an s3:// URI");
  const std::string rest = uri.substr(kS3Scheme.size());
  const size_t slash = rest.find('/');
  S3Location loc;
  loc.bucket = rest.substr(0, slash);
  if (slash != std::string::npos) loc.key = rest.substr(slash + 1);
  if (loc.bucket.empty()) return InvalidArgument(uri + ": no bucket name in the S3 URI");
  return loc;
}

bool IsVirtualHostableBucket(const std::string& bucket, const std::string& scheme) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  for (const char c : bucket) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) return false;
    if (c == '.' && scheme == "https") return false;  // *.s3… wildcard certs cover one label
  }
  return bucket.front() != '-' && bucket.back() != '-' && bucket.front() != '.' &&
         bucket.back() != '.';
}

Result<EndpointConfig> ResolveEndpoint(const S3Config& config, const Environment& env) {
  EndpointConfig ep;
  ep.region = ResolveRegion(config, env);
  // A plain string rather than optional<string>: GCC 12 warns falsely on copies of the latter.
  std::string url = config.endpoint_url.value_or("");
  if (url.empty()) url = NonEmpty(env, "AWS_ENDPOINT_URL_S3").value_or("");
  if (url.empty()) url = NonEmpty(env, "AWS_ENDPOINT_URL").value_or("");
  if (!url.empty()) {
    ep.custom = true;
    std::string rest = url;
    const size_t sep = rest.find("://");
    if (sep == std::string::npos) {
      ep.scheme = "https";
    } else {
      ep.scheme = AsciiLower(rest.substr(0, sep));
      rest = rest.substr(sep + 3);
    }
    if (ep.scheme != "http" && ep.scheme != "https") {
      return InvalidArgument("S3 endpoint URL '" + http::RedactUrl(url) +
                             "': scheme must be http or https");
    }
    const size_t path = rest.find('/');
    ep.authority = rest.substr(0, path);
    if (path != std::string::npos) ep.base_path = rest.substr(path);
    while (!ep.base_path.empty() && ep.base_path.back() == '/') ep.base_path.pop_back();
    if (ep.authority.empty() || ep.authority.find('@') != std::string::npos ||
        ep.authority.find_first_of("?#") != std::string::npos) {
      return InvalidArgument("S3 endpoint URL '" + http::RedactUrl(url) +
                             "': expected scheme://host[:port][/path]");
    }
  } else {
    ep.scheme = "https";
    const bool china = ep.region.rfind("cn-", 0) == 0;
    ep.authority = "s3." + ep.region + (china ? ".amazonaws.com.cn" : ".amazonaws.com");
  }
  ep.virtual_hosted = EnvFlag(env, "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING").value_or(!ep.custom);
  return ep;
}

Status S3ErrorStatus(const http::Response& response, const std::string& what) {
  const long status = response.status;
  std::string message = (what.empty() ? "" : what + ": ") + "HTTP " + std::to_string(status);
  if (const std::string phrase = ReasonPhrase(status); !phrase.empty()) message += " " + phrase;
  const std::optional<std::string> code = http::XmlTagText(response.body, "Code");
  const std::optional<std::string> text = http::XmlTagText(response.body, "Message");
  if (code || text) {
    message += " (" + code.value_or("") + (code && text ? ": " : "") + text.value_or("") + ")";
  }
  if (response.attempts > 1)
    message += " (after " + std::to_string(response.attempts) + " attempts)";
  StatusCode sc = StatusCode::kIoError;
  if (status == 404) {
    sc = StatusCode::kNotFound;
  } else if (status == 401 || status == 403) {
    sc = StatusCode::kPermissionDenied;
    if (!code) message += " (access denied: check the credentials and the bucket policy)";
  } else if (status == 301 || status == 307 || status == 400) {
    sc = StatusCode::kInvalidArgument;
    if (const std::string* region = response.FindHeader("x-amz-bucket-region")) {
      message += "; the bucket is in region " + *region + ": set AWS_REGION or the region option";
    }
  } else if (status == 416) {
    sc = StatusCode::kInvalidArgument;
  } else if (status == 412) {
    message += " (the object was replaced or modified since it was opened)";
  } else if (http::IsRetryableHttpStatus(status)) {
    sc = StatusCode::kUnavailable;
  }
  return Status(sc, message);
}

Result<std::shared_ptr<S3Client>> S3Client::Create(const S3Config& config, const Environment& env) {
  std::shared_ptr<S3Client> client(new S3Client());
  TS_ASSIGN_OR_RETURN(client->endpoint_, ResolveEndpoint(config, env));
  client->http_options_ = http::OptionsFromEnvironment(env);
  if (auto bundle = NonEmpty(env, "AWS_CA_BUNDLE")) client->http_options_.ca_bundle = *bundle;
  if (auto ms = NonEmpty(env, "RUNAI_STREAMER_S3_REQUEST_TIMEOUT_MS")) {
    int64_t value = 0;
    if (ParseInt64(*ms, &value) && value > 0) client->http_options_.request_timeout_ms = value;
  }
  TS_ASSIGN_OR_RETURN(client->credentials_, CredentialsProvider::Create(config, env));
  return client;
}

namespace {

// Everything a client is resolved from: the explicit settings and the variables the
// endpoint, region, credentials and HTTP options are read from.
std::string ClientKey(const S3Config& config, const Environment& env) {
  std::vector<std::string> settings;
  for (const auto* field : {&config.access_key_id, &config.secret_access_key, &config.session_token,
                            &config.region, &config.endpoint_url}) {
    settings.push_back(field->value_or(""));
  }
  static constexpr const char* kVariables[] = {"AWS_ENDPOINT_URL_S3",
                                               "AWS_ENDPOINT_URL",
                                               "AWS_REGION",
                                               "AWS_DEFAULT_REGION",
                                               "AWS_ACCESS_KEY_ID",
                                               "AWS_SECRET_ACCESS_KEY",
                                               "AWS_SESSION_TOKEN",
                                               "AWS_PROFILE",
                                               "AWS_SHARED_CREDENTIALS_FILE",
                                               "AWS_CONFIG_FILE",
                                               "AWS_EC2_METADATA_DISABLED",
                                               "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                               "AWS_CA_BUNDLE",
                                               "HOME",
                                               "RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING",
                                               "RUNAI_STREAMER_S3_UNSIGNED",
                                               "RUNAI_STREAMER_S3_REQUEST_TIMEOUT_MS"};
  return ClientCacheKey(settings, kVariables, env) + http::OptionsKey(env);
}

}  // namespace

Result<std::shared_ptr<S3Client>> SharedS3Client(const StorageOptions& options) {
  static auto* clients = new ClientCache<S3Client>();
  const Environment& env = Environment::Process();
  const S3Config config = S3ConfigFrom(options);
  return clients->Get(ClientKey(config, env), [&] { return S3Client::Create(config, env); });
}

Target MakeS3Target(const EndpointConfig& endpoint, const std::string& bucket,
                    const std::string& key,
                    std::vector<std::pair<std::string, std::string>> query) {
  Target t;
  if (endpoint.virtual_hosted && IsVirtualHostableBucket(bucket, endpoint.scheme)) {
    t.host = bucket + "." + endpoint.authority;
    t.path = endpoint.base_path + "/" + key;
  } else {
    t.host = endpoint.authority;
    t.path = endpoint.base_path + "/" + bucket + (key.empty() ? "" : "/" + key);
  }
  t.url = endpoint.scheme + "://" + t.host + http::UriEncode(t.path, false);
  if (!query.empty()) t.url += "?" + CanonicalQueryString(query);
  t.query = std::move(query);
  return t;
}

Signature SignS3Request(const std::string& method, const Target& target,
                        const std::string& payload_hash, const std::string& region,
                        const Credentials& credentials, std::time_t now) {
  SigningRequest sr;
  sr.method = method;
  sr.host = target.host;
  sr.path = target.path;
  sr.query = target.query;
  sr.payload_hash = payload_hash;
  sr.headers.push_back({"x-amz-content-sha256", payload_hash});
  sr.region = region;
  sr.service = "s3";
  return SignV4(sr, credentials, now);
}

http::PrepareFn S3Client::Signer(const Target& target) const {
  return [this, &target](http::Request& req) -> Status {
    // Host is set explicitly so that what curl sends is exactly what was signed.
    req.headers.push_back({"Host", target.host});
    if (credentials_->unsigned_requests()) return Status::Ok();
    TS_ASSIGN_OR_RETURN(Credentials creds, credentials_->Get());
    const std::string payload_hash = req.body.empty() ? kEmptyPayloadHash : Sha256Hex(req.body);
    const Signature sig = SignS3Request(req.method, target, payload_hash, endpoint_.region, creds,
                                        std::time(nullptr));
    req.headers.push_back({"x-amz-content-sha256", payload_hash});
    for (const http::Header& h : sig.extra_headers) req.headers.push_back(h);
    req.headers.push_back({"Authorization", sig.authorization});
    return Status::Ok();
  };
}

Result<http::Response> S3Client::Send(const std::string& method, const Target& target,
                                      const std::atomic<bool>* cancelled,
                                      std::vector<http::Header> headers) const {
  http::Request req;
  req.method = method;
  req.url = target.url;
  req.headers = std::move(headers);
  return http::Perform(req, Signer(target), http_options_, cancelled);
}

Status S3Client::GetRange(const Target& target, uint64_t offset, uint64_t length, void* dst,
                          const std::atomic<bool>& cancelled, const std::string& etag) const {
  http::Request req;
  req.url = target.url;
  if (!etag.empty()) req.headers.push_back({"If-Match", etag});
  return http::GetRange(
      req, offset, length, dst, Signer(target),
      [](const http::Response& r) { return S3ErrorStatus(r, ""); }, http_options_, cancelled);
}

}  // namespace tensorstream::s3
