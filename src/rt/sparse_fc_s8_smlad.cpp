// Sparse fully-connected, Cortex-M DSP data flow: stored entries are taken two at a time, the
// two activations (x + input_offset, in [-255, 255]) and the two weights packed as 16-bit halves
// of one word each, and accumulated with one dual 16-bit multiply-accumulate (dsp.hpp's SMLAD). Off
// ARM it is emulated bit for bit; the data flow is the same, so this path is tested on the host.
// Block CSR with block_cols % 4 == 0 and at most 8 block rows takes the dense kernels' data flow
// instead: per 4 columns one word load of x widened with SXTAB16 / SXTAB16-ROR8 (offset added),
// shared by the block's rows, and per row one word load of weights, two SXTB16 and two SMLAD;
// no index is decoded inside a block. Other shapes pair entries as above.
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

constexpr int32_t kMaxWordBlockRows = 8;

// One block row of a block CSR matrix (block_cols % 4 == 0, block_rows <= 8) against one
// activation row; acc[i] holds row i's accumulator and receives the stored products.
void block_row_words(const SparseMatrixS8& w, int32_t r, const int8_t* x, uint32_t off,
                     int32_t* acc) noexcept {
  const int32_t br = w.block_rows, bc = w.block_cols;
  const int64_t block_size = int64_t{br} * bc;
  for (uint32_t j = w.block_row_ptr[r]; j < w.block_row_ptr[r + 1]; ++j) {
    const int8_t* xs = x + int32_t{w.block_col[j]} * bc;
    const int8_t* v = w.values + j * block_size;
    for (int32_t c = 0; c < bc; c += 4) {
      const smlad::Pairs xp = smlad::widen4(xs + c, off);
      for (int32_t i = 0; i < br; ++i) {
        const uint32_t q = smlad::load4(v + i * bc + c);
        uint32_t t = dsp::smlad(xp.even, dsp::sxtb16(q), static_cast<uint32_t>(acc[i]));
        t = dsp::smlad(xp.odd, smlad::sxtb16_ror8(q), t);
        acc[i] = static_cast<int32_t>(t);
      }
    }
  }
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

void sparse_fc_s8_smlad(const SparseFcArgs& a) noexcept {
  const FcParams& p = *a.params;
  const FcDims& d = *a.dims;
  const SparseMatrixS8& w = *a.weights;
  const int32_t io = p.input_offset;
  const int32_t row_bytes = (w.cols + 7) / 8;
  const int32_t bits = w.format == SparseFormat::kNm ? nm_index_bits(w.nm_m) : 0;
  const int32_t nm_bytes =
      w.format == SparseFormat::kNm ? nm_row_index_bytes(w.cols, w.nm_n, w.nm_m) : 0;
  for (int32_t b = 0; b < d.batch; ++b) {
    const int8_t* x = a.input + static_cast<int64_t>(b) * d.in_features;
    // sum(x + io) with SMLAD against a packed (1, 1), as the DSP kernels do.
    int32_t xsum = 0;
    int32_t k = 0;
    for (; k + 1 < d.in_features; k += 2)
      xsum = smlad_acc(pack16(x[k] + io, x[k + 1] + io), 0x00010001u, xsum);
    if (k < d.in_features) xsum = wrap_add(xsum, x[k] + io);
    const int32_t pruned_term = wrap_mul(xsum, p.filter_offset);
    int8_t* out = a.output + static_cast<int64_t>(b) * d.out_features;

    if (w.format == SparseFormat::kBlockCsr) {
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
            out[o] = sparse_fc_finish(block_slice_pairs(w, r, i, x, io, init), o, p, *a.requant);
        }
        if (!words) continue;
        block_row_words(w, r, x, smlad::offset_pair(io), acc);
        for (int32_t i = 0; i < br; ++i)
          out[r * br + i] = sparse_fc_finish(acc[i], r * br + i, p, *a.requant);
      }
      continue;
    }

    int64_t cursor = 0;
    for (int32_t o = 0; o < d.out_features; ++o) {
      PairAccumulator pa{wrap_add(a.bias != nullptr ? a.bias[o] : 0, pruned_term)};
      switch (w.format) {
        case SparseFormat::kCsrU8Delta: {
          int32_t col = 0;
          const int64_t end = cursor + w.row_nnz[o];
          for (; cursor < end; ++cursor) {
            col += w.col_delta[cursor];
            pa.add(x[col] + io, w.values[cursor]);
          }
          break;
        }
        case SparseFormat::kCsrU16: {
          const int64_t end = cursor + w.row_nnz[o];
          for (; cursor < end; ++cursor) pa.add(x[w.col_index[cursor]] + io, w.values[cursor]);
          break;
        }
        case SparseFormat::kBitmap: {
          const uint8_t* bm = w.bitmap + static_cast<int64_t>(o) * row_bytes;
          for (int32_t byte = 0; byte < row_bytes; ++byte) {
            uint32_t m = bm[byte];
            while (m != 0) {  // visit set bits lowest first
              const int32_t bit = __builtin_ctz(m);
              m &= m - 1;
              pa.add(x[byte * 8 + bit] + io, w.values[cursor++]);
            }
          }
          break;
        }
        case SparseFormat::kNm: {
          const uint8_t* idx = w.nm_index + static_cast<int64_t>(o) * nm_bytes;
          const int32_t groups = nm_groups(w.cols, w.nm_m);
          int64_t slot = 0;
          for (int32_t g = 0; g < groups; ++g) {
            const int32_t base = g * w.nm_m;
            for (int32_t s = 0; s < w.nm_n; ++s, ++slot) {
              const int32_t pos =
                  bits > 0 ? static_cast<int32_t>(read_bits(idx, slot * bits, bits)) : 0;
              pa.add(x[base + pos] + io, w.values[cursor++]);
            }
          }
          break;
        }
        case SparseFormat::kBlockCsr:
          break;  // handled above
      }
      a.output[static_cast<int64_t>(b) * d.out_features + o] =
          sparse_fc_finish(pa.finish(), o, p, *a.requant);
    }
  }
}

}  // namespace tinyquant::rt::detail
