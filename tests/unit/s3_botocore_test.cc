// Cross-checks our S3 signing with botocore's (the signer of boto3 and the AWS CLI): the
// same requests, credentials and pinned time must give the same Authorization header.
// Runs tests/stores/botocore_sign.py with the Python named by TENSORSTREAM_PYTHON (default:
// the project venv); skipped when that Python or botocore is missing.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "safetensors_writer.h"
#include "storage/s3/s3_client.h"

namespace tensorstream::s3 {
namespace {

std::string PythonPath() {
  if (const char* p = std::getenv("TENSORSTREAM_PYTHON"); p && *p) return p;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/tensorstream/venv/bin/python";
}

std::filesystem::path ScriptPath() {
  // This file is tests/unit/s3_botocore_test.cc; the script is tests/stores/botocore_sign.py.
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "stores" /
         "botocore_sign.py";
}

// Runs the script on `input`; nullopt when the Python environment is absent (the test then
// skips). A Python that exists but cannot run the script is a failure, not a skip.
std::optional<nlohmann::json> RunBotocore(const nlohmann::json& input) {
  if (!std::filesystem::exists(PythonPath())) return std::nullopt;
  // Files of this process's own: ctest runs tests in parallel processes.
  const std::string dir = tensorstream::testing::MakeTempDir("botocore");
  const std::string in_path = dir + "/in.json";
  const std::string out_path = dir + "/out.json";
  std::ofstream(in_path) << input.dump();
  std::string cmd = "'";
  cmd += PythonPath();
  cmd += "' '";
  cmd += ScriptPath().string();
  cmd += "' < '" + in_path + "' > '" + out_path + "'";
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "botocore signer script failed: " << cmd;
    return nlohmann::json();
  }
  std::ifstream out(out_path);
  return nlohmann::json::parse(out, nullptr, false);
}

struct Case {
  EndpointConfig endpoint;
  std::string method, bucket, key;
  std::vector<std::pair<std::string, std::string>> query;
  Credentials credentials;
  std::string region;
  std::time_t now;
};

TEST(S3Botocore, SameAuthorizationAsBotocore) {
  const EndpointConfig local{"http", "127.0.0.1:8333", "", true, false, "us-east-1"};
  const EndpointConfig aws_virtual{"https",    "s3.eu-west-1.amazonaws.com", "", false, true,
                                   "eu-west-1"};
  const EndpointConfig prefixed{"http", "localhost:9000", "/s3api", true, false, "us-east-1"};
  const Credentials plain{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
  const Credentials temporary{"ASIAEXAMPLE", "secret/with+chars=", "FwoGZXIvYXdzEJr//token=="};
  const std::vector<Case> cases = {
      {local,
       "GET",
       "models",
       "llama/model-00001-of-00002.safetensors",
       {},
       plain,
       "us-east-1",
       1700000000},
      {local,
       "HEAD",
       "models",
       "dir with spaces/ünïcödé + plus=eq&amp.bin",
       {},
       temporary,
       "us-east-1",
       1700000001},
      {aws_virtual, "GET", "my-bucket", "a/b/c.safetensors", {}, plain, "eu-west-1", 1234567890},
      {aws_virtual,
       "GET",
       "my-bucket",
       "",
       {{"list-type", "2"},
        {"prefix", "models/x y/"},
        {"delimiter", "/"},
        {"encoding-type", "url"},
        {"continuation-token", "1/abc+def=="}},
       temporary,
       "eu-west-1",
       1234567890},
      {prefixed,
       "GET",
       "b",
       "k~tilde_(paren)!*'",
       {{"max-keys", "1000"}},
       plain,
       "us-west-2",
       2000000000},
  };
  nlohmann::json input = nlohmann::json::array();
  std::vector<Signature> ours;
  for (const Case& c : cases) {
    const Target t = MakeS3Target(c.endpoint, c.bucket, c.key, c.query);
    const std::string hash = Sha256Hex("");
    ours.push_back(SignS3Request(c.method, t, hash, c.region, c.credentials, c.now));
    nlohmann::json params = nlohmann::json::array();
    for (const auto& [k, v] : c.query) params.push_back({k, v});
    input.push_back({{"method", c.method},
                     {"url", t.url.substr(0, t.url.find('?'))},
                     {"params", params},
                     {"headers", nlohmann::json::object()},
                     {"time", c.now},
                     {"region", c.region},
                     {"access_key", c.credentials.access_key_id},
                     {"secret_key", c.credentials.secret_access_key},
                     {"token", c.credentials.session_token}});
  }
  const std::optional<nlohmann::json> theirs = RunBotocore(input);
  if (!theirs) GTEST_SKIP() << "no Python environment at " << PythonPath();
  ASSERT_TRUE(theirs->is_array()) << "botocore signer gave no answer";
  ASSERT_EQ(theirs->size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i) + ": " + cases[i].key);
    EXPECT_EQ(ours[i].authorization, (*theirs)[i]["authorization"].get<std::string>());
    EXPECT_EQ(ours[i].amz_date, (*theirs)[i]["x-amz-date"].get<std::string>());
  }
}

}  // namespace
}  // namespace tensorstream::s3
