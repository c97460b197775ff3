// Intrusive doubly linked lists for the hub: the ready queue and the wait lists of the
// synchronisation primitives. A node lives inside its owner (often on a parked greenlet's stack),
// so linking allocates nothing and a node can unlink itself in O(1) when its owner goes away.
// Not thread-safe; hub thread only.
#ifndef GEVENT_HUB_INTERNAL_LIST_H_
#define GEVENT_HUB_INTERNAL_LIST_H_

namespace gevent::internal {

// ListLink: the links a node carries. Unlinked: both null.
struct ListLink {
  ListLink* prev = nullptr;
  ListLink* next = nullptr;

  bool linked() const { return next != nullptr; }

  // Unlink removes the node from whatever list holds it; no effect if unlinked.
  void Unlink() {
    if (next == nullptr) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

// ListHead: a circular list with a sentinel, of nodes of type Node (derived from ListLink).
// Not copyable or movable: the nodes point at the sentinel.
template <typename Node>
class ListHead {
 public:
  ListHead() { sentinel_.prev = sentinel_.next = &sentinel_; }
  ListHead(const ListHead&) = delete;
  ListHead& operator=(const ListHead&) = delete;

  bool empty() const { return sentinel_.next == &sentinel_; }

  // front: the oldest node, or null.
  Node* front() const { return empty() ? nullptr : static_cast<Node*>(sentinel_.next); }

  // NextOf: the node after `node` (which must be in this list), or null at the end.
  Node* NextOf(const Node* node) const {
    return node->next == &sentinel_ ? nullptr : static_cast<Node*>(node->next);
  }

  // PushBack links an unlinked `node` at the tail.
  void PushBack(Node* node) {
    node->prev = sentinel_.prev;
    node->next = &sentinel_;
    sentinel_.prev->next = node;
    sentinel_.prev = node;
  }

  // ForEach calls fn(node) for every node, oldest first. `fn` must not unlink nodes.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (ListLink* l = sentinel_.next; l != &sentinel_; l = l->next) fn(static_cast<Node*>(l));
  }

  // PopFront unlinks and returns the oldest node, or null.
  Node* PopFront() {
    Node* node = front();
    if (node != nullptr) node->Unlink();
    return node;
  }

 private:
  ListLink sentinel_;
};

}  // namespace gevent::internal

#endif  // GEVENT_HUB_INTERNAL_LIST_H_
