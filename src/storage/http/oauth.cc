#include "storage/http/oauth.h"

#include <nlohmann/json.hpp>

#include "common/text.h"

namespace tensorstream::http {

using nlohmann::json;

std::string FormEncode(std::initializer_list<std::pair<const char*, std::string>> fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out.append(name).append("=").append(http::UriEncode(value, true));
  }
  return out;
}

// POSTs a token request (GET when `form` is empty) and reads {"access_token", "expires_in"} from
// the reply. Messages name the endpoint and the server's error, never the request's secrets or the
// token.
Result<AccessToken> ExchangeToken(const std::string& url, const std::string& form,
                                  std::vector<http::Header> headers,
                                  const http::HttpOptions& options) {
  http::Request request;
  request.method = form.empty() ? "GET" : "POST";
  request.url = url;
  request.body = form;
  request.headers = std::move(headers);
  if (!form.empty()) {
    request.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
  }
  TS_ASSIGN_OR_RETURN(const http::Response reply,
                      http::Perform(request, nullptr, options, nullptr));
  const std::string where = request.method + " " + http::RedactUrl(url);
  json body = json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (reply.status != 200) {
    std::string reason;
    if (body.is_object()) {
      for (const char* field : {"error_description", "error"}) {
        if (body.contains(field) && body[field].is_string()) {
          reason = body[field].get<std::string>();
          break;
        }
      }
    }
    const StatusCode code = reply.status == 400 || reply.status == 401 || reply.status == 403
                                ? StatusCode::kPermissionDenied
                                : StatusCode::kUnavailable;
    return Status(code, where + ": token request refused: HTTP " + std::to_string(reply.status) +
                            (reason.empty() ? "" : " (" + Printable(reason) + ")"));
  }
  if (!body.is_object() || !body.contains("access_token") || !body["access_token"].is_string()) {
    return Status(StatusCode::kIoError, where + ": the token reply has no access_token");
  }
  AccessToken token;
  token.value = body["access_token"].get<std::string>();
  // A number, or a string of digits (Azure's instance metadata endpoint); else one hour.
  int64_t seconds = 3600;
  if (body.contains("expires_in")) {
    const json& expires_in = body["expires_in"];
    if (expires_in.is_number_integer()) {
      seconds = expires_in.get<int64_t>();
    } else if (int64_t parsed = 0;
               expires_in.is_string() && ParseInt64(expires_in.get<std::string>(), &parsed)) {
      seconds = parsed;
    }
  }
  token.expires = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  return token;
}

}  // namespace tensorstream::http
