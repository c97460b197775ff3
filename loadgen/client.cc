#include "loadgen/client.h"

#include <errno.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <utility>

#include "absl/status/statusor.h"
#include "core/watchers.h"
#include "greenlet/stack.h"
#include "hub/hub.h"
#include "hub/lock.h"
#include "hub/spawn.h"
#include "absl/strings/str_cat.h"
#include "socket/buffered_reader.h"
#include "socket/resolve.h"
#include "socket/socket.h"
#include "socket/stream.h"
#include "ssl/ssl_socket.h"

namespace loadgen {

std::int64_t MonotonicNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

MessagePattern::MessagePattern(std::size_t message_size, std::uint64_t seed)
    : size_(message_size), bytes_(kPeriod + message_size) {
  std::mt19937_64 rng(seed);
  for (char& c : bytes_) c = static_cast<char>(rng() & 0xff);
}

void ThreadCounters::RecordMessage(std::int64_t latency_ns, std::int64_t uncorrected_ns,
                                   std::uint64_t bytes, const gevent::HubStats& hub) {
  std::lock_guard<std::mutex> lock(mu_);
  // A latency below zero cannot happen with a monotonic clock; clamp rather than lose the sample.
  latency_.Record(static_cast<std::uint64_t>(std::max<std::int64_t>(latency_ns, 0)));
  if (uncorrected_ns >= 0) uncorrected_.Record(static_cast<std::uint64_t>(uncorrected_ns));
  ++totals_.messages;
  totals_.bytes += bytes;
  PublishHub(hub);
}

void ThreadCounters::RecordReply(std::int64_t latency_ns, std::int64_t uncorrected_ns,
                                 std::uint64_t bytes, Count count, const gevent::HubStats& hub) {
  std::lock_guard<std::mutex> lock(mu_);
  latency_.Record(static_cast<std::uint64_t>(std::max<std::int64_t>(latency_ns, 0)));
  if (uncorrected_ns >= 0) uncorrected_.Record(static_cast<std::uint64_t>(uncorrected_ns));
  ++totals_.messages;
  totals_.bytes += bytes;
  if (count != Count::kCount) ++totals_.counts[static_cast<std::size_t>(count)];
  PublishHub(hub);
}

void ThreadCounters::AddSent(std::uint64_t requests, std::uint64_t sets, std::uint64_t gets) {
  std::lock_guard<std::mutex> lock(mu_);
  totals_.counts[static_cast<std::size_t>(Count::kRequestsSent)] += requests;
  totals_.counts[static_cast<std::size_t>(Count::kSetsSent)] += sets;
  totals_.counts[static_cast<std::size_t>(Count::kGetsSent)] += gets;
}

void ThreadCounters::AddCount(Count count, std::uint64_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  totals_.counts[static_cast<std::size_t>(count)] += n;
}

void ThreadCounters::RecordErrorText(ErrorKind kind, absl::string_view why,
                                     const gevent::HubStats& hub) {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.errors[static_cast<std::size_t>(kind)];
  std::string* first = kind == ErrorKind::kServerError ? &first_server_error_ : &first_malformed_;
  if (first->empty()) first->assign(why.data(), why.size());
  PublishHub(hub);
}

void ThreadCounters::NoteErrorText(ErrorKind kind, absl::string_view why) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string* first = kind == ErrorKind::kServerError ? &first_server_error_ : &first_malformed_;
  if (first->empty()) first->assign(why.data(), why.size());
}

std::string ThreadCounters::FirstErrorText(ErrorKind kind) {
  std::lock_guard<std::mutex> lock(mu_);
  return kind == ErrorKind::kServerError ? first_server_error_ : first_malformed_;
}

void ThreadCounters::RecordConnect(std::int64_t connect_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.active;
  ++totals_.connects;
  connect_.Record(static_cast<std::uint64_t>(std::max<std::int64_t>(connect_ns, 0)));
}

void ThreadCounters::RecordError(ErrorKind kind, const gevent::HubStats& hub) {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.errors[static_cast<std::size_t>(kind)];
  PublishHub(hub);
}

void ThreadCounters::RecordConnectError(ErrorKind kind, absl::string_view why,
                                        const gevent::HubStats& hub) {
  std::lock_guard<std::mutex> lock(mu_);
  ++totals_.errors[static_cast<std::size_t>(kind)];
  last_connect_error_.assign(why.data(), why.size());
  PublishHub(hub);
}

void ThreadCounters::AddActive(int delta) {
  std::lock_guard<std::mutex> lock(mu_);
  totals_.active += delta;
  if (delta > 0) totals_.connects += static_cast<std::uint64_t>(delta);
}

std::uint64_t ThreadCounters::Connects() {
  std::lock_guard<std::mutex> lock(mu_);
  return totals_.connects;
}

std::string ThreadCounters::LastConnectError() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_connect_error_;
}

ThreadSnapshot ThreadCounters::TakeInterval(Histogram* latency, Histogram* uncorrected,
                                            Histogram* connect) {
  std::lock_guard<std::mutex> lock(mu_);
  std::swap(latency_, *latency);
  std::swap(uncorrected_, *uncorrected);
  if (connect != nullptr) std::swap(connect_, *connect);
  return totals_;
}

namespace {

// InlineArray: `size` elements, inside the object when they fit in N, else on the heap. Fixed size
// from construction; for the client's per-connection state (see Client::ring_).
template <typename T, std::size_t N>
class InlineArray {
 public:
  explicit InlineArray(std::size_t size)
      : size_(size),
        heap_(size > N ? new T[size]() : nullptr),
        data_(heap_ ? heap_.get() : inline_) {}
  InlineArray(const InlineArray&) = delete;
  InlineArray& operator=(const InlineArray&) = delete;

  T* data() { return data_; }
  std::size_t size() const { return size_; }
  T& operator[](std::size_t i) { return data_[i]; }

 private:
  std::size_t size_;
  T inline_[N] = {};
  std::unique_ptr<T[]> heap_;
  T* data_;
};

// ClassifyConnect / ClassifyIo map a socket status to an error kind.
ErrorKind ClassifyConnect(const absl::Status& status) {
  if (absl::IsDeadlineExceeded(status)) return ErrorKind::kConnectTimeout;
  if (gevent::SocketErrno(status) == ECONNREFUSED) return ErrorKind::kConnectRefused;
  return ErrorKind::kConnectFailed;
}

ErrorKind ClassifyIo(const absl::Status& status) {
  if (absl::IsDeadlineExceeded(status)) return ErrorKind::kTimeout;
  const std::optional<int> err = gevent::SocketErrno(status);
  if (err == ECONNRESET || err == EPIPE) return ErrorKind::kReset;
  return ErrorKind::kIoFailed;
}

// Watch: what the timeout sweeper sees of a client: the deadline of its oldest message in flight
// and the socket whose read wait to cancel when it has passed.
struct Watch {
  std::int64_t deadline_ns = INT64_MAX;
  gevent::Socket* waiting = nullptr;  // The client's socket while it converses, else null.
};

// Shared state of the clients of one thread (lives on the thread's stack during the run).
struct ThreadContext {
  std::vector<Watch> watches;  // One per client of the thread, by id - first_client.
  const ClientOptions* options;
  const MessagePattern* pattern;
  ThreadCounters* counters;
  gevent::Hub* hub;
  gevent::Semaphore* connecting;  // See ClientOptions::max_connecting.
  std::vector<gevent::SocketAddress> addresses;
  absl::Status resolve_error;
  // The end of the run (ClientThread::Stop): set on the hub, read by the clients between waits.
  bool stopping = false;
  std::int64_t drain_deadline_ns = 0;
};

// Client: one connection's greenlet body.
class Client {
 public:
  Client(ThreadContext& ctx, int id, Watch* watch)
      : ctx_(ctx),
        id_(id),
        watch_(watch),
        ring_(static_cast<std::size_t>(ctx.options->pipeline)),
        // One byte more than can be due: see the read below.
        buffer_(static_cast<std::size_t>(ctx.options->pipeline) * ctx.options->message_size + 1) {
    const ClientOptions& o = *ctx.options;
    if (o.rate_per_client > 0) {
      interval_ns_ = static_cast<std::int64_t>(1e9 / o.rate_per_client);
      if (interval_ns_ < 1) interval_ns_ = 1;
      // Spread the clients' send times evenly over one interval.
      next_send_ns_ =
          o.schedule_start_ns + interval_ns_ * static_cast<std::int64_t>(id) / o.total_clients;
    }
  }

  // Run connects, converses until an error, backs off and reconnects, until killed or stopped
  // while conversing (then it drains, closes and returns).
  void Run() {
    absl::Duration backoff = kMinBackoff;
    for (;;) {
      std::optional<ErrorKind> error;
      bool connect_error = false;
      std::string connect_why;
      gevent::Socket socket;
      std::unique_ptr<gevent::SslSocket> tls;  // --tls: the session over the connection.
      bool holds_slot = true;
      ctx_.connecting->Acquire();
      {
        struct ReleaseSlot {
          gevent::Semaphore* s;
          bool* held;
          ~ReleaseSlot() {
            if (*held) s->Release();
          }
        } release{ctx_.connecting, &holds_slot};
        const std::int64_t connect_start = MonotonicNanos();
        absl::StatusOr<gevent::Socket> connected = Connect();
        if (connected.ok() && ctx_.options->tls != nullptr) {
          absl::Status handshake = StartTls(std::move(*connected), connect_start, &tls);
          if (!handshake.ok()) connected = handshake;
        }
        if (!connected.ok()) {
          error = ClassifyConnect(connected.status());
          connect_error = true;
          connect_why = std::string(connected.status().message());
        } else {
          if (tls == nullptr) socket = std::move(*connected);
          gevent::Socket& raw = tls != nullptr ? tls->socket() : socket;
          gevent::SocketStream plain(raw);
          gevent::Stream& stream = tls != nullptr ? static_cast<gevent::Stream&>(*tls) : plain;
          ActiveGuard active(*ctx_.counters, MonotonicNanos() - connect_start);
          if (ctx_.options->protocol != Protocol::kEcho) {
            error = ConverseProtocol(stream, raw, &holds_slot, &backoff);
          } else if (tls != nullptr) {
            error = Converse(*tls, raw, &holds_slot, &backoff);
          } else {
            error = Converse(socket, raw, &holds_slot, &backoff);  // Direct calls: the hot path.
          }
          if (!error.has_value() && !(reconnect_ && !ctx_.stopping)) Drain(stream);  // Stopped.
        }
      }
      if (tls != nullptr) {
        // A planned reconnect ends the session with close_notify, so the server sees a clean
        // end rather than a truncation (OpenSSL's unexpected EOF).
        if (!error.has_value() && reconnect_ && !ctx_.stopping) {
          tls->ShutdownWrite(gevent::IoTimeout(kDrainBound)).IgnoreError();
        }
        tls->Close().IgnoreError();
        tls.reset();
      }
      if (!error.has_value() && reconnect_ && !ctx_.stopping) {
        // --requests_per_connection reached, or an http server closed: a new connection at once.
        reconnect_ = false;
        socket.Close().IgnoreError();
        continue;
      }
      socket.Close().IgnoreError();
      if (!error.has_value()) return;  // Stopped: the run is over (drained above).
      if (connect_error) {
        ctx_.counters->RecordConnectError(*error, connect_why, ctx_.hub->stats());
      } else {
        ctx_.counters->RecordError(*error, ctx_.hub->stats());
      }
      gevent::Sleep(backoff);
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
  }

 private:
  static constexpr absl::Duration kMinBackoff = absl::Milliseconds(10);
  static constexpr absl::Duration kMaxBackoff = absl::Milliseconds(500);

  struct InFlight {
    std::uint64_t seq;
    std::int64_t intended_ns;
    std::int64_t sent_ns;
    RedisCommand command;  // redis only.
  };

  // Watching publishes the conversation's socket to the sweeper for its lifetime.
  struct Watching {
    Watching(Watch* w, gevent::Socket& raw) : watch(w) { watch->waiting = &raw; }
    ~Watching() { *watch = Watch(); }
    Watch* watch;
  };

  // SendTimeout: a send may wait --response_timeout for room (none: forever).
  gevent::IoTimeout SendTimeout() const {
    const absl::Duration t = ctx_.options->response_timeout;
    return t > absl::ZeroDuration() ? gevent::IoTimeout(t) : gevent::IoTimeout::Forever();
  }

  // ActiveGuard counts the client as connected for its lifetime (also while being unwound).
  struct ActiveGuard {
    ActiveGuard(ThreadCounters& c, std::int64_t connect_ns) : counters(c) {
      counters.RecordConnect(connect_ns);
    }
    ~ActiveGuard() { counters.AddActive(-1); }
    ThreadCounters& counters;
  };

  absl::StatusOr<gevent::Socket> Connect() {
    if (!ctx_.resolve_error.ok()) return ctx_.resolve_error;
    absl::Status last = absl::UnavailableError("no address");
    // Try the addresses in turn, spreading clients over them so a name with several addresses
    // shares the load; the whole attempt is bounded by connect_timeout.
    const std::size_t n = ctx_.addresses.size();
    const std::int64_t deadline =
        MonotonicNanos() + absl::ToInt64Nanoseconds(ctx_.options->connect_timeout);
    for (std::size_t i = 0; i < n; ++i) {
      const gevent::SocketAddress& address = ctx_.addresses[(id_ + i) % n];
      absl::StatusOr<gevent::Socket> s = gevent::Socket::Create(address.family(), SOCK_STREAM);
      if (!s.ok()) return s.status();
      s->SetNoDelay(true).IgnoreError();
      const std::int64_t left = deadline - MonotonicNanos();
      if (left <= 0) return absl::DeadlineExceededError("connect timed out");
      last = s->Connect(address, absl::Nanoseconds(left));
      if (last.ok()) return std::move(*s);
    }
    return last;
  }

  // StartTls wraps a connected socket in a TLS session (--tls) and completes the handshake within
  // what is left of connect_timeout (counted from connect_start): the handshake is part of the
  // connect, in its latency and its errors ("TLS handshake: certificate verify failed: ...").
  absl::Status StartTls(gevent::Socket socket, std::int64_t connect_start,
                        std::unique_ptr<gevent::SslSocket>* out) {
    const ClientOptions& o = *ctx_.options;
    absl::StatusOr<std::unique_ptr<gevent::SslSocket>> tls =
        gevent::SslSocket::Client(std::move(socket), o.tls, o.tls_server_name);
    if (!tls.ok()) return tls.status();
    const std::int64_t left =
        connect_start + absl::ToInt64Nanoseconds(o.connect_timeout) - MonotonicNanos();
    absl::Status done = (*tls)->Handshake(absl::Nanoseconds(std::max<std::int64_t>(left, 0)));
    if (!done.ok()) {
      return absl::Status(done.code(), absl::StrCat("TLS handshake: ", done.message()));
    }
    *out = std::move(*tls);
    return absl::OkStatus();
  }

  // Drain ends a conversation at the end of the run: half-close (TLS: close_notify), then read
  // and discard until the server's end of stream or the drain deadline. The server echoes what
  // it still had and sees a clean end of stream; closing with echoes unread would have sent it a
  // reset.
  void Drain(gevent::Stream& stream) {
    if (!stream.ShutdownWrite(gevent::IoTimeout(kDrainBound)).ok()) return;
    for (;;) {
      const std::int64_t left = ctx_.drain_deadline_ns - MonotonicNanos();
      if (left <= 0) return;
      absl::StatusOr<std::size_t> got = stream.RecvInto(
          absl::MakeSpan(buffer_), gevent::IoTimeout(absl::Nanoseconds(left)));
      if (!got.ok() || *got == 0) return;
    }
  }

  // Converse runs the message loop on a connected socket until an error, which it returns, or
  // the end of the run (std::nullopt; the stop cancels the socket's waits).
  // *holds_slot is cleared (and the connect slot released) after the first echo.
  // `Conn` is gevent::Socket (plain TCP: direct calls) or gevent::SslSocket; `raw` is the socket
  // underneath, whose read wait the sweeper cancels.
  template <typename Conn>
  std::optional<ErrorKind> Converse(Conn& conn, gevent::Socket& raw, bool* holds_slot,
                                    absl::Duration* backoff) {
    const ClientOptions& o = *ctx_.options;
    const std::size_t size = o.message_size;
    const std::size_t pipeline = ring_.size();
    const bool open_loop = interval_ns_ > 0;
    const std::int64_t response_timeout_ns = absl::ToInt64Nanoseconds(o.response_timeout);
    const gevent::IoTimeout send_timeout = SendTimeout();
    // The sweeper (ClientThread::Body) cancels the read wait once the oldest message is overdue.
    Watching watching(watch_, raw);
    std::size_t head = 0;
    std::size_t count = 0;
    std::size_t have = 0;
    const std::uint64_t limit = o.requests_per_connection;
    std::uint64_t sent_here = 0;
    std::int64_t now = MonotonicNanos();
    for (;;) {
      if (ctx_.stopping) return std::nullopt;
      if (limit > 0 && sent_here >= limit && count == 0) {
        ctx_.counters->AddCount(Count::kPlannedReconnects, 1);
        reconnect_ = true;
        return std::nullopt;
      }
      // Send every message that is due and fits in the pipeline.
      while (count < pipeline && (limit == 0 || sent_here < limit)) {
        std::int64_t intended = now;
        if (open_loop) {
          if (next_send_ns_ > now) break;
          intended = next_send_ns_;
          next_send_ns_ += interval_ns_;
        }
        const absl::Status sent = conn.SendAll(ctx_.pattern->Message(id_, seq_), send_timeout);
        if (!sent.ok()) {
          if (ctx_.stopping) return std::nullopt;
          return ClassifyIo(sent);
        }
        ring_[(head + count) % pipeline] = InFlight{seq_++, intended, now, RedisCommand::kSet};
        ++count;
        ++sent_here;
      }
      // Wait for echo bytes (open loop with nothing in flight: for the next send time, in a read
      // wait rather than a sleep so that the stop can cancel it; a byte arriving then is a
      // mismatch). The response timeout is enforced by the thread's sweeper, which
      // cancels the wait once the oldest message is overdue, so a closed-loop wait arms no timer.
      // Open loop: the wait also ends when the next send is due.
      const std::int64_t overdue_ns = response_timeout_ns > 0 && count > 0
                                          ? ring_[head].sent_ns + response_timeout_ns
                                          : INT64_MAX;
      watch_->deadline_ns = overdue_ns;
      std::optional<absl::Duration> wait;
      if (open_loop && count < pipeline && (limit == 0 || sent_here < limit)) {
        wait = absl::Nanoseconds(std::max<std::int64_t>(next_send_ns_ - now, 0));
      }
      // Room for one byte more than is due makes every read of a well-behaved echo short, so
      // the next RecvInto waits for readiness before its recv (gevent::Socket's edge rule)
      // instead of making one that would fail with EAGAIN: with many connections the echo is
      // almost never back when the send returns.
      absl::StatusOr<std::size_t> got =
          conn.RecvInto(absl::Span<char>(buffer_.data() + have, buffer_.size() - have),
                          wait.has_value() ? gevent::IoTimeout(*wait) : gevent::IoTimeout::Forever());
      now = MonotonicNanos();
      if (ctx_.stopping) return std::nullopt;
      if (now >= overdue_ns) return ErrorKind::kTimeout;  // Also when the sweeper cancelled.
      if (!got.ok()) {
        if (absl::IsDeadlineExceeded(got.status())) continue;  // Time for the next send.
        return ClassifyIo(got.status());
      }
      if (*got == 0) return have > 0 ? ErrorKind::kShortEcho : ErrorKind::kEof;
      have += *got;
      if (have > count * size) return ErrorKind::kMismatch;  // Bytes that were never sent.
      // Check and record every complete echo.
      std::size_t done = 0;
      while (have - done >= size) {
        const InFlight& m = ring_[head];
        if (std::memcmp(buffer_.data() + done, ctx_.pattern->Message(id_, m.seq).data(), size) !=
            0) {
          return ErrorKind::kMismatch;
        }
        ctx_.counters->RecordMessage(now - m.intended_ns, open_loop ? now - m.sent_ns : -1, size,
                                     ctx_.hub->stats());
        head = (head + 1) % pipeline;
        --count;
        done += size;
      }
      if (done > 0) {
        if (have > done) std::memmove(buffer_.data(), buffer_.data() + done, have - done);
        have -= done;
        if (*holds_slot) {
          *holds_slot = false;
          ctx_.connecting->Release();
          *backoff = kMinBackoff;  // The connection works: the next failure starts afresh.
        }
      }
    }
  }


  // ConverseProtocol: Converse for redis and http: requests formatted into out_ (all that are
  // due in one SendAll), replies parsed from a BufferedReader's buffer (Peek, Fill, Consume: no
  // copy) and checked. Returns as Converse does; reconnect_ is set for a planned reconnect or an
  // http server's close.
  std::optional<ErrorKind> ConverseProtocol(gevent::Stream& stream, gevent::Socket& raw,
                                            bool* holds_slot,
                                            absl::Duration* backoff) {
    const ClientOptions& o = *ctx_.options;
    const bool redis = o.protocol == Protocol::kRedis;
    if (redis && !redis_) {
      redis_.emplace(o.ratio, o.keyspace, o.value_size, 0x9e3779b97f4a7c15ull * (id_ + 1));
    }
    const std::size_t pipeline = ring_.size();
    const bool open_loop = interval_ns_ > 0;
    const std::int64_t response_timeout_ns = absl::ToInt64Nanoseconds(o.response_timeout);
    const gevent::IoTimeout send_timeout = SendTimeout();
    Watching watching(watch_, raw);
    gevent::BufferedReader reader(stream, {.capacity = 4096, .max_buffered = 1024 * 1024 + 4096});
    const std::uint64_t limit = o.requests_per_connection;
    std::uint64_t sent_here = 0;
    std::uint64_t replies_here = 0;
    std::size_t head = 0;
    std::size_t count = 0;
    std::int64_t now = MonotonicNanos();
    for (;;) {
      if (ctx_.stopping) return std::nullopt;
      if (limit > 0 && sent_here >= limit && count == 0) {
        ctx_.counters->AddCount(Count::kPlannedReconnects, 1);
        reconnect_ = true;
        return std::nullopt;
      }
      // Format every request that is due and fits in the pipeline, then send them at once.
      out_.clear();
      std::uint64_t sets = 0;
      std::size_t batch = 0;
      while (count + batch < pipeline && (limit == 0 || sent_here < limit)) {
        std::int64_t intended = now;
        if (open_loop) {
          if (next_send_ns_ > now) break;
          intended = next_send_ns_;
          next_send_ns_ += interval_ns_;
        }
        RedisCommand command = RedisCommand::kGet;
        if (redis) {
          command = redis_->Append(seq_, &out_);
          sets += command == RedisCommand::kSet;
        } else {
          out_.append(o.http_request);
        }
        ring_[(head + count + batch) % pipeline] = InFlight{seq_++, intended, now, command};
        ++batch;
        ++sent_here;
      }
      if (batch > 0) {
        const absl::Status sent = stream.SendAll(out_, send_timeout);
        if (!sent.ok()) {
          if (ctx_.stopping) return std::nullopt;
          return ClassifyIo(sent);
        }
        count += batch;
        ctx_.counters->AddSent(batch, redis ? sets : 0, redis ? batch - sets : 0);
      }
      // Wait for reply bytes (as Converse: the sweeper enforces the response timeout; open loop
      // also wakes for the next send).
      const std::int64_t overdue_ns = response_timeout_ns > 0 && count > 0
                                          ? ring_[head].sent_ns + response_timeout_ns
                                          : INT64_MAX;
      watch_->deadline_ns = overdue_ns;
      std::optional<absl::Duration> wait;
      if (open_loop && count < pipeline && (limit == 0 || sent_here < limit)) {
        wait = absl::Nanoseconds(std::max<std::int64_t>(next_send_ns_ - now, 0));
      }
      absl::StatusOr<std::size_t> got = reader.Fill(
          wait.has_value() ? gevent::IoTimeout(*wait) : gevent::IoTimeout::Forever());
      now = MonotonicNanos();
      if (ctx_.stopping) return std::nullopt;
      if (now >= overdue_ns) return ErrorKind::kTimeout;
      if (!got.ok()) {
        if (absl::IsDeadlineExceeded(got.status())) continue;
        if (absl::IsResourceExhausted(got.status())) {
          ctx_.counters->NoteErrorText(
              ErrorKind::kMalformed,
              absl::StrCat("reply at byte ", reader.offset(),
                           " of the connection's stream larger than the reader's buffer"));
          return ErrorKind::kMalformed;
        }
        // An http server may reset a keep-alive connection between responses.
        if (!redis && reader.available() == 0 && replies_here > 0 &&
            ClassifyIo(got.status()) == ErrorKind::kReset) {
          return ServerClosed();
        }
        return ClassifyIo(got.status());
      }
      if (*got == 0) {
        if (reader.available() > 0) return ErrorKind::kShortEcho;
        // An http server closing a connection that has answered is the keep-alive's end; one
        // that closes before any response is an error (so it is not reconnected in a tight loop).
        if (!redis && replies_here > 0) return ServerClosed();
        return ErrorKind::kEof;
      }
      // Parse and check every complete reply.
      std::size_t done = 0;
      while (reader.available() > 0) {
        const absl::string_view bytes = reader.Peek();
        if (count == 0) {
          Reply stray;
          stray.state = ParseState::kMalformed;
          stray.expected = "no bytes (no request in flight)";
          return Malformed(stray, bytes, reader.offset());
        }
        const InFlight& m = ring_[head];
        const Reply r = redis ? ParseRedisReply(bytes, m.command) : ParseHttpResponse(bytes);
        if (r.state == ParseState::kIncomplete) break;
        if (r.state == ParseState::kMalformed) return Malformed(r, bytes, reader.offset());
        if (!redis && r.status < 200 && r.status != 101) {
          // An interim response (100 Continue, 103 Early Hints): the final one follows.
          ctx_.counters->AddCount(Count::kHttp1xx, 1);
          reader.Consume(r.consumed);
          continue;
        }
        Count counted = Count::kCount;
        if (redis) {
          if (r.outcome == Reply::kError) {
            // Counted as an error; the connection stays (the reply was well-formed).
            ctx_.counters->RecordErrorText(ErrorKind::kServerError, r.error_text, ctx_.hub->stats());
          } else if (m.command == RedisCommand::kSet) {
            counted = Count::kSets;
          } else {
            counted = r.outcome == Reply::kMiss ? Count::kMisses : Count::kGets;
          }
        } else {
          counted = static_cast<Count>(static_cast<int>(Count::kHttp1xx) + r.status / 100 - 1);
        }
        ctx_.counters->RecordReply(now - m.intended_ns, open_loop ? now - m.sent_ns : -1,
                                   r.consumed, counted, ctx_.hub->stats());
        reader.Consume(r.consumed);
        head = (head + 1) % pipeline;
        --count;
        ++done;
        ++replies_here;
        if (!redis && r.close) return ServerClosed();  // Requests after it are lost.
      }
      if (done > 0 && *holds_slot) {
        *holds_slot = false;
        ctx_.connecting->Release();
        *backoff = kMinBackoff;
      }
    }
  }

  // ServerClosed: an http server ended a keep-alive connection; reconnect (counted, not an
  // error).
  std::optional<ErrorKind> ServerClosed() {
    ctx_.counters->AddCount(Count::kServerCloses, 1);
    reconnect_ = true;
    return std::nullopt;
  }

  ErrorKind Malformed(const Reply& r, absl::string_view bytes, std::uint64_t base) {
    ctx_.counters->NoteErrorText(ErrorKind::kMalformed, DescribeMalformed(r, bytes, base));
    return ErrorKind::kMalformed;
  }

  ThreadContext& ctx_;
  const std::uint64_t id_;
  Watch* const watch_;
  std::uint64_t seq_ = 0;
  bool reconnect_ = false;  // Converse ended for a reconnect, not the end of the run.
  std::string out_;         // redis/http: the requests of one send, reused.
  std::optional<RedisRequests> redis_;
  std::int64_t interval_ns_ = 0;   // Open loop only.
  std::int64_t next_send_ns_ = 0;  // Open loop only.
  // The messages in flight and the echo bytes received. Inline for the usual small pipelines, so
  // that they sit on the client's greenlet stack next to the frames every wake-up touches: with
  // thousands of clients, each separate allocation a message touches is one more cache miss.
  InlineArray<InFlight, 4> ring_;
  InlineArray<char, 256> buffer_;
};

}  // namespace

ClientThread::ClientThread(const ClientOptions& options, const MessagePattern& pattern,
                           int first_client, int count)
    : options_(options), pattern_(pattern), first_client_(first_client), count_(count) {}

ClientThread::~ClientThread() {
  if (thread_.joinable()) {
    Stop();
    Join();
  }
}

void ClientThread::Start() {
  thread_ = std::thread([this] { Body(); });
  started_.WaitForNotification();
}

void ClientThread::Stop() {
  if (stop_requested_ || !thread_.joinable()) return;
  stop_requested_ = true;
  stop_watcher_->Send();
  // From here on the thread may destroy the watcher and its hub.
  stop_sent_.Notify();
}

void ClientThread::Join() {
  if (thread_.joinable()) thread_.join();
}

void ClientThread::OnStop() {
  // Stopping the watcher lets Hub::Join return once the clients have ended.
  stop_watcher_->Stop();
}

void ClientThread::Body() {
  gevent::Hub& hub = gevent::GetHub();
  {
    gevent::Semaphore connecting(static_cast<std::size_t>(std::max(options_.max_connecting, 1)));
    ThreadContext ctx{std::vector<Watch>(static_cast<std::size_t>(count_)),
                      &options_,
                      &pattern_,
                      &counters_,
                      &hub,
                      &connecting,
                      options_.addresses,
                      absl::OkStatus()};
    std::vector<gevent::GreenletRef> helpers;  // The resolver, the sweeper, the reaper.
    std::vector<gevent::GreenletRef> clients;  // By id - first_client, as ctx.watches.
    // Referenced: keeps the hub's Join running until the stop arrives, whatever the clients do.
    gevent::AsyncWatcher stop(hub.loop(), [&] {
      // On the hub greenlet. Conversing clients (their socket is in their watch) have their
      // waits cancelled and see ctx.stopping: they drain and return. The others hold no echo
      // and are killed, as are the helpers.
      ctx.stopping = true;
      ctx.drain_deadline_ns = MonotonicNanos() + absl::ToInt64Nanoseconds(kDrainBound);
      OnStop();
      for (const gevent::GreenletRef& g : helpers) g->Kill(nullptr, /*block=*/false);
      for (std::size_t i = 0; i < clients.size(); ++i) {
        gevent::Socket* socket = ctx.watches[i].waiting;
        if (socket != nullptr) {
          socket->CancelWait(gevent::Socket::Side::kRead, absl::CancelledError("run ending"));
          socket->CancelWait(gevent::Socket::Side::kWrite, absl::CancelledError("run ending"));
        } else {
          clients[i]->Kill(nullptr, /*block=*/false);
        }
      }
      // The reaper: a client that was between two waits when the stop came sees ctx.stopping at
      // its next check; whatever still runs at the drain deadline is killed, so the stop is
      // bounded.
      helpers.push_back(gevent::Spawn([&ctx, &clients] {
        while (MonotonicNanos() < ctx.drain_deadline_ns) {
          if (std::all_of(clients.begin(), clients.end(),
                          [](const gevent::GreenletRef& g) { return g->dead(); })) {
            return;
          }
          gevent::Sleep(absl::Milliseconds(10));
        }
        for (const gevent::GreenletRef& g : clients) g->Kill(nullptr, /*block=*/false);
      }));
    });
    stop.Start();
    stop_watcher_ = &stop;
    started_.Notify();

    // Resolve once per thread unless RunLoad did (a numeric host is parsed without a thread) in
    // a greenlet, so the stop can interrupt it.
    gevent::GreenletRef resolver = gevent::Spawn([&] {
      if (ctx.addresses.empty()) {
        absl::StatusOr<std::vector<gevent::SocketAddress>> addresses =
            gevent::Resolve(options_.host, static_cast<std::uint16_t>(options_.port), AF_UNSPEC,
                            options_.connect_timeout);
        // Resolve returns at least one address or an error.
        if (!addresses.ok()) {
          ctx.resolve_error = addresses.status();
        } else {
          ctx.addresses = std::move(*addresses);
        }
      }
      if (ctx.stopping) return;
      gevent::SpawnOptions spawn;
      spawn.stack = {options_.stack_size, greenlet::StackKind::kUnguarded};
      clients.reserve(static_cast<std::size_t>(count_));
      for (int i = 0; i < count_; ++i) {
        clients.push_back(gevent::Spawn(spawn, [&ctx, id = first_client_ + i, i] {
          Client client(ctx, id, &ctx.watches[static_cast<std::size_t>(i)]);
          client.Run();
        }));
      }
      if (options_.response_timeout > absl::ZeroDuration()) {
        // The sweeper: a few times per timeout, cancel the read wait of every client whose
        // oldest message is overdue (it then sees the deadline and reports the timeout). One
        // timer per thread instead of one per wait.
        const absl::Duration period = std::clamp(options_.response_timeout / 4,
                                                 absl::Milliseconds(1), absl::Milliseconds(100));
        helpers.push_back(gevent::Spawn([&ctx, period] {
          for (;;) {
            gevent::Sleep(period);
            const std::int64_t now = MonotonicNanos();
            for (Watch& w : ctx.watches) {
              if (w.waiting != nullptr && w.deadline_ns <= now) {
                w.waiting->CancelWait(gevent::Socket::Side::kRead,
                                      absl::DeadlineExceededError("response overdue"));
              }
            }
          }
        }));
      }
    });
    helpers.push_back(resolver);
    hub.Join();
    // The main thread may still be inside Send; the watcher (and the loop) must outlive that.
    stop_sent_.WaitForNotification();
    clients.clear();
    helpers.clear();
  }
  gevent::DestroyHub();
}

}  // namespace loadgen
