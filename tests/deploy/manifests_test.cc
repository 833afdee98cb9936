// Offline checks of the deployment files (no cluster, no network, no Docker, no Slurm):
//  - deploy/k8s: both overlays render with `kubectl kustomize`; the objects are wired together
//    (names, selectors, ports, probes, ConfigMap/Secret references, learner ranks, GPUs) and the
//    envtune flags they pass exist;
//  - deploy/docker: every COPY source exists and is inside the build context, the runtime-package
//    script resolves a real binary's libraries to installed Debian packages;
//  - deploy/slurm/envtune.sbatch: bash -n, shellcheck, and a whole run of the job script with fake
//    srun/scontrol/envtune (tests/deploy/fake_slurm) checking the addresses passed between steps;
//  - deploy/prometheus/prometheus.yml: promtool check config.
// A missing tool (kubectl: Debian kubernetes-client, promtool: Debian prometheus, shellcheck)
// skips its check with the reason; scripts/install-deps installs them.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "deploy/role_metrics.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace envtune {
namespace {

namespace fs = std::filesystem;

fs::path SourceDir() {
  const char* s = std::getenv("ENVTUNE_SOURCE_DIR");
  return s != nullptr ? fs::path(s) : fs::current_path();
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout (and stderr when merged)
};

CommandResult RunShell(const std::string& command, bool merge_stderr = true) {
  CommandResult r;
  std::string full = command + (merge_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* pipe = popen(full.c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// A tool on PATH (or the path in env var `override_var`), or "".
std::string FindTool(const std::string& name, const char* override_var) {
  if (const char* o = std::getenv(override_var); o != nullptr && *o != '\0') return o;
  CommandResult r = RunShell("command -v " + name, false);
  if (r.exit_code != 0) return "";
  std::string path = r.output.substr(0, r.output.find('\n'));
  return path;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TempDir {
 public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "envtune-deploy-XXXXXX").string();
    path_ = mkdtemp(templ.data()) != nullptr ? fs::path(templ) : fs::path();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---------------------------------------------------------------- Kubernetes

struct Rendered {
  std::vector<YAML::Node> objects;
  const YAML::Node* Find(const std::string& kind, const std::string& name) const {
    for (const YAML::Node& o : objects) {
      if (o["kind"].as<std::string>() == kind && o["metadata"]["name"].as<std::string>() == name) return &o;
    }
    return nullptr;
  }
  // The generated object whose name is `prefix` plus kustomize's hash suffix.
  const YAML::Node* FindGenerated(const std::string& kind, const std::string& prefix) const {
    std::regex re(prefix + "-[a-z0-9]{10}");
    for (const YAML::Node& o : objects) {
      if (o["kind"].as<std::string>() == kind && std::regex_match(o["metadata"]["name"].as<std::string>(), re)) {
        return &o;
      }
    }
    return nullptr;
  }
};

// Copies deploy/k8s and configs/ into a scratch tree, writes its secrets and renders `overlay`.
std::string RenderOverlay(const std::string& kubectl, const std::string& overlay, Rendered* out) {
  TempDir tmp;
  if (tmp.path().empty()) return "cannot create a temporary directory";
  std::error_code ec;
  fs::create_directories(tmp.path() / "deploy", ec);
  fs::copy(SourceDir() / "deploy" / "k8s", tmp.path() / "deploy" / "k8s", fs::copy_options::recursive, ec);
  if (ec) return "copy deploy/k8s: " + ec.message();
  fs::copy(SourceDir() / "deploy" / "make-cluster-pki", tmp.path() / "deploy" / "make-cluster-pki", ec);
  if (ec) return "copy deploy/make-cluster-pki: " + ec.message();
  fs::copy(SourceDir() / "configs", tmp.path() / "configs", fs::copy_options::recursive, ec);
  if (ec) return "copy configs: " + ec.message();
  CommandResult secrets = RunShell(ShellQuote((tmp.path() / "deploy/k8s/make-secrets").string()) + " --force");
  if (secrets.exit_code != 0) return "make-secrets failed: " + secrets.output;
  CommandResult r =
      RunShell(ShellQuote(kubectl) + " kustomize " + ShellQuote((tmp.path() / "deploy/k8s/overlays" / overlay).string()),
          /*merge_stderr=*/false);
  if (r.exit_code != 0) return "kubectl kustomize " + overlay + " failed (exit " + std::to_string(r.exit_code) + ")";
  try {
    out->objects = YAML::LoadAll(r.output);
  } catch (const std::exception& e) {
    return std::string("rendered YAML does not parse: ") + e.what();
  }
  return "";
}

// n[k1][k2]...: an invalid node when any key is missing (yaml-cpp throws when indexing past one).
YAML::Node G(const YAML::Node& root, std::initializer_list<const char*> keys) {
  YAML::Node n;
  n.reset(root);
  for (const char* k : keys) {
    if (!n.IsMap() || !n[k]) {
      // An invalid node: false in conditions, as<T>(fallback) gives the fallback, iterates empty.
      static const YAML::Node* const kEmpty = new YAML::Node(YAML::NodeType::Map);
      return (*kEmpty)["missing"];
    }
    YAML::Node child = n[k];
    n.reset(child);  // rebinds; `n = child` would overwrite the document node n refers to
  }
  return n;
}

std::vector<std::string> Strings(const YAML::Node& seq) {
  std::vector<std::string> v;
  if (seq && seq.IsSequence()) {
    for (const YAML::Node& n : seq) v.push_back(n.as<std::string>());
  }
  return v;
}

std::string EnvValue(const YAML::Node& container, const std::string& name) {
  for (const YAML::Node& e : G(container, {"env"})) {
    if (e["name"].as<std::string>() == name && e["value"]) return e["value"].as<std::string>();
  }
  return "";
}

bool HasEnv(const YAML::Node& container, const std::string& name) {
  for (const YAML::Node& e : G(container, {"env"})) {
    if (e["name"].as<std::string>() == name) return true;
  }
  return false;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Every `--flag` in a command line (args list or one shell string).
std::set<std::string> FlagsOf(const std::vector<std::string>& args) {
  std::set<std::string> flags;
  std::regex re("(^|\\s)--([a-z_]+)");
  for (const std::string& a : args) {
    for (std::sregex_iterator it(a.begin(), a.end(), re), end; it != end; ++it) flags.insert((*it)[2]);
  }
  return flags;
}

void CheckOverlay(const Rendered& r, const std::string& overlay, const std::string& config_file, bool gpu,
                  int learner_ranks, std::set<std::string>* flags_used) {
  SCOPED_TRACE("overlay " + overlay);
  // Every namespaced object lives in the envtune namespace.
  ASSERT_NE(r.Find("Namespace", "envtune"), nullptr);
  for (const YAML::Node& o : r.objects) {
    if (o["kind"].as<std::string>() == "Namespace") continue;
    EXPECT_EQ(G(o, {"metadata", "namespace"}).as<std::string>(""), "envtune")
        << o["kind"] << " " << o["metadata"]["name"];
  }

  // ConfigMap from configs/: the files configs/kustomization.yaml lists, byte for byte.
  const YAML::Node* config = r.FindGenerated("ConfigMap", "envtune-config");
  ASSERT_NE(config, nullptr);
  YAML::Node generator = YAML::LoadFile((SourceDir() / "configs/kustomization.yaml").string());
  std::vector<std::string> listed = Strings(generator["configMapGenerator"][0]["files"]);
  EXPECT_TRUE(Contains(listed, "tiny-cpu.yaml"));
  for (const std::string& file : listed) {
    EXPECT_EQ((*config)["data"][file].as<std::string>(""), ReadFile(SourceDir() / "configs" / file)) << file;
  }
  EXPECT_EQ((*config)["data"].size(), listed.size());
  // The config the roles read: from the ConfigMap's mount, or the image's configs/ (COPY configs/).
  const YAML::Node* run = r.FindGenerated("ConfigMap", "envtune-run");
  ASSERT_NE(run, nullptr);
  const std::string config_path = (*run)["data"]["ENVTUNE_CONFIG"].as<std::string>("");
  EXPECT_EQ(config_path, config_file);
  const std::string kMount = "/etc/envtune/config/", kImage = "/opt/envtune/configs/";
  if (config_path.rfind(kMount, 0) == 0) {
    EXPECT_TRUE((*config)["data"][config_path.substr(kMount.size())]) << config_path << " is not in envtune-config";
  } else {
    ASSERT_EQ(config_path.rfind(kImage, 0), 0u) << config_path;
    // Reported, not failed: the image gets whatever configs/ holds when it is built.
    if (!fs::exists(SourceDir() / "configs" / config_path.substr(kImage.size()))) {
      std::cerr << "warning: overlay " << overlay << " reads " << config_path << ", but configs/"
                << config_path.substr(kImage.size()) << " is not in this checkout\n";
    }
  }
  const YAML::Node* secret = r.FindGenerated("Secret", "envtune-secrets");
  ASSERT_NE(secret, nullptr);
  for (const char* key : {"admin-token", "token", "hmac-key", "tls-ca.pem", "tls-cert.pem", "tls-key.pem"}) {
    EXPECT_TRUE((*secret)["data"][key]) << key;
  }
  const std::string config_name = (*config)["metadata"]["name"].as<std::string>();
  const std::string run_name = (*run)["metadata"]["name"].as<std::string>();
  const std::string secret_name = (*secret)["metadata"]["name"].as<std::string>();

  struct Workload {
    const char* kind;
    const char* name;
  };
  std::map<std::string, YAML::Node> pods;  // workload name -> pod template
  for (const Workload& w : {Workload{"Deployment", "coordinator"}, Workload{"Deployment", "envserver"},
                            Workload{"Deployment", "actor"}, Workload{"StatefulSet", "learner"}}) {
    const YAML::Node* o = r.Find(w.kind, w.name);
    ASSERT_NE(o, nullptr) << w.kind << " " << w.name;
    YAML::Node tmpl = (*o)["spec"]["template"];
    pods[w.name] = tmpl;
    // The selector selects the pod template.
    for (const auto& kv : (*o)["spec"]["selector"]["matchLabels"]) {
      EXPECT_EQ(tmpl["metadata"]["labels"][kv.first.as<std::string>()].as<std::string>(""), kv.second.as<std::string>())
          << w.name;
    }
    for (const YAML::Node& c : tmpl["spec"]["containers"]) {
      EXPECT_EQ(c["image"].as<std::string>(), "envtune:latest") << w.name;
      EXPECT_TRUE(c["resources"]["requests"]["cpu"]) << w.name << ": no CPU request";
      EXPECT_TRUE(c["resources"]["requests"]["memory"]) << w.name << ": no memory request";
      bool wants_gpu = gpu && (std::string(w.name) == "learner" || std::string(w.name) == "actor");
      EXPECT_EQ(G(c, {"resources", "limits", "nvidia.com/gpu"}).as<int>(0), wants_gpu ? 1 : 0) << w.name;
      std::vector<std::string> args = Strings(c["args"]);
      std::set<std::string> flags = FlagsOf(args);
      flags_used->insert(flags.begin(), flags.end());
      // $(VAR) references resolve to env vars of the container.
      std::regex var_re("\\$\\(([A-Z_]+)\\)");
      for (const std::string& a : args) {
        for (std::sregex_iterator it(a.begin(), a.end(), var_re), end; it != end; ++it) {
          std::string var = (*it)[1];
          bool from_run_config = var == "ENVTUNE_CONFIG" && G(c, {"envFrom"});
          EXPECT_TRUE(HasEnv(c, var) || from_run_config) << w.name << ": $(" << var << ") undefined";
        }
      }
      // Referenced ConfigMaps and Secrets exist (with kustomize's hashed names).
      for (const YAML::Node& ef : G(c, {"envFrom"})) {
        EXPECT_EQ(G(ef, {"configMapRef", "name"}).as<std::string>(""), run_name) << w.name;
      }
      for (const YAML::Node& e : G(c, {"env"})) {
        if (YAML::Node ref = G(e, {"valueFrom", "secretKeyRef", "name"})) {
          EXPECT_EQ(ref.as<std::string>(), secret_name) << w.name;
        }
      }
      // Named probe ports and mounts exist.
      std::set<std::string> port_names;
      std::set<int> port_numbers;
      for (const YAML::Node& p : c["ports"]) {
        if (p["name"]) port_names.insert(p["name"].as<std::string>());
        port_numbers.insert(p["containerPort"].as<int>());
      }
      EXPECT_TRUE(port_names.count("metrics")) << w.name << ": no metrics port";
      EXPECT_TRUE(port_numbers.count(9400)) << w.name;
      EXPECT_TRUE(Contains(args, "--metrics_port=9400") ||
                  (!args.empty() && args[0].find("--metrics_port=9400") != std::string::npos))
          << w.name;
      for (const char* probe : {"readinessProbe", "livenessProbe"}) {
        YAML::Node tcp = G(c, {probe, "tcpSocket", "port"});
        if (tcp && !tcp.as<std::string>().empty() && !std::isdigit(tcp.as<std::string>()[0])) {
          EXPECT_TRUE(port_names.count(tcp.as<std::string>())) << w.name << " " << probe;
        }
      }
      std::set<std::string> volumes;
      for (const YAML::Node& v : tmpl["spec"]["volumes"]) {
        volumes.insert(v["name"].as<std::string>());
        if (v["configMap"]) EXPECT_EQ(v["configMap"]["name"].as<std::string>(), config_name) << w.name;
        if (v["secret"]) EXPECT_EQ(v["secret"]["secretName"].as<std::string>(), secret_name) << w.name;
      }
      for (const YAML::Node& vct : G(*o, {"spec", "volumeClaimTemplates"})) {
        volumes.insert(vct["metadata"]["name"].as<std::string>());
      }
      for (const YAML::Node& m : c["volumeMounts"]) {
        EXPECT_TRUE(volumes.count(m["name"].as<std::string>())) << w.name << ": mount " << m["name"];
      }
    }
  }

  // Services select their pods and target declared ports.
  for (const char* svc : {"coordinator", "envserver-headless", "learner-headless", "actor-headless"}) {
    const YAML::Node* s = r.Find("Service", svc);
    ASSERT_NE(s, nullptr) << svc;
    std::string app = (*s)["spec"]["selector"]["app.kubernetes.io/name"].as<std::string>("");
    ASSERT_TRUE(pods.count(app)) << svc << " selects " << app;
    std::set<std::string> names;
    for (const YAML::Node& p : pods[app]["spec"]["containers"][0]["ports"]) names.insert(p["name"].as<std::string>());
    for (const YAML::Node& p : (*s)["spec"]["ports"]) {
      EXPECT_TRUE(names.count(p["targetPort"].as<std::string>())) << svc << " -> " << p["targetPort"];
    }
  }
  EXPECT_EQ((*r.Find("Service", "envserver-headless"))["spec"]["clusterIP"].as<std::string>(), "None");
  EXPECT_EQ((*r.Find("Service", "learner-headless"))["spec"]["clusterIP"].as<std::string>(), "None");
  EXPECT_TRUE((*r.Find("Service", "learner-headless"))["spec"]["publishNotReadyAddresses"].as<bool>(false));

  // Env servers: readiness by TCP (kubelet gRPC probes speak no TLS), HMAC key file.
  YAML::Node env = pods["envserver"]["spec"]["containers"][0];
  EXPECT_EQ(env["readinessProbe"]["tcpSocket"]["port"].as<std::string>(""), "grpc");
  std::vector<std::string> env_args = Strings(env["args"]);
  EXPECT_EQ(env_args.at(0), "env-server");
  EXPECT_TRUE(Contains(env_args, "--port=5001"));
  EXPECT_TRUE(Contains(env_args, "--hmac_key_file=/etc/envtune/secrets/hmac-key"));
  EXPECT_GE(r.Find("Deployment", "envserver")->operator[]("spec")["replicas"].as<int>(), 2);
  // Env servers join the coordinator's fleet with their pod address.
  EXPECT_TRUE(Contains(env_args, "--coordinator=coordinator.$(POD_NAMESPACE).svc.cluster.local:7000"));
  EXPECT_TRUE(Contains(env_args, "--advertise_address=$(POD_IP):5001"));
  EXPECT_TRUE(HasEnv(env, "POD_IP"));
  EXPECT_EQ(G(env, {"env"}).size(), 3u);
  // A HorizontalPodAutoscaler scales them on the in-flight-steps metric they export.
  const YAML::Node* hpa = r.Find("HorizontalPodAutoscaler", "envserver");
  ASSERT_NE(hpa, nullptr);
  EXPECT_EQ((*hpa)["apiVersion"].as<std::string>(), "autoscaling/v2");
  EXPECT_EQ((*hpa)["spec"]["scaleTargetRef"]["kind"].as<std::string>(), "Deployment");
  EXPECT_EQ((*hpa)["spec"]["scaleTargetRef"]["name"].as<std::string>(), "envserver");
  EXPECT_GE((*hpa)["spec"]["minReplicas"].as<int>(), 2);
  EXPECT_GT((*hpa)["spec"]["maxReplicas"].as<int>(), (*hpa)["spec"]["minReplicas"].as<int>());
  ASSERT_EQ((*hpa)["spec"]["metrics"].size(), 1u);
  const YAML::Node metric = (*hpa)["spec"]["metrics"][0];
  EXPECT_EQ(metric["type"].as<std::string>(), "Pods");
  EXPECT_EQ(metric["pods"]["metric"]["name"].as<std::string>(), kEnvInflightMetric);
  EXPECT_EQ(metric["pods"]["target"]["type"].as<std::string>(), "AverageValue");
  // The pods export it on the port Prometheus scrapes.
  EXPECT_EQ(pods["envserver"]["metadata"]["annotations"]["prometheus.io/port"].as<std::string>(""), "9400");
  const YAML::Node* pdb = r.Find("PodDisruptionBudget", "envserver");
  ASSERT_NE(pdb, nullptr);
  EXPECT_EQ((*pdb)["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"].as<std::string>(""), "envserver");

  // Actors: every env replica through the headless Service's DNS name, learner rank 0.
  YAML::Node actor = pods["actor"]["spec"]["containers"][0];
  std::vector<std::string> actor_args = Strings(actor["args"]);
  EXPECT_EQ(actor_args.at(0), "actor");
  EXPECT_TRUE(Contains(actor_args, "--env=dns:///envserver-headless.$(POD_NAMESPACE).svc.cluster.local:5001"));
  EXPECT_TRUE(Contains(actor_args, "--learner=learner-0.learner-headless.$(POD_NAMESPACE).svc.cluster.local:5002"));
  EXPECT_TRUE(Contains(actor_args, "--coordinator=coordinator.$(POD_NAMESPACE).svc.cluster.local:7000"));
  EXPECT_TRUE(Contains(actor_args, "--config=$(ENVTUNE_CONFIG)"));

  // Learner: rank from the ordinal, master = pod 0's stable name, WORLD_SIZE = replicas.
  const YAML::Node* learner = r.Find("StatefulSet", "learner");
  EXPECT_EQ((*learner)["spec"]["serviceName"].as<std::string>(), "learner-headless");
  EXPECT_EQ((*learner)["spec"]["replicas"].as<int>(), learner_ranks);
  EXPECT_EQ((*learner)["spec"]["podManagementPolicy"].as<std::string>(), "Parallel");
  YAML::Node lc = pods["learner"]["spec"]["containers"][0];
  EXPECT_EQ(EnvValue(lc, "WORLD_SIZE"), std::to_string(learner_ranks));
  EXPECT_EQ(EnvValue(lc, "MASTER_ADDR"), "learner-0.learner-headless.$(POD_NAMESPACE).svc.cluster.local");
  ASSERT_EQ(Strings(lc["command"]), (std::vector<std::string>{"/bin/sh", "-c"}));
  std::string script = Strings(lc["args"]).at(0);
  for (const char* part : {"exec envtune learner", "learner.distributed.rank=${HOSTNAME##*-}",
                           "learner.distributed.world_size=${WORLD_SIZE}",
                           "learner.distributed.master_addr=${MASTER_ADDR}",
                           "--config=${ENVTUNE_CONFIG}", "--port=5002", "learner.resume=latest"}) {
    EXPECT_NE(script.find(part), std::string::npos) << part << " not in: " << script;
  }
  // The rank expression really yields the ordinal.
  CommandResult rank = RunShell("HOSTNAME=learner-13 sh -c 'echo ${HOSTNAME##*-}'");
  EXPECT_EQ(rank.output, "13\n");
  // Security: every role reads the cluster token and TLS files from the Secret's mount (paths on
  // the command line, never the secrets); only the coordinator gets the admin token.
  const std::vector<std::string> security_args = {
      "security.token_file=/etc/envtune/secrets/token",
      "security.tls.cert=/etc/envtune/secrets/tls-cert.pem",
      "security.tls.key=/etc/envtune/secrets/tls-key.pem",
      "security.tls.ca=/etc/envtune/secrets/tls-ca.pem", "security.tls.server_name=envtune-cluster"};
  for (const char* role : {"coordinator", "envserver", "actor", "learner"}) {
    const YAML::Node pod = pods[role];
    const YAML::Node container = pod["spec"]["containers"][0];
    std::vector<std::string> args = Strings(container["args"]);
    const std::string joined = args.empty() ? "" : args.back();
    for (const std::string& a : security_args) {
      EXPECT_TRUE(Contains(args, a) || joined.find(a) != std::string::npos) << role << ": no " << a;
    }
    bool mounted = false;
    for (const YAML::Node& m : G(container, {"volumeMounts"})) {
      mounted |= m["name"].as<std::string>() == "secrets" &&
                 m["mountPath"].as<std::string>() == "/etc/envtune/secrets";
    }
    EXPECT_TRUE(mounted) << role;
    std::set<std::string> keys;
    for (const YAML::Node& v : G(pod, {"spec", "volumes"})) {
      if (v["name"].as<std::string>() != "secrets") continue;
      EXPECT_EQ(v["secret"]["secretName"].as<std::string>(), secret_name) << role;
      EXPECT_EQ(v["secret"]["defaultMode"].as<int>(0), 0440) << role;
      for (const YAML::Node& item : v["secret"]["items"]) keys.insert(item["key"].as<std::string>());
    }
    EXPECT_EQ(keys.count("admin-token"), std::string(role) == "coordinator" ? 1u : 0u) << role;
    EXPECT_EQ(keys.count("token"), 1u) << role;
    EXPECT_EQ(G(pod, {"spec", "securityContext", "fsGroup"}).as<int>(0), 10001) << role;
  }
  YAML::Node coord = pods["coordinator"]["spec"]["containers"][0];
  EXPECT_TRUE(Contains(Strings(coord["args"]), "security.admin_token_file=/etc/envtune/secrets/admin-token"));
  // Supervision: the kubelet restarts every container; the coordinator resumes from its newest
  // state on its own volume (worker ids carry the incarnation counted there).
  for (const auto& [name, pod] : pods) {
    EXPECT_EQ(pod["spec"]["restartPolicy"].as<std::string>(""), "Always") << name;
  }
  EXPECT_TRUE(
      Contains(Strings(coord["args"]), "coordinator.state_dir=/var/lib/envtune/coordinator"));
  EXPECT_TRUE(Contains(Strings(coord["args"]), "coordinator.resume_latest=true"));
  bool state_mounted = false;
  for (const YAML::Node& m : coord["volumeMounts"]) {
    if (m["name"].as<std::string>() == "state") {
      state_mounted =
          m["mountPath"].as<std::string>() == "/var/lib/envtune" && !m["readOnly"].as<bool>(false);
    }
  }
  EXPECT_TRUE(state_mounted);
  bool state_claimed = false;
  for (const YAML::Node& v : pods["coordinator"]["spec"]["volumes"]) {
    if (v["name"].as<std::string>() == "state") {
      state_claimed =
          v["persistentVolumeClaim"]["claimName"].as<std::string>("") == "coordinator-state";
    }
  }
  EXPECT_TRUE(state_claimed);
  const YAML::Node* claim = r.Find("PersistentVolumeClaim", "coordinator-state");
  ASSERT_NE(claim, nullptr);
  EXPECT_EQ(Strings((*claim)["spec"]["accessModes"]), (std::vector<std::string>{"ReadWriteOnce"}));
  EXPECT_EQ(pods.count("coordinator"), 1u);
  EXPECT_EQ(
      r.Find("Deployment", "coordinator")->operator[]("spec")["strategy"]["type"].as<std::string>(),
      "Recreate");
  // Ingress only from the run's own pods, and /metrics for Prometheus.
  const YAML::Node* policy = r.Find("NetworkPolicy", "envtune-ingress");
  ASSERT_NE(policy, nullptr);
  EXPECT_EQ(Strings((*policy)["spec"]["policyTypes"]), (std::vector<std::string>{"Ingress"}));
  ASSERT_EQ((*policy)["spec"]["ingress"].size(), 2u);
  EXPECT_TRUE((*policy)["spec"]["ingress"][0]["from"][0]["podSelector"]);
  EXPECT_EQ((*policy)["spec"]["ingress"][1]["ports"][0]["port"].as<int>(), 9400);
}

TEST(ManifestsTest, KustomizeOverlaysRenderAndWireUp) {
  // Every config the ConfigMap generator lists must exist (else kustomize fails for everyone).
  YAML::Node generator = YAML::LoadFile((SourceDir() / "configs/kustomization.yaml").string());
  for (const YAML::Node& g : generator["configMapGenerator"]) {
    for (const std::string& f : Strings(g["files"])) {
      ASSERT_TRUE(fs::exists(SourceDir() / "configs" / f)) << "configs/kustomization.yaml lists configs/" << f
                                                           << ", which does not exist";
    }
  }
  std::string kubectl = FindTool("kubectl", "ENVTUNE_KUBECTL");
  if (kubectl.empty()) {
    GTEST_SKIP() << "kubectl not found (Debian package kubernetes-client; scripts/install-deps installs it)";
  }
  std::set<std::string> flags_used;
  struct Case {
    const char* overlay;
    const char* config;
    bool gpu;
    int ranks;
  };
  for (const Case& c : {Case{"cpu", "/etc/envtune/config/tiny-cpu.yaml", false, 1},
                        Case{"gpu", "/etc/envtune/config/paper-qwen2.5-7b.yaml", true, 4}}) {
    Rendered r;
    std::string error = RenderOverlay(kubectl, c.overlay, &r);
    ASSERT_EQ(error, "") << c.overlay;
    CheckOverlay(r, c.overlay, c.config, c.gpu, c.ranks, &flags_used);
  }
  // Every flag the manifests pass is a flag of the built envtune binary (when it is built).
  const char* bin_dir = std::getenv("ENVTUNE_BINARY_DIR");
  fs::path binary = bin_dir != nullptr ? fs::path(bin_dir) / "deploy" / "envtune" : fs::path();
  if (!binary.empty() && fs::exists(binary)) {
    CommandResult help = RunShell(ShellQuote(binary.string()) + " coordinator --helpfull");
    for (const std::string& f : flags_used) {
      EXPECT_NE(help.output.find("--" + f + " "), std::string::npos) << "envtune has no flag --" << f;
    }
  }
}

// ---------------------------------------------------------------- Docker

TEST(ManifestsTest, DockerfileCopiesExistingSourcesAndBuildsOnBookworm) {
  const fs::path dockerfile = SourceDir() / "deploy/docker/Dockerfile";
  std::string text = ReadFile(dockerfile);
  ASSERT_FALSE(text.empty());
  // Patterns of .dockerignore (simple prefixes and globs without '**').
  std::vector<std::string> ignored;
  {
    std::istringstream in(ReadFile(SourceDir() / ".dockerignore"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      if (line.back() == '/') line.pop_back();
      ignored.push_back(line);
    }
  }
  auto is_ignored = [&](std::string path) {
    while (!path.empty() && path.back() == '/') path.pop_back();
    for (const std::string& pattern : ignored) {
      std::string p = pattern;
      if (p.back() == '*') p.pop_back();
      if (path == pattern || path.rfind(p + "/", 0) == 0 || (pattern.back() == '*' && path.rfind(p, 0) == 0)) return true;
    }
    return false;
  };
  // Join continuation lines, then look at every instruction.
  std::string joined = std::regex_replace(text, std::regex("\\\\\n"), " ");
  std::istringstream in(joined);
  std::string line;
  int froms = 0, copies = 0;
  bool install_deps = false, runtime_packages = false;
  std::set<std::string> runtime_copies;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string op;
    words >> op;
    if (op == "FROM") {
      ++froms;
      std::string image;
      words >> image;
      if (froms == 1) EXPECT_EQ(image, "debian:bookworm");
      if (froms == 2) EXPECT_EQ(image, "${RUNTIME_BASE}");
    } else if (op == "COPY") {
      ++copies;
      std::vector<std::string> args;
      std::string w;
      bool from_stage = false;
      while (words >> w) {
        if (w.rfind("--from=", 0) == 0) from_stage = true;
        if (w.rfind("--", 0) == 0) continue;
        args.push_back(w);
      }
      ASSERT_GE(args.size(), 2u) << line;
      if (from_stage) {
        for (size_t i = 0; i + 1 < args.size(); ++i) runtime_copies.insert(args[i]);
        continue;
      }
      for (size_t i = 0; i + 1 < args.size(); ++i) {
        EXPECT_TRUE(fs::exists(SourceDir() / args[i])) << "COPY source missing: " << args[i];
        EXPECT_FALSE(is_ignored(args[i])) << "COPY source excluded by .dockerignore: " << args[i];
        EXPECT_EQ(args[i].find(".."), std::string::npos) << "COPY source outside the context: " << args[i];
      }
    } else if (op == "RUN") {
      install_deps |= line.find("scripts/install-deps") != std::string::npos;
      runtime_packages |= line.find("deploy/docker/runtime-packages") != std::string::npos;
      if (line.find("cmake --build") != std::string::npos) {
        EXPECT_NE(line.find("--mount=type=cache,target=/root/.cache/ccache"), std::string::npos);
      }
    }
  }
  EXPECT_EQ(froms, 2) << "multi-stage: build + runtime";
  EXPECT_GT(copies, 0);
  EXPECT_TRUE(install_deps);
  EXPECT_TRUE(runtime_packages);
  for (const char* what : {"/opt/envtune/build/deploy/envtune", "/opt/envtune/data/", "/opt/envtune/configs/",
                           "/opt/envtune/third_party/"}) {
    EXPECT_TRUE(runtime_copies.count(what)) << "runtime image lacks " << what;
  }
  // Secrets never enter the build context.
  EXPECT_TRUE(is_ignored("deploy/k8s/base/secrets/hmac-key"));
  EXPECT_FALSE(is_ignored("third_party/qwen-tokenizer"));
}

TEST(ManifestsTest, RuntimePackagesResolveThisBinarysLibraries) {
  if (FindTool("dpkg-query", "ENVTUNE_DPKG_QUERY").empty() || FindTool("ldd", "ENVTUNE_LDD").empty()) {
    GTEST_SKIP() << "dpkg-query/ldd not available (not a Debian system)";
  }
  // The envtune binary when it is built (what the image ships), else this test.
  const char* bin_dir = std::getenv("ENVTUNE_BINARY_DIR");
  fs::path binary = bin_dir != nullptr ? fs::path(bin_dir) / "deploy" / "envtune" : fs::path();
  bool is_envtune = !binary.empty() && fs::exists(binary);
  if (!is_envtune) binary = fs::read_symlink("/proc/self/exe");
  // The PyTorch wheel's libraries (libtorch, CUDA, NCCL) belong to no package: listed apart (the
  // image build copies them with --copy-unowned).
  const std::string unowned_file = ::testing::TempDir() + "/runtime-packages-unowned.txt";
  // In a subshell: RunShell appends its own 2>/dev/null, which would override this 2>FILE.
  CommandResult r = RunShell("(" + ShellQuote((SourceDir() / "deploy/docker/runtime-packages").string()) +
                                 " --list-unowned " + ShellQuote(binary.string()) + " 2>" +
                                 ShellQuote(unowned_file) + ")",
                             /*merge_stderr=*/false);
  ASSERT_EQ(r.exit_code, 0) << r.output << ReadFile(unowned_file);
  // A build without LibTorch (-DENVTUNE_WITH_TORCH=OFF) has no wheel libraries to list.
  const bool links_torch =
      is_envtune &&
      RunShell("ldd " + ShellQuote(binary.string()) + " | grep -q libtorch_cpu.so").exit_code == 0;
  if (links_torch) {
    EXPECT_NE(ReadFile(unowned_file).find("unowned: "), std::string::npos);
    EXPECT_NE(ReadFile(unowned_file).find("libtorch_cpu.so"), std::string::npos)
        << ReadFile(unowned_file);
  }
  std::istringstream in(r.output);
  std::string pkg;
  std::set<std::string> packages;
  while (std::getline(in, pkg)) {
    packages.insert(pkg);
    EXPECT_EQ(RunShell("dpkg-query -W -f='${Status}' " + ShellQuote(pkg)).output, "install ok installed") << pkg;
  }
  std::vector<std::string> expected = {"libstdc++6", "libc6"};
  if (is_envtune) expected.insert(expected.end(), {"libgrpc++1.51", "libprometheus-cpp-core1.0", "libcpp-httplib0.11", "libyaml-cpp0.7"});
  for (const std::string& e : expected) EXPECT_TRUE(packages.count(e)) << e << " missing from:\n" << r.output;
  EXPECT_NE(RunShell(ShellQuote((SourceDir() / "deploy/docker/runtime-packages").string()) + " /nonexistent").exit_code, 0);
}

// ---------------------------------------------------------------- Slurm

TEST(ManifestsTest, SlurmScriptParsesAndPassesCheck) {
  const fs::path script = SourceDir() / "deploy/slurm/envtune.sbatch";
  CommandResult syntax = RunShell("bash -n " + ShellQuote(script.string()));
  EXPECT_EQ(syntax.exit_code, 0) << syntax.output;
  std::string text = ReadFile(script);
  EXPECT_NE(text.find("#SBATCH hetjob"), std::string::npos);
  for (const char* tool_script : {"deploy/slurm/envtune.sbatch", "deploy/k8s/make-secrets", "deploy/make-cluster-pki",
                                  "deploy/docker/runtime-packages", "scripts/install-deps"}) {
    std::string shellcheck = FindTool("shellcheck", "ENVTUNE_SHELLCHECK");
    if (shellcheck.empty()) GTEST_SKIP() << "shellcheck not found (Debian package shellcheck)";
    CommandResult r = RunShell(ShellQuote(shellcheck) + " -S warning " + ShellQuote((SourceDir() / tool_script).string()));
    EXPECT_EQ(r.exit_code, 0) << tool_script << ":\n" << r.output;
  }
}

// Runs the job script with fake srun/scontrol/envtune: 2 CPU tasks (coordinator + 2 env servers
// needs 3), 2 learner ranks, 2 actors.
TEST(ManifestsTest, SlurmJobPassesAddressesBetweenSteps) {
  TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const fs::path fake = SourceDir() / "tests/deploy/fake_slurm";
  const fs::path run_dir = tmp.path() / "run";
  std::string env = "PATH=" + ShellQuote(fake.string()) + ":\"$PATH\"" +
                    " SLURM_JOB_ID=4242 SLURM_SUBMIT_DIR=" + ShellQuote(tmp.path().string()) +
                    " SLURM_JOB_NODELIST_HET_GROUP_0=cpu-a,cpu-b SLURM_NTASKS_HET_GROUP_0=3" +
                    " SLURM_JOB_NODELIST_HET_GROUP_1=gpu-a SLURM_NTASKS_HET_GROUP_1=2" +
                    " SLURM_JOB_NODELIST_HET_GROUP_2=gpu-b SLURM_NTASKS_HET_GROUP_2=2" +
                    " ENVTUNE_HOME=" + ShellQuote(SourceDir().string()) +
                    " ENVTUNE_BIN=" + ShellQuote((fake / "envtune").string()) +
                    " ENVTUNE_CONFIG=" + ShellQuote((SourceDir() / "configs/tiny-cpu.yaml").string()) +
                    " ENVTUNE_RUN_DIR=" + ShellQuote(run_dir.string()) +
                    " ENVTUNE_NODE_IP_CMD='echo 10.0.0.$((7 + ${SLURM_PROCID:-0}))'" +
                    " FAKE_SLURM_LOG=" + ShellQuote((tmp.path() / "srun.log").string()) +
                    " FAKE_ACTORS=2 STARTUP_TIMEOUT_S=60";
  CommandResult r = RunShell("env " + env + " timeout 120 bash " +
                        ShellQuote((SourceDir() / "deploy/slurm/envtune.sbatch").string()) + " actor.seed=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("learner exited with status 0"), std::string::npos) << r.output;

  EXPECT_EQ(ReadFile(run_dir / "coordinator.addr"), "cpu-a:7000\n");
  // Two env servers (task slots after the coordinator), each on ENV_PORT + its local id.
  EXPECT_EQ(ReadFile(run_dir / "env/0.addr"), "10.0.0.7:5001\n");
  EXPECT_EQ(ReadFile(run_dir / "env/1.addr"), "10.0.0.8:5002\n");
  EXPECT_EQ(ReadFile(run_dir / "env-servers.addr"), "10.0.0.7:5001,10.0.0.8:5002\n");
  EXPECT_EQ(ReadFile(run_dir / "learner.addr"), "gpu-a:5002\n");
  std::string key = ReadFile(run_dir / "hmac-key");
  EXPECT_TRUE(std::regex_match(key, std::regex("[0-9a-f]{64}"))) << key;
  EXPECT_EQ(fs::status(run_dir / "hmac-key").permissions() & fs::perms::others_read, fs::perms::none);

  // Tokens and the run PKI, private to the job's user; every role gets their paths (the
  // coordinator alone the admin token), never their values.
  for (const char* file : {"token", "admin-token", "pki/ca.pem", "pki/cert.pem", "pki/key.pem"}) {
    ASSERT_TRUE(fs::exists(run_dir / file)) << file;
    EXPECT_EQ(fs::status(run_dir / file).permissions() & (fs::perms::group_all | fs::perms::others_all),
              fs::perms::none)
        << file;
  }
  EXPECT_FALSE(fs::exists(run_dir / "pki/ca.key"));
  const std::string token = ReadFile(run_dir / "token");
  const std::string admin_token = ReadFile(run_dir / "admin-token");
  EXPECT_TRUE(std::regex_match(token, std::regex("[0-9a-f]{64}"))) << token;
  std::vector<std::string> argvs;
  for (const auto& entry : fs::directory_iterator(run_dir / "logs")) {
    if (entry.path().filename().string().rfind("argv-", 0) == 0) argvs.push_back(entry.path().filename().string());
  }
  EXPECT_EQ(argvs.size(), 7u);  // coordinator, 2 env servers, 2 learner ranks, 2 actors
  for (const std::string& name : argvs) {
    const std::string argv = ReadFile(run_dir / "logs" / name);
    for (const std::string& part : {"security.token_file=" + (run_dir / "token").string(),
                                    "security.tls.cert=" + (run_dir / "pki/cert.pem").string(),
                                    "security.tls.ca=" + (run_dir / "pki/ca.pem").string(),
                                    std::string("security.tls.server_name=envtune-cluster")}) {
      EXPECT_NE(argv.find(part), std::string::npos) << part << " not in " << name << ": " << argv;
    }
    EXPECT_EQ(argv.find(token), std::string::npos) << name;
    EXPECT_EQ(argv.find(admin_token), std::string::npos) << name;
    if (name != "argv-coordinator-0") {
      EXPECT_EQ(argv.find("security.admin_token_file="), std::string::npos) << name;
    }
  }
  std::string coordinator = ReadFile(run_dir / "logs/argv-coordinator-0");
  EXPECT_NE(coordinator.find("security.admin_token_file=" + (run_dir / "admin-token").string()), std::string::npos)
      << coordinator;
  EXPECT_NE(coordinator.find("--port=7000"), std::string::npos) << coordinator;
  EXPECT_NE(coordinator.find("--metrics_port=9400"), std::string::npos) << coordinator;
  EXPECT_NE(coordinator.find("actor.seed=3"), std::string::npos) << coordinator;
  for (int i = 0; i < 2; ++i) {
    std::string es = ReadFile(run_dir / ("logs/argv-env-server-" + std::to_string(i)));
    EXPECT_NE(es.find("--port=" + std::to_string(5001 + i)), std::string::npos) << es;
    EXPECT_NE(es.find("--hmac_key_file=" + (run_dir / "hmac-key").string()), std::string::npos) << es;
    EXPECT_NE(es.find("--metrics_port=" + std::to_string(9401 + i)), std::string::npos) << es;  // 9400: coordinator
    std::string learner = ReadFile(run_dir / ("logs/argv-learner-" + std::to_string(i)));
    for (const std::string& part : std::vector<std::string>{
             "--coordinator=cpu-a:7000", "learner.distributed.rank=" + std::to_string(i),
          std::string("learner.distributed.world_size=2"), std::string("learner.distributed.master_addr=gpu-a"),
          std::string("learner.distributed.master_port=29500"), std::string("actor.seed=3"),
          "learner.advertise_address=10.0.0." + std::to_string(7 + i) + ":5002"}) {
      EXPECT_NE(learner.find(part), std::string::npos) << part << " not in: " << learner;
    }
    std::string actor = ReadFile(run_dir / ("logs/argv-actor-" + std::to_string(i)));
    for (const std::string& part :
         std::vector<std::string>{"--coordinator=cpu-a:7000", "--learner=gpu-a:5002",
                                  "--env=10.0.0.7:5001,10.0.0.8:5002", "actor.name=actor-" + std::to_string(i)}) {
      EXPECT_NE(actor.find(part), std::string::npos) << part << " not in: " << actor;
    }
  }
  // Prometheus file_sd targets.
  nlohmann::json targets = nlohmann::json::parse(ReadFile(run_dir / "prometheus/envtune-4242.json"), nullptr, false);
  ASSERT_FALSE(targets.is_discarded());
  ASSERT_EQ(targets.size(), 2u);
  EXPECT_EQ(targets[0]["targets"], nlohmann::json::array({"cpu-a:9400"}));
  EXPECT_EQ(targets[1]["targets"], nlohmann::json::array({"10.0.0.7:9401", "10.0.0.8:9402"}));
  EXPECT_EQ(targets[1]["labels"]["role"], "envserver");
  // Steps were placed in the right heterogeneous components.
  std::string srun_log = ReadFile(tmp.path() / "srun.log");
  for (const char* opt : {"--het-group=0", "--het-group=1", "--het-group=2", "--nodelist=cpu-a"}) {
    EXPECT_NE(srun_log.find(opt), std::string::npos) << opt;
  }
  EXPECT_EQ(ReadFile(run_dir / "logs/argv-coordinator-0").find("coordinator.resume_step="),
            std::string::npos);

  // Requeued (#SBATCH --requeue; same job id and run directory): the coordinator and every
  // learner rank continue from the newest learner checkpoint the coordinator has a state of
  // (step-5 has none), and the earlier attempt's addresses are not reused.
  for (const auto& [label, step] : std::vector<std::pair<std::string, int>>{{"step-3", 3},
                                                                            {"step-5", 5}}) {
    fs::create_directories(run_dir / "checkpoints" / label);
    std::ofstream(run_dir / "checkpoints" / label / "trainer_state.json")
        << "{\n \"format\": 1,\n \"step\": " << step << ",\n \"policy_version\": " << step + 1
        << "\n}\n";
  }
  fs::create_directories(run_dir / "coordinator");
  std::ofstream(run_dir / "coordinator/step-3.binpb") << "state";
  std::ofstream(run_dir / "env/9.addr") << "10.9.9.9:1\n";  // a stale address
  r = RunShell("env " + env + " timeout 120 bash " +
               ShellQuote((SourceDir() / "deploy/slurm/envtune.sbatch").string()) + " actor.seed=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming from learner step 3"), std::string::npos) << r.output;
  std::string resumed = ReadFile(run_dir / "logs/argv-coordinator-0");
  EXPECT_NE(resumed.find("coordinator.resume_step=3"), std::string::npos) << resumed;
  EXPECT_NE(resumed.find("coordinator.state_dir=" + (run_dir / "coordinator").string()),
            std::string::npos)
      << resumed;
  for (int i = 0; i < 2; ++i) {
    std::string learner = ReadFile(run_dir / ("logs/argv-learner-" + std::to_string(i)));
    EXPECT_NE(learner.find("learner.resume=" + (run_dir / "checkpoints/step-3").string()),
              std::string::npos)
        << learner;
  }
  EXPECT_EQ(ReadFile(run_dir / "env-servers.addr"), "10.0.0.7:5001,10.0.0.8:5002\n");
}

TEST(ManifestsTest, SlurmJobFailsClearlyWithoutABinary) {
  TempDir tmp;
  CommandResult r = RunShell("env SLURM_JOB_ID=1 ENVTUNE_RUN_DIR=" + ShellQuote(tmp.path().string()) +
                        " ENVTUNE_BIN=/nonexistent/envtune bash " +
                        ShellQuote((SourceDir() / "deploy/slurm/envtune.sbatch").string()));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("no envtune binary at /nonexistent/envtune"), std::string::npos) << r.output;
}

// ---------------------------------------------------------------- Prometheus

TEST(ManifestsTest, PrometheusConfigIsValid) {
  const fs::path config = SourceDir() / "deploy/prometheus/prometheus.yml";
  YAML::Node root = YAML::LoadFile(config.string());
  std::set<std::string> jobs;
  for (const YAML::Node& job : root["scrape_configs"]) jobs.insert(job["job_name"].as<std::string>());
  EXPECT_EQ(jobs, (std::set<std::string>{"envtune-k8s", "envtune-file", "envtune-local"}));
  // The DNS names are the manifests' Services, on the manifests' metrics port.
  for (const YAML::Node& job : root["scrape_configs"]) {
    if (job["job_name"].as<std::string>() != "envtune-k8s") continue;
    EXPECT_EQ(job["dns_sd_configs"][0]["port"].as<int>(), 9400);
    for (const std::string& name : Strings(job["dns_sd_configs"][0]["names"])) {
      std::string service = name.substr(0, name.find('.'));
      std::string manifests;
      for (const char* f : {"coordinator.yaml", "envserver.yaml", "learner.yaml", "actor.yaml"}) {
        manifests += ReadFile(SourceDir() / "deploy/k8s/base" / f);
      }
      EXPECT_NE(manifests.find("name: " + service + "\n"), std::string::npos) << service;
    }
  }
  std::string promtool = FindTool("promtool", "ENVTUNE_PROMTOOL");
  if (promtool.empty()) GTEST_SKIP() << "promtool not found (Debian package prometheus; scripts/install-deps installs it)";
  CommandResult r = RunShell(ShellQuote(promtool) + " check config " + ShellQuote(config.string()));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SUCCESS"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace envtune
