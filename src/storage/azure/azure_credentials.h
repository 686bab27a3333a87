// How requests to Azure Blob Storage are authorised, first found wins (the order of the
// reference's Azure package and of Azure's own tools):
//   1. a connection string: the azure.connection_string setting, then
//      AZURE_STORAGE_CONNECTION_STRING (AccountName + AccountKey: Shared Key;
//      SharedAccessSignature: a SAS; it may also name the endpoint);
//   2. a SAS token: the azure.sas_token setting, then AZURE_STORAGE_SAS_TOKEN;
//   3. an account key: the azure.account_key setting, then AZURE_STORAGE_ACCOUNT_KEY
//      (Shared Key signing);
//   4. a service principal: AZURE_CLIENT_ID + AZURE_TENANT_ID + AZURE_CLIENT_SECRET, an OAuth2
//      client-credentials grant at AZURE_AUTHORITY_HOST (default
//      https://login.microsoftonline.com);
//   5. a managed identity: the instance metadata endpoint (http://169.254.169.254, or
//      AZURE_POD_IDENTITY_AUTHORITY_HOST), with 1 s timeouts; AZURE_CLIENT_ID, when set
//      alone, picks a user-assigned identity.
// The azure.anonymous setting sends no credentials (public containers).
//
// Bearer tokens are fetched once per process, cached and refreshed five minutes before they
// expire. Keys, SAS tokens, client secrets and access tokens never enter a Status message.
#pragma once

#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "common/environment.h"
#include "common/status.h"
#include "storage/http/http_client.h"

namespace tensorstream::azure {

// The x-ms-version every request carries: a current service version (Azurite 3.37 serves
// it too).
inline constexpr const char* kServiceVersion = "2025-11-05";

// The fields of a storage connection string we use.
struct ConnectionString {
  std::string account_name;
  std::string account_key;      // base64
  std::string sas_token;        // without a leading '?'
  std::string blob_endpoint;    // BlobEndpoint, when given
  std::string protocol;         // DefaultEndpointsProtocol, when given
  std::string endpoint_suffix;  // EndpointSuffix, when given (e.g. core.windows.net)
};
// Parses "Key=Value;Key=Value…" (keys case-insensitive; values may contain '='). Errors:
// kInvalidArgument naming the key at fault, never quoting a value.
Result<ConnectionString> ParseConnectionString(std::string_view text);

// Shared Key for the Blob service (versions 2009-09-19 and later). The string to sign:
// the verb, the standard headers in their fixed order (Content-Length empty when 0),
// the x-ms-* headers lower-cased and sorted, then "/ACCOUNT" + the URL's path and its query
// parameters, decoded, names lower-cased and sorted. Pure.
std::string SharedKeyStringToSign(const http::Request& request, std::string_view account);
// "SharedKey ACCOUNT:SIGNATURE" for `request`, which must already carry x-ms-date.
// Errors: kInvalidArgument when the key is not base64 (the key is never quoted).
Result<std::string> SharedKeyAuthorization(const http::Request& request, std::string_view account,
                                           std::string_view key_base64);

// What the chain found, before any request.
struct CredentialSource {
  enum class Kind { kAnonymous, kSharedKey, kSas, kClientSecret, kManagedIdentity };
  Kind kind = Kind::kAnonymous;
  std::string account;
  std::string secret;          // the account key, the SAS token or the client secret
  std::string tenant_id;       // kClientSecret
  std::string client_id;       // kClientSecret, kManagedIdentity (user-assigned; may be empty)
  std::string token_endpoint;  // kClientSecret, kManagedIdentity
  std::string origin;          // for messages: "AZURE_STORAGE_ACCOUNT_KEY", "a managed identity"…
};

// Resolves the chain above from the settings (already looked up) and the environment.
// `connection` is the parsed connection string, when there is one.
CredentialSource FindCredentialSource(const ConnectionString* connection,
                                      const std::string& sas_setting,
                                      const std::string& key_setting, bool anonymous,
                                      const std::string& account, const Environment& env);

class Credentials {
 public:
  Credentials(CredentialSource source, http::HttpOptions http);

  // Adds x-ms-date and x-ms-version, then what authorises the request: a Shared Key
  // signature, a bearer token, or the SAS appended to the URL's query. Called before every
  // attempt (a retry carries a fresh date and token). Errors name where the credentials came
  // from and the token endpoint, never a secret.
  Status Authorize(http::Request& request) const;

  CredentialSource::Kind kind() const { return source_.kind; }

 private:
  Result<std::string> BearerToken() const;
  Result<std::string> FetchToken(std::chrono::seconds* lifetime) const;

  const CredentialSource source_;
  const http::HttpOptions http_;
  mutable std::mutex mutex_;  // guards token_ and expires_
  mutable std::string token_;
  mutable std::chrono::steady_clock::time_point expires_{};
};

// RFC 1123 date ("Tue, 03 Dec 2026 17:00:00 GMT") for x-ms-date.
std::string HttpDate(std::time_t when);

}  // namespace tensorstream::azure
