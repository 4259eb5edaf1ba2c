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
//   ChannelScaleForward(x, s) -> y:          y = x * s[c]           (s is C: a learned per-channel scale, LayerScale)
//   ChannelScaleBackward(dy, x, s) -> dx, ds: dx = dy * s[c],  ds[c] = sum over images and plane of dy * x
// Threads: the planes (channels for ChannelScaleBackward) split over the kernel threads (parallel.h).

#include <algorithm>
#include <cstdint>

#include "activations.h"
#include "aot.h"
#include "parallel.h"

namespace {

using mindcv_kernels::AllFloat;
using mindcv_kernels::HSigmoid;
using mindcv_kernels::Linear;

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

namespace {

// y = x * gate(s): Gate HSigmoid for squeeze-excite (s[n, c], one value per plane), Linear for a learned per-channel
// scale (s[c], the same for every image: LayerScale's gamma); `values` is how many values s has.
template <class Gate>
int ScaleForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, int64_t values) {
  if (nparam != 3 || ndims[0] != 4 || !AllFloat(nparam, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *s = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[2]);
  const Planes planes(shapes[0]);
  mindcv_kernels::ParallelFor(planes.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gate = Gate::F(s[i % values]);
      const float *in = x + i * planes.size;
      float *out = y + i * planes.size;
#pragma omp simd
      for (int64_t j = 0; j < planes.size; ++j) out[j] = in[j] * gate;
    }
  });
  return 0;
}

// The gradients' shared arguments (dy, x, s) -> (dx, ds) and their one pass over a plane: out = g * gate, returning
// sum(g * in).
struct ScaleGradArgs {
  const float *dy, *x, *s;
  float *dx, *ds;
  explicit ScaleGradArgs(void **params)
      : dy(static_cast<const float *>(params[0])), x(static_cast<const float *>(params[1])),
        s(static_cast<const float *>(params[2])), dx(static_cast<float *>(params[3])),
        ds(static_cast<float *>(params[4])) {}
};

float ScalePlaneAndDot(const float *g, const float *in, float *out, int64_t size, float gate) {
  float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < size; ++j) {
    dot += g[j] * in[j];
    out[j] = g[j] * gate;
  }
  return dot;
}

}  // namespace

extern "C" int GateForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *stream,
                           void *extra) {
  return ScaleForward<HSigmoid>(nparam, params, ndims, shapes, dtypes, shapes[0][0] * shapes[0][1]);
}

extern "C" int GateBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                            void *stream, void *extra) {
  if (nparam != 5 || ndims[0] != 4 || !AllFloat(nparam, dtypes)) return 1;
  const ScaleGradArgs a(params);
  const Planes planes(shapes[0]);
  mindcv_kernels::ParallelFor(planes.count, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t offset = i * planes.size;
      const float dot = ScalePlaneAndDot(a.dy + offset, a.x + offset, a.dx + offset, planes.size, HSigmoid::F(a.s[i]));
      a.ds[i] = dot * HSigmoid::D(a.s[i]);
    }
  });
  return 0;
}

extern "C" int ChannelScaleForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                   void *stream, void *extra) {
  return ScaleForward<Linear>(nparam, params, ndims, shapes, dtypes, shapes[0][1]);
}

// By channel (each thread owns its channels' sums): dx = dy * s[c], ds[c] = sum over images and plane of dy * x.
extern "C" int ChannelScaleBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                    void *stream, void *extra) {
  if (nparam != 5 || ndims[0] != 4 || !AllFloat(nparam, dtypes)) return 1;
  const ScaleGradArgs a(params);
  const int64_t n = shapes[0][0], c = shapes[0][1], size = shapes[0][2] * shapes[0][3];
  mindcv_kernels::ParallelFor(c, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      double sum = 0.0;
      for (int64_t b = 0; b < n; ++b) {
        const int64_t offset = (b * c + ch) * size;
        sum += ScalePlaneAndDot(a.dy + offset, a.x + offset, a.dx + offset, size, a.s[ch]);
      }
      a.ds[ch] = static_cast<float>(sum);
    }
  });
  return 0;
}
