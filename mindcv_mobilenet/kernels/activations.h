// MobileNet's activations, as the kernels apply them (F) and differentiate them (D, from the activation's input z);
// the formulas and the gradients' conventions are MindSpore's (nnacl): ReLU6 and hard-swish pass no gradient at
// their clipped ends.

#pragma once

#include <algorithm>

namespace mindcv_kernels {

struct Linear {
  static float F(float z) { return z; }
  static float D(float) { return 1.0f; }
};

struct Relu {
  static float F(float z) { return std::max(z, 0.0f); }
  static float D(float z) { return z > 0.0f ? 1.0f : 0.0f; }
};

struct Relu6 {
  static float F(float z) { return std::min(std::max(z, 0.0f), 6.0f); }
  static float D(float z) { return (z > 0.0f && z < 6.0f) ? 1.0f : 0.0f; }
};

struct HSigmoid {  // squeeze-excite's gate
  static float F(float z) { return std::min(std::max(z + 3.0f, 0.0f), 6.0f) / 6.0f; }
  static float D(float z) { return (z > -3.0f && z < 3.0f) ? 1.0f / 6.0f : 0.0f; }
};

struct HSwish {
  static float F(float z) { return z * std::min(std::max(z + 3.0f, 0.0f), 6.0f) / 6.0f; }
  static float D(float z) { return z < -3.0f ? 0.0f : (z > 3.0f ? 1.0f : (2.0f * z + 3.0f) / 6.0f); }
};

}  // namespace mindcv_kernels
