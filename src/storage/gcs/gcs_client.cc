#include "storage/gcs/gcs_client.h"

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "storage/client_cache.h"

namespace tensorstream::gcs {

namespace {

using nlohmann::json;

constexpr std::string_view kScheme = "gs://";
constexpr const char* kDefaultEndpoint = "https://storage.googleapis.com";

std::string ClientKey(const StorageOptions& options, const Environment& env) {
  std::vector<std::string> settings;
  for (const char* setting : {"gcs.endpoint", "gcs.credential_file", "gcs.anonymous"}) {
    settings.push_back(options.Setting(setting).value_or(""));
  }
  static constexpr const char* kVariables[] = {"CLOUD_STORAGE_EMULATOR_ENDPOINT",
                                               "STORAGE_EMULATOR_HOST",
                                               "RUNAI_STREAMER_GCS_CREDENTIAL_FILE",
                                               "GOOGLE_APPLICATION_CREDENTIALS",
                                               "RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS",
                                               "CLOUDSDK_CONFIG",
                                               "HOME",
                                               "GCE_METADATA_HOST",
                                               "NO_GCE_CHECK"};
  return ClientCacheKey(settings, kVariables, env) + http::OptionsKey(env);
}

}  // namespace

Result<GcsLocation> ParseGcsUri(const std::string& uri) {
  if (uri.rfind(kScheme, 0) != 0) return InvalidArgument(Printable(uri) + ": not a gs:// URI");
  const std::string rest = uri.substr(kScheme.size());
  const size_t slash = rest.find('/');
  GcsLocation location{rest.substr(0, slash),
                       slash == std::string::npos ? "" : rest.substr(slash + 1)};
  if (location.bucket.empty()) return InvalidArgument(Printable(uri) + ": no bucket name");
  return location;
}

Result<GcsEndpoint> ResolveGcsEndpoint(const std::string& setting, const Environment& env) {
  GcsEndpoint endpoint;
  std::string url = setting;
  for (const char* name : {"CLOUD_STORAGE_EMULATOR_ENDPOINT", "STORAGE_EMULATOR_HOST"}) {
    if (url.empty()) {
      url = NonEmpty(env, name).value_or("");
      endpoint.emulator = !url.empty();
    }
  }
  if (url.empty()) url = kDefaultEndpoint;
  if (url.find("://") == std::string::npos) url = "http://" + url;  // emulators: host:port
  while (!url.empty() && url.back() == '/') url.pop_back();
  const size_t host = url.find("://") + 3;
  const std::string scheme = url.substr(0, host - 3);
  if ((scheme != "http" && scheme != "https") || host >= url.size() ||
      url.find_first_of("/@?#", host) != std::string::npos) {
    return InvalidArgument("GCS endpoint " + Quoted(http::RedactUrl(url)) +
                           ": expected http(s)://host[:port]");
  }
  endpoint.url = url;
  return endpoint;
}

Status GcsErrorStatus(const http::Response& response, const std::string& what) {
  const long status = response.status;
  std::string message = (what.empty() ? "" : what + ": ") + "HTTP " + std::to_string(status);
  const json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("error") && body["error"].is_object() &&
      body["error"].contains("message") && body["error"]["message"].is_string()) {
    message += " (" + Printable(body["error"]["message"].get<std::string>()) + ")";
  } else if (!response.body.empty() && response.body.size() < 200) {
    message += " (" + Printable(response.body) + ")";
  }
  if (response.attempts > 1)
    message += " (after " + std::to_string(response.attempts) + " attempts)";
  if (status == 401 || status == 403) {
    message += " (access denied: check the credentials and the bucket's permissions)";
  } else if (status == 412) {
    message += " (the object was replaced or modified since it was opened)";
  }
  return Status(http::StatusCodeOfHttp(status), message);
}

Result<std::shared_ptr<GcsClient>> GcsClient::Create(const StorageOptions& options,
                                                     const Environment& env) {
  std::shared_ptr<GcsClient> client(new GcsClient());
  TS_ASSIGN_OR_RETURN(client->endpoint_,
                      ResolveGcsEndpoint(options.Setting("gcs.endpoint").value_or(""), env));
  client->http_options_ = http::OptionsFromEnvironment(env);
  bool ok = false;
  const std::string anonymous_setting = options.Setting("gcs.anonymous").value_or("0");
  const bool anonymous = ParseBool(anonymous_setting, &ok);
  if (!ok) {
    return InvalidArgument("the gcs.anonymous setting is \"" + anonymous_setting +
                           "\", not 1/0, true/false, yes/no or on/off");
  }
  TS_ASSIGN_OR_RETURN(
      client->credentials_,
      Credentials::Create(options.Setting("gcs.credential_file").value_or(""), anonymous,
                          client->endpoint_.emulator, env, client->http_options_));
  return client;
}

std::string GcsClient::ObjectUrl(const GcsLocation& location) const {
  return endpoint_.url + "/storage/v1/b/" + http::UriEncode(location.bucket, true) + "/o/" +
         http::UriEncode(location.object, true);
}

std::string GcsClient::ListUrl(const std::string& bucket) const {
  return endpoint_.url + "/storage/v1/b/" + http::UriEncode(bucket, true) + "/o";
}

http::PrepareFn GcsClient::Authorizer() const {
  return [credentials = credentials_](http::Request& request) -> Status {
    TS_ASSIGN_OR_RETURN(const std::string header, credentials->AuthorizationHeader());
    if (!header.empty()) request.headers.push_back({"Authorization", header});
    return Status::Ok();
  };
}

Result<http::Response> GcsClient::Get(const std::string& url,
                                      const std::atomic<bool>* cancelled) const {
  http::Request request;
  request.url = url;
  return http::Perform(request, Authorizer(), http_options_, cancelled);
}

Status GcsClient::GetRange(const std::string& object_url, const std::string& generation,
                           uint64_t offset, uint64_t length, void* dst,
                           const std::atomic<bool>& cancelled) const {
  http::Request request;
  request.url = object_url + "?alt=media" + (generation.empty() ? "" : "&generation=" + generation);
  return http::GetRange(
      request, offset, length, dst, Authorizer(),
      [&generation](const http::Response& r) {
        Status s = GcsErrorStatus(r, "");
        if (r.status == 404 && !generation.empty()) {
          s = Status(StatusCode::kIoError,
                     s.message() + " (generation " + generation +
                         " is gone: the object was replaced or deleted since it was opened)");
        }
        return s;
      },
      http_options_, cancelled);
}

Result<std::shared_ptr<GcsClient>> SharedGcsClient(const StorageOptions& options) {
  static auto* clients = new ClientCache<GcsClient>();
  const Environment& env = Environment::Process();
  return clients->Get(ClientKey(options, env), [&] { return GcsClient::Create(options, env); });
}

}  // namespace tensorstream::gcs
