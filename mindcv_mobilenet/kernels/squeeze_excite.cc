// Global average pooling and the squeeze-excite gate for MindSpore's CPU backend (AOT custom operators): forward and
// gradient, NCHW float32.
//
// Why: MobileNetV3's squeeze-excite pools and rescales ten to eleven activations per image; on this project's 2-core
// machine MindSpore 2.10's AdaptiveAvgPool2D and its gradient, the broadcasting Mul and the ReduceSum of its gradient
// took a sixth of a V3-Small training step (BENCHMARKS.md), several times a memory-bound pass. Here each is one pass
// over the planes:
//   ChannelMeanForward(x) -> p:              p[n, c] = mean over the plane x[n, c]            (p is N x C x 1 x 1)
//   ChannelMeanBackward(dp, x) -> dx:        dx[n, c, :] = dp[n, c] / (H W)                   (x only gives the shape)
//   GateForward(x, s) -> y:                  y = x * hsig(s[n, c]),  hsig(s) = min(max(s + 3, 0), 6) / 6
//   GateBackward(dy, x, s) -> dx, ds:        dx = dy * hsig(s),  ds = hsig'(s) * sum over the plane of dy * x,
//                                            hsig'(s) = 1/6 inside (-3, 3), else 0 (activations.h)
// Threads: the planes split over the kernel threads (parallel.h).

#include <algorithm>
#include <cstdint>

#include "activations.h"
#include "aot.h"
#include "parallel.h"

namespace {

using mindcv_kernels::AllFloat;
using mindcv_kernels::HSigmoid;

struct Planes {
  int64_t count, size;  // N * C planes of H * W values
  explicit Planes(const int64_t *shape) : count(shape[0] * shape[1]), size(shape[2] * shape[3]) {}
};

}  // namespace

extern "C" int ChannelMeanForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *stream, void *extra) {
  if (nparam != 2 || ndims[0] != 4 || !AllFloat(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  float *p = static_cast<float *>(params[1]);
  const Planes planes(shapes[0]);
  const float inverse = 1.0f / static_cast<float>(planes.size);
  mindcv_kernels::ParallelFor(planes.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float *plane = x + i * planes.size;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < planes.size; ++j) sum += plane[j];
      p[i] = sum * inverse;
    }
  });
  return 0;
}

extern "C" int ChannelMeanBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                   void *stream, void *extra) {
  if (nparam != 3 || ndims[1] != 4 || !AllFloat(nparam, dtypes)) return 1;
  const float *dp = static_cast<const float *>(params[0]);
  float *dx = static_cast<float *>(params[2]);
  const Planes planes(shapes[1]);
  const float inverse = 1.0f / static_cast<float>(planes.size);
  mindcv_kernels::ParallelFor(planes.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) std::fill(dx + i * planes.size, dx + (i + 1) * planes.size, dp[i] * inverse);
  });
  return 0;
}

extern "C" int GateForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream,
                           void *extra) {
  if (nparam != 3 || ndims[0] != 4 || !AllFloat(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *s = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const Planes planes(shapes[0]);
  mindcv_kernels::ParallelFor(planes.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gate = HSigmoid::F(s[i]);
      const float *in = x + i * planes.size;
      float *out = y + i * planes.size;
#pragma omp simd
      for (int64_t j = 0; j < planes.size; ++j) out[j] = in[j] * gate;
    }
  });
  return 0;
}

extern "C" int GateBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                            void *stream, void *extra) {
  if (nparam != 5 || ndims[0] != 4 || !AllFloat(nparam, dtypes)) return 1;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *s = static_cast<const float *>(params[2]);
  float *dx = static_cast<float *>(params[3]);
  float *ds = static_cast<float *>(params[4]);
  const Planes planes(shapes[0]);
  mindcv_kernels::ParallelFor(planes.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gate = HSigmoid::F(s[i]);
      const float *g = dy + i * planes.size;
      const float *in = x + i * planes.size;
      float *out = dx + i * planes.size;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < planes.size; ++j) {
        dot += g[j] * in[j];
        out[j] = g[j] * gate;
      }
      ds[i] = dot * HSigmoid::D(s[i]);
    }
  });
  return 0;
}
