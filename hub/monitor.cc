// The blocked-hub monitor (Hub::StartMonitor): a thread that samples the hub's switch counter.
//
// The hub publishes, at every switch it makes, a counter (epoch_) and the greenlet that runs
// (running_); prepare/check watchers mark the time the loop waits for I/O (polling_). If the
// counter has not moved for `threshold` while the loop was not polling, one greenlet (or a loop
// callback, when the hub itself runs) has held the thread that long.
//
// Naming the greenlet means reading its object from this thread while it runs on the hub thread.
// It cannot go away meanwhile: a spawned greenlet is freed only after the hub has regained
// control and calls BeforeRelease, and the two sides meet Dekker-style on monitor_reading_ and
// epoch_ with sequentially consistent operations.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include "base/errors.h"
#include "core/watchers.h"
#include "hub/hub.h"

namespace gevent {
namespace internal {
namespace {
std::atomic<GreenletNamer> greenlet_namer{nullptr};
}  // namespace

void SetGreenletNamer(GreenletNamer namer) { greenlet_namer.store(namer); }

class HubMonitor {
 public:
  HubMonitor(Hub& hub, MonitorOptions options)
      : hub_(hub),
        options_(std::move(options)),
        prepare_(hub.loop(), [this] { hub_.polling_.store(true, std::memory_order_relaxed); }),
        check_(hub.loop(), [this] { hub_.polling_.store(false, std::memory_order_relaxed); }) {
    if (options_.threshold <= absl::ZeroDuration()) {
      throw UsageError("gevent::Hub::StartMonitor: the threshold must be positive");
    }
    if (!options_.report) {
      options_.report = [](const BlockReport& r) {
        std::fprintf(stderr, "gevent: the hub was blocked for %s by %s\n",
                     absl::FormatDuration(r.blocked_for).c_str(), r.greenlet.c_str());
      };
    }
    // The monitor's own watchers never keep the loop alive.
    prepare_.Unref();
    check_.Unref();
    prepare_.Start();
    check_.Start();
    thread_ = std::thread([this] { Run(); });
  }

  ~HubMonitor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    hub_.polling_.store(false, std::memory_order_relaxed);
  }

 private:
  void Run() {
    using Clock = std::chrono::steady_clock;
    const auto threshold = absl::ToChronoNanoseconds(options_.threshold);
    const auto period = std::max<Clock::duration>(threshold / 4, std::chrono::milliseconds(1));
    std::uint64_t last_epoch = hub_.epoch_.load(std::memory_order_relaxed);
    Clock::time_point last_change = Clock::now();
    std::uint64_t reported_epoch = 0;
    bool reported = false;
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
      const std::uint64_t epoch = hub_.epoch_.load(std::memory_order_relaxed);
      const Clock::time_point now = Clock::now();
      if (epoch != last_epoch || hub_.polling_.load(std::memory_order_relaxed)) {
        last_epoch = epoch;
        last_change = now;
        continue;
      }
      if (now - last_change < threshold || (reported && reported_epoch == epoch)) continue;
      std::optional<std::string> name = NameRunning(epoch);
      if (!name.has_value()) continue;  // It moved on while being named.
      reported = true;
      reported_epoch = epoch;
      BlockReport report{*std::move(name), absl::FromChrono(now - last_change)};
      lock.unlock();
      Report(report);
      lock.lock();
    }
  }

  // Report calls the report callback. An exception from it must not end the monitor thread
  // (std::terminate): it goes to the hub thread, to the loop's error handler as a "monitor"
  // error, once the hub runs its loop again.
  void Report(const BlockReport& report) {
    try {
      options_.report(report);
    } catch (...) {
      std::exception_ptr error = std::current_exception();
      try {
        hub_.RunCallbackThreadSafe(
            [loop = &hub_.loop(), error] { loop->ReportError("monitor", error); });
      } catch (...) {
        std::fprintf(stderr, "gevent: the monitor's report callback threw, and the exception "
                             "could not be handed to the hub\n");
      }
    }
  }

  // NameRunning names the greenlet that runs, if the hub is still at `epoch`.
  std::optional<std::string> NameRunning(std::uint64_t epoch) {
    const greenlet::Greenlet* g = hub_.running_.load(std::memory_order_acquire);
    hub_.monitor_reading_.store(g, std::memory_order_seq_cst);
    std::optional<std::string> name;
    if (hub_.epoch_.load(std::memory_order_seq_cst) == epoch) name = Describe(g);
    hub_.monitor_reading_.store(nullptr, std::memory_order_release);
    return name;
  }

  std::string Describe(const greenlet::Greenlet* g) {
    char address[32];
    std::snprintf(address, sizeof address, "%p", static_cast<const void*>(g));
    if (g == nullptr) return "nothing (the hub had not started)";
    if (g == hub_.greenlet()) return "the hub itself (a loop callback or a watcher callback)";
    if (g->is_main()) return "the main greenlet";
    if (g->user_data() != nullptr) {
      if (GreenletNamer namer = greenlet_namer.load()) return "greenlet '" + namer(g) + "'";
    }
    return std::string("greenlet ") + address;
  }

  Hub& hub_;
  MonitorOptions options_;
  PrepareWatcher prepare_;
  CheckWatcher check_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

void HubMonitorDeleter::operator()(HubMonitor* monitor) const { delete monitor; }

}  // namespace internal

void Hub::StartMonitor(MonitorOptions options) {
  monitor_.reset();
  monitor_.reset(new internal::HubMonitor(*this, std::move(options)));
}

void Hub::StopMonitor() { monitor_.reset(); }

void internal::Scheduler::WaitForMonitorRead(const greenlet::Greenlet* g) {
  // A sequentially consistent step of the epoch, then a look at what the monitor reads: either
  // the monitor sees the new epoch and leaves `g` alone, or this sees it reading and waits.
  epoch_.fetch_add(1, std::memory_order_seq_cst);
  while (monitor_reading_.load(std::memory_order_seq_cst) == g) std::this_thread::yield();
}

}  // namespace gevent
