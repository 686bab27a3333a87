// Where S3 credentials and the region come from, in the order the AWS SDKs use:
//   1. explicit S3Config credentials given by the caller (both key id and secret),
//   2. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
//   3. the shared files: AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials) and
//      AWS_CONFIG_FILE (default ~/.aws/config), profile AWS_PROFILE (default "default"),
//   4. EC2 instance metadata (IMDSv2, 1 s timeouts), unless AWS_EC2_METADATA_DISABLED=true;
//      AWS_EC2_METADATA_SERVICE_ENDPOINT overrides its address (tests point it at loopback).
// RUNAI_STREAMER_S3_UNSIGNED=1 (or true) skips all of this: requests go unsigned.
// Not supported (fail as "no credentials"): credential_process, SSO, web identity, ECS.
//
// Secrets never enter a Status message.
#pragma once

#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/environment.h"
#include "common/status.h"
#include "storage/s3/sigv4.h"
#include "storage/source.h"

namespace tensorstream::s3 {

// Explicit credentials and addressing, from the caller's s3.* settings. Unset fields fall
// back to the environment / profile files / instance metadata. Never logged.
struct S3Config {
  std::optional<std::string> access_key_id;
  std::optional<std::string> secret_access_key;
  std::optional<std::string> session_token;
  std::optional<std::string> region;
  std::optional<std::string> endpoint_url;
};
S3Config S3ConfigFrom(const StorageOptions& options);

// An INI file as the AWS CLI writes it: section name → key → value. In the config file
// sections are "profile NAME" except "default"; ParseAwsIni keeps names as written.
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
IniFile ParseAwsIni(const std::string& text);

// Credentials read from the shared files for `profile`, or nullopt when neither file
// defines aws_access_key_id + aws_secret_access_key for it.
std::optional<Credentials> CredentialsFromProfile(const Environment& env);

// The region: S3Config.region, AWS_REGION, AWS_DEFAULT_REGION, the profile's `region` in
// the config file, then "us-east-1".
std::string ResolveRegion(const S3Config& config, const Environment& env);

// Credentials with an expiry (IMDS) are refreshed this long before they expire.
inline constexpr std::time_t kRefreshBeforeExpirySeconds = 300;

// Resolves credentials once and then hands them out; thread-safe. Static credentials
// (explicit, env, profile) are fixed; instance-metadata ones are re-fetched when near
// expiry.
class CredentialsProvider {
 public:
  // Walks the chain. Errors: kPermissionDenied "no S3 credentials found" naming the
  // sources tried (never their values), or kInvalidArgument for a half-given explicit pair.
  static Result<std::unique_ptr<CredentialsProvider>> Create(const S3Config& config,
                                                             const Environment& env);

  // Current credentials (re-fetching expiring ones); empty key id when unsigned.
  Result<Credentials> Get();

  bool unsigned_requests() const { return unsigned_; }
  // Which link of the chain supplied them: "explicit", "environment", "profile NAME",
  // "instance metadata", "unsigned". For messages and tests; never the values.
  const std::string& source() const { return source_; }

 private:
  CredentialsProvider() = default;
  Status FetchFromImds();

  std::mutex mu_;
  Credentials credentials_;
  std::time_t expires_at_ = 0;  // 0 = never
  bool unsigned_ = false;
  std::string source_;
  std::string imds_endpoint_;
};

// Parses an IMDS/ECS credential document ({"AccessKeyId", "SecretAccessKey", "Token",
// "Expiration": "2026-01-01T00:00:00Z"}). Exposed for tests.
Status ParseCredentialDocument(const std::string& json, Credentials* out, std::time_t* expires_at);

}  // namespace tensorstream::s3
