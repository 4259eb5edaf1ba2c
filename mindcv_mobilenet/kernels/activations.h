// MobileNet's activations, as the kernels apply them (F) and differentiate them (D, from the activation's input z);
// the formulas and the gradients' conventions are MindSpore's (nnacl): ReLU6 and hard-swish pass no gradient at
// their clipped ends. The derivatives are written without && or ?: (comparisons cast to 0/1 and multiplied): g++
// if-converts a branchy form only with AVX-512's mask registers and leaves it a scalar loop ("control flow in loop",
// -fopt-info-vec-missed) in an AVX2 build: BatchNorm + ReLU6's gradient took 12x as long there, hard-swish's 3x.

#pragma once

#include <algorithm>

namespace mindcv_kernels {

struct Linear {
  static float F(float z) { return z; }
  static float D(float) { return 1.0f; }
};

struct Relu {
  static float F(float z) { return std::max(z, 0.0f); }
  // (z == z) is false only for NaN, where z > 0 is false too: it changes no value, but g++ leaves a lone
  // comparison cast to float as a branch in the AVX2 build
  static float D(float z) { return static_cast<float>((z > 0.0f) & (z == z)); }
};

struct Relu6 {
  static float F(float z) { return std::min(std::max(z, 0.0f), 6.0f); }
  static float D(float z) { return static_cast<float>((z > 0.0f) & (z < 6.0f)); }
};

struct HSigmoid {  // squeeze-excite's gate
  static float F(float z) { return std::min(std::max(z + 3.0f, 0.0f), 6.0f) / 6.0f; }
  static float D(float z) { return static_cast<float>((z > -3.0f) & (z < 3.0f)) * (1.0f / 6.0f); }
};

struct HSwish {
  static float F(float z) { return z * std::min(std::max(z + 3.0f, 0.0f), 6.0f) / 6.0f; }
  // z < -3: 0, z > 3: 1, else (2z + 3) / 6, as a sum of masked terms (each exact: the other term is +0). No select
  // at all: g++ leaves even value selects unconverted in the AVX2 build of BatchNorm's dx loop. An infinite z gives
  // NaN instead of 0 or 1; the gradients it feeds are non-finite then anyway (they multiply by x - mean).
  static float D(float z) {
    return static_cast<float>(z >= -3.0f) * static_cast<float>(z <= 3.0f) * ((2.0f * z + 3.0f) / 6.0f) +
           static_cast<float>(z > 3.0f);
  }
};

}  // namespace mindcv_kernels
