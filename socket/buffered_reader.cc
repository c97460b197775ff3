#include "socket/buffered_reader.h"

#include <time.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/errors.h"

namespace gevent {
namespace {

std::int64_t NowNanos() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

// Deadline: one call's timeout, resolved once, spread over the reads the call makes. The clock is
// read only when a read is needed, and only for a finite, non-zero timeout.
class BufferedReader::Deadline {
 public:
  Deadline(IoTimeout timeout, Stream& stream) : total_(timeout.Resolve(stream.socket().timeout())) {}

  IoTimeout Next() {
    if (!total_.has_value()) return IoTimeout::Forever();
    if (*total_ <= absl::ZeroDuration()) return IoTimeout(absl::ZeroDuration());
    const std::int64_t now = NowNanos();
    if (start_ns_ < 0) {
      start_ns_ = now;
      return IoTimeout(*total_);
    }
    const absl::Duration left = *total_ - absl::Nanoseconds(now - start_ns_);
    return IoTimeout(std::max(left, absl::ZeroDuration()));
  }

 private:
  std::optional<absl::Duration> total_;
  std::int64_t start_ns_ = -1;
};

BufferedReader::BufferedReader(Stream& stream, BufferedReaderOptions options)
    : stream_(stream), options_(options) {
  if (options_.max_buffered < 1) options_.max_buffered = 1;
  options_.capacity = std::clamp<std::size_t>(options_.capacity, 1, options_.max_buffered);
  options_.max_line = std::min(options_.max_line, options_.max_buffered);
  capacity_ = options_.capacity;
  buf_.reset(new char[capacity_]);
}

void BufferedReader::Consume(std::size_t n) {
  if (n > available()) {
    throw UsageError(absl::StrCat("gevent::BufferedReader::Consume(", n, ") with only ",
                                  available(), " bytes buffered"));
  }
  begin_ += n;
  consumed_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

absl::StatusOr<std::size_t> BufferedReader::FillOnce(Deadline& deadline, const char* what) {
  if (eof_) return 0;
  if (begin_ == end_) begin_ = end_ = 0;
  if (end_ == capacity_) {
    if (begin_ > 0) {  // Compact: move the unconsumed bytes to the front.
      std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    } else if (capacity_ < options_.max_buffered) {  // Grow for an item that does not fit.
      const std::size_t grown = std::min(capacity_ * 2, options_.max_buffered);
      std::unique_ptr<char[]> bigger(new char[grown]);
      std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      capacity_ = grown;
    } else {
      return absl::ResourceExhaustedError(
          absl::StrCat("gevent::BufferedReader::", what, ": ", end_,
                       " bytes buffered, the limit (max_buffered)"));
    }
  }
  absl::StatusOr<std::size_t> got =
      stream_.RecvInto(absl::Span<char>(buf_.get() + end_, capacity_ - end_), deadline.Next());
  if (!got.ok()) return got.status();
  if (*got == 0) eof_ = true;
  end_ += *got;
  return *got;
}

absl::StatusOr<std::size_t> BufferedReader::Fill(IoTimeout timeout) {
  Deadline deadline(timeout, stream_);
  return FillOnce(deadline, "Fill");
}

absl::StatusOr<absl::string_view> BufferedReader::Until(absl::string_view delimiter, bool strip_cr,
                                                        IoTimeout timeout, const char* what) {
  if (delimiter.empty()) throw UsageError("gevent::BufferedReader::ReadUntil with an empty delimiter");
  std::optional<Deadline> deadline;
  std::size_t searched = 0;  // Bytes of Peek() already known to hold no delimiter start.
  for (;;) {
    const absl::string_view have = Peek();
    const std::size_t at = have.find(delimiter, searched);
    if (at != absl::string_view::npos) {
      std::size_t text = at;
      if (strip_cr && text > 0 && have[text - 1] == '\r') --text;
      if (text > options_.max_line) break;  // Found, but too long anyway.
      const absl::string_view line = have.substr(0, text);
      begin_ += at + delimiter.size();
      consumed_ += at + delimiter.size();
      // Do not reset begin_/end_ here: `line` points into the buffer (the next call resets).
      return line;
    }
    if (have.size() >= delimiter.size()) searched = have.size() - delimiter.size() + 1;
    // The text before a delimiter may be max_line bytes, plus "\r" when stripped.
    if (have.size() > options_.max_line + (strip_cr ? 1 : 0) + delimiter.size() - 1) break;
    if (!deadline) deadline.emplace(timeout, stream_);
    absl::StatusOr<std::size_t> got = FillOnce(*deadline, what);
    if (!got.ok()) return got.status();
    if (*got == 0) {
      return absl::OutOfRangeError(
          absl::StrCat("gevent::BufferedReader::", what, ": end of stream after ", available(),
                       " bytes without the terminator"));
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat("gevent::BufferedReader::", what,
                                                   ": record longer than ", options_.max_line,
                                                   " bytes (max_line) without the terminator"));
}

absl::StatusOr<absl::string_view> BufferedReader::ReadLine(IoTimeout timeout) {
  return Until("\n", /*strip_cr=*/true, timeout, "ReadLine");
}

absl::StatusOr<absl::string_view> BufferedReader::ReadUntil(absl::string_view delimiter,
                                                            IoTimeout timeout) {
  return Until(delimiter, /*strip_cr=*/false, timeout, "ReadUntil");
}

absl::StatusOr<absl::string_view> BufferedReader::ReadExactly(std::size_t n, IoTimeout timeout) {
  if (n > options_.max_buffered) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "gevent::BufferedReader::ReadExactly(", n, "): more than max_buffered (",
        options_.max_buffered, " bytes)"));
  }
  std::optional<Deadline> deadline;
  while (available() < n) {
    if (!deadline) deadline.emplace(timeout, stream_);
    absl::StatusOr<std::size_t> got = FillOnce(*deadline, "ReadExactly");
    if (!got.ok()) return got.status();
    if (*got == 0) {
      return absl::OutOfRangeError(absl::StrCat("gevent::BufferedReader::ReadExactly: end of stream after ",
                                                available(), " of ", n, " bytes"));
    }
  }
  const absl::string_view out(buf_.get() + begin_, n);
  begin_ += n;
  consumed_ += n;
  return out;
}

absl::Status BufferedReader::Discard(std::size_t n, IoTimeout timeout) {
  std::size_t skipped = 0;
  std::optional<Deadline> deadline;
  for (;;) {
    const std::size_t take = std::min(n - skipped, available());
    Consume(take);
    skipped += take;
    if (skipped == n) return absl::OkStatus();
    if (!deadline) deadline.emplace(timeout, stream_);
    absl::StatusOr<std::size_t> got = FillOnce(*deadline, "Discard");
    if (!got.ok()) {
      absl::Status error(got.status().code(), absl::StrCat(got.status().message(), " (Discard: ",
                                                           skipped, " of ", n, " bytes skipped)"));
      got.status().ForEachPayload([&error](absl::string_view url, const absl::Cord& payload) {
        error.SetPayload(url, payload);
      });
      return error;
    }
    if (*got == 0) {
      return absl::OutOfRangeError(absl::StrCat("gevent::BufferedReader::Discard: end of stream after ",
                                                skipped, " of ", n, " bytes"));
    }
  }
}

}  // namespace gevent
