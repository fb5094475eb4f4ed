// A throwaway PostgreSQL cluster for tests: initdb into a fresh temp folder,
// started by pg_ctl with a unix socket in that folder and no TCP listener,
// stopped (and the folder removed) by the destructor. Every PostgreSQL
// program runs as an unprivileged user: as root (CI), as `nobody` through
// setpriv; otherwise as the calling user. Programs are bounded in time
// (killed at their deadline).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace wep::test {

struct ProgramResult {
  int exit_code = -1;  // -1: killed at the deadline or by a signal
  std::string output;  // stdout and stderr, interleaved
};

// Runs `argv` with `input` on stdin; at most `timeout`.
ProgramResult run_program(const std::vector<std::string>& argv, const std::string& input,
                          std::chrono::milliseconds timeout);

class Cluster {
 public:
  // `bin_dir` holds initdb, pg_ctl and psql. Throws std::runtime_error with
  // the program's output when the cluster cannot start.
  explicit Cluster(const std::string& bin_dir);
  ~Cluster();  // pg_ctl stop (fast, then immediate), then removes the folder
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Runs `script` through psql -X -q -v ON_ERROR_STOP=1 as `user` on
  // `database` (VERBOSITY verbose, so errors carry their SQLSTATE).
  ProgramResult psql(const std::string& user, const std::string& database, const std::string& script) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The SQLSTATE of the first "ERROR:  XXXXX:" line in psql's verbose output,
// or "" when there is none.
std::string sqlstate_of(const std::string& psql_output);

}  // namespace wep::test
