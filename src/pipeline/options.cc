#include "pipeline/options.h"

#include <charconv>
#include <cstdlib>
#include <string>

namespace tensorstream {

namespace {

// Parses the whole of `text` as a base-10 integer.
template <typename Int>
bool ParseInteger(const char* text, Int* out) {
  const char* end = text + std::char_traits<char>::length(text);
  const auto [ptr, ec] = std::from_chars(text, end, *out);
  return ec == std::errc() && ptr == end && ptr != text;
}

template <typename Int>
Status ReadEnvInteger(const char* name, Int* value) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return Status::Ok();
  if (!ParseInteger(text, value)) {
    return InvalidArgument(std::string("environment variable ") + name + "='" + text +
                           "' is not an integer");
  }
  return Status::Ok();
}

}  // namespace

Status ValidateOptions(const StreamOptions& o) {
  if (o.concurrency < 1 || o.concurrency > 1024) {
    return InvalidArgument("concurrency " + std::to_string(o.concurrency) + " is outside 1..1024");
  }
  if (o.chunk_bytes != 0 && (o.chunk_bytes < 4096 || o.chunk_bytes > (1ull << 30))) {
    return InvalidArgument("chunk size " + std::to_string(o.chunk_bytes) +
                           " bytes is outside 4 KiB..1 GiB");
  }
  if (o.memory_limit < -1) {
    return InvalidArgument("memory limit " + std::to_string(o.memory_limit) +
                           " is invalid: use -1 (unlimited), 0 (largest tensor) or bytes");
  }
  return Status::Ok();
}

Result<StreamOptions> StreamOptionsFromEnvironment() {
  StreamOptions options;
  TS_RETURN_IF_ERROR(ReadEnvInteger("RUNAI_STREAMER_CONCURRENCY", &options.concurrency));
  TS_RETURN_IF_ERROR(ReadEnvInteger("RUNAI_STREAMER_CHUNK_BYTESIZE", &options.chunk_bytes));
  TS_RETURN_IF_ERROR(ReadEnvInteger("RUNAI_STREAMER_MEMORY_LIMIT", &options.memory_limit));
  int direct = 0;
  TS_RETURN_IF_ERROR(ReadEnvInteger("TENSORSTREAM_DIRECT_IO", &direct));
  options.storage.direct_io = direct != 0;
  int map_files = 1;
  TS_RETURN_IF_ERROR(ReadEnvInteger("TENSORSTREAM_MMAP", &map_files));
  options.map_files = map_files != 0;
  TS_RETURN_IF_ERROR(ValidateOptions(options).WithContext("from the environment"));
  return options;
}

}  // namespace tensorstream
