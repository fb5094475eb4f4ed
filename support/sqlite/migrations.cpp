#include <sqlite3.h>

#include <charconv>
#include <wep/sqlite/migrations.hpp>

namespace wep::sqlite {

std::vector<std::string_view> migration_steps(std::string_view sql, std::string_view name) {
  constexpr std::string_view marker = "-- @migration ";
  std::vector<std::string_view> steps;
  size_t pos = 0;
  size_t step_start = std::string_view::npos;
  while (pos < sql.size()) {
    size_t line_end = sql.find('\n', pos);
    if (line_end == std::string_view::npos) line_end = sql.size();
    const std::string_view line = sql.substr(pos, line_end - pos);
    if (line.starts_with(marker)) {
      if (step_start != std::string_view::npos) steps.push_back(sql.substr(step_start, pos - step_start));
      int number = 0;
      const auto digits = line.substr(marker.size());
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), number);
      if (ec != std::errc() || number != static_cast<int>(steps.size()) + 1) {
        throw Error(SQLITE_INTERNAL, std::string(name) + ": migration markers must be numbered 1, 2, 3...");
      }
      step_start = pos;
    }
    pos = line_end + 1;
  }
  if (step_start != std::string_view::npos) steps.push_back(sql.substr(step_start));
  return steps;
}

int schema_version(Connection& connection) {
  return static_cast<int>(connection.query_int("PRAGMA user_version", "reading the schema version"));
}

void migrate(Connection& connection, std::string_view sql, std::string_view name) {
  const auto steps = migration_steps(sql, name);
  const int latest = static_cast<int>(steps.size());
  // Another process creating or migrating the same file at this moment is
  // waited for (a fresh file's first read and the write lock may answer
  // SQLITE_BUSY without calling the busy handler).
  retry_while_busy(connection.busy_timeout_ms(), [&] {
    if (schema_version(connection) == latest) return;  // the common case: no write lock needed
    in_transaction(connection, "applying the schema migrations", [&] {
      // Re-read under the write lock: another process may have migrated.
      const int current = schema_version(connection);
      if (current > latest) {
        throw Error(SQLITE_ERROR, std::string(name) + ": the database schema version " + std::to_string(current) +
                                      " is newer than this build's " + std::to_string(latest) + " (" +
                                      connection.path() + ")");
      }
      for (int version = current + 1; version <= latest; ++version) {
        connection.exec(steps[static_cast<size_t>(version - 1)],
                        "applying schema migration " + std::to_string(version));
        connection.exec("PRAGMA user_version=" + std::to_string(version),
                        "recording schema version " + std::to_string(version));
      }
    });
  });
}

}  // namespace wep::sqlite
