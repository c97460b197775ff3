// File-descriptor budget of a run: how many fds the clients (and the embedded server) need, and
// raising RLIMIT_NOFILE to fit them before any connection is made.
//
//   absl::Status s = loadgen::EnsureFdLimit(config.clients, config.embedded());
//   if (!s.ok()) { /* message names the limit and the largest client count that fits */ }
//
// Each client holds one socket; with the embedded server the server's end of every connection is
// in the same process, so two. kFdMargin more cover stdio, the listeners, the loops' epoll and
// eventfd descriptors, the JSON file and whatever the runtime opens.
//
// Thread-safety: PlanFds is pure. EnsureFdLimit changes the process's limit; call it from main
// before starting threads.
#ifndef LOADGEN_FD_LIMIT_H_
#define LOADGEN_FD_LIMIT_H_

#include <sys/resource.h>

#include <cstdint>

#include "absl/status/status.h"

namespace loadgen {

inline constexpr std::uint64_t kFdMargin = 64;

// FdPlan: what PlanFds decided.
struct FdPlan {
  std::uint64_t needed = 0;       // Descriptors the run needs.
  std::uint64_t new_soft = 0;     // Soft limit to set (== soft when no change is needed).
  bool fits = false;              // needed <= hard limit.
  std::uint64_t max_clients = 0;  // Largest client count that fits under the hard limit.
};

// FdsNeeded: descriptors for `clients` connections (twice that with the server in-process).
std::uint64_t FdsNeeded(std::uint64_t clients, bool embedded_server);

// PlanFds: given the current soft and hard RLIMIT_NOFILE (RLIM_INFINITY allowed), whether the run
// fits and which soft limit to set. The soft limit is raised only when needed, and then to the
// hard limit (capped at what the kernel accepts for RLIM_INFINITY: `nr_open`).
FdPlan PlanFds(std::uint64_t clients, bool embedded_server, rlim_t soft, rlim_t hard,
               std::uint64_t nr_open = 1u << 20);

// EnsureFdLimit raises the soft RLIMIT_NOFILE as PlanFds says. When the hard limit is too low,
// returns ResourceExhausted naming RLIMIT_NOFILE, the hard limit, what the run needs and the
// largest --clients that fits; when getrlimit or setrlimit itself fails, gevent::ErrnoError's
// status (the call, the errno text and name; EPERM is PermissionDenied).
absl::Status EnsureFdLimit(std::uint64_t clients, bool embedded_server);

}  // namespace loadgen

#endif  // LOADGEN_FD_LIMIT_H_
