#include "hub/threadpool.h"

#include <algorithm>

namespace gevent {

namespace internal {
bool WaitTask(TaskState& task, std::optional<absl::Duration> timeout) {
  if (task.done) return true;
  Waiter waiter;
  task.waiters.push_back(&waiter);
  struct Leave {
    TaskState& t;
    Waiter* w;
    ~Leave() { t.waiters.erase(std::find(t.waiters.begin(), t.waiters.end(), w)); }
  } leave{task, &waiter};
  waiter.Get(timeout);
  return task.done;
}
}  // namespace internal

ThreadPool::ThreadPool(std::size_t size, Hub& hub) : hub_(&hub) {
  if (size == 0) throw UsageError("gevent::ThreadPool: size must be at least 1");
  async_ = std::make_unique<AsyncWatcher>(hub.loop(), [this] { CompleteFinished(); });
  workers_.reserve(size);
  for (std::size_t i = 0; i < size; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

ThreadPool::~ThreadPool() { Shutdown(); }

void ThreadPool::Submit(std::shared_ptr<internal::TaskState> task) {
  // Referenced while tasks are outstanding: a greenlet waiting on a worker is work. Started
  // before the task is queued: a Send to an inactive watcher is lost.
  if (outstanding_ == 0) async_->Start();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      if (outstanding_ == 0) async_->Stop();
      throw UsageError("gevent::ThreadPool::Spawn: the pool was shut down");
    }
    queue_.push_back(std::move(task));
  }
  work_ready_.notify_one();
  ++outstanding_;
}

void ThreadPool::WorkerLoop() {
  while (true) {
    std::shared_ptr<internal::TaskState> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // Stopping, and nothing left to do.
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task->work();
    task->work = nullptr;  // Captures die on the worker, like the call.
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_.push_back(std::move(task));
    }
    async_->Send();
  }
}

void ThreadPool::CompleteFinished() {
  // On the hub thread.
  std::vector<std::shared_ptr<internal::TaskState>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done.swap(finished_);
  }
  for (auto& task : done) {
    task->done = true;
    for (Waiter* w : task->waiters) w->Wake();
    if (--outstanding_ == 0) async_->Stop();
  }
}

void ThreadPool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  CompleteFinished();
  async_->Stop();
}

}  // namespace gevent
