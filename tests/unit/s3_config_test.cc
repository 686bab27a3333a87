// Credentials chain, region, endpoint and addressing rules, URI parsing, error mapping and
// ListObjectsV2 parsing: everything of the S3 backend that needs no server.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "safetensors_writer.h"
#include "storage/http/xml.h"
#include "storage/s3/credentials.h"
#include "storage/s3/s3_client.h"
#include "storage/s3/s3_list.h"

namespace tensorstream::s3 {
namespace {

// A HOME with .aws files in a fresh temporary directory.
class AwsHome {
 public:
  AwsHome() : dir_(temp_.path()) { std::filesystem::create_directories(dir_ / ".aws"); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / ".aws" / name) << text;
  }
  std::string home() const { return dir_.string(); }
  std::string path(const std::string& name) const { return (dir_ / ".aws" / name).string(); }

 private:
  tensorstream::testing::TempDir temp_{"awshome"};
  std::filesystem::path dir_;
};

MapEnvironment Env(std::map<std::string, std::string> vars) {
  vars.emplace("AWS_EC2_METADATA_DISABLED", "true");  // never reach out to IMDS in tests
  if (!vars.count("HOME")) vars.emplace("HOME", "/nonexistent-home");
  return MapEnvironment(std::move(vars));
}

TEST(S3Credentials, ExplicitConfigWinsOverEnvironment) {
  S3Config config;
  config.access_key_id = "EXPLICIT";
  config.secret_access_key = "explicit-secret";
  config.session_token = "tok";
  auto p = CredentialsProvider::Create(
      config, Env({{"AWS_ACCESS_KEY_ID", "ENV"}, {"AWS_SECRET_ACCESS_KEY", "env-secret"}}));
  ASSERT_TRUE(p.ok()) << p.status().message();
  auto c = (*p)->Get();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->access_key_id, "EXPLICIT");
  EXPECT_EQ(c->secret_access_key, "explicit-secret");
  EXPECT_EQ(c->session_token, "tok");
  EXPECT_EQ((*p)->source(), "explicit");
}

TEST(S3Credentials, HalfExplicitPairIsAnError) {
  S3Config config;
  config.access_key_id = "ONLY-ID";
  auto p = CredentialsProvider::Create(config, Env({}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(p.status().message().find("ONLY-ID"), std::string::npos);
}

TEST(S3Credentials, EnvironmentThenProfile) {
  AwsHome home;
  home.Write("credentials",
             "[default]\naws_access_key_id = FILEDEF\naws_secret_access_key = filedef-secret\n"
             "[work]\naws_access_key_id=FILEWORK\naws_secret_access_key=filework-secret\n"
             "aws_session_token = worktoken\n");
  auto env_first = CredentialsProvider::Create({}, Env({{"HOME", home.home()},
                                                        {"AWS_ACCESS_KEY_ID", "ENVID"},
                                                        {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                                                        {"AWS_SESSION_TOKEN", "envtok"}}));
  ASSERT_TRUE(env_first.ok());
  EXPECT_EQ((*env_first)->Get()->access_key_id, "ENVID");
  EXPECT_EQ((*env_first)->Get()->session_token, "envtok");
  EXPECT_EQ((*env_first)->source(), "environment");

  auto def = CredentialsProvider::Create({}, Env({{"HOME", home.home()}}));
  ASSERT_TRUE(def.ok());
  EXPECT_EQ((*def)->Get()->access_key_id, "FILEDEF");
  EXPECT_EQ((*def)->source(), "profile default");

  auto work =
      CredentialsProvider::Create({}, Env({{"HOME", home.home()}, {"AWS_PROFILE", "work"}}));
  ASSERT_TRUE(work.ok());
  EXPECT_EQ((*work)->Get()->access_key_id, "FILEWORK");
  EXPECT_EQ((*work)->Get()->session_token, "worktoken");
}

TEST(S3Credentials, ConfigFileProfileAndCustomPaths) {
  AwsHome home;
  home.Write("myconfig",
             "[profile dev]\nregion = eu-central-1\naws_access_key_id = CFGID\n"
             "aws_secret_access_key = cfg-secret\ns3 =\n  addressing_style = path\n");
  auto env = Env({{"AWS_CONFIG_FILE", home.path("myconfig")},
                  {"AWS_SHARED_CREDENTIALS_FILE", home.path("missing")},
                  {"AWS_PROFILE", "dev"}});
  auto p = CredentialsProvider::Create({}, env);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ((*p)->Get()->access_key_id, "CFGID");
  EXPECT_EQ(ResolveRegion({}, env), "eu-central-1");
}

TEST(S3Credentials, NoneFoundIsPermissionDeniedAndNamesWhatWasTried) {
  auto p = CredentialsProvider::Create({}, Env({}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(p.status().message().find("AWS_ACCESS_KEY_ID"), std::string::npos);
  EXPECT_NE(p.status().message().find("AWS_EC2_METADATA_DISABLED"), std::string::npos);
}

TEST(S3Credentials, UnsignedSkipsTheChain) {
  auto p = CredentialsProvider::Create({}, Env({{"RUNAI_STREAMER_S3_UNSIGNED", "1"}}));
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE((*p)->unsigned_requests());
}

TEST(S3Credentials, SecretsNeverInErrors) {
  AwsHome home;
  home.Write("credentials", "[default]\naws_access_key_id = ID\n");  // no secret
  auto p = CredentialsProvider::Create(
      {}, Env({{"HOME", home.home()}, {"AWS_SECRET_ACCESS_KEY", "TOPSECRET-VALUE"}}));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message().find("TOPSECRET-VALUE"), std::string::npos);
}

TEST(S3Credentials, ParsesInstanceMetadataDocument) {
  Credentials c;
  std::time_t expires = 0;
  ASSERT_TRUE(
      ParseCredentialDocument(R"({"Code":"Success","AccessKeyId":"ASIA1","SecretAccessKey":"s",)"
                              R"("Token":"t","Expiration":"2030-01-02T03:04:05Z"})",
                              &c, &expires)
          .ok());
  EXPECT_EQ(c.access_key_id, "ASIA1");
  EXPECT_EQ(c.session_token, "t");
  EXPECT_EQ(expires, 1893553445);
  EXPECT_FALSE(ParseCredentialDocument("not json", &c, &expires).ok());
}

TEST(S3Ini, ParsesSectionsCommentsAndNestedBlocks) {
  const IniFile ini = ParseAwsIni(
      "# comment\n[default]\nregion=us-west-2\n; other\n[profile   x ]\n"
      "AWS_ACCESS_KEY_ID = A \ns3 =\n    max_concurrent_requests = 20\nregion = r\n");
  EXPECT_EQ(ini.at("default").at("region"), "us-west-2");
  EXPECT_EQ(ini.at("profile x").at("aws_access_key_id"), "A");
  EXPECT_EQ(ini.at("profile x").at("region"), "r");
  EXPECT_EQ(ini.at("profile x").count("max_concurrent_requests"), 0u);
}

TEST(S3Region, Precedence) {
  S3Config with;
  with.region = "ap-south-1";
  EXPECT_EQ(ResolveRegion(with, Env({{"AWS_REGION", "x"}})), "ap-south-1");
  EXPECT_EQ(ResolveRegion({}, Env({{"AWS_REGION", "x"}, {"AWS_DEFAULT_REGION", "y"}})), "x");
  EXPECT_EQ(ResolveRegion({}, Env({{"AWS_DEFAULT_REGION", "y"}})), "y");
  EXPECT_EQ(ResolveRegion({}, Env({})), "us-east-1");
}

TEST(S3Endpoint, AwsDefaultsToVirtualHosted) {
  auto ep = ResolveEndpoint({}, Env({{"AWS_REGION", "eu-west-1"}}));
  ASSERT_TRUE(ep.ok());
  EXPECT_FALSE(ep->custom);
  EXPECT_TRUE(ep->virtual_hosted);
  const Target t = MakeS3Target(*ep, "my-bucket", "dir/a b.bin");
  EXPECT_EQ(t.url, "https://my-bucket.s3.eu-west-1.amazonaws.com/dir/a%20b.bin");
  EXPECT_EQ(t.host, "my-bucket.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t.path, "/dir/a b.bin");
  // Dotted buckets over https and non-DNS names fall back to path-style.
  EXPECT_EQ(MakeS3Target(*ep, "my.bucket", "k").url,
            "https://s3.eu-west-1.amazonaws.com/my.bucket/k");
  EXPECT_EQ(MakeS3Target(*ep, "My_Bucket", "k").url,
            "https://s3.eu-west-1.amazonaws.com/My_Bucket/k");
}

TEST(S3Endpoint, CustomEndpointDefaultsToPathStyle) {
  auto ep = ResolveEndpoint({}, Env({{"AWS_ENDPOINT_URL", "http://127.0.0.1:8333/"}}));
  ASSERT_TRUE(ep.ok());
  EXPECT_TRUE(ep->custom);
  EXPECT_FALSE(ep->virtual_hosted);
  EXPECT_EQ(MakeS3Target(*ep, "b", "k/x").url, "http://127.0.0.1:8333/b/k/x");
  EXPECT_EQ(MakeS3Target(*ep, "b", "", {{"list-type", "2"}, {"prefix", "a b/"}}).url,
            "http://127.0.0.1:8333/b?list-type=2&prefix=a%20b%2F");
}

TEST(S3Endpoint, ExplicitEndpointAndVirtualOverride) {
  S3Config config;
  config.endpoint_url = "http://localhost:9000/base";
  auto ep = ResolveEndpoint(config, Env({{"AWS_ENDPOINT_URL", "http://ignored:1"},
                                         {"RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "1"}}));
  ASSERT_TRUE(ep.ok());
  EXPECT_TRUE(ep->virtual_hosted);
  EXPECT_EQ(MakeS3Target(*ep, "bucket", "k").url, "http://bucket.localhost:9000/base/k");
  auto off = ResolveEndpoint({}, Env({{"RUNAI_STREAMER_S3_USE_VIRTUAL_ADDRESSING", "false"}}));
  ASSERT_TRUE(off.ok());
  EXPECT_FALSE(off->virtual_hosted);
  auto s3_specific = ResolveEndpoint(
      {}, Env({{"AWS_ENDPOINT_URL", "http://a:1"}, {"AWS_ENDPOINT_URL_S3", "http://b:2"}}));
  EXPECT_EQ(s3_specific->authority, "b:2");
}

TEST(S3Endpoint, BadEndpoints) {
  S3Config config;
  config.endpoint_url = "ftp://host";
  EXPECT_EQ(ResolveEndpoint(config, Env({})).status().code(), StatusCode::kInvalidArgument);
  config.endpoint_url = "http://user:pass@host";
  auto bad = ResolveEndpoint(config, Env({}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("pass"), std::string::npos);
  config.endpoint_url = "minio.local:9000";
  EXPECT_EQ(ResolveEndpoint(config, Env({}))->scheme, "https");
}

TEST(S3Uri, Parse) {
  auto loc = ParseS3Uri("s3://bucket/a/b.bin");
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->bucket, "bucket");
  EXPECT_EQ(loc->key, "a/b.bin");
  EXPECT_EQ(ParseS3Uri("s3://bucket")->key, "");
  EXPECT_FALSE(ParseS3Uri("s3:///key").ok());
  EXPECT_FALSE(ParseS3Uri("gs://b/k").ok());
}

TEST(S3Errors, MapsStatusAndQuotesTheServer) {
  http::Response r;
  r.status = 403;
  r.body =
      "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request "
      "signature we calculated does not match &amp; so on</Message></Error>";
  Status s = S3ErrorStatus(r, "GET http://h/b/k");
  EXPECT_EQ(s.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(s.message(),
            "GET http://h/b/k: HTTP 403 Forbidden (SignatureDoesNotMatch: The request signature "
            "we calculated does not match & so on)");
  r.status = 404;
  r.body = "";
  EXPECT_EQ(S3ErrorStatus(r, "HEAD x").code(), StatusCode::kNotFound);
  r.status = 503;
  r.body = "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>";
  s = S3ErrorStatus(r, "");
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "HTTP 503 Service Unavailable (SlowDown: Reduce your request rate.)");
  r.status = 301;
  r.headers = {{"x-amz-bucket-region", "eu-north-1"}};
  s = S3ErrorStatus(r, "");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("eu-north-1"), std::string::npos);
}

TEST(Xml, Unescape) {
  EXPECT_EQ(http::XmlUnescape("a&lt;b&gt;&quot;&apos;&amp;&#65;&#x42;&#x1234;&bogus;&"),
            "a<b>\"'&AB\xE1\x88\xB4&bogus;&");
}

TEST(S3List, ParsesPageWithEncodedKeys) {
  const std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult "
      "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>m%2F</Prefix>"
      "<KeyCount>3</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>"
      "<IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken>"
      "<Contents><Key>m/a%20b.safetensors</Key><LastModified>x</LastModified><ETag>&quot;e&quot;"
      "</ETag><Size>123456789012</Size><StorageClass>STANDARD</StorageClass></Contents>"
      "<Contents><Key>m/c%2Bd+e.json</Key><Size>0</Size></Contents>"
      "<CommonPrefixes><Prefix>m/sub%2F</Prefix></CommonPrefixes></ListBucketResult>";
  auto page = ParseListPage(xml);
  ASSERT_TRUE(page.ok()) << page.status().message();
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "m/a b.safetensors");
  EXPECT_EQ(page->objects[0].size, 123456789012u);
  EXPECT_EQ(page->objects[1].key, "m/c+d e.json");
  ASSERT_EQ(page->common_prefixes.size(), 1u);
  EXPECT_EQ(page->common_prefixes[0], "m/sub/");
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_token, "tok+/=");
}

TEST(S3List, RawKeysWhenNotEncodedAndBadDocuments) {
  auto page = ParseListPage(
      "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a%20b+&amp; c</Key>"
      "<Size>1</Size></Contents></ListBucketResult>");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->objects[0].key, "a%20b+& c");
  EXPECT_FALSE(page->truncated);
  EXPECT_FALSE(ParseListPage("<Error/>").ok());
  EXPECT_FALSE(ParseListPage("<ListBucketResult><Contents><Key>k</Key><Size>x</Size></Contents>"
                             "</ListBucketResult>")
                   .ok());
}

}  // namespace
}  // namespace tensorstream::s3
