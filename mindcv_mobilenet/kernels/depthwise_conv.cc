// Depthwise convolution for MindSpore's CPU backend (AOT custom operator): forward, gradient w.r.t. the input and
// gradient w.r.t. the weights, NCHW float32, weights (C, 1, K, K), stride 1 or 2, any odd or even K.
//
// Why: MindSpore 2.10's oneDNN runs a depthwise convolution as an im2col + GEMM per channel (~1-2 GMAC/s), the largest
// item of MobileNet training on CPU. Here each (image, channel) plane is copied once into a zero-padded buffer and the
// K x K taps run as vectorised loops over the output row; small planes (7 x 7, 4 x 4) and stride-2 5 x 5 layers run in
// blocks of channels in the vector lanes instead (UseBlocked).
//
// Entry points (MindSpore's AOT signature), one per stride and padding rule; the padding rule is
//   "pad":  pad (K - 1) / 2 on every side (nn.Conv2d(pad_mode="pad", padding=(K - 1) // 2), MobileNet's default);
//   "same": TensorFlow's SAME (output ceil(H / S), the odd pixel of padding at the bottom/right).
//   DwForward{S1,S2}{Pad,Same}(x, w) -> y
//   DwBackwardInput{S1,S2}{Pad,Same}(dy, w, x) -> dx          (x only gives the shape)
//   DwBackwardWeight{S1,S2}{Pad,Same}(dy, x, w) -> dw         (w only gives the shape)
// Threads: the planes or channel blocks of each image (channels for the weight gradient) are split over the kernel
// threads (parallel.h).

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "parallel.h"
#include "simd.h"

namespace {

using mindcv_kernels::ParallelFor;

// Accumulator width of the weight gradient: one vector register (simd.h).
constexpr int kLanes = mindcv_kernels::kVectorFloats;

struct Geometry {
  int64_t n, c, h, w;     // input
  int64_t oh, ow;         // output
  int64_t k, s;           // kernel size, stride
  int64_t pt, pl;         // padding at the top and left
  int64_t ph, pw;         // padded plane: rows/columns that the taps read, (oh - 1) * s + k by (ow - 1) * s + k
};

Geometry MakeGeometry(const int64_t *in_shape, const int64_t *out_shape, int64_t k, int64_t s, bool same) {
  Geometry g;
  g.n = in_shape[0];
  g.c = in_shape[1];
  g.h = in_shape[2];
  g.w = in_shape[3];
  g.oh = out_shape[2];
  g.ow = out_shape[3];
  g.k = k;
  g.s = s;
  if (same) {
    g.pt = std::max<int64_t>((g.oh - 1) * s + k - g.h, 0) / 2;
    g.pl = std::max<int64_t>((g.ow - 1) * s + k - g.w, 0) / 2;
  } else {
    g.pt = (k - 1) / 2;
    g.pl = (k - 1) / 2;
  }
  g.ph = (g.oh - 1) * s + k;
  g.pw = (g.ow - 1) * s + k;
  return g;
}

// Floats a per-thread plane buffer needs: the padded plane plus the slack that the flattened loops below read past
// its end (always zero, never used for a kept output).
constexpr int kSlack = 16;

int64_t PlaneBufferSize(const Geometry &g) { return (g.ph + 2) * g.pw + g.k + kSlack; }

// Copies one input plane into the zero-padded buffer (rows/columns outside the input are zero).
void PadPlane(const Geometry &g, const float *plane, float *padded) {
  std::fill(padded, padded + g.ph * g.pw, 0.0f);
  const int64_t cols = std::min(g.w, g.pw - g.pl);
  for (int64_t y = 0; y < g.h && y + g.pt < g.ph; ++y) {
    std::memcpy(padded + (y + g.pt) * g.pw + g.pl, plane + y * g.w, cols * sizeof(float));
  }
}

// out[oy, ox] = sum_{ky, kx} w[ky, kx] * padded[oy * S + ky, ox * S + kx]; K and S compile-time where they can be.
template <int K, int S>
void ForwardPlaneFixed(const Geometry &g, const float *padded, const float *wk, float *out) {
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float *rows[K];
    for (int ky = 0; ky < K; ++ky) rows[ky] = padded + (oy * S + ky) * g.pw;
    float *orow = out + oy * g.ow;
#pragma omp simd
    for (int64_t ox = 0; ox < g.ow; ++ox) {
      float acc = 0.0f;
      for (int ky = 0; ky < K; ++ky) {
        for (int kx = 0; kx < K; ++kx) acc += wk[ky * K + kx] * rows[ky][ox * S + kx];
      }
      orow[ox] = acc;
    }
  }
}

void ForwardPlaneGeneric(const Geometry &g, const float *padded, const float *wk, float *out) {
  const int64_t k = g.k, s = g.s;
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    float *orow = out + oy * g.ow;
    std::fill(orow, orow + g.ow, 0.0f);
    for (int64_t ky = 0; ky < k; ++ky) {
      const float *row = padded + (oy * s + ky) * g.pw;
      for (int64_t kx = 0; kx < k; ++kx) {
        const float wv = wk[ky * k + kx];
        for (int64_t ox = 0; ox < g.ow; ++ox) orow[ox] += wv * row[ox * s + kx];
      }
    }
  }
}

// The same sum over the flattened padded plane: output i = oy * pw + ox reads padded[S * i + ky * pw + kx], so one
// vectorised loop covers the whole plane (columns ox >= ow are computed and dropped). Small planes (7 x 7, 4 x 4:
// most of MobileNetV3 at low resolution) then run in vector registers instead of per-row scalar remainders.
template <int K, int S>
void ForwardPlaneFlat(const Geometry &g, const float *padded, const float *wk, float *out, float *pitched) {
  const int64_t length = g.oh * g.pw;
  const int64_t pw = g.pw;
#pragma omp simd
  for (int64_t i = 0; i < length; ++i) {
    float acc = 0.0f;
    for (int ky = 0; ky < K; ++ky) {
      for (int kx = 0; kx < K; ++kx) acc += wk[ky * K + kx] * padded[S * i + ky * pw + kx];
    }
    pitched[i] = acc;
  }
  for (int64_t oy = 0; oy < g.oh; ++oy) std::memcpy(out + oy * g.ow, pitched + oy * g.pw, g.ow * sizeof(float));
}

// Flattened where the rows are short or the stride is 1 (little of the flattened work is dropped), per row else.
// Short: under 16 outputs (one AVX-512 vector), with AVX2 too: there a stride-2 row of 8-15 outputs takes one
// vector and a remainder of up to 7 scalars, about as many steps as the flattened loop's (~2x the outputs, all in
// 8-wide vectors); counted, not timed, so the choice made for 16 lanes stands.
constexpr int kShortRow = 16;

bool UseFlat(const Geometry &g) { return g.s == 1 || g.ow < kShortRow; }

// Calls body(K, S) with compile-time K in {3, 5} and S in {1, 2} matching g; false when g has another kernel size.
template <class Body>
bool WithFixedSizes(const Geometry &g, const Body &body) {
  using K3 = std::integral_constant<int, 3>;
  using K5 = std::integral_constant<int, 5>;
  using S1 = std::integral_constant<int, 1>;
  using S2 = std::integral_constant<int, 2>;
  if (g.k == 3 && g.s == 1) return body(K3(), S1()), true;
  if (g.k == 3 && g.s == 2) return body(K3(), S2()), true;
  if (g.k == 5 && g.s == 1) return body(K5(), S1()), true;
  if (g.k == 5 && g.s == 2) return body(K5(), S2()), true;
  return false;
}

void ForwardPlane(const Geometry &g, const float *padded, const float *wk, float *out, float *pitched) {
  const bool flat = UseFlat(g);
  const bool fixed = WithFixedSizes(g, [&](auto k, auto s) {
    if (flat) {
      ForwardPlaneFlat<k(), s()>(g, padded, wk, out, pitched);
    } else {
      ForwardPlaneFixed<k(), s()>(g, padded, wk, out);
    }
  });
  if (!fixed) ForwardPlaneGeneric(g, padded, wk, out);
}

// Scatters one output-gradient plane into the padded input-gradient buffer: the transpose of ForwardPlane.
template <int S>
void BackwardInputPlaneStride(const Geometry &g, const float *dy, const float *wk, float *padded) {
  const int64_t k = g.k;
  std::fill(padded, padded + g.ph * g.pw, 0.0f);
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    const float *drow = dy + oy * g.ow;
    for (int64_t ky = 0; ky < k; ++ky) {
      float *row = padded + (oy * S + ky) * g.pw;
      for (int64_t kx = 0; kx < k; ++kx) {
        const float wv = wk[ky * k + kx];
        float *dst = row + kx;
#pragma omp simd
        for (int64_t ox = 0; ox < g.ow; ++ox) dst[ox * S] += wv * drow[ox];
      }
    }
  }
}

// Stride 1: dx[y, x] = sum_{ky, kx} w[ky, kx] * dy[y + pt - ky, x + pl - kx], i.e. the forward kernel run on dy padded
// by (k - 1 - pt, k - 1 - pl) with the taps flipped; one pass, sums in registers, no scatter.
void BackwardInputPlaneGather(const Geometry &g, const float *dy, const float *wk, float *padded, float *dx,
                              float *pitched) {
  Geometry t = g;  // the transposed convolution as a forward one: input dy (oh x ow), output dx (h x w)
  t.h = g.oh;
  t.w = g.ow;
  t.oh = g.h;
  t.ow = g.w;
  t.pt = g.k - 1 - g.pt;
  t.pl = g.k - 1 - g.pl;
  t.ph = g.h + g.k - 1;
  t.pw = g.w + g.k - 1;
  float flipped[64];
  for (int64_t i = 0; i < g.k * g.k; ++i) flipped[i] = wk[g.k * g.k - 1 - i];
  PadPlane(t, dy, padded);
  ForwardPlane(t, padded, flipped, dx, pitched);
}

// Stride-2 input gradient as stride-1 problems ("polyphase"): the even/odd rows and columns of the padded input's
// gradient are four planes, each a stride-1 sum over dy with the taps of one parity (ky % 2, kx % 2). Contiguous
// vector loops instead of the scatter's every-other-float stores: 3x faster on this project's machine (BENCHMARKS.md).
// For the forward and the weight gradient the same split did not pay (copying the phases costs what it saves).
int64_t PhaseBufferSize(const Geometry &g) {
  const int64_t pad = (g.k - 1) / 2, pitch = g.ow + 2 * pad + 2;
  return 4 * (g.oh + 2 * pad + 3) * pitch + pitch + kSlack;
}

// The input gradient of a padded plane's phase (pr, pc) is a stride-1 sum over dy:
//   dpadded[2a + pr, 2j + pc] = sum_{t, m} w[pr + 2t, pc + 2m] * dy[a - t, j - m]
// run over dy padded by (K - 1) / 2 zeros above and left (and more below and right), flattened at pitch dp; the four
// phases are then interleaved into dx (the padding cropped).
template <int K>
void BackwardInputPlaneS2Phased(const Geometry &g, const float *dy, const float *wk, float *dx, float *padded,
                                float *phases) {
  constexpr int kPad = (K - 1) / 2;
  const int64_t dp = g.ow + 2 * kPad + 2, rows = g.oh + 2 * kPad + 3;
  const int64_t a_count = (g.ph + 1) / 2, length = a_count * dp, plane = (rows - 2 * kPad) * dp;
  std::fill(padded, padded + rows * dp + K + kSlack, 0.0f);
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    std::memcpy(padded + (oy + kPad) * dp + kPad, dy + oy * g.ow, g.ow * sizeof(float));
  }
  const auto phase = [&](auto pr_, auto pc_) {
    constexpr int pr = decltype(pr_)::value, pc = decltype(pc_)::value;
    float *out = phases + (2 * pr + pc) * plane;
#pragma omp simd
    for (int64_t i = 0; i < length; ++i) {
      float acc = 0.0f;
      for (int t = 0; 2 * t + pr < K; ++t) {
        for (int m = 0; 2 * m + pc < K; ++m) {
          acc += wk[(pr + 2 * t) * K + pc + 2 * m] * padded[i + (kPad - t) * dp + (kPad - m)];
        }
      }
      out[i] = acc;
    }
  };
  using Zero = std::integral_constant<int, 0>;
  using One = std::integral_constant<int, 1>;
  phase(Zero(), Zero());
  phase(Zero(), One());
  phase(One(), Zero());
  phase(One(), One());
  for (int64_t y = 0; y < g.h; ++y) {
    const int64_t r = y + g.pt;
    const float *even = phases + (2 * (r & 1)) * plane + (r >> 1) * dp;
    const float *odd = even + plane;
    float *row = dx + y * g.w;
    // c = x + pl: pairs (even[b], odd[b]) are padded columns 2b, 2b + 1
    const int64_t shift = g.pl & 1, base = g.pl >> 1;
    int64_t x = 0;
    if (shift) row[x++] = odd[base];
    const float *e = even + base + shift, *o = odd + base + shift;
    const int64_t pairs = (g.w - x) / 2;
    float *dst = row + x;
#pragma omp simd
    for (int64_t b = 0; b < pairs; ++b) {
      dst[2 * b] = e[b];
      dst[2 * b + 1] = o[b];
    }
    if (x + 2 * pairs < g.w) row[g.w - 1] = e[pairs];
  }
}

// Calls body(K) with a compile-time K in {3, 5} for stride-2 geometries; false for the others.
template <class Body>
bool WithStride2Kernel(const Geometry &g, const Body &body) {
  if (g.s != 2) return false;
  if (g.k == 3) return body(std::integral_constant<int, 3>()), true;
  if (g.k == 5) return body(std::integral_constant<int, 5>()), true;
  return false;
}

int64_t ScratchSize(const Geometry &g) {
  return std::max({PlaneBufferSize(g), (g.h + g.k + 1) * (g.w + g.k - 1) + g.k + kSlack, PhaseBufferSize(g)});
}

void BackwardInputPlane(const Geometry &g, const float *dy, const float *wk, float *padded, float *dx,
                        float *pitched) {
  if (g.s == 1 && g.k <= 8) return BackwardInputPlaneGather(g, dy, wk, padded, dx, pitched);
  const bool phased = WithStride2Kernel(g, [&](auto k) {
    BackwardInputPlaneS2Phased<k()>(g, dy, wk, dx, padded, pitched);
  });
  if (phased) return;
  if (g.s == 1) {
    BackwardInputPlaneStride<1>(g, dy, wk, padded);
  } else {
    BackwardInputPlaneStride<2>(g, dy, wk, padded);
  }
  std::fill(dx, dx + g.h * g.w, 0.0f);
  const int64_t cols = std::min(g.w, g.pw - g.pl);
  for (int64_t y = 0; y < g.h && y + g.pt < g.ph; ++y) {
    std::memcpy(dx + y * g.w, padded + (y + g.pt) * g.pw + g.pl, cols * sizeof(float));
  }
}

// dw[ky, kx] += sum_{oy, ox} dy[oy, ox] * padded[oy * S + ky, ox * S + kx]. Each output-gradient element is read once
// per pass for all the pass's taps: their partial sums stay in kLanes-wide accumulators (one vector register each)
// across a whole plane, and are added up at the end with the scalar remainder's sums. A pass takes as many kernel rows
// as there are registers for (simd.h): all K * K taps with AVX-512 (9 or 25 of 32 registers); with AVX2 (16) all 9
// taps of a 3 x 3 kernel, and a 5 x 5 one in passes of 2, 2 and 1 rows (10 accumulators each) instead of 25 spilled.
template <int K>
constexpr int RowsPerPass() {
  return std::max(1, std::min(K, mindcv_kernels::kAccumulatorRegisters / K));
}

// One pass: taps of kernel rows [R0, R1) over dy's rows r < rows, columns j < cols (dy at pitch dy_pitch), then the
// next pass. The flattened form calls it with one row of the whole flattened length. The tap loops are unrolled and
// the pass is not inlined so that the accumulators are registers: g++ 12 left the 5 x 5 kernel's loop over rows
// rolled (every tap a load, multiply-add and store, with AVX-512 too), and inside the large caller it kept two of an
// AVX2 pass's ten accumulators on the stack (objdump).
template <int K, int S, int R0, int R1>
[[gnu::noinline]] void WeightTapsPass(const float *dy, int64_t rows, int64_t cols, int64_t dy_pitch, const float *padded, int64_t pw,
                    float *dw) {
  constexpr int kTaps = (R1 - R0) * K;
  float acc[kTaps][kLanes] = {};
  float tail[kTaps] = {};
  const int64_t body = cols - cols % kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    const float *drow = dy + r * dy_pitch;
    for (int64_t j = 0; j < body; j += kLanes) {
#pragma GCC unroll 8
      for (int ky = R0; ky < R1; ++ky) {
        const float *row = padded + (r * S + ky) * pw + j * S;
#pragma GCC unroll 8
        for (int kx = 0; kx < K; ++kx) {
#pragma omp simd
          for (int v = 0; v < kLanes; ++v) acc[(ky - R0) * K + kx][v] += drow[j + v] * row[v * S + kx];
        }
      }
    }
    for (int64_t j = body; j < cols; ++j) {
      for (int ky = R0; ky < R1; ++ky) {
        const float *row = padded + (r * S + ky) * pw + j * S;
        for (int kx = 0; kx < K; ++kx) tail[(ky - R0) * K + kx] += drow[j] * row[kx];
      }
    }
  }
  for (int t = 0; t < kTaps; ++t) {
    float sum = tail[t];
    for (int v = 0; v < kLanes; ++v) sum += acc[t][v];
    dw[R0 * K + t] += sum;
  }
  if constexpr (R1 < K) {
    WeightTapsPass<K, S, R1, std::min(K, R1 + RowsPerPass<K>())>(dy, rows, cols, dy_pitch, padded, pw, dw);
  }
}

template <int K, int S>
void BackwardWeightPlaneFixed(const Geometry &g, const float *dy, const float *padded, float *dw) {
  WeightTapsPass<K, S, 0, RowsPerPass<K>()>(dy, g.oh, g.ow, g.ow, padded, g.pw, dw);
}

// The flattened form (see ForwardPlaneFlat): dy copied into rows of the padded pitch with zeros past ow, so the
// dropped columns contribute nothing.
template <int K, int S>
void BackwardWeightPlaneFlat(const Geometry &g, const float *dy, const float *padded, float *dw, float *pitched) {
  const int64_t pw = g.pw;
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    std::memcpy(pitched + oy * pw, dy + oy * g.ow, g.ow * sizeof(float));
    std::fill(pitched + oy * pw + g.ow, pitched + (oy + 1) * pw, 0.0f);
  }
  WeightTapsPass<K, S, 0, RowsPerPass<K>()>(pitched, 1, g.oh * pw, 0, padded, pw, dw);
}

template <int S>
void BackwardWeightPlaneGeneric(const Geometry &g, const float *dy, const float *padded, float *dw) {
  const int64_t k = g.k;
  for (int64_t ky = 0; ky < k; ++ky) {
    for (int64_t kx = 0; kx < k; ++kx) {
      float acc = 0.0f;
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const float *drow = dy + oy * g.ow;
        const float *row = padded + (oy * S + ky) * g.pw + kx;
#pragma omp simd reduction(+ : acc)
        for (int64_t ox = 0; ox < g.ow; ++ox) acc += drow[ox] * row[ox * S];
      }
      dw[ky * k + kx] += acc;
    }
  }
}

void BackwardWeightPlane(const Geometry &g, const float *dy, const float *padded, float *dw, float *pitched) {
  const bool flat = UseFlat(g);
  const bool fixed = WithFixedSizes(g, [&](auto k, auto s) {
    if (flat) {
      BackwardWeightPlaneFlat<k(), s()>(g, dy, padded, dw, pitched);
    } else {
      BackwardWeightPlaneFixed<k(), s()>(g, dy, padded, dw);
    }
  });
  if (fixed) return;
  if (g.s == 1) {
    BackwardWeightPlaneGeneric<1>(g, dy, padded, dw);
  } else {
    BackwardWeightPlaneGeneric<2>(g, dy, padded, dw);
  }
}

// Small planes with the channels in the vector lanes. A 7 x 7 or 4 x 4 output plane gives a plane-at-a-time loop
// one or two vectors, much of them padding columns computed and dropped, and the weight gradient a horizontal sum per
// tap; there a block of kLanes channels of one image is copied into a padded [row][column][channel] buffer instead
// (channels_last, PyTorch's oneDNN layout), so that every multiply-add is a full vector of channels and nothing is
// computed twice or dropped. The copies in and out of the planar layout are the price. Measured per layer of V2, V3
// and V4 at 112 and 224 px with both vector widths (BENCHMARKS.md), the blocks win for output planes of up to 64
// pixels, for the stride-2 5 x 5 layers up to 28 x 28 outputs, and for the weight gradient of every stride-2 layer
// up to 28 x 28 outputs (a stride-2 plane's rows are gathered every other float); elsewhere the plane loops win.
constexpr int64_t kBlockedPlane = 64;
constexpr int64_t kBlockedStride2Plane = 28 * 28;

bool UseBlocked(const Geometry &g, bool weight_gradient) {
  if (g.k != 3 && g.k != 5) return false;
  const int64_t outputs = g.oh * g.ow;
  if (outputs <= kBlockedPlane) return true;
  return g.s == 2 && outputs <= kBlockedStride2Plane && (weight_gradient || g.k == 5);
}

// dst[j * dst_stride + i] = src[i * src_stride + j] for an 8 x 8 tile: eight vector loads, 24 shuffles, eight vector
// stores with AVX (the compiler's scalar loop for the same copy was most of a small-plane layer's time).
inline void Transpose8x8(const float *src, int64_t src_stride, float *dst, int64_t dst_stride) {
#if defined(__AVX__)
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * src_stride);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * dst_stride, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
#else
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
  }
#endif
}

// dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols: 8 x 8 tiles, the edges scalar.
void Transpose(const float *src, int64_t src_stride, int64_t rows, int64_t cols, float *dst, int64_t dst_stride) {
  const int64_t rows8 = rows - rows % 8, cols8 = cols - cols % 8;
  for (int64_t i = 0; i < rows8; i += 8) {
    for (int64_t j = 0; j < cols8; j += 8) {
      Transpose8x8(src + i * src_stride + j, src_stride, dst + j * dst_stride + i, dst_stride);
    }
    for (int64_t ii = i; ii < i + 8; ++ii) {
      for (int64_t j = cols8; j < cols; ++j) dst[j * dst_stride + ii] = src[ii * src_stride + j];
    }
  }
  for (int64_t i = rows8; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = src[i * src_stride + j];
  }
}

// count (<= kLanes) planes of `size` floats into / out of a [size][kLanes] buffer (lanes past count zero).
void PlanesToBlock(const float *planes, int64_t size, int64_t count, float *blocked) {
  if (count < kLanes) std::fill(blocked, blocked + size * kLanes, 0.0f);
  Transpose(planes, size, count, size, blocked, kLanes);
}

void BlockToPlanes(const float *blocked, int64_t size, int64_t count, float *planes) {
  Transpose(blocked, kLanes, size, count, planes, size);
}

// One image's planes of channels [c0, c0 + count) into a zero-padded [ph][pw][kLanes] buffer (via `block`,
// [h * w][kLanes]).
void LoadBlock(const Geometry &g, const float *planes, int64_t count, float *block, float *padded) {
  PlanesToBlock(planes, g.h * g.w, count, block);
  std::fill(padded, padded + g.ph * g.pw * kLanes, 0.0f);
  const int64_t rows = std::min(g.h, g.ph - g.pt), cols = std::min(g.w, g.pw - g.pl);
  for (int64_t y = 0; y < rows; ++y) {
    std::memcpy(padded + ((y + g.pt) * g.pw + g.pl) * kLanes, block + y * g.w * kLanes, cols * kLanes * sizeof(float));
  }
}

// out[oy, ox][:] = sum_{ky, kx} w[ky, kx][:] * padded[oy * S + ky, ox * S + kx][:]
template <int K, int S>
void ForwardBlock(const Geometry &g, const float *padded, const float *wk, float *out) {
  const int64_t pw = g.pw;
  for (int64_t oy = 0; oy < g.oh; ++oy) {
    for (int64_t ox = 0; ox < g.ow; ++ox) {
      float acc[kLanes] = {};
#pragma GCC unroll 8
      for (int ky = 0; ky < K; ++ky) {
        const float *row = padded + ((oy * S + ky) * pw + ox * S) * kLanes;
#pragma GCC unroll 8
        for (int kx = 0; kx < K; ++kx) {
#pragma omp simd
          for (int l = 0; l < kLanes; ++l) acc[l] += wk[(ky * K + kx) * kLanes + l] * row[kx * kLanes + l];
        }
      }
      float *dst = out + (oy * g.ow + ox) * kLanes;
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) dst[l] = acc[l];
    }
  }
}

// The transpose of ForwardBlock as a gather, each input pixel's sum in registers (a scatter's read-modify-writes of
// overlapping taps ran 4x slower than the forward): dx[y, x][:] = sum of w[ky, kx][:] * dy[oy, ox][:] over the taps
// with oy * S + ky = y + pt and ox * S + kx = x + pl. dy comes padded by K - 1 zero rows and columns on every side
// ([oh + 2K - 2][ow + 2K - 2][kLanes]) so that no tap needs a bounds check.
// The input pixels whose padded coordinates have the parities (RY, RX) for S = 2 (all for S = 1): only taps of those
// parities reach them, so the tap loops are compile-time and the sums stay in registers.
template <int K, int S, int RY, int RX>
void BackwardInputPhase(const Geometry &g, const float *dy_padded, const float *wk, float *dx) {
  constexpr int kMargin = K - 1;
  const int64_t pitch = g.ow + 2 * kMargin;
  const int64_t y0 = ((RY - g.pt) % S + S) % S, x0 = ((RX - g.pl) % S + S) % S;
  for (int64_t y = y0; y < g.h; y += S) {
    const int64_t py = y + g.pt;
    for (int64_t x = x0; x < g.w; x += S) {
      const int64_t px = x + g.pl;
      float acc[kLanes] = {};
#pragma GCC unroll 8
      for (int ky = RY; ky < K; ky += S) {
        const float *row = dy_padded + ((py - ky) / S + kMargin) * pitch * kLanes;
#pragma GCC unroll 8
        for (int kx = RX; kx < K; kx += S) {
          const float *d = row + ((px - kx) / S + kMargin) * kLanes;
#pragma omp simd
          for (int l = 0; l < kLanes; ++l) acc[l] += wk[(ky * K + kx) * kLanes + l] * d[l];
        }
      }
      float *dst = dx + (y * g.w + x) * kLanes;
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) dst[l] = acc[l];
    }
  }
}

template <int K, int S>
void BackwardInputBlock(const Geometry &g, const float *dy_padded, const float *wk, float *dx) {
  if constexpr (S == 1) {
    BackwardInputPhase<K, 1, 0, 0>(g, dy_padded, wk, dx);
  } else {
    BackwardInputPhase<K, S, 0, 0>(g, dy_padded, wk, dx);
    BackwardInputPhase<K, S, 0, 1>(g, dy_padded, wk, dx);
    BackwardInputPhase<K, S, 1, 0>(g, dy_padded, wk, dx);
    BackwardInputPhase<K, S, 1, 1>(g, dy_padded, wk, dx);
  }
}

// dw[ky, kx][:] += sum_{oy, ox} dy[oy, ox][:] * padded[oy * S + ky, ox * S + kx][:]: one tap at a time, its sum in
// one register.
template <int K, int S>
void BackwardWeightBlock(const Geometry &g, const float *dy, const float *padded, float *dw) {
  const int64_t pw = g.pw;
  for (int ky = 0; ky < K; ++ky) {
    for (int kx = 0; kx < K; ++kx) {
      float acc[kLanes] = {};
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        const float *row = padded + ((oy * S + ky) * pw + kx) * kLanes;
        const float *drow = dy + oy * g.ow * kLanes;
        for (int64_t ox = 0; ox < g.ow; ++ox) {
#pragma omp simd
          for (int l = 0; l < kLanes; ++l) acc[l] += drow[ox * kLanes + l] * row[ox * S * kLanes + l];
        }
      }
      float *dst = dw + (ky * K + kx) * kLanes;
#pragma omp simd
      for (int l = 0; l < kLanes; ++l) dst[l] += acc[l];
    }
  }
}

int64_t Blocks(const Geometry &g) { return (g.c + kLanes - 1) / kLanes; }

// The three passes over blocks of kLanes channels; the caller has checked UseBlocked (K and S compile-time).
template <int K, int S>
void ForwardBlocked(const Geometry &g, const float *x, const float *w, float *y) {
  const int64_t blocks = Blocks(g);
  ParallelFor(g.n * blocks, [&](int64_t begin, int64_t end) {
    std::vector<float> block(g.h * g.w * kLanes), padded(g.ph * g.pw * kLanes), wk(K * K * kLanes),
        out(g.oh * g.ow * kLanes);
    int64_t loaded = -1;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / blocks, c0 = (p % blocks) * kLanes, count = std::min<int64_t>(kLanes, g.c - c0);
      if (c0 != loaded) PlanesToBlock(w + c0 * K * K, K * K, count, wk.data());
      loaded = c0;
      LoadBlock(g, x + (b * g.c + c0) * g.h * g.w, count, block.data(), padded.data());
      ForwardBlock<K, S>(g, padded.data(), wk.data(), out.data());
      BlockToPlanes(out.data(), g.oh * g.ow, count, y + (b * g.c + c0) * g.oh * g.ow);
    }
  });
}

template <int K, int S>
void BackwardInputBlocked(const Geometry &g, const float *dy, const float *w, float *dx) {
  constexpr int kMargin = K - 1;
  const int64_t blocks = Blocks(g), pitch = g.ow + 2 * kMargin;
  ParallelFor(g.n * blocks, [&](int64_t begin, int64_t end) {
    std::vector<float> d(g.oh * g.ow * kLanes), dy_padded((g.oh + 2 * kMargin) * pitch * kLanes, 0.0f),
        wk(K * K * kLanes), block(g.h * g.w * kLanes);
    int64_t loaded = -1;
    for (int64_t p = begin; p < end; ++p) {
      const int64_t b = p / blocks, c0 = (p % blocks) * kLanes, count = std::min<int64_t>(kLanes, g.c - c0);
      if (c0 != loaded) PlanesToBlock(w + c0 * K * K, K * K, count, wk.data());
      loaded = c0;
      PlanesToBlock(dy + (b * g.c + c0) * g.oh * g.ow, g.oh * g.ow, count, d.data());
      for (int64_t oy = 0; oy < g.oh; ++oy) {  // the margins stay zero
        std::memcpy(dy_padded.data() + ((oy + kMargin) * pitch + kMargin) * kLanes, d.data() + oy * g.ow * kLanes,
                    g.ow * kLanes * sizeof(float));
      }
      BackwardInputBlock<K, S>(g, dy_padded.data(), wk.data(), block.data());
      BlockToPlanes(block.data(), g.h * g.w, count, dx + (b * g.c + c0) * g.h * g.w);
    }
  });
}

template <int K, int S>
void BackwardWeightBlocked(const Geometry &g, const float *dy, const float *x, float *dw) {
  ParallelFor(Blocks(g), [&](int64_t begin, int64_t end) {  // by channel block: each thread owns its weights
    std::vector<float> block(g.h * g.w * kLanes), padded(g.ph * g.pw * kLanes), d(g.oh * g.ow * kLanes),
        acc(K * K * kLanes);
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t c0 = blk * kLanes, count = std::min<int64_t>(kLanes, g.c - c0);
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t b = 0; b < g.n; ++b) {
        LoadBlock(g, x + (b * g.c + c0) * g.h * g.w, count, block.data(), padded.data());
        PlanesToBlock(dy + (b * g.c + c0) * g.oh * g.ow, g.oh * g.ow, count, d.data());
        BackwardWeightBlock<K, S>(g, d.data(), padded.data(), acc.data());
      }
      BlockToPlanes(acc.data(), K * K, count, dw + c0 * K * K);
    }
  });
}

bool IsFloat4d(int nparam, int expected, const int *ndims, const char **dtypes) {
  if (nparam != expected) return false;
  for (int i = 0; i < nparam; ++i) {
    if (ndims[i] != 4 || std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

int Forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s, bool same) {
  if (!IsFloat4d(nparam, 3, ndims, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const Geometry g = MakeGeometry(shapes[0], shapes[2], shapes[1][2], s, same);
  if (UseBlocked(g, false)) {
    WithFixedSizes(g, [&](auto k, auto s) { ForwardBlocked<k(), s()>(g, x, w, y); });
    return 0;
  }
  ParallelFor(g.n * g.c, [&](int64_t begin, int64_t end) {
    std::vector<float> padded(PlaneBufferSize(g)), pitched(PlaneBufferSize(g));
    for (int64_t p = begin; p < end; ++p) {
      PadPlane(g, x + p * g.h * g.w, padded.data());
      ForwardPlane(g, padded.data(), w + (p % g.c) * g.k * g.k, y + p * g.oh * g.ow, pitched.data());
    }
  });
  return 0;
}

int BackwardInput(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s,
                  bool same) {
  if (!IsFloat4d(nparam, 4, ndims, dtypes)) return 1;
  const float *dy = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[3]);
  const Geometry g = MakeGeometry(shapes[2], shapes[0], shapes[1][2], s, same);
  if (UseBlocked(g, false)) {
    WithFixedSizes(g, [&](auto k, auto s) { BackwardInputBlocked<k(), s()>(g, dy, w, dx); });
    return 0;
  }
  ParallelFor(g.n * g.c, [&](int64_t begin, int64_t end) {
    std::vector<float> padded(ScratchSize(g)), pitched(ScratchSize(g));
    for (int64_t p = begin; p < end; ++p) {
      BackwardInputPlane(g, dy + p * g.oh * g.ow, w + (p % g.c) * g.k * g.k, padded.data(), dx + p * g.h * g.w,
                         pitched.data());
    }
  });
  return 0;
}

int BackwardWeight(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t s,
                   bool same) {
  if (!IsFloat4d(nparam, 4, ndims, dtypes)) return 1;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dw = static_cast<float *>(params[3]);
  const Geometry g = MakeGeometry(shapes[1], shapes[0], shapes[2][2], s, same);
  if (UseBlocked(g, true)) {
    WithFixedSizes(g, [&](auto k, auto s) { BackwardWeightBlocked<k(), s()>(g, dy, x, dw); });
    return 0;
  }
  ParallelFor(g.c, [&](int64_t begin, int64_t end) {  // by channel: each thread owns its weights, no reduction
    std::vector<float> padded(PlaneBufferSize(g)), pitched(PlaneBufferSize(g));
    for (int64_t ch = begin; ch < end; ++ch) {
      float *dwc = dw + ch * g.k * g.k;
      std::fill(dwc, dwc + g.k * g.k, 0.0f);
      for (int64_t b = 0; b < g.n; ++b) {
        const int64_t p = b * g.c + ch;
        PadPlane(g, x + p * g.h * g.w, padded.data());
        BackwardWeightPlane(g, dy + p * g.oh * g.ow, padded.data(), dwc, pitched.data());
      }
    }
  });
  return 0;
}

}  // namespace

#define DW_ENTRY(NAME, IMPL, S, SAME)                                                                          \
  extern "C" int NAME(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, \
                      void *extra) {                                                                         \
    return IMPL(nparam, params, ndims, shapes, dtypes, S, SAME);                                             \
  }

DW_ENTRY(DwForwardS1Pad, Forward, 1, false)
DW_ENTRY(DwForwardS2Pad, Forward, 2, false)
DW_ENTRY(DwForwardS1Same, Forward, 1, true)
DW_ENTRY(DwForwardS2Same, Forward, 2, true)
DW_ENTRY(DwBackwardInputS1Pad, BackwardInput, 1, false)
DW_ENTRY(DwBackwardInputS2Pad, BackwardInput, 2, false)
DW_ENTRY(DwBackwardInputS1Same, BackwardInput, 1, true)
DW_ENTRY(DwBackwardInputS2Same, BackwardInput, 2, true)
DW_ENTRY(DwBackwardWeightS1Pad, BackwardWeight, 1, false)
DW_ENTRY(DwBackwardWeightS2Pad, BackwardWeight, 2, false)
DW_ENTRY(DwBackwardWeightS1Same, BackwardWeight, 1, true)
DW_ENTRY(DwBackwardWeightS2Same, BackwardWeight, 2, true)
