// nats-cluster: starts a local NATS JetStream cluster (NatsCluster) with one
// stream, prints "ready <url>,<url>,..." on stdout, and runs until its stdin
// ends (its lifeline) or it gets SIGTERM/SIGINT; then stops every node.
// Commands on stdin, one per line:
//   dump   prints every message body of the stream, one per line, then "end"
//   nats-cluster --dir DIR [--nodes 3] [--stream EVENTS] [--subject events.>]
//                [--replicas 3] [--duplicate-window-ms 120000]
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <map>
#include <wep/nats_cluster/nats_cluster.hpp>
#include <string>

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> args{{"--nodes", "3"},
                                          {"--stream", "EVENTS"},
                                          {"--subject", "events.>"},
                                          {"--replicas", "3"},
                                          {"--duplicate-window-ms", "120000"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!args.count(argv[i]) && std::string(argv[i]) != "--dir") {
      std::cerr << "nats-cluster: unknown option " << argv[i] << "\n";
      return 2;
    }
    args[argv[i]] = argv[i + 1];
  }
  if (!args.count("--dir")) {
    std::cerr << "usage: nats-cluster --dir DIR [--nodes N] [--stream NAME] [--subject SUBJECT] [--replicas R] "
                 "[--duplicate-window-ms MS]\n";
    return 2;
  }
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  try {
    wep::nats_cluster::ClusterOptions options;
    options.dir = args["--dir"];
    options.nodes = std::stoi(args["--nodes"]);
    wep::nats_cluster::NatsCluster cluster(options);
    wep::nats_cluster::StreamOptions stream;
    stream.name = args["--stream"];
    stream.subjects = {args["--subject"]};
    stream.replicas = std::stoi(args["--replicas"]);
    stream.duplicate_window = std::chrono::milliseconds(std::stoll(args["--duplicate-window-ms"]));
    cluster.create_stream(stream);
    std::string urls;
    for (const auto& url : cluster.urls()) urls += (urls.empty() ? "" : ",") + url;
    std::cout << "ready " << urls << std::endl;
    char buffer[256];
    std::string input;
    while (!g_stop) {
      pollfd p{0, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      const ssize_t n = ::read(0, buffer, sizeof buffer);
      if (n <= 0) break;  // end of input
      input.append(buffer, static_cast<size_t>(n));
      for (size_t end; (end = input.find('\n')) != std::string::npos; input.erase(0, end + 1)) {
        const std::string command = input.substr(0, end);
        if (command == "dump") {
          for (const std::string& body : cluster.read_stream(stream.name, true).bodies) std::cout << body << "\n";
        } else {
          std::cout << "error: unknown command '" << command << "'\n";
        }
        std::cout << "end" << std::endl;
      }
    }
    cluster.stop_all();
  } catch (const std::exception& e) {
    std::cerr << "nats-cluster: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
