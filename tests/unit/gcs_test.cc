// The GCS backend without a real server: the credential chain, the service-account JWT
// exchanged at a token endpoint of our own that verifies its RS256 signature with the
// key's public half, refresh tokens, the metadata server, endpoints, errors, and a
// scripted server that replaces an object mid-stream or lists forever.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "safetensors_writer.h"
#include "scripted_server.h"
#include "storage/gcs/gcs_backend.h"
#include "storage/gcs/gcs_client.h"
#include "storage/gcs/gcs_credentials.h"

namespace tensorstream::gcs {
namespace {

using nlohmann::json;
using testing::FormField;
using testing::ScriptedServer;
using testing::SeenRequest;
using testing::TempDir;
using Vars = std::map<std::string, std::string>;

// An RSA key pair made for the test, as PEM.
struct KeyPair {
  std::string private_pem;
  std::string public_pem;
};

std::string DrainBio(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  std::string text(data, static_cast<size_t>(size));
  BIO_free(bio);
  return text;
}

KeyPair MakeKeyPair() {
  EVP_PKEY* key = EVP_RSA_gen(2048);
  KeyPair pair;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  pair.private_pem = DrainBio(bio);
  bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  pair.public_pem = DrainBio(bio);
  EVP_PKEY_free(key);
  return pair;
}

// Decodes unpadded base64url. EVP_DecodeBlock wants standard, padded base64 and counts the
// padding as zero bytes, which are dropped again afterwards.
std::string Base64UrlDecode(std::string_view in) {
  std::string standard(in);
  for (char& c : standard) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (standard.size() % 4 != 0) standard += '=';
  std::string out(standard.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(standard.data()),
                                static_cast<int>(standard.size()));
  if (n < 0) return {};
  out.resize(static_cast<size_t>(n) - (standard.size() - in.size()));
  return out;
}

bool VerifyRs256(const std::string& signing_input, const std::string& signature,
                 const std::string& public_pem) {
  BIO* bio = BIO_new_mem_buf(public_pem.data(), static_cast<int>(public_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok =
      key != nullptr && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(
          ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
          reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return ok;
}

bool SendJson(int fd, int status, const json& body) {
  return testing::SendReply(fd, status, "application/json", body.dump());
}

http::HttpOptions Fast() { return testing::FastHttpOptions(); }

TEST(GcsJwt, Base64UrlHasNoPaddingAndUrlAlphabet) {
  EXPECT_EQ(Base64Url(""), "");
  EXPECT_EQ(Base64Url("f"), "Zg");
  EXPECT_EQ(Base64Url("fo"), "Zm8");
  EXPECT_EQ(Base64Url("foo"), "Zm9v");
  EXPECT_EQ(Base64Url("\xfb\xff\xfe"), "-__-");
}

TEST(GcsCredentials, ServiceAccountJwtIsVerifiedAndExchangedAtTheTokenUri) {
  const KeyPair keys = MakeKeyPair();
  int token_requests = 0;
  std::string checked;  // what the endpoint found wrong, or "ok"
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    ++token_requests;
    const std::string assertion = FormField(req.body, "assertion");
    const size_t dot1 = assertion.find('.'), dot2 = assertion.rfind('.');
    const json header = json::parse(Base64UrlDecode(assertion.substr(0, dot1)), nullptr, false);
    const json claims =
        json::parse(Base64UrlDecode(assertion.substr(dot1 + 1, dot2 - dot1 - 1)), nullptr, false);
    if (req.method != "POST" || req.path != "/token") {
      checked = "wrong request line " + req.method + " " + req.path;
    } else if (FormField(req.body, "grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      checked = "wrong grant_type";
    } else if (!VerifyRs256(assertion.substr(0, dot2), Base64UrlDecode(assertion.substr(dot2 + 1)),
                            keys.public_pem)) {
      checked = "bad signature";
    } else if (header.value("alg", "") != "RS256" || header.value("kid", "") != "key-1") {
      checked = "bad header " + header.dump();
    } else if (claims.value("iss", "") != "reader@project.iam.gserviceaccount.com" ||
               claims.value("aud", "") != server.url("/token") ||
               claims.value("scope", "") !=
                   "https://www.googleapis.com/auth/devstorage.read_only" ||
               claims.value("exp", 0) - claims.value("iat", 0) != 3600) {
      checked = "bad claims " + claims.dump();
    } else {
      checked = "ok";
    }
    return SendJson(fd, 200,
                    {{"access_token", "token-" + std::to_string(token_requests)},
                     {"expires_in", 3600},
                     {"token_type", "Bearer"}});
  });
  TempDir dir("gcs-sa");
  const std::string key_file = dir / "key.json";
  std::ofstream(key_file) << json{
      {"type", "service_account"},
      {"client_email", "reader@project.iam.gserviceaccount.com"},
      {"private_key_id", "key-1"},
      {"private_key", keys.private_pem},
      {"token_uri",
       server.url("/token")}}.dump();
  auto credentials = Credentials::Create(
      "", false, false, MapEnvironment(Vars{{"GOOGLE_APPLICATION_CREDENTIALS", key_file}}), Fast());
  ASSERT_TRUE(credentials.ok()) << credentials.status().message();
  auto header = (*credentials)->AuthorizationHeader();
  ASSERT_TRUE(header.ok()) << header.status().message();
  EXPECT_EQ(checked, "ok");
  EXPECT_EQ(*header, "Bearer token-1");
  EXPECT_EQ(*(*credentials)->AuthorizationHeader(), "Bearer token-1");  // cached
  EXPECT_EQ(token_requests, 1);
}

// An authorized_user file (client id "id.apps", refresh token "1//refresh-secret") whose
// tokens come from `token_uri`; returns its path.
std::string WriteAuthorizedUser(const TempDir& dir, const std::string& token_uri) {
  const std::string file = dir / "adc.json";
  std::ofstream(file) << json{
      {"type", "authorized_user"},
      {"client_id", "id.apps"},
      {"client_secret", "client-secret-value"},
      {"refresh_token", "1//refresh-secret"},
      {"token_uri",
       token_uri}}.dump();
  return file;
}

TEST(GcsCredentials, RefreshTokensAreExchangedAndRefreshedBeforeExpiry) {
  int token_requests = 0;
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    ++token_requests;
    if (FormField(req.body, "grant_type") != "refresh_token" ||
        FormField(req.body, "refresh_token") != "1//refresh-secret" ||
        FormField(req.body, "client_id") != "id.apps") {
      return SendJson(fd, 400, {{"error", "invalid_grant"}, {"error_description", "Bad Request"}});
    }
    // Expires within the refresh margin: every use fetches a new one.
    return SendJson(fd, 200,
                    {{"access_token", "t" + std::to_string(token_requests)}, {"expires_in", 60}});
  });
  TempDir dir("gcs-user");
  const std::string file = WriteAuthorizedUser(dir, server.url("/token"));
  auto credentials = Credentials::Create(
      "", false, false, MapEnvironment(Vars{{"RUNAI_STREAMER_GCS_CREDENTIAL_FILE", file}}), Fast());
  ASSERT_TRUE(credentials.ok()) << credentials.status().message();
  EXPECT_EQ(*(*credentials)->AuthorizationHeader(), "Bearer t1");
  EXPECT_EQ(*(*credentials)->AuthorizationHeader(), "Bearer t2");
}

TEST(GcsCredentials, RefusedTokenRequestsNameTheEndpointNeverTheSecrets) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    return SendJson(
        fd, 400,
        {{"error", "invalid_grant"}, {"error_description", "Token has been expired or revoked."}});
  });
  TempDir dir("gcs-refused");
  const std::string file = WriteAuthorizedUser(dir, server.url("/token"));
  auto credentials = Credentials::Create(
      "", false, false, MapEnvironment(Vars{{"GOOGLE_APPLICATION_CREDENTIALS", file}}), Fast());
  ASSERT_TRUE(credentials.ok());
  const auto header = (*credentials)->AuthorizationHeader();
  ASSERT_FALSE(header.ok());
  const std::string& message = header.status().message();
  EXPECT_EQ(header.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(message.find("expired or revoked"), std::string::npos) << message;
  EXPECT_NE(message.find(file), std::string::npos) << message;
  EXPECT_EQ(message.find("refresh-secret"), std::string::npos) << message;
  EXPECT_EQ(message.find("client-secret-value"), std::string::npos) << message;
}

TEST(GcsCredentials, ChainOrder) {
  TempDir dir("gcs-chain");
  const auto write = [&](const std::string& name, const std::string& id) {
    std::ofstream(dir / name) << json{
        {"type", "authorized_user"},
        {"client_id", id},
        {"refresh_token", "r"}}.dump();
    return dir / name;
  };
  const std::string runai = write("runai.json", "a"), google = write("google.json", "b");
  std::filesystem::create_directories(dir / "home/.config/gcloud");
  write("home/.config/gcloud/application_default_credentials.json", "c");
  const auto described = [&](std::map<std::string, std::string> vars, const std::string& setting,
                             bool emulator = false) {
    vars.emplace("NO_GCE_CHECK", "true");
    auto c = Credentials::Create(setting, false, emulator, MapEnvironment(vars), Fast());
    return c.ok() ? (*c)->description() : "error: " + c.status().message();
  };
  EXPECT_EQ(described({{"RUNAI_STREAMER_GCS_CREDENTIAL_FILE", runai},
                       {"GOOGLE_APPLICATION_CREDENTIALS", google}},
                      ""),
            "authorized user from " + runai);
  EXPECT_EQ(described({{"GOOGLE_APPLICATION_CREDENTIALS", google}}, runai),
            "authorized user from " + runai);  // the setting first
  EXPECT_EQ(described({{"GOOGLE_APPLICATION_CREDENTIALS", google}}, ""),
            "authorized user from " + google);
  EXPECT_EQ(described({{"HOME", dir / "home"}}, ""),
            "authorized user from " + dir.path() +
                "/home/.config/gcloud/application_default_credentials.json");
  EXPECT_EQ(described({{"RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS", "1"},
                       {"GOOGLE_APPLICATION_CREDENTIALS", google}},
                      ""),
            "anonymous");
  EXPECT_EQ(described({}, "", /*emulator=*/true), "anonymous");
  EXPECT_NE(described({{"HOME", "/nonexistent"}}, "").find("no Google Cloud credentials"),
            std::string::npos);
  EXPECT_NE(described({{"GOOGLE_APPLICATION_CREDENTIALS", dir / "missing.json"}}, "")
                .find("cannot read the credential file"),
            std::string::npos);
}

TEST(GcsCredentials, MetadataServerWithTheGoogleFlavorHeader) {
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    if (req.Header("Metadata-Flavor") != "Google" ||
        req.path != "/computeMetadata/v1/instance/service-accounts/default/token") {
      return SendJson(fd, 403, {{"error", "missing header"}});
    }
    return SendJson(fd, 200, {{"access_token", "from-metadata"}, {"expires_in", 3599}});
  });
  auto credentials = Credentials::Create(
      "", false, false,
      MapEnvironment(Vars{{"HOME", "/nonexistent"},
                          {"GCE_METADATA_HOST", "127.0.0.1:" + std::to_string(server.port())}}),
      Fast());
  ASSERT_TRUE(credentials.ok()) << credentials.status().message();
  EXPECT_EQ(*(*credentials)->AuthorizationHeader(), "Bearer from-metadata");
}

TEST(GcsEndpoint, SettingThenEmulatorVariablesThenGoogle) {
  auto e = ResolveGcsEndpoint("", MapEnvironment(Vars{}));
  EXPECT_EQ(e->url, "https://storage.googleapis.com");
  EXPECT_FALSE(e->emulator);
  e = ResolveGcsEndpoint("", MapEnvironment(Vars{{"STORAGE_EMULATOR_HOST", "localhost:4443"}}));
  EXPECT_EQ(e->url, "http://localhost:4443");
  EXPECT_TRUE(e->emulator);
  e = ResolveGcsEndpoint("", MapEnvironment(Vars{{"CLOUD_STORAGE_EMULATOR_ENDPOINT", "http://a:1/"},
                                                 {"STORAGE_EMULATOR_HOST", "b:2"}}));
  EXPECT_EQ(e->url, "http://a:1");
  e = ResolveGcsEndpoint("https://gcs.internal",
                         MapEnvironment(Vars{{"STORAGE_EMULATOR_HOST", "b:2"}}));
  EXPECT_EQ(e->url, "https://gcs.internal");
  EXPECT_FALSE(e->emulator);
  const auto bad = ResolveGcsEndpoint("http://user:secret@host", MapEnvironment(Vars{}));
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("secret"), std::string::npos);
  EXPECT_FALSE(ResolveGcsEndpoint("ftp://host", MapEnvironment(Vars{})).ok());
}

TEST(GcsUri, Parse) {
  auto l = ParseGcsUri("gs://bucket/a/b.bin");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->bucket, "bucket");
  EXPECT_EQ(l->object, "a/b.bin");
  EXPECT_FALSE(ParseGcsUri("gs:///x").ok());
  EXPECT_FALSE(ParseGcsUri("s3://b/k").ok());
}

TEST(GcsErrors, MapsStatusAndQuotesTheServer) {
  http::Response r;
  r.status = 404;
  r.body = R"({"error":{"code":404,"message":"No such object: b/k"}})";
  Status s = GcsErrorStatus(r, "GET x");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_NE(s.message().find("No such object: b/k"), std::string::npos);
  r.status = 403;
  EXPECT_EQ(GcsErrorStatus(r, "").code(), StatusCode::kPermissionDenied);
  r.status = 503;
  EXPECT_EQ(GcsErrorStatus(r, "").code(), StatusCode::kUnavailable);
  r.status = 412;
  EXPECT_NE(GcsErrorStatus(r, "").message().find("replaced"), std::string::npos);
}

// A scripted JSON-API server holding one object whose generation can change.
class ScriptedGcs {
 public:
  explicit ScriptedGcs(std::string object) : object_(std::move(object)) {}
  bool Serve(int fd, const SeenRequest& req) {
    const std::string generation = replaced ? "2" : "1";
    if (req.path.find("alt=media") == std::string::npos) {
      return SendJson(fd, 200,
                      {{"name", "m.bin"},
                       {"size", std::to_string(object_.size())},
                       {"generation", generation}});
    }
    if (req.path.find("generation=" + generation) == std::string::npos) {
      return SendJson(fd, 404, {{"error", {{"code", 404}, {"message", "No such object"}}}});
    }
    return testing::Send206(fd, req, object_);
  }
  std::atomic<bool> replaced{false};

 private:
  std::string object_;
};

StorageOptions Emulated(const ScriptedServer& server) {
  StorageOptions o;
  o.settings = {{"gcs.endpoint", server.url("")}, {"gcs.anonymous", "1"}};
  return o;
}

TEST(GcsScriptedServer, ReadsArePinnedToTheGenerationSeenWhenOpened) {
  ScriptedGcs gcs(testing::TestObject(4096));
  ScriptedServer server([&](int fd, const SeenRequest& req, int) { return gcs.Serve(fd, req); });
  auto source = OpenGcsSource("gs://bucket/dir/m.bin", Emulated(server));
  ASSERT_TRUE(source.ok()) << source.status().message();
  EXPECT_EQ((*source)->Size(), 4096u);
  const std::atomic<bool> never{false};
  std::string buffer(100, '\0');
  ASSERT_TRUE((*source)->ReadAt(0, 100, buffer.data(), never).ok());
  EXPECT_EQ(buffer, testing::TestObject(4096).substr(0, 100));
  gcs.replaced = true;
  const Status s = (*source)->ReadAt(100, 100, buffer.data(), never);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("gs://bucket/dir/m.bin"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("replaced or deleted"), std::string::npos) << s.message();
  const auto requests = server.requests();
  EXPECT_EQ(requests.front().path, "/storage/v1/b/bucket/o/dir%2Fm.bin");
  EXPECT_EQ(requests[1].path, "/storage/v1/b/bucket/o/dir%2Fm.bin?alt=media&generation=1");
}

TEST(GcsScriptedServer, AnUnreadableAnonymousSettingIsAnError) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    return SendJson(fd, 500, {{"error", {{"code", 500}, {"message", "not reached"}}}});
  });
  StorageOptions options = Emulated(server);
  options.settings["gcs.anonymous"] = "maybe";
  const auto source = OpenGcsSource("gs://bucket/m.bin", options);
  ASSERT_FALSE(source.ok());
  EXPECT_EQ(source.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(source.status().message().find("gcs.anonymous"), std::string::npos)
      << source.status().message();
  EXPECT_TRUE(server.requests().empty());
}

TEST(GcsScriptedServer, AListingThatNeverEndsIsBounded) {
  ScriptedServer server([&](int fd, const SeenRequest&, int index) {
    return SendJson(fd, 200,
                    {{"items", {{{"name", "m/k" + std::to_string(index)}, {"size", "1"}}}},
                     {"nextPageToken", "t" + std::to_string(index)}});
  });
  ListLimits limits;
  limits.max_pages = 20;
  const auto listing = ListGcsObjects("gs://bucket/m", Emulated(server), true, limits);
  ASSERT_FALSE(listing.ok());
  EXPECT_NE(listing.status().message().find("did not end after 20 pages"), std::string::npos)
      << listing.status().message();
}

TEST(GcsScriptedServer, ListingPagesPrefixesAndMarkers) {
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    if (req.path.find("pageToken=next") == std::string::npos) {
      return SendJson(
          fd, 200,
          {{"items",
            {{{"name", "m/"}, {"size", "0"}}, {{"name", "m/a.safetensors"}, {"size", "10"}}}},
           {"prefixes", {"m/sub/"}},
           {"nextPageToken", "next"}});
    }
    // The same common prefix again on the next page, as GCS may send it: listed once.
    return SendJson(fd, 200,
                    {{"items", {{{"name", "m/b.json"}, {"size", "3"}}}}, {"prefixes", {"m/sub/"}}});
  });
  const auto listing = ListGcsObjects("gs://bucket/m", Emulated(server), false);
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  std::vector<std::string> seen;
  for (const ObjectInfo& o : *listing) {
    seen.push_back(o.relative);
    seen.back()
        .append(o.is_directory ? "/dir" : ":")
        .append(o.is_directory ? "" : std::to_string(o.size));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"a.safetensors:10", "b.json:3", "sub//dir"}));
  EXPECT_NE(server.requests()[0].path.find("prefix=m%2F&delimiter=%2F"), std::string::npos);
}

}  // namespace
}  // namespace tensorstream::gcs
