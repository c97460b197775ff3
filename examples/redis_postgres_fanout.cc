// One request fanned out to Redis and PostgreSQL at once, from two greenlets running plain
// blocking client code — hiredis's redisCommand and libpq's PQexecParams — made cooperative by
// gevent::monkey::PatchAll() (gevent's monkey.patch_all() + redis-py/psycopg). Prints both
// answers and how long the pair took; exits 1 if either failed.
//
//   bazel run //examples:redis_postgres_fanout --
//       --redis=/tmp/redis.sock --pg="host=/var/run/postgresql dbname=postgres" alice
//
// --redis is a Unix socket path (anything with a '/') or HOST:PORT; --pg a libpq conninfo.
#include <hiredis/hiredis.h>
#include <postgresql/libpq-fe.h>

#include <cstdio>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "examples/args.h"
#include "hub/spawn.h"
#include "monkey/monkey.h"

namespace {

// AskRedis: INCR visits:<name> — how many times this name was asked about.
absl::StatusOr<std::string> AskRedis(const std::string& where, const std::string& name) {
  redisContext* c = nullptr;
  if (absl::StrContains(where, '/')) {
    c = redisConnectUnix(where.c_str());
  } else {
    std::optional<std::pair<std::string, uint16_t>> hp = examples::ParseHostPort(where);
    if (!hp.has_value()) return absl::InvalidArgumentError("bad --redis: " + where);
    c = redisConnect(hp->first.c_str(), hp->second);
  }
  if (c == nullptr || c->err != 0) {
    std::string error = c != nullptr ? c->errstr : "out of memory";
    redisFree(c);
    return absl::UnavailableError(absl::StrCat("redis ", where, ": ", error));
  }
  auto* reply =
      static_cast<redisReply*>(redisCommand(c, "INCR visits:%s", name.c_str()));
  absl::StatusOr<std::string> result;
  if (reply == nullptr) {
    result = absl::UnavailableError(absl::StrCat("redis INCR: ", c->errstr));
  } else if (reply->type != REDIS_REPLY_INTEGER) {
    result = absl::InternalError(absl::StrCat("redis INCR: unexpected reply type ", reply->type));
  } else {
    result = absl::StrCat("visits:", name, " = ", reply->integer);
  }
  freeReplyObject(reply);
  redisFree(c);
  return result;
}

// AskPostgres: a greeting built by the server, with its version.
absl::StatusOr<std::string> AskPostgres(const std::string& conninfo, const std::string& name) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  absl::StatusOr<std::string> result;
  if (PQstatus(conn) != CONNECTION_OK) {
    result = absl::UnavailableError(
        absl::StrCat("postgres: ", absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn))));
  } else {
    const char* params[] = {name.c_str()};
    PGresult* r = PQexecParams(
        conn, "SELECT 'hello, ' || $1::text || ' (' || split_part(version(), ' ', 2) || ')'", 1,
        nullptr, params, nullptr, nullptr, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
      result = std::string(PQgetvalue(r, 0, 0));
    } else {
      result = absl::InternalError(absl::StrCat(
          "postgres: ", absl::StripTrailingAsciiWhitespace(PQresultErrorMessage(r))));
    }
    PQclear(r);
  }
  PQfinish(conn);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] = "--redis=SOCKET|HOST:PORT --pg=CONNINFO [NAME]";
  std::string redis, pg, name = "world";
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, "--redis=")) {
      redis = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--pg=")) {
      pg = std::string(arg);
    } else if (absl::StartsWith(arg, "--")) {
      examples::Usage(argv[0], "unknown flag: " + std::string(arg), kUsage);
    } else {
      name = std::string(arg);
    }
  }
  if (redis.empty()) examples::Usage(argv[0], "--redis is required", kUsage);
  if (pg.empty()) examples::Usage(argv[0], "--pg is required", kUsage);

  gevent::monkey::PatchAll();
  gevent::SpawnOptions options;
  options.stack.size = 256 * 1024;  // libpq's connect wants more than the default 64 KiB.
  const absl::Time start = absl::Now();
  gevent::GreenletRef from_redis = gevent::Spawn(options, AskRedis, redis, name);
  gevent::GreenletRef from_pg = gevent::Spawn(options, AskPostgres, pg, name);
  gevent::JoinAll({from_redis, from_pg});
  int failed = 0;
  for (auto [label, g] : {std::pair{"redis", from_redis}, std::pair{"postgres", from_pg}}) {
    absl::StatusOr<std::string> answer = *g->GetAs<absl::StatusOr<std::string>>();
    if (!answer.ok()) ++failed;
    std::printf("%s: %s\n", label,
                answer.ok() ? answer->c_str() : ("error: " + answer.status().ToString()).c_str());
  }
  std::printf("both answered in %s\n", absl::FormatDuration(absl::Now() - start).c_str());
  return failed == 0 ? 0 : 1;
}
