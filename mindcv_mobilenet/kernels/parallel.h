// Threads for this package's CPU kernels: the CPUs this process may run on, or MINDCV_MOBILENET_KERNEL_THREADS.
//
// A kernel library keeps one pool of worker threads for its whole life (starting a thread per call costs ~40 us,
// and a MobileNetV3 training step makes ~150 kernel calls); a call's work is handed out in pieces (ParallelFor).
// MindSpore may run two kernels of a library at once (a layer's two gradients): the second then runs on its caller's
// thread alone instead of queueing for the pool or adding threads to cores that are already busy.

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

// Persistent workers that join the caller on a job: every participant takes the next undone piece of it until none
// is left (see ParallelFor). A sleeping worker takes tens of microseconds to wake up; with the work handed out
// piece by piece, the caller does not wait for a late worker's fixed half, it takes that work itself.
class ThreadPool {
 public:
  explicit ThreadPool(int workers) : owner_(getpid()) {
    for (int t = 0; t < workers; ++t) std::thread([this] { Work(); }).detach();  // never joined: lives forever
  }

  // Runs job() on the caller and on every worker that wakes up while the job is open; returns when the caller's
  // job() has returned and no worker is inside job() any more (job() must return only when no work is left). Returns
  // false (and runs nothing) when the pool is busy with another call or belongs to the parent of a forked process.
  bool Run(const std::function<void()> &job) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock() || getpid() != owner_) return false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      open_.store(generation_.fetch_add(1) + 1);
    }
    wake_.notify_all();
    job();
    open_.store(0);  // a worker arriving from now on leaves without touching the job
    while (inside_.load() != 0) std::this_thread::yield();
    return true;
  }

 private:
  void Work() {
    uint64_t seen = 0;
    for (;;) {
      // Sleep right away. Spinning for the next call (4,000 pauses, ~0.1 ms) kept a core busy while the next operator
      // ran -- often one of MindSpore's or another kernel library's, each with its own threads -- and made training
      // steps 4-7 % slower (MobileNetV3-Small, V4 conv_small) than waking up through the condition variable.
      const std::function<void()> *job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        job = job_;
      }
      // Announce, then check that this job is still open: Run() closes it before waiting for inside_ to drop to 0, so
      // either it waits for this worker or the worker sees it closed (sequentially consistent atomics).
      inside_.fetch_add(1);
      if (open_.load() == seen) (*job)();
      inside_.fetch_sub(1);
    }
  }

  const pid_t owner_;
  std::mutex busy_, mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> open_{0};  // the generation of the job still open, 0 when none
  std::atomic<int> inside_{0};
  const std::function<void()> *job_ = nullptr;
};

inline ThreadPool &Pool() {
  static ThreadPool *pool = new ThreadPool(NumThreads() - 1);  // never destroyed: its threads outlive main
  return *pool;
}

// Pieces of a ParallelFor per thread: enough that a late worker's share is taken by the others, few enough that
// handing them out (one atomic increment each) costs nothing next to them.
constexpr int64_t kPiecesPerThread = 8;

// Runs body(begin, end) over [0, n) split into contiguous pieces, taken by the caller and the pool's workers as each
// is free (each piece runs once, on one thread).
template <class Body>
void ParallelFor(int64_t n, const Body &body) {
  const int64_t threads = std::min<int64_t>(NumThreads(), n);
  if (threads <= 1) {
    body(0, n);
    return;
  }
  const int64_t pieces = std::min<int64_t>(n, threads * kPiecesPerThread);
  const int64_t size = (n + pieces - 1) / pieces;
  std::atomic<int64_t> next{0};
  const std::function<void()> job = [&] {
    for (int64_t begin = next.fetch_add(size); begin < n; begin = next.fetch_add(size)) {
      body(begin, std::min(n, begin + size));
    }
  };
  if (!Pool().Run(job)) body(0, n);
}

}  // namespace mindcv_kernels
