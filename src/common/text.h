// Untrusted text (tensor names, object keys, file names) made safe to print in messages
// and on terminals, and UTF-8 validation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tensorstream {

// `text` with every control character (C0, DEL, C1) and every byte that is not part of a
// valid UTF-8 sequence written as an escape ("\n", "\x1b", "\u0085"…), so that printing it
// can neither move the cursor nor end a line. Valid printable UTF-8, backslashes included,
// passes unchanged, so applying it twice changes nothing more (for display, not parsing).
std::string Printable(std::string_view text);

// "'" + Printable(text) + "'": how messages quote a tensor name or a key.
std::string Quoted(std::string_view text);

// `text` without leading and trailing whitespace (space, \t, \n, \v, \f, \r).
std::string_view TrimWhitespace(std::string_view text);

// `text` with ASCII letters lower-cased (header names, keys of configuration files).
std::string AsciiLower(std::string_view text);

// Parses `text` as a base-10 integer as Python's int() does: surrounding whitespace and a
// leading '+' are allowed. False when it is not one or does not fit.
bool ParseInt64(std::string_view text, int64_t* out);

// "1", "true", "yes", "on" → true; "0", "false", "no", "off" → false (any case, surrounding
// whitespace ignored); anything else → false with *ok = false.
bool ParseBool(std::string_view text, bool* ok);

// The offset of the first byte of `text` that is not part of a valid UTF-8 sequence
// (overlong forms, surrogates and code points above U+10FFFF are invalid), or npos.
size_t FindInvalidUtf8(std::string_view text);

}  // namespace tensorstream
