#include "socket/buffered_reader.h"

#include <sys/socket.h>

#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "hub/hub.h"
#include "hub/hub_test_fixture.h"
#include "hub/spawn.h"
#include "socket/socket.h"
#include "socket/stream.h"

namespace gevent {
namespace {

class BufferedReaderTest : public HubTestFixture {
 protected:
  void SetUp() override {
    absl::StatusOr<std::pair<Socket, Socket>> pair = Socket::Pair();
    ASSERT_TRUE(pair.ok()) << pair.status();
    near_ = std::move(pair->first);
    far_ = std::move(pair->second);
  }
  void TearDown() override {
    near_.Close().IgnoreError();
    far_.Close().IgnoreError();
    HubTestFixture::TearDown();
  }
  // Send: the far end writes `data` (the socketpair buffers it).
  void Send(absl::string_view data) { ASSERT_TRUE(far_.SendAll(data).ok()); }
  // SendLater: a greenlet writes each piece after a short sleep, so each arrives in its own read.
  GreenletRef SendLater(std::vector<std::string> pieces, bool close_after = false) {
    return Spawn([this, pieces = std::move(pieces), close_after] {
      for (const std::string& p : pieces) {
        Sleep(absl::Milliseconds(2));
        ASSERT_TRUE(far_.SendAll(p).ok());
      }
      if (close_after) far_.Close().IgnoreError();
    });
  }

  Socket near_;
  Socket far_;
};

TEST_F(BufferedReaderTest, ReadsLinesEndedByLfOrCrLf) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  Send("one\r\ntwo\nthree\r\n\n");
  EXPECT_EQ(*reader.ReadLine(), "one");
  EXPECT_EQ(*reader.ReadLine(), "two");
  EXPECT_EQ(*reader.ReadLine(), "three");
  EXPECT_EQ(*reader.ReadLine(), "");
  EXPECT_EQ(reader.offset(), 17u);
  EXPECT_EQ(reader.available(), 0u);
}

TEST_F(BufferedReaderTest, LoneCarriageReturnIsData) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  Send("a\rb\n");
  EXPECT_EQ(*reader.ReadLine(), "a\rb");
}

TEST_F(BufferedReaderTest, RecordsSplitAcrossReads) {
  SocketStream stream(near_);
  // A tiny buffer forces compaction and growth too.
  BufferedReader reader(stream, {.capacity = 4, .max_buffered = 1024, .max_line = 100});
  GreenletRef sender = SendLater({"hel", "lo wor", "ld\r", "\nAB", "CD", "EF|x", "y|", "z"});
  absl::StatusOr<absl::string_view> line = reader.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "hello world");
  absl::StatusOr<absl::string_view> exact = reader.ReadExactly(5, absl::Seconds(10));
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(*exact, "ABCDE");
  absl::StatusOr<absl::string_view> rec = reader.ReadUntil("|", absl::Seconds(10));
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(*rec, "F");
  rec = reader.ReadUntil("|", absl::Seconds(10));
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(*rec, "xy");
  exact = reader.ReadExactly(1, absl::Seconds(10));
  ASSERT_TRUE(exact.ok()) << exact.status();
  EXPECT_EQ(*exact, "z");
  sender->Join();
}

TEST_F(BufferedReaderTest, MultiByteDelimiterSplitAcrossReads) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  GreenletRef sender = SendLater({"key: v", "alue\r", "\n\r", "\nrest"});
  absl::StatusOr<absl::string_view> rec = reader.ReadUntil("\r\n\r\n", absl::Seconds(10));
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(*rec, "key: value");
  sender->Join();
  EXPECT_EQ(reader.Peek(), "rest");
}

TEST_F(BufferedReaderTest, ManyRecordsInOneReadAreServedFromTheBuffer) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  std::string many;
  for (int i = 0; i < 100; ++i) many += "+OK\r\n";
  Send(many);
  ASSERT_TRUE(reader.Fill().ok());
  far_.Close().IgnoreError();  // Reading more would see the end: the buffer must serve all.
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<absl::string_view> rec = reader.ReadUntil("\r\n", absl::ZeroDuration());
    ASSERT_TRUE(rec.ok()) << i << ": " << rec.status();
    EXPECT_EQ(*rec, "+OK");
  }
}

TEST_F(BufferedReaderTest, ViewsPointIntoTheBuffer) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  Send("abc\ndef");
  absl::StatusOr<absl::string_view> line = reader.ReadLine();
  ASSERT_TRUE(line.ok());
  EXPECT_EQ(line->data(), reader.Peek().data() - 4);  // No copy: "abc\n" precedes "def".
}

TEST_F(BufferedReaderTest, TimeoutKeepsThePartialRecordForTheNextCall) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  Send("partial");
  const absl::Time start = absl::Now();
  absl::StatusOr<absl::string_view> line = reader.ReadLine(absl::Milliseconds(50));
  EXPECT_TRUE(absl::IsDeadlineExceeded(line.status())) << line.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));
  EXPECT_EQ(reader.Peek(), "partial");
  Send(" line\n");
  line = reader.ReadLine(absl::Seconds(10));
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "partial line");
}

TEST_F(BufferedReaderTest, ZeroTimeoutNeverParks) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  EXPECT_TRUE(absl::IsDeadlineExceeded(reader.ReadExactly(1, absl::ZeroDuration()).status()));
  Send("x");
  absl::StatusOr<absl::string_view> got = reader.ReadExactly(1, absl::ZeroDuration());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "x");
}

TEST_F(BufferedReaderTest, DefaultTimeoutIsTheSockets) {
  near_.SetTimeout(absl::Milliseconds(30));
  SocketStream stream(near_);
  BufferedReader reader(stream);
  EXPECT_TRUE(absl::IsDeadlineExceeded(reader.ReadLine().status()));
  // An explicit Forever overrides the default: a sender wakes it.
  GreenletRef sender = SendLater({"late\n"});
  absl::StatusOr<absl::string_view> line = reader.ReadLine(IoTimeout::Forever());
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(*line, "late");
  sender->Join();
}

TEST_F(BufferedReaderTest, TimeoutBoundsTheWholeCallNotEachRead) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  // A byte every 10 ms, never a newline: each read succeeds, the call must still end.
  GreenletRef trickle = Spawn([this] {
    for (int i = 0; i < 100; ++i) {
      Sleep(absl::Milliseconds(10));
      if (!far_.SendAll("x").ok()) return;
    }
  });
  const absl::Time start = absl::Now();
  absl::StatusOr<absl::string_view> line = reader.ReadLine(absl::Milliseconds(100));
  EXPECT_TRUE(absl::IsDeadlineExceeded(line.status())) << line.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(800));
  trickle->Kill();
}

TEST_F(BufferedReaderTest, EndOfStreamMidLineNamesTheBytesRead) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  Send("complete\nhalf a li");
  far_.Close().IgnoreError();
  EXPECT_EQ(*reader.ReadLine(), "complete");
  absl::StatusOr<absl::string_view> line = reader.ReadLine();
  EXPECT_TRUE(absl::IsOutOfRange(line.status())) << line.status();
  EXPECT_TRUE(absl::StrContains(line.status().message(), "after 9 bytes")) << line.status();
  EXPECT_TRUE(reader.eof());
  EXPECT_EQ(reader.Peek(), "half a li");  // Still there for the caller.
}

TEST_F(BufferedReaderTest, EndOfStreamMidReadExactlyNamesTheCount) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  Send("1234567");
  far_.Close().IgnoreError();
  absl::StatusOr<absl::string_view> got = reader.ReadExactly(64);
  EXPECT_TRUE(absl::IsOutOfRange(got.status())) << got.status();
  EXPECT_TRUE(absl::StrContains(got.status().message(), "after 7 of 64 bytes")) << got.status();
}

TEST_F(BufferedReaderTest, CleanEndOfStreamAtABoundaryIsOutOfRangeAfterZero) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  far_.Close().IgnoreError();
  absl::StatusOr<absl::string_view> line = reader.ReadLine();
  EXPECT_TRUE(absl::IsOutOfRange(line.status())) << line.status();
  EXPECT_TRUE(absl::StrContains(line.status().message(), "after 0 bytes")) << line.status();
  absl::StatusOr<std::size_t> n = reader.Fill();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0u);
}

TEST_F(BufferedReaderTest, OverLongLineIsAnErrorNotGrowth) {
  SocketStream stream(near_);
  BufferedReader reader(stream, {.capacity = 16, .max_buffered = 4096, .max_line = 32});
  Send(std::string(33, 'a') + "\n");
  absl::StatusOr<absl::string_view> line = reader.ReadLine();
  EXPECT_TRUE(absl::IsResourceExhausted(line.status())) << line.status();
  EXPECT_TRUE(absl::StrContains(line.status().message(), "longer than 32 bytes")) << line.status();
  EXPECT_EQ(reader.offset(), 0u);  // Nothing consumed.
}

TEST_F(BufferedReaderTest, OverLongLineWithNoNewlineYetStopsReading) {
  SocketStream stream(near_);
  BufferedReader reader(stream, {.capacity = 16, .max_buffered = 4096, .max_line = 32});
  Send(std::string(200, 'a'));
  absl::StatusOr<absl::string_view> line = reader.ReadLine(absl::Seconds(10));
  EXPECT_TRUE(absl::IsResourceExhausted(line.status())) << line.status();
  EXPECT_LE(reader.available(), 128u);
}

TEST_F(BufferedReaderTest, LineOfExactlyMaxLineIsAccepted) {
  SocketStream stream(near_);
  BufferedReader reader(stream, {.capacity = 8, .max_buffered = 4096, .max_line = 32});
  Send(std::string(32, 'b') + "\r\n");
  absl::StatusOr<absl::string_view> line = reader.ReadLine();
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->size(), 32u);
}

TEST_F(BufferedReaderTest, ReadExactlyBeyondMaxBufferedIsResourceExhausted) {
  SocketStream stream(near_);
  BufferedReader reader(stream, {.capacity = 16, .max_buffered = 64, .max_line = 32});
  EXPECT_TRUE(absl::IsResourceExhausted(reader.ReadExactly(65).status()));
}

TEST_F(BufferedReaderTest, DiscardSkipsMoreThanTheBufferHolds) {
  SocketStream stream(near_);
  BufferedReader reader(stream, {.capacity = 16, .max_buffered = 64, .max_line = 32});
  GreenletRef sender = SendLater({std::string(500, 'z'), std::string(500, 'z') + "after\n"});
  ASSERT_TRUE(reader.Discard(1000, absl::Seconds(10)).ok());
  EXPECT_EQ(*reader.ReadLine(absl::Seconds(10)), "after");
  EXPECT_EQ(reader.offset(), 1006u);
  sender->Join();
}

TEST_F(BufferedReaderTest, PartialReadsOneByteAtATime) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  std::vector<std::string> bytes;
  for (char c : std::string("$5\r\nhello\r\n")) bytes.push_back(std::string(1, c));
  GreenletRef sender = SendLater(bytes);
  absl::StatusOr<absl::string_view> header = reader.ReadUntil("\r\n", absl::Seconds(10));
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(*header, "$5");
  absl::StatusOr<absl::string_view> body = reader.ReadExactly(7, absl::Seconds(10));
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "hello\r\n");
  sender->Join();
}

TEST_F(BufferedReaderTest, IncrementalParsingWithPeekFillConsume) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  GreenletRef sender = SendLater({"+O", "K\r\n+OK\r"});
  // Parse "+OK\r\n" items from Peek(); Fill when incomplete.
  int items = 0;
  while (items < 1) {
    if (absl::StartsWith(reader.Peek(), "+OK\r\n")) {
      reader.Consume(5);
      ++items;
      continue;
    }
    absl::StatusOr<std::size_t> n = reader.Fill(absl::Seconds(10));
    ASSERT_TRUE(n.ok()) << n.status();
    ASSERT_GT(*n, 0u);
  }
  sender->Join();
  EXPECT_EQ(reader.offset(), 5u);
  EXPECT_EQ(reader.Peek(), "+OK\r");
  EXPECT_THROW(reader.Consume(5), UsageError);
}

TEST_F(BufferedReaderTest, ResetPeerIsTheStreamsError) {
  SocketStream stream(near_);
  BufferedReader reader(stream);
  near_.Close().IgnoreError();
  absl::StatusOr<absl::string_view> line = reader.ReadLine();
  EXPECT_TRUE(absl::IsFailedPrecondition(line.status())) << line.status();
}

}  // namespace
}  // namespace gevent
