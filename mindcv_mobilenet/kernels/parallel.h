// Threads for this package's CPU kernels: the CPUs this process may run on, or MINDCV_MOBILENET_KERNEL_THREADS.
//
// A kernel library keeps one pool of worker threads for its whole life (starting a thread per call costs ~40 us,
// and a MobileNetV3 training step makes ~150 kernel calls). MindSpore may run two kernels of a library at once (a
// layer's two gradients): the second then runs on its caller's thread alone instead of queueing for the pool or
// adding threads to cores that are already busy.

#pragma once

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
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

// Persistent workers that each run one chunk of a job; the caller runs the last chunk and waits for the others.
class ThreadPool {
 public:
  explicit ThreadPool(int workers) : owner_(getpid()) {
    for (int t = 0; t < workers; ++t) std::thread([this, t] { Work(t); }).detach();  // never joined: lives forever
    workers_ = workers;
  }

  int workers() const { return workers_; }

  // Runs chunk(t) for t in [0, chunks) (chunks - 1 <= workers), chunk(chunks - 1) on the caller. Returns false (and
  // runs nothing) when the pool is busy with another call or belongs to the parent of a forked process.
  bool Run(int chunks, const std::function<void(int)> &chunk) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || getpid() != owner_) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &chunk;
      jobs_ = chunks - 1;
      pending_.store(chunks - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    chunk(chunks - 1);
    while (pending_.load(std::memory_order_acquire) != 0) {
      std::this_thread::yield();
    }
    return true;
  }

 private:
  void Work(int index) {
    uint64_t seen = 0;
    for (;;) {
      // Sleep right away. Spinning for the next call (4,000 pauses, ~0.1 ms) kept a core busy while the next operator
      // ran -- often one of MindSpore's or another kernel library's, each with its own threads -- and made training
      // steps 4-7 % slower (MobileNetV3-Small, V4 conv_small) than waking up through the condition variable.
      const std::function<void(int)> *job;
      int jobs;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        seen = generation_.load(std::memory_order_acquire);
        job = job_;
        jobs = jobs_;
      }
      if (index < jobs) {
        (*job)(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  const pid_t owner_;
  int workers_ = 0;
  std::mutex busy_, mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)> *job_ = nullptr;
  int jobs_ = 0;
};

inline ThreadPool &Pool() {
  static ThreadPool *pool = new ThreadPool(NumThreads() - 1);  // never destroyed: its threads outlive main
  return *pool;
}

// Runs body(begin, end) over [0, n) split into contiguous chunks, one per thread (the caller runs the last one).
template <class Body>
void ParallelFor(int64_t n, const Body &body) {
  const int64_t threads = std::min<int64_t>(NumThreads(), n);
  if (threads <= 1) {
    body(0, n);
    return;
  }
  const int64_t chunk = (n + threads - 1) / threads;
  const int chunks = static_cast<int>((n + chunk - 1) / chunk);
  const std::function<void(int)> run = [&](int t) {
    const int64_t begin = t * chunk, end = std::min(n, begin + chunk);
    if (begin < end) body(begin, end);
  };
  if (!Pool().Run(chunks, run)) body(0, n);
}

}  // namespace mindcv_kernels
