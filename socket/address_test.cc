#include "socket/address.h"

#include <sys/socket.h>

#include <string>
#include <type_traits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace gevent {
namespace {

using ::testing::HasSubstr;

static_assert(std::is_copy_constructible_v<SocketAddress>);

TEST(SocketAddressTest, ParsesNumericAddressesAndPrintsThemBack) {
  for (const char* text : {"127.0.0.1:80", "[::1]:8080", "0.0.0.0:0", "[::]:65535",
                           "/tmp/x.sock", "@abstract-name"}) {
    absl::StatusOr<SocketAddress> a = SocketAddress::Parse(text);
    ASSERT_TRUE(a.ok()) << text << ": " << a.status();
    EXPECT_EQ(a->ToString(), text);
    absl::StatusOr<SocketAddress> again = SocketAddress::Parse(a->ToString());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *a);
  }
  absl::StatusOr<SocketAddress> any = SocketAddress::Parse(":9000");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->ToString(), "0.0.0.0:9000");
  EXPECT_EQ(any->family(), AF_INET);
  EXPECT_EQ(SocketAddress::Parse("[::1]:7")->family(), AF_INET6);
  EXPECT_EQ(SocketAddress::Parse("[::1]:7")->port(), 7);
  EXPECT_EQ(SocketAddress::Parse("unix:rel.sock")->ToString(), "rel.sock");
  EXPECT_EQ(SocketAddress().ToString(), "(empty)");
}

TEST(SocketAddressTest, RejectsBadAddressStringsWithTheReason) {
  struct Case {
    const char* text;
    const char* reason;
  } cases[] = {
      {"", "empty address"},
      {"127.0.0.1", "expected host:port"},
      {"127.0.0.1:", "missing port"},
      {"127.0.0.1:65536", "bad port \"65536\""},
      {"127.0.0.1:-1", "bad port"},
      {"127.0.0.1:8x", "bad port"},
      {"300.1.1.1:80", "is not a numeric IP address"},
      {"example.com:80", "host names are resolved by gevent::Resolve"},
      {"::1:80", "an IPv6 address needs brackets"},
      {"[::1:80", "missing ']'"},
      {"[::1]80", "expected \":port\" after ']'"},
      {"[1.2.3.4]:80", "brackets hold an IPv6 address"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<SocketAddress> a = SocketAddress::Parse(c.text);
    ASSERT_FALSE(a.ok()) << c.text;
    EXPECT_TRUE(absl::IsInvalidArgument(a.status())) << a.status();
    EXPECT_THAT(std::string(a.status().message()), HasSubstr(c.reason)) << c.text;
  }
  absl::StatusOr<SocketAddress> long_path = SocketAddress::Unix("/" + std::string(200, 'x'));
  ASSERT_FALSE(long_path.ok());
  EXPECT_THAT(std::string(long_path.status().message()), HasSubstr("is too long"));
}

// ----- TCP -----

}  // namespace
}  // namespace gevent
