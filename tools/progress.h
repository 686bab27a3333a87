// A one-line progress bar on stderr, drawn only when stderr is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tensorstream::cli {

class ProgressBar {
 public:
  // `total` bytes expected; `label` printed before the bar.
  ProgressBar(std::string label, uint64_t total);
  ~ProgressBar();  // clears the line

  // Redraws at most ~10 times a second.
  void Update(uint64_t done);

 private:
  const std::string label_;
  const uint64_t total_;
  const bool enabled_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace tensorstream::cli
