#include <Poco/DateTimeFormatter.h>
#include <Poco/Timestamp.h>
#include <sqlite3.h>

#include <filesystem>
#include <system_error>
#include <wep/sqlite/move_aside.hpp>
#include <wep/sqlite/sqlite.hpp>

namespace wep::sqlite {

std::string move_aside_damaged_database(const std::string& path) {
  namespace fs = std::filesystem;
  const std::string stamp = Poco::DateTimeFormatter::format(Poco::Timestamp(), "%Y%m%dT%H%M%S.%iZ");
  std::string target = path + ".corrupt-" + stamp;
  for (int n = 2; fs::exists(target); ++n) target = path + ".corrupt-" + stamp + "-" + std::to_string(n);
  std::error_code ec;
  fs::rename(path, target, ec);
  if (ec) throw Error(SQLITE_CANTOPEN, "cannot move aside '" + path + "': " + ec.message());
  for (const char* suffix : {"-wal", "-shm"}) {
    if (fs::exists(path + suffix)) fs::rename(path + suffix, target + suffix, ec);
  }
  return target;
}

}  // namespace wep::sqlite
