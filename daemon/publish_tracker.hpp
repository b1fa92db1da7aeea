#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "amqp_connection.hpp"

namespace workflowd {

// Matches publisher confirms and returns to the owners of the publishes (a settled delivery,
// a dead letter, a FlushMessages call). An owner is finished once it is sealed (all its
// messages published) and every one of them is confirmed.
//
// Publish tags on a channel are consecutive, so the unconfirmed publishes form a window that
// starts at the oldest one: a confirm finds its entry by subtraction, not by lookup.
template <class Payload>
class PublishTracker {
 public:
  using OwnerId = std::uint32_t;

  struct Finished {
    OwnerId owner;
    bool nacked;                // the broker refused at least one message
    std::string returned_queue;  // a message was unroutable: the queue it was sent to
    std::chrono::steady_clock::time_point opened;  // when the owner was opened
  };

  OwnerId Open(Payload payload) {
    OwnerId id;
    if (free_.empty()) {
      id = static_cast<OwnerId>(owners_.size());
      owners_.emplace_back();
    } else {
      id = free_.back();
      free_.pop_back();
    }
    Owner& owner = owners_[id];
    owner.payload = std::move(payload);
    owner.open = true;
    owner.opened = std::chrono::steady_clock::now();
    ++open_owners_;
    return id;
  }

  Payload& payload(OwnerId id) { return owners_[id].payload; }

  // message_id must stay valid until the publish is confirmed (pointing into the payload is
  // fine: payloads do not move); it matches a return.
  void Add(OwnerId id, std::uint64_t publish_tag, std::string_view message_id) {
    if (window_.empty()) first_tag_ = publish_tag;
    window_.push_back(Entry{id, message_id, false});
    ++owners_[id].unconfirmed;
  }

  // No more publishes for id; appends it to finished if nothing is left to confirm.
  void Seal(OwnerId id, std::vector<Finished>& finished) {
    owners_[id].sealed = true;
    FinishIfDone(id, finished);
  }

  void OnConfirm(const PublishConfirm& confirm, std::vector<Finished>& finished) {
    if (window_.empty() || confirm.tag < first_tag_) return;
    std::uint64_t last = std::min<std::uint64_t>(confirm.tag - first_tag_, window_.size() - 1);
    std::uint64_t first = confirm.multiple ? 0 : last;
    for (std::uint64_t i = first; i <= last; ++i) {
      Entry& entry = window_[i];
      if (entry.settled) continue;
      entry.settled = true;
      Owner& owner = owners_[entry.owner];
      owner.nacked |= !confirm.ack;
      --owner.unconfirmed;
      FinishIfDone(entry.owner, finished);
    }
    while (!window_.empty() && window_.front().settled) {
      window_.pop_front();
      ++first_tag_;
    }
  }

  // Marks the owner of a returned (unroutable) message; its confirm follows.
  void OnReturn(const ReturnedMessage& returned) {
    for (const Entry& entry : window_) {
      if (!entry.settled && entry.message_id == returned.message_id) {
        Owner& owner = owners_[entry.owner];
        if (owner.returned_queue.empty()) owner.returned_queue = returned.routing_key;
        return;
      }
    }
  }

  // Frees a finished owner's slot.
  void Release(OwnerId id) {
    owners_[id] = Owner{};
    free_.push_back(id);
    --open_owners_;
  }

  bool empty() const { return open_owners_ == 0; }

  // Every open owner's payload, for failing them all when the connection is lost.
  template <class Visit>
  void ForEachOpen(Visit visit) {
    for (Owner& owner : owners_) {
      if (owner.open) visit(owner.payload);
    }
  }

 private:
  struct Entry {
    OwnerId owner;
    std::string_view message_id;
    bool settled;
  };
  struct Owner {
    Payload payload{};
    std::uint32_t unconfirmed = 0;
    bool sealed = false;
    bool nacked = false;
    bool open = false;
    std::string returned_queue;
    std::chrono::steady_clock::time_point opened;
  };

  void FinishIfDone(OwnerId id, std::vector<Finished>& finished) {
    Owner& owner = owners_[id];
    if (owner.sealed && owner.unconfirmed == 0 && owner.open) {
      owner.open = false;
      finished.push_back(Finished{id, owner.nacked, std::move(owner.returned_queue), owner.opened});
    }
  }

  std::deque<Entry> window_;
  std::uint64_t first_tag_ = 1;
  // A deque, so that a payload never moves while publishes point into it.
  std::deque<Owner> owners_;
  std::vector<OwnerId> free_;
  std::size_t open_owners_ = 0;
};

}  // namespace workflowd
