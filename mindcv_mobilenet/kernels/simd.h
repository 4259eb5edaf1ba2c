// The vector registers a kernel library is compiled for (kernels/__init__.py builds with -march=native, or without
// AVX-512 under MINDCV_MOBILENET_KERNEL_ISA=avx2): floats per register and how many registers there are.
//
// Loops that keep partial sums in registers for a whole plane size their blocks from these. A 16-float block is one
// register with AVX-512 (32 zmm registers) but two with AVX2 (16 ymm registers), where 9 or 25 of them no longer fit
// and the sums spill to the stack (a load and a store per multiply-add).

#pragma once

namespace mindcv_kernels {

#if defined(__AVX512F__)
constexpr int kVectorFloats = 16;
constexpr int kVectorRegisters = 32;
#elif defined(__AVX__)
constexpr int kVectorFloats = 8;
constexpr int kVectorRegisters = 16;
#elif defined(__aarch64__)
constexpr int kVectorFloats = 4;  // NEON
constexpr int kVectorRegisters = 32;
#else
constexpr int kVectorFloats = 4;  // SSE
constexpr int kVectorRegisters = 16;
#endif

// Registers a loop can give to accumulators: the rest hold the values it multiplies and the loop's temporaries.
constexpr int kAccumulatorRegisters = kVectorRegisters - 4;

}  // namespace mindcv_kernels
