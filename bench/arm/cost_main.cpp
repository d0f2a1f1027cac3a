// Cortex-M4 cost of one tinyquant::rt kernel call, for bench/arm/measure.sh.
//
// Built once per case (-DTQ_COST_CASE=<index>, or -1 for a main that calls no kernel) so that,
// with -ffunction-sections and --gc-sections, the ELF holds only that kernel and its helpers.
// The call runs between tq_region_begin() and tq_region_end(), two empty noinline functions the
// QEMU plugin (tools/qemu-insn-plugin) uses as markers; an empty begin/end pair runs first so the
// harness can subtract the markers' own cost. Peak stack is measured by painting the stack below
// the caller with a pattern and finding the deepest word the kernel overwrote.
// Prints one line: "cost <name> macs <n> scratch <bytes> stack <bytes> status <name>".
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "tinyquant/rt/kernels.hpp"

namespace rt = tinyquant::rt;

extern "C" __attribute__((noinline)) void tq_region_begin() {
  __asm__ volatile("" ::: "memory");
}
extern "C" __attribute__((noinline)) void tq_region_end() {
  __asm__ volatile("" ::: "memory");
}

#if !defined(TQ_COST_CASE)
#define TQ_COST_CASE -1
#endif

namespace {

enum class Op { kNone, kFcS8, kFcS4, kConv, kDepthwise };

struct CostCase {
  const char* name;
  Op op;
  int32_t batch, in_h, in_w, in_c;  // FC: batch, -, -, in_features
  int32_t out_c;                    // FC: out_features
  int32_t kernel, stride, pad;      // conv / depthwise
};

// The shapes CMSIS-NN's figures in bench/README.md were measured on.
constexpr CostCase kCases[] = {
    {"fc_s8 1x784x128", Op::kFcS8, 1, 1, 1, 784, 128, 0, 0, 0},
    {"fc_s8 1x128x64", Op::kFcS8, 1, 1, 1, 128, 64, 0, 0, 0},
    {"fc_s8 1x27x128", Op::kFcS8, 1, 1, 1, 27, 128, 0, 0, 0},
    {"fc_s8 16x256x256", Op::kFcS8, 16, 1, 1, 256, 256, 0, 0, 0},
    {"fc_s4 1x784x128", Op::kFcS4, 1, 1, 1, 784, 128, 0, 0, 0},
    {"conv 32x32x3->16 3x3 same", Op::kConv, 1, 32, 32, 3, 16, 3, 1, 1},
    {"conv 16x16x16->32 3x3 same", Op::kConv, 1, 16, 16, 16, 32, 3, 1, 1},
    {"conv 1x1 16x16x32->64", Op::kConv, 1, 16, 16, 32, 64, 1, 1, 0},
    {"depthwise 16x16x32 3x3 same", Op::kDepthwise, 1, 16, 16, 32, 32, 3, 1, 1},
};
constexpr int kNumCases = static_cast<int>(sizeof kCases / sizeof kCases[0]);

constexpr int32_t kMaxInput = 16 * 256 + 32 * 32 * 3 + 16 * 16 * 32;
constexpr int32_t kMaxWeights = 256 * 256;
constexpr int32_t kMaxOutput = 32 * 32 * 16 + 16 * 256;
constexpr int32_t kMaxChannels = 256;
constexpr int32_t kMaxScratch = 64 * 1024;

int8_t g_input[kMaxInput];
int8_t g_weights[kMaxWeights];
int8_t g_output[kMaxOutput];
int32_t g_bias[kMaxChannels], g_multiplier[kMaxChannels], g_shift[kMaxChannels];
alignas(8) uint8_t g_scratch[kMaxScratch];

uint32_t g_rng = 2463534242u;
uint32_t next_random() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

constexpr uint32_t kPaint = 0xA5C3A5C3u;
constexpr int32_t kPaintWords = 4096;  // 16 KB below the caller's frame

// Paints [sp - 64 - 4 * kPaintWords, sp - 64) with kPaint; returns the top of the painted area.
__attribute__((noinline)) uint32_t* paint_stack() {
  uint32_t* sp = nullptr;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  uint32_t* top = sp - 16;
  volatile uint32_t* p = top - kPaintWords;
  for (int32_t i = 0; i < kPaintWords; ++i) p[i] = kPaint;
  return top;
}

int32_t stack_used(const uint32_t* top) {
  const volatile uint32_t* p = top - kPaintWords;
  int32_t i = 0;
  while (i < kPaintWords && p[i] == kPaint) ++i;
  return (kPaintWords - i) * 4;
}

struct Result {
  rt::Status status = rt::Status::kOk;
  int64_t macs = 0;
  int32_t scratch = 0;
};

// Fills the inputs, then runs the kernel once between the markers.
__attribute__((noinline)) Result run(const CostCase& c) {
  for (int32_t i = 0; i < kMaxInput; ++i) g_input[i] = static_cast<int8_t>(next_random());
  for (int32_t i = 0; i < kMaxWeights; ++i) {
    g_weights[i] = static_cast<int8_t>(static_cast<int32_t>(next_random() % 255u) - 127);
  }
  for (int32_t i = 0; i < kMaxChannels; ++i) {
    g_bias[i] = static_cast<int32_t>(next_random() % 20001u) - 10000;
    g_multiplier[i] = static_cast<int32_t>((1u << 30) + (next_random() >> 2));
    g_shift[i] = -9 - static_cast<int32_t>(next_random() % 3u);
  }
  rt::Requant rq;
  rq.multiplier = g_multiplier;
  rq.shift = g_shift;
  rq.per_channel = true;
  rt::Context ctx;
  ctx.scratch = g_scratch;
  ctx.path = rt::Path::kSmlad;
  Result r;
  if (c.op == Op::kFcS8 || c.op == Op::kFcS4) {
    rt::FcDims d;
    d.batch = c.batch;
    d.in_features = c.in_c;
    d.out_features = c.out_c;
    rt::FcParams p;
    p.input_offset = 128;
    p.output_offset = -3;
    r.macs = int64_t{c.batch} * c.in_c * c.out_c;
    r.scratch = c.op == Op::kFcS8 ? rt::fully_connected_s8_scratch_size(d, ctx.path)
                                  : rt::fully_connected_s4_scratch_size(d, ctx.path);
    ctx.scratch_size = r.scratch;
    if (r.scratch > kMaxScratch) return {rt::Status::kScratchTooSmall, r.macs, r.scratch};
    tq_region_begin();
    r.status =
        c.op == Op::kFcS8
            ? rt::fully_connected_s8(ctx, p, rq, d, g_input, g_weights, g_bias, g_output)
            : rt::fully_connected_s4(ctx, p, rq, d, g_input,
                                     reinterpret_cast<const uint8_t*>(g_weights), g_bias, g_output);
    tq_region_end();
    return r;
  }
  rt::ConvDims d;
  d.batch = c.batch;
  d.in_h = c.in_h;
  d.in_w = c.in_w;
  d.in_c = c.in_c;
  d.kernel_h = d.kernel_w = c.kernel;
  d.out_h = (c.in_h + 2 * c.pad - c.kernel) / c.stride + 1;
  d.out_w = (c.in_w + 2 * c.pad - c.kernel) / c.stride + 1;
  d.out_c = c.out_c;
  rt::ConvParams p;
  p.input_offset = 128;
  p.output_offset = -3;
  p.stride_h = p.stride_w = c.stride;
  p.pad_top = p.pad_left = c.pad;
  const int64_t taps = int64_t{d.out_h} * d.out_w * c.kernel * c.kernel;
  if (c.op == Op::kConv) {
    r.macs = taps * c.in_c * c.out_c;
    r.scratch = rt::conv2d_s8_scratch_size(p, d, ctx.path);
  } else {
    r.macs = taps * c.out_c;
    r.scratch = rt::depthwise_conv2d_s8_scratch_size(p, d, ctx.path);
  }
  ctx.scratch_size = r.scratch;
  if (r.scratch > kMaxScratch) return {rt::Status::kScratchTooSmall, r.macs, r.scratch};
  tq_region_begin();
  r.status = c.op == Op::kConv
                 ? rt::conv2d_s8(ctx, p, rq, d, g_input, g_weights, g_bias, g_output)
                 : rt::depthwise_conv2d_s8(ctx, p, rq, d, g_input, g_weights, g_bias, g_output);
  tq_region_end();
  return r;
}

}  // namespace

int main() {
  tq_region_begin();  // empty region: the markers' own cost
  tq_region_end();
  if (TQ_COST_CASE < 0 || TQ_COST_CASE >= kNumCases) {
    std::printf("cost none macs 0 scratch 0 stack 0 status ok\n");
    return 0;
  }
  const CostCase& c = kCases[TQ_COST_CASE];
  const uint32_t* top = paint_stack();
  const Result r = run(c);
  const int32_t stack = stack_used(top);
  std::printf("cost %s macs %lld scratch %ld stack %ld status %s\n", c.name,
              static_cast<long long>(r.macs), static_cast<long>(r.scratch),
              static_cast<long>(stack), rt::status_name(r.status));
  return r.status == rt::Status::kOk ? 0 : 1;
}
