#include "actor/policy_client.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/channels.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "model/weights_io.h"

namespace envtune {

PolicyClient::PolicyClient(const std::string& learner, PolicyClientOptions options)
    : PolicyClient(MakeChannel(learner, ChannelOptions{.round_robin = false}), learner, options) {}

PolicyClient::PolicyClient(std::shared_ptr<grpc::Channel> channel, std::string learner_name,
                           PolicyClientOptions options)
    : learner_name_(std::move(learner_name)),
      options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::LearnerService::NewStub(channel_)) {}

void PolicyClient::SetPolicy(std::shared_ptr<PolicyImpl> policy, uint64_t version) {
  absl::MutexLock lock(&mu_);
  policy_ = std::move(policy);
  version_ = version;
}

std::shared_ptr<PolicyImpl> PolicyClient::policy() const {
  absl::MutexLock lock(&mu_);
  return policy_;
}

uint64_t PolicyClient::version() const {
  absl::MutexLock lock(&mu_);
  return version_;
}

bool PolicyClient::has_policy() const {
  absl::MutexLock lock(&mu_);
  return policy_ != nullptr;
}

absl::StatusOr<uint64_t> PolicyClient::LearnerVersion() {
  grpc::ClientContext context;
  SetDeadline(context, absl::ToChronoMilliseconds(std::min(options_.rpc_timeout, absl::Seconds(30))));
  v1::GetPolicyVersionResponse response;
  grpc::Status status = stub_->GetPolicyVersion(&context, v1::GetPolicyVersionRequest(), &response);
  if (!status.ok()) {
    return FromGrpcStatus(status, absl::StrCat("learner ", learner_name_), "GetPolicyVersion");
  }
  return response.version();
}

absl::StatusOr<uint64_t> PolicyClient::Fetch() {
  absl::MutexLock fetch_lock(&fetch_mu_);
  const std::string peer = absl::StrCat("learner ", learner_name_);
  const bool have = has_policy();
  const uint64_t known = version();
  v1::GetWeightsRequest request;
  // Without a policy, ask with a version the learner never has so that even a learner at
  // version 0 sends its weights (0 means "none" to the learner, but also matches version 0).
  request.set_known_version(have ? known : std::numeric_limits<uint64_t>::max());
  request.set_chunk_bytes(options_.chunk_bytes);
  grpc::ClientContext context;
  SetDeadline(context, absl::ToChronoMilliseconds(options_.rpc_timeout));
  std::unique_ptr<grpc::ClientReader<v1::WeightsChunk>> reader =
      stub_->GetWeights(&context, request);
  auto fail = [&](const std::string& what) {
    context.TryCancel();
    reader->Finish();
    return absl::DataLossError(absl::StrCat(peer, " (GetWeights): ", what));
  };
  v1::WeightsChunk chunk;
  if (!reader->Read(&chunk)) {
    grpc::Status status = reader->Finish();
    if (status.ok()) {
      return absl::DataLossError(absl::StrCat(peer, " (GetWeights): stream ended without a chunk"));
    }
    return FromGrpcStatus(status, peer, "GetWeights");
  }
  const uint64_t version = chunk.version();
  if (chunk.not_modified()) {
    reader->Finish();
    if (!have) return fail("not_modified but this actor holds no policy");
    return known;
  }
  if (!chunk.has_header()) return fail("first chunk has no header");
  // The chunks go straight into per-tensor buffers allocated from the header (kept for the next
  // version when they are pinned, since the host allocator would keep that memory anyway).
  v1::WeightsHeader header = std::move(*chunk.mutable_header());
  const uint64_t total = header.total_bytes();
  if (receiver_ == nullptr) {
    absl::StatusOr<std::unique_ptr<WeightsReceiver>> created =
        WeightsReceiver::Create(std::move(header), options_.load);
    if (!created.ok()) return fail(std::string(created.status().message()));
    receiver_ = std::move(*created);
  } else if (absl::Status st = receiver_->Reset(std::move(header)); !st.ok()) {
    receiver_.reset();
    return fail(std::string(st.message()));
  }
  WeightsReceiver& receiver = *receiver_;
  struct Release {  // unpinned buffers are not worth keeping between versions
    std::unique_ptr<WeightsReceiver>* receiver;
    ~Release() {
      if (*receiver != nullptr && !(*receiver)->pinned()) receiver->reset();
    }
  } release{&receiver_};
  bool last = chunk.last();
  if (absl::Status st = receiver.Append(chunk.data()); !st.ok()) {
    return fail(std::string(st.message()));
  }
  while (!last) {
    chunk.Clear();
    if (!reader->Read(&chunk)) {
      grpc::Status status = reader->Finish();
      if (!status.ok()) return FromGrpcStatus(status, peer, "GetWeights data");
      return absl::DataLossError(absl::StrCat(peer, " (GetWeights): stream ended after ",
                                              receiver.received(), " of ", total,
                                              " bytes without last"));
    }
    if (chunk.version() != version) {
      return fail(absl::StrCat("chunk of version ", chunk.version(), " inside version ", version));
    }
    if (chunk.has_header()) return fail("a second header inside the stream");
    if (receiver.received() + chunk.data().size() > total) {
      return fail(absl::StrCat("more data than the header's ", total, " bytes"));
    }
    if (absl::Status st = receiver.Append(chunk.data()); !st.ok()) {
      return fail(std::string(st.message()));
    }
    last = chunk.last();
  }
  if (receiver.received() != total) {
    return fail(absl::StrCat("got ", receiver.received(), " of ", total, " bytes"));
  }
  if (reader->Read(&chunk)) return fail("chunks after last");
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status, peer, "GetWeights finish");

  std::shared_ptr<PolicyImpl> current = policy();
  if (current != nullptr && SameArchitecture(*current, receiver.header())) {
    if (absl::Status st = receiver.Refresh(*current); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat(peer, " (loading version ", version, "): ",
                                                  st.message()));
    }
    SetPolicy(std::move(current), version);
  } else {
    absl::StatusOr<std::shared_ptr<PolicyImpl>> built = receiver.Build();
    if (!built.ok()) {
      return absl::Status(built.status().code(),
                          absl::StrCat(peer, " (loading version ", version, "): ",
                                       built.status().message()));
    }
    SetPolicy(std::move(*built), version);
  }
  return version;
}

absl::Status PolicyClient::EnsureVersion(uint64_t min_version, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Status last = absl::OkStatus();
  uint64_t learner_version = 0;
  while (true) {
    if (has_policy() && version() >= min_version) return absl::OkStatus();
    absl::StatusOr<uint64_t> available = LearnerVersion();
    if (available.ok()) {
      learner_version = *available;
      if (*available >= min_version || !has_policy()) {
        absl::StatusOr<uint64_t> fetched = Fetch();
        if (!fetched.ok()) {
          last = fetched.status();
        } else if (*fetched >= min_version) {
          return absl::OkStatus();
        }
      }
    } else {
      last = available.status();
    }
    if (absl::Now() + options_.poll_interval > deadline) break;
    absl::SleepFor(options_.poll_interval);
  }
  std::string why = last.ok() ? absl::StrCat("the learner is at version ", learner_version)
                              : std::string(last.message());
  return absl::DeadlineExceededError(absl::StrCat(
      "learner ", learner_name_, " (GetWeights): policy version ", min_version,
      " not available within ", absl::FormatDuration(timeout), "; holding ",
      has_policy() ? absl::StrCat("version ", version()) : std::string("no policy"), ": ", why));
}

}  // namespace envtune
