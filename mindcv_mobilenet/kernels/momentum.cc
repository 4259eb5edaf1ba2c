// SGD with momentum over every parameter of a network in one call, for MindSpore's CPU backend (AOT custom operator
// that updates its parameter and moment inputs in place; the Python side declares them written).
//
// Why: MindSpore's nn.Momentum launches one ApplyMomentum per parameter (and, with weight decay, a Mul and an Add per
// decayed one): 140-340 launches per MobileNet training step, whose scheduling costs more than their arithmetic.
//   MomentumUpdate{,Nesterov}(lr, momentum, decay, p_0..p_k-1, m_0..m_k-1, g_0..g_k-1) -> done
//     lr: 1 value (shared) or k (one per parameter); momentum: 1 value; decay: k values (0: not decayed)
//     g' = g + decay * p (MindSpore's weight decay), m = m * momentum + g',
//     p -= lr * m (ApplyMomentum's float formula), or with Nesterov p -= g' * lr + m * momentum * lr (as ApplyMomentum
//     does on GPU; MindSpore 2.10's CPU kernel ignores use_nesterov)
// Threads: the parameters' elements, concatenated, split over the kernel threads (parallel.h).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "aot.h"
#include "parallel.h"

namespace {

template <bool kNesterov>
int Update(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  const int k = (nparam - 4) / 3;  // inputs: lr, momentum, decay, k parameters, k moments, k gradients; output: done
  if (k < 1 || nparam != 3 * k + 4 || !mindcv_kernels::AllFloat(nparam, dtypes)) return 1;
  const int64_t lr_count = mindcv_kernels::Numel(ndims[0], shapes[0]);
  if ((lr_count != 1 && lr_count != k) || mindcv_kernels::Numel(ndims[2], shapes[2]) != k) return 1;
  const float *lr = static_cast<const float *>(params[0]);
  const float momentum = *static_cast<const float *>(params[1]);
  const float *decay = static_cast<const float *>(params[2]);
  std::vector<int64_t> start(k + 1, 0);  // parameter i holds elements [start[i], start[i + 1]) of the concatenation
  for (int i = 0; i < k; ++i) start[i + 1] = start[i] + mindcv_kernels::Numel(ndims[3 + i], shapes[3 + i]);
  mindcv_kernels::ParallelFor(start[k], [&](int64_t begin, int64_t end) {
    int i = static_cast<int>(std::upper_bound(start.begin(), start.end(), begin) - start.begin()) - 1;
    for (; i < k && start[i] < end; ++i) {
      float *p = static_cast<float *>(params[3 + i]);
      float *m = static_cast<float *>(params[3 + k + i]);
      const float *g = static_cast<const float *>(params[3 + 2 * k + i]);
      const float rate = lr[lr_count == 1 ? 0 : i], wd = decay[i];
      const int64_t from = std::max(begin, start[i]) - start[i], to = std::min(end, start[i + 1]) - start[i];
#pragma omp simd
      for (int64_t j = from; j < to; ++j) {
        const float grad = wd != 0.0f ? g[j] + p[j] * wd : g[j];
        m[j] = m[j] * momentum + grad;
        if (kNesterov) {
          p[j] -= grad * rate + m[j] * momentum * rate;
        } else {
          p[j] -= rate * m[j];
        }
      }
    }
  });
  *static_cast<float *>(params[nparam - 1]) = 1.0f;
  return 0;
}

}  // namespace

extern "C" int MomentumUpdate(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                              void *stream, void *extra) {
  return Update<false>(nparam, params, ndims, shapes, dtypes);
}

extern "C" int MomentumUpdateNesterov(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                      void *stream, void *extra) {
  return Update<true>(nparam, params, ndims, shapes, dtypes);
}
