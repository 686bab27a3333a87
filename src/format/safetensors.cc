#include "format/safetensors.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "format/dtype.h"
#include "storage/source.h"

namespace tensorstream {

namespace {

using nlohmann::json;

// Messages keep the wording of runai-model-streamer's Python checks ("Corrupted File: …",
// "Shape claims …", "Unsupported dtype …"), so that code matching on them keeps working,
// and add the file and the details.
constexpr const char* kCorruptedFile = "Corrupted File: ";

// One tensor entry while it is being parsed: what the header said, before validation.
struct RawEntry {
  std::string name;
  std::string dtype;
  bool has_dtype = false;
  std::vector<int64_t> shape;
  bool has_shape = false;
  std::vector<uint64_t> offsets;
  bool has_offsets = false;
  std::string defect;  // the first problem seen in the entry's values ("…'t'" + defect), or ""
};

// Builds the header in one pass over the JSON text, without a document tree: every key
// of the outermost object is seen (so duplicates are found), nesting is bounded before
// it can cost stack or memory anywhere, "__metadata__" is re-serialised as it streams by,
// and a problem in an entry is recorded and reported after the text proved to be JSON
// (as the reference reports invalid JSON first).
class HeaderBuilder final : public nlohmann::json_sax<json> {
 public:
  std::vector<RawEntry> entries;
  std::string metadata_json = "{}";
  std::string duplicate;        // "__metadata__" when seen twice (tensor names: see below)
  std::string structure_error;  // not an object of objects, too deep…
  std::string json_error;       // not JSON

  bool start_object(std::size_t) override { return Open('{'); }
  bool end_object() override { return Close('}'); }
  bool start_array(std::size_t) override { return Open('['); }
  bool end_array() override { return Close(']'); }

  bool key(string_t& name) override {
    if (depth_ == 1) {
      BeginTopLevel(name);
    } else if (in_metadata_) {
      Separator();
      metadata_json += json(name).dump() + ":";
      after_key_ = true;
    } else if (depth_ == 2 && current_ != nullptr) {
      field_ = name == "dtype"          ? Field::kDtype
               : name == "shape"        ? Field::kShape
               : name == "data_offsets" ? Field::kOffsets
                                        : Field::kOther;
    }
    return true;
  }

  bool string(string_t& value) override {
    if (in_metadata_) return WriteMetadata(json(value).dump());
    if (!FieldValue()) return true;
    if (field_ == Field::kDtype && depth_ == 2) {
      current_->dtype = value;
      current_->has_dtype = true;
    } else {
      FieldDefect("holds the string " + Printable(json(value).dump()));
    }
    return true;
  }
  bool number_unsigned(number_unsigned_t value) override {
    if (in_metadata_) return WriteMetadata(std::to_string(value));
    if (FieldValue()) Number(value);
    return true;
  }
  bool number_integer(number_integer_t value) override {
    if (in_metadata_) return WriteMetadata(std::to_string(value));
    if (!FieldValue()) return true;
    if (value >= 0) {
      Number(static_cast<uint64_t>(value));
    } else {
      FieldDefect("holds the negative number " + std::to_string(value));
    }
    return true;
  }
  bool number_float(number_float_t, const string_t& text) override {
    if (in_metadata_) return WriteMetadata(text);
    if (FieldValue()) FieldDefect("holds the non-integer " + text);
    return true;
  }
  bool boolean(bool value) override {
    if (in_metadata_) return WriteMetadata(value ? "true" : "false");
    if (FieldValue()) FieldDefect("holds a boolean");
    return true;
  }
  bool null() override {
    if (in_metadata_) return WriteMetadata("null");
    if (FieldValue()) FieldDefect("holds null");
    return true;
  }
  bool binary(binary_t&) override { return true; }  // JSON text has no binary values

  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& error) override {
    std::string reason = error.what();
    const size_t bracket = reason.find("] ");
    json_error = bracket == std::string::npos ? reason : reason.substr(bracket + 2);
    return false;
  }

 private:
  enum class Field { kNone, kDtype, kShape, kOffsets, kOther };

  void BeginTopLevel(const std::string& name) {
    current_ = nullptr;
    field_ = Field::kNone;
    if (name == "__metadata__") {
      if (seen_metadata_ && duplicate.empty()) duplicate = name;
      seen_metadata_ = expect_metadata_ = true;
      return;
    }
    entries.emplace_back();
    current_ = &entries.back();
    current_->name = name;
  }

  bool Open(char bracket) {
    if (++depth_ > kMaxHeaderDepth) {
      structure_error = "nests deeper than " + std::to_string(kMaxHeaderDepth) + " levels";
      return false;  // stop before the nesting costs anything more
    }
    if (depth_ == 1) {
      if (bracket != '{') structure_error = "is not a JSON object";
      return bracket == '{';
    }
    if (depth_ == 2 && expect_metadata_) {
      expect_metadata_ = false;
      if (bracket != '{') {
        structure_error = "has a '__metadata__' that is not a JSON object";
        return false;
      }
      in_metadata_ = true;
      metadata_json = "{";
      after_key_ = true;  // no separator before the first member
      return true;
    }
    if (in_metadata_) {
      Separator();
      metadata_json += bracket;
      after_key_ = true;
      return true;
    }
    if (depth_ == 2 && current_ != nullptr && bracket != '{') {
      Defect(" is not a JSON object");
    } else if (depth_ == 3 && bracket == '[' && field_ == Field::kShape) {
      current_->has_shape = true;
    } else if (depth_ == 3 && bracket == '[' && field_ == Field::kOffsets) {
      current_->has_offsets = true;
    } else if (depth_ >= 3 && field_ != Field::kOther) {
      FieldDefect("holds an array or object");
    }
    return true;
  }

  bool Close(char bracket) {
    if (in_metadata_) {
      metadata_json += bracket;
      after_key_ = false;
      if (depth_ == 2) in_metadata_ = false;
    } else if (depth_ == 3) {
      field_ = Field::kNone;
    }
    --depth_;
    return true;
  }

  bool WriteMetadata(std::string_view text) {
    Separator();
    metadata_json += text;
    after_key_ = false;
    return true;
  }

  // For a scalar outside __metadata__: true when it is the value of a tensor entry's
  // field, for the caller to interpret; records structure problems otherwise.
  bool FieldValue() {
    if (depth_ == 0) {
      structure_error = "is not a JSON object";
      return false;
    }
    if (depth_ == 1) {
      if (expect_metadata_) {
        structure_error = "has a '__metadata__' that is not a JSON object";
      } else if (current_ != nullptr) {
        Defect(" is not a JSON object");
      }
      return false;
    }
    if (current_ == nullptr || field_ == Field::kOther || field_ == Field::kNone) return false;
    // dtype is a string at depth 2; shape and data_offsets hold numbers at depth 3.
    if (field_ == Field::kDtype && depth_ != 2) {
      FieldDefect("holds an array or object");
      return false;
    }
    if (field_ != Field::kDtype && depth_ != 3) {
      FieldDefect("is not an array");
      return false;
    }
    return true;
  }

  void Number(uint64_t value) {
    if (field_ == Field::kShape) {
      if (value > static_cast<uint64_t>(INT64_MAX)) {
        FieldDefect("holds the dimension " + std::to_string(value) + ", beyond 2^63");
      } else {
        current_->shape.push_back(static_cast<int64_t>(value));
      }
    } else if (field_ == Field::kOffsets) {
      current_->offsets.push_back(value);
    } else {
      FieldDefect("holds a number");
    }
  }

  void Defect(const std::string& what) {
    if (current_ != nullptr && current_->defect.empty()) current_->defect = what;
  }

  // A value of the wrong kind in the field being parsed: dtype must be a string, shape
  // and data_offsets arrays of non-negative integers.
  void FieldDefect(const std::string& what) {
    static constexpr const char* kNames[] = {"", "'dtype'", "'shape'", "'data_offsets'", ""};
    static constexpr const char* kRules[] = {"", "a string", "non-negative integers",
                                             "non-negative integers", ""};
    const int f = static_cast<int>(field_);
    Defect(std::string(": ") + kNames[f] + " " + what + " (it must be " + kRules[f] + ")");
  }

  void Separator() {
    if (!after_key_ && metadata_json.back() != '{' && metadata_json.back() != '[') {
      metadata_json += ',';
    }
  }

  int depth_ = 0;
  bool seen_metadata_ = false;
  RawEntry* current_ = nullptr;  // the top-level entry being parsed; null for __metadata__
  Field field_ = Field::kNone;
  bool expect_metadata_ = false;  // the next value is __metadata__
  bool in_metadata_ = false;
  bool after_key_ = false;  // the metadata writer just wrote a key or an opening bracket
};

// Validates one entry the way the reference does, in its order: offsets present, dtype
// known, shape × dtype = the bytes the offsets reserve.
Result<TensorEntry> ValidateEntry(const std::string& file, RawEntry& raw, uint64_t data_offset) {
  const auto error = [&](const char* kind, const std::string& what) {
    return FormatError(file + ": " + kind + "Tensor " + Quoted(raw.name) + what);
  };
  if (!raw.defect.empty()) return error("Corrupted Header: ", raw.defect);
  if (!raw.has_offsets) return error("Corrupted Header: ", " missing data_offsets");
  if (raw.offsets.size() != 2) {
    return error("Corrupted Header: ", ": 'data_offsets' holds " +
                                           std::to_string(raw.offsets.size()) +
                                           " numbers, not a [begin, end] pair");
  }
  if (!raw.has_dtype) return error("Corrupted Header: ", " missing dtype");
  const std::optional<DtypeInfo> dtype = LookupDtype(raw.dtype);
  if (!dtype) {
    return FormatError(file + ": Unsupported dtype " + Quoted(raw.dtype) + " in tensor " +
                       Quoted(raw.name));
  }
  if (!raw.has_shape) return error("Corrupted Header: ", " missing shape");

  const uint64_t begin = raw.offsets[0];
  const uint64_t end = raw.offsets[1];
  if (begin > end) {
    return error("Corrupted Offset: ",
                 " start (" + std::to_string(begin) + ") > end (" + std::to_string(end) + ")");
  }
  uint64_t elements = 1;
  bool overflow = false;
  for (const int64_t extent : raw.shape) {
    overflow |= __builtin_mul_overflow(elements, static_cast<uint64_t>(extent), &elements);
  }
  uint64_t bits = 0;
  overflow |= __builtin_mul_overflow(elements, uint64_t{dtype->bits}, &bits);
  if (overflow || bits % 8 != 0 || bits / 8 != end - begin) {
    std::string shape_text = "[";
    for (size_t i = 0; i < raw.shape.size(); ++i) {
      shape_text += (i ? ", " : "") + std::to_string(raw.shape[i]);
    }
    return FormatError(file + ": Corrupted Tensor " + Quoted(raw.name) + ": Shape claims " +
                       (overflow ? "more than 2^64" : std::to_string(bits / 8)) + " bytes (" +
                       shape_text + "] x " + raw.dtype + ")" +
                       (bits % 8 != 0 && !overflow ? ", not a whole number of bytes" : "") +
                       ", but offsets reserve " + std::to_string(end - begin) + " bytes");
  }

  TensorEntry entry;
  entry.name = std::move(raw.name);
  entry.dtype = std::move(raw.dtype);
  entry.shape = std::move(raw.shape);
  entry.nbytes = end - begin;
  entry.offset = data_offset + begin;  // cannot overflow: checked against the file size next
  entry.begin = begin;
  return entry;
}

// The first tensor name that appears twice, or "" (a parsed object would keep only one).
std::string FindDuplicateName(const std::vector<TensorEntry>& tensors) {
  std::vector<std::string_view> names;
  names.reserve(tensors.size());
  for (const TensorEntry& t : tensors) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  const auto twice = std::adjacent_find(names.begin(), names.end());
  return twice == names.end() ? std::string() : std::string(*twice);
}

// The tensors, sorted by offset (zero-size ones first where they share a start, as the
// reference sorts), must tile the data region exactly: first at 0, no overlap, no gap,
// the last ending where the file ends.
Status CheckTiling(const std::string& file, const std::vector<TensorEntry>& tensors,
                   uint64_t data_size) {
  const std::string where = file + ": " + kCorruptedFile;
  if (!tensors.empty() && tensors.front().begin != 0) {
    return FormatError(where + "Tensor " + Quoted(tensors.front().name) +
                       " does not start at the beginning of the data section (starts at " +
                       std::to_string(tensors.front().begin) + ")");
  }
  for (size_t i = 0; i + 1 < tensors.size(); ++i) {
    const TensorEntry& t = tensors[i];
    const TensorEntry& next = tensors[i + 1];
    const uint64_t end = t.begin + t.nbytes;
    if (end > next.begin) {
      return FormatError(where + "Tensor " + Quoted(t.name) + " overlaps with next tensor " +
                         Quoted(next.name) + " (ends at " + std::to_string(end) +
                         ", next starts at " + std::to_string(next.begin) + ")");
    }
    if (end < next.begin) {
      return FormatError(where + "Gaps between tensors are not allowed. Tensor " + Quoted(t.name) +
                         " ends at " + std::to_string(end) + ", but next tensor starts at " +
                         std::to_string(next.begin));
    }
  }
  const uint64_t declared = tensors.empty() ? 0 : tensors.back().begin + tensors.back().nbytes;
  if (declared > data_size) {
    return FormatError(where + "the file is truncated - the header declares " +
                       std::to_string(declared) + " bytes of tensor data (through tensor " +
                       Quoted(tensors.back().name) + ") but the file holds " +
                       std::to_string(data_size));
  }
  if (declared < data_size) {
    return FormatError(where + "the file has " + std::to_string(data_size - declared) +
                       " extra trailing bytes after the " + std::to_string(declared) +
                       " bytes of tensor data the header declares");
  }
  return Status::Ok();
}

}  // namespace

Result<uint64_t> ParseHeaderLength(const std::string& file, const unsigned char prefix[8],
                                   uint64_t file_size) {
  if (file_size < 8) {
    return FormatError(file + ": File is truncated or empty: " + std::to_string(file_size) +
                       " bytes, shorter than the 8-byte header size of a SafeTensors file");
  }
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | prefix[i];
  if (length > kMaxHeaderBytes) {
    return FormatError(file + ": " + kCorruptedFile + "Header size " + std::to_string(length) +
                       " exceeds limit of " + std::to_string(kMaxHeaderBytes) +
                       " bytes (not a SafeTensors file?)");
  }
  if (length > file_size - 8) {
    return FormatError(file + ": File is truncated or empty: header size " +
                       std::to_string(length) + " reaches beyond the end of the " +
                       std::to_string(file_size) + "-byte file");
  }
  return length;
}

Result<SafetensorsHeader> ParseHeaderJson(const std::string& file, std::string_view text,
                                          uint64_t file_size) {
  const std::string where = file + ": " + kCorruptedFile + "Header ";
  if (const size_t bad = FindInvalidUtf8(text); bad != std::string_view::npos) {
    return FormatError(where + "is not valid UTF-8 (byte " + std::to_string(bad) + " of " +
                       std::to_string(text.size()) + ")");
  }
  // JSON text never holds a raw NUL (inside strings it must be escaped), and the JSON
  // library would take one for the end of the input and ignore what follows.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos) {
    return FormatError(where + "is not valid JSON: a NUL byte at offset " + std::to_string(nul) +
                       " of the " + std::to_string(text.size()) + "-byte header");
  }
  // The JSON library skips a UTF-8 byte order mark; safetensors and Python's json refuse it.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    return FormatError(where + "is not valid JSON: it starts with a byte order mark");
  }
  HeaderBuilder builder;
  json::sax_parse(text.begin(), text.end(), &builder);
  if (!builder.structure_error.empty()) return FormatError(where + builder.structure_error);
  if (!builder.json_error.empty()) {
    return FormatError(where + "is not valid JSON: " + builder.json_error);
  }
  if (!builder.duplicate.empty()) {
    return FormatError(file + ": " + kCorruptedFile + Quoted(builder.duplicate) +
                       " appears twice in the header");
  }

  SafetensorsHeader header;
  header.data_offset = 8 + text.size();
  header.metadata_json = std::move(builder.metadata_json);
  header.tensors.reserve(builder.entries.size());
  for (RawEntry& raw : builder.entries) {
    TS_ASSIGN_OR_RETURN(TensorEntry entry, ValidateEntry(file, raw, header.data_offset));
    header.tensors.push_back(std::move(entry));
  }
  std::stable_sort(header.tensors.begin(), header.tensors.end(),
                   [](const TensorEntry& a, const TensorEntry& b) {
                     return a.begin != b.begin ? a.begin < b.begin : a.nbytes < b.nbytes;
                   });
  if (const std::string twice = FindDuplicateName(header.tensors); !twice.empty()) {
    return FormatError(file + ": " + kCorruptedFile + "Tensor " + Quoted(twice) +
                       " appears twice in the header");
  }
  TS_RETURN_IF_ERROR(CheckTiling(file, header.tensors, file_size - header.data_offset));
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
