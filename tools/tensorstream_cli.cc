// tensorstream — command-line front end, built purely on the public C API.
//
//   tensorstream inspect FILE [--json]
//   tensorstream stream FILE... [--concurrency N] [--memory-limit B] [--chunk-bytes B]
//                               [--direct] [--device cpu|cuda:N] [--verify] [--json]
//   tensorstream ls URI [--recursive] [--json]
//   tensorstream pull URI DST [--include GLOB]... [--exclude GLOB]... [--concurrency N]
//                             [--chunk-bytes B] [--json]
//
// Exit status: 0 success, 1 a streaming/format/IO error (one line on stderr naming the
// file and cause), 2 bad command line.
#include <fcntl.h>
#include <fnmatch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "progress.h"
#include "tensorstream/tensorstream.h"

namespace {

using nlohmann::ordered_json;

// Thrown inside the CLI (never across the C API) to end with a one-line error.
struct CliError {
  std::string message;
};

// `text` as it may be printed on a terminal: control characters and bytes that are not
// UTF-8 escaped (names and keys come from files and servers).
std::string Printable(const std::string& text) {
  std::string out(tensorstream_printable(text.data(), text.size(), nullptr, 0), '\0');
  tensorstream_printable(text.data(), text.size(), out.data(), out.size() + 1);
  return out;
}

// Machine output: valid JSON whatever bytes a name holds (invalid UTF-8 becomes U+FFFD).
void PrintJson(const ordered_json& out) {
  std::printf("%s\n", out.dump(2, ' ', false, ordered_json::error_handler_t::replace).c_str());
}

void Check(int status) {
  if (status != TENSORSTREAM_OK && status != TENSORSTREAM_END_OF_STREAM) {
    throw CliError{tensorstream_last_error()};
  }
}

struct OptionsDeleter {
  void operator()(tensorstream_options* o) const { tensorstream_options_destroy(o); }
};
struct StreamDeleter {
  void operator()(tensorstream_stream* s) const { tensorstream_stream_destroy(s); }
};
struct TensorDeleter {
  void operator()(tensorstream_tensor* t) const { tensorstream_tensor_release(t); }
};
using OptionsPtr = std::unique_ptr<tensorstream_options, OptionsDeleter>;
using StreamPtr = std::unique_ptr<tensorstream_stream, StreamDeleter>;
using TensorPtr = std::unique_ptr<tensorstream_tensor, TensorDeleter>;
struct ListingDeleter {
  void operator()(tensorstream_listing* l) const { tensorstream_listing_destroy(l); }
};
using ListingPtr = std::unique_ptr<tensorstream_listing, ListingDeleter>;

struct StreamSettings {
  int concurrency = 0;  // 0: keep the default / environment
  int64_t memory_limit = -2;
  uint64_t chunk_bytes = 0;
  bool direct = false;
  std::string device = "cpu";
  std::vector<std::string> storage;  // backend settings as "KEY=VALUE" (--set)
};

OptionsPtr MakeOptions(const StreamSettings& s) {
  tensorstream_options* raw = nullptr;
  Check(tensorstream_options_create(&raw));
  OptionsPtr options(raw);
  if (s.concurrency != 0) Check(tensorstream_options_set_concurrency(raw, s.concurrency));
  if (s.memory_limit != -2) Check(tensorstream_options_set_memory_limit(raw, s.memory_limit));
  if (s.chunk_bytes != 0) Check(tensorstream_options_set_chunk_bytes(raw, s.chunk_bytes));
  if (s.direct) Check(tensorstream_options_set_direct_io(raw, 1));
  Check(tensorstream_options_set_device(raw, s.device.c_str()));
  for (const std::string& setting : s.storage) {
    const size_t equals = setting.find('=');
    if (equals == std::string::npos) {
      throw CliError{"--set " + setting + ": expected KEY=VALUE (e.g. gcs.endpoint=URL)"};
    }
    Check(tensorstream_options_set(raw, setting.substr(0, equals).c_str(),
                                   setting.c_str() + equals + 1));
  }
  return options;
}

StreamPtr OpenStream(const std::vector<std::string>& files, const StreamSettings& settings) {
  OptionsPtr options = MakeOptions(settings);
  tensorstream_stream* raw = nullptr;
  Check(tensorstream_stream_create(options.get(), &raw));
  StreamPtr stream(raw);
  for (const std::string& file : files)
    Check(tensorstream_stream_add_file(raw, file.c_str(), nullptr));
  return stream;
}

std::string ShapeText(size_t ndim, const int64_t* shape) {
  std::string text = "[";
  for (size_t i = 0; i < ndim; ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.2f %s", bytes, units[unit]);
  return text;
}

// Every tensor of file `index` as the C API describes it in one call (exact names).
ordered_json TensorTable(tensorstream_stream* stream, size_t index) {
  const char* text = nullptr;
  Check(tensorstream_stream_tensors_json(stream, index, &text));
  const ordered_json columns = ordered_json::parse(text);
  ordered_json tensors = ordered_json::array();
  for (size_t i = 0; i < columns["name"].size(); ++i) {
    tensors.push_back({{"name", columns["name"][i]},
                       {"dtype", columns["dtype"][i]},
                       {"shape", columns["shape"][i]},
                       {"offset", columns["offset"][i]},
                       {"bytes", columns["nbytes"][i]}});
  }
  return tensors;
}

int Inspect(const std::string& file, const StreamSettings& settings, bool as_json) {
  StreamPtr stream = OpenStream({file}, settings);
  const char* metadata = nullptr;
  Check(tensorstream_stream_metadata_json(stream.get(), 0, &metadata));
  const ordered_json tensors = TensorTable(stream.get(), 0);
  uint64_t total = 0;
  size_t name_width = 4;
  for (const auto& t : tensors) {
    total += t["bytes"].get<uint64_t>();
    name_width = std::max(name_width, Printable(t["name"].get<std::string>()).size());
  }
  if (as_json) {
    PrintJson({{"file", file},
               {"tensors", tensors},
               {"tensor_count", tensors.size()},
               {"total_bytes", total},
               {"metadata", ordered_json::parse(metadata)}});
    return 0;
  }
  std::printf("%-*s  %-7s  %-24s  %14s  %14s\n", static_cast<int>(name_width), "name", "dtype",
              "shape", "bytes", "offset");
  for (const auto& t : tensors) {
    const std::vector<int64_t> shape = t["shape"];
    std::printf("%-*s  %-7s  %-24s  %14llu  %14llu\n", static_cast<int>(name_width),
                Printable(t["name"].get<std::string>()).c_str(),
                t["dtype"].get<std::string>().c_str(),
                ShapeText(shape.size(), shape.data()).c_str(),
                static_cast<unsigned long long>(t["bytes"].get<uint64_t>()),
                static_cast<unsigned long long>(t["offset"].get<uint64_t>()));
  }
  std::printf("%zu tensors, %llu bytes (%s); metadata %s\n", tensors.size(),
              static_cast<unsigned long long>(total), HumanBytes(total).c_str(),
              Printable(metadata).c_str());
  return 0;
}

int Stream(const std::vector<std::string>& files, const StreamSettings& settings, bool verify,
           bool as_json) {
  if (verify && settings.device != "cpu") {
    throw CliError{"--verify compares host memory: use it with --device cpu"};
  }
  StreamPtr stream = OpenStream(files, settings);
  uint64_t total = 0;
  size_t tensors_total = 0;
  std::vector<ordered_json> tables;  // per file, for --verify's offsets and names
  for (size_t f = 0; f < files.size(); ++f) {
    tables.push_back(TensorTable(stream.get(), f));
    tensors_total += tables.back().size();
    for (const auto& t : tables.back()) total += t["bytes"].get<uint64_t>();
  }
  // Verification re-reads every tensor sequentially with plain pread from its own
  // descriptor, independent of the pipeline's readers.
  std::vector<int> fds;
  if (verify) {
    for (const std::string& file : files) {
      const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) throw CliError{file + ": --verify cannot open: " + std::strerror(errno)};
      fds.push_back(fd);
    }
  }
  struct FdCloser {
    std::vector<int>& fds;
    ~FdCloser() {
      for (int fd : fds) ::close(fd);
    }
  } closer{fds};

  tensorstream::cli::ProgressBar progress("streaming", total);
  const auto start = std::chrono::steady_clock::now();
  Check(tensorstream_stream_start(stream.get()));
  uint64_t delivered = 0;
  size_t tensors = 0;
  size_t mismatches = 0;
  std::string expected;
  while (true) {
    tensorstream_tensor* raw = nullptr;
    const int status = tensorstream_stream_next(stream.get(), &raw);
    if (status == TENSORSTREAM_END_OF_STREAM) break;
    Check(status);
    TensorPtr tensor(raw);
    const uint64_t nbytes = tensorstream_tensor_nbytes(raw);
    if (verify) {
      const size_t f = tensorstream_tensor_file_index(raw);
      const ordered_json& info = tables[f][tensorstream_tensor_index(raw)];
      const auto offset = info["offset"].get<uint64_t>();
      expected.resize(nbytes);
      const ssize_t n = ::pread(fds[f], expected.data(), nbytes, static_cast<off_t>(offset));
      if (n != static_cast<ssize_t>(nbytes) ||
          std::memcmp(expected.data(), tensorstream_tensor_data(raw), nbytes) != 0) {
        ++mismatches;
        std::fprintf(stderr, "%s: tensor '%s': streamed bytes differ from the file\n",
                     Printable(files[f]).c_str(),
                     Printable(info["name"].get<std::string>()).c_str());
      }
    }
    delivered += nbytes;
    ++tensors;
    progress.Update(delivered);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  uint64_t peak = 0;
  Check(tensorstream_stream_stats(stream.get(), nullptr, &peak));
  const double gbps = seconds > 0 ? delivered / seconds / 1e9 : 0;
  if (as_json) {
    PrintJson({{"files", files},
               {"device", settings.device},
               {"tensors", tensors},
               {"bytes", delivered},
               {"seconds", seconds},
               {"gb_per_s", gbps},
               {"peak_reserved_bytes", peak},
               {"verified", verify},
               {"mismatches", mismatches}});
  } else {
    std::printf("streamed %zu tensors, %llu bytes (%s) in %.3f s: %.2f GB/s%s\n", tensors,
                static_cast<unsigned long long>(delivered), HumanBytes(delivered).c_str(), seconds,
                gbps, verify ? (mismatches == 0 ? "; verified: all bytes match" : "") : "");
  }
  if (tensors != tensors_total) throw CliError{"internal error: not every tensor was delivered"};
  if (mismatches > 0) {
    throw CliError{std::to_string(mismatches) + " tensors differ from a plain read of the file"};
  }
  return 0;
}

ListingPtr List(const std::string& uri, const StreamSettings& settings, bool recursive) {
  OptionsPtr options = MakeOptions(settings);
  tensorstream_listing* raw = nullptr;
  Check(tensorstream_list(options.get(), uri.c_str(), recursive ? 1 : 0, &raw));
  return ListingPtr(raw);
}

int Ls(const std::string& uri, const StreamSettings& settings, bool recursive, bool as_json) {
  ListingPtr listing = List(uri, settings, recursive);
  const size_t count = tensorstream_listing_count(listing.get());
  ordered_json entries = ordered_json::array();
  uint64_t total = 0;
  size_t files = 0;
  for (size_t i = 0; i < count; ++i) {
    const bool directory = tensorstream_listing_is_directory(listing.get(), i) != 0;
    const uint64_t size = tensorstream_listing_size(listing.get(), i);
    entries.push_back({{"path", tensorstream_listing_relative(listing.get(), i)},
                       {"uri", tensorstream_listing_uri(listing.get(), i)},
                       {"bytes", size},
                       {"is_directory", directory}});
    if (!directory) {
      total += size;
      ++files;
    }
  }
  if (as_json) {
    PrintJson({{"uri", uri},
               {"recursive", recursive},
               {"entries", entries},
               {"file_count", files},
               {"directory_count", count - files},
               {"total_bytes", total}});
    return 0;
  }
  for (const auto& e : entries) {
    const std::string path = Printable(e["path"].get<std::string>());
    if (e["is_directory"].get<bool>()) {
      std::printf("%14s  %s\n", "DIR", path.c_str());  // the path ends with '/'
    } else {
      std::printf("%14llu  %s\n", static_cast<unsigned long long>(e["bytes"].get<uint64_t>()),
                  path.c_str());
    }
  }
  std::printf("%zu files, %llu bytes (%s)", files, static_cast<unsigned long long>(total),
              HumanBytes(total).c_str());
  if (count > files) std::printf(", %zu directories", count - files);
  std::printf("\n");
  return 0;
}

// Whether `relative` is pulled: it matches one of `include` (or `include` is empty) and
// none of `exclude`. fnmatch(3) without FNM_PATHNAME, like Python's fnmatch: '*' also
// matches '/'.
bool Selected(const std::string& relative, const std::vector<std::string>& include,
              const std::vector<std::string>& exclude) {
  const auto matches = [&](const std::string& glob) {
    return ::fnmatch(glob.c_str(), relative.c_str(), 0) == 0;
  };
  if (!include.empty() && std::none_of(include.begin(), include.end(), matches)) return false;
  return std::none_of(exclude.begin(), exclude.end(), matches);
}

// The overall progress of a pull: bytes of the files done plus those of the current one.
struct PullProgress {
  tensorstream::cli::ProgressBar* bar;
  uint64_t finished_files_bytes;
};

void ReportPullProgress(uint64_t bytes_done, void* user) {
  auto* progress = static_cast<PullProgress*>(user);
  progress->bar->Update(progress->finished_files_bytes + bytes_done);
}

// Downloads every file below `uri` (recursively) that Selected() lets through to `dst`,
// keeping the relative paths. A key that would leave `dst` ("..", absolute) fails the pull
// before anything is written.
int Pull(const std::string& uri, const std::string& dst, const std::vector<std::string>& include,
         const std::vector<std::string>& exclude, const StreamSettings& settings, bool as_json) {
  ListingPtr listing = List(uri, settings, true);
  std::vector<size_t> chosen;
  uint64_t total = 0;
  for (size_t i = 0; i < tensorstream_listing_count(listing.get()); ++i) {
    const char* relative = tensorstream_listing_relative(listing.get(), i);
    if (Selected(relative, include, exclude)) {
      Check(tensorstream_check_relative_path(relative));
      chosen.push_back(i);
      total += tensorstream_listing_size(listing.get(), i);
    }
  }
  OptionsPtr options = MakeOptions(settings);
  tensorstream::cli::ProgressBar bar("pulling", total);
  PullProgress progress{&bar, 0};
  ordered_json paths = ordered_json::array();
  const auto start = std::chrono::steady_clock::now();
  for (const size_t i : chosen) {
    const char* relative = tensorstream_listing_relative(listing.get(), i);
    uint64_t written = 0;
    Check(tensorstream_download(options.get(), tensorstream_listing_uri(listing.get(), i),
                                dst.c_str(), relative, ReportPullProgress, &progress, &written));
    progress.finished_files_bytes += written;
    paths.push_back(relative);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const uint64_t bytes = progress.finished_files_bytes;
  const double gbps = seconds > 0 ? bytes / seconds / 1e9 : 0;
  if (as_json) {
    PrintJson({{"uri", uri},
               {"dst", dst},
               {"files", chosen.size()},
               {"bytes", bytes},
               {"seconds", seconds},
               {"gb_per_s", gbps},
               {"paths", paths}});
  } else {
    std::printf("pulled %zu files, %llu bytes (%s) in %.3f s: %.2f GB/s\n", chosen.size(),
                static_cast<unsigned long long>(bytes), HumanBytes(bytes).c_str(), seconds, gbps);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tensorstream: stream SafeTensors tensors from storage into memory"};
  app.set_version_flag("--version", std::string(tensorstream_version()));
  app.require_subcommand(1);
  // Options of the program, accepted before or after the subcommand.
  app.fallthrough();
  std::vector<std::string> storage_settings;
  app.add_option("--set", storage_settings,
                 "backend setting KEY=VALUE, e.g. gcs.credential_file=PATH or "
                 "s3.endpoint=URL (repeatable; wins over the environment)")
      ->allow_extra_args(false);

  bool as_json = false;
  std::string inspect_file;
  auto* inspect = app.add_subcommand("inspect", "print the tensor table of a SafeTensors file");
  inspect->add_option("file", inspect_file, "file path or URI")->required();
  inspect->add_flag("--json", as_json, "machine-readable output");

  std::vector<std::string> stream_files;
  StreamSettings settings;
  bool verify = false;
  auto* stream = app.add_subcommand("stream", "stream every tensor and report the throughput");
  stream->alias("bench");
  stream->add_option("files", stream_files, "file paths or URIs")->required();
  stream->add_option("--concurrency", settings.concurrency, "reader threads")
      ->check(CLI::Range(1, 1024));
  stream->add_option("--memory-limit", settings.memory_limit,
                     "host memory limit in bytes: -1 unlimited, 0 largest tensor");
  stream->add_option("--chunk-bytes", settings.chunk_bytes, "bytes per read");
  stream->add_flag("--direct", settings.direct, "read local files with O_DIRECT");
  stream->add_option("--device", settings.device, "cpu, cuda or cuda:N")->capture_default_str();
  stream->add_flag("--verify", verify, "compare every tensor with a plain read of the file");
  stream->add_flag("--json", as_json, "machine-readable output");

  std::string ls_uri;
  bool recursive = false;
  auto* ls = app.add_subcommand("ls", "list the files of a directory or object-store prefix");
  ls->add_option("uri", ls_uri, "local directory or s3://, gs://, az:// prefix")->required();
  ls->add_flag("--recursive,-r", recursive, "list every file below, not just this level");
  ls->add_flag("--json", as_json, "machine-readable output");

  std::string pull_uri;
  std::string pull_dst;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  StreamSettings pull_settings;
  auto* pull = app.add_subcommand("pull", "download every file below a prefix into a directory");
  pull->add_option("uri", pull_uri, "local directory or s3://, gs://, az:// prefix")->required();
  pull->add_option("dst", pull_dst, "destination directory (created if missing)")->required();
  // One glob per occurrence, so the positionals after it are not taken as more globs.
  pull->add_option("--include", include, "only paths matching this glob (repeatable)")
      ->allow_extra_args(false);
  pull->add_option("--exclude", exclude, "skip paths matching this glob (repeatable)")
      ->allow_extra_args(false);
  pull->add_option("--concurrency", pull_settings.concurrency, "reader threads per file")
      ->check(CLI::Range(1, 1024));
  pull->add_option("--chunk-bytes", pull_settings.chunk_bytes, "bytes per read");
  pull->add_flag("--json", as_json, "machine-readable output");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version exit 0; any bad command line exits 2, as documented.
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    settings.storage = pull_settings.storage = storage_settings;
    if (*inspect) return Inspect(inspect_file, settings, as_json);
    if (*ls) return Ls(ls_uri, settings, recursive, as_json);
    if (*pull) return Pull(pull_uri, pull_dst, include, exclude, pull_settings, as_json);
    return Stream(stream_files, settings, verify, as_json);
  } catch (const CliError& e) {
    std::fprintf(stderr, "tensorstream: error: %s\n", Printable(e.message).c_str());
    return 1;
  }
}
