// The queue database file under what a user or a disk can do to it while the
// host runs, with the real plugin in the host stub (real SQLite files, the
// ndjson transport):
//   - the file deleted: noticed at the next maintenance tick, reported in
//     log and stats, a fresh queue created; later mutations are stored and
//     delivered;
//   - the file replaced by another queue: the plugin goes on in that file;
//   - a file with damaged pages: the readable rows are salvaged into the
//     fresh queue (with their ids) before the file is set aside.
#define BOOST_TEST_MODULE analytics_queue_file_safety
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <wep/host_stub/host.hpp>
#include <map>
#include <set>
#include <thread>

#include "test_support.hpp"

using wep::test::Db;
using wep::test::stat;
using wep::test::stat_text;
using wep::test::TempDir;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kEvents =
    R"("events": {"note.created": {"event_type": "note_created", "properties": ["kind", "n"]}})";

wep::host_stub::HostOptions options(const fs::path& data_dir, const std::string& extra_config = "") {
  wep::host_stub::HostOptions o;
  o.data_dir = data_dir;
  o.plugins.push_back({WEP_ANALYTICS_PATH, "{" + std::string(kEvents) + extra_config + "}"});
  return o;
}

// Quick maintenance ticks and the ndjson transport writing to `ndjson`.
std::string delivering_config(const fs::path& ndjson) {
  return R"(, "flush_interval_ms": 10, "maintenance_interval_ms": 50, "transport": {"plugin": ")" +
         std::string(WEP_NDJSON_PATH) + R"(", "config": {"path": ")" + ndjson.string() + R"(", "fsync": false}})";
}

fs::path queue_file(const fs::path& data_dir) { return data_dir / "plugins/analytics/analytics.db"; }

std::string payload_n(int n) { return R"({"kind": "text", "n": )" + std::to_string(n) + "}"; }

int64_t analytics_stat(wep::host_stub::Host& host, const char* name) {
  return stat(host.stats_json(), (std::string("/plugins/analytics/") + name).c_str());
}

// Waits (bounded) until the analytics counter `name` reaches `value`.
bool wait_for_stat(wep::host_stub::Host& host, const char* name, int64_t value) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (analytics_stat(host, name) < value) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);  // stats have no change notification: poll
  }
  return true;
}

// The "n" of each delivered line, in file order.
std::vector<int> delivered_ns(const fs::path& ndjson) {
  std::vector<int> ns;
  std::ifstream in(ndjson);
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("\"n\":");
    if (at != std::string::npos) ns.push_back(std::stoi(line.substr(at + 4)));
  }
  return ns;
}

std::vector<int> ns_of(const std::vector<wep::test::Row>& rows) {
  std::vector<int> ns;
  for (const auto& row : rows) {
    const auto at = row.properties ? row.properties->find("\"n\":") : std::string::npos;
    ns.push_back(at == std::string::npos ? -1 : std::stoi(row.properties->substr(at + 4)));
  }
  return ns;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_deleted_queue_file_is_noticed_recreated_and_later_rows_are_delivered) {
  TempDir dir;
  const fs::path data = dir / "host";
  const fs::path ndjson = dir / "delivered.ndjson";
  wep::host_stub::Host host(options(data, delivering_config(ndjson)));
  for (int n = 1; n <= 3; ++n) host.mutate("note.created", payload_n(n));
  BOOST_TEST(host.pending().value_or(-1) == 3);

  BOOST_REQUIRE(fs::remove(queue_file(data)));  // what `rm analytics.db` does
  BOOST_REQUIRE(wait_for_stat(host, "queue_file_replaced", 1));
  const std::string stats = host.stats_json();
  BOOST_TEST(stat_text(stats, "/plugins/analytics/last_error").find("was deleted") != std::string::npos, stats);
  BOOST_TEST(fs::exists(queue_file(data)));

  for (int n = 4; n <= 8; ++n) host.mutate("note.created", payload_n(n));
  BOOST_TEST(host.pending().value_or(-1) == 5);  // the deleted rows are gone, the new ones counted
  BOOST_TEST((ns_of(Db(queue_file(data)).rows()) == std::vector<int>{4, 5, 6, 7, 8}));
  host.set_online(true);
  BOOST_TEST(host.wait_delivered(20s).value_or(-1) == 0);
  BOOST_TEST((delivered_ns(ndjson) == std::vector<int>{4, 5, 6, 7, 8}));
  BOOST_TEST(analytics_stat(host, "queue_file_replaced") == 1);
}

BOOST_AUTO_TEST_CASE(a_queue_file_replaced_by_another_queue_is_used_as_found) {
  TempDir dir;
  const fs::path other = dir / "other";
  {
    wep::host_stub::Host host(options(other));
    host.mutate("note.created", payload_n(100));
    host.mutate("note.created", payload_n(101));
  }
  const fs::path data = dir / "host";
  wep::host_stub::Host host(options(data, R"(, "maintenance_interval_ms": 50)"));
  for (int n = 1; n <= 3; ++n) host.mutate("note.created", payload_n(n));
  BOOST_TEST(host.pending().value_or(-1) == 3);

  fs::rename(queue_file(other), queue_file(data));  // an atomic replace: another inode at the path
  BOOST_REQUIRE(wait_for_stat(host, "queue_file_replaced", 1));
  BOOST_TEST(stat_text(host.stats_json(), "/plugins/analytics/last_error").find("replaced") != std::string::npos);

  host.mutate("note.created", payload_n(4));
  host.mutate("note.created", payload_n(5));
  BOOST_TEST(host.pending().value_or(-1) == 4);
  BOOST_TEST((ns_of(Db(queue_file(data)).rows()) == std::vector<int>{100, 101, 4, 5}));
}

BOOST_AUTO_TEST_CASE(the_readable_rows_of_a_damaged_file_are_salvaged_into_the_fresh_queue) {
  TempDir dir;
  const fs::path data = dir / "host";
  constexpr int kRows = 3000;
  {
    wep::host_stub::Host host(options(data));
    for (int n = 0; n < kRows; ++n) host.mutate("note.created", payload_n(n));
  }
  const fs::path file = queue_file(data);
  std::vector<wep::test::Row> before = Db(file).rows();
  BOOST_REQUIRE(before.size() == static_cast<size_t>(kRows));
  const auto size = fs::file_size(file);
  BOOST_REQUIRE(size > 40 * 4096);
  {
    // Overwrite ten pages in the middle of the table with garbage.
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(20 * 4096);
    const std::string junk(10 * 4096, '\x5a');
    io.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }

  wep::host_stub::Host host(options(data));
  const std::string stats = host.stats_json();
  BOOST_TEST(stat(stats, "/plugins/analytics/corrupt_recoveries") == 1);
  const int64_t salvaged = stat(stats, "/plugins/analytics/salvaged_rows");
  BOOST_TEST(salvaged >= kRows * 8 / 10);  // ten damaged pages hold a few hundred rows at most
  BOOST_TEST(salvaged < kRows);
  const std::string last_error = stat_text(stats, "/plugins/analytics/last_error");
  BOOST_TEST(last_error.find(std::to_string(salvaged) + " readable rows were salvaged") != std::string::npos,
             last_error);

  host.mutate("note.created", payload_n(kRows));
  BOOST_TEST(host.pending().value_or(-1) == salvaged + 1);
  // Salvaged rows keep their ids and contents; the new row comes after them.
  std::map<int64_t, wep::test::Row> original;
  for (auto& row : before) original[row.id] = row;
  const std::vector<wep::test::Row> after = Db(file).rows();
  BOOST_REQUIRE(after.size() == static_cast<size_t>(salvaged + 1));
  for (size_t i = 0; i + 1 < after.size(); ++i) {
    const auto found = original.find(after[i].id);
    BOOST_REQUIRE(found != original.end());
    BOOST_TEST((after[i].properties == found->second.properties));
    BOOST_TEST(after[i].created_at == found->second.created_at);
  }
  BOOST_TEST(after.back().id > before.back().id);
  BOOST_TEST(ns_of({after.back()}).front() == kRows);

  // The damaged file is kept byte for byte.
  int moved = 0;
  for (const auto& entry : fs::directory_iterator(file.parent_path())) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("analytics.db.corrupt-", 0) == 0 && !name.ends_with("-shm") && !name.ends_with("-wal")) {
      ++moved;
      BOOST_TEST(fs::file_size(entry.path()) == size);
    }
  }
  BOOST_TEST(moved == 1);
}
