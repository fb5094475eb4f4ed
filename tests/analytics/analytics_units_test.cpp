// Unit suites of the analytics plugin's internals (linked from analytics_core):
// config validation, the SQLite queue store and its migrations, the PII
// filter and event mapping, the hand-off buffer and the use cases.
#define BOOST_TEST_MODULE analytics_units
#include <boost/test/unit_test.hpp>
#include <fstream>
#include <thread>
#include <wep/sqlite/move_aside.hpp>

#include "config.hpp"
#include "enabled_setting.hpp"
#include "event_mapper.hpp"
#include "hand_off_buffer.hpp"
#include "queue_store.hpp"
#include "stats.hpp"
#include "test_support.hpp"
#include "use_cases.hpp"
#include "wal_copier.hpp"

using namespace wep::analytics;
using wep::test::Db;
using wep::test::is_spec_timestamp;
using wep::test::is_uuid_v5;
using wep::test::TempDir;

namespace {

// The rows the flusher would read first (the one row reader, from the start).
std::vector<QueuedRow> read_rows(QueueStore& store, size_t max_rows, size_t max_bytes) {
  std::vector<QueuedRow> rows;
  store.read_after(0, max_rows, max_bytes, rows);
  return rows;
}

std::string config_error(const std::string& json, const std::string& plugin_dir = "/plugins") {
  try {
    parse_config(json, "/data", plugin_dir);
  } catch (const wep::Error& e) {
    BOOST_TEST(e.status() == WEP_ERR_INVALID_ARGUMENT);
    return e.what();
  }
  return "(accepted)";
}

NewRow row(std::string event_type, std::string created_at, std::optional<std::string> properties = std::nullopt,
           std::optional<std::string> user_id = std::string("user-1")) {
  return NewRow{std::move(event_type), std::move(properties), std::move(user_id), std::move(created_at)};
}

}  // namespace

// ------------------------------------------------------------------ config

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(defaults_apply_to_an_empty_object) {
  const AnalyticsConfig c = parse_config("{}", "/data/plugins/analytics", "/opt/plugins");
  BOOST_TEST(c.database_path == "/data/plugins/analytics/analytics.db");
  BOOST_TEST(c.batch_size == 500u);
  BOOST_TEST(c.batch_max_bytes == 1048576u);
  BOOST_TEST(c.flush_interval_ms == 5000u);
  BOOST_TEST(c.max_queue_rows == 1000000);
  BOOST_TEST(c.retention_days == 30u);
  BOOST_TEST(c.buffer_capacity == 65536u);
  BOOST_TEST(c.max_database_bytes == 0);
  BOOST_TEST(c.maintenance_interval_ms == 60000u);
  BOOST_TEST(c.busy_timeout_ms == 5000u);
  BOOST_TEST(c.backoff.initial_ms == 1000u);
  BOOST_TEST(c.backoff.max_ms == 300000u);
  BOOST_TEST(c.events.empty());
  BOOST_TEST(c.transport.plugin_path.empty());
}

BOOST_AUTO_TEST_CASE(every_key_is_read) {
  const AnalyticsConfig c = parse_config(R"({
    "database": "queue/q.db", "batch_size": 7, "batch_max_bytes": 2048, "flush_interval_ms": 9,
    "max_queue_rows": 11, "max_database_bytes": 1000000, "retention_days": 3, "maintenance_interval_ms": 50,
    "buffer_capacity": 13, "busy_timeout_ms": 17, "backoff": {"initial_ms": 5, "max_ms": 6},
    "events": {"note.created": {"event_type": "note_created", "properties": ["kind", "length"]},
               "note.deleted": {"event_type": "note_deleted"}},
    "transport": {"plugin": "libwep_ndjson.so", "config": {"path": "x.ndjson", "fsync": false}, "stop_timeout_ms": 19}
  })",
                                         "/data", "/opt/plugins");
  BOOST_TEST(c.database_path == "/data/queue/q.db");
  BOOST_TEST(c.batch_size == 7u);
  BOOST_TEST(c.batch_max_bytes == 2048u);
  BOOST_TEST(c.flush_interval_ms == 9u);
  BOOST_TEST(c.max_queue_rows == 11);
  BOOST_TEST(c.max_database_bytes == 1000000);
  BOOST_TEST(c.retention_days == 3u);
  BOOST_TEST(c.maintenance_interval_ms == 50u);
  BOOST_TEST(c.buffer_capacity == 13u);
  BOOST_TEST(c.busy_timeout_ms == 17u);
  BOOST_TEST(c.backoff.initial_ms == 5u);
  BOOST_TEST(c.backoff.max_ms == 6u);
  BOOST_REQUIRE(c.events.size() == 2u);
  BOOST_TEST(c.events.at("note.created").event_type == "note_created");
  BOOST_TEST((c.events.at("note.created").properties == std::vector<std::string>{"kind", "length"}));
  BOOST_TEST(c.events.at("note.deleted").properties.empty());
  BOOST_TEST(c.transport.plugin_path == "/opt/plugins/libwep_ndjson.so");
  BOOST_TEST(c.transport.config_json == R"({"path":"x.ndjson","fsync":false})");
  BOOST_TEST(c.transport.stop_timeout_ms == 19u);
}

BOOST_AUTO_TEST_CASE(absolute_paths_are_kept) {
  const AnalyticsConfig c =
      parse_config(R"({"database": "/var/q.db", "transport": {"plugin": "/usr/lib/t.so"}})", "/data", "");
  BOOST_TEST(c.database_path == "/var/q.db");
  BOOST_TEST(c.transport.plugin_path == "/usr/lib/t.so");
  BOOST_TEST(c.transport.config_json == "{}");
}

BOOST_AUTO_TEST_CASE(bad_configs_are_refused_naming_the_key) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"batch_size": 0})", "analytics config: /batch_size: must be >= 1"},
      {R"({"batch_size": "10"})", "analytics config: /batch_size: expected an integer"},
      {R"({"batch_size": 1.5})", "analytics config: /batch_size: expected an integer"},
      {R"({"retention_days": 0})", "analytics config: /retention_days: must be >= 1"},
      {R"({"buffer_capacity": 99999999})", "analytics config: /buffer_capacity: must be <= 16777216"},
      {R"({"backoff": {"initial_ms": 0}})", "analytics config: /backoff/initial_ms: must be >= 1"},
      {R"({"backoff": {"initial_ms": 5000, "max_ms": 1000}})",
       "analytics config: /backoff/initial_ms: must be <= /backoff/max_ms"},
      {R"({"bogus": 1})", "analytics config: /bogus: unknown key"},
      {R"({"backoff": {"initial": 1}})", "analytics config: /backoff/initial: unknown key"},
      {R"({"events": {"note.created": {"properties": ["a"]}}})",
       "analytics config: /events/note.created/event_type: required key missing"},
      {R"({"events": {"note.created": {"event_type": ""}}})",
       "analytics config: /events/note.created/event_type: must not be empty"},
      {R"({"events": {"a/b": {"event_type": "x", "properties": [1]}}})",
       "analytics config: /events/a~1b/properties/0: expected a string"},
      {R"({"events": {"x": {"event_type": "x", "properties": ["a", "a"]}}})",
       "analytics config: /events/x/properties/1: duplicate item"},
      {R"({"events": {"x": {"event_type": "x", "extra": 1}}})", "analytics config: /events/x/extra: unknown key"},
      {R"({"transport": {}})", "analytics config: /transport/plugin: required key missing"},
      {R"({"transport": {"plugin": "x.so", "config": []}})", "analytics config: /transport/config: expected an object"},
      {R"([1])", "analytics config: /: expected an object"},
      {R"({)", "analytics config: /: not valid JSON"},
  };
  for (const auto& [json, expected] : cases) {
    const std::string message = config_error(json);
    BOOST_TEST_INFO("config " << json << " -> " << message);
    BOOST_TEST(message.rfind(expected, 0) == 0u);
  }
}

BOOST_AUTO_TEST_CASE(relative_transport_path_needs_a_plugin_folder) {
  BOOST_TEST(config_error(R"({"transport": {"plugin": "libwep_ndjson.so"}})", "")
                 .rfind("analytics config: /transport/plugin: must be an absolute path", 0) == 0u);
}

BOOST_AUTO_TEST_SUITE_END()

// --------------------------------------------------------- enabled setting

BOOST_AUTO_TEST_SUITE(enabled_setting)

BOOST_AUTO_TEST_CASE(only_the_json_literals_true_and_false_are_clear_values) {
  using wep::analytics::parse_enabled_setting;
  BOOST_TEST((parse_enabled_setting("true") == std::optional<bool>(true)));
  BOOST_TEST((parse_enabled_setting(" \tfalse\r\n") == std::optional<bool>(false)));
  for (const char* unclear : {"", "  ", "TRUE", "True", "1", "0", "\"true\"", "truex", "true false", "null", "{}"}) {
    BOOST_TEST(!parse_enabled_setting(unclear).has_value(), "'" << unclear << "'");
    BOOST_TEST(!wep::analytics::enabled_from_json(unclear), "'" << unclear << "' counts as false");
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------- queue store

BOOST_AUTO_TEST_SUITE(queue_store)

BOOST_AUTO_TEST_CASE(the_spec_table_is_created_exactly_as_written) {
  TempDir dir;
  { QueueStore store((dir / "q.db").string()); }
  Db db(dir / "q.db");
  // PRAGMA table_info: cid, name, type, notnull, dflt_value, pk
  std::vector<std::string> columns;
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db.handle(), "PRAGMA table_info(analytics_queue)", -1, &stmt, nullptr);
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    auto text = [&](int i) {
      const auto* t = sqlite3_column_text(stmt, i);
      return t ? std::string(reinterpret_cast<const char*>(t)) : std::string("NULL");
    };
    columns.push_back(text(1) + "|" + text(2) + "|" + text(3) + "|" + text(4) + "|" + text(5));
  }
  sqlite3_finalize(stmt);
  const std::vector<std::string> expected = {
      "id|INTEGER|0|NULL|1",
      "event_type|TEXT|1|NULL|0",
      "properties|TEXT|0|NULL|0",
      "user_id|TEXT|0|NULL|0",
      "created_at|TEXT|1|strftime('%Y-%m-%dT%H:%M:%f', 'now')|0",
  };
  BOOST_TEST(columns == expected, boost::test_tools::per_element());
  const std::string sql = db.scalar("SELECT sql FROM sqlite_master WHERE name = 'analytics_queue'");
  BOOST_TEST(sql.find("id INTEGER PRIMARY KEY AUTOINCREMENT") != std::string::npos);
  BOOST_TEST(db.integer("PRAGMA user_version") == QueueStore::latest_schema_version());
  BOOST_TEST(QueueStore::latest_schema_version() == 5);
  BOOST_TEST(db.scalar("PRAGMA journal_mode") == "wal");
  BOOST_TEST(db.integer("SELECT count(*) FROM sqlite_master WHERE name = 'analytics_dead_letter'") == 1);

  // The default of created_at is the spec's format.
  db.exec("INSERT INTO analytics_queue (event_type) VALUES ('x')");
  BOOST_TEST(is_spec_timestamp(db.scalar("SELECT created_at FROM analytics_queue")));
}

BOOST_AUTO_TEST_CASE(migrating_a_version_1_database_keeps_its_rows) {
  TempDir dir;
  const auto file = dir / "q.db";
  {
    Db db(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec(
        "CREATE TABLE analytics_queue (id INTEGER PRIMARY KEY AUTOINCREMENT, event_type TEXT NOT NULL, "
        "properties TEXT, user_id TEXT, created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now')));"
        "INSERT INTO analytics_queue (event_type, properties, user_id) VALUES ('a', '{\"k\":1}', 'u'), ('b', NULL, "
        "'u'), ('c', NULL, NULL);"
        "PRAGMA user_version = 1;");
  }
  QueueStore store(file.string());
  BOOST_TEST(store.schema_version() == 5);
  BOOST_TEST(store.count() == 3);  // the counter starts from the rows already queued
  const auto rows = read_rows(store, 10, 1 << 20);
  BOOST_REQUIRE(rows.size() == 3u);
  BOOST_TEST(rows[0].event_type == "a");
  BOOST_TEST(*rows[0].properties_json == R"({"k":1})");
  BOOST_TEST(!rows[2].user_id.has_value());
  BOOST_TEST(store.dead_letter_count() == 0);
}

BOOST_AUTO_TEST_CASE(a_newer_schema_is_refused_untouched) {
  TempDir dir;
  const auto file = dir / "q.db";
  { QueueStore store(file.string()); }
  { Db(file).exec("PRAGMA user_version = 99"); }
  try {
    QueueStore store(file.string());
    BOOST_FAIL("opened a database of a newer schema");
  } catch (const StoreError& e) {
    BOOST_TEST(std::string(e.what()).find("is newer than this build's 5") != std::string::npos);
    BOOST_TEST(!is_corruption(e));
  }
  BOOST_TEST(Db(file).integer("PRAGMA user_version") == 99);
}

BOOST_AUTO_TEST_CASE(insert_read_remove_dead_letter_keep_the_count_in_step) {
  TempDir dir;
  QueueStore store((dir / "q.db").string());
  std::vector<NewRow> rows;
  for (int i = 0; i < 10; ++i) {
    rows.push_back(row("e" + std::to_string(i), "2026-11-20T10:00:00.00" + std::to_string(i),
                       i % 2 ? std::optional<std::string>(R"({"i":)" + std::to_string(i) + "}") : std::nullopt));
  }
  store.insert(rows);
  BOOST_TEST(store.count() == 10);

  auto batch = read_rows(store, 4, 1 << 20);
  BOOST_REQUIRE(batch.size() == 4u);
  for (size_t i = 0; i < batch.size(); ++i) {
    BOOST_TEST(batch[i].id == static_cast<int64_t>(i + 1));
    BOOST_TEST(batch[i].event_type == "e" + std::to_string(i));
    BOOST_TEST(batch[i].created_at == "2026-11-20T10:00:00.00" + std::to_string(i));
    BOOST_TEST(batch[i].event_id == event_id_for("user-1", batch[i].id, batch[i].created_at));
    BOOST_TEST(is_uuid_v5(batch[i].event_id));
  }
  BOOST_TEST(!batch[0].properties_json.has_value());
  BOOST_TEST(*batch[1].properties_json == R"({"i":1})");

  const int64_t delivered[] = {1, 2};
  store.remove(delivered);
  BOOST_TEST(store.count() == 8);
  const int64_t refused[] = {3};
  store.dead_letter(refused, "400: bad event");
  BOOST_TEST(store.count() == 7);
  BOOST_TEST(store.dead_letter_count() == 1);
  BOOST_TEST(read_rows(store, 1, 1 << 20).at(0).id == 4);

  Db db(dir / "q.db");
  BOOST_TEST(db.scalar("SELECT event_type || '|' || ifnull(properties, 'NULL') || '|' || user_id || '|' || "
                       "created_at || '|' || reason FROM analytics_dead_letter WHERE id = 3") ==
             "e2|NULL|user-1|2026-11-20T10:00:00.002|400: bad event");
  BOOST_TEST(!db.scalar("SELECT failed_at FROM analytics_dead_letter").empty());
  BOOST_TEST(store.recount() == 7);  // the O(1) counter matches count(*)
}

BOOST_AUTO_TEST_CASE(a_wal_copy_lets_the_next_write_start_the_wal_over) {
  TempDir dir;
  const std::string file = (dir / "q.db").string();
  QueueStore store(file);
  store.set_automatic_checkpoints(false);
  std::vector<NewRow> rows;
  for (int i = 0; i < 2000; ++i)
    rows.push_back(row("e", "2026-11-20T10:00:00.000", R"({"i":)" + std::to_string(i) + "}"));
  wep::analytics::WalCopier copier(file, {});
  store.insert(rows);
  copier.committed();
  BOOST_TEST(copier.wait_until_copied(std::chrono::seconds(30)));
  const auto wal_after_first = std::filesystem::file_size(file + "-wal");
  store.insert(rows);  // the WAL was copied whole: this starts it over instead of growing it
  BOOST_TEST(std::filesystem::file_size(file + "-wal") == wal_after_first);
  BOOST_TEST(store.count() == 4000);
  copier.stop();
  BOOST_TEST(!copier.wait_until_copied(std::chrono::seconds(0)));  // a stopped copier copies nothing
}

BOOST_AUTO_TEST_CASE(a_wal_copier_that_cannot_open_the_file_says_so_at_once_and_creates_none) {
  TempDir dir;
  const std::filesystem::path file = dir / "deleted.db";  // e.g. deleted while the writer runs
  wep::analytics::WalCopier copier(file.string(), {});
  copier.committed();
  BOOST_TEST(!copier.wait_until_copied(std::chrono::seconds(30)));
  BOOST_TEST(!std::filesystem::exists(file));  // the writer makes the new file, not the copier
}

BOOST_AUTO_TEST_CASE(delivered_ids_are_deleted_as_runs_of_consecutive_ids) {
  const int64_t ids[] = {3, 4, 5, 9, 11, 12};
  const std::vector<IdRange> ranges = id_ranges(ids);
  BOOST_REQUIRE(ranges.size() == 3u);
  BOOST_TEST(ranges[0].first == 3);
  BOOST_TEST(ranges[0].last == 5);
  BOOST_TEST(ranges[1].first == 9);
  BOOST_TEST(ranges[1].size() == 1);
  BOOST_TEST(ranges[2].first == 11);
  BOOST_TEST(ranges[2].last == 12);

  TempDir dir;
  QueueStore store((dir / "q.db").string());
  store.insert(std::vector<NewRow>(14, row("e", "2026-11-20T10:00:00.000")));
  store.remove(ids);  // the ids between the runs (6-8, 10) stay
  std::vector<int64_t> left;
  for (const QueuedRow& r : read_rows(store, 100, 1 << 20)) left.push_back(r.id);
  const std::vector<int64_t> expected = {1, 2, 6, 7, 8, 10, 13, 14};
  BOOST_TEST(left == expected, boost::test_tools::per_element());
  BOOST_TEST(store.count() == 8);
  BOOST_TEST(store.recount() == 8);
}

BOOST_AUTO_TEST_CASE(held_rows_are_not_read_for_delivery_until_the_hold_is_released) {
  TempDir dir;
  QueueStore store((dir / "q.db").string());
  const std::vector<NewRow> before = {row("a", "2026-11-20T10:00:00.000"), row("b", "2026-11-20T10:00:00.001")};
  store.insert_capped(before, 0, Checkpoint{10, true});
  // A hold starts with the first row stored after the checkpoint that asks for it.
  const std::vector<NewRow> held = {row("c", "2026-11-20T10:00:00.002"), row("d", "2026-11-20T10:00:00.003")};
  store.insert_capped(held, 0, Checkpoint{20, true, /*holding=*/true});
  store.insert_capped(held, 0, Checkpoint{30, true, /*holding=*/true});  // the hold goes on
  BOOST_TEST(store.count() == 6);
  BOOST_TEST(read_rows(store, 100, 1 << 20).size() == 2u);
  const std::optional<Checkpoint> stored = store.checkpoint();
  BOOST_REQUIRE(stored.has_value());
  BOOST_TEST(stored->holding);
  BOOST_TEST(stored->hold_from_id == 3);
  BOOST_TEST(stored->last_sequence == 30);
  store.insert_capped({}, 0, Checkpoint{31, true});  // released
  BOOST_TEST(read_rows(store, 100, 1 << 20).size() == 6u);
  BOOST_TEST(!store.checkpoint()->holding);
}

BOOST_AUTO_TEST_CASE(discarding_held_rows_deletes_exactly_them_with_the_checkpoint) {
  TempDir dir;
  QueueStore store((dir / "q.db").string());
  const std::vector<NewRow> one = {row("a", "2026-11-20T10:00:00.000")};
  const std::vector<NewRow> three = {row("b", "2026-11-20T10:00:00.001"), row("c", "2026-11-20T10:00:00.002"),
                                     row("d", "2026-11-20T10:00:00.003")};
  store.insert_capped(one, 0, Checkpoint{1, true});
  int64_t discarded = 0;
  store.insert_capped({}, 0, Checkpoint{1, true}, /*discard_held=*/true, &discarded);  // nothing held
  BOOST_TEST(discarded == 0);
  store.insert_capped(three, 0, Checkpoint{4, true, true});
  // A change to false read after them: they go, in the transaction that stores
  // the checkpoint past it and the rows after it (held in turn).
  store.insert_capped(one, 0, Checkpoint{6, true, true}, /*discard_held=*/true, &discarded);
  BOOST_TEST(discarded == 3);
  BOOST_TEST(store.count() == 2);
  BOOST_TEST(store.recount() == 2);
  BOOST_TEST(read_rows(store, 100, 1 << 20).size() == 1u);  // the row from before the hold
  store.insert_capped({}, 0, Checkpoint{6, true});
  const std::vector<QueuedRow> rows = read_rows(store, 100, 1 << 20);
  BOOST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[1].id == 5);  // ids are never given twice
}

BOOST_AUTO_TEST_CASE(read_after_honours_the_byte_cap_but_always_returns_one_row) {
  TempDir dir;
  QueueStore store((dir / "q.db").string());
  const std::string big(500, 'x');
  std::vector<NewRow> rows;
  for (int i = 0; i < 5; ++i) rows.push_back(row("e", "2026-11-20T10:00:00.000", R"({"s":")" + big + "\"}"));
  store.insert(rows);
  BOOST_TEST(read_rows(store, 10, 100).size() == 1u);     // a single row larger than the cap
  BOOST_TEST(read_rows(store, 10, 1400).size() == 2u);    // ~550 bytes each, plus the wire overhead
  BOOST_TEST(read_rows(store, 3, 1 << 20).size() == 3u);  // the row cap
}

BOOST_AUTO_TEST_CASE(the_cap_drops_the_oldest_rows_in_the_same_transaction) {
  TempDir dir;
  QueueStore store((dir / "q.db").string());
  std::vector<NewRow> first = {row("a", "2026-11-20T10:00:00.001"), row("b", "2026-11-20T10:00:00.002"),
                               row("c", "2026-11-20T10:00:00.003")};
  BOOST_TEST(store.insert_capped(first, 5) == 0);
  std::vector<NewRow> second = {row("d", "2026-11-20T10:00:00.004"), row("e", "2026-11-20T10:00:00.005"),
                                row("f", "2026-11-20T10:00:00.006"), row("g", "2026-11-20T10:00:00.007")};
  BOOST_TEST(store.insert_capped(second, 5) == 2);
  BOOST_TEST(store.count() == 5);
  const auto left = read_rows(store, 10, 1 << 20);
  BOOST_REQUIRE(left.size() == 5u);
  BOOST_TEST(left.front().event_type == "c");
  BOOST_TEST(left.back().event_type == "g");
  BOOST_TEST(store.recount() == 5);
}

BOOST_AUTO_TEST_CASE(age_out_steps_cover_every_row_even_out_of_order) {
  TempDir dir;
  QueueStore store((dir / "q.db").string());
  std::vector<NewRow> rows;
  // Old and new rows interleaved (a clock that jumped): every old one goes.
  for (int i = 0; i < 20; ++i) {
    rows.push_back(row(i % 3 == 0 ? "old" : "new", i % 3 == 0 ? "2020-01-01T00:00:00.000" : "2026-11-20T10:00:00.000"));
  }
  store.insert(rows);
  int64_t after = 0;
  int64_t deleted = 0;
  int steps = 0;
  for (;;) {
    const AgeOutStep step = store.age_out_step("2026-01-01T00:00:00.000", after, 3);
    deleted += step.deleted;
    after = step.last_id;
    ++steps;
    if (step.finished) break;
  }
  BOOST_TEST(deleted == 7);  // i = 0, 3, ..., 18
  BOOST_TEST(steps >= 7);    // 20 rows, 3 per step
  BOOST_TEST(store.count() == 13);
  BOOST_TEST(store.recount() == 13);
  for (const auto& r : read_rows(store, 100, 1 << 20)) BOOST_TEST(r.event_type == "new");
}

BOOST_AUTO_TEST_CASE(event_ids_are_rfc4122_name_based_and_stable) {
  // Computed independently (Python: uuid.uuid5(namespace, name)).
  BOOST_TEST(event_id_for("user-1", 7, "2026-11-20T10:00:00.123") == "f3603e89-5960-55e9-bf87-5c6be9ddf012");
  BOOST_TEST(event_id_for("user-1", 7, "2026-11-20T10:00:00.123") ==
             event_id_for("user-1", 7, "2026-11-20T10:00:00.123"));
  BOOST_TEST(event_id_for("user-1", 8, "2026-11-20T10:00:00.123") !=
             event_id_for("user-1", 7, "2026-11-20T10:00:00.123"));
  BOOST_TEST(event_id_for("user-2", 7, "2026-11-20T10:00:00.123") !=
             event_id_for("user-1", 7, "2026-11-20T10:00:00.123"));
  BOOST_TEST(event_id_for("user-1", 7, "2026-11-20T10:00:00.124") !=
             event_id_for("user-1", 7, "2026-11-20T10:00:00.123"));
}

BOOST_AUTO_TEST_CASE(time_formats) {
  BOOST_TEST(created_at_from_ms(0) == "1970-01-01T00:00:00.000");
  BOOST_TEST(created_at_from_ms(1795168800123) == "2026-11-20T10:00:00.123");
  BOOST_TEST(iso8601_utc("2026-11-20T10:00:00.123") == "2026-11-20T10:00:00.123Z");
  BOOST_TEST(iso8601_utc("2026-11-20 10:00:00") == "2026-11-20T10:00:00.000Z");
}

BOOST_AUTO_TEST_CASE(a_held_write_lock_is_reported_as_busy) {
  TempDir dir;
  const std::string file = (dir / "q.db").string();
  QueueStore other_first(file);  // creates the schema
  wep::test::Db holder(file, SQLITE_OPEN_READWRITE);
  StoreOptions impatient;
  impatient.busy_timeout_ms = 0;
  QueueStore other(file, impatient);
  holder.exec("BEGIN IMMEDIATE");
  std::vector<NewRow> rows = {row("a", "2026-11-20T10:00:00.000")};
  try {
    other.insert(rows);
    BOOST_FAIL("insert succeeded while another connection held the write lock");
  } catch (const StoreError& e) {
    BOOST_TEST(is_busy(e));
  }
  holder.exec("COMMIT");
  other.insert(rows);  // and works once the lock is free
  BOOST_TEST(other.count() == 1);
}

BOOST_AUTO_TEST_CASE(a_size_cap_fails_inserts_like_a_full_disk) {
  TempDir dir;
  StoreOptions options;
  options.max_database_bytes = 64 * 1024;
  QueueStore store((dir / "q.db").string(), options);
  const std::string payload = R"({"s":")" + std::string(60, 'p') + "\"}";
  int64_t stored = 0;
  bool full = false;
  for (int batch = 0; batch < 200 && !full; ++batch) {
    std::vector<NewRow> rows(20, row("e", "2026-11-20T10:00:00.000", payload));
    try {
      store.insert(rows);
      stored += 20;
    } catch (const StoreError& e) {
      full = true;
      BOOST_TEST((e.code() & 0xff) == SQLITE_FULL);
      BOOST_TEST(std::string(e.what()).find("full") != std::string::npos);
    }
  }
  BOOST_TEST(full);
  BOOST_TEST(stored > 0);
  BOOST_TEST(store.count() == stored);  // the failed batch left nothing behind
}

BOOST_AUTO_TEST_CASE(a_damaged_file_is_recognised_and_moved_aside_whole) {
  TempDir dir;
  const auto file = dir / "q.db";
  const std::string garbage(8192, 'G');
  std::ofstream(file, std::ios::binary) << garbage;
  try {
    QueueStore store(file.string());
    BOOST_FAIL("opened a file that is not a database");
  } catch (const StoreError& e) {
    BOOST_TEST(is_corruption(e));
  }
  const std::string moved = wep::sqlite::move_aside_damaged_database(file.string());
  BOOST_TEST(moved.rfind(file.string() + ".corrupt-", 0) == 0u);
  std::ifstream in(moved, std::ios::binary);
  const std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  BOOST_TEST(kept == garbage);
  QueueStore fresh(file.string());
  BOOST_TEST(fresh.count() == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------- mapping and PII

BOOST_AUTO_TEST_SUITE(mapping)

BOOST_AUTO_TEST_CASE(pii_classification) {
  const std::vector<std::pair<std::string, PiiKind>> cases = {
      {"jane.doe@example.com", PiiKind::email},
      {"contact: J.Doe+news@mail.example.co.uk now", PiiKind::email},
      {"https://example.com/u/42", PiiKind::url},
      {"see ftp://files.example.org", PiiKind::url},
      {"www.example.com", PiiKind::url},
      {"192.168.1.20", PiiKind::ip_address},
      {"from 10.0.0.1.", PiiKind::ip_address},
      {"2001:db8::ff00:42:8329", PiiKind::ip_address},
      {"fe80::1", PiiKind::ip_address},
      {"::ffff:192.0.2.1", PiiKind::ip_address},
      {"+1 (555) 123-4567", PiiKind::phone},
      {"555-123-4567", PiiKind::phone},
      {"+4915112345678", PiiKind::phone},
      {"call 030 1234567", PiiKind::phone},
      {"4111111111111111", PiiKind::long_number},
      {"4111 1111 1111 1111 1", PiiKind::long_number},
      {"1234567", PiiKind::long_number},
      // Not personal data:
      {"text", PiiKind::none},
      {"note_created", PiiKind::none},
      {"v1.2.3", PiiKind::none},
      {"12:30", PiiKind::none},
      {"10:00:00", PiiKind::none},
      {"dead::beef", PiiKind::none},
      {"123456", PiiKind::none},
      {"a@b", PiiKind::none},
      {"@handle", PiiKind::none},
      {"", PiiKind::none},
  };
  for (const auto& [text, kind] : cases) {
    BOOST_TEST_INFO("value: \"" << text << "\"");
    BOOST_TEST(static_cast<int>(classify_pii(text)) == static_cast<int>(kind));
  }
}

BOOST_AUTO_TEST_CASE(only_listed_safe_values_are_kept) {
  const AnalyticsConfig config = parse_config(R"({"events": {
      "note.created": {"event_type": "note_created",
                       "properties": ["kind", "length", "ratio", "pinned", "title", "email", "phone", "ip", "ip6",
                                      "site", "card", "nested", "list", "nothing", "missing"]},
      "app.opened": {"event_type": "app_opened"}}})",
                                              "/data");
  Stats stats;
  EventMapper mapper(config, std::string("pseudo-1"), stats);
  NewRow out;
  const std::string payload = R"({"kind": "text", "length": 42, "ratio": -0.5, "pinned": false,
      "title": ")" + std::string(65, 't') +
                              R"(", "email": "a.b@example.com", "phone": "+1 555 123 4567",
      "ip": "10.1.2.3", "ip6": "2001:db8::1", "site": "http://example.com", "card": "4111111111111111",
      "nested": {"a": 1}, "list": [1], "nothing": null, "body": "unlisted free text"})";
  BOOST_REQUIRE(mapper.map("note.created", payload, 1795168800123, out));
  BOOST_TEST(out.event_type == "note_created");
  BOOST_TEST(*out.properties_json == R"({"kind":"text","length":42,"ratio":-0.5,"pinned":false})");
  BOOST_TEST(*out.user_id == "pseudo-1");
  BOOST_TEST(out.created_at == "2026-11-20T10:00:00.123");
  BOOST_TEST(stats.properties_dropped_long == 1);
  BOOST_TEST(stats.properties_dropped_pii == 6);
  BOOST_TEST(stats.pii_email == 1);
  BOOST_TEST(stats.pii_phone == 1);
  BOOST_TEST(stats.pii_ip == 2);
  BOOST_TEST(stats.pii_url == 1);
  BOOST_TEST(stats.pii_long_number == 1);
  BOOST_TEST(stats.properties_dropped_type == 3);  // object, array, null

  // A short string at the limit is kept; nothing kept means NULL properties.
  BOOST_REQUIRE(
      mapper.map("note.created", R"({"kind": ")" + std::string(kMaxPropertyStringBytes, 'k') + "\"}", 1000, out));
  BOOST_TEST(out.properties_json->size() == kMaxPropertyStringBytes + 11);  // {"kind":"..."}
  BOOST_REQUIRE(mapper.map("app.opened", R"({"kind": "x"})", 1001, out));
  BOOST_TEST(!out.properties_json.has_value());
  BOOST_TEST(out.created_at == "1970-01-01T00:00:01.001");
}

BOOST_AUTO_TEST_CASE(unmapped_types_and_bad_payloads_are_not_recorded) {
  const AnalyticsConfig config = parse_config(R"({"events": {"a": {"event_type": "a"}}})", "/data");
  Stats stats;
  EventMapper mapper(config, std::nullopt, stats);
  NewRow out;
  BOOST_TEST(!mapper.map("b", "{}", 0, out));
  BOOST_TEST(stats.dropped_unmapped == 1);
  BOOST_TEST(!mapper.map("a", "[1, 2]", 0, out));
  BOOST_TEST(!mapper.map("a", "{not json", 0, out));
  BOOST_TEST(stats.dropped_invalid == 2);
  BOOST_REQUIRE(mapper.map("a", "{}", -1, out));  // before 1970: still a valid time
  BOOST_TEST(!out.user_id.has_value());
  BOOST_TEST(out.created_at == "1969-12-31T23:59:59.999");
}

// A number beyond double's range that the parser takes as infinity (a
// fractional mantissa with a large exponent), which JSON cannot
// write: the property is dropped (counted as a type) and the stored
// properties stay valid JSON (found by fuzz_event_mapper).
BOOST_AUTO_TEST_CASE(a_number_out_of_doubles_range_is_dropped_and_the_properties_stay_json) {
  const AnalyticsConfig config =
      parse_config(R"({"events": {"a": {"event_type": "a", "properties": ["n", "m", "k"]}}})", "/data");
  Stats stats;
  EventMapper mapper(config, std::nullopt, stats);
  NewRow out;
  BOOST_REQUIRE(mapper.map("a", R"({"n": -92233720368547758.5e300, "k": 7})", 0, out));
  BOOST_REQUIRE(out.properties_json.has_value());
  BOOST_TEST(*out.properties_json == R"({"k":7})");
  BOOST_TEST(stats.properties_dropped_type == 1);
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------- hand-off and use cases

BOOST_AUTO_TEST_SUITE(hand_off)

BOOST_AUTO_TEST_CASE(the_buffer_is_bounded_by_events_and_bytes) {
  HandOffBuffer buffer(3, 1000);
  BOOST_TEST(buffer.try_push("a", "{\"n\":1}", 1));
  BOOST_TEST(buffer.try_push("b", "{\"n\":2}", 2));
  BOOST_TEST(buffer.try_push("c", "{\"n\":3}", 3));
  BOOST_TEST(!buffer.try_push("d", "{}", 4));
  HandOffBatch batch;
  BOOST_TEST(buffer.take(batch, std::chrono::steady_clock::now()) == 3u);
  BOOST_REQUIRE(batch.size() == 3u);
  BOOST_TEST(batch.type(batch[1]) == "b");
  BOOST_TEST(batch.payload(batch[2]) == "{\"n\":3}");
  BOOST_TEST(batch[2].committed_at_ms == 3);
  BOOST_TEST(buffer.try_push("e", "{}", 5));  // room again after the take

  HandOffBuffer small(100, 10);
  BOOST_TEST(small.try_push("ab", "cdef", 0));   // 6 bytes
  BOOST_TEST(!small.try_push("ab", "cdef", 0));  // 12 > 10
  BOOST_TEST(!small.try_push("x", std::string(20, 'y'), 0));
}

BOOST_AUTO_TEST_CASE(what_a_mapping_dropped_travels_with_its_event) {
  HandOffBuffer buffer(10, 1000);
  wep::analytics::MappingCounts counts;
  counts.pii_email = 2;
  counts.properties_dropped_long = 1;
  BOOST_TEST(buffer.try_push(HandOffBatch::Kind::mapped, "e", "{\"k\":1}", 1, 7, &counts));
  BOOST_TEST(buffer.try_push(HandOffBatch::Kind::mapped, "f", "{}", 2, 8, nullptr));
  const wep::analytics::MappingCounts nothing;
  BOOST_TEST(buffer.try_push(HandOffBatch::Kind::mapped, "g", "{}", 3, 9, &nothing));
  HandOffBatch batch;
  buffer.take(batch, std::chrono::steady_clock::now());
  BOOST_REQUIRE(batch.size() == 3u);
  BOOST_TEST(batch[0].has_counts);
  BOOST_TEST(batch.payload(batch[0]) == "{\"k\":1}");
  BOOST_TEST(batch.counts(batch[0]).pii_email == 2);
  BOOST_TEST(batch.counts(batch[0]).properties_dropped_long == 1);
  BOOST_TEST(batch.counts(batch[0]).pii() == 2);
  BOOST_TEST(!batch[1].has_counts);
  BOOST_TEST(!batch[2].has_counts);  // all zero: nothing stored
  BOOST_TEST(!batch.counts(batch[1]).any());
  BOOST_TEST(batch.type(batch[2]) == "g");
}

BOOST_AUTO_TEST_CASE(take_returns_at_the_deadline_and_at_stop) {
  HandOffBuffer buffer(10, 1000);
  HandOffBatch batch;
  bool stopped = true;
  buffer.take(batch, std::chrono::steady_clock::now() + std::chrono::milliseconds(1), &stopped);
  BOOST_TEST(batch.empty());
  BOOST_TEST(!stopped);
  buffer.try_push("a", "{}", 0);
  buffer.request_stop();
  BOOST_TEST(!buffer.try_push("b", "{}", 0));  // refused after stop
  buffer.take(batch, std::chrono::steady_clock::time_point::max(), &stopped);
  BOOST_TEST(stopped);
  BOOST_TEST(batch.size() == 1u);  // what was accepted before the stop is handed out
}

BOOST_AUTO_TEST_CASE(a_consumer_thread_sees_every_accepted_event_in_order) {
  HandOffBuffer buffer(1000, 1 << 20);
  constexpr int kEvents = 100000;
  std::vector<int64_t> seen;
  std::thread consumer([&] {
    HandOffBatch batch;
    for (;;) {
      bool stopped = false;
      buffer.take(batch, std::chrono::steady_clock::time_point::max(), &stopped);
      for (size_t i = 0; i < batch.size(); ++i) seen.push_back(batch[i].committed_at_ms);
      if (stopped && batch.empty()) return;
    }
  });
  int accepted = 0;
  for (int i = 0; i < kEvents; ++i) accepted += buffer.try_push("t", "{}", i) ? 1 : 0;
  buffer.request_stop();
  consumer.join();
  BOOST_TEST(static_cast<int>(seen.size()) == accepted);
  BOOST_TEST(buffer.accepted() == static_cast<uint64_t>(accepted));
  BOOST_TEST(std::is_sorted(seen.begin(), seen.end()));
  BOOST_TEST((std::adjacent_find(seen.begin(), seen.end()) == seen.end()));
}

BOOST_AUTO_TEST_CASE(enqueue_is_a_no_op_while_disabled_and_counts_every_outcome) {
  HandOffBuffer buffer(2, 1000);
  Stats stats;
  EnqueueAnalyticsEventUseCase enqueue(buffer, stats);
  using Outcome = EnqueueAnalyticsEventUseCase::Outcome;
  BOOST_TEST((enqueue.execute("a", "{}", 0) == Outcome::accepted));
  enqueue.set_enabled(false);
  BOOST_TEST((enqueue.execute("a", "{}", 0) == Outcome::disabled));
  BOOST_TEST(buffer.buffered() == 1u);  // nothing written while disabled
  enqueue.set_enabled(true);
  BOOST_TEST((enqueue.execute("a", "{}", 0) == Outcome::accepted));
  BOOST_TEST((enqueue.execute("a", "{}", 0) == Outcome::buffer_full));
  BOOST_TEST(stats.accepted == 2);
  BOOST_TEST(stats.dropped_disabled == 1);
  BOOST_TEST(stats.dropped_buffer_full == 1);
}

BOOST_AUTO_TEST_CASE(pending_count_waits_for_the_writer) {
  TempDir dir;
  const std::string file = (dir / "q.db").string();
  HandOffBuffer buffer(100, 1 << 20);
  WriterProgress progress;
  SharedQueueStore reader(file, {});
  PendingAnalyticsCountUseCase pending(buffer, progress, reader);
  for (int i = 0; i < 5; ++i) buffer.try_push("e", "{}", i);

  // A stand-in writer: stores what it takes, then publishes progress.
  std::thread writer([&] {
    QueueStore store(file);
    HandOffBatch batch;
    const uint64_t ticket = buffer.take(batch, std::chrono::steady_clock::time_point::max());
    std::vector<NewRow> rows(batch.size(), row("e", "2026-11-20T10:00:00.000"));
    store.insert(rows);
    progress.advance(ticket);
  });
  BOOST_TEST(pending.execute() == 5);  // never 0: it waited for the insert
  writer.join();
  progress.close();
  BOOST_TEST(progress.wait_for(1000) == false);  // closed: no waiting forever
}

BOOST_AUTO_TEST_CASE(flush_use_case_applies_outcomes) {
  TempDir dir;
  QueueStore store((dir / "q.db").string());
  std::vector<NewRow> rows(5, row("e", "2026-11-20T10:00:00.000"));
  store.insert(rows);
  Stats stats;
  FlushAnalyticsQueueUseCase flush(store, stats, 3, 1 << 20);
  auto batch = flush.next_batch();
  BOOST_REQUIRE(batch.size() == 3u);
  const int64_t ok[] = {batch[0].id, batch[1].id};
  flush.mark_delivered(ok);
  const int64_t bad[] = {batch[2].id};
  flush.dead_letter(bad, "rejected");
  BOOST_TEST(flush.pending() == 2);
  BOOST_TEST(stats.delivered == 2);
  BOOST_TEST(stats.dead_lettered == 1);
  BOOST_TEST(flush.next_batch().front().id == 4);
}

BOOST_AUTO_TEST_SUITE_END()
