// The Azure backend without a real server: connection strings, Shared Key signing (against
// the canonical forms Microsoft documents and against the signatures azure-storage-blob
// computes for the same requests), the credential chain, service-principal and
// managed-identity tokens from endpoints of our own, errors, and a scripted server that
// replaces a blob mid-stream or pages a listing.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "safetensors_writer.h"
#include "scripted_server.h"
#include "storage/azure/azure_backend.h"
#include "storage/azure/azure_client.h"
#include "storage/azure/azure_credentials.h"
#include "storage/http/crypto.h"

namespace tensorstream::azure {
namespace {

using nlohmann::json;
using testing::FormField;
using testing::ScriptedServer;
using testing::SeenRequest;
using testing::SendReply;
using Kind = CredentialSource::Kind;
using Vars = std::map<std::string, std::string>;

// Azurite's published development key: a valid base64 key that is no secret.
constexpr const char* kDevKey =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

http::HttpOptions Fast() { return testing::FastHttpOptions(); }

http::Request MakeRequest(const std::string& method, const std::string& url,
                          std::vector<http::Header> headers) {
  http::Request r;
  r.method = method;
  r.url = url;
  r.headers = std::move(headers);
  return r;
}

TEST(AzureCrypto, Base64RoundTripsAndRefusesGarbage) {
  for (const std::string text : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    EXPECT_EQ(http::Base64Decode(http::Base64Encode(text)), text);
  }
  EXPECT_EQ(http::Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(http::Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(http::Base64Decode("Zm9v!mFy").has_value());
  EXPECT_FALSE(http::Base64Decode("Z").has_value());
  EXPECT_EQ(http::Base64Decode(kDevKey)->size(), 64u);
}

TEST(AzureConnectionString, FieldsDevelopmentStorageAndErrorsWithoutValues) {
  auto full = ParseConnectionString(
      "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core."
      "chinacloudapi.cn;");
  ASSERT_TRUE(full.ok()) << full.status().message();
  EXPECT_EQ(full->account_name, "acct");
  EXPECT_EQ(full->account_key, "a2V5");
  EXPECT_EQ(full->protocol, "https");
  EXPECT_EQ(full->endpoint_suffix, "core.chinacloudapi.cn");

  auto sas = ParseConnectionString(
      "BlobEndpoint=http://127.0.0.1:10000/acct/;SharedAccessSignature=?sv=2025&sig=a%2Bb=");
  ASSERT_TRUE(sas.ok());
  EXPECT_EQ(sas->blob_endpoint, "http://127.0.0.1:10000/acct");
  EXPECT_EQ(sas->sas_token, "sv=2025&sig=a%2Bb=");  // values may hold '='

  auto dev = ParseConnectionString("UseDevelopmentStorage=true");
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(dev->account_name, "devstoreaccount1");
  EXPECT_EQ(dev->account_key, kDevKey);
  EXPECT_EQ(dev->blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");

  auto bad = ParseConnectionString("AccountKey=c2VjcmV0LWtleQ==;garbage");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find("c2VjcmV0LWtleQ"), std::string::npos);
  auto no_account = ParseConnectionString("AccountKey=c2VjcmV0LWtleQ==");
  ASSERT_FALSE(no_account.ok());
  EXPECT_EQ(no_account.status().message().find("c2VjcmV0LWtleQ"), std::string::npos);
}

// Microsoft's "Authorize with Shared Key" article: the canonicalized resource of a request
// with parameters is "/ACCOUNT/PATH" then "\nname:value" per parameter, names lower-cased
// and sorted, repeated parameters' values sorted and joined by commas.
TEST(AzureSharedKey, CanonicalizedResourceAsDocumented) {
  const auto metadata = SharedKeyStringToSign(
      MakeRequest(
          "GET",
          "http://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=metadata", {}),
      "myaccount");
  EXPECT_TRUE(metadata.ends_with("\n/myaccount/mycontainer\ncomp:metadata\nrestype:container"))
      << metadata;
  const auto list = SharedKeyStringToSign(
      MakeRequest("GET",
                  "http://myaccount.blob.core.windows.net/mycontainer?restype=container&comp=list"
                  "&include=snapshots&include=metadata&include=uncommittedblobs",
                  {}),
      "myaccount");
  EXPECT_TRUE(
      list.ends_with("\n/myaccount/mycontainer\ncomp:list\n"
                     "include:metadata,snapshots,uncommittedblobs\nrestype:container"))
      << list;
}

TEST(AzureSharedKey, StringToSignHasTheFixedFieldsThenXmsHeadersSorted) {
  const auto text = SharedKeyStringToSign(
      MakeRequest("GET", "http://127.0.0.1:10000/devstoreaccount1/models/llama%20x/m.bin",
                  {{"x-ms-version", "2025-11-05"},
                   {"Range", "bytes=0-99"},
                   {"If-Match", "\"0x8DC\""},
                   {"X-MS-Date", "Thu, 03 Dec 2026 17:00:00 GMT"},
                   {"Content-Length", "0"}}),
      "devstoreaccount1");
  EXPECT_EQ(text,
            "GET\n\n\n\n\n\n\n\n\"0x8DC\"\n\n\nbytes=0-99\n"
            "x-ms-date:Thu, 03 Dec 2026 17:00:00 GMT\nx-ms-version:2025-11-05\n"
            "/devstoreaccount1/devstoreaccount1/models/llama%20x/m.bin");
}

std::string PythonPath() {
  if (const char* p = std::getenv("TENSORSTREAM_PYTHON"); p && *p) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/tensorstream/venv/bin/python";
}

// tests/stores/azure_sign.py on `input`; nullopt when the Python environment is absent.
std::optional<json> RunAzureSdkSigner(const json& input) {
  if (!std::filesystem::exists(PythonPath())) return std::nullopt;
  const std::string script =
      (std::filesystem::path(__FILE__).parent_path().parent_path() / "stores" / "azure_sign.py")
          .string();
  const std::string dir = testing::MakeTempDir("azure-sign");
  std::ofstream(dir + "/in.json") << input.dump();
  const std::string command =
      "'" + PythonPath() + "' '" + script + "' < '" + dir + "/in.json' > '" + dir + "/out.json'";
  if (std::system(command.c_str()) != 0) {
    ADD_FAILURE() << "azure-storage-blob signer failed: " << command;
    return json();
  }
  std::ifstream out(dir + "/out.json");
  return json::parse(out, nullptr, false);
}

TEST(AzureSharedKey, SameAuthorizationAsAzureStorageBlob) {
  const std::string date = HttpDate(1796317200);  // a fixed time: both sign the same bytes
  struct Case {
    std::string method, url, account, key;
    std::vector<http::Header> headers;
  };
  const std::vector<Case> cases = {
      {"HEAD",
       "https://acct.blob.core.windows.net/models/llama/model.safetensors",
       "acct",
       "c2VjcmV0LWtleS1mb3ItdGVzdHM=",
       {{"x-ms-date", date}, {"x-ms-version", kServiceVersion}}},
      {"GET",
       "http://127.0.0.1:10000/devstoreaccount1/models/a%20b/m%2B.bin",
       "devstoreaccount1",
       kDevKey,
       // The SDK sends ranges as x-ms-range (it cannot sign a Range header); ours, a Range
       // header, is checked against the documented form above and by Azurite.
       {{"x-ms-date", date},
        {"x-ms-version", kServiceVersion},
        {"x-ms-range", "bytes=8388608-16777215"},
        {"If-Match", "\"0x8DCF00D\""}}},
      {"GET",
       "https://acct.blob.core.windows.net/models?restype=container&comp=list&maxresults=5000"
       "&prefix=llama%2F&delimiter=%2F&marker=2%21100%21MDAw",
       "acct",
       kDevKey,
       {{"x-ms-date", date}, {"x-ms-version", kServiceVersion}}},
  };
  json input = json::array();
  std::vector<std::string> ours;
  for (const Case& c : cases) {
    json headers = json::array();
    for (const auto& h : c.headers) headers.push_back({h.name, h.value});
    input.push_back({{"method", c.method},
                     {"url", c.url},
                     {"headers", headers},
                     {"account", c.account},
                     {"key", c.key}});
    auto header = SharedKeyAuthorization(MakeRequest(c.method, c.url, c.headers), c.account, c.key);
    ASSERT_TRUE(header.ok()) << header.status().message();
    ours.push_back(*header);
  }
  const auto theirs = RunAzureSdkSigner(input);
  if (!theirs) GTEST_SKIP() << "no Python with azure-storage-blob at " << PythonPath();
  ASSERT_TRUE(theirs->is_array() && theirs->size() == cases.size()) << theirs->dump();
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(ours[i], (*theirs)[i].get<std::string>()) << cases[i].method << " " << cases[i].url;
  }
}

TEST(AzureSharedKey, AKeyThatIsNotBase64IsRefusedWithoutQuotingIt) {
  const auto header =
      SharedKeyAuthorization(MakeRequest("GET", "https://a/b", {}), "a", "not base64 secret!");
  ASSERT_FALSE(header.ok());
  EXPECT_EQ(header.status().message().find("secret"), std::string::npos);
}

TEST(AzureCredentials, ChainOrder) {
  const ConnectionString with_key{"acct", "Y29ubg==", "", "", "", ""};
  const ConnectionString with_sas{"acct", "", "sv=1&sig=x", "", "", ""};
  const Vars everything = {{"AZURE_STORAGE_SAS_TOKEN", "?sv=2&sig=y"},
                           {"AZURE_STORAGE_ACCOUNT_KEY", "ZW52"},
                           {"AZURE_CLIENT_ID", "id"},
                           {"AZURE_TENANT_ID", "tenant"},
                           {"AZURE_CLIENT_SECRET", "shh"}};
  const MapEnvironment env(everything);
  EXPECT_EQ(FindCredentialSource(&with_key, "", "", false, "acct", env).kind, Kind::kSharedKey);
  EXPECT_EQ(FindCredentialSource(&with_key, "", "", false, "acct", env).secret, "Y29ubg==");
  EXPECT_EQ(FindCredentialSource(&with_sas, "", "", false, "acct", env).kind, Kind::kSas);
  const auto sas = FindCredentialSource(nullptr, "", "", false, "acct", env);
  EXPECT_EQ(sas.kind, Kind::kSas);
  EXPECT_EQ(sas.secret, "sv=2&sig=y");  // the leading '?' dropped
  EXPECT_EQ(FindCredentialSource(nullptr, "sv=3", "", false, "acct", env).secret, "sv=3");
  EXPECT_EQ(FindCredentialSource(nullptr, "", "c2V0", false, "acct",
                                 MapEnvironment(Vars{{"AZURE_STORAGE_ACCOUNT_KEY", "ZW52"}}))
                .secret,
            "c2V0");
  Vars principal = everything;
  principal.erase("AZURE_STORAGE_SAS_TOKEN");
  principal.erase("AZURE_STORAGE_ACCOUNT_KEY");
  principal["AZURE_AUTHORITY_HOST"] = "http://127.0.0.1:9/";
  const auto secret =
      FindCredentialSource(nullptr, "", "", false, "acct", MapEnvironment(principal));
  EXPECT_EQ(secret.kind, Kind::kClientSecret);
  EXPECT_EQ(secret.token_endpoint, "http://127.0.0.1:9/tenant/oauth2/v2.0/token");
  principal.erase("AZURE_CLIENT_SECRET");
  const auto identity =
      FindCredentialSource(nullptr, "", "", false, "acct", MapEnvironment(principal));
  EXPECT_EQ(identity.kind, Kind::kManagedIdentity);
  EXPECT_EQ(identity.token_endpoint,
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
            "&resource=https%3A%2F%2Fstorage.azure.com%2F&client_id=id");
  EXPECT_EQ(FindCredentialSource(&with_key, "", "", true, "acct", env).kind, Kind::kAnonymous);
}

TEST(AzureCredentials, ServicePrincipalTokenIsFetchedOnceAndNeverShown) {
  std::atomic<int> token_requests{0};
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    ++token_requests;
    if (req.path != "/tenant-1/oauth2/v2.0/token" ||
        FormField(req.body, "grant_type") != "client_credentials" ||
        FormField(req.body, "client_id") != "app-id" ||
        FormField(req.body, "client_secret") != "client-secret-value" ||
        FormField(req.body, "scope") != "https://storage.azure.com/.default") {
      return SendReply(
          fd, 401, "application/json",
          R"({"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."})");
    }
    return SendReply(fd, 200, "application/json",
                     R"({"token_type":"Bearer","expires_in":3599,"access_token":"token-1"})");
  });
  const MapEnvironment env(Vars{{"AZURE_CLIENT_ID", "app-id"},
                                {"AZURE_TENANT_ID", "tenant-1"},
                                {"AZURE_CLIENT_SECRET", "client-secret-value"},
                                {"AZURE_AUTHORITY_HOST", server.url("")}});
  const Credentials credentials(FindCredentialSource(nullptr, "", "", false, "acct", env), Fast());
  for (int i = 0; i < 3; ++i) {
    http::Request request = MakeRequest("GET", "https://acct.blob.core.windows.net/c/b", {});
    ASSERT_TRUE(credentials.Authorize(request).ok());
    bool bearer = false;
    for (const auto& h : request.headers)
      bearer |= h.name == "Authorization" && h.value == "Bearer token-1";
    EXPECT_TRUE(bearer);
  }
  EXPECT_EQ(token_requests.load(), 1);

  const MapEnvironment wrong(Vars{{"AZURE_CLIENT_ID", "app-id"},
                                  {"AZURE_TENANT_ID", "tenant-1"},
                                  {"AZURE_CLIENT_SECRET", "wrong-secret-value"},
                                  {"AZURE_AUTHORITY_HOST", server.url("")}});
  const Credentials refused(FindCredentialSource(nullptr, "", "", false, "acct", wrong), Fast());
  http::Request request = MakeRequest("GET", "https://acct.blob.core.windows.net/c/b", {});
  const Status s = refused.Authorize(request);
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(s.message().find("Invalid client secret"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("AZURE_CLIENT_ID"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("wrong-secret-value"), std::string::npos) << s.message();
}

TEST(AzureCredentials, ManagedIdentityAsksTheMetadataEndpointWithItsHeader) {
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    if (req.Header("Metadata") != "true" ||
        req.path.find("resource=https%3A%2F%2Fstorage.azure.com%2F") == std::string::npos) {
      return SendReply(fd, 400, "application/json", R"({"error":"invalid_request"})");
    }
    // The metadata endpoint sends expires_in as a string.
    return SendReply(fd, 200, "application/json",
                     R"({"access_token":"mi-token","expires_in":"86399","token_type":"Bearer"})");
  });
  const MapEnvironment env(Vars{{"AZURE_POD_IDENTITY_AUTHORITY_HOST", server.url("")}});
  const Credentials credentials(FindCredentialSource(nullptr, "", "", false, "acct", env), Fast());
  EXPECT_EQ(credentials.kind(), Kind::kManagedIdentity);
  http::Request request = MakeRequest("GET", "https://acct.blob.core.windows.net/c/b", {});
  ASSERT_TRUE(credentials.Authorize(request).ok());
  EXPECT_EQ(request.headers.back().value, "Bearer mi-token");
}

TEST(AzureCredentials, SasGoesIntoTheQueryAndNeverIntoErrors) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    // A HEAD reply has no body: the error code comes in a header.
    testing::SendAll(fd,
                     "HTTP/1.1 403 X\r\nx-ms-error-code: AuthenticationFailed\r\n"
                     "Content-Length: 0\r\n\r\n");
    return true;
  });
  StorageOptions options;
  options.settings = {{"azure.endpoint", server.url("/acct")},
                      {"azure.account_name", "acct"},
                      {"azure.sas_token", "?sv=2025&sig=sas-signature-value"}};
  const auto source = OpenAzureSource("az://models/m.bin", options);
  ASSERT_FALSE(source.ok());
  const std::string& message = source.status().message();
  EXPECT_EQ(source.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(message.find("az://models/m.bin"), std::string::npos) << message;
  EXPECT_NE(message.find("HTTP 403 (AuthenticationFailed)"), std::string::npos) << message;
  EXPECT_EQ(message.find("sas-signature-value"), std::string::npos) << message;
  const auto requests = server.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_EQ(requests[0].path, "/acct/models/m.bin?sv=2025&sig=sas-signature-value");
  EXPECT_EQ(requests[0].Header("x-ms-version"), kServiceVersion);
}

TEST(AzureClientConfig, AccountEndpointAndSettingsErrors) {
  StorageOptions none;
  auto missing = AzureClient::Create(none, MapEnvironment(Vars{}));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("AZURE_STORAGE_ACCOUNT_NAME"), std::string::npos);

  auto by_name =
      AzureClient::Create(none, MapEnvironment(Vars{{"AZURE_STORAGE_ACCOUNT_NAME", "acct"},
                                                    {"AZURE_STORAGE_ACCOUNT_KEY", kDevKey}}));
  ASSERT_TRUE(by_name.ok()) << by_name.status().message();
  EXPECT_EQ((*by_name)->endpoint(), "https://acct.blob.core.windows.net");
  EXPECT_EQ((*by_name)->BlobUrl({"models", "a b/c+d.bin"}),
            "https://acct.blob.core.windows.net/models/a%20b/c%2Bd.bin");

  auto sovereign = AzureClient::Create(
      none, MapEnvironment(Vars{{"AZURE_STORAGE_CONNECTION_STRING",
                                 "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;"
                                 "EndpointSuffix=core.chinacloudapi.cn"}}));
  ASSERT_TRUE(sovereign.ok());
  EXPECT_EQ((*sovereign)->endpoint(), "https://acct.blob.core.chinacloudapi.cn");

  StorageOptions bad;
  bad.settings = {{"azure.endpoint", "ftp://x"}, {"azure.account_name", "acct"}};
  EXPECT_EQ(AzureClient::Create(bad, MapEnvironment(Vars{})).status().code(),
            StatusCode::kInvalidArgument);
  bad.settings = {{"azure.account_name", "acct"}, {"azure.anonymous", "maybe"}};
  EXPECT_NE(
      AzureClient::Create(bad, MapEnvironment(Vars{})).status().message().find("azure.anonymous"),
      std::string::npos);
}

TEST(AzureErrors, MapsStatusAndQuotesTheServer) {
  http::Response r;
  r.status = 404;
  r.headers = {{"x-ms-error-code", "BlobNotFound"}};
  Status s = AzureErrorStatus(r, "HEAD http://h/c/b");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "HEAD http://h/c/b: HTTP 404 (BlobNotFound)");
  r.status = 503;
  r.headers.clear();
  r.body =
      "<?xml "
      "version=\"1.0\"?><Error><Code>ServerBusy</Code><Message>Busy.\nRequestId:x</Message></"
      "Error>";
  s = AzureErrorStatus(r, "");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "HTTP 503 (ServerBusy: Busy.)");
}

// A scripted Blob service holding one blob whose ETag changes when it is replaced.
StorageOptions Scripted(const ScriptedServer& server) {
  StorageOptions o;
  o.settings = {{"azure.endpoint", server.url("/devstoreaccount1")},
                {"azure.account_name", "devstoreaccount1"},
                {"azure.account_key", kDevKey}};
  return o;
}

TEST(AzureScriptedServer, ReadsAreSignedAndPinnedToTheETagSeenWhenOpened) {
  const std::string blob = testing::TestObject(4096);
  std::atomic<bool> replaced{false};
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    const std::string etag = replaced ? "\"0x2\"" : "\"0x1\"";
    if (req.Header("Authorization").rfind("SharedKey devstoreaccount1:", 0) != 0) {
      return testing::SendError(fd, 403, "AuthenticationFailed", "no signature");
    }
    if (req.method == "HEAD") {
      testing::SendAll(fd, "HTTP/1.1 200 OK\r\nETag: " + etag + "\r\nContent-Length: 4096\r\n\r\n");
      return true;
    }
    if (req.Header("If-Match") != etag) {
      return testing::SendError(fd, 412, "ConditionNotMet", "The condition specified was not met.");
    }
    return testing::Send206(fd, req, blob);
  });
  auto source = OpenAzureSource("az://models/dir/m.bin", Scripted(server));
  ASSERT_TRUE(source.ok()) << source.status().message();
  EXPECT_EQ((*source)->Size(), 4096u);
  const std::atomic<bool> never{false};
  std::string buffer(100, '\0');
  ASSERT_TRUE((*source)->ReadAt(10, 100, buffer.data(), never).ok());
  EXPECT_EQ(buffer, blob.substr(10, 100));
  replaced = true;
  const Status s = (*source)->ReadAt(0, 100, buffer.data(), never);
  EXPECT_NE(s.message().find("az://models/dir/m.bin"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("replaced"), std::string::npos) << s.message();
  EXPECT_EQ(server.requests().front().path, "/devstoreaccount1/models/dir/m.bin");
}

TEST(AzureScriptedServer, ListingPagesPrefixesAndEncodedNames) {
  ScriptedServer server([&](int fd, const SeenRequest& req, int) {
    std::string body = "<?xml version=\"1.0\"?><EnumerationResults><Blobs>";
    if (req.path.find("marker=") == std::string::npos) {
      body +=
          "<Blob><Name>m/a.safetensors</Name><Properties><Content-Length>10</Content-Length>"
          "</Properties></Blob><BlobPrefix><Name>m/sub/</Name></BlobPrefix>"
          "<Blob><Name>m/</Name><Properties><Content-Length>0</Content-Length></Properties></Blob>"
          "</Blobs><NextMarker>2!m/b</NextMarker></EnumerationResults>";
    } else {
      body +=
          "<Blob><Name Encoded=\"true\">m/b%01.json</Name><Properties><Content-Length>3"
          "</Content-Length></Properties></Blob></Blobs><NextMarker /></EnumerationResults>";
    }
    return SendReply(fd, 200, "application/xml", body);
  });
  const auto listing = ListAzureBlobs("az://models/m", Scripted(server), false);
  ASSERT_TRUE(listing.ok()) << listing.status().message();
  ASSERT_EQ(listing->size(), 3u);
  EXPECT_EQ((*listing)[0].uri, "az://models/m/a.safetensors");
  EXPECT_EQ((*listing)[0].size, 10u);
  EXPECT_EQ((*listing)[1].relative, std::string("b\x01.json"));
  EXPECT_EQ((*listing)[2].relative, "sub/");
  EXPECT_TRUE((*listing)[2].is_directory);
  const auto requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(requests[0].path.find("restype=container&comp=list"), std::string::npos);
  EXPECT_NE(requests[0].path.find("prefix=m%2F&delimiter=%2F"), std::string::npos);
  EXPECT_NE(requests[1].path.find("marker=2%21m%2Fb"), std::string::npos);
}

TEST(AzureScriptedServer, AListingThatRepeatsItsMarkerFails) {
  ScriptedServer server([&](int fd, const SeenRequest&, int) {
    return SendReply(fd, 200, "application/xml",
                     "<EnumerationResults><Blobs></Blobs><NextMarker>same</NextMarker>"
                     "</EnumerationResults>");
  });
  const auto listing = ListAzureBlobs("az://models/m", Scripted(server), true);
  ASSERT_FALSE(listing.ok());
  EXPECT_NE(listing.status().message().find("repeats its marker"), std::string::npos);
}

}  // namespace
}  // namespace tensorstream::azure
