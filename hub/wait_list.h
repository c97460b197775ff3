// gevent::internal::WaitList — an intrusive FIFO of parked greenlets, the building block of the
// synchronisation primitives (Event, AsyncResult, Queue, Semaphore...).
//
// A blocking call puts a WaitNode that lives on its own stack at the tail of the list and parks on
// the node's Waiter. The waking side pops the head, sets `granted` (and, for queues, moves the
// item into or out of the node) and wakes it: the hand-off happens before the woken greenlet runs,
// so no later arrival can overtake it, and wake-ups are strictly FIFO. Nothing is allocated per
// wait.
//
// Hub thread only. A node must be removed (Remove is a no-op if it was popped) before it is
// destroyed; WaitFor does that on every way out.
#ifndef GEVENT_HUB_WAIT_LIST_H_
#define GEVENT_HUB_WAIT_LIST_H_

#include <cstddef>
#include <optional>

#include "absl/time/time.h"
#include "hub/hub.h"
#include "hub/internal/list.h"

namespace gevent {
namespace internal {

// WaitNode: one parked greenlet. `Payload` carries what a hand-off moves (an item, a pointer to
// the putter's item); use an empty struct when only `granted` matters.
template <typename Payload>
struct WaitNode : ListLink {
  Waiter waiter;
  bool granted = false;
  Payload payload{};
};

struct NoPayload {};

template <typename Node>
class WaitList {
 public:
  WaitList() = default;
  WaitList(const WaitList&) = delete;
  WaitList& operator=(const WaitList&) = delete;

  bool empty() const { return nodes_.empty(); }
  std::size_t size() const { return size_; }

  void PushBack(Node* node) {
    nodes_.PushBack(node);
    ++size_;
  }

  void Remove(Node* node) {
    if (!node->linked()) return;
    node->Unlink();
    --size_;
  }

  // PopFront removes and returns the oldest node, or null.
  Node* PopFront() {
    Node* node = nodes_.PopFront();
    if (node != nullptr) --size_;
    return node;
  }

  // GrantFront pops the oldest node, marks it granted and wakes it. Returns it (or null); the
  // caller may fill its payload before the woken greenlet runs.
  Node* GrantFront() {
    Node* node = PopFront();
    if (node != nullptr) {
      node->granted = true;
      node->waiter.Wake();
    }
    return node;
  }

  // GrantAll wakes every node, oldest first.
  void GrantAll() {
    while (GrantFront() != nullptr) {
    }
  }

  // WaitFor appends `node` and parks until it is granted (true) or `timeout` expires (false). A
  // grant that lands in the same hub iteration as the timeout still counts as granted. If an
  // exception is thrown into the waiting greenlet (LoopExit, GreenletExit, a Timeout...), the
  // node is removed, `on_abandon_grant(node)` runs if the node had already been granted (so the
  // caller can pass the grant on), and the exception propagates.
  template <typename OnAbandon>
  bool WaitFor(Node& node, std::optional<absl::Duration> timeout, OnAbandon&& on_abandon_grant) {
    PushBack(&node);
    try {
      node.waiter.Get(timeout);
    } catch (...) {
      Remove(&node);
      if (node.granted) on_abandon_grant(node);
      throw;
    }
    Remove(&node);
    return node.granted;
  }

 private:
  ListHead<Node> nodes_;
  std::size_t size_ = 0;
};

}  // namespace internal
}  // namespace gevent

#endif  // GEVENT_HUB_WAIT_LIST_H_
