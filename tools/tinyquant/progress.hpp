// A plain-ASCII progress bar for the `tinyquant` command, drawn on stderr so stdout (tables,
// --json) stays clean when piped.
//
//   quantize [##########..........] 1536/3072 bytes  50%
//
// The line is redrawn in place with '\r', at most once per min_interval (100 ms: ~10 times a
// second) except for the final state, and finished with a newline. No colours or escape
// sequences, so NO_COLOR terminals and log files see plain text. The rendering and the rate
// limiting are separate from the output (a sink) and the time (an injectable clock) so both can
// be tested without a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace tinyquant::cli {

enum class ProgressMode { kAuto, kAlways, kNever };

// "auto" draws only when stderr is a terminal; "always" draws even into a pipe or file.
bool progress_wanted(ProgressMode mode, bool stderr_is_tty) noexcept;

struct ProgressState {
  std::string step;  // "quantize", "inspect", ...
  int64_t done = 0;
  int64_t total = 0;  // 0: nothing to do, shown as complete
  std::string unit;   // "tensors", "bytes"
};

// The state as exactly `width` characters (padded with spaces, or cut): step name, a bar of
// '#' (done) and '.' (to do) filling the room the text leaves (omitted below 3 characters),
// done/total unit and the percentage (rounded down, so 100% means everything is done).
// done is clamped to [0, total].
std::string render_progress(const ProgressState& state, int width);

class ProgressBar {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  using Sink = std::function<void(const std::string&)>;

  // Draws nothing when !enabled. width: characters of the line (see render_progress).
  ProgressBar(bool enabled, Sink sink, int width = 79, Clock clock = {},
              std::chrono::milliseconds min_interval = std::chrono::milliseconds(100));
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  ~ProgressBar();  // finishes a step left open (e.g. by an exception)

  // Starts a step (finishing the previous one) and draws it at 0.
  void start(std::string step, int64_t total, std::string unit);
  // Moves to done / by n and redraws if min_interval has passed since the last draw.
  void set(int64_t done);
  void advance(int64_t n = 1) { set(state_.done + n); }
  // Draws the final state and ends the line; nothing if no step is open.
  void finish();
  // Blanks the bar's line so other terminal output can be written on it; set() and advance()
  // redraw it when min_interval has passed since the last draw.
  void clear();

  int draws() const noexcept { return draws_; }

 private:
  void draw();

  bool enabled_;
  Sink sink_;
  int width_;
  Clock clock_;
  std::chrono::milliseconds min_interval_;
  ProgressState state_;
  bool open_ = false;
  bool visible_ = false;
  std::chrono::steady_clock::time_point last_;
  int draws_ = 0;
};

// The width for a bar on this terminal: $COLUMNS - 1 when it is a number in [20, 500], else 79.
int terminal_width();

}  // namespace tinyquant::cli
