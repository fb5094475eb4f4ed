// schemas/analytics_events.postgres.sql on a real PostgreSQL: a throwaway
// cluster with Supabase's roles (anon, authenticated, service_role,
// authenticator, and Supabase's default grants), the schema file applied
// twice, and the statement PostgREST 12 runs for the supabase transport's
// request (POST ?on_conflict=event_id, Prefer: return=minimal,
// resolution=ignore-duplicates), as authenticator switched to anon under
// row-level security, with bodies made by the transport's own encoder
// (wep::transport::RowEncoder).
#define BOOST_TEST_MODULE postgres_schema
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>
#include <wep/plugin.hpp>
#include <wep/support/transport_json.hpp>

#include "postgres_cluster.hpp"

using wep::test::Cluster;
using wep::test::ProgramResult;
using wep::test::sqlstate_of;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Supabase's roles and the default privileges a new public table gets there.
constexpr const char* kSupabaseRoles = R"sql(
create role anon nologin noinherit;
create role authenticated nologin noinherit;
create role service_role nologin noinherit bypassrls;
create role authenticator noinherit login;
grant anon, authenticated, service_role to authenticator;
)sql";

constexpr const char* kSupabaseDatabaseSetup = R"sql(
create schema extensions;
grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
)sql";

// The table as the earlier version of the schema file made it (inline
// checks, no bounds, sequence left to Supabase's default grants).
constexpr const char* kEarlierTable = R"sql(
create table public.analytics_events (
  id          bigint generated always as identity primary key,
  event_id    uuid        not null unique,
  event_type  text        not null check (length(event_type) between 1 and 200),
  properties  jsonb       check (properties is null or jsonb_typeof(properties) = 'object'),
  user_id     text        check (user_id is null or length(user_id) <= 200),
  created_at  timestamptz not null,
  received_at timestamptz not null default now()
);
alter table public.analytics_events enable row level security;
create policy analytics_events_anon_insert on public.analytics_events for insert to anon with check (true);
create policy analytics_events_anon_conflict_check on public.analytics_events for select to anon
  using (received_at = now());
revoke all on table public.analytics_events from anon, authenticated;
grant insert (event_id, event_type, properties, user_id, created_at) on table public.analytics_events to anon;
grant select (event_id) on table public.analytics_events to anon;
)sql";

std::string sql_literal(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("''") : std::string(1, c);
  return quoted + "'";
}

// What PostgREST 12 runs for the transport's request: one READ COMMITTED
// transaction, the transaction-local settings, then the prepared insert with
// the body as its one json parameter (the column list is the body's keys).
std::string postgrest_insert(const std::string& body) {
  return "begin isolation level read committed read write;\n"
         "select set_config('search_path', '\"public\", \"extensions\"', true), "
         "set_config('statement_timeout', '3s', true), set_config('role', 'anon', true), "
         "set_config('request.jwt.claims', '{\"role\":\"anon\"}', true), set_config('request.method', 'POST', true), "
         "set_config('request.path', '/analytics_events', true) \\gset\n"
         "prepare pgrst_insert(json) as "
         "WITH pgrst_source AS (INSERT INTO \"public\".\"analytics_events\"(\"created_at\", \"event_id\", "
         "\"event_type\", \"properties\", \"user_id\") SELECT \"pgrst_body\".\"created_at\", "
         "\"pgrst_body\".\"event_id\", "
         "\"pgrst_body\".\"event_type\", \"pgrst_body\".\"properties\", \"pgrst_body\".\"user_id\" FROM (SELECT $1 AS "
         "json_data) pgrst_payload, LATERAL (SELECT \"created_at\", \"event_id\", \"event_type\", \"properties\", "
         "\"user_id\" FROM json_to_recordset(pgrst_payload.json_data) AS _(\"created_at\" timestamp with time zone, "
         "\"event_id\" uuid, \"event_type\" text, \"properties\" jsonb, \"user_id\" text) ) pgrst_body "
         "ON CONFLICT(\"event_id\") DO NOTHING RETURNING 1) "
         "SELECT '' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, array[]::text[] AS header, "
         "''::text AS body, nullif(current_setting('response.headers', true), '') AS response_headers, "
         "nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted "
         "FROM (SELECT * FROM pgrst_source) _postgrest_t;\n"
         "execute pgrst_insert(" +
         sql_literal(body) +
         ") \\gset\n"
         "\\echo page_total=:page_total\n"
         "commit;\n";
}

// A statement as anon, the way PostgREST switches roles.
std::string as_anon(const std::string& statement) {
  return "begin;\nselect set_config('role', 'anon', true) \\gset\n" + statement + "\nrollback;\n";
}

struct Row {
  std::string event_id, event_type, properties_json, user_id, created_at;
};

std::string event_id(int n) {
  char text[40];
  std::snprintf(text, sizeof text, "6f1c3a0e-1d2b-4c5d-8e9f-%012d", n);
  return text;
}

Row good_row(int n) {
  return {event_id(n), "note.created", R"({"chars":5})", "user-" + std::to_string(n % 3), "2026-11-20T10:00:00.123Z"};
}

// A request body made by the transport's encoder; every row must encode.
std::string encoded_body(const std::vector<Row>& rows) {
  wep::transport::RowEncoder encoder;
  std::string body = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    wep_row row{};
    row.queue_id = static_cast<int64_t>(i + 1);
    row.event_id = wep::str(r.event_id);
    row.event_type = wep::str(r.event_type);
    row.properties_json = wep::str(r.properties_json);
    row.user_id = wep::str(r.user_id);
    row.created_at = wep::str(r.created_at);
    if (i > 0) body += ',';
    std::string why;
    if (!encoder.append(row, body, why)) throw std::runtime_error("the encoder refused a row: " + why);
  }
  return body + "]";
}

std::vector<Row> rows_from(int first, int last) {
  std::vector<Row> rows;
  for (int n = first; n <= last; ++n) rows.push_back(good_row(n));
  return rows;
}

// The cluster and the database every case uses, set up once.
struct Server {
  Server() : cluster(WEP_POSTGRES_BIN_DIR) {
    require_ok(cluster.psql("postgres", "postgres", kSupabaseRoles), "creating Supabase's roles");
  }

  static void require_ok(const ProgramResult& result, const std::string& what) {
    if (result.exit_code != 0) throw std::runtime_error(what + " failed:\n" + result.output);
  }

  // A fresh database with Supabase's setup; `before_schema` runs first (e.g.
  // an earlier table), then the schema file, twice.
  std::string database(const std::string& name, const std::string& before_schema = "") {
    require_ok(cluster.psql("postgres", "postgres", "create database " + name + ";"), "create database " + name);
    require_ok(cluster.psql("postgres", name, kSupabaseDatabaseSetup), "Supabase's setup");
    if (!before_schema.empty()) require_ok(cluster.psql("postgres", name, before_schema), "the earlier table");
    const std::string schema = read_file(WEP_EVENTS_SCHEMA_FILE);
    require_ok(cluster.psql("postgres", name, schema), "applying the schema");
    require_ok(cluster.psql("postgres", name, schema), "applying the schema again");
    return name;
  }

  // The page_total of PostgREST's insert as authenticator/anon, or -1 (the
  // output in `output`) when it fails.
  int insert(const std::string& db, const std::string& body, std::string* output = nullptr) {
    const ProgramResult result = cluster.psql("authenticator", db, postgrest_insert(body));
    if (output) *output = result.output;
    static const std::regex total("page_total=([0-9]+)");
    std::smatch match;
    if (result.exit_code != 0 || !std::regex_search(result.output, match, total)) return -1;
    return std::stoi(match[1].str());
  }

  long count_rows(const std::string& db) {
    const ProgramResult result =
        cluster.psql("postgres", db, "\\pset tuples_only on\nselect 'rows=' || count(*) from analytics_events;");
    static const std::regex rows("rows=([0-9]+)");
    std::smatch match;
    if (result.exit_code != 0 || !std::regex_search(result.output, match, rows)) return -1;
    return std::stol(match[1].str());
  }

  Cluster cluster;
};

Server& server() {
  static Server instance;
  return instance;
}

}  // namespace

BOOST_AUTO_TEST_CASE(encoder_bodies_first_insert_resend_and_half_overlap) {
  const std::string db = server().database("delivery");
  BOOST_TEST(server().insert(db, encoded_body(rows_from(0, 9))) == (10));
  BOOST_TEST(server().insert(db, encoded_body(rows_from(0, 9))) == (0));   // re-send: all duplicates
  BOOST_TEST(server().insert(db, encoded_body(rows_from(5, 14))) == (5));  // half overlap
  BOOST_TEST(server().count_rows(db) == 15);
}

BOOST_AUTO_TEST_CASE(hostile_rows_are_refused_with_their_sqlstate) {
  const std::string db = server().database("hostile");
  auto body = [](const std::string& event_type, const std::string& properties, const std::string& created_at,
                 const std::string& id = "6f1c3a0e-1d2b-4c5d-8e9f-000000000001") {
    return R"([{"event_id":")" + id + R"(","event_type":)" + event_type + R"(,"properties":)" + properties +
           R"(,"user_id":null,"created_at":)" + created_at + "}]";
  };
  const std::string big(17 * 1024, 'x');
  struct Case {
    const char* what;
    std::string body;
    const char* sqlstate;
  };
  const std::vector<Case> cases = {
      {"properties over 16 KiB", body(R"("a")", R"({"big":")" + big + R"("})", R"("2026-11-20T10:00:00Z")"), "23514"},
      {"properties not an object", body(R"("a")", "[1,2]", R"("2026-11-20T10:00:00Z")"), "23514"},
      {"U+0000 in properties", body(R"("a")", R"({"k":"a\u0000b"})", R"("2026-11-20T10:00:00Z")"), "22P05"},
      {"U+0000 in event_type", body(R"("a\u0000b")", "null", R"("2026-11-20T10:00:00Z")"), "22P05"},
      {"empty event_type", body(R"("")", "null", R"("2026-11-20T10:00:00Z")"), "23514"},
      {"event_type over 200 characters", body('"' + std::string(201, 'e') + '"', "null", R"("2026-11-20T10:00:00Z")"),
       "23514"},
      {"created_at infinity", body(R"("a")", "null", R"("infinity")"), "23514"},
      {"created_at -infinity", body(R"("a")", "null", R"("-infinity")"), "23514"},
      {"created_at in 2999", body(R"("a")", "null", R"("2999-01-01T00:00:00Z")"), "23514"},
      {"created_at in 1970", body(R"("a")", "null", R"("1970-01-01T00:00:00Z")"), "23514"},
      {"not a uuid", body(R"("a")", "null", R"("2026-11-20T10:00:00Z")", "not-a-uuid"), "22P02"},
      {"not a timestamp", body(R"("a")", "null", R"("yesterday-ish")"), "22007"},
  };
  for (const Case& c : cases) {
    std::string output;
    BOOST_TEST_CONTEXT(c.what) {
      BOOST_TEST(server().insert(db, c.body, &output) == -1);
      BOOST_TEST(sqlstate_of(output) == c.sqlstate, output);
    }
  }
  // Columns anon may not write (the body's keys become the column list):
  // the identity column refuses any value, received_at is not granted.
  auto insert_with = [&](const std::string& column, const std::string& type, const std::string& value) {
    const std::string body =
        R"([{")" + column + R"(":)" + value +
        R"(,"event_id":"6f1c3a0e-1d2b-4c5d-8e9f-000000000002","event_type":"a","created_at":"2026-11-20T10:00:00Z"}])";
    return server().cluster.psql("authenticator", db,
                                 as_anon("insert into analytics_events (" + column +
                                         ", event_id, event_type, created_at) select * from "
                                         "json_to_recordset(" +
                                         sql_literal(body) + ") as _(" + column + " " + type +
                                         ", event_id uuid, event_type text, created_at timestamptz);"));
  };
  const ProgramResult with_id = insert_with("id", "bigint", "1");
  BOOST_TEST(sqlstate_of(with_id.output) == "428C9", with_id.output);
  const ProgramResult with_received_at = insert_with("received_at", "timestamptz", R"("2026-11-20T10:00:00Z")");
  BOOST_TEST(sqlstate_of(with_received_at.output) == "42501", with_received_at.output);
  BOOST_TEST(server().count_rows(db) == 0);
}

BOOST_AUTO_TEST_CASE(the_encoder_makes_rows_the_schema_accepts) {
  const std::string db = server().database("agreement");
  std::vector<Row> rows = {
      {event_id(1), std::string("type\0nul", 8), R"({"k":"v"})", "user", "2026-11-20T10:00:00.000Z"},
      {event_id(2), "note.created", R"({"k":"a\u0000b","k\u0000":"x"})", std::string("u\0u", 3),
       "2026-11-20T10:00:00.000Z"},
      {event_id(3), "note.created", R"({"lone":"\udc00","pair":"\ud83d\ude00"})", "", "2026-11-20T10:00:00.000Z"},
      {event_id(4), "note.created", R"({"escaped":"\\u0000 is text"})", "", "2026-11-20T10:00:00.000Z"},
      {event_id(5), std::string(200, 'e'), R"({"n":1e308,"m":-0.0})", std::string(200, 'u'),
       "2000-01-01T00:00:00.000Z"},
  };
  std::string output;
  BOOST_TEST(server().insert(db, encoded_body(rows), &output) == (5), output);

  // And what it refuses rather than send: too large, too long, out of the window.
  wep::transport::RowEncoder encoder;
  auto refused = [&](const Row& r) {
    wep_row row{};
    row.event_id = wep::str(r.event_id);
    row.event_type = wep::str(r.event_type);
    row.properties_json = wep::str(r.properties_json);
    row.user_id = wep::str(r.user_id);
    row.created_at = wep::str(r.created_at);
    std::string out, why;
    return !encoder.append(row, out, why);
  };
  BOOST_TEST(
      refused({event_id(9), "a", R"({"big":")" + std::string(13 * 1024, 'x') + R"("})", "", "2026-11-20T10:00:00Z"}));
  BOOST_TEST(refused({event_id(9), std::string(201, 'e'), "", "", "2026-11-20T10:00:00Z"}));
  BOOST_TEST(refused({event_id(9), "a", "", std::string(201, 'u'), "2026-11-20T10:00:00Z"}));
  BOOST_TEST(refused({event_id(9), "a", "", "", "1999-12-31T23:59:59Z"}));
  BOOST_TEST(refused({event_id(9), "a", "", "", "2999-01-01T00:00:00Z"}));
  BOOST_TEST(refused({event_id(9), "a", std::string(40, '[') + std::string(40, ']'), "", "2026-11-20T10:00:00Z"}));
  BOOST_TEST(refused({event_id(9), "a", R"({"lone high":"\ud800"})", "", "2026-11-20T10:00:00Z"}));
}

BOOST_AUTO_TEST_CASE(anon_cannot_read_update_delete_or_touch_the_sequence) {
  const std::string db = server().database("access");
  BOOST_TEST_REQUIRE(server().insert(db, encoded_body(rows_from(0, 2))) == (3));
  auto as_anon_run = [&](const std::string& statement) {
    return server().cluster.psql("authenticator", db, as_anon(statement));
  };
  const struct {
    const char* statement;
    const char* sqlstate;
  } refused[] = {
      {"select * from analytics_events;", "42501"},
      {"select event_type from analytics_events;", "42501"},
      {"update analytics_events set event_type = 'x';", "42501"},
      {"delete from analytics_events;", "42501"},
      {"truncate analytics_events;", "42501"},
      {"select nextval(pg_get_serial_sequence('public.analytics_events', 'id'));", "42501"},
      {"select setval(pg_get_serial_sequence('public.analytics_events', 'id'), 1);", "42501"},
      {"select currval(pg_get_serial_sequence('public.analytics_events', 'id'));", "42501"},
  };
  for (const auto& c : refused) {
    const ProgramResult result = as_anon_run(c.statement);
    BOOST_TEST_CONTEXT(c.statement) {
      BOOST_TEST(result.exit_code != 0);
      BOOST_TEST(sqlstate_of(result.output) == c.sqlstate, result.output);
    }
  }
  // The one column anon may name shows no stored row (row-level security).
  const ProgramResult visible =
      as_anon_run("\\pset tuples_only on\nselect 'visible=' || count(event_id) from analytics_events;");
  BOOST_TEST(visible.output.find("visible=0") != std::string::npos, visible.output);
  BOOST_TEST(server().count_rows(db) == 3);
}

BOOST_AUTO_TEST_CASE(the_select_policy_is_served_by_an_index) {
  const std::string db = server().database("policy_index");
  Server::require_ok(
      server().cluster.psql("postgres", db,
                            "insert into analytics_events (event_id, event_type, created_at, received_at) "
                            "select gen_random_uuid(), 'bulk', now(), now() - (n || ' seconds')::interval "
                            "from generate_series(1, 20000) n;\nanalyze analytics_events;"),
      "filling the table");
  const ProgramResult plan =
      server().cluster.psql("authenticator", db, as_anon("explain (costs off) select event_id from analytics_events;"));
  BOOST_TEST(plan.output.find("analytics_events_received_at_idx") != std::string::npos, plan.output);
}

BOOST_AUTO_TEST_CASE(the_schema_upgrades_a_table_made_by_the_earlier_file) {
  const std::string db = server().database("upgrade", kEarlierTable);
  std::string output;
  const std::string big(17 * 1024, 'x');
  const std::string oversized =
      R"([{"event_id":"6f1c3a0e-1d2b-4c5d-8e9f-000000000001","event_type":"a","properties":{"big":")" + big +
      R"("},"user_id":null,"created_at":"2026-11-20T10:00:00Z"}])";
  BOOST_TEST(server().insert(db, oversized, &output) == -1);
  BOOST_TEST(sqlstate_of(output) == "23514", output);
  const ProgramResult sequence = server().cluster.psql(
      "authenticator", db, as_anon("select nextval(pg_get_serial_sequence('public.analytics_events', 'id'));"));
  BOOST_TEST(sqlstate_of(sequence.output) == "42501", sequence.output);
  BOOST_TEST(server().insert(db, encoded_body(rows_from(0, 3))) == (4));
}
