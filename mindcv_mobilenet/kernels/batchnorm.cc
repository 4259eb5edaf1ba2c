// BatchNorm with batch statistics (training) for MindSpore's CPU backend (AOT custom operator): forward and
// gradient, NCHW float32.
//
// Why: MindSpore 2.10's CPU BatchNorm and BatchNormGrad (oneDNN) take a quarter of a MobileNetV3 training step on
// this project's 2-core machine, several passes over every activation; here the forward reads x twice (statistics,
// then y = a x + b) and the gradient reads dy and x twice (two sums, then dx).
//   BnTrainForward(x, gamma, beta, eps) -> y, mean, var      var: biased (the one that normalises); the caller
//                                                           updates the moving statistics (unbiased variance)
//   BnTrainBackward(dy, x, gamma, mean, var, eps) -> dx, dgamma, dbeta
// Sums are accumulated in double. Threads: channels split over the kernel threads (parallel.h).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "parallel.h"

namespace {

bool Float4d(int first, int count, int *ndims, const char **dtypes) {
  for (int i = first; i < first + count; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return ndims[first] == 4;
}

struct Shape {
  int64_t n, c, hw;
  explicit Shape(const int64_t *s) : n(s[0]), c(s[1]), hw(s[2] * s[3]) {}
  const float *Plane(const float *base, int64_t b, int64_t ch) const { return base + (b * c + ch) * hw; }
  float *Plane(float *base, int64_t b, int64_t ch) const { return base + (b * c + ch) * hw; }
};

}  // namespace

extern "C" int BnTrainForward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *stream, void *extra) {
  if (nparam != 7 || !Float4d(0, 7, ndims, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *gamma = static_cast<const float *>(params[1]);
  const float *beta = static_cast<const float *>(params[2]);
  const float eps = *static_cast<const float *>(params[3]);
  float *y = static_cast<float *>(params[4]);
  float *mean_out = static_cast<float *>(params[5]);
  float *var_out = static_cast<float *>(params[6]);
  const Shape s(shapes[0]);
  const double count = static_cast<double>(s.n * s.hw);
  mindcv_kernels::ParallelFor(s.c, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      double sum = 0.0, squares = 0.0;
      for (int64_t b = 0; b < s.n; ++b) {
        const float *plane = s.Plane(x, b, ch);
#pragma omp simd reduction(+ : sum, squares)
        for (int64_t i = 0; i < s.hw; ++i) {
          const double v = plane[i];
          sum += v;
          squares += v * v;
        }
      }
      const double mean = sum / count;
      const double var = std::max(squares / count - mean * mean, 0.0);
      const float scale = static_cast<float>(gamma[ch] / std::sqrt(var + eps));
      const float shift = static_cast<float>(beta[ch] - mean * scale);
      for (int64_t b = 0; b < s.n; ++b) {
        const float *in = s.Plane(x, b, ch);
        float *out = s.Plane(y, b, ch);
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) out[i] = in[i] * scale + shift;
      }
      mean_out[ch] = static_cast<float>(mean);
      var_out[ch] = static_cast<float>(var);
    }
  });
  return 0;
}

extern "C" int BnTrainBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                               void *stream, void *extra) {
  if (nparam != 9 || !Float4d(0, 9, ndims, dtypes)) return 1;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *gamma = static_cast<const float *>(params[2]);
  const float *mean_in = static_cast<const float *>(params[3]);
  const float *var_in = static_cast<const float *>(params[4]);
  const float eps = *static_cast<const float *>(params[5]);
  float *dx = static_cast<float *>(params[6]);
  float *dgamma = static_cast<float *>(params[7]);
  float *dbeta = static_cast<float *>(params[8]);
  const Shape s(shapes[0]);
  const double count = static_cast<double>(s.n * s.hw);
  mindcv_kernels::ParallelFor(s.c, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      const float mean = mean_in[ch];
      const double invstd = 1.0 / std::sqrt(static_cast<double>(var_in[ch]) + eps);
      double sum_dy = 0.0, sum_dy_xc = 0.0;
      for (int64_t b = 0; b < s.n; ++b) {
        const float *g = s.Plane(dy, b, ch), *in = s.Plane(x, b, ch);
#pragma omp simd reduction(+ : sum_dy, sum_dy_xc)
        for (int64_t i = 0; i < s.hw; ++i) {
          sum_dy += g[i];
          sum_dy_xc += static_cast<double>(g[i]) * (in[i] - mean);
        }
      }
      dbeta[ch] = static_cast<float>(sum_dy);
      dgamma[ch] = static_cast<float>(sum_dy_xc * invstd);
      // dx = gamma * invstd * (dy - mean(dy) - (x - mean) * invstd^2 * mean(dy * (x - mean)))
      const float a = static_cast<float>(gamma[ch] * invstd);
      const float c = static_cast<float>(invstd * invstd * sum_dy_xc / count);
      const float d = static_cast<float>(sum_dy / count);
      for (int64_t b = 0; b < s.n; ++b) {
        const float *g = s.Plane(dy, b, ch), *in = s.Plane(x, b, ch);
        float *out = s.Plane(dx, b, ch);
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) out[i] = a * (g[i] - d - (in[i] - mean) * c);
      }
    }
  });
  return 0;
}
