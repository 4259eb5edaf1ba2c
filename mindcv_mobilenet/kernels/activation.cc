// Hard-swish, and bias + activation after a folded convolution, for MindSpore's CPU backend (AOT custom operators),
// float32.
//
// Why: MindSpore 2.10's CPU HSwish and HSwishGrad run at 3-10x the time of a memory-bound pass (27 vs 2.7 ms for
// 32 x 16 x 112 x 112 values on this project's 2-core machine; BENCHMARKS.md), and MobileNetV3 applies it after
// most of its convolutions. Same formulas as MindSpore's (nnacl):
//   HSwishForward(x) -> y:         y = x * min(max(x + 3, 0), 6) / 6                               (any shape)
//   HSwishBackward(dy, x) -> dx:   dx = dy * (x < -3 ? 0 : x > 3 ? 1 : (2x + 3) / 6)
// A BatchNorm-folded network (inference) adds a bias after every convolution and then applies the activation: two
// passes over every activation in MindSpore (BiasAdd, then the activation), one here:
//   BiasActivation{Linear,Relu,Relu6,HSwish}(x, b) -> y:   y[n, c, ...] = act(x[n, c, ...] + b[c])  (N, C, ... input)
// Threads: blocks of 32 K values (planes for the bias) split over the kernel threads (parallel.h).

#include <algorithm>
#include <cstdint>

#include "activations.h"
#include "aot.h"
#include "parallel.h"

namespace {

constexpr int64_t kBlock = 1 << 15;

using mindcv_kernels::AllFloat;
using mindcv_kernels::Numel;

// Runs body(begin, end) over [0, n) in blocks, the blocks split over the threads.
template <class Body>
void InBlocks(int64_t n, const Body &body) {
  mindcv_kernels::ParallelFor((n + kBlock - 1) / kBlock, [&](int64_t first, int64_t last) {
    body(first * kBlock, std::min(n, last * kBlock));
  });
}

}  // namespace

extern "C" int HSwishForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                             void *stream, void *extra) {
  if (nparam != 2 || !AllFloat(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  float *y = static_cast<float *>(params[1]);
  InBlocks(Numel(ndims[0], shapes[0]), [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) y[i] = mindcv_kernels::HSwish::F(x[i]);
  });
  return 0;
}

extern "C" int HSwishBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *stream, void *extra) {
  if (nparam != 3 || !AllFloat(nparam, dtypes)) return 1;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  float *dx = static_cast<float *>(params[2]);
  InBlocks(Numel(ndims[0], shapes[0]), [&](int64_t begin, int64_t end) {
#pragma omp simd
    for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * mindcv_kernels::HSwish::D(x[i]);
  });
  return 0;
}

namespace {

template <class Act>
int BiasActivation(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 3 || ndims[0] < 2 || ndims[1] != 1 || !AllFloat(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *b = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const int64_t channels = shapes[0][1];
  const int64_t planes = shapes[0][0] * channels;
  const int64_t size = Numel(ndims[0], shapes[0]) / std::max<int64_t>(planes, 1);
  mindcv_kernels::ParallelFor(planes, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float bias = b[p % channels];
      const float *in = x + p * size;
      float *out = y + p * size;
#pragma omp simd
      for (int64_t i = 0; i < size; ++i) out[i] = Act::F(in[i] + bias);
    }
  });
  return 0;
}

}  // namespace

#define BIAS_ACTIVATION_ENTRY(NAME, ACT)                                                                     \
  extern "C" int NAME(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream, \
                      void *extra) {                                                                       \
    return BiasActivation<mindcv_kernels::ACT>(nparam, params, ndims, shapes, dtypes);                                     \
  }

BIAS_ACTIVATION_ENTRY(BiasActivationLinear, Linear)
BIAS_ACTIVATION_ENTRY(BiasActivationRelu, Relu)
BIAS_ACTIVATION_ENTRY(BiasActivationRelu6, Relu6)
BIAS_ACTIVATION_ENTRY(BiasActivationHSwish, HSwish)
