#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace tensorstream::cli {

ProgressBar::ProgressBar(std::string label, uint64_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

ProgressBar::~ProgressBar() {
  if (enabled_) std::fprintf(stderr, "\r\033[K");
}

void ProgressBar::Update(uint64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100) && done < total_) return;
  last_draw_ = now;
  constexpr int kWidth = 30;
  const double fraction = total_ == 0 ? 1.0 : static_cast<double>(done) / total_;
  const int filled = static_cast<int>(fraction * kWidth);
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double gbps = seconds > 0 ? done / seconds / 1e9 : 0.0;
  std::fprintf(stderr, "\r%s [%.*s%*s] %5.1f%% %.2f GB/s", label_.c_str(), filled,
               "##############################", kWidth - filled, "", fraction * 100, gbps);
  std::fflush(stderr);
}

}  // namespace tensorstream::cli
