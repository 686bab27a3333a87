#include "storage/s3/credentials.h"

#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/text.h"

namespace tensorstream::s3 {

namespace {

std::string HomeDir(const Environment& env) {
  if (auto home = NonEmpty(env, "HOME")) return *home;
  return ".";
}

std::string CredentialsFilePath(const Environment& env) {
  if (auto p = NonEmpty(env, "AWS_SHARED_CREDENTIALS_FILE")) return *p;
  return HomeDir(env) + "/.aws/credentials";
}

std::string ConfigFilePath(const Environment& env) {
  if (auto p = NonEmpty(env, "AWS_CONFIG_FILE")) return *p;
  return HomeDir(env) + "/.aws/config";
}

std::string ProfileName(const Environment& env) {
  if (auto p = NonEmpty(env, "AWS_PROFILE")) return *p;
  return "default";
}

// The profile's section of the config file: "[default]" or "[profile NAME]".
const std::map<std::string, std::string>* ConfigSection(const IniFile& ini,
                                                        const std::string& profile) {
  auto it = ini.find(profile == "default" ? "default" : "profile " + profile);
  if (it == ini.end() && profile == "default") it = ini.find("profile default");
  return it == ini.end() ? nullptr : &it->second;
}

std::optional<Credentials> FromSection(const std::map<std::string, std::string>* section) {
  if (section == nullptr) return std::nullopt;
  auto id = section->find("aws_access_key_id");
  auto secret = section->find("aws_secret_access_key");
  if (id == section->end() || secret == section->end() || id->second.empty() ||
      secret->second.empty()) {
    return std::nullopt;
  }
  Credentials c{id->second, secret->second, ""};
  if (auto token = section->find("aws_session_token"); token != section->end()) {
    c.session_token = token->second;
  }
  return c;
}

// ISO-8601 "2026-01-01T00:00:00Z" → seconds since the epoch; 0 when unparsable.
std::time_t ParseIso8601(const std::string& s) {
  std::tm tm{};
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec) != 6) {
    return 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm(&tm);
}

}  // namespace

S3Config S3ConfigFrom(const StorageOptions& options) {
  S3Config config;
  config.access_key_id = options.Setting("s3.access_key_id");
  config.secret_access_key = options.Setting("s3.secret_access_key");
  config.session_token = options.Setting("s3.session_token");
  config.region = options.Setting("s3.region");
  config.endpoint_url = options.Setting("s3.endpoint");
  return config;
}

IniFile ParseAwsIni(const std::string& text) {
  IniFile ini;
  std::string section;
  bool in_section = false;
  std::istringstream lines(text);
  std::string raw;
  while (std::getline(lines, raw)) {
    const std::string line = std::string(TrimWhitespace(raw));
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[') {
      const size_t close = line.find(']');
      if (close == std::string::npos) {
        in_section = false;
        continue;
      }
      // "[profile  foo]" → "profile foo": collapse the separator the CLI tolerates.
      std::string name = std::string(TrimWhitespace(line.substr(1, close - 1)));
      if (name.rfind("profile", 0) == 0 && name.size() > 7 &&
          std::isspace(static_cast<unsigned char>(name[7]))) {
        name = "profile " + std::string(TrimWhitespace(name.substr(7)));
      }
      section = name;
      in_section = true;
      ini[section];
      continue;
    }
    if (!in_section) continue;
    // Indented lines continue a nested block (s3 =\n  addressing_style = …); skip them.
    if (std::isspace(static_cast<unsigned char>(raw[0]))) continue;
    const size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    ini[section][AsciiLower(TrimWhitespace(line.substr(0, eq)))] =
        std::string(TrimWhitespace(line.substr(eq + 1)));
  }
  return ini;
}

std::optional<Credentials> CredentialsFromProfile(const Environment& env) {
  const std::string profile = ProfileName(env);
  if (auto text = ReadConfigFile(CredentialsFilePath(env))) {
    const IniFile ini = ParseAwsIni(*text);
    auto it = ini.find(profile);
    if (auto c = FromSection(it == ini.end() ? nullptr : &it->second)) return c;
  }
  if (auto text = ReadConfigFile(ConfigFilePath(env))) {
    const IniFile ini = ParseAwsIni(*text);
    if (auto c = FromSection(ConfigSection(ini, profile))) return c;
  }
  return std::nullopt;
}

std::string ResolveRegion(const S3Config& config, const Environment& env) {
  if (config.region && !config.region->empty()) return *config.region;
  if (auto r = NonEmpty(env, "AWS_REGION")) return *r;
  if (auto r = NonEmpty(env, "AWS_DEFAULT_REGION")) return *r;
  if (auto text = ReadConfigFile(ConfigFilePath(env))) {
    const IniFile ini = ParseAwsIni(*text);
    if (const auto* section = ConfigSection(ini, ProfileName(env))) {
      if (auto it = section->find("region"); it != section->end() && !it->second.empty()) {
        return it->second;
      }
    }
  }
  return "us-east-1";
}

Status ParseCredentialDocument(const std::string& json, Credentials* out, std::time_t* expires_at) {
  const nlohmann::json doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("AccessKeyId") || !doc.contains("SecretAccessKey") ||
      !doc["AccessKeyId"].is_string() || !doc["SecretAccessKey"].is_string()) {
    return IoError("instance metadata credentials: unexpected document (no AccessKeyId)");
  }
  out->access_key_id = doc["AccessKeyId"].get<std::string>();
  out->secret_access_key = doc["SecretAccessKey"].get<std::string>();
  out->session_token =
      doc.contains("Token") && doc["Token"].is_string() ? doc["Token"].get<std::string>() : "";
  *expires_at = doc.contains("Expiration") && doc["Expiration"].is_string()
                    ? ParseIso8601(doc["Expiration"].get<std::string>())
                    : 0;
  return Status::Ok();
}

Result<std::unique_ptr<CredentialsProvider>> CredentialsProvider::Create(const S3Config& config,
                                                                         const Environment& env) {
  std::unique_ptr<CredentialsProvider> p(new CredentialsProvider());
  if (EnvFlag(env, "RUNAI_STREAMER_S3_UNSIGNED").value_or(false)) {
    p->unsigned_ = true;
    p->source_ = "unsigned";
    return p;
  }
  const bool has_id = config.access_key_id && !config.access_key_id->empty();
  const bool has_secret = config.secret_access_key && !config.secret_access_key->empty();
  if (has_id != has_secret) {
    return InvalidArgument(
        "S3 credentials: an access key id and a secret access key must be given together");
  }
  if (has_id) {
    p->credentials_ = {*config.access_key_id, *config.secret_access_key,
                       config.session_token.value_or("")};
    p->source_ = "explicit";
    return p;
  }
  auto env_id = NonEmpty(env, "AWS_ACCESS_KEY_ID");
  auto env_secret = NonEmpty(env, "AWS_SECRET_ACCESS_KEY");
  if (env_id && env_secret) {
    p->credentials_ = {*env_id, *env_secret, NonEmpty(env, "AWS_SESSION_TOKEN").value_or("")};
    p->source_ = "environment";
    return p;
  }
  if (auto c = CredentialsFromProfile(env)) {
    p->credentials_ = *c;
    p->source_ = "profile " + ProfileName(env);
    return p;
  }
  const std::string tried = "explicit credentials, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, " +
                            CredentialsFilePath(env) + " and " + ConfigFilePath(env) +
                            " (profile '" + ProfileName(env) + "')";
  if (EnvFlag(env, "AWS_EC2_METADATA_DISABLED").value_or(false)) {
    return Status(StatusCode::kPermissionDenied,
                  "no S3 credentials found: tried " + tried +
                      "; instance metadata disabled by AWS_EC2_METADATA_DISABLED. Set "
                      "RUNAI_STREAMER_S3_UNSIGNED=1 for public buckets");
  }
  p->imds_endpoint_ =
      NonEmpty(env, "AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("http://169.254.169.254");
  while (!p->imds_endpoint_.empty() && p->imds_endpoint_.back() == '/') {
    p->imds_endpoint_.pop_back();
  }
  if (Status s = p->FetchFromImds(); !s.ok()) {
    return Status(StatusCode::kPermissionDenied,
                  "no S3 credentials found: tried " + tried + " and instance metadata (" +
                      s.message() + "). Set RUNAI_STREAMER_S3_UNSIGNED=1 for public buckets");
  }
  p->source_ = "instance metadata";
  return p;
}

Status CredentialsProvider::FetchFromImds() {
  // Short timeouts and one retry: off EC2 nothing answers, and opening a source must not
  // hang on that.
  http::HttpOptions options;
  options.connect_timeout_ms = 1000;
  options.request_timeout_ms = 1000;
  options.max_retries = 1;
  options.backoff_base_ms = 100;

  http::Request token_req;
  token_req.method = "PUT";
  token_req.url = imds_endpoint_ + "/latest/api/token";
  token_req.headers.push_back({"X-aws-ec2-metadata-token-ttl-seconds", "21600"});
  TS_ASSIGN_OR_RETURN(http::Response token, http::Perform(token_req, nullptr, options, nullptr));
  if (token.status != 200) {
    return Unavailable("IMDSv2 token request returned HTTP " + std::to_string(token.status));
  }
  const http::Header auth{"X-aws-ec2-metadata-token", std::string(TrimWhitespace(token.body))};

  http::Request role_req;
  role_req.url = imds_endpoint_ + "/latest/meta-data/iam/security-credentials/";
  role_req.headers.push_back(auth);
  TS_ASSIGN_OR_RETURN(http::Response role, http::Perform(role_req, nullptr, options, nullptr));
  if (role.status != 200) {
    return Unavailable("no IAM role attached (HTTP " + std::to_string(role.status) + ")");
  }
  const std::string role_name =
      std::string(TrimWhitespace(role.body.substr(0, role.body.find('\n'))));
  if (role_name.empty()) return Unavailable("no IAM role attached");

  http::Request cred_req;
  cred_req.url = role_req.url + http::UriEncode(role_name, true);
  cred_req.headers.push_back(auth);
  TS_ASSIGN_OR_RETURN(http::Response doc, http::Perform(cred_req, nullptr, options, nullptr));
  if (doc.status != 200) {
    return Unavailable("credentials of the instance role returned HTTP " +
                       std::to_string(doc.status));
  }
  return ParseCredentialDocument(doc.body, &credentials_, &expires_at_);
}

Result<Credentials> CredentialsProvider::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  if (expires_at_ != 0 && std::time(nullptr) + kRefreshBeforeExpirySeconds >= expires_at_) {
    TS_RETURN_IF_ERROR(FetchFromImds().WithContext("refreshing S3 credentials"));
  }
  return credentials_;
}

}  // namespace tensorstream::s3
