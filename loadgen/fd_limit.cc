#include "loadgen/fd_limit.h"

#include <algorithm>
#include <cerrno>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "base/errno.h"

namespace loadgen {

std::uint64_t FdsNeeded(std::uint64_t clients, bool embedded_server) {
  return clients * (embedded_server ? 2 : 1) + kFdMargin;
}

FdPlan PlanFds(std::uint64_t clients, bool embedded_server, rlim_t soft, rlim_t hard,
               std::uint64_t nr_open) {
  // The kernel refuses RLIM_INFINITY (and anything above fs.nr_open) as a NOFILE limit.
  const std::uint64_t usable_hard =
      hard == RLIM_INFINITY ? nr_open : std::min<std::uint64_t>(hard, nr_open);
  const std::uint64_t usable_soft =
      soft == RLIM_INFINITY ? usable_hard : std::min<std::uint64_t>(soft, usable_hard);
  FdPlan plan;
  plan.needed = FdsNeeded(clients, embedded_server);
  plan.fits = plan.needed <= usable_hard;
  plan.new_soft = plan.needed <= usable_soft ? usable_soft : usable_hard;
  const std::uint64_t per_client = embedded_server ? 2 : 1;
  plan.max_clients = usable_hard > kFdMargin ? (usable_hard - kFdMargin) / per_client : 0;
  return plan;
}

namespace {

std::uint64_t ReadNrOpen() {
  std::ifstream in("/proc/sys/fs/nr_open");
  std::uint64_t value = 0;
  if (in >> value && value > 0) return value;
  return 1u << 20;  // The kernel's default.
}

}  // namespace

absl::Status EnsureFdLimit(std::uint64_t clients, bool embedded_server) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return gevent::ErrnoError(errno, "getrlimit(RLIMIT_NOFILE)", "", "failed: ");
  }
  const FdPlan plan = PlanFds(clients, embedded_server, limit.rlim_cur, limit.rlim_max, ReadNrOpen());
  if (!plan.fits) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "--clients=", clients, " needs about ", plan.needed, " file descriptors (",
        embedded_server ? "two per client with the embedded server" : "one per client", " + ",
        kFdMargin, "), but the hard RLIMIT_NOFILE (ulimit -Hn) is ",
        limit.rlim_max == RLIM_INFINITY ? std::string("unlimited")
                                        : absl::StrCat(limit.rlim_max),
        "; at most --clients=", plan.max_clients,
        embedded_server
            ? " fits (raise the hard limit as root, or use --target with a server in another "
              "process)"
            : " fits (raise the hard limit as root)"));
  }
  if (plan.new_soft != limit.rlim_cur) {
    struct rlimit raised = limit;
    raised.rlim_cur = plan.new_soft;
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      const int err = errno;
      return gevent::ErrnoError(
          err, absl::StrCat("setrlimit(RLIMIT_NOFILE, soft=", plan.new_soft, ")"), "", "failed: ");
    }
  }
  return absl::OkStatus();
}

}  // namespace loadgen
