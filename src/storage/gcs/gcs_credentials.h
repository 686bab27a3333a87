// Where Google Cloud Storage credentials come from, in the order Google's client libraries
// use:
//   1. the gcs.credential_file setting, RUNAI_STREAMER_GCS_CREDENTIAL_FILE, then
//      GOOGLE_APPLICATION_CREDENTIALS: a service-account key file (an RS256-signed JWT is
//      exchanged at its token_uri for an access token) or an "authorized_user" file (its
//      refresh token is exchanged at its token_uri);
//   2. gcloud's application-default file ($CLOUDSDK_CONFIG or ~/.config/gcloud,
//      application_default_credentials.json);
//   3. the metadata server of a Compute Engine / GKE machine (GCE_METADATA_HOST overrides
//      metadata.google.internal; 1 s timeouts; NO_GCE_CHECK=true skips it).
// Anonymous (unauthenticated reads of public objects): the gcs.anonymous setting or
// RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS true, or an emulator endpoint with no key
// file named (emulators check no credentials).
//
// Access tokens are cached and refreshed five minutes before they expire. Keys, refresh
// tokens and access tokens never enter a Status message.
#pragma once

#include <chrono>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/environment.h"
#include "common/status.h"
#include "storage/http/http_client.h"
#include "storage/http/oauth.h"

namespace tensorstream::gcs {

using http::AccessToken;

// A parsed service-account key file (the fields we use).
struct ServiceAccount {
  std::string client_email;
  std::string private_key;  // PEM
  std::string private_key_id;
  std::string token_uri = "https://oauth2.googleapis.com/token";
};

// base64url without padding (RFC 7515).
std::string Base64Url(std::string_view data);

// The JWT a service account exchanges for an access token to read objects: header
// {"alg":"RS256","typ":"JWT","kid":…}, claims {iss, scope (read-only storage), aud =
// token_uri, iat = now, exp = now + 1 h}, signed with the account's RSA key. Pure: the
// time is an argument.
Result<std::string> ServiceAccountJwt(const ServiceAccount& account, std::time_t now);

class Credentials {
 public:
  // Resolves the chain above. `key_file`: the gcs.credential_file setting (may be empty);
  // `emulator`: whether the endpoint is an emulator's.
  static Result<std::shared_ptr<Credentials>> Create(const std::string& key_file, bool anonymous,
                                                     bool emulator, const Environment& env,
                                                     const http::HttpOptions& http);

  bool anonymous() const { return kind_ == Kind::kAnonymous; }
  // Where they came from, for messages ("service account a@b from /path/key.json").
  const std::string& description() const { return description_; }

  // "Bearer <token>", fetching or refreshing the token when needed (thread-safe); empty
  // when anonymous.
  Result<std::string> AuthorizationHeader();

 private:
  enum class Kind { kAnonymous, kServiceAccount, kAuthorizedUser, kMetadataServer };
  Credentials() = default;
  Result<AccessToken> Fetch();

  Kind kind_ = Kind::kAnonymous;
  std::string description_;
  ServiceAccount account_;
  std::string client_id_, client_secret_, refresh_token_, token_uri_;  // authorized_user
  std::string metadata_host_;
  http::HttpOptions http_;
  std::mutex mu_;
  std::optional<AccessToken> token_;  // guarded by mu_
};

}  // namespace tensorstream::gcs
