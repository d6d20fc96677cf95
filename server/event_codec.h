// The one encoding of a job's events in the store: every payload is a
// serialized v1::JobEvent without its seq, job_id and time (the row holds
// those), under the type EventType names. The coordinator appends events in
// it, and the store writes its own ("accepted", "state", "attempt_ended")
// through JobEventEncoder().
//
//   LRTUNE_ASSIGN_OR_RETURN(auto store,
//                           JobStore::Open(path, clock, JobEventEncoder()));
//   rows.push_back({EventType(event), event.SerializeAsString()});
//   LRTUNE_ASSIGN_OR_RETURN(v1::JobEvent e, StoredEventToProto(stored));
//
// Thread-safe: everything here is pure.
#ifndef LRTUNE_SERVER_EVENT_CODEC_H_
#define LRTUNE_SERVER_EVENT_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "lrtune/v1/jobs.pb.h"
#include "server/job_store.h"

namespace lrtune::server {

// The store's event type of a JobEvent ("point", "recommendation",
// "accepted", "state", ...).
std::string EventType(const v1::JobEvent& event);

// The store's own events as JobEvents. Its accepted event holds an empty
// JobAccepted: the reader fills in the job from the job's row.
const EventEncoder* JobEventEncoder();

// A stored event as the API's JobEvent, with its seq, job_id and time.
// DATA_LOSS when the payload does not parse or is not of the row's type.
absl::StatusOr<v1::JobEvent> StoredEventToProto(const StoredEvent& event);

// True for the job's last event (a terminal state change).
bool IsTerminalEvent(const v1::JobEvent& event);

}  // namespace lrtune::server

#endif  // LRTUNE_SERVER_EVENT_CODEC_H_
