#include "storage/gcs/gcs_credentials.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include "common/text.h"
#include "storage/http/oauth.h"

namespace tensorstream::gcs {

namespace {

using http::ExchangeToken;
using http::FormEncode;
using nlohmann::json;

constexpr const char* kReadOnlyScope = "https://www.googleapis.com/auth/devstorage.read_only";
constexpr const char* kDefaultTokenUri = "https://oauth2.googleapis.com/token";
// A token is refreshed this long before it expires, so no request carries a stale one.
constexpr auto kRefreshMargin = std::chrono::minutes(5);

}  // namespace

std::string Base64Url(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    const uint32_t n = (static_cast<uint8_t>(data[i]) << 16) |
                       (static_cast<uint8_t>(data[i + 1]) << 8) | static_cast<uint8_t>(data[i + 2]);
    for (int shift : {18, 12, 6, 0}) out += kAlphabet[(n >> shift) & 63];
  }
  if (i < data.size()) {
    uint32_t n = static_cast<uint8_t>(data[i]) << 16;
    if (i + 1 < data.size()) n |= static_cast<uint8_t>(data[i + 1]) << 8;
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    if (i + 1 < data.size()) out += kAlphabet[(n >> 6) & 63];
  }
  return out;
}

Result<std::string> ServiceAccountJwt(const ServiceAccount& account, std::time_t now) {
  json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  if (!account.private_key_id.empty()) header["kid"] = account.private_key_id;
  const json claims = {{"iss", account.client_email},
                       {"scope", kReadOnlyScope},
                       {"aud", account.token_uri},
                       {"iat", now},
                       {"exp", now + 3600}};
  const std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());

  BIO* bio =
      BIO_new_mem_buf(account.private_key.data(), static_cast<int>(account.private_key.size()));
  EVP_PKEY* key =
      bio != nullptr ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (key == nullptr) {
    return InvalidArgument("the service account's private_key is not a PEM private key");
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t length = 0;
  std::string signature;
  bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestSign(ctx, nullptr, &length,
                           reinterpret_cast<const unsigned char*>(signing_input.data()),
                           signing_input.size()) == 1;
  if (ok) {
    signature.resize(length);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &length,
                        reinterpret_cast<const unsigned char*>(signing_input.data()),
                        signing_input.size()) == 1;
    signature.resize(length);
  }
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  if (!ok) return Internal("signing the service account's JWT failed");
  return signing_input + "." + Base64Url(signature);
}

Result<std::shared_ptr<Credentials>> Credentials::Create(const std::string& key_file,
                                                         bool anonymous, bool emulator,
                                                         const Environment& env,
                                                         const http::HttpOptions& http) {
  std::shared_ptr<Credentials> c(new Credentials());
  c->http_ = http;
  std::string file = key_file;
  if (file.empty()) file = NonEmpty(env, "RUNAI_STREAMER_GCS_CREDENTIAL_FILE").value_or("");
  if (file.empty()) file = NonEmpty(env, "GOOGLE_APPLICATION_CREDENTIALS").value_or("");
  anonymous = anonymous ||
              EnvFlag(env, "RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS").value_or(false) ||
              (emulator && file.empty());
  if (anonymous) {
    c->description_ = "anonymous";
    return c;
  }
  if (file.empty()) {
    const std::string config =
        NonEmpty(env, "CLOUDSDK_CONFIG")
            .value_or(NonEmpty(env, "HOME").value_or(".") + "/.config/gcloud");
    const std::string well_known = config + "/application_default_credentials.json";
    if (ReadConfigFile(well_known)) file = well_known;
  }
  if (file.empty()) {
    if (EnvFlag(env, "NO_GCE_CHECK").value_or(false)) {
      return Status(StatusCode::kPermissionDenied,
                    "no Google Cloud credentials: tried RUNAI_STREAMER_GCS_CREDENTIAL_FILE, "
                    "GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default file; the "
                    "metadata server is skipped (NO_GCE_CHECK)");
    }
    c->kind_ = Kind::kMetadataServer;
    c->metadata_host_ = NonEmpty(env, "GCE_METADATA_HOST").value_or("metadata.google.internal");
    c->description_ = "the metadata server at " + c->metadata_host_;
    c->http_.connect_timeout_ms = 1000;
    c->http_.request_timeout_ms = 2000;
    c->http_.max_retries = 1;
    return c;
  }
  const std::optional<std::string> text = ReadConfigFile(file);
  if (!text) {
    return Status(StatusCode::kNotFound, Printable(file) + ": cannot read the credential file");
  }
  const json doc = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  const auto field = [&](const char* name) -> std::string {
    return doc.is_object() && doc.contains(name) && doc[name].is_string()
               ? doc[name].get<std::string>()
               : "";
  };
  const std::string type = field("type");
  if (type == "service_account") {
    c->kind_ = Kind::kServiceAccount;
    c->account_.client_email = field("client_email");
    c->account_.private_key = field("private_key");
    c->account_.private_key_id = field("private_key_id");
    if (!field("token_uri").empty()) c->account_.token_uri = field("token_uri");
    if (c->account_.client_email.empty() || c->account_.private_key.empty()) {
      return InvalidArgument(Printable(file) +
                             ": a service account file needs client_email and private_key");
    }
    c->description_ =
        "service account " + Printable(c->account_.client_email) + " from " + Printable(file);
  } else if (type == "authorized_user") {
    c->kind_ = Kind::kAuthorizedUser;
    c->client_id_ = field("client_id");
    c->client_secret_ = field("client_secret");
    c->refresh_token_ = field("refresh_token");
    c->token_uri_ = field("token_uri").empty() ? kDefaultTokenUri : field("token_uri");
    if (c->client_id_.empty() || c->refresh_token_.empty()) {
      return InvalidArgument(Printable(file) +
                             ": an authorized_user file needs client_id and refresh_token");
    }
    c->description_ = "authorized user from " + Printable(file);
  } else {
    return InvalidArgument(Printable(file) + ": not a Google credential file (type " +
                           Quoted(type) + "; expected service_account or authorized_user)");
  }
  return c;
}

Result<AccessToken> Credentials::Fetch() {
  switch (kind_) {
    case Kind::kServiceAccount: {
      TS_ASSIGN_OR_RETURN(const std::string jwt, ServiceAccountJwt(account_, std::time(nullptr)));
      return ExchangeToken(
          account_.token_uri,
          FormEncode(
              {{"grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"}, {"assertion", jwt}}),
          {}, http_);
    }
    case Kind::kAuthorizedUser:
      return ExchangeToken(token_uri_,
                           FormEncode({{"grant_type", "refresh_token"},
                                       {"client_id", client_id_},
                                       {"client_secret", client_secret_},
                                       {"refresh_token", refresh_token_}}),
                           {}, http_);
    case Kind::kMetadataServer:
      return ExchangeToken("http://" + metadata_host_ +
                               "/computeMetadata/v1/instance/service-accounts/default/token",
                           "", {{"Metadata-Flavor", "Google"}}, http_);
    case Kind::kAnonymous:
      break;
  }
  return Internal("no token for anonymous credentials");
}

Result<std::string> Credentials::AuthorizationHeader() {
  if (anonymous()) return std::string();
  std::lock_guard lock(mu_);
  if (!token_ || std::chrono::steady_clock::now() + kRefreshMargin >= token_->expires) {
    auto fresh = Fetch();
    if (!fresh.ok()) {
      return Status(fresh.status().code(),
                    "Google Cloud credentials (" + description_ + "): " + fresh.status().message());
    }
    token_ = std::move(fresh).value();
  }
  return "Bearer " + token_->value;
}

}  // namespace tensorstream::gcs
