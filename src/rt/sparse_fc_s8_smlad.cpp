// Sparse fully-connected, Cortex-M DSP data flow. Once per activation row, x + input_offset
// (in [-255, 255]) is widened into an int16 row in scratch (one word load, SXTAB16 /
// SXTAB16-ROR8 and two PKHBT / PKHTB per 4 values), its sum taken on the way with SMLAD. Then per
// stored entry the kernels only decode a column and load one halfword:
//  - CSR u8 / u16 and N:M take 4 entries per step with no per-entry branch: 4 columns (one word
//    of u8 deltas summed with UXTAB-ROR, four u16 loads, or a byte of 2-bit N:4 indices added
//    to an activation pointer that moves with the groups; other N:M read bit fields), 4 LDRSH,
//    the 4 weights in one word load split with SXTB16 / SXTB16-ROR8 into (w0, w2), (w1, w3),
//    the activations packed to match with two PKHBT, two SMLAD. CSR runs two such steps per
//    loop iteration; 0..3 leftover entries of a row use a plain multiply-accumulate.
//  - bitmap scans a row's bitmap a word (32 columns) at a time: RBIT once, then per set bit CLZ
//    for the column, LSR + BIC to clear it, and a multiply-accumulate.
// Off ARM every instruction is emulated bit for bit (dsp.hpp); the data flow is the same, so the
// path is tested on the host. Block CSR with block_cols % 4 == 0 and at most 8 block rows takes
// the dense kernels' data flow and needs no scratch: per 4 columns one word load of x widened
// with SXTAB16 / SXTAB16-ROR8 (offset added), shared by the block's rows, and per row one word
// load of weights, two SXTB16 and two SMLAD. Other block shapes pair entries for SMLAD.
#include <cstring>
#include <utility>

#include "scratch.hpp"
#include "smlad_common.hpp"
#include "tinyquant/rt/dsp.hpp"
#include "tinyquant/rt/sparse.hpp"

namespace tinyquant::rt::detail {
namespace {

// SMLAD: acc + lo16(a) * lo16(b) + hi16(a) * hi16(b), 32-bit wrapping (the Q flag is not used):
// the real instruction on a core with the DSP extension, its bit-exact emulation elsewhere.
inline int32_t smlad_acc(uint32_t a, uint32_t b, int32_t acc) noexcept {
  return static_cast<int32_t>(dsp::smlad(a, b, static_cast<uint32_t>(acc)));
}

inline uint32_t pack16(int32_t lo, int32_t hi) noexcept {
  return (static_cast<uint32_t>(lo) & 0xFFFFu) | (static_cast<uint32_t>(hi) << 16);
}

// Pairs up the entries a row produces and feeds them to SMLAD; a lone last entry uses a plain
// multiply-accumulate, as the Cortex-M kernels do for odd tails.
struct PairAccumulator {
  int32_t acc;
  bool pending = false;
  int32_t px = 0, pw = 0;
  void add(int32_t xv, int32_t wv) noexcept {
    if (pending) {
      acc = smlad_acc(pack16(px, xv), pack16(pw, wv), acc);
      pending = false;
    } else {
      px = xv;
      pw = wv;
      pending = true;
    }
  }
  int32_t finish() noexcept { return pending ? wrap_add(acc, px * pw) : acc; }
};

inline uint32_t read_bits(const uint8_t* base, int64_t bit, int32_t bits) noexcept {
  // Indices never straddle more than two bytes for bits <= 8: read a 16-bit window.
  const int64_t byte = bit >> 3;
  const int32_t off = static_cast<int32_t>(bit & 7);
  uint32_t window = base[byte];
  if (off + bits > 8) window |= static_cast<uint32_t>(base[byte + 1]) << 8;
  return (window >> off) & ((1u << bits) - 1u);
}

// The int16 activation row in scratch: 4-byte aligned start, in_features halfwords.
int16_t* activation_row(void* scratch) noexcept {
  return reinterpret_cast<int16_t*>(align_scratch(scratch, 4));
}

// xs[k] = x[k] + io for k < n; returns sum_k (x[k] + io), wrapping.
int32_t widen_row(const int8_t* x, int32_t n, int32_t io, int16_t* xs) noexcept {
  const uint32_t off = smlad::offset_pair(io);
  uint32_t sum = 0;
  int32_t k = 0;
  for (; k + 4 <= n; k += 4) {
    const smlad::Pairs p = smlad::widen4(x + k, off);   // (x0, x2), (x1, x3)
    const uint32_t lo = dsp::pkhbt<16>(p.even, p.odd);  // (x0, x1)
    const uint32_t hi = dsp::pkhtb<16>(p.odd, p.even);  // (x2, x3)
    std::memcpy(xs + k, &lo, sizeof lo);
    std::memcpy(xs + k + 2, &hi, sizeof hi);
    sum = dsp::smlad(p.even, 0x00010001u, sum);
    sum = dsp::smlad(p.odd, 0x00010001u, sum);
  }
  for (; k < n; ++k) {
    xs[k] = static_cast<int16_t>(x[k] + io);
    sum += static_cast<uint32_t>(x[k] + io);
  }
  return static_cast<int32_t>(sum);
}

inline uint32_t mla(int32_t x, int8_t w, uint32_t acc) noexcept {
  return acc + static_cast<uint32_t>(x * w);
}

// Four entries: columns c, weights in one word (w0..w3) split as (w0, w2), (w1, w3).
inline uint32_t dot4(const int16_t* xs, const int32_t* c, const int8_t* v, uint32_t acc) noexcept {
  const uint32_t q = smlad::load4(v);
  auto x = [xs, c](int32_t k) { return static_cast<uint32_t>(xs[c[k]]); };
  acc = dsp::smlad(dsp::pkhbt<16>(x(0), x(2)), dsp::sxtb16(q), acc);
  return dsp::smlad(dsp::pkhbt<16>(x(1), x(3)), dsp::sxtb16<8>(q), acc);
}

// acc + sum_j xs[col_j] * v[j] over n entries whose columns `dec` yields in order: dec.next4(c)
// the next four, dec.next1() the next one. Eight entries per loop step, then 4, then 0..3.
template <class Decoder>
uint32_t gather_dot(const int16_t* xs, const int8_t* v, int32_t n, uint32_t acc,
                    Decoder dec) noexcept {
  int32_t j = 0;
  int32_t c[4];
  for (; j + 8 <= n; j += 8) {
    dec.next4(c);
    acc = dot4(xs, c, v + j, acc);
    dec.next4(c);
    acc = dot4(xs, c, v + j + 4, acc);
  }
  if (j + 4 <= n) {
    dec.next4(c);
    acc = dot4(xs, c, v + j, acc);
    j += 4;
  }
  for (; j < n; ++j) acc = mla(xs[dec.next1()], v[j], acc);
  return acc;
}

// Column distances, one byte each, from column 0 (CSR u8).
struct DeltaDecoder {
  const uint8_t* d;
  uint32_t col = 0;
  void next4(int32_t* c) noexcept {
    const uint32_t q = smlad::load4(d);
    d += 4;
    const uint32_t c0 = smlad::add_byte<0>(col, q), c1 = smlad::add_byte<1>(c0, q);
    const uint32_t c2 = smlad::add_byte<2>(c1, q);
    col = smlad::add_byte<3>(c2, q);
    c[0] = static_cast<int32_t>(c0);
    c[1] = static_cast<int32_t>(c1);
    c[2] = static_cast<int32_t>(c2);
    c[3] = static_cast<int32_t>(col);
  }
  int32_t next1() noexcept { return static_cast<int32_t>(col += *d++); }
};

// Absolute uint16 columns (CSR u16).
struct IndexDecoder {
  const uint16_t* i;
  void next4(int32_t* c) noexcept {
    c[0] = i[0];
    c[1] = i[1];
    c[2] = i[2];
    c[3] = i[3];
    i += 4;
  }
  int32_t next1() noexcept { return *i++; }
};

// N:4 rows, N in {1, 2}: 2-bit indices, a byte holds four slots, of 4 / N consecutive groups.
// The activation pointer moves with the groups, so a column is (k / N) * 4 + index.
template <int32_t N>
uint32_t nm4_dot(const int16_t* xs, const uint8_t* idx, const int8_t* v, int32_t slots,
                 uint32_t acc) noexcept {
  int32_t j = 0;
  for (; j + 4 <= slots; j += 4, xs += 16 / N) {
    const auto b = static_cast<int32_t>(*idx++);
    const int32_t c[4] = {b & 3, (1 / N) * 4 + ((b >> 2) & 3), (2 / N) * 4 + ((b >> 4) & 3),
                          (3 / N) * 4 + (b >> 6)};
    acc = dot4(xs, c, v + j, acc);
  }
  for (int32_t s = 0; j < slots; ++j, ++s)
    acc = mla(xs[(s / N) * 4 + ((*idx >> (2 * s)) & 3)], v[j], acc);
  return acc;
}

// Any N:M: indices read bit by bit.
struct NmDecoder {
  const uint8_t* idx;
  int32_t n, m, bits;
  int64_t slot = 0;
  int32_t next1() noexcept {
    const int32_t group = static_cast<int32_t>(slot / n);
    const int32_t pos = bits > 0 ? static_cast<int32_t>(read_bits(idx, slot * bits, bits)) : 0;
    ++slot;
    return group * m + pos;
  }
  void next4(int32_t* c) noexcept {
    for (int32_t k = 0; k < 4; ++k) c[k] = next1();
  }
};

// Bit-reverses a word (one RBIT on the DSP target).
inline uint32_t reverse_bits(uint32_t m) noexcept {
#if TINYQUANT_RT_NATIVE_DSP && defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_ISA_THUMB >= 2
  // RBIT: ARMv6T2 and later (Thumb-2 cores); plain ARMv6 has DSP and SIMD32 but not RBIT.
  uint32_t r;
  __asm__("rbit %0, %1" : "=r"(r) : "r"(m));
  return r;
#else
  m = ((m >> 1) & 0x55555555u) | ((m & 0x55555555u) << 1);
  m = ((m >> 2) & 0x33333333u) | ((m & 0x33333333u) << 2);
  m = ((m >> 4) & 0x0F0F0F0Fu) | ((m & 0x0F0F0F0Fu) << 4);
  m = ((m >> 8) & 0x00FF00FFu) | ((m & 0x00FF00FFu) << 8);
  return (m >> 16) | (m << 16);
#endif
}

// One bitmap row: the set bits of every 32-column word, lowest first. The word is bit-reversed
// once, so per set bit CLZ gives the column and LSR + BIC clear it.
uint32_t bitmap_dot(const int16_t* xs, const uint8_t* bm, int32_t row_bytes, const int8_t** v,
                    uint32_t acc) noexcept {
  const int8_t* w = *v;
  auto visit = [&](uint32_t m, const int16_t* xb) {
    for (uint32_t r = reverse_bits(m); r != 0;) {
      const int32_t bit = __builtin_clz(r);
      acc = mla(xb[bit], *w++, acc);
      r &= ~(0x80000000u >> bit);
    }
  };
  const uint8_t* end = bm + row_bytes;
  for (; end - bm >= 4; bm += 4, xs += 32) visit(smlad::load4(bm), xs);
  for (; bm < end; ++bm, xs += 8) visit(*bm, xs);
  *v = w;
  return acc;
}

constexpr int32_t kMaxWordBlockRows = 8;

// f(0), f(1), ... f(N - 1), written out.
template <class F, int32_t... I>
inline void unrolled(F& f, std::integer_sequence<int32_t, I...>) noexcept {
  (f(I), ...);
}

// One block row of a block CSR matrix (block_cols % 4 == 0, block_rows <= 8) against one
// activation row; acc[i] holds row i's accumulator and receives the stored products. BR > 0 is
// the block height known at compile time (accumulators then live in registers), 0 reads it
// from w. Out of line: inlined into the one function every format shares, its loop's register
// allocation followed changes elsewhere in that function (+8 % Cortex-M4 instructions after the
// PKHBT change); a call per block row costs about 17 instructions.
template <int32_t BR>
__attribute__((noinline)) void block_row_words(const SparseMatrixS8& w, int32_t r, const int8_t* x,
                                               uint32_t off, int32_t* acc_io) noexcept {
  const int32_t br = BR > 0 ? BR : w.block_rows, bc = w.block_cols;
  const int64_t block_size = int64_t{br} * bc;
  uint32_t acc[BR > 0 ? BR : kMaxWordBlockRows];
  for (int32_t i = 0; i < br; ++i) acc[i] = static_cast<uint32_t>(acc_io[i]);
  for (uint32_t j = w.block_row_ptr[r]; j < w.block_row_ptr[r + 1]; ++j) {
    const int8_t* xs = x + int32_t{w.block_col[j]} * bc;
    const int8_t* v = w.values + j * block_size;
    for (int32_t c = 0; c < bc; c += 4) {
      const smlad::Pairs xp = smlad::widen4(xs + c, off);
      auto row = [&](int32_t i) {
        const uint32_t q = smlad::load4(v + i * bc + c);
        acc[i] = dsp::smlad(xp.even, dsp::sxtb16(q), acc[i]);
        acc[i] = dsp::smlad(xp.odd, dsp::sxtb16<8>(q), acc[i]);
      };
      if constexpr (BR > 0)
        unrolled(row, std::make_integer_sequence<int32_t, BR>{});
      else
        for (int32_t i = 0; i < br; ++i) row(i);
    }
  }
  for (int32_t i = 0; i < br; ++i) acc_io[i] = static_cast<int32_t>(acc[i]);
}

// Row i of block row r, entries paired for SMLAD (any block shape).
int32_t block_slice_pairs(const SparseMatrixS8& w, int32_t r, int32_t i, const int8_t* x,
                          int32_t io, int32_t acc) noexcept {
  const int32_t bc = w.block_cols;
  const int64_t block_size = int64_t{w.block_rows} * bc;
  PairAccumulator pa{acc};
  for (uint32_t j = w.block_row_ptr[r]; j < w.block_row_ptr[r + 1]; ++j) {
    const int8_t* xs = x + int32_t{w.block_col[j]} * bc;
    const int8_t* v = w.values + j * block_size + int64_t{i} * bc;
    for (int32_t c = 0; c < bc; ++c) pa.add(xs[c] + io, v[c]);
  }
  return pa.finish();
}

}  // namespace

int32_t sparse_fc_s8_smlad_scratch_size(const FcDims& dims, const SparseMatrixS8& w) noexcept {
  if (w.format == SparseFormat::kBlockCsr) return 0;
  const int64_t bytes = 2 * int64_t{dims.in_features} + 3;  // int16 row, aligned up to 4 bytes
  return bytes > INT32_MAX ? INT32_MAX : static_cast<int32_t>(bytes);
}

void sparse_fc_s8_smlad(const SparseFcArgs& a) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  const int32_t io = p.input_offset;
  const Requant& rq = *a.requant;
  // The dense smlad kernels' output stage (32-bit double-rounding divide), bit for bit
  // sparse_fc_finish.
  const smlad::OutStage os{rq.multiplier,   rq.shift,  rq.per_channel ? -1 : 0,
                           p.output_offset, p.act_min, p.act_max,
                           rq.rounding};
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    int8_t* out = a.output + static_cast<int64_t>(b) * d.out_features;

    if (w.format == SparseFormat::kBlockCsr) {
      // sum(x + io) with SMLAD against a packed (1, 1), as the DSP kernels do.
      const int32_t pruned_term = wrap_mul(smlad::row_sum(x, d.in_features, io), p.filter_offset);
      const int32_t br = w.block_rows;
      const bool words = w.block_cols % 4 == 0 && br <= kMaxWordBlockRows;
      for (int32_t r = 0; r < w.rows / br; ++r) {
        int32_t acc[kMaxWordBlockRows];
        for (int32_t i = 0; i < br; ++i) {
          const int32_t o = r * br + i;
          const int32_t init = wrap_add(a.bias != nullptr ? a.bias[o] : 0, pruned_term);
          if (words)
            acc[i] = init;
          else
            out[o] = smlad::finish(os, o,
                                   static_cast<uint32_t>(block_slice_pairs(w, r, i, x, io, init)));
        }
        if (!words) continue;
        const uint32_t off = smlad::offset_pair(io);
        if (br == 4)
          block_row_words<4>(w, r, x, off, acc);
        else if (br == 1)
          block_row_words<1>(w, r, x, off, acc);
        else
          block_row_words<0>(w, r, x, off, acc);
        for (int32_t i = 0; i < br; ++i)
          out[r * br + i] = smlad::finish(os, r * br + i, static_cast<uint32_t>(acc[i]));
      }
      continue;
    }

    int16_t* xs = activation_row(a.scratch);
    const int32_t pruned_term = wrap_mul(widen_row(x, d.in_features, io, xs), p.filter_offset);
    const int8_t* v = w.values;
    const uint8_t* delta = w.col_delta;
    const uint16_t* index = w.col_index;
    const int32_t row_bytes = (w.cols + 7) / 8;
    const bool nm4 = w.format == SparseFormat::kNm && w.nm_m == 4 && (w.nm_n == 1 || w.nm_n == 2);
    const int32_t nm_bytes =
        w.format == SparseFormat::kNm ? nm_row_index_bytes(w.cols, w.nm_n, w.nm_m) : 0;
    const int32_t nm_slots = w.format == SparseFormat::kNm ? nm_groups(w.cols, w.nm_m) * w.nm_n : 0;
    for (int32_t o = 0; o < d.out_features; ++o) {
      auto acc = static_cast<uint32_t>(wrap_add(a.bias != nullptr ? a.bias[o] : 0, pruned_term));
      switch (w.format) {
        case SparseFormat::kCsrU8Delta: {
          const int32_t n = w.row_nnz[o];
          acc = gather_dot(xs, v, n, acc, DeltaDecoder{delta});
          delta += n;
          v += n;
          break;
        }
        case SparseFormat::kCsrU16: {
          const int32_t n = w.row_nnz[o];
          acc = gather_dot(xs, v, n, acc, IndexDecoder{index});
          index += n;
          v += n;
          break;
        }
        case SparseFormat::kBitmap:
          acc = bitmap_dot(xs, w.bitmap + static_cast<int64_t>(o) * row_bytes, row_bytes, &v, acc);
          break;
        case SparseFormat::kNm: {
          const uint8_t* idx = w.nm_index + static_cast<int64_t>(o) * nm_bytes;
          if (nm4 && w.nm_n == 1)
            acc = nm4_dot<1>(xs, idx, v, nm_slots, acc);
          else if (nm4)
            acc = nm4_dot<2>(xs, idx, v, nm_slots, acc);
          else
            acc = gather_dot(xs, v, nm_slots, acc,
                             NmDecoder{idx, w.nm_n, w.nm_m, nm_index_bits(w.nm_m)});
          v += nm_slots;
          break;
        }
        case SparseFormat::kBlockCsr:
          break;  // handled above
      }
      out[o] = smlad::finish(os, o, acc);
    }
  }
}

}  // namespace tinyquant::rt::detail
