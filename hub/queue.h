// gevent::Queue<T>, LifoQueue<T>, PriorityQueue<T, Compare>, Channel<T> — queues between
// greenlets of one hub (gevent.queue).
//
//   gevent::Queue<Job> jobs(/*maxsize=*/16);      // 0: unbounded
//   producer: if (absl::Status s = jobs.Put(job); !s.ok()) ...   // blocks while full
//   consumer: absl::StatusOr<Job> job = jobs.Get();                // blocks while empty
//             ...; jobs.TaskDone();
//   jobs.Join();                                  // every put item had its TaskDone
//
// Errors (base/errors.h: would-block and timeouts are absl::DeadlineExceeded everywhere):
//   Full  — absl::DeadlineExceededError("queue full..."): a non-blocking Put on a full queue, or
//           a blocking Put whose timeout expired (gevent raises Full in both cases).
//           IsQueueFull().
//   Empty — absl::DeadlineExceededError("queue empty..."): a non-blocking Get on an empty queue,
//           or a blocking Get whose timeout expired (gevent raises Empty). IsQueueEmpty().
//   The two are told apart by the call that returned them (Put: full, Get: empty); the message
//   names the queue kind and the situation.
//   TaskDone more times than items were put — absl::FailedPreconditionError(
//           "task_done() called too many times").
// On a failed Put the item (taken by value) is dropped.
//
// Waking. Getters and putters park in FIFO lists (nodes on their own stacks: no allocation per
// wait). Items are handed over before the woken greenlet runs: a Put with getters parked gives
// the item straight to the oldest getter; a Get on a full queue with putters parked moves the
// oldest putter's item in. So later arrivals never overtake parked greenlets and wake-ups are
// FIFO. A getter killed (an exception thrown into it) after an item was handed to it passes the
// item to the next getter, or puts it back at the head of the queue (which may then exceed
// maxsize by one).
//
// A blocking Get/Put that can never return (nothing else alive on the hub) throws LoopExit; on
// the hub greenlet itself, BlockingInHubError.
//
// Lifetime: a queue must outlive every greenlet parked on it. Thread-safety: hub thread only.
#ifndef GEVENT_HUB_QUEUE_H_
#define GEVENT_HUB_QUEUE_H_

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hub/wait_list.h"

namespace gevent {

// IsQueueFull / IsQueueEmpty: the status of a Put / Get that would have had to wait longer
// (DeadlineExceeded, for both; the call says which).
inline bool IsQueueFull(const absl::Status& s) { return absl::IsDeadlineExceeded(s); }
inline bool IsQueueEmpty(const absl::Status& s) { return absl::IsDeadlineExceeded(s); }

namespace internal {

// Item stores: Push for Put, Pop for Get, Reinsert for an item a killed getter hands back.
template <typename T>
class FifoStore {
 public:
  void Push(T&& v) { items_.push_back(std::move(v)); }
  T Pop() {
    T v = std::move(items_.front());
    items_.pop_front();
    return v;
  }
  void Reinsert(T&& v) { items_.push_front(std::move(v)); }
  std::size_t size() const { return items_.size(); }

 private:
  std::deque<T> items_;
};

template <typename T>
class LifoStore {
 public:
  void Push(T&& v) { items_.push_back(std::move(v)); }
  T Pop() {
    T v = std::move(items_.back());
    items_.pop_back();
    return v;
  }
  void Reinsert(T&& v) { Push(std::move(v)); }
  std::size_t size() const { return items_.size(); }

 private:
  std::vector<T> items_;
};

// PriorityStore: Pop returns the smallest item by Compare (Python's heapq order).
template <typename T, typename Compare>
class PriorityStore {
 public:
  void Push(T&& v) {
    items_.push_back(std::move(v));
    std::push_heap(items_.begin(), items_.end(), Greater());
  }
  T Pop() {
    std::pop_heap(items_.begin(), items_.end(), Greater());
    T v = std::move(items_.back());
    items_.pop_back();
    return v;
  }
  void Reinsert(T&& v) { Push(std::move(v)); }
  std::size_t size() const { return items_.size(); }

 private:
  auto Greater() const {
    return [this](const T& a, const T& b) { return compare_(b, a); };
  }
  Compare compare_;
  std::vector<T> items_;
};

template <typename T, typename Store>
class BasicQueue {
 public:
  // maxsize 0: unbounded.
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  std::size_t maxsize() const { return maxsize_; }
  std::size_t size() const { return store_.size(); }
  bool empty() const { return store_.size() == 0; }
  bool full() const { return maxsize_ > 0 && store_.size() >= maxsize_; }
  std::size_t getter_count() const { return getters_.size(); }
  std::size_t putter_count() const { return putters_.size(); }
  // unfinished_tasks: items put that have not had their TaskDone yet.
  std::size_t unfinished_tasks() const { return unfinished_; }

  // Put adds `item`; if the queue is full, parks (block) until a Get makes room, or fails at
  // once (!block) / when `timeout` expires with the Full error.
  absl::Status Put(T item, bool block = true, std::optional<absl::Duration> timeout = std::nullopt) {
    if (GetterNode* getter = getters_.GrantFront()) {
      ++unfinished_;
      getter->payload.emplace(std::move(item));
      return absl::OkStatus();
    }
    if (!full()) {
      store_.Push(std::move(item));
      ++unfinished_;
      return absl::OkStatus();
    }
    if (!block) return absl::DeadlineExceededError("queue full");
    PutterNode node;
    node.payload = &item;
    // A granted putter's item is already in the queue: nothing to undo.
    if (!putters_.WaitFor(node, timeout, [](PutterNode&) {})) {
      return absl::DeadlineExceededError("queue full (timed out waiting for room)");
    }
    return absl::OkStatus();
  }
  absl::Status PutNowait(T item) { return Put(std::move(item), false); }

  // Get removes and returns the next item; if the queue is empty, parks (block) until a Put, or
  // fails at once (!block) / when `timeout` expires with the Empty error.
  absl::StatusOr<T> Get(bool block = true, std::optional<absl::Duration> timeout = std::nullopt) {
    if (store_.size() > 0) {
      T item = store_.Pop();
      if (PutterNode* putter = putters_.GrantFront()) {
        store_.Push(std::move(*putter->payload));
        ++unfinished_;
      }
      return item;
    }
    if (!block) return absl::DeadlineExceededError("queue empty");
    GetterNode node;
    if (!getters_.WaitFor(node, timeout,
                          [this](GetterNode& n) { GiveBack(std::move(*n.payload)); })) {
      return absl::DeadlineExceededError("queue empty (timed out waiting for an item)");
    }
    return std::move(*node.payload);
  }
  absl::StatusOr<T> GetNowait() { return Get(false); }

  // TaskDone marks one put item as processed; when every one is, Join waiters wake.
  absl::Status TaskDone() {
    if (unfinished_ == 0) {
      return absl::FailedPreconditionError("task_done() called too many times");
    }
    if (--unfinished_ == 0) joiners_.GrantAll();
    return absl::OkStatus();
  }

  // Join parks until every item put so far has had its TaskDone (true), or `timeout` expires
  // (false).
  bool Join(std::optional<absl::Duration> timeout = std::nullopt) {
    if (unfinished_ == 0) return true;
    JoinNode node;
    return joiners_.WaitFor(node, timeout, [](JoinNode&) {});
  }

 private:
  using GetterNode = WaitNode<std::optional<T>>;
  using PutterNode = WaitNode<T*>;
  using JoinNode = WaitNode<NoPayload>;

  // GiveBack: an item handed to a getter that was killed before it took it.
  void GiveBack(T&& item) {
    if (GetterNode* getter = getters_.GrantFront()) {
      getter->payload.emplace(std::move(item));
    } else {
      store_.Reinsert(std::move(item));
    }
  }

  std::size_t maxsize_;
  Store store_;
  std::size_t unfinished_ = 0;
  WaitList<GetterNode> getters_;
  WaitList<PutterNode> putters_;
  WaitList<JoinNode> joiners_;
};

}  // namespace internal

// Queue<T>: first in, first out (gevent.queue.Queue).
template <typename T>
class Queue : public internal::BasicQueue<T, internal::FifoStore<T>> {
 public:
  using internal::BasicQueue<T, internal::FifoStore<T>>::BasicQueue;
};

// LifoQueue<T>: last in, first out (gevent.queue.LifoQueue).
template <typename T>
class LifoQueue : public internal::BasicQueue<T, internal::LifoStore<T>> {
 public:
  using internal::BasicQueue<T, internal::LifoStore<T>>::BasicQueue;
};

// PriorityQueue<T, Compare>: Get returns the smallest item by Compare (gevent.queue.
// PriorityQueue, heapq order); use std::greater<T> for the largest first. Equal items come out
// in no particular order.
template <typename T, typename Compare = std::less<T>>
class PriorityQueue : public internal::BasicQueue<T, internal::PriorityStore<T, Compare>> {
 public:
  using internal::BasicQueue<T, internal::PriorityStore<T, Compare>>::BasicQueue;
};

// Channel<T>: a rendezvous with no buffer (gevent.queue.Channel): Put parks until a Get takes the
// item, Get parks until a Put offers one. Same error codes as Queue: a Put with no getter parked
// fails with Full when it may not block or times out; a Get with no putter, with Empty.
template <typename T>
class Channel {
 public:
  Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  std::size_t getter_count() const { return getters_.size(); }
  std::size_t putter_count() const { return putters_.size(); }

  // Put returns OK once a getter has taken `item`.
  absl::Status Put(T item, bool block = true, std::optional<absl::Duration> timeout = std::nullopt) {
    if (GetterNode* getter = getters_.GrantFront()) {
      getter->payload.emplace(std::move(item));
      return absl::OkStatus();
    }
    if (!block) return absl::DeadlineExceededError("channel full: no getter is waiting");
    PutterNode node;
    node.payload = &item;
    if (!putters_.WaitFor(node, timeout, [](PutterNode&) {})) {
      return absl::DeadlineExceededError("channel full (timed out waiting for a getter)");
    }
    return absl::OkStatus();
  }
  absl::Status PutNowait(T item) { return Put(std::move(item), false); }

  absl::StatusOr<T> Get(bool block = true, std::optional<absl::Duration> timeout = std::nullopt) {
    if (!returned_.empty()) {
      T item = std::move(returned_.front());
      returned_.pop_front();
      return item;
    }
    if (PutterNode* putter = putters_.GrantFront()) return std::move(*putter->payload);
    if (!block) return absl::DeadlineExceededError("channel empty: no putter is waiting");
    GetterNode node;
    if (!getters_.WaitFor(node, timeout, [this](GetterNode& n) { GiveBack(std::move(*n.payload)); })) {
      return absl::DeadlineExceededError("channel empty (timed out waiting for a putter)");
    }
    return std::move(*node.payload);
  }
  absl::StatusOr<T> GetNowait() { return Get(false); }

 private:
  using GetterNode = internal::WaitNode<std::optional<T>>;
  using PutterNode = internal::WaitNode<T*>;

  // GiveBack: an item handed to a getter that was killed before it took it (its putter has
  // already returned): the next getter gets it.
  void GiveBack(T&& item) {
    if (GetterNode* getter = getters_.GrantFront()) {
      getter->payload.emplace(std::move(item));
    } else {
      returned_.push_back(std::move(item));
    }
  }

  std::deque<T> returned_;
  internal::WaitList<GetterNode> getters_;
  internal::WaitList<PutterNode> putters_;
};

}  // namespace gevent

#endif  // GEVENT_HUB_QUEUE_H_
