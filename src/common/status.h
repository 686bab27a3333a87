// Status and Result<T>: how every fallible internal function reports failure.
// The codes mirror tensorstream_status of the C API one to one, so capi/ maps them
// without translation tables. A message always says what failed and where (file or URL,
// tensor), because it is what reaches the user.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace tensorstream {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = -1,
  kNotFound = -2,
  kPermissionDenied = -3,
  kFormatError = -4,
  kIoError = -5,
  kMemoryLimit = -6,
  kOutOfMemory = -7,
  kCancelled = -8,
  kFailedPrecondition = -9,
  kUnavailable = -10,
  kInternal = -11,
};

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status FormatError(std::string m) { return {StatusCode::kFormatError, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Maps an errno value to a status: ENOENT → NotFound, EACCES/EPERM → PermissionDenied,
// ENOMEM → OutOfMemory, anything else → IoError. The message is "<what>: <strerror>".
Status ErrnoStatus(int err, const std::string& what);

// A value or the Status that explains its absence.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: must not be OK

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

#define TS_CONCAT_INNER(a, b) a##b
#define TS_CONCAT(a, b) TS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define TS_RETURN_IF_ERROR(expr)                \
  do {                                          \
    ::tensorstream::Status ts_status_ = (expr); \
    if (!ts_status_.ok()) return ts_status_;    \
  } while (0)

// `TS_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns its Status.
#define TS_ASSIGN_OR_RETURN(decl, expr) \
  TS_ASSIGN_OR_RETURN_IMPL(TS_CONCAT(ts_result_, __LINE__), decl, expr)
#define TS_ASSIGN_OR_RETURN_IMPL(tmp, decl, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  decl = std::move(tmp).value()

}  // namespace tensorstream
