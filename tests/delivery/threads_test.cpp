// Every analytics thread has ended when the plugin's stop() returns: this
// process's threads (/proc/self/task) are counted before the analytics plugin
// is loaded with a transport, while it delivers online, and right after it is
// unloaded (unload calls stop(), then destroys it and unmaps the library).
// The count is back at the start and no thread named wep-* remains.
//
// A process of its own: the HTTPS backend runs as a separate `test-backend`
// process, so the only threads this process starts or ends are the host's and
// the plugins'. The transport's url is an IP literal (test-backend's own
// url): a host name is looked up with glibc's getaddrinfo_a, whose helper
// thread (named after the thread that started it) idles inside libc for
// about a second after the lookup, outliving stop().
#define BOOST_TEST_MODULE delivery_threads
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <wep/test_backend/backend.hpp>
#include <vector>
#include <wep/test/child_process.hpp>

#include "delivery_support.hpp"

using namespace wep::test;
using wep::test::ChildProcess;
using namespace std::chrono_literals;

namespace {

struct ThreadInfo {
  std::string id;
  std::string name;
};

// This process's threads and their names, as the kernel sees them.
std::vector<ThreadInfo> threads() {
  std::vector<ThreadInfo> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    std::string name;
    std::getline(std::ifstream(entry.path() / "comm"), name);
    out.push_back({entry.path().filename().string(), name});
  }
  return out;
}

std::vector<std::string> wep_threads() {
  std::vector<std::string> out;
  for (const auto& thread : threads()) {
    if (thread.name.rfind("wep-", 0) == 0) out.push_back(thread.name + " (" + thread.id + ")");
  }
  return out;
}

std::string describe(const std::vector<ThreadInfo>& list) {
  std::string text;
  for (const auto& thread : list) text += thread.name + " (" + thread.id + ") ";
  return text;
}

// The loopback backend as a child process; its URL once it listens.
struct BackendProcess {
  explicit BackendProcess(const std::filesystem::path& dir)
      : process(TEST_BACKEND_PATH,
                {"--cert", wep::test::test_certificates().server_cert, "--key",
                 wep::test::test_certificates().server_key, "--api-key", "threads-test-key"},
                dir / "backend.log") {
    const auto line = process.read_line(30s);
    const std::string prefix = "listening ";
    if (!line || line->rfind(prefix, 0) != 0) throw std::runtime_error("test-backend did not start");
    url = line->substr(prefix.size());
  }
  ChildProcess process;
  std::string url;
};

}  // namespace

BOOST_AUTO_TEST_CASE(every_analytics_thread_has_ended_when_unload_returns) {
  TempDir dir("wep-threads");
  BackendProcess backend(dir.path());

  wep::host_stub::HostOptions options;
  options.data_dir = dir.path() / "data";
  options.plugin_stop_timeout_ms = 5000;
  wep::host_stub::Host host(options);
  host.mutate("note.created", payload(0));  // the host's own lanes are up and busy once
  host.flush_effects();

  AnalyticsOptions supabase;
  supabase.transport_plugin = WEP_SUPABASE_PATH;
  supabase.transport_config_json =
      supabase_config_json(backend.url, "threads-test-key", wep::test::test_certificates().ca_file);
  AnalyticsOptions ndjson;
  ndjson.transport_plugin = WEP_NDJSON_PATH;
  ndjson.transport_config_json = R"({"path":"events.ndjson","fsync":false})";

  int64_t n = 1;
  for (const AnalyticsOptions* transport : {&supabase, &ndjson}) {
    BOOST_TEST_CONTEXT("transport " << transport->transport_plugin) {
      const auto before = threads();
      BOOST_TEST_REQUIRE(wep_threads().empty(), describe(before));

      BOOST_TEST_REQUIRE(host.load_plugin(WEP_ANALYTICS_PATH, analytics_config_json(*transport)) == "analytics");
      host.set_online(true);
      for (int i = 0; i < 30; ++i) host.mutate("note.created", payload(n++));
      BOOST_TEST(host.wait_delivered(60s).value_or(-1) == 0);
      const auto online = threads();
      BOOST_TEST_MESSAGE("online: " << describe(online));
      // The writer, the flusher and its queue thread run now, next to the plugin's lane.
      BOOST_TEST(wep_threads().size() >= 3u, describe(online));
      BOOST_TEST(online.size() >= before.size() + 4, describe(online));

      host.unload_plugin("analytics");
      const auto after = threads();
      BOOST_TEST(after.size() == before.size(), "before: " << describe(before) << "\nafter: " << describe(after));
      BOOST_TEST(wep_threads().empty(), describe(after));
      host.set_online(false);
    }
  }
  BOOST_TEST(read_lines(transport_dir(options.data_dir) / "events.ndjson").size() == 30u);
}
