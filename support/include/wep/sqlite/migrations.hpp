// Forward-only schema migrations from one SQL file, tracked by
// PRAGMA user_version.
//
// The file (one of schemas/*.sql, compiled in with wep_embed_text) is split
// at marker lines of the form
//     -- @migration <N>: <what it does>
// numbered 1, 2, 3...; the text before the first marker is a comment. Step N
// runs, together with `PRAGMA user_version = N`, in one transaction, so a
// database is always at exactly one version. Never edit a released step:
// append a new one.
#pragma once

#include <string_view>
#include <vector>

#include "sqlite.hpp"

namespace wep::sqlite {

// The steps of `sql`; step N is [N - 1]. Throws Error (SQLITE_INTERNAL) when
// the markers are not numbered 1, 2, 3... `name` names the file in messages.
std::vector<std::string_view> migration_steps(std::string_view sql, std::string_view name);

// PRAGMA user_version of the open database.
int schema_version(Connection& connection);

// Brings the database to the last step of `sql`. A database already there
// takes no write lock (a read-only file then opens). Throws Error, also when
// the database's version is newer than the file's last step.
void migrate(Connection& connection, std::string_view sql, std::string_view name);

}  // namespace wep::sqlite
