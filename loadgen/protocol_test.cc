#include "loadgen/protocol.h"

#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace loadgen {
namespace {

TEST(ProtocolTest, ParsesFlags) {
  EXPECT_EQ(*ParseProtocol("redis"), Protocol::kRedis);
  EXPECT_TRUE(absl::StrContains(ParseProtocol("memcache").status().message(), "--protocol=memcache"));
  EXPECT_EQ(ParseRatio("1:10")->sets, 1);
  EXPECT_EQ(ParseRatio("0:3")->gets, 3);
  for (const char* bad : {"abc", "1", "1:", ":2", "-1:2", "0:0", "1:2:3", "+1:2"}) {
    EXPECT_TRUE(absl::StrContains(ParseRatio(bad).status().message(), "--ratio=")) << bad;
  }
  EXPECT_EQ(ParseHeader("X-A: b c ")->second, "b c");
  EXPECT_FALSE(ParseHeader("NoColon").ok());
  EXPECT_FALSE(ParseHeader(": v").ok());
  EXPECT_FALSE(ParseHeader("Bad Name: v").ok());
  EXPECT_TRUE(CheckPath("/a?b=1").ok());
  EXPECT_FALSE(CheckPath("index.html").ok());
  EXPECT_FALSE(CheckPath("/a b").ok());
}

TEST(ProtocolTest, RedisRequestsFollowTheRatioAndReuseTheBuffer) {
  RedisRequests requests(Ratio{1, 2}, 10, 4, 1);
  std::string out;
  EXPECT_EQ(requests.Append(0, &out), RedisCommand::kSet);
  EXPECT_TRUE(absl::StartsWith(out, "*3\r\n$3\r\nSET\r\n$5\r\nkey:")) << out;
  EXPECT_TRUE(absl::EndsWith(out, "\r\n$4\r\nxxxx\r\n")) << out;
  out.clear();
  EXPECT_EQ(requests.Append(1, &out), RedisCommand::kGet);
  EXPECT_TRUE(absl::StartsWith(out, "*2\r\n$3\r\nGET\r\n$5\r\nkey:")) << out;
  EXPECT_EQ(requests.Append(2, &out), RedisCommand::kGet);
  EXPECT_EQ(requests.Append(3, &out), RedisCommand::kSet);
}

TEST(ProtocolTest, RedisReplies) {
  Reply r = ParseRedisReply("+OK\r\n+OK", RedisCommand::kSet);
  EXPECT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.consumed, 5u);
  EXPECT_EQ(ParseRedisReply("+O", RedisCommand::kSet).state, ParseState::kIncomplete);
  r = ParseRedisReply("$3\r\nabc\r\n", RedisCommand::kGet);
  EXPECT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.consumed, 9u);
  EXPECT_EQ(r.outcome, Reply::kOk);
  EXPECT_EQ(ParseRedisReply("$3\r\nab", RedisCommand::kGet).state, ParseState::kIncomplete);
  r = ParseRedisReply("$-1\r\n", RedisCommand::kGet);
  EXPECT_EQ(r.outcome, Reply::kMiss);
  r = ParseRedisReply("-ERR unknown command\r\n", RedisCommand::kSet);
  EXPECT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.outcome, Reply::kError);
  EXPECT_EQ(r.error_text, "ERR unknown command");
  EXPECT_EQ(ParseRedisReply("+PONG\r\n", RedisCommand::kSet).state, ParseState::kMalformed);
  EXPECT_EQ(ParseRedisReply("$3\r\nabcXY", RedisCommand::kGet).state, ParseState::kMalformed);
  EXPECT_EQ(ParseRedisReply("$x\r\n", RedisCommand::kGet).state, ParseState::kMalformed);
  EXPECT_EQ(ParseRedisReply("?", RedisCommand::kGet).state, ParseState::kMalformed);
}

TEST(ProtocolTest, HttpRequestHasHostAndHeaders) {
  EXPECT_EQ(HttpRequest("/x", "127.0.0.1:80", {{"A", "b"}}),
            "GET /x HTTP/1.1\r\nHost: 127.0.0.1:80\r\nA: b\r\n\r\n");
  EXPECT_EQ(HttpRequest("/", "h:1", {{"host", "other"}}), "GET / HTTP/1.1\r\nhost: other\r\n\r\n");
}

TEST(ProtocolTest, HttpContentLength) {
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  for (std::size_t n = 0; n < resp.size(); ++n) {
    EXPECT_EQ(ParseHttpResponse(resp.substr(0, n)).state, ParseState::kIncomplete) << n;
  }
  Reply r = ParseHttpResponse(resp + "HTTP/1.1");
  EXPECT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.consumed, resp.size());
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.close);
  r = ParseHttpResponse("HTTP/1.1 404 Not Found\nconnection: close\ncontent-length: 0\n\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(r.close);
}

TEST(ProtocolTest, HttpChunked) {
  const std::string resp =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n"
      "0\r\nTrailer: x\r\n\r\n";
  for (std::size_t n = 0; n < resp.size(); ++n) {
    EXPECT_EQ(ParseHttpResponse(resp.substr(0, n)).state, ParseState::kIncomplete) << n;
  }
  Reply r = ParseHttpResponse(resp);
  EXPECT_EQ(r.state, ParseState::kComplete);
  EXPECT_EQ(r.consumed, resp.size());
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").state,
            ParseState::kMalformed);
}

TEST(ProtocolTest, HttpMalformedNamesTheOffset) {
  const std::string bytes = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE\r\n";
  Reply first = ParseHttpResponse(bytes);
  ASSERT_EQ(first.state, ParseState::kComplete);
  const std::string rest = bytes.substr(first.consumed);
  Reply bad = ParseHttpResponse(rest);
  ASSERT_EQ(bad.state, ParseState::kMalformed);
  const std::string why = DescribeMalformed(bad, rest, first.consumed);
  EXPECT_TRUE(absl::StrContains(why, "at byte 40 of the connection's stream")) << why;
  EXPECT_TRUE(absl::StrContains(why, "status line")) << why;
  EXPECT_TRUE(absl::StrContains(why, "GARBAGE\\r\\n")) << why;
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 200 OK\r\n\r\n").state, ParseState::kMalformed);  // No framing.
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 204 No Content\r\n\r\n").state, ParseState::kComplete);
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 2x0 OK\r\n\r\n").state, ParseState::kMalformed);
  EXPECT_EQ(ParseHttpResponse("HTTP/1.1 200 OK\r\nbad header\r\n\r\n").state, ParseState::kMalformed);
}

}  // namespace
}  // namespace loadgen
