// Stacks for greenlets: guarded mmap stacks by default, an opt-in unguarded slab mode for very
// many greenlets, and a per-thread pool that reuses both so that spawning is cheap.
//
// Guarded stacks (StackKind::kGuarded) are one mmap each with a PROT_NONE page below the stack, so
// an overflow faults at once. Each costs two kernel mappings, and `vm.max_map_count` (65530 on the
// machines this project targets) caps a process at roughly 32k of them. When the guard page cannot
// be made, allocation fails with StackError: a guarded request never silently yields an unguarded
// stack.
//
// Unguarded stacks (StackKind::kUnguarded) are carved from large slabs (two mappings per slab, not
// per stack), so a million can exist at once. Overflow is not prevented; it is detected: a canary
// word sits just below each stack and is checked whenever its greenlet switches away and when the
// stack is released. A smashed canary aborts the process with a message naming the stack. The
// canary lives in the top page of the neighbouring slot, which is resident anyway, so it costs no
// extra page per greenlet.
//
// Memory is reserved with MAP_NORESERVE: only the pages a greenlet touches become resident.
//
// Thread-safety: a StackPool belongs to one thread (StackPool::ThisThread()); stacks must be
// released on the thread that allocated them. The pool and everything it cached are unmapped when
// the thread exits, so every stack must be released before that.
#ifndef GREENLET_STACK_H_
#define GREENLET_STACK_H_

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/errors.h"

namespace greenlet {

// StackKind says how a stack is protected against overflow.
enum class StackKind {
  kGuarded,    // own mapping with a PROT_NONE guard page: overflow faults immediately.
  kUnguarded,  // slab slot with a canary checked on switch: overflow is detected, not prevented.
};

inline constexpr std::size_t kDefaultStackSize = 128 * 1024;
inline constexpr std::size_t kMinStackSize = 16 * 1024;

// StackOptions choose a greenlet's stack. `size` is rounded up to whole pages and must be at least
// kMinStackSize (smaller sizes are rejected with gevent::UsageError naming the size). For
// kUnguarded the slot is that size, and its top 64 bytes hold the canary of the slot above, so the
// usable stack is 64 bytes smaller.
struct StackOptions {
  std::size_t size = kDefaultStackSize;
  StackKind kind = StackKind::kGuarded;
};

// StackError: a stack could not be allocated (mmap failed, or a guard page could not be made).
// A resource failure, not misuse (base/errors.h). The message names the failing call, the errno
// text and name (gevent::ErrnoText) and the likely limit.
class StackError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Stack is one allocated stack. The usable memory is [low, low + size); it grows down from the top.
struct Stack {
  void* low = nullptr;
  std::size_t size = 0;
  StackKind kind = StackKind::kGuarded;
  // Unguarded only: the word just below `low`; null for a slab's first slot, which sits on the
  // slab's guard page instead.
  std::uint64_t* canary = nullptr;
  unsigned valgrind_id = 0;         // Registration with valgrind (0 outside valgrind).

  void* top() const { return static_cast<char*>(low) + size; }
  explicit operator bool() const { return low != nullptr; }
};

// CanaryIntact returns false when an unguarded stack's canary was overwritten (always true for a
// guarded stack).
bool CanaryIntact(const Stack& stack);

// AbortOnStackOverflow prints which stack overflowed and aborts. Never returns.
[[noreturn]] void AbortOnStackOverflow(const Stack& stack);

// StackPool hands out stacks and keeps released ones for reuse. Thread-compatible; use the
// instance of the calling thread.
class StackPool {
 public:
  // ThisThread returns the calling thread's pool, creating it on first use.
  static StackPool& ThisThread();

  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  // ~StackPool unmaps cached stacks and unguarded slabs. Stacks still in use at that point are a
  // bug in the caller (their greenlets outlived their thread); they are reported on stderr.
  ~StackPool();

  // Allocate returns a stack as `options` say, reusing a cached one when possible.
  // Throws gevent::UsageError for a size below kMinStackSize and StackError when the memory or
  // (for kGuarded) the guard page cannot be had.
  Stack Allocate(const StackOptions& options);

  // Release returns `stack` to the pool. Aborts if an unguarded stack's canary was overwritten.
  void Release(const Stack& stack);

  // ReleaseCached unmaps every cached guarded stack (unguarded slabs stay until the thread exits).
  void ReleaseCached();

  std::size_t in_use() const { return in_use_; }
  std::size_t cached() const;
  std::size_t slab_count() const { return slabs_.size(); }

  // Guarded stacks kept for reuse per size; more are unmapped on release.
  static constexpr std::size_t kMaxCachedGuardedPerSize = 64;

 private:
  struct Bucket {
    std::size_t size;
    StackKind kind;
    std::vector<Stack> free;
  };
  struct Slab {
    void* base;
    std::size_t bytes;
  };

  Bucket& BucketFor(std::size_t size, StackKind kind);
  void AddSlab(Bucket& bucket);

  std::vector<Bucket> buckets_;
  std::vector<Slab> slabs_;
  std::size_t in_use_ = 0;
};

// AllocateGuardedStack maps one stack of `size` usable bytes (a page multiple) with a guard page
// below it. Throws StackError, never returns an unguarded stack. FreeGuardedStack unmaps it.
Stack AllocateGuardedStack(std::size_t size);
void FreeGuardedStack(const Stack& stack);

// RoundStackSize validates `size` (>= kMinStackSize, else gevent::UsageError) and rounds it up
// to a whole number of pages.
std::size_t RoundStackSize(std::size_t size);

}  // namespace greenlet

#endif  // GREENLET_STACK_H_
