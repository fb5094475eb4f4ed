// A NATS JetStream cluster of nats-server processes on 127.0.0.1, for the
// nats transport's tests, its benchmark and the demo (library
// wep_nats_cluster, tool nats-cluster).
//
// Each node listens on free loopback ports (client, cluster routes, HTTP
// monitoring; picked below the kernel's ephemeral range, and picked again
// if one is taken before nats-server binds it), keeps its JetStream files
// under the cluster's directory and logs to <dir>/<node>.log. Every call is
// bounded in time and throws std::runtime_error (naming what did not
// happen, with the tail of the node's log) when its bound passes. The
// destructor stops every node it started. Not thread-safe: one owner.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace wep::nats_cluster {

struct ClusterOptions {
  std::filesystem::path dir;  // must exist; the cluster's files go below it
  int nodes = 3;
  std::string server = "/usr/sbin/nats-server";
  // Extra top-level server config lines for every node, e.g. an
  // `authorization { users = [...] }` block.
  std::string extra_config;
  // TLS on client connections: the server certificate and key (PEM).
  std::string tls_cert_file;
  std::string tls_key_file;
  // The account the helper itself connects with (stream set-up, reading
  // back): user/password, empty when the cluster has no authorization.
  std::string admin_user;
  std::string admin_password;
  std::string ca_file;  // the helper's trusted CA with TLS
  std::chrono::milliseconds start_timeout{30000};
};

struct StreamOptions {
  std::string name = "EVENTS";
  std::vector<std::string> subjects{"events.>"};
  int replicas = 3;
  std::chrono::milliseconds duplicate_window{120000};
  bool file_storage = true;
};

// What a stream holds, read back message by message.
struct StreamContents {
  int64_t messages = 0;
  std::set<std::string> distinct_ids;  // Nats-Msg-Id headers
  int64_t messages_without_id = 0;
  std::vector<std::string> bodies;  // in stream order, when asked for
};

class NatsCluster {
 public:
  // Starts every node and waits until each is healthy and JetStream has a
  // meta leader.
  explicit NatsCluster(ClusterOptions options);
  ~NatsCluster();  // stop_all()
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  // "nats://127.0.0.1:<port>" (or tls://) of node i.
  std::string url(int node) const;
  std::vector<std::string> urls() const;
  std::string server_name(int node) const;  // "n0", "n1", ...

  // Creates (or finds) the stream; waits until it has a leader.
  void create_stream(const StreamOptions& stream, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Deletes the stream and its messages (no-op when it does not exist).
  void delete_stream(const std::string& stream, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Index of the node leading `stream`, waiting up to `timeout` for one.
  int stream_leader(const std::string& stream, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Reads every message of the stream.
  StreamContents read_stream(const std::string& stream, bool keep_bodies = false,
                             std::chrono::milliseconds timeout = std::chrono::seconds(120));
  int64_t stream_messages(const std::string& stream, std::chrono::milliseconds timeout = std::chrono::seconds(60));

  // SIGKILL (kill -9) of one node, reaped; its files stay.
  void kill_node(int node);
  // Starts a stopped or killed node again with the same ports and files and
  // waits until it is healthy.
  void restart_node(int node);
  // SIGTERM every running node, SIGKILL after `grace`, reap.
  void stop_all(std::chrono::milliseconds grace = std::chrono::seconds(10)) noexcept;
  // Starts every stopped node again and waits for health and a meta leader.
  void restart_all();
  bool running(int node) const { return nodes_[static_cast<size_t>(node)].pid > 0; }

 private:
  struct Node {
    std::string name;
    uint16_t client_port = 0, cluster_port = 0, http_port = 0;
    std::filesystem::path config_file, log_file;
    pid_t pid = -1;
  };
  void write_config(int node);
  void spawn(int node);
  void wait_healthy(int node, std::chrono::steady_clock::time_point deadline);
  void wait_meta_leader(std::chrono::steady_clock::time_point deadline);
  std::string log_tail(int node) const;

  ClusterOptions options_;
  std::vector<Node> nodes_;
};

}  // namespace wep::nats_cluster
