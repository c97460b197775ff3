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

ThreadPool::ThreadPool(std::size_t size, Hub& hub) : hub_(&hub), size_(size) {
  if (size == 0) throw UsageError("gevent::ThreadPool: size must be at least 1");
  async_ = std::make_unique<AsyncWatcher>(hub.loop(), [this] { CompleteFinished(); });
}

ThreadPool::~ThreadPool() { Shutdown(); }

void ThreadPool::Submit(std::shared_ptr<internal::TaskState> task) {
  // Active while tasks are outstanding. Started before the task is queued: a Send to an inactive
  // watcher is lost.
  if (outstanding_ == 0) async_->Start();
  bool start_worker = false;
  task->pool = this;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      if (outstanding_ == 0) async_->Stop();
      throw UsageError("gevent::ThreadPool::Spawn: the pool was shut down");
    }
    queue_.push_back(std::move(task));
    // The hub starts a worker only when none is being started: a new worker starts the next one
    // itself while tasks still wait, so a burst costs the hub one thread creation, not `size`.
    start_worker = starting_ == 0 && NeedsWorker();
    if (start_worker) {
      ++starting_;
      ++unjoinable_;
    }
  }
  ++outstanding_;
  UpdateLoopReference();
  if (start_worker) {
    StartWorker();
  } else {
    work_ready_.notify_one();
  }
}

bool ThreadPool::NeedsWorker() const {
  // Every idle worker may already be promised to an earlier queued task.
  return !stopping_ && queue_.size() > idle_ && workers_.size() + starting_ < size_;
}

void ThreadPool::StartWorker() {
  std::thread worker([this] { WorkerLoop(); });
  std::lock_guard<std::mutex> lock(mu_);
  workers_.push_back(std::move(worker));
  started_.store(workers_.size(), std::memory_order_relaxed);
  if (--unjoinable_ == 0) started_all_.notify_all();
}

void ThreadPool::Abandon(internal::TaskState& task) {
  task.abandoned = true;
  ++abandoned_;
  UpdateLoopReference();
}

void ThreadPool::UpdateLoopReference() {
  // A greenlet waiting on a worker is work for the loop; a task nobody waits for is not.
  if (outstanding_ > abandoned_) {
    async_->Ref();
  } else {
    async_->Unref();
  }
}

void ThreadPool::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  // Counted as starting until here, so that nobody starts another for the same task meanwhile.
  --starting_;
  ++idle_;
  if (NeedsWorker()) {
    ++starting_;
    ++unjoinable_;
    lock.unlock();
    StartWorker();
    lock.lock();
  }
  while (true) {
    work_ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // Stopping, and nothing left to do.
    --idle_;
    std::shared_ptr<internal::TaskState> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task->work();
    task->work = nullptr;  // Captures die on the worker, like the call.
    lock.lock();
    finished_.push_back(std::move(task));
    // Idle again before the hub hears of the result: a task submitted then reuses this worker.
    ++idle_;
    lock.unlock();
    async_->Send();
    lock.lock();
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
    task->pool = nullptr;
    if (task->abandoned) {
      --abandoned_;
      // Nobody will Get it: the loop's error handler is where a throw goes (base/errors.h).
      if (task->error) hub_->loop().ReportError("threadpool", task->error);
    }
    for (Waiter* w : task->waiters) w->Wake();
    if (--outstanding_ == 0) async_->Stop();
  }
  if (outstanding_ > 0) UpdateLoopReference();
}

void ThreadPool::Shutdown() {
  std::vector<std::thread> workers;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    // A worker being started is joined too (no new one starts once stopping).
    started_all_.wait(lock, [this] { return unjoinable_ == 0; });
    workers.swap(workers_);
  }
  work_ready_.notify_all();
  for (std::thread& t : workers) t.join();
  CompleteFinished();
  async_->Stop();
}

namespace {
// The hub's shared pool, as a hub attachment (destroyed with the hub, before its loop).
struct HubPool : Hub::Attachment {
  explicit HubPool(Hub& hub) : pool(kHubThreadPoolSize, hub) {}
  ThreadPool pool;
};
constexpr char kHubPoolKey = 0;
}  // namespace

ThreadPool& HubThreadPool(Hub& hub) {
  if (Hub::Attachment* found = hub.FindAttachment(&kHubPoolKey)) {
    return static_cast<HubPool*>(found)->pool;
  }
  return static_cast<HubPool&>(hub.Attach(&kHubPoolKey, std::make_unique<HubPool>(hub))).pool;
}

void internal::ForgetHubThreadPoolAfterFork(Hub& hub) {
  std::unique_ptr<Hub::Attachment> old = hub.Detach(&kHubPoolKey);
  if (old == nullptr) return;
  ThreadPool& pool = static_cast<HubPool*>(old.get())->pool;
  if (pool.async_ != nullptr) pool.async_->Stop();
  // Kept reachable (not a leak to LeakSanitizer), never destroyed: its threads are not there.
  static auto* forgotten = new std::vector<std::unique_ptr<Hub::Attachment>>();
  forgotten->push_back(std::move(old));
}

}  // namespace gevent
