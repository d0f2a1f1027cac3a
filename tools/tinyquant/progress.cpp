// Progress bar of the `tinyquant` command: see progress.hpp.
#include "progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

namespace tinyquant::cli {

bool progress_wanted(ProgressMode mode, bool stderr_is_tty) noexcept {
  return mode == ProgressMode::kAlways || (mode == ProgressMode::kAuto && stderr_is_tty);
}

std::string render_progress(const ProgressState& state, int width) {
  const int64_t total = std::max<int64_t>(state.total, 0);
  const int64_t done = std::clamp<int64_t>(state.done, 0, total);
  // Rounded down (in double: done * 100 could overflow), and 100 only when done == total.
  const int64_t pct =
      done == total ? 100
                    : std::min<int64_t>(99, static_cast<int64_t>(static_cast<double>(done) * 100.0 /
                                                                 static_cast<double>(total)));
  const std::string tail = fmt::format(" {}/{} {} {:3}%", done, total, state.unit, pct);
  const int room = width - static_cast<int>(state.step.size() + tail.size()) - 3;  // " [" "]"
  std::string line = state.step;
  if (room >= 3) {
    const int64_t filled =
        done == total
            ? room
            : std::min<int64_t>(room, static_cast<int64_t>(static_cast<double>(done) * room /
                                                           static_cast<double>(total)));
    line += " [";
    line.append(static_cast<size_t>(filled), '#');
    line.append(static_cast<size_t>(room - filled), '.');
    line += "]";
  }
  line += tail;
  line.resize(static_cast<size_t>(std::max(width, 0)), ' ');
  return line;
}

ProgressBar::ProgressBar(bool enabled, Sink sink, int width, Clock clock,
                         std::chrono::milliseconds min_interval)
    : enabled_(enabled),
      sink_(std::move(sink)),
      width_(width),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })),
      min_interval_(min_interval) {}

ProgressBar::~ProgressBar() {
  try {
    finish();
  } catch (...) {  // a failing sink must not end the program from a destructor
  }
}

void ProgressBar::start(std::string step, int64_t total, std::string unit) {
  finish();
  state_ = {std::move(step), 0, total, std::move(unit)};
  open_ = true;
  draw();
}

void ProgressBar::set(int64_t done) {
  state_.done = done;
  if (!open_ || !enabled_) return;
  if (clock_() - last_ >= min_interval_) draw();
}

void ProgressBar::clear() {
  if (!open_ || !enabled_ || !visible_) return;
  sink_("\r" + std::string(static_cast<size_t>(std::max(width_, 0)), ' ') + "\r");
  visible_ = false;
}

void ProgressBar::finish() {
  if (!open_) return;
  open_ = false;
  if (!enabled_) return;
  draw();
  sink_("\n");
  visible_ = false;
}

void ProgressBar::draw() {
  if (!enabled_) return;
  last_ = clock_();
  ++draws_;
  visible_ = true;
  sink_("\r" + render_progress(state_, width_));
}

int terminal_width() {
  const char* cols = std::getenv("COLUMNS");
  if (cols != nullptr) {
    char* end = nullptr;
    const long n = std::strtol(cols, &end, 10);
    if (end != cols && *end == '\0' && n >= 20 && n <= 500) return static_cast<int>(n) - 1;
  }
  return 79;
}

}  // namespace tinyquant::cli
