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
  EXPECT_EQ(s.message().find('\n'), absl::string_view::npos) << "not one line: " << s.message();
}

// ExpectMessage checks the whole message of a rejected `config`.
void ExpectMessage(const Config& config, const std::string& message) {
  const absl::Status s = Validate(config);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_EQ(s.message(), message);
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
  c.warmup = absl::Seconds(-1);
  ExpectMessage(c, "--warmup=-1s: must be zero or positive and finite");
  c.warmup = absl::InfiniteDuration();
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

// --help and the check agree: anything over 65536 bytes is refused, 65536 itself is not.
TEST(ConfigTest, MessageSizeLimitIsTheOneTheHelpGives) {
  EXPECT_EQ(kMaxMessageSize, 65536);
  EXPECT_EQ(kMaxMessageSize, kMaxInFlightBytes);
  Config c;
  c.message_size = 65536;
  EXPECT_TRUE(Validate(c).ok());
  c.message_size = 65537;
  ExpectMessage(c, "--message_size=65537: must be between 1 and 65536");
  c.message_size = 1 << 20;
  ExpectRejected(c, "--message_size=1048576");
  EXPECT_TRUE(absl::StrContains(UsageText(), "bytes per message, 1..65536 (and --pipeline * "
                                             "--message_size at most 65536)"))
      << UsageText();
  EXPECT_FALSE(absl::StrContains(UsageText(), "1048576")) << UsageText();
}

TEST(ConfigTest, MessagesNameTheFlagItsValueAndWhatIsAllowed) {
  Config c;
  c.clients = 0;
  ExpectMessage(c, "--clients=0: must be between 1 and 1000000");
  c = Config();
  c.duration = absl::ZeroDuration();
  ExpectMessage(c, "--duration=0: must be positive and finite");
  c = Config();
  c.client_threads = 2;
  c.clients = 1;
  ExpectMessage(c, "--client_threads=2: must not exceed --clients (1)");
  c = Config();
  c.target = "nohost";
  ExpectMessage(c, "--target=nohost: must be HOST:PORT (missing ':PORT')");
  c = Config();
  c.rate = -1;
  ExpectMessage(c, "--rate=-1: must be 0 (closed loop) or a positive number of messages/s");
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
  ExpectMessage(c, "--pipeline=17: --pipeline * --message_size (17 * 4096) must be at most 65536 "
                   "bytes in flight per client");
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
  EXPECT_EQ(s.message(), "--client=5: unknown flag (see --help)");
  EXPECT_EQ(Check({"--client"}).message(), "--client: unknown flag (see --help)");
  EXPECT_FALSE(Check({"--noclients"}).ok());  // "no" only negates booleans.
}

TEST(ConfigTest, CheckArgsRejectsValuesThatDoNotParse) {
  EXPECT_EQ(Check({"--clients=many"}).message(), "--clients=many: must be an integer");
  EXPECT_EQ(Check({"--clients", "many"}).message(), "--clients=many: must be an integer");
  // A duration needs a unit.
  EXPECT_EQ(Check({"--duration=10"}).message(),
            "--duration=10: must be a duration with a unit (10s, 500ms, 1m)");
  EXPECT_EQ(Check({"--rate=fast"}).message(), "--rate=fast: must be a number");
  EXPECT_EQ(Check({"--progress=maybe"}).message(), "--progress=maybe: must be true or false");
  EXPECT_EQ(Check({"--message_size"}).message(), "--message_size: missing its value");
}

TEST(ConfigTest, CheckArgsRejectsPositionalArguments) {
  EXPECT_EQ(Check({"extra"}).message(), "unexpected argument \"extra\" (loadgen takes flags only)");
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

TEST(ConfigTest, ProtocolOptionsAreChecked) {
  Config c;
  c.target = "127.0.0.1:6379";
  for (const char* p : {"echo", "redis", "http"}) {
    c.protocol = p;
    EXPECT_TRUE(Validate(c).ok()) << p;
  }
  c.protocol = "gopher";
  ExpectMessage(c, "--protocol=gopher: must be echo, redis or http");
  c.protocol = "redis";
  c.ratio = "abc";
  ExpectMessage(c, "--ratio=abc: must be SET:GET, two non-negative integers (e.g. 1:10)");
  c.ratio = "0:0";
  ExpectRejected(c, "--ratio=0:0");
  c.ratio = "3:1";
  c.keyspace = 0;
  ExpectRejected(c, "--keyspace=0");
  c.keyspace = 10;
  c.value_size = 0;
  ExpectRejected(c, "--value_size=0");
  c.value_size = kMaxValueSize + 1;
  ExpectRejected(c, "--value_size");
  c.value_size = 4096;
  c.pipeline = 64;  // The echo in-flight limit does not apply.
  EXPECT_TRUE(Validate(c).ok());
  c.protocol = "http";
  c.path = "index.html";
  ExpectMessage(c, "--path=index.html: must start with '/'");
  c.path = "/index.html";
  c.headers = {"X-Ok: 1", "NoColon"};
  ExpectMessage(c, "--header=NoColon: must be NAME:VALUE (no colon)");
  c.headers = {"X-Ok: 1"};
  c.requests_per_connection = -1;
  ExpectRejected(c, "--requests_per_connection=-1");
  c.requests_per_connection = 100;
  EXPECT_TRUE(Validate(c).ok());
}

TEST(ConfigTest, RedisAndHttpNeedATarget) {
  Config c;
  c.protocol = "redis";
  ExpectMessage(c,
                "--protocol=redis: needs --target=HOST:PORT (the embedded server speaks echo only)");
  c.protocol = "http";
  ExpectRejected(c, "--protocol=http");
}

TEST(ConfigTest, HeaderIsRepeatable) {
  std::vector<std::string> args = {"loadgen", "--header=A: 1", "--clients=3", "--header",
                                   "B:2", "-header=C:3", "--", "--header=D:4"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  EXPECT_EQ(HeadersFromArgs(static_cast<int>(argv.size()), argv.data()),
            (std::vector<std::string>{"A: 1", "B:2", "C:3"}));
}

TEST(ConfigDeathTest, HelpExitsWithCodeZero) {
  for (const char* help : {"--help", "-help", "--helpshort", "--helpfull"}) {
    SCOPED_TRACE(help);
    EXPECT_EXIT(
        {
          Argv a({"--clients=10", help});
          ParseCommandLineOrExit(a.argc(), a.argv());
        },
        testing::ExitedWithCode(kExitOk), "");
  }
}

// ExpectUsageExit: ParseCommandLineOrExit on `args` exits 2, and stderr matches `line`.
void ExpectUsageExit(std::initializer_list<std::string> args, const std::string& line) {
  EXPECT_EXIT(
      {
        Argv a(args);
        ParseCommandLineOrExit(a.argc(), a.argv());
      },
      testing::ExitedWithCode(kExitUsage), line);
}

TEST(ConfigDeathTest, UsageErrorsExitWithCodeTwo) {
  EXPECT_EQ(kExitUsage, 2);
  ExpectUsageExit({"--clients=0"}, "loadgen: --clients=0: must be between 1 and 1000000");
  ExpectUsageExit({"--bogus=1"}, "loadgen: --bogus=1: unknown flag");
  ExpectUsageExit({"--clients=many"}, "loadgen: --clients=many: must be an integer");
  ExpectUsageExit({"--target=nohost"}, "loadgen: --target=nohost: must be HOST:PORT");
  ExpectUsageExit({"--warmup=-1s"}, "loadgen: --warmup=-1s: must be zero or positive and finite");
  ExpectUsageExit({"--message_size=65537"},
                  "loadgen: --message_size=65537: must be between 1 and 65536");
  ExpectUsageExit({"extra"}, "loadgen: unexpected argument");
  ExpectUsageExit({"--protocol=smtp"}, "loadgen: --protocol=smtp: must be echo, redis or http");
  ExpectUsageExit({"--protocol=redis"}, "loadgen: --protocol=redis: needs --target=HOST:PORT");
  ExpectUsageExit({"--protocol=redis", "--target=127.0.0.1:1", "--ratio=abc"},
                  "loadgen: --ratio=abc: must be SET:GET");
  ExpectUsageExit({"--protocol=http", "--target=127.0.0.1:1", "--path=x"},
                  "loadgen: --path=x: must start with '/'");
  ExpectUsageExit({"--protocol=http", "--target=127.0.0.1:1", "--header=A:1", "--header=B"},
                  "loadgen: --header=B: must be NAME:VALUE");
}

}  // namespace
}  // namespace loadgen
