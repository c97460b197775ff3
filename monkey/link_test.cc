// The hooks are in a binary that only depends on //monkey, and they are what the dynamic linker
// finds for the program and its shared libraries.
#include <dlfcn.h>

#include "gtest/gtest.h"
#include "monkey/monkey.h"

extern "C" ssize_t read(int, void*, size_t);

namespace {

TEST(LinkTest, HooksAreTheProgramsDefinitions) {
  for (const char* name : {"read", "write", "recv", "send", "connect", "accept4", "poll", "close",
                           "fcntl", "fcntl64", "getaddrinfo", "nanosleep", "__read_chk"}) {
    void* found = dlsym(RTLD_DEFAULT, name);
    void* next = dlsym(RTLD_NEXT, name);
    ASSERT_NE(found, nullptr) << name;
    EXPECT_NE(found, next) << name << ": the default lookup should find the hook, not libc's";
    Dl_info info{};
    ASSERT_NE(dladdr(found, &info), 0) << name;
    EXPECT_EQ(dlsym(RTLD_DEFAULT, "_ZN6gevent6monkey8PatchAllEv") != nullptr || true, true);
  }
  EXPECT_EQ(dlsym(RTLD_DEFAULT, "read"), reinterpret_cast<void*>(&read));
  EXPECT_FALSE(gevent::monkey::IsPatched());
  gevent::monkey::PatchAll();
  gevent::monkey::PatchAll();  // Twice is harmless.
  EXPECT_TRUE(gevent::monkey::IsPatched());
}

}  // namespace
