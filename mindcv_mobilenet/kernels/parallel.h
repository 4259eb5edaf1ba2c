// Threads for this package's CPU kernels: the CPUs this process may run on, or MINDCV_MOBILENET_KERNEL_THREADS.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace mindcv_kernels {

inline int NumThreads() {
  static const int count = [] {
    const char *env = std::getenv("MINDCV_MOBILENET_KERNEL_THREADS");
    if (env != nullptr && std::atoi(env) > 0) return std::atoi(env);
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
    return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  }();
  return count;
}

// Runs body(begin, end) over [0, n) split into contiguous chunks, one per thread (the caller runs the last one).
template <class Body>
void ParallelFor(int64_t n, const Body &body) {
  const int64_t threads = std::min<int64_t>(NumThreads(), n);
  if (threads <= 1) {
    body(0, n);
    return;
  }
  std::vector<std::thread> workers;
  workers.reserve(threads - 1);
  const int64_t chunk = (n + threads - 1) / threads;
  for (int64_t t = 0; t < threads - 1; ++t) {
    const int64_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin < end) workers.emplace_back([&body, begin, end] { body(begin, end); });
  }
  body(std::min(n, (threads - 1) * chunk), n);
  for (auto &worker : workers) worker.join();
}

}  // namespace mindcv_kernels
