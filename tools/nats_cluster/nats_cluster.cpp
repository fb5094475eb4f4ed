#include "wep/nats_cluster/nats_cluster.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace wep::nats_cluster {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(100);

// Ports are picked below Linux's default ephemeral range (32768-60999), so
// that the local end of some process's outgoing connection cannot take one
// between the pick and nats-server's bind; another test picking at the same
// moment still can, which the constructor answers by picking again.
constexpr uint16_t kFirstPort = 20000;
constexpr uint16_t kPortsToPickFrom = 12000;
constexpr int kStartAttempts = 5;

// Free loopback ports, all distinct (every socket is held until all are
// picked), chosen at random in [kFirstPort, kFirstPort + kPortsToPickFrom).
std::vector<uint16_t> free_ports(size_t count) {
  static std::mt19937 random(std::random_device{}());
  std::vector<int> sockets;
  std::vector<uint16_t> ports;
  for (int tries = 0; ports.size() < count; ++tries) {
    if (tries > 10000) {
      for (int fd : sockets) ::close(fd);
      throw std::runtime_error("cannot pick a free loopback port");
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      for (int open : sockets) ::close(open);
      throw std::runtime_error("socket() failed");
    }
    const auto port = static_cast<uint16_t>(kFirstPort + random() % kPortsToPickFrom);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(fd);  // in use: another
      continue;
    }
    sockets.push_back(fd);
    ports.push_back(port);
  }
  for (int fd : sockets) ::close(fd);
  return ports;
}

// Whether a node's log says a port it was given was taken meanwhile.
bool lost_a_port(const std::filesystem::path& log_file) {
  std::ifstream in(log_file);
  for (std::string line; std::getline(in, line);) {
    if (line.find("address already in use") != std::string::npos) return true;
  }
  return false;
}

std::string quoted(const std::filesystem::path& path) { return "\"" + path.string() + "\""; }

// An admin connection to whichever nodes answer, closed when destroyed.
class Admin {
 public:
  Admin(const std::vector<std::string>& urls, const ClusterOptions& options, int64_t timeout_ms) {
    natsOptions* opts = nullptr;
    if (natsOptions_Create(&opts) != NATS_OK) throw std::runtime_error("natsOptions_Create failed");
    std::vector<const char*> servers;
    for (const auto& url : urls) servers.push_back(url.c_str());
    natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size()));
    natsOptions_SetTimeout(opts, std::max<int64_t>(200, timeout_ms));
    natsOptions_SetMaxReconnect(opts, 0);
    if (!options.admin_user.empty())
      natsOptions_SetUserInfo(opts, options.admin_user.c_str(), options.admin_password.c_str());
    if (!options.tls_cert_file.empty()) {
      natsOptions_SetSecure(opts, true);
      if (!options.ca_file.empty()) natsOptions_LoadCATrustedCertificates(opts, options.ca_file.c_str());
    }
    const natsStatus status = natsConnection_Connect(&nc_, opts);
    natsOptions_Destroy(opts);
    if (status != NATS_OK) throw std::runtime_error(std::string("admin connect: ") + natsStatus_GetText(status));
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = std::max<int64_t>(200, timeout_ms);
    if (natsConnection_JetStream(&js_, nc_, &jo) != NATS_OK) {
      natsConnection_Destroy(nc_);
      throw std::runtime_error("admin: no JetStream context");
    }
  }
  ~Admin() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;
  jsCtx* js() const { return js_; }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// Retries `attempt` (which throws or returns false) until it succeeds or
// `deadline`; then throws with the last reason.
template <class Attempt>
void retry_until(Clock::time_point deadline, const std::string& what, Attempt&& attempt) {
  std::string last = "no attempt";
  while (true) {
    try {
      if (attempt(last)) return;
    } catch (const std::exception& e) {
      last = e.what();
    }
    if (Clock::now() >= deadline) throw std::runtime_error(what + " did not happen in time: " + last);
    std::this_thread::sleep_for(kPoll);
  }
}

}  // namespace

NatsCluster::NatsCluster(ClusterOptions options) : options_(std::move(options)) {
  if (!std::filesystem::exists(options_.server)) {
    throw std::runtime_error(options_.server + " not found: install nats-server (scripts/setup.sh)");
  }
  nodes_.resize(static_cast<size_t>(options_.nodes));
  for (int attempt = 1;; ++attempt) {
    const std::vector<uint16_t> ports = free_ports(static_cast<size_t>(options_.nodes) * 3);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      Node& node = nodes_[i];
      node.name = "n" + std::to_string(i);
      node.client_port = ports[i * 3];
      node.cluster_port = ports[i * 3 + 1];
      node.http_port = ports[i * 3 + 2];
      node.config_file = options_.dir / (node.name + ".conf");
      node.log_file = options_.dir / (node.name + ".log");
    }
    try {
      for (int i = 0; i < size(); ++i) write_config(i);
      restart_all();
      return;
    } catch (...) {
      stop_all();
      bool port_taken = false;
      for (const Node& node : nodes_) port_taken = port_taken || lost_a_port(node.log_file);
      if (!port_taken || attempt == kStartAttempts) throw;
    }
    // A port was taken between the pick and the bind: again, from scratch.
    for (const Node& node : nodes_) {
      std::filesystem::remove(node.log_file);
      std::filesystem::remove_all(options_.dir / node.name);  // the JetStream store of the failed start
    }
  }
}

NatsCluster::~NatsCluster() { stop_all(); }

std::string NatsCluster::url(int node) const {
  return std::string(options_.tls_cert_file.empty() ? "nats" : "tls") +
         "://127.0.0.1:" + std::to_string(nodes_[static_cast<size_t>(node)].client_port);
}

std::vector<std::string> NatsCluster::urls() const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) out.push_back(url(i));
  return out;
}

std::string NatsCluster::server_name(int node) const { return nodes_[static_cast<size_t>(node)].name; }

void NatsCluster::write_config(int index) {
  const Node& node = nodes_[static_cast<size_t>(index)];
  std::ofstream out(node.config_file);
  out << "server_name: " << node.name << "\n"
      << "listen: 127.0.0.1:" << node.client_port << "\n"
      << "http: 127.0.0.1:" << node.http_port << "\n"
      << "jetstream {\n  store_dir: " << quoted(options_.dir / node.name) << "\n}\n"
      << "cluster {\n  name: wep\n  listen: 127.0.0.1:" << node.cluster_port << "\n  routes: [\n";
  for (const Node& other : nodes_) out << "    nats-route://127.0.0.1:" << other.cluster_port << "\n";
  out << "  ]\n}\n";
  if (!options_.tls_cert_file.empty()) {
    out << "tls {\n  cert_file: " << quoted(options_.tls_cert_file) << "\n  key_file: " << quoted(options_.tls_key_file)
        << "\n  timeout: 2\n}\n";
  }
  out << options_.extra_config << "\n";
  if (!out) throw std::runtime_error("cannot write " + node.config_file.string());
}

void NatsCluster::spawn(int index) {
  Node& node = nodes_[static_cast<size_t>(index)];
  if (node.pid > 0) return;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, node.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::string config = node.config_file.string();
  std::string program = options_.server;
  std::string dash_c = "-c";
  char* argv[] = {program.data(), dash_c.data(), config.data(), nullptr};
  pid_t pid = -1;
  const int error = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (error != 0) throw std::runtime_error("cannot start " + program + ": " + std::strerror(error));
  node.pid = pid;
}

std::string NatsCluster::log_tail(int index) const {
  std::ifstream in(nodes_[static_cast<size_t>(index)].log_file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string tail;
  for (size_t i = lines.size() > 8 ? lines.size() - 8 : 0; i < lines.size(); ++i) tail += "\n  " + lines[i];
  return tail;
}

void NatsCluster::wait_healthy(int index, Clock::time_point deadline) {
  Node& node = nodes_[static_cast<size_t>(index)];
  std::string last = "no answer";
  while (true) {
    int status = 0;
    if (node.pid > 0 && ::waitpid(node.pid, &status, WNOHANG) == node.pid) {
      node.pid = -1;
      throw std::runtime_error("nats-server " + node.name + " exited at start; its log:" + log_tail(index));
    }
    try {
      Poco::Net::HTTPClientSession session("127.0.0.1", node.http_port);
      session.setTimeout(Poco::Timespan(1, 0));
      Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/healthz", Poco::Net::HTTPMessage::HTTP_1_1);
      session.sendRequest(request);
      Poco::Net::HTTPResponse response;
      std::istream& body = session.receiveResponse(response);
      std::stringstream text;
      text << body.rdbuf();
      if (response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK) return;
      last = "HTTP " + std::to_string(response.getStatus()) + " " + text.str();
    } catch (const std::exception& e) {
      last = e.what();
    }
    if (Clock::now() >= deadline) {
      throw std::runtime_error("nats-server " + node.name + " not healthy in time (" + last +
                               "); its log:" + log_tail(index));
    }
    std::this_thread::sleep_for(kPoll);
  }
}

void NatsCluster::wait_meta_leader(Clock::time_point deadline) {
  retry_until(deadline, "a JetStream meta leader", [&](std::string& last) {
    Admin admin(urls(), options_, 2000);
    jsAccountInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetAccountInfo(&info, admin.js(), nullptr, &code);
    if (info) jsAccountInfo_Destroy(info);
    last = natsStatus_GetText(status);
    return status == NATS_OK;
  });
}

void NatsCluster::restart_all() {
  const auto deadline = Clock::now() + options_.start_timeout;
  for (int i = 0; i < size(); ++i) spawn(i);
  for (int i = 0; i < size(); ++i) wait_healthy(i, deadline);
  wait_meta_leader(deadline);
}

void NatsCluster::restart_node(int index) {
  spawn(index);
  wait_healthy(index, Clock::now() + options_.start_timeout);
}

void NatsCluster::kill_node(int index) {
  Node& node = nodes_[static_cast<size_t>(index)];
  if (node.pid <= 0) return;
  ::kill(node.pid, SIGKILL);
  int status = 0;
  ::waitpid(node.pid, &status, 0);
  node.pid = -1;
}

void NatsCluster::stop_all(std::chrono::milliseconds grace) noexcept {
  for (Node& node : nodes_) {
    if (node.pid > 0) ::kill(node.pid, SIGTERM);
  }
  const auto deadline = Clock::now() + grace;
  for (Node& node : nodes_) {
    if (node.pid <= 0) continue;
    int status = 0;
    while (::waitpid(node.pid, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline) {
        ::kill(node.pid, SIGKILL);
        ::waitpid(node.pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    node.pid = -1;
  }
}

void NatsCluster::create_stream(const StreamOptions& stream, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  retry_until(deadline, "creating stream " + stream.name, [&](std::string& last) {
    Admin admin(urls(), options_, 5000);
    jsStreamConfig config;
    jsStreamConfig_Init(&config);
    config.Name = stream.name.c_str();
    std::vector<const char*> subjects;
    for (const auto& s : stream.subjects) subjects.push_back(s.c_str());
    config.Subjects = subjects.data();
    config.SubjectsLen = static_cast<int>(subjects.size());
    config.Replicas = stream.replicas;
    config.Storage = stream.file_storage ? js_FileStorage : js_MemoryStorage;
    config.Duplicates = static_cast<int64_t>(stream.duplicate_window.count()) * 1000000;  // nanoseconds
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_AddStream(&info, admin.js(), &config, nullptr, &code);
    if (info) jsStreamInfo_Destroy(info);
    last = std::string(natsStatus_GetText(status)) + " (JetStream error " + std::to_string(code) + ")";
    return status == NATS_OK || code == JSStreamNameExistErr;
  });
  stream_leader(stream.name, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

void NatsCluster::delete_stream(const std::string& stream, std::chrono::milliseconds timeout) {
  retry_until(Clock::now() + timeout, "deleting stream " + stream, [&](std::string& last) {
    Admin admin(urls(), options_, 10000);
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_DeleteStream(admin.js(), stream.c_str(), nullptr, &code);
    last = natsStatus_GetText(status);
    return status == NATS_OK || code == JSStreamNotFoundErr || status == NATS_NOT_FOUND;
  });
}

int NatsCluster::stream_leader(const std::string& stream, std::chrono::milliseconds timeout) {
  int leader = -1;
  retry_until(Clock::now() + timeout, "a leader for stream " + stream, [&](std::string& last) {
    Admin admin(urls(), options_, 2000);
    jsStreamInfo* info = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetStreamInfo(&info, admin.js(), stream.c_str(), nullptr, &code);
    last = natsStatus_GetText(status);
    if (status == NATS_OK && info->Cluster && info->Cluster->Leader) {
      for (int i = 0; i < size(); ++i) {
        if (server_name(i) == info->Cluster->Leader && running(i)) leader = i;
      }
    }
    if (info) jsStreamInfo_Destroy(info);
    return leader >= 0;
  });
  return leader;
}

int64_t NatsCluster::stream_messages(const std::string& stream, std::chrono::milliseconds timeout) {
  int64_t messages = -1;
  retry_until(Clock::now() + timeout, "reading stream " + stream + "'s state", [&](std::string& last) {
    Admin admin(urls(), options_, 5000);
    jsStreamInfo* info = nullptr;
    const natsStatus status = js_GetStreamInfo(&info, admin.js(), stream.c_str(), nullptr, nullptr);
    last = natsStatus_GetText(status);
    if (status == NATS_OK) messages = static_cast<int64_t>(info->State.Msgs);
    if (info) jsStreamInfo_Destroy(info);
    return status == NATS_OK;
  });
  return messages;
}

StreamContents NatsCluster::read_stream(const std::string& stream, bool keep_bodies,
                                        std::chrono::milliseconds timeout) {
  StreamContents contents;
  retry_until(Clock::now() + timeout, "reading stream " + stream, [&](std::string& last) {
    contents = StreamContents{};
    Admin admin(urls(), options_, 5000);
    jsStreamInfo* info = nullptr;
    natsStatus status = js_GetStreamInfo(&info, admin.js(), stream.c_str(), nullptr, nullptr);
    if (status != NATS_OK) {
      last = std::string("stream info: ") + natsStatus_GetText(status);
      return false;
    }
    const uint64_t total = info->State.Msgs;
    const std::string filter = info->Config->SubjectsLen > 0 ? info->Config->Subjects[0] : ">";
    jsStreamInfo_Destroy(info);
    if (total == 0) return true;

    jsSubOptions sub_options;
    jsSubOptions_Init(&sub_options);
    sub_options.Stream = stream.c_str();
    sub_options.Config.AckPolicy = js_AckNone;
    sub_options.Config.DeliverPolicy = js_DeliverAll;
    natsSubscription* sub = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    const std::string durable =
        "reader" + std::to_string(::getpid()) + "_" + std::to_string(Clock::now().time_since_epoch().count());
    status = js_PullSubscribe(&sub, admin.js(), filter.c_str(), durable.c_str(), nullptr, &sub_options, &code);
    if (status != NATS_OK) {
      last = std::string("pull subscribe: ") + natsStatus_GetText(status) + " " + std::to_string(code);
      return false;
    }
    std::unique_ptr<natsSubscription, void (*)(natsSubscription*)> guard(sub, [](natsSubscription* s) {
      natsSubscription_Unsubscribe(s);  // deletes the consumer the library created
      natsSubscription_Destroy(s);
    });
    while (static_cast<uint64_t>(contents.messages) < total) {
      natsMsgList list{};
      status = natsSubscription_Fetch(&list, sub, 1000, 5000, &code);
      if (status != NATS_OK) {
        last = std::string("fetch: ") + natsStatus_GetText(status) + " after " + std::to_string(contents.messages);
        return false;
      }
      for (int i = 0; i < list.Count; ++i) {
        natsMsg* msg = list.Msgs[i];
        const char* id = nullptr;
        if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id) {
          contents.distinct_ids.insert(id);
        } else {
          ++contents.messages_without_id;
        }
        if (keep_bodies)
          contents.bodies.emplace_back(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
        ++contents.messages;
      }
      natsMsgList_Destroy(&list);
    }
    return true;
  });
  return contents;
}

}  // namespace wep::nats_cluster
