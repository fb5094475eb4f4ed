// Keeping a damaged database for inspection while starting a fresh one.
#pragma once

#include <string>

namespace wep::sqlite {

// Renames the database at `path` (and its -wal / -shm files, if any) to
// "<path>.corrupt-<UTC timestamp>" (+ "-wal" / "-shm"), keeping every byte.
// Every connection to the file must be closed first. Returns the new path of
// the main file. Throws Error (SQLITE_CANTOPEN) if it cannot.
std::string move_aside_damaged_database(const std::string& path);

}  // namespace wep::sqlite
