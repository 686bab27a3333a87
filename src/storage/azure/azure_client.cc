#include "storage/azure/azure_client.h"

#include <optional>
#include <vector>

#include "common/text.h"
#include "storage/client_cache.h"
#include "storage/http/xml.h"

namespace tensorstream::azure {

namespace {

constexpr std::string_view kScheme = "az://";
constexpr const char* kSettingKeys[] = {"azure.account_name", "azure.account_key",
                                        "azure.sas_token",    "azure.connection_string",
                                        "azure.endpoint",     "azure.anonymous"};

std::string SettingOrVariable(const StorageOptions& options, const char* setting,
                              const Environment& env, const char* variable) {
  if (auto value = options.Setting(setting)) return *value;
  return NonEmpty(env, variable).value_or("");
}

// Checks "http(s)://host[:port][/path]" and drops trailing slashes.
Result<std::string> CheckedEndpoint(std::string url, const std::string& origin) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  const size_t host = url.find("://");
  const std::string scheme = host == std::string::npos ? "" : url.substr(0, host);
  if ((scheme != "http" && scheme != "https") || host + 3 >= url.size() ||
      url.find_first_of("@?#", host + 3) != std::string::npos || url[host + 3] == '/') {
    return InvalidArgument("Azure endpoint " + Quoted(http::RedactUrl(url)) + " (from " + origin +
                           "): expected http(s)://host[:port][/path]");
  }
  return url;
}

// The first line of Azure's <Message> (the rest is a request id and a time stamp).
std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string ClientKey(const StorageOptions& options, const Environment& env) {
  std::vector<std::string> settings;
  for (const char* setting : kSettingKeys)
    settings.push_back(options.Setting(setting).value_or(""));
  static constexpr const char* kVariables[] = {"AZURE_STORAGE_CONNECTION_STRING",
                                               "AZURE_STORAGE_ACCOUNT_NAME",
                                               "AZURE_STORAGE_ACCOUNT_KEY",
                                               "AZURE_STORAGE_SAS_TOKEN",
                                               "AZURE_STORAGE_ENDPOINT_SUFFIX",
                                               "AZURE_CLIENT_ID",
                                               "AZURE_TENANT_ID",
                                               "AZURE_CLIENT_SECRET",
                                               "AZURE_AUTHORITY_HOST",
                                               "AZURE_POD_IDENTITY_AUTHORITY_HOST"};
  return ClientCacheKey(settings, kVariables, env) + http::OptionsKey(env);
}

}  // namespace

Result<AzureLocation> ParseAzureUri(const std::string& uri) {
  if (uri.rfind(kScheme, 0) != 0) return InvalidArgument(Printable(uri) + ": not an az:// URI");
  const std::string rest = uri.substr(kScheme.size());
  const size_t slash = rest.find('/');
  AzureLocation location{rest.substr(0, slash),
                         slash == std::string::npos ? "" : rest.substr(slash + 1)};
  if (location.container.empty()) return InvalidArgument(Printable(uri) + ": no container name");
  return location;
}

Status AzureErrorStatus(const http::Response& response, const std::string& what) {
  const long status = response.status;
  std::string message = (what.empty() ? "" : what + ": ") + "HTTP " + std::to_string(status);
  std::string code = http::XmlTagText(response.body, "Code").value_or("");
  if (code.empty()) {
    if (const std::string* header = response.FindHeader("x-ms-error-code")) code = *header;
  }
  const std::string text = FirstLine(http::XmlTagText(response.body, "Message").value_or(""));
  if (!code.empty() || !text.empty()) {
    message += " (" + Printable(code) + (!code.empty() && !text.empty() ? ": " : "") +
               Printable(text) + ")";
  }
  if (response.attempts > 1) {
    message += " (after " + std::to_string(response.attempts) + " attempts)";
  }
  if (status == 401 || status == 403) {
    message += " (access denied: check the credentials and the container's permissions)";
  } else if (status == 412) {
    message += " (the blob was replaced or modified since it was opened)";
  }
  return Status(http::StatusCodeOfHttp(status), message);
}

Result<std::shared_ptr<AzureClient>> AzureClient::Create(const StorageOptions& options,
                                                         const Environment& env) {
  std::optional<ConnectionString> connection;
  const std::string connection_text =
      SettingOrVariable(options, "azure.connection_string", env, "AZURE_STORAGE_CONNECTION_STRING");
  if (!connection_text.empty()) {
    TS_ASSIGN_OR_RETURN(connection, ParseConnectionString(connection_text));
  }
  std::string account =
      connection && !connection->account_name.empty()
          ? connection->account_name
          : SettingOrVariable(options, "azure.account_name", env, "AZURE_STORAGE_ACCOUNT_NAME");

  std::shared_ptr<AzureClient> client(new AzureClient());
  std::string endpoint, origin;
  if (auto setting = options.Setting("azure.endpoint")) {
    endpoint = *setting;
    origin = "the azure.endpoint setting";
  } else if (connection && !connection->blob_endpoint.empty()) {
    endpoint = connection->blob_endpoint;
    origin = "the connection string's BlobEndpoint";
  } else if (account.empty()) {
    return InvalidArgument(
        "no Azure storage account: set AZURE_STORAGE_ACCOUNT_NAME or "
        "AZURE_STORAGE_CONNECTION_STRING (or the azure.account_name setting)");
  } else if (connection) {
    endpoint =
        (connection->protocol.empty() ? "https" : connection->protocol) + "://" + account +
        ".blob." +
        (connection->endpoint_suffix.empty() ? "core.windows.net" : connection->endpoint_suffix);
    origin = "the connection string";
  } else {
    endpoint = "https://" + account + "." +
               NonEmpty(env, "AZURE_STORAGE_ENDPOINT_SUFFIX").value_or("blob.core.windows.net");
    origin = "the account name";
  }
  TS_ASSIGN_OR_RETURN(client->endpoint_, CheckedEndpoint(endpoint, origin));

  bool ok = false;
  const std::string anonymous_setting = options.Setting("azure.anonymous").value_or("0");
  const bool anonymous = ParseBool(anonymous_setting, &ok);
  if (!ok) {
    return InvalidArgument("the azure.anonymous setting is \"" + anonymous_setting +
                           "\", not 1/0, true/false, yes/no or on/off");
  }
  CredentialSource source = FindCredentialSource(
      connection ? &*connection : nullptr, options.Setting("azure.sas_token").value_or(""),
      options.Setting("azure.account_key").value_or(""), anonymous, account, env);
  if (source.kind == CredentialSource::Kind::kSharedKey && account.empty()) {
    return InvalidArgument("an Azure account key (from " + source.origin +
                           ") needs the account name: set AZURE_STORAGE_ACCOUNT_NAME");
  }
  client->http_options_ = http::OptionsFromEnvironment(env);
  client->credentials_ = std::make_shared<Credentials>(std::move(source), client->http_options_);
  return client;
}

std::string AzureClient::BlobUrl(const AzureLocation& location) const {
  return ContainerUrl(location.container) + "/" + http::UriEncode(location.blob, false);
}

std::string AzureClient::ContainerUrl(const std::string& container) const {
  return endpoint_ + "/" + http::UriEncode(container, true);
}

http::PrepareFn AzureClient::Authorizer() const {
  return [credentials = credentials_](http::Request& request) -> Status {
    return credentials->Authorize(request);
  };
}

Result<http::Response> AzureClient::Send(const std::string& method, const std::string& url) const {
  http::Request request;
  request.method = method;
  request.url = url;
  return http::Perform(request, Authorizer(), http_options_, nullptr);
}

Status AzureClient::GetRange(const std::string& blob_url, const std::string& etag, uint64_t offset,
                             uint64_t length, void* dst, const std::atomic<bool>& cancelled) const {
  http::Request request;
  request.url = blob_url;
  if (!etag.empty()) request.headers.push_back({"If-Match", etag});
  return http::GetRange(
      request, offset, length, dst, Authorizer(),
      [](const http::Response& r) { return AzureErrorStatus(r, ""); }, http_options_, cancelled);
}

Result<std::shared_ptr<AzureClient>> SharedAzureClient(const StorageOptions& options) {
  static auto* clients = new ClientCache<AzureClient>();
  const Environment& env = Environment::Process();
  return clients->Get(ClientKey(options, env), [&] { return AzureClient::Create(options, env); });
}

}  // namespace tensorstream::azure
