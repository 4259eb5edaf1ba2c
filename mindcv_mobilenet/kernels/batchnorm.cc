// BatchNorm with batch statistics (training) for MindSpore's CPU backend (AOT custom operator): forward and
// gradient, NCHW float32.
//
// Why: MindSpore 2.10's CPU BatchNorm and BatchNormGrad (oneDNN) take a quarter of a MobileNetV3 training step on
// this project's 2-core machine, several passes over every activation; here the forward reads x twice (statistics,
// then y = a x + b) and the gradient reads dy and x twice (two sums, then dx).
// The activation that follows MobileNet's BatchNorms (none, ReLU, ReLU6, hard-swish) is applied in the same pass, and
// its gradient taken in the gradient's passes (z = a x + b recomputed from x): MindSpore's separate ReLU6 and
// ReLU6Grad were a ninth of a MobileNetV2 training step.
//   BnTrainForward{Act}(x, gamma, beta, settings, moving_mean, moving_var) -> y, mean, var
//     y = act(z), z = (x - mean) / sqrt(var + eps) * gamma + beta; var: biased (the one that normalises);
//     settings = [eps, keep, momentum]: the moving statistics are updated in place (the Python side declares them
//     written), moving = moving * keep + batch * momentum with the unbiased variance (MindSpore's update; done here
//     because its five Muls, two Adds and two Assigns per layer cost more in launches than in work)
//   BnTrainBackward{Act}(dy, x, gamma, beta, mean, var, settings) -> dx, dgamma, dbeta
//   Act: Linear, Relu, Relu6, HSwish (activation.cc's formulas and MindSpore's gradients)
// Sums are accumulated in double. Threads: channels split over the kernel threads (parallel.h).

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "activations.h"
#include "aot.h"
#include "parallel.h"

namespace {

using mindcv_kernels::HSwish;
using mindcv_kernels::Linear;
using mindcv_kernels::Relu;
using mindcv_kernels::Relu6;

// float32 tensors, the first one (x or dy) 4-D
bool Float4d(int nparam, int *ndims, const char **dtypes) {
  return ndims[0] == 4 && mindcv_kernels::AllFloat(nparam, dtypes);
}

struct Shape {
  int64_t n, c, hw;
  explicit Shape(const int64_t *s) : n(s[0]), c(s[1]), hw(s[2] * s[3]) {}
  const float *Plane(const float *base, int64_t b, int64_t ch) const { return base + (b * c + ch) * hw; }
  float *Plane(float *base, int64_t b, int64_t ch) const { return base + (b * c + ch) * hw; }
};

// The affine map the forward applies, from the float statistics it returns, so the gradient recomputes the same z.
struct Affine {
  float scale, shift;
  Affine(float gamma, float beta, float mean, float var, float eps)
      : scale(static_cast<float>(gamma / std::sqrt(static_cast<double>(var) + eps))),
        shift(static_cast<float>(beta - static_cast<double>(mean) * scale)) {}
};

template <class Act>
int Forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 9 || !Float4d(9, ndims, dtypes)) return 1;
  const float *x = static_cast<const float *>(params[0]);
  const float *gamma = static_cast<const float *>(params[1]);
  const float *beta = static_cast<const float *>(params[2]);
  const float *settings = static_cast<const float *>(params[3]);
  const float eps = settings[0], keep = settings[1], momentum = settings[2];
  float *moving_mean = static_cast<float *>(params[4]);  // updated in place
  float *moving_var = static_cast<float *>(params[5]);
  float *y = static_cast<float *>(params[6]);
  float *mean_out = static_cast<float *>(params[7]);
  float *var_out = static_cast<float *>(params[8]);
  const Shape s(shapes[0]);
  const double count = static_cast<double>(s.n * s.hw);
  const float unbias = static_cast<float>(count / std::max(count - 1.0, 1.0));
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
      mean_out[ch] = static_cast<float>(mean);
      var_out[ch] = static_cast<float>(std::max(squares / count - mean * mean, 0.0));
      moving_mean[ch] = moving_mean[ch] * keep + mean_out[ch] * momentum;
      moving_var[ch] = moving_var[ch] * keep + var_out[ch] * unbias * momentum;
      const Affine affine(gamma[ch], beta[ch], mean_out[ch], var_out[ch], eps);
      for (int64_t b = 0; b < s.n; ++b) {
        const float *in = s.Plane(x, b, ch);
        float *out = s.Plane(y, b, ch);
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) out[i] = Act::F(in[i] * affine.scale + affine.shift);
      }
    }
  });
  return 0;
}

template <class Act>
int Backward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 10 || !Float4d(10, ndims, dtypes)) return 1;
  const float *dy = static_cast<const float *>(params[0]);
  const float *x = static_cast<const float *>(params[1]);
  const float *gamma = static_cast<const float *>(params[2]);
  const float *beta = static_cast<const float *>(params[3]);
  const float *mean_in = static_cast<const float *>(params[4]);
  const float *var_in = static_cast<const float *>(params[5]);
  const float eps = *static_cast<const float *>(params[6]);  // settings[0]
  float *dx = static_cast<float *>(params[7]);
  float *dgamma = static_cast<float *>(params[8]);
  float *dbeta = static_cast<float *>(params[9]);
  const Shape s(shapes[0]);
  const double count = static_cast<double>(s.n * s.hw);
  mindcv_kernels::ParallelFor(s.c, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      const float mean = mean_in[ch];
      const Affine affine(gamma[ch], beta[ch], mean, var_in[ch], eps);
      const double invstd = 1.0 / std::sqrt(static_cast<double>(var_in[ch]) + eps);
      // dz = dy * act'(z): the gradient reaching the normalisation
      double sum_dz = 0.0, sum_dz_xc = 0.0;
      for (int64_t b = 0; b < s.n; ++b) {
        const float *g = s.Plane(dy, b, ch), *in = s.Plane(x, b, ch);
#pragma omp simd reduction(+ : sum_dz, sum_dz_xc)
        for (int64_t i = 0; i < s.hw; ++i) {
          const float dz = g[i] * Act::D(in[i] * affine.scale + affine.shift);
          sum_dz += dz;
          sum_dz_xc += static_cast<double>(dz) * (in[i] - mean);
        }
      }
      dbeta[ch] = static_cast<float>(sum_dz);
      dgamma[ch] = static_cast<float>(sum_dz_xc * invstd);
      // dx = gamma * invstd * (dz - mean(dz) - (x - mean) * invstd^2 * mean(dz * (x - mean)))
      const float a = static_cast<float>(gamma[ch] * invstd);
      const float c = static_cast<float>(invstd * invstd * sum_dz_xc / count);
      const float d = static_cast<float>(sum_dz / count);
      for (int64_t b = 0; b < s.n; ++b) {
        const float *g = s.Plane(dy, b, ch), *in = s.Plane(x, b, ch);
        float *out = s.Plane(dx, b, ch);
#pragma omp simd
        for (int64_t i = 0; i < s.hw; ++i) {
          const float dz = g[i] * Act::D(in[i] * affine.scale + affine.shift);
          out[i] = a * (dz - d - (in[i] - mean) * c);
        }
      }
    }
  });
  return 0;
}

}  // namespace

#define BN_ENTRIES(ACT)                                                                                         \
  extern "C" int BnTrainForward##ACT(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, \
                                     void *stream, void *extra) {                                               \
    return Forward<ACT>(nparam, params, ndims, shapes, dtypes);                                                 \
  }                                                                                                             \
  extern "C" int BnTrainBackward##ACT(int nparam, void **params, int *ndims, int64_t **shapes,                  \
                                      const char **dtypes, void *stream, void *extra) {                         \
    return Backward<ACT>(nparam, params, ndims, shapes, dtypes);                                                \
  }

BN_ENTRIES(Linear)
BN_ENTRIES(Relu)
BN_ENTRIES(Relu6)
BN_ENTRIES(HSwish)
