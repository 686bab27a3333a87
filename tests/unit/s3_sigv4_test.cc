// SigV4 against AWS's published Signature Version 4 test suite (service "service",
// us-east-1, 2015-08-30T12:36:00Z, key AKIDEXAMPLE) and the S3 GET-object example of the
// S3 API reference. The botocore cross-check lives in s3_botocore_test.cc.
#include <gtest/gtest.h>

#include "storage/s3/sigv4.h"

namespace tensorstream::s3 {
namespace {

const Credentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
constexpr std::time_t kSuiteTime = 1440938160;  // 2015-08-30T12:36:00Z
constexpr const char* kEmptyHash =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

struct Vector {
  const char* name;
  const char* method;
  const char* path;
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<http::Header> headers;
  const char* session_token;
  const char* payload_hash;
  const char* canonical_request;
  const char* signature;
};

std::vector<Vector> SuiteVectors() {
  return {
      {"get-vanilla",
       "GET",
       "/",
       {},
       {},
       "",
       kEmptyHash,
       "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
      {"get-unreserved",
       "GET",
       "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
       {},
       {},
       "",
       kEmptyHash,
       nullptr,
       "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"get-utf8",
       "GET",
       "/\xE1\x88\xB4",
       {},
       {},
       "",
       kEmptyHash,
       "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
       "host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
      {"get-space-unnormalized",
       "GET",
       "/example space/",
       {},
       {},
       "",
       kEmptyHash,
       nullptr,
       "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
      {"get-slashes-unnormalized",
       "GET",
       "//example//",
       {},
       {},
       "",
       kEmptyHash,
       nullptr,
       "87cca117541a147f6df867677d98a7d80dff226d2bfca9e4ffa899665623c7e5"},
      {"get-relative-unnormalized",
       "GET",
       "/example/..",
       {},
       {},
       "",
       kEmptyHash,
       nullptr,
       "eca7ead57bb5aa5c8e28007acd4ff04e1ff9a0ff3b237ec1554a184887ff9282"},
      {"get-vanilla-query-order-key-case",
       "GET",
       "/",
       {{"Param2", "value2"}, {"Param1", "value1"}},
       {},
       "",
       kEmptyHash,
       "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
       "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"get-vanilla-query-order-encoded",
       "GET",
       "/",
       {{"Param-3", "Value3"}, {"Param", "Value2"}, {"\xE1\x88\xB4", "Value1"}},
       {},
       "",
       kEmptyHash,
       nullptr,
       "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"},
      {"get-vanilla-query-unreserved",
       "GET",
       "/",
       {{"-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
         "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"}},
       {},
       "",
       kEmptyHash,
       nullptr,
       "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
      {"get-vanilla-utf8-query",
       "GET",
       "/",
       {{"\xE1\x88\xB4", "bar"}},
       {},
       "",
       kEmptyHash,
       nullptr,
       "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
      {"get-vanilla-with-session-token",
       "GET",
       "/",
       {},
       {},
       "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267",
       kEmptyHash,
       "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
       "x-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n\n"
       "host;x-amz-date;x-amz-security-token\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"},
      {"get-header-key-duplicate",
       "GET",
       "/",
       {},
       {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
       "",
       kEmptyHash,
       nullptr,
       "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
      {"get-header-value-order",
       "GET",
       "/",
       {},
       {{"My-Header1", "value4"},
        {"My-Header1", "value1"},
        {"My-Header1", "value3"},
        {"My-Header1", "value2"}},
       "",
       kEmptyHash,
       nullptr,
       "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
      {"get-header-value-trim",
       "GET",
       "/",
       {},
       {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
       "",
       kEmptyHash,
       "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
       "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n"
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
       "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"post-vanilla",
       "POST",
       "/",
       {},
       {},
       "",
       kEmptyHash,
       nullptr,
       "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"post-vanilla-query",
       "POST",
       "/",
       {{"Param1", "value1"}},
       {},
       "",
       kEmptyHash,
       nullptr,
       "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"post-header-value-case",
       "POST",
       "/",
       {},
       {{"My-Header1", "VALUE1"}},
       "",
       kEmptyHash,
       nullptr,
       "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"post-x-www-form-urlencoded",
       "POST",
       "/",
       {},
       {{"Content-Type", "application/x-www-form-urlencoded"},
        {"Content-Length", "13"},
        {"x-amz-content-sha256",
         "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"}},
       "",
       "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
       nullptr,
       "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b"},
  };
}

TEST(S3SigV4, PublishedTestSuite) {
  for (const Vector& v : SuiteVectors()) {
    SCOPED_TRACE(v.name);
    SigningRequest req;
    req.method = v.method;
    req.host = "example.amazonaws.com";
    req.path = v.path;
    req.query = v.query;
    req.headers = v.headers;
    req.payload_hash = v.payload_hash;
    req.region = "us-east-1";
    req.service = "service";
    Credentials creds = kSuiteCredentials;
    creds.session_token = v.session_token;
    const Signature sig = SignV4(req, creds, kSuiteTime);
    if (v.canonical_request != nullptr) {
      EXPECT_EQ(sig.canonical_request, v.canonical_request);
    }
    EXPECT_EQ(sig.signature, v.signature);
    EXPECT_EQ(sig.authorization,
              "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
              "SignedHeaders=" +
                  sig.signed_headers + ", Signature=" + v.signature);
    EXPECT_EQ(sig.amz_date, "20150830T123600Z");
  }
}

TEST(S3SigV4, StringToSignOfVanilla) {
  SigningRequest req{"GET",    "example.amazonaws.com", "/", {}, {}, kEmptyHash, "us-east-1",
                     "service"};
  const Signature sig = SignV4(req, kSuiteCredentials, kSuiteTime);
  EXPECT_EQ(sig.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
}

// The GET Object example of the S3 API reference ("Signature Calculations for the
// Authorization Header"): a ranged GET signed with its Range header.
TEST(S3SigV4, S3ReferenceGetObjectExample) {
  SigningRequest req;
  req.method = "GET";
  req.host = "examplebucket.s3.amazonaws.com";
  req.path = "/test.txt";
  req.headers = {{"Range", "bytes=0-9"}, {"x-amz-content-sha256", kEmptyHash}};
  req.payload_hash = kEmptyHash;
  req.region = "us-east-1";
  req.service = "s3";
  const Credentials creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  const Signature sig = SignV4(req, creds, 1369353600);  // 2013-05-24T00:00:00Z
  EXPECT_EQ(sig.signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
  EXPECT_EQ(sig.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(S3SigV4, ExtraHeadersCarryDateAndToken) {
  SigningRequest req{"GET", "h", "/", {}, {}, kEmptyHash, "us-east-1", "s3"};
  Signature sig = SignV4(req, kSuiteCredentials, kSuiteTime);
  ASSERT_EQ(sig.extra_headers.size(), 1u);
  EXPECT_EQ(sig.extra_headers[0].name, "X-Amz-Date");
  Credentials with_token = kSuiteCredentials;
  with_token.session_token = "tok";
  sig = SignV4(req, with_token, kSuiteTime);
  ASSERT_EQ(sig.extra_headers.size(), 2u);
  EXPECT_EQ(sig.extra_headers[1].value, "tok");
}

TEST(S3SigV4, SecretNeverInOutput) {
  SigningRequest req{"GET", "h", "/k", {}, {}, kEmptyHash, "us-east-1", "s3"};
  const Signature sig = SignV4(req, kSuiteCredentials, kSuiteTime);
  for (const std::string* s : {&sig.canonical_request, &sig.string_to_sign, &sig.authorization}) {
    EXPECT_EQ(s->find(kSuiteCredentials.secret_access_key), std::string::npos);
  }
}

TEST(S3SigV4, Helpers) {
  EXPECT_EQ(Sha256Hex(""), kEmptyHash);
  EXPECT_EQ(AmzDate(0), "19700101T000000Z");
  EXPECT_EQ(CanonicalQueryString({{"b", "2"}, {"a", "x y/z"}, {"a", "1"}}), "a=1&a=x%20y%2Fz&b=2");
}

}  // namespace
}  // namespace tensorstream::s3
