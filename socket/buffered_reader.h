// gevent::BufferedReader — buffered reading of a gevent::Stream: lines, exact counts, delimited
// records (the reading half of gevent's socket.makefile()).
//
//   gevent::SocketStream stream(socket);
//   gevent::BufferedReader reader(stream);
//   absl::StatusOr<absl::string_view> status_line = reader.ReadLine();    // "HTTP/1.1 200 OK"
//   absl::StatusOr<absl::string_view> body = reader.ReadExactly(64);
//
// Zero copy. Every result is a string_view into the reader's own buffer. It stays valid until the
// next non-const call on the reader (any Read*, Fill, Consume, Discard); copy it to keep it.
// Nothing is allocated per call: the buffer is allocated once (`capacity`) and grows (doubling, up
// to `max_buffered`) only for an item that does not fit.
//
// Lines. ReadLine ends a line at "\n" and strips it, and a "\r" just before it ("\r\n" lines and
// "\n" lines both read as their text, as HTTP/1.1 parsers tolerate; a lone "\r" is data). For a
// strict terminator use ReadUntil("\r\n"). A line (or a ReadUntil record) whose text exceeds
// `max_line` bytes without its terminator gives ResourceExhausted "... longer than N bytes"
// instead of growing the buffer without bound; nothing is consumed, so the caller should drop the
// connection.
//
// Timeouts. Each call takes an IoTimeout, resolved as the stream's calls resolve it (the default:
// the underlying socket's own timeout, Socket::SetTimeout). It bounds the whole call, however many
// reads it takes (as Socket::SendAll's does), measured from the first read it makes; a call that
// the buffer already satisfies reads nothing and cannot time out. Zero: never park (DeadlineExceeded
// if the bytes are not there yet). Expiry is DeadlineExceeded.
//
// Errors keep the data. On any error (a timeout, the stream's errors unchanged: Unavailable for a
// reset, FailedPrecondition for a closed stream, a cancelled wait) nothing is consumed: the bytes
// received so far stay buffered, and the same call may be made again (after a DeadlineExceeded
// that is how a caller interleaves reads with other work). The end of the stream in the middle of
// an item is OutOfRange naming the operation and how many bytes of the item were read
// ("... end of stream after 7 of 64 bytes"); at an item boundary too (0 bytes), so a clean close
// is OutOfRange with "after 0". eof() then says the stream has ended; later reads do not call the
// stream again.
//
// Incremental parsing. For protocols whose items a single pass parses best (RESP, HTTP responses),
// Peek() shows every buffered byte, Fill() reads once more, Consume(n) drops parsed bytes: parse
// what Peek() shows, and if the item is incomplete, Fill and parse again. offset() is the stream
// position of Peek()'s first byte, for error messages naming where a malformed item starts.
//
// Thread-safety: as the Stream underneath (hub thread only; one reading greenlet at a time).
// The reader must not outlive the stream.
#ifndef GEVENT_SOCKET_BUFFERED_READER_H_
#define GEVENT_SOCKET_BUFFERED_READER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "socket/io_timeout.h"
#include "socket/stream.h"

namespace gevent {

struct BufferedReaderOptions {
  std::size_t capacity = 16 * 1024;         // Initial buffer.
  std::size_t max_buffered = 1024 * 1024;   // The buffer never grows past this.
  std::size_t max_line = 64 * 1024;         // ReadLine / ReadUntil text limit (<= max_buffered).
};

class BufferedReader {
 public:
  explicit BufferedReader(Stream& stream, BufferedReaderOptions options = {});
  BufferedReader(const BufferedReader&) = delete;
  BufferedReader& operator=(const BufferedReader&) = delete;

  // ReadLine: the next line without its "\n" (or "\r\n"); see the file comment.
  absl::StatusOr<absl::string_view> ReadLine(IoTimeout timeout = {});
  // ReadUntil: the bytes before the next `delimiter` (not empty); the delimiter is consumed and not
  // returned. Limited to max_line bytes before it.
  absl::StatusOr<absl::string_view> ReadUntil(absl::string_view delimiter, IoTimeout timeout = {});
  // ReadExactly: the next n bytes. ResourceExhausted when n > max_buffered (use Discard to skip
  // large payloads).
  absl::StatusOr<absl::string_view> ReadExactly(std::size_t n, IoTimeout timeout = {});
  // Discard: skips the next n bytes, any n (reads through the buffer without keeping them). On an
  // error, what was skipped stays skipped: the status says how many bytes of n were.
  absl::Status Discard(std::size_t n, IoTimeout timeout = {});

  // Peek: every buffered, unconsumed byte (no read). available(): its size.
  absl::string_view Peek() const { return absl::string_view(buf_.get() + begin_, end_ - begin_); }
  std::size_t available() const { return end_ - begin_; }
  // Fill: one read of the stream into the buffer (compacting or growing it first if it is
  // full); returns the bytes added, 0 at the end of the stream (then eof()). ResourceExhausted if
  // max_buffered bytes are buffered already.
  absl::StatusOr<std::size_t> Fill(IoTimeout timeout = {});
  // Consume: drops the first n buffered bytes (n <= available(), else UsageError).
  void Consume(std::size_t n);

  // offset: the stream position of the first unconsumed byte (bytes consumed since construction).
  std::uint64_t offset() const { return consumed_; }
  bool eof() const { return eof_; }
  Stream& stream() { return stream_; }

 private:
  class Deadline;
  // FillOnce: Fill under a call's deadline; `what` names the caller in errors.
  absl::StatusOr<std::size_t> FillOnce(Deadline& deadline, const char* what);
  absl::StatusOr<absl::string_view> Until(absl::string_view delimiter, bool strip_cr,
                                          IoTimeout timeout, const char* what);

  Stream& stream_;
  BufferedReaderOptions options_;
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_;
  std::size_t begin_ = 0;  // First unconsumed byte.
  std::size_t end_ = 0;    // One past the last buffered byte.
  std::uint64_t consumed_ = 0;
  bool eof_ = false;
};

}  // namespace gevent

#endif  // GEVENT_SOCKET_BUFFERED_READER_H_
