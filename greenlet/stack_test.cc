// Tests for greenlet/stack.h: guarded stacks, unguarded slab stacks and the per-thread StackPool.
//
// Several tests look at the process's memory map (/proc/self/maps) to check what the kernel really
// holds, not only what the pool reports.
#include "greenlet/stack.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace greenlet {
namespace {

using ::testing::HasSubstr;

std::size_t Page() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

// One line of /proc/self/maps.
struct Mapping {
  std::uintptr_t start;
  std::uintptr_t end;
  char perms[5];
};

// ReadMaps fills `out` (cleared first, capacity kept) with the process's mappings, sorted by
// address. Callers that run close to vm.max_map_count reserve `out` beforehand, so that reading
// the map needs no new mapping of its own.
void ReadMaps(std::vector<Mapping>& out) {
  out.clear();
  std::FILE* f = std::fopen("/proc/self/maps", "r");
  ASSERT_NE(f, nullptr) << std::strerror(errno);
  char line[512];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long start = 0, end = 0;
    Mapping m{};
    if (std::sscanf(line, "%lx-%lx %4s", &start, &end, m.perms) == 3) {
      m.start = start;
      m.end = end;
      out.push_back(m);
    }
    // A long line (a long path) continues without a newline; skip the rest of it.
    while (std::strchr(line, '\n') == nullptr && std::fgets(line, sizeof line, f) != nullptr) {
    }
  }
  std::fclose(f);
}

std::size_t CountMappings() {
  std::vector<Mapping> maps;
  ReadMaps(maps);
  return maps.size();
}

// Find returns the mapping that contains `addr`, or nullptr.
const Mapping* Find(const std::vector<Mapping>& maps, const void* addr) {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto it = std::upper_bound(maps.begin(), maps.end(), a,
                             [](std::uintptr_t x, const Mapping& m) { return x < m.start; });
  if (it == maps.begin()) return nullptr;
  --it;
  return a < it->end ? &*it : nullptr;
}

// GuardProblem returns "" when `stack` is a readable/writable range with a PROT_NONE page right
// below it, else a description of what is wrong.
std::string GuardProblem(const std::vector<Mapping>& maps, const Stack& stack) {
  char* low = static_cast<char*>(stack.low);
  const Mapping* body = Find(maps, low);
  const Mapping* top = Find(maps, low + stack.size - 1);
  const Mapping* guard = Find(maps, low - Page());
  if (body == nullptr || top == nullptr) return "stack memory is not mapped";
  if (std::string(body->perms) != "rw-p" || std::string(top->perms) != "rw-p") {
    return "stack memory is " + std::string(body->perms) + ", not rw-p";
  }
  if (guard == nullptr) return "nothing is mapped below the stack";
  if (std::string(guard->perms) != "---p") {
    return "the page below the stack is " + std::string(guard->perms) + ", not ---p";
  }
  if (guard->end != reinterpret_cast<std::uintptr_t>(low)) return "the guard does not end at low";
  return "";
}

// IsMapped asks the kernel whether the page holding `addr` is mapped (mincore fails with ENOMEM
// for unmapped memory). Allocates nothing.
bool IsMapped(const void* addr) {
  const auto page = reinterpret_cast<std::uintptr_t>(addr) & ~(Page() - 1);
  unsigned char vec = 0;
  return mincore(reinterpret_cast<void*>(page), Page(), &vec) == 0 || errno != ENOMEM;
}

StackOptions Guarded(std::size_t size = kMinStackSize) { return {size, StackKind::kGuarded}; }
StackOptions Unguarded(std::size_t size = kMinStackSize) { return {size, StackKind::kUnguarded}; }

// Every test must give back what it took from the thread's pool.
class StackTest : public ::testing::Test {
 protected:
  void SetUp() override { in_use_at_start_ = StackPool::ThisThread().in_use(); }
  void TearDown() override {
    EXPECT_EQ(StackPool::ThisThread().in_use(), in_use_at_start_)
        << "the test did not release every stack it allocated";
  }

 private:
  std::size_t in_use_at_start_ = 0;
};

using StackDeathTest = StackTest;

TEST_F(StackTest, GuardedStackHasAProtNoneGuardPageBelowIt) {
  StackPool& pool = StackPool::ThisThread();
  const Stack stack = pool.Allocate(Guarded(kDefaultStackSize));
  ASSERT_TRUE(stack);
  EXPECT_EQ(stack.kind, StackKind::kGuarded);
  EXPECT_EQ(stack.canary, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(stack.low) % Page(), 0u);

  std::vector<Mapping> maps;
  ReadMaps(maps);
  EXPECT_EQ(GuardProblem(maps, stack), "");

  // The whole usable range is writable.
  std::memset(stack.low, 0xab, stack.size);
  pool.Release(stack);
}

TEST_F(StackTest, FreshlyMappedGuardedStackIsGuarded) {
  const Stack stack = AllocateGuardedStack(RoundStackSize(kMinStackSize));
  std::vector<Mapping> maps;
  ReadMaps(maps);
  EXPECT_EQ(GuardProblem(maps, stack), "");
  FreeGuardedStack(stack);
  EXPECT_FALSE(IsMapped(stack.low));
  EXPECT_FALSE(IsMapped(static_cast<char*>(stack.low) - Page()));
}

TEST_F(StackDeathTest, WritingBelowAGuardedStackFaults) {
  StackPool& pool = StackPool::ThisThread();
  const Stack stack = pool.Allocate(Guarded());
  volatile char* below = static_cast<char*>(stack.low) - 1;
  EXPECT_DEATH(*below = 1, "");
  pool.Release(stack);
}

TEST_F(StackTest, GuardedAllocationFailsWithAClearErrorWhenMappingsRunOut) {
  StackPool& pool = StackPool::ThisThread();
  // An unguarded slab with a free slot, made while mappings are still plentiful.
  pool.Release(pool.Allocate(Unguarded()));

  constexpr std::size_t kMaxIterations = 100000;  // vm.max_map_count allows ~32k; never loop on.
  std::vector<Stack> stacks;
  stacks.reserve(kMaxIterations);
  // Reserved now: near the limit, reading the map must not need a new mapping for its storage.
  std::vector<Mapping> maps;
  maps.reserve(2 * kMaxIterations + 1000);

  std::string error;
  for (std::size_t i = 0; i < kMaxIterations; ++i) {
    try {
      stacks.push_back(pool.Allocate(Guarded()));
    } catch (const StackError& e) {
      error = e.what();
      break;
    }
  }
  ASSERT_FALSE(error.empty()) << "allocated " << stacks.size()
                              << " guarded stacks without hitting vm.max_map_count";
  EXPECT_THAT(error, HasSubstr("vm.max_map_count"));
  EXPECT_THAT(error, HasSubstr("StackKind::kUnguarded"));
  // Each guarded stack costs two mappings, so with the limit at 65530 thousands fit.
  EXPECT_GT(stacks.size(), 1000u);

  // Every stack handed out before the failure is guarded, including the last one: the pool never
  // falls back to an unguarded stack.
  ReadMaps(maps);
  std::size_t unguarded = 0;
  std::string first_problem;
  for (const Stack& s : stacks) {
    const std::string problem = GuardProblem(maps, s);
    if (!problem.empty() && unguarded++ == 0) first_problem = problem;
  }
  EXPECT_EQ(unguarded, 0u) << "e.g. " << first_problem;
  EXPECT_EQ(GuardProblem(maps, stacks.back()), "");

  // At the limit an unguarded stack can still be had: it comes from an existing slab.
  const Stack u = pool.Allocate(Unguarded());
  EXPECT_EQ(u.kind, StackKind::kUnguarded);
  std::memset(u.low, 0, u.size);
  EXPECT_TRUE(CanaryIntact(u));
  pool.Release(u);

  for (const Stack& s : stacks) pool.Release(s);
  pool.ReleaseCached();
  EXPECT_FALSE(IsMapped(stacks.back().low));

  // With the mappings back, guarded allocation works again.
  const Stack again = pool.Allocate(Guarded());
  ReadMaps(maps);
  EXPECT_EQ(GuardProblem(maps, again), "");
  pool.Release(again);
  pool.ReleaseCached();
}

TEST_F(StackTest, UnguardedStacksShareSlabMappings) {
  constexpr std::size_t kCount = 50000;
  StackPool pool;  // A pool of its own, so that slab_count() counts only this test's slabs.
  std::vector<Stack> stacks;
  stacks.reserve(kCount);
  const std::size_t maps_before = CountMappings();

  for (std::size_t i = 0; i < kCount; ++i) stacks.push_back(pool.Allocate(Unguarded()));

  // Slabs hold about 8 MiB (at least 16 slots), so 16 KiB stacks come 512 to a slab.
  const std::size_t slots_per_slab = (8u << 20) / kMinStackSize;
  EXPECT_LE(pool.slab_count(), kCount / slots_per_slab + 1);
  EXPECT_GE(pool.slab_count(), kCount / slots_per_slab);
  const std::size_t maps_after = CountMappings();
  EXPECT_LT(maps_after, maps_before + kCount / 100)
      << "before " << maps_before << ", after " << maps_after;
  EXPECT_EQ(pool.in_use(), kCount);

  // Distinct, non-overlapping, canaries set on every slot but each slab's first (which sits on
  // the slab's guard page).
  std::vector<std::uintptr_t> lows;
  lows.reserve(kCount);
  std::size_t without_canary = 0;
  for (const Stack& s : stacks) {
    lows.push_back(reinterpret_cast<std::uintptr_t>(s.low));
    ASSERT_TRUE(CanaryIntact(s));
    if (s.canary == nullptr) ++without_canary;
  }
  EXPECT_EQ(without_canary, pool.slab_count());
  std::sort(lows.begin(), lows.end());
  for (std::size_t i = 1; i < lows.size(); ++i) {
    ASSERT_GE(lows[i] - lows[i - 1], stacks[0].size);
  }

  for (const Stack& s : stacks) pool.Release(s);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_EQ(pool.cached(), pool.slab_count() * slots_per_slab);
}

TEST_F(StackTest, PoolReusesAReleasedStack) {
  StackPool& pool = StackPool::ThisThread();
  for (const StackOptions& options : {Guarded(), Unguarded(), Guarded(kDefaultStackSize)}) {
    const Stack first = pool.Allocate(options);
    pool.Release(first);
    const Stack second = pool.Allocate(options);
    EXPECT_EQ(second.low, first.low);
    EXPECT_EQ(second.size, first.size);
    EXPECT_EQ(second.kind, options.kind);
    EXPECT_TRUE(CanaryIntact(second));
    pool.Release(second);
  }
}

// AllocateWithCanary returns an unguarded stack that has a canary: a slab's first slot has none
// (it sits on the slab's guard page), so one taken on the way is kept in `held`.
Stack AllocateWithCanary(StackPool& pool, std::vector<Stack>& held) {
  for (;;) {
    const Stack s = pool.Allocate(Unguarded());
    if (s.canary != nullptr) return s;
    held.push_back(s);
  }
}

TEST_F(StackTest, ReusedUnguardedStackGetsAFreshCanary) {
  StackPool& pool = StackPool::ThisThread();
  std::vector<Stack> held;
  const Stack first = AllocateWithCanary(pool, held);
  pool.Release(first);
  // Something scribbled on the canary while the slot was free; handing the slot out again
  // re-arms it.
  const std::uint64_t saved = *first.canary;
  *first.canary = 0;
  const Stack second = pool.Allocate(Unguarded());
  ASSERT_EQ(second.low, first.low);
  EXPECT_TRUE(CanaryIntact(second));
  EXPECT_EQ(*second.canary, saved);
  pool.Release(second);
  for (const Stack& h : held) pool.Release(h);
}

TEST_F(StackTest, SizesAreRoundedUpToPages) {
  const std::size_t page = Page();
  EXPECT_EQ(RoundStackSize(kMinStackSize), kMinStackSize);
  EXPECT_EQ(RoundStackSize(kMinStackSize + 1), kMinStackSize + page);
  EXPECT_EQ(RoundStackSize(kMinStackSize + page - 1), kMinStackSize + page);
  EXPECT_EQ(RoundStackSize(kDefaultStackSize), kDefaultStackSize);

  StackPool& pool = StackPool::ThisThread();
  const Stack odd = pool.Allocate(Guarded(kMinStackSize + 123));
  EXPECT_EQ(odd.size, kMinStackSize + page);
  std::vector<Mapping> maps;
  ReadMaps(maps);
  EXPECT_EQ(GuardProblem(maps, odd), "");
  pool.Release(odd);

  // A request rounded to the same size shares the cache: the released stack comes back.
  const Stack same = pool.Allocate(Guarded(kMinStackSize + page));
  EXPECT_EQ(same.low, odd.low);
  pool.Release(same);

  const Stack slot = pool.Allocate(Unguarded(kMinStackSize + 123));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(slot.low) % page, 0u);
  EXPECT_GT(slot.size, kMinStackSize);
  pool.Release(slot);
}

TEST_F(StackTest, TooSmallSizeIsRejectedWithTheSize) {
  StackPool& pool = StackPool::ThisThread();
  const std::size_t in_use = pool.in_use();
  for (const StackKind kind : {StackKind::kGuarded, StackKind::kUnguarded}) {
    try {
      pool.Allocate({1000, kind});
      ADD_FAILURE() << "a 1000-byte stack was accepted";
    } catch (const gevent::UsageError& e) {
      EXPECT_THAT(e.what(), HasSubstr("1000"));
      EXPECT_THAT(e.what(), HasSubstr(std::to_string(kMinStackSize)));
    }
  }
  EXPECT_THROW(RoundStackSize(kMinStackSize - 1), gevent::UsageError);
  EXPECT_THROW(RoundStackSize(0), gevent::UsageError);
  EXPECT_EQ(pool.in_use(), in_use);
}

TEST_F(StackTest, CachedGuardedStacksAreCapped) {
  constexpr std::size_t kCap = StackPool::kMaxCachedGuardedPerSize;
  StackPool pool;
  std::vector<Stack> stacks;
  for (std::size_t i = 0; i < kCap + 10; ++i) stacks.push_back(pool.Allocate(Guarded()));
  for (const Stack& s : stacks) pool.Release(s);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_LE(pool.cached(), kCap);
  EXPECT_EQ(pool.cached(), kCap);
  // The ones over the cap were unmapped (the first kCap released were kept).
  for (std::size_t i = kCap; i < stacks.size(); ++i) EXPECT_FALSE(IsMapped(stacks[i].low)) << i;
  for (std::size_t i = 0; i < kCap; ++i) EXPECT_TRUE(IsMapped(stacks[i].low)) << i;

  // The cap is per size: another size has its own.
  std::vector<Stack> big;
  for (std::size_t i = 0; i < 3; ++i) big.push_back(pool.Allocate(Guarded(kDefaultStackSize)));
  for (const Stack& s : big) pool.Release(s);
  EXPECT_EQ(pool.cached(), kCap + 3);
}

TEST_F(StackTest, ReleaseCachedUnmapsGuardedStacks) {
  StackPool pool;
  std::vector<Stack> stacks;
  for (int i = 0; i < 10; ++i) stacks.push_back(pool.Allocate(Guarded()));
  const Stack unguarded = pool.Allocate(Unguarded());
  for (const Stack& s : stacks) pool.Release(s);
  const std::size_t cached_with_guarded = pool.cached();

  for (const Stack& s : stacks) {
    EXPECT_TRUE(IsMapped(s.low));
    EXPECT_TRUE(IsMapped(static_cast<char*>(s.low) - Page()));
  }
  pool.ReleaseCached();
  EXPECT_EQ(pool.cached(), cached_with_guarded - stacks.size());
  for (const Stack& s : stacks) {
    EXPECT_FALSE(IsMapped(s.low));
    EXPECT_FALSE(IsMapped(static_cast<char*>(s.low) - Page()));
  }
  // Unguarded slabs stay, and the stack in use on them is untouched.
  EXPECT_EQ(pool.slab_count(), 1u);
  EXPECT_TRUE(IsMapped(unguarded.low));
  EXPECT_TRUE(CanaryIntact(unguarded));
  pool.Release(unguarded);

  // A new guarded stack after ReleaseCached is freshly mapped and guarded.
  const Stack fresh = pool.Allocate(Guarded());
  std::vector<Mapping> maps;
  ReadMaps(maps);
  EXPECT_EQ(GuardProblem(maps, fresh), "");
  pool.Release(fresh);
}

TEST_F(StackTest, CanaryIntactUntilOverwritten) {
  StackPool& pool = StackPool::ThisThread();
  std::vector<Stack> held;
  const Stack a = AllocateWithCanary(pool, held);
  const Stack b = AllocateWithCanary(pool, held);
  ASSERT_NE(a.canary, nullptr);
  ASSERT_NE(b.canary, nullptr);
  // The canary sits below the usable range.
  EXPECT_LT(reinterpret_cast<char*>(a.canary + 1), static_cast<char*>(a.low) + 1);
  EXPECT_TRUE(CanaryIntact(a));
  EXPECT_TRUE(CanaryIntact(b));

  // Using every byte of a stack disturbs neither its own canary nor a neighbour's.
  std::memset(a.low, 0xff, a.size);
  std::memset(b.low, 0xff, b.size);
  EXPECT_TRUE(CanaryIntact(a));
  EXPECT_TRUE(CanaryIntact(b));

  // One byte past the bottom is detected.
  const std::uint64_t saved = *a.canary;
  reinterpret_cast<unsigned char*>(a.canary)[3] ^= 0x01;
  EXPECT_FALSE(CanaryIntact(a));
  EXPECT_TRUE(CanaryIntact(b));
  // Another stack's canary value does not pass either: canaries depend on their address.
  *a.canary = *b.canary;
  EXPECT_FALSE(CanaryIntact(a));
  *a.canary = saved;
  EXPECT_TRUE(CanaryIntact(a));

  pool.Release(b);
  pool.Release(a);
  for (const Stack& h : held) pool.Release(h);

  // Guarded stacks have no canary and always pass.
  const Stack g = pool.Allocate(Guarded());
  EXPECT_EQ(g.canary, nullptr);
  EXPECT_TRUE(CanaryIntact(g));
  pool.Release(g);
}

TEST_F(StackDeathTest, ReleasingAnUnguardedStackWithASmashedCanaryAborts) {
  EXPECT_DEATH(
      {
        StackPool& pool = StackPool::ThisThread();
        std::vector<Stack> held;
        const Stack s = AllocateWithCanary(pool, held);
        // What an overflow does: it writes on below the stack's low end.
        std::memset(reinterpret_cast<char*>(s.canary), 0, sizeof *s.canary);
        pool.Release(s);
      },
      "stack overflow detected");
}

TEST_F(StackDeathTest, AbortOnStackOverflowNamesTheStack) {
  StackPool& pool = StackPool::ThisThread();
  const Stack s = pool.Allocate(Unguarded());
  char expected[64];
  std::snprintf(expected, sizeof expected, "%p", s.low);
  EXPECT_DEATH(AbortOnStackOverflow(s), std::string("stack overflow detected.*") + expected);
  pool.Release(s);
}

TEST_F(StackTest, EachThreadHasItsOwnPool) {
  StackPool* const main_pool = &StackPool::ThisThread();
  EXPECT_EQ(&StackPool::ThisThread(), main_pool);
  const Stack mine = main_pool->Allocate(Unguarded());
  const std::size_t main_in_use = main_pool->in_use();

  StackPool* other_pool = nullptr;
  std::size_t other_in_use = 0;
  std::thread([&] {
    other_pool = &StackPool::ThisThread();
    const Stack theirs = other_pool->Allocate(Unguarded());
    other_in_use = other_pool->in_use();
    other_pool->Release(theirs);
  }).join();

  EXPECT_NE(other_pool, main_pool);
  EXPECT_EQ(other_in_use, 1u);
  EXPECT_EQ(main_pool->in_use(), main_in_use);
  main_pool->Release(mine);
}

}  // namespace
}  // namespace greenlet
