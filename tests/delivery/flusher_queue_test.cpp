// FlusherQueue, the flusher's queue thread, against a real SQLite queue file:
// oldest first, read-ahead after the rows in flight, restart, asynchronous
// deletes, dead letters, the byte cap, buffer reuse, and errors.
#define BOOST_TEST_MODULE delivery_flusher_queue
#include "flusher_queue.hpp"

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "delivery_support.hpp"
#include "queue_store.hpp"
#include "stats.hpp"

using wep::analytics::FlusherQueue;
using wep::analytics::NewRow;
using wep::analytics::QueuedRow;
using wep::analytics::QueueStore;
using wep::analytics::Stats;
using wep::analytics::StoreError;
using wep::test::TempDir;

namespace {

const std::string kCreatedAt = "2026-11-20T10:00:00.123";

struct Fixture {
  TempDir dir;
  std::string path = (dir.path() / "analytics.db").string();
  QueueStore store{path};  // the test's own connection (the writer's role)
  Stats stats;

  // Inserts rows n = first .. first+count-1 with properties {"n":n}.
  void insert(int first, int count, const std::string& blob = "") {
    std::vector<NewRow> rows;
    for (int n = first; n < first + count; ++n) {
      std::string properties = "{\"n\":" + std::to_string(n);
      if (!blob.empty()) properties += ",\"blob\":\"" + blob + "\"";
      rows.push_back({"note_created", properties + "}", std::string("user-1"), kCreatedAt});
    }
    store.insert(rows);
  }
};

std::vector<int64_t> ids_of(const std::vector<QueuedRow>& rows) {
  std::vector<int64_t> ids;
  for (const auto& row : rows) ids.push_back(row.id);
  return ids;
}

std::vector<int64_t> range(int64_t first, int64_t last) {
  std::vector<int64_t> ids;
  for (int64_t id = first; id <= last; ++id) ids.push_back(id);
  return ids;
}

}  // namespace

BOOST_FIXTURE_TEST_CASE(batches_go_oldest_first_and_read_ahead_continues_after_the_rows_in_flight, Fixture) {
  insert(1, 25);
  FlusherQueue queue(path, {}, stats, 10, 1 << 20);
  BOOST_TEST(ids_of(queue.next_batch()) == range(1, 10), boost::test_tools::per_element());
  // Not yet delivered, still queued: the next batch starts after them.
  BOOST_TEST(ids_of(queue.next_batch()) == range(11, 20), boost::test_tools::per_element());
  BOOST_TEST(ids_of(queue.next_batch()) == range(21, 25), boost::test_tools::per_element());
  BOOST_TEST(queue.next_batch().empty());
  BOOST_TEST(store.count() == 25);
}

BOOST_FIXTURE_TEST_CASE(rows_carry_every_column_and_their_stable_event_id, Fixture) {
  store.insert(std::vector<NewRow>{{"a", std::nullopt, std::nullopt, kCreatedAt},
                                   {"b", std::string(R"({"k":1})"), std::string("user-2"), kCreatedAt}});
  FlusherQueue queue(path, {}, stats, 10, 1 << 20);
  const auto rows = queue.next_batch();
  BOOST_TEST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[0].event_type == "a");
  BOOST_TEST(!rows[0].properties_json.has_value());
  BOOST_TEST(!rows[0].user_id.has_value());
  BOOST_TEST(rows[0].event_id == wep::analytics::event_id_for("", rows[0].id, kCreatedAt));
  BOOST_TEST(rows[1].event_type == "b");
  BOOST_TEST(rows[1].properties_json.value_or("") == R"({"k":1})");
  BOOST_TEST(rows[1].user_id.value_or("") == "user-2");
  BOOST_TEST(rows[1].created_at == kCreatedAt);
  BOOST_TEST(rows[1].event_id == wep::analytics::event_id_for("user-2", rows[1].id, kCreatedAt));
  BOOST_TEST(rows[0].event_id != rows[1].event_id);
}

BOOST_FIXTURE_TEST_CASE(restart_goes_back_to_the_oldest_unsettled_row, Fixture) {
  insert(1, 20);
  FlusherQueue queue(path, {}, stats, 10, 1 << 20);
  auto first = queue.next_batch();
  queue.mark_delivered(wep::analytics::id_ranges(ids_of(first)));
  auto second = queue.next_batch();  // its send fails: not settled
  BOOST_TEST(ids_of(second) == range(11, 20), boost::test_tools::per_element());
  queue.restart();
  BOOST_TEST(ids_of(queue.next_batch()) == range(11, 20), boost::test_tools::per_element());
  queue.sync();
  BOOST_TEST(store.count() == 10);
  BOOST_TEST(stats.delivered.load() == 10);
}

BOOST_FIXTURE_TEST_CASE(delivered_rows_are_deleted_and_new_rows_follow, Fixture) {
  insert(1, 10);
  FlusherQueue queue(path, {}, stats, 10, 1 << 20);
  queue.mark_delivered(wep::analytics::id_ranges(ids_of(queue.next_batch())));
  insert(11, 5);    // stored while the first batch was in flight
  queue.restart();  // the drain ended with a short batch
  BOOST_TEST(ids_of(queue.next_batch()) == range(11, 15), boost::test_tools::per_element());
  queue.sync();
  BOOST_TEST(store.count() == 5);
  BOOST_TEST(stats.delivered.load() == 10);
}

BOOST_FIXTURE_TEST_CASE(dead_letters_leave_the_queue_with_their_reason, Fixture) {
  insert(1, 5);
  FlusherQueue queue(path, {}, stats, 10, 1 << 20);
  const auto rows = queue.next_batch();
  queue.dead_letter({rows[2].id}, "rejected (HTTP 400): bad row");
  BOOST_TEST(store.count() == 4);
  BOOST_TEST(store.dead_letter_count() == 1);
  BOOST_TEST(stats.dead_lettered.load() == 1);
  const auto dead = wep::test::dead_letters(path);
  BOOST_TEST_REQUIRE(dead.size() == 1u);
  BOOST_TEST(dead[0].reason == "rejected (HTTP 400): bad row");
  BOOST_TEST(dead[0].properties == R"({"n":3})");
}

BOOST_FIXTURE_TEST_CASE(the_byte_cap_limits_a_batch_but_a_large_first_row_still_goes, Fixture) {
  insert(1, 30, std::string(100, 'x'));  // ~290 bytes per row in a request body
  FlusherQueue queue(path, {}, stats, 100, 1024);
  const auto batch = queue.next_batch();
  size_t bytes = 0;
  for (const auto& row : batch) bytes += wep::analytics::queued_row_bytes(row);
  BOOST_TEST(batch.size() >= 2u);
  BOOST_TEST(bytes <= 1024u);                                              // within the cap
  BOOST_TEST(bytes + wep::analytics::queued_row_bytes(batch.front()) > 1024u);  // and as full as it can be (equal rows)

  Fixture big;
  big.insert(1, 2, std::string(2000, 'y'));
  FlusherQueue big_queue(big.path, {}, big.stats, 100, 1024);
  BOOST_TEST(big_queue.next_batch().size() == 1u);
}

BOOST_FIXTURE_TEST_CASE(recycled_batches_are_refilled_correctly, Fixture) {
  // Alternate null and non-null columns so reused buffers must be reset.
  std::vector<NewRow> rows;
  for (int n = 1; n <= 40; ++n) {
    if (n % 2) {
      rows.push_back({"odd", std::string("{\"n\":" + std::to_string(n) + "}"), std::string("u"), kCreatedAt});
    } else {
      rows.push_back({"even_and_longer_type", std::nullopt, std::nullopt, kCreatedAt});
    }
  }
  store.insert(rows);
  FlusherQueue queue(path, {}, stats, 7, 1 << 20);
  int64_t expected_id = 1;
  for (auto batch = queue.next_batch(); !batch.empty(); batch = queue.next_batch()) {
    for (const QueuedRow& row : batch) {
      BOOST_TEST(row.id == expected_id);
      if (row.id % 2) {
        BOOST_TEST(row.event_type == "odd");
        BOOST_TEST(row.properties_json.value_or("") == "{\"n\":" + std::to_string(row.id) + "}");
        BOOST_TEST(row.user_id.value_or("") == "u");
      } else {
        BOOST_TEST(row.event_type == "even_and_longer_type");
        BOOST_TEST(!row.properties_json.has_value());
        BOOST_TEST(!row.user_id.has_value());
      }
      ++expected_id;
    }
    queue.recycle(std::move(batch));
  }
  BOOST_TEST(expected_id == 41);
}

BOOST_AUTO_TEST_CASE(an_unusable_database_surfaces_as_a_store_error) {
  TempDir dir;
  Stats stats;
  FlusherQueue queue((dir.path() / "missing-folder" / "analytics.db").string(), {}, stats, 10, 1 << 20);
  BOOST_CHECK_THROW(queue.next_batch(), StoreError);
}
