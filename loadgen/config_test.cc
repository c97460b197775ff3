#include "loadgen/config.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace loadgen {
namespace {

// ExpectRejected checks that `config` fails validation with a message naming `flag`.
void ExpectRejected(const Config& config, const std::string& flag) {
  const absl::Status s = Validate(config);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), flag)) << "message: " << s.message();
}

TEST(ConfigTest, DefaultsAreValid) {
  const Config c;
  EXPECT_TRUE(Validate(c).ok());
  EXPECT_EQ(c.clients, 1000);
  EXPECT_EQ(c.duration, absl::Seconds(10));
  EXPECT_EQ(c.message_size, 64);
  EXPECT_EQ(c.pipeline, 1);
  EXPECT_TRUE(c.embedded());
  EXPECT_EQ(c.rate, 0);
}

TEST(ConfigTest, ZeroOrNegativeClientsAreRejected) {
  Config c;
  c.clients = 0;
  ExpectRejected(c, "--clients");
  c.clients = -5;
  ExpectRejected(c, "--clients");
  c.clients = kMaxClients + 1;
  ExpectRejected(c, "--clients");
}

TEST(ConfigTest, NonPositiveDurationIsRejected) {
  Config c;
  c.duration = absl::ZeroDuration();
  ExpectRejected(c, "--duration");
  c.duration = absl::Seconds(-1);
  ExpectRejected(c, "--duration");
  c.duration = absl::InfiniteDuration();
  ExpectRejected(c, "--duration");
}

TEST(ConfigTest, NegativeWarmupIsRejectedButZeroIsFine) {
  Config c;
  c.warmup = absl::ZeroDuration();
  EXPECT_TRUE(Validate(c).ok());
  c.warmup = absl::Milliseconds(-1);
  ExpectRejected(c, "--warmup");
}

TEST(ConfigTest, MessageSizeOutOfRangeIsRejected) {
  Config c;
  c.message_size = 0;
  ExpectRejected(c, "--message_size");
  c.message_size = kMaxMessageSize + 1;
  ExpectRejected(c, "--message_size");
  c.message_size = 1;
  EXPECT_TRUE(Validate(c).ok());
}

TEST(ConfigTest, PipelineZeroIsRejected) {
  Config c;
  c.pipeline = 0;
  ExpectRejected(c, "--pipeline");
}

TEST(ConfigTest, TooManyBytesInFlightAreRejected) {
  Config c;
  c.message_size = 4096;
  c.pipeline = 17;  // 68 KiB.
  ExpectRejected(c, "--pipeline * --message_size");
  c.pipeline = 16;
  EXPECT_TRUE(Validate(c).ok());
}

TEST(ConfigTest, ThreadCountsAreChecked) {
  Config c;
  c.client_threads = 0;
  ExpectRejected(c, "--client_threads");
  c.client_threads = 2;
  c.clients = 1;
  ExpectRejected(c, "--client_threads");
  c = Config();
  c.server_threads = 0;
  ExpectRejected(c, "--server_threads");
}

TEST(ConfigTest, TimeoutsAndRateAreChecked) {
  Config c;
  c.connect_timeout = absl::ZeroDuration();
  ExpectRejected(c, "--connect_timeout");
  c = Config();
  c.response_timeout = absl::Seconds(-1);
  ExpectRejected(c, "--response_timeout");
  c = Config();
  c.rate = -1;
  ExpectRejected(c, "--rate");
  c.rate = std::numeric_limits<double>::quiet_NaN();
  ExpectRejected(c, "--rate");
  c.rate = 5000;
  EXPECT_TRUE(Validate(c).ok());
}

TEST(ConfigTest, MalformedTargetsAreRejected) {
  for (const char* bad : {"localhost", "localhost:", ":8080", "host:http", "host:0", "host:65536",
                          "host:-1", "host:80x", "::1:80", "[::1:80", "[::1]", "[]:80"}) {
    Config c;
    c.target = bad;
    ExpectRejected(c, "--target");
  }
}

TEST(ConfigTest, TargetsParse) {
  absl::StatusOr<Target> t = ParseTarget("127.0.0.1:9000");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->host, "127.0.0.1");
  EXPECT_EQ(t->port, 9000);
  t = ParseTarget("[::1]:65535");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->host, "::1");
  EXPECT_EQ(t->port, 65535);
  t = ParseTarget("echo.example:7");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->host, "echo.example");
}

// Argv builds a mutable argv for CheckArgs.
class Argv {
 public:
  Argv(std::initializer_list<std::string> args) : strings_(args) {
    strings_.insert(strings_.begin(), "loadgen");
    for (auto& s : strings_) pointers_.push_back(s.data());
    pointers_.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(strings_.size()); }
  char** argv() { return pointers_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> pointers_;
};

absl::Status Check(std::initializer_list<std::string> args) {
  Argv a(args);
  return CheckArgs(a.argc(), a.argv());
}

TEST(ConfigTest, CheckArgsAcceptsKnownFlagsInEveryForm) {
  EXPECT_TRUE(Check({}).ok());
  EXPECT_TRUE(Check({"--clients=10", "-duration=2s", "--message_size", "128"}).ok());
  EXPECT_TRUE(Check({"--noprogress", "--progress=false", "--target=127.0.0.1:7"}).ok());
  EXPECT_TRUE(Check({"--clients=10", "--"}).ok());
}

TEST(ConfigTest, CheckArgsRejectsUnknownFlags) {
  const absl::Status s = Check({"--clients=10", "--client=5"});
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_TRUE(absl::StrContains(s.message(), "unknown flag --client")) << s.message();
  EXPECT_FALSE(Check({"--noclients"}).ok());  // "no" only negates booleans.
}

TEST(ConfigTest, CheckArgsRejectsValuesThatDoNotParse) {
  absl::Status s = Check({"--clients=many"});
  EXPECT_TRUE(absl::StrContains(s.message(), "--clients=many")) << s.message();
  s = Check({"--duration=10"});  // A duration needs a unit.
  EXPECT_TRUE(absl::StrContains(s.message(), "--duration")) << s.message();
  s = Check({"--message_size"});
  EXPECT_TRUE(absl::StrContains(s.message(), "missing its value")) << s.message();
}

TEST(ConfigTest, CheckArgsRejectsPositionalArguments) {
  EXPECT_TRUE(absl::StrContains(Check({"extra"}).message(), "unexpected argument"));
  EXPECT_TRUE(absl::StrContains(Check({"--", "extra"}).message(), "unexpected argument"));
}

TEST(ConfigTest, UsageTextListsEveryFlagWithItsDefault) {
  const std::string text = UsageText();
  for (const char* part : {"--clients (default: 1000)", "--duration (default: 10s)",
                           "--warmup (default: 1s)", "--message_size (default: 64)",
                           "--pipeline (default: 1)", "--target (default: \"\")",
                           "--client_threads (default: 1)", "--server_threads (default: 1)",
                           "--connect_timeout (default: 5s)", "--rate (default: 0)",
                           "--json (default: \"\")"}) {
    EXPECT_TRUE(absl::StrContains(text, part)) << "missing " << part << " in\n" << text;
  }
}

TEST(ConfigDeathTest, HelpExitsWithCodeZero) {
  EXPECT_EXIT(
      {
        Argv a({"--help"});
        ParseCommandLineOrExit(a.argc(), a.argv());
      },
      testing::ExitedWithCode(kExitOk), "");
}

TEST(ConfigDeathTest, UsageErrorsExitWithCodeTwo) {
  EXPECT_EXIT(
      {
        Argv a({"--clients=0"});
        ParseCommandLineOrExit(a.argc(), a.argv());
      },
      testing::ExitedWithCode(kExitUsage), "usage error: --clients must be");
  EXPECT_EXIT(
      {
        Argv a({"--bogus=1"});
        ParseCommandLineOrExit(a.argc(), a.argv());
      },
      testing::ExitedWithCode(kExitUsage), "unknown flag --bogus");
  EXPECT_EXIT(
      {
        Argv a({"--target=nohost"});
        ParseCommandLineOrExit(a.argc(), a.argv());
      },
      testing::ExitedWithCode(kExitUsage), "--target must be HOST:PORT");
}

}  // namespace
}  // namespace loadgen
