// Prometheus metrics for every role (prometheus-cpp underneath, not exposed).
//
// A process has one registry (Metrics::Global()). A role registers counters, gauges and
// histograms by name and updates them through cheap handles; `envtune <role> --metrics_port N`
// starts an HTTP server (cpp-httplib) that serves the registry at http://HOST:N/metrics in the Prometheus
// text format. Handles obtained while metrics are off, or default-constructed, are no-ops, so
// code can update metrics unconditionally.
//
// Once Enable()d, every gRPC server configured through ConfigureServerBuilder (common/channels.h)
// records per-method RPC metrics (AddRpcMetricsInterceptor below):
//   envtune_rpc_requests_total{service,method,code}   finished RPCs by status code
//   envtune_rpc_duration_seconds{service,method}       latency histogram (start to status)
// For an env server, `method="Step"` are the environment steps and their latency. A role can
// also give one method its own names (AddRpcAlias): e.g. envtune_env_steps_total{code}.
//
// Names must match [a-zA-Z_:][a-zA-Z0-9_:]* and label names [a-zA-Z_][a-zA-Z0-9_]*; bad names, or
// a name registered before with another type, give InvalidArgument (never an exception).
// Thread-safe.
#ifndef ENVTUNE_COMMON_METRICS_H_
#define ENVTUNE_COMMON_METRICS_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace grpc {
class ServerBuilder;
}

namespace envtune {

using MetricLabels = std::map<std::string, std::string>;

class MetricsHttpServer;  // metrics.cc
struct TlsOptions;       // common/security.h

// Monotonic counter handle. Negative increments are ignored.
class CounterHandle {
 public:
  CounterHandle() = default;
  void Increment(double by = 1.0) const;
  double Value() const;  // 0 for a no-op handle
 private:
  friend class Metrics;
  explicit CounterHandle(prometheus::Counter* c) : counter_(c) {}
  prometheus::Counter* counter_ = nullptr;
};

class GaugeHandle {
 public:
  GaugeHandle() = default;
  void Set(double value) const;
  void Increment(double by = 1.0) const;
  double Value() const;
 private:
  friend class Metrics;
  explicit GaugeHandle(prometheus::Gauge* g) : gauge_(g) {}
  prometheus::Gauge* gauge_ = nullptr;
};

class HistogramHandle {
 public:
  HistogramHandle() = default;
  void Observe(double value) const;
 private:
  friend class Metrics;
  explicit HistogramHandle(prometheus::Histogram* h) : histogram_(h) {}
  prometheus::Histogram* histogram_ = nullptr;
};

// Latency buckets in seconds (1 ms .. 60 s), for RPC and step latencies.
const std::vector<double>& DefaultLatencyBuckets();

class Metrics {
 public:
  // A fresh, enabled registry (tests); roles use Global().
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The process-wide registry; disabled (handles are no-ops) until Enable() or Serve().
  static Metrics& Global();

  void Enable();
  bool enabled() const;

  // Enables the registry and serves it at http://host:port/metrics (port 0 picks a free one; see
  // port()), or https:// with `tls` (its cert and key; under require_client_cert only clients
  // with a certificate signed by its ca are served). One exposer per registry: a second call is
  // FailedPrecondition; a port in use is Unavailable; unusable TLS files are InvalidArgument.
  absl::Status Serve(const std::string& host, int port, const TlsOptions* tls = nullptr);
  int port() const;  // 0 when not serving

  absl::StatusOr<CounterHandle> Counter(const std::string& name, const std::string& help,
                                        const MetricLabels& labels = {});
  absl::StatusOr<GaugeHandle> Gauge(const std::string& name, const std::string& help,
                                    const MetricLabels& labels = {});
  // Removes the series `labels` of gauge `name` (a replica that left); a no-op when absent or
  // when metrics are off.
  void RemoveGauge(const std::string& name, const MetricLabels& labels);
  // `buckets`: increasing upper bounds (+Inf is implicit); empty means DefaultLatencyBuckets().
  absl::StatusOr<HistogramHandle> Histogram(const std::string& name, const std::string& help,
                                            const std::vector<double>& buckets = {},
                                            const MetricLabels& labels = {});

  // The registry in the Prometheus text exposition format (what /metrics serves).
  std::string Render() const;

  // Sets `envtune_role_info{role=ROLE} 1`, so scrapes can be grouped by role.
  void SetRole(const std::string& role);

 private:
  mutable absl::Mutex mu_;
  bool enabled_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsHttpServer> server_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
};

// Installs the RPC metrics interceptor (see the top of this file) on `builder` when
// Metrics::Global() is enabled; does nothing otherwise. Called by ConfigureServerBuilder.
void AddRpcMetricsInterceptor(grpc::ServerBuilder& builder);

// From now on RPCs of `full_method` ("/pkg.Service/Method") are also recorded as
// `counter`{code} and the latency histogram `histogram` (seconds), in Metrics::Global(). Names
// are checked when first used (a bad name records nothing). Thread-safe.
void AddRpcAlias(const std::string& full_method, const std::string& counter, const std::string& histogram,
                 const std::string& help);

// "/pkg.Service/Method" -> {"pkg.Service", "Method"}; anything else -> {"", path}.
std::pair<std::string, std::string> SplitRpcMethod(const std::string& path);

}  // namespace envtune

#endif  // ENVTUNE_COMMON_METRICS_H_
