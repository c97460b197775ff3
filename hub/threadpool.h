// gevent::ThreadPool — run blocking functions on worker threads while greenlets wait
// (gevent.threadpool.ThreadPool).
//
//   gevent::ThreadPool pool(4);
//   int n = pool.Apply([] { return BlockingSyscall(); });   // parks only the calling greenlet
//   auto r = pool.Spawn([] { return Compute(); });          // ThreadResult<int>
//   absl::StatusOr<int> v = r.Get(absl::Seconds(1));       // parks until done; rethrows
//
// Errors (base/errors.h): ThreadResult::Get returns absl::StatusOr<T> (absl::Status for void):
// DeadlineExceeded when its timeout expires first, and it rethrows the exception the function
// raised on its worker; Apply (no timeout) returns T and rethrows. Misuse throws
// gevent::UsageError: a pool of size 0, Spawn/Apply after Shutdown.
//
// The pool belongs to the hub of the thread that created it: Spawn/Apply/Get are hub-thread only;
// the functions run on the workers. Workers start on demand, up to `size`: a task that finds no
// idle worker gets one started (by the hub for the first of a burst, then by each new worker for
// the next, so the hub thread pays for one thread creation per burst). A worker reports a
// finished task through one AsyncWatcher per pool, which is active while tasks are outstanding
// and referenced while one of them is not abandoned:
// the hub's loop stays alive (no LoopExit) while a greenlet waits for a worker, and not longer.
// ThreadResult::Abandon gives a task up (a lookup that timed out, say): it runs to the end on its
// worker, its result is dropped, and it no longer keeps the loop alive.
//
// HubThreadPool() is the hub's shared pool (gevent's get_hub().threadpool), made on first use
// with kHubThreadPoolSize workers at most and destroyed with the hub; name resolution runs there.
//
// Destroying the pool (or Shutdown) lets the workers finish every queued task, joins them, and
// completes the results on the calling (hub) thread: it waits for a worker still running an
// abandoned task.
#ifndef GEVENT_HUB_THREADPOOL_H_
#define GEVENT_HUB_THREADPOOL_H_

#include <any>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/errors.h"
#include "core/watchers.h"
#include "hub/hub.h"

namespace gevent {

class ThreadPool;

namespace internal {
void ForgetHubThreadPoolAfterFork(Hub& hub);  // Below HubThreadPool.

// TaskState: one submitted function and its outcome. `work` runs on a worker and fills
// value/error; `done` and the waiters belong to the hub thread.
struct TaskState {
  absl::AnyInvocable<void()> work;
  std::any value;
  std::exception_ptr error;
  bool done = false;
  bool abandoned = false;
  ThreadPool* pool = nullptr;  // Until done.
  std::vector<Waiter*> waiters;
};

// WaitTask parks until `task` is done (or the timeout elapses); returns done.
bool WaitTask(TaskState& task, std::optional<absl::Duration> timeout);
}  // namespace internal

// ThreadResult<T>: the outcome of ThreadPool::Spawn (gevent's AsyncResult). Hub thread only.
template <typename T>
class ThreadResult {
 public:
  // What Get returns: absl::StatusOr<T>, or absl::Status for a function returning void.
  using GetResult = std::conditional_t<std::is_void_v<T>, absl::Status, absl::StatusOr<T>>;

  explicit ThreadResult(std::shared_ptr<internal::TaskState> task) : task_(std::move(task)) {}
  bool ready() const { return task_->done; }
  bool successful() const { return task_->done && !task_->error; }
  // Wait parks until the function finished on its worker; returns ready().
  bool Wait(std::optional<absl::Duration> timeout = std::nullopt) {
    return internal::WaitTask(*task_, timeout);
  }
  // Get waits, then returns the result (OK for void) or rethrows the function's exception;
  // absl::DeadlineExceededError if `timeout` elapses first (a zero timeout does not wait).
  GetResult Get(std::optional<absl::Duration> timeout = std::nullopt);
  // Abandon: nobody waits for this task any more. It still runs (or keeps running) on a worker,
  // but from now on it does not keep the hub's loop alive (Join and LoopExit ignore it); its
  // outcome lives as long as some handle to it, and an exception it ends with goes to the loop's
  // error handler (kind "threadpool"). Wait/Get still work afterwards. Idempotent; a no-op on a
  // finished task. Hub thread only.
  void Abandon();

 private:
  std::shared_ptr<internal::TaskState> task_;
};

class ThreadPool {
 public:
  // ThreadPool allows up to `size` (>= 1, else gevent::UsageError) worker threads for the given
  // hub (the calling thread's by default); they start as tasks arrive.
  explicit ThreadPool(std::size_t size, Hub& hub = GetHub());
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool();

  // Spawn queues fn() for a worker and returns its result handle at once. After Shutdown, throws
  // gevent::UsageError.
  template <typename F>
  ThreadResult<std::invoke_result_t<std::decay_t<F>&>> Spawn(F&& fn) {
    using R = std::invoke_result_t<std::decay_t<F>&>;
    auto task = std::make_shared<internal::TaskState>();
    internal::TaskState* raw = task.get();
    task->work = [f = std::decay_t<F>(std::forward<F>(fn)), raw]() mutable {
      try {
        if constexpr (std::is_void_v<R>) {
          f();
        } else {
          raw->value = std::any(f());
        }
      } catch (...) {
        raw->error = std::current_exception();
      }
    };
    Submit(task);
    return ThreadResult<R>(std::move(task));
  }

  // Apply runs fn() on a worker and parks the calling greenlet until it returns; returns its
  // result or rethrows its exception (gevent's pool.apply). No timeout: the Get never fails.
  template <typename F>
  std::invoke_result_t<std::decay_t<F>&> Apply(F&& fn) {
    auto result = Spawn(std::forward<F>(fn)).Get();
    if constexpr (std::is_void_v<std::invoke_result_t<std::decay_t<F>&>>) {
      (void)result;
    } else {
      return *std::move(result);
    }
  }

  // Shutdown finishes the queued tasks and joins the workers (idempotent; hub thread only).
  void Shutdown();

  // size: the most workers the pool runs; started: how many have started so far.
  std::size_t size() const { return size_; }
  std::size_t started() const { return started_.load(std::memory_order_relaxed); }
  // outstanding: tasks submitted and not yet completed on the hub (abandoned ones included).
  std::size_t outstanding() const { return outstanding_; }

 private:
  template <typename T>
  friend class ThreadResult;

  friend void internal::ForgetHubThreadPoolAfterFork(Hub& hub);
  void Submit(std::shared_ptr<internal::TaskState> task);
  void Abandon(internal::TaskState& task);
  void WorkerLoop();
  void CompleteFinished();
  void UpdateLoopReference();
  bool NeedsWorker() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartWorker();

  Hub* hub_;
  std::size_t size_;
  std::unique_ptr<AsyncWatcher> async_;
  std::size_t outstanding_ = 0;  // Hub thread.
  std::size_t abandoned_ = 0;    // Hub thread: outstanding tasks given up.
  std::atomic<std::size_t> started_{0};  // workers_.size(), for started().

  // std::mutex rather than absl::Mutex: the system abseil is not built for ThreadSanitizer, which
  // then cannot see its synchronisation.
  std::mutex mu_;
  std::condition_variable work_ready_;
  std::deque<std::shared_ptr<internal::TaskState>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<internal::TaskState>> finished_ ABSL_GUARDED_BY(mu_);
  std::size_t idle_ ABSL_GUARDED_BY(mu_) = 0;  // Workers waiting for a task.
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
  // starting_: workers asked for that have not reached their loop yet; unjoinable_: threads not
  // yet in workers_ (Shutdown waits for them).
  std::size_t starting_ ABSL_GUARDED_BY(mu_) = 0;
  std::size_t unjoinable_ ABSL_GUARDED_BY(mu_) = 0;
  std::condition_variable started_all_;  // unjoinable_ fell to 0.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

// kHubThreadPoolSize: the most workers of a hub's shared pool (gevent's default, 10).
inline constexpr std::size_t kHubThreadPoolSize = 10;

// HubThreadPool: `hub`'s shared pool, made on first use and destroyed with the hub (before its
// loop). Hub thread only.
ThreadPool& HubThreadPool(Hub& hub = GetHub());

namespace internal {
// ForgetHubThreadPoolAfterFork: in the child after fork(), `hub`'s shared pool refers to worker
// threads that do not exist there (and may hold its lock). It is detached and left alone, never
// destroyed (its memory stays reachable), its async watcher stopped; the next HubThreadPool()
// makes a fresh pool. Greenlets that waited on one of its tasks are not woken (unless their
// timeout passes). No-op without a pool. Hub thread only.
void ForgetHubThreadPoolAfterFork(Hub& hub);
}  // namespace internal

template <typename T>
typename ThreadResult<T>::GetResult ThreadResult<T>::Get(std::optional<absl::Duration> timeout) {
  if (!Wait(timeout)) {
    return absl::DeadlineExceededError(
        "gevent::ThreadResult::Get: timed out before the function finished on its worker");
  }
  if (task_->error) std::rethrow_exception(task_->error);
  if constexpr (std::is_void_v<T>) {
    return absl::OkStatus();
  } else {
    return std::any_cast<T>(task_->value);
  }
}

template <typename T>
void ThreadResult<T>::Abandon() {
  if (!task_->done && !task_->abandoned) task_->pool->Abandon(*task_);
}

}  // namespace gevent

#endif  // GEVENT_HUB_THREADPOOL_H_
