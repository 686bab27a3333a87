// The C API: the only place where C++ exceptions are caught and Status values become
// integer codes plus a thread-local message. Every entry point goes through Guard().
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "common/text.h"
#include "cuda/cuda_api.h"
#include "pipeline/download.h"
#include "pipeline/options.h"
#include "pipeline/streamer.h"
#include "storage/listing.h"
#include "tensorstream/tensorstream.h"

// The header's version macros are the library's version (the CMake project's).
#ifdef TENSORSTREAM_PROJECT_VERSION_MAJOR
static_assert(TENSORSTREAM_VERSION_MAJOR == TENSORSTREAM_PROJECT_VERSION_MAJOR &&
                  TENSORSTREAM_VERSION_MINOR == TENSORSTREAM_PROJECT_VERSION_MINOR &&
                  TENSORSTREAM_VERSION_PATCH == TENSORSTREAM_PROJECT_VERSION_PATCH,
              "include/tensorstream/tensorstream.h and project() in CMakeLists.txt disagree");
#endif

// The C++ status codes are handed out as the C ones unchanged.
#define TENSORSTREAM_SAME_CODE(c, cpp) \
  static_assert(static_cast<int>(c) == static_cast<int>(tensorstream::StatusCode::cpp), #c)
TENSORSTREAM_SAME_CODE(TENSORSTREAM_OK, kOk);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_INVALID_ARGUMENT, kInvalidArgument);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_NOT_FOUND, kNotFound);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_PERMISSION_DENIED, kPermissionDenied);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_FORMAT_ERROR, kFormatError);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_IO_ERROR, kIoError);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_MEMORY_LIMIT, kMemoryLimit);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_OUT_OF_MEMORY, kOutOfMemory);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_CANCELLED, kCancelled);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_FAILED_PRECONDITION, kFailedPrecondition);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_UNAVAILABLE, kUnavailable);
TENSORSTREAM_SAME_CODE(TENSORSTREAM_INTERNAL, kInternal);
#undef TENSORSTREAM_SAME_CODE

struct tensorstream_options {
  tensorstream::StreamOptions options;
};

struct tensorstream_stream {
  explicit tensorstream_stream(tensorstream::StreamOptions options)
      : streamer(std::move(options)) {}
  tensorstream::Streamer streamer;
  // Calls of next/next_batch in progress, so that destroy (from another thread) waits for
  // them to return before freeing what they use.
  std::mutex calls_mu;
  std::condition_variable calls_done;
  int calls_inside = 0;
  std::vector<std::string> tensors_json;  // per file, made on first request
  // next_batch's scratch, kept to reuse its capacity (the consumer thread's only).
  std::vector<std::unique_ptr<tensorstream::DeliveredTensor>> batch;
};

struct tensorstream_listing {
  std::vector<tensorstream::ObjectInfo> entries;
};

struct tensorstream_tensor {
  std::unique_ptr<tensorstream::DeliveredTensor> tensor;
};

// The C codes are the C++ ones, so Report() converts without a table.
#define TS_SAME_CODE(c, cpp) \
  static_assert(static_cast<int>(tensorstream::StatusCode::cpp) == (c), #c " drifted from " #cpp)
TS_SAME_CODE(TENSORSTREAM_OK, kOk);
TS_SAME_CODE(TENSORSTREAM_INVALID_ARGUMENT, kInvalidArgument);
TS_SAME_CODE(TENSORSTREAM_NOT_FOUND, kNotFound);
TS_SAME_CODE(TENSORSTREAM_PERMISSION_DENIED, kPermissionDenied);
TS_SAME_CODE(TENSORSTREAM_FORMAT_ERROR, kFormatError);
TS_SAME_CODE(TENSORSTREAM_IO_ERROR, kIoError);
TS_SAME_CODE(TENSORSTREAM_MEMORY_LIMIT, kMemoryLimit);
TS_SAME_CODE(TENSORSTREAM_OUT_OF_MEMORY, kOutOfMemory);
TS_SAME_CODE(TENSORSTREAM_CANCELLED, kCancelled);
TS_SAME_CODE(TENSORSTREAM_FAILED_PRECONDITION, kFailedPrecondition);
TS_SAME_CODE(TENSORSTREAM_UNAVAILABLE, kUnavailable);
TS_SAME_CODE(TENSORSTREAM_INTERNAL, kInternal);
#undef TS_SAME_CODE
static_assert(sizeof(tensorstream_delivery) == 64, "tensorstream_delivery is eight 8-byte fields");

namespace {

using tensorstream::Status;

// Counts a call of the consumer in progress on `stream` (see tensorstream_stream::calls_inside).
class ConsumerCall {
 public:
  explicit ConsumerCall(tensorstream_stream* stream) : stream_(stream) {
    if (stream_ == nullptr) return;
    std::lock_guard lock(stream_->calls_mu);
    ++stream_->calls_inside;
  }
  ~ConsumerCall() {
    if (stream_ == nullptr) return;
    std::lock_guard lock(stream_->calls_mu);
    if (--stream_->calls_inside == 0) stream_->calls_done.notify_all();
  }
  ConsumerCall(const ConsumerCall&) = delete;
  ConsumerCall& operator=(const ConsumerCall&) = delete;

 private:
  tensorstream_stream* const stream_;
};
using tensorstream::StatusCode;

thread_local std::string g_last_error;

int Report(const Status& status) {
  if (status.ok()) return TENSORSTREAM_OK;
  g_last_error = status.message();
  return static_cast<int>(status.code());
}

// Runs `body` (returning Status), converting any escaping exception into a status.
template <typename Body>
int Guard(Body&& body) {
  try {
    return Report(body());
  } catch (const std::bad_alloc&) {
    return Report(Status(StatusCode::kOutOfMemory, "out of memory"));
  } catch (const std::exception& e) {
    return Report(tensorstream::Internal(std::string("unexpected exception: ") + e.what()));
  } catch (...) {
    return Report(tensorstream::Internal("unexpected exception"));
  }
}

// JSON string literal of `text` (valid UTF-8: header names were validated).
void AppendJsonString(std::string& out, const std::string& text) {
  out += '"';
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", byte);
      out += escape;
    } else {
      out += c;
    }
  }
  out += '"';
}

// {"data_offset": N, "name": [...], "dtype": [...], ...}: column by column, since a binding
// decodes parallel arrays several times faster than one object per tensor.
std::string TensorsJson(const tensorstream::StreamFile& file) {
  const std::vector<tensorstream::Item>& items = file.items;
  std::string out = "{\"data_offset\":" + std::to_string(file.data_offset);
  out.reserve(items.size() * 64);
  bool first_column = true;
  const auto column = [&](const char* key, auto&& append) {
    out += first_column ? ",\"" : "],\"";
    first_column = false;
    out += key;
    out += "\":[";
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += ',';
      append(items[i]);
    }
  };
  using tensorstream::Item;
  column("name", [&](const Item& item) { AppendJsonString(out, item.name); });
  column("dtype", [&](const Item& item) { out += "\"" + item.dtype + "\""; });
  column("shape", [&](const Item& item) {
    out += '[';
    for (size_t d = 0; d < item.shape.size(); ++d) {
      if (d > 0) out += ',';
      out += std::to_string(item.shape[d]);
    }
    out += ']';
  });
  column("offset", [&](const Item& item) { out += std::to_string(item.offset); });
  column("nbytes", [&](const Item& item) { out += std::to_string(item.nbytes); });
  out += "]}";
  return out;
}

Status NullArgument(const char* what) {
  return tensorstream::InvalidArgument(std::string(what) + " is NULL");
}

Status CheckFileIndex(const tensorstream_stream* stream, size_t file_index) {
  if (file_index >= stream->streamer.file_count()) {
    return tensorstream::InvalidArgument("file index " + std::to_string(file_index) +
                                         " out of range (" +
                                         std::to_string(stream->streamer.file_count()) + " files)");
  }
  return Status::Ok();
}

// Applies `change` to a copy of the options and keeps it only if it validates.
template <typename Change>
int UpdateOptions(tensorstream_options* options, Change&& change) {
  return Guard([&]() -> Status {
    if (options == nullptr) return NullArgument("options");
    tensorstream::StreamOptions updated = options->options;
    change(updated);
    TS_RETURN_IF_ERROR(tensorstream::ValidateOptions(updated));
    options->options = std::move(updated);
    return Status::Ok();
  });
}

}  // namespace

extern "C" {

const char* tensorstream_version(void) { return TENSORSTREAM_VERSION; }

const char* tensorstream_last_error(void) { return g_last_error.c_str(); }

size_t tensorstream_printable(const char* text, size_t size, char* out, size_t out_size) {
  try {
    const std::string printable =
        text == nullptr ? std::string() : tensorstream::Printable(std::string_view(text, size));
    if (out != nullptr && out_size > 0) {
      const size_t n = std::min(printable.size(), out_size - 1);
      std::memcpy(out, printable.data(), n);
      out[n] = '\0';
    }
    return printable.size();
  } catch (...) {  // out of memory: nothing written
    if (out != nullptr && out_size > 0) out[0] = '\0';
    return 0;
  }
}

const char* tensorstream_status_name(int status) {
  switch (status) {
    case TENSORSTREAM_OK:
      return "OK";
    case TENSORSTREAM_END_OF_STREAM:
      return "END_OF_STREAM";
    case TENSORSTREAM_INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case TENSORSTREAM_NOT_FOUND:
      return "NOT_FOUND";
    case TENSORSTREAM_PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case TENSORSTREAM_FORMAT_ERROR:
      return "FORMAT_ERROR";
    case TENSORSTREAM_IO_ERROR:
      return "IO_ERROR";
    case TENSORSTREAM_MEMORY_LIMIT:
      return "MEMORY_LIMIT";
    case TENSORSTREAM_OUT_OF_MEMORY:
      return "OUT_OF_MEMORY";
    case TENSORSTREAM_CANCELLED:
      return "CANCELLED";
    case TENSORSTREAM_FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case TENSORSTREAM_UNAVAILABLE:
      return "UNAVAILABLE";
    case TENSORSTREAM_INTERNAL:
      return "INTERNAL";
    default:
      return "UNKNOWN";
  }
}

int tensorstream_options_create(tensorstream_options** out) {
  return Guard([&]() -> Status {
    if (out == nullptr) return NullArgument("out");
    *out = nullptr;
    TS_ASSIGN_OR_RETURN(tensorstream::StreamOptions options,
                        tensorstream::StreamOptionsFromEnvironment());
    *out = new tensorstream_options{std::move(options)};
    return Status::Ok();
  });
}

int tensorstream_check_environment(const char* name) {
  return Guard([&]() -> Status {
    if (name == nullptr) return NullArgument("name");
    return tensorstream::CheckEnvironmentVariable(name);
  });
}

void tensorstream_options_destroy(tensorstream_options* options) { delete options; }

int tensorstream_options_set_concurrency(tensorstream_options* options, int concurrency) {
  return UpdateOptions(options, [&](auto& o) { o.concurrency = concurrency; });
}

int tensorstream_options_set_chunk_bytes(tensorstream_options* options, uint64_t chunk_bytes) {
  if (chunk_bytes == 0) {
    return Report(tensorstream::InvalidArgument("chunk size 0 is outside 4 KiB..1 GiB"));
  }
  return UpdateOptions(options, [&](auto& o) { o.chunk_bytes = chunk_bytes; });
}

int tensorstream_options_set_memory_limit(tensorstream_options* options, int64_t memory_limit) {
  return UpdateOptions(options, [&](auto& o) { o.memory_limit = memory_limit; });
}

int tensorstream_options_set_direct_io(tensorstream_options* options, int enabled) {
  return UpdateOptions(options, [&](auto& o) { o.storage.direct_io = enabled != 0; });
}

int tensorstream_options_set_device(tensorstream_options* options, const char* device) {
  return Guard([&]() -> Status {
    if (options == nullptr) return NullArgument("options");
    if (device == nullptr) return NullArgument("device");
    TS_ASSIGN_OR_RETURN(options->options.device, tensorstream::ParseDevice(device));
    return Status::Ok();
  });
}

int tensorstream_options_set_s3_credentials(tensorstream_options* options,
                                            const char* access_key_id,
                                            const char* secret_access_key,
                                            const char* session_token, const char* region,
                                            const char* endpoint_url) {
  return Guard([&]() -> Status {
    if (options == nullptr) return NullArgument("options");
    tensorstream::StreamOptions updated = options->options;
    const std::pair<const char*, const char*> settings[] = {
        {"s3.access_key_id", access_key_id},
        {"s3.secret_access_key", secret_access_key},
        {"s3.session_token", session_token},
        {"s3.region", region},
        {"s3.endpoint", endpoint_url}};
    for (const auto& [key, value] : settings) {
      TS_RETURN_IF_ERROR(tensorstream::SetOption(updated, key, value));
    }
    options->options = std::move(updated);
    return Status::Ok();
  });
}

int tensorstream_options_set(tensorstream_options* options, const char* key, const char* value) {
  return Guard([&]() -> Status {
    if (options == nullptr) return NullArgument("options");
    if (key == nullptr) return NullArgument("key");
    return tensorstream::SetOption(options->options, key, value);
  });
}

int tensorstream_stream_create(const tensorstream_options* options, tensorstream_stream** out) {
  return Guard([&]() -> Status {
    if (out == nullptr) return NullArgument("out");
    *out = nullptr;
    if (options == nullptr) return NullArgument("options");
    *out = new tensorstream_stream(options->options);
    return Status::Ok();
  });
}

void tensorstream_stream_destroy(tensorstream_stream* stream) {
  if (stream == nullptr) return;
  // A child made by fork() owns none of the stream's threads or locks: leak it.
  if (stream->streamer.forked()) return;
  stream->streamer.Cancel();  // a consumer blocked in next returns now
  {
    std::unique_lock lock(stream->calls_mu);
    stream->calls_done.wait(lock, [&] { return stream->calls_inside == 0; });
  }
  delete stream;
}

int tensorstream_stream_add_file(tensorstream_stream* stream, const char* uri, size_t* file_index) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (uri == nullptr) return NullArgument("uri");
    TS_ASSIGN_OR_RETURN(const size_t index, stream->streamer.AddSafetensorsFile(uri));
    if (file_index != nullptr) *file_index = index;
    return Status::Ok();
  });
}

int tensorstream_stream_add_ranges(tensorstream_stream* stream, const char* uri, uint64_t offset,
                                   const uint64_t* sizes, size_t count, size_t* file_index) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (uri == nullptr) return NullArgument("uri");
    if (sizes == nullptr && count > 0) return NullArgument("sizes");
    std::vector<uint64_t> offsets(count);
    for (size_t i = 0; i < count; ++i) {
      offsets[i] = offset;
      if (__builtin_add_overflow(offset, sizes[i], &offset)) {
        return tensorstream::InvalidArgument(std::string(uri) + ": ranges overflow 64 bits");
      }
    }
    TS_ASSIGN_OR_RETURN(const size_t index, stream->streamer.AddRanges(
                                                uri, offsets, std::vector(sizes, sizes + count)));
    if (file_index != nullptr) *file_index = index;
    return Status::Ok();
  });
}

int tensorstream_stream_add_range_list(tensorstream_stream* stream, const char* uri,
                                       const uint64_t* offsets, const uint64_t* sizes, size_t count,
                                       size_t* file_index) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (uri == nullptr) return NullArgument("uri");
    if ((offsets == nullptr || sizes == nullptr) && count > 0) return NullArgument("offsets/sizes");
    TS_ASSIGN_OR_RETURN(const size_t index,
                        stream->streamer.AddRanges(uri, std::vector(offsets, offsets + count),
                                                   std::vector(sizes, sizes + count)));
    if (file_index != nullptr) *file_index = index;
    return Status::Ok();
  });
}

int tensorstream_stream_select(tensorstream_stream* stream, size_t file_index,
                               const char* const* names, size_t count) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (names == nullptr && count > 0) return NullArgument("names");
    std::vector<std::string> list;
    list.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      if (names[i] == nullptr) return NullArgument("an entry of names");
      list.emplace_back(names[i]);
    }
    return stream->streamer.Select(file_index, list);
  });
}

int tensorstream_stream_set_destination(tensorstream_stream* stream, size_t file_index,
                                        size_t tensor_index, void* device_ptr) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (device_ptr == nullptr) return NullArgument("device_ptr");
    return stream->streamer.SetDestination(file_index, tensor_index, device_ptr);
  });
}

int tensorstream_stream_file_count(const tensorstream_stream* stream, size_t* count) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (count == nullptr) return NullArgument("count");
    *count = stream->streamer.file_count();
    return Status::Ok();
  });
}

int tensorstream_stream_tensor_count(const tensorstream_stream* stream, size_t file_index,
                                     size_t* count) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (count == nullptr) return NullArgument("count");
    TS_RETURN_IF_ERROR(CheckFileIndex(stream, file_index));
    *count = stream->streamer.file(file_index).items.size();
    return Status::Ok();
  });
}

int tensorstream_stream_tensor_info(const tensorstream_stream* stream, size_t file_index,
                                    size_t tensor_index, const char** name, const char** dtype,
                                    size_t* ndim, const int64_t** shape, uint64_t* offset,
                                    uint64_t* nbytes) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    TS_RETURN_IF_ERROR(CheckFileIndex(stream, file_index));
    const auto& items = stream->streamer.file(file_index).items;
    if (tensor_index >= items.size()) {
      return tensorstream::InvalidArgument("tensor index " + std::to_string(tensor_index) +
                                           " out of range (" + std::to_string(items.size()) +
                                           " tensors)");
    }
    const tensorstream::Item& item = items[tensor_index];
    if (name != nullptr) *name = item.name.c_str();
    if (dtype != nullptr) *dtype = item.dtype.c_str();
    if (ndim != nullptr) *ndim = item.shape.size();
    if (shape != nullptr) *shape = item.shape.data();
    if (offset != nullptr) *offset = item.offset;
    if (nbytes != nullptr) *nbytes = item.nbytes;
    return Status::Ok();
  });
}

int tensorstream_stream_tensors_json(tensorstream_stream* stream, size_t file_index,
                                     const char** json) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (json == nullptr) return NullArgument("json");
    TS_RETURN_IF_ERROR(CheckFileIndex(stream, file_index));
    if (stream->tensors_json.size() <= file_index) {
      stream->tensors_json.resize(stream->streamer.file_count());
    }
    std::string& text = stream->tensors_json[file_index];
    if (text.empty()) text = TensorsJson(stream->streamer.file(file_index));
    *json = text.c_str();
    return Status::Ok();
  });
}

int tensorstream_stream_metadata_json(const tensorstream_stream* stream, size_t file_index,
                                      const char** json) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (json == nullptr) return NullArgument("json");
    TS_RETURN_IF_ERROR(CheckFileIndex(stream, file_index));
    *json = stream->streamer.file(file_index).metadata_json.c_str();
    return Status::Ok();
  });
}

int tensorstream_stream_start(tensorstream_stream* stream) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    return stream->streamer.Start();
  });
}

int tensorstream_stream_next(tensorstream_stream* stream, tensorstream_tensor** tensor) {
  const ConsumerCall call(stream);
  bool end = false;
  const int rc = Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (tensor == nullptr) return NullArgument("tensor");
    *tensor = nullptr;
    TS_ASSIGN_OR_RETURN(auto next, stream->streamer.Next());
    if (next == nullptr) {
      end = true;
      return Status::Ok();
    }
    *tensor = new tensorstream_tensor{std::move(next)};
    return Status::Ok();
  });
  return rc == TENSORSTREAM_OK && end ? TENSORSTREAM_END_OF_STREAM : rc;
}

int tensorstream_stream_next_batch(tensorstream_stream* stream, tensorstream_delivery* out,
                                   size_t capacity, int flags, int timeout_ms, size_t* count) {
  const ConsumerCall call(stream);
  bool end = false;
  const int rc = Guard([&]() -> Status {
    if (count == nullptr) return NullArgument("count");
    *count = 0;
    if (stream == nullptr) return NullArgument("stream");
    if (out == nullptr) return NullArgument("out");
    if (capacity == 0) return tensorstream::InvalidArgument("capacity is 0");
    std::vector<std::unique_ptr<tensorstream::DeliveredTensor>>& taken = stream->batch;
    taken.clear();
    TS_ASSIGN_OR_RETURN(const size_t n, stream->streamer.NextBatch(
                                            capacity, &taken, timeout_ms < 0 ? -1 : timeout_ms));
    end = n == 0 && stream->streamer.ended();
    for (size_t i = 0; i < n; ++i) {
      tensorstream::DeliveredTensor& t = *taken[i];
      if ((flags & TENSORSTREAM_BATCH_KEEP) != 0) t.Keep();
      const tensorstream::Item& item = t.item();
      out[i] = tensorstream_delivery{nullptr,     item.file_index, item.index,      t.data(),
                                     item.nbytes, t.block().data,  t.block().bytes, t.device()};
      out[i].tensor = new tensorstream_tensor{std::move(taken[i])};
    }
    *count = n;
    return Status::Ok();
  });
  return rc == TENSORSTREAM_OK && end ? TENSORSTREAM_END_OF_STREAM : rc;
}

void tensorstream_deliveries_release(const tensorstream_delivery* deliveries, size_t count) {
  if (deliveries == nullptr) return;
  for (size_t i = 0; i < count; ++i) delete deliveries[i].tensor;
}

int tensorstream_stream_cancel(tensorstream_stream* stream) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    stream->streamer.Cancel();
    return Status::Ok();
  });
}

int tensorstream_stream_stats(const tensorstream_stream* stream, uint64_t* bytes_read,
                              uint64_t* peak_reserved_bytes) {
  return Guard([&]() -> Status {
    if (stream == nullptr) return NullArgument("stream");
    if (bytes_read != nullptr) *bytes_read = stream->streamer.bytes_read();
    if (peak_reserved_bytes != nullptr) {
      *peak_reserved_bytes = stream->streamer.peak_reserved_bytes();
    }
    return Status::Ok();
  });
}

size_t tensorstream_tensor_file_index(const tensorstream_tensor* t) {
  return t->tensor->item().file_index;
}
size_t tensorstream_tensor_index(const tensorstream_tensor* t) { return t->tensor->item().index; }
const char* tensorstream_tensor_name(const tensorstream_tensor* t) {
  return t->tensor->item().name.c_str();
}
size_t tensorstream_tensor_name_size(const tensorstream_tensor* t) {
  return t->tensor->item().name.size();
}
const char* tensorstream_tensor_dtype(const tensorstream_tensor* t) {
  return t->tensor->item().dtype.c_str();
}
size_t tensorstream_tensor_ndim(const tensorstream_tensor* t) {
  return t->tensor->item().shape.size();
}
const int64_t* tensorstream_tensor_shape(const tensorstream_tensor* t) {
  return t->tensor->item().shape.data();
}
uint64_t tensorstream_tensor_nbytes(const tensorstream_tensor* t) {
  return t->tensor->item().nbytes;
}
const void* tensorstream_tensor_data(const tensorstream_tensor* t) { return t->tensor->data(); }
int tensorstream_tensor_device(const tensorstream_tensor* t) { return t->tensor->device(); }

void tensorstream_tensor_keep(tensorstream_tensor* t) {
  if (t != nullptr) t->tensor->Keep();
}

void tensorstream_tensor_release(tensorstream_tensor* t) { delete t; }

int tensorstream_list(const tensorstream_options* options, const char* uri, int recursive,
                      tensorstream_listing** out) {
  return Guard([&]() -> Status {
    if (out == nullptr) return NullArgument("out");
    *out = nullptr;
    if (options == nullptr) return NullArgument("options");
    if (uri == nullptr) return NullArgument("uri");
    TS_ASSIGN_OR_RETURN(auto entries,
                        tensorstream::ListUri(uri, options->options.storage, recursive != 0));
    *out = new tensorstream_listing{std::move(entries)};
    return Status::Ok();
  });
}

void tensorstream_listing_destroy(tensorstream_listing* listing) { delete listing; }
size_t tensorstream_listing_count(const tensorstream_listing* l) { return l->entries.size(); }
const char* tensorstream_listing_uri(const tensorstream_listing* l, size_t i) {
  return l->entries[i].uri.c_str();
}
const char* tensorstream_listing_relative(const tensorstream_listing* l, size_t i) {
  return l->entries[i].relative.c_str();
}
uint64_t tensorstream_listing_size(const tensorstream_listing* l, size_t i) {
  return l->entries[i].size;
}
int tensorstream_listing_is_directory(const tensorstream_listing* l, size_t i) {
  return l->entries[i].is_directory ? 1 : 0;
}

int tensorstream_check_relative_path(const char* relative) {
  return Guard([&]() -> Status {
    if (relative == nullptr) return NullArgument("relative");
    return tensorstream::CheckRelativePath(relative);
  });
}

int tensorstream_download(const tensorstream_options* options, const char* uri, const char* dst_dir,
                          const char* relative, tensorstream_progress_fn progress, void* user_data,
                          uint64_t* bytes_written) {
  return Guard([&]() -> Status {
    if (options == nullptr) return NullArgument("options");
    if (uri == nullptr) return NullArgument("uri");
    if (dst_dir == nullptr) return NullArgument("dst_dir");
    if (relative == nullptr) return NullArgument("relative");
    tensorstream::ProgressFn report;
    if (progress != nullptr) report = [&](uint64_t done) { progress(done, user_data); };
    TS_ASSIGN_OR_RETURN(const uint64_t written,
                        tensorstream::Download(uri, dst_dir, relative, options->options, report));
    if (bytes_written != nullptr) *bytes_written = written;
    return Status::Ok();
  });
}

}  // extern "C"
