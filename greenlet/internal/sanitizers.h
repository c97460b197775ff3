// Sanitizer hooks for stack switching. AddressSanitizer and ThreadSanitizer must be told when the
// thread moves to another stack, or they report false errors (or miss real ones). Without a
// sanitizer every hook compiles to nothing.
#ifndef GREENLET_INTERNAL_SANITIZERS_H_
#define GREENLET_INTERNAL_SANITIZERS_H_

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define GREENLET_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GREENLET_HAVE_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define GREENLET_HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GREENLET_HAVE_TSAN 1
#endif
#endif

#if defined(GREENLET_HAVE_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(GREENLET_HAVE_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

// Valgrind needs to be told where each stack is, or it reports every write to a fresh stack. The
// client requests cost a few instructions outside valgrind; without its header they vanish.
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define GREENLET_HAVE_VALGRIND 1
#endif
#endif

namespace greenlet::internal {

inline unsigned ValgrindRegisterStack(void* low, void* top) {
#if defined(GREENLET_HAVE_VALGRIND)
  return VALGRIND_STACK_REGISTER(low, top);
#else
  return 0;
#endif
}

inline void ValgrindDeregisterStack(unsigned id) {
#if defined(GREENLET_HAVE_VALGRIND)
  VALGRIND_STACK_DEREGISTER(id);
#endif
}


// AsanStartSwitch is called just before leaving the current stack for [bottom, bottom + size).
// `fake_stack_save` is null when the current stack is never coming back (its greenlet finished).
inline void AsanStartSwitch(void** fake_stack_save, const void* bottom, std::size_t size) {
#if defined(GREENLET_HAVE_ASAN)
  __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
#endif
}

// AsanFinishSwitch is called first thing after arriving on a stack; it reports the stack we came
// from, which is how the thread's own (main) stack bounds are learnt.
inline void AsanFinishSwitch(void* fake_stack, const void** bottom_old, std::size_t* size_old) {
#if defined(GREENLET_HAVE_ASAN)
  __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
#endif
}

// AsanUnpoison clears stale poisoning (from frames that never returned) before a stack is reused.
inline void AsanUnpoison(void* addr, std::size_t size) {
#if defined(GREENLET_HAVE_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(addr, size);
#endif
}

inline void* TsanCurrentFiber() {
#if defined(GREENLET_HAVE_TSAN)
  return __tsan_get_current_fiber();
#else
  return nullptr;
#endif
}

inline void* TsanCreateFiber() {
#if defined(GREENLET_HAVE_TSAN)
  return __tsan_create_fiber(0);
#else
  return nullptr;
#endif
}

inline void TsanDestroyFiber(void* fiber) {
#if defined(GREENLET_HAVE_TSAN)
  if (fiber != nullptr) __tsan_destroy_fiber(fiber);
#endif
}

inline void TsanSwitchToFiber(void* fiber) {
#if defined(GREENLET_HAVE_TSAN)
  __tsan_switch_to_fiber(fiber, 0);
#endif
}

}  // namespace greenlet::internal

#endif  // GREENLET_INTERNAL_SANITIZERS_H_
