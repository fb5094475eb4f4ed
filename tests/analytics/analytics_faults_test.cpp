// The real analytics plugin under faults: a full disk, a read-only file, a
// damaged file, stop() with a full hand-off buffer, two processes on one
// file, and load/unload cycles. The host carries on in every case.
#define BOOST_TEST_MODULE analytics_faults
#include <dlfcn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <functional>
#include <wep/host_stub/host.hpp>
#include <set>
#include <thread>

#include "test_support.hpp"

using wep::test::Db;
using wep::test::FakeHost;
using wep::test::LoadedPlugin;
using wep::test::now_ms;
using wep::test::stat;
using wep::test::stat_text;
using wep::test::TempDir;
namespace fs = std::filesystem;

namespace {

constexpr const char* kEvents =
    R"("events": {"note.created": {"event_type": "note_created", "properties": ["kind", "n"]}})";

wep::host_stub::HostOptions options(const TempDir& dir, const std::string& extra_config = "") {
  wep::host_stub::HostOptions o;
  o.data_dir = dir / "host";
  o.plugins.push_back({WEP_ANALYTICS_PATH, "{" + std::string(kEvents) + extra_config + "}"});
  return o;
}

fs::path queue_file(const TempDir& dir) { return dir / "host/plugins/analytics/analytics.db"; }

std::string payload_n(int n) { return R"({"kind": "text", "n": )" + std::to_string(n) + "}"; }

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A child process running `body` (optionally as an unprivileged user); its
// verdict is "" for success, else what went wrong. Fork only while this
// process has no other threads.
struct Child {
  pid_t pid = -1;
  int verdict_fd = -1;
};

Child spawn_child(const std::function<std::string()>& body, bool drop_privileges) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    close(pipe_fds[0]);
    std::string verdict;
    try {
      if (drop_privileges && (setgid(65534) != 0 || setuid(65534) != 0)) {
        verdict = "cannot drop privileges";
      } else {
        verdict = body();
      }
    } catch (const std::exception& e) {
      verdict = std::string("exception: ") + e.what();
    }
    if (write(pipe_fds[1], verdict.data(), verdict.size()) < 0) _exit(3);
    _exit(verdict.empty() ? 0 : 1);  // no atexit handlers, no test framework teardown
  }
  close(pipe_fds[1]);
  return {pid, pipe_fds[0]};
}

std::string join_child(const Child& child) {
  std::string verdict;
  char buffer[512];
  for (ssize_t n; (n = read(child.verdict_fd, buffer, sizeof(buffer))) > 0;) {
    verdict.append(buffer, static_cast<size_t>(n));
  }
  close(child.verdict_fd);
  int status = 0;
  waitpid(child.pid, &status, 0);
  if (!WIFEXITED(status)) return "child crashed (status " + std::to_string(status) + ")";
  if (WEXITSTATUS(status) != 0 && verdict.empty()) return "child failed";
  return verdict;
}

std::string run_in_child(const std::function<std::string()>& body, bool drop_privileges) {
  return join_child(spawn_child(body, drop_privileges));
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_full_disk_drops_and_reports_while_mutations_succeed) {
  TempDir dir;
  // max_database_bytes caps the file (PRAGMA max_page_count): a full disk.
  wep::host_stub::Host host(options(dir, R"(, "max_database_bytes": 65536)"));
  const std::string kind(60, 'k');
  int64_t last_sequence = 0;
  int chunks_after_full = 0;
  for (int chunk = 0; chunk < 100 && chunks_after_full < 3; ++chunk) {
    for (int i = 0; i < 50; ++i) {
      const int64_t sequence =
          host.mutate("note.created", R"({"kind": ")" + kind + R"(", "n": )" + std::to_string(chunk * 50 + i) + "}");
      BOOST_REQUIRE(sequence == last_sequence + 1);  // the mutation always succeeds
      last_sequence = sequence;
    }
    host.pending();  // one writer batch per chunk
    if (stat(host.stats_json(), "/plugins/analytics/dropped/store_error") > 0) ++chunks_after_full;
  }
  const std::string stats = host.stats_json();
  const int64_t stored = stat(stats, "/plugins/analytics/stored");
  const int64_t dropped = stat(stats, "/plugins/analytics/dropped/store_error");
  BOOST_TEST(stored > 0);
  BOOST_TEST(dropped > 0);
  BOOST_TEST(stored + dropped == stat(stats, "/plugins/analytics/accepted"));
  BOOST_TEST(stat_text(stats, "/plugins/analytics/last_error").find("full") != std::string::npos);
  BOOST_TEST(host.pending().value_or(-1) == stored);
  BOOST_TEST(Db(queue_file(dir)).integer("SELECT count(*) FROM analytics_queue") == stored);
}

BOOST_AUTO_TEST_CASE(a_read_only_file_is_reported_while_mutations_succeed) {
  // Root ignores file permissions: the scenario then runs as "nobody", in a
  // folder under /tmp (sticky, world-traversable) whatever $TMPDIR is.
  const bool as_root = geteuid() == 0;
  TempDir dir("wep-analytics", as_root ? "/tmp" : "");
  {
    wep::host_stub::Host host(options(dir));
    for (int n = 0; n < 3; ++n) host.mutate("note.created", payload_n(n));
  }
  const fs::path file = queue_file(dir);
  BOOST_REQUIRE(fs::exists(file));
  BOOST_REQUIRE(chmod(file.c_str(), 0444) == 0);
  if (as_root) {
    for (const auto& entry : fs::recursive_directory_iterator(dir.path())) {
      BOOST_REQUIRE(lchown(entry.path().c_str(), 65534, 65534) == 0);
    }
    BOOST_REQUIRE(chown(dir.path().c_str(), 65534, 65534) == 0);
  }
  const std::string verdict = run_in_child(
      [&]() -> std::string {
        wep::host_stub::Host host(options(dir));
        int64_t last = 0;
        for (int n = 10; n < 15; ++n) {
          const int64_t sequence = host.mutate("note.created", payload_n(n));
          if (sequence != last + 1 && last != 0) return "mutation sequence jumped";
          last = sequence;
        }
        host.pending();  // barrier (the count itself may or may not be readable)
        const std::string stats = host.stats_json();
        if (stat(stats, "/plugins/analytics/dropped/store_error") != 5) return "drops not counted: " + stats;
        if (stat_text(stats, "/plugins/analytics/last_error").find("readonly") == std::string::npos) {
          return "not reported: " + stats;
        }
        host.shutdown();
        if (Db(file, SQLITE_OPEN_READONLY).integer("SELECT count(*) FROM analytics_queue") != 3) {
          return "the read-only file changed";
        }
        return "";
      },
      as_root);
  BOOST_TEST(verdict == "");
}

BOOST_AUTO_TEST_CASE(a_file_that_is_not_a_database_is_moved_aside_and_replaced) {
  TempDir dir;
  fs::create_directories(queue_file(dir).parent_path());
  std::string garbage;
  for (int i = 0; i < 500; ++i) garbage += "this is not an SQLite database; ";
  std::ofstream(queue_file(dir), std::ios::binary) << garbage;

  wep::host_stub::Host host(options(dir));
  host.mutate("note.created", payload_n(1));
  host.mutate("note.created", payload_n(2));
  BOOST_TEST(host.pending().value_or(-1) == 2);
  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/analytics/corrupt_recoveries") == 1);
  BOOST_TEST(stat_text(stats, "/plugins/analytics/last_error").find("moved aside") != std::string::npos);

  std::vector<fs::path> moved;
  for (const auto& entry : fs::directory_iterator(queue_file(dir).parent_path())) {
    if (entry.path().filename().string().rfind("analytics.db.corrupt-", 0) == 0) moved.push_back(entry.path());
  }
  BOOST_REQUIRE(moved.size() == 1u);
  BOOST_TEST(read_file(moved[0]) == garbage);  // kept byte for byte, not deleted
  BOOST_TEST(Db(queue_file(dir)).integer("SELECT count(*) FROM analytics_queue") == 2);
}

BOOST_AUTO_TEST_CASE(a_damaged_page_is_found_moved_aside_and_the_host_carries_on) {
  TempDir dir;
  {
    wep::host_stub::Host host(options(dir));
    for (int n = 0; n < 3000; ++n) host.mutate("note.created", payload_n(n));
  }
  const fs::path file = queue_file(dir);
  const auto size = fs::file_size(file);
  BOOST_REQUIRE(size > 40 * 4096);
  {
    // Overwrite ten pages in the middle of the table with garbage.
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(20 * 4096);
    const std::string junk(10 * 4096, '\x5a');
    io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  wep::host_stub::Host host(options(dir));  // start-up (recount, age-out) reads every page
  host.mutate("note.created", payload_n(1));
  BOOST_TEST(host.pending().value_or(-1) >= 1);  // the new row, with what was salvaged
  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/analytics/corrupt_recoveries") == 1);
  int moved = 0;
  for (const auto& entry : fs::directory_iterator(file.parent_path())) {
    if (entry.path().filename().string().rfind("analytics.db.corrupt-", 0) == 0) {
      ++moved;
      BOOST_TEST(fs::file_size(entry.path()) == size);
    }
  }
  BOOST_TEST(moved == 1);
}

BOOST_AUTO_TEST_CASE(stop_with_a_full_buffer_stores_everything_accepted) {
  TempDir dir;
  const fs::path data = dir / "data";
  FakeHost host("analytics", "{" + std::string(kEvents) + R"(, "buffer_capacity": 100, "busy_timeout_ms": 120000})",
                data);
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  const auto drops = [&] { return stat(plugin.stats(), "/dropped/buffer_full"); };

  // Another connection holds the write lock: the writer blocks in its insert
  // (waiting up to the busy timeout) and the buffer fills up behind it.
  Db blocker(data / "analytics.db");
  blocker.exec("BEGIN IMMEDIATE");
  int sent = 0;
  const auto send = [&] { plugin.mutation("note.created", payload_n(sent), sent + 1, now_ms()), ++sent; };
  const auto accepted_now = [&] { return stat(plugin.stats(), "/accepted"); };
  // 1. Fill the buffer until an event is refused.
  while (drops() == 0) send();
  // More accepted than the buffer holds: the writer took a batch and is
  // blocked inserting it, and the buffer behind it is full. Otherwise the
  // writer has not run yet: wait until it takes the buffer (events are
  // accepted again), then fill the buffer once more behind the blocked writer.
  constexpr int64_t kCapacity = 100;
  if (accepted_now() == kCapacity) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (accepted_now() == kCapacity && std::chrono::steady_clock::now() < deadline) send();
    BOOST_REQUIRE(accepted_now() > kCapacity);
    for (const int64_t before = drops(); drops() == before;) send();
  }
  const int64_t accepted = stat(plugin.stats(), "/accepted");
  BOOST_TEST(accepted + drops() == sent);
  BOOST_TEST_MESSAGE("sent " << sent << " accepted " << accepted);

  wep_status stopped = WEP_ERR_FAILED;
  std::thread stopper([&] { stopped = plugin.stop(5000); });
  const bool stopping = host.wait_for_log("stopping: storing 100 buffered events", std::chrono::seconds(30));
  blocker.exec("ROLLBACK");  // the writer goes on; stop() waits for it
  stopper.join();
  BOOST_TEST(stopping);  // stop() was called with a full buffer
  for (const auto& line : host.log_lines()) BOOST_TEST_MESSAGE(line);
  BOOST_TEST(stopped == WEP_OK);
  BOOST_TEST(blocker.integer("SELECT count(*) FROM analytics_queue") == accepted);
  BOOST_TEST(blocker.integer("SELECT pending FROM analytics_queue_count") == accepted);
}

BOOST_AUTO_TEST_CASE(two_processes_share_one_queue_file) {
  TempDir dir;
  const fs::path shared = dir / "shared.db";
  const std::string config = "{" + std::string(kEvents) + R"(, "database": ")" + shared.string() + "\"}";
  constexpr int kPerProcess = 3000;
  // Start barrier: each process has its plugin started (the shared file
  // open) before either writes, so the writes really overlap.
  int child_ready[2], parent_ready[2];
  BOOST_TEST_REQUIRE(pipe(child_ready) == 0);
  BOOST_TEST_REQUIRE(pipe(parent_ready) == 0);
  const auto produce = [&](const std::string& who, int first_n, int tell_fd, int wait_fd) -> std::string {
    FakeHost host("analytics", config, dir / who, who);
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
    char byte = 'r';
    if (write(tell_fd, &byte, 1) != 1 || read(wait_fd, &byte, 1) != 1) return who + ": the start barrier broke";
    for (int i = 0; i < kPerProcess; ++i) {
      plugin.mutation("note.created", payload_n(first_n + i), i + 1, now_ms());
      if (i % 500 == 499) plugin.pending();  // many interleaved transactions
    }
    plugin.pending();
    if (stat(plugin.stats(), "/dropped/store_error") != 0) return who + ": store errors: " + plugin.stats();
    return plugin.stop() == WEP_OK ? "" : who + ": stop failed";
  };
  // Forked while this process has no threads; then both write at once.
  const Child child = spawn_child([&] { return produce("child", 100000, child_ready[1], parent_ready[0]); }, false);
  const std::string parent_verdict = produce("parent", 0, parent_ready[1], child_ready[0]);
  BOOST_TEST(join_child(child) == "");
  BOOST_TEST(parent_verdict == "");
  for (int fd : {child_ready[0], child_ready[1], parent_ready[0], parent_ready[1]}) close(fd);

  Db db(shared);
  BOOST_TEST(db.integer("SELECT count(*) FROM analytics_queue") == 2 * kPerProcess);
  BOOST_TEST(db.integer("SELECT pending FROM analytics_queue_count") == 2 * kPerProcess);
  BOOST_TEST(db.integer("SELECT count(*) FROM analytics_queue WHERE user_id = 'child'") == kPerProcess);
  BOOST_TEST(db.integer("SELECT count(DISTINCT properties) FROM analytics_queue") == 2 * kPerProcess);
}

BOOST_AUTO_TEST_CASE(an_unclear_analytics_enabled_value_counts_as_false) {
  TempDir dir;
  FakeHost host("analytics", "{" + std::string(kEvents) + "}", dir / "data");
  host.set_setting("analytics_enabled", "\"no\"");  // neither true nor false: privacy first
  LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
  plugin.mutation("note.created", payload_n(1), 1, now_ms());
  BOOST_TEST(plugin.pending() == 0);
  plugin.setting("analytics_enabled", "true");
  plugin.mutation("note.created", payload_n(2), 2, now_ms());
  plugin.setting("analytics_enabled", "1");
  plugin.mutation("note.created", payload_n(3), 3, now_ms());
  BOOST_TEST(plugin.pending() == 1);
  BOOST_TEST(stat(plugin.stats(), "/dropped/disabled") == 2);
  BOOST_TEST(host.subscribed() == 7u);  // mutations, connectivity, settings
}

// 100 cycles of the real plugin with the real ndjson transport: half of
// them offline (the queue grows), half online (the flusher delivers what is
// queued and the stop may land while it sends). Nothing stays mapped, and
// every row is delivered once in the end.
BOOST_AUTO_TEST_CASE(load_use_unload_100_times_offline_and_online_leaves_nothing_mapped) {
  TempDir dir;
  const fs::path delivered = dir / "data" / "transport" / "out.ndjson";
  const std::string config = "{" + std::string(kEvents) + R"(, "flush_interval_ms": 5, "transport": {"plugin": ")" +
                             WEP_NDJSON_PATH + R"(", "config": {"path": "out.ndjson", "fsync": false}}})";
  constexpr int kCycles = 100;
  constexpr int kPerCycle = 10;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    {
      FakeHost host("analytics", config, dir / "data");
      LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
      const bool online = cycle % 2 == 1;
      if (online) plugin.connectivity(true);
      for (int i = 0; i < kPerCycle; ++i) {
        plugin.mutation("note.created", payload_n(cycle * kPerCycle + i), i + 1, now_ms());
      }
      const int64_t pending = plugin.pending();
      if (!online) BOOST_TEST(pending >= kPerCycle);  // offline: nothing leaves
      BOOST_TEST(plugin.stop() == WEP_OK);
    }
    BOOST_TEST_REQUIRE(dlopen(WEP_ANALYTICS_PATH, RTLD_NOW | RTLD_NOLOAD) == nullptr, "analytics mapped after " << cycle);
    BOOST_TEST_REQUIRE(dlopen(WEP_NDJSON_PATH, RTLD_NOW | RTLD_NOLOAD) == nullptr, "ndjson mapped after " << cycle);
  }
  {
    // The last life drains what the stops left queued.
    FakeHost host("analytics", config, dir / "data");
    LoadedPlugin plugin(WEP_ANALYTICS_PATH, host);
    plugin.connectivity(true);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (plugin.pending() != 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    BOOST_TEST(plugin.pending() == 0);
  }
  std::ifstream in(delivered);
  std::set<std::string> ids;
  int lines = 0;
  for (std::string line; std::getline(in, line); ++lines) {
    rapidjson::Document row;
    BOOST_TEST_REQUIRE(!row.Parse(line.c_str()).HasParseError());
    ids.insert(row["event_id"].GetString());
  }
  BOOST_TEST(lines == kCycles * kPerCycle);
  BOOST_TEST(ids.size() == static_cast<size_t>(kCycles * kPerCycle));
}
