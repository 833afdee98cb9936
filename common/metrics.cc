// Prometheus metrics registry, exposer and gRPC server interceptor (see metrics.h).
#include "common/metrics.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <thread>
#include <functional>

#include "absl/strings/str_cat.h"
#include "grpcpp/server_builder.h"
#include "common/security.h"
#include "httplib.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace envtune {

void CounterHandle::Increment(double by) const {
  if (counter_ != nullptr && by > 0) counter_->Increment(by);
}
double CounterHandle::Value() const { return counter_ == nullptr ? 0.0 : counter_->Value(); }

void GaugeHandle::Set(double value) const {
  if (gauge_ != nullptr) gauge_->Set(value);
}
void GaugeHandle::Increment(double by) const {
  if (gauge_ != nullptr) gauge_->Increment(by);
}
double GaugeHandle::Value() const { return gauge_ == nullptr ? 0.0 : gauge_->Value(); }

void HistogramHandle::Observe(double value) const {
  if (histogram_ != nullptr) histogram_->Observe(value);
}

const std::vector<double>& DefaultLatencyBuckets() {
  static const auto* buckets = new std::vector<double>{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                       0.25,  0.5,    1,     2.5,  5,     10,   30, 60};
  return *buckets;
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) { enabled_ = true; }

Metrics& Metrics::Global() {
  static Metrics* global = [] {
    auto* m = new Metrics();
    absl::MutexLock lock(&m->mu_);
    m->enabled_ = false;
    return m;
  }();
  return *global;
}

void Metrics::Enable() {
  absl::MutexLock lock(&mu_);
  enabled_ = true;
}

bool Metrics::enabled() const {
  absl::MutexLock lock(&mu_);
  return enabled_;
}

// /metrics over cpp-httplib (its worker threads have default-size stacks: civetweb's, under
// prometheus::Exposer, are 100 KiB, less than the static TLS of a LibTorch + OpenBLAS process,
// so it could not start a thread there).
class MetricsHttpServer {
 public:
  ~MetricsHttpServer() {
    if (server_ != nullptr) server_->stop();
    if (thread_.joinable()) thread_.join();
  }

  // Binds host:port (0 = any free port) and serves in a thread (HTTPS with `tls`); returns the
  // port.
  absl::StatusOr<int> Start(const std::string& host, int port, const TlsOptions* tls,
                            std::function<std::string()> render) {
    if (tls != nullptr && tls->enabled()) {
      auto ssl = std::make_unique<httplib::SSLServer>(
          tls->cert.c_str(), tls->key.c_str(),
          tls->require_client_cert ? tls->ca.c_str() : nullptr);
      if (!ssl->is_valid()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "metrics: cannot serve HTTPS with security.tls.cert '", tls->cert, "' and key '",
            tls->key, "'", tls->require_client_cert ? absl::StrCat(" (ca '", tls->ca, "')") : ""));
      }
      server_ = std::move(ssl);
    } else {
      server_ = std::make_unique<httplib::Server>();
    }
    // Not httplib's default SO_REUSEPORT: a second server must not share a port in use.
    server_->set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    });
    server_->Get("/metrics", [render](const httplib::Request&, httplib::Response& response) {
      response.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    const int bound = port == 0 ? server_->bind_to_any_port(host)
                                : (server_->bind_to_port(host, port) ? port : -1);
    if (bound <= 0) {
      return absl::UnavailableError(absl::StrCat("metrics: cannot listen on ", host, ":", port,
                                                 " (address in use or not local?)"));
    }
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    return bound;
  }

 private:
  std::unique_ptr<httplib::Server> server_;  // an httplib::SSLServer with TLS
  std::thread thread_;
};

absl::Status Metrics::Serve(const std::string& host, int port, const TlsOptions* tls) {
  if (port < 0 || port > 65535) return absl::InvalidArgumentError(absl::StrCat("metrics port out of range: ", port));
  absl::MutexLock lock(&mu_);
  if (server_ != nullptr) return absl::FailedPreconditionError("metrics are already served on this registry");
  auto server = std::make_unique<MetricsHttpServer>();
  absl::StatusOr<int> bound = server->Start(host, port, tls, [this] { return Render(); });
  if (!bound.ok()) return bound.status();
  port_ = *bound;
  server_ = std::move(server);
  enabled_ = true;
  return absl::OkStatus();
}

Metrics::~Metrics() = default;

int Metrics::port() const {
  absl::MutexLock lock(&mu_);
  return port_;
}

namespace {

absl::Status BadMetric(const std::string& name, const std::exception& e) {
  return absl::InvalidArgumentError(absl::StrCat("metric '", name, "': ", e.what()));
}

}  // namespace

absl::StatusOr<CounterHandle> Metrics::Counter(const std::string& name, const std::string& help,
                                               const MetricLabels& labels) {
  if (!enabled()) return CounterHandle();
  try {
    auto* family = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
    return CounterHandle(&family->Add(prometheus::Labels(labels.begin(), labels.end())));
  } catch (const std::exception& e) {
    return BadMetric(name, e);
  }
}

absl::StatusOr<GaugeHandle> Metrics::Gauge(const std::string& name, const std::string& help,
                                           const MetricLabels& labels) {
  if (!enabled()) return GaugeHandle();
  try {
    auto* family = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
    return GaugeHandle(&family->Add(prometheus::Labels(labels.begin(), labels.end())));
  } catch (const std::exception& e) {
    return BadMetric(name, e);
  }
}

void Metrics::RemoveGauge(const std::string& name, const MetricLabels& labels) {
  if (!enabled()) return;
  try {
    auto& family = prometheus::BuildGauge().Name(name).Register(*registry_);
    const prometheus::Labels key(labels.begin(), labels.end());
    if (family.Has(key)) family.Remove(&family.Add(key));
  } catch (const std::exception&) {
    // Not a gauge (or a bad name): nothing of ours to remove.
  }
}

absl::StatusOr<HistogramHandle> Metrics::Histogram(const std::string& name, const std::string& help,
                                                   const std::vector<double>& buckets,
                                                   const MetricLabels& labels) {
  if (!enabled()) return HistogramHandle();
  const std::vector<double>& bounds = buckets.empty() ? DefaultLatencyBuckets() : buckets;
  if (!std::is_sorted(bounds.begin(), bounds.end()) ||
      std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end()) {
    return absl::InvalidArgumentError(absl::StrCat("metric '", name, "': buckets must be strictly increasing"));
  }
  try {
    auto* family = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
    return HistogramHandle(&family->Add(prometheus::Labels(labels.begin(), labels.end()),
                                        prometheus::Histogram::BucketBoundaries(bounds)));
  } catch (const std::exception& e) {
    return BadMetric(name, e);
  }
}

std::string Metrics::Render() const {
  try {
    return prometheus::TextSerializer().Serialize(registry_->Collect());
  } catch (const std::exception& e) {
    return absl::StrCat("# error: ", e.what(), "\n");
  }
}

void Metrics::SetRole(const std::string& role) {
  absl::StatusOr<GaugeHandle> g =
      Gauge("envtune_role_info", "Which envtune role this process runs (value is always 1)", {{"role", role}});
  if (g.ok()) g->Set(1);
}

std::pair<std::string, std::string> SplitRpcMethod(const std::string& path) {
  if (path.size() > 1 && path[0] == '/') {
    size_t slash = path.find('/', 1);
    if (slash != std::string::npos && slash > 1 && slash + 1 < path.size()) {
      return {path.substr(1, slash - 1), path.substr(slash + 1)};
    }
  }
  return {"", path};
}

namespace {

struct RpcAlias {
  std::string counter, histogram, help;
};
absl::Mutex g_alias_mu(absl::kConstInit);
std::map<std::string, RpcAlias>& Aliases() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_alias_mu) {
  static auto* aliases = new std::map<std::string, RpcAlias>();
  return *aliases;
}

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {
      "OK",       "CANCELLED",         "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED",   "INTERNAL",       "UNAVAILABLE",      "DATA_LOSS",         "UNAUTHENTICATED"};
  int i = static_cast<int>(code);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "UNKNOWN";
}

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit RpcMetricsInterceptor(std::string method)
      : method_(std::move(method)), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Record(grpc::StatusCode code) {
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    auto [service, method] = SplitRpcMethod(method_);
    Metrics& m = Metrics::Global();
    if (absl::StatusOr<CounterHandle> c =
            m.Counter("envtune_rpc_requests_total", "gRPC requests served, by method and status code",
                      {{"service", service}, {"method", method}, {"code", CodeName(code)}});
        c.ok()) {
      c->Increment();
    }
    if (absl::StatusOr<HistogramHandle> h =
            m.Histogram("envtune_rpc_duration_seconds", "gRPC server latency from request to status, by method",
                        {}, {{"service", service}, {"method", method}});
        h.ok()) {
      h->Observe(seconds);
    }
    std::optional<RpcAlias> alias;
    {
      absl::MutexLock lock(&g_alias_mu);
      auto it = Aliases().find(method_);
      if (it != Aliases().end()) alias = it->second;
    }
    if (alias.has_value()) {
      if (absl::StatusOr<CounterHandle> c = m.Counter(alias->counter, alias->help, {{"code", CodeName(code)}}); c.ok()) {
        c->Increment();
      }
      if (absl::StatusOr<HistogramHandle> h = m.Histogram(alias->histogram, alias->help + " (latency, seconds)"); h.ok()) {
        h->Observe(seconds);
      }
    }
  }

  std::string method_;
  std::chrono::steady_clock::time_point start_;
};

class RpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(info->method() == nullptr ? "" : info->method());
  }
};

}  // namespace

void AddRpcAlias(const std::string& full_method, const std::string& counter, const std::string& histogram,
                 const std::string& help) {
  absl::MutexLock lock(&g_alias_mu);
  Aliases()[full_method] = RpcAlias{counter, histogram, help};
}

void AddRpcMetricsInterceptor(grpc::ServerBuilder& builder) {
  if (!Metrics::Global().enabled()) return;
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<RpcMetricsFactory>());
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

}  // namespace envtune
