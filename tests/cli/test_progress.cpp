// The progress bar of the `tinyquant` command without a terminal: rendering a state to a line,
// and the redraw rate limit driven by a fake clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "progress.hpp"

namespace {

using tinyquant::cli::ProgressBar;
using tinyquant::cli::ProgressMode;
using tinyquant::cli::ProgressState;
using tinyquant::cli::render_progress;

int64_t count(const std::string& s, char c) {
  return std::count(s.begin(), s.end(), c);
}

TEST(Progress, RendersStepBarCountsAndPercentInExactlyTheWidth) {
  const ProgressState half{"quantize", 50, 100, "bytes"};
  const std::string line = render_progress(half, 39);
  // "quantize [" + 10 bar chars + "] 50/100 bytes  50%": 10 + 10 + 1 + 18 = 39.
  EXPECT_EQ(line, "quantize [#####.....] 50/100 bytes  50%");
  for (const int width : {20, 33, 60, 79, 200}) {
    const std::string l = render_progress(half, width);
    EXPECT_EQ(l.size(), static_cast<size_t>(width)) << width;
    EXPECT_EQ(l.rfind("quantize", 0), 0u) << l;
  }
  // Too narrow for a bar: the text alone, cut to the width.
  EXPECT_EQ(render_progress(half, 30), "quantize 50/100 bytes  50%    ");
  EXPECT_EQ(render_progress(half, 12), "quantize 50/");
  EXPECT_EQ(render_progress(half, 0), "");
}

TEST(Progress, ZeroFullAndEmptyTotals) {
  EXPECT_EQ(render_progress({"inspect", 0, 3, "tensors"}, 37),
            "inspect [..........] 0/3 tensors   0%");
  EXPECT_EQ(render_progress({"inspect", 3, 3, "tensors"}, 37),
            "inspect [##########] 3/3 tensors 100%");
  // Nothing to do counts as done; done is clamped to [0, total].
  EXPECT_EQ(render_progress({"prune", 0, 0, "tensors"}, 35), "prune [##########] 0/0 tensors 100%");
  EXPECT_EQ(render_progress({"prune", 9, 3, "tensors"}, 35), "prune [##########] 3/3 tensors 100%");
  EXPECT_EQ(render_progress({"prune", -2, 3, "tensors"}, 35),
            "prune [..........] 0/3 tensors   0%");
  // Rounded down: 99.9% is not shown as 100%.
  const std::string l = render_progress({"q", 999, 1000, "bytes"}, 60);
  EXPECT_NE(l.find(" 99%"), std::string::npos) << l;
  EXPECT_EQ(l.find("100%"), std::string::npos) << l;
}

TEST(Progress, ModesFollowTheTerminal) {
  EXPECT_TRUE(tinyquant::cli::progress_wanted(ProgressMode::kAuto, true));
  EXPECT_FALSE(tinyquant::cli::progress_wanted(ProgressMode::kAuto, false));
  EXPECT_TRUE(tinyquant::cli::progress_wanted(ProgressMode::kAlways, false));
  EXPECT_FALSE(tinyquant::cli::progress_wanted(ProgressMode::kNever, true));
}

struct FakeClock {
  std::chrono::steady_clock::time_point now{};
  void tick(int ms) { now += std::chrono::milliseconds(ms); }
};

TEST(Progress, RedrawsAtMostEveryIntervalAndEndsTheLine) {
  FakeClock clock;
  std::string out;
  {
    ProgressBar bar(
        true, [&](const std::string& s) { out += s; }, 40, [&] { return clock.now; });
    bar.start("quantize", 1000, "bytes");  // draw 1 at t = 0
    for (int i = 1; i <= 1000; ++i) {      // one update per ms for 1 s
      clock.tick(1);
      bar.set(i);
    }
    // t = 100, 200, ..., 1000 ms: 10 more draws; finish draws the final state once more.
    EXPECT_EQ(bar.draws(), 11);
    bar.finish();
    EXPECT_EQ(bar.draws(), 12);
    bar.finish();  // idempotent
    EXPECT_EQ(bar.draws(), 12);
  }
  EXPECT_EQ(count(out, '\r'), 12);
  EXPECT_EQ(count(out, '\n'), 1);
  EXPECT_EQ(out.back(), '\n');
  const std::string last = out.substr(out.rfind('\r') + 1);
  EXPECT_EQ(last, render_progress({"quantize", 1000, 1000, "bytes"}, 40) + "\n");
}

TEST(Progress, DisabledDrawsNothingAndDestructorFinishesAnOpenStep) {
  FakeClock clock;
  std::string out;
  {
    ProgressBar off(
        false, [&](const std::string& s) { out += s; }, 40, [&] { return clock.now; });
    off.start("inspect", 2, "tensors");
    clock.tick(500);
    off.advance(2);
  }
  EXPECT_EQ(out, "");
  {
    ProgressBar on(
        true, [&](const std::string& s) { out += s; }, 40, [&] { return clock.now; });
    on.start("inspect", 2, "tensors");
    on.advance();  // within the interval: not drawn
    EXPECT_EQ(on.draws(), 1);
  }  // as when an exception leaves the step open: the line is still ended
  EXPECT_EQ(count(out, '\n'), 1);
  EXPECT_NE(out.find("1/2 tensors  50%"), std::string::npos) << out;
}

TEST(Progress, ClearBlanksTheLineAndASecondStepStartsAfterTheFirstEnds) {
  FakeClock clock;
  std::string out;
  ProgressBar bar(
      true, [&](const std::string& s) { out += s; }, 20, [&] { return clock.now; });
  bar.start("prune", 1, "tensors");
  out.clear();
  bar.clear();
  EXPECT_EQ(out, "\r" + std::string(20, ' ') + "\r");
  bar.clear();  // already blank
  EXPECT_EQ(out.size(), 22u);
  bar.start("quantize", 4, "bytes");  // finishes "prune" first
  const size_t nl = out.find('\n');
  ASSERT_NE(nl, std::string::npos);
  EXPECT_NE(out.find("prune"), std::string::npos);
  EXPECT_GT(out.find("quantize"), nl);
}

}  // namespace
