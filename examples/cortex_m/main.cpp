// Cortex-M example: a 196-32-10 int8 MLP compiled into the firmware as C arrays (generated on the
// host by host/gen_model.cpp with the toolkit), run with tinyquant::rt on a few inputs. Prints
// each prediction through semihosting, checks every logit against the host's, and exits 0 only
// if all agree. The inference of each sample runs between tq_region_begin() and tq_region_end(),
// the markers the QEMU instruction-count plugin (tools/qemu-insn-plugin) counts between;
// run_example.cmake reports the count per inference.
//
// Firmware shape: no heap, one static activation buffer per layer, no scratch (the smlad path's
// fully-connected kernels need none at batch 1; the size query below checks that), path chosen at
// build time.
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "model_data.h"
#include "region_markers.h"
#include "tinyquant/rt/kernels.hpp"

namespace rt = tinyquant::rt;

namespace {

int8_t g_hidden[TQ_HIDDEN];
int8_t g_logits[TQ_OUT];

rt::Status run_layer(const tq_fc_layer& l, const int8_t* input, int8_t* output) {
  rt::FcParams p;
  p.input_offset = l.input_offset;
  p.filter_offset = l.filter_offset;
  p.output_offset = l.output_offset;
  p.act_min = l.act_min;
  p.act_max = l.act_max;
  rt::Requant rq;
  rq.multiplier = l.multiplier;
  rq.shift = l.shift;
  rq.per_channel = true;
  rt::FcDims d;
  d.batch = 1;
  d.in_features = l.in;
  d.out_features = l.out;
  rt::Context ctx;  // Path::kAuto: the smlad path on a core with the DSP extension
  return rt::fully_connected_s8(ctx, p, rq, d, input, l.weights, l.bias, output);
}

__attribute__((noinline)) rt::Status infer(const int8_t* input) {
  const rt::Status s = run_layer(tq_fc1, input, g_hidden);
  return s != rt::Status::kOk ? s : run_layer(tq_fc2, g_hidden, g_logits);
}

int argmax(const int8_t* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (v[i] > v[best]) best = i;
  }
  return best;
}

}  // namespace

int main() {
  tq_region_begin();  // empty region: the markers' own cost, subtracted by the runner
  tq_region_end();
  rt::FcDims d1;
  d1.in_features = TQ_IN;
  d1.out_features = TQ_HIDDEN;
  if (rt::fully_connected_s8_scratch_size(d1, rt::Path::kAuto) != 0) {
    std::printf("cortex_m: the default path unexpectedly asks for scratch\n");
    return 1;
  }
  std::printf("cortex_m: path %s, MLP %d-%d-%d, %d MACs per inference\n",
              rt::path_name(rt::default_path()), TQ_IN, TQ_HIDDEN, TQ_OUT,
              TQ_IN * TQ_HIDDEN + TQ_HIDDEN * TQ_OUT);
  int failures = 0;
  for (int s = 0; s < TQ_NUM_SAMPLES; ++s) {
    tq_region_begin();
    const rt::Status st = infer(tq_inputs + s * TQ_IN);
    tq_region_end();
    const int got = argmax(g_logits, TQ_OUT);
    const bool same_logits =
        std::memcmp(g_logits, tq_expected_logits + s * TQ_OUT, sizeof g_logits) == 0;
    const bool ok = st == rt::Status::kOk && got == tq_expected_class[s] && same_logits;
    std::printf("sample %d: predicted class %d, host %ld, logits %s, status %s -> %s\n", s, got,
                static_cast<long>(tq_expected_class[s]), same_logits ? "equal" : "DIFFER",
                rt::status_name(st), ok ? "ok" : "FAIL");
    if (!ok) ++failures;
  }
  std::printf("cortex_m: %d of %d samples match the host\n", TQ_NUM_SAMPLES - failures,
              TQ_NUM_SAMPLES);
  return failures == 0 ? 0 : 1;
}
