// AcquireLease as coordinator tests read it: the granted lease, or the typed reason none was.
#ifndef ENVTUNE_TESTS_COORDINATOR_LEASE_UTIL_H_
#define ENVTUNE_TESTS_COORDINATOR_LEASE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "coordinator/coordinator.h"

namespace envtune {

// The lease; the coordinator's error, or FAILED_PRECONDITION "no lease (<REASON>): <detail>"
// when it answered OK without one (the test's own wording for a readable failure).
inline absl::StatusOr<v1::Lease> Acquire(Coordinator& c, const v1::AcquireLeaseRequest& request) {
  absl::StatusOr<v1::AcquireLeaseResponse> response = c.AcquireLease(request);
  if (!response.ok()) return response.status();
  if (response->no_lease() != v1::NO_LEASE_REASON_UNSPECIFIED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no lease (", v1::NoLeaseReason_Name(response->no_lease()), "): ", response->detail()));
  }
  return response->lease();
}

// Why there is no lease now (UNSPECIFIED: one was granted, and is then outstanding).
inline v1::NoLeaseReason NoLeaseReasonFor(Coordinator& c, const v1::AcquireLeaseRequest& request) {
  absl::StatusOr<v1::AcquireLeaseResponse> response = c.AcquireLease(request);
  return response.ok() ? response->no_lease() : v1::NO_LEASE_REASON_UNSPECIFIED;
}

}  // namespace envtune

#endif  // ENVTUNE_TESTS_COORDINATOR_LEASE_UTIL_H_
