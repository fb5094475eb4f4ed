// The ndjson transport, loaded for real through wep::PluginLibrary: durable
// lines in the Supabase row shape, idempotent re-sends, torn-line repair,
// bad configs, one instance per file, load/unload cycles.
#define BOOST_TEST_MODULE ndjson_transport
#include <rapidjson/document.h>

#include <boost/test/unit_test.hpp>
#include <fstream>
#include <sstream>

#include "transport_test_support.hpp"

using wep::test::LoadedTransport;
using wep::test::Rows;
using wep::test::TempDir;

namespace {

std::vector<std::string> read_lines(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string read_all(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Evaluates `expression` (e.g. a send) exactly once.
#define CHECK_VERDICT(expression, expected)                                                                       \
  do {                                                                                                            \
    const wep::test::Outcome outcome_ = (expression);                                                             \
    BOOST_CHECK_MESSAGE(outcome_.kind == (expected), "verdict " << wep::test::verdict_name(outcome_.kind) << " (" \
                                                                << outcome_.reason << "), expected "              \
                                                                << wep::test::verdict_name(expected));            \
  } while (false)

}  // namespace

BOOST_AUTO_TEST_CASE(appends_one_line_per_row_in_the_supabase_shape) {
  TempDir dir;
  {
    LoadedTransport transport(WEP_NDJSON_PATH, "{\"path\":\"out/events.ndjson\"}", dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    Rows rows;
    rows.add(1, "note_created", "{\"words\":3}").add(2, "note_deleted", "", "").add(3);
    const auto outcome = transport.send(rows);
    CHECK_VERDICT(outcome, WEP_VERDICT_DELIVERED);
    BOOST_CHECK_EQUAL(transport.stop(), WEP_OK);
  }
  const auto lines = read_lines(dir.path() / "out/events.ndjson");
  BOOST_REQUIRE_EQUAL(lines.size(), 3u);
  BOOST_CHECK_EQUAL(lines[0],
                    "{\"event_id\":\"" + wep::test::event_id_for(1) +
                        "\",\"event_type\":\"note_created\",\"properties\":{\"words\":3},\"user_id\":\"pseudo-user-1\","
                        "\"created_at\":\"2026-11-20T10:00:00.123Z\"}");
  rapidjson::Document second;
  second.Parse(lines[1].c_str());
  BOOST_REQUIRE(second.IsObject());
  BOOST_CHECK(second["properties"].IsNull());
  BOOST_CHECK(second["user_id"].IsNull());
  BOOST_CHECK_EQUAL(second.MemberCount(), 5u);
}

BOOST_AUTO_TEST_CASE(re_sends_do_not_duplicate_even_across_restarts) {
  TempDir dir;
  const auto file = dir.path() / "events.ndjson";
  Rows first;
  first.add_range(1, 3);
  {
    LoadedTransport transport(WEP_NDJSON_PATH, "{\"path\":\"events.ndjson\",\"fsync\":false}", dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    CHECK_VERDICT(transport.send(first), WEP_VERDICT_DELIVERED);
    CHECK_VERDICT(transport.send(first), WEP_VERDICT_DELIVERED);
  }
  BOOST_CHECK_EQUAL(read_lines(file).size(), 3u);
  {
    // A new process after a crash: the ids come back from the file.
    LoadedTransport transport(WEP_NDJSON_PATH, "{\"path\":\"events.ndjson\"}", dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    CHECK_VERDICT(transport.send(first), WEP_VERDICT_DELIVERED);
    Rows mixed;
    mixed.add(3).add(4).add(5).add(4);  // one old, two new, one repeated within the batch
    CHECK_VERDICT(transport.send(mixed), WEP_VERDICT_DELIVERED);
  }
  const auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 5u);
  BOOST_CHECK(lines[3].find(wep::test::event_id_for(4)) != std::string::npos);
  BOOST_CHECK(lines[4].find(wep::test::event_id_for(5)) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_torn_last_line_is_cut_off_and_its_rows_written_again) {
  TempDir dir;
  const auto file = dir.path() / "events.ndjson";
  Rows rows;
  rows.add_range(1, 2);
  {
    LoadedTransport transport(WEP_NDJSON_PATH, "{\"path\":\"events.ndjson\"}", dir.str());
    BOOST_REQUIRE_EQUAL(transport.start(), "");
    CHECK_VERDICT(transport.send(rows), WEP_VERDICT_DELIVERED);
  }
  const std::string whole = read_all(file);
  {
    std::ofstream torn(file, std::ios::app | std::ios::binary);
    torn << "{\"event_id\":\"" << wep::test::event_id_for(3) << "\",\"event_ty";  // a crash mid-write
  }
  LoadedTransport transport(WEP_NDJSON_PATH, "{\"path\":\"events.ndjson\"}", dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  BOOST_CHECK_EQUAL(read_all(file), whole);
  Rows again;
  again.add_range(1, 3);
  CHECK_VERDICT(transport.send(again), WEP_VERDICT_DELIVERED);
  const auto lines = read_lines(file);
  BOOST_REQUIRE_EQUAL(lines.size(), 3u);
  rapidjson::Document last;
  last.Parse(lines[2].c_str());
  BOOST_REQUIRE(last.IsObject());
  BOOST_CHECK_EQUAL(last["event_id"].GetString(), wep::test::event_id_for(3));
}

BOOST_AUTO_TEST_CASE(a_row_that_cannot_be_encoded_is_flagged_and_nothing_is_written) {
  TempDir dir;
  LoadedTransport transport(WEP_NDJSON_PATH, "{\"path\":\"events.ndjson\"}", dir.str());
  BOOST_REQUIRE_EQUAL(transport.start(), "");
  Rows rows;
  rows.add(1).add(2, "note_created", "[1,2]");
  const auto outcome = transport.send(rows);
  CHECK_VERDICT(outcome, WEP_VERDICT_REJECTED);
  BOOST_CHECK(outcome.rejected == std::vector<uint8_t>({0, 1}));
  BOOST_CHECK_EQUAL(read_all(dir.path() / "events.ndjson"), "");
}

BOOST_AUTO_TEST_CASE(a_second_instance_on_the_same_file_is_refused) {
  TempDir dir;
  LoadedTransport first(WEP_NDJSON_PATH, "{\"path\":\"events.ndjson\"}", dir.str());
  BOOST_REQUIRE_EQUAL(first.start(), "");
  LoadedTransport second(WEP_NDJSON_PATH, "{\"path\":\"" + (dir.path() / "events.ndjson").string() + "\"}", dir.str());
  const std::string error = second.start();
  BOOST_CHECK(error.find("'path'") != std::string::npos);
  BOOST_CHECK(error.find("in use") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(bad_configs_are_refused_naming_the_key) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "a_folder");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{}", "'path'"},
      {"{\"path\":\"\"}", "'path'"},
      {"{\"path\":7}", "'path'"},
      {"{\"path\":\"e.ndjson\",\"fsync\":\"yes\"}", "'fsync'"},
      {"{\"path\":\"e.ndjson\",\"url\":\"https://x\"}", "'url'"},
      {"{\"path\":\"a_folder\"}", "'path'"},
      {"not json", "not valid JSON"},
  };
  for (const auto& [config, expected] : cases) {
    LoadedTransport transport(WEP_NDJSON_PATH, config, dir.str());
    const std::string error = transport.start();
    BOOST_TEST_CONTEXT("config " << config) {
      BOOST_CHECK_MESSAGE(error.find(expected) != std::string::npos, "error '" << error << "' lacks " << expected);
      BOOST_CHECK(error.find("ndjson config") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(load_start_send_stop_unload_100_times) {
  TempDir dir;
  constexpr int kCycles = 100;
  for (int cycle = 0; cycle < kCycles; ++cycle) {
    {
      LoadedTransport transport(WEP_NDJSON_PATH, "{\"path\":\"events.ndjson\"}", dir.str());
      BOOST_REQUIRE_EQUAL(transport.start(), "");
      Rows rows;
      rows.add(cycle + 1);
      CHECK_VERDICT(transport.send(rows), WEP_VERDICT_DELIVERED);
    }
    BOOST_REQUIRE_MESSAGE(!wep::test::is_mapped(WEP_NDJSON_PATH), "still mapped after cycle " << cycle);
  }
  BOOST_CHECK_EQUAL(read_lines(dir.path() / "events.ndjson").size(), static_cast<size_t>(kCycles));
}
