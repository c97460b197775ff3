// The fixtures with plain blocking clients (no monkey): start, answer, stop, folder removed.
#include "monkey/testing/servers.h"

#include <hiredis/hiredis.h>
#include <postgresql/libpq-fe.h>
#include <sys/stat.h>

#include <string>

#include "gtest/gtest.h"

namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

TEST(RedisServerFixture, AnswersOnItsSocketAndCleansUp) {
  auto server = gevent::testing::RedisServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string path = (*server)->socket_path();
  redisContext* c = redisConnectUnix(path.c_str());
  ASSERT_NE(c, nullptr);
  ASSERT_EQ(c->err, 0) << c->errstr;
  auto* reply = static_cast<redisReply*>(redisCommand(c, "SET %s %s", "k", "v"));
  ASSERT_NE(reply, nullptr);
  freeReplyObject(reply);
  reply = static_cast<redisReply*>(redisCommand(c, "GET %s", "k"));
  ASSERT_NE(reply, nullptr);
  ASSERT_EQ(reply->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(reply->str, reply->len), "v");
  freeReplyObject(reply);
  redisFree(c);
  server->reset();
  EXPECT_FALSE(Exists(path));
}

TEST(PostgresServerFixture, AnswersOnItsSocketAndCleansUp) {
  auto server = gevent::testing::PostgresServer::Start();
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string dir = (*server)->socket_dir();
  PGconn* conn = PQconnectdb((*server)->conninfo().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* r = PQexec(conn, "SELECT 40 + 2");
  ASSERT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
  EXPECT_STREQ(PQgetvalue(r, 0, 0), "42");
  PQclear(r);
  PQfinish(conn);
  server->reset();
  EXPECT_FALSE(Exists(dir));
}

}  // namespace
