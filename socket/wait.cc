#include "socket/wait.h"

#include <errno.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "hub/hub.h"
#include "socket/internal/readiness.h"

namespace gevent {
namespace {

using internal::Readiness;
using internal::Side;

// RegisterTransient: a Readiness for `fd`, which nothing in the stack has registered, for as long
// as greenlets wait through it (see Readiness::transient). Registering reports the fd's state as
// of now: a change since the caller last looked at it wakes the wait that follows.
absl::StatusOr<Readiness*> RegisterTransient(Hub& hub, int fd) {
  absl::StatusOr<EdgePoller*> poller = hub.edge_poller();
  if (!poller.ok()) return poller.status();
  auto made = std::make_unique<Readiness>(hub, **poller, fd, /*stream=*/false);
  made->set_transient();
  if (absl::Status registered = made->Register(); !registered.ok()) return registered;
  return made.release();
}

// TransientUse: one greenlet's wait through a transient Readiness. Another may wait on the other
// side through the same one: it goes with the last of them, whichever way each leaves (a kill
// included).
class TransientUse {
 public:
  explicit TransientUse(Readiness* readiness) : readiness_(readiness) { readiness_->AddUse(); }
  TransientUse(const TransientUse&) = delete;
  TransientUse& operator=(const TransientUse&) = delete;
  ~TransientUse() {
    if (readiness_->ReleaseUse()) delete readiness_;
  }

 private:
  Readiness* readiness_;
};

absl::Status WaitFor(int fd, Side side, std::optional<absl::Duration> timeout,
                     const char* operation) {
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(operation, ": fd must be >= 0, got ", fd));
  }
  Hub& hub = GetHub();
  Readiness* readiness = Readiness::Find(fd);
  if (readiness != nullptr && !readiness->transient()) {
    return readiness->WaitReady(side, timeout, operation);  // A socket's: its rules hold.
  }
  if (readiness != nullptr) {
    TransientUse use(readiness);
    return readiness->WaitReady(side, timeout, operation);
  }
  // Nothing in the stack has this fd registered: ask the kernel, and register it only to wait.
  absl::StatusOr<bool> ready = Readiness::ReadyNow(fd, side, operation);
  if (!ready.ok()) return ready.status();
  if (*ready) return absl::OkStatus();
  absl::StatusOr<Readiness*> made = RegisterTransient(hub, fd);
  if (!made.ok()) return made.status();
  TransientUse use(*made);
  std::optional<absl::Time> deadline;
  return (*made)->Wait(side, &deadline, timeout, operation);
}

}  // namespace

namespace internal {
absl::Status PinnedWait(int fd, Side side, std::optional<absl::Duration> timeout,
                        const char* operation) {
  Readiness* readiness = Readiness::Find(fd);
  if (readiness != nullptr && !readiness->transient()) {
    return readiness->WaitReady(side, timeout, operation);  // A socket's after all.
  }
  if (readiness == nullptr) {
    absl::StatusOr<Readiness*> made = RegisterTransient(GetHub(), fd);
    if (!made.ok()) return made.status();
    readiness = *made;
  }
  if (!readiness->pinned()) {
    readiness->set_pinned(true);
    readiness->AddUse();  // The pin's own use, released by Unpin.
  }
  TransientUse use(readiness);
  std::optional<absl::Time> deadline;
  return readiness->Wait(side, &deadline, timeout, operation);
}

void Unpin(int fd) {
  Readiness* readiness = Readiness::Find(fd);
  if (readiness == nullptr || !readiness->pinned()) return;
  readiness->set_pinned(false);
  // With waiters left it stays, for CancelWait to find, unregister and wake.
  if (readiness->ReleaseUse()) delete readiness;
}
}  // namespace internal

absl::Status WaitRead(int fd, std::optional<absl::Duration> timeout) {
  return WaitFor(fd, Side::kRead, timeout, "gevent::WaitRead");
}

absl::Status WaitWrite(int fd, std::optional<absl::Duration> timeout) {
  return WaitFor(fd, Side::kWrite, timeout, "gevent::WaitWrite");
}

absl::Status WaitReadWrite(int fd, std::optional<absl::Duration> timeout) {
  return WaitFor(fd, Side::kEither, timeout, "gevent::WaitReadWrite");
}

int CancelWait(int fd) {
  return CancelWait(fd, ErrnoError(EBADF, "gevent::CancelWait", absl::StrCat("(fd ", fd, ")"),
                                   "File descriptor was closed in another greenlet: "));
}

int CancelWait(int fd, absl::Status error) {
  if (error.ok()) throw UsageError("gevent::CancelWait: the error must not be OK");
  Readiness* readiness = Readiness::Find(fd);
  if (readiness == nullptr) return 0;
  // A wait's own registration goes now: the caller is about to close the fd.
  if (readiness->transient()) readiness->Unregister();
  return readiness->Cancel(Side::kEither, std::move(error));
}

}  // namespace gevent
