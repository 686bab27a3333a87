#include "pipeline/options.h"

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "common/text.h"
#include "storage/backend.h"

namespace tensorstream {

namespace {

template <typename Int>
Status ReadEnvInteger(const char* name, Int* value) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return Status::Ok();
  int64_t parsed = 0;
  if (!ParseInt64(text, &parsed) || !std::in_range<Int>(parsed)) {
    return InvalidArgument(std::string("environment variable ") + name + "=" + Quoted(text) +
                           " is not an integer");
  }
  *value = static_cast<Int>(parsed);
  return Status::Ok();
}

// RUNAI_STREAMER_CONCURRENCY and RUNAI_STREAMER_CHUNK_BYTESIZE: any positive value is
// accepted, as by runai-model-streamer, and brought into the supported range (more than
// kMaxConcurrency readers or chunks outside 4 KiB..1 GiB never help); 0 or less is an error.
template <typename Int>
Status ReadEnvPositive(const char* name, Int low, Int high, Int* value) {
  int64_t parsed = 0;
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return Status::Ok();
  TS_RETURN_IF_ERROR(ReadEnvInteger(name, &parsed));
  if (parsed <= 0) {
    return InvalidArgument(std::string("environment variable ") + name + "=" + Quoted(text) +
                           " must be a positive integer");
  }
  *value = static_cast<Int>(
      std::clamp<int64_t>(parsed, static_cast<int64_t>(low), static_cast<int64_t>(high)));
  return Status::Ok();
}

Status ReadEnvBool(const char* name, bool* value) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return Status::Ok();
  bool ok = false;
  const bool parsed = ParseBool(text, &ok);
  if (!ok) {
    return InvalidArgument(std::string("environment variable ") + name + "=" + Quoted(text) +
                           " is not a boolean (1/0, true/false, yes/no, on/off)");
  }
  *value = parsed;
  return Status::Ok();
}

Result<int64_t> IntegerValue(std::string_view key, const char* text) {
  int64_t value = 0;
  if (text == nullptr || !ParseInt64(text, &value)) {
    return InvalidArgument("option " + std::string(key) + ": " +
                           (text ? Quoted(text) : std::string("NULL")) + " is not an integer");
  }
  return value;
}

Result<bool> BoolValue(std::string_view key, const char* text) {
  bool ok = false;
  const bool value = text != nullptr && ParseBool(text, &ok);
  if (!ok) {
    return InvalidArgument("option " + std::string(key) + ": " +
                           (text ? Quoted(text) : std::string("NULL")) +
                           " is not a boolean (1/0, true/false, yes/no, on/off)");
  }
  return value;
}

using Setter = std::function<Status(StreamOptions&, const char*)>;

const std::map<std::string_view, Setter>& Setters() {
  static const auto* setters = new std::map<std::string_view, Setter>{
      {"concurrency",
       [](StreamOptions& o, const char* v) -> Status {
         TS_ASSIGN_OR_RETURN(const int64_t n, IntegerValue("concurrency", v));
         if (n < 1 || n > kMaxConcurrency) {
           return InvalidArgument("concurrency " + std::to_string(n) + " is outside 1.." +
                                  std::to_string(kMaxConcurrency));
         }
         o.concurrency = static_cast<int>(n);
         return Status::Ok();
       }},
      {"chunk_bytes",
       [](StreamOptions& o, const char* v) -> Status {
         TS_ASSIGN_OR_RETURN(const int64_t n, IntegerValue("chunk_bytes", v));
         if (n <= 0) return InvalidArgument("chunk size " + std::to_string(n) + " is not positive");
         o.chunk_bytes = static_cast<uint64_t>(n);
         return Status::Ok();
       }},
      {"memory_limit",
       [](StreamOptions& o, const char* v) -> Status {
         TS_ASSIGN_OR_RETURN(o.memory_limit, IntegerValue("memory_limit", v));
         return Status::Ok();
       }},
      {"device_memory_limit",
       [](StreamOptions& o, const char* v) -> Status {
         TS_ASSIGN_OR_RETURN(o.device_memory_limit, IntegerValue("device_memory_limit", v));
         return Status::Ok();
       }},
      {"gpu_strategy",
       [](StreamOptions& o, const char* v) -> Status {
         TS_ASSIGN_OR_RETURN(o.gpu_strategy, ParseGpuStrategy("option gpu_strategy", v));
         return Status::Ok();
       }},
      {"direct_io",
       [](StreamOptions& o, const char* v) -> Status {
         TS_ASSIGN_OR_RETURN(o.storage.direct_io, BoolValue("direct_io", v));
         return Status::Ok();
       }},
      {"host_memory",
       [](StreamOptions& o, const char* v) -> Status {
         const std::string_view mode = v != nullptr ? v : "";
         if (mode != "mapped" && mode != "private") {
           return InvalidArgument("option host_memory: " + Quoted(mode) +
                                  " is neither 'mapped' nor 'private'");
         }
         o.map_files = mode == "mapped";
         return Status::Ok();
       }},
  };
  return *setters;
}

}  // namespace

Result<GpuStrategy> ParseGpuStrategy(std::string_view setting, const char* text) {
  const std::string_view name = text != nullptr ? text : "";
  for (const GpuStrategy strategy :
       {GpuStrategy::kAuto, GpuStrategy::kStaging, GpuStrategy::kRegister}) {
    if (name == GpuStrategyName(strategy)) return strategy;
  }
  return InvalidArgument(std::string(setting) + ": " +
                         (text != nullptr ? Quoted(text) : std::string("NULL")) +
                         " is not a GPU strategy (use auto, staging or register)");
}

const char* GpuStrategyName(GpuStrategy strategy) {
  switch (strategy) {
    case GpuStrategy::kAuto:
      return "auto";
    case GpuStrategy::kStaging:
      return "staging";
    case GpuStrategy::kRegister:
      return "register";
  }
  return "?";
}

Status SetOption(StreamOptions& options, std::string_view key, const char* value) {
  if (key.find('.') != std::string_view::npos) {  // a backend's setting: "s3.region"
    TS_RETURN_IF_ERROR(CheckSettingKey(key));
    if (value == nullptr) {
      options.storage.settings.erase(std::string(key));
    } else {
      options.storage.settings[std::string(key)] = value;
    }
    return Status::Ok();
  }
  const auto& setters = Setters();
  const auto it = setters.find(key);
  if (it == setters.end()) {
    std::string known;
    for (const auto& [name, setter] : setters)
      known += (known.empty() ? "" : ", ") + std::string(name);
    return InvalidArgument("unknown option " + Quoted(key) + " (known: " + known +
                           ", and the backends' settings such as s3.region)");
  }
  StreamOptions updated = options;
  TS_RETURN_IF_ERROR(it->second(updated, value));
  TS_RETURN_IF_ERROR(ValidateOptions(updated));
  options = std::move(updated);
  return Status::Ok();
}

Status ValidateOptions(const StreamOptions& o) {
  if (o.concurrency < 1 || o.concurrency > kMaxConcurrency) {
    return InvalidArgument("concurrency " + std::to_string(o.concurrency) + " is outside 1.." +
                           std::to_string(kMaxConcurrency));
  }
  if (o.chunk_bytes != 0 && (o.chunk_bytes < kMinChunkBytes || o.chunk_bytes > kMaxChunkBytes)) {
    return InvalidArgument("chunk size " + std::to_string(o.chunk_bytes) +
                           " bytes is outside 4 KiB..1 GiB");
  }
  if (o.device_memory_limit < -1 || o.device_memory_limit == 0) {
    return InvalidArgument("device memory limit " + std::to_string(o.device_memory_limit) +
                           " is invalid: use -1 (automatic) or bytes");
  }
  if (o.gpu_window_bytes < kMinChunkBytes) {
    return InvalidArgument("GPU window of " + std::to_string(o.gpu_window_bytes) +
                           " bytes is below 4 KiB");
  }
  if (o.memory_limit < -1) {
    return InvalidArgument("Memory limit supplied: " + std::to_string(o.memory_limit) +
                           " is invalid: use -1 (unlimited), 0 (the largest tensor) or bytes");
  }
  return Status::Ok();
}

namespace {

// The variables options come from, each with how it sets them.
using EnvReader = Status (*)(StreamOptions&);
const std::map<std::string_view, EnvReader>& EnvReaders() {
  static const auto* readers = new std::map<std::string_view, EnvReader>{
      {"RUNAI_STREAMER_CONCURRENCY",
       [](StreamOptions& o) {
         return ReadEnvPositive("RUNAI_STREAMER_CONCURRENCY", 1, kMaxConcurrency, &o.concurrency);
       }},
      {"RUNAI_STREAMER_CHUNK_BYTESIZE",
       [](StreamOptions& o) {
         return ReadEnvPositive("RUNAI_STREAMER_CHUNK_BYTESIZE", kMinChunkBytes, kMaxChunkBytes,
                                &o.chunk_bytes);
       }},
      {"RUNAI_STREAMER_MEMORY_LIMIT",
       [](StreamOptions& o) {
         return ReadEnvInteger("RUNAI_STREAMER_MEMORY_LIMIT", &o.memory_limit);
       }},
      {"TENSORSTREAM_DIRECT_IO",
       [](StreamOptions& o) {
         return ReadEnvBool("TENSORSTREAM_DIRECT_IO", &o.storage.direct_io);
       }},
      {"TENSORSTREAM_MMAP",
       [](StreamOptions& o) { return ReadEnvBool("TENSORSTREAM_MMAP", &o.map_files); }},
      {"TENSORSTREAM_GPU_STRATEGY",
       [](StreamOptions& o) -> Status {
         const char* text = std::getenv("TENSORSTREAM_GPU_STRATEGY");
         if (text == nullptr || *text == '\0') return Status::Ok();
         TS_ASSIGN_OR_RETURN(
             o.gpu_strategy,
             ParseGpuStrategy("environment variable TENSORSTREAM_GPU_STRATEGY", text));
         return Status::Ok();
       }},
  };
  return *readers;
}

}  // namespace

Result<StreamOptions> StreamOptionsFromEnvironment() {
  StreamOptions options;
  for (const auto& [name, read] : EnvReaders()) TS_RETURN_IF_ERROR(read(options));
  TS_RETURN_IF_ERROR(ValidateOptions(options).WithContext("from the environment"));
  return options;
}

Status CheckEnvironmentVariable(std::string_view name) {
  const auto it = EnvReaders().find(name);
  if (it == EnvReaders().end()) {
    return InvalidArgument(Quoted(name) + " is not an option's environment variable");
  }
  StreamOptions options;
  TS_RETURN_IF_ERROR(it->second(options));
  return ValidateOptions(options).WithContext("from the environment");
}

}  // namespace tensorstream
