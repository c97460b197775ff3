#include "greenlet/stack.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/errno.h"
#include "greenlet/internal/sanitizers.h"

namespace greenlet {
namespace {

std::size_t PageSize() {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// The canary value depends on its address, so a stray copy of another canary does not pass.
constexpr std::uint64_t kCanaryMagic = 0x9e3779b97f4a7c15ULL;
std::uint64_t CanaryValue(const std::uint64_t* where) {
  return kCanaryMagic ^ reinterpret_cast<std::uintptr_t>(where);
}

// Unguarded slots keep their top bytes free: the slot above keeps its canary there.
constexpr std::size_t kCanaryGap = 64;
// Slabs hold at least this many slots, and about this many bytes.
constexpr std::size_t kMinSlotsPerSlab = 16;
constexpr std::size_t kTargetSlabBytes = 8 * 1024 * 1024;

void* MapNoReserve(std::size_t bytes, const char* what) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    throw StackError(std::string("greenlet: mmap of ") + std::to_string(bytes) + " bytes for " +
                     what + " failed: " + gevent::ErrnoText(err) +
                     (err == ENOMEM
                          ? " (out of address space or memory, or the process has reached "
                            "vm.max_map_count: each guarded stack costs two mappings. "
                            "Use fewer greenlets or StackKind::kUnguarded)"
                          : ""));
  }
  return p;
}

// ProtectGuard turns the first page at `base` into a guard page or throws (after unmapping).
void ProtectGuard(void* base, std::size_t mapped_bytes, const char* what) {
  if (mprotect(base, PageSize(), PROT_NONE) != 0) {
    const int err = errno;
    munmap(base, mapped_bytes);
    throw StackError(std::string("greenlet: cannot make the guard page for ") + what +
                     ": mprotect failed: " + gevent::ErrnoText(err) +
                     " (each guarded stack costs two memory mappings; the process has probably "
                     "reached vm.max_map_count, about 32k guarded stacks. Use fewer greenlets or "
                     "StackKind::kUnguarded)");
  }
}

StackPool*& ThreadPoolSlot() {
  thread_local StackPool* pool = nullptr;
  return pool;
}

}  // namespace

std::size_t RoundStackSize(std::size_t size) {
  if (size < kMinStackSize) {
    throw gevent::UsageError("greenlet: stack size " + std::to_string(size) +
                             " is below the minimum of " + std::to_string(kMinStackSize) +
                             " bytes");
  }
  const std::size_t page = PageSize();
  return (size + page - 1) / page * page;
}

bool CanaryIntact(const Stack& stack) {
  return stack.canary == nullptr || *stack.canary == CanaryValue(stack.canary);
}

void AbortOnStackOverflow(const Stack& stack) {
  std::fprintf(stderr,
               "greenlet: stack overflow detected: the canary below the unguarded stack "
               "[%p, %p) (%zu bytes) was overwritten. Give this greenlet a larger stack or use "
               "StackKind::kGuarded to find the overflowing call.\n",
               stack.low, stack.top(), stack.size);
  std::abort();
}

Stack AllocateGuardedStack(std::size_t size) {
  const std::size_t page = PageSize();
  const std::size_t bytes = size + page;
  void* base = MapNoReserve(bytes, "a guarded greenlet stack");
  ProtectGuard(base, bytes, "a greenlet stack");
  Stack stack;
  stack.low = static_cast<char*>(base) + page;
  stack.size = size;
  stack.kind = StackKind::kGuarded;
  stack.valgrind_id = internal::ValgrindRegisterStack(stack.low, stack.top());
  return stack;
}

void FreeGuardedStack(const Stack& stack) {
  const std::size_t page = PageSize();
  internal::ValgrindDeregisterStack(stack.valgrind_id);
  munmap(static_cast<char*>(stack.low) - page, stack.size + page);
}

StackPool& StackPool::ThisThread() {
  StackPool*& slot = ThreadPoolSlot();
  if (slot == nullptr) {
    // Owned by a thread_local so that it is unmapped at thread exit; the raw pointer keeps the
    // fast path free of the thread_local's initialisation guard.
    thread_local std::unique_ptr<StackPool> owner(new StackPool);
    slot = owner.get();
  }
  return *slot;
}

StackPool::~StackPool() {
  if (in_use_ != 0) {
    std::fprintf(stderr,
                 "greenlet: %zu greenlet stack(s) still in use when their thread's stack pool was "
                 "destroyed; their greenlets outlived the thread\n",
                 in_use_);
  }
  ReleaseCached();
  for (const Bucket& b : buckets_) {
    for (const Stack& s : b.free) internal::ValgrindDeregisterStack(s.valgrind_id);
  }
  for (const Slab& slab : slabs_) munmap(slab.base, slab.bytes);
  if (ThreadPoolSlot() == this) ThreadPoolSlot() = nullptr;
}

StackPool::Bucket& StackPool::BucketFor(std::size_t size, StackKind kind) {
  for (Bucket& b : buckets_) {
    if (b.size == size && b.kind == kind) return b;
  }
  buckets_.push_back(Bucket{size, kind, {}});
  return buckets_.back();
}

void StackPool::AddSlab(Bucket& bucket) {
  // Layout: [guard page][slot 0][slot 1]...; slot k's canary is in the last bytes of slot k-1,
  // so overflow of slot k hits its canary first. Slot 0 needs none: it overflows into the guard.
  const std::size_t page = PageSize();
  const std::size_t slots = std::max(kMinSlotsPerSlab, kTargetSlabBytes / bucket.size);
  const std::size_t bytes = page + slots * bucket.size;
  char* base = static_cast<char*>(MapNoReserve(bytes, "an unguarded stack slab"));
  ProtectGuard(base, bytes, "an unguarded stack slab");
  slabs_.push_back(Slab{base, bytes});
  char* first = base + page;
  // Pushed in reverse so slot 0 is handed out first: each slot's canary then lands in a page the
  // previous slot already touched, and a parked greenlet costs only the pages it touches.
  for (std::size_t i = slots; i-- > 0;) {
    Stack stack;
    stack.low = first + i * bucket.size;
    stack.size = bucket.size - kCanaryGap;
    stack.kind = StackKind::kUnguarded;
    stack.canary =
        i == 0 ? nullptr : reinterpret_cast<std::uint64_t*>(static_cast<char*>(stack.low) - 16);
    stack.valgrind_id = internal::ValgrindRegisterStack(stack.low, stack.top());
    bucket.free.push_back(stack);
  }
}

Stack StackPool::Allocate(const StackOptions& options) {
  const std::size_t size = RoundStackSize(options.size);
  Bucket& bucket = BucketFor(size, options.kind);
  Stack stack;
  if (!bucket.free.empty()) {
    stack = bucket.free.back();
    bucket.free.pop_back();
  } else if (options.kind == StackKind::kGuarded) {
    stack = AllocateGuardedStack(size);
  } else {
    AddSlab(bucket);
    stack = bucket.free.back();
    bucket.free.pop_back();
  }
  if (stack.canary != nullptr) *stack.canary = CanaryValue(stack.canary);
  ++in_use_;
  return stack;
}

void StackPool::Release(const Stack& stack) {
  if (!CanaryIntact(stack)) AbortOnStackOverflow(stack);
  --in_use_;
  internal::AsanUnpoison(stack.low, stack.size);
  const std::size_t slot_size =
      stack.kind == StackKind::kGuarded ? stack.size : stack.size + kCanaryGap;
  Bucket& bucket = BucketFor(slot_size, stack.kind);
  if (stack.kind == StackKind::kGuarded && bucket.free.size() >= kMaxCachedGuardedPerSize) {
    FreeGuardedStack(stack);
    return;
  }
  bucket.free.push_back(stack);
}

void StackPool::ReleaseCached() {
  for (Bucket& b : buckets_) {
    if (b.kind != StackKind::kGuarded) continue;
    for (const Stack& s : b.free) FreeGuardedStack(s);
    b.free.clear();
  }
}

std::size_t StackPool::cached() const {
  std::size_t n = 0;
  for (const Bucket& b : buckets_) n += b.free.size();
  return n;
}

}  // namespace greenlet
