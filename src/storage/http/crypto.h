// The cryptographic pieces request signing needs (AWS SigV4, Azure Shared Key), over
// OpenSSL. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tensorstream::http {

// HMAC-SHA256 of `data` under `key`: 32 raw bytes.
std::string HmacSha256(std::string_view key, std::string_view data);

// Standard base64 (RFC 4648 §4, padded).
std::string Base64Encode(std::string_view data);
// Decodes standard base64 (padding optional, no whitespace); nullopt for anything else.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace tensorstream::http
