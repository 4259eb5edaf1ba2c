// What every kernel entry point checks and computes from MindSpore's AOT calling convention (parameter count,
// ranks, shapes and dtype names of the inputs and outputs).

#pragma once

#include <cstdint>
#include <cstring>

namespace mindcv_kernels {

// True when the first nparam tensors (inputs and outputs) are all float32.
inline bool AllFloat(int nparam, const char **dtypes) {
  for (int i = 0; i < nparam; ++i) {
    if (std::strcmp(dtypes[i], "float32") != 0) return false;
  }
  return true;
}

inline int64_t Numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

}  // namespace mindcv_kernels
