// The load generator's clients: one greenlet per connection, grouped on client threads that each
// run a hub.
//
// A client connects, then keeps up to `pipeline` messages in flight: it sends a message, reads the
// echo, checks every byte against what it sent, and records the latency. Closed loop (rate 0):
// the next message goes out as soon as an echo is back. Open loop (rate > 0): message k of a
// client is due at start + phase + k / rate_per_client; its latency is measured from that
// intended time (so a stall delays the clock, not the measurement: coordinated-omission
// correction, as wrk2 does) and, separately, from the moment it was actually sent.
//
// End of a run (ClientThread::Stop): a client that is conversing stops sending, half-closes
// (shutdown SHUT_WR) and reads and discards until the server's end of stream, at most
// kDrainBound, then closes: the server echoes what it had and sees a clean close, not a reset
// for echoes left unread. A client connecting or backing off is killed (it holds no echo).
// Whatever is still running after kDrainBound is killed, so a stop takes at most that long.
//
// After any error (kinds in report.h) the client closes the connection, waits a short back-off
// (10 ms doubling to 500 ms, so a refusing server is not hammered) and connects again. Messages in
// flight at an error are lost, not counted.
//
// Protocols (ClientOptions::protocol, protocol.h). Echo is the above. Redis and http keep the same
// connection, pipeline, open-loop, timeout and drain rules, but format requests (all that are due
// in one send, into a buffer reused for the connection's life) and parse replies from a
// gevent::BufferedReader's buffer over a gevent::Stream without copying them; a malformed reply is
// an error (kMalformed, its description with the stream offset kept), a redis error reply is
// counted (kServerError) on a connection that stays up, an http server closing a keep-alive
// connection after a response is a counted reconnect (Count::kServerCloses), not an error. With
// requests_per_connection the client reconnects, without back-off, after that many replies.
//
// Message contents: message k of client c is a slice of a fixed pseudo-random byte string starting
// at offset (c * 131 + k * 97) mod 251, so consecutive messages of a connection all differ (a
// stale, repeated or reordered echo is a mismatch) and building one costs nothing.
//
// Threads. ClientThread owns an OS thread with its own hub; the clients live and die there. Its
// public methods are for the thread that created it (main); the counters it publishes
// (ThreadCounters) are read from any thread.
#ifndef LOADGEN_CLIENT_H_
#define LOADGEN_CLIENT_H_

#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "hub/hub.h"
#include "loadgen/histogram.h"
#include "loadgen/protocol.h"
#include "loadgen/report.h"
#include "socket/address.h"

namespace gevent {
class AsyncWatcher;
class SslContext;
}  // namespace gevent

namespace loadgen {

// MonotonicNanos: CLOCK_MONOTONIC in nanoseconds (the clock of every latency).
std::int64_t MonotonicNanos();

// MessagePattern: the bytes of every message (see the file comment). Immutable; thread-safe.
class MessagePattern {
 public:
  static constexpr std::size_t kPeriod = 251;  // Prime: offsets cycle through all 251 values.

  explicit MessagePattern(std::size_t message_size, std::uint64_t seed = 0x9e3779b97f4a7c15);

  // Message: the `size()` bytes of message `seq` of client `client`.
  absl::string_view Message(std::uint64_t client, std::uint64_t seq) const {
    const std::size_t offset = static_cast<std::size_t>((client * 131 + seq * 97) % kPeriod);
    return absl::string_view(bytes_.data() + offset, size_);
  }
  std::size_t size() const { return size_; }

 private:
  std::size_t size_;
  std::vector<char> bytes_;
};

// ThreadSnapshot: the cumulative counters of one client thread.
struct ThreadSnapshot {
  std::uint64_t messages = 0;
  std::uint64_t bytes = 0;
  std::uint64_t switches = 0;       // The hub's HubStats::switches(), as last published.
  std::uint64_t loop_iterations = 0;  // The hub's HubStats::polls, as last published.
  std::uint64_t callbacks_run = 0;    // The hub's HubStats::callbacks_run, as last published.
  std::int64_t active = 0;     // Clients connected now.
  std::uint64_t connects = 0;  // Connections made so far (cumulative).
  ErrorCounts errors{};
  Counts counts{};  // Protocol counts (report.h), cumulative.
};

// OneShot: a flag one thread sets once and others wait for. On std::mutex rather than
// absl::Notification, so that ThreadSanitizer sees the hand-off (the system abseil is not built
// for it).
class OneShot {
 public:
  void Notify() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
  }
  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return done_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

// ThreadCounters: what a client thread publishes for the reporter. Thread-safe: the client thread
// records, any thread takes snapshots. One uncontended mutex acquisition per message.
class ThreadCounters {
 public:
  // RecordMessage: one echo completed. `uncorrected_ns` < 0: closed loop (not recorded).
  // `hub` is the client thread's hub, whose counters are published with each record.
  void RecordMessage(std::int64_t latency_ns, std::int64_t uncorrected_ns, std::uint64_t bytes,
                     const gevent::HubStats& hub);
  // RecordReply: RecordMessage for a protocol reply, and one more of `count` (Count::kCount:
  // none), under the same lock.
  void RecordReply(std::int64_t latency_ns, std::int64_t uncorrected_ns, std::uint64_t bytes,
                   Count count, const gevent::HubStats& hub);
  // AddSent: one send's requests (and of them SETs and GETs), under one lock.
  void AddSent(std::uint64_t requests, std::uint64_t sets, std::uint64_t gets);
  // AddCount: `n` more of `count`.
  void AddCount(Count count, std::uint64_t n);
  void RecordError(ErrorKind kind, const gevent::HubStats& hub);
  // RecordErrorText: RecordError, and keeps `why` if it is the first text of its kind (redis
  // error replies, malformed replies; FirstErrorText reads it).
  void RecordErrorText(ErrorKind kind, absl::string_view why, const gevent::HubStats& hub);
  // NoteErrorText: keeps `why` as above without counting (the caller's RecordError counts).
  void NoteErrorText(ErrorKind kind, absl::string_view why);
  std::string FirstErrorText(ErrorKind kind);
  // RecordConnect: AddActive(1) and the connect's duration in the connect histogram.
  void RecordConnect(std::int64_t connect_ns);
  // RecordConnectError: RecordError, and keeps `why` as the last connect error's text.
  void RecordConnectError(ErrorKind kind, absl::string_view why, const gevent::HubStats& hub);
  // AddActive: +1 when a connection is made (also counted in connects), -1 when it ends.
  void AddActive(int delta);
  // Connects: ThreadSnapshot::connects now.
  std::uint64_t Connects();
  // LastConnectError: the text of the latest connect failure ("" if none).
  std::string LastConnectError();

  // TakeInterval returns the cumulative counters and swaps the latency samples recorded since the
  // previous call into *latency and *uncorrected (which should be empty; they get the old
  // buffers back, so nothing is allocated).
  // *connect (if not null) likewise gets the connect times.
  ThreadSnapshot TakeInterval(Histogram* latency, Histogram* uncorrected,
                              Histogram* connect = nullptr);

 private:
  void PublishHub(const gevent::HubStats& hub) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    totals_.switches = hub.switches();
    totals_.loop_iterations = hub.polls;
    totals_.callbacks_run = hub.callbacks_run;
  }

  // std::mutex: cheaper uncontended than absl::Mutex (no deadlock-detection bookkeeping) and
  // visible to ThreadSanitizer.
  std::mutex mu_;
  ThreadSnapshot totals_ ABSL_GUARDED_BY(mu_);
  Histogram latency_ ABSL_GUARDED_BY(mu_);
  Histogram uncorrected_ ABSL_GUARDED_BY(mu_);
  Histogram connect_ ABSL_GUARDED_BY(mu_);
  std::string last_connect_error_ ABSL_GUARDED_BY(mu_);
  std::string first_server_error_ ABSL_GUARDED_BY(mu_);
  std::string first_malformed_ ABSL_GUARDED_BY(mu_);
};

// kDrainBound: how long the end-of-run drain may take (see the file comment).
inline constexpr absl::Duration kDrainBound = absl::Seconds(1);

// ClientOptions: what every client of a run shares.
struct ClientOptions {
  // The server: `addresses` when not empty (RunLoad resolves once, at start-up), else `host`
  // and `port` (a numeric address or a name, resolved once per thread).
  std::vector<gevent::SocketAddress> addresses;
  std::string host;
  int port = 0;
  std::size_t message_size = 64;
  int pipeline = 1;
  double rate_per_client = 0;  // Messages/s per client; 0: closed loop.
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration response_timeout = absl::Seconds(5);  // Zero: no limit.
  std::int64_t schedule_start_ns = 0;  // Open loop: MonotonicNanos() at which sending starts.
  int total_clients = 1;               // For spreading open-loop phases.
  // Clients of one thread between connect and their first echo, at most: bounds the server's
  // accept queue during the connection storm at start-up, so no SYN is dropped (RunLoad sets
  // 2048 shared among the threads).
  int max_connecting = 256;
  // The protocol (protocol.h) and its requests: redis formats each request (ratio, keyspace,
  // value_size); http sends http_request, built once.
  Protocol protocol = Protocol::kEcho;
  Ratio ratio;
  std::uint64_t keyspace = 100000;
  std::size_t value_size = 32;
  std::string http_request;
  std::uint64_t requests_per_connection = 0;  // 0: unlimited.
  // --tls: a client context (null: plain TCP) and the name its sessions send as SNI and check
  // the certificate against (the target's host).
  std::shared_ptr<gevent::SslContext> tls;
  std::string tls_server_name;
  // Client greenlet stacks: unguarded slab stacks, so 10,000+ clients fit under
  // vm.max_map_count; only touched pages become resident.
  std::size_t stack_size = 64 * 1024;
};

// ClientThread: an OS thread running `count` clients (ids first_client .. first_client+count-1).
class ClientThread {
 public:
  ClientThread(const ClientOptions& options, const MessagePattern& pattern, int first_client,
               int count);
  ClientThread(const ClientThread&) = delete;
  ClientThread& operator=(const ClientThread&) = delete;
  // ~ClientThread: Stop() and Join() if still running.
  ~ClientThread();

  // Start launches the thread and returns once it can take Stop(). Once only.
  void Start();
  // Stop asks the clients to end: conversing clients drain and close cleanly, the others are
  // killed (see the file comment); the thread's hub then finishes, within kDrainBound. Returns
  // at once; idempotent.
  void Stop();
  // Join waits for the thread (call Stop first, or it waits for the run to be stopped).
  void Join();

  // native_handle: for reading the thread's CPU clock while it runs.
  pthread_t native_handle() { return thread_.native_handle(); }
  ThreadCounters& counters() { return counters_; }

 private:
  void Body();
  void OnStop();

  const ClientOptions options_;
  const MessagePattern& pattern_;
  const int first_client_;
  const int count_;
  ThreadCounters counters_;
  std::thread thread_;
  OneShot started_;    // The stop watcher exists.
  OneShot stop_sent_;  // The main thread is done with the stop watcher.
  gevent::AsyncWatcher* stop_watcher_ = nullptr;  // Written before started_; owned by Body.
  bool stop_requested_ = false;     // Main thread only.
};

}  // namespace loadgen

#endif  // LOADGEN_CLIENT_H_
