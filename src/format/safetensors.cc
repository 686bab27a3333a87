#include "format/safetensors.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "format/dtype.h"
#include "storage/source.h"

namespace tensorstream {

namespace {

using nlohmann::json;

std::string Quote(const std::string& name) { return "'" + name + "'"; }

// A JSON number that is a non-negative integer (what shapes and offsets must be).
bool AsUnsigned(const json& value, uint64_t* out) {
  if (value.is_number_unsigned()) {
    *out = value.get<uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(value.get<int64_t>());
    return true;
  }
  return false;
}

Result<TensorEntry> ParseTensorEntry(const std::string& file, const std::string& name,
                                     const json& value, uint64_t data_offset, uint64_t data_size) {
  const std::string where = file + ": tensor " + Quote(name);
  if (!value.is_object()) return FormatError(where + ": header entry is not a JSON object");

  const auto dtype_it = value.find("dtype");
  if (dtype_it == value.end() || !dtype_it->is_string()) {
    return FormatError(where + ": missing or non-string 'dtype'");
  }
  TensorEntry entry;
  entry.name = name;
  entry.dtype = dtype_it->get<std::string>();
  const std::optional<DtypeInfo> dtype = LookupDtype(entry.dtype);
  if (!dtype) return FormatError(where + ": unknown dtype '" + entry.dtype + "'");

  const auto shape_it = value.find("shape");
  if (shape_it == value.end() || !shape_it->is_array()) {
    return FormatError(where + ": missing or non-array 'shape'");
  }
  uint64_t elements = 1;
  for (const json& dim : *shape_it) {
    uint64_t extent = 0;
    if (!AsUnsigned(dim, &extent) || extent > static_cast<uint64_t>(INT64_MAX)) {
      return FormatError(where + ": shape " + shape_it->dump() +
                         " has an entry that is not a non-negative integer");
    }
    if (__builtin_mul_overflow(elements, extent, &elements)) {
      return FormatError(where + ": shape " + shape_it->dump() + " overflows 64 bits");
    }
    entry.shape.push_back(static_cast<int64_t>(extent));
  }

  const auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
    return FormatError(where + ": missing 'data_offsets' or not a [begin, end] pair");
  }
  uint64_t begin = 0;
  uint64_t end = 0;
  if (!AsUnsigned((*offsets_it)[0], &begin) || !AsUnsigned((*offsets_it)[1], &end)) {
    return FormatError(where + ": data_offsets " + offsets_it->dump() +
                       " are not non-negative integers");
  }
  if (begin > end) {
    return FormatError(where + ": data_offsets " + offsets_it->dump() + " end before they begin");
  }
  if (end > data_size) {
    return FormatError(where + ": data_offsets " + offsets_it->dump() +
                       " reach beyond the data region of " + std::to_string(data_size) +
                       " bytes (file truncated?)");
  }

  uint64_t bits = 0;
  if (__builtin_mul_overflow(elements, uint64_t{dtype->bits}, &bits) || bits % 8 != 0) {
    return FormatError(where + ": shape " + shape_it->dump() + " of dtype " + entry.dtype +
                       " is not a whole number of bytes");
  }
  entry.nbytes = end - begin;
  if (bits / 8 != entry.nbytes) {
    return FormatError(where + ": shape " + shape_it->dump() + " of dtype " + entry.dtype +
                       " needs " + std::to_string(bits / 8) + " bytes but data_offsets " +
                       offsets_it->dump() + " span " + std::to_string(entry.nbytes));
  }
  entry.offset = data_offset + begin;
  return entry;
}

// Duplicate names are an error, but a parsed json object keeps only one of them. This SAX
// pass sees every key of the outermost object. (nlohmann's parser callback could too, but
// it costs O(n) per entry — quadratic for headers of 100,000 tensors.)
class TopLevelKeys final : public nlohmann::json_sax<json> {
 public:
  std::string duplicate;

  bool key(string_t& name) override {
    if (depth_ == 1 && duplicate.empty() && !seen_.insert(name).second) duplicate = name;
    return true;
  }
  bool start_object(std::size_t) override { return ++depth_, true; }
  bool end_object() override { return --depth_, true; }
  bool start_array(std::size_t) override { return ++depth_, true; }
  bool end_array() override { return --depth_, true; }
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  int depth_ = 0;
  std::unordered_set<std::string> seen_;
};

// The first name that appears twice at the top level of `text` (valid JSON), or "".
std::string FindDuplicateTopLevelKey(std::string_view text) {
  TopLevelKeys keys;
  json::sax_parse(text.begin(), text.end(), &keys);
  return keys.duplicate;
}

// Checks that the tensors, sorted by offset, tile [data_offset, file_size) exactly.
Status CheckTiling(const std::string& file, const std::vector<TensorEntry>& tensors,
                   uint64_t data_offset, uint64_t file_size) {
  uint64_t expected = data_offset;
  const TensorEntry* previous = nullptr;
  for (const TensorEntry& t : tensors) {
    if (t.offset < expected) {
      return FormatError(file + ": tensor " + Quote(t.name) + " overlaps tensor " +
                         Quote(previous->name) + " (data_offsets begin at " +
                         std::to_string(t.offset - data_offset) + ", before " +
                         std::to_string(expected - data_offset) + ")");
    }
    if (t.offset > expected) {
      return FormatError(file + ": gap of " + std::to_string(t.offset - expected) +
                         " bytes before tensor " + Quote(t.name) +
                         " (data_offsets must be contiguous)");
    }
    expected = t.offset + t.nbytes;
    if (t.nbytes > 0) previous = &t;
  }
  if (expected != file_size) {
    return FormatError(file + ": " + std::to_string(file_size - expected) +
                       " bytes after the last tensor are not described by the header");
  }
  return Status::Ok();
}

}  // namespace

Result<uint64_t> ParseHeaderLength(const std::string& file, const unsigned char prefix[8],
                                   uint64_t file_size) {
  if (file_size < 8) {
    return FormatError(file + ": not a SafeTensors file: " + std::to_string(file_size) +
                       " bytes, shorter than the 8-byte header length");
  }
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | prefix[i];
  if (length > kMaxHeaderBytes) {
    return FormatError(file + ": header length " + std::to_string(length) +
                       " exceeds the 100 MiB limit (not a SafeTensors file?)");
  }
  if (length > file_size - 8) {
    return FormatError(file + ": header length " + std::to_string(length) +
                       " reaches beyond the end of the " + std::to_string(file_size) +
                       "-byte file (truncated?)");
  }
  return length;
}

Result<SafetensorsHeader> ParseHeaderJson(const std::string& file, std::string_view text,
                                          uint64_t file_size) {
  SafetensorsHeader header;
  header.data_offset = 8 + text.size();
  const uint64_t data_size = file_size - header.data_offset;

  json root;
  try {
    root = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    std::string reason = e.what();
    const size_t bracket = reason.find("] ");
    if (bracket != std::string::npos) reason = reason.substr(bracket + 2);
    return FormatError(file + ": header is not valid UTF-8 JSON: " + reason);
  }
  const std::string duplicate = FindDuplicateTopLevelKey(text);
  if (!duplicate.empty()) {
    return FormatError(file + ": tensor " + Quote(duplicate) + " appears twice in the header");
  }
  if (!root.is_object()) return FormatError(file + ": header is not a JSON object");

  header.tensors.reserve(root.size());
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) return FormatError(file + ": '__metadata__' is not a JSON object");
      header.metadata_json = value.dump();
      continue;
    }
    TS_ASSIGN_OR_RETURN(TensorEntry entry,
                        ParseTensorEntry(file, name, value, header.data_offset, data_size));
    header.tensors.push_back(std::move(entry));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorEntry& a, const TensorEntry& b) {
              return a.offset != b.offset ? a.offset < b.offset : a.nbytes < b.nbytes;
            });
  TS_RETURN_IF_ERROR(CheckTiling(file, header.tensors, header.data_offset, file_size));
  return header;
}

Result<SafetensorsHeader> ReadSafetensorsHeader(Source& source) {
  const std::atomic<bool> not_cancelled{false};
  const uint64_t file_size = source.Size();
  unsigned char prefix[8] = {};
  if (file_size >= 8) TS_RETURN_IF_ERROR(ReadUnaligned(source, 0, 8, prefix, not_cancelled));
  TS_ASSIGN_OR_RETURN(const uint64_t length, ParseHeaderLength(source.uri(), prefix, file_size));
  std::string json(length, '\0');
  TS_RETURN_IF_ERROR(ReadUnaligned(source, 8, length, json.data(), not_cancelled));
  return ParseHeaderJson(source.uri(), json, file_size);
}

}  // namespace tensorstream
